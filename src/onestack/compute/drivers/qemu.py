"""The QEMU driver: one ``qemu-system-x86_64`` process per running guest, no libvirt.

Everything about a guest is in its directory ``<instances_dir>/<uuid>/``::

    disk            qcow2 overlay on the cached base image (``_base/<sha of image id>``)
    disk.eph0       the flavor's ephemeral disk, if it has one: a sparse raw file
                    with a FAT file system labelled ``ephemeral0`` (as Nova's libvirt
                    driver makes it for a guest of no known os_type), on a virtio
                    disk after the root disk
    disk.config     config drive: ISO 9660 labelled ``config-2`` (configdrive.py), on a
                    read-only virtio disk; the files the compute service renders
                    (``InstanceSpec.config_drive_files``), else, with ``config_drive``
                    on, meta_data.json and user_data from the spec alone
    qemu.json       the QEMU command line, so power-on and adoption need no spec
    memory.save     a suspended guest's RAM and device state (``suspend``: QMP
                    ``migrate`` into it; ``resume``: ``-incoming`` from it)
    qemu.pid        QEMU's pidfile
    qemu.stderr     what QEMU printed at its last start (until it daemonised)
    qmp.sock        its QMP socket (``qemu.qmp`` speaks to it; elsewhere if the
                    path is too long for a unix socket: ``qmp_path``)
    console.log     the serial console (``ttyS0``), appended across power cycles
    vnc.sock        its VNC server (the console proxy's end; elsewhere if too long,
                    as qmp.sock: ``vnc_path``)

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

Base images: ``_base/<sha1 of the image id>``, fetched once (``_base_image``).
Every use (spawn, rebuild, rescue, ``cache_image``) touches the file, and so
does a prune that finds a guest's overlay backed by it: its mtime is its last
use. ``prune_base_images`` (the compute service runs it every
``image_cache_manager_interval``) removes the base files no overlay in a
guest's directory is backed by and whose last use is older than the minimum
age, as Nova's image cache manager does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

from onestack.compute.drivers import configdrive, testimage
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
    VncConsole,
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
        await asyncio.sleep(0.05)


class BaseImage(NamedTuple):
    """A cached base image: its file, its qemu format (qcow2 or raw), its virtual size."""
    path: Path
    format: str
    virtual_size: int


class QemuDriver(Driver):
    name = "qemu"
    has_image_cache = True

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
        self._base_info: dict[Path, BaseImage] = {}  # what qemu-img info said of each
        # base files a spawn or rescue is using (fetch to overlay), and the serial
        # number of each one's latest such use: a prune spares them (prune_base_images)
        self._base_pins: dict[Path, int] = {}
        self._base_uses: dict[Path, int] = {}
        self._use_serial = 0
        self._prune_lock = asyncio.Lock()

    # -- paths and state -----------------------------------------------------------

    def guest_dir(self, uuid: str) -> Path:
        if not uuid or "/" in uuid or uuid.startswith((".", "_")):
            raise GuestNotFound(f"no guest {uuid!r}")
        return self.dir / uuid

    def console_path(self, uuid: str) -> Path:
        return self.guest_dir(uuid) / "console.log"

    def _socket_path(self, uuid: str, name: str, suffix: str) -> Path:
        """A unix socket in the guest's directory, unless that path is too long
        for one (108 bytes); then a name derived from it in a private directory
        under the system's temporary directory."""
        path = self.guest_dir(uuid) / name
        if len(os.fsencode(path)) < 100:
            return path
        short = Path(tempfile.gettempdir()) / f"onestack-qmp-{os.getuid()}"
        short.mkdir(mode=0o700, exist_ok=True)
        return short / (hashlib.sha1(os.fsencode(path)).hexdigest()[:24] + suffix)

    def qmp_path(self, uuid: str) -> Path:
        """The QMP socket."""
        return self._socket_path(uuid, "qmp.sock", ".sock")

    def vnc_path(self, uuid: str) -> Path:
        """The VNC server's unix socket (``-vnc unix:``)."""
        return self._socket_path(uuid, "vnc.sock", ".vnc")

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
        """The guest's directory: disk, config drive and, last, its command line.
        The config drive is written (in a thread) while the base image is found
        or fetched."""
        gdir = self.guest_dir(spec.uuid)
        await run_blocking(gdir.mkdir, parents=True, exist_ok=True)
        files = spec.config_drive_files
        if files is None and self.config_drive:
            files = configdrive.fallback_files(spec)
        iso = None if files is None else asyncio.ensure_future(
            run_blocking(configdrive.make_iso, gdir / "disk.config", files))
        with self._using_base(spec.image):
            try:
                base = await self._base_image(spec.image)
            finally:  # the ISO is finished (or failed) before the caller cleans up
                if iso is not None:
                    await asyncio.wait([iso])
                    if not iso.cancelled():
                        iso.exception()  # retrieved, even when the base image failed
            if iso is not None:
                iso.result()  # its error, if any
            await self._make_overlay(gdir, base, spec.root_gb)
        if spec.ephemeral_gb > 0:
            await self._make_ephemeral(gdir, spec.ephemeral_gb)
        argv = await self._argv(spec)
        tmp = gdir / "qemu.json.tmp"
        await run_blocking(tmp.write_text, json.dumps(argv))
        await run_blocking(os.rename, tmp, gdir / "qemu.json")

    async def _launch(self, uuid: str, argv_file: str = "qemu.json",
                      extra: list[str] | None = None) -> None:
        """Start QEMU from the saved command line (and ``extra`` arguments) and wait
        for its QMP socket."""
        gdir = self.guest_dir(uuid)
        argv = json.loads((gdir / argv_file).read_text()) + list(extra or [])
        with contextlib.suppress(FileNotFoundError):
            self.qmp_path(uuid).unlink()
        # wait for the -daemonize parent's exit, not for EOF on its output: under
        # uvloop (`onestack up`) a child gets extra inheritable copies of its
        # stdout/stderr sockets (beyond fds 1 and 2), which the daemon keeps for
        # the guest's whole life, so reading to EOF waited out the timeout
        err_path = gdir / "qemu.stderr"
        err_file = await run_blocking(open, err_path, "wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=err_file)
            try:
                async with asyncio.timeout(60.0):
                    code = await proc.wait()
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                raise
        finally:
            err_file.close()
        if code != 0:
            err = await run_blocking(err_path.read_text, errors="replace")
            raise DriverError(f"QEMU failed to start {uuid}: {err.strip()[-500:]}")
        if self.pid(uuid) is None:
            err = await run_blocking(err_path.read_text, errors="replace")
            raise DriverError(f"QEMU for {uuid} exited right after starting: "
                              f"{err.strip()[-500:]}")

    async def cache_image(self, image: dict[str, Any]) -> None:
        """Have the image in the base cache (fetched if it is not): what ``spawn``
        would do first, for a caller that can start it earlier (the compute
        service, while it binds the server's ports). Raises: DriverError."""
        await self._base_image(image)

    def _base_path(self, image: dict[str, Any]) -> Path:
        return self.base_dir / hashlib.sha1(str(image.get("id") or "").encode()).hexdigest()

    def _base_lock(self, base: Path) -> asyncio.Lock:
        """The lock of a base file (its fetch, its removal): keyed by the file, so
        that a prune, which knows only the file, takes the one a spawn takes (a
        guest's uuid never starts with ``_``)."""
        return self._lock("_base/" + base.name)

    @contextlib.contextmanager
    def _using_base(self, image: dict[str, Any]) -> Iterator[None]:
        """Pin the image's base file while a guest's overlay on it is being made
        (from before the fetch until the overlay is in its directory), and count
        the use: a prune that runs meanwhile keeps the file."""
        base = self._base_path(image)
        self._use_serial += 1
        self._base_uses[base] = self._use_serial
        self._base_pins[base] = self._base_pins.get(base, 0) + 1
        try:
            yield
        finally:
            self._base_pins[base] -= 1
            if not self._base_pins[base]:
                del self._base_pins[base]

    async def _base_image(self, image: dict[str, Any]) -> BaseImage:
        """The image in the base cache, fetched once (to a temporary file, checked,
        then renamed into place), its mtime set to now (its last use, which the
        prune reads). Raises: DriverError."""
        image_id = str(image.get("id") or "")
        if not image_id:
            raise DriverError("the instance has no image")
        base = self._base_path(image)
        async with self._base_lock(base):
            cached = await run_blocking(_touch, base)
            if cached and base in self._base_info:
                return self._base_info[base]
            if not cached:
                if self.image_fetcher is None:
                    raise DriverError(f"image {image_id} is not cached and no image "
                                      "fetcher is configured")
                await run_blocking(self.base_dir.mkdir, parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=self.base_dir)
                os.close(fd)
                try:
                    await self.image_fetcher(image, Path(tmp))
                    # only good images are kept
                    info = await self._image_info(image_id, Path(tmp), base)
                    await run_blocking(os.rename, tmp, base)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
            else:  # cached by an earlier process
                info = await self._image_info(image_id, base, base)
            # base images never change once in place: one qemu-img info each
            self._base_info[base] = info
            return info

    async def _image_info(self, image_id: str, path: Path, base: Path) -> BaseImage:
        """qcow2 or raw and the virtual size, as ``qemu-img info`` sees the file at
        ``path`` (to be, or being, ``base``). Raises: DriverError."""
        code, out, err = await run_command("qemu-img", "info", "--output=json", str(path))
        if code != 0:
            raise DriverError(f"image {image_id} is not a disk image: {err.strip()[-300:]}")
        info = json.loads(out)
        if info["format"] not in ("qcow2", "raw") or info.get("backing-filename"):
            raise DriverError(f"image {image_id} has unsupported format {info['format']}")
        return BaseImage(base, str(info["format"]), int(info["virtual-size"]))

    async def prune_base_images(self, min_age: float = 86400.0,
                                now: float | None = None) -> list[Path]:
        """Remove the base files no guest uses whose last use is at least
        ``min_age`` seconds before ``now`` (default: the time); return them.

        In use: the backing file of a qcow2 file in a guest's directory (``disk``,
        ``disk.rescue``, ``disk.pre-resize`` ...), read from its header; those are
        touched, so their age counts from the last prune that saw them in use, or
        from the last spawn, rebuild or rescue on them. Files being fetched
        (``.fetch-*``) and other names are left alone. Each removal holds the
        base's lock, and a base a spawn or rescue pinned (``_using_base``) at any
        time since the guests were read is kept. Raises: OSError if a guest's
        disk cannot be read (then nothing is removed)."""
        async with self._prune_lock:
            serial = self._use_serial
            pinned = set(self._base_pins)
            bases, in_use = await run_blocking(self._scan_bases)
            now = time.time() if now is None else now
            removed: list[Path] = []
            for base, real in bases.items():
                if real in in_use:
                    with contextlib.suppress(OSError):  # gone or not ours: not removed
                        await run_blocking(os.utime, base)
                    continue
                if base in pinned:
                    continue
                async with self._base_lock(base):
                    if base in self._base_pins or self._base_uses.get(base, 0) > serial:
                        continue  # used since the guests were read
                    try:
                        mtime = (await run_blocking(os.stat, base)).st_mtime
                    except FileNotFoundError:
                        self._base_info.pop(base, None)
                        continue
                    if now - mtime < min_age:
                        continue
                    try:
                        await run_blocking(os.unlink, base)
                    except FileNotFoundError:
                        pass
                    else:
                        removed.append(base)
                        log.info("removed base image %s: unused for %d s", base,
                                 int(now - mtime))
                    self._base_info.pop(base, None)
                    self._base_uses.pop(base, None)
            return removed

    def _scan_bases(self) -> tuple[dict[Path, str], set[str]]:
        """The base files (``_base/<40 hex digits>``, each with its real path) and
        the real paths of the backing files of the guests' qcow2 files."""
        bases: dict[Path, str] = {}
        try:
            names = os.listdir(self.base_dir)
        except FileNotFoundError:
            return bases, set()
        for name in names:
            if len(name) == 40 and all(c in "0123456789abcdef" for c in name):
                path = self.base_dir / name
                if path.is_file():
                    bases[path] = os.path.realpath(path)
        if not bases:
            return bases, set()
        in_use: set[str] = set()
        for gdir in self.dir.iterdir():
            if gdir == self.base_dir or not gdir.is_dir():
                continue
            try:
                entries = list(os.scandir(gdir))
            except FileNotFoundError:  # a guest just deleted
                continue
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):  # sockets, FIFOs ...
                    continue
                try:
                    backing = qcow2_backing_file(Path(entry.path))
                except FileNotFoundError:
                    continue
                if backing:
                    in_use.add(os.path.realpath(gdir / backing))  # relative: to its overlay
        return bases, in_use

    async def _make_overlay(self, gdir: Path, base: BaseImage, root_gb: int,
                            name: str = "disk") -> None:
        """A qcow2 overlay on the base image, grown to ``root_gb`` if that is more."""
        tmp = gdir / f"{name}.tmp"
        argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", base.format,
                "-b", str(base.path), str(tmp)]
        if root_gb > 0 and base.virtual_size < root_gb << 30:
            argv.append(f"{root_gb}G")
        code, _, err = await run_command(*argv)
        if code != 0:
            raise DriverError(f"qemu-img create failed: {err.strip()[-300:]}")
        await run_blocking(os.rename, tmp, gdir / name)

    async def _make_ephemeral(self, gdir: Path, size_gb: int) -> None:
        """``disk.eph0``: ``size_gb`` GiB, sparse, formatted FAT (``mkfs.fat``)."""
        tmp = gdir / f"{EPHEMERAL}.tmp"

        def allocate() -> None:
            with open(tmp, "wb") as f:
                f.truncate(size_gb << 30)

        await run_blocking(allocate)
        code, _, err = await run_command("mkfs.fat", "-n", "ephemeral0", str(tmp))
        if code != 0:
            raise DriverError(f"mkfs.fat failed for the ephemeral disk: {err.strip()[-300:]}")
        await run_blocking(os.rename, tmp, gdir / EPHEMERAL)

    async def _argv(self, spec: InstanceSpec) -> list[str]:
        gdir = self.guest_dir(spec.uuid)
        accel = await self.accelerator()
        argv = [
            shutil.which(self.qemu) or self.qemu,
            "-name", f"guest={spec.name},process=qemu:{spec.name}", "-uuid", spec.uuid,
            "-machine", f"pc,accel={accel}", "-cpu", "host" if accel == "kvm" else "max",
            "-smp", str(max(1, spec.vcpus)), "-m", str(max(64, spec.memory_mb)),
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "std",
            "-daemonize", "-pidfile", str(gdir / "qemu.pid"),
            "-qmp", f"unix:{self.qmp_path(spec.uuid)},server=on,wait=off",
            "-chardev", f"file,id=serial0,path={gdir / 'console.log'},append=on",
            "-serial", "chardev:serial0",
            "-vnc", f"unix:{self.vnc_path(spec.uuid)}",
            "-drive", f"file={gdir / 'disk'},if=virtio,format=qcow2,cache=writeback",
        ]
        if (gdir / EPHEMERAL).exists():
            argv += ["-drive", f"file={gdir / EPHEMERAL},if=virtio,format=raw,cache=writeback"]
        # the config drive _prepare made, as a read-only virtio disk (Nova's libvirt
        # driver uses a CD-ROM; guests find it by its label either way)
        if (gdir / "disk.config").exists():
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
            with contextlib.suppress(FileNotFoundError):
                self.vnc_path(uuid).unlink()
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
            await self._forget_save(self.guest_dir(uuid))  # a fresh boot, as libvirt's
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
            if self.pid(uuid) is None:  # off, or suspended: a fresh boot
                await self._forget_save(self.guest_dir(uuid))
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
                if (self.guest_dir(uuid) / MEMORY_SAVE).exists():
                    return GuestInfo(SUSPENDED)
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

    async def vnc_console(self, uuid: str) -> VncConsole:
        """The guest's VNC server: the unix socket its command line names (none
        for a guest started before guests had one; it gets one when its command
        line is written again: rebuild, resize, rescue)."""
        self._require(uuid)
        argv = json.loads(await run_blocking((self.guest_dir(uuid) / "qemu.json").read_text))
        sock = next((argv[i + 1][len("unix:"):] for i, arg in enumerate(argv[:-1])
                     if arg == "-vnc" and argv[i + 1].startswith("unix:")), None)
        return VncConsole(host="", port=0, socket=sock)  # host: the compute host's


    # -- suspend, rescue, resize, snapshot --------------------------------------------

    save_timeout = 120.0  # how long saving a guest's memory (or loading it) may take

    async def suspend(self, uuid: str) -> None:
        """libvirt's managed save: stop the guest, write its RAM and device state to
        ``memory.save`` (QMP ``migrate`` into a file, fsynced, renamed in place when
        complete) and end QEMU; marked ``suspended`` in the guest's directory.
        ``resume`` starts QEMU from that file, so a suspended guest survives a
        restart of the host. Done already if the file is there and QEMU is gone.
        Raises: GuestNotFound, DriverError (the guest runs on, unsuspended)."""
        async with self._lock(uuid):
            self._require(uuid)
            gdir = self.guest_dir(uuid)
            saved, tmp = gdir / MEMORY_SAVE, gdir / f"{MEMORY_SAVE}.tmp"
            if self.pid(uuid) is None and saved.exists():
                await run_blocking((gdir / SUSPEND_MARK).touch)
                return
            self._require_running(uuid)
            await run_blocking((gdir / SUSPEND_MARK).touch)
            await self._qmp(uuid, "stop")
            with contextlib.suppress(FileNotFoundError):
                await run_blocking(tmp.unlink)
            # QEMU 7.2 has no file: URI; the shell renames the file once dd has
            # written and synced all of it
            writer = (f"dd of={shlex.quote(str(tmp))} bs=1M conv=fsync status=none && "
                      f"mv {shlex.quote(str(tmp))} {shlex.quote(str(saved))}")
            try:
                await self._qmp(uuid, "migrate", {"uri": f"exec:{writer}"})
                deadline = time.monotonic() + self.save_timeout
                while True:
                    info = await self._qmp(uuid, "query-migrate")
                    status = info.get("status")
                    if status == "completed" and saved.exists():
                        break
                    if status in ("failed", "cancelled"):
                        raise DriverError(f"saving the memory of {uuid} failed: "
                                          f"{info.get('error-desc', status)}")
                    if time.monotonic() > deadline:
                        with contextlib.suppress(DriverError):
                            await self._qmp(uuid, "migrate_cancel")
                        raise DriverError(f"saving the memory of {uuid} took more than "
                                          f"{self.save_timeout:.0f}s")
                    await asyncio.sleep(0.1)
            except DriverError:
                with contextlib.suppress(DriverError):
                    await self._qmp(uuid, "cont")
                for path in (gdir / SUSPEND_MARK, tmp, saved):
                    with contextlib.suppress(FileNotFoundError):
                        await run_blocking(path.unlink)
                raise
            await self._kill(uuid)

    async def resume(self, uuid: str) -> None:
        """Start QEMU from ``memory.save`` (``-incoming``), where the guest left
        off, and drop the file; a guest suspended in QEMU's memory (before the
        file existed) just continues."""
        async with self._lock(uuid):
            self._require(uuid)
            gdir = self.guest_dir(uuid)
            saved = gdir / MEMORY_SAVE
            if self.pid(uuid) is None:
                if saved.exists():
                    await self._launch(uuid, extra=[
                        "-incoming", f"exec:cat {shlex.quote(str(saved))}"])
                    await self._wait_restored(uuid)
                else:  # no state to go back to: boot it again
                    await self._launch(uuid)
            elif (await self._qmp(uuid, "query-status"))["status"] != "running":
                await self._qmp(uuid, "cont")
            await self._forget_save(gdir)

    async def _wait_restored(self, uuid: str) -> None:
        """Wait for the incoming state to be loaded, then run the guest (it was
        stopped when saved, and stays paused after the load)."""
        deadline = time.monotonic() + self.save_timeout
        while True:
            status = (await self._qmp(uuid, "query-status"))["status"]
            if status != "inmigrate":
                break
            if time.monotonic() > deadline:
                raise DriverError(f"restoring the memory of {uuid} took more than "
                                  f"{self.save_timeout:.0f}s")
            await asyncio.sleep(0.1)
        info = await self._qmp(uuid, "query-migrate")
        if info.get("status") == "failed":
            await self._kill(uuid)
            raise DriverError(f"restoring the memory of {uuid} failed: "
                              f"{info.get('error-desc', 'failed')}")
        if status != "running":
            await self._qmp(uuid, "cont")

    async def _forget_save(self, gdir: Path) -> None:
        """The guest no longer is suspended: its mark and saved memory go."""
        for name in (SUSPEND_MARK, MEMORY_SAVE, f"{MEMORY_SAVE}.tmp"):
            with contextlib.suppress(FileNotFoundError):
                await run_blocking((gdir / name).unlink)

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
                with self._using_base(rescue_image):
                    base = await self._base_image(rescue_image)
                    await self._make_overlay(gdir, base, 0, name="disk.rescue")
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

    # -- interfaces: hot-plug, and the command line the next start uses --------------

    unplug_timeout = 30.0  # how long a detach waits for the guest to let its NIC go

    def _new_nic(self, port: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """QMP ``netdev_add`` and ``device_add`` arguments for the port's NIC (ids
        ``net-``/``nic-`` + the port id's first 11 characters)."""
        port_id = str(port.get("port_id") or port.get("id") or "")
        if not port_id:
            raise DriverError(f"port {port} has no id")
        netdev: dict[str, Any] = {"type": "user", "id": f"net-{port_id[:11]}"}
        if self.network == "tap":
            netdev = {"type": "tap", "id": netdev["id"], "ifname": tap_name(port_id),
                      "script": "no", "downscript": "no"}
        device: dict[str, Any] = {"driver": "virtio-net-pci", "id": f"nic-{port_id[:11]}",
                                  "netdev": netdev["id"]}
        if port.get("mac_address"):
            device["mac"] = str(port["mac_address"]).lower()
        return netdev, device

    async def _live_nics(self, uuid: str) -> dict[str, str]:
        """The running guest's virtio NICs: MAC -> QOM path (named or anonymous)."""
        out: dict[str, str] = {}
        for container in ("/machine/peripheral", "/machine/peripheral-anon"):
            for child in await self._qmp(uuid, "qom-list", {"path": container}):
                if child.get("type") != "child<virtio-net-pci>":
                    continue
                path = f"{container}/{child['name']}"
                try:
                    mac = await self._qmp(uuid, "qom-get", {"path": path, "property": "mac"})
                except DriverError as exc:
                    if "not found" in str(exc):  # unplugged between the list and the get
                        continue
                    raise
                out[str(mac).lower()] = path
        return out

    def _write_argv(self, uuid: str, argv: list[str]) -> None:
        gdir = self.guest_dir(uuid)
        (gdir / "qemu.json.tmp").write_text(json.dumps(argv))
        os.rename(gdir / "qemu.json.tmp", gdir / "qemu.json")

    async def attach_interface(self, spec: InstanceSpec, port: dict[str, Any]) -> None:
        """Hot-plug (``netdev_add`` + ``device_add``) into a running guest, then add
        the NIC to ``qemu.json`` so that every later start has it (a stopped
        guest only gets that)."""
        uuid = spec.uuid
        netdev, device = self._new_nic(port)
        async with self._lock(uuid):
            self._require(uuid)
            if self.pid(uuid) is not None and device.get("mac") not in \
                    await self._live_nics(uuid):
                try:
                    await self._qmp(uuid, "netdev_add", netdev)
                except DriverError as exc:
                    if "Duplicate" not in str(exc) and "already" not in str(exc):
                        raise
                try:
                    await self._qmp(uuid, "device_add", device)
                except DriverError:
                    with contextlib.suppress(DriverError):
                        await self._qmp(uuid, "netdev_del", {"id": netdev["id"]})
                    raise
            argv = json.loads(await run_blocking((self.guest_dir(uuid) / "qemu.json").read_text))
            if _nic_in_argv(argv, port, self.network)[1] is None:
                argv += ["-netdev", ",".join(
                    [netdev["type"], *(f"{k}={v}" for k, v in netdev.items() if k != "type")]),
                    "-device", ",".join(
                    [device["driver"], *(f"{k}={v}" for k, v in device.items()
                                         if k != "driver")])]
                await run_blocking(self._write_argv, uuid, argv)

    async def detach_interface(self, uuid: str, port: dict[str, Any]) -> None:
        """``device_del`` and wait (up to ``unplug_timeout``) for the guest to let
        the NIC go, then ``netdev_del`` (QEMU closes the tap); and out of
        ``qemu.json``. Raises: DriverError (the guest kept the NIC)."""
        mac = str(port.get("mac_address") or "").lower()
        async with self._lock(uuid):
            if not self._exists(uuid):
                return
            argv = json.loads(await run_blocking((self.guest_dir(uuid) / "qemu.json").read_text))
            netdev_at, device_at, netdev_id = _nic_in_argv(argv, port, self.network)
            if self.pid(uuid) is not None:
                path = (await self._live_nics(uuid)).get(mac) if mac else None
                if path is not None:
                    with contextlib.suppress(DriverError):  # already on its way out
                        await self._qmp(uuid, "device_del", {"id": path})
                    deadline = time.monotonic() + self.unplug_timeout
                    while mac in await self._live_nics(uuid):
                        if time.monotonic() > deadline:
                            raise DriverError(f"guest {uuid} did not release the NIC {mac}")
                        await asyncio.sleep(0.2)
                new_id = self._new_nic(port)[0]["id"]
                for nid in dict.fromkeys(n for n in (netdev_id, new_id) if n):
                    with contextlib.suppress(DriverError):  # not there
                        await self._qmp(uuid, "netdev_del", {"id": nid})
            drop = {i + d for i in (netdev_at, device_at) if i is not None for d in (0, 1)}
            if drop:
                await run_blocking(self._write_argv, uuid,
                                   [a for n, a in enumerate(argv) if n not in drop])


def _touch(path: Path) -> bool:
    """Set the file's mtime to now; False if it does not exist."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    except PermissionError:  # not ours to touch: it is there all the same
        return path.exists()
    return True


def qcow2_backing_file(path: Path) -> str | None:
    """The backing file a qcow2 image names in its header (None for another
    format or no backing file): ``backing_file_offset`` (u64, big-endian) at
    byte 8, ``backing_file_size`` (u32) at byte 16."""
    with open(path, "rb") as f:
        header = f.read(20)
        if len(header) < 20 or header[:4] != b"QFI\xfb":
            return None
        offset = int.from_bytes(header[8:16], "big")
        size = int.from_bytes(header[16:20], "big")
        if not offset or not size:
            return None
        f.seek(offset)
        return os.fsdecode(f.read(min(size, 65536)))  # QEMU's own limit is 1023


def _opts(value: str) -> dict[str, str]:
    """QEMU's ``kind,key=value,...`` as a dict (``""`` holds the kind)."""
    out: dict[str, str] = {}
    for n, part in enumerate(value.split(",")):
        key, sep, val = part.partition("=")
        if n == 0 and not sep:
            out[""] = key
        else:
            out[key] = val
    return out


def _nic_in_argv(argv: list[str], port: dict[str, Any],
                 network: str) -> tuple[int | None, int | None, str | None]:
    """Where the port's NIC is on a command line: the indexes of its ``-netdev``
    and ``-device`` options and its netdev id (found by MAC, or by tap name)."""
    mac = str(port.get("mac_address") or "").lower()
    port_id = str(port.get("port_id") or port.get("id") or "")
    netdev_at = device_at = None
    netdev_id: str | None = None
    for i, arg in enumerate(argv[:-1]):
        value = _opts(argv[i + 1])
        if arg == "-device" and mac and value.get("mac", "").lower() == mac:
            device_at, netdev_id = i, value.get("netdev")
        elif (arg == "-netdev" and network == "tap" and port_id
              and value.get("ifname") == tap_name(port_id)):
            netdev_at, netdev_id = i, value.get("id")
    for i, arg in enumerate(argv[:-1]):
        value = _opts(argv[i + 1])
        if netdev_id and arg == "-netdev" and value.get("id") == netdev_id:
            netdev_at = i
        elif (netdev_id and device_at is None and arg == "-device"
              and value.get("netdev") == netdev_id):
            device_at = i
    return netdev_at, device_at, netdev_id


SUSPEND_MARK = "suspended"  # in the guest's directory while it is suspended
MEMORY_SAVE = "memory.save"  # a suspended guest's RAM and device state
RESCUE_ARGV = "qemu.rescue.json"  # the command line of a rescued guest
RESIZE_STATE = "resize.json"  # a resize under way or waiting for confirm/revert
EPHEMERAL = "disk.eph0"  # the flavor's ephemeral disk

