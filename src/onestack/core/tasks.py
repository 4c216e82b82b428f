"""Durable tasks: long operations whose state lives in the database.

A service owns a task table (``task_table(Base, "image_")`` in its models, so the
table is created by the service's own migration branch) and one ``TaskRunner``
per process. ``submit`` adds a row inside the caller's transaction, so a task
exists exactly when the write that asked for it commits; the runner then claims
it, runs its handler, and records the outcome.

Claims are leases: a runner takes a task with one conditional ``UPDATE`` (checked
by its row count, which is atomic on SQLite, PostgreSQL and MariaDB alike) that
sets ``owner`` and ``lease_until``, and renews the lease while the handler runs.
A task whose lease has run out belongs to a worker that died, and any runner
claims it again: that is how work resumes after a crash. Delivery is therefore
at-least-once: a handler must be safe to run again, and can record finished steps
with ``TaskHandle.progress`` so that the next attempt skips them.

A runner claims only the kinds it has handlers for, so a kind can name a host
(``build@compute-2``) and only that host's runner runs it: ``submit(...,
elsewhere=True)`` adds such a task for another host, and a handler can pass the
task it holds on with ``TaskHandle.hand_over`` (the same row, pending again
under the new kind). ``TaskRunner.take_over`` moves a task routed to a runner
that is gone (a host that is down) to another kind, if that runner has not
started it or its lease has run out.

Leases compare wall-clock times written by different hosts, so hosts sharing a
database need synchronised clocks (NTP); a lease ends on a whole second, because
MariaDB's ``DATETIME`` keeps no fractions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, and_, event, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from onestack.core.db import Database, UTCDateTime

log = logging.getLogger("onestack.tasks")

PENDING = "pending"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
DONE = frozenset({SUCCEEDED, FAILED})
ERROR_MAX = 4000


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ceil_second(t: datetime) -> datetime:
    """``t`` rounded up to a whole second, so that a database that truncates or
    rounds fractions never stores an earlier time."""
    return t if t.microsecond == 0 else t.replace(microsecond=0) + timedelta(seconds=1)


def task_table(base: type[DeclarativeBase], prefix: str) -> type[Any]:
    """A mapped task class on ``base`` for the table ``<prefix>tasks``.

    Called once in a service's ``models.py`` (``Task = task_table(Base, "image_")``)
    so that the service's migration branch creates and owns the table.
    """

    class Task(base):  # type: ignore[valid-type,misc]
        __tablename__ = f"{prefix}tasks"
        __table_args__ = (Index(f"ix_{prefix}tasks_state_lease_until", "state", "lease_until"),)

        id: Mapped[str] = mapped_column(String(36), primary_key=True)
        kind: Mapped[str] = mapped_column(String(64))
        state: Mapped[str] = mapped_column(String(16), default=PENDING)
        payload: Mapped[dict[str, Any]] = mapped_column(JSON)
        result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
        error: Mapped[str | None] = mapped_column(Text, nullable=True)
        attempts: Mapped[int] = mapped_column(Integer, default=0)
        owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
        lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
        created_at: Mapped[datetime] = mapped_column(UTCDateTime)
        updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    name = "".join(part.capitalize() for part in prefix.split("_")) + "Task"
    Task.__name__ = Task.__qualname__ = name
    return Task


@dataclass(frozen=True)
class TaskInfo:
    """A snapshot of one task row."""

    id: str
    kind: str
    state: str
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime

    @property
    def done(self) -> bool:
        return self.state in DONE


class LeaseLost(Exception):
    """This runner no longer holds the task (its lease ran out and another runner
    claimed it); the handler must stop without writing anything more."""


class TaskHandle:
    """What a handler gets: the task's id, kind, payload, attempt number (1 on the
    first run) and the progress recorded so far (``result``)."""

    def __init__(
        self,
        runner: TaskRunner,
        task_id: str,
        kind: str,
        payload: dict[str, Any],
        attempt: int,
        result: dict[str, Any] | None,
    ):
        self._runner = runner
        self.id = task_id
        self.kind = kind
        self.payload = payload
        self.attempt = attempt
        self.result: dict[str, Any] = dict(result or {})
        self.finishing = False
        self.lost = False
        self.handed_over = False

    async def progress(self, **fields: Any) -> None:
        """Merge ``fields`` into the task's ``result`` and store it now (it also
        renews the lease), so a later attempt sees the steps already done.

        Raises:
            LeaseLost: another runner has taken the task over.
        """
        merged = {**self.result, **fields}
        await self._runner._store_progress(self, merged)
        self.result = merged

    async def hand_over(self, kind: str, **payload: Any) -> None:
        """Give the task to the runners of ``kind`` (another host's, say): it goes
        back to pending under that kind, with ``payload`` merged into its payload,
        its attempts counted afresh and its progress kept. The handler must return
        right after; the task is not finished here.

        Raises:
            LeaseLost: another runner has taken the task over.
        """
        await self._runner._hand_over(self, kind, {**self.payload, **payload})
        self.handed_over = True


Handler = Callable[[TaskHandle], Awaitable[Mapping[str, Any] | None]]


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class TaskRunner:
    """Claims and runs one table's tasks in this process.

    ``handlers`` maps a task kind to an async function taking a ``TaskHandle``; what
    it returns is merged into the task's ``result``. A handler that raises is run
    again (after ``retry_delay`` times the attempt number) until ``max_attempts``,
    then the task fails with the error stored. A task whose worker died counts that
    attempt too, so a task that kills its worker is not retried for ever.
    """

    def __init__(
        self,
        db: Database,
        model: type[Any],
        handlers: Mapping[str, Handler],
        *,
        worker_id: str | None = None,
        lease_seconds: float = 30.0,
        max_attempts: int = 3,
        concurrency: int = 4,
        poll_interval: float = 5.0,
        retry_delay: float = 1.0,
    ):
        if lease_seconds <= 0 or max_attempts < 1 or concurrency < 1:
            raise ValueError("lease_seconds, max_attempts and concurrency must be positive")
        self.db = db
        self.model = model
        self.table = model.__table__
        self.handlers = dict(handlers)
        self.worker_id = worker_id or _default_worker_id()
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._running: dict[str, tuple[asyncio.Task[None], TaskHandle]] = {}
        self._stopping = False

    # -- submitting ---------------------------------------------------------------

    async def submit(
        self,
        session: AsyncSession,
        kind: str,
        payload: Mapping[str, Any],
        *,
        task_id: str | None = None,
        elsewhere: bool = False,
    ) -> str:
        """Add a pending task in the caller's transaction and return its id; the
        runner is woken when that transaction commits (nothing happens if it rolls
        back, and other processes find the task at their next poll).

        ``elsewhere``: the kind is one another process's runner handles (a task
        routed to another host), so this runner need not have a handler for it.
        """
        if kind not in self.handlers and not elsewhere:
            raise ValueError(f"no handler for task kind {kind!r}")
        task_id = task_id or str(uuid.uuid4())
        now = utcnow()
        session.add(
            self.model(
                id=task_id, kind=kind, state=PENDING, payload=dict(payload), result=None,
                error=None, attempts=0, owner=None, lease_until=None,
                created_at=now, updated_at=now,
            )
        )
        await session.flush()
        event.listen(session.sync_session, "after_commit", self._after_commit, once=True)
        return task_id

    async def take_over(
        self,
        session: AsyncSession,
        task_id: str,
        from_kind: str,
        to_kind: str,
        payload: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        claimed: bool = False,
    ) -> str | None:
        """In the caller's transaction, move a task of ``from_kind`` that its runners
        have not started (pending) to ``to_kind``, pending, its attempts counted
        afresh and ``payload`` applied to its payload: what a host does with the
        work routed to a host that is down. With ``claimed``, a task whose lease
        has run out (its worker died while running it) is moved too. The state it
        had (``pending`` / ``running``), or ``None`` when it was not there to take
        (finished, claimed by a live worker, moved already).

        The row is locked (``SELECT ... FOR UPDATE``) and the update is
        conditional on its state, owner and kind, so of two takers, or a taker
        and the runner claiming it, one wins.
        """
        t = self.table
        now = utcnow()
        row = (await session.execute(
            select(t).where(t.c.id == task_id, t.c.kind == from_kind).with_for_update()
        )).first()
        if row is None:
            return None
        m = row._mapping
        expired = m["lease_until"] is None or m["lease_until"] < now
        if not (m["state"] == PENDING or (claimed and m["state"] == RUNNING and expired)):
            return None
        owner = t.c.owner.is_(None) if m["owner"] is None else t.c.owner == m["owner"]
        res = await session.execute(
            update(t)
            .where(t.c.id == task_id, t.c.kind == from_kind, t.c.state == m["state"], owner)
            .values(kind=to_kind, payload=payload(dict(m["payload"])), state=PENDING,
                    owner=None, lease_until=None, attempts=0, updated_at=now)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return None
        if to_kind in self.handlers:
            event.listen(session.sync_session, "after_commit", self._after_commit, once=True)
        return str(m["state"])

    def _after_commit(self, _session: Any) -> None:
        self.wake()

    def wake(self) -> None:
        """Look for claimable tasks now rather than at the next poll."""
        self._wake.set()

    # -- reading ------------------------------------------------------------------

    async def get(self, task_id: str) -> TaskInfo | None:
        async with self.db.read() as s:
            row = (await s.execute(select(self.table).where(self.table.c.id == task_id))).first()
        if row is None:
            return None
        m = row._mapping
        return TaskInfo(
            id=m["id"], kind=m["kind"], state=m["state"], payload=m["payload"],
            result=m["result"], error=m["error"], attempts=m["attempts"],
            created_at=m["created_at"], updated_at=m["updated_at"],
        )

    async def wait(self, task_id: str, timeout: float = 10.0) -> TaskInfo:
        """Poll until the task has succeeded or failed.

        Raises:
            TimeoutError: it has not finished within ``timeout`` seconds.
            LookupError: there is no such task.
        """
        async with asyncio.timeout(timeout):
            while True:
                info = await self.get(task_id)
                if info is None:
                    raise LookupError(task_id)
                if info.done:
                    return info
                await asyncio.sleep(0.02)

    # -- running ------------------------------------------------------------------

    async def start(self) -> None:
        """Start claiming: pending tasks, and running ones whose lease has expired
        (their worker died)."""
        if self._loop_task is not None:
            return
        self._stopping = False
        self._loop_task = asyncio.create_task(self._loop(), name=f"tasks:{self.table.name}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Cancel the running handlers and give their tasks back (pending, lease
        released, this attempt not counted) for any runner to claim."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            # the flag ends the loop even if the cancellation below is lost (Python
            # 3.11's wait_for, in code a handler calls, can swallow one)
            self._loop_task.cancel()
            await asyncio.wait([self._loop_task])  # a cancellation of stop() propagates
            self._loop_task = None
        running = list(self._running.items())
        for _, (task, handle) in running:
            if not handle.finishing:
                task.cancel()
        if running:
            await asyncio.wait([t for _, (t, _) in running], timeout=timeout)
        released = [task_id for task_id, (t, _) in running if t.done()]
        if released:
            t = self.table
            async with self.db.write() as s:
                await s.execute(
                    update(t)
                    .where(t.c.id.in_(released), t.c.owner == self.worker_id,
                           t.c.state == RUNNING)
                    .values(state=PENDING, owner=None, lease_until=None,
                            attempts=t.c.attempts - 1, updated_at=utcnow())
                )

    def _claimable(self, now: datetime) -> ColumnElement[bool]:
        t = self.table
        return and_(
            t.c.state.in_((PENDING, RUNNING)),
            or_(t.c.lease_until.is_(None), t.c.lease_until < now),
        )

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self.concurrency - len(self._running)
            claimed = 0
            if free > 0:
                try:
                    claimed = await self._claim_some(free)
                except Exception:
                    log.exception("claiming tasks from %s failed", self.table.name)
            if free > 0 and claimed == free:
                continue
            # asyncio.timeout, not wait_for: on 3.11 wait_for returns normally when
            # the event is set in the same loop iteration as a cancellation, and
            # the lost cancellation left stop() waiting for ever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()

    async def _claim_some(self, wanted: int) -> int:
        t = self.table
        async with self.db.read() as s:
            ids = list(
                await s.scalars(
                    select(t.c.id)
                    .where(self._claimable(utcnow()), t.c.kind.in_(list(self.handlers)))
                    .order_by(t.c.created_at)
                    .limit(wanted + len(self._running))
                )
            )
        claimed = 0
        for task_id in ids:
            if claimed == wanted:
                break
            if task_id in self._running:
                continue
            handle = await self._claim(task_id)
            if handle is not None:
                self._spawn(handle)
                claimed += 1
        return claimed

    def _lease_end(self, now: datetime) -> datetime:
        return _ceil_second(now + timedelta(seconds=self.lease_seconds))

    async def _claim(self, task_id: str) -> TaskHandle | None:
        """Take the task if it is still claimable; ``None`` if another runner was
        first (or it has used up its attempts by killing its workers)."""
        t = self.table
        now = utcnow()
        async with self.db.write() as s:
            res = await s.execute(
                update(t)
                # the kind again: it may have changed since the select (take_over)
                .where(t.c.id == task_id, self._claimable(now),
                       t.c.kind.in_(list(self.handlers)))
                .values(state=RUNNING, owner=self.worker_id, lease_until=self._lease_end(now),
                        attempts=t.c.attempts + 1, updated_at=now)
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return None
            row = (await s.execute(select(t).where(t.c.id == task_id))).one()._mapping
            if row["attempts"] > self.max_attempts:
                error = (row["error"] or "") + (
                    f"\nGave up after {self.max_attempts} attempts: its worker stopped "
                    "while running it."
                )
                await s.execute(
                    update(t).where(t.c.id == task_id).values(
                        state=FAILED, owner=None, lease_until=None,
                        attempts=self.max_attempts, error=error.strip()[-ERROR_MAX:],
                        updated_at=now,
                    )
                )
                log.error("task %s (%s) abandoned too often; failed", task_id, row["kind"])
                return None
        return TaskHandle(self, task_id, row["kind"], row["payload"], row["attempts"],
                          row["result"])

    def _spawn(self, handle: TaskHandle) -> None:
        task = asyncio.create_task(self._run(handle), name=f"task:{handle.id}")
        self._running[handle.id] = (task, handle)

        def done(_: asyncio.Task[None]) -> None:
            self._running.pop(handle.id, None)
            if not self._stopping:
                self.wake()

        task.add_done_callback(done)

    async def _run(self, handle: TaskHandle) -> None:
        current = asyncio.current_task()
        assert current is not None
        heartbeat = asyncio.create_task(self._heartbeat(handle, current))
        try:
            try:
                out = await self.handlers[handle.kind](handle)
            finally:
                heartbeat.cancel()
        except asyncio.CancelledError:
            if handle.lost and not self._stopping:
                log.warning("task %s: lease lost, another worker has it", handle.id)
                return
            raise
        except LeaseLost:
            log.warning("task %s: lease lost, another worker has it", handle.id)
            return
        except Exception as exc:
            handle.finishing = True
            log.warning("task %s (%s) attempt %d failed", handle.id, handle.kind,
                        handle.attempt, exc_info=True)
            await self._guarded(self._attempt_failed(handle, exc), handle)
            return
        handle.finishing = True
        if handle.handed_over:
            return
        result = {**handle.result, **(out or {})}
        await self._guarded(self._finish(handle, SUCCEEDED, result=result or None), handle)

    async def _guarded(self, write: Awaitable[bool], handle: TaskHandle) -> None:
        """Record an outcome; if that fails the lease runs out and the task is run
        again (at least once, never lost)."""
        try:
            if not await write:
                log.warning("task %s: finished after its lease was lost", handle.id)
        except Exception:
            log.exception("task %s: recording the outcome failed", handle.id)

    async def _owned_update(self, handle: TaskHandle, **values: Any) -> bool:
        t = self.table
        async with self.db.write() as s:
            res = await s.execute(
                update(t)
                .where(t.c.id == handle.id, t.c.owner == self.worker_id, t.c.state == RUNNING)
                .values(updated_at=utcnow(), **values)
            )
            return bool(res.rowcount == 1)  # type: ignore[attr-defined]

    async def _finish(self, handle: TaskHandle, state: str, **values: Any) -> bool:
        return await self._owned_update(handle, state=state, owner=None, lease_until=None,
                                        **values)

    async def _attempt_failed(self, handle: TaskHandle, exc: Exception) -> bool:
        error = (f"{type(exc).__name__}: {exc}")[:ERROR_MAX]
        if handle.attempt >= self.max_attempts:
            log.error("task %s (%s) failed after %d attempts: %s", handle.id, handle.kind,
                      handle.attempt, error)
            return await self._finish(handle, FAILED, error=error)
        delay = self.retry_delay * handle.attempt
        # a pending task's lease_until is the time before which it is not retried
        not_before = _ceil_second(utcnow() + timedelta(seconds=delay)) if delay > 0 else None
        ok = await self._owned_update(
            handle, state=PENDING, owner=None, lease_until=not_before, error=error
        )
        if ok and not self._stopping:
            asyncio.get_running_loop().call_later(delay + 0.01, self.wake)
        return ok

    async def _hand_over(self, handle: TaskHandle, kind: str, payload: dict[str, Any]) -> None:
        ok = await self._owned_update(
            handle, kind=kind, payload=payload, state=PENDING, owner=None, lease_until=None,
            attempts=0, result=handle.result or None,
        )
        if not ok:
            handle.lost = True
            raise LeaseLost(handle.id)
        if kind in self.handlers and not self._stopping:
            self.wake()

    async def _store_progress(self, handle: TaskHandle, result: dict[str, Any]) -> None:
        ok = await self._owned_update(
            handle, result=result, lease_until=self._lease_end(utcnow())
        )
        if not ok:
            handle.lost = True
            raise LeaseLost(handle.id)

    async def _heartbeat(self, handle: TaskHandle, runner_task: asyncio.Task[None]) -> None:
        """Renew the lease every third of its length; cancel the handler when the
        task turns out to belong to someone else."""
        interval = max(self.lease_seconds / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                ok = await self._owned_update(handle, lease_until=self._lease_end(utcnow()))
            except Exception:
                log.exception("task %s: renewing the lease failed", handle.id)
                continue
            if not ok:
                handle.lost = True
                runner_task.cancel()
                return

