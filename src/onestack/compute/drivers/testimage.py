"""A tiny bootable guest for the QEMU driver's tests and benchmarks, built on
this machine from the installed Debian kernel and busybox-static (nothing is
downloaded).

``build(cache_dir)`` makes, once per kernel version and builder version:

* ``vmlinuz`` + ``initrd.img``: the kernel and a busybox initramfs whose
  ``/init`` prints markers on the serial console (``ttyS0``)::

      ONESTACK-TEST-IMAGE: booted
      ONESTACK-TEST-IMAGE: dhcp <ip>           (udhcpc on eth0; "dhcp none" if none)
      ONESTACK-TEST-IMAGE: metadata <uuid>     (metadata service, else config drive)
      ONESTACK-TEST-IMAGE: ready

  ``onestack.poweroff`` on the kernel command line powers off right after
  ``booted`` (a probe); ``onestack.debug`` prints modules and devices.

  The virtio-net, virtio-blk, iso9660, vfat and ACPI power button modules (and
  what they depend on, per ``modules.dep``) are in the initramfs; ``/init``
  loads them. The power button is handled (busybox ``acpid``), so an ACPI
  power-down (QMP ``system_powerdown``) really powers the guest off.

* ``disk.qcow2``: a whole bootable disk, what one uploads to the image service.
  It is a FAT "superfloppy" (no partition table) holding syslinux, the kernel
  and the initramfs: SeaBIOS boots its boot sector like any disk's, so QEMU
  needs no ``-kernel``; the guest runs from its initramfs and leaves the disk
  alone. Built without root or loop devices (mkfs.fat, mtools, syslinux).

Builds are content-addressed (``<kernel version>-<hash of builder version,
kernel, busybox and /init>``) under the caller's directory, written to a
temporary directory and renamed into place, so a repeat build is instant and
concurrent builders never see half an image.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BUILDER_VERSION = "1"
MARKER = "ONESTACK-TEST-IMAGE:"
BOOTED = f"{MARKER} booted"
READY = f"{MARKER} ready"
KERNEL_ARGS = "console=ttyS0 quiet panic=-1"
# modules /init loads, in this order after their dependencies
MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "isofs", "vfat", "nls_cp437",
           "nls_iso8859-1", "nls_utf8", "nls_ascii", "button", "evdev")

INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
M=ONESTACK-TEST-IMAGE:
echo "$M booted" > /dev/ttyS0
# a probe (is this accelerator usable?) needs no more than the marker
grep -q onestack.poweroff /proc/cmdline && poweroff -f
for m in $(cat /etc/modules); do insmod /lib/modules/$m.ko 2>/dev/null; done
mkdir -p /etc/acpi/PWRF
printf '#!/bin/sh\necho "%s poweroff" > /dev/ttyS0\npoweroff -f\n' "$M" > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
sleep 0.2
mkdir -p /var/log /var/run
acpid -c /etc/acpi -l /tmp/acpid.log -p /tmp/acpid.pid
ip link set lo up
IP=none
if ip link set eth0 up 2>/dev/null; then
    udhcpc -i eth0 -n -q -t 4 -T 1 -s /etc/udhcpc.script >/dev/null 2>&1
    [ -s /tmp/ip ] && IP=$(cat /tmp/ip)
fi
echo "$M dhcp $IP" > /dev/ttyS0
UUID=
if [ "$IP" != none ]; then
    wget -q -T 2 -O /tmp/md.json http://169.254.169.254/openstack/latest/meta_data.json 2>/dev/null \
        && UUID=$(sed -n 's/.*"uuid": *"\([^"]*\)".*/\1/p' /tmp/md.json)
fi
if [ -z "$UUID" ]; then
    # the device labelled config-2 (findfs), else any disk or CD-ROM that has the file
    for DEV in $(findfs LABEL=config-2 2>/dev/null) /dev/sr? /dev/vd? /dev/sd?; do
        [ -b "$DEV" ] && mount -o ro "$DEV" /mnt 2>/dev/null || continue
        F=/mnt/openstack/latest/meta_data.json
        [ -f $F ] && UUID=$(sed -n 's/.*"uuid": *"\([^"]*\)".*/\1/p' $F)
        umount /mnt
        [ -n "$UUID" ] && break
    done
fi
if grep -q onestack.debug /proc/cmdline; then
    (cat /proc/modules; cat /proc/partitions; ls /dev /dev/input; ps; dmesg | tail -n 30) > /dev/ttyS0 2>&1
fi
echo "$M metadata ${UUID:-none}" > /dev/ttyS0
echo "$M ready" > /dev/ttyS0
while true; do sleep 3600; done
"""

UDHCPC_SCRIPT = r"""#!/bin/sh
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    echo "$ip" > /tmp/ip
    ;;
esac
"""

SYSLINUX_CFG = f"""DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.img
  APPEND {KERNEL_ARGS}
"""


class BuildError(Exception):
    """The image cannot be built here (no kernel, no busybox, a tool failed)."""


@dataclass(frozen=True)
class TestImage:
    kernel_version: str
    directory: Path

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def disk(self) -> Path:
        """The bootable qcow2 disk."""
        return self.directory / "disk.qcow2"

    def direct_boot_args(self) -> list[str]:
        """QEMU arguments that boot the pair without a disk."""
        return ["-kernel", str(self.kernel), "-initrd", str(self.initrd),
                "-append", KERNEL_ARGS]


def find_kernel(version: str | None = None) -> tuple[str, Path]:
    """(version, path) of the given or else the newest /boot/vmlinuz-* with modules."""
    candidates = []
    for path in Path("/boot").glob("vmlinuz-*"):
        ver = path.name.removeprefix("vmlinuz-")
        if (Path("/lib/modules") / ver / "modules.dep").exists() and (version in (None, ver)):
            candidates.append((_version_key(ver), ver, path))
    if not candidates:
        raise BuildError(f"no kernel {version or ''} in /boot with /lib/modules "
                         "(install linux-image-cloud-amd64)".replace("  ", " "))
    _, ver, path = max(candidates)
    return ver, path


def _version_key(ver: str) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.-]", ver))


def _busybox() -> Path:
    """A statically linked busybox (a dynamic one has an ELF interpreter, whose
    path sits near the start of the file)."""
    for cand in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(cand)
        if path.exists():
            with path.open("rb") as f:
                if b"/ld-linux" not in f.read(4096):
                    return path
    raise BuildError("no static busybox (install busybox-static)")


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def module_closure(version: str, names: tuple[str, ...] = MODULES) -> list[Path]:
    """The module files for ``names`` and their dependencies, dependencies first;
    modules built into the kernel (or missing) are skipped."""
    root = Path("/lib/modules") / version
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (root / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
        base = Path(mod).name.split(".ko")[0]
        by_name[base] = mod
        by_name.setdefault(base.replace("-", "_"), mod)
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for dep in deps.get(mod, []):
            visit(dep)
        order.append(mod)

    for name in names:
        found = by_name.get(name) or by_name.get(name.replace("-", "_"))
        if found is not None:
            visit(found)
    return [root / mod for mod in order]


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        zstd = shutil.which("zstd")
        if zstd is None:
            raise BuildError(f"{path} is zstd-compressed and zstd is not installed")
        return subprocess.run([zstd, "-dc", str(path)], capture_output=True, check=True).stdout
    return data


class Cpio:
    """A newc cpio archive (what the kernel unpacks as an initramfs), built in
    memory with any owner and device nodes, no root needed."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
               nlink: int = 1) -> None:
        fields = [self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0]
        self.ino += 1
        head = b"070701" + b"".join(b"%08X" % v for v in fields)
        self.buf.write(head + name.encode() + b"\0")
        self.buf.write(b"\0" * (-self.buf.tell() % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self.ino = 0
        self._entry("TRAILER!!!", 0, nlink=1)
        self.buf.write(b"\0" * (-self.buf.tell() % 512))
        return self.buf.getvalue()


def make_initramfs(version: str, busybox: Path) -> bytes:
    """The gzip-compressed initramfs."""
    cpio = Cpio()
    for d in ("bin", "dev", "etc", "lib", "lib/modules", "mnt", "proc", "sys", "tmp"):
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/ttyS0", 4, 64)
    cpio.chardev("dev/null", 1, 3)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.file("init", INIT.encode(), 0o755)
    cpio.file("etc/udhcpc.script", UDHCPC_SCRIPT.encode(), 0o755)
    names = []
    for path in module_closure(version):
        name = path.name.split(".ko")[0]
        cpio.file(f"lib/modules/{name}.ko", _module_bytes(path))
        names.append(name)
    cpio.file("etc/modules", ("\n".join(names) + "\n").encode())
    return gzip.compress(cpio.finish(), compresslevel=6, mtime=0)


def _run(*argv: str | Path) -> None:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"{Path(str(argv[0])).name} failed ({proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()[:500]}")


def make_disk(kernel: Path, initrd: Path, dest: Path, work: Path) -> None:
    """The bootable FAT superfloppy with syslinux, converted to qcow2 at ``dest``."""
    for tool in ("mkfs.fat", "mcopy", "syslinux", "qemu-img"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            raise BuildError(f"{tool} is missing (install dosfstools, mtools, syslinux, "
                             "qemu-utils)")
    mkfs = shutil.which("mkfs.fat") or "/usr/sbin/mkfs.fat"
    raw = work / "disk.raw"
    size_kb = ((kernel.stat().st_size + initrd.stat().st_size) // 1024 + 4096 + 1023) // 1024 * 1024
    _run(mkfs, "-C", "-n", "ONESTACK", raw, str(size_kb))
    cfg = work / "syslinux.cfg"
    cfg.write_text(SYSLINUX_CFG)
    env_dest = f"-i{raw}"
    _run("mcopy", env_dest, kernel, "::vmlinuz")
    _run("mcopy", env_dest, initrd, "::initrd.img")
    _run("mcopy", env_dest, cfg, "::syslinux.cfg")
    _run("syslinux", "--install", raw)
    _run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, dest)
    raw.unlink()
    cfg.unlink()


def build(cache_dir: Path | str, kernel_version: str | None = None) -> TestImage:
    """The test image for this machine's kernel, built once under ``cache_dir``.

    Raises: BuildError."""
    cache = Path(cache_dir)
    version, kernel = find_kernel(kernel_version)
    busybox = _busybox()
    key = hashlib.sha256("\0".join([
        BUILDER_VERSION, version, _file_digest(kernel), _file_digest(busybox), INIT,
        UDHCPC_SCRIPT, SYSLINUX_CFG, ",".join(MODULES)]).encode()).hexdigest()[:16]
    final = cache / f"{version}-{key}"
    image = TestImage(version, final)
    if (final / "done").exists():
        return image
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    work.chmod(0o755)
    try:
        shutil.copyfile(kernel, work / "vmlinuz")
        (work / "initrd.img").write_bytes(make_initramfs(version, busybox))
        make_disk(work / "vmlinuz", work / "initrd.img", work / "disk.qcow2", work)
        (work / "done").write_text(version + "\n")
        try:
            os.rename(work, final)
        except OSError:  # another builder won the race: theirs is as good
            if not (final / "done").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the OneStack QEMU test image")
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--kernel-version")
    args = parser.parse_args(argv)
    try:
        image = build(args.cache_dir, args.kernel_version)
    except BuildError as exc:
        print(f"build_test_image: {exc}", file=sys.stderr)
        return 1
    print(f"kernel {image.kernel_version}\n{image.kernel}\n{image.initrd}\n{image.disk}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
