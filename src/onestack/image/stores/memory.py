"""A store that keeps image data in a dict: the fake for tests, same contract as the real ones."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from onestack.image.stores.base import (
    DataNotFound,
    SizeGuard,
    StoredData,
    StoreError,
    check_image_id,
    check_range,
    new_hash,
)

_CHUNK = 64 * 1024


class MemoryStore:
    """Data in ``self.data``, keyed by location ``memory://<store id>/<image_id>``."""

    def __init__(self, id: str = "memory", description: str = "In-memory store (tests)") -> None:
        self.id = id
        self.description = description
        self.data: dict[str, bytes] = {}

    def location_for(self, image_id: str) -> str:
        check_image_id(image_id)
        return f"memory://{self.id}/{image_id}"

    def local_path(self, location: str) -> Path | None:
        return None

    async def add(
        self,
        image_id: str,
        chunks: AsyncIterable[bytes],
        *,
        expected_size: int | None = None,
        max_size: int | None = None,
        hash_algo: str = "sha512",
    ) -> StoredData:
        location = self.location_for(image_id)
        guard = SizeGuard(expected_size, max_size)
        md5 = hashlib.md5(usedforsecurity=False)
        os_hash = new_hash(hash_algo)
        parts: list[bytes] = []
        async for chunk in chunks:
            guard.add(len(chunk))
            md5.update(chunk)
            os_hash.update(chunk)
            parts.append(bytes(chunk))
        size = guard.finish()
        self.data[location] = b"".join(parts)  # only now: a failure above stores nothing
        return StoredData(location, size, md5.hexdigest(), hash_algo, os_hash.hexdigest())

    async def open(
        self, location: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        check_range(offset, length)
        data = self.data.get(self._check(location))
        if data is None:
            raise DataNotFound(location)
        end = len(data) if length is None else min(len(data), offset + length)
        for start in range(offset, end, _CHUNK):
            yield data[start : min(start + _CHUNK, end)]

    async def delete(self, location: str) -> None:
        self.data.pop(self._check(location), None)

    async def exists(self, location: str) -> bool:
        return self._check(location) in self.data

    async def size(self, location: str) -> int:
        data = self.data.get(self._check(location))
        if data is None:
            raise DataNotFound(location)
        return len(data)

    def _check(self, location: str) -> str:
        if not location.startswith(f"memory://{self.id}/"):
            raise StoreError(f"Location is not in store {self.id!r}: {location}")
        return location
