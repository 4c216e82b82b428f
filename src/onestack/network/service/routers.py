"""Routers: Neutron's router, extraroute, ext-gw-mode and router_availability_zone.

A router is a row plus ports: its gateway port on an external network
(``network:router_gateway``, no project, ``Router.gw_port_id``) and its interfaces
(``network:router_interface``, ``device_id`` the router) on project subnets.
Ports are made, changed and removed only through ``service.ports`` (IPAM, MACs);
this module sets their owner and checks what Neutron's L3 database checks:
external networks, overlapping subnets, routes whose next hop must be
connected, floating IPs that still need a gateway or an interface.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import CloudError
from onestack.network import errors
from onestack.network.api.common import standard
from onestack.network.models import (
    FloatingIP,
    IPAllocation,
    Network,
    Port,
    Quota,
    Router,
    Subnet,
    new_id,
)
from onestack.network.service import common, ipam
from onestack.network.service import ports as port_svc
from onestack.network.state import NetworkState

ROUTER_INTF = "network:router_interface"
ROUTER_GW = "network:router_gateway"
FLOATINGIP_OWNER = "network:floatingip"
DHCP_OWNER = "network:dhcp"
AVAILABILITY_ZONES = ("nova",)
# Neutron's quota_router_route default (routes per router)
DEFAULT_MAX_ROUTES = 30


@dataclass(frozen=True)
class Caller:
    """Who asks: the project, whether admin, and ``sees(action, target)`` (the
    ``get_<resource>`` policy) for the networks, subnets and ports named."""

    project_id: str
    admin: bool
    sees: Callable[[str, Mapping[str, Any]], bool]


# -- errors (neutron-lib's types and messages) ----------------------------------------


def bad_router(msg: str) -> CloudError:
    return errors.bad_request("BadRequest", f"Bad router request: {msg}.")


def router_not_found(router_id: str) -> CloudError:
    return errors.not_found("RouterNotFound", f"Router {router_id} could not be found")


def invalid_routes(routes: list[dict[str, str]], reason: str) -> CloudError:
    return errors.bad_request("InvalidRoutes",
                              f"Invalid format for routes: {routes}, {reason}")


def gateway_in_use(router_id: str, net_id: str | None) -> CloudError:
    return errors.conflict(
        "RouterExternalGatewayInUseByFloatingIp",
        f"Gateway cannot be updated for router {router_id}, since a gateway to external "
        f"network {net_id} is required by one or more floating IPs.")


# -- targets for the get_* policies ----------------------------------------------------


def network_target(net: Network) -> dict[str, Any]:
    return {"id": net.id, "project_id": net.project_id, "tenant_id": net.project_id,
            "shared": str(net.shared), "router:external": str(net.external)}


def subnet_target(sub: Subnet, net: Network) -> dict[str, Any]:
    return {"id": sub.id, "project_id": sub.project_id, "tenant_id": sub.project_id,
            "network_id": net.id, "network:project_id": net.project_id,
            "network:shared": str(net.shared), "network:router:external": str(net.external)}


def port_target(port: Port, net: Network | None) -> dict[str, Any]:
    return {"id": port.id, "project_id": port.project_id, "tenant_id": port.project_id,
            "network_id": port.network_id, "device_owner": port.device_owner,
            "network:project_id": net.project_id if net else None,
            "network:shared": str(bool(net and net.shared)),
            "network:router:external": str(bool(net and net.external))}


async def visible_network(s: AsyncSession, net_id: str, caller: Caller) -> Network:
    net = await s.get(Network, net_id)
    if net is None or not caller.sees("get_network", network_target(net)):
        raise errors.network_not_found(net_id)
    return net


async def visible_subnet(s: AsyncSession, subnet_id: str, caller: Caller) -> Subnet:
    sub = await s.get(Subnet, subnet_id)
    net = await s.get(Network, sub.network_id) if sub is not None else None
    if sub is None or net is None or not caller.sees("get_subnet", subnet_target(sub, net)):
        raise errors.subnet_not_found(subnet_id)
    return sub


async def visible_port(s: AsyncSession, port_id: str, caller: Caller,
                       lock: bool = False) -> Port:
    port = await s.get(Port, port_id, with_for_update=lock or None)
    net = await s.get(Network, port.network_id) if port is not None else None
    if port is None or not caller.sees("get_port", port_target(port, net)):
        raise errors.port_not_found(port_id)
    return port


# -- reading ---------------------------------------------------------------------------


def _ip_key(ip: str) -> tuple[int, int]:
    a = ipaddress.ip_address(ip)
    return a.version, int(a)


async def allocations(s: AsyncSession, port_ids: Iterable[str]) -> dict[str, list[IPAllocation]]:
    """Each port's fixed IPs, IPv4 first, in address order."""
    ids = list(port_ids)
    out: dict[str, list[IPAllocation]] = {i: [] for i in ids}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        for a in (await s.scalars(select(IPAllocation).where(
                IPAllocation.port_id.in_(part)))).all():
            out[a.port_id].append(a)
    for allocs in out.values():
        allocs.sort(key=lambda a: _ip_key(a.ip_address))
    return out


def render(r: Router, gw_ips: list[IPAllocation] | None, tags: list[str]) -> dict[str, Any]:
    gw = None
    if r.gw_port_id:
        gw = {
            "network_id": r.external_network_id,
            "enable_snat": r.enable_snat,
            "external_fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                                   for a in gw_ips or []],
        }
    return {
        "id": r.id,
        "name": r.name,
        **standard(r, tags),
        "admin_state_up": r.admin_state_up,
        "status": r.status,
        "external_gateway_info": gw,
        "routes": [{"destination": x["destination"], "nexthop": x["nexthop"]}
                   for x in r.routes or []],
        "distributed": r.distributed,
        "ha": r.ha,
        "availability_zone_hints": list(r.availability_zone_hints or []),
        "availability_zones": list(AVAILABILITY_ZONES),
        "flavor_id": None,
    }


async def render_many(s: AsyncSession, routers: list[Router]) -> list[dict[str, Any]]:
    gw = await allocations(s, [r.gw_port_id for r in routers if r.gw_port_id])
    tags = await common.tags_of(s, [r.id for r in routers])
    return [render(r, gw.get(r.gw_port_id or ""), tags.get(r.id, [])) for r in routers]


async def get_row(s: AsyncSession, router_id: str, lock: bool = False) -> Router:
    """The router; ``lock`` takes its row lock (PostgreSQL, MariaDB), so that
    changes to one router's ports and routes happen one at a time."""
    r = await s.get(Router, router_id, with_for_update=lock or None)
    if r is None:
        raise router_not_found(router_id)
    return r


async def show(s: AsyncSession, router_id: str) -> dict[str, Any]:
    return (await render_many(s, [await get_row(s, router_id)]))[0]


async def list_visible(s: AsyncSession, project_id: str, admin: bool,
                       filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    q = select(Router)
    if not admin:
        q = q.where(Router.project_id == project_id)
    if "id" in filters:
        q = q.where(Router.id.in_(filters["id"]))
    for key in ("project_id", "tenant_id"):
        if key in filters:
            q = q.where(Router.project_id.in_(filters[key]))
    return await render_many(s, list((await s.scalars(q)).all()))


async def attached_ports(s: AsyncSession, router_id: str,
                         owners: tuple[str, ...] = (ROUTER_INTF, ROUTER_GW)) -> list[Port]:
    return list((await s.scalars(select(Port).where(
        Port.device_id == router_id, Port.device_owner.in_(owners)))).all())


# -- checks ----------------------------------------------------------------------------


def _net(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def _in(ip: str, cidrs: Iterable[str]) -> bool:
    a = ipaddress.ip_address(ip)
    return any(a.version == n.version and a in n for n in map(_net, cidrs))


def _overlap(a: str, b: str) -> bool:
    na, nb = _net(a), _net(b)
    return na.version == nb.version and na.overlaps(nb)  # type: ignore[arg-type,unused-ignore]


async def check_subnets_free(s: AsyncSession, router: Router, new: list[Subnet]) -> None:
    """Neither one of ``new`` nor one overlapping it is on the router already (its
    gateway counts with every subnet of the external network).

    Raises:
        BadRequest.
    """
    new_ids = {x.id for x in new}
    ports = await attached_ports(s, router.id)
    allocs = await allocations(s, [p.id for p in ports])
    have: list[str] = []
    for p in ports:
        for a in allocs[p.id]:
            if a.subnet_id in new_ids:
                raise bad_router(f"Router already has a port on subnet {a.subnet_id}")
            if p.device_owner == ROUTER_GW:
                have.extend((await s.scalars(select(Subnet.id).where(
                    Subnet.network_id == p.network_id))).all())
            else:
                have.append(a.subnet_id)
    if not have:
        return
    existing = (await s.scalars(select(Subnet).where(Subnet.id.in_(set(have))))).all()
    for sub in sorted(existing, key=lambda x: have.index(x.id)):
        for n in new:
            if _overlap(sub.cidr, n.cidr):
                raise bad_router(f"Cidr {n.cidr} of subnet {n.id} overlaps with cidr "
                                 f"{sub.cidr} of subnet {sub.id}")


def check_address_mode(sub: Subnet) -> None:
    if sub.ip_version == 6 and sub.ipv6_ra_mode is None and sub.ipv6_address_mode is not None:
        raise bad_router(f"IPv6 subnet {sub.id} configured to receive RAs from an external "
                         "router cannot be added to Neutron Router")


def validate_routes(routes: list[dict[str, str]], cidrs: list[str], ips: list[str]) -> None:
    """Every next hop on a subnet of the router and not one of its own addresses.

    Raises:
        BadRequest (InvalidRoutes).
    """
    for route in routes:
        if not _in(route["nexthop"], cidrs):
            raise invalid_routes(routes, "the nexthop is not connected with router")
        if route["nexthop"] in ips:
            raise invalid_routes(routes, "the nexthop is used by router")


async def _route_context(s: AsyncSession, router: Router,
                         gw_subnets: list[Subnet] | None = None) -> tuple[list[str], list[str]]:
    """The CIDRs and addresses of the router's ports; with ``gw_subnets``, the
    interfaces' plus those subnets (a gateway about to change)."""
    owners = (ROUTER_INTF,) if gw_subnets is not None else (ROUTER_INTF, ROUTER_GW)
    ports = await attached_ports(s, router.id, owners)
    allocs = await allocations(s, [p.id for p in ports])
    subnet_ids = {a.subnet_id for lst in allocs.values() for a in lst}
    cidr_of = dict((await s.execute(select(Subnet.id, Subnet.cidr).where(
        Subnet.id.in_(subnet_ids)))).all()) if subnet_ids else {}
    cidrs = [cidr_of[a.subnet_id] for lst in allocs.values() for a in lst
             if a.subnet_id in cidr_of]
    ips = [a.ip_address for lst in allocs.values() for a in lst]
    cidrs.extend(x.cidr for x in gw_subnets or [])
    return cidrs, ips


async def route_limit(st: NetworkState, s: AsyncSession, project_id: str) -> int:
    row = await s.get(Quota, (project_id, "router_route"))
    if row is not None:
        return row.limit
    return int(getattr(st.conf, "quota_router_route", DEFAULT_MAX_ROUTES))


async def set_routes(st: NetworkState, s: AsyncSession, router: Router,
                     routes: list[dict[str, str]]) -> bool:
    """Replace the router's extra routes; True if they changed."""
    cidrs, ips = await _route_context(s, router)
    validate_routes(routes, cidrs, ips)
    limit = await route_limit(st, s, router.project_id)
    if 0 <= limit < len(routes):
        raise errors.over_quota("router_route")
    if list(router.routes or []) == routes:
        return False
    router.routes = routes
    return True


def add_routes(old: list[dict[str, str]], add: list[dict[str, str]]) -> list[dict[str, str]]:
    """``old`` with ``add`` (exact duplicates once)."""
    out = list(old)
    for r in add:
        if r not in out:
            out.append(r)
    return out


def remove_routes(old: list[dict[str, str]], drop: list[dict[str, str]]) -> list[dict[str, str]]:
    """``old`` without ``drop`` (routes missing already are fine)."""
    return [r for r in old if r not in drop]


# -- gateway ---------------------------------------------------------------------------


async def _fips_on_router(s: AsyncSession, router_id: str) -> int:
    return await s.scalar(select(func.count()).select_from(FloatingIP).where(
        FloatingIP.router_id == router_id)) or 0


async def _delete_gateway(st: NetworkState, s: AsyncSession, router: Router) -> None:
    if not router.gw_port_id:
        return
    if await _fips_on_router(s, router.id):
        raise gateway_in_use(router.id, router.external_network_id)
    port = await s.get(Port, router.gw_port_id)
    router.gw_port_id = None
    router.external_network_id = None
    await s.flush()
    if port is not None:
        await port_svc.delete_port(st, s, port)


async def _create_gateway(st: NetworkState, s: AsyncSession, router: Router, net_id: str,
                          ext_ips: list[dict[str, str]]) -> None:
    item: dict[str, Any] = {
        "project_id": "", "network_id": net_id, "name": "", "admin_state_up": True,
        "device_id": router.id, "device_owner": ROUTER_GW,
    }
    if ext_ips:
        item["fixed_ips"] = [dict(x) for x in ext_ips]
    port = await port_svc.create_port(st, s, item)
    router.gw_port_id = port.id
    router.external_network_id = net_id


def _ext_ips_change(current: list[IPAllocation], ext_ips: list[dict[str, str]]) -> bool:
    """Whether ``external_fixed_ips`` asks for other addresses than the port has
    (Neutron's comparison: the subnets, then the addresses given)."""
    if not ext_ips:
        return False
    if {a.subnet_id for a in current} != {x["subnet_id"] for x in ext_ips if x.get("subnet_id")}:
        return True
    return ({a.ip_address for a in current}
            != {x["ip_address"] for x in ext_ips if x.get("ip_address")})


async def set_gateway(st: NetworkState, s: AsyncSession, router: Router,
                      info: dict[str, Any] | None, caller: Caller) -> None:
    """Apply ``external_gateway_info`` (None: no gateway).

    Raises:
        NotFound (NetworkNotFound); BadRequest (not external, an external IP that
        is a subnet's gateway, overlapping subnets, routes left unreachable);
        Conflict (RouterExternalGatewayInUseByFloatingIp, IpAddressInUse ...).
    """
    net_id = info.get("network_id") if info else None
    ext_ips: list[dict[str, str]] = list((info or {}).get("external_fixed_ips") or [])
    gw_subnets: list[Subnet] = []
    if net_id:
        net = await visible_network(s, net_id, caller)
        if not net.external:
            raise bad_router(f"Network {net_id} is not an external network")
        gw_subnets = list((await s.scalars(select(Subnet).where(
            Subnet.network_id == net_id))).all())
        gateways = {x.gateway_ip for x in gw_subnets if x.gateway_ip}
        for ip in ext_ips:
            if ip.get("ip_address") in gateways:
                raise bad_router(f"External IP {ip['ip_address']} is the same as the "
                                 "gateway IP")
    if router.routes:
        cidrs, ips = await _route_context(s, router, gw_subnets)
        validate_routes(list(router.routes), cidrs, ips)
    snat = info.get("enable_snat") if info else None
    router.enable_snat = True if snat is None else bool(snat)
    current = (await allocations(s, [router.gw_port_id]))[router.gw_port_id] \
        if router.gw_port_id else []
    if router.gw_port_id and net_id == router.external_network_id:
        if _ext_ips_change(current, ext_ips):
            port = await s.get(Port, router.gw_port_id)
            if port is not None:
                await port_svc.update_port(st, s, port, {"fixed_ips": ext_ips}, admin=True)
        return
    await _delete_gateway(st, s, router)
    if net_id:
        await check_subnets_free(s, router, gw_subnets)
        await _create_gateway(st, s, router, net_id, ext_ips)


# -- routers ---------------------------------------------------------------------------


def _check_az(hints: list[str]) -> None:
    for az in hints:
        if az not in AVAILABILITY_ZONES:
            raise errors.not_found("AvailabilityZoneNotFound",
                                   f"AvailabilityZone {az} could not be found.")


def _check_unsupported(values: Mapping[str, Any]) -> None:
    for name, label in (("distributed", "Distributed"), ("ha", "HA")):
        if values.get(name):
            raise bad_router(f"{label} routers are not supported")


async def create(st: NetworkState, s: AsyncSession, item: dict[str, Any],
                 caller: Caller) -> str:
    await common.check_quota(st, s, item["project_id"], "router", Router)
    _check_unsupported(item)
    hints = list(item.get("availability_zone_hints") or [])
    _check_az(hints)
    router = Router(
        id=new_id(), project_id=item["project_id"], name=item["name"],
        description=item["description"], admin_state_up=item["admin_state_up"],
        status="ACTIVE", enable_snat=True, distributed=False, ha=False, routes=[],
        availability_zone_hints=hints,
    )
    s.add(router)
    await s.flush()
    if item.get("external_gateway_info"):
        await set_gateway(st, s, router, item["external_gateway_info"], caller)
    await common.dataplane_changed(st, s, "router created")
    return router.id


UPDATABLE = ("name", "description", "admin_state_up")


async def update(st: NetworkState, s: AsyncSession, router: Router, values: dict[str, Any],
                 caller: Caller) -> None:
    _check_unsupported(values)
    changed = False
    if "external_gateway_info" in values:
        before = (router.gw_port_id, router.external_network_id, router.enable_snat)
        await set_gateway(st, s, router, values["external_gateway_info"], caller)
        changed = before != (router.gw_port_id, router.external_network_id,
                             router.enable_snat)
    if "routes" in values:
        changed = await set_routes(st, s, router, values["routes"]) or changed
    applied = common.apply(router, values, UPDATABLE)  # touches the row if True
    if not applied and not changed:
        return
    if not applied:
        common.touch(router)
    await common.dataplane_changed(st, s, "router updated")


async def delete(st: NetworkState, s: AsyncSession, router: Router) -> None:
    """Delete ``router`` and its gateway port.

    Raises:
        Conflict (RouterInUse: interfaces left; RouterExternalGatewayInUseByFloatingIp).
    """
    intfs = await attached_ports(s, router.id, (ROUTER_INTF,))
    if intfs:
        raise errors.conflict(
            "RouterInUse", f"Router {router.id} has ports still attached: "
            + ", ".join(sorted(p.id for p in intfs)))
    await _delete_gateway(st, s, router)
    await common.delete_tags(s, router.id)
    await s.delete(router)
    await common.dataplane_changed(st, s, "router deleted")


# -- interfaces ------------------------------------------------------------------------


def interface_info(router_id: str, port: Port, subnets: list[Subnet],
                   last: bool = True) -> dict[str, Any]:
    return {
        "id": router_id,
        "tenant_id": port.project_id,
        "project_id": port.project_id,
        "port_id": port.id,
        "network_id": port.network_id,
        "subnet_id": (subnets[-1] if last else subnets[0]).id,
        "subnet_ids": [x.id for x in subnets],
    }


async def _has_v6(s: AsyncSession, port_id: str) -> bool:
    return any(":" in a.ip_address for a in (await allocations(s, [port_id]))[port_id])


async def _add_by_port(st: NetworkState, s: AsyncSession, router: Router, port_id: str,
                       caller: Caller) -> tuple[Port, list[Subnet]]:
    port = await visible_port(s, port_id, caller, lock=True)
    if port.device_id:
        raise errors.conflict(
            "PortInUse", f"Unable to complete operation on port {port.id} for network "
            f"{port.network_id}. Port already has an attached device {port.device_id}.")
    allocs = (await allocations(s, [port.id]))[port.id]
    if not allocs:
        raise bad_router("Router port must have at least one fixed IP")
    subnets = [await s.get(Subnet, a.subnet_id) for a in allocs]
    subs = [x for x in subnets if x is not None]
    for sub in subs:
        check_address_mode(sub)
    if any(":" in a.ip_address for a in allocs):
        for other in await attached_ports(s, router.id):
            if other.id != port.id and other.network_id == port.network_id \
                    and await _has_v6(s, other.id):
                raise bad_router(
                    f"Router already contains IPv6 port {other.id} belonging to network id "
                    f"{other.network_id}. Only one IPv6 port from the same network subnet "
                    "can be connected to a router")
    await check_subnets_free(s, router, subs)
    if len([x for x in subs if x.ip_version == 4]) > 1:
        raise bad_router("Cannot have multiple IPv4 subnets on router port")
    if not caller.admin:
        by_id = {x.id: x for x in subs}
        for a in allocs:
            owner = by_id.get(a.subnet_id)
            if owner is not None and not ipam.in_pools(owner, a.ip_address) \
                    and owner.project_id != caller.project_id:
                raise bad_router(
                    f"Cannot add interface to router because specified port {port.id} has an "
                    f"IP address out of the allocation pool of subnet {owner.id}, which is not "
                    "owned by the project making the request")
    await port_svc.update_port(st, s, port, {"device_id": router.id,
                                          "device_owner": ROUTER_INTF}, admin=True)
    return port, subs


async def _add_by_subnet(st: NetworkState, s: AsyncSession, router: Router, subnet_id: str,
                         caller: Caller) -> tuple[Port, list[Subnet]]:
    sub = await visible_subnet(s, subnet_id, caller)
    if not sub.gateway_ip:
        raise bad_router("Subnet for router interface must have a gateway IP")
    if not caller.admin and sub.project_id != caller.project_id:
        raise bad_router(f"Cannot add interface to router because subnet {sub.id} is not "
                         "owned by project making the request")
    check_address_mode(sub)
    await check_subnets_free(s, router, [sub])
    if sub.ip_version == 6:
        # one IPv6 interface per network: another prefix joins the existing port
        for other in await attached_ports(s, router.id, (ROUTER_INTF,)):
            if other.network_id == sub.network_id and await _has_v6(s, other.id):
                fixed = [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                         for a in (await allocations(s, [other.id]))[other.id]]
                fixed.append({"subnet_id": sub.id, "ip_address": sub.gateway_ip})
                await port_svc.update_port(st, s, other, {"fixed_ips": fixed}, admin=True)
                return other, [sub]
    item: dict[str, Any] = {
        "project_id": router.project_id, "network_id": sub.network_id, "name": "",
        "admin_state_up": True, "device_id": router.id, "device_owner": ROUTER_INTF,
        "fixed_ips": [{"subnet_id": sub.id, "ip_address": sub.gateway_ip}],
    }
    port = await port_svc.create_port(st, s, item)
    return port, [sub]


async def add_interface(st: NetworkState, s: AsyncSession, router: Router,
                        port_id: str | None, subnet_id: str | None,
                        caller: Caller) -> dict[str, Any]:
    """Attach a subnet (a new port at its gateway address) or a free port.

    Raises:
        NotFound (SubnetNotFound, PortNotFound); Conflict (PortInUse,
        IpAddressInUse); BadRequest (no gateway IP, no fixed IP, overlapping or
        duplicate subnets, another project's subnet).
    """
    if port_id:
        port, subs = await _add_by_port(st, s, router, port_id, caller)
    else:
        port, subs = await _add_by_subnet(st, s, router, subnet_id or "", caller)
    common.touch(router)
    await common.dataplane_changed(st, s, "router interface added")
    return interface_info(router.id, port, subs)


async def _confirm_not_in_use(s: AsyncSession, router: Router, sub: Subnet) -> None:
    """No floating IP and no extra route of the router needs ``sub``.

    Raises:
        Conflict (RouterInterfaceInUseByFloatingIP, RouterInterfaceInUseByRoute).
    """
    net = _net(sub.cidr)
    fips = (await s.scalars(select(FloatingIP).where(
        FloatingIP.router_id == router.id, FloatingIP.fixed_port_id.is_not(None)))).all()
    on_subnet = set((await s.scalars(select(IPAllocation.port_id).where(
        IPAllocation.subnet_id == sub.id))).all()) if fips else set()
    for f in fips:
        if f.fixed_ip_address and _in(f.fixed_ip_address, [str(net)]) \
                and f.fixed_port_id in on_subnet:
            raise errors.conflict(
                "RouterInterfaceInUseByFloatingIP",
                f"Router interface for subnet {sub.id} on router {router.id} cannot be "
                "deleted, as it is required by one or more floating IPs.")
    for route in router.routes or []:
        if _in(route["nexthop"], [str(net)]):
            raise errors.conflict(
                "RouterInterfaceInUseByRoute",
                f"Router interface for subnet {sub.id} on router {router.id} cannot be "
                "deleted, as it is required by one or more routes.")


async def _remove_by_port(st: NetworkState, s: AsyncSession, router: Router, port_id: str,
                          subnet_id: str | None) -> dict[str, Any]:
    port = (await s.scalars(select(Port).where(
        Port.id == port_id, Port.device_id == router.id,
        Port.device_owner == ROUTER_INTF))).first()
    if port is None:
        raise errors.not_found(
            "RouterInterfaceNotFound",
            f"Router {router.id} does not have an interface with id {port_id}")
    ids = list(dict.fromkeys(a.subnet_id for a in (await allocations(s, [port.id]))[port.id]))
    if subnet_id and subnet_id not in ids:
        raise errors.bad_request(
            "SubnetMismatchForPort",
            f"Subnet on port {port.id} does not match the requested subnet {subnet_id}.")
    subs = [x for x in [await s.get(Subnet, i) for i in ids] if x is not None]
    for sub in subs:
        await _confirm_not_in_use(s, router, sub)
    info = {"id": router.id, "tenant_id": port.project_id, "project_id": port.project_id,
            "port_id": port.id, "network_id": port.network_id,
            "subnet_id": subs[0].id if subs else None, "subnet_ids": [x.id for x in subs]}
    await port_svc.delete_port(st, s, port)
    return info


async def _remove_by_subnet(st: NetworkState, s: AsyncSession, router: Router,
                            subnet_id: str, caller: Caller) -> dict[str, Any]:
    sub = await visible_subnet(s, subnet_id, caller)
    ports = list((await s.scalars(select(Port).where(
        Port.device_id == router.id, Port.device_owner == ROUTER_INTF,
        Port.network_id == sub.network_id))).all())
    if ports:
        await _confirm_not_in_use(s, router, sub)
    allocs = await allocations(s, [p.id for p in ports])
    for p in ports:
        mine = [a for a in allocs[p.id] if a.subnet_id == sub.id]
        if not mine:
            continue
        info = interface_info(router.id, p, [sub])
        if len({a.subnet_id for a in allocs[p.id]}) > 1:
            # another prefix stays: only this subnet's address leaves the port
            rest = [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                    for a in allocs[p.id] if a.subnet_id != sub.id]
            await port_svc.update_port(st, s, p, {"fixed_ips": rest}, admin=True)
        else:
            await port_svc.delete_port(st, s, p)
        return info
    raise errors.not_found("RouterInterfaceNotFoundForSubnet",
                           f"Router {router.id} has no interface on subnet {sub.id}")


async def remove_interface(st: NetworkState, s: AsyncSession, router: Router,
                           port_id: str | None, subnet_id: str | None,
                           caller: Caller) -> dict[str, Any]:
    """Detach an interface by port (the port is deleted) or by subnet (its address
    leaves the port; the port goes with its last subnet).

    Raises:
        NotFound (RouterInterfaceNotFound, RouterInterfaceNotFoundForSubnet,
        SubnetNotFound); BadRequest (SubnetMismatchForPort); Conflict (in use by
        floating IPs or routes).
    """
    if port_id:
        info = await _remove_by_port(st, s, router, port_id, subnet_id)
    else:
        info = await _remove_by_subnet(st, s, router, subnet_id or "", caller)
    common.touch(router)
    await common.dataplane_changed(st, s, "router interface removed")
    return info
