"""The QEMU driver's interfaces: a NIC hot-plugged into a running TCG guest (its
tap appears on the host, QEMU shows the virtio-net device with the port's MAC)
and unplugged again (the guest lets it go through ACPI, the tap disappears),
and a NIC given to a stopped guest that it has at its next start; and the
same through ``/servers/{id}/os-interface`` with the qemu driver behind the
compute API (user-mode networking, no data plane)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from onestack.compute.drivers import qemu, testimage
from onestack.compute.drivers.base import InstanceSpec
from onestack.compute.drivers.qemu import QemuDriver
from onestack.compute.models import Instance
from tests.api.compute.conftest import Compute
from tests.compute_qemu.test_api_boot import nova, settings, upload  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

BOOT_TIMEOUT = 60.0


def _port(n: int) -> dict[str, Any]:
    return {"port_id": str(uuid.uuid4()), "network_id": "net", "fixed_ips": [],
            "mac_address": f"fa:16:3e:7a:00:{n:02x}"}


def _tap_exists(port: dict[str, Any]) -> bool:
    return Path(f"/sys/class/net/{qemu.tap_name(port['port_id'])}").exists()


async def _ethernet_macs(driver: QemuDriver, uuid_: str) -> list[str]:
    """The MACs of the guest's NICs as QEMU's PCI bus has them (query-pci, then
    each device's ``mac`` property)."""
    buses = await driver._qmp(uuid_, "query-pci")
    ids = [d.get("qdev_id") for bus in buses for d in bus["devices"]
           if d["class_info"].get("desc") == "Ethernet controller"]
    nics = await driver._live_nics(uuid_)
    assert len(ids) == len(nics), (ids, nics)
    return sorted(nics)


def _argv_macs(driver: QemuDriver, uuid_: str) -> list[str]:
    argv = json.loads((driver.guest_dir(uuid_) / "qemu.json").read_text())
    return sorted(v.split("mac=")[1].split(",")[0] for a, v in itertools.pairwise(argv)
                  if a == "-device" and "mac=" in v)


async def test_hotplug_and_unplug(make_driver: Callable[..., QemuDriver]) -> None:
    if os.geteuid() != 0:
        pytest.skip("QEMU makes taps only as root")
    driver = make_driver(network="tap")
    p1, p2, p3 = _port(1), _port(2), _port(3)
    spec = InstanceSpec(str(uuid.uuid4()), "instance-0000001a", 1, 192, 1,
                        image={"id": "test-image"}, ports=(p1,))
    sid = spec.uuid
    await driver.spawn(spec)
    # the guest is up (its ACPI hot-plug handling with it) once it says ready
    await qemu.wait_for_text(driver.console_path(sid), testimage.READY, BOOT_TIMEOUT)
    assert await _ethernet_macs(driver, sid) == [p1["mac_address"]]
    assert _tap_exists(p1) and not _tap_exists(p2)

    await driver.attach_interface(spec, p2)
    assert await _ethernet_macs(driver, sid) == [p1["mac_address"], p2["mac_address"]]
    assert _tap_exists(p2)
    assert _argv_macs(driver, sid) == [p1["mac_address"], p2["mac_address"]]
    await driver.attach_interface(spec, p2)  # a second call finds it done
    assert await _ethernet_macs(driver, sid) == [p1["mac_address"], p2["mac_address"]]
    assert _argv_macs(driver, sid) == [p1["mac_address"], p2["mac_address"]]

    # out again: the hot-plugged one, then the one it booted with
    await driver.detach_interface(sid, p2)
    assert await _ethernet_macs(driver, sid) == [p1["mac_address"]]
    assert not _tap_exists(p2)
    assert _argv_macs(driver, sid) == [p1["mac_address"]]
    await driver.detach_interface(sid, p2)  # nothing to do
    await driver.detach_interface(sid, p1)
    assert await _ethernet_macs(driver, sid) == []
    assert not _tap_exists(p1)
    assert _argv_macs(driver, sid) == []
    assert (await driver.get_info(sid)).power_state == 1

    # a stopped guest gets its NIC when it starts
    await driver.power_off(sid)
    await driver.attach_interface(spec, p3)
    assert not _tap_exists(p3)
    assert _argv_macs(driver, sid) == [p3["mac_address"]]
    await driver.power_on(sid)
    assert await _ethernet_macs(driver, sid) == [p3["mac_address"]]
    assert _tap_exists(p3)
    await driver.destroy(sid)
    assert not _tap_exists(p3)


# -- through the API ----------------------------------------------------------------------

async def test_attach_and_detach_through_the_api(nova: Compute,  # noqa: F811
                                                 image: testimage.TestImage) -> None:
    img = await upload(nova, image.disk)
    sid = (await nova.boot(imageRef=img["id"], flavorRef="42"))["server"]["id"]
    await nova.wait(sid, "ACTIVE", timeout=60)
    driver: QemuDriver = nova.state.driver
    await qemu.wait_for_text(driver.console_path(sid), testimage.READY, BOOT_TIMEOUT)
    booted_with = await _ethernet_macs(driver, sid)  # slirp's NIC of a guest without ports

    net = await nova.network(nova.cloud.admin_token, "10.41.0.0/24")
    r = await nova.req("POST", f"/servers/{sid}/os-interface",
                       json={"interfaceAttachment": {"net_id": net["id"]}})
    assert r.status_code == 200, r.text
    att = r.json()["interfaceAttachment"]
    mac = att["mac_addr"]
    assert sorted([*booted_with, mac]) == await _ethernet_macs(driver, sid)
    assert mac in _argv_macs(driver, sid)
    srv = await nova.wait(sid, "ACTIVE")
    assert [a["OS-EXT-IPS-MAC:mac_addr"] for a in srv["addresses"][net["name"]]] == [mac]

    r = await nova.req("DELETE", f"/servers/{sid}/os-interface/{att['port_id']}")
    assert r.status_code == 202, r.text
    async with asyncio.timeout(60):
        while True:
            async with nova.state.db.read() as s:
                ports = await s.scalar(select(Instance.network_info)
                                       .where(Instance.uuid == sid))
            if not ports:
                break
            await asyncio.sleep(0.2)
    assert await _ethernet_macs(driver, sid) == booted_with
    assert mac not in _argv_macs(driver, sid)
    assert await nova.ports(id=att["port_id"]) == []
    r = await nova.req("DELETE", f"/servers/{sid}")
    assert r.status_code == 204
    await nova.gone(sid, timeout=30)

