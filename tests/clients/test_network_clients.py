"""The networking service through real clients against ``onestack up``: the
``openstack network|subnet|port|router|floating ip|security group ...`` CLI and
openstacksdk's network proxy, as admin ("onestack-admin") and as a member of
the demo project ("onestack"), with the CLI's exit status and message on every
error path."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import openstack
import pytest

from tests.clients.conftest import Server

pytestmark = pytest.mark.slow

ADMIN = "onestack-admin"
MEMBER = "onestack"


def show(server: Server, *args: str, cloud: str = ADMIN) -> Any:
    """Run a CLI command with ``-f json`` and return what it printed, parsed."""
    return json.loads(server.openstack(*args, "-f", "json", cloud=cloud))


def names(server: Server, *args: str, cloud: str = ADMIN, column: str = "Name") -> list[str]:
    return server.openstack(*args, "-f", "value", "-c", column, cloud=cloud).split()


def fails(server: Server, *args: str, cloud: str = ADMIN) -> str:
    """Run a CLI command that must fail: asserts a non-zero exit status and
    returns its stderr (the server's status code and message)."""
    exe = Path(sys.executable).with_name("openstack")
    proc = subprocess.run([str(exe), *args], env=server.env(cloud), capture_output=True,
                          check=False,
                          text=True, timeout=120)
    assert proc.returncode != 0, f"openstack {' '.join(args)} succeeded: {proc.stdout}"
    return proc.stderr


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def connect(server: Server, cloud: str = ADMIN) -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(config_files=[str(server.clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud))


def eui64(cidr: str, mac: str) -> str:
    """The SLAAC address of ``mac`` in the /64 ``cidr`` (RFC 4291 modified EUI-64)."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    iid = bytes(octets[:3] + [0xFF, 0xFE] + octets[3:])
    net = ipaddress.IPv6Network(cidr)
    return str(net.network_address + int.from_bytes(iid, "big"))


# ----------------------------------------------------------------------------- networks


def test_cli_network_lifecycle(server: Server) -> None:
    name = unique("net")
    net = show(server, "network", "create", "--share", "--description", "first", name)
    assert net["shared"] is True and net["description"] == "first"
    assert net["status"] == "ACTIVE" and net["admin_state_up"] is True
    assert net["router:external"] is False
    assert net["provider:network_type"] == "vxlan"
    assert net["revision_number"] == 0
    assert name in names(server, "network", "list")
    assert name in names(server, "network", "list", "--share")
    assert name not in names(server, "network", "list", "--external")
    assert show(server, "network", "show", name)["id"] == net["id"]

    renamed = unique("renamed")
    server.openstack("network", "set", "--name", renamed, "--description", "second",
                     "--no-share", "--mtu", "1400", "--disable", name)
    got = show(server, "network", "show", net["id"])
    assert (got["name"], got["description"], got["shared"], got["mtu"]) == (
        renamed, "second", False, 1400)
    assert got["admin_state_up"] is False
    assert got["revision_number"] > net["revision_number"]
    server.openstack("network", "set", "--enable", "--tag", "blue", renamed)
    got = show(server, "network", "show", renamed)
    assert got["admin_state_up"] is True and got["tags"] == ["blue"]
    assert renamed in names(server, "network", "list", "--tags", "blue")
    server.openstack("network", "unset", "--tag", "blue", renamed)
    assert show(server, "network", "show", renamed)["tags"] == []

    err = fails(server, "network", "set", "--mtu", "9000", renamed)
    assert "400" in err
    server.openstack("network", "delete", renamed)
    assert renamed not in names(server, "network", "list")
    err = fails(server, "network", "show", net["id"])
    assert "No Network found" in err or "404" in err


def test_cli_network_provider_and_external_as_admin(server: Server) -> None:
    seg = 3000 + int(uuid.uuid4().hex[:3], 16) % 900
    ext = show(server, "network", "create", "--external", "--provider-network-type", "vlan",
               "--provider-physical-network", "public", "--provider-segment", str(seg),
               unique("ext"))
    assert ext["router:external"] is True
    assert (ext["provider:network_type"], ext["provider:physical_network"],
            ext["provider:segmentation_id"]) == ("vlan", "public", seg)
    assert ext["name"] in names(server, "network", "list", "--external")
    assert ext["name"] in names(server, "network", "list", "--provider-segment", str(seg))

    err = fails(server, "network", "create", "--provider-network-type", "vlan",
                "--provider-physical-network", "public", "--provider-segment", str(seg),
                unique("dup"))
    assert "409" in err and f"VLAN {seg} on physical network public is in use" in err
    err = fails(server, "network", "create", "--provider-network-type", "vlan",
                "--provider-physical-network", "nosuch", "--provider-segment", "12",
                unique("bad"))
    assert "400" in err and "nosuch" in err
    err = fails(server, "network", "create", "--provider-network-type", "bogus", unique("bad"))
    assert "400" in err

    vni = 40000 + int(uuid.uuid4().hex[:3], 16)
    vx = show(server, "network", "create", "--provider-network-type", "vxlan",
              "--provider-segment", str(vni), unique("vx"))
    assert (vx["provider:network_type"], vx["provider:segmentation_id"]) == ("vxlan", vni)
    assert vx["provider:physical_network"] is None

    # a member may not choose provider attributes or make a network external
    err = fails(server, "network", "create", "--provider-network-type", "vxlan", unique("m"),
                cloud=MEMBER)
    assert "403" in err and "disallowed by policy" in err
    err = fails(server, "network", "create", "--external", unique("m"), cloud=MEMBER)
    assert "403" in err and "disallowed by policy" in err
    server.openstack("network", "set", "--internal", ext["id"])
    assert show(server, "network", "show", ext["id"])["router:external"] is False
    server.openstack("network", "delete", ext["id"], vx["id"])


def test_member_sees_own_shared_and_external_networks_only(server: Server) -> None:
    private = show(server, "network", "create", unique("adminonly"))
    shared = show(server, "network", "create", "--share", unique("shared"))
    sub = show(server, "subnet", "create", "--network", private["id"], "--subnet-range",
               "10.41.0.0/24", unique("adminsub"))
    mine = show(server, "network", "create", unique("mine"), cloud=MEMBER)
    assert mine["project_id"] != private["project_id"]

    seen = names(server, "network", "list", cloud=MEMBER)
    assert mine["name"] in seen and shared["name"] in seen and "public" in seen
    assert private["name"] not in seen
    assert private["name"] in names(server, "network", "list")  # admin sees all
    assert sub["name"] not in names(server, "subnet", "list", cloud=MEMBER)
    err = fails(server, "network", "show", private["id"], cloud=MEMBER)
    assert "No Network found" in err or "404" in err
    err = fails(server, "network", "delete", shared["id"], cloud=MEMBER)
    assert "403" in err or "404" in err
    err = fails(server, "network", "set", "--name", "x", shared["id"], cloud=MEMBER)
    assert "403" in err or "404" in err

    # a member may use a shared network, not another project's private one
    shared_sub = show(server, "subnet", "create", "--network", shared["id"], "--subnet-range",
                      "10.42.0.0/24", unique("sharedsub"))
    port = show(server, "port", "create", "--network", shared["id"], unique("p"), cloud=MEMBER)
    assert port["fixed_ips"][0]["subnet_id"] == shared_sub["id"]
    err = fails(server, "port", "create", "--network", private["id"], unique("p"),
                cloud=MEMBER)
    assert "404" in err or "No Network found" in err
    assert port["name"] in names(server, "port", "list", cloud=MEMBER)
    server.openstack("port", "delete", port["id"], cloud=MEMBER)
    server.openstack("network", "delete", mine["id"], cloud=MEMBER)
    server.openstack("network", "delete", private["id"], shared["id"])


# ------------------------------------------------------------------------------ subnets


def test_cli_subnets(server: Server) -> None:
    net = show(server, "network", "create", unique("subnets"))
    name = unique("s4")
    s4 = show(server, "subnet", "create", "--network", net["id"], "--subnet-range",
              "10.51.0.0/24", "--allocation-pool", "start=10.51.0.10,end=10.51.0.20",
              "--allocation-pool", "start=10.51.0.100,end=10.51.0.110",
              "--dns-nameserver", "192.0.2.53", "--dns-nameserver", "192.0.2.54", name)
    assert (s4["cidr"], s4["ip_version"], s4["gateway_ip"]) == ("10.51.0.0/24", 4, "10.51.0.1")
    assert s4["allocation_pools"] == [{"start": "10.51.0.10", "end": "10.51.0.20"},
                                      {"start": "10.51.0.100", "end": "10.51.0.110"}]
    assert s4["dns_nameservers"] == ["192.0.2.53", "192.0.2.54"]
    assert s4["enable_dhcp"] is True
    assert show(server, "network", "show", net["id"])["subnets"] == [s4["id"]]

    nogw = show(server, "subnet", "create", "--network", net["id"], "--subnet-range",
                "10.51.1.0/24", "--gateway", "none", "--no-dhcp", unique("nogw"))
    assert nogw["gateway_ip"] is None and nogw["enable_dhcp"] is False
    assert nogw["allocation_pools"] == [{"start": "10.51.1.1", "end": "10.51.1.254"}]

    v6 = show(server, "subnet", "create", "--network", net["id"], "--ip-version", "6",
              "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac",
              "--subnet-range", "fd00:51::/64", unique("s6"))
    assert (v6["ip_version"], v6["ipv6_ra_mode"], v6["ipv6_address_mode"]) == (6, "slaac",
                                                                                 "slaac")
    assert v6["gateway_ip"] == "fd00:51::1"
    listed = names(server, "subnet", "list", "--network", net["id"], "--ip-version", "6")
    assert listed == [v6["name"]]

    # a port on the network gets one IPv4 address (the first subnet with room, as
    # Neutron) and one from every SLAAC subnet, made from its MAC
    mac = "fa:16:3e:51:00:01"
    port = show(server, "port", "create", "--network", net["id"], "--mac-address", mac,
                unique("p"))
    by_subnet = {f["subnet_id"]: f["ip_address"] for f in port["fixed_ips"]}
    assert by_subnet[v6["id"]] == eui64("fd00:51::/64", mac)
    assert by_subnet[s4["id"]] in [f"10.51.0.{i}" for i in (*range(10, 21), *range(100, 111))]
    assert len(by_subnet) == 2

    # errors: the CLI exits non-zero with the server's status and message
    err = fails(server, "subnet", "create", "--network", net["id"], "--subnet-range",
                "10.51.0.128/25", unique("overlap"))
    assert "400" in err and "overlaps with another subnet" in err
    err = fails(server, "subnet", "create", "--network", net["id"], "--subnet-range",
                "10.51.2.0/24", "--allocation-pool", "start=10.51.3.1,end=10.51.3.5",
                unique("badpool"))
    assert "400" in err and "spans beyond the subnet cidr" in err
    err = fails(server, "subnet", "create", "--network", net["id"], "--subnet-range",
                "10.51.4.0/24", "--gateway", "10.51.5.1", "--allocation-pool",
                "start=10.51.4.1,end=10.51.4.9", "--ip-version", "6", unique("mixed"))
    assert "400" in err
    err = fails(server, "subnet", "create", "--network", net["id"], "--subnet-range",
                "not-a-cidr", unique("bad"))
    assert err  # rejected by the CLI or the server

    server.openstack("subnet", "set", "--name", name + "-x", "--dns-nameserver",
                     "192.0.2.55", "--description", "four", s4["id"])
    got = show(server, "subnet", "show", s4["id"])
    assert got["name"] == name + "-x" and got["description"] == "four"
    # (the CLI puts the new one first; the order sent is kept)
    assert got["dns_nameservers"] == ["192.0.2.55", "192.0.2.53", "192.0.2.54"]
    server.openstack("subnet", "unset", "--dns-nameserver", "192.0.2.53", s4["id"])
    assert show(server, "subnet", "show", s4["id"])["dns_nameservers"] == [
        "192.0.2.55", "192.0.2.54"]

    err = fails(server, "subnet", "delete", s4["id"])  # the port has an address there
    assert "409" in err
    server.openstack("port", "delete", port["id"])
    server.openstack("subnet", "delete", s4["id"], nogw["id"], v6["id"])
    assert names(server, "subnet", "list", "--network", net["id"]) == []
    server.openstack("network", "delete", net["id"])


# -------------------------------------------------------------------------------- ports


def test_cli_ports(server: Server) -> None:
    net = show(server, "network", "create", unique("ports"))
    sub = show(server, "subnet", "create", "--network", net["id"], "--subnet-range",
               "10.61.0.0/24", unique("psub"))
    sg = show(server, "security", "group", "create", unique("sg"))
    sg2 = show(server, "security", "group", "create", unique("sg"))

    mac = "fa:16:3e:61:00:01"
    pname = unique("port")
    port = show(server, "port", "create", "--network", net["name"], "--fixed-ip",
                f"subnet={sub['name']},ip-address=10.61.0.50", "--mac-address", mac,
                "--security-group", sg["name"], "--device-owner", "compute:nova",
                "--device", str(uuid.uuid4()), pname)
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.61.0.50"}]
    assert port["mac_address"] == mac
    assert port["security_group_ids"] == [sg["id"]]
    assert port["port_security_enabled"] is True
    assert port["network_id"] == net["id"]

    plain = show(server, "port", "create", "--network", net["id"], "--disable-port-security",
                 "--no-security-group", unique("nosec"))
    assert plain["port_security_enabled"] is False and plain["security_group_ids"] == []
    default = show(server, "port", "create", "--network", net["id"], unique("dflt"))
    assert len(default["security_group_ids"]) == 1  # the project's default group
    assert default["security_group_ids"] != [sg["id"]]

    listed = names(server, "port", "list", "--network", net["id"])
    assert sorted(listed) == sorted([port["name"], plain["name"], default["name"]])
    assert names(server, "port", "list", "--mac-address", mac) == [pname]
    assert names(server, "port", "list", "--fixed-ip", "ip-address=10.61.0.50") == [pname]

    # set: rename, a second address, a second group; unset them again
    server.openstack("port", "set", "--name", pname + "-x", "--fixed-ip",
                     f"subnet={sub['id']},ip-address=10.61.0.51", "--security-group",
                     sg2["id"], "--description", "vm port", port["id"])
    got = show(server, "port", "show", port["id"])
    assert got["name"] == pname + "-x" and got["description"] == "vm port"
    assert sorted(f["ip_address"] for f in got["fixed_ips"]) == ["10.61.0.50", "10.61.0.51"]
    assert sorted(got["security_group_ids"]) == sorted([sg["id"], sg2["id"]])
    server.openstack("port", "unset", "--security-group", sg["id"], "--fixed-ip",
                     f"subnet={sub['id']},ip-address=10.61.0.50", port["id"])
    got = show(server, "port", "show", port["id"])
    assert got["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.61.0.51"}]
    assert got["security_group_ids"] == [sg2["id"]]
    server.openstack("port", "set", "--no-security-group", "--disable-port-security",
                     port["id"])
    got = show(server, "port", "show", port["id"])
    assert got["security_group_ids"] == [] and got["port_security_enabled"] is False
    server.openstack("port", "set", "--enable-port-security", "--security-group", sg["id"],
                     port["id"])
    assert show(server, "port", "show", port["id"])["security_group_ids"] == [sg["id"]]

    # errors
    err = fails(server, "port", "create", "--network", net["id"], "--fixed-ip",
                f"subnet={sub['id']},ip-address=10.99.0.5", unique("bad"))
    assert "400" in err and "is not a valid IP for the specified subnet" in err
    err = fails(server, "port", "create", "--network", net["id"], "--fixed-ip",
                f"subnet={sub['id']},ip-address=10.61.0.51", unique("dup"))
    assert "409" in err and "10.61.0.51 already allocated" in err
    err = fails(server, "port", "create", "--network", net["id"], "--mac-address", mac,
                unique("dupmac"))
    assert "409" in err and mac in err
    err = fails(server, "port", "create", "--network", net["id"], "--disable-port-security",
                "--security-group", sg["id"], unique("conflict"))
    assert "400" in err or "409" in err
    err = fails(server, "port", "create", "--network", net["id"], "--mac-address",
                "not-a-mac", unique("badmac"))
    assert "400" in err
    err = fails(server, "network", "delete", net["id"])
    assert "409" in err and "There are one or more ports still in use on the network" in err
    assert "1 of 1 networks failed to delete" in err
    err = fails(server, "security", "group", "delete", sg["id"])
    assert "409" in err and "in use" in err

    server.openstack("port", "delete", port["id"], plain["id"], default["id"])
    assert names(server, "port", "list", "--network", net["id"]) == []
    err = fails(server, "port", "show", port["id"])
    assert "No Port found" in err or "404" in err
    server.openstack("security", "group", "delete", sg["id"], sg2["id"])
    server.openstack("network", "delete", net["id"])


# ------------------------------------------------------------ routers and floating IPs


def test_cli_router_and_floating_ip(server: Server) -> None:
    cloud = MEMBER
    net = show(server, "network", "create", unique("rnet"), cloud=cloud)
    sub = show(server, "subnet", "create", "--network", net["id"], "--subnet-range",
               "10.71.0.0/24", unique("rsub"), cloud=cloud)
    lonely = show(server, "network", "create", unique("lonely"), cloud=cloud)
    show(server, "subnet", "create", "--network", lonely["id"], "--subnet-range",
         "10.72.0.0/24", unique("lsub"), cloud=cloud)
    vm = show(server, "port", "create", "--network", net["id"], unique("vm"), cloud=cloud)
    other = show(server, "port", "create", "--network", lonely["id"], unique("vm"),
                 cloud=cloud)

    router = show(server, "router", "create", unique("r"), cloud=cloud)
    assert router["status"] == "ACTIVE" and router["external_gateway_info"] is None
    assert router["name"] in names(server, "router", "list", cloud=cloud)
    server.openstack("router", "add", "subnet", router["name"], sub["name"], cloud=cloud)
    got = show(server, "router", "show", router["id"], cloud=cloud)
    assert [(i["subnet_id"], i["ip_address"]) for i in got["interfaces_info"]] == [
        (sub["id"], "10.71.0.1")]
    err = fails(server, "router", "add", "subnet", router["id"], sub["id"], cloud=cloud)
    assert "400" in err and "already has a port on subnet" in err
    err = fails(server, "subnet", "delete", sub["id"], cloud=cloud)
    assert "409" in err

    server.openstack("router", "set", "--external-gateway", "public", router["id"],
                     cloud=cloud)
    gw = show(server, "router", "show", router["id"], cloud=cloud)["external_gateway_info"]
    public = show(server, "network", "show", "public", cloud=cloud)
    assert gw["network_id"] == public["id"]
    assert len(gw["external_fixed_ips"]) == 1

    fip = show(server, "floating", "ip", "create", "public", cloud=cloud)
    assert fip["floating_network_id"] == public["id"]
    assert fip["port_id"] is None and fip["status"] == "DOWN"
    pub_cidr = show(server, "subnet", "show", public["subnets"][0], cloud=cloud)["cidr"]
    assert ipaddress.ip_address(fip["floating_ip_address"]) in ipaddress.ip_network(pub_cidr)
    server.openstack("floating", "ip", "set", "--port", vm["id"], fip["id"], cloud=cloud)
    got = show(server, "floating", "ip", "show", fip["id"], cloud=cloud)
    assert got["port_id"] == vm["id"] and got["router_id"] == router["id"]
    assert got["fixed_ip_address"] == vm["fixed_ips"][0]["ip_address"]
    assert fip["floating_ip_address"] in names(server, "floating", "ip", "list", "--port",
                                               vm["id"], cloud=cloud,
                                               column="Floating IP Address")
    err = fails(server, "floating", "ip", "set", "--port", other["id"], fip["id"],
                cloud=cloud)
    assert "404" in err and "External network" in err and "not reachable" in err
    err = fails(server, "router", "remove", "subnet", router["id"], sub["id"], cloud=cloud)
    assert "409" in err  # the floating IP needs the interface
    server.openstack("floating", "ip", "unset", "--port", fip["id"], cloud=cloud)
    got = show(server, "floating", "ip", "show", fip["id"], cloud=cloud)
    assert got["port_id"] is None and got["fixed_ip_address"] is None
    server.openstack("floating", "ip", "delete", fip["id"], cloud=cloud)
    assert fip["id"] not in names(server, "floating", "ip", "list", cloud=cloud, column="ID")
    err = fails(server, "floating", "ip", "create", net["id"], cloud=cloud)
    assert "400" in err or "404" in err

    err = fails(server, "router", "delete", router["id"], cloud=cloud)
    assert "409" in err and "has ports still attached" in err
    server.openstack("router", "remove", "subnet", router["id"], sub["id"], cloud=cloud)
    assert show(server, "router", "show", router["id"], cloud=cloud)["interfaces_info"] == []
    server.openstack("router", "unset", "--external-gateway", router["id"], cloud=cloud)
    assert show(server, "router", "show", router["id"],
                cloud=cloud)["external_gateway_info"] is None
    server.openstack("router", "delete", router["id"], cloud=cloud)
    server.openstack("port", "delete", vm["id"], other["id"], cloud=cloud)
    server.openstack("network", "delete", net["id"], lonely["id"], cloud=cloud)


# ---------------------------------------------------------------------- security groups


def test_cli_security_groups_and_rules(server: Server) -> None:
    cloud = MEMBER
    name = unique("web")
    sg = show(server, "security", "group", "create", "--description", "web tier", name,
              cloud=cloud)
    assert sg["description"] == "web tier"
    assert sorted((r["direction"], r["ethertype"]) for r in sg["rules"]) == [
        ("egress", "IPv4"), ("egress", "IPv6")]
    peers = show(server, "security", "group", "create", unique("peers"), cloud=cloud)
    listed = names(server, "security", "group", "list", cloud=cloud)
    assert name in listed and peers["name"] in listed and "default" in listed

    ssh = show(server, "security", "group", "rule", "create", "--protocol", "tcp",
               "--dst-port", "22", "--remote-ip", "10.0.0.0/8", "--ingress", name,
               cloud=cloud)
    assert (ssh["protocol"], ssh["port_range_min"], ssh["port_range_max"]) == ("tcp", 22, 22)
    assert (ssh["direction"], ssh["ether_type"], ssh["remote_ip_prefix"]) == (
        "ingress", "IPv4", "10.0.0.0/8")
    web = show(server, "security", "group", "rule", "create", "--protocol", "tcp",
               "--dst-port", "8000:8080", "--remote-group", peers["name"], name, cloud=cloud)
    assert web["remote_group_id"] == peers["id"] and web["remote_ip_prefix"] is None
    assert (web["port_range_min"], web["port_range_max"]) == (8000, 8080)
    dns6 = show(server, "security", "group", "rule", "create", "--egress", "--ethertype",
                "IPv6", "--protocol", "udp", "--dst-port", "53", "--remote-ip",
                "2001:db8::/32", name, cloud=cloud)
    assert (dns6["direction"], dns6["ether_type"], dns6["protocol"]) == ("egress", "IPv6",
                                                                        "udp")
    icmp = show(server, "security", "group", "rule", "create", "--protocol", "icmp",
                "--icmp-type", "8", "--icmp-code", "0", name, cloud=cloud)
    assert (icmp["port_range_min"], icmp["port_range_max"]) == (8, 0)

    rules = json.loads(server.openstack("security", "group", "rule", "list", name, "-f",
                                        "json", cloud=cloud))
    assert {ssh["id"], web["id"], dns6["id"], icmp["id"]} <= {r["ID"] for r in rules}
    assert len(rules) == 6
    assert show(server, "security", "group", "show", sg["id"], cloud=cloud)["id"] == sg["id"]

    # errors
    err = fails(server, "security", "group", "rule", "create", "--protocol", "tcp",
                "--dst-port", "22", "--remote-ip", "10.0.0.0/8", "--ingress", name,
                cloud=cloud)
    assert "409" in err and "Security group rule already exists" in err
    err = fails(server, "security", "group", "rule", "create", "--ethertype", "IPv6",
                "--remote-ip", "10.0.0.0/8", name, cloud=cloud)
    assert "400" in err and "10.0.0.0/8" in err
    err = fails(server, "security", "group", "rule", "create", "--protocol", "tcp",
                "--dst-port", "90:80", name, cloud=cloud)
    assert "Invalid range" in err  # the CLI's own check
    err = fails(server, "security", "group", "rule", "create", "--protocol", "tcp",
                "--dst-port", "70000", name, cloud=cloud)
    assert "400" in err and "Invalid value for port 70000" in err
    err = fails(server, "security", "group", "rule", "create", "--protocol", "bogus", name,
                cloud=cloud)
    assert "400" in err and "protocol bogus not supported" in err
    err = fails(server, "security", "group", "rule", "create", "--remote-group",
                str(uuid.uuid4()), name, cloud=cloud)
    assert "404" in err or "No SecurityGroup found" in err
    default = show(server, "security", "group", "show", "default", cloud=cloud)
    err = fails(server, "security", "group", "delete", default["id"], cloud=cloud)
    assert "409" in err and "default" in err.lower()

    server.openstack("security", "group", "set", "--name", name + "-x", "--description",
                     "renamed", sg["id"], cloud=cloud)
    got = show(server, "security", "group", "show", sg["id"], cloud=cloud)
    assert got["name"] == name + "-x" and got["description"] == "renamed"
    server.openstack("security", "group", "rule", "delete", ssh["id"], cloud=cloud)
    # deleting a group deletes the rules of other groups that refer to it (as Neutron)
    server.openstack("security", "group", "delete", peers["id"], cloud=cloud)
    left = json.loads(server.openstack("security", "group", "rule", "list", sg["id"], "-f",
                                       "json", cloud=cloud))
    assert {r["ID"] for r in left} & {ssh["id"], web["id"]} == set() and len(left) == 4
    err = fails(server, "security", "group", "rule", "show", ssh["id"], cloud=cloud)
    assert "404" in err or "No SecurityGroupRule found" in err
    server.openstack("security", "group", "delete", sg["id"], cloud=cloud)
    assert sg["id"] not in names(server, "security", "group", "list", cloud=cloud,
                                 column="ID")


# ------------------------------------------------------------- quotas and information


def test_cli_quotas(server: Server) -> None:
    quota = {q["Resource"]: q["Limit"]
             for q in show(server, "quota", "show", "--network", "demo")}
    assert quota["networks"] == 100 and quota["ports"] == 500 and quota["routers"] == 10
    have = len(names(server, "network", "list", "--project", "demo", column="ID"))
    server.openstack("quota", "set", "--networks", str(have + 1), "demo")
    try:
        quota = {q["Resource"]: q["Limit"]
                 for q in show(server, "quota", "show", "--network", "demo")}
        assert quota["networks"] == have + 1
        mine = {q["Resource"]: q["Limit"]
                for q in show(server, "quota", "show", "--network", cloud=MEMBER)}
        assert mine["networks"] == have + 1
        ok = show(server, "network", "create", unique("q"), cloud=MEMBER)
        err = fails(server, "network", "create", unique("q"), cloud=MEMBER)
        assert "409" in err and "Quota exceeded for resources: ['network']" in err
        err = fails(server, "quota", "set", "--networks", "1000", "demo", cloud=MEMBER)
        assert "403" in err
        server.openstack("network", "delete", ok["id"], cloud=MEMBER)
    finally:
        server.openstack("quota", "set", "--networks", "100", "demo")
    assert {q["Resource"]: q["Limit"]
            for q in show(server, "quota", "show", "--network", "demo")}["networks"] == 100


def test_cli_agents_zones_extensions_and_ip_availability(server: Server) -> None:
    agents = show(server, "network", "agent", "list")
    types = sorted(a["Agent Type"] for a in agents)
    assert types == ["DHCP agent", "L3 agent", "Linux bridge agent", "Metadata agent"]
    assert all(a["Alive"] is True and a["State"] is True for a in agents)
    dhcp = show(server, "network", "agent", "list", "--agent-type", "dhcp")
    assert [a["Binary"] for a in dhcp] == ["neutron-dhcp-agent"]
    assert show(server, "network", "agent", "show", dhcp[0]["ID"])["host"] == dhcp[0]["Host"]

    zones = show(server, "availability", "zone", "list", "--network")
    assert zones and {z["Zone Name"] for z in zones} == {"nova"}
    assert {z["Zone Status"] for z in zones} == {"available"}

    aliases = set(names(server, "extension", "list", "--network", column="Alias"))
    for alias in ("router", "security-group", "external-net", "provider", "quotas",
                  "port-security", "binding", "agent", "network-ip-availability",
                  "standard-attr-tag"):
        assert alias in aliases, alias
    ext = show(server, "extension", "show", "router")
    assert ext["alias"] == "router"

    net = show(server, "network", "create", unique("ipa"))
    show(server, "subnet", "create", "--network", net["id"], "--subnet-range",
         "10.81.0.0/28", "--no-dhcp", unique("ipasub"))
    for _ in range(3):
        show(server, "port", "create", "--network", net["id"], unique("ipap"))
    avail = {a["Network Name"]: a for a in show(server, "ip", "availability", "list")}
    assert avail[net["name"]]["Total IPs"] == 13  # .1 is the gateway, .0 and .15 reserved
    assert avail[net["name"]]["Used IPs"] == 3
    assert "public" in avail
    one = show(server, "ip", "availability", "show", net["id"])
    assert one["used_ips"] == 3 and one["total_ips"] == 13
    assert names(server, "ip", "availability", "list", cloud=MEMBER,
                 column="Network Name") == []  # admin only
    for port in names(server, "port", "list", "--network", net["id"], column="ID"):
        server.openstack("port", "delete", port)
    server.openstack("network", "delete", net["id"])


# ----------------------------------------------------------------------- openstacksdk


def test_sdk_network_proxy(server: Server) -> None:
    conn = connect(server, MEMBER)
    net = conn.network.create_network(name=unique("sdk"))
    assert net.status == "ACTIVE" and not net.is_shared
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.91.0.0/24",
                                     name=unique("sdksub"), dns_nameservers=["192.0.2.1"])
    assert sub.gateway_ip == "10.91.0.1" and sub.dns_nameservers == ["192.0.2.1"]
    ports = [conn.network.create_port(network_id=net.id, name=f"sdkp{i}") for i in range(3)]
    fixed = conn.network.create_port(network_id=net.id, name="sdkfixed", fixed_ips=[
        {"subnet_id": sub.id, "ip_address": "10.91.0.99"}])
    assert fixed.fixed_ips == [{"subnet_id": sub.id, "ip_address": "10.91.0.99"}]
    listed = {p.id for p in conn.network.ports(network_id=net.id)
              if p.device_owner != "network:dhcp"}  # the agent's DHCP port, if there yet
    assert listed == {p.id for p in ports} | {fixed.id}
    assert [p.id for p in conn.network.ports(network_id=net.id, name="sdkp1")] == [ports[1].id]
    assert [p.id for p in conn.network.ports(fixed_ips="ip_address=10.91.0.99")] == [fixed.id]
    conn.network.update_port(ports[0], name="renamed")
    assert conn.network.get_port(ports[0].id).name == "renamed"

    sg = conn.network.create_security_group(name=unique("sdksg"), description="sdk")
    rule = conn.network.create_security_group_rule(
        security_group_id=sg.id, direction="ingress", protocol="tcp", port_range_min=443,
        port_range_max=443, remote_ip_prefix="0.0.0.0/0", ethertype="IPv4")
    assert rule.port_range_min == 443
    rules = list(conn.network.security_group_rules(security_group_id=sg.id))
    assert rule.id in {r.id for r in rules} and len(rules) == 3
    conn.network.update_port(ports[1], security_group_ids=[sg.id])
    assert conn.network.get_port(ports[1].id).security_group_ids == [sg.id]

    public = conn.network.find_network("public")
    assert public is not None and public.is_router_external
    router = conn.network.create_router(name=unique("sdkr"),
                                        external_gateway_info={"network_id": public.id})
    assert router.external_gateway_info["network_id"] == public.id
    conn.network.add_interface_to_router(router, subnet_id=sub.id)
    intf = list(conn.network.ports(device_id=router.id,
                                   device_owner="network:router_interface"))
    assert [i.fixed_ips[0]["ip_address"] for i in intf] == ["10.91.0.1"]

    fip = conn.network.create_ip(floating_network_id=public.id)
    assert fip.floating_ip_address and fip.port_id is None
    fip = conn.network.update_ip(fip, port_id=fixed.id)
    assert fip.port_id == fixed.id and fip.fixed_ip_address == "10.91.0.99"
    assert fip.router_id == router.id
    assert [f.id for f in conn.network.ips(port_id=fixed.id)] == [fip.id]
    fip = conn.network.update_ip(fip, port_id=None)
    assert fip.port_id is None

    with pytest.raises(openstack.exceptions.ConflictException):
        conn.network.delete_network(net)
    with pytest.raises(openstack.exceptions.BadRequestException):
        conn.network.create_port(network_id=net.id, fixed_ips=[
            {"subnet_id": sub.id, "ip_address": "10.92.0.1"}])
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.network.get_network(str(uuid.uuid4()))

    # delete everything
    conn.network.delete_ip(fip)
    conn.network.remove_interface_from_router(router, subnet_id=sub.id)
    conn.network.update_router(router, external_gateway_info=None)
    conn.network.delete_router(router)
    for p in [*ports, fixed]:
        conn.network.delete_port(p)
    conn.network.delete_security_group_rule(rule)
    conn.network.delete_security_group(sg)
    conn.network.delete_subnet(sub)
    conn.network.delete_network(net)
    assert conn.network.find_network(net.id) is None
    assert conn.network.find_router(router.id) is None
    assert conn.network.find_security_group(sg.id) is None
    assert list(conn.network.ips(floating_ip_address=fip.floating_ip_address)) == []
