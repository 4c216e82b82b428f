"""Building desired states by hand, and namespaces that stand in for VMs."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import random
import uuid
from pathlib import Path

from onestack.core.concurrency import run_blocking, run_command
from onestack.network.dataplane import netns as kernel
from onestack.network.dataplane.model import (
    DEVICE_OWNER_DHCP,
    DEVICE_OWNER_ROUTER_GW,
    DEVICE_OWNER_ROUTER_INTF,
    DesiredState,
    ExternalBridge,
    FixedIP,
    FloatingIPState,
    NetworkState,
    PortState,
    RouterState,
    SecurityGroupRuleState,
    SecurityGroupState,
    SubnetState,
    names,
)


def uid() -> str:
    return str(uuid.uuid4())


def mac() -> str:
    return "fa:16:3e:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))


def rule(direction: str, protocol: str | None = None, lo: int | None = None,
         hi: int | None = None, *, prefix: str | None = None, group: str | None = None,
         ethertype: str = "IPv4") -> SecurityGroupRuleState:
    return SecurityGroupRuleState(id=uid(), direction=direction, ethertype=ethertype,
                                  protocol=protocol, port_range_min=lo, port_range_max=hi,
                                  remote_ip_prefix=prefix, remote_group_id=group)


class Topo:
    """A desired state assembled step by step (the model is frozen)."""

    def __init__(self) -> None:
        self.networks: dict[str, NetworkState] = {}
        self.ports: dict[str, PortState] = {}
        self.routers: dict[str, RouterState] = {}
        self.groups: dict[str, SecurityGroupState] = {}
        self.external: list[ExternalBridge] = []
        self._next: dict[str, int] = {}

    def state(self) -> DesiredState:
        members: dict[str, list[str]] = {}
        for port in self.ports.values():
            for gid in port.security_group_ids:
                members.setdefault(gid, []).extend(f.ip_address for f in port.fixed_ips)
                members[gid].extend(p.ip_address for p in port.allowed_address_pairs)
        return DesiredState(host="test", networks=dict(self.networks), ports=dict(self.ports),
                            routers=dict(self.routers), security_groups=dict(self.groups),
                            group_members={g: tuple(m) for g, m in members.items()},
                            external_bridges=tuple(self.external))

    def network(self, cidr: str | None = None, *, dhcp: bool = True, mtu: int = 1500,
                physnet: str | None = None, external: bool = False,
                gateway: str | None = "auto") -> SubnetState:
        """A network with one IPv4 subnet (and a DHCP port at .2 when ``dhcp``)."""
        cidr = cidr or f"10.{random.randrange(100, 250)}.{random.randrange(256)}.0/24"
        net = ipaddress.ip_network(cidr)
        gw = str(net.network_address + 1) if gateway == "auto" else gateway
        net_id = uid()
        subnet = SubnetState(id=uid(), network_id=net_id, cidr=cidr, ip_version=4,
                             gateway_ip=gw, enable_dhcp=dhcp)
        self.networks[net_id] = NetworkState(
            id=net_id, mtu=mtu, network_type="flat" if physnet else "vxlan",
            physical_network=physnet, segmentation_id=None if physnet else 100,
            admin_state_up=True, external=external, subnets=(subnet,))
        self._next[subnet.id] = 10
        if dhcp:
            self.port(subnet, owner=DEVICE_OWNER_DHCP, ip=str(net.network_address + 2))
        return subnet

    def ip(self, subnet: SubnetState) -> str:
        n = self._next[subnet.id]
        self._next[subnet.id] = n + 1
        return str(ipaddress.ip_network(subnet.cidr).network_address + n)

    def port(self, subnet: SubnetState, *, owner: str = "compute:nova", ip: str | None = None,
             groups: tuple[str, ...] = (), security: bool = True, add: bool = True,
             **kw: object) -> PortState:
        port = PortState(id=uid(), network_id=subnet.network_id, mac_address=mac(),
                         fixed_ips=(FixedIP(subnet.id, ip or self.ip(subnet)),),
                         device_owner=owner, device_id=uid(), port_security_enabled=security,
                         security_group_ids=groups, **kw)  # type: ignore[arg-type]
        if add:
            self.ports[port.id] = port
        return port

    def group(self, *rules: SecurityGroupRuleState, gid: str | None = None,
              stateful: bool = True) -> str:
        gid = gid or uid()
        self.groups[gid] = SecurityGroupState(id=gid, stateful=stateful, rules=tuple(rules))
        return gid

    def default_group(self, *extra: SecurityGroupRuleState) -> str:
        """Neutron's default group: all egress, ingress from members of the group."""
        gid = uid()
        return self.group(rule("egress"), rule("ingress", group=gid), *extra, gid=gid)

    def add_rules(self, gid: str, *rules: SecurityGroupRuleState) -> None:
        group = self.groups[gid]
        self.groups[gid] = dataclasses.replace(group, rules=group.rules + rules)

    def router(self, *subnets: SubnetState, gateway: SubnetState | None = None,
               fips: tuple[tuple[str, str], ...] = (), snat: bool = True) -> RouterState:
        interfaces = tuple(
            self.port(s, owner=DEVICE_OWNER_ROUTER_INTF, ip=s.gateway_ip, add=False)
            for s in subnets)
        gw = self.port(gateway, owner=DEVICE_OWNER_ROUTER_GW, add=False) if gateway else None
        router = RouterState(
            id=uid(), admin_state_up=True, gateway_port=gw, enable_snat=snat,
            interfaces=interfaces,
            floating_ips=tuple(FloatingIPState(uid(), f, x) for f, x in fips))
        self.routers[router.id] = router
        for p in (*interfaces, *([gw] if gw else [])):
            self.ports[p.id] = p
        return router


# ------------------------------------------------------------------------------ VMs

UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    if [ -n "$staticroutes" ]; then
      set -- $staticroutes
      while [ $# -ge 2 ]; do ip route replace "$1" via "$2" dev "$interface"; shift 2; done
    elif [ -n "$router" ]; then
      for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    fi
    env | grep -E '^(ip|mask|router|staticroutes|mtu|dns|hostname|domain)=' > "$LEASE_FILE"
    ;;
esac
exit 0
"""


class Vm:
    """A namespace ``vm-<rand>`` whose ``eth0`` has the port's MAC; the host end of
    the veth is the port's tap, as compute would make it."""

    def __init__(self, port: PortState, workdir: Path) -> None:
        self.port = port
        self.name = "vm-" + uuid.uuid4().hex[:8]
        self.tap = names.tap(port.id)
        self.workdir = workdir
        self.lease: dict[str, str] = {}

    async def create(self) -> Vm:
        await must("ip", "netns", "add", self.name)
        await must("ip", "link", "add", self.tap, "type", "veth", "peer", "name", "eth0",
                   "netns", self.name)
        await must("ip", "-n", self.name, "link", "set", "eth0", "address",
                   self.port.mac_address, "up")
        await must("ip", "-n", self.name, "link", "set", "lo", "up")
        await must("ip", "link", "set", self.tap, "up")
        return self

    async def delete(self) -> None:
        await run_command("ip", "link", "del", self.tap)
        await run_command("ip", "netns", "del", self.name)

    async def sh(self, *argv: str, timeout: float = 10.0) -> tuple[int, str, str]:
        return await run_command("ip", "netns", "exec", self.name, *argv, timeout=timeout)

    async def dhcp(self) -> dict[str, str]:
        """Get an address with busybox udhcpc; returns the lease's variables."""
        script = self.workdir / "udhcpc.sh"
        if not script.exists():
            script.write_text(UDHCPC_SCRIPT)
            os.chmod(script, 0o755)
        lease = self.workdir / f"{self.name}.lease"
        rc, out, err = await run_command(
            "ip", "netns", "exec", self.name, "env", f"LEASE_FILE={lease}",
            "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "5", "-T", "1",
            "-O", "staticroutes", "-O", "mtu", "-s", str(script), timeout=20)
        assert rc == 0, f"udhcpc failed: {out} {err}"
        self.lease = dict(line.split("=", 1) for line in lease.read_text().splitlines())
        return self.lease

    async def ping(self, address: str, count: int = 1, wait: int = 1) -> bool:
        rc, _, _ = await self.sh("busybox", "ping", "-c", str(count), "-W", str(wait), address)
        return rc == 0

    async def ping_from(self, source: str, address: str, tries: int = 2) -> bool:
        for _ in range(tries):
            rc, _, _ = await self.sh("busybox", "ping", "-c", "1", "-W", "1", "-I", source,
                                     address)
            if rc == 0:
                return True
        return False

    async def reaches(self, address: str, tries: int = 3) -> bool:
        """Ping, allowing for a first lost packet (ARP, a bridge learning)."""
        for _ in range(tries):
            if await self.ping(address):
                return True
        return False


async def must(*argv: str) -> str:
    rc, out, err = await run_command(*argv)
    assert rc == 0, f"{' '.join(argv)}: {err}"
    return out


async def owned_objects(owner: str) -> dict[str, object]:
    """Everything on the host that carries ``owner``'s mark."""
    return await run_blocking(_owned_objects, owner)


def _owned_objects(owner: str) -> dict[str, object]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = sorted((link.name, link.index) for link in kernel.get_links(ipr).values()
                       if link.alias == kernel.alias(owner))
    namespaces = sorted(n for n in kernel.list_namespaces() if kernel.namespace_owned(n, owner))
    from onestack.network.dataplane import nft

    tables = sorted(t for t in nft.list_tables() if t[1] == nft.table_name(owner))
    return {"links": links, "namespaces": namespaces, "tables": tables}
