"""Subnets: their validation (as Neutron's ``_validate_subnet``), prefixes from
subnet pools, allocation pools, and deletion with the addresses on them.

Creating a subnet locks its network's row, so two concurrent requests cannot
both add overlapping CIDRs to one network; the read of the network's subnets
that follows is a locking read (it sees what other transactions committed, on
MariaDB too).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.context import RequestContext
from onestack.core.errors import CloudError
from onestack.network import errors
from onestack.network.api.common import standard
from onestack.network.models import IPAllocation, Network, Port, Subnet, SubnetPool, new_id
from onestack.network.service import common, ipam, subnetpools
from onestack.network.state import NetworkState

MAX_DNS_NAMESERVERS = 5
MAX_HOST_ROUTES = 20
IPV6_MIN_MTU = 1280


def bad_subnet_request(message: str) -> CloudError:
    return errors.bad_request("BadRequest", f"Bad subnets request: {message}.")


def subnet_in_use(subnet_id: str, reason: str | None = None) -> CloudError:
    reason = reason or "One or more ports have an IP allocation from this subnet"
    return errors.conflict("SubnetInUse",
                           f"Unable to complete operation on subnet {subnet_id}: {reason}.")


def render(sub: Subnet, tags: list[str], external: bool = False) -> dict[str, Any]:
    return {
        "id": sub.id,
        "name": sub.name,
        **standard(sub, tags),
        "network_id": sub.network_id,
        "ip_version": sub.ip_version,
        "cidr": sub.cidr,
        "gateway_ip": sub.gateway_ip,
        "allocation_pools": [dict(p) for p in sub.allocation_pools or []],
        "dns_nameservers": list(sub.dns_nameservers or []),
        "host_routes": [dict(r) for r in sub.host_routes or []],
        "enable_dhcp": sub.enable_dhcp,
        "ipv6_ra_mode": sub.ipv6_ra_mode,
        "ipv6_address_mode": sub.ipv6_address_mode,
        "subnetpool_id": sub.subnetpool_id,
        "service_types": list(sub.service_types or []),
        "segment_id": None,
        "dns_publish_fixed_ip": sub.dns_publish_fixed_ip,
        "router:external": external,
    }


async def render_many(session: AsyncSession, subs: list[Subnet]) -> list[dict[str, Any]]:
    tags = await common.tags_of(session, [s.id for s in subs])
    nets = await networks_of(session, {s.network_id for s in subs})
    return [render(s, tags.get(s.id, []), bool(nets.get(s.network_id)
                                             and nets[s.network_id].external))
            for s in subs]


async def get_row(session: AsyncSession, subnet_id: str) -> Subnet:
    sub = await session.get(Subnet, subnet_id)
    if sub is None:
        raise errors.subnet_not_found(subnet_id)
    return sub


async def show(session: AsyncSession, subnet_id: str) -> dict[str, Any]:
    return (await render_many(session, [await get_row(session, subnet_id)]))[0]


async def networks_of(session: AsyncSession, net_ids: set[str]) -> dict[str, Network]:
    out: dict[str, Network] = {}
    ids = list(net_ids)
    for chunk in range(0, len(ids), 500):
        for net in await session.scalars(select(Network).where(
                Network.id.in_(ids[chunk:chunk + 500]))):
            out[net.id] = net
    return out


def network_target(net: Network | None) -> dict[str, Any]:
    """What subnet and port policies know about the resource's network."""
    return {
        "network:project_id": net.project_id if net else None,
        "network:shared": str(bool(net and net.shared)),
        "network:router:external": str(bool(net and net.external)),
    }


async def list_visible(session: AsyncSession, ctx: RequestContext, admin: bool,
                       filters: dict[str, list[str]]) -> list[Subnet]:
    """Subnets the caller may see (its own, and those of its own, shared and
    external networks; all for an admin), with SQL pre-filters."""
    q = select(Subnet)
    if not admin:
        project = ctx.project_id or ""
        nets = select(Network.id).where(or_(Network.project_id == project,
                                            Network.shared.is_(True),
                                            Network.external.is_(True)))
        q = q.where(or_(Subnet.project_id == project, Subnet.network_id.in_(nets)))
    for key, col in (("id", Subnet.id), ("network_id", Subnet.network_id),
                     ("cidr", Subnet.cidr), ("subnetpool_id", Subnet.subnetpool_id)):
        if key in filters and all(filters[key]):
            q = q.where(col.in_(filters[key]))
    for key in ("project_id", "tenant_id"):
        if key in filters:
            q = q.where(Subnet.project_id.in_(filters[key]))
    return list((await session.scalars(q)).all())


# -- validation -------------------------------------------------------------------------


def _check_version(version: int, value: str, name: str) -> None:
    got = (ipaddress.ip_network(value, strict=False) if "/" in value
           else ipaddress.ip_address(value)).version
    if got != version:
        raise errors.invalid_input(f"{name} '{value}' does not match the ip_version "
                                   f"'{version}'")


def validate(s: dict[str, Any], cur: Subnet | None = None) -> None:
    """Neutron's checks of a subnet's attributes (``s`` holds the whole subnet
    as it would be; ``cur`` the current row on update).

    Raises:
        BadRequest (InvalidInput, DNSNameServersExhausted, HostRoutesExhausted);
        Conflict (GatewayIpInUse is checked by the caller).
    """
    version = s["ip_version"]
    cidr = s.get("cidr")
    net = None
    if cidr:
        _check_version(version, cidr, "cidr")
        net = ipaddress.ip_network(cidr)
        if net.prefixlen == 0:
            raise errors.invalid_input("0 is not allowed as CIDR prefix length")
        if version == 6 and int(net.network_address) == 0:
            raise errors.invalid_input("IPv6 subnet '::' is not supported")
    dhcp_was = cur.enable_dhcp if cur is not None else False
    if net is not None and s.get("enable_dhcp") and not dhcp_was:
        if (version == 4 and net.prefixlen > 30) or (version == 6 and net.prefixlen > 126):
            raise errors.invalid_input("Subnet has a prefix length that is incompatible with "
                                       "DHCP service enabled")
        if net.is_multicast:
            raise errors.invalid_input("Multicast IP subnet is not supported if enable_dhcp "
                                       "is True")
        if net.is_loopback:
            raise errors.invalid_input("Loopback IP subnet is not supported if enable_dhcp "
                                       "is True")
        if version == 4 and int(net.network_address) == 0:
            raise errors.invalid_input("First IP '0.0.0.0' of network is not supported if "
                                       "enable_dhcp is True.")
    gateway = s.get("gateway_ip")
    if gateway:
        _check_version(version, gateway, "gateway_ip")
        if cidr and ipam.gateway_invalid(cidr, gateway):
            raise errors.invalid_input("Gateway is not valid on subnet")
    dns = s.get("dns_nameservers") or []
    if len(dns) > MAX_DNS_NAMESERVERS:
        raise errors.bad_request(
            "DNSNameServersExhausted",
            f"Unable to complete operation for {s.get('id') or 'new subnet'}. The number of "
            f"DNS nameservers exceeds the limit {MAX_DNS_NAMESERVERS}.")
    for server in dns:
        _check_version(version, server, "dns_nameserver")
    routes = s.get("host_routes") or []
    if len(routes) > MAX_HOST_ROUTES:
        raise errors.bad_request(
            "HostRoutesExhausted",
            f"Unable to complete operation for {s.get('id') or 'new subnet'}. The number of "
            f"host routes exceeds the limit {MAX_HOST_ROUTES}.")
    for route in routes:
        _check_version(version, route["nexthop"], "nexthop")
        _check_version(version, route["destination"], "destination")
    ra, mode = s.get("ipv6_ra_mode"), s.get("ipv6_address_mode")
    if version == 4:
        if ra is not None:
            raise errors.invalid_input("ipv6_ra_mode is not valid when ip_version is 4")
        if mode is not None:
            raise errors.invalid_input("ipv6_address_mode is not valid when ip_version is 4")
        return
    if cur is not None:
        if "enable_dhcp" in s.get("_changed", ()) and not s.get("enable_dhcp") and (
                cur.ipv6_ra_mode or cur.ipv6_address_mode):
            raise errors.invalid_input("Cannot disable enable_dhcp with ipv6 attributes set")
        return
    if (ra or mode) and not s.get("enable_dhcp"):
        raise errors.invalid_input("ipv6_ra_mode or ipv6_address_mode cannot be set when "
                                   "enable_dhcp is set to False")
    if ra and mode and ra != mode:
        raise errors.invalid_input(
            f"ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{mode}' is not "
            "valid. If both attributes are set, they must be the same value")
    if net is not None and ipam.is_auto_address(ra, mode) and net.prefixlen != 64:
        raise errors.invalid_input(
            f"Invalid CIDR {cidr} for IPv6 address mode. OpenStack uses the EUI-64 address "
            "format, which requires the prefix to be /64")


async def _check_overlap(session: AsyncSession, net: Network, cidr: str) -> None:
    """Raises: BadRequest (InvalidInput) when ``cidr`` overlaps a subnet of ``net``."""
    new = ipaddress.ip_network(cidr)
    rows = (await session.scalars(select(Subnet.cidr).where(Subnet.network_id == net.id)
                                  .with_for_update(read=True))).all()
    for other in rows:
        o = ipaddress.ip_network(other)
        if o.version == new.version and o.overlaps(new):
            raise errors.invalid_input(f"Requested subnet with cidr: {cidr} for network: "
                                       f"{net.id} overlaps with another subnet")


async def _pool_affinity(session: AsyncSession, net: Network, version: int,
                         pool: SubnetPool | None) -> None:
    """Subnets of one IP version on a network come from one pool (or none)."""
    rows = (await session.execute(select(Subnet.subnetpool_id, Subnet.ip_version).where(
        Subnet.network_id == net.id))).all()
    for pool_id, v in rows:
        if v != version:
            continue
        if (pool is not None and pool_id != pool.id) or (pool is None and pool_id):
            raise errors.bad_request("NetworkSubnetPoolAffinityError",
                                     "Subnets hosted on the same network must be allocated "
                                     "from the same subnet pool.")


async def _resolve_pool(session: AsyncSession, item: dict[str, Any], project_id: str | None,
                        admin: bool) -> SubnetPool | None:
    pool_id = item.get("subnetpool_id")
    use_default = bool(item.get("use_default_subnetpool"))
    if pool_id and use_default:
        raise bad_subnet_request("subnetpool_id and use_default_subnetpool cannot both be "
                                 "specified")
    if pool_id:
        pool = await session.get(SubnetPool, pool_id)
        if pool is None or not subnetpools.visible_to(pool, project_id, admin):
            raise errors.subnetpool_not_found(pool_id)
        return pool
    if not use_default:
        return None
    version = item["ip_version"]
    if item.get("cidr"):
        version = ipaddress.ip_network(item["cidr"]).version
    pool = await subnetpools.default_pool(session, version)
    if pool is None:
        raise bad_subnet_request(f"No default subnetpool found for IPv{version}")
    return pool


# -- create -----------------------------------------------------------------------------


async def create(st: NetworkState, session: AsyncSession, item: dict[str, Any], *,
                 caller_project: str | None = None, admin: bool = False) -> Subnet:
    """A new subnet on ``item['network_id']`` (the caller has checked that the
    network is visible and the policy).

    Raises:
        BadRequest; NotFound (NetworkNotFound, SubnetPoolNotFound); Conflict
        (OverQuota, GatewayConflictWithAllocationPools, OverlappingAllocationPools,
        SubnetAllocationError).
    """
    given = item.get("_set", frozenset(item))
    net = await session.scalar(select(Network).where(Network.id == item["network_id"])
                               .with_for_update(key_share=True))
    if net is None:
        raise errors.network_not_found(item["network_id"])
    if item.get("segment_id") is not None:
        raise errors.not_found("SegmentNotFound",
                               f"Segment {item['segment_id']} could not be found.")
    cidr: str | None = item.get("cidr")
    prefixlen = item.get("prefixlen")
    if cidr and prefixlen is not None:
        raise bad_subnet_request("cidr and prefixlen must not be supplied together")
    if cidr:
        cidr = str(ipaddress.ip_network(cidr, strict=False))
    pool = await _resolve_pool(session, item, caller_project, admin)
    if pool is None and not cidr:
        raise bad_subnet_request("a subnetpool must be specified in the absence of a cidr")
    if pool is not None and not cidr and "allocation_pools" in given \
            and item.get("allocation_pools") is not None:
        raise bad_subnet_request("allocation_pools allowed only for specific subnet "
                                 "requests.")
    version = item["ip_version"]
    if version == 6 and net.mtu < IPV6_MIN_MTU:
        raise errors.conflict("NetworkMTUSubnetConflict",
                              f"MTU of {net.id} is not valid, subnet requires a minimum of "
                              f"{IPV6_MIN_MTU}")
    gateway_given = "gateway_ip" in given
    gateway: str | None = item.get("gateway_ip") if gateway_given else None
    spec = {**item, "cidr": cidr, "gateway_ip": gateway}
    validate(spec)
    await common.check_quota(st, session, item["project_id"], "subnet", Subnet)
    if pool is not None:
        if pool.ip_version != version:
            raise errors.invalid_input(f"The subnet pool {pool.id} has ip_version "
                                       f"{pool.ip_version}, not {version}")
        await _pool_affinity(session, net, version, pool)
        if not cidr and gateway:
            length = pool.default_prefixlen if prefixlen is None else prefixlen
            cidr = str(ipaddress.ip_network(f"{gateway}/{length}", strict=False))
        cidr = await subnetpools.allocate(session, pool, item["project_id"], prefixlen, cidr)
    else:
        await _pool_affinity(session, net, version, None)
    assert cidr is not None
    if not gateway_given:
        gateway = ipam.first_host(cidr)
    spec.update(cidr=cidr, gateway_ip=gateway)
    validate(spec)
    if "allocation_pools" in given:
        pools = [{"start": p["start"], "end": p["end"]}
                 for p in item.get("allocation_pools") or []]
        ranges = ipam.parse_pools(pools, cidr)
        ipam.check_gateway_out_of_pools(gateway, ranges, version)
    else:
        pools = ipam.generate_pools(cidr, gateway)
    await _check_overlap(session, net, cidr)
    ra, mode = item.get("ipv6_ra_mode"), item.get("ipv6_address_mode")
    sub = Subnet(
        id=new_id(), project_id=item["project_id"], network_id=net.id,
        name=item.get("name") or "", description=item.get("description") or "",
        ip_version=version, cidr=cidr, gateway_ip=gateway,
        enable_dhcp=bool(item.get("enable_dhcp", True)),
        ipv6_ra_mode=ra if version == 6 else None,
        ipv6_address_mode=mode if version == 6 else None,
        subnetpool_id=pool.id if pool is not None else None,
        allocation_pools=pools, dns_nameservers=list(item.get("dns_nameservers") or []),
        host_routes=[dict(r) for r in item.get("host_routes") or []],
        service_types=list(item.get("service_types") or []),
        dns_publish_fixed_ip=bool(item.get("dns_publish_fixed_ip")),
    )
    session.add(sub)
    await session.flush()
    if ipam.subnet_is_auto(sub):
        await _add_auto_addresses(session, sub)
    await common.dataplane_changed(st, session, "subnet created")
    return sub


async def _add_auto_addresses(session: AsyncSession, sub: Subnet) -> None:
    """A new SLAAC subnet gives every port on the network (routers' interfaces
    apart) its EUI-64 address there, as Neutron does."""
    ports = (await session.scalars(select(Port).where(
        Port.network_id == sub.network_id,
        Port.device_owner.notin_(ipam.ROUTER_INTERFACE_OWNERS_SNAT)))).all()
    for port in ports:
        if sub.service_types and port.device_owner not in sub.service_types:
            continue
        await ipam.allocate_auto(session, sub, port.id, port.mac_address)
        common.touch(port)


# -- update -----------------------------------------------------------------------------


UPDATABLE = ("name", "description", "gateway_ip", "allocation_pools", "dns_nameservers",
             "host_routes", "enable_dhcp", "service_types", "dns_publish_fixed_ip")


async def update(st: NetworkState, session: AsyncSession, sub: Subnet,
                 values: dict[str, Any]) -> None:
    """Change a subnet.

    Raises:
        BadRequest; Conflict (GatewayConflictWithAllocationPools, GatewayIpInUse,
        OverlappingAllocationPools).
    """
    if values.get("segment_id") is not None:
        raise errors.not_found("SegmentNotFound",
                               f"Segment {values['segment_id']} could not be found.")
    spec: dict[str, Any] = {k: getattr(sub, k) for k in UPDATABLE}
    spec.update(id=sub.id, ip_version=sub.ip_version, cidr=sub.cidr,
                ipv6_ra_mode=sub.ipv6_ra_mode, ipv6_address_mode=sub.ipv6_address_mode)
    spec.update({k: v for k, v in values.items() if k in UPDATABLE})
    spec["_changed"] = frozenset(values)
    validate(spec, cur=sub)
    new_gateway = spec["gateway_ip"]
    if "gateway_ip" in values and new_gateway != sub.gateway_ip and sub.gateway_ip:
        holder = await session.scalar(
            select(IPAllocation.port_id).join(Port, Port.id == IPAllocation.port_id).where(
                IPAllocation.subnet_id == sub.id, IPAllocation.ip_address == sub.gateway_ip,
                Port.device_owner.in_(ipam.ROUTER_INTERFACE_OWNERS)))
        if holder:
            raise errors.conflict("GatewayIpInUse",
                                  f"Current gateway ip {sub.gateway_ip} already in use by "
                                  f"port {holder}. Unable to update.")
    if "allocation_pools" in values:
        pools = [{"start": p["start"], "end": p["end"]} for p in values["allocation_pools"]]
        ranges = ipam.parse_pools(pools, sub.cidr)
        spec["allocation_pools"] = pools
    else:
        ranges = ipam.pool_ranges(sub)
    if "allocation_pools" in values or new_gateway != sub.gateway_ip:
        ipam.check_gateway_out_of_pools(new_gateway, ranges, sub.ip_version)
    if common.apply(sub, spec, [k for k in UPDATABLE if k in values]):
        await common.dataplane_changed(st, session, "subnet updated")


# -- delete -----------------------------------------------------------------------------


async def delete(st: NetworkState, session: AsyncSession, sub: Subnet) -> None:
    """Delete a subnet; DHCP ports (and, on SLAAC subnets, every port but
    routers') lose their addresses on it.

    Raises:
        Conflict (SubnetInUse): routers' interfaces or other ports have addresses
        on it.
    """
    rows = (await session.execute(
        select(IPAllocation.port_id, Port.device_owner)
        .join(Port, Port.id == IPAllocation.port_id)
        .where(IPAllocation.subnet_id == sub.id))).all()
    if any(owner in ipam.ROUTER_INTERFACE_OWNERS for _, owner in rows):
        raise subnet_in_use(sub.id)
    if not ipam.subnet_is_auto(sub) and any(owner != ipam.DHCP_OWNER for _, owner in rows):
        raise subnet_in_use(sub.id)
    if rows:
        await session.execute(sql_delete(IPAllocation).where(IPAllocation.subnet_id == sub.id))
        for port in await session.scalars(select(Port).where(
                Port.id.in_({p for p, _ in rows}))):
            common.touch(port)
    await common.delete_tags(session, sub.id)
    await session.delete(sub)
    try:
        await session.flush()
    except IntegrityError:
        # an address was given out on it concurrently
        raise subnet_in_use(sub.id) from None
    await common.dataplane_changed(st, session, "subnet deleted")


async def count_on_network(session: AsyncSession, net_id: str) -> int:
    return await session.scalar(select(func.count()).select_from(Subnet).where(
        Subnet.network_id == net_id)) or 0
