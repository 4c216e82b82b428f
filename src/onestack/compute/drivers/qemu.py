"""The QEMU driver: one ``qemu-system-x86_64`` process per running guest, no libvirt.

Everything about a guest is in its directory ``<instances_dir>/<uuid>/``::

    disk            qcow2 overlay on the cached base image (``_base/<sha of image id>``)
    disk.config     config drive (vfat labelled ``config-2``, Nova's format), if enabled
    qemu.json       the QEMU command line, so power-on and adoption need no spec
    qemu.pid        QEMU's pidfile
    qmp.sock        its QMP socket (``qemu.qmp`` speaks to it; elsewhere if the
                    path is too long for a unix socket: ``qmp_path``)
    console.log     the serial console (``ttyS0``), appended across power cycles

QEMU runs daemonised (``-daemonize``), so guests outlive OneStack; a driver that
starts again (or a new driver object) finds each guest from its pidfile and QMP
socket and keeps using it: the driver keeps no state of its own, so adoption is
what every call does. A guest that powers itself off ends its QEMU process;
``get_info`` then says SHUTDOWN while the directory remains.

NICs: with ``network="tap"`` one ``tap<port id[:11]>`` per port (the network
agent plugs it into its bridge) with the port's MAC; with ``network="user"``
QEMU's user-mode networking (slirp: DHCP, no inbound), one NIC per port or one
if the guest has no ports.

The accelerator is KVM when a guest really boots with it (``accelerator()``:
some hosts have /dev/kvm whose KVM asserts or hangs), else TCG.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from onestack.compute.drivers import testimage
from onestack.compute.drivers.base import (
    CRASHED,
    NOSTATE,
    PAUSED,
    RUNNING,
    SHUTDOWN,
    SUSPENDED,
    Driver,
    DriverError,
    GuestInfo,
    GuestNotFound,
    InstanceSpec,
    Inventory,
)
from onestack.core.concurrency import run_blocking, run_command

log = logging.getLogger("onestack.compute.qemu")

QEMU = "qemu-system-x86_64"
ImageFetcher = Callable[[dict[str, Any], Path], Awaitable[None]]
"""Writes the image described by the dict (from the image API) to the path."""

# QMP query-status -> Nova power state
_STATUS = {
    "running": RUNNING, "paused": PAUSED, "suspended": SUSPENDED, "shutdown": SHUTDOWN,
    "guest-panicked": CRASHED, "internal-error": CRASHED, "io-error": PAUSED,
    "watchdog": PAUSED, "debug": PAUSED, "prelaunch": NOSTATE, "inmigrate": NOSTATE,
    "postmigrate": PAUSED, "finish-migrate": PAUSED, "restore-vm": NOSTATE,
    "save-vm": PAUSED, "colo": RUNNING,
}

def http_image_fetcher(http: Any, headers: Callable[[], Awaitable[dict[str, str]]],
                       prefix: str = "/image/v2") -> ImageFetcher:
    """An ``ImageFetcher`` that downloads ``GET <prefix>/images/<id>/file`` with an
    ``httpx.AsyncClient`` (the compute service's ``runtime.http``) and the headers
    ``headers()`` gives (the compute service user's token), writing in a thread.
    Raises (from the fetcher): DriverError."""

    async def fetch(image: dict[str, Any], dest: Path) -> None:
        url = f"{prefix}/images/{image['id']}/file"
        with dest.open("wb") as f:
            async with http.stream("GET", url, headers=await headers()) as r:
                if r.status_code != 200:
                    raise DriverError(f"downloading image {image['id']}: HTTP {r.status_code}")
                async for chunk in r.aiter_bytes(1 << 20):
                    await run_blocking(f.write, chunk)
            await run_blocking(os.fsync, f.fileno())

    return fetch


# -- the accelerator -------------------------------------------------------------

_accel_cache: dict[str, str] = {}


async def accelerator(cache_dir: Path, qemu: str = QEMU, timeout: float = 15.0) -> str:
    """``"kvm"`` if QEMU boots the test image's kernel with KVM to its first marker
    within ``timeout``, else ``"tcg"``. Asked once per process (and QEMU binary).

    ``cache_dir`` is where the test image is built (see ``testimage.build``)."""
    if qemu in _accel_cache:
        return _accel_cache[qemu]
    accel = "tcg"
    if os.access("/dev/kvm", os.R_OK | os.W_OK) and shutil.which(qemu):
        try:
            image = await run_blocking(testimage.build, cache_dir)
            code, out, err = await run_command(
                qemu, "-accel", "kvm", "-cpu", "host", "-m", "128", "-nodefaults",
                "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
                "-kernel", str(image.kernel), "-initrd", str(image.initrd),
                "-append", testimage.KERNEL_ARGS + " onestack.poweroff", timeout=timeout)
            if testimage.BOOTED in out:
                accel = "kvm"
            else:
                log.info("KVM unusable (exit %s): %s", code, err.strip()[-300:])
        except TimeoutError:
            log.info("KVM unusable: no boot within %.0f s", timeout)
        except (testimage.BuildError, OSError) as exc:
            log.info("KVM not probed: %s", exc)
    _accel_cache[qemu] = accel
    return accel


# -- helpers ---------------------------------------------------------------------

def _pid_alive(pid: int, uuid: str) -> bool:
    """The process exists, is not a zombie and is this guest's QEMU (pids are reused)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X") and uuid.encode() in cmdline


def tap_name(port_id: str) -> str:
    """The tap device for a port, as Nova names it (``tap`` + 11 characters)."""
    return ("tap" + port_id)[:14]


async def wait_for_text(path: Path, text: str, timeout: float, offset: int = 0) -> str:
    """Poll the file until ``text`` appears after byte ``offset``; return what was
    read. Raises: TimeoutError."""
    deadline = time.monotonic() + timeout

    def read() -> str:
        try:
            with path.open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    while True:
        data = await run_blocking(read)
        if text in data:
            return data
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not in {path} after {timeout} s")
        await asyncio.sleep(0.1)


class QemuDriver(Driver):
    name = "qemu"

    def __init__(self, instances_dir: Path | str, *, image_fetcher: ImageFetcher | None = None,
                 accel: Literal["auto", "kvm", "tcg"] = "auto",
                 network: Literal["tap", "user"] = "tap", config_drive: bool = True,
                 shutdown_timeout: float = 60.0, qemu: str = QEMU,
                 cache_dir: Path | str | None = None) -> None:
        self.dir = Path(instances_dir)
        self.base_dir = self.dir / "_base"
        self.cache_dir = Path(cache_dir) if cache_dir else self.dir / "_testimage"
        self.image_fetcher = image_fetcher
        self.accel_setting = accel
        self.network = network
        self.config_drive = config_drive
        self.shutdown_timeout = shutdown_timeout
        self.qemu = qemu
        self._locks: dict[str, asyncio.Lock] = {}

    # -- paths and state -----------------------------------------------------------

    def guest_dir(self, uuid: str) -> Path:
        if not uuid or "/" in uuid or uuid.startswith((".", "_")):
            raise GuestNotFound(f"no guest {uuid!r}")
        return self.dir / uuid

    def console_path(self, uuid: str) -> Path:
        return self.guest_dir(uuid) / "console.log"

    def qmp_path(self, uuid: str) -> Path:
        """The QMP socket: in the guest's directory, unless that path is too long
        for a unix socket (108 bytes); then a name derived from it in a private
        directory under the system's temporary directory."""
        path = self.guest_dir(uuid) / "qmp.sock"
        if len(os.fsencode(path)) < 100:
            return path
        short = Path(tempfile.gettempdir()) / f"onestack-qmp-{os.getuid()}"
        short.mkdir(mode=0o700, exist_ok=True)
        return short / (hashlib.sha1(os.fsencode(path)).hexdigest()[:24] + ".sock")

    def _lock(self, uuid: str) -> asyncio.Lock:
        return self._locks.setdefault(uuid, asyncio.Lock())

    def pid(self, uuid: str) -> int | None:
        """The guest's QEMU process if it runs."""
        try:
            pid = int((self.guest_dir(uuid) / "qemu.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid, uuid) else None

    def _exists(self, uuid: str) -> bool:
        return (self.guest_dir(uuid) / "qemu.json").exists()

    async def _qmp(self, uuid: str, command: str, args: dict[str, Any] | None = None,
                   timeout: float = 10.0) -> Any:
        """One QMP command on a fresh connection (QEMU takes one client at a time;
        callers hold the guest's lock). Raises: DriverError."""
        from qemu.qmp import QMPClient  # the dependency is only needed with this driver

        client = QMPClient(uuid)
        try:
            async with asyncio.timeout(timeout):
                await client.connect(str(self.qmp_path(uuid)))
                return await client.execute(command, args)
        except Exception as exc:  # QMP errors, refused/vanished socket, timeout
            raise DriverError(f"QMP {command} failed for {uuid}: {exc}") from exc
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()

    async def _wait_exit(self, uuid: str, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while _pid_alive(pid, uuid):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _kill(self, uuid: str) -> None:
        """End the guest's QEMU now: QMP quit, else SIGKILL."""
        pid = self.pid(uuid)
        if pid is None:
            return
        with contextlib.suppress(DriverError):
            await self._qmp(uuid, "quit", timeout=3.0)
        if not await self._wait_exit(uuid, pid, 3.0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not await self._wait_exit(uuid, pid, 5.0):
                raise DriverError(f"QEMU {pid} of {uuid} does not die")

    # -- the contract ----------------------------------------------------------------

    async def start(self) -> None:
        await run_blocking(self.dir.mkdir, parents=True, exist_ok=True)
        running = [p.name for p in self.dir.iterdir()
                   if p.is_dir() and not p.name.startswith(("_", ".")) and self.pid(p.name)]
        if running:
            log.info("adopted %d running QEMU guests", len(running))

    async def inventory(self) -> Inventory:
        def read() -> Inventory:
            mem_kb = 0
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
            self.dir.mkdir(parents=True, exist_ok=True)
            disk = shutil.disk_usage(self.dir).total
            return Inventory(os.cpu_count() or 1, mem_kb // 1024, disk >> 30, "QEMU")
        return await run_blocking(read)

    async def accelerator(self) -> str:
        if self.accel_setting != "auto":
            return self.accel_setting
        return await accelerator(self.cache_dir, self.qemu)

    async def spawn(self, spec: InstanceSpec) -> None:
        async with self._lock(spec.uuid):
            if self.pid(spec.uuid) is not None:
                return
            gdir = self.guest_dir(spec.uuid)
            if not self._exists(spec.uuid):
                try:
                    await self._prepare(spec)
                except BaseException:  # a half-made guest is no guest: a retry starts over
                    await run_blocking(shutil.rmtree, gdir, ignore_errors=True)
                    raise
            await self._launch(spec.uuid)

    async def _prepare(self, spec: InstanceSpec) -> None:
        """The guest's directory: disk, config drive and, last, its command line."""
        gdir = self.guest_dir(spec.uuid)
        await run_blocking(gdir.mkdir, parents=True, exist_ok=True)
        base, fmt = await self._base_image(spec.image)
        await self._make_overlay(gdir, base, fmt, spec.root_gb)
        if self.config_drive:
            await run_blocking(make_config_drive, gdir / "disk.config", spec)
        argv = await self._argv(spec)
        tmp = gdir / "qemu.json.tmp"
        await run_blocking(tmp.write_text, json.dumps(argv))
        await run_blocking(os.rename, tmp, gdir / "qemu.json")

    async def _launch(self, uuid: str, argv_file: str = "qemu.json") -> None:
        """Start QEMU from the saved command line and wait for its QMP socket."""
        gdir = self.guest_dir(uuid)
        argv = json.loads((gdir / argv_file).read_text())
        with contextlib.suppress(FileNotFoundError):
            self.qmp_path(uuid).unlink()
        code, _out, err = await run_command(*argv, timeout=60.0)
        if code != 0:
            raise DriverError(f"QEMU failed to start {uuid}: {err.strip()[-500:]}")
        if self.pid(uuid) is None:
            raise DriverError(f"QEMU for {uuid} exited right after starting")

    async def _base_image(self, image: dict[str, Any]) -> tuple[Path, str]:
        """The image in the base cache, fetched once; (path, qemu format)."""
        image_id = str(image.get("id") or "")
        if not image_id:
            raise DriverError("the instance has no image")
        base = self.base_dir / hashlib.sha1(image_id.encode()).hexdigest()
        async with self._lock("_base/" + image_id):
            if not base.exists():
                if self.image_fetcher is None:
                    raise DriverError(f"image {image_id} is not cached and no image "
                                      "fetcher is configured")
                await run_blocking(self.base_dir.mkdir, parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=self.base_dir)
                os.close(fd)
                try:
                    await self.image_fetcher(image, Path(tmp))
                    await self._image_format(image_id, Path(tmp))  # only good images are kept
                    await run_blocking(os.rename, tmp, base)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
        return base, await self._image_format(image_id, base)

    async def _image_format(self, image_id: str, path: Path) -> str:
        """qcow2 or raw, as ``qemu-img info`` sees it. Raises: DriverError."""
        code, out, err = await run_command("qemu-img", "info", "--output=json", str(path))
        if code != 0:
            raise DriverError(f"image {image_id} is not a disk image: {err.strip()[-300:]}")
        info = json.loads(out)
        if info["format"] not in ("qcow2", "raw") or info.get("backing-filename"):
            raise DriverError(f"image {image_id} has unsupported format {info['format']}")
        return str(info["format"])

    async def _make_overlay(self, gdir: Path, base: Path, fmt: str, root_gb: int,
                            name: str = "disk") -> None:
        tmp = gdir / f"{name}.tmp"
        argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt, "-b", str(base), str(tmp)]
        if root_gb > 0:
            _, out, _ = await run_command("qemu-img", "info", "--output=json", str(base))
            if json.loads(out)["virtual-size"] < root_gb << 30:
                argv.append(f"{root_gb}G")
        code, _, err = await run_command(*argv)
        if code != 0:
            raise DriverError(f"qemu-img create failed: {err.strip()[-300:]}")
        await run_blocking(os.rename, tmp, gdir / name)

    async def _argv(self, spec: InstanceSpec) -> list[str]:
        gdir = self.guest_dir(spec.uuid)
        accel = await self.accelerator()
        argv = [
            shutil.which(self.qemu) or self.qemu,
            "-name", f"guest={spec.name},process=qemu:{spec.name}", "-uuid", spec.uuid,
            "-machine", f"pc,accel={accel}", "-cpu", "host" if accel == "kvm" else "max",
            "-smp", str(max(1, spec.vcpus)), "-m", str(max(64, spec.memory_mb)),
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
            "-daemonize", "-pidfile", str(gdir / "qemu.pid"),
            "-qmp", f"unix:{self.qmp_path(spec.uuid)},server=on,wait=off",
            "-chardev", f"file,id=serial0,path={gdir / 'console.log'},append=on",
            "-serial", "chardev:serial0",
            "-drive", f"file={gdir / 'disk'},if=virtio,format=qcow2,cache=writeback",
        ]
        if self.config_drive:
            argv += ["-drive", f"file={gdir / 'disk.config'},if=virtio,format=raw,readonly=on"]
        ports = list(spec.ports)
        if self.network == "user" and not ports:
            ports = [{}]
        for i, port in enumerate(ports):
            if self.network == "tap":
                # network_info rows name it port_id (servers.py); base.py's comment says id
                port_id = port.get("port_id") or port.get("id")
                if not port_id:
                    raise DriverError(f"port {port} has no id")
                netdev = f"tap,id=net{i},ifname={tap_name(port_id)},script=no,downscript=no"
            else:
                netdev = f"user,id=net{i}"
            device = f"virtio-net-pci,netdev=net{i}"
            if port.get("mac_address"):
                device += f",mac={port['mac_address']}"
            argv += ["-netdev", netdev, "-device", device]
        return argv

    async def destroy(self, uuid: str) -> None:
        gdir = self.guest_dir(uuid)
        async with self._lock(uuid):
            await self._kill(uuid)
            with contextlib.suppress(FileNotFoundError):
                self.qmp_path(uuid).unlink()
            await run_blocking(shutil.rmtree, gdir, ignore_errors=True)
        self._locks.pop(uuid, None)

    def _require(self, uuid: str) -> None:
        if not self._exists(uuid):
            raise GuestNotFound(f"no QEMU guest {uuid}")

    async def _power_off(self, uuid: str, timeout: float) -> None:
        """ACPI power button, then quit if the guest ignores it for ``timeout`` s."""
        pid = self.pid(uuid)
        if pid is None:
            return
        with contextlib.suppress(DriverError):
            await self._qmp(uuid, "system_powerdown")
            if await self._wait_exit(uuid, pid, timeout):
                return
        await self._kill(uuid)

    async def power_off(self, uuid: str) -> None:
        async with self._lock(uuid):
            self._require(uuid)
            await self._power_off(uuid, self.shutdown_timeout)

    async def power_on(self, uuid: str) -> None:
        async with self._lock(uuid):
            self._require(uuid)
            with contextlib.suppress(FileNotFoundError):
                (self.guest_dir(uuid) / SUSPEND_MARK).unlink()
            pid = self.pid(uuid)
            if pid is None:
                await self._launch(uuid)
            elif (await self._qmp(uuid, "query-status"))["status"] == "paused":
                await self._qmp(uuid, "cont")

    async def reboot(self, uuid: str, hard: bool) -> None:
        """Hard: reset the running guest. Soft: power it off by ACPI (reset it if
        it ignores that) and start it again."""
        async with self._lock(uuid):
            self._require(uuid)
            if self.pid(uuid) is None:
                await self._launch(uuid)
                return
            if hard:
                await self._qmp(uuid, "system_reset")
                if (await self._qmp(uuid, "query-status"))["status"] == "paused":
                    await self._qmp(uuid, "cont")
                return
            pid = self.pid(uuid)
            with contextlib.suppress(DriverError):
                await self._qmp(uuid, "system_powerdown")
            if pid is not None and await self._wait_exit(uuid, pid, self.shutdown_timeout):
                await self._launch(uuid)
            else:
                await self._qmp(uuid, "system_reset")

    async def pause(self, uuid: str) -> None:
        async with self._lock(uuid):
            self._require_running(uuid)
            await self._qmp(uuid, "stop")

    async def unpause(self, uuid: str) -> None:
        async with self._lock(uuid):
            self._require_running(uuid)
            await self._qmp(uuid, "cont")

    def _require_running(self, uuid: str) -> None:
        self._require(uuid)
        if self.pid(uuid) is None:
            raise DriverError(f"guest {uuid} is not running")

    async def get_info(self, uuid: str) -> GuestInfo:
        async with self._lock(uuid):
            self._require(uuid)
            if self.pid(uuid) is None:
                return GuestInfo(SHUTDOWN)
            try:
                status = (await self._qmp(uuid, "query-status"))["status"]
            except DriverError:
                if self.pid(uuid) is None:  # it ended while we asked
                    return GuestInfo(SHUTDOWN)
                raise
            if status == "paused" and (self.guest_dir(uuid) / SUSPEND_MARK).exists():
                return GuestInfo(SUSPENDED)
            return GuestInfo(_STATUS.get(status, NOSTATE))

    async def console_output(self, uuid: str) -> str:
        self._require(uuid)

        def read() -> str:
            try:
                return self.console_path(uuid).read_bytes().decode(errors="replace")
            except FileNotFoundError:
                return ""
        return await run_blocking(read)


    # -- suspend, rescue, resize, snapshot --------------------------------------------

    async def suspend(self, uuid: str) -> None:
        """QMP ``stop``, marked ``suspended`` in the guest's directory: the guest
        stays in QEMU's memory (its RAM is not saved to disk, unlike libvirt's
        managed save), so a suspended guest does not survive a host reboot."""
        async with self._lock(uuid):
            self._require_running(uuid)
            await run_blocking((self.guest_dir(uuid) / SUSPEND_MARK).touch)
            await self._qmp(uuid, "stop")

    async def resume(self, uuid: str) -> None:
        async with self._lock(uuid):
            self._require(uuid)
            if self.pid(uuid) is None:  # the host restarted meanwhile: boot it again
                await self._launch(uuid)
            else:
                await self._qmp(uuid, "cont")
            with contextlib.suppress(FileNotFoundError):
                (self.guest_dir(uuid) / SUSPEND_MARK).unlink()

    def _runs(self, uuid: str, argv_file: str) -> bool:
        """The guest's QEMU runs from ``argv_file``'s command line (its first disk)."""
        pid = self.pid(uuid)
        if pid is None:
            return False
        argv = json.loads((self.guest_dir(uuid) / argv_file).read_text())
        disk = next(a for a in argv if a.startswith("file=") and "if=virtio" in a)
        try:
            return disk.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    async def rescue(self, spec: InstanceSpec, rescue_image: dict[str, Any]) -> None:
        """Stop the guest, then boot ``disk.rescue`` (an overlay on the rescue
        image) with the guest's own disk as the second disk (``qemu.rescue.json``)."""
        uuid = spec.uuid
        async with self._lock(uuid):
            self._require(uuid)
            gdir = self.guest_dir(uuid)
            if (gdir / RESCUE_ARGV).exists() and self._runs(uuid, RESCUE_ARGV):
                return
            await self._power_off(uuid, self.shutdown_timeout)
            if not (gdir / "disk.rescue").exists():
                base, fmt = await self._base_image(rescue_image)
                await self._make_overlay(gdir, base, fmt, 0, name="disk.rescue")
            argv = json.loads((gdir / "qemu.json").read_text())
            own = f"file={gdir / 'disk'},if=virtio,format=qcow2,cache=writeback"
            i = argv.index(own)
            argv[i] = f"file={gdir / 'disk.rescue'},if=virtio,format=qcow2,cache=writeback"
            argv[i + 1:i + 1] = ["-drive", own]
            await run_blocking((gdir / RESCUE_ARGV).write_text, json.dumps(argv))
            await self._launch(uuid, RESCUE_ARGV)

    async def unrescue(self, uuid: str) -> None:
        async with self._lock(uuid):
            self._require(uuid)
            gdir = self.guest_dir(uuid)
            if (gdir / RESCUE_ARGV).exists():
                await self._kill(uuid)
                for name in (RESCUE_ARGV, "disk.rescue"):
                    with contextlib.suppress(FileNotFoundError):
                        (gdir / name).unlink()
            if self.pid(uuid) is None:
                await self._launch(uuid)

    async def resize(self, spec: InstanceSpec) -> None:
        """Power off; keep the overlay and command line (``*.pre-resize``) for a
        revert; grow the overlay (``qemu-img resize``) to the new root disk; write
        the command line with the new memory and vcpus; start it again if it ran.
        ``resize.json`` records the steps, so a second call finishes the job."""
        uuid = spec.uuid
        async with self._lock(uuid):
            self._require(uuid)
            gdir = self.guest_dir(uuid)
            state_file = gdir / RESIZE_STATE
            if state_file.exists():
                state = json.loads(state_file.read_text())
                if state.get("done"):
                    return
            else:
                state = {"running": self.pid(uuid) is not None}
                await self._power_off(uuid, self.shutdown_timeout)
                for name in ("disk", "qemu.json"):
                    await run_blocking(shutil.copyfile, gdir / name,
                                       gdir / f"{name}.pre-resize.tmp")
                    await run_blocking(os.rename, gdir / f"{name}.pre-resize.tmp",
                                       gdir / f"{name}.pre-resize")
                await run_blocking(state_file.write_text, json.dumps(state))
            await self._kill(uuid)
            if spec.root_gb > 0:
                code, out, err = await run_command("qemu-img", "info", "--output=json",
                                                   str(gdir / "disk"))
                if code != 0:
                    raise DriverError(f"qemu-img info failed: {err.strip()[-300:]}")
                if json.loads(out)["virtual-size"] < spec.root_gb << 30:
                    code, _, err = await run_command("qemu-img", "resize", "-q",
                                                     str(gdir / "disk"), f"{spec.root_gb}G")
                    if code != 0:
                        raise DriverError(f"qemu-img resize failed: {err.strip()[-300:]}")
            argv = await self._argv(spec)
            await run_blocking((gdir / "qemu.json.tmp").write_text, json.dumps(argv))
            await run_blocking(os.rename, gdir / "qemu.json.tmp", gdir / "qemu.json")
            if state["running"]:
                await self._launch(uuid)
            await run_blocking(state_file.write_text, json.dumps({**state, "done": True}))

    async def confirm_resize(self, uuid: str) -> None:
        async with self._lock(uuid):
            gdir = self.guest_dir(uuid)
            for name in ("disk.pre-resize", "qemu.json.pre-resize", RESIZE_STATE):
                with contextlib.suppress(FileNotFoundError):
                    await run_blocking((gdir / name).unlink)

    async def revert_resize(self, spec: InstanceSpec) -> None:
        """Put back the kept overlay and command line, then run the guest."""
        uuid = spec.uuid
        async with self._lock(uuid):
            self._require(uuid)
            gdir = self.guest_dir(uuid)
            if (gdir / RESIZE_STATE).exists():
                await self._kill(uuid)
                for name in ("disk", "qemu.json"):
                    if (gdir / f"{name}.pre-resize").exists():
                        await run_blocking(os.rename, gdir / f"{name}.pre-resize", gdir / name)
                await run_blocking((gdir / RESIZE_STATE).unlink)
            if self.pid(uuid) is None:
                await self._launch(uuid)

    async def snapshot(self, uuid: str, dest: Path) -> None:
        """``qemu-img convert -O qcow2`` of the overlay (base and overlay in one
        standalone image); a running guest is paused meanwhile so that the copy is
        consistent, and read with ``-U`` (QEMU holds the image's lock)."""
        async with self._lock(uuid):
            self._require(uuid)
            gdir = self.guest_dir(uuid)
            paused = False
            if self.pid(uuid) is not None and \
                    (await self._qmp(uuid, "query-status"))["status"] == "running":
                await self._qmp(uuid, "stop")
                paused = True
            try:
                code, _, err = await run_command(
                    "qemu-img", "convert", "-U", "-O", "qcow2", str(gdir / "disk"),
                    str(dest), timeout=1800.0)
            finally:
                if paused:
                    with contextlib.suppress(DriverError):
                        await self._qmp(uuid, "cont")
            if code != 0:
                raise DriverError(f"qemu-img convert failed: {err.strip()[-300:]}")


SUSPEND_MARK = "suspended"  # in the guest's directory while it is suspended
RESCUE_ARGV = "qemu.rescue.json"  # the command line of a rescued guest
RESIZE_STATE = "resize.json"  # a resize under way or waiting for confirm/revert


def meta_data(spec: InstanceSpec) -> dict[str, Any]:
    """``openstack/latest/meta_data.json`` as Nova writes it (the parts we know)."""
    data: dict[str, Any] = {
        "uuid": spec.uuid, "name": spec.name, "hostname": spec.name,
        "launch_index": 0, "meta": dict(spec.metadata), "devices": [],
    }
    if spec.key_data:
        data["public_keys"] = {"key": spec.key_data}
        data["keys"] = [{"name": "key", "type": "ssh", "data": spec.key_data}]
    return data


def make_config_drive(path: Path, spec: InstanceSpec) -> None:
    """A vfat config drive labelled ``config-2`` (Nova's ``config_drive_format=vfat``)
    made without mounting (mkfs.fat + mtools). Raises: DriverError."""
    import subprocess

    mkfs = shutil.which("mkfs.fat") or "/usr/sbin/mkfs.fat"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)
        (src / "meta_data.json").write_text(json.dumps(meta_data(spec)))
        files = ["meta_data.json"]
        if spec.user_data:
            import base64
            (src / "user_data").write_bytes(base64.b64decode(spec.user_data))
            files.append("user_data")
        tmp_img = path.with_suffix(".tmp")
        steps = [[mkfs, "-C", "-n", "config-2", str(tmp_img), "4096"],
                 ["mmd", "-i", str(tmp_img), "::openstack", "::openstack/latest"]]
        steps += [["mcopy", "-i", str(tmp_img), str(src / f), f"::openstack/latest/{f}"]
                  for f in files]
        with contextlib.suppress(FileNotFoundError):
            tmp_img.unlink()
        for argv in steps:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise DriverError(f"config drive: {argv[0]} failed: {proc.stderr.strip()}")
        os.rename(tmp_img, path)
