"""Image data stores: the filesystem store on real files, and the memory fake held
to the same contract."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from onestack.image.stores import (
    DataNotFound,
    FilesystemStore,
    MemoryStore,
    SizeLimitExceeded,
    SizeMismatch,
    Store,
    StoreError,
    filesystem,
)

MiB = 1024 * 1024
# Sizes that do not line up with the 4 MiB write blocks or the 1 MiB read blocks.
DATA = os.urandom(9 * MiB + 12345)


def chunked(data: bytes, sizes: tuple[int, ...] = (65536, 1, 100_000, 3 * MiB)) -> Iterator[bytes]:
    pos, i = 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        yield data[pos : pos + n]
        pos, i = pos + n, i + 1


async def body(data: bytes, counter: list[int] | None = None) -> AsyncIterator[bytes]:
    """An upload as an HTTP server hands it over; ``counter`` counts the bytes taken."""
    for chunk in chunked(data):
        if counter is not None:
            counter[0] += len(chunk)
        yield chunk
        await asyncio.sleep(0)


def files_in(directory: Path) -> list[str]:
    return sorted(os.listdir(directory)) if directory.exists() else []


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "file":
        return FilesystemStore("file", tmp_path / "images")
    return MemoryStore()


def leftovers(store: Store) -> list[str]:
    """The names of everything the store holds, temporary files included."""
    if isinstance(store, FilesystemStore):
        return files_in(store.directory)
    assert isinstance(store, MemoryStore)
    return sorted(location.rsplit("/", 1)[1] for location in store.data)


async def read_all(
    store: Store, location: str, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join([chunk async for chunk in store.open(location, offset=offset, length=length)])


async def test_round_trip_with_glance_checksums(store: Store) -> None:
    stored = await store.add("img-1", body(DATA), expected_size=len(DATA))
    assert stored.size == len(DATA)
    assert stored.checksum == hashlib.md5(DATA).hexdigest()
    assert (stored.hash_algo, stored.hash_value) == ("sha512", hashlib.sha512(DATA).hexdigest())
    assert await store.exists(stored.location)
    assert await read_all(store, stored.location) == DATA

    other = await store.add("img-2", body(b"abc"), hash_algo="sha256")
    assert other.hash_value == hashlib.sha256(b"abc").hexdigest()
    assert await read_all(store, other.location) == b"abc"
    assert leftovers(store) == ["img-1", "img-2"]


async def test_filesystem_layout(tmp_path: Path) -> None:
    store = FilesystemStore("file", tmp_path / "a" / "images")
    stored = await store.add("0b5c7e4a-image", body(b"x" * 10))
    path = tmp_path / "a" / "images" / "0b5c7e4a-image"
    assert stored.location == "file://" + str(path)
    assert store.local_path(stored.location) == path
    assert path.read_bytes() == b"x" * 10
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    assert files_in(path.parent) == ["0b5c7e4a-image"]
    assert MemoryStore().local_path("memory://memory/x") is None


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, None),
        (5, 10),
        (filesystem.READ_SIZE - 1, 3),  # across a read block boundary
        (MiB // 2, 3 * MiB),  # several read blocks
        (len(DATA) - 1, 10),  # clipped at the end
        (len(DATA), None),
        (len(DATA) + 5, 3),
        (7, 0),
    ],
)
async def test_ranges(store: Store, offset: int, length: int | None) -> None:
    stored = await store.add("img", body(DATA))
    end = None if length is None else offset + length
    assert await read_all(store, stored.location, offset=offset, length=length) == DATA[offset:end]


async def test_bad_ranges_and_missing_data(store: Store) -> None:
    stored = await store.add("img", body(b"data"))
    with pytest.raises(ValueError):
        await read_all(store, stored.location, offset=-1)
    with pytest.raises(ValueError):
        await read_all(store, stored.location, length=-1)
    await store.delete(stored.location)
    with pytest.raises(DataNotFound):
        await read_all(store, stored.location)


async def test_size_limit_stops_the_upload_and_leaves_nothing(store: Store) -> None:
    taken = [0]
    with pytest.raises(SizeLimitExceeded) as err:
        await store.add("img", body(DATA, taken), max_size=5 * MiB)
    assert err.value.limit == 5 * MiB
    assert taken[0] <= 5 * MiB + 3 * MiB  # stopped at the chunk that crossed the limit
    assert leftovers(store) == []
    assert await store.add("img", body(DATA), max_size=len(DATA))  # exactly at the limit is fine

    taken = [0]
    with pytest.raises(SizeLimitExceeded):  # announced too big: refused before reading
        await store.add("big", body(DATA, taken), expected_size=len(DATA), max_size=MiB)
    assert taken == [0]


@pytest.mark.parametrize("delta", [-1, 1])
async def test_expected_size_mismatch_leaves_nothing(store: Store, delta: int) -> None:
    with pytest.raises(SizeMismatch) as err:
        await store.add("img", body(DATA), expected_size=len(DATA) + delta)
    assert err.value.expected == len(DATA) + delta
    assert leftovers(store) == []


async def test_unknown_hash_algorithm_is_refused_before_data(store: Store) -> None:
    taken = [0]
    for algo in ("no-such-hash", "shake_128"):
        with pytest.raises(ValueError):
            await store.add("img", body(DATA, taken), hash_algo=algo)
    assert taken == [0] and leftovers(store) == []


async def stalled_body(sent: asyncio.Event, amount: int) -> AsyncIterator[bytes]:
    """Sends ``amount`` bytes, then waits forever (a client that stopped sending)."""
    chunk = os.urandom(65536)
    for _ in range(amount // len(chunk)):
        yield chunk
    sent.set()
    await asyncio.Event().wait()
    yield b"never"


async def test_cancellation_mid_stream_leaves_nothing(store: Store) -> None:
    sent = asyncio.Event()
    task = asyncio.create_task(store.add("img", stalled_body(sent, 20 * MiB)))
    await asyncio.wait_for(sent.wait(), 30)
    if isinstance(store, FilesystemStore):
        assert any(name.endswith(".part") for name in files_in(store.directory))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leftovers(store) == []


async def test_client_disconnect_surfaces_and_leaves_nothing(store: Store) -> None:
    async def dropped() -> AsyncIterator[bytes]:
        for chunk in chunked(DATA[: 6 * MiB]):
            yield chunk
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.add("img", dropped())
    assert leftovers(store) == []


async def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk error in the writer thread (ENOSPC here) fails the upload cleanly."""
    store = FilesystemStore("file", tmp_path)
    real_write = os.write
    written = [0]

    def failing_write(fd: int, data: bytes | memoryview) -> int:
        if written[0] > 6 * MiB:
            raise OSError(28, "No space left on device")
        n = real_write(fd, data)
        written[0] += n
        return n

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(OSError, match="No space"):
        await store.add("img", body(DATA))
    assert files_in(tmp_path) == []


async def test_delete_is_idempotent(store: Store) -> None:
    stored = await store.add("img", body(b"data"))
    await store.delete(stored.location)
    assert not await store.exists(stored.location)
    await store.delete(stored.location)
    assert leftovers(store) == []


async def test_locations_of_other_places_and_bad_ids_are_refused(
    store: Store, tmp_path: Path
) -> None:
    for location in (
        "file:///etc/passwd",
        f"file://{tmp_path}/images/../x",
        "memory://other/x",
        "s3://b/k",
    ):
        with pytest.raises(StoreError):
            await store.exists(location)
        with pytest.raises(StoreError):
            await store.delete(location)
    for image_id in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(ValueError):
            await store.add(image_id, body(b"x"))


async def test_abandoned_reader_closes_its_file(tmp_path: Path) -> None:
    store = FilesystemStore("file", tmp_path)
    stored = await store.add("img", body(DATA))
    before = len(os.listdir("/proc/self/fd"))
    reader = store.open(stored.location)
    assert len(await reader.__anext__()) == filesystem.READ_SIZE
    assert len(os.listdir("/proc/self/fd")) == before + 1
    await reader.aclose()  # type: ignore[attr-defined]
    assert len(os.listdir("/proc/self/fd")) == before


async def test_remove_partial_only_takes_stale_temporaries(tmp_path: Path) -> None:
    store = FilesystemStore("file", tmp_path)
    await store.add("img", body(b"kept"))
    stale, fresh = tmp_path / ".img.abc.part", tmp_path / ".img.def.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert await store.remove_partial(older_than=3600) == 1
    assert files_in(tmp_path) == [".img.def.part", "img"]
    assert await FilesystemStore("f", tmp_path / "nothing-yet").remove_partial() == 0


MEMORY_PROBE = textwrap.dedent(
    """
    import asyncio, os, resource, sys
    from pathlib import Path
    from onestack.image.stores import FilesystemStore

    POOL = os.urandom(1 << 20)

    async def body(total):
        view = memoryview(POOL)
        for i in range(total // 65536):
            j = (i % 16) * 65536
            yield bytes(view[j : j + 65536])  # a fresh object per chunk, like an HTTP body

    async def main():
        store = FilesystemStore("file", Path(sys.argv[1]))
        await store.add("warm-up", body(32 << 20))  # threads, allocator arenas
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        stored = await store.add("big", body(512 << 20))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert stored.size == 512 << 20
        print((after - before) * 1024)

    asyncio.run(main())
    """
)


def test_adding_512_mib_keeps_memory_flat(tmp_path: Path) -> None:
    """Peak RSS of a fresh process grows by a few blocks, not by the upload."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    growth = int(out.stdout.strip())
    assert growth < 64 * MiB, f"peak RSS grew by {growth / MiB:.1f} MiB"


async def test_cancellation_at_any_point_leaves_all_or_nothing(tmp_path: Path) -> None:
    """Cancel after ever longer delays until an add gets through: on the way that
    hits the temp file's creation, blocks in the worker threads, the final fsync
    and rename. Either the add completed and the data is whole, or nothing is
    left; no descriptor leaks either way."""
    store = FilesystemStore("file", tmp_path)
    data = DATA[: 4 * MiB + 100]  # two blocks
    await store.delete((await store.add("img", body(data))).location)  # warm-up
    start = time.perf_counter()
    await store.delete((await store.add("img", body(data))).location)
    step = (time.perf_counter() - start) / 40
    fds = len(os.listdir("/proc/self/fd"))
    cancelled = completed = 0
    for i in range(500):
        task = asyncio.create_task(store.add("img", body(data)))
        await asyncio.sleep(step * i)
        task.cancel()
        try:
            stored = await task
        except asyncio.CancelledError:
            cancelled += 1
            assert files_in(tmp_path) == []
        else:
            completed += 1
            assert (tmp_path / "img").read_bytes() == data
            await store.delete(stored.location)
        assert len(os.listdir("/proc/self/fd")) == fds
        if completed == 2:
            break
    assert cancelled >= 3 and completed == 2
