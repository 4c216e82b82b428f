"""``/v2.0/routers``: routers (router, extraroute, extraroute-atomic, ext-gw-mode,
router_availability_zone) and their ``add_router_interface``,
``remove_router_interface``, ``add_extraroutes`` and ``remove_extraroutes`` actions."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest, CloudError
from onestack.core.http import JSONResponse, no_content, read_json
from onestack.network.api import common as c
from onestack.network.service import routers as svc

GW_KEYS = ("network_id", "enable_snat", "external_fixed_ips")


def _reason(attr: str, reason: str) -> CloudError:
    """Neutron's message for a value its validator refuses."""
    return BadRequest(f"Invalid input for {attr}. Reason: {reason}.")


def _valid_uuid(value: Any) -> bool:
    try:
        c.uuid_str(value)
    except CloudError:
        return False
    return True


def _ip(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def fixed_ips(attr: str, value: Any) -> list[dict[str, str]]:
    """A ``[{subnet_id, ip_address}]`` list (both optional in each)."""
    if not isinstance(value, list):
        raise _reason(attr, f"Invalid data format for fixed IP: '{value}'")
    out: list[dict[str, str]] = []
    seen: list[str] = []
    for item in value:
        if not isinstance(item, dict):
            raise _reason(attr, f"Invalid data format for fixed IP: '{item}'")
        one: dict[str, str] = {}
        if "ip_address" in item:
            ip = _ip(item["ip_address"])
            if ip is None:
                raise _reason(attr, f"'{item['ip_address']}' is not a valid IP address")
            if ip in seen:
                raise _reason(attr, f"Duplicate IP address '{item['ip_address']}'")
            seen.append(ip)
            one["ip_address"] = ip
        if "subnet_id" in item:
            if not _valid_uuid(item["subnet_id"]):
                raise _reason(attr, f"'{item['subnet_id']}' is not a valid UUID")
            one["subnet_id"] = item["subnet_id"]
        out.append(one)
    return out


def gateway_info(value: Any) -> dict[str, Any] | None:
    """``external_gateway_info``: null or ``{}`` for none, else ``network_id``
    (required), ``enable_snat``, ``external_fixed_ips``."""
    attr = "external_gateway_info"
    if not value:
        return None
    if not isinstance(value, dict):
        raise _reason(attr, f"'{value}' is not a dictionary")
    if "network_id" not in value:
        provided = "{" + ", ".join(repr(k) for k in value) + "}"
        raise _reason(attr, "Validation of dictionary's keys failed. Expected keys: "
                            f"{{'network_id'}} Provided keys: {provided}")
    unexpected = [k for k in value if k not in GW_KEYS]
    if unexpected:
        raise _reason(attr, "Unexpected keys supplied: " + ", ".join(unexpected))
    if not _valid_uuid(value["network_id"]):
        raise _reason(attr, f"'{value['network_id']}' is not a valid UUID")
    out: dict[str, Any] = {"network_id": value["network_id"]}
    if "enable_snat" in value:
        out["enable_snat"] = c.to_bool(value["enable_snat"])
    if "external_fixed_ips" in value:
        out["external_fixed_ips"] = fixed_ips(attr, value["external_fixed_ips"])
    return out


def convert_routes(value: Any) -> list[dict[str, str]]:
    """Extra routes: ``[{destination: CIDR, nexthop: IP}]``, no duplicates; null
    is none."""
    attr = "routes"
    if value is None:
        return []
    if not isinstance(value, list):
        raise _reason(attr, f"Invalid data format for hostroute: '{value}'")
    out: list[dict[str, str]] = []
    for route in value:
        if not isinstance(route, dict):
            raise _reason(attr, f"Invalid input. '{route}' must be a dictionary with keys: "
                                "['destination', 'nexthop']")
        if set(route) != {"destination", "nexthop"}:
            provided = "{" + ", ".join(repr(k) for k in route) + "}"
            raise _reason(attr, "Validation of dictionary's keys failed. Expected keys: "
                                f"{{'destination', 'nexthop'}} Provided keys: {provided}")
        dest = route["destination"]
        try:
            if not isinstance(dest, str) or "/" not in dest or dest != dest.strip():
                raise ValueError(dest)
            net = ipaddress.ip_network(dest, strict=True)
        except ValueError:
            raise _reason(attr, f"'{dest}' is not a valid CIDR") from None
        if net.is_loopback:
            raise _reason(attr, f"'{dest}' is not a routable CIDR")
        hop = _ip(route["nexthop"])
        if hop is None:
            raise _reason(attr, f"'{route['nexthop']}' is not a valid IP address")
        one = {"destination": str(net), "nexthop": hop}
        if one in out:
            raise _reason(attr, f"Duplicate hostroute '{route}'")
        out.append(one)
    return out


def bool_or_none(value: Any) -> bool | None:
    return None if value is None else c.to_bool(value)


RESOURCE = c.Resource(
    member="router",
    collection="routers",
    attrs=c.attrs(
        name=c.Attr(allow_post=True, allow_put=True, default="", convert=c.string(255)),
        admin_state_up=c.Attr(allow_post=True, allow_put=True, default=True, convert=c.to_bool),
        status=c.Attr(),
        external_gateway_info=c.Attr(allow_post=True, allow_put=True, default=None,
                                     convert=gateway_info, is_filter=False, sortable=False),
        routes=c.Attr(allow_put=True, convert=convert_routes, is_filter=False, sortable=False),
        distributed=c.Attr(allow_post=True, allow_put=True, default=None,
                           convert=bool_or_none),
        ha=c.Attr(allow_post=True, allow_put=True, default=None, convert=bool_or_none),
        availability_zone_hints=c.Attr(allow_post=True, default=list,
                                       convert=c.list_of(c.string(255)), is_filter=False,
                                       sortable=False),
        availability_zones=c.Attr(is_filter=False, sortable=False),
        flavor_id=c.Attr(is_filter=False),
    ),
)


def hide(request: Request, ctx: RequestContext, item: dict[str, Any]) -> dict[str, Any]:
    return c.hide_attributes(request, ctx, RESOURCE, item)


def caller(request: Request, ctx: RequestContext) -> svc.Caller:
    return svc.Caller(
        project_id=ctx.project_id or "", admin=c.is_admin(request, ctx),
        sees=lambda action, target: c.allowed(request, ctx, action, target),
    )


def enforce(request: Request, ctx: RequestContext, action: str, target: dict[str, Any],
            attributes: Any, values: dict[str, Any]) -> None:
    """``action`` and its attribute rules, including those of the gateway's keys
    (``<action>:external_gateway_info:enable_snat`` ...)."""
    names = list(attributes)
    gw = values.get("external_gateway_info")
    if gw:
        names.extend(f"external_gateway_info:{k}" for k in gw)
    c.enforce(request, ctx, action, target, names)


async def _visible_row(request: Request, ctx: RequestContext, s: Any, router_id: str,
                       lock: bool = False) -> tuple[Any, dict[str, Any]]:
    row = await svc.get_row(s, router_id, lock)
    item = (await svc.render_many(s, [row]))[0]
    if not c.visible(request, ctx, RESOURCE, item):
        raise svc.router_not_found(router_id)
    return row, item


async def list_routers(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    filters = c.filters(request, RESOURCE)
    async with st.db.read() as s:
        items = await svc.list_visible(s, ctx.project_id or "", c.is_admin(request, ctx),
                                       filters)
    items = [hide(request, ctx, i) for i in items if c.visible(request, ctx, RESOURCE, i)]
    return c.list_response(request, RESOURCE, items)


async def create_router(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    members, bulk = await c.parse_create(request, RESOURCE, ctx)
    for m in members:
        enforce(request, ctx, "create_router", m, m["_set"], m)
    who = caller(request, ctx)
    async with st.db.write() as s:
        ids = [await svc.create(st, s, m, who) for m in members]
        await s.flush()
        out = [await svc.show(s, i) for i in ids]
    return c.created(RESOURCE, [hide(request, ctx, i) for i in out], bulk)


async def show_router(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    async with st.db.read() as s:
        _, item = await _visible_row(request, ctx, s, request.path_params["router_id"])
    return c.show_response(request, RESOURCE, hide(request, ctx, item))


async def _update(request: Request, ctx: RequestContext, router_id: str,
                  values: dict[str, Any],
                  change_routes: Callable[[list[dict[str, str]]], list[dict[str, str]]]
                  | None = None) -> dict[str, Any]:
    """Update a router in one transaction; ``change_routes`` (the extraroute
    actions) computes the new routes from the current ones under the row lock."""
    st = c.state(request)
    async with st.db.write() as s:
        row, item = await _visible_row(request, ctx, s, router_id, lock=True)
        if change_routes is None:
            c.check_if_match(request, row.revision_number)
        else:
            values = {"routes": change_routes(list(row.routes or []))}
        enforce(request, ctx, "update_router", item, values, values)
        await svc.update(st, s, row, values, caller(request, ctx))
        await s.flush()
        return await svc.show(s, router_id)


async def update_router(request: Request) -> Response:
    ctx = await c.context(request)
    values = await c.parse_update(request, RESOURCE)
    out = await _update(request, ctx, request.path_params["router_id"], values)
    return c.show_response(request, RESOURCE, hide(request, ctx, out))


async def _routes_body(request: Request) -> list[dict[str, str]]:
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("router"), dict):
        raise BadRequest("Unable to find 'router' in request body")
    router = body["router"]
    unknown = [k for k in router if k != "routes"]
    if unknown:
        raise BadRequest("Unrecognized attribute(s) " + ", ".join(f"'{k}'" for k in unknown))
    if "routes" not in router:
        raise BadRequest("Failed to parse request. Required attribute 'routes' not specified")
    return convert_routes(router["routes"])


async def add_extraroutes(request: Request) -> Response:
    ctx = await c.context(request)
    add = await _routes_body(request)
    out = await _update(request, ctx, request.path_params["router_id"],
                        {}, lambda old: svc.add_routes(old, add))
    return JSONResponse({"router": hide(request, ctx, out)})


async def remove_extraroutes(request: Request) -> Response:
    ctx = await c.context(request)
    drop = await _routes_body(request)
    out = await _update(request, ctx, request.path_params["router_id"],
                        {}, lambda old: svc.remove_routes(old, drop))
    return JSONResponse({"router": hide(request, ctx, out)})


async def delete_router(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    router_id = request.path_params["router_id"]
    async with st.db.write() as s:
        row, item = await _visible_row(request, ctx, s, router_id, lock=True)
        c.check_if_match(request, row.revision_number)
        c.enforce(request, ctx, "delete_router", item)
        await svc.delete(st, s, row)
    return no_content()


async def _interface_body(request: Request, removal: bool) -> tuple[str | None, str | None]:
    """(port_id, subnet_id) of an interface action, checked as Neutron does."""
    body = await read_json(request)
    info = body if isinstance(body, dict) else {}
    if "port_id" not in info and "subnet_id" not in info:
        raise svc.bad_router("Either subnet_id or port_id must be specified")
    for key in ("port_id", "subnet_id"):
        if key in info and not _valid_uuid(info[key]):
            raise svc.bad_router(f"'{info[key]}' is not a valid UUID")
    if not removal and "port_id" in info and "subnet_id" in info:
        raise svc.bad_router("Cannot specify both subnet-id and port-id")
    return info.get("port_id"), info.get("subnet_id")


async def _interface(request: Request, action: str) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    port_id, subnet_id = await _interface_body(request, action == "remove_router_interface")
    router_id = request.path_params["router_id"]
    who = caller(request, ctx)
    async with st.db.write() as s:
        row, item = await _visible_row(request, ctx, s, router_id, lock=True)
        c.enforce(request, ctx, action, item)
        if action == "add_router_interface":
            info = await svc.add_interface(st, s, row, port_id, subnet_id, who)
        else:
            info = await svc.remove_interface(st, s, row, port_id, subnet_id, who)
    return JSONResponse(info)


async def add_router_interface(request: Request) -> Response:
    return await _interface(request, "add_router_interface")


async def remove_router_interface(request: Request) -> Response:
    return await _interface(request, "remove_router_interface")


routes = [
    Route("/v2.0/routers", list_routers, methods=["GET"]),
    Route("/v2.0/routers", create_router, methods=["POST"]),
    Route("/v2.0/routers/{router_id}", show_router, methods=["GET"]),
    Route("/v2.0/routers/{router_id}", update_router, methods=["PUT"]),
    Route("/v2.0/routers/{router_id}", delete_router, methods=["DELETE"]),
    Route("/v2.0/routers/{router_id}/add_router_interface", add_router_interface,
          methods=["PUT"]),
    Route("/v2.0/routers/{router_id}/remove_router_interface", remove_router_interface,
          methods=["PUT"]),
    Route("/v2.0/routers/{router_id}/add_extraroutes", add_extraroutes, methods=["PUT"]),
    Route("/v2.0/routers/{router_id}/remove_extraroutes", remove_extraroutes,
          methods=["PUT"]),
]
