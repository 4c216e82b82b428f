"""Object replicas as files on one device (disk), Swift's layout with our own file format.

Layout under a device directory (e.g. ``/srv/node/sdb1``)::

    objects/<partition>/<suffix>/<hash>/<timestamp>.data   a version of the object
    objects/<partition>/<suffix>/<hash>/<timestamp>.ts     a tombstone (the object was deleted)
    tmp/                                                   writes in progress
    quarantined/objects/<hash>[-<uuid>]/                   hash dirs that failed their checks

``hash`` is the ring's name hash and ``suffix`` its last three hex digits, so a
partition splits into at most 4096 small directories that replication compares
one by one. The newest file of a hash dir is the object's state; older ones are
removed as soon as a newer one lands ("last timestamp wins", on every replica).

File format: ``data | metadata JSON | footer``; the footer (``FOOTER``, 48 bytes)
holds a magic, the JSON and data lengths and a BLAKE2b checksum of the JSON and
both lengths. Swift keeps metadata in extended attributes; ext4 caps those near
4 KB per file and some filesystems have none, so ours travels with the data and
is read with one seek to the end. The data's MD5 is the ``ETag`` metadata item.

Writes go to a temp file in ``tmp/`` (same filesystem), are fsynced, renamed
into the hash dir, and the directory is fsynced: a reader sees the whole file or
nothing, and a crash leaves at most a temp file, which ``cleanup_tmp`` removes.

Every method here blocks: callers on the event loop go through
``onestack.core.concurrency.run_blocking`` (``backend.LocalBackend`` does).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.core.files import SharedFd, fsync_dir
from onestack.object_store.errors import (
    DeviceUnavailable,
    DiskFileCorrupt,
    EtagMismatch,
    ObjectDeleted,
    ObjectNotFound,
)
from onestack.object_store.timestamp import Timestamp

DATA = ".data"
TOMBSTONE = ".ts"
MAGIC = b"OSOBJ\x00v1"
FOOTER = struct.Struct(">8sQQ16s")  # magic, JSON length, data length, checksum
MAX_METADATA = 64 * 1024 * 1024  # refuse to read absurd JSON lengths from a damaged footer
BYTES_PER_SYNC = 512 * 1024 * 1024  # flush while writing so a big object's fsync stays short
TMP_SUFFIX = ".tmp"
EMPTY_ETAG = hashlib.md5(b"", usedforsecurity=False).hexdigest()


@dataclass(frozen=True, order=True)
class FileInfo:
    """One version in a hash dir; ordering puts a tombstone after a ``.data`` of the same
    timestamp, so a delete wins a tie."""

    timestamp: Timestamp
    ext: str

    @property
    def deleted(self) -> bool:
        return self.ext == TOMBSTONE

    @property
    def filename(self) -> str:
        return f"{self.timestamp.normal}{self.ext}"

    @classmethod
    def parse(cls, filename: str) -> FileInfo | None:
        stem, dot, ext = filename.rpartition(".")
        if not dot or f".{ext}" not in (DATA, TOMBSTONE):
            return None
        try:
            return cls(Timestamp.parse(stem), f".{ext}")
        except ValueError:
            return None


def _checksum(meta_json: bytes, data_len: int) -> bytes:
    h = hashlib.blake2b(meta_json, digest_size=16)
    h.update(struct.pack(">QQ", len(meta_json), data_len))
    return h.digest()


def build_trailer(metadata: Mapping[str, str], data_len: int) -> bytes:
    """The bytes that follow the data: metadata JSON then the footer."""
    meta_json = json.dumps(dict(metadata), separators=(",", ":"), sort_keys=True).encode()
    footer = FOOTER.pack(MAGIC, len(meta_json), data_len, _checksum(meta_json, data_len))
    return meta_json + footer


def read_trailer(fd: int, file_size: int) -> tuple[dict[str, str], int]:
    """Metadata and data length of an open file.

    Raises:
        DiskFileCorrupt: the footer, lengths, checksum or JSON are wrong.
    """
    if file_size < FOOTER.size:
        raise DiskFileCorrupt("file shorter than its footer")
    magic, meta_len, data_len, checksum = FOOTER.unpack(
        os.pread(fd, FOOTER.size, file_size - FOOTER.size)
    )
    if magic != MAGIC:
        raise DiskFileCorrupt("bad footer magic")
    if meta_len > MAX_METADATA or data_len + meta_len + FOOTER.size != file_size:
        raise DiskFileCorrupt("footer lengths do not match the file size")
    meta_json = os.pread(fd, meta_len, data_len)
    if len(meta_json) != meta_len or _checksum(meta_json, data_len) != checksum:
        raise DiskFileCorrupt("trailer checksum mismatch")
    try:
        metadata = json.loads(meta_json)
    except ValueError as exc:
        raise DiskFileCorrupt("metadata is not JSON") from exc
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise DiskFileCorrupt("metadata is not a str->str mapping")
    return metadata, data_len


def _makedirs(path: Path) -> list[Path]:
    """``mkdir -p``; the directories it made, outermost first (each one's parent is
    to be fsynced before the new entry counts)."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    made = []
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir()
            made.append(directory)
    return made


class DiskFileManager:
    """The object files of one device directory."""

    def __init__(self, path: Path, *, mount_check: bool = False) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.mount_check = mount_check
        self.objects = self.path / "objects"
        self.tmp = self.path / "tmp"
        self.quarantined = self.path / "quarantined" / "objects"

    def check(self) -> None:
        """Raises ``DeviceUnavailable`` unless the device is a directory (and mounted, if
        asked): writing into an unmounted mount point would fill the root disk."""
        if not self.path.is_dir():
            raise DeviceUnavailable(self.name, "is not a directory")
        if self.mount_check and not os.path.ismount(self.path):
            raise DeviceUnavailable(self.name, "is not mounted")

    def hash_dir(self, partition: int, obj_hash: str) -> Path:
        return self.objects / str(partition) / obj_hash[-3:] / obj_hash

    def writer(self, partition: int, obj_hash: str) -> DiskFileWriter:
        return DiskFileWriter(self, partition, obj_hash)

    def delete(
        self,
        partition: int,
        obj_hash: str,
        timestamp: Timestamp,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Write a tombstone (atomically, like any version)."""
        writer = self.writer(partition, obj_hash)
        writer.open()
        try:
            writer.commit(metadata or {}, timestamp, tombstone=True)
        except BaseException:
            writer.abort()
            raise

    def open(self, partition: int, obj_hash: str) -> DiskFileReader:
        """The newest version, checked; a corrupt one is quarantined and reads as missing.

        Raises:
            ObjectNotFound: nothing there (or it was quarantined).
            ObjectDeleted: the newest version is a tombstone.
            DeviceUnavailable: the device is not usable.
        """
        self.check()
        hash_dir = self.hash_dir(partition, obj_hash)
        for _ in range(3):  # a newer commit may remove the file between listing and opening
            info = self.cleanup(hash_dir)
            if info is None:
                raise ObjectNotFound()
            try:
                reader = DiskFileReader(hash_dir / info.filename, info)
            except FileNotFoundError:
                continue
            except DiskFileCorrupt:
                self.quarantine(hash_dir)
                raise ObjectNotFound() from None
            if info.deleted:
                reader.close()
                raise ObjectDeleted(info.timestamp)
            return reader
        raise ObjectNotFound()

    def cleanup(self, hash_dir: Path, reclaim_before: Timestamp | None = None) -> FileInfo | None:
        """Keep only the newest version; drop a tombstone older than ``reclaim_before``
        (and then the empty directories). Returns what is left."""
        try:
            names = os.listdir(hash_dir)
        except (FileNotFoundError, NotADirectoryError):
            return None
        versions = sorted((i for i in map(FileInfo.parse, names) if i is not None), reverse=True)
        if not versions:
            return None
        newest: FileInfo | None = versions[0]
        drop = versions[1:]
        head = versions[0]
        if head.deleted and reclaim_before is not None and head.timestamp < reclaim_before:
            newest, drop = None, versions
        for info in drop:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(hash_dir / info.filename)
        if newest is None:
            self._prune(hash_dir)
        return newest

    def _prune(self, hash_dir: Path) -> None:
        """Remove the hash dir and its empty parents (up to ``objects``)."""
        for directory in (hash_dir, hash_dir.parent, hash_dir.parent.parent):
            try:
                directory.rmdir()
            except FileNotFoundError:
                continue  # already gone (quarantined, or pruned by another thread)
            except OSError:
                return

    def quarantine(self, hash_dir: Path) -> Path | None:
        """Move a hash dir aside so nothing serves or replicates it; returns where it went."""
        target = self.quarantined / hash_dir.name
        self.quarantined.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                os.rename(hash_dir, target)
                fsync_dir(hash_dir.parent)
                self._prune(hash_dir)
                return target
            except FileNotFoundError:
                return None  # someone else quarantined or removed it
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                target = self.quarantined / f"{hash_dir.name}-{uuid.uuid4().hex}"
        return None

    def partitions(self) -> list[int]:
        try:
            return sorted(int(name) for name in os.listdir(self.objects) if name.isdigit())
        except FileNotFoundError:
            return []

    def hashes(
        self,
        partition: int,
        suffixes: set[str] | None = None,
        reclaim_before: Timestamp | None = None,
    ) -> dict[str, FileInfo]:
        """The newest version of every object in the partition (or in some suffixes),
        cleaning each hash dir on the way."""
        out: dict[str, FileInfo] = {}
        part_dir = self.objects / str(partition)
        for suffix in self._listdir(part_dir):
            if suffixes is not None and suffix not in suffixes:
                continue
            for obj_hash in self._listdir(part_dir / suffix):
                info = self.cleanup(part_dir / suffix / obj_hash, reclaim_before)
                if info is not None:
                    out[obj_hash] = info
        return out

    def suffix_hashes(
        self, partition: int, reclaim_before: Timestamp | None = None
    ) -> dict[str, str]:
        """A digest per suffix of what it holds: equal digests on two devices mean the
        suffix needs no closer look."""
        digests: dict[str, Any] = {}
        for obj_hash, info in sorted(self.hashes(partition, None, reclaim_before).items()):
            digest = digests.setdefault(obj_hash[-3:], hashlib.md5(usedforsecurity=False))
            digest.update(f"{obj_hash}/{info.filename}\n".encode())
        return {suffix: d.hexdigest() for suffix, d in digests.items()}

    def remove(self, partition: int, obj_hash: str, info: FileInfo) -> None:
        """Remove one version (a handoff copy that reached its primaries)."""
        hash_dir = self.hash_dir(partition, obj_hash)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(hash_dir / info.filename)
        if self.cleanup(hash_dir) is None:
            self._prune(hash_dir)

    def files(self) -> Iterator[tuple[int, str, Path]]:
        """Every version file on the device: (partition, hash, path)."""
        for partition in self.partitions():
            part_dir = self.objects / str(partition)
            for suffix in self._listdir(part_dir):
                for obj_hash in self._listdir(part_dir / suffix):
                    for name in self._listdir(part_dir / suffix / obj_hash):
                        if FileInfo.parse(name) is not None:
                            yield partition, obj_hash, part_dir / suffix / obj_hash / name

    def cleanup_tmp(self, older_than: float = 86400.0) -> int:
        """Delete temp files of writes that died with their process; returns how many.
        Only files untouched for ``older_than`` seconds go, so live writes are safe."""
        cutoff = time.time() - older_than
        removed = 0
        for name in self._listdir(self.tmp):
            path = self.tmp / name
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    @staticmethod
    def _listdir(path: Path) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []


class DiskFileWriter:
    """One version being written: ``open``, ``write`` blocks, ``commit`` (or ``abort``).

    Methods run in worker threads and hold a lock, so an ``abort`` racing a write
    still running in a thread (its task was cancelled; the thread cannot be) waits
    for it rather than closing the descriptor under it.
    """

    def __init__(self, manager: DiskFileManager, partition: int, obj_hash: str) -> None:
        self.manager = manager
        self.partition = partition
        self.obj_hash = obj_hash
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._temp: str | None = None
        self._final: Path | None = None
        self._unsynced = 0
        self._done = False

    @property
    def etag(self) -> str:
        return self._md5.hexdigest()

    def open(self) -> None:
        with self._lock:
            if self._done:
                return
            self.manager.check()
            try:
                try:
                    self._fd, self._temp = tempfile.mkstemp(suffix=TMP_SUFFIX,
                                                            dir=self.manager.tmp)
                except FileNotFoundError:  # the first write to the device
                    self.manager.tmp.mkdir(exist_ok=True)
                    self._fd, self._temp = tempfile.mkstemp(suffix=TMP_SUFFIX,
                                                            dir=self.manager.tmp)
            except OSError as exc:
                raise DeviceUnavailable(self.manager.name, f"cannot write: {exc}") from exc

    def write(self, block: bytes) -> None:
        with self._lock:
            if self._fd is None or self._done:
                raise DeviceUnavailable(self.manager.name, "write after close")
            self._md5.update(block)
            view = memoryview(block)
            while view:
                view = view[os.write(self._fd, view) :]
            self.size += len(block)
            self._unsynced += len(block)
            if self._unsynced >= BYTES_PER_SYNC:
                os.fdatasync(self._fd)
                self._unsynced = 0

    def commit(
        self, metadata: Mapping[str, str], timestamp: Timestamp, *, tombstone: bool = False
    ) -> Path:
        """Append the trailer and move the file into place; returns its path.

        ``ETag``, ``Content-Length`` and ``X-Timestamp`` are set here from what was
        written. An older version than one already there is removed at once.

        Raises:
            EtagMismatch: ``metadata`` carries an ETag the data does not hash to.
        """
        with self._lock:
            if self._fd is None or self._temp is None or self._done:
                raise DeviceUnavailable(self.manager.name, "commit after close")
            if tombstone and self.size:
                raise ValueError("a tombstone has no data")
            meta = dict(metadata)
            meta["X-Timestamp"] = timestamp.normal
            if not tombstone:
                expected = meta.get("ETag")
                if expected is not None and expected.strip('"').lower() != self.etag:
                    raise EtagMismatch(expected, self.etag)
                meta["ETag"] = self.etag
                meta["Content-Length"] = str(self.size)
            trailer = memoryview(build_trailer(meta, self.size))
            while trailer:
                trailer = trailer[os.write(self._fd, trailer) :]
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            info = FileInfo(timestamp, TOMBSTONE if tombstone else DATA)
            hash_dir = self.manager.hash_dir(self.partition, self.obj_hash)
            final = hash_dir / info.filename
            made: list[Path] = []
            for attempt in range(2):  # a concurrent cleanup may prune the new hash dir
                made += _makedirs(hash_dir)
                try:
                    os.rename(self._temp, final)
                    break
                except FileNotFoundError:
                    if attempt:
                        raise
            self._temp, self._final = None, final
            # the new entries, innermost first: the file, then each directory made for
            # it (made and renamed before any of these, so one journal commit holds all)
            fsync_dir(hash_dir)
            for directory in reversed(made):
                fsync_dir(directory.parent)
            if hash_dir not in made:  # a directory made just now holds no older version
                self.manager.cleanup(hash_dir)
            return final

    def abort(self) -> None:
        """Remove what this write put on disk, committed or not (idempotent). Removing a
        committed version is how a write that missed its quorum is undone."""
        with self._lock:
            self._done = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._temp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._temp)
            if self._final is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._final)
                    fsync_dir(self._final.parent)
                if self.manager.cleanup(self._final.parent) is None:
                    self.manager._prune(self._final.parent)
            self._temp = self._final = None


class DiskFileReader:
    """An open, checked version: ``metadata``, ``size`` and ``pread`` of the data.

    ``close`` never waits for a read running in a worker thread: that thread
    closes the descriptor when it returns.
    """

    def __init__(self, path: Path, info: FileInfo) -> None:
        self.path = path
        self.info = info
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.metadata, self.size = read_trailer(fd, os.fstat(fd).st_size)
            self._check()
        except BaseException:
            os.close(fd)
            raise
        self._fd = SharedFd(fd)

    @property
    def timestamp(self) -> Timestamp:
        return self.info.timestamp

    @property
    def etag(self) -> str:
        return self.metadata.get("ETag", EMPTY_ETAG)

    def _check(self) -> None:
        if self.metadata.get("X-Timestamp") != self.info.timestamp.normal:
            raise DiskFileCorrupt("X-Timestamp differs from the file name")
        if self.info.deleted:
            if self.size:
                raise DiskFileCorrupt("a tombstone with data")
        elif self.metadata.get("Content-Length") != str(self.size) or "ETag" not in self.metadata:
            raise DiskFileCorrupt("Content-Length or ETag missing or wrong")

    def pread(self, offset: int, size: int) -> bytes:
        """Up to ``size`` data bytes from ``offset`` (never the trailer)."""
        return self._fd.pread(max(0, min(size, self.size - offset)), offset)

    def close(self) -> None:
        self._fd.close()
