"""``/v2.0/agents``, ``/v2.0/availability_zones`` and
``/v2.0/network-ip-availabilities``.

Agents and IP availability are admin-only: others list nothing and find
nothing, as in Neutron (which hides what a policy does not let one see).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.context import RequestContext
from onestack.core.http import JSONResponse, no_content
from onestack.network import errors
from onestack.network.api import common as c
from onestack.network.service import misc as svc


def _description(value: Any) -> str | None:
    return None if value is None else c.string(255)(value)


AGENT = c.Resource(
    member="agent",
    collection="agents",
    attrs={
        "id": c.Attr(),
        "agent_type": c.Attr(),
        "binary": c.Attr(),
        "topic": c.Attr(),
        "host": c.Attr(),
        "admin_state_up": c.Attr(allow_put=True, convert=c.to_bool),
        "created_at": c.Attr(),
        "started_at": c.Attr(),
        "heartbeat_timestamp": c.Attr(),
        "alive": c.Attr(),
        "configurations": c.Attr(is_filter=False, sortable=False),
        "description": c.Attr(allow_put=True, convert=_description),
        "availability_zone": c.Attr(),
        "resources_synced": c.Attr(),
    },
)

ZONE = c.Resource(
    member="availability_zone",
    collection="availability_zones",
    attrs={"name": c.Attr(), "resource": c.Attr(), "state": c.Attr()},
)

IP_AVAILABILITY = c.Resource(
    member="network_ip_availability",
    collection="network_ip_availabilities",
    attrs={
        "network_id": c.Attr(),
        "network_name": c.Attr(),
        "project_id": c.Attr(),
        "tenant_id": c.Attr(),
        "total_ips": c.Attr(is_filter=False),
        "used_ips": c.Attr(is_filter=False),
        "subnet_ip_availability": c.Attr(is_filter=False, sortable=False),
    },
    extra_filters=frozenset({"ip_version"}),
)


def _fields(request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    fields = [f for f in request.query_params.getlist("fields") if f]
    return [c.select_fields(i, fields) for i in items]


# -- agents -----------------------------------------------------------------------------


async def list_agents(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    filters = c.filters(request, AGENT)
    async with st.db.read() as s:
        items = await svc.list_agents(s, filters)
    items = [i for i in items if c.visible(request, ctx, AGENT, i)]
    return c.list_response(request, AGENT, items)


async def _visible_agent(request: Request, ctx: RequestContext, s: Any, agent_id: str
                         ) -> tuple[Any, dict[str, Any]]:
    row = await svc.get_agent(s, agent_id)
    item = svc.render_agent(row)
    if not c.visible(request, ctx, AGENT, item):
        raise svc.agent_not_found(agent_id)
    return row, item


async def show_agent(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    async with st.db.read() as s:
        _, item = await _visible_agent(request, ctx, s, request.path_params["agent_id"])
    return c.show_response(request, AGENT, item)


async def update_agent(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    values = await c.parse_update(request, AGENT)
    async with st.db.write() as s:
        row, item = await _visible_agent(request, ctx, s, request.path_params["agent_id"])
        c.enforce(request, ctx, "update_agent", item, values)
        svc.update_agent(row, values)
        await s.flush()
        out = svc.render_agent(row)
    return c.show_response(request, AGENT, out)


async def delete_agent(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    async with st.db.write() as s:
        row, item = await _visible_agent(request, ctx, s, request.path_params["agent_id"])
        c.enforce(request, ctx, "delete_agent", item)
        await s.delete(row)
    return no_content()


# -- availability zones -----------------------------------------------------------------


async def list_zones(request: Request) -> Response:
    ctx = await c.context(request)
    items = [dict(z) for z in svc.AVAILABILITY_ZONES
             if c.allowed(request, ctx, "get_availability_zone", z)]
    items = c.apply_filters(request, ZONE, items)
    items = c.sort_items(request, ZONE, items)
    return JSONResponse({"availability_zones": _fields(request, items)})


# -- network IP availability ------------------------------------------------------------


async def list_ip_availabilities(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    filters = c.filters(request, IP_AVAILABILITY)
    async with st.db.read() as s:
        items = await svc.ip_availabilities(s, filters)
    items = [i for i in items if c.allowed(request, ctx, "get_network_ip_availability", i)]
    items = c.apply_filters(request, IP_AVAILABILITY, items)
    return JSONResponse({"network_ip_availabilities": _fields(request, items)})


async def show_ip_availability(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    net_id = request.path_params["network_id"]
    async with st.db.read() as s:
        items = await svc.ip_availabilities(s, {"network_id": [net_id]})
    if not items or not c.allowed(request, ctx, "get_network_ip_availability", items[0]):
        raise errors.network_not_found(net_id)
    return c.show_response(request, IP_AVAILABILITY, items[0])


routes = [
    Route("/v2.0/agents", list_agents, methods=["GET"]),
    Route("/v2.0/agents/{agent_id}", show_agent, methods=["GET"]),
    Route("/v2.0/agents/{agent_id}", update_agent, methods=["PUT"]),
    Route("/v2.0/agents/{agent_id}", delete_agent, methods=["DELETE"]),
    Route("/v2.0/availability_zones", list_zones, methods=["GET"]),
    Route("/v2.0/network-ip-availabilities", list_ip_availabilities, methods=["GET"]),
    Route("/v2.0/network-ip-availabilities/{network_id}", show_ip_availability,
          methods=["GET"]),
]
