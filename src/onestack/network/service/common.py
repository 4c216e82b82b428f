"""What the resource services share: revisions, tags, quotas, and telling the
data-plane agent that the desired state changed."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.tasks import PENDING
from onestack.network import errors
from onestack.network.models import Agent, Quota, Tag, Task, utcnow
from onestack.network.state import NetworkState

CONVERGE = "converge"


def touch(row: Any) -> None:
    """A changed resource: its revision goes up and ``updated_at`` moves."""
    row.revision_number = (row.revision_number or 0) + 1
    row.updated_at = utcnow()


def apply(row: Any, values: dict[str, Any], names: Iterable[str]) -> bool:
    """Set ``names`` from ``values`` on ``row`` where present; True if any changed
    (the row is touched then)."""
    changed = False
    for name in names:
        if name in values and getattr(row, name) != values[name]:
            setattr(row, name, values[name])
            changed = True
    if changed:
        touch(row)
    return changed


async def tags_of(session: AsyncSession, ids: Iterable[str]) -> dict[str, list[str]]:
    ids = list(ids)
    out: dict[str, list[str]] = defaultdict(list)
    if not ids:
        return out
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        rows = await session.execute(
            select(Tag.resource_id, Tag.tag).where(Tag.resource_id.in_(part))
        )
        for rid, tag in rows:
            out[rid].append(tag)
    return out


async def delete_tags(session: AsyncSession, resource_id: str) -> None:
    for t in (await session.scalars(select(Tag).where(Tag.resource_id == resource_id))).all():
        await session.delete(t)


QUOTA_RESOURCES = (
    "network", "subnet", "port", "router", "floatingip", "security_group",
    "security_group_rule", "subnetpool",
)


async def quota_limit(st: NetworkState, session: AsyncSession, project_id: str,
                      resource: str) -> int:
    row = await session.get(Quota, (project_id, resource))
    if row is not None:
        return row.limit
    default: int = getattr(st.conf, f"quota_{resource}", st.conf.default_quota)
    return default


async def check_quota(st: NetworkState, session: AsyncSession, project_id: str,
                      resource: str, model: Any, adding: int = 1) -> None:
    """Refuse to go over ``project_id``'s quota of ``resource`` (rows of ``model``).

    Raises:
        Conflict (OverQuota).
    """
    limit = await quota_limit(st, session, project_id, resource)
    if limit < 0:
        return
    used = await session.scalar(
        select(func.count()).select_from(model).where(model.project_id == project_id)
    ) or 0
    if used + adding > limit:
        raise errors.over_quota(resource)


# the agent type whose rows say which hosts wire networks, and their tunnel addresses
L2_AGENT = "Linux bridge agent"
# Neutron's agent_down_time: an agent is alive while its heartbeat is this recent
AGENT_DOWN_TIME = timedelta(seconds=75)


def agent_down_time(conf: Any) -> timedelta:
    """How recent a host's heartbeat must be for it to count as live: Neutron's 75 s,
    or two passes when the agent's passes (which beat) are further apart."""
    return max(AGENT_DOWN_TIME, timedelta(seconds=2 * conf.resync_interval))


async def live_agents(st: NetworkState, session: AsyncSession) -> list[Agent]:
    """The L2 agents rows of the hosts whose agent beat recently (this one included
    once it has run a pass)."""
    since = utcnow() - agent_down_time(st.conf)
    return list((await session.scalars(select(Agent).where(
        Agent.agent_type == L2_AGENT, Agent.heartbeat_timestamp >= since))).all())


async def ask_to_converge(st: NetworkState, session: AsyncSession, hosts: Iterable[str],
                          reason: str = "") -> None:
    """Add a ``converge:<host>`` task for each of ``hosts`` that has none pending, in
    the caller's transaction. This process's runner handles only its own host's kind
    (and is woken at commit); the other hosts' runners find theirs at their next poll."""
    if st.tasks is None:
        return
    kinds = {host: f"{CONVERGE}:{host}" for host in hosts}
    pending = set((await session.scalars(select(Task.kind).where(
        Task.kind.in_(list(kinds.values())), Task.state == PENDING))).all())
    now = utcnow()
    for host, kind in sorted(kinds.items()):
        if kind in pending:
            continue
        payload = {"host": host, "reason": reason}
        if host == st.host:
            await st.tasks.submit(session, kind, payload)
        else:  # the runner's submit refuses kinds it does not run itself
            session.add(Task(id=str(uuid.uuid4()), kind=kind, state=PENDING, payload=payload,
                             result=None, error=None, attempts=0, owner=None,
                             lease_until=None, created_at=now, updated_at=now))
    await session.flush()


async def dataplane_changed(st: NetworkState, session: AsyncSession, reason: str = "") -> None:
    """Ask the agent of this host and of every other live host to converge, in the
    caller's transaction (so a rolled-back change asks nothing). At most one pending
    converge task is kept per host: a pass converges the whole host, whatever asked
    for it. A host whose agent is down converges when it starts again."""
    if st.tasks is None:
        return
    hosts = {st.host} | {a.host for a in await live_agents(st, session)}
    await ask_to_converge(st, session, hosts, reason)


async def insert_unique(session: AsyncSession, make: Any, attempts: int = 20) -> Any:
    """Add the row ``make()`` returns in a savepoint, again with a new row while a
    unique constraint refuses it (two requests picked the same free value).

    Raises:
        Conflict: still refused after ``attempts``.
    """
    for _ in range(attempts):
        row = await make()
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            continue
        return row
    raise errors.conflict("Conflict", "Could not allocate a unique value; try again")
