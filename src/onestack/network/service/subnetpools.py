"""Subnet pools and the allocation of subnet prefixes from them.

A pool's prefixes are kept compacted (overlapping and adjacent prefixes merged,
as Neutron does); its prefix lengths default to 8 (IPv4) or 64 (IPv6) for the
minimum, the address length for the maximum, and the minimum for the default.
Allocating a prefix locks the pool's row and reads the pool's subnets with a
locking read (which sees rows other transactions committed meanwhile, on
MariaDB too), so two requests never get overlapping prefixes.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.context import RequestContext
from onestack.core.errors import CloudError
from onestack.network import errors
from onestack.network.api.common import standard
from onestack.network.models import Subnet, SubnetPool, new_id
from onestack.network.service import common
from onestack.network.state import NetworkState

Net = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_MIN = {4: 8, 6: 64}
MAX_LEN = {4: 32, 6: 128}
QUOTA_UNIT = {4: 32, 6: 64}  # IPv4 quotas count addresses, IPv6 quotas /64s


def render(pool: SubnetPool, tags: list[str]) -> dict[str, Any]:
    return {
        "id": pool.id,
        "name": pool.name,
        **standard(pool, tags),
        "ip_version": pool.ip_version,
        "prefixes": list(pool.prefixes or []),
        "default_prefixlen": pool.default_prefixlen,
        "min_prefixlen": pool.min_prefixlen,
        "max_prefixlen": pool.max_prefixlen,
        "default_quota": pool.default_quota,
        "shared": pool.shared,
        "is_default": pool.is_default,
        "address_scope_id": pool.address_scope_id,
    }


async def render_many(session: AsyncSession, pools: list[SubnetPool]) -> list[dict[str, Any]]:
    tags = await common.tags_of(session, [p.id for p in pools])
    return [render(p, tags.get(p.id, [])) for p in pools]


async def get_row(session: AsyncSession, pool_id: str) -> SubnetPool:
    pool = await session.get(SubnetPool, pool_id)
    if pool is None:
        raise errors.subnetpool_not_found(pool_id)
    return pool


async def show(session: AsyncSession, pool_id: str) -> dict[str, Any]:
    return (await render_many(session, [await get_row(session, pool_id)]))[0]


def visible_to(pool: SubnetPool, project_id: str | None, admin: bool) -> bool:
    return admin or pool.shared or pool.project_id == (project_id or "")


async def list_visible(session: AsyncSession, ctx: RequestContext, admin: bool,
                       filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    q = select(SubnetPool)
    if not admin:
        q = q.where(or_(SubnetPool.project_id == (ctx.project_id or ""),
                        SubnetPool.shared.is_(True)))
    if "id" in filters:
        q = q.where(SubnetPool.id.in_(filters["id"]))
    for key in ("project_id", "tenant_id"):
        if key in filters:
            q = q.where(SubnetPool.project_id.in_(filters[key]))
    return await render_many(session, list((await session.scalars(q)).all()))


# -- reading a pool's definition --------------------------------------------------------


def compact(prefixes: list[str]) -> tuple[int, list[str]]:
    """(ip_version, the prefixes merged and sorted).

    Raises:
        BadRequest (EmptySubnetPoolPrefixList, PrefixVersionMismatch).
    """
    if not prefixes:
        raise errors.bad_request("EmptySubnetPoolPrefixList", "Empty subnet pool prefix list.")
    nets = [ipaddress.ip_network(p, strict=False) for p in prefixes]
    versions = {n.version for n in nets}
    if len(versions) > 1:
        raise errors.bad_request("PrefixVersionMismatch",
                                 "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
    merged = ipaddress.collapse_addresses(nets)  # type: ignore[type-var]
    return nets[0].version, [str(n) for n in merged]


def _bounds_error(kind: str, value: int, base_kind: str, base: int) -> CloudError:
    return errors.bad_request("IllegalSubnetPoolPrefixBounds",
                              f"Illegal prefix bounds: {kind}={value}, {base_kind}={base}.")


def read_bounds(version: int, values: dict[str, Any]) -> tuple[int, int, int]:
    """(min, max, default) prefix lengths, defaults filled in and checked.

    Raises:
        BadRequest (IllegalSubnetPoolPrefixBounds).
    """
    lo = values.get("min_prefixlen")
    hi = values.get("max_prefixlen")
    lo = DEFAULT_MIN[version] if lo is None else lo
    hi = MAX_LEN[version] if hi is None else hi
    default = values.get("default_prefixlen")
    default = lo if default is None else default
    if lo > hi:
        raise _bounds_error("min_prefixlen", lo, "max_prefixlen", hi)
    if hi > MAX_LEN[version]:
        raise _bounds_error("max_prefixlen", hi, "ip_version_max", MAX_LEN[version])
    if default < lo:
        raise _bounds_error("default_prefixlen", default, "min_prefixlen", lo)
    if default > hi:
        raise _bounds_error("default_prefixlen", default, "max_prefixlen", hi)
    return lo, hi, default


async def _check_default_unique(session: AsyncSession, version: int,
                                exclude: str | None = None) -> None:
    q = select(func.count()).select_from(SubnetPool).where(
        SubnetPool.is_default.is_(True), SubnetPool.ip_version == version)
    if exclude:
        q = q.where(SubnetPool.id != exclude)
    if await session.scalar(q):
        raise errors.invalid_input("A default subnetpool for this IP family has already been "
                                   "set. Only one default may exist per IP family")


def _check_address_scope(scope_id: str | None) -> None:
    if scope_id is not None:
        raise errors.not_found("AddressScopeNotFound",
                               f"Address scope {scope_id} could not be found.")


async def create(st: NetworkState, session: AsyncSession, item: dict[str, Any]) -> str:
    """A new pool.

    Raises:
        BadRequest; Conflict (OverQuota).
    """
    version, prefixes = compact(item["prefixes"])
    lo, hi, default = read_bounds(version, item)
    if item.get("is_default"):
        await _check_default_unique(session, version)
    _check_address_scope(item.get("address_scope_id"))
    await common.check_quota(st, session, item["project_id"], "subnetpool", SubnetPool)
    pool = SubnetPool(
        id=new_id(), project_id=item["project_id"], name=item["name"],
        description=item.get("description") or "", ip_version=version, prefixes=prefixes,
        default_prefixlen=default, min_prefixlen=lo, max_prefixlen=hi,
        default_quota=item.get("default_quota"), shared=bool(item.get("shared")),
        is_default=bool(item.get("is_default")), address_scope_id=None,
    )
    session.add(pool)
    await session.flush()
    return pool.id


UPDATABLE = ("name", "description", "prefixes", "default_prefixlen", "min_prefixlen",
             "max_prefixlen", "default_quota", "is_default", "address_scope_id")


async def update(st: NetworkState, session: AsyncSession, pool: SubnetPool,
                 values: dict[str, Any]) -> None:
    """Change a pool; prefixes may only grow.

    Raises:
        BadRequest (IllegalSubnetPoolPrefixUpdate, IllegalSubnetPoolPrefixBounds,
        InvalidInput).
    """
    merged = {k: getattr(pool, k) for k in UPDATABLE}
    merged.update(values)
    if "prefixes" in values:
        version, prefixes = compact(values["prefixes"])
        if version != pool.ip_version:
            raise errors.bad_request("PrefixVersionMismatch",
                                     "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
        new = [ipaddress.ip_network(p) for p in prefixes]
        for old in (ipaddress.ip_network(p) for p in pool.prefixes or []):
            if not any(old.subnet_of(n) for n in new):  # type: ignore[arg-type]
                raise errors.bad_request(
                    "IllegalSubnetPoolPrefixUpdate",
                    "Illegal update to prefixes: Existing prefixes must be a subset of the "
                    "new prefixes.")
        merged["prefixes"] = prefixes
    lo, hi, default = read_bounds(pool.ip_version, merged)
    merged.update(min_prefixlen=lo, max_prefixlen=hi, default_prefixlen=default)
    if merged.get("is_default") and not pool.is_default:
        await _check_default_unique(session, pool.ip_version, exclude=pool.id)
    if "address_scope_id" in values:
        _check_address_scope(values["address_scope_id"])
    common.apply(pool, merged, UPDATABLE)


async def delete(st: NetworkState, session: AsyncSession, pool: SubnetPool) -> None:
    """Raises: BadRequest (SubnetPoolDeleteError) while subnets use the pool."""
    used = await session.scalar(select(func.count()).select_from(Subnet).where(
        Subnet.subnetpool_id == pool.id))
    if used:
        raise errors.bad_request("SubnetPoolDeleteError", "Unable to delete subnet pool: "
                                 "Subnet pool has existing allocations.")
    await common.delete_tags(session, pool.id)
    await session.delete(pool)


# -- allocating prefixes ----------------------------------------------------------------


def _allocation_error(reason: str) -> CloudError:
    return errors.conflict("SubnetAllocationError", f"Failed to allocate subnet: {reason}.")


def _available(prefixes: list[str], used: list[str]) -> list[Net]:
    """The pool's free space as CIDRs, smallest first (best fit)."""
    free: list[Net] = [ipaddress.ip_network(p) for p in prefixes]
    for u in (ipaddress.ip_network(c) for c in used):
        nxt: list[Net] = []
        for f in free:
            if f.version != u.version or not f.overlaps(u):
                nxt.append(f)
            elif u.supernet_of(f):  # type: ignore[arg-type]
                continue
            else:
                nxt.extend(f.address_exclude(u))  # type: ignore[arg-type]
        free = nxt
    merged = list(ipaddress.collapse_addresses(free))  # type: ignore[type-var]
    return sorted(merged, key=lambda n: (-n.prefixlen, int(n.network_address)))


async def allocate(session: AsyncSession, pool: SubnetPool, project_id: str,
                   prefixlen: int | None, cidr: str | None) -> str:
    """A prefix for a new subnet: ``cidr`` if it is free in the pool, else the
    first free block of ``prefixlen`` (the pool's default length if None).

    Raises:
        BadRequest (Min/MaxPrefixSubnetAllocationError); Conflict
        (SubnetAllocationError: no room; OverQuota: SubnetPoolQuotaExceeded).
    """
    want = ipaddress.ip_network(cidr).prefixlen if cidr else (
        pool.default_prefixlen if prefixlen is None else prefixlen)
    if want > pool.max_prefixlen:
        raise errors.bad_request(
            "MaxPrefixSubnetAllocationError",
            f"Unable to allocate subnet with prefix length {want}, maximum allowed prefix "
            f"is {pool.max_prefixlen}.")
    if want < pool.min_prefixlen:
        raise errors.bad_request(
            "MinPrefixSubnetAllocationError",
            f"Unable to allocate subnet with prefix length {want}, minimum allowed prefix "
            f"is {pool.min_prefixlen}.")
    # one allocation at a time per pool; the locking read sees committed rows
    await session.execute(select(SubnetPool.id).where(SubnetPool.id == pool.id)
                          .with_for_update(key_share=True))
    rows = (await session.execute(
        select(Subnet.cidr, Subnet.project_id).where(Subnet.subnetpool_id == pool.id)
        .with_for_update(read=True))).all()
    if pool.default_quota:
        unit = QUOTA_UNIT[pool.ip_version]
        used = sum(2 ** (unit - ipaddress.ip_network(c).prefixlen)
                   for c, p in rows if p == project_id)
        if used + 2 ** (unit - want) > pool.default_quota:
            raise errors.conflict("SubnetPoolQuotaExceeded",
                                  "Per-project subnet pool prefix quota exceeded.")
    free = _available(list(pool.prefixes or []), [c for c, _ in rows])
    if cidr:
        net = ipaddress.ip_network(cidr)
        if any(net.version == f.version and net.subnet_of(f) for f in free):  # type: ignore
            return str(net)
        raise _allocation_error("Cannot allocate requested subnet from the available set "
                                "of prefixes")
    for block in free:
        if block.prefixlen <= want:
            return str(next(block.subnets(new_prefix=want)))
    raise _allocation_error(f"Insufficient prefix space to allocate subnet size /{want}")


async def default_pool(session: AsyncSession, version: int) -> SubnetPool | None:
    found: SubnetPool | None = await session.scalar(select(SubnetPool).where(
        SubnetPool.is_default.is_(True), SubnetPool.ip_version == version))
    return found
