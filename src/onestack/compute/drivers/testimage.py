"""A tiny bootable guest for the QEMU driver's tests and benchmarks, built on
this machine from the installed Debian kernel and busybox-static (nothing is
downloaded).

``build(cache_dir)`` makes, once per kernel version and builder version:

* ``vmlinuz`` + ``initrd.img``: the kernel and a busybox initramfs whose
  ``/init`` prints markers on the serial console (``ttyS0``)::

      ONESTACK-TEST-IMAGE: booted
      ONESTACK-TEST-IMAGE: dhcp <ip>           (udhcpc on eth0; "dhcp none" if none)
      ONESTACK-TEST-IMAGE: metadata <uuid> (service)        (if DHCP routes 169.254.169.254)
      ONESTACK-TEST-IMAGE: config-drive iso9660 network_data=<yes|no>  (read it)
      ONESTACK-TEST-IMAGE: metadata <uuid> (config drive)   (else; "metadata none")
      -----BEGIN SSH HOST KEY KEYS-----                    (as cloud-init prints them)
      ssh-ed25519 AAAA... root@<hostname>
      -----END SSH HOST KEY KEYS-----
      ONESTACK-TEST-IMAGE: ssh <n> keys      (dropbear listens; "ssh none": no dropbear)
      ONESTACK-TEST-IMAGE: ready

  ``onestack.poweroff`` on the kernel command line powers off right after
  ``booted`` (a probe); ``onestack.debug`` prints modules and devices.

  The virtio-net, virtio-blk, iso9660, vfat and ACPI power button modules (and
  what they depend on, per ``modules.dep``) are in the initramfs; ``/init``
  loads them. The power button is handled (busybox ``acpid``), so an ACPI
  power-down (QMP ``system_powerdown``) really powers the guest off.

  With the metadata (from the service or the config drive) ``/init`` sets the
  hostname (``meta_data.json``'s ``hostname`` up to its first dot, as cloud-init
  does) and writes ``public_keys`` to ``/root/.ssh/authorized_keys``. When
  Debian's ``dropbear-bin`` is installed here, its ``dropbear`` and
  ``dropbearkey`` (with their ELF interpreter and shared libraries, as ``ldd``
  resolves them) are in the initramfs: ``/init`` makes a fresh ed25519 host key
  (none is shipped) and starts ``dropbear`` on port 22 (keys only) before
  ``ready``, so one can log in as root with the server's key pair, as Tempest's
  validation does. Without ``dropbear-bin`` the image is built without SSH
  (``TestImage.ssh`` is false; the build logs a warning). The guest's commands
  are busybox's: ``hostname``, ``free``, ``ip``, ``grep``, ``cat`` and the like,
  but no ``blkid`` or ``curl`` (``wget`` is there). For Tempest's remote client,
  ``sudo`` runs its command (everyone is root) and ``lsblk`` is a script that
  lists the whole disks from sysfs in util-linux's ``lsblk -lb --nodeps`` layout.

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
import logging
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

LOG = logging.getLogger(__name__)

BUILDER_VERSION = "6"
MARKER = "ONESTACK-TEST-IMAGE:"
BOOTED = f"{MARKER} booted"
READY = f"{MARKER} ready"
SSH_BINARIES = ("/usr/sbin/dropbear", "/usr/bin/dropbearkey")  # Debian's dropbear-bin
KERNEL_ARGS = "console=tty0 console=ttyS0 quiet panic=-1"  # the screen (VNC), then the serial console: /dev/console
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
SSHD=
if [ -x /usr/sbin/dropbear ]; then
    # a fresh host key and the server, while DHCP waits (logins wait for the keys)
    mkdir -p /dev/pts /etc/dropbear
    mount -t devpts devpts /dev/pts 2>/dev/null
    K=/etc/dropbear/dropbear_ed25519_host_key
    (dropbearkey -t ed25519 -f $K > /tmp/hostkey 2>&1
     dropbear -r $K -p 22 -s -E 2>/tmp/dropbear.log) &
    SSHD=$!
fi
IP=none
if ip link set eth0 up 2>/dev/null; then
    udhcpc -i eth0 -n -q -t 4 -T 1 -O staticroutes -s /etc/udhcpc.script >/dev/null 2>&1
    [ -s /tmp/ip ] && IP=$(cat /tmp/ip)
fi
echo "$M dhcp $IP" > /dev/ttyS0
UUID=
if [ -f /tmp/md-route ]; then
    # DHCP routed 169.254.169.254 (udhcpc.script): a networking service's metadata
    # proxy (QEMU's user-mode network would reach whatever the host reaches there)
    # busybox 1.35's wget -T crashes, hence timeout(1)
    timeout 10 wget -q -O /tmp/md.json http://169.254.169.254/openstack/latest/meta_data.json \
        2>/dev/null && UUID=$(sed -n 's/.*"uuid": *"\([^"]*\)".*/\1/p' /tmp/md.json)
    SRC=service
fi
if [ -z "$UUID" ]; then
    SRC="config drive"
    # Nova's ISO 9660 config drive: the device labelled config-2 (findfs), else
    # any disk or CD-ROM with an ISO 9660 file system that has the file
    for DEV in $(findfs LABEL=config-2 2>/dev/null) /dev/sr? /dev/vd? /dev/sd?; do
        [ -b "$DEV" ] && mount -t iso9660 -o ro "$DEV" /mnt 2>/dev/null || continue
        F=/mnt/openstack/latest/meta_data.json
        [ -f $F ] && cp $F /tmp/md.json && UUID=$(sed -n 's/.*"uuid": *"\([^"]*\)".*/\1/p' $F)
        ND=no; [ -f /mnt/openstack/latest/network_data.json ] && ND=yes
        [ -n "$UUID" ] && echo "$M config-drive iso9660 network_data=$ND" > /dev/ttyS0
        umount /mnt
        [ -n "$UUID" ] && break
    done
fi
if grep -q onestack.debug /proc/cmdline; then
    (cat /proc/modules; cat /proc/partitions; ls /dev /dev/input; ps; dmesg | tail -n 30) > /dev/ttyS0 2>&1
fi
echo "$M metadata ${UUID:-none}${UUID:+ ($SRC)}" > /dev/ttyS0
echo "127.0.0.1 localhost" > /etc/hosts
if [ -n "$UUID" ]; then
    # the hostname up to its first dot (cloud-init's default)
    HN=$(tr -d '\n' < /tmp/md.json | sed -n 's/.*"hostname": *"\([^"]*\)".*/\1/p')
    HN=${HN%%.*}
    [ -n "$HN" ] && hostname "$HN" && echo "$HN" > /etc/hostname \
        && echo "127.0.1.1 $HN" >> /etc/hosts
    # public_keys is an object, name -> key: the keys, one a line
    tr -d '\n' < /tmp/md.json | sed -n 's/.*"public_keys": *{\([^}]*\)}.*/\1/p' \
        | grep -o '"[^"]*": *"[^"]*"' | sed 's/^"[^"]*": *"//; s/"$//; s/\\n/\n/g; s/\\\//\//g' \
        | grep . > /tmp/keys
fi
mkdir -p /root/.ssh
chmod 700 /root /root/.ssh
touch /tmp/keys
cp /tmp/keys /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
if [ -n "$SSHD" ]; then
    wait $SSHD
    S="failed (see /tmp/hostkey, /tmp/dropbear.log)"
    for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        netstat -ltn 2>/dev/null | grep -q ':22 ' && S="$(grep -c . /root/.ssh/authorized_keys) keys" && break
        sleep 0.1
    done
    (echo "-----BEGIN SSH HOST KEY KEYS-----"
     grep '^ssh-' /tmp/hostkey
     echo "-----END SSH HOST KEY KEYS-----") > /dev/ttyS0
    echo "$M ssh $S" > /dev/ttyS0
else
    echo "$M ssh none" > /dev/ttyS0
fi
echo "$M ready" > /dev/ttyS0
while true; do sleep 3600; done
"""

UDHCPC_SCRIPT = r"""#!/bin/sh
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    # RFC 3442: with classless static routes (option 121: the metadata address
    # via the DHCP port, the default route) the router option is ignored
    if [ -n "$staticroutes" ]; then
        set -- $staticroutes
        while [ $# -ge 2 ]; do
            [ "$1" = 169.254.169.254/32 ] && : > /tmp/md-route
            if [ "$2" = 0.0.0.0 ]; then ip route add "$1" dev "$interface"
            else ip route add "$1" via "$2" dev "$interface"; fi
            shift 2
        done
    else
        for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    fi
    echo "$ip" > /tmp/ip
    ;;
esac
"""

# root (no password: keys only), for busybox, dropbear and glibc's lookups
ETC_FILES = {
    "etc/passwd": "root:*:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
    "etc/shells": "/bin/sh\n/bin/ash\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
}
# Tempest's remote client runs some commands with sudo: root needs none
SUDO = '#!/bin/sh\n[ "$1" = -- ] && shift\nexec "$@"\n'
# Tempest's remote client counts a guest's disks with `lsblk -lb --nodeps` (a TYPE
# column, "disk" under its start); busybox has no lsblk: whole devices from sysfs
LSBLK = r"""#!/bin/sh
f='%-7s %-7s %2s %14s %2s %-4s %s\n'
printf "$f" NAME MAJ:MIN RM SIZE RO TYPE MOUNTPOINT
for d in /sys/block/*; do
  n=${d##*/}
  case $n in loop*|ram*|zram*) continue;; esac
  t=disk
  case $n in sr*) t=rom;; esac
  printf "$f" "$n" "$(cat "$d/dev")" "$(cat "$d/removable")" \
    "$(( $(cat "$d/size") * 512 ))" "$(cat "$d/ro")" "$t" ""
done
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

    @property
    def ssh(self) -> bool:
        """Whether the guest runs an SSH server (dropbear was installed here)."""
        return (self.directory / "ssh").exists()

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


def _elf_interpreter(path: Path) -> str | None:
    """The ELF interpreter (``PT_INTERP``) of a 64-bit little-endian ELF file."""
    with path.open("rb") as f:
        head = f.read(64)
        if head[:6] != b"\x7fELF\x02\x01":
            return None
        phoff = int.from_bytes(head[32:40], "little")
        phentsize = int.from_bytes(head[54:56], "little")
        phnum = int.from_bytes(head[56:58], "little")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        for i in range(phnum):
            ph = table[i * phentsize:(i + 1) * phentsize]
            if int.from_bytes(ph[0:4], "little") == 3:  # PT_INTERP
                f.seek(int.from_bytes(ph[8:16], "little"))
                return f.read(int.from_bytes(ph[32:40], "little")).rstrip(b"\0").decode()
    return None


def ssh_files(binaries: tuple[str, ...] = SSH_BINARIES) -> tuple[dict[str, Path], str]:
    """What the guest needs to run dropbear: (guest path -> host file, for the
    binaries, their ELF interpreter (at the path the binaries name) and their
    shared libraries (where ``ldd`` finds them here, which the guest's loader
    searches too); ""). When dropbear is not installed or its libraries cannot
    be resolved: ({}, why), and the image is built without SSH."""
    missing = [b for b in binaries if not Path(b).is_file()]
    if missing:
        return {}, f"{', '.join(missing)} missing (install dropbear-bin)"
    ldd = shutil.which("ldd")
    if ldd is None:
        return {}, "no ldd to resolve dropbear's libraries"
    files: dict[str, Path] = {}
    for binary in binaries:
        files[binary] = Path(binary)
        interp = _elf_interpreter(Path(binary))
        if interp is None:
            return {}, f"{binary} is not a 64-bit dynamic ELF file"
        files[interp] = Path(interp)
        proc = subprocess.run([ldd, binary], capture_output=True, text=True, check=False,
                              env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        if proc.returncode != 0:
            return {}, f"ldd {binary} failed: {proc.stderr.strip()[:200]}"
        for line in proc.stdout.splitlines():
            name, arrow, rest = line.strip().partition(" => ")
            if not arrow:
                continue  # the vDSO, the interpreter
            lib = rest.split(" (")[0].strip()
            if not lib.startswith("/"):
                return {}, f"{binary} needs {name}: {lib}"
            files[lib] = Path(lib)
    return files, ""


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

    def dir(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | mode, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self.ino = 0
        self._entry("TRAILER!!!", 0, nlink=1)
        self.buf.write(b"\0" * (-self.buf.tell() % 512))
        return self.buf.getvalue()


def make_initramfs(version: str, busybox: Path, ssh: dict[str, Path] | None = None) -> bytes:
    """The gzip-compressed initramfs; with ``ssh`` (``ssh_files()``), those files too."""
    cpio = Cpio()
    dirs = ["bin", "dev", "etc", "lib", "lib/modules", "mnt", "proc", "sys", "tmp", "usr",
            "usr/bin"]
    for guest in sorted(ssh or {}):
        parts = guest.strip("/").split("/")[:-1]
        dirs += ["/".join(parts[:i + 1]) for i in range(len(parts))]
    for d in dict.fromkeys(dirs):
        cpio.dir(d)
    cpio.dir("root", 0o700)
    for name, text in ETC_FILES.items():
        cpio.file(name, text.encode())
    cpio.file("usr/bin/sudo", SUDO.encode(), 0o755)
    cpio.file("usr/bin/lsblk", LSBLK.encode(), 0o755)
    for guest, host in sorted((ssh or {}).items()):
        cpio.file(guest.strip("/"), host.read_bytes(), 0o755)
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
    ssh, no_ssh = ssh_files()
    key = hashlib.sha256("\0".join([
        BUILDER_VERSION, version, _file_digest(kernel), _file_digest(busybox), INIT,
        UDHCPC_SCRIPT, SYSLINUX_CFG, ",".join(MODULES), repr(sorted(ETC_FILES.items())), SUDO, LSBLK,
        *(f"{g}={_file_digest(h)}" for g, h in sorted(ssh.items()))]).encode()).hexdigest()[:16]
    final = cache / f"{version}-{key}"
    image = TestImage(version, final)
    if (final / "done").exists():
        return image
    if no_ssh:
        LOG.warning("building the test image without SSH: %s", no_ssh)
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    work.chmod(0o755)
    try:
        shutil.copyfile(kernel, work / "vmlinuz")
        (work / "initrd.img").write_bytes(make_initramfs(version, busybox, ssh))
        if ssh:
            (work / "ssh").write_text("".join(f"{g}\n" for g in sorted(ssh)))
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
    print("ssh: dropbear on port 22" if image.ssh else
          "ssh: none (install dropbear-bin for an SSH server in the guest)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
