"""The data-plane driver contract and the factory that picks a driver for this host.

A driver makes one host match a ``DesiredState``. Drivers:

* ``linux`` (``linux.LinuxDriver``): bridges, veths, namespaces, dnsmasq, nftables;
* ``fake`` (``fake.FakeDriver``): no I/O, records the state, every port active;
* ``OffDriver``: what ``auto`` gives a host that cannot run ``linux`` (not root, no
  network namespaces); like the fake, plus a status line saying why.
"""

from __future__ import annotations

import abc
import os
import re
import shutil
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from onestack.network.dataplane.model import ConvergeResult, DesiredState

OWNER_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

MetadataHandler = Callable[
    [str, str, str, str, dict[str, str], bytes], Awaitable[tuple[int, dict[str, str], bytes]]
]
"""``(network_id, source_ip, method, path, headers, body) -> (status, headers, body)``:
answers a VM's metadata request (the caller proxies to compute)."""


class Driver(abc.ABC):
    """Makes this host's data plane match a ``DesiredState``."""

    name = "abstract"  # "linux", "fake" or "off": which driver this is

    @abc.abstractmethod
    async def converge(self, state: DesiredState) -> ConvergeResult:
        """Create and update what ``state`` names; remove what this driver owns and
        ``state`` no longer names. Idempotent: a second call with the same state
        changes nothing. Problems with single objects do not raise: they are
        reported in ``ConvergeResult.errors`` and the rest is still converged.

        Raises:
            OSError: the host cannot be worked on at all (no netlink, say).
        """

    @abc.abstractmethod
    async def teardown(self) -> None:
        """Remove everything this driver's owner has on the host (found by its
        mark in the kernel, so even without the state dir).

        Raises:
            RuntimeError: what could not be removed.
        """

    async def close(self) -> None:
        """Release what lives in this process (servers, threads) and leave the
        kernel as it is: what a process that stops, to be started again, does."""

    @abc.abstractmethod
    def status(self) -> str:
        """One line for ``onestack status``."""


def probe_linux() -> str | None:
    """Why the ``linux`` driver cannot run here (None: it can): root, ``nft`` and
    ``dnsmasq``, and a network namespace really created and deleted."""
    if os.geteuid() != 0:
        return "not root"
    for tool in ("nft", "dnsmasq"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    from onestack.network.dataplane import netns

    name = "onestack-probe-" + uuid.uuid4().hex[:8]
    try:
        netns.ensure_namespace(name, "probe")
    except Exception as exc:  # noqa: BLE001 - any failure means no namespaces
        return f"network namespaces unavailable ({exc})"
    finally:
        try:
            netns.delete_namespace(name)
        except OSError:
            pass
    return None


def make_driver(kind: str, *, owner: str, state_dir: Path | str,
                metadata: MetadataHandler) -> Driver:
    """The driver for ``kind``: "linux", "fake" or "auto" (linux if this host can run
    it, else an ``OffDriver`` whose status says why).

    Raises:
        ValueError: unknown kind, or an owner that is not 1-32 letters, digits, "_" or "-".
    """
    if not OWNER_RE.match(owner):
        raise ValueError(f"invalid data-plane owner {owner!r}")
    from onestack.network.dataplane.fake import FakeDriver, OffDriver

    if kind == "fake":
        return FakeDriver()
    if kind == "auto":
        reason = probe_linux()
        if reason is not None:
            return OffDriver(reason)
        kind = "linux"
    if kind == "linux":
        from onestack.network.dataplane.linux import LinuxDriver

        return LinuxDriver(owner=owner, state_dir=Path(state_dir), metadata=metadata)
    raise ValueError(f"unknown data-plane driver {kind!r}")
