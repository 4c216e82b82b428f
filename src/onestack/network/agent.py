"""The data-plane agent: reads the desired state from the database and has a
driver make this host match it.

It runs in every process that runs the networking service on a host with a
data plane. It is driven by durable tasks, never by the API handlers: a write
that changes what the kernel should look like adds a ``converge:<host>`` task in
its own transaction (``service.common.dataplane_changed``); the agent claims it
and converges the *whole* host (so a lost or repeated task does no harm), and
also converges on start (rebuilding everything after a host reboot) and every
``resync_interval`` seconds. After a pass it records what it saw: port status
(ACTIVE when wired, DOWN otherwise) and its heartbeat in ``network_agents``.

As Neutron's DHCP agent does, it owns the DHCP port of each network with a
DHCP-enabled subnet (device owner ``network:dhcp``); with the fake driver there is
no DHCP server and no DHCP port, as in a Neutron without DHCP agents.

Several hosts: every host runs an agent on the same database. The one network node
(``[network] network_node``, the default) wires DHCP and routers; every host wires
the ports bound to it. A host with a ``tunnel_ip`` records it in its Linux bridge
agent row (Neutron's ``tunneling_ip``), and each host's VXLAN devices flood to the
tunnel addresses of the other live hosts; a starting host asks the others to
converge, so that they learn it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import uuid
from typing import Any

from sqlalchemy import select

from onestack.core.auth import instance_signature
from onestack.network.dataplane import model as dp
from onestack.network.models import (
    Agent as AgentRow,
)
from onestack.network.models import (
    FloatingIP,
    IPAllocation,
    Network,
    Port,
    PortSecurityGroup,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Segment,
    Subnet,
    utcnow,
)
from onestack.network.service import common
from onestack.network.service import ports as ports_svc
from onestack.network.state import NetworkState

log = logging.getLogger("onestack.network.agent")

AGENT_TYPES = (
    (common.L2_AGENT, "neutron-linuxbridge-agent", "N/A"),
    ("DHCP agent", "neutron-dhcp-agent", "dhcp_agent"),
    ("L3 agent", "neutron-l3-agent", "l3_agent"),
    ("Metadata agent", "neutron-metadata-agent", "N/A"),
)


def converge_kind(host: str) -> str:
    return f"{common.CONVERGE}:{host}"


def dhcp_device_id(host: str, network_id: str) -> str:
    """Neutron's DHCP port device id: ``dhcp<uuid5 of the host>-<network id>``."""
    return f"dhcp{uuid.uuid5(uuid.NAMESPACE_DNS, host)}-{network_id}"


def _host_route(r: dict[str, str]) -> dp.HostRoute:
    return dp.HostRoute(destination=r["destination"], nexthop=r["nexthop"])


class Agent:
    """One host's agent (``driver``: a ``dataplane.base.Driver``)."""

    def __init__(self, st: NetworkState, driver: Any, *, wires_dhcp: bool):
        self.st = st
        self.driver = driver
        self.wires_dhcp = wires_dhcp
        self.host = st.host
        self.network_node: bool = st.conf.network_node
        self.tunnel_ip: str | None = st.conf.tunnel_ip
        self._lock = asyncio.Lock()
        self._loop: asyncio.Task[None] | None = None
        self._poked = asyncio.Event()  # the driver saw a new VM tap
        self._on_poke: asyncio.Task[None] | None = None
        self.last_errors: tuple[str, ...] = ()
        self.passes = 0

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        watch = getattr(self.driver, "watch_links", None)  # the linux driver's
        if watch is not None:
            # before the first pass, so that a tap made during it is not missed
            self._on_poke = asyncio.create_task(self._poke_loop(), name="network-agent-taps")
            watch(self.poke)
        await self.converge()
        self._loop = asyncio.create_task(self._resync(), name="network-agent-resync")
        if self.tunnel_ip:
            await self._announce()

    async def _announce(self) -> None:
        """Ask the other live hosts to converge, now that this host's tunnel address
        is recorded: their VXLAN devices then flood to it too."""
        async with self.st.db.write() as s:
            others = {a.host for a in await common.live_agents(self.st, s)} - {self.host}
            if others:
                await common.ask_to_converge(self.st, s, others, f"new peer {self.host}")

    async def stop(self) -> None:
        for task in (self._loop, self._on_poke):
            if task is not None:
                task.cancel()
                # asyncio.wait neither raises the task's cancellation nor swallows ours
                await asyncio.wait({task})
        self._loop = self._on_poke = None
        close = getattr(self.driver, "close", None)
        if close is not None:
            await close()

    def poke(self) -> None:
        """Converge soon (a VM's tap appeared): pokes during a pass give one more
        pass after it, never two at once."""
        self._poked.set()

    async def _poke_loop(self) -> None:
        while True:
            await self._poked.wait()
            self._poked.clear()
            try:
                await self.converge()
            except Exception:
                log.exception("converge after a new tap failed")

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.st.conf.resync_interval)
            try:
                await self.converge()
            except Exception:
                log.exception("periodic converge failed")

    async def handle_task(self, handle: Any) -> dict[str, Any]:
        await self.converge()
        return {"errors": list(self.last_errors)}

    # -- one pass -------------------------------------------------------------------

    async def converge(self) -> dp.ConvergeResult:
        async with self._lock:
            if self.wires_dhcp and self.network_node:
                await self._ensure_dhcp_ports()
            state = await self.desired_state()
            result: dp.ConvergeResult = await self.driver.converge(state)
            self.last_errors = tuple(result.errors)
            for e in result.errors:
                log.warning("data plane: %s", e)
            await self._record(state, result)
            self.passes += 1
            return result

    async def _ensure_dhcp_ports(self) -> None:
        """One DHCP port per network with DHCP-enabled subnets, with an address on
        each of them; none on other networks."""
        st = self.st
        async with st.db.write() as s:
            nets = {n.id: n for n in (await s.scalars(select(Network))).all()}
            dhcp_subnets: dict[str, set[str]] = {}
            for sub in (await s.scalars(select(Subnet).where(Subnet.enable_dhcp.is_(True)))):
                dhcp_subnets.setdefault(sub.network_id, set()).add(sub.id)
            existing = (await s.scalars(select(Port).where(
                Port.device_owner == dp.DEVICE_OWNER_DHCP))).all()
            have: dict[str, Port] = {}
            for port in existing:
                want = dhcp_subnets.get(port.network_id)
                allocated = set((await s.scalars(select(IPAllocation.subnet_id).where(
                    IPAllocation.port_id == port.id))).all())
                net = nets.get(port.network_id)
                if not want or net is None or allocated != want or port.network_id in have:
                    await ports_svc.delete_port(st, s, port)
                else:
                    have[port.network_id] = port
            for net_id, subnet_ids in dhcp_subnets.items():
                if net_id in have or net_id not in nets:
                    continue
                try:
                    async with s.begin_nested():
                        await ports_svc.create_port(st, s, {
                            "network_id": net_id,
                            "project_id": nets[net_id].project_id,
                            "name": "",
                            "device_owner": dp.DEVICE_OWNER_DHCP,
                            "device_id": dhcp_device_id(self.host, net_id),
                            "binding:host_id": self.host,
                            "fixed_ips": [{"subnet_id": sid} for sid in sorted(subnet_ids)],
                            "admin_state_up": True,
                        })
                except Exception as exc:  # noqa: BLE001 - an exhausted pool must not stop the pass
                    log.warning("no DHCP port for network %s: %s", net_id, exc)

    async def desired_state(self) -> dp.DesiredState:
        """What this host should look like, read in one transaction."""
        st = self.st
        async with st.db.read() as s:
            nets = (await s.scalars(select(Network))).all()
            segs = {g.network_id: g for g in (await s.scalars(select(Segment))).all()}
            subnets = (await s.scalars(select(Subnet))).all()
            ports = (await s.scalars(select(Port))).all()
            allocs: dict[str, list[IPAllocation]] = {}
            for a in (await s.scalars(select(IPAllocation))).all():
                allocs.setdefault(a.port_id, []).append(a)
            port_sgs: dict[str, list[str]] = {}
            for b in (await s.scalars(select(PortSecurityGroup))).all():
                port_sgs.setdefault(b.port_id, []).append(b.security_group_id)
            routers = (await s.scalars(select(Router))).all()
            fips = (await s.scalars(select(FloatingIP))).all()
            groups = (await s.scalars(select(SecurityGroup))).all()
            rules = (await s.scalars(select(SecurityGroupRule))).all()
            peers = await common.live_agents(st, s) if self.tunnel_ip else []

        def port_state(p: Port) -> dp.PortState:
            ips = tuple(dp.FixedIP(a.subnet_id, a.ip_address)
                        for a in sorted(allocs.get(p.id, []), key=lambda a: a.ip_address))
            hostname = p.dns_name or (
                "host-" + ips[0].ip_address.replace(".", "-").replace(":", "-") if ips else None)
            return dp.PortState(
                id=p.id, network_id=p.network_id, mac_address=p.mac_address, fixed_ips=ips,
                device_owner=p.device_owner, device_id=p.device_id,
                admin_state_up=p.admin_state_up, port_security_enabled=p.port_security_enabled,
                security_group_ids=tuple(sorted(port_sgs.get(p.id, []))),
                allowed_address_pairs=tuple(
                    dp.AddressPair(x["ip_address"], x.get("mac_address") or p.mac_address)
                    for x in (p.allowed_address_pairs or [])),
                hostname=hostname, project_id=p.project_id,
            )

        networks: dict[str, dp.NetworkState] = {}
        for n in nets:
            seg = segs.get(n.id)
            networks[n.id] = dp.NetworkState(
                id=n.id, mtu=n.mtu, network_type=seg.network_type if seg else "local",
                physical_network=(seg.physical_network or None) if seg else None,
                segmentation_id=(seg.segmentation_id or None) if seg else None,
                admin_state_up=n.admin_state_up, external=n.external,
                subnets=tuple(
                    dp.SubnetState(
                        id=x.id, network_id=x.network_id, cidr=x.cidr, ip_version=x.ip_version,
                        gateway_ip=x.gateway_ip, enable_dhcp=x.enable_dhcp,
                        dns_nameservers=tuple(x.dns_nameservers or ()),
                        host_routes=tuple(_host_route(r) for r in x.host_routes or ()),
                        ipv6_address_mode=x.ipv6_address_mode, ipv6_ra_mode=x.ipv6_ra_mode,
                    )
                    for x in subnets if x.network_id == n.id
                ),
            )
        wanted: dict[str, dp.PortState] = {}
        for p in ports:
            owner = p.device_owner or ""
            if owner == dp.DEVICE_OWNER_FLOATINGIP:
                mine = False  # nothing to wire
            elif owner in (dp.DEVICE_OWNER_DHCP, dp.DEVICE_OWNER_ROUTER_INTF,
                           dp.DEVICE_OWNER_ROUTER_GW):
                mine = self.network_node  # whatever their binding says
            else:
                mine = p.binding_host_id == self.host
            if mine and p.network_id in networks:
                wanted[p.id] = port_state(p)
        remote: dict[str, dp.PortState] = {}
        if self.network_node:  # DHCP here answers the ports other hosts wire
            served = {p.network_id for p in wanted.values()
                      if p.device_owner == dp.DEVICE_OWNER_DHCP}
            remote = {p.id: port_state(p) for p in ports
                      if p.network_id in served and p.id not in wanted
                      and p.device_owner != dp.DEVICE_OWNER_FLOATINGIP}
        else:  # a compute-only host has the networks of its ports only
            used = {p.network_id for p in wanted.values()}
            networks = {k: v for k, v in networks.items() if k in used}
        router_states: dict[str, dp.RouterState] = {}
        for r in (routers if self.network_node else ()):
            intfs = tuple(wanted[p.id] for p in ports
                          if p.device_id == r.id and p.device_owner == dp.DEVICE_OWNER_ROUTER_INTF
                          and p.id in wanted)
            gw = wanted.get(r.gw_port_id) if r.gw_port_id else None
            router_states[r.id] = dp.RouterState(
                id=r.id, admin_state_up=r.admin_state_up, gateway_port=gw,
                enable_snat=r.enable_snat, interfaces=intfs,
                routes=tuple(_host_route(x) for x in r.routes or ()),
                floating_ips=tuple(
                    dp.FloatingIPState(f.id, f.floating_ip_address, f.fixed_ip_address)
                    for f in fips if f.router_id == r.id and f.fixed_ip_address),
            )
        sg_states = {
            g.id: dp.SecurityGroupState(
                id=g.id, stateful=g.stateful,
                rules=tuple(
                    dp.SecurityGroupRuleState(
                        id=x.id, direction=x.direction, ethertype=x.ethertype,
                        protocol=x.protocol, port_range_min=x.port_range_min,
                        port_range_max=x.port_range_max, remote_ip_prefix=x.remote_ip_prefix,
                        remote_group_id=x.remote_group_id)
                    for x in rules if x.security_group_id == g.id),
            )
            for g in groups
        }
        members: dict[str, list[str]] = {}
        for p in ports:
            for sg in port_sgs.get(p.id, []):
                members.setdefault(sg, []).extend(a.ip_address for a in allocs.get(p.id, []))
                members[sg].extend(x["ip_address"] for x in p.allowed_address_pairs or [])
        return dp.DesiredState(
            host=self.host, networks=networks, ports=wanted, routers=router_states,
            security_groups=sg_states,
            group_members={k: tuple(sorted(set(v))) for k, v in members.items()},
            external_bridges=self._external_bridges(networks),
            dns_domain=st.conf.dns_domain,
            local_ip=self.tunnel_ip,
            tunnel_peers=self._tunnel_peers(peers),
            remote_ports=remote,
        )

    def _tunnel_peers(self, agents: list[AgentRow]) -> tuple[str, ...]:
        """The tunnel addresses of the other live hosts (none without our own)."""
        found = {(a.configurations or {}).get("tunneling_ip")
                 for a in agents if a.host != self.host}
        return tuple(sorted(ip for ip in found if ip and ip != self.tunnel_ip))

    def _external_bridges(self, networks: dict[str, dp.NetworkState]
                          ) -> tuple[dp.ExternalBridge, ...]:
        """The external bridge; on a compute-only host only while one of its flat
        networks needs it, and without the host's address (floating IPs answer
        from the network node)."""
        conf = self.st.conf
        if not self.network_node:
            if not any(n.network_type == "flat"
                       and n.physical_network == conf.external_physical_network
                       for n in networks.values()):
                return ()
            return (dp.ExternalBridge(physical_network=conf.external_physical_network,
                                      bridge=conf.external_bridge),)
        host_cidr = None
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(conf.external_cidr)
            host_cidr = f"{next(net.hosts())}/{net.prefixlen}"
        return (dp.ExternalBridge(
            physical_network=conf.external_physical_network, bridge=conf.external_bridge,
            host_cidr=host_cidr, masquerade=conf.external_masquerade,
        ),)

    async def _record(self, state: dp.DesiredState, result: dp.ConvergeResult) -> None:
        """Port status from what the driver wired, and the agents' heartbeat."""
        st = self.st
        now = utcnow()
        ids = list(state.ports)
        async with st.db.write() as s:
            ports = [p for i in range(0, len(ids), 500)
                     for p in (await s.scalars(select(Port).where(
                         Port.id.in_(ids[i:i + 500])))).all()]
            for port in ports:
                port_id = port.id
                status = "ACTIVE" if port_id in result.active_ports and port.admin_state_up \
                    else "DOWN"
                if port.status != status:
                    port.status = status
                    common.touch(port)
            for agent_type, binary, topic in AGENT_TYPES:
                if agent_type != common.L2_AGENT and not self.network_node:
                    continue  # a compute-only host runs no DHCP, L3 or metadata agent
                conf: dict[str, Any] = {"driver": self.driver.status()}
                if agent_type == common.L2_AGENT:
                    conf.update(tunneling_ip=self.tunnel_ip,
                                tunnel_types=["vxlan"] if self.tunnel_ip else [])
                row = (await s.scalars(select(AgentRow).where(
                    AgentRow.agent_type == agent_type, AgentRow.host == self.host))).first()
                if row is None:
                    s.add(AgentRow(agent_type=agent_type, binary=binary, topic=topic,
                                   host=self.host, availability_zone="nova",
                                   configurations=conf,
                                   created_at=now, started_at=now, heartbeat_timestamp=now))
                else:
                    row.heartbeat_timestamp = now
                    row.configurations = conf


# -- metadata ------------------------------------------------------------------------


def metadata_handler(st: NetworkState, http: Any, secret: bytes, path_prefix: str) -> Any:
    """The driver's metadata callable: identify the VM by its network and source
    address, then forward to compute's metadata API with Nova's headers."""

    async def handle(network_id: str, source_ip: str, method: str, path: str,
                     headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        async with st.db.read() as s:
            row = (await s.execute(
                select(Port.device_id, Port.project_id, Port.device_owner)
                .join(IPAllocation, IPAllocation.port_id == Port.id)
                .where(IPAllocation.network_id == network_id,
                       IPAllocation.ip_address == source_ip)
            )).first()
        if row is None or not row.device_id:
            return 404, {"Content-Type": "text/plain"}, b"No instance found for this address\n"
        if http is None:
            return 503, {"Content-Type": "text/plain"}, b"The metadata service is unavailable\n"
        fwd = {
            "X-Forwarded-For": source_ip,
            "X-Instance-ID": row.device_id,
            "X-Tenant-ID": row.project_id,
            "X-Instance-ID-Signature": instance_signature(secret, row.device_id),
        }
        if "content-type" in {k.lower() for k in headers}:
            fwd["Content-Type"] = next(v for k, v in headers.items()
                                       if k.lower() == "content-type")
        try:
            r = await http.request(method, path_prefix + path, headers=fwd, content=body)
        except Exception as exc:  # noqa: BLE001 - any failure is a 503
            log.warning("metadata proxy: %s", exc)
            return 503, {"Content-Type": "text/plain"}, b"The metadata service is unavailable\n"
        keep = {k: v for k, v in r.headers.items() if k.lower() in ("content-type",)}
        return r.status_code, keep, r.content

    return handle
