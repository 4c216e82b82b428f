"""``/v2.0/subnets`` (and the attribute validators subnet-like resources share:
Neutron's ``Invalid input for <attribute>. Reason: ...`` 400s)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest
from onestack.core.http import no_content
from onestack.network import errors
from onestack.network.api import common as c
from onestack.network.models import Network, Subnet
from onestack.network.service import ipam
from onestack.network.service import subnets as svc

# -- validators (raise Reason; ``checked`` turns it into Neutron's 400) -------------------


class Reason(ValueError):
    """Why a value is invalid, in Neutron's words."""


def checked(attr: str, conv: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def run(value: Any) -> Any:
        try:
            return conv(value)
        except Reason as exc:
            raise BadRequest(f"Invalid input for {attr}. Reason: {exc}.") from None

    return run


def ip_address(value: Any) -> str:
    """An address, canonical (IPv4 without leading zeros, IPv6 compressed)."""
    if not isinstance(value, str) or value != value.strip():
        raise Reason(f"'{value}' is not a valid IP address")
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise Reason(f"'{value}' is not a valid IP address") from None
    if ":" not in value and value.count(".") != 3:
        raise Reason(f"'{value}' is not a valid IP address")
    return str(ip)


def ip_address_or_none(value: Any) -> str | None:
    return None if value is None else ip_address(value)


def subnet_cidr(value: Any) -> str:
    """``address/length`` (host bits allowed: subnets drop them, as Neutron)."""
    if not isinstance(value, str) or "/" not in value or value != value.strip():
        raise Reason(f"'{value}' is not a valid IP subnet")
    addr, _, length = value.partition("/")
    try:
        ip = ipaddress.ip_address(addr)
        if not length.isdigit():
            raise ValueError(length)
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise Reason(f"'{value}' is not a valid IP subnet") from None
    if ip.version == 4 and str(ip) != addr:
        raise Reason(f"'{value}' is not a valid IP subnet")
    return f"{ip}/{int(length)}"


def subnet_cidr_or_none(value: Any) -> str | None:
    return None if value is None else subnet_cidr(value)


def route_cidr(value: Any) -> str:
    try:
        cidr = subnet_cidr(value)
    except Reason:
        raise Reason(f"'{value}' is not a valid CIDR") from None
    net = ipaddress.ip_network(cidr, strict=False)
    if str(net) != cidr:
        raise Reason(f"'{value}' is not a valid CIDR")
    if net.is_loopback:
        raise Reason(f"'{value}' is not a routable CIDR")
    return cidr


def _keys(item: Any, expected: list[str]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise Reason(f"Invalid input. '{item}' must be a dictionary with keys: {expected}")
    if set(item) != set(expected):
        raise Reason(f"Validation of dictionary's keys failed. Expected keys: "
                     f"{set(expected)} Provided keys: {set(item)}")
    return item


def ip_pools(value: Any) -> list[dict[str, str]] | None:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Reason(f"Invalid data format for IP pool: '{value}'")
    return [{k: ip_address(_keys(p, ["start", "end"])[k]) for k in ("start", "end")}
            for p in value]


def nameservers(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Reason(f"Invalid data format for nameserver: '{value}'")
    out: list[str] = []
    for host in value:
        try:
            ip_address(host)
        except Reason as exc:
            raise Reason(f"'{host}' is not a valid nameserver. {exc}") from None
        if host in out:
            raise Reason(f"Duplicate nameserver '{host}'")
        out.append(host)
    return out


def host_routes(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Reason(f"Invalid data format for hostroute: '{value}'")
    out: list[dict[str, str]] = []
    for r in value:
        _keys(r, ["destination", "nexthop"])
        route = {"destination": route_cidr(r["destination"]),
                 "nexthop": ip_address(r["nexthop"])}
        if route in out:
            raise Reason(f"Duplicate hostroute '{r}'")
        out.append(route)
    return out


def one_of(values: tuple[Any, ...], display: str | None = None) -> Callable[[Any], Any]:
    def conv(value: Any) -> Any:
        if value not in values:
            raise Reason(f"{value} is not in {display or list(values)}")
        return value

    return conv


def _ip_version(value: Any) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"Invalid input for operation: '{value}' is not an integer.") from None
    return one_of((4, 6), "[4, 6]")(v)  # type: ignore[no-any-return]


ip_version = checked("ip_version", _ip_version)


def non_negative_or_none(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise Reason(f"'{value}' is not an integer")
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise Reason(f"'{value}' is not an integer") from None
    if v < 0:
        raise Reason(f"'{v}' should be non-negative")
    return v


def ipv6_mode(value: Any) -> str | None:
    return None if value is None else one_of(ipam.IPV6_MODES)(value)


def service_types(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise errors.invalid_input(f"Subnet service type {value} does not correspond to a "
                                   "valid device owner")
    for t in value:
        if not isinstance(t, str):
            raise errors.invalid_input(f"Subnet service type {t} is not a string")
        if not t.startswith(("network:", "neutron:", "compute:")):
            raise errors.invalid_input(f"Subnet service type {t} does not correspond to a "
                                       "valid device owner")
    return list(value)


RESOURCE = c.Resource(
    member="subnet",
    collection="subnets",
    attrs=c.attrs(
        name=c.Attr(allow_post=True, allow_put=True, default="", convert=c.string(255)),
        network_id=c.Attr(allow_post=True, default=c.MISSING, convert=c.uuid_str),
        ip_version=c.Attr(allow_post=True, default=c.MISSING, convert=ip_version),
        cidr=c.Attr(allow_post=True, default=None,
                    convert=checked("cidr", subnet_cidr_or_none)),
        prefixlen=c.Attr(allow_post=True, default=None, is_filter=False, sortable=False,
                         convert=checked("prefixlen", non_negative_or_none)),
        subnetpool_id=c.Attr(allow_post=True, default=None, convert=c.uuid_or_none),
        use_default_subnetpool=c.Attr(allow_post=True, default=False, convert=c.to_bool,
                                      is_filter=False, sortable=False),
        gateway_ip=c.Attr(allow_post=True, allow_put=True, default=None,
                          convert=checked("gateway_ip", ip_address_or_none)),
        allocation_pools=c.Attr(allow_post=True, allow_put=True, default=None,
                                convert=checked("allocation_pools", ip_pools),
                                is_filter=False, sortable=False),
        dns_nameservers=c.Attr(allow_post=True, allow_put=True, default=list,
                               convert=checked("dns_nameservers", nameservers),
                               sortable=False),
        host_routes=c.Attr(allow_post=True, allow_put=True, default=list,
                           convert=checked("host_routes", host_routes),
                           is_filter=False, sortable=False),
        enable_dhcp=c.Attr(allow_post=True, allow_put=True, default=True, convert=c.to_bool),
        ipv6_ra_mode=c.Attr(allow_post=True, default=None,
                            convert=checked("ipv6_ra_mode", ipv6_mode)),
        ipv6_address_mode=c.Attr(allow_post=True, default=None,
                                 convert=checked("ipv6_address_mode", ipv6_mode)),
        service_types=c.Attr(allow_post=True, allow_put=True, default=list,
                             convert=service_types, sortable=False),
        segment_id=c.Attr(allow_post=True, allow_put=True, default=None,
                          convert=c.uuid_or_none),
        dns_publish_fixed_ip=c.Attr(allow_post=True, allow_put=True, default=False,
                                    convert=c.to_bool),
        **{"router:external": c.Attr()},
    ),
    extra_filters=frozenset({"shared"}),
)


def target(item: dict[str, Any], net: Any) -> dict[str, Any]:
    return {**item, **svc.network_target(net)}


def hide(request: Request, ctx: RequestContext, item: dict[str, Any], net: Any
         ) -> dict[str, Any]:
    return c.hide_attributes(request, ctx, RESOURCE, item, target(item, net))


async def visible_network(request: Request, ctx: RequestContext, s: Any, net_id: str) -> Any:
    """The network ``net_id`` if the caller may see it.

    Raises:
        NotFound (NetworkNotFound).
    """
    net = await s.get(Network, net_id)
    if net is None or not c.allowed(request, ctx, "get_network", {
            "project_id": net.project_id, "shared": str(net.shared),
            "router:external": str(net.external)}):
        raise errors.network_not_found(net_id)
    return net


async def list_subnets(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    filters = c.filters(request, RESOURCE)
    admin = c.is_admin(request, ctx)
    async with st.db.read() as s:
        rows = await svc.list_visible(s, ctx, admin, filters)
        nets = await svc.networks_of(s, {r.network_id for r in rows})
        items = await svc.render_many(s, rows)
    shared = filters.get("shared")
    out = []
    for i in items:
        net = nets.get(i["network_id"])
        if shared and not any(c.to_bool(v) == bool(net and net.shared) for v in shared):
            continue
        if c.visible(request, ctx, RESOURCE, i, target(i, net)):
            out.append(hide(request, ctx, i, net))
    return c.list_response(request, RESOURCE, out)


async def create_subnet(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    members, bulk = await c.parse_create(request, RESOURCE, ctx)
    admin = c.is_admin(request, ctx)
    out = []
    async with st.db.write() as s:
        rows: list[tuple[Subnet, Any]] = []
        for m in members:
            net = await visible_network(request, ctx, s, m["network_id"])
            c.enforce(request, ctx, "create_subnet", target(m, net), c.explicit(RESOURCE, m))
            rows.append((await svc.create(st, s, m, caller_project=ctx.project_id,
                                          admin=admin), net))
        await s.flush()
        for sub, net in rows:
            out.append(hide(request, ctx, await svc.show(s, sub.id), net))
    return c.created(RESOURCE, out, bulk)


async def _visible_row(request: Request, ctx: RequestContext, s: Any,
                       subnet_id: str) -> tuple[Subnet, dict[str, Any], Any]:
    row = await svc.get_row(s, subnet_id)
    item = await svc.show(s, subnet_id)
    nets = await svc.networks_of(s, {row.network_id})
    net = nets.get(row.network_id)
    if not c.visible(request, ctx, RESOURCE, item, target(item, net)):
        raise errors.subnet_not_found(subnet_id)
    return row, item, net


async def show_subnet(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    async with st.db.read() as s:
        _, item, net = await _visible_row(request, ctx, s, request.path_params["subnet_id"])
    return c.show_response(request, RESOURCE, hide(request, ctx, item, net))


async def update_subnet(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    values = await c.parse_update(request, RESOURCE)
    subnet_id = request.path_params["subnet_id"]
    async with st.db.write() as s:
        row, item, net = await _visible_row(request, ctx, s, subnet_id)
        c.check_if_match(request, row.revision_number)
        c.enforce(request, ctx, "update_subnet", target({**item, **values}, net), values)
        await svc.update(st, s, row, values)
        await s.flush()
        out = await svc.show(s, subnet_id)
    return c.show_response(request, RESOURCE, hide(request, ctx, out, net))


async def delete_subnet(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    subnet_id = request.path_params["subnet_id"]
    async with st.db.write() as s:
        row, item, net = await _visible_row(request, ctx, s, subnet_id)
        c.check_if_match(request, row.revision_number)
        c.enforce(request, ctx, "delete_subnet", target(item, net))
        await svc.delete(st, s, row)
    return no_content()


routes = [
    Route("/v2.0/subnets", list_subnets, methods=["GET"]),
    Route("/v2.0/subnets", create_subnet, methods=["POST"]),
    Route("/v2.0/subnets/{subnet_id}", show_subnet, methods=["GET"]),
    Route("/v2.0/subnets/{subnet_id}", update_subnet, methods=["PUT"]),
    Route("/v2.0/subnets/{subnet_id}", delete_subnet, methods=["DELETE"]),
]
