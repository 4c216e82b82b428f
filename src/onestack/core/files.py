"""File helpers shared by the services that keep data on disk (image stores,
object storage): durable directory updates, a descriptor read from worker
threads, and secrets kept in the data dir."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SharedFd:
    """A file descriptor read with ``pread`` from worker threads.

    ``close`` never blocks the event loop: when a read is still running in a
    thread (its awaiting task was cancelled, the thread cannot be), that thread
    closes the descriptor when it returns; a descriptor attached after ``close``
    is closed at once.
    """

    def __init__(self, fd: int | None = None) -> None:
        self._lock = threading.Lock()
        self._fd = fd
        self._busy = False
        self._closing = False

    def attach(self, fd: int) -> None:
        with self._lock:
            if self._closing:
                os.close(fd)
            else:
                self._fd = fd

    def pread(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset``.

        Raises:
            ValueError: the descriptor is closed (or was never attached).
        """
        with self._lock:
            if self._fd is None:
                raise ValueError("read after close")
            fd, self._busy = self._fd, True
        try:
            return os.pread(fd, size, offset) if size else b""
        finally:
            with self._lock:
                self._busy = False
                if self._closing:
                    self._close_locked()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if not self._busy:
                self._close_locked()

    def _close_locked(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def load_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """A random secret kept in ``path`` (created once, mode 0600)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = secrets.token_hex(nbytes)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(value)
    tmp.chmod(0o600)
    tmp.replace(path)
    return value
