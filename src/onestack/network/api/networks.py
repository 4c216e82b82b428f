"""``/v2.0/networks``: the pattern every resource handler follows."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.context import RequestContext
from onestack.core.http import no_content
from onestack.network import errors
from onestack.network.api import common as c
from onestack.network.service import networks as svc

RESOURCE = c.Resource(
    member="network",
    collection="networks",
    attrs=c.attrs(
        name=c.Attr(allow_post=True, allow_put=True, default="", convert=c.string(255)),
        admin_state_up=c.Attr(allow_post=True, allow_put=True, default=True, convert=c.to_bool),
        status=c.Attr(),
        subnets=c.Attr(sortable=False),
        shared=c.Attr(allow_post=True, allow_put=True, default=False, convert=c.to_bool),
        **{
            "router:external": c.Attr(allow_post=True, allow_put=True, default=False,
                                      convert=c.to_bool),
            "provider:network_type": c.Attr(allow_post=True, allow_put=True,
                                            convert=c.string(32)),
            "provider:physical_network": c.Attr(allow_post=True, allow_put=True,
                                                convert=c.string(64)),
            "provider:segmentation_id": c.Attr(
                allow_post=True, allow_put=True,
                convert=lambda v: None if v is None else c.to_int(v)),
        },
        is_default=c.Attr(allow_post=True, allow_put=True, default=False, convert=c.to_bool),
        mtu=c.Attr(allow_post=True, allow_put=True,
                   convert=lambda v: None if v is None else c.to_int(v)),
        port_security_enabled=c.Attr(allow_post=True, allow_put=True, default=True,
                                     convert=c.to_bool),
        availability_zone_hints=c.Attr(allow_post=True, default=list,
                                       convert=c.list_of(c.string(255)), sortable=False),
        availability_zones=c.Attr(sortable=False),
        ipv4_address_scope=c.Attr(),
        ipv6_address_scope=c.Attr(),
        l2_adjacency=c.Attr(),
        dns_domain=c.Attr(allow_post=True, allow_put=True, default="", convert=c.string(255)),
    ),
)


def target(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "shared": str(item.get("shared")),
            "router:external": str(item.get("router:external"))}


def hide(request: Request, ctx: RequestContext, item: dict[str, Any]) -> dict[str, Any]:
    return c.hide_attributes(request, ctx, RESOURCE, item, target(item))


async def list_networks(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    filters = c.filters(request, RESOURCE)
    async with st.db.read() as s:
        items = await svc.list_visible(s, ctx, c.is_admin(request, ctx), filters)
    items = [hide(request, ctx, i) for i in items
             if c.visible(request, ctx, RESOURCE, i, target(i))]
    return c.list_response(request, RESOURCE, items)


async def create_network(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    members, bulk = await c.parse_create(request, RESOURCE, ctx)
    for m in members:
        c.enforce(request, ctx, "create_network", target(m), m["_set"])
    async with st.db.write() as s:
        ids = [await svc.create(st, s, m) for m in members]
        await s.flush()
        out = [await svc.show(s, i) for i in ids]
    return c.created(RESOURCE, [hide(request, ctx, i) for i in out], bulk)


async def _visible_row(request: Request, ctx: RequestContext, s: Any, net_id: str) -> Any:
    row = await svc.get_row(s, net_id)
    item = await svc.show(s, net_id)
    if not c.visible(request, ctx, RESOURCE, item, target(item)):
        raise errors.network_not_found(net_id)
    return row, item


async def show_network(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    async with st.db.read() as s:
        _, item = await _visible_row(request, ctx, s, request.path_params["network_id"])
    return c.show_response(request, RESOURCE, hide(request, ctx, item))


async def update_network(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    values = await c.parse_update(request, RESOURCE)
    net_id = request.path_params["network_id"]
    async with st.db.write() as s:
        row, item = await _visible_row(request, ctx, s, net_id)
        c.check_if_match(request, row.revision_number)
        c.enforce(request, ctx, "update_network", target(item), values)
        await svc.update(st, s, row, values)
        await s.flush()
        out = await svc.show(s, net_id)
    return c.show_response(request, RESOURCE, hide(request, ctx, out))


async def delete_network(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    net_id = request.path_params["network_id"]
    async with st.db.write() as s:
        row, item = await _visible_row(request, ctx, s, net_id)
        c.check_if_match(request, row.revision_number)
        c.enforce(request, ctx, "delete_network", target(item))
        await svc.delete(st, s, row)
    return no_content()


routes = [
    Route("/v2.0/networks", list_networks, methods=["GET"]),
    Route("/v2.0/networks", create_network, methods=["POST"]),
    Route("/v2.0/networks/{network_id}", show_network, methods=["GET"]),
    Route("/v2.0/networks/{network_id}", update_network, methods=["PUT"]),
    Route("/v2.0/networks/{network_id}", delete_network, methods=["DELETE"]),
]
