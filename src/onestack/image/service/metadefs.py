"""Metadata definitions (Glance's ``/v2/metadefs``): a catalogue of the
properties, objects and tags that may be set on resources (images, flavors,
volumes ...), grouped in namespaces and tied to resource types.

Who sees a namespace (Glance's rules): admins see all; others see public
namespaces, their own project's, and ones without an owner. A namespace the
caller cannot see is a 404. A ``protected`` namespace cannot be deleted, nor
can anything in it (403); changing it is allowed (that is how it is unprotected).

Bodies are validated with pydantic models that mirror the metadefs JSON
schemas (``api/metadefs_schemas.py``): unknown keys and wrong types are 400s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from onestack.core.context import RequestContext
from onestack.core.db import Database
from onestack.core.errors import BadRequest, Conflict, Forbidden, NotFound
from onestack.core.http import validate
from onestack.image import errors
from onestack.image.metadefs_models import (
    MetadefAssociation,
    MetadefNamespace,
    MetadefObject,
    MetadefProperty,
    MetadefResourceType,
    MetadefTag,
)
from onestack.image.models import utcnow
from onestack.image.service.images import is_admin, parse_limit

# The resource types a fresh cloud knows (those Glance's bundled definitions use).
WELL_KNOWN_TYPES = (
    "OS::Glance::Image",
    "OS::Cinder::Volume",
    "OS::Nova::Flavor",
    "OS::Nova::Aggregate",
    "OS::Nova::Server",
    "OS::Glance::Snapshot",
    "OS::Cinder::VolumeSnapshot",
    "OS::Trove::Instance",
)
VISIBILITIES = ("public", "private")
PROPERTY_TYPES = ("array", "boolean", "integer", "number", "object", "string")

# -- request bodies -------------------------------------------------------------

Name = Annotated[str, StringConstraints(min_length=1, max_length=80)]
Short = Annotated[str, StringConstraints(max_length=80)]
Count = Annotated[int, Field(ge=0)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _unique(values: list[str] | None) -> list[str] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("items must be unique")
    return values


class ItemsIn(_Body):
    type: Literal["array", "boolean", "integer", "number", "object", "string"] | None = None
    enum: list[Any] | None = None


class PropertyIn(_Body):
    """A property definition: a small JSON Schema (title and type required)."""

    name: Short | None = None
    title: str
    type: Literal["array", "boolean", "integer", "number", "object", "string"] | None
    description: str | None = None
    operators: list[str] | None = None
    required: list[str] | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    maxLength: Count | None = None  # noqa: N815 (the JSON Schema spelling)
    minLength: Count | None = None  # noqa: N815
    pattern: str | None = None
    enum: list[Any] | None = None
    readonly: bool | None = None
    default: Any = None
    items: ItemsIn | None = None
    maxItems: Count | None = None  # noqa: N815
    minItems: Count | None = None  # noqa: N815
    uniqueItems: bool | None = None  # noqa: N815
    additionalItems: bool | None = None  # noqa: N815

    @field_validator("required")
    @classmethod
    def _required_unique(cls, value: list[str] | None) -> list[str] | None:
        return _unique(value)

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    def definition(self) -> dict[str, Any]:
        """What is stored: every given attribute but the name, nulls dropped."""
        out = self.model_dump(exclude_unset=True, exclude={"name"})
        return {k: v for k, v in out.items() if v is not None}


class ObjectIn(_Body):
    name: Name
    description: str | None = None
    required: list[str] | None = None
    properties: dict[str, PropertyIn] | None = None

    @field_validator("required")
    @classmethod
    def _required_unique(cls, value: list[str] | None) -> list[str] | None:
        return _unique(value)


class AssociationIn(_Body):
    name: Name
    prefix: Short | None = None
    properties_target: Short | None = None


class TagIn(_Body):
    name: Name


class TagsIn(_Body):
    tags: list[TagIn] | None = None


class NamespaceIn(_Body):
    namespace: Name
    display_name: Short | None = None
    description: Annotated[str, StringConstraints(max_length=500)] | None = None
    visibility: Literal["public", "private"] | None = None
    protected: bool | None = None
    owner: Annotated[str, StringConstraints(max_length=255)] | None = None
    resource_type_associations: list[AssociationIn] | None = None
    properties: dict[str, PropertyIn] | None = None
    objects: list[ObjectIn] | None = None
    tags: list[TagIn] | None = None


M = TypeVar("M", bound=BaseModel)

NAMESPACE_READ_ONLY = ("self", "schema", "created_at", "updated_at")
OBJECT_READ_ONLY = NAMESPACE_READ_ONLY
CHILD_READ_ONLY = ("created_at", "updated_at")


def parse(model: type[M], body: Any, read_only: Sequence[str] = CHILD_READ_ONLY) -> M:
    """``body`` validated as ``model``.

    Raises:
        BadRequest: not an object, an unknown key, a wrong type or size.
        Forbidden: a read-only attribute is given.
    """
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    for key in read_only:
        if key in body:
            raise errors.read_only(key)
    return validate(model, body)


# -- namespaces -------------------------------------------------------------------


def _visible(ctx: RequestContext) -> ColumnElement[bool] | None:
    if is_admin(ctx):
        return None
    conds = [MetadefNamespace.visibility == "public", MetadefNamespace.owner.is_(None)]
    if ctx.project_id:
        conds.append(MetadefNamespace.owner == ctx.project_id)
    return or_(*conds)


def namespace_not_found(name: str) -> NotFound:
    return NotFound(f"Metadata definition namespace {name} was not found.")


def target(ns: MetadefNamespace) -> dict[str, Any]:
    """The policy target of anything in ``ns``."""
    return {"project_id": ns.owner, "visibility": ns.visibility}


def can_see(ctx: RequestContext, ns: MetadefNamespace) -> bool:
    return (is_admin(ctx) or ns.owner is None or ns.visibility == "public"
            or (ctx.project_id is not None and ns.owner == ctx.project_id))


async def get_namespace(session: AsyncSession, ctx: RequestContext, name: str) -> MetadefNamespace:
    """The namespace named ``name`` if the caller can see it.

    Raises:
        NotFound: no such namespace, or one the caller cannot see.
    """
    ns = await session.scalar(select(MetadefNamespace).where(MetadefNamespace.namespace == name))
    if ns is None or not can_see(ctx, ns):
        raise namespace_not_found(name)
    return ns


def _not_protected(ns: MetadefNamespace, what: str) -> None:
    if ns.protected:
        raise Forbidden(f"{what} cannot be deleted: namespace {ns.namespace} is protected.")


@dataclass(frozen=True)
class ListQuery:
    limit: int | None
    marker: str | None
    sort_key: str
    sort_dir: str
    filters: dict[str, str]


def list_query(
    params: Iterable[tuple[str, str]], sort_keys: Sequence[str], *, default_limit: int | None,
    max_limit: int,
) -> ListQuery:
    """Paging, sorting and filters from a metadefs list's query string.

    Raises:
        BadRequest: a bad limit, sort key or direction.
    """
    q = dict(params)
    limit = parse_limit(q.pop("limit", None) or None, default_limit, max_limit)
    sort_dir = q.pop("sort_dir", "desc")
    if sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort direction: {sort_dir}")
    sort_key = q.pop("sort_key", "created_at")
    if sort_key not in sort_keys:
        raise BadRequest(f"Invalid sort key: {sort_key}. It must be one of: {', '.join(sort_keys)}")
    return ListQuery(limit, q.pop("marker", None) or None, sort_key, sort_dir, q)


_NULLABLE = {"display_name", "owner", "description"}


def _keys(model: Any, sort_key: str) -> list[Any]:
    col: InstrumentedAttribute[Any] = getattr(model, sort_key)
    keys: list[Any] = [func.coalesce(col, "") if sort_key in _NULLABLE else col]
    if sort_key != "created_at":
        keys.append(model.created_at)
    keys.append(model.id)
    return keys


def _paged(stmt: Select[Any], model: Any, q: ListQuery, marker: Any | None) -> Select[Any]:
    """``stmt`` ordered by ``q``'s key (then creation, then id) and, after a
    marker row, continued past it (keyset pagination)."""
    keys = _keys(model, q.sort_key)
    desc = q.sort_dir == "desc"
    if marker is not None:
        first = getattr(marker, q.sort_key)
        values = [(first or "") if q.sort_key in _NULLABLE else first]
        if q.sort_key != "created_at":
            values.append(marker.created_at)
        values.append(marker.id)
        alternatives = []
        for i, key in enumerate(keys):
            beyond = key < values[i] if desc else key > values[i]
            alternatives.append(and_(*[keys[j] == values[j] for j in range(i)], beyond))
        stmt = stmt.where(or_(*alternatives))
    stmt = stmt.order_by(*[k.desc() if desc else k.asc() for k in keys])
    return stmt.limit(q.limit) if q.limit is not None else stmt


NAMESPACE_SORT_KEYS = ("created_at", "updated_at", "namespace", "display_name", "owner",
                       "visibility", "protected")


async def list_namespaces(
    session: AsyncSession, ctx: RequestContext, q: ListQuery
) -> list[MetadefNamespace]:
    """The namespaces the caller can see, filtered by ``visibility`` and
    ``resource_types`` (a comma-separated list: associated with any of them).

    Raises:
        BadRequest: an unknown visibility.  NotFound: the marker is unknown.
    """
    stmt = select(MetadefNamespace)
    seen = _visible(ctx)
    if seen is not None:
        stmt = stmt.where(seen)
    visibility = q.filters.get("visibility")
    if visibility:
        if visibility not in VISIBILITIES:
            raise BadRequest(f"Invalid visibility value: {visibility}")
        stmt = stmt.where(MetadefNamespace.visibility == visibility)
    types = [t for t in (q.filters.get("resource_types") or "").split(",") if t]
    if types:
        stmt = stmt.where(MetadefNamespace.id.in_(
            select(MetadefAssociation.namespace_id).join(
                MetadefResourceType, MetadefResourceType.id == MetadefAssociation.resource_type_id
            ).where(MetadefResourceType.name.in_(types))
        ))
    marker = await get_namespace(session, ctx, q.marker) if q.marker else None
    return list((await session.scalars(_paged(stmt, MetadefNamespace, q, marker))).all())


async def create_namespace(
    session: AsyncSession, ctx: RequestContext, body: NamespaceIn
) -> MetadefNamespace:
    """A new namespace with whatever the body holds inline (associations,
    properties, objects, tags).

    Raises:
        Conflict: the name is taken, or the body repeats a name.
    """
    await _free_namespace_name(session, body.namespace)
    now = utcnow()
    ns = MetadefNamespace(
        namespace=body.namespace, display_name=body.display_name, description=body.description,
        visibility=body.visibility or "private", protected=bool(body.protected),
        owner=body.owner if body.owner is not None else ctx.project_id,
        created_at=now, updated_at=now,
    )
    session.add(ns)
    await session.flush()
    for assoc in body.resource_type_associations or ():
        await associate(session, ns, assoc)
    for name, prop in (body.properties or {}).items():
        await create_property(session, ns, prop, name=name)
    for obj in body.objects or ():
        await create_object(session, ns, obj)
    if body.tags:
        await create_tags(session, ns, body.tags, append=True)
    return ns


async def _free_namespace_name(session: AsyncSession, name: str) -> None:
    taken = await session.scalar(select(MetadefNamespace.id).where(MetadefNamespace.namespace == name))
    if taken is not None:
        raise Conflict(f"A metadata definition namespace named {name} already exists.")


async def update_namespace(
    session: AsyncSession, ctx: RequestContext, ns: MetadefNamespace, body: NamespaceIn
) -> MetadefNamespace:
    """Replace the namespace's own attributes (its contents stay). As in Glance,
    an attribute left out takes its default: no description, private,
    unprotected, owned by the caller's project.

    Raises:
        Conflict: renamed to a taken name.
    """
    if body.namespace != ns.namespace:
        await _free_namespace_name(session, body.namespace)
    ns.namespace = body.namespace
    ns.display_name = body.display_name
    ns.description = body.description
    ns.visibility = body.visibility or "private"
    ns.protected = bool(body.protected)
    ns.owner = body.owner if body.owner is not None else ctx.project_id
    ns.updated_at = utcnow()
    await session.flush()
    return ns


async def delete_namespace(session: AsyncSession, ns: MetadefNamespace) -> None:
    """Delete the namespace and everything in it.

    Raises:
        Forbidden: it is protected.
    """
    if ns.protected:
        raise Forbidden(f"Metadata definition namespace {ns.namespace} is protected and "
                        "cannot be deleted.")
    for model in (MetadefTag, MetadefObject, MetadefProperty, MetadefAssociation):
        await session.execute(delete(model).where(model.namespace_id == ns.id))
    await session.delete(ns)
    await session.flush()


# -- resource types and associations ---------------------------------------------


async def seed_resource_types(db: Database) -> None:
    """Add the well-known resource types that are missing (at first use)."""
    async with db.read() as session:
        have = set((await session.scalars(select(MetadefResourceType.name))).all())
    if have.issuperset(WELL_KNOWN_TYPES):
        return
    try:
        async with db.write() as session:
            have = set((await session.scalars(select(MetadefResourceType.name))).all())
            now = utcnow()
            for name in WELL_KNOWN_TYPES:
                if name not in have:
                    session.add(MetadefResourceType(name=name, protected=True,
                                                    created_at=now, updated_at=now))
    except IntegrityError:
        pass  # another host seeded them at the same moment


async def list_resource_types(session: AsyncSession) -> list[MetadefResourceType]:
    return list((await session.scalars(select(MetadefResourceType).order_by(MetadefResourceType.id))).all())


async def _resource_type(session: AsyncSession, name: str) -> MetadefResourceType:
    """The resource type ``name``, created if new (as Glance does on association)."""
    rt = await session.scalar(select(MetadefResourceType).where(MetadefResourceType.name == name))
    if rt is None:
        now = utcnow()
        rt = MetadefResourceType(name=name, protected=name in WELL_KNOWN_TYPES,
                                 created_at=now, updated_at=now)
        session.add(rt)
        await session.flush()
    return rt


async def associations(
    session: AsyncSession, namespace_ids: Sequence[int]
) -> dict[int, list[tuple[MetadefAssociation, str]]]:
    """Each namespace's resource type associations, with the type's name."""
    out: dict[int, list[tuple[MetadefAssociation, str]]] = {i: [] for i in namespace_ids}
    if not namespace_ids:
        return out
    rows = await session.execute(
        select(MetadefAssociation, MetadefResourceType.name)
        .join(MetadefResourceType, MetadefResourceType.id == MetadefAssociation.resource_type_id)
        .where(MetadefAssociation.namespace_id.in_(namespace_ids))
        .order_by(MetadefAssociation.created_at, MetadefResourceType.id)
    )
    for assoc, name in rows.tuples():
        out[assoc.namespace_id].append((assoc, name))
    return out


async def associate(
    session: AsyncSession, ns: MetadefNamespace, body: AssociationIn
) -> tuple[MetadefAssociation, str]:
    """Associate ``ns`` with a resource type (created if unknown).

    Raises:
        Conflict: already associated.
    """
    rt = await _resource_type(session, body.name)
    found = await session.get(MetadefAssociation, (ns.id, rt.id))
    if found is not None:
        raise Conflict(f"Namespace {ns.namespace} is already associated with resource type "
                       f"{body.name}.")
    now = utcnow()
    assoc = MetadefAssociation(namespace_id=ns.id, resource_type_id=rt.id, prefix=body.prefix,
                               properties_target=body.properties_target,
                               created_at=now, updated_at=now)
    session.add(assoc)
    await session.flush()
    return assoc, rt.name


async def dissociate(session: AsyncSession, ns: MetadefNamespace, name: str) -> None:
    """Remove the association of ``ns`` with resource type ``name``.

    Raises:
        NotFound: not associated.  Forbidden: the namespace is protected.
    """
    rt = await session.scalar(select(MetadefResourceType).where(MetadefResourceType.name == name))
    assoc = await session.get(MetadefAssociation, (ns.id, rt.id)) if rt is not None else None
    if assoc is None:
        raise NotFound(f"Resource type {name} is not associated with namespace {ns.namespace}.")
    _not_protected(ns, f"The association with resource type {name}")
    await session.delete(assoc)
    await session.flush()


async def prefix_for(session: AsyncSession, ns: MetadefNamespace, resource_type: str) -> str | None:
    """The prefix of ``ns``'s association with ``resource_type``.

    Raises:
        NotFound: not associated.
    """
    row = await session.execute(
        select(MetadefAssociation.prefix)
        .join(MetadefResourceType, MetadefResourceType.id == MetadefAssociation.resource_type_id)
        .where(MetadefAssociation.namespace_id == ns.id, MetadefResourceType.name == resource_type)
    )
    found = row.first()
    if found is None:
        raise NotFound(f"Resource type {resource_type} is not associated with namespace "
                       f"{ns.namespace}.")
    return found[0]


# -- objects ----------------------------------------------------------------------

OBJECT_SORT_KEYS = ("created_at", "updated_at", "name")


def _properties(props: dict[str, PropertyIn] | None) -> dict[str, Any] | None:
    return None if props is None else {k: v.definition() for k, v in props.items()}


async def _child(session: AsyncSession, model: type[Any], ns: MetadefNamespace, name: str) -> Any:
    return await session.scalar(select(model).where(model.namespace_id == ns.id, model.name == name))


async def create_object(session: AsyncSession, ns: MetadefNamespace, body: ObjectIn) -> MetadefObject:
    """Raises: Conflict: the name is taken in ``ns``."""
    if await _child(session, MetadefObject, ns, body.name) is not None:
        raise Conflict(f"An object named {body.name} already exists in namespace {ns.namespace}.")
    now = utcnow()
    obj = MetadefObject(namespace_id=ns.id, name=body.name, description=body.description,
                        required=body.required, properties=_properties(body.properties),
                        created_at=now, updated_at=now)
    session.add(obj)
    await session.flush()
    return obj


async def list_objects(
    session: AsyncSession, ns: MetadefNamespace, q: ListQuery | None = None
) -> list[MetadefObject]:
    """Raises: NotFound: the marker is unknown."""
    q = q or ListQuery(None, None, "created_at", "asc", {})
    marker = await get_object(session, ns, q.marker) if q.marker else None
    stmt = select(MetadefObject).where(MetadefObject.namespace_id == ns.id)
    return list((await session.scalars(_paged(stmt, MetadefObject, q, marker))).all())


async def get_object(session: AsyncSession, ns: MetadefNamespace, name: str) -> MetadefObject:
    """Raises: NotFound."""
    obj = await _child(session, MetadefObject, ns, name)
    if obj is None:
        raise NotFound(f"Metadata definition object {name} was not found in namespace "
                       f"{ns.namespace}.")
    return obj  # type: ignore[no-any-return]


async def update_object(
    session: AsyncSession, ns: MetadefNamespace, name: str, body: ObjectIn
) -> MetadefObject:
    """Replace the object whole (a rename included).

    Raises:
        NotFound.  Conflict: renamed to a taken name.
    """
    obj = await get_object(session, ns, name)
    if body.name != obj.name and await _child(session, MetadefObject, ns, body.name) is not None:
        raise Conflict(f"An object named {body.name} already exists in namespace {ns.namespace}.")
    obj.name = body.name
    obj.description = body.description
    obj.required = body.required
    obj.properties = _properties(body.properties)
    obj.updated_at = utcnow()
    await session.flush()
    return obj


async def delete_object(session: AsyncSession, ns: MetadefNamespace, name: str) -> None:
    """Raises: NotFound.  Forbidden: the namespace is protected."""
    obj = await get_object(session, ns, name)
    _not_protected(ns, f"Object {name}")
    await session.delete(obj)
    await session.flush()


async def delete_all(session: AsyncSession, ns: MetadefNamespace, model: type[Any], what: str) -> None:
    """Delete every object, property or tag of ``ns``.

    Raises:
        Forbidden: the namespace is protected.
    """
    _not_protected(ns, what)
    await session.execute(delete(model).where(model.namespace_id == ns.id))


# -- properties -------------------------------------------------------------------


async def create_property(
    session: AsyncSession, ns: MetadefNamespace, body: PropertyIn, *, name: str | None = None
) -> MetadefProperty:
    """Raises: BadRequest: no name.  Conflict: the name is taken in ``ns``."""
    name = name if name is not None else body.name
    if not name:
        raise BadRequest("'name' is a required property")
    if len(name) > 80:
        raise BadRequest(f"Property name {name!r} is longer than 80 characters")
    if await _child(session, MetadefProperty, ns, name) is not None:
        raise Conflict(f"A property named {name} already exists in namespace {ns.namespace}.")
    now = utcnow()
    prop = MetadefProperty(namespace_id=ns.id, name=name, definition=body.definition(),
                           created_at=now, updated_at=now)
    session.add(prop)
    await session.flush()
    return prop


async def list_properties(session: AsyncSession, ns: MetadefNamespace) -> list[MetadefProperty]:
    stmt = (select(MetadefProperty).where(MetadefProperty.namespace_id == ns.id)
            .order_by(MetadefProperty.created_at, MetadefProperty.id))
    return list((await session.scalars(stmt)).all())


async def get_property(session: AsyncSession, ns: MetadefNamespace, name: str) -> MetadefProperty:
    """Raises: NotFound."""
    prop = await _child(session, MetadefProperty, ns, name)
    if prop is None:
        raise NotFound(f"Metadata definition property {name} was not found in namespace "
                       f"{ns.namespace}.")
    return prop  # type: ignore[no-any-return]


async def update_property(
    session: AsyncSession, ns: MetadefNamespace, name: str, body: PropertyIn
) -> MetadefProperty:
    """Replace the definition (a rename included: ``name`` is required).

    Raises:
        BadRequest: no name.  NotFound.  Conflict: renamed to a taken name.
    """
    if not body.name:
        raise BadRequest("'name' is a required property")
    prop = await get_property(session, ns, name)
    if body.name != prop.name and await _child(session, MetadefProperty, ns, body.name) is not None:
        raise Conflict(f"A property named {body.name} already exists in namespace {ns.namespace}.")
    prop.name = body.name
    prop.definition = body.definition()
    prop.updated_at = utcnow()
    await session.flush()
    return prop


async def delete_property(session: AsyncSession, ns: MetadefNamespace, name: str) -> None:
    """Raises: NotFound.  Forbidden: the namespace is protected."""
    prop = await get_property(session, ns, name)
    _not_protected(ns, f"Property {name}")
    await session.delete(prop)
    await session.flush()


# -- tags -------------------------------------------------------------------------

TAG_SORT_KEYS = ("created_at", "updated_at", "name")


def _check_tag_name(name: str) -> None:
    if not name or len(name) > 80:
        raise BadRequest("A tag name must have 1 to 80 characters.")


async def create_tag(session: AsyncSession, ns: MetadefNamespace, name: str) -> MetadefTag:
    """Raises: BadRequest: a bad name.  Conflict: the tag exists."""
    _check_tag_name(name)
    if await _child(session, MetadefTag, ns, name) is not None:
        raise Conflict(f"A tag named {name} already exists in namespace {ns.namespace}.")
    now = utcnow()
    tag = MetadefTag(namespace_id=ns.id, name=name, created_at=now, updated_at=now)
    session.add(tag)
    await session.flush()
    return tag


async def create_tags(
    session: AsyncSession, ns: MetadefNamespace, tags: Sequence[TagIn], *, append: bool
) -> list[MetadefTag]:
    """Add ``tags``; unless ``append``, they replace the namespace's tags.

    Raises:
        Conflict: a tag repeats or (when appending) already exists.
    """
    if not tags:
        return []
    if not append:
        await session.execute(delete(MetadefTag).where(MetadefTag.namespace_id == ns.id))
    return [await create_tag(session, ns, t.name) for t in tags]


async def list_tags(session: AsyncSession, ns: MetadefNamespace, q: ListQuery | None = None) -> list[MetadefTag]:
    """Raises: NotFound: the marker is unknown."""
    q = q or ListQuery(None, None, "created_at", "asc", {})
    marker = await get_tag(session, ns, q.marker) if q.marker else None
    stmt = select(MetadefTag).where(MetadefTag.namespace_id == ns.id)
    return list((await session.scalars(_paged(stmt, MetadefTag, q, marker))).all())


async def get_tag(session: AsyncSession, ns: MetadefNamespace, name: str) -> MetadefTag:
    """Raises: NotFound."""
    tag = await _child(session, MetadefTag, ns, name)
    if tag is None:
        raise NotFound(f"Metadata definition tag {name} was not found in namespace {ns.namespace}.")
    return tag  # type: ignore[no-any-return]


async def rename_tag(session: AsyncSession, ns: MetadefNamespace, name: str, body: TagIn) -> MetadefTag:
    """Raises: NotFound.  Conflict: the new name is taken."""
    tag = await get_tag(session, ns, name)
    if body.name != tag.name and await _child(session, MetadefTag, ns, body.name) is not None:
        raise Conflict(f"A tag named {body.name} already exists in namespace {ns.namespace}.")
    tag.name = body.name
    tag.updated_at = utcnow()
    await session.flush()
    return tag


async def delete_tag(session: AsyncSession, ns: MetadefNamespace, name: str) -> None:
    """Raises: NotFound.  Forbidden: the namespace is protected."""
    tag = await get_tag(session, ns, name)
    _not_protected(ns, f"Tag {name}")
    await session.delete(tag)
    await session.flush()
