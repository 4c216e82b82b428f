"""Ports: MAC addresses, fixed IPs (through ``ipam``), security groups, port
security, allowed address pairs, extra DHCP options and bindings.

The one way ports are made and removed (routers and floating IPs use
``create_port`` and ``delete_port`` too). A MAC address is unique per network
by a database constraint: a generated one is drawn again on a clash, a
requested one in use is a 409.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.context import RequestContext
from onestack.core.errors import CloudError, ServiceUnavailable
from onestack.network import errors
from onestack.network.api.common import standard
from onestack.network.models import (
    FloatingIP,
    IPAllocation,
    Network,
    Port,
    PortSecurityGroup,
    Router,
    SecurityGroup,
    Subnet,
    new_id,
)
from onestack.network.service import common, ipam
from onestack.network.state import NetworkState

ROUTER_GATEWAY = "network:router_gateway"
FLOATINGIP = "network:floatingip"
SERVICE_OWNERS = ipam.ROUTER_INTERFACE_OWNERS + (ROUTER_GATEWAY, FLOATINGIP)
UNBOUND = "unbound"
MAC_ATTEMPTS = 16
DNS_DOMAIN = "openstacklocal"

# what a port create item means when a key is missing (None: "not specified")
DEFAULTS: dict[str, Any] = {
    "name": "", "description": "", "admin_state_up": True, "mac_address": None,
    "fixed_ips": None, "device_id": "", "device_owner": "", "security_groups": None,
    "port_security_enabled": None, "allowed_address_pairs": None, "extra_dhcp_opts": None,
    "dns_name": "", "binding:host_id": "", "binding:vnic_type": "normal",
    "binding:profile": None, "propagate_uplink_status": False,
}


def trusted(device_owner: str) -> bool:
    """Ports of the cloud itself (routers, DHCP): no security groups, no quota."""
    return device_owner.startswith("network:")


def vif(network_id: str, host: str) -> tuple[str, dict[str, Any]]:
    """The binding a port gets on ``host`` (the Linux bridge agent's)."""
    if not host:
        return UNBOUND, {}
    return "bridge", {"connectivity": "l2", "port_filter": True,
                      "bridge_name": "brq" + network_id[:11]}


# -- rendering --------------------------------------------------------------------------


def _hostname(port: Port, ip: str) -> str:
    return port.dns_name or "host-" + ip.replace(".", "-").replace(":", "-")


def render(port: Port, fixed: list[tuple[str, str]], groups: list[str], tags: list[str],
           dns_domain: str = DNS_DOMAIN) -> dict[str, Any]:
    domain = dns_domain.rstrip(".")
    return {
        "id": port.id,
        "name": port.name,
        **standard(port, tags),
        "network_id": port.network_id,
        "mac_address": port.mac_address,
        "admin_state_up": port.admin_state_up,
        "status": port.status,
        "fixed_ips": [{"subnet_id": s, "ip_address": ip} for s, ip in fixed],
        "device_id": port.device_id,
        "device_owner": port.device_owner,
        "security_groups": groups,
        "port_security_enabled": port.port_security_enabled,
        "allowed_address_pairs": [dict(p) for p in port.allowed_address_pairs or []],
        "extra_dhcp_opts": [dict(o) for o in port.extra_dhcp_opts or []],
        "dns_name": port.dns_name,
        "dns_assignment": [{"hostname": _hostname(port, ip), "ip_address": ip,
                            "fqdn": f"{_hostname(port, ip)}.{domain}."} for _, ip in fixed],
        "binding:host_id": port.binding_host_id,
        "binding:vnic_type": port.binding_vnic_type,
        "binding:profile": dict(port.binding_profile or {}),
        "binding:vif_type": port.binding_vif_type,
        "binding:vif_details": dict(port.binding_vif_details or {}),
        "propagate_uplink_status": port.propagate_uplink_status,
        "ip_allocation": "immediate",
        "resource_request": None,
    }


async def allocations_of(session: AsyncSession,
                         port_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Each port's (subnet, address) pairs, IPv4 first, in address order."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for chunk in range(0, len(port_ids), 500):
        rows = await session.execute(
            select(IPAllocation.port_id, IPAllocation.subnet_id, IPAllocation.ip_address)
            .where(IPAllocation.port_id.in_(port_ids[chunk:chunk + 500])))
        for pid, sid, ip in rows:
            out[pid].append((sid, ip))
    for pairs in out.values():
        pairs.sort(key=lambda p: ipam.sort_key(p[1]))
    return out


async def groups_of(session: AsyncSession, port_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for chunk in range(0, len(port_ids), 500):
        rows = await session.execute(
            select(PortSecurityGroup.port_id, PortSecurityGroup.security_group_id)
            .where(PortSecurityGroup.port_id.in_(port_ids[chunk:chunk + 500])))
        for pid, sg in rows:
            out[pid].append(sg)
    for groups in out.values():
        groups.sort()
    return out


async def render_ports(session: AsyncSession, ports: list[Port],
                       dns_domain: str = DNS_DOMAIN) -> list[dict[str, Any]]:
    ids = [p.id for p in ports]
    fixed = await allocations_of(session, ids)
    groups = await groups_of(session, ids)
    tags = await common.tags_of(session, ids)
    return [render(p, fixed.get(p.id, []), groups.get(p.id, []), tags.get(p.id, []),
                   dns_domain) for p in ports]


async def get_row(session: AsyncSession, port_id: str) -> Port:
    port = await session.get(Port, port_id)
    if port is None:
        raise errors.port_not_found(port_id)
    return port


async def show_port(session: AsyncSession, port_id: str,
                    dns_domain: str = DNS_DOMAIN) -> dict[str, Any]:
    return (await render_ports(session, [await get_row(session, port_id)], dns_domain))[0]


def parse_fixed_ips_filter(values: list[str]) -> dict[str, list[str]]:
    """``fixed_ips=ip_address=X`` query values as {key: [values]}.

    Raises:
        BadRequest.
    """
    out: dict[str, list[str]] = defaultdict(list)
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise errors.invalid_input(f"'{v}' is not of the form <key>=[value]")
        out[key.strip()].append(value.strip())
    return out


async def list_visible(session: AsyncSession, ctx: RequestContext, admin: bool,
                       filters: dict[str, list[str]]) -> list[Port]:
    """Ports the caller may see (its project's and those on its networks; all for
    an admin), with SQL pre-filters (``fixed_ips`` among them: one allocation must
    match every key given, as Neutron's join does)."""
    q = select(Port)
    if not admin:
        project = ctx.project_id or ""
        q = q.where(or_(Port.project_id == project, Port.network_id.in_(
            select(Network.id).where(Network.project_id == project))))
    for key, col in (("id", Port.id), ("network_id", Port.network_id),
                     ("device_id", Port.device_id), ("device_owner", Port.device_owner),
                     ("mac_address", Port.mac_address), ("name", Port.name),
                     ("binding:host_id", Port.binding_host_id), ("status", Port.status)):
        if key in filters:
            q = q.where(col.in_(filters[key]))
    for key in ("project_id", "tenant_id"):
        if key in filters:
            q = q.where(Port.project_id.in_(filters[key]))
    if "fixed_ips" in filters:
        fx = parse_fixed_ips_filter(filters["fixed_ips"])
        conds: list[Any] = []
        if fx.get("ip_address"):
            ips = []
            for ip in fx["ip_address"]:
                try:
                    ips.append(ipam.canonical_ip(ip))
                except ValueError:
                    ips.append(ip)
            conds.append(IPAllocation.ip_address.in_(ips))
        if fx.get("subnet_id"):
            conds.append(IPAllocation.subnet_id.in_(fx["subnet_id"]))
        if fx.get("ip_address_substr"):
            conds.append(or_(*[IPAllocation.ip_address.contains(s, autoescape=True)
                               for s in fx["ip_address_substr"]]))
        if conds:
            q = q.where(Port.id.in_(select(IPAllocation.port_id).where(*conds)))
    return list((await session.scalars(q)).all())


# -- errors -----------------------------------------------------------------------------


def mac_in_use(net_id: str, mac: str) -> CloudError:
    return errors.conflict("MacAddressInUse", f"Unable to complete operation for network "
                           f"{net_id}. The mac address {mac} is in use.")


def _address_pairs_need_security() -> CloudError:
    return errors.conflict("AddressPairAndPortSecurityRequired",
                           "Port Security must be enabled in order to have allowed address "
                           "pairs on a port.")


def _groups_need_security() -> CloudError:
    return errors.bad_request("PortSecurityAndIPRequiredForSecurityGroups",
                              "Invalid input for operation: Port security must be enabled "
                              "and port must have an IP address in order to use security "
                              "groups.")


# -- MAC addresses ----------------------------------------------------------------------


def random_mac(base_mac: str) -> str:
    """A MAC with ``base_mac``'s first three octets (and its fourth unless 00),
    the rest random, as Neutron's ``get_random_mac``."""
    base = base_mac.lower().split(":")
    octets = [int(base[0], 16), int(base[1], 16), int(base[2], 16),
              random.getrandbits(8), random.getrandbits(8), random.getrandbits(8)]
    if base[3] != "00":
        octets[3] = int(base[3], 16)
    return ":".join(f"{o:02x}" for o in octets)


async def _insert_port(st: NetworkState, session: AsyncSession, port: Port,
                       mac: str | None) -> None:
    """Add ``port`` with ``mac`` (or a fresh random one).

    Raises:
        Conflict (MacAddressInUse); ServiceUnavailable (MacAddressGenerationFailure);
        NotFound (NetworkNotFound: the network went away concurrently).
    """
    for _ in range(1 if mac else MAC_ATTEMPTS):
        port.mac_address = mac or random_mac(st.conf.base_mac)
        try:
            async with await ipam.savepoint(session):
                session.add(port)
        except IntegrityError as exc:
            text = str(exc.orig).lower()
            if "foreign key" in text or "child row" in text:
                raise errors.network_not_found(port.network_id) from None
            if mac:
                raise mac_in_use(port.network_id, mac) from None
            continue
        return
    failure = ServiceUnavailable(f"Unable to generate unique mac on network "
                                 f"{port.network_id}.")
    failure.neutron_type = "MacAddressGenerationFailure"  # type: ignore[attr-defined]
    raise failure


# -- fixed IPs --------------------------------------------------------------------------


async def candidate_subnets(session: AsyncSession, net_id: str, owner: str) -> list[Subnet]:
    """The network's subnets a port of ``owner`` may take addresses from:
    those whose service types name it first, then those without service types.

    Raises:
        Conflict (IpAddressGenerationFailure): the network has subnets, none for
        this owner.
    """
    subs = list((await session.scalars(select(Subnet).where(Subnet.network_id == net_id)
                                       .order_by(Subnet.created_at, Subnet.id))).all())
    fit = [s for s in subs if not s.service_types or owner in s.service_types
           or (owner == ipam.DHCP_OWNER and s.enable_dhcp)]
    if subs and not fit:
        raise errors.conflict("IpAddressGenerationFailure",
                              f"No valid service subnet for the given device owner, network "
                              f"{net_id}, service type {owner}.")
    return sorted(fit, key=lambda s: not s.service_types)


async def _subnet_for(session: AsyncSession, fixed: dict[str, Any],
                      subnets: list[Subnet], owner: str) -> Subnet:
    if not subnets:
        raise errors.invalid_input("IP allocation requires subnets for network")
    if fixed.get("subnet_id"):
        sub = next((s for s in subnets if s.id == fixed["subnet_id"]), None)
        if sub is None:
            other = await session.get(Subnet, fixed["subnet_id"])
            if other is None:
                raise errors.subnet_not_found(fixed["subnet_id"])
            raise errors.invalid_input(f"Failed to create port on network {other.network_id}"
                                       f", because fixed_ips included invalid subnet "
                                       f"{fixed['subnet_id']}")
        if fixed.get("ip_address") and not ipam.check_subnet_ip(sub.cidr, fixed["ip_address"],
                                                                 owner):
            raise errors.bad_request("InvalidIpForSubnet",
                                     f"IP address {fixed['ip_address']} is not a valid IP for "
                                     "the specified subnet.")
        return sub
    if not fixed.get("ip_address"):
        raise errors.invalid_input("IP allocation requires subnet_id or ip_address")
    for sub in subnets:
        if ipam.check_subnet_ip(sub.cidr, fixed["ip_address"], owner):
            return sub
    raise errors.bad_request("InvalidIpForNetwork",
                             f"IP address {fixed['ip_address']} is not a valid IP for any of "
                             "the subnets on the specified network.")


async def _requested(session: AsyncSession, entries: list[dict[str, Any]],
                     subnets: list[Subnet], owner: str) -> list[tuple[Subnet, str | None]]:
    """The (subnet, address or None) requests behind ``fixed_ips`` entries
    (Neutron's ``_test_fixed_ips_for_port``): SLAAC subnets are left to
    ``_add_auto`` unless a router asks.

    Raises:
        BadRequest (InvalidInput, InvalidIpForSubnet, InvalidIpForNetwork);
        NotFound (SubnetNotFound).
    """
    out: list[tuple[Subnet, str | None]] = []
    for fixed in entries:
        sub = await _subnet_for(session, fixed, subnets, owner)
        auto = ipam.subnet_is_auto(sub)
        ip = fixed.get("ip_address")
        if ip:
            if auto and owner not in ipam.ROUTER_INTERFACE_OWNERS:
                raise errors.invalid_input(
                    f"IPv6 address {ip} cannot be directly assigned to a port on subnet "
                    f"{sub.id} as the subnet is configured for automatic addresses")
            out.append((sub, ipam.canonical_ip(ip)))
        elif owner in ipam.ROUTER_INTERFACE_OWNERS_SNAT or not auto:
            out.append((sub, None))
    return out


def _check_max_ips(st: NetworkState, count: int, owner: str) -> None:
    if not trusted(owner) and count > st.conf.max_fixed_ips_per_port:
        raise errors.invalid_input("Exceeded maximum amount of fixed ips per port.")


async def _take(session: AsyncSession, port: Port, sub: Subnet, ip: str | None) -> None:
    if ip:
        await ipam.allocate_specific(session, sub, port.id, ip)
        return
    got = await ipam.allocate_any(session, sub, port.id,
                                  prefer_next=port.device_owner == ipam.DHCP_OWNER)
    if got is None:
        raise ipam.subnet_exhausted(sub.id)


async def _add_auto(session: AsyncSession, port: Port, subnets: list[Subnet],
                    have: set[str]) -> None:
    """EUI-64 addresses on every SLAAC subnet (not for routers' interfaces)."""
    if port.device_owner in ipam.ROUTER_INTERFACE_OWNERS_SNAT:
        return
    for sub in subnets:
        if ipam.subnet_is_auto(sub) and sub.id not in have:
            await ipam.allocate_auto(session, sub, port.id, port.mac_address)


async def _allocate(st: NetworkState, session: AsyncSession, port: Port,
                    fixed_ips: list[dict[str, Any]] | None) -> None:
    """A new port's addresses: those asked for, else one from an IPv4 subnet and
    one from a stateful IPv6 subnet; plus SLAAC addresses.

    Raises:
        BadRequest; NotFound; Conflict (IpAddressAlreadyAllocated,
        IpAddressGenerationFailure).
    """
    subnets = await candidate_subnets(session, port.network_id, port.device_owner)
    have: set[str] = set()
    if fixed_ips is not None:
        wanted = await _requested(session, fixed_ips, subnets, port.device_owner)
        _check_max_ips(st, len(wanted), port.device_owner)
        for sub, ip in wanted:
            await _take(session, port, sub, ip)
            have.add(sub.id)
    else:
        v4 = [s for s in subnets if s.ip_version == 4]
        v6 = [s for s in subnets if s.ip_version == 6 and not ipam.subnet_is_auto(s)]
        for group in (v4, v6):
            if not group:
                continue
            for sub in group:
                got = await ipam.allocate_any(session, sub, port.id,
                                              prefer_next=port.device_owner == ipam.DHCP_OWNER)
                if got is not None:
                    have.add(sub.id)
                    break
            else:
                raise ipam.network_exhausted(port.network_id)
    await _add_auto(session, port, subnets, have)


async def _current(session: AsyncSession, port_id: str) -> list[tuple[str, str]]:
    return (await allocations_of(session, [port_id])).get(port_id, [])


async def _change_fixed_ips(st: NetworkState, session: AsyncSession, port: Port,
                            entries: list[dict[str, Any]]) -> bool:
    """Neutron's ``_get_changed_ips_for_port`` then allocation: addresses kept,
    freed and added in one go. True if anything changed."""
    original = await _current(session, port.id)
    owner = port.device_owner
    by_ip = {ip: (sid, ip) for sid, ip in original}
    add: list[dict[str, Any]] = []
    keep: list[tuple[str, str]] = []
    remove_candidates: list[tuple[str, str]] = []
    for e in entries:
        if not e.get("ip_address"):
            continue
        ip = ipam.canonical_ip(e["ip_address"])
        found = by_ip.pop(ip, None)
        if found is not None and (not e.get("subnet_id") or e["subnet_id"] == found[0]):
            keep.append(found)
        else:
            if found is not None:
                by_ip[ip] = found
            add.append({**e, "ip_address": ip})
    by_subnet: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pair in by_ip.values():
        by_subnet[pair[0]].append(pair)
    for e in entries:
        if e.get("ip_address"):
            continue
        if not e.get("subnet_id"):
            raise errors.invalid_input("IP allocation requires subnet_id or ip_address")
        mine = by_subnet.get(e["subnet_id"])
        if not mine:
            add.append(e)
            continue
        orig = mine.pop()
        if ipam.is_eui64(orig[1]):
            add.append(e)
            remove_candidates.append(orig)
        else:
            keep.append(orig)
    subs = {s.id: s for s in await session.scalars(select(Subnet).where(
        Subnet.network_id == port.network_id))}
    remove: list[tuple[str, str]] = []
    for pair in [p for lst in by_subnet.values() for p in lst] + remove_candidates:
        sub = subs.get(pair[0])
        required = (owner in ipam.ROUTER_INTERFACE_OWNERS_SNAT or sub is None
                    or not ipam.subnet_is_auto(sub))
        (remove if required else keep).append(pair)
    candidates = await candidate_subnets(session, port.network_id, owner)
    wanted = await _requested(session, add, candidates, owner)
    _check_max_ips(st, len(keep) + len(wanted), owner)
    if remove:
        await ipam.release(session, port.id, remove)
        await session.flush()
    for sub, address in wanted:
        await _take(session, port, sub, address)
    return bool(remove or wanted)


async def _renumber_auto(session: AsyncSession, port: Port) -> None:
    """After a MAC change: the EUI-64 addresses follow the new MAC."""
    for sid, ip in await _current(session, port.id):
        sub = await session.get(Subnet, sid)
        if sub is not None and ipam.subnet_is_auto(sub) and ipam.is_eui64(ip):
            await ipam.release(session, port.id, [(sid, ip)])
            await session.flush()
            await ipam.allocate_auto(session, sub, port.id, port.mac_address)


# -- security groups --------------------------------------------------------------------


async def _default_group(st: NetworkState, session: AsyncSession,
                         project_id: str) -> str | None:
    try:
        from onestack.network.service import security_groups
    except ImportError:  # not there yet
        return None
    ensure = getattr(security_groups, "ensure_default", None)
    if ensure is None:
        return None
    group: str = await ensure(st, session, project_id)
    return group


async def _check_groups(session: AsyncSession, ids: list[str], project_id: str,
                        admin: bool) -> list[str]:
    """``ids`` (deduplicated), each a group of the port's project or shared.

    Raises:
        NotFound (SecurityGroupNotFound).
    """
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    rows = (await session.scalars(select(SecurityGroup).where(
        SecurityGroup.id.in_(wanted)))).all()
    valid = {g.id for g in rows if admin or g.project_id == project_id or g.shared}
    missing = [i for i in wanted if i not in valid]
    if missing:
        raise errors.security_group_not_found(", ".join(missing))
    return wanted


async def _bind_groups(session: AsyncSession, port_id: str, groups: list[str]) -> None:
    await session.execute(sql_delete(PortSecurityGroup).where(
        PortSecurityGroup.port_id == port_id))
    for g in groups:
        session.add(PortSecurityGroup(port_id=port_id, security_group_id=g))
    await session.flush()


# -- attribute helpers ------------------------------------------------------------------


def _pairs(pairs: list[dict[str, Any]] | None, mac: str) -> list[dict[str, str]]:
    return [{"ip_address": p["ip_address"], "mac_address": p.get("mac_address") or mac}
            for p in pairs or []]


def _dhcp_opts_create(opts: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for o in opts or []:
        if _opt_value_ok(o["opt_name"], o.get("opt_value")):
            out.append({"opt_name": o["opt_name"], "opt_value": o["opt_value"],
                        "ip_version": o.get("ip_version") or 4})
    return out


def _opt_value_ok(name: str, value: str | None) -> bool:
    if name in ("router", "classless-static-route"):
        return value is not None
    return bool(value)


def _dhcp_opts_update(current: list[dict[str, Any]],
                      changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutron's merge: an option (name, IP version) is replaced, added, or
    removed by a None value."""
    out = [dict(o) for o in current]
    for ch in changes:
        version = ch.get("ip_version") or 4
        match = next((o for o in out if o["opt_name"] == ch["opt_name"]
                      and o.get("ip_version", 4) == version), None)
        if match is not None:
            if ch.get("opt_value") is None:
                out.remove(match)
            elif _opt_value_ok(ch["opt_name"], ch["opt_value"]):
                match["opt_value"] = ch["opt_value"]
        elif _opt_value_ok(ch["opt_name"], ch.get("opt_value")):
            out.append({"opt_name": ch["opt_name"], "opt_value": ch["opt_value"],
                        "ip_version": version})
    return out


# -- create -----------------------------------------------------------------------------


async def create_port(st: NetworkState, session: AsyncSession, item: dict[str, Any], *,
                      admin: bool = False) -> Port:
    """A new port (``item`` as the API converts it; missing keys get defaults):
    MAC and addresses allocated, security groups bound (the project's default
    group unless given, port security is off or the owner is ``network:*``).

    Raises:
        NotFound (NetworkNotFound, SubnetNotFound, SecurityGroupNotFound);
        BadRequest; Conflict (OverQuota, MacAddressInUse, IpAddressAlreadyAllocated,
        IpAddressGenerationFailure, AddressPairAndPortSecurityRequired).
    """
    item = {**DEFAULTS, **{k: v for k, v in item.items() if v is not None or k not in
                           DEFAULTS}}
    net = await session.get(Network, item["network_id"])
    if net is None:
        raise errors.network_not_found(item["network_id"])
    owner = item["device_owner"] or ""
    project_id = item.get("project_id") or ""
    if not trusted(owner):
        await common.check_quota(st, session, project_id, "port", Port)
    psec = item["port_security_enabled"]
    if psec is None:
        psec = net.port_security_enabled
    if item["allowed_address_pairs"] and not psec:
        raise _address_pairs_need_security()
    if item["security_groups"] and not psec:
        raise _groups_need_security()
    host = item["binding:host_id"] or ""
    vif_type, vif_details = vif(net.id, host)
    port = Port(
        id=new_id(), project_id=project_id, network_id=net.id, name=item["name"] or "",
        description=item["description"] or "", admin_state_up=bool(item["admin_state_up"]),
        status="DOWN", device_id=item["device_id"] or "", device_owner=owner,
        port_security_enabled=bool(psec), dns_name=item["dns_name"] or "",
        extra_dhcp_opts=_dhcp_opts_create(item["extra_dhcp_opts"]),
        binding_host_id=host, binding_vnic_type=item["binding:vnic_type"] or "normal",
        binding_vif_type=vif_type, binding_vif_details=vif_details,
        binding_profile=dict(item["binding:profile"] or {}),
        propagate_uplink_status=bool(item["propagate_uplink_status"]),
    )
    await _insert_port(st, session, port, item["mac_address"])
    port.allowed_address_pairs = _pairs(item["allowed_address_pairs"], port.mac_address)
    await _allocate(st, session, port, item["fixed_ips"])
    if not trusted(owner) and psec:
        if item["security_groups"] is not None:
            groups = await _check_groups(session, item["security_groups"], project_id, admin)
        else:
            default = await _default_group(st, session, project_id)
            groups = [default] if default else []
        await _bind_groups(session, port.id, groups)
    await session.flush()
    await common.dataplane_changed(st, session, "port created")
    return port


# -- update -----------------------------------------------------------------------------


SIMPLE = {"name": "name", "description": "description", "admin_state_up": "admin_state_up",
          "device_id": "device_id", "device_owner": "device_owner", "dns_name": "dns_name",
          "binding:vnic_type": "binding_vnic_type",
          "propagate_uplink_status": "propagate_uplink_status"}


async def update_port(st: NetworkState, session: AsyncSession, port: Port,
                      values: dict[str, Any], *, admin: bool = False) -> None:
    """Change a port (one revision for the whole change).

    Raises:
        BadRequest; NotFound; Conflict (PortBound, MacAddressInUse,
        IpAddressAlreadyAllocated, IpAddressGenerationFailure,
        PortSecurityPortHasSecurityGroup, AddressPairAndPortSecurityRequired).
    """
    changed = False
    for key, col in SIMPLE.items():
        if key in values:
            value = values[key]
            if value is None:
                value = "" if col in ("name", "description", "device_id", "device_owner",
                                      "dns_name") else getattr(port, col)
            if getattr(port, col) != value:
                setattr(port, col, value)
                changed = True
    if "binding:profile" in values:
        profile = dict(values["binding:profile"] or {})
        if profile != (port.binding_profile or {}):
            port.binding_profile = profile
            changed = True
    new_mac = values.get("mac_address")
    if new_mac is not None and new_mac != port.mac_address:
        if port.binding_vif_type not in (UNBOUND, "binding_failed"):
            raise errors.conflict(
                "PortBound", f"Unable to complete operation on port {port.id}, port is "
                f"already bound, port type: {port.binding_vif_type}, old_mac "
                f"{port.mac_address}, new_mac {new_mac}.")
        taken = await session.scalar(select(func.count()).select_from(Port).where(
            Port.network_id == port.network_id, Port.mac_address == new_mac))
        if taken:
            raise mac_in_use(port.network_id, new_mac)
        port.mac_address = new_mac
        try:
            async with await ipam.savepoint(session):
                await session.flush()
        except IntegrityError:
            raise mac_in_use(port.network_id, new_mac) from None
        await _renumber_auto(session, port)
        changed = True
    if "binding:host_id" in values:
        host = values["binding:host_id"] or ""
        if host != port.binding_host_id:
            port.binding_host_id = host
            port.binding_vif_type, port.binding_vif_details = vif(port.network_id, host)
            port.status = "DOWN"
            changed = True
    if "fixed_ips" in values:
        changed |= await _change_fixed_ips(st, session, port, values["fixed_ips"] or [])
    if values.get("extra_dhcp_opts"):
        opts = _dhcp_opts_update(list(port.extra_dhcp_opts or []), values["extra_dhcp_opts"])
        if opts != (port.extra_dhcp_opts or []):
            port.extra_dhcp_opts = opts
            changed = True
    changed |= await _update_security(st, session, port, values, admin)
    if changed:
        common.touch(port)
        await session.flush()
        await common.dataplane_changed(st, session, "port updated")


async def _update_security(st: NetworkState, session: AsyncSession, port: Port,
                           values: dict[str, Any], admin: bool) -> bool:
    """Port security, allowed address pairs and security groups, checked as
    ML2 checks them. True if anything changed."""
    changed = False
    if values.get("port_security_enabled") is not None \
            and values["port_security_enabled"] != port.port_security_enabled:
        port.port_security_enabled = values["port_security_enabled"]
        changed = True
    current = (await groups_of(session, [port.id])).get(port.id, [])
    if not port.port_security_enabled:
        if values.get("allowed_address_pairs"):
            raise _address_pairs_need_security()
        if "allowed_address_pairs" not in values and port.allowed_address_pairs:
            raise _address_pairs_need_security()
        if values.get("security_groups"):
            raise _groups_need_security()
        if "security_groups" not in values and current:
            raise errors.conflict("PortSecurityPortHasSecurityGroup",
                                  "Port has security group associated. Cannot disable port "
                                  "security or IP address until security group is removed.")
    if "allowed_address_pairs" in values:
        pairs = _pairs(values["allowed_address_pairs"], port.mac_address)
        if pairs != (port.allowed_address_pairs or []):
            port.allowed_address_pairs = pairs
            changed = True
    if "security_groups" in values:
        wanted: list[str] = []
        if values["security_groups"] and not trusted(port.device_owner):
            wanted = await _check_groups(session, values["security_groups"],
                                         port.project_id, admin)
        if sorted(wanted) != sorted(current):
            await _bind_groups(session, port.id, wanted)
            changed = True
    return changed


# -- delete -----------------------------------------------------------------------------


async def check_deletable(session: AsyncSession, port: Port) -> None:
    """Ports of routers and floating IPs go with them, not through the port API.

    Raises:
        Conflict (ServicePortInUse).
    """
    if port.device_owner not in SERVICE_OWNERS:
        return
    model = FloatingIP if port.device_owner == FLOATINGIP else Router
    exists = await session.scalar(select(func.count()).select_from(model).where(
        model.id == port.device_id))
    if exists:
        raise errors.conflict("ServicePortInUse",
                              f"Port {port.id} cannot be deleted directly via the port API: "
                              f"has device owner {port.device_owner}.")


async def delete_port(st: NetworkState, session: AsyncSession, port: Port) -> None:
    """Remove a port: its addresses, security group bindings, tags and row;
    floating IPs pointing at it are disassociated."""
    for fip in (await session.scalars(select(FloatingIP).where(
            FloatingIP.fixed_port_id == port.id))).all():
        fip.fixed_port_id = None
        fip.fixed_ip_address = None
        fip.router_id = None
        fip.status = "DOWN"
        common.touch(fip)
    await session.execute(update(Router).where(Router.gw_port_id == port.id)
                          .values(gw_port_id=None))
    await ipam.release(session, port.id)
    await session.execute(sql_delete(PortSecurityGroup).where(
        PortSecurityGroup.port_id == port.id))
    await common.delete_tags(session, port.id)
    await session.flush()
    await session.delete(port)
    await session.flush()
    await common.dataplane_changed(st, session, "port deleted")
