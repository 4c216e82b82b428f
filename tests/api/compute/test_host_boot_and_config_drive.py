"""What the compute service hands the driver and does at start, with the fake
driver: the config drive's files rendered by the service (network_data.json
from the networking API), and Nova's ``resume_guests_state_on_host_boot``."""

from __future__ import annotations

import json

import pytest

from onestack.compute.drivers.base import RUNNING, SHUTDOWN, DriverError
from onestack.compute.service import servers as servers_svc
from tests.api.compute.conftest import Compute


async def test_the_build_hands_the_driver_the_rendered_config_drive(nova: Compute) -> None:
    img = await nova.image()
    net = await nova.network(nova.cloud.demo_token)
    srv = await nova.boot(nova.cloud.demo_token, imageRef=img["id"],
                          networks=[{"uuid": net["id"]}], metadata={"role": "web"},
                          user_data="aGVsbG8=")
    sid = srv["server"]["id"]
    shown = await nova.wait(sid, "ACTIVE", token=nova.cloud.demo_token)
    assert shown["config_drive"] == "True"  # forced, so recorded, as Nova's update_instance
    files = nova.state.driver.guests[sid].spec.config_drive_files
    assert files is not None  # [compute] config_drive (force) is on by default
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta["uuid"] == sid and meta["meta"] == {"role": "web"}
    assert files["openstack/latest/user_data"] == b"hello"
    port = (await nova.ports(device_id=sid))[0]
    nd = json.loads(files["openstack/latest/network_data.json"])
    assert nd["links"][0]["vif_id"] == port["id"]
    assert nd["links"][0]["ethernet_mac_address"] == port["mac_address"]
    assert "ec2/latest/meta-data.json" in files and "openstack/2018-08-27/vendor_data2.json" in files


async def test_no_config_drive_unless_asked_when_it_is_not_forced(
        nova: Compute, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nova.state.settings.compute, "config_drive", False)
    img = await nova.image()
    plain = (await nova.boot(imageRef=img["id"]))["server"]["id"]
    asked = (await nova.boot(imageRef=img["id"], config_drive=True))["server"]["id"]
    assert (await nova.wait(plain, "ACTIVE"))["config_drive"] == ""
    assert (await nova.wait(asked, "ACTIVE"))["config_drive"] == "True"
    guests = nova.state.driver.guests
    assert guests[plain].spec.config_drive_files is None
    files = guests[asked].spec.config_drive_files
    assert files is not None and json.loads(
        files["openstack/latest/meta_data.json"])["uuid"] == asked


async def test_guests_that_ran_before_the_host_rebooted_start_again(
        nova: Compute, monkeypatch: pytest.MonkeyPatch) -> None:
    st = nova.state
    driver = st.driver
    img = await nova.image()
    ids = [(await nova.boot(imageRef=img["id"]))["server"]["id"] for _ in range(4)]
    running, crashed, stopped, failing = ids
    for sid in ids:
        await nova.wait(sid, "ACTIVE")
    r = await nova.req("POST", f"/servers/{stopped}/action", json={"os-stop": None})
    assert r.status_code == 202, r.text
    await nova.wait(stopped, "SHUTOFF")

    # the host rebooted: the guests' processes are gone (the fake keeps its dict)
    for sid in (crashed, stopped, failing):
        driver.guests[sid].power_state = SHUTDOWN
    real_power_on = driver.power_on
    calls: list[str] = []

    async def power_on(uuid: str) -> None:
        calls.append(uuid)
        if uuid == failing:
            raise DriverError("the disk is gone")
        await real_power_on(uuid)

    monkeypatch.setattr(driver, "power_on", power_on)
    assert await servers_svc.resume_guests_state(st) == 1
    assert sorted(calls) == sorted([crashed, failing])  # not the running, not the stopped one
    assert driver.guests[crashed].power_state == RUNNING
    assert driver.guests[running].power_state == RUNNING
    assert driver.guests[stopped].power_state == SHUTDOWN
    srv = await nova.wait(stopped, "SHUTOFF")
    assert srv["OS-EXT-STS:power_state"] == SHUTDOWN
    srv = await nova.wait(crashed, "ACTIVE")
    assert srv["OS-EXT-STS:power_state"] == RUNNING
    srv = await nova.wait(failing, "ERROR")
    assert "Failed to resume instance" in srv["fault"]["message"]
    # as in Nova, no instance action records it
    r = await nova.req("GET", f"/servers/{crashed}/os-instance-actions")
    assert [a["action"] for a in r.json()["instanceActions"]] == ["create"]

    # a second start (OneStack restarted alone) finds them all as they are
    calls.clear()
    assert await servers_svc.resume_guests_state(st) == 0
    assert calls == []
