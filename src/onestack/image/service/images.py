"""Image records: who sees which image, create, list, JSON-patch update, delete,
deactivate and reactivate, tags.

Visibility (Glance's rules):

- ``public``: everyone sees it and it is listed by default;
- ``community``: everyone sees it, listed only with ``?visibility=community``
  (or ``all``) unless the caller owns it;
- ``shared``: the owner and the projects it is shared with (members) see it;
  a member's default list holds only images whose membership it accepted;
- ``private``: only the owner.

Admins see every image. An image the caller cannot see is a 404, never a 403.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest, Conflict, Forbidden, NotFound
from onestack.image import errors
from onestack.image.models import Image, ImageMember, ImageProperty, ImageTag, utcnow
from onestack.image.state import ImageState

VISIBILITIES = ("public", "private", "shared", "community")
STATUSES = (
    "queued", "saving", "active", "killed", "deleted", "pending_delete", "deactivated",
    "uploading", "importing",
)
# Attributes with their own column; every other key of an image is a custom property.
BASE = {
    "id", "name", "status", "visibility", "protected", "os_hidden", "owner", "size",
    "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "min_disk", "min_ram",
    "disk_format", "container_format", "created_at", "updated_at", "tags",
}
READ_ONLY = {
    "status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value",
    "created_at", "updated_at", "self", "file", "schema", "direct_url", "stores",
}
# Keys a client may not even name (links and the store list are computed).
RESERVED_PREFIX = "os_glance"
UUID_RE = re.compile(r"^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$")
MAX_KEY = 255
MAX_VALUE = 65535
SORT_KEYS = (
    "name", "status", "container_format", "disk_format", "size", "id", "created_at",
    "updated_at", "visibility", "owner", "virtual_size", "min_disk", "min_ram", "protected",
    "os_hidden",
)
MEMBER_STATUSES = ("pending", "accepted", "rejected", "all")


def is_admin(ctx: RequestContext) -> bool:
    return "admin" in ctx.roles


# -- visibility ----------------------------------------------------------------


def member_of(image_id: Any, project: str | None, status: str | None = None) -> ColumnElement[bool]:
    cond = [ImageMember.image_id == image_id, ImageMember.member == project]
    if status is not None and status != "all":
        cond.append(ImageMember.status == status)
    return exists().where(*cond)


def visible_condition(ctx: RequestContext) -> ColumnElement[bool] | None:
    """What a caller may see (``None``: everything, for admins)."""
    if is_admin(ctx):
        return None
    project = ctx.project_id
    if project is None:
        return or_(Image.visibility == "public", Image.visibility == "community")
    return or_(
        Image.owner == project,
        Image.visibility.in_(("public", "community")),
        and_(Image.visibility == "shared", member_of(Image.id, project)),
    )


def listed_condition(
    ctx: RequestContext, visibility: str | None, member_status: str
) -> ColumnElement[bool] | None:
    """Which images ``GET /v2/images`` lists for the caller, given the
    ``visibility`` and ``member_status`` filters."""
    project = ctx.project_id
    admin = is_admin(ctx)
    own = Image.owner == project if project else false()
    shared_with_me = and_(Image.visibility == "shared", member_of(Image.id, project, member_status))
    if visibility is None:
        if admin:
            return None
        return or_(own, Image.visibility == "public", shared_with_me)
    if visibility == "all":
        return None if admin else or_(
            own, Image.visibility.in_(("public", "community")), shared_with_me
        )
    if visibility == "shared":
        cond = Image.visibility == "shared"
        return cond if admin else and_(cond, or_(own, shared_with_me))
    cond = Image.visibility == visibility
    if visibility in ("public", "community") or admin:
        return cond
    return and_(cond, own)  # private


@dataclass
class Seen:
    """An image the caller can see, and whether (and how) it is a member."""

    image: Image
    member: ImageMember | None

    def target(self, ctx: RequestContext) -> dict[str, Any]:
        return {
            "project_id": self.image.owner,
            "member_id": ctx.project_id if self.member is not None else None,
            "visibility": self.image.visibility,
        }


async def get_visible(session: AsyncSession, ctx: RequestContext, image_id: str) -> Seen:
    """The image if the caller may see it.

    Raises:
        NotFound: no such image, or one the caller may not see.
    """
    image = await session.get(Image, image_id)
    if image is None:
        raise errors.image_not_found(image_id)
    member = None
    if ctx.project_id and image.owner != ctx.project_id:
        member = await session.scalar(
            select(ImageMember).where(
                ImageMember.image_id == image_id, ImageMember.member == ctx.project_id
            )
        )
    if is_admin(ctx) or image.owner == ctx.project_id or image.visibility in ("public", "community"):
        return Seen(image, member)
    if image.visibility == "shared" and member is not None:
        return Seen(image, member)
    raise errors.image_not_found(image_id)


# -- validation ----------------------------------------------------------------


def _type_error(key: str, value: Any, kind: str) -> BadRequest:
    return BadRequest(f"Provided object does not match schema 'image': {value!r} is not of type "
                      f"'{kind}'. Failed validating 'type' in schema['properties']['{key}']")


def check_value(st: ImageState, key: str, value: Any) -> Any:
    """``value`` checked for attribute ``key`` (a base attribute or a custom
    property), as Glance's image schema would.

    Raises:
        BadRequest: wrong type, unknown enum value or too long.
        Forbidden: a read-only or reserved attribute.
    """
    if key in READ_ONLY:
        raise errors.read_only(key)
    if key.startswith(RESERVED_PREFIX):
        raise errors.reserved(key)
    if key in ("name", "owner"):
        if value is not None and not isinstance(value, str):
            raise _type_error(key, value, "string")
        if value is not None and len(value) > 255:
            raise BadRequest(f"Provided object does not match schema 'image': '{key}' is too long")
        return value
    if key == "visibility":
        if value not in VISIBILITIES:
            raise BadRequest(f"Provided object does not match schema 'image': {value!r} is not one "
                             f"of {list(VISIBILITIES)}")
        return value
    if key in ("protected", "os_hidden"):
        if not isinstance(value, bool):
            raise _type_error(key, value, "boolean")
        return value
    if key in ("min_disk", "min_ram"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _type_error(key, value, "integer")
        if value < 0:
            raise BadRequest(f"Provided object does not match schema 'image': {value} is less than "
                             f"the minimum of 0 for '{key}'")
        return value
    if key in ("disk_format", "container_format"):
        allowed = st.conf.disk_formats if key == "disk_format" else st.conf.container_formats
        if value is not None and value not in allowed:
            raise BadRequest(f"Invalid value '{value}' for parameter '{key}': {key} must be "
                             f"one of {', '.join(allowed)}")
        return value
    if key == "tags":
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise _type_error(key, value, "array")
        for t in value:
            check_tag(t)
        return list(dict.fromkeys(value))
    if key == "id":
        if not isinstance(value, str) or not UUID_RE.match(value):
            raise BadRequest(f"Provided object does not match schema 'image': {value!r} does not "
                             "match the pattern of an image id (a UUID)")
        return value
    # a custom property
    if len(key) > MAX_KEY or not key:
        raise BadRequest(f"Property name '{key[:64]}...' is invalid: at most {MAX_KEY} characters")
    if key in ("kernel_id", "ramdisk_id") and value is not None and (
        not isinstance(value, str) or not UUID_RE.match(value)
    ):
        raise BadRequest(f"Provided object does not match schema 'image': {value!r} does not "
                         f"match the pattern of '{key}' (a UUID)")
    if not isinstance(value, str):
        if value is None and key in ("kernel_id", "ramdisk_id"):
            return value
        raise _type_error(key, value, "string")
    if len(value.encode()) > MAX_VALUE:
        raise BadRequest(f"Property '{key}' is too long: at most {MAX_VALUE} bytes")
    return value


def check_tag(tag: str) -> None:
    if not isinstance(tag, str) or len(tag) > 255:
        raise BadRequest("Invalid tag: a tag is a string of at most 255 characters")


def _check_owner(ctx: RequestContext, owner: str | None) -> None:
    if owner is not None and owner != ctx.project_id and not is_admin(ctx):
        raise Forbidden(f"You are not permitted to create images owned by '{owner}'.")


def _check_visibility_change(st: ImageState, ctx: RequestContext, visibility: str, target: dict[str, Any]) -> None:
    rule = {"public": "image:publicize_image", "community": "image:communitize_image"}.get(visibility)
    if rule and not st.enforcer.check(rule, target, ctx.policy_creds()):
        raise Forbidden(f"You are not authorized to complete {rule.split(':')[1]} action.")


# -- create --------------------------------------------------------------------


async def create(st: ImageState, session: AsyncSession, ctx: RequestContext, body: dict[str, Any]) -> Image:
    """A new image record in ``queued`` from a ``POST /v2/images`` body.

    Raises:
        BadRequest, Forbidden, Conflict (the id exists), RequestEntityTooLarge
        (too many properties or tags).
    """
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    if "locations" in body:
        raise Forbidden("Attribute 'locations' is reserved.")
    values: dict[str, Any] = {}
    props: dict[str, str] = {}
    for key, value in body.items():
        checked = check_value(st, key, value)
        if key in BASE:
            values[key] = checked
        elif checked is not None:
            props[key] = checked
    owner = values.pop("owner", None) if "owner" in values else ctx.project_id
    _check_owner(ctx, owner)
    visibility = values.get("visibility", "shared")
    target = {"project_id": owner, "member_id": None, "visibility": visibility}
    _check_visibility_change(st, ctx, visibility, target)
    tags = values.pop("tags", [])
    _check_counts(st, len(props), len(tags))
    image_id = values.pop("id", None) or str(uuid.uuid4())
    if await session.get(Image, image_id) is not None:
        raise Conflict(f"Image with identifier {image_id} already exists!")
    now = utcnow()
    image = Image(
        id=image_id, owner=owner, status="queued", visibility=visibility,
        protected=values.get("protected", False), os_hidden=values.get("os_hidden", False),
        name=values.get("name"), min_disk=values.get("min_disk", 0),
        min_ram=values.get("min_ram", 0), disk_format=values.get("disk_format"),
        container_format=values.get("container_format"), created_at=now, updated_at=now,
        properties=[ImageProperty(name=k, value=v) for k, v in props.items()],
        tags=[ImageTag(value=t) for t in tags],
        locations=[],
    )
    session.add(image)
    await session.flush()
    return image


def _check_counts(st: ImageState, n_props: int, n_tags: int) -> None:
    if n_props > st.conf.image_property_quota:
        raise errors.over_limit("image properties", n_props, st.conf.image_property_quota)
    if n_tags > st.conf.image_tag_quota:
        raise errors.over_limit("tags", n_tags, st.conf.image_tag_quota)


# -- list ----------------------------------------------------------------------

_OPS = {"eq", "neq", "gt", "gte", "lt", "lte", "in"}
_COLUMNS = {
    "name": Image.name, "status": Image.status, "container_format": Image.container_format,
    "disk_format": Image.disk_format, "size": Image.size, "id": Image.id,
    "created_at": Image.created_at, "updated_at": Image.updated_at,
    "visibility": Image.visibility, "owner": Image.owner, "virtual_size": Image.virtual_size,
    "min_disk": Image.min_disk, "min_ram": Image.min_ram, "protected": Image.protected,
    "os_hidden": Image.os_hidden, "checksum": Image.checksum,
    "os_hash_value": Image.os_hash_value,
}
# Sorting treats a missing value as the smallest one on every database.
_NULL_AS = {"name": "", "container_format": "", "disk_format": "", "owner": "", "size": -1,
            "virtual_size": -1}
_TIME_FILTERS = ("created_at", "updated_at")
_INT_FILTERS = ("size", "virtual_size", "min_disk", "min_ram")
_BOOL_FILTERS = ("protected", "os_hidden")
_NOT_FILTERS = {"limit", "marker", "sort_key", "sort_dir", "sort", "member_status",
                "visibility", "tag", "size_min", "size_max", "owner"}


@dataclass
class ListQuery:
    conditions: list[ColumnElement[bool]]
    sort: list[tuple[str, str]]
    limit: int
    marker: str | None


def _parse_time(key: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid date format for '{key}': {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=utcnow().tzinfo)


def _split_op(key: str, raw: str) -> tuple[str, str]:
    op, sep, rest = raw.partition(":")
    if sep and op in _OPS:
        return op, rest
    return "eq", raw


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    return {
        "eq": lambda: column == value, "neq": lambda: column != value,
        "gt": lambda: column > value, "gte": lambda: column >= value,
        "lt": lambda: column < value, "lte": lambda: column <= value,
    }[op]()


def _convert(key: str, text: str) -> Any:
    if key in _TIME_FILTERS:
        return _parse_time(key, text)
    if key in _INT_FILTERS:
        try:
            return int(text)
        except ValueError:
            raise BadRequest(f"Invalid value for '{key}': {text!r} is not an integer") from None
    if key in _BOOL_FILTERS:
        low = text.lower()
        if low not in ("true", "false"):
            raise BadRequest(f"Invalid value for '{key}': {text!r} is not a boolean")
        return low == "true"
    return text


def list_query(st: ImageState, ctx: RequestContext, params: list[tuple[str, str]]) -> ListQuery:
    """Conditions, order, limit and marker from ``GET /v2/images``'s query.

    Raises:
        BadRequest: an unknown sort key or direction, a bad limit, filter value
            or operator.
    """
    single: dict[str, str] = {}
    for k, v in params:
        single.setdefault(k, v)
    member_status = single.get("member_status", "accepted")
    if member_status not in MEMBER_STATUSES:
        raise BadRequest(f"Invalid status value: {member_status}")
    visibility = single.get("visibility")
    if visibility is not None and visibility not in (*VISIBILITIES, "all"):
        raise BadRequest(f"Invalid visibility value: {visibility}")
    conditions: list[ColumnElement[bool]] = []
    listed = listed_condition(ctx, visibility, member_status)
    if listed is not None:
        conditions.append(listed)
    if "os_hidden" not in single:
        conditions.append(Image.os_hidden == false())
    if "owner" in single:
        conditions.append(Image.owner == single["owner"])
    for tag in (v for k, v in params if k == "tag"):
        conditions.append(exists().where(ImageTag.image_id == Image.id, ImageTag.value == tag))
    for bound, op in (("size_min", "gte"), ("size_max", "lte")):
        if bound in single:
            conditions.append(_compare(Image.size, op, _convert("size", single[bound])))
    for key, raw in params:
        if key in _NOT_FILTERS:
            continue
        op, text = _split_op(key, raw)
        column = _COLUMNS.get(key)
        if column is None:
            if key in ("limit", "marker"):
                continue
            # a custom property: exact match (or in:)
            if op == "in":
                values = [v for v in text.split(",") if v]
                cond = ImageProperty.value.in_(values)
            else:
                cond = ImageProperty.value == text if op == "eq" else None
                if cond is None:
                    raise BadRequest(f"Invalid operator {op!r} for property filter '{key}'")
            conditions.append(
                exists().where(ImageProperty.image_id == Image.id, ImageProperty.name == key, cond)
            )
            continue
        if op == "in":
            values = [_convert(key, v) for v in text.strip('"').split(",") if v]
            conditions.append(column.in_(values))
        elif op != "eq" and key not in (*_TIME_FILTERS, *_INT_FILTERS):
            raise BadRequest(f"Invalid operator {op!r} for '{key}'")
        else:
            conditions.append(_compare(column, op, _convert(key, text)))
    limit = parse_limit(single.get("limit"), st.conf.limit_param_default, st.conf.api_limit_max)
    assert limit is not None
    return ListQuery(conditions, _sort(params), limit, single.get("marker"))


def parse_limit(raw: str | None, default: int | None, maximum: int) -> int | None:
    """Glance's ``limit`` query parameter: ``default`` when absent, at most ``maximum``.

    Raises:
        BadRequest: not a non-negative integer.
    """
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest("limit param must be an integer") from None
    if limit < 0:
        raise BadRequest("limit param must be positive")
    return min(limit, maximum)


def _sort(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    keys = [v for k, v in params if k == "sort_key"]
    dirs = [v for k, v in params if k == "sort_dir"]
    sort_param = [v for k, v in params if k == "sort"]
    out: list[tuple[str, str]] = []
    if sort_param:
        if keys or dirs:
            raise BadRequest("The 'sort' parameter cannot be combined with sort_key or sort_dir")
        for part in ",".join(sort_param).split(","):
            key, _, direction = part.strip().partition(":")
            out.append((key, direction or "desc"))
    else:
        if len(dirs) > max(len(keys), 1):
            raise BadRequest("Number of sort dirs does not match the number of sort keys")
        for i, key in enumerate(keys):
            direction = dirs[i] if i < len(dirs) else (dirs[0] if len(dirs) == 1 else "desc")
            out.append((key, direction))
        if not keys:
            out.append(("created_at", dirs[0] if dirs else "desc"))
    for key, direction in out:
        if key not in SORT_KEYS:
            raise BadRequest(f"Invalid sort key: {key}. It must be one of the following: "
                             f"{', '.join(SORT_KEYS)}.")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction: {direction}")
    if not any(k == "id" for k, _ in out):
        out.append(("id", out[-1][1] if out else "desc"))
    return out


def _sort_expr(key: str) -> Any:
    column = _COLUMNS[key]
    if key in _NULL_AS:
        return func.coalesce(column, literal(_NULL_AS[key]))
    return column


def _sort_value(image: Image, key: str) -> Any:
    value = getattr(image, key)
    return _NULL_AS.get(key) if value is None else value


async def list_images(
    st: ImageState, session: AsyncSession, ctx: RequestContext, q: ListQuery
) -> list[Image]:
    """One page of the images the caller may list, in the query's order.

    Raises:
        BadRequest: the marker is not an image the caller may see.
    """
    stmt = select(Image).where(*q.conditions)
    if q.marker:
        marker_cond = visible_condition(ctx)
        marker = await session.scalar(
            select(Image).where(Image.id == q.marker, *([marker_cond] if marker_cond is not None else []))
        )
        if marker is None:
            raise BadRequest(f"Invalid marker. Image {q.marker} could not be found.")
        stmt = stmt.where(_after(q.sort, marker))
    order = [
        _sort_expr(k).asc() if d == "asc" else _sort_expr(k).desc() for k, d in q.sort
    ]
    stmt = stmt.order_by(*order).limit(q.limit)
    return list((await session.scalars(stmt)).all())


def _after(sort: list[tuple[str, str]], marker: Image) -> ColumnElement[bool]:
    """Rows strictly after ``marker`` in the order ``sort`` (keyset pagination)."""
    clauses = []
    for i, (key, direction) in enumerate(sort):
        eqs = [_sort_expr(k) == _sort_value(marker, k) for k, _ in sort[:i]]
        expr, value = _sort_expr(key), _sort_value(marker, key)
        cmp = expr > value if direction == "asc" else expr < value
        clauses.append(and_(*eqs, cmp))
    return or_(*clauses)


# -- update (JSON patch) -------------------------------------------------------

PATCH_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)


def _decode_path(path: Any) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadRequest(f"Pointer `{path}` does not start with \"/\".")
    parts = path[1:].split("/")
    if len(parts) > 1:
        raise BadRequest(f"Nested paths are not allowed: {path}")
    part = parts[0]
    if re.search(r"~(?![01])", part):
        raise BadRequest(f"Pointer `{path}` contains \"~\" not part of a recognized escape sequence.")
    return part.replace("~1", "/").replace("~0", "~")


def _normalize_op(raw: Any) -> dict[str, Any]:
    """An operation in the RFC 6902 form (``{"op": "add", "path": ...}``, the
    v2.1 media type) from either that form or the older draft form that the
    v2.0 media type uses (``{"add": "/name", "value": ...}``).

    Raises:
        BadRequest: neither form.
    """
    if isinstance(raw, dict) and "op" in raw and "path" in raw:
        return raw
    if isinstance(raw, dict) and "op" not in raw:
        named = [k for k in ("add", "replace", "remove") if k in raw]
        if len(named) == 1:
            return {**{k: v for k, v in raw.items() if k != named[0]},
                    "op": named[0], "path": raw[named[0]]}
    raise BadRequest("Operation objects must contain exactly one member named 'add', "
                     "'remove', or 'replace', or 'op' and 'path' members.")


async def patch(
    st: ImageState, session: AsyncSession, ctx: RequestContext, seen: Seen, ops: Any
) -> Image:
    """Apply a Glance JSON patch (``add``, ``replace``, ``remove``).

    Raises:
        BadRequest: malformed operations.  Forbidden: read-only, reserved or
        not permitted.  Conflict: replacing or removing a missing property.
    """
    if not isinstance(ops, list):
        raise BadRequest("Request body must be a JSON array of operation objects.")
    image = seen.image
    target = seen.target(ctx)
    props = {p.name: p for p in image.properties}
    for raw in ops:
        raw = _normalize_op(raw)
        op = raw["op"]
        if op not in ("add", "replace", "remove"):
            raise BadRequest(f"Invalid operation: `{op}`: must be one of add, replace, remove.")
        key = _decode_path(raw["path"])
        if op != "remove" and "value" not in raw:
            raise BadRequest(f"Operation \"{op}\" requires a member named \"value\".")
        if key in ("locations",):
            raise Forbidden("It's not allowed to update locations of an image through this API.")
        if key == "id":
            raise errors.read_only(key)
        if key == "owner" and not is_admin(ctx):
            raise Forbidden("Owner can be changed only by an administrator.")
        if op == "remove":
            if key in BASE or key in READ_ONLY:
                if key in READ_ONLY:
                    raise errors.read_only(key)
                raise Forbidden(f"Attribute '{key}' is a base attribute and cannot be removed.")
            if key.startswith(RESERVED_PREFIX):
                raise errors.reserved(key)
            if key not in props:
                raise Conflict(f"Property {key} does not exist.")
            image.properties.remove(props.pop(key))
            continue
        value = check_value(st, key, raw["value"])
        if key == "visibility" and value != image.visibility:
            # memberships stay when an image stops being shared, as in Glance
            _check_visibility_change(st, ctx, value, target)
        if key == "tags":
            image.tags = [ImageTag(value=t) for t in value]
        elif key in BASE:
            if key in ("disk_format", "container_format") and image.status not in ("queued",) \
                    and getattr(image, key) != value:
                raise Forbidden(f"Attribute '{key}' can be only replaced for a queued image.")
            setattr(image, key, value)
        else:
            if op == "replace" and key not in props:
                raise Conflict(f"Property {key} does not exist.")
            if key in props:
                props[key].value = value
            else:
                prop = ImageProperty(name=key, value=value)
                image.properties.append(prop)
                props[key] = prop
    _check_counts(st, len(image.properties), len(image.tags))
    image.updated_at = utcnow()
    await session.flush()
    return image


# -- tags, delete, (de)activate --------------------------------------------------


async def add_tag(st: ImageState, session: AsyncSession, image: Image, tag: str) -> None:
    check_tag(tag)
    if any(t.value == tag for t in image.tags):
        return
    if len(image.tags) + 1 > st.conf.image_tag_quota:
        raise errors.over_limit("tags", len(image.tags) + 1, st.conf.image_tag_quota)
    image.tags.append(ImageTag(value=tag))
    image.updated_at = utcnow()


async def delete_tag(session: AsyncSession, image: Image, tag: str) -> None:
    for t in image.tags:
        if t.value == tag:
            image.tags.remove(t)
            image.updated_at = utcnow()
            return
    raise NotFound(f"Tag {tag} not found on image {image.id}")


async def delete(session: AsyncSession, image: Image) -> list[tuple[str, str]]:
    """Remove the image record; returns the (store, url) of its data for the
    caller to delete once the transaction commits.

    Raises:
        Forbidden: the image is protected.
    """
    if image.protected:
        raise Forbidden(f"Image {image.id} is protected and cannot be deleted.")
    data = [(loc.store, loc.url) for loc in image.locations]
    await session.delete(image)  # members, properties, tags go by ON DELETE CASCADE
    await session.flush()
    return data


def remove_location(image: Image, store_id: str) -> list[tuple[str, str]]:
    """Drop the copy of ``image``'s data in ``store_id``; returns what to delete.

    Raises:
        Conflict: the image is not active, or that copy is its only one.
        NotFound: the store holds no copy of it.
    """
    if image.status != "active":
        raise Conflict(f"Image {image.id} is {image.status}: only an active image's data can "
                       "be deleted from a store")
    mine = [loc for loc in image.locations if loc.store == store_id]
    if not mine:
        raise NotFound(f"Image {image.id} has no data in store {store_id}")
    if len(mine) == len(image.locations):
        raise Conflict(f"Store {store_id} holds the only copy of image {image.id}'s data")
    for loc in mine:
        image.locations.remove(loc)
    image.updated_at = utcnow()
    return [(loc.store, loc.url) for loc in mine]


def deactivate(image: Image) -> None:
    if image.status == "deactivated":
        return
    if image.status != "active":
        raise Forbidden(f"Not allowed to deactivate image in status '{image.status}'")
    image.status = "deactivated"
    image.updated_at = utcnow()


def reactivate(image: Image) -> None:
    if image.status == "active":
        return
    if image.status != "deactivated":
        raise Forbidden(f"Not allowed to reactivate image in status '{image.status}'")
    image.status = "active"
    image.updated_at = utcnow()

