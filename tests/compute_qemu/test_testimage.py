"""The test image builder and the accelerator probe (no guest runs long)."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

from onestack.compute.drivers import qemu, testimage


def test_build_is_cached_and_complete(image: testimage.TestImage) -> None:
    assert image.kernel.exists() and image.initrd.exists() and image.disk.exists()
    assert image.disk.read_bytes()[:4] == b"QFI\xfb"  # qcow2
    started = time.monotonic()
    again = testimage.build(image.directory.parent)
    assert again == image and time.monotonic() - started < 1.0
    assert image.kernel_version in image.directory.name

    cpio = gzip.decompress(image.initrd.read_bytes())
    for name in (b"init", b"bin/busybox", b"etc/udhcpc.script", b"dev/console",
                 b"lib/modules/virtio_net.ko", b"lib/modules/virtio_blk.ko",
                 b"lib/modules/isofs.ko", b"lib/modules/vfat.ko"):
        assert name + b"\0" in cpio, name
    modules = testimage.module_closure(image.kernel_version)
    names = [p.name.split(".ko")[0] for p in modules]
    # dependencies come first: virtio before virtio_net, fat before vfat
    assert names.index("virtio") < names.index("virtio_net")
    assert names.index("fat") < names.index("vfat")


def test_a_missing_kernel_is_a_build_error(tmp_path: Path) -> None:
    try:
        testimage.build(tmp_path, kernel_version="0.0.0-none")
    except testimage.BuildError as exc:
        assert "0.0.0-none" in str(exc)
    else:
        raise AssertionError("built an image without a kernel")
    assert list(tmp_path.iterdir()) == []


async def test_accelerator_is_probed_once(image: testimage.TestImage) -> None:
    qemu._accel_cache.clear()
    accel = await qemu.accelerator(image.directory.parent)
    assert accel in ("kvm", "tcg")
    started = time.monotonic()
    assert await qemu.accelerator(image.directory.parent) == accel
    assert time.monotonic() - started < 0.1
