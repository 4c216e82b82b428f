"""Disk and container formats: what the data really is, and whether it is safe to keep.

A disk image can point outside itself: a qcow2 backing file or external data
file, or a VMDK whose extents are other files. Whoever later opens such an image
(qemu-img convert, a hypervisor) would read those host files into the guest, so
the image service refuses them, and refuses data whose real format differs from
the ``disk_format`` it was declared with (a "raw" image that is really qcow2 is
the classic way to smuggle a backing file past a check).

``qemu-img info`` tells the format, but merely opening a qcow2 with an external
data file, or a VMDK descriptor, makes qemu open the files it names; so the first
bytes are read here first, and such images are reported without running qemu at
all. qemu-img itself runs under ``prlimit`` (1 GiB address space, 30 s of CPU),
as OpenStack does, because a crafted image can make it allocate or spin.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import secrets
import shutil
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from onestack.core.concurrency import run_blocking, run_command

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")

# Glance's disk_format -> the name qemu uses for it.
QEMU_NAMES = {
    "raw": "raw",
    "iso": "raw",
    "qcow2": "qcow2",
    "vhd": "vpc",
    "vhdx": "vhdx",
    "vmdk": "vmdk",
    "vdi": "vdi",
    "ploop": "parallels",
    "ami": "raw",
    "ari": "raw",
    "aki": "raw",
}
# Declared formats whose content is not matched against what qemu detects
# (kernels, ramdisks and Amazon machine images are whatever the guest makes of them).
UNCHECKED_FORMATS = frozenset({"ami", "ari", "aki", "ploop"})
# VMDK variants that keep all their data in the one file (Glance's default allow-list).
VMDK_SUBFORMATS = frozenset({"monolithicSparse", "streamOptimized"})

INFO_TIMEOUT = 60.0
_ADDRESS_SPACE = 1 << 30
_CPU_SECONDS = 30
_QCOW2_MAGIC = b"QFI\xfb"
_QCOW2_DATA_FILE_BIT = 1 << 2
_QCOW2_EXT_DATA_FILE = 0x44415441
_VMDK4_MAGIC = b"KDMV"
_VMDK_EXTENT = re.compile(r'^\s*(?:RW|RDONLY|NOACCESS)\s+(\d+)\s+\w+\s+"([^"]*)"', re.MULTILINE)
_VMDK_CREATE_TYPE = re.compile(r'^\s*createType\s*=\s*"([^"]*)"', re.MULTILINE)
_VMDK_PARENT = re.compile(r'^\s*parentFileNameHint\s*=\s*"([^"]*)"', re.MULTILINE)


@dataclass(frozen=True)
class ImageInfo:
    """What an image file is, as far as qemu (or the header sniffing before it) can tell.

    ``format`` is qemu's name (``vpc`` for VHD); ``subformat`` is a VMDK's create-type.
    """

    format: str
    virtual_size: int | None
    backing_file: str | None
    data_file: str | None
    encrypted: bool
    subformat: str | None = None


class FormatError(Exception):
    """The data is refused; ``str()`` is fit for the client, ``detail`` (qemu's words) for the log."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class FormatToolError(RuntimeError):
    """qemu-img is missing: a fault of this host, not of the data."""


def glance_name(qemu_format: str) -> str:
    """The disk_format name for one of qemu's format names (``vpc`` -> ``vhd``)."""
    return {"vpc": "vhd", "parallels": "ploop"}.get(qemu_format, qemu_format)


async def inspect(path: Path) -> ImageInfo:
    """Probe ``path``: header sniffing for the formats that would make qemu open other
    files, then ``qemu-img info`` (format probed, not given) for everything else."""
    path = Path(os.path.abspath(path))
    sniffed = await run_blocking(_sniff, path)
    if sniffed is not None:
        return sniffed
    try:
        rc, out, err = await run_command(
            *_limited(), _qemu_img(), "info", "--output=json", str(path), timeout=INFO_TIMEOUT
        )
    except TimeoutError:
        raise FormatError("Image data could not be inspected in time") from None
    if rc != 0:
        raise FormatError("Image data could not be inspected", detail=err.strip())
    try:
        return _from_qemu(json.loads(out), path)
    except (ValueError, TypeError, AttributeError) as exc:
        raise FormatError(
            "Image data could not be inspected", detail=f"{exc}: {out[:500]}"
        ) from None


async def check(path: Path, disk_format: str, *, match: bool = True) -> int | None:
    """Refuse data that is unsafe or (with ``match``) not what ``disk_format``
    says; return its virtual size.

    The virtual size (bytes) is None when qemu does not report one.
    """
    if disk_format not in DISK_FORMATS:
        raise FormatError(f"Unsupported disk_format: {disk_format}")
    info = await inspect(path)
    if info.backing_file is not None:
        raise FormatError("Image data refers to a backing file, which is not allowed")
    if info.data_file is not None:
        raise FormatError("Image data refers to an external data file, which is not allowed")
    if info.format == "vmdk" and info.subformat not in VMDK_SUBFORMATS:
        raise FormatError(f"VMDK subformat {info.subformat or 'unknown'} is not allowed")
    if match and disk_format not in UNCHECKED_FORMATS and info.format != QEMU_NAMES[disk_format]:
        raise FormatError(
            f"Image format mismatch: data is {glance_name(info.format)}, disk_format is {disk_format}"
        )
    return info.virtual_size


async def convert(
    src: Path, dst: Path, src_format: str, dst_format: str, *, timeout: float = 3600.0
) -> None:
    """Convert ``src`` (checked first, see ``check``) into ``dst``, atomically.

    qemu-img writes a hidden temporary file beside ``dst`` that is renamed into
    place only when complete; on any failure or cancellation it is removed.
    """
    for fmt in (src_format, dst_format):
        if fmt not in QEMU_NAMES:
            raise FormatError(f"Cannot convert images of disk_format {fmt}")
    await check(src, src_format)
    dst = Path(os.path.abspath(dst))
    output = _Output(dst.with_name(f".{dst.name}.{secrets.token_hex(6)}.part"), dst)
    argv = [
        _qemu_img(), "convert", "-f", QEMU_NAMES[src_format], "-O", QEMU_NAMES[dst_format],
        os.path.abspath(src), str(output.temp),
    ]  # fmt: skip
    try:
        try:
            rc, _, err = await run_command(*argv, timeout=timeout)
        except TimeoutError:
            raise FormatError(f"Conversion from {src_format} to {dst_format} timed out") from None
        if rc != 0:
            raise FormatError(f"Conversion from {src_format} to {dst_format} failed", err.strip())
        await run_blocking(output.commit)
    except BaseException:
        # shield: a second cancellation must not stop the clean-up half-way
        await asyncio.shield(run_blocking(output.abort))
        raise


# --- qemu-img -----------------------------------------------------------------


def _qemu_img() -> str:
    found = shutil.which("qemu-img")
    if found is None:
        raise FormatToolError("qemu-img is not installed (Debian package qemu-utils)")
    return found


@functools.cache
def _limited() -> tuple[str, ...]:
    """The ``prlimit`` prefix capping qemu-img's memory and CPU, when the host has prlimit."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return ()
    return (prlimit, f"--as={_ADDRESS_SPACE}", f"--cpu={_CPU_SECONDS}", "--")


def _from_qemu(doc: dict[str, Any], path: Path) -> ImageInfo:
    fmt = str(doc["format"])
    specific = (doc.get("format-specific") or {}).get("data") or {}
    data_file = specific.get("data-file") if fmt == "qcow2" else None
    subformat = None
    if fmt == "vmdk":
        subformat = specific.get("create-type")
        for extent in specific.get("extents") or []:
            if extent.get("filename") != str(path):
                data_file = str(extent.get("filename"))
                break
    size = doc.get("virtual-size")
    backing = doc.get("backing-filename") or doc.get("full-backing-filename")
    return ImageInfo(
        format=fmt,
        virtual_size=int(size) if size is not None else None,
        backing_file=str(backing) if backing else None,
        data_file=str(data_file) if data_file is not None else None,
        encrypted=bool(doc.get("encrypted", False)),
        subformat=str(subformat) if subformat is not None else None,
    )


class _Output:
    """qemu-img's output file: renamed into place, or removed (even after the
    rename, when the conversion was cancelled while the rename ran in a thread)."""

    def __init__(self, temp: Path, dst: Path) -> None:
        self.temp, self.dst = temp, dst
        self._lock = threading.Lock()
        self._committed = self._aborted = False

    def commit(self) -> None:
        with self._lock:
            if self._aborted:
                return
            _fsync(self.temp)
            os.replace(self.temp, self.dst)
            self._committed = True
            _fsync(self.dst.parent)

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            for path in (self.temp, self.dst) if self._committed else (self.temp,):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- header sniffing (before qemu opens anything) -------------------------------


def _sniff(path: Path) -> ImageInfo | None:
    """ImageInfo for images that name other files qemu would open, else None."""
    with open(path, "rb") as f:
        head = f.read(4096)
        if head.startswith(_QCOW2_MAGIC):
            return _sniff_qcow2(f, head)
        if head.startswith(_VMDK4_MAGIC):
            return _sniff_vmdk4(f, head)
        if _is_vmdk_descriptor(head):
            f.seek(0)
            return _vmdk_descriptor_info(f.read(64 * 1024))
    return None


def _sniff_qcow2(f: BinaryIO, head: bytes) -> ImageInfo | None:
    if len(head) < 72:
        return None  # too short to be qcow2; qemu will say what it is
    version, backing_off, backing_len, cluster_bits, size, crypt = struct.unpack_from(
        ">IQIIQI", head, 4
    )
    if version < 3 or len(head) < 104:
        return None  # qcow2 v2 has no external data file
    incompatible = struct.unpack_from(">Q", head, 72)[0]
    header_len = struct.unpack_from(">I", head, 100)[0]
    if header_len < 104:
        return None  # not a valid v3 header: qemu refuses it
    f.seek(0)
    cluster = f.read(1 << min(max(cluster_bits, 9), 21))
    name = _qcow2_data_file_name(cluster, header_len)
    if not incompatible & _QCOW2_DATA_FILE_BIT and name is None:
        return None
    backing = None
    if backing_off and 0 < backing_len <= 1023:
        f.seek(backing_off)
        backing = f.read(backing_len).decode(errors="replace")
    return ImageInfo("qcow2", size, backing, name or "(unnamed)", bool(crypt))


def _qcow2_data_file_name(cluster: bytes, offset: int) -> str | None:
    """The external data file header extension's value, if the image has one."""
    while offset + 8 <= len(cluster):
        kind, length = struct.unpack_from(">II", cluster, offset)
        if kind == 0:
            return None
        if kind == _QCOW2_EXT_DATA_FILE:
            return cluster[offset + 8 : offset + 8 + length].decode(errors="replace")
        offset += 8 + (length + 7) // 8 * 8
    return None


def _sniff_vmdk4(f: BinaryIO, head: bytes) -> ImageInfo | None:
    """A sparse VMDK with no capacity of its own is opened through its embedded
    descriptor, whose extents can be any file: report those."""
    if len(head) < 44:
        return None
    capacity, _granularity, desc_sector, desc_sectors = struct.unpack_from("<QQQQ", head, 12)
    if capacity != 0 or desc_sector == 0:
        return None
    f.seek(desc_sector * 512)
    return _vmdk_descriptor_info(f.read(min(desc_sectors * 512, 64 * 1024)))


def _is_vmdk_descriptor(head: bytes) -> bool:
    """Whether qemu could take this for a VMDK text descriptor: after comments and
    blank lines comes ``version=``. (Looser than qemu's own probe, on purpose.)"""
    for line in head.split(b"\n"):
        stripped = line.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        return stripped.startswith(b"version=")
    return False


def _vmdk_descriptor_info(raw: bytes) -> ImageInfo:
    text = raw.split(b"\0", 1)[0].decode(errors="replace")
    extents = _VMDK_EXTENT.findall(text)
    create_type = _VMDK_CREATE_TYPE.search(text)
    parent = _VMDK_PARENT.search(text)
    return ImageInfo(
        format="vmdk",
        virtual_size=sum(int(sectors) for sectors, _ in extents) * 512,
        backing_file=parent.group(1) if parent else None,
        data_file=extents[0][1] if extents else "(descriptor without extents)",
        encrypted=False,
        subformat=create_type.group(1) if create_type else None,
    )
