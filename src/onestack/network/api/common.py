"""The machinery every networking resource shares, as Neutron's API layer has it.

A resource is described by its attribute map (``Resource``/``Attr``): which
attributes a POST or PUT may set, their defaults and converters, which are
filters, and which are guarded by ``<action>:<attribute>`` policies. From it:

- ``parse_create``/``parse_update`` turn a request body (single or bulk) into
  clean dicts, with Neutron's 400s for unknown, read-only or malformed attributes;
- ``enforce`` checks the action's policy and the policies of the attributes set;
- ``list_response``/``show_response`` apply what Neutron's list API does to
  rendered dicts: filters (several values of one key match any), ``tags``,
  ``tags-any``, ``not-tags``, ``not-tags-any``, ``fields``, ``sort_key``/``sort_dir``,
  ``limit``/``marker``/``page_reverse`` with ``<collection>_links``, and drops
  attributes the caller's ``get_<member>:<attribute>`` policy hides;
- ``check_if_match`` implements ``If-Match: revision_number=N``.

Services return rendered dicts (``project_id`` and ``tenant_id`` both, ``tags``,
standard attributes); handlers stay a few lines each.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from onestack.core.auth import authenticate
from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest, CloudError
from onestack.core.http import JSONResponse, read_json, service_url
from onestack.network import errors
from onestack.network.state import NetworkState, get_state

MISSING: Any = object()

# query parameters that are never filters
PAGING = frozenset({"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse"})
TAG_FILTERS = frozenset({"tags", "tags-any", "not-tags", "not-tags-any"})


# -- converters (raise BadRequest with Neutron's message) ----------------------------


def invalid(message: str) -> CloudError:
    return errors.invalid_input(message)


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "t", "yes", "y", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "f", "no", "n", "off"):
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise invalid(f"'{value}' cannot be converted to boolean")


def to_int(value: Any, name: str = "value") -> int:
    if isinstance(value, bool):
        raise invalid(f"'{value}' is not an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"'{value}' is not an integer") from None


def string(max_len: int = 255) -> Callable[[Any], str]:
    def conv(value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise invalid(f"'{value}' is not a valid string")
        if len(value) > max_len:
            raise invalid(f"'{value}' exceeds maximum length of {max_len}")
        return value

    return conv


def uuid_str(value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(f"'{value}' is not a valid UUID")
    try:
        uuid.UUID(value)
    except ValueError:
        raise invalid(f"'{value}' is not a valid UUID") from None
    return value


def uuid_or_none(value: Any) -> str | None:
    return None if value is None else uuid_str(value)


def ip_address(value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(f"'{value}' is not a valid IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise invalid(f"'{value}' is not a valid IP address") from None


def ip_or_none(value: Any) -> str | None:
    return None if value is None else ip_address(value)


def list_of(conv: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    def c(value: Any) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid(f"'{value}' is not a list")
        return [conv(v) for v in value]

    return c


def any_value(value: Any) -> Any:
    return value


# -- attribute maps -------------------------------------------------------------------


@dataclass(frozen=True)
class Attr:
    """One attribute of a resource, as in Neutron's attribute maps.

    ``default`` MISSING with ``allow_post`` means required on POST. Setting an
    attribute is guarded by a ``<action>:<name>`` rule and reading it by a
    ``get_<member>:<name>`` rule, where the policy has one (``enforce``,
    ``hide_attributes``).
    """

    allow_post: bool = False
    allow_put: bool = False
    default: Any = None
    convert: Callable[[Any], Any] = any_value
    is_filter: bool = True
    sortable: bool = True


@dataclass(frozen=True)
class Resource:
    member: str
    collection: str
    attrs: Mapping[str, Attr]
    # filters beyond the attributes, handled by the service (e.g. ports' fixed_ips)
    extra_filters: frozenset[str] = frozenset()


STANDARD: dict[str, Attr] = {
    "id": Attr(),
    "project_id": Attr(allow_post=True, convert=string(255)),
    "tenant_id": Attr(allow_post=True, convert=string(255)),
    "description": Attr(allow_post=True, allow_put=True, default="", convert=string(255)),
    "revision_number": Attr(),
    "created_at": Attr(),
    "updated_at": Attr(),
    "tags": Attr(is_filter=False, sortable=False),
}


def attrs(**specific: Attr) -> dict[str, Attr]:
    """``STANDARD`` attributes with a resource's own."""
    return {**STANDARD, **specific}


# -- request context and policy -------------------------------------------------------


def state(request: Request) -> NetworkState:
    return get_state(request)


async def context(request: Request) -> RequestContext:
    return await authenticate(request, get_state(request).validator)


def is_admin(request: Request, ctx: RequestContext) -> bool:
    return get_state(request).enforcer.check("context_is_admin", {}, ctx.policy_creds())


def allowed(request: Request, ctx: RequestContext, action: str, target: Mapping[str, Any]) -> bool:
    enforcer = get_state(request).enforcer
    return enforcer.check(action, target, ctx.policy_creds())


def enforce(
    request: Request,
    ctx: RequestContext,
    action: str,
    target: Mapping[str, Any],
    attributes: Iterable[str] = (),
) -> None:
    """Check ``action``, then ``action:attr`` for each attribute set that has a rule.

    Raises:
        Forbidden (PolicyNotAuthorized).
    """
    enforcer = get_state(request).enforcer
    creds = ctx.policy_creds()
    if not enforcer.check(action, target, creds):
        raise errors.policy_not_authorized(action)
    rules = enforcer.rules()
    for name in attributes:
        rule = f"{action}:{name}"
        if rule in rules and not enforcer.check(rule, target, creds):
            raise errors.policy_not_authorized(rule)


def visible(request: Request, ctx: RequestContext, res: Resource, item: Mapping[str, Any],
            target: Mapping[str, Any] | None = None) -> bool:
    return allowed(request, ctx, f"get_{res.member}", target if target is not None else item)


def hide_attributes(request: Request, ctx: RequestContext, res: Resource,
                    item: dict[str, Any], target: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``item`` without the attributes a ``get_<member>:<attr>`` rule hides."""
    enforcer = get_state(request).enforcer
    rules = enforcer.rules()
    creds = ctx.policy_creds()
    for name in list(item):
        rule = f"get_{res.member}:{name}"
        if rule in rules and not enforcer.check(rule, target or item, creds):
            del item[name]
    return item


# -- bodies ---------------------------------------------------------------------------


def _unrecognized(names: Iterable[str]) -> CloudError:
    listed = ", ".join(f"'{n}'" for n in sorted(names))
    return BadRequest(f"Unrecognized attribute(s) {listed}")


def _check_project(item: dict[str, Any], ctx: RequestContext) -> None:
    tenant = item.pop("tenant_id", None)
    project = item.get("project_id")
    if tenant is not None and project is not None and tenant != project:
        raise invalid("'project_id' and 'tenant_id' do not match")
    project = project if project is not None else tenant
    item["project_id"] = project if project is not None else (ctx.project_id or "")


def convert_create(res: Resource, body: Any, ctx: RequestContext) -> dict[str, Any]:
    """One POSTed member: every attribute checked and converted, defaults filled in.

    Raises:
        BadRequest: not an object; an unknown attribute; one not allowed in POST;
        a required one missing; a malformed value.
    """
    if not isinstance(body, dict):
        raise BadRequest(f"Body contains invalid data: {res.member} must be an object")
    unknown = [k for k in body if k not in res.attrs]
    if unknown:
        raise _unrecognized(unknown)
    out: dict[str, Any] = {}
    for name, spec in res.attrs.items():
        if name in body:
            if not spec.allow_post:
                raise BadRequest(f"Attribute '{name}' not allowed in POST")
            out[name] = spec.convert(body[name])
        elif spec.allow_post:
            if spec.default is MISSING:
                raise BadRequest(
                    f"Failed to parse request. Required attribute '{name}' not specified"
                )
            default = spec.default() if callable(spec.default) else spec.default
            if name not in ("project_id", "tenant_id"):
                out[name] = default
    out["_set"] = frozenset(body)  # what the client actually sent
    _check_project(out, ctx)
    return out


def explicit(res: Resource, item: dict[str, Any]) -> list[str]:
    """The attributes a POST set to something else than their default (the ones
    Neutron checks ``<action>:<attribute>`` rules for)."""
    out = []
    for name in item.get("_set", ()):
        spec = res.attrs.get(name)
        if spec is None:
            continue
        default = spec.default() if callable(spec.default) else spec.default
        if default in (None, MISSING) or item.get(name) != default:
            out.append(name)
    return out


def convert_update(res: Resource, body: Any) -> dict[str, Any]:
    """A PUT's member: only attributes that may change, converted.

    Raises:
        BadRequest.
    """
    if not isinstance(body, dict):
        raise BadRequest(f"Body contains invalid data: {res.member} must be an object")
    unknown = [k for k in body if k not in res.attrs]
    if unknown:
        raise _unrecognized(unknown)
    out: dict[str, Any] = {}
    for name, value in body.items():
        if not res.attrs[name].allow_put:
            raise BadRequest(f"Cannot update read-only attribute {name}")
        out[name] = res.attrs[name].convert(value)
    return out


async def parse_create(request: Request, res: Resource, ctx: RequestContext
                       ) -> tuple[list[dict[str, Any]], bool]:
    """The members of a POST (``{member: {...}}`` or bulk ``{collection: [...]}``)
    and whether it was a bulk request.

    Raises:
        BadRequest.
    """
    body = await read_json(request)
    if isinstance(body, dict) and len(body) == 1 and res.collection in body:
        items = body[res.collection]
        if not isinstance(items, list) or not items:
            raise BadRequest("Resources required")
        return [convert_create(res, i, ctx) for i in items], True
    if not isinstance(body, dict) or res.member not in body:
        raise BadRequest(f"Unable to find '{res.member}' in request body")
    if len(body) > 1:
        raise _unrecognized(k for k in body if k != res.member)
    return [convert_create(res, body[res.member], ctx)], False


async def parse_update(request: Request, res: Resource) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict) or res.member not in body:
        raise BadRequest(f"Unable to find '{res.member}' in request body")
    return convert_update(res, body[res.member])


def check_if_match(request: Request, revision: int) -> None:
    """``If-Match: revision_number=N[, ...]``: the resource must be at one of them.

    Raises:
        PreconditionFailed (412).
    """
    header = request.headers.get("if-match")
    if not header:
        return
    wanted = []
    for part in header.split(","):
        part = part.strip()
        if part.startswith("revision_number="):
            try:
                wanted.append(int(part.split("=", 1)[1]))
            except ValueError:
                raise invalid(f"{part} is not a valid revision constraint") from None
    if wanted and revision not in wanted:
        raise errors.revision_mismatch(revision, header)


# -- rendering ------------------------------------------------------------------------


def timestamp(t: datetime | None) -> str | None:
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def standard(row: Any, tags: Iterable[str] = ()) -> dict[str, Any]:
    """The standard attributes of a row."""
    return {
        "project_id": row.project_id,
        "tenant_id": row.project_id,
        "description": row.description,
        "revision_number": row.revision_number,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        "tags": sorted(tags),
    }


def _fields(request: Request) -> list[str]:
    return [f for f in request.query_params.getlist("fields") if f]


def select_fields(item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    if not fields:
        return item
    return {k: v for k, v in item.items() if k in fields}


def show_response(request: Request, res: Resource, item: dict[str, Any],
                  status_code: int = 200) -> Response:
    return JSONResponse({res.member: select_fields(item, _fields(request))},
                        status_code=status_code)


def _matches(value: Any, wanted: list[str]) -> bool:
    for w in wanted:
        if isinstance(value, bool):
            try:
                if to_bool(w) == value:
                    return True
            except CloudError:
                continue
        elif isinstance(value, int):
            try:
                if int(w) == value:
                    return True
            except ValueError:
                continue
        elif isinstance(value, list):
            if w in value:
                return True
        elif value is None:
            if w in ("", "None", "null"):
                return True
        elif str(value) == w:
            return True
    return False


def _tag_list(request: Request, key: str) -> list[str]:
    out: list[str] = []
    for v in request.query_params.getlist(key):
        out.extend(t for t in v.split(",") if t)
    return out


def filters(request: Request, res: Resource) -> dict[str, list[str]]:
    """The query's attribute filters (several values of one key: any matches).

    Raises:
        BadRequest: a key that is not a filter of this resource.
    """
    out: dict[str, list[str]] = {}
    bad = []
    for key in request.query_params.keys():
        if key in PAGING or key in TAG_FILTERS:
            continue
        spec = res.attrs.get(key)
        if (spec is None or not spec.is_filter) and key not in res.extra_filters:
            bad.append(key)
            continue
        out[key] = request.query_params.getlist(key)
    if bad:
        raise BadRequest(f"{bad} is invalid attribute for filtering")
    return out


def apply_filters(request: Request, res: Resource, items: list[dict[str, Any]],
                  skip: Iterable[str] = ()) -> list[dict[str, Any]]:
    """``items`` that pass the query's attribute and tag filters (``skip``: filter
    names the service has applied already)."""
    wanted = {k: v for k, v in filters(request, res).items()
              if k not in skip and k not in res.extra_filters}
    tags_all = set(_tag_list(request, "tags"))
    tags_any = set(_tag_list(request, "tags-any"))
    not_all = set(_tag_list(request, "not-tags"))
    not_any = set(_tag_list(request, "not-tags-any"))
    out = []
    for item in items:
        if any(k not in item or not _matches(item[k], v) for k, v in wanted.items()):
            continue
        tags = set(item.get("tags") or ())
        if tags_all and not tags_all <= tags:
            continue
        if tags_any and not tags_any & tags:
            continue
        if not_all and not_all <= tags:
            continue
        if not_any and not_any & tags:
            continue
        out.append(item)
    return out


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int):
        return (1, value)
    return (2, str(value))


def sort_items(request: Request, res: Resource, items: list[dict[str, Any]]
               ) -> list[dict[str, Any]]:
    keys = request.query_params.getlist("sort_key")
    dirs = request.query_params.getlist("sort_dir")
    if dirs and len(dirs) != len(keys):
        raise BadRequest("The number of sort_keys and sort_dirs must be same")
    for k in keys:
        spec = res.attrs.get(k)
        if spec is None or not spec.sortable:
            raise BadRequest(f"{k} is an invalid attribute for sort_keys")
    for d in dirs:
        if d not in ("asc", "desc"):
            raise BadRequest(f"{d} is an invalid value for sort_dirs, valid values are "
                             "'asc' and 'desc'")
    order = list(zip(keys, dirs or ["asc"] * len(keys)))
    if "id" not in keys:
        order.append(("id", order[-1][1] if order else "asc"))
    out = list(items)
    for key, direction in reversed(order):
        out.sort(key=lambda i: _sort_key(i.get(key)), reverse=direction == "desc")
    return out


def _link(request: Request, rel: str, marker: str, reverse: bool) -> dict[str, str]:
    params = [(k, v) for k, v in request.query_params.multi_items()
              if k not in ("marker", "page_reverse")]
    params.append(("marker", marker))
    if reverse:
        params.append(("page_reverse", "True"))
    base = service_url(request) + request.url.path[len(request.scope.get("root_path", "")):]
    return {"rel": rel, "href": f"{base}?{urlencode(params)}"}


def list_response(request: Request, res: Resource, items: list[dict[str, Any]],
                  *, filtered: Iterable[str] = ()) -> Response:
    """The list body: filters, sorting, pagination and fields applied to ``items``
    (rendered, visible to the caller, attributes hidden already)."""
    st = get_state(request)
    items = apply_filters(request, res, items, filtered)
    items = sort_items(request, res, items)
    q = request.query_params
    limit_s = q.get("limit")
    marker = q.get("marker")
    reverse = to_bool(q.get("page_reverse")) if q.get("page_reverse") else False
    links: list[dict[str, str]] = []
    if marker:
        ids = [i["id"] for i in items]
        if marker not in ids:
            raise errors.not_found(
                f"{res.member.title().replace('_', '')}NotFound",
                f"{res.member.replace('_', ' ').capitalize()} {marker} could not be found.",
            )
    if limit_s is not None or marker:
        try:
            limit = int(limit_s) if limit_s is not None else 0
        except ValueError:
            raise BadRequest(f"Invalid value for limit: '{limit_s}'") from None
        if limit < 0:
            raise BadRequest(f"Limit must be an integer 0 or greater and not '{limit}'")
        if st.conf.pagination_max_limit > 0 and (limit == 0 or limit > st.conf.pagination_max_limit):
            limit = st.conf.pagination_max_limit
        seq = list(reversed(items)) if reverse else items
        start = 0
        if marker:
            start = [i["id"] for i in seq].index(marker) + 1
        page = seq[start:start + limit] if limit else seq[start:]
        more = bool(limit) and start + limit < len(seq)
        if reverse:
            page = list(reversed(page))
            if more and page:
                links.append(_link(request, "previous", page[0]["id"], True))
            if marker and page:
                links.append(_link(request, "next", page[-1]["id"], False))
        else:
            if more and page:
                links.append(_link(request, "next", page[-1]["id"], False))
            if marker and page:
                links.append(_link(request, "previous", page[0]["id"], True))
        items = page
    fields = _fields(request)
    body: dict[str, Any] = {res.collection: [select_fields(i, fields) for i in items]}
    if links:
        body[f"{res.collection}_links"] = links
    return JSONResponse(body)


def created(res: Resource, items: list[dict[str, Any]], bulk: bool) -> Response:
    if bulk:
        return JSONResponse({res.collection: items}, status_code=201)
    return JSONResponse({res.member: items[0]}, status_code=201)
