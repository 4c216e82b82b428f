"""Real-kernel fixtures for the Linux data plane.

These tests need root, network namespaces, nft, dnsmasq and busybox; without them
every test here is skipped. Each test gets its own owner (so tests never see each
other's objects, nor a running cloud's), a driver, and namespaces standing in for VMs;
at the end the driver tears down and nothing of the owner may be left.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from onestack.network.dataplane import dnsmasq, make_driver, probe_linux
from onestack.network.dataplane.linux import LinuxDriver
from onestack.network.dataplane.model import PortState
from tests.dataplane.helpers import Vm, owned_objects


def _why_not() -> str | None:
    for tool in ("nft", "dnsmasq", "busybox", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return probe_linux()


REASON = _why_not()
HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if REASON is None:
        return
    skip = pytest.mark.skip(reason=f"Linux data plane unavailable: {REASON}")
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@dataclass
class MetadataLog:
    """The metadata callable given to the driver, recording what it is asked."""

    calls: list[tuple[str, str, str, str]] = field(default_factory=list)

    async def __call__(self, network_id: str, source_ip: str, method: str, path: str,
                       headers: dict[str, str], body: bytes
                       ) -> tuple[int, dict[str, str], bytes]:
        self.calls.append((network_id, source_ip, method, path))
        if path.rstrip("/") == "/latest/meta-data/instance-id":
            return 200, {"Content-Type": "text/plain"}, f"i-{network_id[:8]}".encode()
        return 404, {}, b"not found\n"


@pytest.fixture
def owner() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def metadata() -> MetadataLog:
    return MetadataLog()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "dataplane"
    path.mkdir()
    return path


@pytest.fixture
async def driver(owner: str, state_dir: Path, metadata: MetadataLog
                 ) -> AsyncIterator[LinuxDriver]:
    drv = make_driver("linux", owner=owner, state_dir=state_dir, metadata=metadata)
    assert isinstance(drv, LinuxDriver)
    try:
        yield drv
    finally:
        await drv.teardown()
        assert await owned_objects(owner) == {"links": [], "namespaces": [], "tables": []}
        assert not [p for p in _dnsmasq_pids(state_dir)], "dnsmasq left running"


def _dnsmasq_pids(state_dir: Path) -> list[int]:
    import os

    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and dnsmasq.alive(int(entry)):
            line = dnsmasq.cmdline(int(entry))
            if line and line[0] == "dnsmasq" and any(str(state_dir) in a for a in line):
                pids.append(int(entry))
    return pids


@pytest.fixture
async def vms(tmp_path: Path) -> AsyncIterator[Callable[[PortState], Awaitable[Vm]]]:
    made: list[Vm] = []

    async def make(port: PortState) -> Vm:
        vm = Vm(port, tmp_path)
        made.append(vm)
        return await vm.create()

    try:
        yield make
    finally:
        for vm in made:
            await vm.delete()
