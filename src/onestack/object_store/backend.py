"""Where replicas live: the ``ObjectBackend`` contract and its local implementation.

Everything above this module (quorum writes, newest-replica reads, the
replicator) talks to devices only through ``ObjectBackend``, addressing a
replica by (ring device, partition, name hash). ``LocalBackend`` serves devices
that are directories under one root on this host; ``remote.HttpBackend``
(talking to ``objectserver`` on the device's host:port) implements the same
methods, and ``remote.RoutingBackend`` picks one per device by its host.

Contract for every implementation:

- a device that cannot serve raises ``DeviceUnavailable`` (never a bare OSError);
- versions are immutable and named by timestamp; the newest wins on each device;
- a writer's ``commit`` is atomic and refuses data whose MD5 differs from the
  ``ETag`` it is given; ``abort`` removes what the writer wrote, even after commit;
- readers are checked before they are returned; a replica failing its checks is
  quarantined and reads as missing.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

from onestack.core.concurrency import BatchLane, run_blocking
from onestack.object_store.diskfile import (
    DiskFileManager,
    DiskFileReader,
    DiskFileWriter,
    FileInfo,
)
from onestack.object_store.errors import DeviceUnavailable, DiskFileCorrupt
from onestack.object_store.ring import Device
from onestack.object_store.timestamp import Timestamp

READ_SIZE = 2 * 1024 * 1024
# What ``LocalBackend.open_reader`` reads with the metadata, in the same thread hop: a
# small object is then answered with no further hop (``HttpBackend`` does the same
# over the network with its own ``prefetch``).
PREFETCH = 64 * 1024
T = TypeVar("T")


class ReplicaWriter(abc.ABC):
    """One replica being written; obtained from ``ObjectBackend.open_writer``."""

    @property
    def etag(self) -> str | None:
        """The MD5 of what was written so far, when the writer computes it anyway (a
        local replica does: its commit checks it); ``None`` otherwise. When every
        replica of a write has one, the writer above hashes nothing itself."""
        return None

    @abc.abstractmethod
    async def write(self, block: bytes) -> None:
        """Append data. Raises ``DeviceUnavailable``."""

    @abc.abstractmethod
    async def commit(self, metadata: Mapping[str, str], timestamp: Timestamp) -> None:
        """Make the version visible, atomically.

        Raises:
            EtagMismatch: the data does not hash to ``metadata["ETag"]``.
            DeviceUnavailable: the device failed.
        """

    async def write_and_commit(
        self, block: bytes, metadata: Mapping[str, str], timestamp: Timestamp
    ) -> None:
        """``write`` the last ``block`` (if any) and ``commit``."""
        if block:
            await self.write(block)
        await self.commit(metadata, timestamp)

    @abc.abstractmethod
    async def abort(self) -> None:
        """Remove whatever this writer put on the device, committed or not; never raises."""


class ReplicaReader(abc.ABC):
    """One checked replica; close it (or use ``async with``)."""

    device: Device
    metadata: dict[str, str]
    timestamp: Timestamp
    size: int

    @property
    def etag(self) -> str:
        return self.metadata.get("ETag", "")

    @abc.abstractmethod
    def iter(self, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream ``length`` data bytes (default: to the end) from ``offset``.

        Raises:
            DiskFileCorrupt: a whole-object read did not hash to the ETag (the
                replica has been quarantined).
            DeviceUnavailable: the device failed mid-read.
        """

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ObjectBackend(abc.ABC):
    """Replica storage on ring devices; see the module doc for the contract."""

    def is_local(self, device: Device) -> bool:
        """Whether ``device`` is served on this host (a read there crosses no network):
        single-replica reads ask local primaries first."""
        return False

    @abc.abstractmethod
    async def open_writer(self, device: Device, partition: int, obj_hash: str) -> ReplicaWriter:
        """Start writing a version. Raises ``DeviceUnavailable``."""

    async def write_whole(
        self, device: Device, partition: int, obj_hash: str, data: bytes,
        metadata: Mapping[str, str], timestamp: Timestamp,
    ) -> ReplicaWriter:
        """Open, write ``data`` and commit (a small object in one go); returns the
        committed writer, whose ``abort`` removes the version again. Raises as
        ``open_writer`` and ``ReplicaWriter.commit`` do; leaves nothing then."""
        writer = await self.open_writer(device, partition, obj_hash)
        try:
            await writer.write_and_commit(data, metadata, timestamp)
        except BaseException:
            await writer.abort()
            raise
        return writer

    @abc.abstractmethod
    async def open_reader(self, device: Device, partition: int, obj_hash: str) -> ReplicaReader:
        """The newest version.

        Raises:
            ObjectNotFound: no version (or the newest failed its checks).
            ObjectDeleted: the newest version is a tombstone.
            DeviceUnavailable: the device failed.
        """

    @abc.abstractmethod
    async def delete(
        self,
        device: Device,
        partition: int,
        obj_hash: str,
        timestamp: Timestamp,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Write a tombstone at ``timestamp``. Raises ``DeviceUnavailable``."""

    @abc.abstractmethod
    async def partitions(self, device: Device) -> list[int]:
        """Partitions with data on the device. Raises ``DeviceUnavailable``."""

    @abc.abstractmethod
    async def suffix_hashes(
        self, device: Device, partition: int, *, reclaim_before: Timestamp | None = None
    ) -> dict[str, str]:
        """A digest per suffix of the partition's newest versions (tombstones older than
        ``reclaim_before`` are dropped first). Raises ``DeviceUnavailable``."""

    @abc.abstractmethod
    async def hashes(
        self, device: Device, partition: int, suffixes: set[str] | None = None
    ) -> dict[str, FileInfo]:
        """The newest version of each object (in ``suffixes``, or all). Raises
        ``DeviceUnavailable``."""

    @abc.abstractmethod
    async def remove(self, device: Device, partition: int, obj_hash: str, info: FileInfo) -> None:
        """Drop one version (a handoff copy now held by its primaries). Raises
        ``DeviceUnavailable``."""


def _mapped(device: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn``, turning I/O errors into ``DeviceUnavailable`` (the boundary of disk errors)."""
    try:
        return fn(*args, **kwargs)
    except OSError as exc:
        raise DeviceUnavailable(device, f"failed: {exc}") from exc


class LocalBackend(ObjectBackend):
    """Devices as directories ``root/<device.device>`` on this host (Swift's ``/srv/node``).

    A device directory must already exist (it is a mount point in production;
    with ``mount_check`` it must be mounted): a missing one is unavailable
    rather than created, so data never lands on the root filesystem.
    """

    def __init__(
        self, root: Path, *, mount_check: bool = False, prefetch: int = PREFETCH
    ) -> None:
        self.root = Path(root)
        self.mount_check = mount_check
        self.prefetch = prefetch
        self._managers: dict[str, DiskFileManager] = {}
        self._read_lanes: dict[str, BatchLane] = {}

    def is_local(self, device: Device) -> bool:
        return True

    def manager(self, device: Device) -> DiskFileManager:
        found = self._managers.get(device.device)
        if found is None:
            found = DiskFileManager(self.root / device.device, mount_check=self.mount_check)
            self._managers[device.device] = found
        return found

    def _read_lane(self, device: Device) -> BatchLane:
        """Where a device's replicas are opened for reading: concurrent GETs of small
        objects are opened in batches, by threads of their own (per device, as Swift's
        object server can keep threads per disk), so a busy disk slows only its GETs."""
        lane = self._read_lanes.get(device.device)
        if lane is None:
            lane = self._read_lanes[device.device] = BatchLane(f"open-{device.device}")
        return lane

    async def _run(self, device: Device, fn: Callable[..., T], *args: Any) -> T:
        return await run_blocking(_mapped, device.device, fn, *args)

    async def open_writer(self, device: Device, partition: int, obj_hash: str) -> ReplicaWriter:
        writer = self.manager(device).writer(partition, obj_hash)
        local = _LocalWriter(device, writer)
        try:
            await self._run(device, writer.open)
        except BaseException:
            await local.abort()
            raise
        return local

    async def write_whole(
        self, device: Device, partition: int, obj_hash: str, data: bytes,
        metadata: Mapping[str, str], timestamp: Timestamp,
    ) -> ReplicaWriter:
        """All in one thread hop. A caller cancelled meanwhile leaves nothing: the abort
        waits (on the writer's lock) for what the thread is doing, then undoes it."""
        writer = self.manager(device).writer(partition, obj_hash)
        local = _LocalWriter(device, writer)
        try:
            await self._run(device, _write_whole, writer, data, metadata, timestamp)
        except BaseException:
            await local.abort()
            raise
        return local

    async def open_reader(self, device: Device, partition: int, obj_hash: str) -> ReplicaReader:
        manager = self.manager(device)
        reader, head = await self._read_lane(device).submit_owned(
            _close_opened,
            functools.partial(_mapped, device.device, _open, manager, partition, obj_hash,
                              self.prefetch))
        return _LocalReader(device, manager, reader, partition, obj_hash, head)

    async def delete(
        self,
        device: Device,
        partition: int,
        obj_hash: str,
        timestamp: Timestamp,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        await self._run(
            device, self.manager(device).delete, partition, obj_hash, timestamp, metadata
        )

    async def partitions(self, device: Device) -> list[int]:
        manager = self.manager(device)
        await self._run(device, manager.check)
        return await self._run(device, manager.partitions)

    async def suffix_hashes(
        self, device: Device, partition: int, *, reclaim_before: Timestamp | None = None
    ) -> dict[str, str]:
        manager = self.manager(device)
        await self._run(device, manager.check)
        return await self._run(device, manager.suffix_hashes, partition, reclaim_before)

    async def hashes(
        self, device: Device, partition: int, suffixes: set[str] | None = None
    ) -> dict[str, FileInfo]:
        manager = self.manager(device)
        await self._run(device, manager.check)
        return await self._run(device, manager.hashes, partition, suffixes)

    async def remove(self, device: Device, partition: int, obj_hash: str, info: FileInfo) -> None:
        await self._run(device, self.manager(device).remove, partition, obj_hash, info)


class _LocalWriter(ReplicaWriter):
    def __init__(self, device: Device, writer: DiskFileWriter) -> None:
        self.device = device
        self._writer = writer

    @property
    def etag(self) -> str | None:
        return self._writer.etag

    async def write(self, block: bytes) -> None:
        await run_blocking(_mapped, self.device.device, self._writer.write, block)

    async def commit(self, metadata: Mapping[str, str], timestamp: Timestamp) -> None:
        await run_blocking(_mapped, self.device.device, self._writer.commit, metadata, timestamp)

    async def write_and_commit(
        self, block: bytes, metadata: Mapping[str, str], timestamp: Timestamp
    ) -> None:
        await run_blocking(_mapped, self.device.device, _write_and_commit, self._writer, block,
                           metadata, timestamp)

    async def abort(self) -> None:
        # shielded: a second cancellation must not stop the clean-up half-way
        try:
            await asyncio.shield(run_blocking(self._writer.abort))
        except OSError:
            pass  # the device is failing; what is left is a temp file for cleanup_tmp


class _LocalReader(ReplicaReader):
    def __init__(
        self,
        device: Device,
        manager: DiskFileManager,
        reader: DiskFileReader,
        partition: int,
        obj_hash: str,
        head: bytes = b"",
    ) -> None:
        self.device = device
        self.metadata = reader.metadata
        self.timestamp = reader.timestamp
        self.size = reader.size
        self._manager = manager
        self._reader = reader
        self._where = (partition, obj_hash)
        self._head = head  # the first bytes, read with the metadata

    async def iter(self, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        end = self.size if length is None else min(self.size, offset + length)
        # A whole read checks the MD5 on the way (as Swift does): the bytes are already
        # sent when a mismatch shows, but the replica is quarantined for the next reader.
        md5 = hashlib.md5(usedforsecurity=False) if offset == 0 and end == self.size else None
        head = self._head
        if offset < min(len(head), end):
            data = head[offset:min(len(head), end)]
            if md5 is not None:
                md5.update(data)  # at most PREFETCH bytes: cheaper than a thread hop
            offset += len(data)
            yield data
        # The next block is read (in a worker thread) while this one is being sent.
        pending = self._read_ahead(offset, end, md5)
        try:
            while pending is not None:
                data = await pending
                if not data:
                    raise DeviceUnavailable(self.device.device, "short read")
                offset += len(data)
                pending = self._read_ahead(offset, end, md5)
                yield data
        finally:
            # closed early: nobody wants the read ahead (a failure of it is marked seen)
            if pending is not None and not pending.cancel() and not pending.cancelled():
                pending.exception()
        if md5 is not None and md5.hexdigest() != self.etag:
            await run_blocking(self._manager.quarantine, self._manager.hash_dir(*self._where))
            raise DiskFileCorrupt(f"{self._reader.path}: data does not hash to its ETag")

    def _read_ahead(self, offset: int, end: int, md5: Any) -> asyncio.Future[bytes] | None:
        if offset >= end:
            return None
        return asyncio.ensure_future(run_blocking(
            _mapped, self.device.device, _read, self._reader, offset,
            min(READ_SIZE, end - offset), md5,
        ))

    async def close(self) -> None:
        self._reader.close()


def _open(
    manager: DiskFileManager, partition: int, obj_hash: str, prefetch: int
) -> tuple[DiskFileReader, bytes]:
    """Open the newest version and read its first ``prefetch`` bytes (one thread hop)."""
    reader = manager.open(partition, obj_hash)
    try:
        return reader, reader.pread(0, prefetch) if prefetch else b""
    except BaseException:
        reader.close()
        raise


def _close_opened(opened: tuple[DiskFileReader, bytes]) -> None:
    opened[0].close()


def _write_whole(writer: DiskFileWriter, data: bytes, metadata: Mapping[str, str],
                 timestamp: Timestamp) -> None:
    writer.open()
    _write_and_commit(writer, data, metadata, timestamp)


def _write_and_commit(writer: DiskFileWriter, block: bytes, metadata: Mapping[str, str],
                      timestamp: Timestamp) -> None:
    if block:
        writer.write(block)
    writer.commit(metadata, timestamp)


def _read(reader: DiskFileReader, offset: int, size: int, md5: Any) -> bytes:
    data = reader.pread(offset, size)
    if md5 is not None:
        md5.update(data)
    return data
