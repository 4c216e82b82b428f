"""The replicator and the auditor, run in the background of the service.

Swift runs them as separate daemons on every storage host; here each host's
``onestack up`` runs them over its own devices (those the ring places at its
host:port), as two tasks, so that a long audit never delays replication:

- the replicator pass puts replicas where the ring wants them (lost or stale
  primaries are refilled from the others, handoffs pushed back and dropped);
- the auditor pass reads every file at a bounded rate and quarantines the
  corrupt ones; a pass that quarantined something wakes the replicator, so the
  replica is restored without waiting for its next turn.

Both run every ``object_store.replication_interval`` seconds, the first pass a
few seconds after start. A pass over devices without data lists a few
directories and stops. A failing pass is logged and the next one runs on
schedule. Disk work goes through worker threads (``Replicator`` and ``Auditor``
use ``run_blocking``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any

from onestack.object_store.backend import LocalBackend, ObjectBackend
from onestack.object_store.remote import RoutingBackend
from onestack.object_store.replicator import Auditor, AuditStats, ReplicationStats, Replicator
from onestack.object_store.ring import Device, Ring
from onestack.object_store.state import ObjectStoreState

log = logging.getLogger(__name__)
# the first pass waits this long (or one interval if shorter): the server starts serving first
FIRST_PASS_DELAY = 5.0
# Swift's auditor default (bytes_per_second): a pass never saturates the disks
AUDIT_BYTES_PER_SECOND = 10 * 1024 * 1024


class ObjectDaemons:
    """Replication and audit passes over ``devices``, this host's devices in ``ring``;
    ``local`` serves them from disk, ``backend`` reaches every device of the ring."""

    def __init__(
        self,
        ring: Ring,
        backend: ObjectBackend,
        local: LocalBackend,
        devices: Sequence[Device],
        *,
        interval: float,
        first_delay: float = FIRST_PASS_DELAY,
        audit_bytes_per_second: float | None = AUDIT_BYTES_PER_SECOND,
    ) -> None:
        self.devices = list(devices)
        self.interval = interval
        self.first_delay = min(first_delay, interval)
        self.replicator = Replicator(ring, backend, devices=self.devices)
        self.auditor = Auditor(
            [local.manager(d) for d in self.devices], bytes_per_second=audit_bytes_per_second
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()

    @classmethod
    def for_state(cls, st: ObjectStoreState, **options: Any) -> ObjectDaemons | None:
        """The daemons of the service's backend (``st.extras["backend"]``): this host's
        devices of a ``RoutingBackend``, every device of a ``LocalBackend``; ``None``
        for other backends (nothing here to repair)."""
        backend = st.extras.get("backend")
        if isinstance(backend, RoutingBackend):
            local, devices = backend.local, backend.local_devices(st.ring.devices)
        elif isinstance(backend, LocalBackend):
            local, devices = backend, st.ring.devices
        else:
            return None
        options.setdefault("interval", st.settings.object_store.replication_interval)
        return cls(st.ring, backend, local, devices, **options)

    async def replicate_once(self) -> ReplicationStats:
        return await self.replicator.replicate_once()

    async def audit_once(self) -> AuditStats:
        stats = await self.auditor.audit_once()
        if stats.quarantined:
            self._wake.set()
        return stats

    async def run_once(self) -> tuple[AuditStats, ReplicationStats]:
        """An audit pass, then a replication pass (which restores what the audit
        quarantined): what the background tasks do, at once."""
        audit = await self.audit_once()
        return audit, await self.replicate_once()

    async def start(self) -> None:
        """Start both loops (a ``Runtime`` startup hook); nothing to do without devices."""
        if self._tasks or not self.devices:
            return
        self._tasks = [
            asyncio.create_task(
                self._loop(self.replicate_once, "object-replicator", self._wake),
                name="object-replicator",
            ),
            asyncio.create_task(
                self._loop(self.audit_once, "object-auditor"), name="object-auditor"
            ),
        ]

    async def stop(self) -> None:
        """Cancel both loops and wait for them (a ``Runtime`` shutdown hook)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(
        self,
        one_pass: Callable[[], Awaitable[ReplicationStats | AuditStats]],
        name: str,
        wake: asyncio.Event | None = None,
    ) -> None:
        delay = self.first_delay
        while True:
            await _sleep(delay, wake)
            started = time.monotonic()
            try:
                stats = await one_pass()
            except Exception:  # the next pass retries
                log.exception("%s pass failed", name)
            else:
                _report(name, stats, time.monotonic() - started)
            delay = max(0.0, self.interval - (time.monotonic() - started))


async def _sleep(delay: float, wake: asyncio.Event | None) -> None:
    """Sleep ``delay`` seconds, less if ``wake`` is set (it is cleared on waking)."""
    if wake is None:
        await asyncio.sleep(delay)
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):  # not wait_for: it can lose a cancellation
            await wake.wait()
    wake.clear()


def _report(name: str, stats: ReplicationStats | AuditStats, seconds: float) -> None:
    """Log a pass that changed or failed something at info, a quiet one at debug."""
    values = asdict(stats)
    busy = {k: v for k, v in values.items() if v and k not in ("partitions", "files", "bytes",
                                                                "suffixes_compared")}
    level = logging.INFO if busy else logging.DEBUG
    log.log(level, "%s pass done in %.1fs: %s", name, seconds,
            ", ".join(f"{k}={v}" for k, v in values.items()), extra={"stats": values})
