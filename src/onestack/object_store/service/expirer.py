"""The object expirer: removes objects past their ``X-Delete-At``.

Reads already answer 404 once an object's time has come; this pass reclaims the
space and takes the rows out of the listings. Swift keeps a queue of
``(delete_at, object)`` entries in hidden accounts; here the listings know each
object's ``delete_at`` and ``Listings.expired`` gives the rows whose time has
passed.

As Swift's expirer deletes with ``X-If-Delete-At``, an object is deleted only if
the newest version still carries an ``X-Delete-At`` that has passed: a row whose
object was replaced (or had its expiry changed by a POST) since it was listed is
corrected instead. The tombstone is dated at the ``X-Delete-At`` itself, as
Swift dates it, so that a newer upload made after the expiry time always wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from onestack.object_store.api.object import delete_at, listing_values
from onestack.object_store.errors import ObjectDeleted, ObjectNotFound
from onestack.object_store.state import ObjectStoreState
from onestack.object_store.timestamp import Timestamp

log = logging.getLogger(__name__)
BATCH = 1000
CONCURRENCY = 8
# a pass stops after this many batches, so that one pass never runs unbounded
MAX_BATCHES = 100


class Expirer:
    """Periodic passes over the expired rows of the listings (see the module doc)."""

    def __init__(self, st: ObjectStoreState) -> None:
        self.st = st
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """One pass; returns how many objects were deleted."""
        deleted = 0
        for _ in range(MAX_BATCHES):
            rows = await self.st.listings.expired(time.time(), limit=BATCH)
            results = await self._handle_all(rows)
            deleted += sum(1 for r in results if r is True)
            handled = sum(1 for r in results if r is not None)
            if len(rows) < BATCH or not handled:
                break
        return deleted

    async def _handle_all(
        self, rows: list[tuple[str, str, str, Timestamp]]
    ) -> list[bool | None]:
        """Each row's outcome: deleted (True), row corrected (False), failed (None)."""
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(row: tuple[str, str, str, Timestamp]) -> bool | None:
            async with gate:
                try:
                    return await self.expire(*row)
                except Exception:  # the next pass retries this row
                    log.exception("expirer: cannot expire %s/%s/%s", *row[:3])
                    return None

        return list(await asyncio.gather(*(one(r) for r in rows)))

    async def expire(self, account: str, container: str, obj: str, listed: Timestamp) -> bool:
        """Delete the object if its newest version is past its X-Delete-At; otherwise
        correct its listing row. ``listed`` is the row's timestamp. Returns whether
        the object was deleted."""
        now = time.time()
        try:
            replica = await self.st.reader.open(account, container, obj)
        except ObjectDeleted as gone:
            await self.st.listings.object_deleted(account, container, obj,
                                                  timestamp=gone.timestamp)
            return False
        except ObjectNotFound:
            # nothing anywhere: the row is all that is left of it
            await self.st.listings.object_deleted(account, container, obj,
                                                  timestamp=Timestamp(listed.ticks + 1))
            return False
        async with replica:
            metadata, version, size = dict(replica.metadata), replica.timestamp, replica.size
        when = delete_at(metadata)
        if when is None or when > now:
            await self._relist(account, container, obj, metadata, version, size)
            return False
        tombstone = Timestamp.from_float(when)
        if tombstone <= version:  # a version dated after its own expiry (client X-Timestamp)
            tombstone = Timestamp(version.ticks + 1)
        await self.st.writer.delete(account, container, obj, timestamp=tombstone)
        await self.st.listings.object_deleted(account, container, obj, timestamp=tombstone)
        return True

    async def _relist(
        self, account: str, container: str, obj: str, metadata: dict[str, str],
        version: Timestamp, size: int,
    ) -> None:
        """The row outlived a change of the object: list it as it now is."""
        await self.st.listings.object_updated(
            account, container, obj, timestamp=version,
            **listing_values(metadata, size, metadata.get("ETag", "")),
        )

    async def start(self) -> None:
        """Run a pass every ``expiring_objects_interval`` seconds until ``stop`` (both
        are ``Runtime`` startup and shutdown hooks)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="object-expirer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        interval = self.st.settings.object_store.expiring_objects_interval
        while True:
            try:
                count = await self.run_once()
                if count:
                    log.info("expirer: deleted %d expired objects", count)
            except Exception:  # keep running; the next pass retries
                log.exception("expirer pass failed")
            await asyncio.sleep(interval)

