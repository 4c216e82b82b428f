"""IP address management: allocation pools, EUI-64 addresses, and allocating a
port's addresses so that no address is ever given twice.

Uniqueness is the database's job: an address is a row of
``network_ip_allocations`` whose primary key is (subnet, address). Every insert
runs in a savepoint; when a concurrent transaction took the same address first,
the insert fails, the address joins an exclusion set and the search goes on
(the exclusion set matters on MariaDB, whose repeatable-read snapshot keeps
showing the address as free). This holds on SQLite, PostgreSQL and MariaDB.

The free-address search reads a subnet's allocated addresses in one query and
walks the pools from a per-subnet hint (the address after the last one this
process handed out), so a search is O(allocated) at worst; the common case, a
free hint, needs no read at all: the insert itself is the check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import CloudError
from onestack.network import errors
from onestack.network.models import IPAllocation, Subnet

DHCP_OWNER = "network:dhcp"
ROUTER_INTERFACE_OWNERS = (
    "network:router_interface",
    "network:ha_router_replicated_interface",
    "network:router_interface_distributed",
)
ROUTER_INTERFACE_OWNERS_SNAT = ROUTER_INTERFACE_OWNERS + ("network:router_centralized_snat",)
ROUTER_PORT_OWNERS = ROUTER_INTERFACE_OWNERS_SNAT + ("network:router_gateway",)
IPV6_MODES = ("dhcpv6-stateful", "dhcpv6-stateless", "slaac")
AUTO_ADDRESS_MODES = ("slaac", "dhcpv6-stateless")

# subnet id -> the next address this process would hand out (a hint, never a promise)
_HINTS: dict[str, int] = {}
_MAX_HINTS = 4096
_MAX_ATTEMPTS = 10000

Range = tuple[int, int]


# -- addresses ----------------------------------------------------------------------------


def canonical_ip(value: str) -> str:
    """``value`` as Neutron stores it (IPv6 compressed, lower case)."""
    return str(ipaddress.ip_address(value))


def ip_int(value: str) -> int:
    return int(ipaddress.ip_address(value))


def ip_str(version: int, value: int) -> str:
    return str(ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value))


def network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def first_host(cidr: str) -> str:
    """The default gateway: the address after the network address."""
    net = network(cidr)
    return ip_str(net.version, int(net.network_address) + 1)


def is_auto_address(ra_mode: str | None, address_mode: str | None) -> bool:
    """Whether addresses on the subnet come from SLAAC (EUI-64), as Neutron's
    ``is_auto_address_subnet``."""
    if address_mode is not None:
        return address_mode in AUTO_ADDRESS_MODES
    return ra_mode in AUTO_ADDRESS_MODES


def subnet_is_auto(subnet: Subnet) -> bool:
    return subnet.ip_version == 6 and is_auto_address(subnet.ipv6_ra_mode,
                                                      subnet.ipv6_address_mode)


def check_subnet_ip(cidr: str, ip: str, owner: str = "") -> bool:
    """Whether ``ip`` may be a port's address on ``cidr``: inside it, and not its
    network address (nor, in IPv4, its broadcast address; IPv6 router ports may
    take the subnet-router anycast address)."""
    net = network(cidr)
    addr = ipaddress.ip_address(ip)
    if addr.version != net.version or addr not in net:
        return False
    if net.version == 6:
        return owner in ROUTER_PORT_OWNERS + ("",) or addr != net.network_address
    return addr != net.network_address and addr != net.broadcast_address


def gateway_invalid(cidr: str, gateway: str) -> bool:
    """A gateway inside the subnet may not be its network (or IPv4 broadcast)
    address; one outside it is the operator's business."""
    net = network(cidr)
    addr = ipaddress.ip_address(gateway)
    if addr.version != net.version or addr not in net:
        return False
    return addr == net.network_address or (net.version == 4
                                            and addr == net.broadcast_address)


def eui64(cidr: str, mac: str) -> str:
    """The SLAAC address of ``mac`` on the IPv6 prefix ``cidr`` (RFC 4291)."""
    octets = [int(o, 16) for o in mac.split(":")]
    octets[0] ^= 0x02
    iid = bytes(octets[:3] + [0xFF, 0xFE] + octets[3:])
    net = network(cidr)
    prefix = int(net.network_address) & ~((1 << 64) - 1)
    return str(ipaddress.IPv6Address(prefix | int.from_bytes(iid, "big")))


def is_eui64(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return addr.version == 6 and (int(addr) >> 24) & 0xFFFF == 0xFFFE


# -- pools --------------------------------------------------------------------------------


def generate_pools(cidr: str, gateway: str | None) -> list[dict[str, str]]:
    """The default pools: every host address but the gateway (Neutron's
    ``generate_pools``: IPv4 loses the broadcast address; /31 gets none)."""
    net = network(cidr)
    first, last = int(net.network_address), int(net.broadcast_address)
    if first == last:
        return [{"start": ip_str(net.version, first), "end": ip_str(net.version, last)}]
    lo, hi = first + 1, last - (1 if net.version == 4 else 0)
    if lo >= hi:
        return []
    ranges: list[Range] = [(lo, hi)]
    if gateway is not None:
        gw = ip_int(gateway)
        if lo <= gw <= hi:
            ranges = [r for r in ((lo, gw - 1), (gw + 1, hi)) if r[0] <= r[1]]
    return [{"start": ip_str(net.version, a), "end": ip_str(net.version, b)} for a, b in ranges]


def _pool_text(pool: Range, version: int) -> str:
    return f"{ip_str(version, pool[0])}-{ip_str(version, pool[1])}"


def parse_pools(pools: list[dict[str, str]], cidr: str) -> list[Range]:
    """Allocation pools as integer ranges, checked as Neutron checks them.

    Raises:
        BadRequest (InvalidAllocationPool, OutOfBoundsAllocationPool);
        Conflict (OverlappingAllocationPools).
    """
    net = network(cidr)
    ranges: list[Range] = []
    for pool in pools:
        try:
            start = ipaddress.ip_address(pool["start"])
            end = ipaddress.ip_address(pool["end"])
        except (KeyError, ValueError):
            raise errors.bad_request("InvalidAllocationPool",
                                     f"The allocation pool {pool} is not valid.") from None
        if start.version != end.version or int(start) > int(end):
            raise errors.bad_request("InvalidAllocationPool",
                                     f"The allocation pool {pool} is not valid.")
        if start.version != net.version:
            raise errors.bad_request(
                "InvalidAllocationPool",
                f"The allocation pool {_pool_text((int(start), int(end)), start.version)} "
                "is not valid.")
        ranges.append((int(start), int(end)))
    lo = int(net.network_address) + 1
    hi = int(net.broadcast_address) - (1 if net.version == 4 else 0)
    for r in ranges:
        if r[0] < lo or r[1] > hi:
            raise errors.bad_request(
                "OutOfBoundsAllocationPool",
                f"The allocation pool {_pool_text(r, net.version)} spans beyond the subnet "
                f"cidr {cidr}.")
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            if a[0] <= b[1] and b[0] <= a[1]:
                raise errors.conflict(
                    "OverlappingAllocationPools",
                    f"Found overlapping allocation pools: {_pool_text(a, net.version)} "
                    f"{_pool_text(b, net.version)} for subnet {cidr}.")
    return ranges


def check_gateway_out_of_pools(gateway: str | None, ranges: Iterable[Range],
                               version: int) -> None:
    """Raises: Conflict (GatewayConflictWithAllocationPools)."""
    if not gateway:
        return
    gw = ip_int(gateway)
    for r in ranges:
        if r[0] <= gw <= r[1]:
            raise errors.conflict(
                "GatewayConflictWithAllocationPools",
                f"Gateway ip {gateway} conflicts with allocation pool "
                f"{_pool_text(r, version)}.")


def pool_ranges(subnet: Subnet) -> list[Range]:
    return sorted((ip_int(p["start"]), ip_int(p["end"])) for p in subnet.allocation_pools or [])


def in_pools(subnet: Subnet, ip: str) -> bool:
    value = ip_int(ip)
    return any(a <= value <= b for a, b in pool_ranges(subnet))


# -- allocation ---------------------------------------------------------------------------


async def savepoint(session: AsyncSession) -> Any:
    """``session.begin_nested()``, once SQLite's transaction has really begun:
    pysqlite opens it only before a data-changing statement, so a SAVEPOINT as
    the first write would run outside it and its RELEASE would commit."""
    conn = await session.connection()
    if conn.dialect.name == "sqlite":
        raw = await conn.get_raw_connection()
        if not raw.driver_connection.in_transaction:  # type: ignore[union-attr]
            await conn.exec_driver_sql("BEGIN")
    return session.begin_nested()


def _duplicate(exc: IntegrityError) -> bool:
    """Whether a failed insert hit a unique key (and not a foreign key)."""
    text = str(exc.orig).lower()
    if "foreign key" in text or "child row" in text:
        return False
    return "unique" in text or "duplicate" in text


def already_allocated(ip: str, subnet_id: str) -> CloudError:
    return errors.conflict("IpAddressAlreadyAllocated",
                           f"IP address {ip} already allocated in subnet {subnet_id}")


def subnet_exhausted(subnet_id: str) -> CloudError:
    return errors.conflict("IpAddressGenerationFailure",
                           f"No more IP addresses available for subnet {subnet_id}.")


def network_exhausted(network_id: str) -> CloudError:
    return errors.conflict("IpAddressGenerationFailure",
                           f"No more IP addresses available on network {network_id}.")


async def _insert(session: AsyncSession, subnet: Subnet, port_id: str, ip: str) -> bool:
    """Insert one allocation in a savepoint; False when the address is taken.

    Raises:
        NotFound (SubnetNotFound): the subnet went away concurrently.
    """
    try:
        async with await savepoint(session):
            session.add(IPAllocation(subnet_id=subnet.id, ip_address=ip,
                                     network_id=subnet.network_id, port_id=port_id))
    except IntegrityError as exc:
        if _duplicate(exc):
            return False
        raise errors.subnet_not_found(subnet.id) from None
    return True


async def allocate_specific(session: AsyncSession, subnet: Subnet, port_id: str,
                            ip: str) -> str:
    """Give ``ip`` (checked to be on the subnet already) to the port.

    Raises:
        Conflict (IpAddressAlreadyAllocated).
    """
    ip = canonical_ip(ip)
    if not await _insert(session, subnet, port_id, ip):
        raise already_allocated(ip, subnet.id)
    return ip


def _search(ranges: list[Range], taken: set[int], start: int | None) -> int | None:
    """The first address of ``ranges`` not in ``taken``, from ``start`` on and
    then from the beginning."""
    passes: list[list[Range]] = []
    if start is None:
        passes.append(ranges)
    else:
        passes.append([(max(a, start), b) for a, b in ranges if b >= start])
        passes.append([(a, min(b, start - 1)) for a, b in ranges if a < start])
    for part in passes:
        for a, b in part:
            x = a
            while x <= b:
                if x not in taken:
                    return x
                x += 1
    return None


async def _taken(session: AsyncSession, subnet_id: str) -> set[int]:
    rows = await session.scalars(
        select(IPAllocation.ip_address).where(IPAllocation.subnet_id == subnet_id))
    return {ip_int(r) for r in rows}


async def allocate_any(session: AsyncSession, subnet: Subnet, port_id: str,
                       prefer_next: bool = False) -> str | None:
    """A free address of the subnet's pools for the port, or None when there is
    none. ``prefer_next`` (DHCP ports) takes the lowest free address."""
    ranges = pool_ranges(subnet)
    if not ranges:
        return None
    gateway = ip_int(subnet.gateway_ip) if subnet.gateway_ip else None
    exclude: set[int] = set() if gateway is None else {gateway}
    start = None if prefer_next else _HINTS.get(subnet.id)
    blind = start is not None  # try the hint without reading anything first
    for _ in range(_MAX_ATTEMPTS):
        if blind and start is not None and start not in exclude \
                and any(a <= start <= b for a, b in ranges):
            candidate: int | None = start
        else:
            candidate = _search(ranges, await _taken(session, subnet.id) | exclude, start)
        blind = False
        if candidate is None:
            return None
        ip = ip_str(subnet.ip_version, candidate)
        if await _insert(session, subnet, port_id, ip):
            if not prefer_next:
                if len(_HINTS) >= _MAX_HINTS:
                    _HINTS.clear()
                _HINTS[subnet.id] = candidate + 1
            return ip
        # taken meanwhile (or the hint was stale): search on from there
        exclude.add(candidate)
        start = None if prefer_next else candidate + 1
    raise errors.conflict("IpAddressGenerationFailure",
                          f"Could not allocate an address on subnet {subnet.id}; try again.")


async def allocate_auto(session: AsyncSession, subnet: Subnet, port_id: str,
                        mac: str) -> str:
    """The port's EUI-64 address on a SLAAC subnet.

    Raises:
        Conflict (IpAddressAlreadyAllocated).
    """
    return await allocate_specific(session, subnet, port_id, eui64(subnet.cidr, mac))


async def release(session: AsyncSession, port_id: str,
                  pairs: Iterable[tuple[str, str]] | None = None) -> None:
    """Free the port's addresses (all, or the given (subnet, address) pairs)."""
    q = sql_delete(IPAllocation).where(IPAllocation.port_id == port_id)
    if pairs is None:
        await session.execute(q)
        return
    for subnet_id, ip in pairs:
        await session.execute(q.where(IPAllocation.subnet_id == subnet_id,
                                      IPAllocation.ip_address == ip))


def sort_key(ip: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(ip)
    return addr.version, int(addr)
