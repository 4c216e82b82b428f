"""Host aggregates (os-aggregates): named groups of compute hosts with metadata.

As in Nova an aggregate's availability zone is nothing but its
``availability_zone`` metadata item, a host may be in several aggregates but
not in two zones, and only a host running ``nova-compute`` (a row of
os-services) may be added. Every change is one transaction: a refused request
leaves the aggregate as it was. The zone is recorded and shown; the scheduler
and os-availability-zone do not read it yet.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.compute.models import (
    Aggregate,
    AggregateHost,
    AggregateMetadata,
    Service,
    utcnow,
)
from onestack.compute.service.scheduler import COMPUTE_BINARY
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest, Conflict, NotFound

AZ_KEY = "availability_zone"


@dataclass
class AggregateInfo:
    row: Aggregate
    hosts: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def availability_zone(self) -> str | None:
        return self.metadata.get(AZ_KEY)



def _now() -> datetime:
    """Whole seconds: MySQL/MariaDB DATETIME keeps no fraction, so an answer
    made from the row before and after it is stored must agree on every database."""
    return utcnow().replace(microsecond=0)

def not_found(ident: object) -> NotFound:
    return NotFound(f"Aggregate {ident} could not be found.")


def name_exists(name: str) -> Conflict:
    return Conflict(f"Aggregate {name} already exists.")


async def _info(s: AsyncSession, row: Aggregate) -> AggregateInfo:
    hosts = list(await s.scalars(select(AggregateHost.host)
                                 .where(AggregateHost.aggregate_id == row.id)
                                 .order_by(AggregateHost.id)))
    meta = {m.key: m.value for m in await s.scalars(
        select(AggregateMetadata).where(AggregateMetadata.aggregate_id == row.id)
        .order_by(AggregateMetadata.id))}
    return AggregateInfo(row, hosts, meta)


async def _load(s: AsyncSession, agg_id: int) -> Aggregate:
    row = await s.get(Aggregate, agg_id)
    if row is None:
        raise not_found(agg_id)
    return row


async def list_aggregates(st: ComputeState) -> list[AggregateInfo]:
    async with st.db.read() as s:
        return [await _info(s, r) for r in await s.scalars(select(Aggregate)
                                                           .order_by(Aggregate.id))]


async def get(st: ComputeState, agg_id: int) -> AggregateInfo:
    """Raises: NotFound."""
    async with st.db.read() as s:
        return await _info(s, await _load(s, agg_id))


def _check_zone(st: ComputeState, zone: str | None) -> None:
    if zone is not None and zone == "internal":
        raise BadRequest("Aggregate action is invalid: the availability zone "
                         "'internal' is reserved for Nova's internal services.")


async def create(st: ComputeState, name: str, zone: str | None) -> AggregateInfo:
    """Raises: Conflict (the name is taken); BadRequest (a reserved zone)."""
    _check_zone(st, zone)
    try:
        async with st.db.write() as s:
            if await s.scalar(select(Aggregate.id).where(Aggregate.name == name)) is not None:
                raise name_exists(name)
            row = Aggregate(uuid=str(uuidlib.uuid4()), name=name, created_at=_now())
            s.add(row)
            await s.flush()
            if zone is not None:
                s.add(AggregateMetadata(aggregate_id=row.id, key=AZ_KEY, value=zone))
                await s.flush()
            return await _info(s, row)
    except IntegrityError:  # a concurrent create of the same name
        raise name_exists(name) from None


async def _zone_conflicts(s: AsyncSession, hosts: list[str], zone: str | None,
                          skip_id: int) -> list[str]:
    """The zones other than ``zone`` that aggregates of ``hosts`` (but ``skip_id``)
    put them in."""
    if not hosts:
        return []
    q = (select(AggregateMetadata.value)
         .join(AggregateHost, AggregateHost.aggregate_id == AggregateMetadata.aggregate_id)
         .where(AggregateHost.host.in_(hosts), AggregateMetadata.key == AZ_KEY,
                AggregateMetadata.aggregate_id != skip_id))
    return sorted({z for z in await s.scalars(q) if z != zone})


async def update(st: ComputeState, agg_id: int, *, name: str | None,
                 zone: str | None, zone_given: bool) -> AggregateInfo:
    """Rename and/or move to another zone (``None``: no zone).

    Raises:
        NotFound; Conflict (name taken); BadRequest (a host would be in two zones).
    """
    _check_zone(st, zone)
    try:
        async with st.db.write() as s:
            row = await _load(s, agg_id)
            if name is not None and name != row.name:
                if await s.scalar(select(Aggregate.id).where(Aggregate.name == name)):
                    raise name_exists(name)
                row.name = name
            if zone_given:
                info = await _info(s, row)
                if zone is not None and await _zone_conflicts(s, info.hosts, zone, row.id):
                    raise BadRequest(f"Cannot update aggregate {agg_id}. Reason: One or "
                                     "more hosts contained in aggregate cannot be assigned "
                                     f"to new availability zone {zone}.")
                await _set_meta(s, row.id, {AZ_KEY: zone})
            row.updated_at = _now()
            await s.flush()
            return await _info(s, row)
    except IntegrityError:
        raise name_exists(name or "") from None


async def delete_aggregate(st: ComputeState, agg_id: int) -> None:
    """Raises: NotFound; BadRequest (it still has hosts)."""
    async with st.db.write() as s:
        row = await _load(s, agg_id)
        if await s.scalar(select(AggregateHost.id).where(AggregateHost.aggregate_id == row.id)):
            raise BadRequest(f"Cannot delete aggregate {agg_id}. Reason: Host aggregate "
                             "is not empty.")
        await s.execute(delete(AggregateMetadata)
                        .where(AggregateMetadata.aggregate_id == row.id))
        await s.delete(row)


async def add_host(st: ComputeState, agg_id: int, host: str) -> AggregateInfo:
    """Raises: NotFound (aggregate, or no nova-compute on ``host``); Conflict (the
    host is there already, or in another zone)."""
    async with st.db.write() as s:
        row = await _load(s, agg_id)
        if await s.scalar(select(Service.id).where(Service.host == host,
                                                   Service.binary == COMPUTE_BINARY)) is None:
            raise NotFound(f"Compute host {host} could not be found.")
        info = await _info(s, row)
        if host in info.hosts:
            raise Conflict(f"Aggregate {agg_id} already has host {host}.")
        zones = await _zone_conflicts(s, [host], info.availability_zone, row.id)
        if info.availability_zone is not None and zones:
            raise Conflict(f"Cannot add host to aggregate {agg_id}. Reason: One or more "
                           f"hosts already in availability zone(s) {zones}.")
        s.add(AggregateHost(aggregate_id=row.id, host=host))
        row.updated_at = _now()
        await s.flush()
        return await _info(s, row)


async def remove_host(st: ComputeState, agg_id: int, host: str) -> AggregateInfo:
    """Raises: NotFound (no such aggregate, or the host is not in it)."""
    async with st.db.write() as s:
        row = await s.get(Aggregate, agg_id)
        link = None if row is None else await s.scalar(
            select(AggregateHost).where(AggregateHost.aggregate_id == agg_id,
                                        AggregateHost.host == host))
        if row is None or link is None:
            raise NotFound(f"Cannot remove host {host} in aggregate {agg_id}")
        await s.delete(link)
        row.updated_at = _now()
        await s.flush()
        return await _info(s, row)


async def _set_meta(s: AsyncSession, agg_id: int, items: dict[str, str | None]) -> None:
    """Set the items (``None`` removes the key)."""
    current = {m.key: m for m in await s.scalars(
        select(AggregateMetadata).where(AggregateMetadata.aggregate_id == agg_id))}
    for key, value in items.items():
        existing = current.get(key)
        if value is None:
            if existing is not None:
                await s.delete(existing)
        elif existing is not None:
            existing.value = value
        else:
            s.add(AggregateMetadata(aggregate_id=agg_id, key=key, value=value))
    await s.flush()


async def set_metadata(st: ComputeState, agg_id: int,
                       items: dict[str, str | None]) -> AggregateInfo:
    """Raises: NotFound; BadRequest (a zone some of its hosts cannot move to)."""
    if AZ_KEY in items:
        _check_zone(st, items[AZ_KEY])
    async with st.db.write() as s:
        row = await _load(s, agg_id)
        if items.get(AZ_KEY) is not None:
            info = await _info(s, row)
            if await _zone_conflicts(s, info.hosts, items[AZ_KEY], row.id):
                raise BadRequest(f"Cannot update metadata of aggregate {agg_id}. Reason: "
                                 "One or more hosts contained in aggregate cannot be "
                                 f"assigned to new availability zone {items[AZ_KEY]}.")
        await _set_meta(s, row.id, items)
        row.updated_at = _now()
        await s.flush()
        return await _info(s, row)
