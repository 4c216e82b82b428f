"""Durable tasks routed between runners (as compute routes a server's work to its
host): ``submit(..., elsewhere=True)`` adds a kind only another runner handles,
and ``TaskHandle.hand_over`` passes a claimed task on to the runners of another
kind, with its attempts counted afresh and its progress kept; ``take_over`` moves a
task routed to a runner that is gone when no live worker holds it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from onestack.core.db import Database, make_base
from onestack.core.tasks import SUCCEEDED, TaskHandle, TaskRunner, task_table

Base = make_base()
Task = task_table(Base, "route_")


@pytest.fixture
async def dbs(tmp_path: Path, database_url: str | None) -> AsyncIterator[list[Database]]:
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}"
    out = [Database(url), Database(url)]  # two processes' engines
    async with out[0].engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield out
    for d in out:
        await d.close()


async def test_a_task_runs_only_where_it_is_routed(dbs: list[Database]) -> None:
    seen: list[tuple[str, str, int, dict[str, Any]]] = []

    def handlers(host: str) -> dict[str, Any]:
        async def build(h: TaskHandle) -> dict[str, Any]:
            seen.append((host, h.kind, h.attempt, dict(h.result)))
            if h.kind == "build":  # the unrouted step: any host, then to host b
                await h.progress(scheduled=True)
                await h.hand_over("build@b", host="b")
                return {"ignored": True}
            return {"built_on": host}
        return {"build": build, f"build@{host}": build}

    a = TaskRunner(dbs[0], Task, handlers("a"), poll_interval=0.05, retry_delay=0)
    b = TaskRunner(dbs[1], Task, handlers("b"), poll_interval=0.05, retry_delay=0)
    with pytest.raises(ValueError, match="no handler"):
        async with a.db.write() as s:
            await a.submit(s, "build@c", {})
    async with a.db.write() as s:
        first = await a.submit(s, "build", {"n": 1})
        routed = await a.submit(s, "build@b", {"n": 2}, elsewhere=True)
    await a.start()
    await asyncio.sleep(0.3)  # a runs the unrouted one and hands it to b; never "build@b"
    assert [(h, k) for h, k, _, _ in seen] == [("a", "build")]
    assert (await a.get(routed)).state == "pending"  # type: ignore[union-attr]
    pending = await a.get(first)
    assert pending is not None and (pending.kind, pending.state) == ("build@b", "pending")
    assert pending.payload == {"n": 1, "host": "b"} and pending.attempts == 0
    await b.start()
    try:
        done = [await a.wait(t, timeout=5) for t in (first, routed)]
    finally:
        await a.stop()
        await b.stop()
    assert [(d.state, d.kind, d.result) for d in done] == [
        (SUCCEEDED, "build@b", {"scheduled": True, "built_on": "b"}),
        (SUCCEEDED, "build@b", {"built_on": "b"}),
    ]
    assert sorted((h, k, n) for h, k, n, _ in seen) == [
        ("a", "build", 1), ("b", "build@b", 1), ("b", "build@b", 1)]
    # the handed-over task's next handler sees the progress recorded before
    assert sorted((r for _, k, _, r in seen if k == "build@b"), key=len) == [
        {}, {"scheduled": True}]


async def test_take_over_moves_only_tasks_not_under_way(dbs: list[Database]) -> None:
    """``take_over`` moves a task routed to a runner that is gone: a pending one,
    and with ``claimed`` one whose lease has run out; never one a live worker
    holds, nor one already moved. A runner that listed the task before it moved
    cannot claim it after (the claim checks the kind)."""
    a = TaskRunner(dbs[0], Task, {"build": _noop}, poll_interval=0.05, retry_delay=0)
    b = TaskRunner(dbs[1], Task, {"build@b": _noop}, poll_interval=0.05, retry_delay=0)
    t = Task.__table__
    async with a.db.write() as s:
        pending = await a.submit(s, "build@b", {"n": 1}, elsewhere=True)
        held = await a.submit(s, "build@b", {"n": 2}, elsewhere=True)
        dead = await a.submit(s, "build@b", {"n": 3}, elsewhere=True)
    now = datetime.now(UTC)
    async with a.db.write() as s:
        await s.execute(update(t).where(t.c.id == held).values(
            state="running", owner="b:live", lease_until=now + timedelta(minutes=5)))
        await s.execute(update(t).where(t.c.id == dead).values(
            state="running", owner="b:dead", lease_until=now - timedelta(minutes=5)))

    def moved(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "exclude": ["b"]}

    async with a.db.write() as s:
        assert await a.take_over(s, dead, "build@b", "build", moved) is None  # not claimed=
        assert await a.take_over(s, held, "build@b", "build", moved, claimed=True) is None
        assert await a.take_over(s, pending, "build@b", "build", moved) == "pending"
        assert await a.take_over(s, dead, "build@b", "build", moved, claimed=True) == "running"
        assert await a.take_over(s, pending, "build@b", "build", moved) is None  # moved
    assert await b._claim(pending) is None  # listed as build@b a moment ago
    for task_id, n in ((pending, 1), (dead, 3)):
        info = await a.get(task_id)
        assert info is not None
        assert (info.kind, info.state, info.attempts, info.payload) == (
            "build", "pending", 0, {"n": n, "exclude": ["b"]})
    info = await a.get(held)
    assert info is not None and (info.kind, info.state) == ("build@b", "running")


async def _noop(h: TaskHandle) -> None:
    return None
