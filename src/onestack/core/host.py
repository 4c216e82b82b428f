"""What this machine allows: root, network namespaces, QEMU, KVM."""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class HostCapabilities:
    root: bool
    network_namespaces: bool
    qemu: str | None
    qemu_img: str | None
    dev_kvm: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def probe() -> HostCapabilities:
    """A quick look (no guest is started): whether KVM really works is decided by
    the compute service, which boots a probe guest with a timeout."""
    root = os.geteuid() == 0
    netns = root and os.path.exists("/proc/self/ns/net") and shutil.which("ip") is not None
    return HostCapabilities(
        root=root,
        network_namespaces=netns,
        qemu=shutil.which("qemu-system-x86_64"),
        qemu_img=shutil.which("qemu-img"),
        dev_kvm=os.access("/dev/kvm", os.R_OK | os.W_OK),
    )
