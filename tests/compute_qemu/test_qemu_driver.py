"""The QEMU driver with real guests (the test image under TCG, user-mode
networking, so QEMU's slirp answers the guest's DHCP)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from onestack.compute.drivers import qemu, testimage
from onestack.compute.drivers.base import (
    PAUSED,
    RUNNING,
    SHUTDOWN,
    SUSPENDED,
    DriverError,
    GuestNotFound,
    InstanceSpec,
)
from onestack.compute.drivers.qemu import QemuDriver

M = testimage.MARKER
BOOT_TIMEOUT = 45.0


def spec(uuid: str = "5f0c6a8e-1b7e-4c6b-9a51-0c1d2e3f4a5b", **kw: object) -> InstanceSpec:
    fields: dict[str, Any] = {"name": "instance-0000000a", "vcpus": 1, "memory_mb": 192,
                              "root_gb": 1, "image": {"id": "test-image"}}
    fields.update(kw)
    return InstanceSpec(uuid, **fields)


def console_size(driver: QemuDriver, uuid: str) -> int:
    try:
        return driver.console_path(uuid).stat().st_size
    except FileNotFoundError:
        return 0


async def wait(driver: QemuDriver, uuid: str, text: str, offset: int = 0) -> str:
    return await qemu.wait_for_text(driver.console_path(uuid), text, BOOT_TIMEOUT, offset)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
async def test_spawn_boots_to_ready_and_a_new_driver_adopts_it(
        make_driver: Callable[..., QemuDriver]) -> None:
    driver = make_driver()
    s = spec()
    started = time.monotonic()
    await driver.spawn(s)
    pid = driver.pid(s.uuid)
    assert pid is not None and alive(pid)
    log = await wait(driver, s.uuid, testimage.READY)
    boot_s = time.monotonic() - started
    assert f"{M} booted" in log
    assert f"{M} dhcp 10.0.2.15" in log  # slirp's DHCP
    assert f"{M} metadata {s.uuid}" in log  # read from the config drive
    assert (await driver.get_info(s.uuid)).power_state == RUNNING
    assert f"{M} ready" in await driver.console_output(s.uuid)
    print(f"spawn to ready: {boot_s:.1f} s")

    await driver.spawn(s)  # idempotent: the same process, the image fetched once
    assert driver.pid(s.uuid) == pid
    assert driver.fetched == ["test-image"]  # type: ignore[attr-defined]
    disk = driver.guest_dir(s.uuid) / "disk"
    assert disk.exists() and disk.stat().st_size < 5 << 20  # an overlay, not a copy

    # OneStack restarts: the old driver object is gone, the guest keeps running
    # and a new driver finds it from its pidfile and QMP socket
    del driver
    again = make_driver()
    await again.start()
    assert again.pid(s.uuid) == pid
    assert (await again.get_info(s.uuid)).power_state == RUNNING
    await again.pause(s.uuid)
    assert (await again.get_info(s.uuid)).power_state == PAUSED
    await again.unpause(s.uuid)
    assert (await again.get_info(s.uuid)).power_state == RUNNING

    await again.destroy(s.uuid)
    assert not alive(pid)
    assert not again.guest_dir(s.uuid).exists()
    await again.destroy(s.uuid)  # nothing left: still fine
    with pytest.raises(GuestNotFound):
        await again.get_info(s.uuid)


@pytest.mark.slow
async def test_power_off_on_and_reboot(make_driver: Callable[..., QemuDriver]) -> None:
    driver = make_driver()
    s = spec("0a6f2e0c-8d55-4f11-b0f7-2a1e4f5b6c7d")
    started = time.monotonic()
    await driver.spawn(s)
    await wait(driver, s.uuid, testimage.READY)
    print(f"spawn to ready: {time.monotonic() - started:.1f} s")
    pid = driver.pid(s.uuid)
    assert pid is not None

    # hard reboot: the same process, the guest boots again
    started = time.monotonic()
    offset = console_size(driver, s.uuid)
    await driver.reboot(s.uuid, hard=True)
    assert driver.pid(s.uuid) == pid
    await wait(driver, s.uuid, f"{M} booted", offset)
    await wait(driver, s.uuid, f"{M} dhcp", offset)  # acpid runs from here on
    print(f"hard reboot: {time.monotonic() - started:.1f} s")

    # soft reboot: ACPI power-off, then a new process on the same disk
    started = time.monotonic()
    offset = console_size(driver, s.uuid)
    await driver.reboot(s.uuid, hard=False)
    assert f"{M} poweroff".encode() in driver.console_path(s.uuid).read_bytes()[offset:]
    pid = driver.pid(s.uuid)
    assert pid is not None
    await wait(driver, s.uuid, f"{M} dhcp", offset)
    print(f"soft reboot: {time.monotonic() - started:.1f} s")

    # power off: the guest takes the ACPI power button and QEMU ends
    started = time.monotonic()
    offset = console_size(driver, s.uuid)
    await driver.power_off(s.uuid)
    assert time.monotonic() - started < driver.shutdown_timeout  # not the fallback quit
    assert f"{M} poweroff".encode() in driver.console_path(s.uuid).read_bytes()[offset:]
    assert not alive(pid) and driver.pid(s.uuid) is None
    assert (await driver.get_info(s.uuid)).power_state == SHUTDOWN
    await driver.power_off(s.uuid)  # again: nothing to do
    with pytest.raises(DriverError):
        await driver.pause(s.uuid)  # not running

    # power on: a new process on the same disk; the console log goes on
    offset = console_size(driver, s.uuid)
    started = time.monotonic()
    await driver.power_on(s.uuid)
    new_pid = driver.pid(s.uuid)
    assert new_pid is not None and new_pid != pid
    assert (await driver.get_info(s.uuid)).power_state == RUNNING
    await wait(driver, s.uuid, f"{M} booted", offset)
    print(f"power on to booted: {time.monotonic() - started:.1f} s")
    await driver.power_on(s.uuid)  # idempotent
    assert driver.pid(s.uuid) == new_pid

    await driver.destroy(s.uuid)
    assert not alive(new_pid)


@pytest.mark.slow
async def test_suspend_saves_the_memory_and_resume_goes_on(
        make_driver: Callable[..., QemuDriver]) -> None:
    """Suspend is a managed save: QEMU ends, the guest's memory is in a file, a new
    driver (a restarted host) still finds the guest suspended, and resume carries
    on where the guest was, with no new boot. A reboot of a suspended guest is a
    fresh boot, and drops the saved memory."""
    driver = make_driver()
    s = spec("3c1d9a6e-5b2f-4e7a-8c0d-1f2e3a4b5c6d")
    await driver.spawn(s)
    await wait(driver, s.uuid, testimage.READY)
    pid = driver.pid(s.uuid)
    assert pid is not None
    gdir = driver.guest_dir(s.uuid)

    started = time.monotonic()
    await driver.suspend(s.uuid)
    print(f"suspend: {time.monotonic() - started:.1f} s")
    assert not alive(pid) and driver.pid(s.uuid) is None
    saved = gdir / qemu.MEMORY_SAVE
    assert saved.stat().st_size > 1 << 20 and not (gdir / f"{qemu.MEMORY_SAVE}.tmp").exists()
    assert (await driver.get_info(s.uuid)).power_state == SUSPENDED
    again = make_driver()  # what a restarted host finds
    assert (await again.get_info(s.uuid)).power_state == SUSPENDED
    await again.suspend(s.uuid)  # done already
    assert again.pid(s.uuid) is None and saved.exists()

    offset = console_size(driver, s.uuid)
    started = time.monotonic()
    await again.resume(s.uuid)
    print(f"resume: {time.monotonic() - started:.1f} s")
    assert again.pid(s.uuid) is not None and not saved.exists()
    assert (await again.get_info(s.uuid)).power_state == RUNNING
    await again.resume(s.uuid)  # running already: nothing to do
    # the guest goes on from where it was: its acpid takes the power button, and
    # it never booted again
    await again.power_off(s.uuid)
    log = driver.console_path(s.uuid).read_bytes()[offset:]
    assert f"{M} poweroff".encode() in log and f"{M} booted".encode() not in log, log

    # a suspended guest that is rebooted boots afresh, its saved memory dropped
    await again.power_on(s.uuid)
    await wait(driver, s.uuid, f"{M} dhcp", offset)
    await again.suspend(s.uuid)
    assert saved.exists()
    offset = console_size(driver, s.uuid)
    await again.reboot(s.uuid, hard=True)
    await wait(driver, s.uuid, f"{M} booted", offset)
    assert not saved.exists() and not (gdir / qemu.SUSPEND_MARK).exists()
    await again.destroy(s.uuid)


@pytest.mark.slow
async def test_power_off_falls_back_to_quit_when_the_guest_ignores_acpi(
        make_driver: Callable[..., QemuDriver]) -> None:
    # before /init has started acpid nobody listens to the power button
    driver = make_driver(shutdown_timeout=0.5)
    s = spec("7d1e0b3a-9c2f-4e8d-a6b5-4c3d2e1f0a9b")
    await driver.spawn(s)
    pid = driver.pid(s.uuid)
    assert pid is not None
    await driver.pause(s.uuid)  # a paused guest cannot answer ACPI
    await driver.power_off(s.uuid)
    assert not alive(pid)
    assert (await driver.get_info(s.uuid)).power_state == SHUTDOWN
    await driver.destroy(s.uuid)


async def test_unknown_guests_and_bad_images(make_driver: Callable[..., QemuDriver],
                                             tmp_path: Path) -> None:
    driver = make_driver(accel="tcg")
    uuid = "00000000-0000-4000-8000-000000000000"
    for call in (driver.power_off, driver.power_on, driver.pause, driver.unpause,
                 driver.get_info, driver.console_output):
        with pytest.raises(GuestNotFound):
            await call(uuid)
    with pytest.raises(GuestNotFound):
        await driver.reboot(uuid, hard=True)
    with pytest.raises(GuestNotFound):
        await driver.get_info("../etc")
    await driver.destroy(uuid)  # idempotent

    # a broken image (a qcow2 header and garbage) fails the spawn, leaves no guest
    # behind and is not used again
    async def bad_fetch(img: dict[str, Any], dest: Path) -> None:
        dest.write_bytes(b"QFI\xfb" + b"\xff" * 1020)

    bad = make_driver(accel="tcg", image_fetcher=bad_fetch)
    s = spec(uuid, image={"id": "broken"})
    with pytest.raises(DriverError, match="not a disk image|unsupported format"):
        await bad.spawn(s)
    assert not bad.guest_dir(uuid).exists()
    assert [p.name for p in bad.base_dir.iterdir()] == []
    with pytest.raises(GuestNotFound):
        await bad.get_info(uuid)

    nofetch = make_driver(accel="tcg", image_fetcher=None)
    with pytest.raises(DriverError, match="no image fetcher"):
        await nofetch.spawn(spec(uuid, image={"id": "never-seen"}))
    assert not nofetch.guest_dir(uuid).exists()


async def test_tap_nics_are_named_after_their_ports(
        make_driver: Callable[..., QemuDriver]) -> None:
    driver = make_driver(accel="tcg", network="tap")
    # as servers.py's network_info has them
    port = {"port_id": "3b9f1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "network_id": "n1",
            "mac_address": "fa:16:3e:01:02:03", "fixed_ips": []}
    argv = await driver._argv(spec(ports=(port,)))
    assert qemu.tap_name(port["port_id"]) == "tap3b9f1c2d-4e"
    assert "tap,id=net0,ifname=tap3b9f1c2d-4e,script=no,downscript=no" in argv
    assert "virtio-net-pci,netdev=net0,mac=fa:16:3e:01:02:03" in argv
    assert "-daemonize" in argv and "pc,accel=tcg" in argv
    # no ports: no NIC with taps; one slirp NIC in user mode
    assert "-netdev" not in await driver._argv(spec())
    user = make_driver(accel="tcg", network="user")
    assert "user,id=net0" in await user._argv(spec())


async def test_inventory(make_driver: Callable[..., QemuDriver]) -> None:
    inv = await make_driver(accel="tcg").inventory()
    assert inv.hypervisor_type == "QEMU"
    assert inv.vcpus == (os.cpu_count() or 1) and inv.memory_mb > 0 and inv.local_gb > 0


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                    reason="QEMU needs root and /dev/net/tun to create tap devices")
async def test_a_port_gets_its_tap_device(make_driver: Callable[..., QemuDriver]) -> None:
    driver = make_driver(network="tap", config_drive=False)
    port = {"port_id": "c0ffee00-1234-4abc-8def-0123456789ab", "mac_address": "fa:16:3e:aa:bb:cc"}
    s = spec("2c9d8e7f-6a5b-4c3d-8e1f-0a9b8c7d6e5f", ports=(port,))
    tap = Path("/sys/class/net") / qemu.tap_name(port["port_id"])
    assert not tap.exists()
    await driver.spawn(s)
    assert tap.exists()  # the network agent plugs it into the port's bridge
    assert (tap / "tun_flags").exists()
    await driver.destroy(s.uuid)
    assert not tap.exists()  # QEMU made it, and it went with QEMU


async def test_the_http_image_fetcher(tmp_path: Path) -> None:
    import httpx

    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("x-auth-token")))
        if request.url.path.endswith("/gone/file"):
            return httpx.Response(404, json={"message": "no"})
        return httpx.Response(200, content=b"x" * (3 << 20))

    async def headers() -> dict[str, str]:
        return {"X-Auth-Token": "svc-token"}

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler),
                                 base_url="http://cloud") as http:
        fetch = qemu.http_image_fetcher(http, headers)
        await fetch({"id": "img-1"}, tmp_path / "img")
        assert (tmp_path / "img").stat().st_size == 3 << 20
        with pytest.raises(DriverError, match="HTTP 404"):
            await fetch({"id": "gone"}, tmp_path / "gone")
    assert seen == [("/image/v2/images/img-1/file", "svc-token"),
                    ("/image/v2/images/gone/file", "svc-token")]


def rendered_files(uuid: str, user_data: bytes) -> dict[str, bytes]:
    """The config drive's files as the compute service renders them for a server
    with a key, metadata, user data and one port on a subnet with DHCP."""
    import base64

    from onestack.compute.models import Instance
    from onestack.compute.service import metadata as md

    inst = Instance(
        id=10, uuid=uuid, project_id="p1", user_id="u1", display_name="vm", hostname="vm",
        reservation_id="r-1", launch_index=0, image_ref="test-image", image={},
        flavor={"name": "m1.tiny"}, vcpus=1, memory_mb=192, root_gb=1, ephemeral_gb=0,
        key_name="k", key_data="ssh-ed25519 AAAA test",
        user_data=base64.b64encode(user_data).decode(), metadata_={"role": "web"}, tags=[],
        security_groups=["default"], network_info=[], availability_zone="nova",
        vm_state="active")
    port = {"id": "c0ffee00-1234-4abc-8def-0123456789ab", "network_id": "n1",
            "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.2.15"}]}
    net = md.NetworkView(ports=[port], subnets={"s1": {"cidr": "10.0.2.0/24",
                                                       "gateway_ip": "10.0.2.2"}},
                         networks={"n1": {"mtu": 1500}}, dhcp_servers={"s1": "10.0.2.2"})
    return md.InstanceMetadata(inst, net).config_drive_files()


def test_the_config_drive_is_nova_s_iso(tmp_path: Path) -> None:
    import json

    import pycdlib

    from onestack.compute.drivers import configdrive

    uuid = "5f0c6a8e-1b7e-4c6b-9a51-0c1d2e3f4a5b"
    files = rendered_files(uuid, b"#!/bin/sh\necho hi\n")
    drive = tmp_path / "disk.config"
    configdrive.make_iso(drive, files)
    assert drive.read_bytes()[0x8001:0x8006] == b"CD001"  # an ISO 9660 volume

    iso = pycdlib.PyCdlib()
    iso.open(str(drive))
    try:
        assert iso.pvd.volume_identifier.decode().rstrip() == "config-2"
        assert iso.has_rock_ridge() and iso.has_joliet()
    finally:
        iso.close()
    label, back = configdrive.read_iso(drive)
    assert label == "config-2"
    assert back == files  # every file, byte for byte, under its Rock Ridge name
    meta = json.loads(back["openstack/latest/meta_data.json"])
    assert meta["uuid"] == uuid and meta["meta"] == {"role": "web"}
    assert meta["public_keys"] == {"k": "ssh-ed25519 AAAA test"}
    assert back["openstack/latest/user_data"] == b"#!/bin/sh\necho hi\n"
    nd = json.loads(back["openstack/latest/network_data.json"])
    assert nd["links"][0]["ethernet_mac_address"] == "fa:16:3e:00:00:01"
    assert nd["networks"][0]["type"] == "ipv4_dhcp"
    assert "ec2/latest/meta-data.json" in back and "openstack/2012-08-10/meta_data.json" in back

    # a spec without rendered files (the driver alone) still gets meta_data and user_data
    fb = configdrive.fallback_files(spec(user_data="aGk=", metadata={"a": "b"}))
    configdrive.make_iso(tmp_path / "fallback", fb)
    assert configdrive.read_iso(tmp_path / "fallback")[1] == fb
    assert fb["openstack/latest/user_data"] == b"hi"
    with pytest.raises(DriverError, match="bad path"):
        configdrive.make_iso(tmp_path / "bad", {"../x": b""})


@pytest.mark.slow
async def test_the_guest_reads_the_config_drive_the_service_renders(
        make_driver: Callable[..., QemuDriver]) -> None:
    from onestack.compute.drivers import configdrive

    driver = make_driver(config_drive=False)  # only the spec's files make a drive
    uuid = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
    files = rendered_files(uuid, b"hello")
    await driver.spawn(spec(uuid, config_drive_files=files))
    drive = driver.guest_dir(uuid) / "disk.config"
    assert configdrive.read_iso(drive) == ("config-2", files)
    log = await wait(driver, uuid, testimage.READY)
    # slirp has no metadata service: the guest mounted the ISO (-t iso9660)
    assert f"{M} config-drive iso9660 network_data=yes" in log
    assert f"{M} metadata {uuid} (config drive)" in log
    await driver.destroy(uuid)

    # no files and config_drive off: no drive, the guest finds no metadata
    other = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"
    await driver.spawn(spec(other))
    assert not (driver.guest_dir(other) / "disk.config").exists()
    log = await wait(driver, other, testimage.READY)
    assert f"{M} metadata none" in log and "config-drive" not in log
    await driver.destroy(other)
