"""Translation of security group rules and NAT into nftables (checked by ``nft -c``)."""

from __future__ import annotations

import subprocess

import pytest

from onestack.network.dataplane import nft
from tests.dataplane.helpers import rule

GROUPS = {"g1": ("10.0.0.5", "10.0.0.0/24", "fd00::5", "bogus")}


@pytest.mark.parametrize(("made", "expected"), [
    (rule("ingress", "tcp", 22, 22), "meta nfproto ipv4 meta l4proto 6 th dport 22"),
    (rule("ingress", "udp", 1000, 2000, prefix="10.0.0.0/8"),
     "meta nfproto ipv4 meta l4proto 17 th dport 1000-2000 ip saddr 10.0.0.0/8"),
    (rule("ingress", "tcp", 1, 65535), "meta nfproto ipv4 meta l4proto 6"),
    (rule("ingress", "icmp", 8, 0), "meta nfproto ipv4 meta l4proto 1 icmp type 8 icmp code 0"),
    (rule("ingress", "icmp", ethertype="IPv6"), "meta nfproto ipv6 meta l4proto 58"),
    (rule("egress", "ipv6-icmp", 128, ethertype="IPv6"),
     "meta nfproto ipv6 meta l4proto 58 icmpv6 type 128"),
    (rule("egress", "132", 5000, 5000, prefix="0.0.0.0/0"),
     "meta nfproto ipv4 meta l4proto 132 th dport 5000"),
    (rule("egress", "any"), "meta nfproto ipv4"),
    (rule("ingress", group="g1"), "meta nfproto ipv4 ip saddr @rg-g1-4"),
    (rule("egress", group="g1", ethertype="IPv6"), "meta nfproto ipv6 ip6 daddr @rg-g1-6"),
    (rule("ingress", group="empty"), None),
    (rule("ingress", prefix="fd00::/64"), None),  # an IPv6 prefix on an IPv4 rule
])
def test_rule_match(made, expected) -> None:
    assert nft.rule_match(made, GROUPS) == expected


def test_unknown_protocol_is_reported_and_left_out() -> None:
    port = nft.PortFilter(tap="tapx", macs=("fa:16:3e:00:00:01",),
                          allowed=(("fa:16:3e:00:00:01", "10.0.0.5"),), stateful=True,
                          ingress=(rule("ingress", "nonsense"), rule("ingress", "tcp", 80, 80)),
                          egress=())
    table, errors = nft.inet_table("t", nft.HostRules(bridges=("brqx",), zones={}, ports=(port,),
                                                      groups={}))
    assert len(errors) == 1 and "nonsense" in errors[0]
    assert table is not None and "th dport 80 accept" in table


def test_router_nat_order() -> None:
    nat = nft.RouterNat(gateway_dev="qg-x", gateway_ip="172.24.4.10", snat=True,
                        internal=("10.0.0.0/24",), floating=(("172.24.4.20", "10.0.0.5"),))
    table = nft.router_table("t", nat)
    assert table is not None
    # a floating IP's own SNAT comes before the router's SNAT of the whole subnet
    assert table.index("snat to 172.24.4.20") < table.index("snat to 172.24.4.10")
    assert nft.router_table("t", nft.RouterNat("qg-x", "172.24.4.10", False, (), ())) is None


def test_generated_tables_pass_nft_check() -> None:
    """Every construct the generator emits is accepted by nft (dry run, nothing applied)."""
    port = nft.PortFilter(
        tap="tapabcdef01-23", macs=("fa:16:3e:00:00:01", "fa:16:3e:00:00:02"),
        allowed=(("fa:16:3e:00:00:01", "10.0.0.5"), ("fa:16:3e:00:00:01", "fd00::5"),
                 ("fa:16:3e:00:00:02", "10.1.0.0/24"), ("fa:16:3e:00:00:02", "10.1.0.7")),
        stateful=True,
        ingress=(rule("ingress", group="g1"), rule("ingress", "icmp", 8, 0),
                 rule("ingress", "tcp", 22, 22, prefix="192.168.0.0/16")),
        egress=(rule("egress"), rule("egress", "icmpv6", 128, ethertype="IPv6"),
                rule("egress", group="g1", ethertype="IPv6")))
    stateless = nft.PortFilter(tap="tapabcdef02-34", macs=("fa:16:3e:00:00:03",),
                               allowed=(("fa:16:3e:00:00:03", "10.0.0.6"),), stateful=False,
                               ingress=(), egress=(rule("egress", "udp", 53, 53),))
    rules = nft.HostRules(bridges=("brqx", "br-ex"), zones={"brqx": 1234},
                          ports=(port, stateless), groups=GROUPS,
                          masquerade=(("172.24.4.0/24", "br-ex"),))
    bridge = nft.bridge_table("check", rules)
    inet, errors = nft.inet_table("check", rules)
    router = nft.router_table("check", nft.RouterNat(
        "qg-x", "172.24.4.10", True, ("10.0.0.0/24", "10.1.0.0/24"),
        (("172.24.4.20", "10.0.0.5"),)))
    assert errors == [] and bridge and inet and router
    for body in (bridge, inet, router):
        proc = subprocess.run(["nft", "-c", "-f", "-"], input=body, capture_output=True,
                              text=True, check=False)
        assert proc.returncode == 0, proc.stderr + body
