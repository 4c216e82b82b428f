"""Build (or find in its cache) the QEMU test image: kernel, initramfs and a
bootable qcow2 disk made from this machine's Debian kernel and busybox-static.

    .venv/bin/python tools/build_test_image.py CACHE_DIR [--kernel-version V]

Prints the kernel version and the paths of vmlinuz, initrd.img and disk.qcow2;
upload the disk to the image service (disk_format qcow2) to boot it as a server.
See src/onestack/compute/drivers/testimage.py for what the guest does.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from onestack.compute.drivers.testimage import main

if __name__ == "__main__":
    raise SystemExit(main())
