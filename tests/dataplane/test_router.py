"""Routers: routing between subnets, SNAT and floating IPs on an external bridge."""

from __future__ import annotations

import random
import uuid

from onestack.core.concurrency import run_command
from onestack.network.dataplane.linux import LinuxDriver
from onestack.network.dataplane.model import DesiredState, ExternalBridge
from tests.dataplane.helpers import Topo, must, rule


async def test_traffic_crosses_router(driver: LinuxDriver, vms) -> None:
    topo = Topo()
    s1, s2 = topo.network(), topo.network()
    group = topo.default_group()
    a, b = topo.port(s1, groups=(group,)), topo.port(s2, groups=(group,))
    vm_a, vm_b = await vms(a), await vms(b)
    router = topo.router(s1, s2)

    result = await driver.converge(topo.state())

    assert result.errors == ()
    assert {p.id for p in router.interfaces} <= result.active_ports
    await vm_a.dhcp()
    await vm_b.dhcp()
    assert await vm_a.reaches(b.fixed_ips[0].ip_address)
    # no NAT between interfaces: B sees A's own address
    rc, out, _ = await run_command("ip", "netns", "exec", f"qrouter-{router.id}",
                                   "nft", "list", "ruleset")
    assert rc == 0 and "snat" not in out


def _external(topo: Topo):
    """An external network on a bridge of its own, the host at .1 (its gateway)."""
    third = random.randrange(1, 250)
    physnet = "ext" + uuid.uuid4().hex[:6]
    bridge = "brx" + uuid.uuid4().hex[:5]
    topo.external.append(ExternalBridge(physical_network=physnet, bridge=bridge,
                                        host_cidr=f"172.30.{third}.1/24"))
    subnet = topo.network(f"172.30.{third}.0/24", dhcp=False, physnet=physnet, external=True)
    return subnet, bridge


async def test_floating_ip_and_snat(driver: LinuxDriver, vms) -> None:
    topo = Topo()
    ext, _ = _external(topo)
    inner = topo.network()
    group = topo.default_group(rule("ingress", "icmp"))
    with_fip = topo.port(inner, groups=(group,))
    without = topo.port(inner, groups=(group,))
    vm_fip, vm_snat = await vms(with_fip), await vms(without)
    fip = topo.ip(ext)
    topo.ip(ext)
    router = topo.router(inner, gateway=ext, fips=((fip, with_fip.fixed_ips[0].ip_address),))
    gw_ip = router.gateway_port.fixed_ips[0].ip_address  # type: ignore[union-attr]

    result = await driver.converge(topo.state())

    assert result.errors == ()
    await vm_fip.dhcp()
    await vm_snat.dhcp()
    host = ext.gateway_ip
    assert host is not None
    # the host reaches the VM by its floating IP
    ok = False
    for _ in range(3):
        rc, _, _ = await run_command("busybox", "ping", "-c", "1", "-W", "1", fip)
        if ok := rc == 0:
            break
    assert ok, "floating IP not reachable from the host"
    # the VMs reach the host: one as its floating IP, the other SNATed to the gateway
    assert await vm_fip.reaches(host)
    assert await vm_snat.reaches(host)
    assert await vm_snat.reaches(fip)  # a floating IP from inside its own network
    rc, out, _ = await run_command("ip", "netns", "exec", f"qrouter-{router.id}",
                                   "cat", "/proc/net/nf_conntrack")
    seen = [line for line in out.splitlines() if f"dst={host}" in line and "icmp" in line]
    assert any(f"src={with_fip.fixed_ips[0].ip_address}" in line and f"dst={fip}" in
               line.split("src=", 2)[2] for line in seen), seen
    assert any(f"src={without.fixed_ips[0].ip_address}" in line and f"dst={gw_ip}" in
               line.split("src=", 2)[2] for line in seen), seen


async def test_floating_ip_removed(driver: LinuxDriver, vms) -> None:
    topo = Topo()
    ext, _ = _external(topo)
    inner = topo.network()
    port = topo.port(inner, security=False)
    vm = await vms(port)
    fip = topo.ip(ext)
    router = topo.router(inner, gateway=ext, fips=((fip, port.fixed_ips[0].ip_address),))
    await driver.converge(topo.state())
    await vm.dhcp()
    assert (await run_command("busybox", "ping", "-c", "2", "-W", "1", fip))[0] == 0

    import dataclasses

    topo.routers[router.id] = dataclasses.replace(router, floating_ips=())
    result = await driver.converge(topo.state())

    assert result.errors == ()
    assert (await run_command("busybox", "ping", "-c", "1", "-W", "1", fip))[0] != 0


async def test_existing_external_bridge_is_borrowed(driver: LinuxDriver) -> None:
    """A bridge the operator made keeps living; only the host address goes."""
    bridge = "brx" + uuid.uuid4().hex[:5]
    third = random.randrange(1, 250)
    await must("ip", "link", "add", bridge, "type", "bridge")
    try:
        topo = Topo()
        topo.external.append(ExternalBridge(physical_network="x", bridge=bridge,
                                            host_cidr=f"172.30.{third}.1/24"))
        assert (await driver.converge(topo.state())).errors == ()
        assert f"172.30.{third}.1/24" in await must("ip", "-br", "addr", "show", "dev", bridge)

        await driver.converge(DesiredState(host="test"))

        out = await must("ip", "-br", "addr", "show", "dev", bridge)
        assert out.startswith(bridge) and "172.30." not in out
    finally:
        await run_command("ip", "link", "del", bridge)
