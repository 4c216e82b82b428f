"""Boot time of the QEMU test image: raw QEMU, the QEMU driver's spawn and a
server created through the compute API of a real ``onestack up``.

    .venv/bin/python benchmarks/compute_boot.py [--cache DIR] [--accel auto|kvm|tcg]
                                                [--rounds N] [--no-api]

All boot the same bootable disk (``testimage.build``: SeaBIOS, syslinux, the
Debian kernel, a busybox initramfs) with the same accelerator, memory, one
vCPU and user-mode networking until the serial console shows
``ONESTACK-TEST-IMAGE: ready`` (after DHCP and the metadata lookup):

* raw: ``qemu-system-x86_64 -snapshot`` on the image with the console on stdout,
  from exec to the marker;
* driver: ``QemuDriver.spawn`` (base image copied into its cache, qcow2 overlay,
  ISO 9660 config drive, daemonised QEMU, pidfile and QMP socket) until the
  marker appears in its console log (``qemu.wait_for_text``: polled every 0.05 s);
* API: ``onestack up`` in a temporary data dir (``compute_driver = "qemu"``, the
  fake networking data plane, so user-mode networking and no root needed), the
  disk uploaded to the image service, then ``POST /servers`` (openstacksdk, a
  256 MiB flavor, ``networks: none``) timed to ``status: ACTIVE`` (``GET
  /servers/{id}`` polled every 0.1 s) and to the marker in
  ``os-getConsoleOutput`` (polled every 0.1 s); twice: the first boot fetches
  the image from the image service into the driver's cache, the second finds
  it there.

One round is raw, driver, then the two API boots (a new upload each round, so
that every round's first boot fetches); ``--rounds N`` repeats it with the same
cloud and prints each round and the medians. An overhead is a boot's time minus
the same round's raw boot (with several rounds, the median of those): what the
driver or the API adds to a boot. Under TCG on a shared machine a guest's own
boot varies by a second or more from one boot to the next, more than the
overheads: one round says little, prefer ``--rounds 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
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
        driver = qemu.QemuDriver(Path(tmp) / "instances", image_fetcher=fetch,
                                 accel=accel,  # type: ignore[arg-type]  # kvm or tcg
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


def start_cloud(data_dir: Path, accel: str) -> subprocess.Popen[bytes]:
    """``onestack up`` with the qemu driver on a free port; returns once healthy."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ONESTACK_LOG_LEVEL": "warning",
           "ONESTACK_NETWORK__DATAPLANE": "fake",
           "ONESTACK_COMPUTE__COMPUTE_DRIVER": "qemu",
           "ONESTACK_COMPUTE__QEMU_ACCEL": accel,
           "ONESTACK_COMPUTE__QEMU_NETWORK": "user"}
    log = (data_dir.parent / "onestack.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("onestack")), "up", "--data-dir", str(data_dir),
         "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("onestack up exited: "
                               + (data_dir.parent / "onestack.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("onestack up did not become healthy")


class Cloud:
    """A real ``onestack up`` (``start_cloud``) and an openstacksdk connection to it."""

    def __init__(self, tmp: Path, accel: str) -> None:
        import openstack  # the client is only needed here

        self.data_dir = tmp / "data"
        self.proc = start_cloud(self.data_dir, accel)
        config = openstack.config.OpenStackConfig(
            config_files=[str(self.data_dir / "clouds.yaml")])
        self.conn = openstack.connection.Connection(config=config.get_one("onestack-admin"))
        self.flavor = self.conn.compute.create_flavor(name="bench", ram=MEMORY_MB, vcpus=1,
                                                      disk=1)

    def upload(self, image: testimage.TestImage) -> Any:
        """A new image in the image service (so the next boot of it fetches it)."""
        img = self.conn.image.create_image(
            name="onestack-test", filename=str(image.disk), disk_format="qcow2",
            container_format="bare", allow_duplicates=True)
        self.conn.image.wait_for_status(img, "active", wait=60)
        return img

    def boot(self, image_id: str, name: str, timeout: float) -> tuple[float, float]:
        """(seconds to ACTIVE, seconds to the ready marker) from ``POST /servers``;
        the server is deleted afterwards."""
        conn = self.conn
        started = time.monotonic()
        srv = conn.compute.create_server(name=name, image_id=image_id,
                                         flavor_id=self.flavor.id, networks="none")
        deadline = started + timeout
        while (got := conn.compute.get_server(srv.id)).status != "ACTIVE":
            if got.status == "ERROR" or time.monotonic() > deadline:
                raise RuntimeError(f"server {srv.id} is {got.status}")
            time.sleep(0.1)
        active = time.monotonic() - started
        while testimage.READY not in (
                conn.compute.get_server_console_output(srv.id).get("output") or ""):
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {srv.id}: no ready marker")
            time.sleep(0.1)
        ready = time.monotonic() - started
        conn.compute.delete_server(srv.id)
        conn.compute.wait_for_delete(srv, wait=60)
        return active, ready

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for pidfile in (self.data_dir / "compute" / "instances").glob("*/qemu.pid"):
            try:  # never leave a guest behind
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass


def api_boots(cloud: Cloud, image: testimage.TestImage, accel: str,
              timeout: float) -> list[tuple[float, float]]:
    """Two servers one after the other from a newly uploaded image: the first
    fetches it from the image service, the second finds it in the driver's cache."""
    img = cloud.upload(image)
    return [cloud.boot(img.id, f"bench-{i}", timeout) for i in range(2)]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "onestack-testimage")
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat raw, driver and API boots this many times, "
                             "interleaved; medians are printed")
    parser.add_argument("--no-api", action="store_true",
                        help="skip the boots through the compute API")
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
    rounds = max(1, args.rounds)
    raws: list[float] = []
    drvs: list[float] = []
    apis: list[list[tuple[float, float]]] = []
    with contextlib.ExitStack() as stack:
        cloud = None
        if not args.no_api:
            tmp = Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="onestack-boot-api-")))
            cloud = await asyncio.to_thread(Cloud, tmp, accel)
            stack.callback(cloud.close)
        for n in range(rounds):
            raws.append(await raw_boot(image, accel, args.timeout))
            drvs.append(await driver_boot(image, accel, args.timeout))
            line = f"round {n + 1}: raw {raws[-1]:.2f} s, driver {drvs[-1]:.2f} s"
            if cloud is not None:
                apis.append(await asyncio.to_thread(api_boots, cloud, image, accel,
                                                    args.timeout))
                line += ", API ready " + ", ".join(f"{r:.2f} s" for _, r in apis[-1])
            if rounds > 1:
                print(line, flush=True)
    med = statistics.median
    raw, drv = med(raws), med(drvs)
    if rounds > 1:  # overheads: the median of each round's difference to its raw boot
        print(f"medians of {rounds} rounds:")
    print(f"raw QEMU to ready:     {raw:6.2f} s")
    print(f"driver spawn to ready: {drv:6.2f} s")
    over = med(d - r for d, r in zip(drvs, raws, strict=True))
    print(f"driver overhead:       {over:+6.2f} s ({over / raw:+.0%})")
    for i in range(2 if apis else 0):
        active, ready = med(a[i][0] for a in apis), med(a[i][1] for a in apis)
        over = med(a[i][1] - r for a, r in zip(apis, raws, strict=True))
        label = "first, image fetched" if i == 0 else "image in the driver's cache"
        print(f"API POST /servers ({label}): ACTIVE {active:6.2f} s, "
              f"ready {ready:6.2f} s ({over:+.2f} s against raw)")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
