"""Durable tasks on a real database: SQLite by default, PostgreSQL or MariaDB when
``ONESTACK_TEST_DATABASE_URL`` is set (a fresh database per test)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from onestack.core.db import Database, make_base
from onestack.core.tasks import (
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    LeaseLost,
    TaskHandle,
    TaskRunner,
    task_table,
    utcnow,
)

Base = make_base()
Task = task_table(Base, "test_")


class Env:
    """Databases on one URL (each like another process's) and the runners made on
    them, stopped at the end."""

    def __init__(self, url: str):
        self.url = url
        self.dbs: list[Database] = []
        self.runners: list[TaskRunner] = []

    def database(self) -> Database:
        db = Database(self.url)
        self.dbs.append(db)
        return db

    def runner(self, db: Database, handlers: dict[str, Any], **kw: Any) -> TaskRunner:
        kw.setdefault("retry_delay", 0)
        kw.setdefault("poll_interval", 0.1)
        r = TaskRunner(db, Task, handlers, **kw)
        self.runners.append(r)
        return r


@pytest.fixture
async def env(tmp_path: Path, database_url: str | None) -> AsyncIterator[Env]:
    e = Env(database_url or f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}")
    db = e.database()
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield e
    for r in e.runners:
        await r.stop()
    for d in e.dbs:
        await d.close()


async def submit(runner: TaskRunner, kind: str, payload: dict[str, Any], n: int = 1) -> list[str]:
    async with runner.db.write() as s:
        return [await runner.submit(s, kind, payload) for _ in range(n)]


async def rows(db: Database) -> list[Any]:
    async with db.read() as s:
        return list(await s.scalars(select(Task).order_by(Task.created_at)))


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def test_table_shape(env: Env) -> None:
    assert Task.__tablename__ == "test_tasks"
    cols = set(Task.__table__.c.keys())
    assert cols == {"id", "kind", "state", "payload", "result", "error", "attempts", "owner",
                    "lease_until", "created_at", "updated_at"}
    assert [list(ix.columns.keys()) for ix in Task.__table__.indexes] == [["state", "lease_until"]]


async def test_submit_exists_only_if_the_transaction_commits(env: Env) -> None:
    db = env.database()
    runner = env.runner(db, {"noop": lambda h: asyncio.sleep(0)})

    with pytest.raises(RuntimeError):
        async with db.write() as s:
            await runner.submit(s, "noop", {"a": 1})
            raise RuntimeError("the caller's write failed")
    assert await rows(db) == []
    assert not runner._wake.is_set()

    async with db.write() as s:
        task_id = await runner.submit(s, "noop", {"a": 1}, task_id="fixed-id")
        assert not runner._wake.is_set()  # not before the commit
    assert runner._wake.is_set()
    [row] = await rows(db)
    assert (row.id, row.state, row.payload, row.attempts, row.owner) == (
        task_id, PENDING, {"a": 1}, 0, None)
    assert task_id == "fixed-id"

    with pytest.raises(ValueError):
        async with db.write() as s:
            await runner.submit(s, "unknown-kind", {})


async def test_success_stores_progress_and_result(env: Env) -> None:
    seen: list[tuple[int, dict[str, Any]]] = []

    async def double(h: TaskHandle) -> dict[str, Any]:
        seen.append((h.attempt, h.payload))
        await h.progress(step="halfway")
        return {"out": h.payload["x"] * 2}

    runner = env.runner(env.database(), {"double": double})
    await runner.start()
    [task_id] = await submit(runner, "double", {"x": 21})
    info = await runner.wait(task_id, 5)
    assert info.state == SUCCEEDED and info.done
    assert info.result == {"step": "halfway", "out": 42}
    assert info.attempts == 1 and info.error is None
    assert seen == [(1, {"x": 21})]
    [row] = await rows(runner.db)
    assert row.owner is None and row.lease_until is None


async def test_handler_errors_are_retried_then_fail_with_the_error(env: Env) -> None:
    attempts: list[int] = []

    async def broken(h: TaskHandle) -> None:
        attempts.append(h.attempt)
        raise RuntimeError(f"boom {h.attempt}")

    runner = env.runner(env.database(), {"broken": broken}, max_attempts=3)
    await runner.start()
    [task_id] = await submit(runner, "broken", {})
    info = await runner.wait(task_id, 5)
    assert info.state == FAILED
    assert info.error == "RuntimeError: boom 3"
    assert info.attempts == 3 and attempts == [1, 2, 3]


async def test_a_retry_sees_the_progress_of_the_failed_attempt(env: Env) -> None:
    calls: list[tuple[int, dict[str, Any]]] = []

    async def flaky(h: TaskHandle) -> dict[str, Any]:
        calls.append((h.attempt, dict(h.result)))
        if "fetched" not in h.result:
            await h.progress(fetched=True)
        if h.attempt < 2:
            raise OSError("connection reset")
        return {"done": True}

    runner = env.runner(env.database(), {"flaky": flaky})
    await runner.start()
    [task_id] = await submit(runner, "flaky", {})
    info = await runner.wait(task_id, 5)
    assert info.state == SUCCEEDED and info.attempts == 2
    assert calls == [(1, {}), (2, {"fetched": True})]
    assert info.result == {"fetched": True, "done": True}
    assert info.error == "OSError: connection reset"  # the last failure stays visible


async def test_retry_delay_postpones_the_next_attempt(env: Env) -> None:
    times: list[float] = []

    async def once_broken(h: TaskHandle) -> None:
        times.append(asyncio.get_running_loop().time())
        if h.attempt == 1:
            raise RuntimeError("later")

    runner = env.runner(env.database(), {"t": once_broken}, retry_delay=1.0)
    await runner.start()
    [task_id] = await submit(runner, "t", {})
    info = await runner.wait(task_id, 10)
    assert info.state == SUCCEEDED and len(times) == 2
    assert times[1] - times[0] >= 0.9


async def test_a_stopped_runner_gives_its_task_to_another(env: Env) -> None:
    """A runner stopped mid-task (shutdown) releases it; a new one resumes it."""
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(h: TaskHandle) -> dict[str, Any]:
        await h.progress(step="downloaded")
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    db = env.database()
    first = env.runner(db, {"import": slow}, worker_id="first")
    await first.start()
    [task_id] = await submit(first, "import", {"image": "x"})
    await asyncio.wait_for(started.wait(), 5)
    [row] = await rows(db)
    assert (row.state, row.owner, row.attempts) == (RUNNING, "first", 1)
    await first.stop()
    assert cancelled.is_set()
    [row] = await rows(db)
    assert (row.state, row.owner, row.lease_until, row.attempts) == (PENDING, None, None, 0)
    assert row.result == {"step": "downloaded"}

    resumed: list[tuple[int, dict[str, Any]]] = []

    async def resume(h: TaskHandle) -> dict[str, Any]:
        resumed.append((h.attempt, dict(h.result)))
        return {"step": "active"}

    second = env.runner(env.database(), {"import": resume}, worker_id="second")
    await second.start()
    info = await second.wait(task_id, 5)
    assert info.state == SUCCEEDED and info.result == {"step": "active"}
    assert resumed == [(1, {"step": "downloaded"})]


async def test_a_crashed_workers_task_is_resumed_after_its_lease(env: Env) -> None:
    """A row left running by a dead process is claimed once its lease has expired;
    a live lease is respected."""
    db = env.database()
    now = utcnow()
    base = {"kind": "import", "payload": {}, "created_at": now, "updated_at": now}
    async with db.write() as s:
        await s.execute(insert(Task).values(
            id="crashed", state=RUNNING, owner="dead-worker", attempts=1,
            lease_until=now - timedelta(seconds=60), result={"step": "downloaded"}, **base))
        await s.execute(insert(Task).values(
            id="alive", state=RUNNING, owner="live-worker", attempts=1,
            lease_until=now + timedelta(seconds=600), **base))

    seen: dict[str, tuple[int, dict[str, Any]]] = {}

    async def resume(h: TaskHandle) -> None:
        seen[h.id] = (h.attempt, dict(h.result))

    runner = env.runner(db, {"import": resume})
    await runner.start()
    info = await runner.wait("crashed", 5)
    assert info.state == SUCCEEDED and info.attempts == 2
    assert info.result == {"step": "downloaded"}
    await asyncio.sleep(0.3)  # a few polls
    assert list(seen) == ["crashed"] and seen["crashed"] == (2, {"step": "downloaded"})
    alive = await runner.get("alive")
    assert alive is not None and alive.state == RUNNING


async def test_a_task_that_keeps_killing_its_worker_fails(env: Env) -> None:
    db = env.database()
    now = utcnow()
    async with db.write() as s:
        await s.execute(insert(Task).values(
            id="doomed", kind="import", payload={}, state=RUNNING, owner="dead",
            attempts=3, lease_until=now - timedelta(seconds=5), created_at=now,
            updated_at=now))
    calls: list[str] = []

    async def never(h: TaskHandle) -> None:
        calls.append(h.id)

    runner = env.runner(db, {"import": never}, max_attempts=3)
    await runner.start()
    info = await runner.wait("doomed", 5)
    assert info.state == FAILED and calls == []
    assert info.error is not None and "Gave up after 3 attempts" in info.error


async def test_a_runner_that_lost_its_lease_writes_nothing(env: Env) -> None:
    """Another worker took the task over: progress raises LeaseLost and the old
    runner records no outcome."""
    db = env.database()
    go = asyncio.Event()
    raised: list[BaseException] = []

    async def handler(h: TaskHandle) -> dict[str, Any]:
        await go.wait()
        try:
            await h.progress(step="late")
        except LeaseLost as exc:
            raised.append(exc)
            raise
        return {"never": "stored"}

    runner = env.runner(db, {"t": handler}, worker_id="old", lease_seconds=600)
    await runner.start()
    [task_id] = await submit(runner, "t", {})

    async def claimed() -> bool:
        return [r.owner for r in await rows(db)] == ["old"]

    await eventually(claimed)
    async with db.write() as s:
        await s.execute(update(Task).where(Task.id == task_id).values(owner="new"))
    go.set()
    await eventually(lambda: asyncio.sleep(0, result=not runner._running))
    assert len(raised) == 1
    [row] = await rows(db)
    assert (row.state, row.owner, row.result) == (RUNNING, "new", None)


async def test_two_runners_never_run_the_same_task_twice(env: Env) -> None:
    """Two runners on separate engines (as two processes) share 40 tasks; some run
    longer than the lease, so only the heartbeat keeps them from being taken."""
    runs: collections.Counter[str] = collections.Counter()
    by: dict[str, set[str]] = collections.defaultdict(set)

    def handler(name: str) -> Any:
        async def run(h: TaskHandle) -> dict[str, Any]:
            runs[h.id] += 1
            by[name].add(h.id)
            await asyncio.sleep(h.payload["seconds"])
            return {"by": name}
        return run

    a = env.runner(env.database(), {"work": handler("a")}, worker_id="a", lease_seconds=0.5)
    b = env.runner(env.database(), {"work": handler("b")}, worker_id="b", lease_seconds=0.5)
    await a.start()
    await b.start()
    async with a.db.write() as s:
        ids = [await a.submit(s, "work", {"seconds": 2.5 if i % 10 == 0 else 0.01})
               for i in range(40)]
    infos = [await a.wait(i, 30) for i in ids]
    assert all(i.state == SUCCEEDED and i.attempts == 1 for i in infos)
    assert runs == {i: 1 for i in ids}
    assert by["a"] | by["b"] == set(ids) and not by["a"] & by["b"]
    async with a.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Task)
                              .where(Task.state != SUCCEEDED)) == 0


async def test_stop_right_after_a_wake_stops(env: Env) -> None:
    """A wake and a stop in the same loop iteration: on Python 3.11 a
    ``wait_for`` around the wake event returned normally there, the cancellation
    was lost, and ``stop`` waited for ever (the CI hang of the networking tests)."""
    for _ in range(20):
        runner = env.runner(env.dbs[0], {"noop": lambda h: asyncio.sleep(0)},
                            poll_interval=30)
        await runner.start()
        await asyncio.sleep(0.05)  # the loop is waiting for a wake
        loop_task = runner._loop_task
        assert loop_task is not None
        runner.wake()
        started = asyncio.get_running_loop().time()
        async with asyncio.timeout(5):
            await runner.stop()
        # well before the next poll (30 s) and the guard above (whose cancellation
        # the old stop() swallowed too)
        assert asyncio.get_running_loop().time() - started < 2
        assert loop_task.done()
