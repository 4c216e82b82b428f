"""``/v2.0/floatingips``: floating IPs (router extension), with fip-port-details."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.context import RequestContext
from onestack.core.http import no_content
from onestack.network.api import common as c
from onestack.network.api.routers import caller
from onestack.network.service import floatingips as svc

RESOURCE = c.Resource(
    member="floatingip",
    collection="floatingips",
    attrs=c.attrs(
        floating_ip_address=c.Attr(allow_post=True, default=None, convert=c.ip_or_none),
        subnet_id=c.Attr(allow_post=True, default=None, convert=c.uuid_or_none,
                         is_filter=False, sortable=False),
        floating_network_id=c.Attr(allow_post=True, default=c.MISSING, convert=c.uuid_str),
        router_id=c.Attr(),
        port_id=c.Attr(allow_post=True, allow_put=True, default=None, convert=c.uuid_or_none,
                       sortable=False),
        fixed_ip_address=c.Attr(allow_post=True, allow_put=True, default=None,
                                convert=c.ip_or_none),
        status=c.Attr(),
        port_details=c.Attr(is_filter=False, sortable=False),
    ),
)


def hide(request: Request, ctx: RequestContext, item: dict[str, Any]) -> dict[str, Any]:
    return c.hide_attributes(request, ctx, RESOURCE, item)


async def _visible_row(request: Request, ctx: RequestContext, s: Any, fip_id: str,
                       lock: bool = False) -> tuple[Any, dict[str, Any]]:
    row = await svc.get_row(s, fip_id, lock)
    item = (await svc.render_many(s, [row]))[0]
    if not c.visible(request, ctx, RESOURCE, item):
        raise svc.fip_not_found(fip_id)
    return row, item


async def list_floatingips(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    filters = c.filters(request, RESOURCE)
    async with st.db.read() as s:
        items = await svc.list_visible(s, ctx.project_id or "", c.is_admin(request, ctx),
                                       filters)
    items = [hide(request, ctx, i) for i in items if c.visible(request, ctx, RESOURCE, i)]
    return c.list_response(request, RESOURCE, items)


async def create_floatingip(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    members, bulk = await c.parse_create(request, RESOURCE, ctx)
    for m in members:
        c.enforce(request, ctx, "create_floatingip", m, m["_set"])
    who = caller(request, ctx)
    async with st.db.write() as s:
        ids = [await svc.create(st, s, m, who) for m in members]
        await s.flush()
        out = [await svc.show(s, i) for i in ids]
    svc.notify_compute(st, svc.compute_ports(*out))
    return c.created(RESOURCE, [hide(request, ctx, i) for i in out], bulk)


async def show_floatingip(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    async with st.db.read() as s:
        _, item = await _visible_row(request, ctx, s, request.path_params["floatingip_id"])
    return c.show_response(request, RESOURCE, hide(request, ctx, item))


async def update_floatingip(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    values = await c.parse_update(request, RESOURCE)
    fip_id = request.path_params["floatingip_id"]
    async with st.db.write() as s:
        row, item = await _visible_row(request, ctx, s, fip_id, lock=True)
        c.check_if_match(request, row.revision_number)
        c.enforce(request, ctx, "update_floatingip", item, values)
        await svc.update(st, s, row, values, caller(request, ctx))
        await s.flush()
        out = await svc.show(s, fip_id)
    if svc.moved(item, out):
        svc.notify_compute(st, svc.compute_ports(item, out))
    return c.show_response(request, RESOURCE, hide(request, ctx, out))


async def delete_floatingip(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    fip_id = request.path_params["floatingip_id"]
    async with st.db.write() as s:
        row, item = await _visible_row(request, ctx, s, fip_id, lock=True)
        c.check_if_match(request, row.revision_number)
        c.enforce(request, ctx, "delete_floatingip", item)
        await svc.delete(st, s, row)
    svc.notify_compute(st, svc.compute_ports(item))
    return no_content()


routes = [
    Route("/v2.0/floatingips", list_floatingips, methods=["GET"]),
    Route("/v2.0/floatingips", create_floatingip, methods=["POST"]),
    Route("/v2.0/floatingips/{floatingip_id}", show_floatingip, methods=["GET"]),
    Route("/v2.0/floatingips/{floatingip_id}", update_floatingip, methods=["PUT"]),
    Route("/v2.0/floatingips/{floatingip_id}", delete_floatingip, methods=["DELETE"]),
]
