"""One converge pass over the kernel: what ``LinuxDriver.converge`` runs in a worker
thread (blocking netlink, subprocesses, files).

Order: external bridges, network bridges (and VXLAN), DHCP namespaces and dnsmasq,
router namespaces and their NAT, VM taps, the host's nft tables, then clean-up of
whatever this owner has that the state no longer names. A failure with one object
is recorded in the outcome and the pass goes on with the others.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
from typing import TYPE_CHECKING, Any

from pyroute2 import IPRoute  # type: ignore[import-untyped, unused-ignore]

from onestack.network.dataplane import dnsmasq, nft
from onestack.network.dataplane import netns as kernel
from onestack.network.dataplane.model import (
    DEVICE_OWNER_DHCP,
    DEVICE_OWNER_FLOATINGIP,
    METADATA_IP,
    DesiredState,
    ExternalBridge,
    NetworkState,
    PortState,
    RouterState,
    SubnetState,
    names,
)

if TYPE_CHECKING:
    from onestack.network.dataplane.linux import LinuxDriver, Outcome

log = logging.getLogger(__name__)

ROUTER_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    "net.ipv6.conf.all.forwarding": "1",
}
NS_PREFIXES = ("qdhcp-", "qrouter-")


def is_vm_port(port: PortState) -> bool:
    """Ports whose device someone else makes (compute's tap); DHCP and router ports
    are wired by the driver, floating IP ports are not wired at all."""
    owner = port.device_owner
    return not (owner == DEVICE_OWNER_DHCP or owner == DEVICE_OWNER_FLOATINGIP
                or owner.startswith("network:router"))


class Pass:
    """One converge pass over the kernel (blocking; runs in a worker thread)."""

    def __init__(self, driver: LinuxDriver, ipr: IPRoute, state: DesiredState,
                 outcome: Outcome) -> None:
        self.d = driver
        self.tag = driver.tag
        self.ipr = ipr
        self.state = state
        self.out = outcome
        self.subnets: dict[str, SubnetState] = {
            s.id: s for n in state.networks.values() for s in n.subnets}
        self.bridges: dict[str, kernel.Link] = {}  # network id -> its bridge
        self.keep_links: set[str] = set()
        self.keep_ns: set[str] = set()
        self.fresh_ns: set[str] = set()

    def run(self) -> None:
        self.external()
        self.networks()
        self.dhcp()
        self.routers()
        filters = self.vm_ports()
        self.host_rules(filters)
        self.cleanup()
        self.out.counts = {"networks": len(self.bridges), "dhcp": len(self.out.dhcp),
                           "routers": sum(n.startswith("qrouter-") for n in self.keep_ns)}

    def error(self, what: str, exc: BaseException) -> None:
        log.debug("data plane: %s", what, exc_info=exc)
        self.out.errors.append(f"{what}: {exc}")

    def prefixed(self, port: PortState) -> list[str]:
        """The port's addresses with their subnets' prefix lengths."""
        out = []
        for fip in port.fixed_ips:
            subnet = self.subnets.get(fip.subnet_id)
            if subnet is not None:
                plen = ipaddress.ip_network(subnet.cidr, strict=False).prefixlen
                out.append(f"{fip.ip_address}/{plen}")
        return out

    def namespace(self, name: str, sysctls: dict[str, str] | None = None) -> None:
        if kernel.ensure_namespace(name, self.d.owner, sysctls):
            self.fresh_ns.add(name)
        self.keep_ns.add(name)

    # ------------------------------------------------------------------- bridges

    def external(self) -> None:
        # addresses this owner put on bridges it does not own, to take back later
        record = self.d.load_record("external.json")
        added: dict[str, list[str]] = {}
        for eb in self.state.external_bridges:
            try:
                self.external_bridge(eb, record, added)
            except Exception as exc:  # noqa: BLE001 - reported, the rest goes on
                self.error(f"external bridge {eb.bridge}", exc)
        for bridge, cidrs in record.items():
            link = kernel.get_link(self.ipr, bridge)
            for cidr in set(cidrs) - set(added.get(bridge, ())):
                if link is not None:
                    iface = ipaddress.ip_interface(cidr)
                    with contextlib.suppress(Exception):
                        self.ipr.addr("del", index=link.index, address=str(iface.ip),
                                      prefixlen=iface.network.prefixlen)
        if added or record:
            self.d.save_record("external.json", added)
        if any(eb.masquerade and eb.host_cidr for eb in self.state.external_bridges):
            kernel.write_sysctl("net.ipv4.ip_forward", "1")

    def external_bridge(self, eb: ExternalBridge, record: dict[str, Any],
                        added: dict[str, list[str]]) -> None:
        link = kernel.get_link(self.ipr, eb.bridge)
        if link is None or link.alias == self.tag:
            link = kernel.ensure_bridge(self.ipr, eb.bridge, self.tag, None)
        elif link.kind != "bridge":
            raise RuntimeError(f"{eb.bridge} is not a bridge")
        elif not link.up:
            self.ipr.link("set", index=link.index, state="up")
        self.keep_links.add(eb.bridge)
        if link.alias == self.tag:  # a bridge this owner made holds just the host's address
            kernel.sync_addresses(self.ipr, link.index, [eb.host_cidr] if eb.host_cidr else [])
            return
        if not eb.host_cidr:
            return
        iface = ipaddress.ip_interface(eb.host_cidr)
        have = {(a.get("IFA_ADDRESS"), a["prefixlen"])
                for a in self.ipr.get_addr(index=link.index)}
        if (str(iface.ip), iface.network.prefixlen) not in have:
            self.ipr.addr("add", index=link.index, address=str(iface.ip),
                          prefixlen=iface.network.prefixlen)
            added.setdefault(eb.bridge, []).append(eb.host_cidr)
        elif eb.host_cidr in record.get(eb.bridge, ()):
            added.setdefault(eb.bridge, []).append(eb.host_cidr)

    def networks(self) -> None:
        physnets = {eb.physical_network: eb.bridge for eb in self.state.external_bridges}
        for net in self.state.networks.values():
            try:
                ext = physnets.get(net.physical_network or "") if net.network_type == "flat" \
                    else None
                if ext is not None:
                    link = kernel.get_link(self.ipr, ext)
                    if link is None:
                        raise RuntimeError(f"external bridge {ext} is missing")
                else:
                    name = names.bridge(net.id)
                    link = kernel.ensure_bridge(self.ipr, name, self.tag, net.mtu,
                                                up=net.admin_state_up)
                    self.keep_links.add(name)
                    self.tunnel(net, link)
                self.bridges[net.id] = link
            except Exception as exc:  # noqa: BLE001 - reported, the rest goes on
                self.error(f"network {net.id}", exc)

    def tunnel(self, net: NetworkState, bridge: kernel.Link) -> None:
        """A VXLAN network reaches the other hosts through ``vxlan-<VNI>``."""
        if net.network_type != "vxlan" or not self.state.local_ip \
                or net.segmentation_id is None:
            return
        name = f"vxlan-{net.segmentation_id}"
        link = kernel.ensure_vxlan(self.ipr, name, vni=net.segmentation_id,
                                   local=self.state.local_ip, bridge=bridge.index,
                                   mtu=net.mtu, tag=self.tag)
        kernel.sync_flood(self.ipr, link.index,
                          [p for p in self.state.tunnel_peers if p != self.state.local_ip])
        self.keep_links.add(name)

    # ---------------------------------------------------------------------- DHCP

    def network_ports(self, network_id: str) -> list[PortState]:
        """Every port of the network DHCP answers: wired here or elsewhere."""
        ports = {p.id: p for p in (*self.state.ports.values(), *self.state.remote_ports.values())
                 if p.network_id == network_id}
        for router in self.state.routers.values():
            for p in (*router.interfaces, router.gateway_port):
                if p is not None and p.network_id == network_id:
                    ports.setdefault(p.id, p)
        return list(ports.values())

    def dhcp(self) -> None:
        dhcp_ports: dict[str, PortState] = {}
        for port in sorted(self.state.ports.values(), key=lambda p: p.id):
            if port.device_owner == DEVICE_OWNER_DHCP:
                dhcp_ports.setdefault(port.network_id, port)
        for net_id, port in dhcp_ports.items():
            net = self.state.networks.get(net_id)
            if net is None or net_id not in self.bridges:
                continue  # the network's own error is already reported
            try:
                self.dhcp_server(net, port)
            except Exception as exc:  # noqa: BLE001 - reported, the rest goes on
                self.error(f"DHCP for network {net_id}", exc)

    def dhcp_server(self, net: NetworkState, port: PortState) -> None:
        ns = names.dhcp_ns(net.id)
        self.namespace(ns)
        tap, dev = names.tap(port.id), names.dhcp_dev(port.id)
        self.keep_links.add(tap)
        kernel.ensure_veth(self.ipr, tap, bridge=self.bridges[net.id].index, ns=ns, peer=dev,
                           mac=port.mac_address, mtu=net.mtu, tag=self.tag)
        addresses = self.prefixed(port) + [f"{METADATA_IP}/32"]
        routes: dict[str, str] = {}
        for fip in port.fixed_ips:
            subnet = self.subnets.get(fip.subnet_id)
            if subnet and subnet.gateway_ip and subnet.ip_version == 4:
                routes.setdefault("0.0.0.0/0", subnet.gateway_ip)
        failed = kernel.run_in_netns(ns, _configure_ns, prefix="ns-", tag=self.tag,
                                     devices={dev: (port.mac_address, net.mtu, addresses)},
                                     routes=routes)
        self.out.errors += [f"DHCP namespace {ns}: {f}" for f in failed]
        directory = self.d.dhcp_dir(net.id)
        directory.mkdir(parents=True, exist_ok=True)
        config = dnsmasq.build(net, port, self.network_ports(net.id), directory=directory,
                               interface=dev, domain=self.state.dns_domain,
                               as_root=dnsmasq.needs_root(directory))
        if config is None:
            dnsmasq.stop(directory)
        else:
            dnsmasq.ensure(directory, ns, config)
        self.out.dhcp[net.id] = ns
        if port.admin_state_up:
            self.out.active.add(port.id)

    # ------------------------------------------------------------------- routers

    def routers(self) -> None:
        for router in self.state.routers.values():
            if not router.admin_state_up:
                # an administratively down router forwards nothing: no namespace.
                # Its ports stay bound and ACTIVE, as Neutron's OVN driver reports
                # them (Tempest makes routers down and waits for their ports).
                self.out.active.update(p.id for p in router.interfaces)
                if router.gateway_port is not None:
                    self.out.active.add(router.gateway_port.id)
                continue
            try:
                self.router(router)
            except Exception as exc:  # noqa: BLE001 - reported, the rest goes on
                self.error(f"router {router.id}", exc)

    def wire(self, port: PortState, ns: str, dev: str,
             extra: tuple[str, ...] = ()) -> tuple[str, tuple[str, int, list[str]]] | None:
        """A veth for a router port; returns its inner device's settings."""
        net = self.state.networks.get(port.network_id)
        bridge = self.bridges.get(port.network_id)
        if net is None or bridge is None:
            self.out.errors.append(f"port {port.id}: network {port.network_id} is not here")
            return None
        tap = names.tap(port.id)
        self.keep_links.add(tap)
        kernel.ensure_veth(self.ipr, tap, bridge=bridge.index, ns=ns, peer=dev,
                           mac=port.mac_address, mtu=net.mtu, tag=self.tag)
        return dev, (port.mac_address, net.mtu, self.prefixed(port) + list(extra))

    def router(self, router: RouterState) -> None:
        ns = names.router_ns(router.id)
        self.namespace(ns, ROUTER_SYSCTLS)
        devices: dict[str, tuple[str, int, list[str]]] = {}
        wired: list[str] = []
        internal: list[str] = []
        for port in router.interfaces:
            done = self.wire(port, ns, names.router_intf_dev(port.id))
            if done is not None:
                devices[done[0]] = done[1]
                wired.append(port.id)
                internal += [str(ipaddress.ip_interface(a).network) for a in done[1][2]
                             if ipaddress.ip_interface(a).version == 4]
        routes: dict[str, str] = {}
        gw = router.gateway_port
        gw_dev, gw_ip = "", None
        fips = [(f.floating_ip_address, f.fixed_ip_address) for f in router.floating_ips
                if ipaddress.ip_address(f.floating_ip_address).version == 4]
        if gw is not None:
            gw_dev = names.router_gw_dev(gw.id)
            done = self.wire(gw, ns, gw_dev, tuple(f"{fip}/32" for fip, _ in fips))
            if done is not None:
                devices[done[0]] = done[1]
                wired.append(gw.id)
                for fixed in gw.fixed_ips:
                    subnet = self.subnets.get(fixed.subnet_id)
                    if subnet is None:
                        continue
                    if subnet.ip_version == 4 and gw_ip is None:
                        gw_ip = fixed.ip_address
                    if subnet.gateway_ip:
                        routes.setdefault("0.0.0.0/0" if subnet.ip_version == 4 else "::/0",
                                          subnet.gateway_ip)
        elif fips:
            self.out.errors.append(f"router {router.id}: floating IPs without a gateway")
        for route in router.routes:
            routes[route.destination] = route.nexthop
        failed = kernel.run_in_netns(ns, _configure_ns, prefix=("qr-", "qg-"), tag=self.tag,
                                     devices=devices, routes=routes)
        self.out.errors += [f"router {router.id}: {f}" for f in failed]
        nat = nft.RouterNat(gateway_dev=gw_dev, gateway_ip=gw_ip, snat=router.enable_snat,
                            internal=tuple(sorted(set(internal))),
                            floating=tuple(fips) if gw_dev else ())
        body = nft.router_table(self.d.owner, nat) if gw_dev else None
        self.d.apply_tables(ns, {("ip", nft.table_name(self.d.owner)): body},
                            force=ns in self.fresh_ns)
        self.out.active.update(wired)

    # ------------------------------------------------------------------ VM ports

    def vm_ports(self) -> list[nft.PortFilter]:
        links = kernel.get_links(self.ipr)
        record = self.d.load_record("attached.json")  # taps this owner attached
        attached: dict[str, str] = {}
        filters: list[tuple[str, nft.PortFilter]] = []
        for port in self.state.ports.values():
            if not is_vm_port(port):
                continue
            tap = names.tap(port.id)
            link, bridge = links.get(tap), self.bridges.get(port.network_id)
            if link is None or bridge is None or link.alias == self.tag:
                continue
            net = self.state.networks[port.network_id]
            try:
                if port.admin_state_up and net.admin_state_up:
                    self.attach(link, bridge, net.mtu)
                    attached[tap] = bridge.name
                    self.out.active.add(port.id)
                    if port.port_security_enabled:
                        filters.append((port.id, self.port_filter(port)))
                elif link.master == bridge.index:
                    self.ipr.link("set", index=link.index, master=0)
            except Exception as exc:  # noqa: BLE001 - reported, the rest goes on
                self.error(f"port {port.id}", exc)
        for tap, bridge_name in record.items():
            link = links.get(tap)
            if tap in attached or link is None or link.alias == self.tag:
                continue
            master = links.get(bridge_name)
            if master is not None and link.master == master.index:
                with contextlib.suppress(Exception):
                    self.ipr.link("set", index=link.index, master=0)
        self.d.save_record("attached.json", attached)
        return [f for _, f in sorted(filters, key=lambda item: item[0])]

    def attach(self, link: kernel.Link, bridge: kernel.Link, mtu: int) -> None:
        changes: dict[str, Any] = {}
        if link.master != bridge.index:
            changes["master"] = bridge.index
        if mtu and link.mtu != mtu:
            changes["mtu"] = mtu
        if not link.up:
            changes["state"] = "up"
        if changes:
            self.ipr.link("set", index=link.index, **changes)

    def port_filter(self, port: PortState) -> nft.PortFilter:
        groups = [self.state.security_groups[g] for g in port.security_group_ids
                  if g in self.state.security_groups]
        missing = set(port.security_group_ids) - set(self.state.security_groups)
        if missing:
            self.out.errors.append(f"port {port.id}: unknown security groups {sorted(missing)}")
        rules = [r for g in groups for r in g.rules]
        macs = [port.mac_address.lower()]
        allowed = [(port.mac_address.lower(), f.ip_address) for f in port.fixed_ips]
        for pair in port.allowed_address_pairs:
            mac = (pair.mac_address or port.mac_address).lower()
            macs.append(mac)
            allowed.append((mac, pair.ip_address))
        return nft.PortFilter(
            tap=names.tap(port.id), macs=tuple(dict.fromkeys(macs)), allowed=tuple(allowed),
            stateful=not groups or any(g.stateful for g in groups),
            ingress=tuple(r for r in rules if r.direction == "ingress"),
            egress=tuple(r for r in rules if r.direction == "egress"))

    def host_rules(self, filters: list[nft.PortFilter]) -> None:
        if len(filters) > nft.MAX_PORTS:
            self.out.errors.append(f"more than {nft.MAX_PORTS} filtered ports; rest unfiltered")
            filters = filters[:nft.MAX_PORTS]
        if filters and not os.path.exists("/proc/sys/net/bridge"):
            self.out.errors.append("br_netfilter is not loaded: security groups not enforced")
        zones = {names.bridge(n): nft.zone_for(n) for n, link in self.bridges.items()
                 if link.name == names.bridge(n)}
        masq = tuple((str(ipaddress.ip_interface(eb.host_cidr).network), eb.bridge)
                     for eb in self.state.external_bridges if eb.masquerade and eb.host_cidr)
        rules = nft.HostRules(bridges=tuple(sorted({b.name for b in self.bridges.values()})),
                              zones=zones, ports=tuple(filters),
                              groups=dict(self.state.group_members), masquerade=masq)
        inet_body, errors = nft.inet_table(self.d.owner, rules)
        self.out.errors += errors
        table = nft.table_name(self.d.owner)
        try:
            self.d.apply_tables(None, {("bridge", table): nft.bridge_table(self.d.owner, rules),
                                       ("inet", table): inet_body})
        except Exception as exc:  # noqa: BLE001 - reported, the rest goes on
            self.error("host firewall", exc)

    # ------------------------------------------------------------------ clean-up

    def cleanup(self) -> None:
        for link in kernel.get_links(self.ipr).values():
            if link.alias == self.tag and link.name not in self.keep_links:
                with contextlib.suppress(Exception):
                    self.ipr.link("del", index=link.index)
        for name in kernel.list_namespaces():
            if name in self.keep_ns or not name.startswith(NS_PREFIXES):
                continue
            if kernel.namespace_owned(name, self.d.owner):
                try:
                    kernel.delete_namespace(name)
                except OSError as exc:
                    self.error(f"namespace {name}", exc)
                self.d.forget_tables(name)
        dhcp_root = self.d.state_dir / "dhcp"
        if dhcp_root.is_dir():
            for directory in dhcp_root.iterdir():
                if directory.name not in self.out.dhcp:
                    dnsmasq.stop(directory)
                    shutil.rmtree(directory, ignore_errors=True)


def _configure_ns(*, prefix: str | tuple[str, ...], tag: str,
                  devices: dict[str, tuple[str, int, list[str]]],
                  routes: dict[str, str]) -> list[str]:
    """Inside a namespace: set up ``devices`` (name -> MAC, MTU, addresses), delete
    other devices named with ``prefix``, make the static routes ``routes``."""
    with IPRoute() as ipr:
        for link in kernel.get_links(ipr).values():
            if link.name.startswith(prefix) and link.name not in devices:
                with contextlib.suppress(Exception):
                    ipr.link("del", index=link.index)
        for name, (mac, mtu, addresses) in devices.items():
            kernel.configure_inner(ipr, name, mac=mac, mtu=mtu, tag=tag, addresses=addresses)
        return kernel.sync_routes(ipr, routes)
