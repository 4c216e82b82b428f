"""One device's object files on a real filesystem: format, atomicity, versions, checks."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from objstore_cluster import MiB

from onestack.object_store import (
    Device,
    DiskFileManager,
    FileInfo,
    LocalBackend,
    Timestamp,
    diskfile,
)
from onestack.object_store.diskfile import FOOTER, MAGIC
from onestack.object_store.errors import (
    DeviceUnavailable,
    DiskFileCorrupt,
    EtagMismatch,
    ObjectDeleted,
    ObjectNotFound,
)

DATA = os.urandom(5 * MiB + 12345)
HASH = hashlib.md5(b"/a/c/o").hexdigest()
PART = 7
T1, T2, T3 = (Timestamp.parse(t) for t in ("1700000000.00001", "1700000000.5", "1700000001"))


@pytest.fixture
def dev(tmp_path: Path) -> DiskFileManager:
    (tmp_path / "sda").mkdir()
    return DiskFileManager(tmp_path / "sda")


def put(
    dev: DiskFileManager, data: bytes, ts: Timestamp, meta: dict[str, str] | None = None
) -> Path:
    writer = dev.writer(PART, HASH)
    writer.open()
    for i in range(0, len(data), 4 * MiB):
        writer.write(data[i : i + 4 * MiB])
    return writer.commit(meta or {"Content-Type": "application/octet-stream"}, ts)


def read_all(dev: DiskFileManager) -> bytes:
    reader = dev.open(PART, HASH)
    try:
        return reader.pread(0, reader.size)
    finally:
        reader.close()


def test_timestamps_have_swift_normal_form_and_order() -> None:
    assert str(Timestamp.parse("1700000000.12345")) == "1700000000.12345"
    assert Timestamp.parse("1700000000.1").normal == "1700000000.10000"
    assert Timestamp.parse("17").normal == "0000000017.00000"
    assert Timestamp.from_float(1700000000.123456).normal == "1700000000.12346"
    assert T1 < T2 < T3 and len(Timestamp.now().normal) == 16
    for bad in ("", "abc", "1.123456", "-1", "1e9"):
        with pytest.raises(ValueError):
            Timestamp.parse(bad)


def test_layout_is_partition_suffix_hash_timestamp(dev: DiskFileManager) -> None:
    path = put(dev, b"hello", T1)
    assert path == dev.path / "objects" / "7" / HASH[-3:] / HASH / "1700000000.00001.data"
    assert os.listdir(dev.tmp) == []
    assert dev.partitions() == [7]
    assert dev.hashes(PART) == {HASH: FileInfo(T1, ".data")}


def test_a_commit_makes_every_new_entry_durable(
    dev: DiskFileManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is fsynced before it is renamed into place, then the hash dir, and
    the parent of every directory the commit made (innermost first); a second
    version in the same hash dir needs only the hash dir."""
    synced: list[str] = []
    real_fsync = os.fsync

    def sync_dir(path: Path) -> None:
        synced.append(str(path.relative_to(dev.path)))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            real_fsync(fd)
        finally:
            os.close(fd)

    monkeypatch.setattr(diskfile.os, "fsync", lambda fd: (synced.append("file"), real_fsync(fd)))
    monkeypatch.setattr(diskfile, "fsync_dir", sync_dir)
    put(dev, b"one", T1)
    objects, part = "objects", f"objects/{PART}"
    suffix = f"{part}/{HASH[-3:]}"
    assert synced == ["file", f"{suffix}/{HASH}", suffix, part, objects, "."]
    synced.clear()
    put(dev, b"two", T2)
    assert synced == ["file", f"{suffix}/{HASH}"]


def test_round_trip_with_60_kb_of_metadata_and_no_xattrs(
    dev: DiskFileManager, tmp_path: Path
) -> None:
    meta = {f"X-Object-Meta-Key-{i:04d}": "v" * 90 for i in range(600)}
    meta["Content-Type"] = "image/png"
    path = put(dev, DATA, T2, meta)
    reader = dev.open(PART, HASH)
    assert reader.metadata == meta | {
        "ETag": hashlib.md5(DATA).hexdigest(),
        "Content-Length": str(len(DATA)),
        "X-Timestamp": "1700000000.50000",
    }
    assert reader.size == len(DATA) and reader.pread(0, len(DATA)) == DATA
    reader.close()
    meta_json_len = path.stat().st_size - len(DATA) - FOOTER.size
    assert meta_json_len > 60_000  # far over ext4's ~4 KB of xattrs per file
    assert os.listxattr(path) == []  # and none are used: the file is self-contained...
    other = tmp_path / "sdb"
    other.mkdir()
    copy = DiskFileManager(other)
    copy.hash_dir(PART, HASH).mkdir(parents=True)
    shutil.copyfile(path, copy.hash_dir(PART, HASH) / path.name)  # copies bytes only
    assert read_all(copy) == DATA  # ...so a byte copy is a whole replica


@pytest.mark.parametrize(
    ("offset", "length"), [(0, None), (0, 1), (1, 10), (4 * MiB - 1, 3), (len(DATA) - 5, 100)]
)
async def test_ranges_never_read_into_the_trailer(
    tmp_path: Path, offset: int, length: int | None
) -> None:
    (tmp_path / "sda").mkdir()
    backend = LocalBackend(tmp_path)
    device = Device(0, "127.0.0.1", 6200, "sda")
    put(backend.manager(device), DATA, T1)
    async with await backend.open_reader(device, PART, HASH) as reader:
        got = b"".join([c async for c in reader.iter(offset, length)])
    end = len(DATA) if length is None else offset + length
    assert got == DATA[offset:end]


def test_tombstone_hides_the_object_and_replaces_older_data(dev: DiskFileManager) -> None:
    put(dev, b"x", T1)
    dev.delete(PART, HASH, T2)
    with pytest.raises(ObjectDeleted) as deleted:
        dev.open(PART, HASH)
    assert deleted.value.timestamp == T2
    assert os.listdir(dev.hash_dir(PART, HASH)) == ["1700000000.50000.ts"]
    put(dev, b"back", T3)  # a newer write brings it back
    assert read_all(dev) == b"back"
    assert os.listdir(dev.hash_dir(PART, HASH)) == ["1700000001.00000.data"]


def test_newest_timestamp_wins_whatever_order_the_commits_land(dev: DiskFileManager) -> None:
    put(dev, b"new", T2)
    put(dev, b"old", T1)  # a slow, older write finishing late
    assert read_all(dev) == b"new"
    assert os.listdir(dev.hash_dir(PART, HASH)) == ["1700000000.50000.data"]
    dev.delete(PART, HASH, T1)  # an older delete changes nothing
    assert read_all(dev) == b"new"
    dev.delete(PART, HASH, T2)  # a delete at the same timestamp wins the tie
    with pytest.raises(ObjectDeleted):
        dev.open(PART, HASH)


def test_abort_removes_the_temp_file_and_even_a_committed_version(dev: DiskFileManager) -> None:
    put(dev, b"v1", T1)
    writer = dev.writer(PART, HASH)
    writer.open()
    writer.write(b"partial")
    assert len(os.listdir(dev.tmp)) == 1
    writer.abort()
    assert os.listdir(dev.tmp) == [] and read_all(dev) == b"v1"
    writer = dev.writer(PART, HASH)
    writer.open()
    writer.write(b"v2")
    writer.commit({}, T2)
    writer.abort()  # how a write that missed its quorum is undone
    with pytest.raises(ObjectNotFound):
        dev.open(PART, HASH)
    assert not dev.hash_dir(PART, HASH).exists()


def test_commit_refuses_data_that_does_not_match_the_etag(dev: DiskFileManager) -> None:
    writer = dev.writer(PART, HASH)
    writer.open()
    writer.write(b"data")
    with pytest.raises(EtagMismatch):
        writer.commit({"ETag": hashlib.md5(b"other").hexdigest()}, T1)
    writer.abort()
    assert os.listdir(dev.tmp) == [] and dev.partitions() == []


CRASH = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from onestack.object_store import DiskFileManager
    dev = DiskFileManager(Path(sys.argv[1]))
    writer = dev.writer(7, sys.argv[2])
    writer.open()
    writer.write(os.urandom(3 << 20))
    os.kill(os.getpid(), signal.SIGKILL)  # the power goes out mid-write
    """
)


def test_a_crash_mid_write_leaves_no_object_and_a_temp_file_cleanup_removes(
    dev: DiskFileManager,
) -> None:
    put(dev, b"v1", T1)
    proc = subprocess.run([sys.executable, "-c", CRASH, str(dev.path), HASH], check=False)
    assert proc.returncode == -9
    assert read_all(dev) == b"v1"  # the old version is intact, the new one invisible
    assert os.listdir(dev.hash_dir(PART, HASH)) == ["1700000000.00001.data"]
    assert len(os.listdir(dev.tmp)) == 1
    assert dev.cleanup_tmp(older_than=3600) == 0  # it might be a live write
    assert dev.cleanup_tmp(older_than=0) == 1
    assert os.listdir(dev.tmp) == []


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


@pytest.mark.parametrize("damage", ["metadata", "footer-length", "magic", "truncated", "tiny"])
def test_a_damaged_file_is_quarantined_and_reads_as_missing(
    dev: DiskFileManager, damage: str
) -> None:
    path = put(dev, b"some data", T1, {"Content-Type": "text/plain"})
    size = path.stat().st_size
    if damage == "metadata":
        _flip(path, len(b"some data") + 3)
    elif damage == "footer-length":
        _flip(path, size - FOOTER.size + len(MAGIC) + 7)
    elif damage == "magic":
        _flip(path, size - FOOTER.size)
    elif damage == "truncated":
        os.truncate(path, size - 1)
    else:
        os.truncate(path, 10)
    with pytest.raises(ObjectNotFound):
        dev.open(PART, HASH)
    assert dev.partitions() == []  # the emptied partition and suffix dirs went too
    assert os.listdir(dev.quarantined / HASH) == ["1700000000.00001.data"]
    put(dev, b"again", T2)  # quarantining twice does not collide
    _flip(dev.hash_dir(PART, HASH) / "1700000000.50000.data", 8)
    with pytest.raises(ObjectNotFound):
        dev.open(PART, HASH)
    assert len(os.listdir(dev.quarantined)) == 2


async def test_a_whole_read_checks_the_md5_and_quarantines_a_mismatch(tmp_path: Path) -> None:
    (tmp_path / "sda").mkdir()
    backend = LocalBackend(tmp_path)
    device = Device(0, "127.0.0.1", 6200, "sda")
    path = put(backend.manager(device), DATA, T1)
    _flip(path, 2 * MiB)  # a data byte: the trailer is fine, so open succeeds
    async with await backend.open_reader(device, PART, HASH) as reader:
        assert b"".join([c async for c in reader.iter(0, 100)]) == DATA[:100]  # ranges: no check
    async with await backend.open_reader(device, PART, HASH) as reader:
        with pytest.raises(DiskFileCorrupt):
            async for _ in reader.iter():
                pass
    with pytest.raises(ObjectNotFound):
        await backend.open_reader(device, PART, HASH)
    assert (backend.manager(device).quarantined / HASH).is_dir()


def test_old_tombstones_are_reclaimed_with_their_directories(dev: DiskFileManager) -> None:
    dev.delete(PART, HASH, T1)
    assert dev.hashes(PART, reclaim_before=T1) == {HASH: FileInfo(T1, ".ts")}  # not older
    assert dev.hashes(PART, reclaim_before=T2) == {}
    assert dev.partitions() == []  # hash, suffix and partition dirs went too
    put(dev, b"data", T1)
    assert dev.hashes(PART, reclaim_before=T3) == {HASH: FileInfo(T1, ".data")}  # data stays


def test_suffix_hashes_follow_the_contents(dev: DiskFileManager) -> None:
    assert dev.suffix_hashes(PART) == {}
    put(dev, b"data", T1)
    first = dev.suffix_hashes(PART)
    assert list(first) == [HASH[-3:]]
    assert dev.suffix_hashes(PART) == first
    dev.delete(PART, HASH, T2)
    assert dev.suffix_hashes(PART) != first


async def test_a_missing_device_is_unavailable_and_never_created(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    device = Device(0, "127.0.0.1", 6200, "sdz")
    with pytest.raises(DeviceUnavailable):
        await backend.open_writer(device, PART, HASH)
    with pytest.raises(DeviceUnavailable):
        await backend.open_reader(device, PART, HASH)
    with pytest.raises(DeviceUnavailable):
        await backend.partitions(device)
    assert not (tmp_path / "sdz").exists()
    (tmp_path / "sdz").mkdir()
    with pytest.raises(DeviceUnavailable, match="not mounted"):
        await LocalBackend(tmp_path, mount_check=True).open_writer(device, PART, HASH)
