"""Replicated reads and writes over the ring (the data path of Swift's proxy).

``ObjectWriter.put`` streams one body to every primary device of the object's
partition at once, in blocks of ``BLOCK_SIZE`` (one block travels to the
replicas while the next is received, so memory stays at about two blocks
whatever the size). A body that ends within its first block is written whole
instead: hashed first, then opened, written and committed on each replica in
one go (``ObjectBackend.write_whole``), a failed primary replaced by a handoff. A primary that cannot be opened is replaced by the next
handoff; one that fails mid-stream is dropped. The write succeeds when a quorum
(``replicas // 2 + 1``) commits with the same ETag; otherwise every replica that
was written is removed again and ``QuorumNotMet`` is raised. Each version is
named by its timestamp, so of two concurrent writes the later timestamp wins on
every device, whatever order they finish in.

``ObjectReader.open`` asks every primary and returns the newest replica; when
fewer than a quorum of primaries hold any version (the others failed or lost it)
it asks handoffs too, since the newest write may have landed there. Client GETs
and HEADs without ``X-Newest`` read one replica instead (``newest=False``), as
Swift's proxy does: the first primary that has the object.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from onestack.core.concurrency import run_blocking
from onestack.object_store.backend import ObjectBackend, ReplicaReader, ReplicaWriter
from onestack.object_store.errors import (
    EtagMismatch,
    ObjectDeleted,
    ObjectNotFound,
    QuorumNotMet,
    SizeMismatch,
)
from onestack.object_store.ring import Device, Ring
from onestack.object_store.timestamp import Timestamp

log = logging.getLogger(__name__)
BLOCK_SIZE = 4 * 1024 * 1024
# A whole object up to this size is hashed on the event loop, not in a worker thread.
INLINE_HASH = 64 * 1024
# Set from what was written, whatever the caller passes.
RESERVED_METADATA = frozenset({"name", "X-Timestamp", "ETag", "Content-Length"})


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


async def _on_replicas(primaries: list[Device], handoffs: Iterator[Device],
                       attempt: Callable[[Device], Awaitable[bool]]) -> int:
    """``attempt`` on every primary at once, then on as many handoffs as attempts
    failed, until none failed or no handoff is left; how many succeeded."""
    done = sum(await asyncio.gather(*(attempt(d) for d in primaries)))
    missing = len(primaries) - done
    while missing:
        batch = [d for _, d in zip(range(missing), handoffs, strict=False)]
        if not batch:
            break
        succeeded = sum(await asyncio.gather(*(attempt(d) for d in batch)))
        done, missing = done + succeeded, missing - succeeded
    return done


def quorum_size(replicas: int) -> int:
    return replicas // 2 + 1


@dataclass(frozen=True)
class PutResult:
    etag: str
    size: int
    timestamp: Timestamp
    devices: tuple[Device, ...]  # where the replicas committed (handoffs included)


def _forget(fut: asyncio.Future[Any]) -> None:
    """Stop caring about ``fut``: cancel it, or mark its exception as seen."""
    if not fut.done():
        fut.cancel()
    elif not fut.cancelled():
        fut.exception()


class _Fanout:
    """The replicas of one write: opening (with handoffs), sending, committing, undoing."""

    def __init__(self, backend: ObjectBackend, partition: int, obj_hash: str, quorum: int) -> None:
        self.backend, self.partition, self.obj_hash = backend, partition, obj_hash
        self.quorum = quorum
        self.live: list[tuple[Device, ReplicaWriter]] = []
        self.opened: list[ReplicaWriter] = []  # everything to undo on failure

    async def open(self, primaries: list[Device], handoffs: Iterator[Device]) -> None:
        await _on_replicas(primaries, handoffs, self._open_one)
        self._check_quorum()

    async def _open_one(self, device: Device) -> bool:
        try:
            writer = await self.backend.open_writer(device, self.partition, self.obj_hash)
        except Exception as exc:  # noqa: BLE001 - any failure just loses this replica
            log.warning("object write: cannot open %s: %s", device.device, exc)
            return False
        self.opened.append(writer)
        self.live.append((device, writer))
        return True

    def hashing_replicas(self) -> bool:
        """Whether every replica computes the MD5 of what it is sent (local ones do)."""
        return all(writer.etag is not None for _, writer in self.live)

    def replica_etag(self) -> str:
        """The MD5 the replicas computed (they were sent the same bytes; a replica
        that disagrees fails its commit, which checks the ETag against its own)."""
        return next(e for _, w in self.live if (e := w.etag) is not None)

    async def send(self, block: bytes, md5: Any) -> None:
        """Write ``block`` to every live replica (and feed the MD5, unless ``None``) at
        the same time."""
        live = list(self.live)
        hashing = [run_blocking(md5.update, block)] if md5 is not None else []
        results = await asyncio.gather(
            *hashing, *(writer.write(block) for _, writer in live), return_exceptions=True,
        )
        if hashing and isinstance(results[0], BaseException):
            raise results[0]
        await self._drop_failed(live, results[len(hashing):], "write")

    async def finish(self, block: bytes, metadata: Mapping[str, str], timestamp: Timestamp) -> None:
        """Write the last ``block`` and commit, on every live replica at the same time (a
        local replica does both in one thread hop: a small object costs one hop less).
        A replica whose data does not hash to ``metadata["ETag"]`` fails its commit."""
        live = list(self.live)
        results = await asyncio.gather(
            *(writer.write_and_commit(block, metadata, timestamp) for _, writer in live),
            return_exceptions=True,
        )
        await self._drop_failed(live, results, "commit")

    async def _drop_failed(
        self, live: list[tuple[Device, ReplicaWriter]], results: list[Any], what: str
    ) -> None:
        for (device, writer), result in zip(live, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # cancellation and the like are not a replica's failure
                log.warning("object %s failed on %s: %s", what, device.device, result)
                self.live.remove((device, writer))
                await writer.abort()
        self._check_quorum()

    def _check_quorum(self) -> None:
        if len(self.live) < self.quorum:
            raise QuorumNotMet(len(self.live), self.quorum)

    async def abort(self) -> None:
        await asyncio.gather(*(w.abort() for w in self.opened))


class ObjectWriter:
    """Quorum writes and deletes of objects over ``ring`` (see the module doc)."""

    def __init__(self, ring: Ring, backend: ObjectBackend, *, block_size: int = BLOCK_SIZE) -> None:
        self.ring = ring
        self.backend = backend
        self.block_size = block_size

    async def put(
        self,
        account: str,
        container: str,
        obj: str,
        body: AsyncIterable[bytes],
        metadata: Mapping[str, str],
        *,
        timestamp: Timestamp | None = None,
        expected_etag: str | None = None,
        expected_size: int | None = None,
    ) -> PutResult:
        """Store ``body`` with ``metadata`` (str -> str: Content-Type, X-Object-Meta-* ...).

        Raises:
            QuorumNotMet: fewer than a quorum of replicas committed (nothing is left).
            EtagMismatch: the data's MD5 is not ``expected_etag`` (nothing is left).
            SizeMismatch: the body's length is not ``expected_size`` (nothing is left).
        """
        timestamp = timestamp or Timestamp.now()
        meta = {k: v for k, v in metadata.items() if k not in RESERVED_METADATA}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise TypeError("metadata must map str to str")
        meta["name"] = f"/{account}/{container}/{obj}"
        partition, primaries = self.ring.get_nodes(account, container, obj)
        obj_hash = self.ring.object_hash(account, container, obj)
        # The first block decides: an object that ends within it is written whole to
        # each replica at once; a longer one is streamed.
        chunks = aiter(body)
        parts: list[bytes] = []
        size = 0
        while size < self.block_size:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                if expected_size is not None and size != expected_size:
                    raise SizeMismatch(expected_size, size) from None
                return await self._put_whole(partition, obj_hash, primaries, b"".join(parts),
                                             meta, timestamp, expected_etag)
            if chunk:
                parts.append(chunk if isinstance(chunk, bytes) else bytes(chunk))
                size += len(chunk)
                if expected_size is not None and size > expected_size:
                    raise SizeMismatch(expected_size, size)
        fanout = _Fanout(self.backend, partition, obj_hash, quorum_size(len(primaries)))
        md5: Any = None
        pending: asyncio.Future[None] | None = None
        try:
            await fanout.open(primaries, self._handoffs(partition))
            # replicas that hash what they are sent (local ones) spare a fourth MD5 here
            if not fanout.hashing_replicas():
                md5 = hashlib.md5(usedforsecurity=False)
            pending = asyncio.ensure_future(fanout.send(b"".join(parts), md5))
            parts, buffered = [], 0
            async for chunk in chunks:
                if not chunk:
                    continue
                parts.append(chunk if isinstance(chunk, bytes) else bytes(chunk))
                buffered += len(chunk)
                size += len(chunk)
                if expected_size is not None and size > expected_size:
                    raise SizeMismatch(expected_size, size)
                if buffered >= self.block_size:
                    await pending
                    pending = asyncio.ensure_future(fanout.send(b"".join(parts), md5))
                    parts, buffered = [], 0
            await pending
            pending = None
            if expected_size is not None and size != expected_size:
                raise SizeMismatch(expected_size, size)
            last = b"".join(parts)
            if md5 is not None:
                if last:
                    await run_blocking(md5.update, last)
            elif last:  # the replicas hash what they are sent
                await fanout.send(last, None)
                last = b""
            etag = md5.hexdigest() if md5 is not None else fanout.replica_etag()
            if expected_etag is not None and expected_etag.strip('"').lower() != etag:
                raise EtagMismatch(expected_etag, etag)
            meta["ETag"] = etag  # a replica that was sent other bytes fails its commit
            await fanout.finish(last, meta, timestamp)
        except BaseException:
            if pending is not None:
                _forget(pending)
            await asyncio.shield(fanout.abort())
            raise
        return PutResult(etag, size, timestamp, tuple(d for d, _ in fanout.live))

    async def _put_whole(
        self, partition: int, obj_hash: str, primaries: list[Device], data: bytes,
        meta: dict[str, str], timestamp: Timestamp, expected_etag: str | None,
    ) -> PutResult:
        """Write ``data`` (a whole object of at most a block) to every primary at once,
        each opened, written and committed in one go; a primary that fails is replaced
        by the next handoff, whether it failed opening or committing (the data is at
        hand, unlike a stream's)."""
        # a small one is hashed here: cheaper than a thread hop
        etag = _md5_hex(data) if len(data) <= INLINE_HASH else await run_blocking(_md5_hex, data)
        if expected_etag is not None and expected_etag.strip('"').lower() != etag:
            raise EtagMismatch(expected_etag, etag)
        meta["ETag"] = etag
        written: list[tuple[Device, ReplicaWriter]] = []

        async def one(device: Device) -> bool:
            try:
                writer = await self.backend.write_whole(device, partition, obj_hash, data, meta,
                                                        timestamp)
            except Exception as exc:  # noqa: BLE001 - any failure just loses this replica
                log.warning("object write failed on %s: %s", device.device, exc)
                return False
            written.append((device, writer))
            return True

        quorum = quorum_size(len(primaries))
        try:
            await _on_replicas(primaries, self._handoffs(partition), one)
            if len(written) < quorum:
                raise QuorumNotMet(len(written), quorum)
        except BaseException:
            await asyncio.shield(asyncio.gather(*(w.abort() for _, w in written)))
            raise
        return PutResult(etag, len(data), timestamp, tuple(d for d, _ in written))

    def _handoffs(self, partition: int) -> Iterator[Device]:
        """Handoffs, computed only if a primary fails (ranking them costs a hash per device)."""
        yield from self.ring.handoffs(partition)

    async def delete(
        self, account: str, container: str, obj: str, *, timestamp: Timestamp | None = None
    ) -> Timestamp:
        """Write tombstones on the primaries (handoffs standing in for failed ones).

        A tombstone that landed stays even when the quorum is missed (as in Swift):
        replication spreads it, so a failed delete may still take effect.

        Raises:
            QuorumNotMet: fewer than a quorum of tombstones were written.
        """
        timestamp = timestamp or Timestamp.now()
        partition, primaries = self.ring.get_nodes(account, container, obj)
        obj_hash = self.ring.object_hash(account, container, obj)
        meta = {"name": f"/{account}/{container}/{obj}"}

        async def tombstone(device: Device) -> bool:
            try:
                await self.backend.delete(device, partition, obj_hash, timestamp, meta)
            except Exception as exc:  # noqa: BLE001 - any failure just loses this replica
                log.warning("object delete failed on %s: %s", device.device, exc)
                return False
            return True

        done = await _on_replicas(primaries, self._handoffs(partition), tombstone)
        if done < quorum_size(len(primaries)):
            raise QuorumNotMet(done, quorum_size(len(primaries)))
        return timestamp


class ObjectReader:
    """Newest-replica reads over ``ring`` (see the module doc)."""

    def __init__(self, ring: Ring, backend: ObjectBackend, *, handoff_limit: int | None = None):
        """``handoff_limit``: how many handoffs to ask (default: as many as replicas)."""
        self.ring = ring
        self.backend = backend
        self.handoff_limit = handoff_limit

    async def open(
        self, account: str, container: str, obj: str, *, newest: bool = True
    ) -> ReplicaReader:
        """The newest replica, open; the caller closes it (``async with``).

        With ``newest=False`` (Swift's proxy GET and HEAD without ``X-Newest``) the
        first primary that holds the object answers, local ones first; when the first
        to answer has no object or a tombstone, every replica is asked as with
        ``newest`` (so a 404 is only ever the newest state, never one stale replica's).

        Raises:
            ObjectDeleted: the newest version anywhere asked is a tombstone.
            ObjectNotFound: no replica answered with the object.
        """
        partition, primaries = self.ring.get_nodes(account, container, obj)
        obj_hash = self.ring.object_hash(account, container, obj)
        if not newest:
            first = await self._first(primaries, partition, obj_hash)
            if first is not None:
                return first
        found: list[ReplicaReader | Timestamp] = []
        try:
            found += await self._probe(primaries, partition, obj_hash)
            if len(found) < quorum_size(len(primaries)):
                limit = self.handoff_limit if self.handoff_limit is not None else len(primaries)
                handoffs = self.ring.handoffs(partition)[:limit]
                found += await self._probe(handoffs, partition, obj_hash)
        except BaseException:
            await _close_all(found)
            raise
        if not found:
            raise ObjectNotFound()
        best = max(found, key=_version)  # max keeps the first of equals: primaries first
        await _close_all([f for f in found if f is not best])
        if isinstance(best, Timestamp):
            raise ObjectDeleted(best)
        return best

    async def _first(
        self, primaries: list[Device], partition: int, obj_hash: str
    ) -> ReplicaReader | None:
        """The first primary's replica, local primaries first (in ring order otherwise);
        ``None`` when one answers without the object or none can answer."""
        ordered = sorted(primaries, key=lambda d: not self.backend.is_local(d))
        for device in ordered:
            try:
                return await self.backend.open_reader(device, partition, obj_hash)
            except (ObjectDeleted, ObjectNotFound):
                return None
            except Exception as exc:  # noqa: BLE001 - the next primary may answer
                log.warning("object read: %s failed: %s", device.device, exc)
        return None

    async def head(self, account: str, container: str, obj: str) -> dict[str, str]:
        """The newest replica's metadata. Raises like ``open``."""
        async with await self.open(account, container, obj) as reader:
            return dict(reader.metadata)

    async def _probe(
        self, devices: list[Device], partition: int, obj_hash: str
    ) -> list[ReplicaReader | Timestamp]:
        """Each device's newest version: an open reader, or a tombstone's timestamp."""
        found: list[ReplicaReader | Timestamp] = []

        async def one(device: Device) -> None:
            try:
                found.append(await self.backend.open_reader(device, partition, obj_hash))
            except ObjectDeleted as deleted:
                found.append(deleted.timestamp)
            except ObjectNotFound:
                pass
            except Exception as exc:  # noqa: BLE001 - other replicas may answer
                log.warning("object read: %s failed: %s", device.device, exc)

        try:
            await asyncio.gather(*(one(d) for d in devices))
        except BaseException:
            await _close_all(found)
            raise
        return found


def _version(found: ReplicaReader | Timestamp) -> tuple[Timestamp, bool]:
    """Newest first; a tombstone wins a tie with data of the same timestamp."""
    if isinstance(found, Timestamp):
        return (found, True)
    return (found.timestamp, False)


async def _close_all(found: list[ReplicaReader | Timestamp]) -> None:
    for item in found:
        if not isinstance(item, Timestamp):
            with contextlib.suppress(Exception):
                await item.close()
