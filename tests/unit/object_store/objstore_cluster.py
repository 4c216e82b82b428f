"""Test helpers: a small cluster on real directories, N devices (one zone each) under one
root, and request-like bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from onestack.object_store import (
    Device,
    DiskFileManager,
    LocalBackend,
    ObjectReader,
    ObjectWriter,
    Ring,
    RingBuilder,
)

MiB = 1024 * 1024


def chunked(data: bytes, sizes: tuple[int, ...] = (65536, 1, 100_000, 3 * MiB)) -> Iterator[bytes]:
    pos, i = 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        yield data[pos : pos + n]
        pos, i = pos + n, i + 1


async def body(data: bytes) -> AsyncIterator[bytes]:
    """A request body as an HTTP server hands it over, in uneven chunks."""
    for chunk in chunked(data):
        yield chunk
        await asyncio.sleep(0)


@dataclass
class Cluster:
    root: Path
    ring: Ring
    backend: LocalBackend
    writer: ObjectWriter
    reader: ObjectReader

    def manager(self, device: Device) -> DiskFileManager:
        return self.backend.manager(device)

    def where(self, obj: str, account: str = "AUTH_t", container: str = "c") -> tuple[int, str]:
        return self.ring.partition(account, container, obj), self.ring.object_hash(
            account, container, obj
        )

    def primaries(self, obj: str) -> list[Device]:
        return self.ring.nodes(self.where(obj)[0])

    def handoffs(self, obj: str) -> list[Device]:
        return self.ring.handoffs(self.where(obj)[0])

    def versions(self, device: Device, obj: str) -> list[str]:
        """File names in the object's hash dir on ``device``."""
        hash_dir = self.manager(device).hash_dir(*self.where(obj))
        return sorted(p.name for p in hash_dir.iterdir()) if hash_dir.is_dir() else []

    def break_device(self, device: Device) -> None:
        """Make a device unusable: its path becomes a file (chmod does not stop root)."""
        path = self.root / device.device
        path.rename(self.root / f"{device.device}.away")
        path.write_bytes(b"not a directory")

    def repair_device(self, device: Device) -> None:
        path = self.root / device.device
        path.unlink()
        (self.root / f"{device.device}.away").rename(path)

    async def read(self, obj: str, account: str = "AUTH_t", container: str = "c") -> bytes:
        async with await self.reader.open(account, container, obj) as replica:
            return b"".join([chunk async for chunk in replica.iter()])


def make_cluster(root: Path, devices: int = 3, power: int = 4) -> Cluster:
    builder = RingBuilder(power)
    for i in range(devices):
        builder.add_device(host="127.0.0.1", port=6200, device=f"sd{chr(97 + i)}", zone=i + 1)
        (root / f"sd{chr(97 + i)}").mkdir(parents=True)
    builder.rebalance()
    ring = builder.get_ring(hash_prefix=b"test-prefix", hash_suffix=b"test-suffix")
    backend = LocalBackend(root)
    return Cluster(root, ring, backend, ObjectWriter(ring, backend), ObjectReader(ring, backend))
