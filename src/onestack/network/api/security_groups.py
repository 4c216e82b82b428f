"""``/v2.0/security-groups`` and ``/v2.0/security-group-rules``.

Listing groups or rules makes the project's ``default`` group first if it has
none, as Neutron does (for the caller's project, or the ``project_id`` filter's
when the caller is an admin). Rules have no update.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest
from onestack.core.http import no_content
from onestack.network.api import common as c
from onestack.network.models import SecurityGroup
from onestack.network.service import security_groups as svc
from onestack.network.state import NetworkState


def _name(value: Any) -> str:
    name = c.string(255)(value)
    if name.lower() == svc.DEFAULT_NAME:
        raise svc.default_exists()
    return name


def _direction(value: Any) -> str:
    if value not in ("ingress", "egress"):
        raise BadRequest(f"Invalid input for direction. Reason: '{value}' is not in "
                         "['ingress', 'egress'].")
    return str(value)


def _remote_group(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise c.invalid(f"'{value}' is not a valid string")
    return value


GROUP = c.Resource(
    member="security_group",
    collection="security_groups",
    attrs=c.attrs(
        name=c.Attr(allow_post=True, allow_put=True, default="", convert=_name),
        stateful=c.Attr(allow_post=True, allow_put=True, default=True, convert=c.to_bool),
        shared=c.Attr(),
        security_group_rules=c.Attr(is_filter=False, sortable=False),
    ),
)

RULE = c.Resource(
    member="security_group_rule",
    collection="security_group_rules",
    attrs={
        **{k: v for k, v in c.STANDARD.items() if k != "tags"},
        "security_group_id": c.Attr(allow_post=True, default=c.MISSING,
                                    convert=c.string(36)),
        "remote_group_id": c.Attr(allow_post=True, default=None, convert=_remote_group),
        "direction": c.Attr(allow_post=True, default=c.MISSING, convert=_direction),
        "protocol": c.Attr(allow_post=True, default=None, convert=svc.convert_protocol),
        "port_range_min": c.Attr(allow_post=True, default=None, convert=svc.convert_port),
        "port_range_max": c.Attr(allow_post=True, default=None, convert=svc.convert_port),
        "ethertype": c.Attr(allow_post=True, default="IPv4", convert=svc.convert_ethertype),
        "remote_ip_prefix": c.Attr(allow_post=True, default=None, convert=svc.convert_prefix),
        "normalized_cidr": c.Attr(),
        "belongs_to_default_sg": c.Attr(),
    },
)


# -- groups ---------------------------------------------------------------------------


def target(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "shared": str(item.get("shared"))}


def hide(request: Request, ctx: RequestContext, item: dict[str, Any]) -> dict[str, Any]:
    return c.hide_attributes(request, ctx, GROUP, item, target(item))


async def ensure_default(st: NetworkState, project_id: str) -> None:
    """Make ``project_id``'s default group if it has none (a write only then)."""
    async with st.db.read() as s:
        if await svc.default_id(s, project_id) is not None:
            return
    async with st.db.write() as s:
        await svc.ensure_default(st, s, project_id)


async def _ensure_for_listing(request: Request, ctx: RequestContext,
                              filters: dict[str, list[str]]) -> None:
    wanted = filters.get("project_id") or filters.get("tenant_id") or [ctx.project_id or ""]
    project = wanted[0]
    if project and (project == ctx.project_id or c.is_admin(request, ctx)):
        await ensure_default(c.state(request), project)


async def list_groups(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    filters = c.filters(request, GROUP)
    await _ensure_for_listing(request, ctx, filters)
    async with st.db.read() as s:
        items = await svc.list_visible(s, ctx, c.is_admin(request, ctx), filters)
    items = [hide(request, ctx, i) for i in items
             if c.visible(request, ctx, GROUP, i, target(i))]
    return c.list_response(request, GROUP, items)


async def create_group(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    members, bulk = await c.parse_create(request, GROUP, ctx)
    for m in members:
        c.enforce(request, ctx, "create_security_group", target(m), m["_set"])
    async with st.db.write() as s:
        ids = [await svc.create(st, s, m) for m in members]
        await s.flush()
        out = [await svc.show(s, i) for i in ids]
    return c.created(GROUP, [hide(request, ctx, i) for i in out], bulk)


async def _visible_group(request: Request, ctx: RequestContext, s: Any, sg_id: str
                         ) -> tuple[SecurityGroup, dict[str, Any]]:
    row = await svc.get_row(s, sg_id)
    item = await svc.show(s, sg_id)
    if not c.visible(request, ctx, GROUP, item, target(item)):
        raise svc.not_found(sg_id)
    return row, item


async def show_group(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    async with st.db.read() as s:
        _, item = await _visible_group(request, ctx, s, request.path_params["sg_id"])
    return c.show_response(request, GROUP, hide(request, ctx, item))


async def update_group(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    values = await c.parse_update(request, GROUP)
    sg_id = request.path_params["sg_id"]
    async with st.db.write() as s:
        row, item = await _visible_group(request, ctx, s, sg_id)
        c.check_if_match(request, row.revision_number)
        c.enforce(request, ctx, "update_security_group", target(item), values)
        await svc.update(st, s, row, values)
        await s.flush()
        out = await svc.show(s, sg_id)
    return c.show_response(request, GROUP, hide(request, ctx, out))


async def delete_group(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    sg_id = request.path_params["sg_id"]
    async with st.db.write() as s:
        row, item = await _visible_group(request, ctx, s, sg_id)
        c.check_if_match(request, row.revision_number)
        c.enforce(request, ctx, "delete_security_group", target(item))
        await svc.delete(st, s, row, c.is_admin(request, ctx))
    return no_content()


# -- rules ----------------------------------------------------------------------------


def rule_target(item: dict[str, Any], sg_project: str | None) -> dict[str, Any]:
    return {**item, "security_group:project_id": sg_project}


async def list_rules(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    filters = c.filters(request, RULE)
    await _ensure_for_listing(request, ctx, filters)
    async with st.db.read() as s:
        items = await svc.list_rules(s, ctx, c.is_admin(request, ctx), filters)
        owners = await svc.group_projects(s, (i["security_group_id"] for i in items))
    out = []
    for i in items:
        t = rule_target(i, owners.get(i["security_group_id"]))
        if c.visible(request, ctx, RULE, i, t):
            out.append(c.hide_attributes(request, ctx, RULE, i, t))
    return c.list_response(request, RULE, out)


async def create_rules(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    members, bulk = await c.parse_create(request, RULE, ctx)
    async with st.db.write() as s:
        owners = await svc.group_projects(s, (m["security_group_id"] for m in members))
        for m in members:
            c.enforce(request, ctx, "create_security_group_rule",
                      rule_target(m, owners.get(m["security_group_id"])), m["_set"])
        ids = await svc.create_rules(st, s, members, c.is_admin(request, ctx))
        await s.flush()
        out = [await svc.show_rule(s, i) for i in ids]
    return c.created(RULE, out, bulk)


async def _visible_rule(request: Request, ctx: RequestContext, s: Any, rule_id: str
                        ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    row = await svc.get_rule(s, rule_id)
    item = (await svc.render_rules(s, [row]))[0]
    owners = await svc.group_projects(s, [row.security_group_id])
    t = rule_target(item, owners.get(row.security_group_id))
    if not c.visible(request, ctx, RULE, item, t):
        raise svc.rule_not_found(rule_id)
    return row, item, t


async def show_rule(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    async with st.db.read() as s:
        _, item, t = await _visible_rule(request, ctx, s, request.path_params["rule_id"])
    return c.show_response(request, RULE, c.hide_attributes(request, ctx, RULE, item, t))


async def delete_rule(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    async with st.db.write() as s:
        row, _, t = await _visible_rule(request, ctx, s, request.path_params["rule_id"])
        c.enforce(request, ctx, "delete_security_group_rule", t)
        await svc.delete_rule(st, s, row)
    return no_content()


routes = [
    Route("/v2.0/security-groups", list_groups, methods=["GET"]),
    Route("/v2.0/security-groups", create_group, methods=["POST"]),
    Route("/v2.0/security-groups/{sg_id}", show_group, methods=["GET"]),
    Route("/v2.0/security-groups/{sg_id}", update_group, methods=["PUT"]),
    Route("/v2.0/security-groups/{sg_id}", delete_group, methods=["DELETE"]),
    Route("/v2.0/security-group-rules", list_rules, methods=["GET"]),
    Route("/v2.0/security-group-rules", create_rules, methods=["POST"]),
    Route("/v2.0/security-group-rules/{rule_id}", show_rule, methods=["GET"]),
    Route("/v2.0/security-group-rules/{rule_id}", delete_rule, methods=["DELETE"]),
]
