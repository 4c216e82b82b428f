"""Nova's deprecated network proxy APIs, answered from the networking API:
``os-security-groups``, ``os-security-group-rules``, ``os-floating-ips``,
``os-floating-ip-pools``, ``os-networks`` and ``os-tenant-networks`` (all only up to
2.35, as Nova: a 404 from 2.36), ``/servers/{id}/os-security-groups``, and the
server actions ``addSecurityGroup``/``removeSecurityGroup`` (every microversion)
and ``addFloatingIp``/``removeFloatingIp`` (up to 2.43). The logic and Neutron's
error translation are in ``service/net_proxies.py``."""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute import errors
from onestack.compute.api import common as c
from onestack.compute.models import Instance
from onestack.compute.service import net_proxies as svc
from onestack.compute.service import servers as servers_svc
from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest, Gone, NotFound
from onestack.core.http import JSONResponse, read_json

SG = "os_compute_api:os-security-groups:"
FIP = "os_compute_api:os-floating-ips:"
POOLS = "os_compute_api:os-floating-ip-pools"
NETS = "os_compute_api:os-networks:"
TNETS = "os_compute_api:os-tenant-networks:"
PROXY_MAX = "2.35"  # Nova's MAX_PROXY_API_SUPPORT_VERSION
FIP_ACTIONS_MAX = "2.43"


def _proxy_only(request: Request, maximum: str = PROXY_MAX) -> None:
    """Raises: NotFound (Nova's answer to a method removed in the microversion)."""
    if c.supports(request, _next(maximum)):
        raise NotFound(f"API version {c.version(request)} is not supported on this method.")


def _next(version: str) -> str:
    major, minor = version.split(".")
    return f"{major}.{int(minor) + 1}"


async def _ctx(request: Request, rule: str) -> RequestContext:
    _proxy_only(request)
    return await c.authorize(request, rule)


def _token(request: Request) -> str:
    return request.headers.get("x-auth-token", "")


def _limited(request: Request, items: list[Any]) -> list[Any]:
    """Nova's ``common.limited``: ``offset`` and ``limit`` (at most max_limit)."""
    bounds: dict[str, int] = {}
    for name in ("offset", "limit"):
        raw = c.query_one(request, name)
        if raw is None:
            continue
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(f"{name} param must be an integer") from None
        if value < 0:
            raise BadRequest(f"{name} param must be positive")
        bounds[name] = value
    max_limit = c.state(request).conf.max_limit
    limit = min(max_limit, bounds.get("limit") or max_limit)
    offset = bounds.get("offset", 0)
    return items[offset:offset + limit]


async def _body(request: Request, key: str) -> Any:
    """Nova's ``_from_body`` for the legacy (schema-less) security group APIs."""
    body = await read_json(request) if await request.body() else None
    if not body:
        raise BadRequest("The request body can't be empty")
    value = body.get(key) if isinstance(body, dict) else None
    if value is None:
        raise BadRequest(f"Missing parameter {key}")
    if not isinstance(value, dict):
        raise BadRequest(f"Missing parameter {key}")
    return value


# -- os-security-groups -----------------------------------------------------------------


async def sg_index(request: Request) -> Response:
    ctx = await _ctx(request, SG + "get")
    st = c.state(request)
    all_tenants = "all_tenants" in request.query_params and c.is_admin(request, ctx)
    groups = await svc.list_groups(st, _token(request),
                                   None if all_tenants else ctx.project_id or "")
    views = await svc.views(st, _token(request), _limited(request, groups))
    views.sort(key=lambda g: (g["tenant_id"], g["name"]))
    return JSONResponse({"security_groups": views})


async def _group(request: Request) -> dict[str, Any]:
    group_id = svc.validate_id(request.path_params["group_id"])
    return await svc.get_group(c.state(request), _token(request), group_id)


async def sg_show(request: Request) -> Response:
    await _ctx(request, SG + "show")
    group = await _group(request)
    view = (await svc.views(c.state(request), _token(request), [group]))[0]
    return JSONResponse({"security_group": view})


def _name_description(sg: dict[str, Any]) -> tuple[str, str]:
    return (svc.validate_property(sg.get("name"), "name"),
            svc.validate_property(sg.get("description"), "description"))


async def sg_create(request: Request) -> Response:
    await _ctx(request, SG + "create")
    name, description = _name_description(await _body(request, "security_group"))
    st = c.state(request)
    group = await svc.create_group(st, _token(request), name, description)
    view = (await svc.views(st, _token(request), [group]))[0]
    return JSONResponse({"security_group": view})


async def sg_update(request: Request) -> Response:
    await _ctx(request, SG + "update")
    group = await _group(request)
    name, description = _name_description(await _body(request, "security_group"))
    st = c.state(request)
    group = await svc.update_group(st, _token(request), group["id"], name, description)
    view = (await svc.views(st, _token(request), [group]))[0]
    return JSONResponse({"security_group": view})


async def sg_delete(request: Request) -> Response:
    await _ctx(request, SG + "delete")
    group = await _group(request)
    await svc.delete_group(c.state(request), _token(request), group["id"])
    return Response(status_code=202)


async def rule_create(request: Request) -> Response:
    await _ctx(request, SG + "rule:create")
    st, token = c.state(request), _token(request)
    body = await _body(request, "security_group_rule")
    parent = await svc.get_group(st, token, svc.validate_id(body.get("parent_group_id")))
    group_id = body.get("group_id")
    source = None
    if group_id is not None:
        source = await svc.get_group(st, token, svc.validate_id(group_id))
    rule = svc.new_rule(body.get("ip_protocol"), body.get("from_port"), body.get("to_port"),
                        body.get("cidr"), source["id"] if source else None)
    view = await svc.create_rule(st, token, parent, rule, source)
    return JSONResponse({"security_group_rule": view})


async def rule_delete(request: Request) -> Response:
    await _ctx(request, SG + "rule:delete")
    rule_id = svc.validate_id(request.path_params["rule_id"])
    await svc.delete_rule(c.state(request), _token(request), rule_id)
    return Response(status_code=202)


# -- a server's security groups, and the actions ------------------------------------------


async def _server(request: Request, rule: str) -> tuple[RequestContext, Instance]:
    """The path's server, if the caller may ``rule`` on it (another project's
    server is a 404 unless the policy lets them see it)."""
    ctx = await c.context(request)
    inst = await servers_svc.get(c.state(request), request.path_params["server_id"])
    target = {"project_id": inst.project_id, "user_id": inst.user_id}
    if not c.allowed(request, ctx, rule, target):
        if ctx.project_id != inst.project_id and not c.is_admin(request, ctx):
            raise servers_svc.not_found(inst.uuid)
        raise errors.policy_refused(rule)
    return ctx, inst


async def server_groups(request: Request) -> Response:
    _, inst = await _server(request, SG + "list")
    groups = await svc.server_groups(c.state(request), inst)
    return JSONResponse({"security_groups": groups})


def _group_name(arg: Any) -> str:
    """Nova's ``_parse`` of the add/remove security group actions."""
    if not isinstance(arg, dict):
        raise BadRequest("Missing parameter dict")
    if "name" not in arg:
        raise BadRequest("Security group not specified")
    name = arg["name"]
    if not name or not isinstance(name, str) or not name.strip():
        raise BadRequest("Security group name cannot be empty")
    return name


async def add_security_group(request: Request, arg: Any) -> Response:
    ctx, inst = await _server(request, SG + "add")
    name = _group_name(arg)
    await svc.add_to_server(c.state(request), _token(request), ctx.project_id or "", inst, name)
    return Response(status_code=202)


async def remove_security_group(request: Request, arg: Any) -> Response:
    ctx, inst = await _server(request, SG + "remove")
    name = _group_name(arg)
    await svc.remove_from_server(c.state(request), _token(request), ctx.project_id or "",
                                 inst, name)
    return Response(status_code=202)


def _ip(value: Any, field: str) -> str:
    try:
        ipaddress.ip_address(value if isinstance(value, str) else "")
    except ValueError:
        raise errors.invalid_field(field, value, f"{value!r} is not valid under any of the "
                                   "given schemas") from None
    return str(value)


async def add_floating_ip(request: Request, arg: Any) -> Response:
    _proxy_only(request, FIP_ACTIONS_MAX)
    _, inst = await _server(request, FIP + "add")
    c.expect_object(arg, "addFloatingIp", ("address", "fixed_address"), ("address",),
                    path="addFloatingIp")
    address = _ip(arg["address"], "addFloatingIp/address")
    fixed = _ip(arg["fixed_address"], "addFloatingIp/fixed_address") \
        if "fixed_address" in arg else None
    await svc.associate(c.state(request), _token(request), inst, address, fixed)
    return Response(status_code=202)


async def remove_floating_ip(request: Request, arg: Any) -> Response:
    _proxy_only(request, FIP_ACTIONS_MAX)
    _, inst = await _server(request, FIP + "remove")
    c.expect_object(arg, "removeFloatingIp", ("address",), ("address",),
                    path="removeFloatingIp")
    address = _ip(arg["address"], "removeFloatingIp/address")
    await svc.disassociate(c.state(request), _token(request), inst, address)
    return Response(status_code=202)


ACTIONS = {
    "addSecurityGroup": add_security_group,
    "removeSecurityGroup": remove_security_group,
    "addFloatingIp": add_floating_ip,
    "removeFloatingIp": remove_floating_ip,
}


# -- os-floating-ips, os-floating-ip-pools --------------------------------------------------


async def fip_index(request: Request) -> Response:
    ctx = await _ctx(request, FIP + "list")
    fips = await svc.list_fips(c.state(request), _token(request), ctx.project_id or "")
    return JSONResponse({"floating_ips": fips})


async def fip_show(request: Request) -> Response:
    await _ctx(request, FIP + "show")
    fip_id = request.path_params["fip_id"]
    if not svc.is_uuid(fip_id):
        raise BadRequest(f"Invalid ID received {fip_id}.")
    st = c.state(request)
    fip = await svc.get_fip(st, _token(request), fip_id)
    return JSONResponse({"floating_ip": (await svc.fip_views(st, _token(request), [fip]))[0]})


async def fip_create(request: Request) -> Response:
    await _ctx(request, FIP + "create")
    body = await read_json(request) if await request.body() else None
    pool = body.get("pool") if isinstance(body, dict) else None
    if pool is not None and not isinstance(pool, str):
        raise BadRequest("Floating IP pool not found.")
    fip = await svc.create_fip(c.state(request), _token(request), pool)
    return JSONResponse({"floating_ip": fip})


async def fip_delete(request: Request) -> Response:
    await _ctx(request, FIP + "delete")
    await svc.delete_fip(c.state(request), _token(request), request.path_params["fip_id"])
    return Response(status_code=202)


async def pools_index(request: Request) -> Response:
    await _ctx(request, POOLS)
    nets = await svc.pools(c.state(request), _token(request))
    return JSONResponse({"floating_ip_pools": [{"name": n["name"] or n["id"]} for n in nets]})


# -- os-networks, os-tenant-networks ----------------------------------------------------------

# what os-networks showed under nova-network: with Neutron only id and label are
# known (the rest is null), and admins see the extra fields too
_NET_FIELDS = ("id", "cidr", "netmask", "gateway", "broadcast", "dns1", "dns2", "cidr_v6",
               "gateway_v6", "label", "netmask_v6")
_NET_ADMIN_FIELDS = ("created_at", "updated_at", "deleted_at", "deleted", "injected", "bridge",
                     "vlan", "vpn_public_address", "vpn_public_port", "vpn_private_address",
                     "dhcp_start", "project_id", "host", "bridge_interface", "multi_host",
                     "priority", "rxtx_base", "mtu", "dhcp_server", "enable_dhcp",
                     "share_address")


def _network(net: dict[str, Any], admin: bool) -> dict[str, Any]:
    fields = _NET_FIELDS + (_NET_ADMIN_FIELDS if admin else ())
    out: dict[str, Any] = dict.fromkeys(fields)
    out["id"], out["label"] = net["id"], net.get("name") or ""
    return out


def _tenant_network(net: dict[str, Any]) -> dict[str, Any]:
    # as Nova with Neutron: the cidr is the string "None"
    return {"id": net["id"], "cidr": "None", "label": net.get("name") or ""}


async def networks_index(request: Request) -> Response:
    ctx = await _ctx(request, NETS + "list")
    admin = c.is_admin(request, ctx)
    nets = await svc.list_networks(c.state(request), _token(request))
    return JSONResponse({"networks": [_network(n, admin) for n in nets]})


async def networks_show(request: Request) -> Response:
    ctx = await _ctx(request, NETS + "view")
    net = await svc.get_network(c.state(request), _token(request),
                                request.path_params["network_id"])
    return JSONResponse({"network": _network(net, c.is_admin(request, ctx))})


async def tenant_networks_index(request: Request) -> Response:
    await _ctx(request, TNETS + "list")
    nets = await svc.list_networks(c.state(request), _token(request))
    return JSONResponse({"networks": [_tenant_network(n) for n in nets]})


async def tenant_networks_show(request: Request) -> Response:
    await _ctx(request, TNETS + "show")
    net = await svc.get_network(c.state(request), _token(request),
                                request.path_params["network_id"])
    return JSONResponse({"network": _tenant_network(net)})


async def gone(request: Request) -> Response:
    """What Nova answers, since nova-network went, to the networks' write APIs."""
    _proxy_only(request)
    await c.context(request)
    raise Gone("Gone")


P = c.API_PREFIX
routes = [
    Route(f"{P}/os-security-groups", sg_index, methods=["GET"]),
    Route(f"{P}/os-security-groups", sg_create, methods=["POST"]),
    Route(f"{P}/os-security-groups/{{group_id}}", sg_show, methods=["GET"]),
    Route(f"{P}/os-security-groups/{{group_id}}", sg_update, methods=["PUT"]),
    Route(f"{P}/os-security-groups/{{group_id}}", sg_delete, methods=["DELETE"]),
    Route(f"{P}/os-security-group-rules", rule_create, methods=["POST"]),
    Route(f"{P}/os-security-group-rules/{{rule_id}}", rule_delete, methods=["DELETE"]),
    Route(f"{P}/servers/{{server_id}}/os-security-groups", server_groups, methods=["GET"]),
    Route(f"{P}/os-floating-ips", fip_index, methods=["GET"]),
    Route(f"{P}/os-floating-ips", fip_create, methods=["POST"]),
    Route(f"{P}/os-floating-ips/{{fip_id}}", fip_show, methods=["GET"]),
    Route(f"{P}/os-floating-ips/{{fip_id}}", fip_delete, methods=["DELETE"]),
    Route(f"{P}/os-floating-ip-pools", pools_index, methods=["GET"]),
    Route(f"{P}/os-networks", networks_index, methods=["GET"]),
    Route(f"{P}/os-networks", gone, methods=["POST"]),
    Route(f"{P}/os-networks/add", gone, methods=["POST"]),
    Route(f"{P}/os-networks/{{network_id}}", networks_show, methods=["GET"]),
    Route(f"{P}/os-networks/{{network_id}}", gone, methods=["DELETE"]),
    Route(f"{P}/os-networks/{{network_id}}/action", gone, methods=["POST"]),
    Route(f"{P}/os-tenant-networks", tenant_networks_index, methods=["GET"]),
    Route(f"{P}/os-tenant-networks", gone, methods=["POST"]),
    Route(f"{P}/os-tenant-networks/{{network_id}}", tenant_networks_show, methods=["GET"]),
    Route(f"{P}/os-tenant-networks/{{network_id}}", gone, methods=["DELETE"]),
]
