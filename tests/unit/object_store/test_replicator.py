"""The auditor and the replicator repairing real device directories."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from objstore_cluster import Cluster, MiB, body

from onestack.object_store import Auditor, Device, FileInfo, LocalBackend, Replicator, Timestamp
from onestack.object_store.diskfile import FOOTER
from onestack.object_store.errors import DeviceUnavailable, ObjectNotFound
from onestack.object_store.replicator import run_forever

DATA = os.urandom(2 * MiB + 77)


def auditor(cluster: Cluster, **kwargs: float) -> Auditor:
    return Auditor([cluster.manager(d) for d in cluster.ring.devices], **kwargs)


def data_file(cluster: Cluster, device_index: int, obj: str = "o") -> Path:
    device = cluster.primaries(obj)[device_index]
    (name,) = cluster.versions(device, obj)
    return cluster.manager(device).hash_dir(*cluster.where(obj)) / name


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x80]))


def replica_bytes(cluster: Cluster, obj: str = "o") -> list[bytes]:
    """The data of each primary's replica (b"" where there is none)."""
    out = []
    for device in cluster.primaries(obj):
        try:
            reader = cluster.manager(device).open(*cluster.where(obj))
        except (ObjectNotFound, DeviceUnavailable):
            out.append(b"")
            continue
        out.append(reader.pread(0, reader.size))
        reader.close()
    return out


async def test_audit_of_a_healthy_cluster_reads_everything_and_changes_nothing(
    cluster: Cluster,
) -> None:
    await cluster.writer.put("AUTH_t", "c", "o", body(DATA), {})
    await cluster.writer.put("AUTH_t", "c", "gone", body(b"x"), {})
    await cluster.writer.delete("AUTH_t", "c", "gone")
    stats = await auditor(cluster).audit_once()
    assert (stats.files, stats.bytes, stats.quarantined, stats.failures) == (6, 3 * len(DATA), 0, 0)


@pytest.mark.parametrize("where", ["data", "metadata", "footer"])
async def test_the_auditor_quarantines_a_flipped_byte(cluster: Cluster, where: str) -> None:
    await cluster.writer.put("AUTH_t", "c", "o", body(DATA), {"X-Object-Meta-A": "b"})
    path = data_file(cluster, 1)
    size = path.stat().st_size
    offset = {"data": 12345, "metadata": len(DATA) + 5, "footer": size - FOOTER.size + 20}[where]
    flip(path, offset)
    stats = await auditor(cluster).audit_once()
    assert (stats.files, stats.quarantined) == (3 - (where != "data"), 1)
    device = cluster.primaries("o")[1]
    assert not path.exists()
    assert (cluster.manager(device).quarantined / path.parent.name / path.name).is_file()
    assert await cluster.read("o") == DATA  # the other replicas serve meanwhile
    assert (await auditor(cluster).audit_once()).quarantined == 0


async def test_the_replicator_restores_a_corrupted_replica_after_audit(cluster: Cluster) -> None:
    await cluster.writer.put("AUTH_t", "c", "o", body(DATA), {})
    flip(data_file(cluster, 0), 100)
    assert (await auditor(cluster).audit_once()).quarantined == 1
    stats = await Replicator(cluster.ring, cluster.backend).replicate_once()
    assert stats.objects_copied == 1 and stats.failures == 0
    assert replica_bytes(cluster) == [DATA] * 3
    again = await Replicator(cluster.ring, cluster.backend).replicate_once()
    assert again.objects_copied == 0 and again.suffixes_compared > 0


async def test_the_replicator_restores_a_deleted_replica(cluster: Cluster) -> None:
    meta = {"Content-Type": "text/x-kept", "X-Object-Meta-Owner": "me"}
    put = await cluster.writer.put("AUTH_t", "c", "o", body(DATA), meta)
    lost = cluster.primaries("o")[2]
    shutil.rmtree(cluster.manager(lost).objects)  # the disk was replaced
    stats = await Replicator(cluster.ring, cluster.backend).replicate_once()
    assert stats.objects_copied == 1
    assert cluster.versions(lost, "o") == [f"{put.timestamp.normal}.data"]
    reader = cluster.manager(lost).open(*cluster.where("o"))
    assert reader.metadata["X-Object-Meta-Owner"] == "me" and reader.metadata["ETag"] == put.etag
    reader.close()
    assert replica_bytes(cluster) == [DATA] * 3


async def test_a_corrupt_replica_is_never_copied(cluster: Cluster) -> None:
    """Before any audit: one replica is corrupt, another lost. The copy from the corrupt
    one fails its ETag check (and quarantines it); passes end with three good replicas."""
    await cluster.writer.put("AUTH_t", "c", "o", body(DATA), {})
    flip(data_file(cluster, 0), 1000)
    shutil.rmtree(cluster.manager(cluster.primaries("o")[1]).objects)
    replicator = Replicator(cluster.ring, cluster.backend)
    for _ in range(3):
        await replicator.replicate_once()
    assert replica_bytes(cluster) == [DATA] * 3


async def test_the_replicator_updates_a_stale_replica(cluster: Cluster) -> None:
    stale = cluster.primaries("o")[0]
    await cluster.writer.put("AUTH_t", "c", "o", body(b"v1"), {})
    cluster.break_device(stale)
    await cluster.writer.put("AUTH_t", "c", "o", body(b"v2"), {})
    stats = await Replicator(cluster.ring, cluster.backend).replicate_once()
    assert stats.failures >= 1 and stats.objects_copied == 0  # nowhere to copy to yet
    cluster.repair_device(stale)
    stats = await Replicator(cluster.ring, cluster.backend).replicate_once()
    assert stats.objects_copied == 1
    assert replica_bytes(cluster) == [b"v2"] * 3


async def test_the_replicator_propagates_a_tombstone(cluster: Cluster) -> None:
    await cluster.writer.put("AUTH_t", "c", "o", body(DATA), {})
    missed = cluster.primaries("o")[2]
    cluster.break_device(missed)
    ts = await cluster.writer.delete("AUTH_t", "c", "o")
    cluster.repair_device(missed)
    assert cluster.versions(missed, "o")[0].endswith(".data")
    stats = await Replicator(cluster.ring, cluster.backend).replicate_once()
    assert stats.tombstones_copied == 1
    for device in cluster.primaries("o"):
        assert cluster.versions(device, "o") == [f"{ts.normal}.ts"]


async def test_old_tombstones_are_reclaimed_everywhere(cluster: Cluster) -> None:
    await cluster.writer.put("AUTH_t", "c", "o", body(b"x"), {}, timestamp=Timestamp.parse("1000"))
    await cluster.writer.delete("AUTH_t", "c", "o", timestamp=Timestamp.parse("2000"))
    await Replicator(cluster.ring, cluster.backend, reclaim_age=3600).replicate_once()
    for device in cluster.ring.devices:
        assert cluster.manager(device).partitions() == []


async def test_handoff_data_moves_to_its_primary_once_it_is_back(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(devices=5)
    down = cluster.primaries("o")[0]
    handoff = cluster.handoffs("o")[0]
    cluster.break_device(down)
    put = await cluster.writer.put("AUTH_t", "c", "o", body(DATA), {})
    await cluster.writer.put("AUTH_t", "c", "gone", body(b"x"), {})
    replicator = Replicator(cluster.ring, cluster.backend)
    await replicator.replicate_once()
    assert cluster.versions(handoff, "o")  # kept while a primary is missing
    cluster.repair_device(down)
    stats = await replicator.replicate_once()
    assert stats.handoffs_removed >= 1
    assert cluster.versions(down, "o") == [f"{put.timestamp.normal}.data"]
    assert cluster.versions(handoff, "o") == []
    assert replica_bytes(cluster) == [DATA] * 3
    partition = cluster.where("o")[0]
    assert partition not in cluster.manager(handoff).partitions()


async def test_the_auditor_removes_temp_files_of_dead_writes(cluster: Cluster) -> None:
    device = cluster.ring.devices[0]
    tmp = cluster.manager(device).tmp
    tmp.mkdir()
    (tmp / "dead.tmp").write_bytes(b"partial")
    assert (await auditor(cluster).audit_once()).tmp_removed == 0  # could be a live write
    os.utime(tmp / "dead.tmp", (time.time() - 7200, time.time() - 7200))
    assert (await auditor(cluster, tmp_age=3600).audit_once()).tmp_removed == 1
    assert list(tmp.iterdir()) == []


async def test_an_unavailable_device_is_skipped_not_fatal(cluster: Cluster) -> None:
    await cluster.writer.put("AUTH_t", "c", "o", body(b"x"), {})
    cluster.break_device(cluster.ring.devices[0])
    assert (await auditor(cluster).audit_once()).failures == 1
    assert (await Replicator(cluster.ring, cluster.backend).replicate_once()).failures >= 1


class BrokenListing(LocalBackend):
    """A backend whose listing of one partition fails with a bug-like error."""

    def __init__(self, root: Path, partition: int) -> None:
        super().__init__(root)
        self.partition = partition

    async def hashes(
        self, device: Device, partition: int, suffixes: set[str] | None = None
    ) -> dict[str, FileInfo]:
        if partition == self.partition:
            raise RuntimeError("listing failed")
        return await super().hashes(device, partition, suffixes)


async def test_a_failing_partition_does_not_stop_the_pass(cluster: Cluster) -> None:
    names = [f"o{i}" for i in range(40)]
    for name in names:
        await cluster.writer.put("AUTH_t", "c", name, body(name.encode()), {})
    first, other = (
        names[0],
        next(n for n in names if cluster.where(n)[0] != cluster.where(names[0])[0]),
    )
    for name in (first, other):
        shutil.rmtree(cluster.manager(cluster.primaries(name)[0]).hash_dir(*cluster.where(name)))
    backend = BrokenListing(cluster.root, cluster.where(first)[0])
    stats = await Replicator(cluster.ring, backend).replicate_once()
    assert stats.failures == 1 and stats.objects_copied == 1
    assert replica_bytes(cluster, other) == [other.encode()] * 3
    assert replica_bytes(cluster, first).count(b"") == 1


async def test_run_forever_keeps_going_after_a_failing_pass() -> None:
    passes: list[int] = []
    done = asyncio.Event()

    async def one_pass() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            raise RuntimeError("a bad pass")
        if len(passes) == 3:
            done.set()

    task = asyncio.create_task(run_forever(one_pass, 0.0, name="test"))
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert passes[:3] == [0, 1, 2]


async def test_the_replicator_loop_repairs_in_the_background(cluster: Cluster) -> None:
    await cluster.writer.put("AUTH_t", "c", "o", body(b"data"), {})
    lost = cluster.primaries("o")[1]
    shutil.rmtree(cluster.manager(lost).objects)
    task = asyncio.create_task(Replicator(cluster.ring, cluster.backend).run(interval=0.01))
    try:
        # until the replica is back whole: milliseconds here, but each copy fsyncs,
        # and an fsync waits for the disk's backlog (a loaded CI machine took over
        # 5 s; one run beside a large package install, more than 30 s)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if cluster.versions(lost, "o") and replica_bytes(cluster) == [b"data"] * 3:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert replica_bytes(cluster) == [b"data"] * 3
