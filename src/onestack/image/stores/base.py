"""What every image data store offers, and the errors it raises.

A store keeps the bytes of images; the image service keeps their records. ``add``
consumes an upload as it arrives (an async iterable of chunks), so the same code
serves an HTTP body, a web-download and a copy from another store, and
returns where the data now lives (its *location*, a URL the store understands)
with the size and checksums Glance reports (``checksum`` is MD5, ``os_hash_value``
uses the configured algorithm).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class StoredData:
    """Where ``add`` put the data, and what it was."""

    location: str
    size: int
    checksum: str
    hash_algo: str
    hash_value: str


class StoreError(Exception):
    """Base of the errors a store raises about data (not about its own bugs)."""


class SizeLimitExceeded(StoreError):
    """The data grew beyond the allowed size (a quota or the image size cap)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"Image data exceeds the limit of {limit} bytes")
        self.limit = limit


class SizeMismatch(StoreError):
    """The data was shorter or longer than the size announced for it.

    ``received`` is what had arrived when the mismatch was noticed: for data that
    is too long that is the first count past ``expected``, not the whole length.
    """

    def __init__(self, expected: int, received: int) -> None:
        super().__init__(f"Expected {expected} bytes of image data, received {received}")
        self.expected = expected
        self.received = received


class DataNotFound(StoreError):
    """No data at that location (never stored, or deleted)."""

    def __init__(self, location: str) -> None:
        super().__init__(f"No image data at {location}")
        self.location = location


@runtime_checkable
class Store(Protocol):
    """One place to keep image data (Glance's ``/v2/info/stores`` lists them by ``id``)."""

    id: str
    description: str

    async def add(
        self,
        image_id: str,
        chunks: AsyncIterable[bytes],
        *,
        expected_size: int | None = None,
        max_size: int | None = None,
        hash_algo: str = "sha512",
    ) -> StoredData:
        """Store all of ``chunks`` as the data of ``image_id``, atomically.

        Raises ``SizeLimitExceeded`` as soon as the data passes ``max_size``,
        ``SizeMismatch`` when it does not match ``expected_size``, ``ValueError``
        for an unknown ``hash_algo``; any error (including one raised by
        ``chunks`` or a cancellation) leaves nothing stored.
        """
        ...

    def open(
        self, location: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream the data at ``location`` from ``offset``, ``length`` bytes at most.

        A missing location raises ``DataNotFound`` on the first iteration.
        """
        ...

    async def delete(self, location: str) -> None:
        """Remove the data; missing data is not an error."""
        ...

    async def exists(self, location: str) -> bool:
        """Whether data is stored at ``location``."""
        ...

    def local_path(self, location: str) -> Path | None:
        """A file holding the data (for qemu-img), or None when the store has none."""
        ...


class SizeGuard:
    """Counts arriving bytes against ``max_size`` and ``expected_size``.

    It raises as early as the answer is known: before any data when the
    announced size is already over the limit, at the first byte past either
    bound, and at the end (``finish``) when the data came up short.
    """

    def __init__(self, expected_size: int | None, max_size: int | None) -> None:
        if expected_size is not None and expected_size < 0:
            raise ValueError("expected_size must not be negative")
        if max_size is not None and max_size < 0:
            raise ValueError("max_size must not be negative")
        if expected_size is not None and max_size is not None and expected_size > max_size:
            raise SizeLimitExceeded(max_size)
        self.expected_size = expected_size
        self.max_size = max_size
        self.size = 0

    def add(self, n: int) -> None:
        self.size += n
        if self.max_size is not None and self.size > self.max_size:
            raise SizeLimitExceeded(self.max_size)
        if self.expected_size is not None and self.size > self.expected_size:
            raise SizeMismatch(self.expected_size, self.size)

    def finish(self) -> int:
        if self.expected_size is not None and self.size != self.expected_size:
            raise SizeMismatch(self.expected_size, self.size)
        return self.size


def new_hash(hash_algo: str) -> hashlib._Hash:
    """``hashlib.new(hash_algo)``, refusing unknown names with a ValueError before any data moves."""
    try:
        h = hashlib.new(hash_algo)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"Unsupported hash algorithm: {hash_algo!r}") from exc
    if h.digest_size == 0:  # shake_*: no fixed-length hex digest to report
        raise ValueError(f"Unsupported hash algorithm: {hash_algo!r}")
    return h


def check_range(offset: int, length: int | None) -> None:
    if offset < 0:
        raise ValueError("offset must not be negative")
    if length is not None and length < 0:
        raise ValueError("length must not be negative")


_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def check_image_id(image_id: str) -> None:
    """Refuse an id that could not be a single, visible file name (``..``, ``a/b``)."""
    if not _SAFE_ID.fullmatch(image_id):
        raise ValueError(f"Not a valid image id for a store: {image_id!r}")
