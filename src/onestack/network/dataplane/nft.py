"""nftables rulesets: security groups and NAT on the host, NAT in router namespaces.

Every table is named ``onestack-<owner>`` and replaced whole, atomically, in one
``nft -f -`` transaction (``table X`` / ``delete table X`` / ``table X {...}``), so a
ruleset is never seen half-written and several clouds' tables coexist in one kernel.

How bridged traffic is filtered (found by experiment on kernel 6.18 without
CONFIG_NF_CONNTRACK_BRIDGE and CONFIG_NFT_BRIDGE_META):

* the ``bridge`` family has no conntrack here: a ``ct state`` rule in a bridge table
  is refused (EPROTO), and ``meta ibrname``/``obrname`` do not exist;
* with br_netfilter (``nf_call_iptables`` on the bridge), bridged IPv4/IPv6 packets
  cross the ``inet`` prerouting/forward/input hooks with conntrack, but there
  ``iifname``/``oifname`` are the *bridge*, not the port (``brq...``, never ``tap...``);
* in the ``bridge`` family ``iifname``/``oifname`` *are* the ports, and the bridge
  forward hook at a priority below 0 runs before br_netfilter hands the packet to the
  inet forward hook, with the same skb.

So the ``bridge`` table (stateless) does per-port anti-spoofing at prerouting and
writes the ports into the packet mark at forward/input: bits 0-14 the number of the
port the packet came from, bits 16-30 the port it goes to (``port_marks``). The ``inet`` table
(stateful) dispatches on the mark to a port's egress and ingress chains, where
``ct state`` works. The inet chains only look at packets whose bridge is one of this
owner's, so marks are never read across clouds. Each owned bridge also gets its own
conntrack zone, so the same addresses on two networks never share a connection.

Not filtered: traffic the host itself sends to a VM on a bridge (it never crosses
a forward hook); the host is trusted, as in Neutron's Linux bridge agent.
"""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from onestack.network.dataplane.model import METADATA_IP, SecurityGroupRuleState

IN_MASK = 0x00007FFF
OUT_SHIFT = 16
MAX_PORTS = IN_MASK

PROTOCOLS = {
    "icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "egp": 8, "udp": 17, "ipv6-encap": 41,
    "ipv6-route": 43, "ipv6-frag": 44, "rsvp": 46, "gre": 47, "esp": 50, "ah": 51,
    "icmpv6": 58, "ipv6-icmp": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "ospf": 89,
    "pgm": 113, "vrrp": 112, "sctp": 132, "dccp": 33, "udplite": 136,
}
PORT_PROTOCOLS = {6, 17, 33, 132, 136}
ND_TYPES = ("nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, "
            "mld-listener-report, mld2-listener-report")


def table_name(owner: str) -> str:
    return f"onestack-{owner}"


def zone_for(network_id: str) -> int:
    """A conntrack zone for a network's bridge (stable; 1000..65000)."""
    return 1000 + int(hashlib.sha256(network_id.encode()).hexdigest(), 16) % 64000


@dataclass(frozen=True)
class PortFilter:
    """What the host enforces for one VM port with port security."""

    tap: str
    macs: tuple[str, ...]  # the port's MAC first, then allowed address pairs' MACs
    allowed: tuple[tuple[str, str], ...]  # (mac, address or CIDR) it may send from
    stateful: bool
    ingress: tuple[SecurityGroupRuleState, ...]
    egress: tuple[SecurityGroupRuleState, ...]


@dataclass(frozen=True)
class HostRules:
    """Input of the host's two tables."""

    bridges: tuple[str, ...]  # every bridge with this owner's ports
    zones: dict[str, int]  # owned bridge -> conntrack zone
    ports: tuple[PortFilter, ...]  # sorted: index i+1 is ports[i]
    groups: dict[str, tuple[str, ...]]  # remote group -> member addresses
    masquerade: tuple[tuple[str, str], ...] = ()  # (CIDR, its bridge)


# ------------------------------------------------------------------------------ helpers


def _q(name: str) -> str:
    return f'"{name}"'


def _elements(items: Iterable[str]) -> str:
    return ", ".join(items)


def _collapse(addrs: Iterable[str], version: int) -> list[str]:
    nets = []
    for a in addrs:
        try:
            net = ipaddress.ip_network(a, strict=False)
        except ValueError:
            continue
        if net.version == version:
            nets.append(net)
    out = []
    for net in ipaddress.collapse_addresses(nets):  # type: ignore[type-var]
        full = net.prefixlen == net.max_prefixlen
        out.append(str(net.network_address) if full else str(net))
    return out


def _version(address: str) -> int | None:
    try:
        return ipaddress.ip_network(address, strict=False).version
    except ValueError:
        return None


def _protocol(rule: SecurityGroupRuleState) -> int | None:
    proto = (rule.protocol or "").lower()
    if proto in ("", "any"):
        return None
    num = int(proto) if proto.isdigit() else PROTOCOLS.get(proto)
    if num is None:
        raise ValueError(f"unknown protocol {rule.protocol!r}")
    if rule.ethertype == "IPv6" and num == 1:
        num = 58  # Neutron accepts "icmp" for ICMPv6 on IPv6 rules
    return num


def rule_match(rule: SecurityGroupRuleState, groups: dict[str, tuple[str, ...]]) -> str | None:
    """The nft match of one rule (without verdict), or None if it can never match
    (a remote group with no member of the rule's family, a prefix of the other family).

    Raises:
        ValueError: an unknown protocol name.
    """
    v6 = rule.ethertype == "IPv6"
    parts = ["meta nfproto " + ("ipv6" if v6 else "ipv4")]
    proto = _protocol(rule)
    lo, hi = rule.port_range_min, rule.port_range_max
    if proto is not None:
        parts.append(f"meta l4proto {proto}")
        if proto in (1, 58):
            icmp = "icmpv6" if v6 else "icmp"
            if lo is not None:
                parts.append(f"{icmp} type {lo}")
                if hi is not None:
                    parts.append(f"{icmp} code {hi}")
        elif proto in PORT_PROTOCOLS and (lo is not None or hi is not None):
            lo, hi = (lo if lo is not None else hi), (hi if hi is not None else lo)
            if (lo, hi) != (1, 65535):
                parts.append(f"th dport {lo}" if lo == hi else f"th dport {lo}-{hi}")
    addr = "ip6" if v6 else "ip"
    side = "saddr" if rule.direction == "ingress" else "daddr"
    if rule.remote_ip_prefix:
        net = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        if net.version != (6 if v6 else 4):
            return None
        if net.prefixlen:
            parts.append(f"{addr} {side} {net}")
    elif rule.remote_group_id:
        if not _collapse(groups.get(rule.remote_group_id, ()), 6 if v6 else 4):
            return None
        parts.append(f"{addr} {side} @{group_set(rule.remote_group_id, 6 if v6 else 4)}")
    return " ".join(parts)


def group_set(group_id: str, version: int) -> str:
    return f"rg-{group_id}-{version}"


# ------------------------------------------------------------------------- host tables


def port_marks(owner: str, ports: Sequence[PortFilter]) -> list[tuple[int, PortFilter]]:
    """Each port's number in the packet mark (1..MAX_PORTS). Numbering starts at an
    offset drawn from the owner, so two clouds whose VMs share one external bridge
    do not (usually) give the same number to their ports."""
    base = int(hashlib.sha256(owner.encode()).hexdigest(), 16) % MAX_PORTS
    return [(1 + (base + k) % MAX_PORTS, port) for k, port in enumerate(ports)]


def bridge_table(owner: str, rules: HostRules) -> str | None:
    """The ``bridge`` table: anti-spoofing and port marks (None: nothing to filter)."""
    if not rules.ports:
        return None
    out = [f"table bridge {table_name(owner)} {{"]
    taps = _elements(_q(p.tap) for p in rules.ports)
    out.append(f"  set ports {{ type ifname; elements = {{ {taps} }} }}")
    ports = port_marks(owner, rules.ports)
    spoof = _elements(f"{_q(p.tap)} : jump spoof-{i}" for i, p in ports)
    came = _elements(f"{_q(p.tap)} : jump from-{i}" for i, p in ports)
    goes = _elements(f"{_q(p.tap)} : jump to-{i}" for i, p in ports)
    out += [
        "  chain prerouting {",
        "    type filter hook prerouting priority -300; policy accept;",
        f"    iifname vmap {{ {spoof} }}",
        "  }",
        "  chain forward {",
        "    type filter hook forward priority -10; policy accept;",
        f"    iifname vmap {{ {came} }}",
        "    iifname != @ports oifname @ports meta mark set 0x0",
        f"    oifname vmap {{ {goes} }}",
        "  }",
        "  chain input {",
        "    type filter hook input priority -10; policy accept;",
        f"    iifname vmap {{ {came} }}",
        "  }",
    ]
    for i, port in ports:
        out += _spoof_chain(i, port)
        out += [
            f"  chain from-{i} {{", f"    meta mark set {i:#x}", "  }",
            f"  chain to-{i} {{",
            f"    meta mark set meta mark & {IN_MASK:#x} | {i << OUT_SHIFT:#x}", "  }",
        ]
    out.append("}")
    return "\n".join(out) + "\n"


def _spoof_chain(i: int, port: PortFilter) -> list[str]:
    v4 = [(m, a) for m, a in port.allowed if _version(a) == 4]
    v6 = [(m, a) for m, a in port.allowed if _version(a) == 6]
    out = [f"  set mac-{i} {{ type ether_addr; elements = {{ {_elements(port.macs)} }} }}"]
    for name, pairs, typ in ((f"ip4-{i}", v4, "ipv4_addr"), (f"ip6-{i}", v6, "ipv6_addr")):
        elems = []
        for mac in dict.fromkeys(m for m, _ in pairs):
            version = 4 if typ == "ipv4_addr" else 6
            elems += [f"{mac} . {a}" for a in _collapse([a for m, a in pairs if m == mac],
                                                          version)]
        body = f"elements = {{ {_elements(elems)} }} " if elems else ""
        out.append(f"  set {name} {{ type ether_addr . {typ}; flags interval; {body}}}")
    out += [
        f"  chain spoof-{i} {{",
        f"    ether type arp ether saddr . arp saddr ip @ip4-{i} arp saddr ether @mac-{i} return",
        f"    ether type arp arp saddr ip 0.0.0.0 ether saddr @mac-{i} return",
        "    ether type arp drop",
        f"    ether type ip ether saddr . ip saddr @ip4-{i} return",
        ("    ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67"
         f" ether saddr @mac-{i} return"),
        "    ether type ip drop",
        f"    ether type ip6 ether saddr . ip6 saddr @ip6-{i} return",
        f"    ether type ip6 ip6 saddr {{ ::, fe80::/10 }} ether saddr @mac-{i} return",
        "    ether type ip6 drop",
        "    ether type { 8021q, 8021ad } drop",
        f"    ether saddr != @mac-{i} drop",
        "  }",
    ]
    return out


def inet_table(owner: str, rules: HostRules) -> tuple[str | None, list[str]]:
    """The ``inet`` table: conntrack zones, stateful port chains, masquerade.

    Returns the table (None if there is nothing to put in it) and the rules that
    could not be translated (as error messages; they are left out)."""
    errors: list[str] = []
    if not rules.bridges and not rules.masquerade:
        return None, errors
    out = [f"table inet {table_name(owner)} {{"]
    if rules.bridges:
        out.append("  set bridges { type ifname; elements = { "
                   f"{_elements(map(_q, rules.bridges))} }} }}")
    used_groups = {r.remote_group_id for p in rules.ports for r in (*p.ingress, *p.egress)
                   if r.remote_group_id and not r.remote_ip_prefix}
    for gid in sorted(used_groups):
        for version, typ in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            elems = _collapse(rules.groups.get(gid, ()), version)
            body = f"elements = {{ {_elements(elems)} }} " if elems else ""
            out.append(f"  set {group_set(gid, version)} {{ type {typ}; flags interval; {body}}}")
    if rules.zones:
        zmap = _elements(f"{_q(b)} : {z}" for b, z in sorted(rules.zones.items()))
        out += [
            "  chain raw {",
            "    type filter hook prerouting priority raw; policy accept;",
            f"    ct zone set iifname map {{ {zmap} }}",
            "  }",
        ]
    if rules.ports:
        ports = port_marks(owner, rules.ports)
        egress = _elements(f"{i:#x} : jump egress-{i}" for i, _ in ports)
        ingress = _elements(f"{i << OUT_SHIFT:#x} : jump ingress-{i}" for i, _ in ports)
        out += [
            "  chain forward {",
            "    type filter hook forward priority filter; policy accept;",
            "    iifname != @bridges return",
            f"    meta mark & {IN_MASK:#x} vmap {{ {egress} }}",
            f"    meta mark & {IN_MASK << OUT_SHIFT:#x} vmap {{ {ingress} }}",
            "  }",
            "  chain input {",
            "    type filter hook input priority filter; policy accept;",
            "    iifname != @bridges return",
            f"    meta mark & {IN_MASK:#x} vmap {{ {egress} }}",
            "  }",
        ]
        for i, port in ports:
            out += _port_chains(i, port, rules.groups, errors)
    if rules.masquerade:
        out += ["  chain postrouting {",
                "    type nat hook postrouting priority srcnat; policy accept;"]
        for cidr, bridge in rules.masquerade:
            net = ipaddress.ip_network(cidr, strict=False)
            fam = "ip" if net.version == 4 else "ip6"
            out.append(f"    {fam} saddr {net} {fam} daddr != {net} oifname != {_q(bridge)}"
                       " masquerade")
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n", errors


def _port_chains(i: int, port: PortFilter, groups: dict[str, tuple[str, ...]],
                 errors: list[str]) -> list[str]:
    def translated(rules: Sequence[SecurityGroupRuleState], verdict: str) -> list[str]:
        lines = []
        for rule in rules:
            try:
                match = rule_match(rule, groups)
            except ValueError as exc:
                errors.append(f"security group rule {rule.id}: {exc}")
                continue
            if match is not None:
                lines.append(f"    {match} {verdict}")
        return lines

    eg = [f"  chain egress-{i} {{"]
    ing = [f"  chain ingress-{i} {{"]
    if port.stateful:
        eg += ["    ct state established,related return", "    ct state invalid drop"]
        ing += ["    ct state established,related accept", "    ct state invalid drop"]
    eg += [
        "    udp sport 68 udp dport 67 return",  # DHCP client
        "    udp sport 67 udp dport 68 drop",  # no DHCP server in a VM
        f"    ip daddr {METADATA_IP} tcp dport 80 return",
        f"    meta nfproto ipv6 icmpv6 type {{ {ND_TYPES} }} return",
        "    meta nfproto ipv6 icmpv6 type nd-router-advert drop",
        "    udp sport 547 udp dport 546 drop",  # no DHCPv6 server either
        "    udp sport 546 udp dport 547 return",
    ]
    ing += [
        "    udp sport 67 udp dport 68 accept",
        "    udp sport 547 udp dport 546 accept",
        f"    meta nfproto ipv6 icmpv6 type {{ {ND_TYPES}, nd-router-advert }} accept",
    ]
    eg += translated(port.egress, "return")
    ing += translated(port.ingress, "accept")
    eg += ["    drop", "  }"]
    ing += ["    drop", "  }"]
    return eg + ing


# ------------------------------------------------------------------------ router table


@dataclass(frozen=True)
class RouterNat:
    gateway_dev: str
    gateway_ip: str | None  # IPv4 address of the gateway port
    snat: bool
    internal: tuple[str, ...]  # IPv4 CIDRs of the interfaces
    floating: tuple[tuple[str, str], ...]  # (floating IP, fixed IP)


def router_table(owner: str, nat: RouterNat) -> str | None:
    """NAT in a router namespace: DNAT/SNAT per floating IP, then SNAT of the
    interface subnets to the gateway address. Traffic between interfaces is routed
    without NAT (only what leaves by the gateway device is rewritten)."""
    if not nat.floating and not (nat.snat and nat.gateway_ip and nat.internal):
        return None
    dev = _q(nat.gateway_dev)
    pre = [f"    ip daddr {fip} dnat to {fixed}" for fip, fixed in nat.floating]
    post = [f"    oifname {dev} ip saddr {fixed} snat to {fip}" for fip, fixed in nat.floating]
    internal = _elements(nat.internal)
    if nat.internal and nat.gateway_ip:
        if nat.snat:
            post.append(f"    oifname {dev} ip saddr {{ {internal} }} snat to {nat.gateway_ip}")
        # a VM reaching another VM's floating IP from inside: answer through the router
        post.append(f"    oifname != {dev} ct status dnat ip saddr {{ {internal} }} masquerade")
    out = [f"table ip {table_name(owner)} {{"]
    out += ["  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;",
            *pre, "  }",
            "  chain output {", "    type nat hook output priority -100; policy accept;",
            *pre, "  }",
            "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;",
            *post, "  }", "}"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- applying


def replace_script(family: str, name: str, body: str | None) -> str:
    """A transaction that replaces table ``family name`` with ``body`` (or removes it)."""
    script = f"table {family} {name}\ndelete table {family} {name}\n"
    return script + (body or "")


def run_nft(script: str) -> None:
    """Run ``nft -f -`` in the calling thread's namespace.

    Raises:
        RuntimeError: nft refused the script (its message).
    """
    proc = subprocess.run(["nft", "-f", "-"], check=False, input=script, capture_output=True, text=True,
                          timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"nft: {proc.stderr.strip()[:2000]}")


def list_tables() -> set[tuple[str, str]]:
    """(family, name) of every table in the calling thread's namespace."""
    proc = subprocess.run(["nft", "list", "tables"], check=False, capture_output=True,
                          text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"nft: {proc.stderr.strip()[:2000]}")
    tables = set()
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "table":
            tables.add((parts[1], parts[2]))
    return tables
