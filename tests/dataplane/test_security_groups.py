"""Security groups on bridge ports: stateful, per port, anti-spoofing (real kernel)."""

from __future__ import annotations

import asyncio
import contextlib

from onestack.network.dataplane.linux import LinuxDriver
from tests.dataplane.helpers import Topo, Vm, rule

PORT = 8080


async def _serve_once(vm: Vm) -> asyncio.subprocess.Process:
    """``nc -l`` in the VM: answers "pong" to the first connection, prints what it got."""
    proc = await asyncio.create_subprocess_shell(
        f"echo pong | ip netns exec {vm.name} busybox nc -l -p {PORT}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    for _ in range(50):  # until it listens
        _, out, _ = await vm.sh("cat", "/proc/net/tcp")
        if f":{PORT:04X} 00000000:0000 0A" in out:
            break
        await asyncio.sleep(0.02)
    return proc


async def _connect(vm: Vm, address: str) -> str:
    """Send "ping" to ``address``:PORT from ``vm``; what came back ("" if nothing)."""
    proc = await asyncio.create_subprocess_shell(
        f"echo ping | ip netns exec {vm.name} busybox nc -w 1 {address} {PORT}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 3)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return ""
    return out.decode().strip()


async def _stop(proc: asyncio.subprocess.Process) -> str:
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 3)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        out, _ = await proc.communicate()
    return out.decode().strip()


async def test_ingress_needs_a_rule(driver: LinuxDriver, vms) -> None:
    topo = Topo()
    subnet = topo.network()
    client_group, server_group = topo.default_group(), topo.default_group()
    client = topo.port(subnet, groups=(client_group,))
    server = topo.port(subnet, groups=(server_group,))
    vm_client, vm_server = await vms(client), await vms(server)
    assert (await driver.converge(topo.state())).errors == ()
    await vm_client.dhcp()
    await vm_server.dhcp()
    address = server.fixed_ips[0].ip_address
    listener = await _serve_once(vm_server)
    try:
        # default rules: ingress only from the server's own group
        assert await _connect(vm_client, address) == ""
        assert not await vm_client.ping(address)

        topo.add_rules(server_group, rule("ingress", "tcp", PORT, PORT),
                       rule("ingress", "icmp", 8, 0))
        assert (await driver.converge(topo.state())).errors == ()

        assert await _connect(vm_client, address) == "pong"  # the reply is established
        assert await _stop(listener) == "ping"
        assert await vm_client.reaches(address)
        # the server may not open connections to the client (only replies flow back)
        assert not await vm_server.ping(client.fixed_ips[0].ip_address)
    finally:
        await _stop(listener)


async def test_remote_group_and_prefix(driver: LinuxDriver, vms) -> None:
    topo = Topo()
    subnet = topo.network()
    group = topo.default_group()
    a, b = topo.port(subnet, groups=(group,)), topo.port(subnet, groups=(group,))
    other_group = topo.group(rule("egress"))
    outsider = topo.port(subnet, groups=(other_group,))
    vm_a, vm_b, vm_out = await vms(a), await vms(b), await vms(outsider)
    await driver.converge(topo.state())
    for vm in (vm_a, vm_b, vm_out):
        await vm.dhcp()

    assert await vm_b.reaches(a.fixed_ips[0].ip_address)  # same group
    assert not await vm_out.ping(a.fixed_ips[0].ip_address)  # not a member

    topo.add_rules(group, rule("ingress", "icmp", prefix=f"{outsider.fixed_ips[0].ip_address}/32"))
    await driver.converge(topo.state())
    assert await vm_out.reaches(a.fixed_ips[0].ip_address)


async def test_no_egress_rules_keep_dhcp_and_metadata(driver: LinuxDriver, vms) -> None:
    topo = Topo()
    subnet = topo.network()
    closed = topo.group(rule("ingress", "icmp"))  # no egress rule at all
    port = topo.port(subnet, groups=(closed,))
    peer = topo.port(subnet, security=False)
    vm, vm_peer = await vms(port), await vms(peer)
    assert (await driver.converge(topo.state())).errors == ()

    assert (await vm.dhcp())["ip"] == port.fixed_ips[0].ip_address
    rc, out, _ = await vm.sh("busybox", "wget", "-q", "-O-",
                             "http://169.254.169.254/latest/meta-data/instance-id")
    assert rc == 0 and out.startswith("i-")
    await vm_peer.dhcp()
    assert not await vm.ping(peer.fixed_ips[0].ip_address)  # egress dropped
    assert await vm_peer.reaches(port.fixed_ips[0].ip_address)  # ingress icmp allowed


async def test_spoofed_source_is_dropped(driver: LinuxDriver, vms) -> None:
    topo = Topo()
    subnet = topo.network()
    a = topo.port(subnet, groups=(topo.default_group(),))
    b = topo.port(subnet, security=False)  # takes anything: only a's anti-spoofing can drop
    vm_a, vm_b = await vms(a), await vms(b)
    await driver.converge(topo.state())
    await vm_a.dhcp()
    await vm_b.dhcp()
    target = b.fixed_ips[0].ip_address
    assert await vm_a.reaches(target)
    spoofed = topo.ip(subnet)
    await vm_a.sh("ip", "addr", "add", f"{spoofed}/24", "dev", "eth0")

    assert not await vm_a.ping_from(spoofed, target)

    # an allowed address pair makes the same address legitimate
    import dataclasses

    from onestack.network.dataplane.model import AddressPair

    topo.ports[a.id] = dataclasses.replace(
        a, allowed_address_pairs=(AddressPair(spoofed, a.mac_address),))
    await driver.converge(topo.state())
    assert await vm_a.ping_from(spoofed, target)


async def test_port_security_disabled_is_open(driver: LinuxDriver, vms) -> None:
    topo = Topo()
    subnet = topo.network()
    a = topo.port(subnet, groups=(topo.group(rule("egress")),))
    b = topo.port(subnet, security=False)
    vm_a, vm_b = await vms(a), await vms(b)
    await driver.converge(topo.state())
    await vm_a.dhcp()
    await vm_b.dhcp()

    assert await vm_a.reaches(b.fixed_ips[0].ip_address)  # b takes anything
    assert not await vm_b.ping(a.fixed_ips[0].ip_address)  # a has no ingress rule


async def test_stateless_group_needs_rules_for_replies(driver: LinuxDriver, vms) -> None:
    topo = Topo()
    subnet = topo.network()
    group = topo.group(rule("ingress", "icmp"), stateful=False)
    port = topo.port(subnet, groups=(group,))
    peer = topo.port(subnet, security=False)
    vm, vm_peer = await vms(port), await vms(peer)
    await driver.converge(topo.state())
    await vm.dhcp()
    await vm_peer.dhcp()
    address = port.fixed_ips[0].ip_address

    assert not await vm_peer.ping(address)  # the echo reply is egress, and not allowed

    topo.add_rules(group, rule("egress", "icmp"))
    await driver.converge(topo.state())
    assert await vm_peer.reaches(address)
