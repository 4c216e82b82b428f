"""os-services and os-hypervisors: the Nova services of each host and the
compute nodes (hypervisors) they run.

This host registers its services at start: ``nova-compute`` beside its compute
node, ``nova-scheduler`` and ``nova-conductor`` for the API it serves (the
scheduler and conductor are part of the API process here). An admin may disable
a ``nova-compute`` service (with a reason) or force it down: the scheduler's
ComputeFilter then skips its host.

Heartbeats, as Nova's database service group: every ``report_interval`` seconds
(``[compute]``, Nova's 10) a running host writes ``updated_at`` on its service
rows; a service is ``up`` when that is at most ``service_down_time`` seconds old
(Nova's 60) and it is not forced down. A host whose heartbeat stopped is
``down``: the scheduler skips it, a server on it is deleted without its guest
(Nova's local delete), and the builds handed to it that it has not started are
rescheduled by the other hosts (``build_takeover.take_over_builds``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.compute.models import ComputeNode, Instance, Service, utcnow
from onestack.compute.service.scheduler import COMPUTE_BINARY
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest, NotFound

log = logging.getLogger("onestack.compute")

BINARIES = {COMPUTE_BINARY: "compute", "nova-scheduler": "scheduler",
            "nova-conductor": "conductor"}
INTERNAL_ZONE = "internal"


async def register_services(st: ComputeState) -> None:
    """Create (or mark started) this host's services."""
    now = utcnow()
    async with st.db.write() as s:
        for binary, topic in BINARIES.items():
            row = await s.scalar(select(Service).where(Service.host == st.host,
                                                       Service.binary == binary))
            if row is None:
                s.add(Service(uuid=str(uuidlib.uuid4()), host=st.host, binary=binary,
                              topic=topic, disabled=False, forced_down=False,
                              created_at=now, updated_at=now))
            else:
                row.updated_at = now


def down_time(st: ComputeState) -> timedelta:
    return timedelta(seconds=st.conf.service_down_time)


def last_heartbeat(svc: Service) -> datetime:
    return svc.updated_at or svc.created_at


def alive(st: ComputeState, svc: Service, now: datetime | None = None) -> bool:
    """Its heartbeat is recent (whether or not it is forced down)."""
    return last_heartbeat(svc) >= (now or utcnow()) - down_time(st)


async def heartbeat(st: ComputeState) -> None:
    """Write ``updated_at`` on this host's services (one heartbeat)."""
    async with st.db.write() as s:
        await s.execute(update(Service).where(Service.host == st.host)
                        .values(updated_at=utcnow()))


async def report_state(st: ComputeState) -> None:
    """Beat every ``report_interval`` seconds until cancelled; a failed beat (the
    database away for a moment) is logged and the next one tried."""
    while True:
        await asyncio.sleep(st.conf.report_interval)
        try:
            await heartbeat(st)
        except Exception:
            log.exception("the compute service's heartbeat failed")


async def down_hosts(st: ComputeState, s: AsyncSession) -> dict[str, datetime]:
    """Hosts whose ``nova-compute`` heartbeat is older than ``service_down_time``,
    with their last heartbeat."""
    since = utcnow() - down_time(st)
    rows = await s.execute(select(Service.host, Service.updated_at, Service.created_at).where(
        Service.binary == COMPUTE_BINARY))
    return {host: updated or created for host, updated, created in rows
            if (updated or created) < since}


async def is_up(st: ComputeState, host: str, s: AsyncSession | None = None) -> bool:
    """The host's ``nova-compute`` beats and is not forced down (this host always is)."""
    if host == st.host:
        return True
    q = select(Service).where(Service.host == host, Service.binary == COMPUTE_BINARY)
    if s is None:
        async with st.db.read() as sess:
            row = await sess.scalar(q)
    else:
        row = await s.scalar(q)
    return row is not None and not row.forced_down and alive(st, row)


# a server's ``host_status`` (2.16), from its host's ``nova-compute`` service as
# Nova's compute API derives it: forced down wins, then disabled, then the heartbeat
HOST_UP, HOST_DOWN, HOST_MAINTENANCE, HOST_UNKNOWN, HOST_NONE = (
    "UP", "DOWN", "MAINTENANCE", "UNKNOWN", "")


def host_status_of(st: ComputeState, svc: Service | None,
                   now: datetime | None = None) -> str:
    """``DOWN`` when forced down, ``MAINTENANCE`` when disabled, ``UP`` while it
    beats, ``UNKNOWN`` once its heartbeat is older than ``service_down_time``;
    "" without a service."""
    if svc is None:
        return HOST_NONE
    if svc.forced_down:
        return HOST_DOWN
    if svc.disabled:
        return HOST_MAINTENANCE
    return HOST_UP if alive(st, svc, now) else HOST_UNKNOWN


async def host_statuses(st: ComputeState, hosts: Iterable[str | None]) -> dict[str, str]:
    """The ``host_status`` of each of ``hosts`` (one query for them all); a
    missing or empty host is "" (a server on no host)."""
    wanted = {h for h in hosts if h}
    if not wanted:
        return {}
    async with st.db.read() as s:
        rows = {r.host: r for r in await s.scalars(select(Service).where(
            Service.binary == COMPUTE_BINARY, Service.host.in_(sorted(wanted))))}
    now = utcnow()
    return {h: host_status_of(st, rows.get(h), now) for h in wanted}


def zone_of(st: ComputeState, svc: Service) -> str:
    return (st.conf.default_availability_zone if svc.binary == COMPUTE_BINARY
            else INTERNAL_ZONE)


def state_of(st: ComputeState, svc: Service) -> str:
    return "down" if svc.forced_down or not alive(st, svc) else "up"


async def list_services(st: ComputeState, binary: str | None = None,
                        host: str | None = None) -> list[Service]:
    q = select(Service).order_by(Service.id)
    if binary is not None:
        q = q.where(Service.binary == binary)
    if host is not None:
        q = q.where(Service.host == host)
    async with st.db.read() as s:
        return list(await s.scalars(q))


def service_not_found(ident: str) -> NotFound:
    return NotFound(f"Service {ident} could not be found.")


@dataclass
class ServiceUpdate:
    status: str | None = None  # "enabled" / "disabled"
    disabled_reason: str | None = None
    reason_given: bool = False
    forced_down: bool | None = None


async def update_service(st: ComputeState, *, uuid: str | None = None,
                         host: str | None = None, binary: str | None = None,
                         change: ServiceUpdate) -> Service:
    """Enable, disable (with a reason) or force down a service, found by uuid
    (2.53) or by host and binary (older microversions).

    Raises:
        NotFound; BadRequest: not a nova-compute service.
    """
    async with st.db.write() as s:
        if uuid is not None:
            row = await s.scalar(select(Service).where(Service.uuid == uuid))
            if row is None:
                raise service_not_found(uuid)
        else:
            row = await s.scalar(select(Service).where(Service.host == host,
                                                       Service.binary == binary))
            if row is None:
                if await s.scalar(select(Service.id).where(Service.host == host)) is None:
                    raise NotFound(f"Host '{host}' is not mapped to any cell")
                raise service_not_found(f"{binary} on host {host}")
        if row.binary != COMPUTE_BINARY:
            what = "status" if change.status is not None else "forced_down"
            raise BadRequest(f"Updating a {row.binary} service is not supported. "
                             f"Only nova-compute services can be updated ({what}).")
        if change.status is not None:
            row.disabled = change.status == "disabled"
            if not row.disabled:
                row.disabled_reason = None
            elif change.reason_given:
                row.disabled_reason = change.disabled_reason
        if change.forced_down is not None:
            row.forced_down = change.forced_down
        row.updated_at = utcnow()
        await s.flush()
        updated: Service = row
        return updated


# -- hypervisors -------------------------------------------------------------------------

@dataclass
class Hypervisor:
    node: ComputeNode
    service: Service | None
    running_vms: int
    servers: list[tuple[str, str]]  # (uuid, name) of the servers on it


async def hypervisors(st: ComputeState, *, with_servers: bool = False,
                      pattern: str | None = None) -> list[Hypervisor]:
    """Every compute node (ordered by id), with its nova-compute service and its
    servers."""
    async with st.db.read() as s:
        q = select(ComputeNode).order_by(ComputeNode.id)
        if pattern is not None:
            q = q.where(ComputeNode.hypervisor_hostname.like(f"%{pattern}%"))
        nodes = list(await s.scalars(q))
        services = {r.host: r for r in await s.scalars(
            select(Service).where(Service.binary == COMPUTE_BINARY))}
        counts = dict((await s.execute(
            select(Instance.node, func.count(Instance.id))
            .where(Instance.deleted.is_(False), Instance.node.is_not(None))
            .group_by(Instance.node))).tuples().all())
        servers: dict[str, list[tuple[str, str]]] = {}
        if with_servers:
            for node_name, inst_uuid, name in await s.execute(
                    select(Instance.node, Instance.uuid, Instance.display_name)
                    .where(Instance.deleted.is_(False), Instance.node.is_not(None))
                    .order_by(Instance.id)):
                servers.setdefault(node_name or "", []).append((inst_uuid, name))
    return [Hypervisor(n, services.get(n.host), int(counts.get(n.hypervisor_hostname, 0)),
                       servers.get(n.hypervisor_hostname, [])) for n in nodes]


def hypervisor_not_found(ident: str) -> NotFound:
    return NotFound(f"Hypervisor with ID '{ident}' could not be found.")


async def hypervisor(st: ComputeState, ident: str, *, by_uuid: bool,
                     with_servers: bool = False) -> Hypervisor:
    """Raises: NotFound."""
    for h in await hypervisors(st, with_servers=with_servers):
        if (h.node.uuid if by_uuid else str(h.node.id)) == ident:
            return h
    raise hypervisor_not_found(ident)
