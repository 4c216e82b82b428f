"""Builds routed to a host that went down: another host takes them over and
schedules them again without that host (``take_over_builds``, run every
``report_interval`` seconds by the app). See ``servers`` for the build task.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.compute.models import Instance, Service, Task, utcnow
from onestack.compute.service import hosts as hosts_svc
from onestack.compute.service import scheduler
from onestack.compute.service.servers import (
    BUILD,
    BUILDING,
    DELETING,
    REAP,
    SCHEDULING,
    routed,
    submit_for,
)
from onestack.compute.state import ComputeState
from onestack.core import tasks as tasks_mod

log = logging.getLogger("onestack.compute")


async def down_compute_hosts(st: ComputeState, s: AsyncSession) -> dict[str, str]:
    """The other hosts whose ``nova-compute`` is forced down or has not beaten for
    ``service_down_time``, and why."""
    now = utcnow()
    out: dict[str, str] = {}
    for svc in await s.scalars(select(Service).where(
            Service.binary == scheduler.COMPUTE_BINARY, Service.host != st.host)):
        if svc.forced_down:
            out[svc.host] = "forced down"
        elif not hosts_svc.alive(st, svc, now):
            seconds = int((now - hosts_svc.last_heartbeat(svc)).total_seconds())
            out[svc.host] = f"no heartbeat for {seconds} s"
    return out


async def take_over_builds(st: ComputeState) -> int:
    """Reschedule the builds handed to a host that is down, as Nova reschedules a
    build to an alternate host: a ``build@<host>`` task that host has not started
    (pending), or whose lease ran out while that host ran it (it died), becomes
    an unrouted build again that avoids that host (``exclude_hosts``), and the
    server's claim on that host is given back, in one transaction with the task's
    row locked, so of several live hosts one takes it. A build the dead host had
    begun may have left a guest there: a ``reap@<host>`` task destroys it when the
    host is back (the server is no longer its). The number taken over."""
    t = Task.__table__
    async with st.db.read() as s:
        down = await down_compute_hosts(st, s)
        if not down:
            return 0
        kinds = {routed(BUILD, host): host for host in down}
        rows = list(await s.execute(select(t.c.id, t.c.kind).where(
            t.c.kind.in_(sorted(kinds)),
            t.c.state.in_((tasks_mod.PENDING, tasks_mod.RUNNING)))))
    taken = 0
    for task_id, kind in rows:
        host = kinds[kind]
        reason = down[host]

        def moved(payload: dict[str, Any], host: str = host,
                  reason: str = reason) -> dict[str, Any]:
            return {**payload, "rescheduled_from": host, "reschedule_reason": reason,
                    "exclude_hosts": sorted({*payload.get("exclude_hosts", ()), host})}

        async with st.db.write() as s:
            was = await st.tasks.take_over(s, task_id, kind, BUILD, moved, claimed=True)
            if was is None:
                continue
            # the build task's id is its server's uuid (create)
            inst = await s.scalar(select(Instance).where(Instance.uuid == task_id)
                                  .with_for_update())
            if (inst is not None and not inst.deleted and inst.vm_state == BUILDING
                    and inst.task_state != DELETING and inst.host == host):
                await scheduler.free(s, inst.uuid)
                inst.host = inst.node = None
                inst.task_state = SCHEDULING
                inst.updated_at = utcnow()
            if was == tasks_mod.RUNNING:
                await submit_for(st, s, REAP, host, {"uuid": task_id})
        taken += 1
        log.warning("build %s: its host %s is down (%s) and had %s it; rescheduling",
                    task_id, host, reason,
                    "begun" if was == tasks_mod.RUNNING else "not started")
    return taken
