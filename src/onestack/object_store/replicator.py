"""Background repair: the replicator (replicas where the ring wants them) and the auditor
(no silent corruption).

The replicator goes through the partitions held by the devices it is given.
For a partition whose primary it is, it compares the primaries' suffix digests,
lists the objects of the suffixes that differ, and copies the newest version of
each object (data or tombstone) to every primary that lacks it or holds an older
one. For a partition it holds as a handoff, it pushes each version to the
primaries and removes its own copy once every primary holds that version or a
newer one. Tombstones older than ``reclaim_age`` are dropped (Swift's default is
a week: long enough for every replica to have seen the delete). It only talks
through ``ObjectBackend``, so it works the same across hosts.

The auditor reads every file of local devices at a bounded rate, checks the
trailer and the data's MD5 against the stored ETag, and quarantines failures;
the replicator then restores them from the other replicas. It also removes temp
files left by writes that died with their process.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from onestack.core.concurrency import run_blocking
from onestack.object_store.backend import ObjectBackend
from onestack.object_store.diskfile import DiskFileManager, DiskFileReader, FileInfo
from onestack.object_store.errors import DeviceUnavailable, DiskFileCorrupt, ObjectNotFound
from onestack.object_store.ring import Device, Ring
from onestack.object_store.timestamp import Timestamp

log = logging.getLogger(__name__)
RECLAIM_AGE = 7 * 24 * 3600.0
AUDIT_BLOCK = 4 * 1024 * 1024


@dataclass
class ReplicationStats:
    partitions: int = 0
    suffixes_compared: int = 0
    objects_copied: int = 0
    tombstones_copied: int = 0
    handoffs_removed: int = 0
    failures: int = 0


@dataclass
class AuditStats:
    files: int = 0
    bytes: int = 0
    quarantined: int = 0
    tmp_removed: int = 0
    failures: int = 0


class Replicator:
    """Moves replicas to where ``ring`` wants them, for ``devices`` (default: all)."""

    def __init__(
        self,
        ring: Ring,
        backend: ObjectBackend,
        *,
        devices: Iterable[Device] | None = None,
        reclaim_age: float = RECLAIM_AGE,
    ) -> None:
        self.ring = ring
        self.backend = backend
        self.devices = list(devices) if devices is not None else ring.devices
        self.reclaim_age = reclaim_age

    async def replicate_once(self) -> ReplicationStats:
        """One pass over every partition on the devices."""
        stats = ReplicationStats()
        reclaim_before = Timestamp.from_float(time.time() - self.reclaim_age)
        synced: set[int] = set()
        for device in self.devices:
            try:
                partitions = await self.backend.partitions(device)
            except DeviceUnavailable as exc:
                log.warning("replicator: skipping %s: %s", device.device, exc)
                stats.failures += 1
                continue
            for partition in partitions:
                if partition >= self.ring.partition_count:
                    continue  # left over from a ring with more partitions
                primaries = self.ring.nodes(partition)
                is_primary = any(p.id == device.id for p in primaries)
                if is_primary:
                    if partition in synced:
                        continue  # another of its primaries is on this host too
                    synced.add(partition)
                stats.partitions += 1
                try:
                    if is_primary:
                        await self._sync(partition, primaries, reclaim_before, stats)
                    else:
                        await self._revert(device, partition, primaries, stats)
                except Exception:  # one partition must not stop the pass
                    log.exception("replicator: partition %d on %s failed", partition, device.device)
                    stats.failures += 1
        return stats

    async def run(self, interval: float = 30.0) -> None:
        await run_forever(self.replicate_once, interval, name="object-replicator")

    async def _sync(
        self,
        partition: int,
        primaries: list[Device],
        reclaim_before: Timestamp,
        stats: ReplicationStats,
    ) -> None:
        digests: dict[int, dict[str, str]] = {}
        for device in primaries:
            try:
                digests[device.id] = await self.backend.suffix_hashes(
                    device, partition, reclaim_before=reclaim_before
                )
            except DeviceUnavailable:
                stats.failures += 1
        up = [d for d in primaries if d.id in digests]
        suffixes = {s for ds in digests.values() for s in ds}
        differ = {s for s in suffixes if len({ds.get(s) for ds in digests.values()}) > 1}
        stats.suffixes_compared += len(suffixes)
        if not differ or len(up) < 2:
            return
        listings = {d.id: await self.backend.hashes(d, partition, differ) for d in up}
        newest: dict[str, tuple[FileInfo, Device]] = {}
        for device in up:
            for obj_hash, info in listings[device.id].items():
                if obj_hash not in newest or info > newest[obj_hash][0]:
                    newest[obj_hash] = (info, device)
        for obj_hash, (info, source) in sorted(newest.items()):
            for device in up:
                theirs = listings[device.id].get(obj_hash)
                if theirs is None or theirs < info:
                    await self._copy(source, device, partition, obj_hash, info, stats)

    async def _revert(
        self, handoff: Device, partition: int, primaries: list[Device], stats: ReplicationStats
    ) -> None:
        """Push a handoff's versions to the primaries; drop each once they all have it."""
        held = await self.backend.hashes(handoff, partition)
        if not held:
            return
        suffixes = {h[-3:] for h in held}
        listings: dict[int, dict[str, FileInfo]] = {}
        for device in primaries:
            try:
                listings[device.id] = await self.backend.hashes(device, partition, suffixes)
            except DeviceUnavailable:
                stats.failures += 1
        for obj_hash, info in sorted(held.items()):
            everywhere = len(listings) == len(primaries)
            for device in primaries:
                theirs = listings.get(device.id, {}).get(obj_hash)
                if device.id in listings and (theirs is None or theirs < info):
                    ok = await self._copy(handoff, device, partition, obj_hash, info, stats)
                    everywhere = everywhere and ok
            if everywhere:
                await self.backend.remove(handoff, partition, obj_hash, info)
                stats.handoffs_removed += 1

    async def _copy(
        self,
        source: Device,
        target: Device,
        partition: int,
        obj_hash: str,
        info: FileInfo,
        stats: ReplicationStats,
    ) -> bool:
        """Copy one version; the target's own ETag check guards against a bad source."""
        try:
            if info.deleted:
                await self.backend.delete(target, partition, obj_hash, info.timestamp)
                stats.tombstones_copied += 1
                return True
            async with await self.backend.open_reader(source, partition, obj_hash) as reader:
                writer = await self.backend.open_writer(target, partition, obj_hash)
                try:
                    async for block in reader.iter():
                        await writer.write(block)
                    await writer.commit(reader.metadata, reader.timestamp)
                except BaseException:
                    await writer.abort()
                    raise
            stats.objects_copied += 1
            return True
        except (ObjectNotFound, DeviceUnavailable, DiskFileCorrupt) as exc:
            log.warning(
                "replicator: %s %s -> %s failed: %s", obj_hash, source.device, target.device, exc
            )
        except Exception as exc:  # noqa: BLE001 - EtagMismatch and the like: next pass retries
            log.warning("replicator: %s to %s failed: %s", obj_hash, target.device, exc)
        stats.failures += 1
        return False


class Auditor:
    """Checks every file on local devices; at most ``bytes_per_second`` when given."""

    def __init__(
        self,
        managers: Sequence[DiskFileManager],
        *,
        bytes_per_second: float | None = None,
        tmp_age: float = 86400.0,
    ) -> None:
        self.managers = list(managers)
        self.bytes_per_second = bytes_per_second
        self.tmp_age = tmp_age

    async def audit_once(self) -> AuditStats:
        """One pass over every file of every device."""
        stats = AuditStats()
        started = time.monotonic()
        for manager in self.managers:
            try:
                await run_blocking(manager.check)
                files = await run_blocking(_list_files, manager)
                stats.tmp_removed += await run_blocking(manager.cleanup_tmp, self.tmp_age)
            except (DeviceUnavailable, OSError) as exc:
                log.warning("auditor: skipping %s: %s", manager.name, exc)
                stats.failures += 1
                continue
            for _, _, path in files:
                await self._audit_file(manager, path, stats)
                if self.bytes_per_second:
                    ahead = stats.bytes / self.bytes_per_second - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        return stats

    async def run(self, interval: float = 3600.0) -> None:
        await run_forever(self.audit_once, interval, name="object-auditor")

    async def _audit_file(self, manager: DiskFileManager, path: Path, stats: AuditStats) -> None:
        info = FileInfo.parse(path.name)
        assert info is not None
        try:
            reader = await run_blocking(DiskFileReader, path, info)
        except FileNotFoundError:
            return  # replaced by a newer version since the listing
        except DiskFileCorrupt as exc:
            await self._quarantine(manager, path, exc, stats)
            return
        except OSError as exc:
            log.warning("auditor: cannot read %s: %s", path, exc)
            stats.failures += 1
            return
        stats.files += 1
        try:
            md5 = hashlib.md5(usedforsecurity=False)
            offset = 0
            while offset < reader.size:
                block = await run_blocking(_read_hashed, reader, offset, md5)
                if not block:
                    raise DiskFileCorrupt("file shorter than its footer says")
                offset += block
            stats.bytes += offset
            if not info.deleted and md5.hexdigest() != reader.etag:
                raise DiskFileCorrupt(f"data hashes to {md5.hexdigest()}, ETag {reader.etag}")
        except DiskFileCorrupt as exc:
            await self._quarantine(manager, path, exc, stats)
        except OSError as exc:
            log.warning("auditor: cannot read %s: %s", path, exc)
            stats.failures += 1
        finally:
            reader.close()

    async def _quarantine(
        self, manager: DiskFileManager, path: Path, exc: Exception, stats: AuditStats
    ) -> None:
        log.warning("auditor: quarantining %s: %s", path, exc)
        await run_blocking(manager.quarantine, path.parent)
        stats.quarantined += 1


def _list_files(manager: DiskFileManager) -> list[tuple[int, str, Path]]:
    return list(manager.files())


def _read_hashed(reader: DiskFileReader, offset: int, md5: Any) -> int:
    data = reader.pread(offset, AUDIT_BLOCK)
    md5.update(data)
    return len(data)


async def run_forever(
    one_pass: Callable[[], Awaitable[Any]], interval: float, *, name: str
) -> None:
    """Run ``one_pass`` every ``interval`` seconds until cancelled; a failing pass is
    logged and the next one runs on schedule."""
    while True:
        started = time.monotonic()
        try:
            stats = await one_pass()
            details = asdict(stats) if is_dataclass(stats) and not isinstance(stats, type) else None
            log.info("%s pass done", name, extra={"stats": details})
        except Exception:
            log.exception("%s pass failed", name)
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
