"""Bridges, DHCP and the life cycle of what the driver owns (real kernel)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from onestack.core.concurrency import run_blocking
from onestack.network.dataplane import dnsmasq, make_driver
from onestack.network.dataplane import netns as kernel
from onestack.network.dataplane.linux import LinuxDriver
from onestack.network.dataplane.model import DesiredState, names
from tests.dataplane.conftest import MetadataLog
from tests.dataplane.helpers import Topo, must, owned_objects


async def test_two_ports_get_leases_and_ping(driver: LinuxDriver, vms) -> None:
    topo = Topo()
    subnet = topo.network(mtu=1450)
    group = topo.default_group()
    a, b = topo.port(subnet, groups=(group,)), topo.port(subnet, groups=(group,))
    vm_a, vm_b = await vms(a), await vms(b)

    result = await driver.converge(topo.state())

    assert result.errors == ()
    dhcp_port = next(p for p in topo.ports.values() if p.device_owner == "network:dhcp")
    assert result.active_ports == {a.id, b.id, dhcp_port.id}
    lease_a, lease_b = await vm_a.dhcp(), await vm_b.dhcp()
    assert lease_a["ip"] == a.fixed_ips[0].ip_address
    assert lease_b["ip"] == b.fixed_ips[0].ip_address
    assert lease_a["mtu"] == "1450"
    assert lease_a["router"] == subnet.gateway_ip
    dhcp_ip = dhcp_port.fixed_ips[0].ip_address
    # option 121: metadata via the DHCP port, and the default route with it
    assert lease_a["staticroutes"] == f"169.254.169.254/32 {dhcp_ip} 0.0.0.0/0 {subnet.gateway_ip}"
    assert lease_a["dns"] == dhcp_ip
    assert await vm_a.reaches(b.fixed_ips[0].ip_address)
    assert await vm_b.reaches(a.fixed_ips[0].ip_address)
    # dnsmasq also answers the ports' names
    name = "host-" + b.fixed_ips[0].ip_address.replace(".", "-")
    rc, out, err = await vm_a.sh("busybox", "nslookup", f"{name}.openstacklocal", dhcp_ip)
    assert rc == 0 and b.fixed_ips[0].ip_address in out, out + err


async def test_converge_twice_changes_nothing(driver: LinuxDriver, vms, owner: str,
                                              state_dir: Path) -> None:
    topo = Topo()
    subnet = topo.network()
    port = topo.port(subnet)
    await vms(port)
    state = topo.state()
    first = await driver.converge(state)
    before = await owned_objects(owner)
    pid = dnsmasq.read_pid(state_dir / "dhcp" / subnet.network_id)
    leases_mtime = os.stat(state_dir / "dhcp" / subnet.network_id / "host").st_mtime_ns

    second = await driver.converge(state)

    assert first == second and second.errors == ()
    assert await owned_objects(owner) == before
    assert dnsmasq.read_pid(state_dir / "dhcp" / subnet.network_id) == pid
    assert os.stat(state_dir / "dhcp" / subnet.network_id / "host").st_mtime_ns == leases_mtime
    assert len(before["namespaces"]) == 1 and len(before["tables"]) == 2


async def test_absent_tap_is_not_active(driver: LinuxDriver) -> None:
    topo = Topo()
    subnet = topo.network(dhcp=False)
    port = topo.port(subnet)

    result = await driver.converge(topo.state())

    assert result.errors == () and port.id not in result.active_ports


async def test_port_admin_down_is_detached(driver: LinuxDriver, vms) -> None:
    import dataclasses

    topo = Topo()
    subnet = topo.network(dhcp=False)
    port = topo.port(subnet, security=False)
    vm = await vms(port)
    assert port.id in (await driver.converge(topo.state())).active_ports
    topo.ports[port.id] = dataclasses.replace(port, admin_state_up=False)

    result = await driver.converge(topo.state())

    assert result.errors == () and port.id not in result.active_ports
    tap = await run_blocking(_link, vm.tap)
    assert tap is not None and tap.master is None


async def test_port_changes_reload_dnsmasq(driver: LinuxDriver, vms, state_dir: Path) -> None:
    topo = Topo()
    subnet = topo.network()
    await driver.converge(topo.state())
    pid = dnsmasq.read_pid(state_dir / "dhcp" / subnet.network_id)
    port = topo.port(subnet)  # a port added after dnsmasq started
    vm = await vms(port)

    result = await driver.converge(topo.state())

    assert result.errors == ()
    assert dnsmasq.read_pid(state_dir / "dhcp" / subnet.network_id) == pid  # SIGHUP, no restart
    assert (await vm.dhcp())["ip"] == port.fixed_ips[0].ip_address


async def test_empty_state_removes_everything(driver: LinuxDriver, vms, owner: str,
                                              state_dir: Path) -> None:
    topo = Topo()
    s1, s2 = topo.network(), topo.network()
    port = topo.port(s1)
    vm = await vms(port)
    topo.router(s1, s2)
    assert (await driver.converge(topo.state())).errors == ()
    assert (await owned_objects(owner))["namespaces"]

    result = await driver.converge(DesiredState(host="test"))

    assert result.errors == () and result.active_ports == frozenset()
    assert await owned_objects(owner) == {"links": [], "namespaces": [], "tables": []}
    assert not list((state_dir / "dhcp").iterdir())
    # the VM's tap is someone else's: detached and left in place
    tap = await run_blocking(_link, vm.tap)
    assert tap is not None and tap.master is None


def _link(name: str) -> kernel.Link | None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return kernel.get_link(ipr, name)


async def test_restart_adopts_dnsmasq(driver: LinuxDriver, vms, owner: str, state_dir: Path,
                                      metadata: MetadataLog) -> None:
    topo = Topo()
    subnet = topo.network()
    port = topo.port(subnet)
    vm = await vms(port)
    state = topo.state()
    await driver.converge(state)
    pid = dnsmasq.read_pid(state_dir / "dhcp" / subnet.network_id)
    await driver.close()  # the process stops; the kernel stays as it is

    again = make_driver("linux", owner=owner, state_dir=state_dir, metadata=metadata)
    try:
        result = await again.converge(state)
        assert result.errors == ()
        assert dnsmasq.read_pid(state_dir / "dhcp" / subnet.network_id) == pid
        assert pid is not None and dnsmasq.alive(pid)
        assert (await vm.dhcp())["ip"] == port.fixed_ips[0].ip_address
        rc, out, _ = await vm.sh("busybox", "wget", "-q", "-O-",
                                 "http://169.254.169.254/latest/meta-data/instance-id")
        assert rc == 0 and out == f"i-{subnet.network_id[:8]}"
    finally:
        await again.close()


async def test_reboot_is_rebuilt(driver: LinuxDriver, vms, owner: str, state_dir: Path) -> None:
    topo = Topo()
    s1, s2 = topo.network(), topo.network()
    a, b = topo.port(s1, security=False), topo.port(s2, security=False)
    vm_a, vm_b = await vms(a), await vms(b)
    topo.router(s1, s2)
    state = topo.state()
    await driver.converge(state)
    pid = dnsmasq.read_pid(state_dir / "dhcp" / s1.network_id)
    assert pid is not None

    # a reboot: namespaces, bridges and processes are gone, state_dir stays
    os.kill(pid, signal.SIGKILL)
    for ns in (await owned_objects(owner))["namespaces"]:  # type: ignore[union-attr]
        await must("ip", "netns", "del", ns)
    for net_id in (s1.network_id, s2.network_id):
        await must("ip", "link", "del", names.bridge(net_id))

    result = await driver.converge(state)

    assert result.errors == ()
    assert {a.id, b.id} <= result.active_ports
    new_pid = dnsmasq.read_pid(state_dir / "dhcp" / s1.network_id)
    assert new_pid != pid and new_pid is not None and dnsmasq.alive(new_pid)
    await vm_a.dhcp()
    await vm_b.dhcp()
    assert await vm_a.reaches(b.fixed_ips[0].ip_address)


async def test_unprivileged_dnsmasq_reloads(vms, owner: str, metadata: MetadataLog) -> None:
    """With a state dir others may enter, dnsmasq drops root and still re-reads its
    files on SIGHUP."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="onestack-dp-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    drv = make_driver("linux", owner=owner, state_dir=base, metadata=metadata)
    try:
        topo = Topo()
        subnet = topo.network()
        assert (await drv.converge(topo.state())).errors == ()
        pid = dnsmasq.read_pid(base / "dhcp" / subnet.network_id)
        assert pid is not None
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        assert next(line.split()[1] for line in status if line.startswith("Uid:")) != "0"
        port = topo.port(subnet, security=False)
        vm = await vms(port)

        assert (await drv.converge(topo.state())).errors == ()

        assert dnsmasq.read_pid(base / "dhcp" / subnet.network_id) == pid
        assert (await vm.dhcp())["ip"] == port.fixed_ips[0].ip_address
    finally:
        await drv.teardown()
        shutil.rmtree(base, ignore_errors=True)
    assert await owned_objects(owner) == {"links": [], "namespaces": [], "tables": []}


async def test_teardown_finds_everything_without_state_dir(
        driver: LinuxDriver, owner: str, state_dir: Path, tmp_path: Path,
        metadata: MetadataLog) -> None:
    """Ownership is read from the kernel: a driver that lost its state dir still
    removes the namespaces and stops the dnsmasq inside them."""
    topo = Topo()
    subnet = topo.network()
    topo.router(subnet)
    await driver.converge(topo.state())
    pid = dnsmasq.read_pid(state_dir / "dhcp" / subnet.network_id)
    assert pid is not None and dnsmasq.alive(pid)
    await driver.close()

    await make_driver("linux", owner=owner, state_dir=tmp_path / "lost",
                      metadata=metadata).teardown()

    assert not dnsmasq.alive(pid)
    assert await owned_objects(owner) == {"links": [], "namespaces": [], "tables": []}
