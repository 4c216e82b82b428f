"""Image data as files in one directory (Glance's ``file`` store, and its staging area).

An upload is written to a hidden temporary file beside its final name, fsynced
and renamed into place, so a reader never sees half an image and a failed or
cancelled upload leaves nothing behind.

Throughput: the event loop only receives chunks and joins them into blocks of
``BLOCK_SIZE``. Each block goes to three serial lanes, each its own thread:
one writes it (with an ``fdatasync`` every ``SYNC_EVERY`` bytes, so the final
fsync does not wait for a whole image's writeback), one feeds MD5, one feeds the
os_hash algorithm; hashlib and ``os.write`` release the GIL on large buffers.
The lanes run up to ``DEPTH`` blocks ahead of the loop, so receiving, writing
and both hashes overlap, and memory per upload stays at a few blocks whatever
the size. (MD5 and SHA-512 each hash ~800 MB/s on one core: one thread doing
both tops out near 400 MB/s, so the hashes must run side by side.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

from onestack.core.concurrency import SerialLane, run_blocking
from onestack.core.files import SharedFd, fsync_dir
from onestack.image.stores.base import (
    DataNotFound,
    SizeGuard,
    StoredData,
    StoreError,
    check_image_id,
    check_range,
    new_hash,
)

BLOCK_SIZE = 4 * 1024 * 1024
DEPTH = 3  # blocks a lane may run ahead of the event loop
SYNC_EVERY = 64 * 1024 * 1024
READ_SIZE = 4 * 1024 * 1024
_PART_SUFFIX = ".part"
_SCHEME = "file://"


class _PartFile:
    """The temporary file of one upload, driven from worker threads.

    ``write`` (and ``commit``/``abort``) hold a lock around the descriptor, so
    an abort that races a write still in a thread (the awaiting task was
    cancelled, the thread cannot be) waits for it instead of closing the
    descriptor under it; a write that starts after the abort does nothing.
    """

    def __init__(self, directory: Path, image_id: str, hash_algo: str) -> None:
        self.directory = directory
        self.image_id = image_id
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.os_hash = new_hash(hash_algo)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._temp: str | None = None
        self._final: Path | None = None
        self._done = False
        self._unsynced = 0

    def create(self) -> None:
        with self._lock:
            if self._done:  # aborted before this thread got to run
                return
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd, self._temp = tempfile.mkstemp(
                prefix=f".{self.image_id}.", suffix=_PART_SUFFIX, dir=self.directory
            )

    def write(self, block: bytes) -> None:
        with self._lock:
            if self._fd is None or self._done:
                raise StoreError("upload already finished")
            view = memoryview(block)
            while view:
                view = view[os.write(self._fd, view) :]
            self._unsynced += len(block)
            if self._unsynced >= SYNC_EVERY:
                os.fdatasync(self._fd)
                self._unsynced = 0

    def digest_md5(self, block: bytes) -> None:
        self.md5.update(block)

    def digest(self, block: bytes) -> None:
        self.os_hash.update(block)

    def commit(self, final: Path) -> None:
        with self._lock:
            assert self._fd is not None and self._temp is not None and not self._done
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            os.replace(self._temp, final)
            self._temp, self._final = None, final
            fsync_dir(self.directory)

    def abort(self) -> None:
        """Remove whatever this upload put on disk (idempotent)."""
        with self._lock:
            self._done = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            for path in (self._temp, self._final):
                if path is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            self._temp = self._final = None


class _Reader:
    """An open data file read with ``pread`` from worker threads (see ``SharedFd``)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd = SharedFd()

    def open(self) -> None:
        fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        self._fd.attach(fd)

    def pread(self, size: int, offset: int) -> bytes:
        try:
            return self._fd.pread(size, offset)
        except ValueError:
            raise StoreError("read after close") from None

    def close(self) -> None:
        self._fd.close()


def _forget(fut: asyncio.Future[Any]) -> None:
    """Stop caring about ``fut``: cancel it, or mark its exception as seen."""
    if not fut.done():
        fut.cancel()
    elif not fut.cancelled():
        fut.exception()


class FilesystemStore:
    """Image data as ``directory/<image_id>``, located by ``file://<absolute path>``."""

    def __init__(self, id: str, directory: Path, description: str = "Local filesystem") -> None:
        self.id = id
        self.description = description
        self.directory = Path(os.path.abspath(directory))

    def location_for(self, image_id: str) -> str:
        check_image_id(image_id)
        return _SCHEME + str(self.directory / image_id)

    def local_path(self, location: str) -> Path | None:
        return self._path(location)

    async def add(
        self,
        image_id: str,
        chunks: AsyncIterable[bytes],
        *,
        expected_size: int | None = None,
        max_size: int | None = None,
        hash_algo: str = "sha512",
    ) -> StoredData:
        """Write ``chunks`` to ``directory/<image_id>`` atomically (see the module doc)."""
        check_image_id(image_id)
        guard = SizeGuard(expected_size, max_size)
        part = _PartFile(self.directory, image_id, hash_algo)
        final = self.directory / image_id
        lanes = [SerialLane("image-write"), SerialLane("image-md5"), SerialLane("image-hash")]
        work = (part.write, part.digest_md5, part.digest)
        inflight: collections.deque[list[asyncio.Future[None]]] = collections.deque()

        async def send(block: bytes) -> None:
            inflight.append([lane.submit(fn, block) for lane, fn in zip(lanes, work)])
            while len(inflight) > DEPTH:
                await _all(inflight.popleft())

        try:
            await run_blocking(part.create)
            parts: list[bytes] = []
            buffered = 0
            async for chunk in chunks:
                if not chunk:
                    continue
                guard.add(len(chunk))
                parts.append(bytes(chunk) if not isinstance(chunk, bytes) else chunk)
                buffered += len(chunk)
                if buffered >= BLOCK_SIZE:
                    await send(b"".join(parts))
                    parts, buffered = [], 0
            if parts:
                await send(b"".join(parts))
            while inflight:
                await _all(inflight.popleft())
            size = guard.finish()
            await run_blocking(part.commit, final)
        except BaseException:
            for futures in inflight:
                for fut in futures:
                    _forget(fut)
            # shield: a second cancellation must not stop the clean-up half-way
            await asyncio.shield(run_blocking(part.abort))
            raise
        finally:
            for lane in lanes:
                lane.close()
        return StoredData(
            location=_SCHEME + str(final),
            size=size,
            checksum=part.md5.hexdigest(),
            hash_algo=hash_algo,
            hash_value=part.os_hash.hexdigest(),
        )

    async def open(
        self, location: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes (default: to the end) from ``offset``, in blocks of ``READ_SIZE``."""
        check_range(offset, length)
        reader = _Reader(self._path(location))
        try:
            try:
                await run_blocking(reader.open)
            except FileNotFoundError:
                raise DataNotFound(location) from None
            remaining = length
            while remaining is None or remaining > 0:
                want = READ_SIZE if remaining is None else min(READ_SIZE, remaining)
                data = await run_blocking(reader.pread, want, offset)
                if not data:
                    return
                offset += len(data)
                if remaining is not None:
                    remaining -= len(data)
                yield data
        finally:
            reader.close()

    async def delete(self, location: str) -> None:
        await run_blocking(self._path(location).unlink, missing_ok=True)

    async def exists(self, location: str) -> bool:
        return await run_blocking(self._path(location).is_file)

    async def size(self, location: str) -> int:
        """The stored size in bytes (``DataNotFound`` when missing)."""
        try:
            return (await run_blocking(self._path(location).stat)).st_size
        except FileNotFoundError:
            raise DataNotFound(location) from None

    async def remove_partial(self, older_than: float = 3600.0) -> int:
        """Delete temporary files of uploads that died with their process; returns how many.

        Only files untouched for ``older_than`` seconds go, so uploads in flight
        (here or in another process sharing the directory) are safe.
        """
        return await run_blocking(self._remove_partial, older_than)

    def _remove_partial(self, older_than: float) -> int:
        cutoff = time.time() - older_than
        removed = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not (entry.name.startswith(".") and entry.name.endswith(_PART_SUFFIX)):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
        return removed

    def _path(self, location: str) -> Path:
        """The file behind ``location``; refuses anything outside this store's directory."""
        if location.startswith(_SCHEME):
            path = Path(location[len(_SCHEME) :])
            if path.parent == self.directory:
                with contextlib.suppress(ValueError):
                    check_image_id(path.name)
                    return path
        raise StoreError(f"Location is not in store {self.id!r}: {location}")


async def _all(futures: list[asyncio.Future[None]]) -> None:
    """Wait for one block's lanes; the first failure is raised."""
    for fut in futures:
        await fut
