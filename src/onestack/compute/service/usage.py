"""os-simple-tenant-usage: what each project's servers used over a period,
computed from the instances table as Nova does (a server counts from its
launch, or the period's start, to its termination, or the period's end)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select

from onestack.compute.models import Instance, utcnow
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest


@dataclass
class ProjectUsage:
    tenant_id: str
    start: datetime
    stop: datetime
    total_hours: float = 0.0
    total_local_gb_usage: float = 0.0
    total_memory_mb_usage: float = 0.0
    total_vcpus_usage: float = 0.0
    server_usages: list[dict[str, Any]] = field(default_factory=list)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def hours_for(inst: Instance, start: datetime, stop: datetime) -> float:
    """Nova's ``_hours_for``: the hours of the period the server ran."""
    if inst.launched_at is None:
        return 0.0
    launched = _aware(inst.launched_at)
    ended = _aware(inst.terminated_at) if inst.terminated_at else None
    if (ended is not None and ended < start) or launched > stop:
        return 0.0
    begin = max(launched, start)
    end = min(stop, ended) if ended is not None else stop
    return (end - begin).total_seconds() / 3600.0


def naive(t: datetime | None) -> str | None:
    """Nova prints these times without a zone (``2026-11-21T15:00:00.123456``)."""
    return None if t is None else _aware(t).astimezone(UTC).replace(tzinfo=None).isoformat()


async def usage(st: ComputeState, start: datetime, stop: datetime,
                project_id: str | None = None, *, limit: int | None = None,
                marker: str | None = None) -> tuple[list[ProjectUsage], list[str] | None]:
    """One entry per project (ordered by project id) whose servers ran in the
    period (a server that never launched counts for nothing); with ``limit``
    (2.40), a page of servers after the ``marker`` server, and their ids.

    Raises:
        BadRequest: the marker is not one of the servers.
    """
    i = Instance
    q = (select(i).where(i.launched_at.is_not(None), i.launched_at < stop,
                         or_(i.terminated_at.is_(None), i.terminated_at > start))
         .order_by(i.project_id, i.id))
    if project_id is not None:
        q = q.where(i.project_id == project_id)
    async with st.db.read() as s:
        rows = list(await s.scalars(q))
    page: list[str] | None = None
    if limit is not None:
        start_at = 0
        if marker is not None:
            ids = [r.uuid for r in rows]
            if marker not in ids:
                raise BadRequest(f"marker [{marker}] not found")
            start_at = ids.index(marker) + 1
        rows = rows[start_at:start_at + limit]
        page = [r.uuid for r in rows]
    now = utcnow()
    out: dict[str, ProjectUsage] = {}
    for inst in rows:
        hours = hours_for(inst, start, stop)
        local_gb = inst.root_gb + inst.ephemeral_gb
        ended = inst.terminated_at
        launched = _aware(inst.launched_at) if inst.launched_at else now
        uptime = ((_aware(ended) if ended else now) - launched).total_seconds()
        info = {
            "instance_id": inst.uuid, "name": inst.display_name, "tenant_id": inst.project_id,
            "hours": hours, "memory_mb": inst.memory_mb, "local_gb": local_gb,
            "vcpus": inst.vcpus, "flavor": inst.flavor.get("name"),
            "started_at": naive(inst.launched_at), "ended_at": naive(ended),
            "state": "terminated" if ended else inst.vm_state, "uptime": int(uptime),
        }
        pu = out.setdefault(inst.project_id, ProjectUsage(inst.project_id, start, stop))
        pu.total_hours += hours
        pu.total_local_gb_usage += local_gb * hours
        pu.total_memory_mb_usage += inst.memory_mb * hours
        pu.total_vcpus_usage += inst.vcpus * hours
        pu.server_usages.append(info)
    return list(out.values()), page
