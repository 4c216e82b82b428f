"""A real guest on a tenant network: the qemu driver (TCG, ``qemu_network = "tap"``)
and the Linux data plane in one in-process cloud. QEMU makes the guest's tap when it
starts, after its port was bound to this host; the networking agent must plug it
into the network's bridge at once (its periodic pass is an hour away here), or the
guest's DHCP gives up after a few seconds and prints ``dhcp none``.

Needs root, network namespaces, nft, dnsmasq and busybox (as tests/dataplane) and
the QEMU tools (as the rest of this directory); skipped otherwise.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from onestack.compute.drivers import testimage
from onestack.core import config
from onestack.network.app import owner_id, purge_dataplane
from onestack.network.dataplane.model import names
from tests.api.compute.conftest import Compute
from tests.api.network.conftest import Net
from tests.compute_qemu.conftest import qemu_settings
from tests.compute_qemu.test_api_boot import console, upload
from tests.conftest import Cloud
from tests.dataplane.conftest import REASON
from tests.dataplane.helpers import owned_objects
from tests.dataplane.test_vm_taps import tasks_idle

PLUGGED_WITHIN = 3.0  # seconds from QEMU making the tap to the tap on the bridge

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(REASON is not None, reason=f"Linux data plane unavailable: {REASON}"),
]


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, image: testimage.TestImage
             ) -> config.Settings:
    return qemu_settings(tmp_path, database_url, qemu_network="tap", network={
        "dataplane": "linux", "external_bridge": "brx" + uuid.uuid4().hex[:6],
        "external_cidr": f"172.29.{random.randint(0, 255)}.0/24",
        "external_masquerade": False, "host": "qemu-" + uuid.uuid4().hex[:6],
        "resync_interval": 3600.0})


@pytest.fixture(autouse=True)
async def purge(settings: config.Settings) -> AsyncIterator[None]:
    """After the cloud stops (it leaves its data plane up for running guests), remove
    its kernel objects: none may be left."""
    yield
    await purge_dataplane(settings.data_dir)
    assert await owned_objects(owner_id(settings.data_dir)) == {
        "links": [], "namespaces": [], "tables": []}


@pytest.fixture
async def nova(cloud: Cloud) -> AsyncIterator[Compute]:
    c = Compute(cloud)
    yield c
    # never leave a guest running, whatever the test did
    for pidfile in Path(c.state.driver.dir).glob("*/qemu.pid"):
        try:
            os.kill(int(pidfile.read_text()), 9)
        except (ValueError, ProcessLookupError):
            pass


async def test_guest_gets_dhcp_through_the_bridge(nova: Compute,
                                                  image: testimage.TestImage) -> None:
    net = Net(nova.cloud)
    n = await net.network(name="tenant")
    await net.subnet(n["id"], "10.65.0.0/24")
    img = await upload(nova, image.disk)
    # DHCP up and the agent idle first: the pass that follows the DHCP port's creation
    # must not be the one that finds the guest's tap
    st = nova.cloud.app.state.runtime.extras["network"]
    async with asyncio.timeout(30):
        while not (await dhcp_active(net, n["id"]) and await tasks_idle(st)):
            await asyncio.sleep(0.1)
    srv = await nova.boot(imageRef=img["id"], flavorRef="42", networks=[{"uuid": n["id"]}])
    sid = srv["server"]["id"]
    async with asyncio.timeout(30):  # compute makes the port while it builds the server
        while not (ports := (await net.req("GET", f"/ports?device_id={sid}")).json()["ports"]):
            await asyncio.sleep(0.05)
    (port,) = ports
    ip = port["fixed_ips"][0]["ip_address"]
    tap = Path("/sys/class/net") / names.tap(port["id"])
    plugged = await plug_delay(tap, names.bridge(n["id"]))
    assert plugged < PLUGGED_WITHIN, f"the tap waited {plugged:.1f}s for its bridge"
    await nova.wait(sid, "ACTIVE", timeout=60)

    out = await console(nova, sid, testimage.READY, timeout=120)
    assert f"{testimage.MARKER} dhcp {ip}" in out, out  # dnsmasq answered via the bridge
    assert f"{testimage.MARKER} metadata {sid}" in out, out
    assert (await net.show("port", port["id"]))["status"] == "ACTIVE"

    driver = nova.state.driver
    assert driver.pid(sid) is not None
    r = await nova.req("DELETE", f"/servers/{sid}")
    assert r.status_code == 204, r.text
    await nova.gone(sid, timeout=30)
    assert driver.pid(sid) is None and not driver.guest_dir(sid).exists()
    assert not tap.exists()  # QEMU's tap went with it
    r = await net.req("GET", f"/ports?device_id={sid}")
    assert r.json()["ports"] == []


async def plug_delay(tap: Path, bridge: str, timeout: float = 30) -> float:
    """Seconds from ``tap`` appearing to its being on ``bridge`` (polled)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        while not tap.exists():
            await asyncio.sleep(0.02)
    appeared = loop.time()
    try:
        async with asyncio.timeout(timeout):
            while not (tap / "master").exists() or (tap / "master").resolve().name != bridge:
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{tap.name} not on {bridge} after {timeout}s") from None
    return loop.time() - appeared


async def dhcp_active(net: Net, network_id: str) -> bool:
    r = await net.req("GET", f"/ports?network_id={network_id}&device_owner=network:dhcp")
    return any(p["status"] == "ACTIVE" for p in r.json()["ports"])
