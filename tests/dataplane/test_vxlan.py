"""VXLAN to another host; the other host is a namespace wired by hand (real kernel)."""

from __future__ import annotations

import dataclasses
import random
import uuid

from onestack.core.concurrency import run_command
from onestack.network.dataplane.linux import LinuxDriver
from tests.dataplane.helpers import Topo, must


async def test_vxlan_reaches_a_peer_host(driver: LinuxDriver, vms) -> None:
    topo = Topo()
    subnet = topo.network(mtu=1450)
    vni = random.randrange(10_000, 16_000_000)
    net = topo.networks[subnet.network_id]
    topo.networks[net.id] = dataclasses.replace(net, segmentation_id=vni)
    port = topo.port(subnet, security=False)
    vm = await vms(port)
    third = random.randrange(1, 250)
    here, there = f"192.168.{third}.1", f"192.168.{third}.2"
    peer_ip = topo.ip(subnet)
    host_b, uplink = "hostb-" + uuid.uuid4().hex[:6], "u" + uuid.uuid4().hex[:8]
    await must("ip", "netns", "add", host_b)
    try:
        # the underlay, and the other host's half of the network (a bridge with an address)
        await must("ip", "link", "add", uplink, "type", "veth", "peer", "name", "eth0",
                   "netns", host_b)
        await must("ip", "addr", "add", f"{here}/30", "dev", uplink)
        await must("ip", "link", "set", uplink, "up")
        for cmd in (
            f"ip addr add {there}/30 dev eth0", "ip link set eth0 up",
            f"ip link add vxlan-{vni} type vxlan id {vni} local {there} dstport 4789",
            f"bridge fdb append 00:00:00:00:00:00 dev vxlan-{vni} dst {here}",
            "ip link add brb type bridge", f"ip link set vxlan-{vni} master brb up",
            f"ip addr add {peer_ip}/24 dev brb", "ip link set brb up",
        ):
            await must("ip", "netns", "exec", host_b, *cmd.split())
        state = dataclasses.replace(topo.state(), local_ip=here, tunnel_peers=(there,))

        result = await driver.converge(state)

        assert result.errors == ()
        await vm.dhcp()
        assert await vm.reaches(peer_ip)
        _, out, _ = await run_command("bridge", "fdb", "show", "dev", f"vxlan-{vni}")
        assert f"00:00:00:00:00:00 dst {there}" in out
        # a peer that goes away is no longer flooded to
        assert (await driver.converge(dataclasses.replace(state, tunnel_peers=()))).errors == ()
        _, out, _ = await run_command("bridge", "fdb", "show", "dev", f"vxlan-{vni}")
        assert f"00:00:00:00:00:00 dst {there}" not in out  # (learned MACs stay)
    finally:
        await run_command("ip", "link", "del", uplink)
        await run_command("ip", "netns", "del", host_b)
