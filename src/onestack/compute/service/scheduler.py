"""Compute nodes, the scheduler and claims.

This host registers its compute node at start (its inventory from the driver,
the allocation ratios from the settings); every host sharing the database does,
and the scheduler places servers on any of them. The scheduler reads every node, runs
the filters (ComputeFilter: the host's ``nova-compute`` service is enabled, not
forced down and up, its last heartbeat within ``service_down_time``; availability zone; resources; for a member of a server group,
ServerGroupAffinityFilter and ServerGroupAntiAffinityFilter), and claims on the
best remaining node (most free RAM; a soft-affinity group's member prefers the
hosts with most members of its group, a soft-anti-affinity one those with
fewest, as Nova's weighers, so soft policies never fail a boot). The hosts of a
group's members are read from their allocations in the claim's transaction, so
a member claimed a moment ago counts. A claim is one conditional ``UPDATE`` of the
node's usage counters (``... WHERE vcpus_used + :v <= vcpus * ratio ...``),
checked by its row count, with the allocation row inserted in the same
transaction: two concurrent boots cannot both take the last slot, on SQLite,
PostgreSQL and MariaDB alike. A claim that loses the race schedules again with
fresh numbers, and the resource filter then removes that node with its reason.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.compute.drivers.base import Inventory
from onestack.compute.models import (
    Allocation,
    ComputeNode,
    ServerGroup,
    ServerGroupMember,
    Service,
    utcnow,
)
from onestack.compute.state import ComputeState

CLAIM_ATTEMPTS = 5
COMPUTE_BINARY = "nova-compute"


@dataclass(frozen=True)
class Request:
    vcpus: int
    memory_mb: int
    disk_gb: int
    availability_zone: str | None = None
    host: str | None = None  # a requested destination (unshelve to a host, 2.91)
    # hosts a build is not to go back to (its host went down before building it:
    # the build is rescheduled elsewhere, as Nova's retries avoid the failed host)
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    """The server group of the instance being scheduled: its policy, its
    ``max_server_per_host`` and how many of its other members each host holds."""

    uuid: str
    policy: str
    max_per_host: int = 1
    hosts: tuple[tuple[str, int], ...] = ()

    def on(self, host: str) -> int:
        return dict(self.hosts).get(host, 0)


class NoValidHost(Exception):
    """Nothing fits; the message names the filters and the hosts they removed."""


def ratios(st: ComputeState) -> tuple[float, float, float]:
    conf = st.conf
    return conf.cpu_allocation_ratio, conf.ram_allocation_ratio, conf.disk_allocation_ratio


async def register_node(st: ComputeState, inv: Inventory) -> int:
    """Create or refresh this host's node row (inventory, ratios, zone); its id."""
    cpu, ram, disk = ratios(st)
    values: dict[str, Any] = {
        "host": st.host, "hypervisor_type": inv.hypervisor_type, "vcpus": inv.vcpus,
        "memory_mb": inv.memory_mb, "local_gb": inv.local_gb, "cpu_allocation_ratio": cpu,
        "ram_allocation_ratio": ram, "disk_allocation_ratio": disk,
        "availability_zone": st.conf.default_availability_zone,
    }
    async with st.db.write() as s:
        node = await s.scalar(select(ComputeNode).where(
            ComputeNode.hypervisor_hostname == st.host))
        if node is None:
            node = ComputeNode(uuid=str(uuid.uuid4()), hypervisor_hostname=st.host,
                               vcpus_used=0, memory_mb_used=0, local_gb_used=0, **values)
            s.add(node)
        else:
            for k, v in values.items():
                setattr(node, k, v)
            node.updated_at = utcnow()
        await s.flush()
        return node.id


async def set_inventory(st: ComputeState, node_id: int, **fields: Any) -> None:
    """Change a node's inventory or ratios (tests size a small host with it)."""
    async with st.db.write() as s:
        await s.execute(update(ComputeNode).where(ComputeNode.id == node_id).values(**fields))


def _free(node: ComputeNode) -> tuple[int, int, int]:
    return (math.floor(node.vcpus * node.cpu_allocation_ratio) - node.vcpus_used,
            math.floor(node.memory_mb * node.ram_allocation_ratio) - node.memory_mb_used,
            math.floor(node.local_gb * node.disk_allocation_ratio) - node.local_gb_used)


def _shortfall(node: ComputeNode, req: Request) -> str | None:
    cpu, ram, disk = _free(node)
    lacking = []
    if req.vcpus > cpu:
        lacking.append(f"VCPU: {req.vcpus} requested, {max(cpu, 0)} free")
    if req.memory_mb > ram:
        lacking.append(f"MEMORY_MB: {req.memory_mb} requested, {max(ram, 0)} free")
    if req.disk_gb > disk:
        lacking.append(f"DISK_GB: {req.disk_gb} requested, {max(disk, 0)} free")
    return "; ".join(lacking) or None


def _group_filters(kept: list[ComputeNode], group: Group,
                   removed: list[str]) -> list[ComputeNode]:
    """ServerGroupAffinityFilter (only the hosts of the other members, once there are
    some) and ServerGroupAntiAffinityFilter (no host that already holds
    ``max_server_per_host`` members)."""
    if group.policy == "affinity" and group.hosts:
        wanted = ", ".join(h for h, _ in group.hosts)
        out = [n for n in kept if group.on(n.host)]
        gone = [n.hypervisor_hostname for n in kept if n not in out]
        if gone:
            removed.append(f"ServerGroupAffinityFilter removed {', '.join(gone)} (not the "
                           f"host of server group {group.uuid}'s members: {wanted})")
        return out
    if group.policy == "anti-affinity":
        out = [n for n in kept if group.on(n.host) < group.max_per_host]
        gone = [f"{n.hypervisor_hostname} ({group.on(n.host)} of server group "
                f"{group.uuid}'s members already there, at most {group.max_per_host})"
                for n in kept if n not in out]
        if gone:
            removed.append(f"ServerGroupAntiAffinityFilter removed {', '.join(gone)}")
        return out
    return kept


def run_filters(nodes: list[ComputeNode], req: Request,
                services: dict[str, str] | None = None,
                group: Group | None = None) -> tuple[list[ComputeNode], list[str]]:
    """The nodes every filter passes, and one line per filter that removed some.
    ``services`` maps a host whose ``nova-compute`` service is out of service to
    why ("disabled", "forced down")."""
    removed: list[str] = []
    out = services or {}

    def why_out(n: ComputeNode) -> str | None:
        return "disabled" if n.disabled else out.get(n.host)

    enabled = [n for n in nodes if why_out(n) is None]
    if len(enabled) < len(nodes):
        gone = [f"{n.hypervisor_hostname} ({why_out(n)})" for n in nodes if why_out(n)]
        removed.append(f"ComputeFilter removed {', '.join(gone)}")
    kept = enabled
    if req.exclude:
        retry = [n for n in kept if n.host not in req.exclude]
        gone = [n.hypervisor_hostname for n in kept if n not in retry]
        if gone:
            removed.append(f"RetryFilter removed {', '.join(gone)} (went down before "
                           "building it)")
        kept = retry
    if req.host:
        there = [n for n in kept if n.host == req.host]
        gone = [n.hypervisor_hostname for n in kept if n not in there]
        if gone:
            removed.append(f"the requested destination {req.host} removed {', '.join(gone)}")
        kept = there
    if req.availability_zone:
        in_zone = [n for n in kept if n.availability_zone == req.availability_zone]
        gone = [n.hypervisor_hostname for n in kept if n not in in_zone]
        if gone:
            removed.append(f"AvailabilityZoneFilter removed {', '.join(gone)} (not in "
                           f"availability zone {req.availability_zone})")
        kept = in_zone
    if group is not None:
        kept = _group_filters(kept, group, removed)
    fitting, reasons = [], []
    for n in kept:
        why = _shortfall(n, req)
        if why is None:
            fitting.append(n)
        else:
            reasons.append(f"{n.hypervisor_hostname} ({why})")
    if reasons:
        removed.append(f"ResourceFilter removed {', '.join(reasons)}")
    return fitting, removed


async def out_of_service(s: AsyncSession, st: ComputeState | None = None) -> dict[str, str]:
    """Hosts whose ``nova-compute`` service is disabled, forced down or (with
    ``st``, for its ``service_down_time``) down: no heartbeat for that long; and why."""
    rows = await s.execute(select(Service.host, Service.disabled, Service.forced_down).where(
        Service.binary == COMPUTE_BINARY,
        or_(Service.disabled.is_(True), Service.forced_down.is_(True))))
    out = {host: "disabled" if disabled else "forced down" for host, disabled, _ in rows}
    if st is not None:
        now = utcnow()
        since = now - timedelta(seconds=st.conf.service_down_time)
        beats = await s.execute(select(Service.host, Service.updated_at, Service.created_at)
                                .where(Service.binary == COMPUTE_BINARY))
        for host, updated, created in beats:
            last = updated or created
            if host not in out and host != st.host and last < since:
                out[host] = (f"down: no heartbeat for {int((now - last).total_seconds())} s, "
                             f"service_down_time {st.conf.service_down_time:g} s")
    return out


async def group_of(s: AsyncSession, instance_uuid: str) -> Group | None:
    """The instance's server group, with the hosts its other members hold claims on.

    The group's row is locked (``SELECT ... FOR UPDATE``) until the caller's
    transaction ends, so that members scheduled at once (by several hosts, on
    PostgreSQL or MariaDB) each see the others' claims; SQLite has one writer anyway.
    Called first in its transaction: MariaDB's repeatable read takes its snapshot at
    the first plain read, which then comes after the lock.
    """
    m = ServerGroupMember
    group = await s.scalar(select(ServerGroup).join(m, m.group_id == ServerGroup.id)
                           .where(m.instance_uuid == instance_uuid).with_for_update())
    if group is None:
        return None
    rows = await s.execute(
        select(ComputeNode.host, func.count(Allocation.instance_uuid))
        .join(Allocation, Allocation.node_id == ComputeNode.id)
        .join(m, m.instance_uuid == Allocation.instance_uuid)
        .where(m.group_id == group.id, m.instance_uuid != instance_uuid)
        .group_by(ComputeNode.host).order_by(ComputeNode.host))
    max_per_host = int((group.rules or {}).get("max_server_per_host", 1))
    return Group(group.uuid, group.policy, max_per_host, tuple((h, int(c)) for h, c in rows))


def weigh(node: ComputeNode, group: Group | None) -> tuple[int, int, int]:
    """The best node has the highest weight: the soft group policies first (more
    members for soft-affinity, fewer for soft-anti-affinity), then free RAM."""
    members = 0
    if group is not None and group.policy == "soft-affinity":
        members = group.on(node.host)
    elif group is not None and group.policy == "soft-anti-affinity":
        members = -group.on(node.host)
    return members, _free(node)[1], -node.id


async def _claim(s: AsyncSession, node_id: int, instance_uuid: str, req: Request) -> bool:
    n = ComputeNode
    res = await s.execute(
        update(n)
        .where(n.id == node_id,
               n.vcpus_used + req.vcpus <= n.vcpus * n.cpu_allocation_ratio,
               n.memory_mb_used + req.memory_mb <= n.memory_mb * n.ram_allocation_ratio,
               n.local_gb_used + req.disk_gb <= n.local_gb * n.disk_allocation_ratio)
        .values(vcpus_used=n.vcpus_used + req.vcpus,
                memory_mb_used=n.memory_mb_used + req.memory_mb,
                local_gb_used=n.local_gb_used + req.disk_gb)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return False
    s.add(Allocation(instance_uuid=instance_uuid, node_id=node_id, vcpus=req.vcpus,
                     memory_mb=req.memory_mb, disk_gb=req.disk_gb))
    await s.flush()
    return True


async def schedule(st: ComputeState, instance_uuid: str, req: Request) -> ComputeNode:
    """Claim ``req`` on a node for the instance (or return the node it holds).

    Raises:
        NoValidHost: no node passes the filters.
    """
    for _ in range(CLAIM_ATTEMPTS):
        async with st.db.write() as s:
            group = await group_of(s, instance_uuid)  # first: it locks the group
            held = await s.get(Allocation, instance_uuid)
            if held is not None:
                node = await s.get(ComputeNode, held.node_id)
                assert node is not None
                return node
            nodes = list(await s.scalars(select(ComputeNode).order_by(ComputeNode.id)))
            fitting, removed = run_filters(nodes, req, await out_of_service(s, st), group)
            if not fitting:
                detail = "; ".join(removed) if removed else "there are no compute hosts"
                raise NoValidHost("No valid host was found. " + detail + ".")
            best = max(fitting, key=lambda n: weigh(n, group))
            if await _claim(s, best.id, instance_uuid, req):
                return best
    raise NoValidHost("No valid host was found. Claims kept failing on every host "
                      f"after {CLAIM_ATTEMPTS} attempts (concurrent boots).")


async def free(s: AsyncSession, instance_uuid: str) -> None:
    """Give an instance's allocation back, in the caller's transaction (no-op if it
    holds none)."""
    alloc = await s.get(Allocation, instance_uuid)
    if alloc is None:
        return
    n = ComputeNode
    await s.execute(update(n).where(n.id == alloc.node_id).values(
        vcpus_used=n.vcpus_used - alloc.vcpus, memory_mb_used=n.memory_mb_used - alloc.memory_mb,
        local_gb_used=n.local_gb_used - alloc.disk_gb))
    await s.execute(delete(Allocation).where(Allocation.instance_uuid == instance_uuid))
