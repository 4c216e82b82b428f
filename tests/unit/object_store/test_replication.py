"""Quorum writes and newest-replica reads over real device directories."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import pytest
from objstore_cluster import Cluster, MiB, body, make_cluster

from onestack.object_store import (
    Device,
    LocalBackend,
    ObjectBackend,
    ObjectReader,
    ObjectWriter,
    ReplicaWriter,
    Timestamp,
)
from onestack.object_store import backend as backend_mod
from onestack.object_store.errors import (
    DeviceUnavailable,
    EtagMismatch,
    ObjectDeleted,
    ObjectNotFound,
    QuorumNotMet,
    SizeMismatch,
)

DATA = os.urandom(9 * MiB + 4321)  # not a multiple of the 4 MiB blocks
ETAG = hashlib.md5(DATA).hexdigest()


def leftovers(cluster: Cluster) -> list[str]:
    """Every file under every device: objects, temp files, anything."""
    return sorted(
        str(Path(d, f).relative_to(cluster.root))
        for d, _, files in os.walk(cluster.root)
        for f in files
    )


class FaultyBackend(LocalBackend):
    """Local devices, where some misbehave: ``faults[device] in {"write", "corrupt", "commit"}``."""

    def __init__(self, root: Path, faults: dict[str, str]) -> None:
        super().__init__(root)
        self.faults = faults

    async def open_writer(self, device: Device, partition: int, obj_hash: str) -> ReplicaWriter:
        writer = await super().open_writer(device, partition, obj_hash)
        fault = self.faults.get(device.device)
        return _FaultyWriter(writer, device.device, fault) if fault else writer

    # small objects too go through open_writer (and so through the faults)
    write_whole = ObjectBackend.write_whole


class _FaultyWriter(ReplicaWriter):
    def __init__(self, inner: ReplicaWriter, device: str, fault: str) -> None:
        self.inner, self.device, self.fault, self.blocks = inner, device, fault, 0

    async def write(self, block: bytes) -> None:
        self.blocks += 1
        if self.fault == "write" and self.blocks == 2:
            raise DeviceUnavailable(self.device, "failed: EIO")
        if self.fault == "corrupt" and self.blocks == 1:
            block = bytes([block[0] ^ 1]) + block[1:]
        await self.inner.write(block)

    async def commit(self, metadata: Mapping[str, str], timestamp: Timestamp) -> None:
        if self.fault == "commit":
            raise DeviceUnavailable(self.device, "failed: ENOSPC")
        await self.inner.commit(metadata, timestamp)

    async def abort(self) -> None:
        await self.inner.abort()


def with_backend(cluster: Cluster, backend: LocalBackend) -> Cluster:
    return Cluster(
        cluster.root,
        cluster.ring,
        backend,
        ObjectWriter(cluster.ring, backend),
        ObjectReader(cluster.ring, backend),
    )


async def test_put_writes_every_replica_and_reads_back(cluster: Cluster) -> None:
    meta = {"Content-Type": "application/x-test", "X-Object-Meta-Color": "blue"}
    result = await cluster.writer.put("AUTH_t", "c", "o", body(DATA), meta)
    assert (result.etag, result.size) == (ETAG, len(DATA))
    assert {d.id for d in result.devices} == {d.id for d in cluster.primaries("o")}
    for device in cluster.primaries("o"):
        assert cluster.versions(device, "o") == [f"{result.timestamp.normal}.data"]
    assert await cluster.read("o") == DATA
    head = await cluster.reader.head("AUTH_t", "c", "o")
    assert head == meta | {
        "ETag": ETAG,
        "Content-Length": str(len(DATA)),
        "X-Timestamp": result.timestamp.normal,
        "name": "/AUTH_t/c/o",
    }
    assert [f for f in leftovers(cluster) if "/tmp/" in f] == []


async def test_empty_object_and_reserved_metadata(cluster: Cluster) -> None:
    meta = {"ETag": "forged", "Content-Length": "99", "name": "/x", "Content-Type": "text/plain"}
    result = await cluster.writer.put("AUTH_t", "c", "empty", body(b""), meta)
    assert result.etag == hashlib.md5(b"").hexdigest() and result.size == 0
    head = await cluster.reader.head("AUTH_t", "c", "empty")
    assert head["ETag"] == result.etag and head["Content-Length"] == "0"
    assert head["name"] == "/AUTH_t/c/empty"
    with pytest.raises(TypeError):
        await cluster.writer.put("AUTH_t", "c", "o", body(b"x"), {"X-Object-Meta-N": 1})  # type: ignore[dict-item]
    with pytest.raises(ObjectNotFound):
        await cluster.read("never-written")


async def test_one_unwritable_device_of_three_still_meets_the_quorum(cluster: Cluster) -> None:
    bad, *good = cluster.primaries("o")
    cluster.break_device(bad)
    result = await cluster.writer.put("AUTH_t", "c", "o", body(DATA), {})
    assert {d.id for d in result.devices} == {d.id for d in good}
    assert await cluster.read("o") == DATA


async def test_two_unwritable_devices_of_three_fail_and_leave_nothing(cluster: Cluster) -> None:
    broken = cluster.primaries("o")[:2]
    for device in broken:
        cluster.break_device(device)
    with pytest.raises(QuorumNotMet) as failed:
        await cluster.writer.put("AUTH_t", "c", "o", body(DATA), {})
    assert (failed.value.committed, failed.value.needed) == (1, 2)
    assert leftovers(cluster) == sorted(d.device for d in broken)  # the files standing in


@pytest.mark.parametrize("fault", ["write", "corrupt", "commit"])
async def test_a_replica_failing_mid_write_is_dropped(cluster: Cluster, fault: str) -> None:
    bad = cluster.primaries("o")[1]
    faulty = with_backend(cluster, FaultyBackend(cluster.root, {bad.device: fault}))
    result = await faulty.writer.put("AUTH_t", "c", "o", body(DATA), {})
    assert bad.id not in {d.id for d in result.devices} and len(result.devices) == 2
    assert cluster.versions(bad, "o") == []  # a corrupt replica never committed (ETag check)
    assert await faulty.read("o") == DATA
    assert [f for f in leftovers(cluster) if "/tmp/" in f] == []


@pytest.mark.parametrize("fault", ["write", "corrupt", "commit"])
async def test_two_replicas_failing_undo_the_committed_one(cluster: Cluster, fault: str) -> None:
    faults = {d.device: fault for d in cluster.primaries("o")[:2]}
    faulty = with_backend(cluster, FaultyBackend(cluster.root, faults))
    with pytest.raises(QuorumNotMet):
        await faulty.writer.put("AUTH_t", "c", "o", body(DATA), {})
    assert leftovers(cluster) == []


async def test_a_failed_overwrite_keeps_the_old_version_readable(cluster: Cluster) -> None:
    await cluster.writer.put("AUTH_t", "c", "o", body(b"v1"), {})
    faults = {d.device: "commit" for d in cluster.primaries("o")[:2]}
    faulty = with_backend(cluster, FaultyBackend(cluster.root, faults))
    with pytest.raises(QuorumNotMet):
        await faulty.writer.put("AUTH_t", "c", "o", body(b"v2"), {})
    assert await cluster.read("o") == b"v1"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"expected_etag": hashlib.md5(b"other").hexdigest()}, EtagMismatch),
        ({"expected_size": len(DATA) + 1}, SizeMismatch),
        ({"expected_size": len(DATA) - 1}, SizeMismatch),
    ],
)
async def test_a_body_not_matching_what_was_announced_leaves_nothing(
    cluster: Cluster, kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await cluster.writer.put("AUTH_t", "c", "o", body(DATA), {}, **kwargs)  # type: ignore[arg-type]
    assert leftovers(cluster) == []
    result = await cluster.writer.put(
        "AUTH_t", "c", "o", body(DATA), {}, expected_etag=f'"{ETAG}"', expected_size=len(DATA)
    )
    assert result.etag == ETAG


async def test_a_handoff_stands_in_for_an_unavailable_primary(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(devices=5)
    bad = cluster.primaries("o")[0]
    cluster.break_device(bad)
    result = await cluster.writer.put("AUTH_t", "c", "o", body(DATA), {})
    handoff = cluster.handoffs("o")[0]
    assert handoff.id in {d.id for d in result.devices} and len(result.devices) == 3
    assert cluster.versions(handoff, "o") == [f"{result.timestamp.normal}.data"]
    assert await cluster.read("o") == DATA


async def test_the_last_timestamp_wins_on_every_replica(cluster: Cluster) -> None:
    """The older write starts first and finishes last; the newer one still wins."""
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"old-" * 1000
        await release.wait()
        yield b"end"

    t1 = Timestamp.now()
    t2 = Timestamp(t1.ticks + 1)
    older = asyncio.create_task(
        cluster.writer.put("AUTH_t", "c", "o", slow_body(), {}, timestamp=t1)
    )
    await asyncio.sleep(0.01)
    await cluster.writer.put("AUTH_t", "c", "o", body(b"new"), {}, timestamp=t2)
    release.set()
    await older  # it succeeds (it was a valid write) but is superseded at once
    assert await cluster.read("o") == b"new"
    for device in cluster.primaries("o"):
        assert cluster.versions(device, "o") == [f"{t2.normal}.data"]


async def test_reads_return_the_newest_primary_replica(cluster: Cluster) -> None:
    stale = cluster.primaries("o")[0]
    await cluster.writer.put("AUTH_t", "c", "o", body(b"v1"), {})
    cluster.break_device(stale)
    await cluster.writer.put("AUTH_t", "c", "o", body(b"v2"), {})
    cluster.repair_device(stale)
    assert cluster.versions(stale, "o")  # the first primary still holds v1...
    assert await cluster.read("o") == b"v2"  # ...but the newest replica is returned


@pytest.mark.parametrize("fault", ["corrupt", "commit"])
async def test_a_small_object_goes_to_a_handoff_when_a_primary_fails_its_commit(
    cluster_factory: Callable[..., Cluster], fault: str,
) -> None:
    """A whole small object is at hand, so a primary that fails late (a corrupt write,
    a full disk at the commit) is replaced by a handoff, not just dropped."""
    cluster = cluster_factory(devices=5)
    bad = cluster.primaries("o")[1]
    faulty = with_backend(cluster, FaultyBackend(cluster.root, {bad.device: fault}))
    result = await faulty.writer.put("AUTH_t", "c", "o", body(b"small"), {})
    handoff = cluster.handoffs("o")[0]
    assert {d.id for d in result.devices} == (
        {d.id for d in cluster.primaries("o")} - {bad.id} | {handoff.id})
    assert cluster.versions(bad, "o") == []
    assert cluster.versions(handoff, "o") == [f"{result.timestamp.normal}.data"]
    assert [f for f in leftovers(cluster) if "/tmp/" in f] == []


async def test_a_cancelled_small_put_leaves_nothing(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small object is written in one thread hop per replica; a caller cancelled
    while the threads run leaves no replica, committed or not."""
    real = backend_mod._write_whole
    started, ended = asyncio.Event(), threading.Semaphore(0)
    loop = asyncio.get_running_loop()

    def slow(*args: object) -> None:
        loop.call_soon_threadsafe(started.set)
        time.sleep(0.2)
        try:
            real(*args)  # type: ignore[arg-type]
        finally:
            ended.release()

    monkeypatch.setattr(backend_mod, "_write_whole", slow)
    task = asyncio.create_task(cluster.writer.put("AUTH_t", "c", "o", body(b"small"), {}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(3):  # every replica's thread has finished
        assert await asyncio.to_thread(ended.acquire, timeout=10)
    assert leftovers(cluster) == []
    with pytest.raises(ObjectNotFound):
        await cluster.read("o")


async def test_reads_fall_back_to_handoffs(cluster_factory: Callable[..., Cluster]) -> None:
    cluster = cluster_factory(devices=5)
    p0, p1, p2 = cluster.primaries("o")
    cluster.break_device(p0)
    cluster.break_device(p1)
    result = await cluster.writer.put("AUTH_t", "c", "o", body(b"data"), {})
    assert {d.id for d in result.devices} == {p2.id} | {d.id for d in cluster.handoffs("o")[:2]}
    cluster.repair_device(p0)
    cluster.repair_device(p1)
    partition, obj_hash = cluster.where("o")
    cluster.manager(p2).remove(partition, obj_hash, cluster.manager(p2).hashes(partition)[obj_hash])
    assert await cluster.read("o") == b"data"  # no primary has it: the handoffs do
    limited = ObjectReader(cluster.ring, cluster.backend, handoff_limit=0)
    with pytest.raises(ObjectNotFound):
        await limited.open("AUTH_t", "c", "o")


async def test_delete_writes_tombstones_that_win_over_older_data(cluster: Cluster) -> None:
    put = await cluster.writer.put("AUTH_t", "c", "o", body(b"data"), {})
    ts = await cluster.writer.delete("AUTH_t", "c", "o")
    assert ts > put.timestamp
    with pytest.raises(ObjectDeleted) as deleted:
        await cluster.read("o")
    assert deleted.value.timestamp == ts
    for device in cluster.primaries("o"):
        assert cluster.versions(device, "o") == [f"{ts.normal}.ts"]
    await cluster.writer.put("AUTH_t", "c", "o", body(b"older"), {}, timestamp=put.timestamp)
    with pytest.raises(ObjectDeleted):  # a write older than the delete stays deleted
        await cluster.read("o")


async def test_delete_needs_a_quorum(cluster: Cluster) -> None:
    for device in cluster.primaries("o")[:2]:
        cluster.break_device(device)
    with pytest.raises(QuorumNotMet):
        await cluster.writer.delete("AUTH_t", "c", "o")


async def test_cancelling_a_put_at_any_point_leaves_all_or_nothing(cluster: Cluster) -> None:
    data = DATA[: 8 * MiB + 100]  # three blocks
    start = asyncio.get_running_loop().time()
    await cluster.writer.put("AUTH_t", "c", "warm", body(data), {})
    step = (asyncio.get_running_loop().time() - start) / 30
    fds = len(os.listdir("/proc/self/fd"))
    cancelled = completed = 0
    for i in range(300):
        task = asyncio.create_task(cluster.writer.put("AUTH_t", "c", "o", body(data), {}))
        await asyncio.sleep(step * i)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            cancelled += 1
            with pytest.raises(ObjectNotFound):
                await cluster.read("o")
            assert [f for f in leftovers(cluster) if "/tmp/" in f] == []
        else:
            completed += 1
            assert await cluster.read("o") == data
            break
        assert len(os.listdir("/proc/self/fd")) == fds
    assert cancelled >= 3 and completed == 1


MEMORY_PROBE = textwrap.dedent(
    """
    import asyncio, os, resource, sys
    from pathlib import Path
    from onestack.object_store import LocalBackend, ObjectWriter, RingBuilder

    POOL = os.urandom(1 << 20)

    async def body(total):
        view = memoryview(POOL)
        for i in range(total // 65536):
            j = (i % 16) * 65536
            yield bytes(view[j : j + 65536])  # a fresh object per chunk, like an HTTP body

    async def main():
        root = Path(sys.argv[1])
        builder = RingBuilder(4)
        for name in ("sda", "sdb", "sdc"):
            (root / name).mkdir()
            builder.add_device(host="127.0.0.1", port=6200, device=name, zone=len(name))
        builder.rebalance()
        writer = ObjectWriter(builder.get_ring(), LocalBackend(root))
        await writer.put("a", "c", "warm-up", body(32 << 20), {})  # threads, allocator arenas
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = await writer.put("a", "c", "big", body(256 << 20), {})
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert result.size == 256 << 20 and len(result.devices) == 3
        print((after - before) * 1024)

    asyncio.run(main())
    """
)


def test_writing_256_mib_keeps_memory_flat(tmp_path: Path) -> None:
    """Peak RSS of a fresh process grows by a few blocks, not by the object (3 replicas)."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    growth = int(out.stdout.strip())
    assert growth < 48 * MiB, f"peak RSS grew by {growth / MiB:.1f} MiB"


def test_make_cluster_places_every_device(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, devices=4, power=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sda", "sdb", "sdc", "sdd"]
    assert cluster.ring.replica_count == 3


# -- single-replica reads (GET and HEAD without X-Newest) ------------------------------


async def test_single_replica_read_takes_the_first_primary_even_if_stale(
    cluster: Cluster,
) -> None:
    stale = cluster.primaries("o")[0]
    await cluster.writer.put("AUTH_t", "c", "o", body(b"v1"), {})
    cluster.break_device(stale)
    await cluster.writer.put("AUTH_t", "c", "o", body(b"v2"), {})
    cluster.repair_device(stale)
    async with await cluster.reader.open("AUTH_t", "c", "o", newest=False) as replica:
        assert replica.device.id == stale.id  # as Swift's proxy: one replica, no vote
        assert b"".join([c async for c in replica.iter()]) == b"v1"
    assert await cluster.read("o") == b"v2"  # X-Newest still finds the newest


async def test_single_replica_read_skips_a_failed_primary(cluster: Cluster) -> None:
    first, second, _ = cluster.primaries("o")
    await cluster.writer.put("AUTH_t", "c", "o", body(b"data"), {})
    cluster.break_device(first)
    async with await cluster.reader.open("AUTH_t", "c", "o", newest=False) as replica:
        assert replica.device.id == second.id
        assert b"".join([c async for c in replica.iter()]) == b"data"


async def test_single_replica_read_asks_everyone_when_the_first_has_nothing(
    cluster: Cluster,
) -> None:
    """A 404 or a tombstone on the first primary is not taken as the answer: the
    newest state of all replicas decides (data written meanwhile, or a delete)."""
    first = cluster.primaries("o")[0]
    cluster.break_device(first)
    await cluster.writer.put("AUTH_t", "c", "o", body(b"new"), {})
    cluster.repair_device(first)
    assert cluster.versions(first, "o") == []
    async with await cluster.reader.open("AUTH_t", "c", "o", newest=False) as replica:
        assert b"".join([c async for c in replica.iter()]) == b"new"

    partition, obj_hash = cluster.where("o")
    cluster.manager(first).delete(partition, obj_hash, Timestamp.now())
    cluster.break_device(first)
    await cluster.writer.put("AUTH_t", "c", "o", body(b"newer"), {})
    cluster.repair_device(first)
    assert cluster.versions(first, "o")[0].endswith(".ts")
    async with await cluster.reader.open("AUTH_t", "c", "o", newest=False) as replica:
        assert b"".join([c async for c in replica.iter()]) == b"newer"  # older tombstone

    ts = await cluster.writer.delete("AUTH_t", "c", "o")
    with pytest.raises(ObjectDeleted) as deleted:
        await cluster.reader.open("AUTH_t", "c", "o", newest=False)
    assert deleted.value.timestamp == ts


async def test_single_replica_read_prefers_local_primaries(cluster: Cluster) -> None:
    third = cluster.primaries("o")[2]
    await cluster.writer.put("AUTH_t", "c", "o", body(b"data"), {})

    class ThirdIsLocal(LocalBackend):
        def is_local(self, device: Device) -> bool:
            return device.id == third.id

    reader = ObjectReader(cluster.ring, ThirdIsLocal(cluster.root))
    async with await reader.open("AUTH_t", "c", "o", newest=False) as replica:
        assert replica.device.id == third.id


async def test_reads_prefetch_with_the_metadata_and_read_ahead(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small object is opened and read in one thread hop; a large one streams in
    blocks with the next one read ahead, and a stream closed early leaves nothing
    running or open."""
    import onestack.object_store.backend as backend_mod

    hops = 0
    real = backend_mod.run_blocking

    async def counted(fn: Callable[..., object], *args: object) -> object:
        nonlocal hops
        hops += 1
        return await real(fn, *args)

    monkeypatch.setattr(backend_mod, "run_blocking", counted)
    real_submit = backend_mod.BatchLane.submit_owned

    def submitted(lane: object, *args: object) -> object:
        nonlocal hops
        hops += 1
        return real_submit(lane, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(backend_mod.BatchLane, "submit_owned", submitted)
    await cluster.writer.put("AUTH_t", "c", "small", body(b"s" * 4096), {})
    hops = 0
    async with await cluster.reader.open("AUTH_t", "c", "small", newest=False) as replica:
        assert b"".join([c async for c in replica.iter()]) == b"s" * 4096
        assert b"".join([c async for c in replica.iter(100, 10)]) == b"s" * 10
    assert hops == 1

    monkeypatch.setattr(backend_mod, "READ_SIZE", 1 * MiB)
    await cluster.writer.put("AUTH_t", "c", "big", body(DATA), {})
    async with await cluster.reader.open("AUTH_t", "c", "big", newest=False) as replica:
        chunks = [c async for c in replica.iter()]
        assert b"".join(chunks) == DATA
        assert max(len(c) for c in chunks) == MiB
        assert b"".join([c async for c in replica.iter(MiB - 5, MiB + 10)]) == \
            DATA[MiB - 5:2 * MiB + 5]
        edge = backend_mod.PREFETCH - 5  # a range across the end of the prefetched bytes
        assert b"".join([c async for c in replica.iter(edge, 10)]) == DATA[edge:edge + 10]
        stream = replica.iter()
        assert len(await anext(stream)) == backend_mod.PREFETCH
        assert len(await anext(stream)) == MiB  # the next block is being read meanwhile
        await stream.aclose()


async def test_local_replicas_hash_the_data_the_writer_does_not(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local replicas compute the MD5 of what they are sent (their commit checks it):
    the writer then takes their ETag instead of hashing the body a fourth time; with a
    replica that does not hash (a remote one), the writer hashes."""
    import types

    import onestack.object_store.replication as replication_mod

    made = 0

    def md5(*args: object, **kwargs: object) -> object:
        nonlocal made
        made += 1
        return hashlib.md5(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(replication_mod, "hashlib", types.SimpleNamespace(md5=md5))
    result = await cluster.writer.put("AUTH_t", "c", "o", body(DATA), {}, expected_etag=ETAG)
    assert (made, result.etag) == (0, ETAG)
    assert await cluster.read("o") == DATA
    with pytest.raises(EtagMismatch):
        await cluster.writer.put("AUTH_t", "c", "o", body(DATA), {}, expected_etag="0" * 32)
    assert await cluster.read("o") == DATA  # the old version stays

    bad = cluster.primaries("p")[1]
    faulty = with_backend(cluster, FaultyBackend(cluster.root, {bad.device: "corrupt"}))
    result = await faulty.writer.put("AUTH_t", "c", "p", body(DATA), {})
    assert (made, result.etag, len(result.devices)) == (1, ETAG, 2)  # the bad one failed
