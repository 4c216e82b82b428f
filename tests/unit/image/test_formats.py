"""Disk format inspection and conversion, on images made by the real qemu-img."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from onestack.core.concurrency import run_command
from onestack.image import formats
from onestack.image.formats import FormatError

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-img") is None,
    reason="qemu-img missing (scripts/apt-packages.txt installs it)",
)

MiB = 1024 * 1024


def qemu_img(*args: str | Path) -> None:
    subprocess.run(["qemu-img", *map(str, args)], check=True, capture_output=True)


def make(tmp_path: Path, name: str, fmt: str, size: str = "64M", *opts: str) -> Path:
    path = tmp_path / name
    qemu_img("create", "-f", fmt, *opts, path, size)
    return path


def assert_only(directory: Path, *names: str) -> None:
    assert sorted(os.listdir(directory)) == sorted(names)


async def inspect_quickly(path: Path) -> formats.ImageInfo:
    """Images that name a FIFO: if qemu opened it, it would hang, so this must be fast."""
    return await asyncio.wait_for(formats.inspect(path), 10)


@pytest.mark.parametrize(
    ("qemu_format", "disk_format", "opts"),
    [
        ("qcow2", "qcow2", ()),
        ("vmdk", "vmdk", ()),  # monolithicSparse
        ("vmdk", "vmdk", ("-o", "subformat=streamOptimized")),
        ("vpc", "vhd", ("-o", "force_size=on")),
        ("vhdx", "vhdx", ()),
        ("vdi", "vdi", ()),
        ("raw", "raw", ()),
        ("raw", "iso", ()),
    ],
)
async def test_virtual_size_of_each_format(
    tmp_path: Path, qemu_format: str, disk_format: str, opts: tuple[str, ...]
) -> None:
    path = make(tmp_path, "disk", qemu_format, "64M", *opts)
    assert await formats.check(path, disk_format) == 64 * MiB
    info = await formats.inspect(path)
    assert (info.format, info.backing_file, info.data_file, info.encrypted) == (
        formats.QEMU_NAMES[disk_format], None, None, False
    )  # fmt: skip


async def test_raw_size_is_the_file_size(tmp_path: Path) -> None:
    path = tmp_path / "odd.img"
    path.write_bytes(os.urandom(3 * MiB + 512))
    assert await formats.check(path, "raw") == 3 * MiB + 512


async def test_qcow2_with_a_backing_file_is_refused(tmp_path: Path) -> None:
    make(tmp_path, "base.raw", "raw", "1M")
    path = make(
        tmp_path, "over.qcow2", "qcow2", "1M", "-b", str(tmp_path / "base.raw"), "-F", "raw"
    )
    assert (await formats.inspect(path)).backing_file == str(tmp_path / "base.raw")
    for declared in ("qcow2", "raw", "ami"):  # unchecked formats get the safety rules too
        with pytest.raises(FormatError, match="backing file"):
            await formats.check(path, declared)


async def test_qcow2_with_external_data_file_is_refused_without_running_qemu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Older qemu-img opened the data file even for ``info`` (CVE-2024-4467), so the
    header is read here and qemu-img is not run at all."""
    path = make(tmp_path, "df.qcow2", "qcow2", "1M", "-o", f"data_file={tmp_path / 'ext'}")

    async def no_qemu(*argv: str, timeout: float) -> tuple[int, str, str]:
        raise AssertionError(f"ran {argv}")

    monkeypatch.setattr(formats, "run_command", no_qemu)
    info = await formats.inspect(path)
    assert (info.format, info.data_file, info.virtual_size) == ("qcow2", str(tmp_path / "ext"), MiB)
    with pytest.raises(FormatError, match="external data file"):
        await formats.check(path, "qcow2")


async def test_vmdk_with_extents_elsewhere_is_refused(tmp_path: Path) -> None:
    flat = make(tmp_path, "flat.vmdk", "vmdk", "1M", "-o", "subformat=monolithicFlat")
    info = await formats.inspect(flat)
    assert (info.subformat, info.data_file) == ("monolithicFlat", "flat-flat.vmdk")
    with pytest.raises(FormatError):
        await formats.check(flat, "vmdk")

    # A hand-made descriptor pointing at a host file, declared as raw.
    os.mkfifo(tmp_path / "secret")
    hostile = tmp_path / "hostile.img"
    hostile.write_text(
        '# Disk DescriptorFile\nversion=1\ncreateType="monolithicSparse"\n'
        f'RW 2048 FLAT "{tmp_path / "secret"}" 0\n'
    )
    assert (await inspect_quickly(hostile)).data_file == str(tmp_path / "secret")
    for declared in ("raw", "vmdk"):
        with pytest.raises(FormatError):
            await formats.check(hostile, declared)


async def test_sparse_vmdk_redirected_by_its_embedded_descriptor_is_refused(tmp_path: Path) -> None:
    """A sparse VMDK with capacity 0 is opened through its embedded descriptor's extents."""
    path = make(tmp_path, "s.vmdk", "vmdk", "1M")
    os.mkfifo(tmp_path / "secret")
    with open(path, "r+b") as f:
        header = f.read(64)
        desc_sector, desc_sectors = struct.unpack_from("<QQ", header, 28)
        descriptor = f'# Disk DescriptorFile\nversion=1\nRW 2048 FLAT "{tmp_path / "secret"}" 0\n'
        assert len(descriptor) < desc_sectors * 512
        f.seek(12)
        f.write(struct.pack("<Q", 0))  # capacity
        f.seek(desc_sector * 512)
        f.write(descriptor.encode().ljust(desc_sectors * 512, b"\0"))
    assert (await inspect_quickly(path)).data_file == str(tmp_path / "secret")
    with pytest.raises(FormatError):
        await formats.check(path, "vmdk")


@pytest.mark.parametrize(
    ("qemu_format", "declared", "message"),
    [
        ("qcow2", "raw", "Image format mismatch: data is qcow2, disk_format is raw"),
        ("qcow2", "iso", "Image format mismatch: data is qcow2, disk_format is iso"),
        ("raw", "qcow2", "Image format mismatch: data is raw, disk_format is qcow2"),
        ("vpc", "vdi", "Image format mismatch: data is vhd, disk_format is vdi"),
        ("vmdk", "vhd", "Image format mismatch: data is vmdk, disk_format is vhd"),
    ],
)
async def test_data_must_match_its_declared_format(
    tmp_path: Path, qemu_format: str, declared: str, message: str
) -> None:
    path = make(tmp_path, "disk", qemu_format, "1M")
    with pytest.raises(FormatError) as err:
        await formats.check(path, declared)
    assert str(err.value) == message


async def test_kernel_and_ramdisk_formats_are_not_matched(tmp_path: Path) -> None:
    path = tmp_path / "vmlinuz"
    path.write_bytes(os.urandom(4096))
    for declared in ("aki", "ari", "ami"):
        assert await formats.check(path, declared) == 4096


async def test_unknown_format_and_unreadable_data(tmp_path: Path) -> None:
    path = make(tmp_path, "disk", "raw", "1M")
    with pytest.raises(FormatError, match="Unsupported disk_format"):
        await formats.check(path, "floppy")
    broken = tmp_path / "broken"
    broken.write_bytes(b"QFI\xfb" + struct.pack(">I", 99) + bytes(200))  # no such qcow2 version
    with pytest.raises(FormatError, match="could not be inspected") as err:
        await formats.check(broken, "qcow2")
    assert err.value.detail  # qemu's own words, for the log


async def test_convert_round_trip_keeps_the_bytes(tmp_path: Path) -> None:
    data = bytearray(8 * MiB)
    data[0:MiB] = os.urandom(MiB)
    data[5 * MiB : 5 * MiB + 4096] = os.urandom(4096)
    src = tmp_path / "src.raw"
    src.write_bytes(bytes(data))
    await formats.convert(src, tmp_path / "img.qcow2", "raw", "qcow2")
    assert await formats.check(tmp_path / "img.qcow2", "qcow2") == 8 * MiB
    await formats.convert(tmp_path / "img.qcow2", tmp_path / "back.raw", "qcow2", "raw")
    assert (tmp_path / "back.raw").read_bytes() == bytes(data)
    await formats.convert(tmp_path / "img.qcow2", tmp_path / "img.vhd", "qcow2", "vhd")
    assert (await formats.inspect(tmp_path / "img.vhd")).format == "vpc"
    assert_only(tmp_path, "src.raw", "img.qcow2", "back.raw", "img.vhd")


async def test_failed_conversion_leaves_nothing(tmp_path: Path) -> None:
    # A qcow2 whose header is fine but whose first L1 entry points at an
    # unaligned offset: qemu-img info passes, reading the data fails.
    path = make(tmp_path, "bad.qcow2", "qcow2", "4M")
    subprocess.run(
        ["qemu-io", "-c", "write -P 0xab 0 64k", str(path)], check=True, capture_output=True
    )
    with open(path, "r+b") as f:
        l1_offset = struct.unpack_from(">Q", f.read(48), 40)[0]
        f.seek(l1_offset)
        f.write(struct.pack(">Q", (1 << 63) | 0x10200))
    assert await formats.check(path, "qcow2") == 4 * MiB
    with pytest.raises(FormatError, match="Conversion from qcow2 to raw failed") as err:
        await formats.convert(path, tmp_path / "out.raw", "qcow2", "raw")
    assert "unaligned" in err.value.detail
    assert_only(tmp_path, "bad.qcow2")

    # Refused before qemu-img runs: unsafe source, unknown target.
    over = make(tmp_path, "over.qcow2", "qcow2", "1M", "-b", str(path), "-F", "qcow2")
    with pytest.raises(FormatError, match="backing file"):
        await formats.convert(over, tmp_path / "out.raw", "qcow2", "raw")
    with pytest.raises(FormatError, match="Cannot convert"):
        await formats.convert(path, tmp_path / "out", "qcow2", "floppy")
    assert_only(tmp_path, "bad.qcow2", "over.qcow2")


async def test_cancelled_conversion_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled after qemu-img wrote its output but before the rename: the output
    goes, and the program still running (a ``sleep`` standing for a slow
    conversion, so the test does not race a fast one) is killed."""
    marker = tmp_path / "converted"
    nap = "61.4321"

    async def slow(*argv: str, timeout: float) -> tuple[int, str, str]:
        if "convert" not in argv:
            return await run_command(*argv, timeout=timeout)
        script = f'"$0" "$@" && touch {marker} && exec sleep {nap}'
        return await run_command("sh", "-c", script, *argv, timeout=timeout)

    monkeypatch.setattr(formats, "run_command", slow)
    src = make(tmp_path, "src.raw", "raw", "1M")
    task = asyncio.create_task(formats.convert(src, tmp_path / "out.qcow2", "raw", "qcow2"))
    for _ in range(1000):
        if marker.exists():
            break
        await asyncio.sleep(0.01)
    assert any(name.endswith(".part") for name in os.listdir(tmp_path))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_only(tmp_path, "src.raw", "converted")
    assert (
        subprocess.run(["pgrep", "-f", f"sleep {nap}"], capture_output=True, check=False).returncode
        == 1
    )


def test_qemu_img_runs_under_prlimit_when_available() -> None:
    prefix = formats._limited()
    if shutil.which("prlimit"):
        assert prefix[1:] == ("--as=1073741824", "--cpu=30", "--")
    else:
        assert prefix == ()
