"""A VM's tap appears after its port was bound to the host (QEMU makes it when it
starts): the agent must wire it at once, not at its next periodic pass.

The cloud's resync interval is an hour here, and nothing changes through the API
once the taps are made, so only the Linux driver's link watcher can do it.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute
from sqlalchemy import func, select

from onestack.core import config
from onestack.core.concurrency import run_blocking
from onestack.core.tasks import PENDING, RUNNING
from onestack.network.app import purge_dataplane
from onestack.network.dataplane import netns as kernel
from onestack.network.dataplane.linux import LinuxDriver
from onestack.network.dataplane.model import names
from onestack.network.models import Task
from tests.api.network.conftest import Net
from tests.conftest import Cloud

pytestmark = pytest.mark.slow

WIRED_WITHIN = 5.0  # seconds; the resync interval is 3600


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> config.Settings:
    return config.load(
        tmp_path / "data", environ={}, database_url=database_url, port=8780, access_log=False,
        identity={"password_time_cost": 1, "password_memory_cost_kib": 1024},
        compute={"compute_driver": "fake"},  # no guests
        network={"dataplane": "linux", "external_bridge": "brx" + uuid.uuid4().hex[:6],
                 "external_cidr": f"172.29.{random.randint(0, 255)}.0/24",
                 "external_masquerade": False, "host": "taps-" + uuid.uuid4().hex[:6],
                 "resync_interval": 3600.0},
    )


@pytest.fixture(autouse=True)
async def purge(settings: config.Settings) -> AsyncIterator[None]:
    yield
    await purge_dataplane(settings.data_dir)


@pytest.fixture
def net(cloud: Cloud) -> Net:
    return Net(cloud)


@pytest.fixture
def taps() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    with IPRoute() as ipr:
        for name in made:
            if kernel.get_link(ipr, name) is not None:
                ipr.link("del", ifname=name)


def add_tap(name: str) -> None:
    """What QEMU does with ``-netdev tap,ifname=...``: a tap, down, on no bridge."""
    with IPRoute() as ipr:
        ipr.link("add", ifname=name, kind="tuntap", mode="tap")


def del_tap(name: str) -> None:
    with IPRoute() as ipr:
        ipr.link("del", ifname=name)


def link(name: str) -> kernel.Link | None:
    with IPRoute() as ipr:
        return kernel.get_link(ipr, name)


async def wait_for(check: Any, timeout: float, what: str) -> float:
    """Poll ``check`` until true; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():
        if loop.time() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)
    return loop.time() - start


async def tasks_idle(st: Any) -> bool:
    async with st.db.read() as s:
        busy = await s.scalar(select(func.count()).select_from(Task).where(
            Task.kind.startswith("converge:"), Task.state.in_((PENDING, RUNNING))))
    return not busy


async def test_new_taps_are_wired_without_waiting_for_the_resync(
        net: Net, taps: list[str]) -> None:
    st = net.cloud.app.state.runtime.extras["network"]
    agent = st.agent
    assert isinstance(agent.driver, LinuxDriver)
    n = await net.network()
    await net.subnet(n["id"], "10.64.0.0/24")
    ports = [await net.create("port", network_id=n["id"], device_owner="compute:nova",
                              device_id=str(uuid.uuid4()), **{"binding:host_id": st.host})
             for _ in range(2)]

    async def dhcp_up() -> bool:
        r = await net.req("GET", f"/ports?network_id={n['id']}&device_owner=network:dhcp")
        dhcp = r.json()["ports"]
        return bool(dhcp) and dhcp[0]["status"] == "ACTIVE"

    await wait_for(dhcp_up, 20, "the DHCP port")
    await wait_for(lambda: tasks_idle(st), 20, "the converge tasks")
    bridge = await run_blocking(link, names.bridge(n["id"]))
    assert bridge is not None
    for p in ports:
        assert (await net.show("port", p["id"]))["status"] == "DOWN"  # no tap yet
    # the DHCP veth the passes made did not make the watcher ask for more passes
    passes = agent.passes
    await asyncio.sleep(0.5)
    assert agent.passes == passes

    names_ = [names.tap(p["id"]) for p in ports]
    taps.extend(names_)
    for name in names_:  # two VMs starting together
        await run_blocking(add_tap, name)

    async def wired() -> bool:
        links = [await run_blocking(link, name) for name in names_]
        if not all(x is not None and x.master == bridge.index and x.up for x in links):
            return False
        return all([(await net.show("port", p["id"]))["status"] == "ACTIVE" for p in ports])

    took = await wait_for(wired, WIRED_WITHIN, "the taps on the bridge and ACTIVE ports")
    assert took < WIRED_WITHIN
    assert await tasks_idle(st)
    assert 1 <= agent.passes - passes <= 2, agent.passes - passes

    # a tap that goes away and comes back (a reboot of the guest) is wired again
    await run_blocking(del_tap, names_[0])
    await run_blocking(add_tap, names_[0])
    await wait_for(wired, WIRED_WITHIN, "the re-made tap")

    # closing the driver stops its watcher at once (the cloud's shutdown does this)
    watcher = agent.driver._watcher
    assert watcher is not None and not watcher.done()
    async with asyncio.timeout(2):
        await agent.driver.close()
    assert watcher.done() and agent.driver._watcher is None
