"""Boot time of the QEMU test image: raw QEMU against the QEMU driver's spawn.

    .venv/bin/python benchmarks/compute_boot.py [--cache DIR] [--accel auto|kvm|tcg]

Both boot the same bootable disk (``testimage.build``: SeaBIOS, syslinux, the
Debian kernel, a busybox initramfs) with the same accelerator, memory, one
vCPU and user-mode networking, once each, until the serial console shows
``ONESTACK-TEST-IMAGE: ready`` (after DHCP and the metadata lookup):

* raw: ``qemu-system-x86_64 -snapshot`` on the image with the console on stdout,
  from exec to the marker;
* driver: ``QemuDriver.spawn`` (base image copied into its cache, qcow2 overlay,
  vfat config drive, daemonised QEMU, pidfile and QMP socket) until the marker
  appears in its console log (polled every 0.1 s).

The overhead is driver minus raw: what the driver adds to a boot. One run
each on a shared machine: expect a few tenths of a second of noise.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from onestack.compute.drivers import qemu, testimage
from onestack.compute.drivers.base import InstanceSpec

MEMORY_MB = 256


async def raw_boot(image: testimage.TestImage, accel: str, timeout: float) -> float:
    argv = [qemu.QEMU, "-machine", f"pc,accel={accel}",
            "-cpu", "host" if accel == "kvm" else "max", "-m", str(MEMORY_MB),
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
            "-serial", "stdio", "-snapshot",
            "-drive", f"file={image.disk},if=virtio,format=qcow2",
            "-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0"]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(timeout):
            while line := await proc.stdout.readline():
                if testimage.READY.encode() in line:
                    return time.monotonic() - started
        raise RuntimeError("QEMU ended before the ready marker")
    finally:
        proc.kill()
        await proc.wait()


async def driver_boot(image: testimage.TestImage, accel: str, timeout: float) -> float:
    async def fetch(_image: dict[str, Any], dest: Path) -> None:
        shutil.copyfile(image.disk, dest)

    with tempfile.TemporaryDirectory(prefix="onestack-boot-") as tmp:
        driver = qemu.QemuDriver(Path(tmp) / "instances", image_fetcher=fetch, accel=accel,
                                 network="user", cache_dir=image.directory.parent)
        spec = InstanceSpec("b0075eed-0000-4000-8000-000000000001", "instance-00000001",
                            vcpus=1, memory_mb=MEMORY_MB, root_gb=1, image={"id": "bench"})
        started = time.monotonic()
        try:
            await driver.spawn(spec)
            await qemu.wait_for_text(driver.console_path(spec.uuid), testimage.READY, timeout)
            return time.monotonic() - started
        finally:
            await driver.destroy(spec.uuid)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "onestack-testimage")
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    if shutil.which(qemu.QEMU) is None:
        print(f"{qemu.QEMU} is not installed", file=sys.stderr)
        return 1
    started = time.monotonic()
    image = testimage.build(args.cache)
    built = time.monotonic() - started
    started = time.monotonic()
    accel = args.accel if args.accel != "auto" else await qemu.accelerator(args.cache)
    probed = time.monotonic() - started
    print(f"test image: kernel {image.kernel_version}, {built:.2f} s to build or find; "
          f"accelerator {accel} ({probed:.2f} s to decide)")
    raw = await raw_boot(image, accel, args.timeout)
    print(f"raw QEMU to ready:     {raw:6.2f} s")
    drv = await driver_boot(image, accel, args.timeout)
    print(f"driver spawn to ready: {drv:6.2f} s")
    print(f"driver overhead:       {drv - raw:+6.2f} s ({drv / raw - 1:+.0%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
