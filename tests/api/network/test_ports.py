"""Ports: defaults, fixed IPs (requested, updated, exhausted), MAC addresses,
filters, security groups and port security, allowed address pairs, bindings,
extra DHCP options, IPv6 SLAAC, policies on shared networks, bulk and delete."""

from __future__ import annotations

from typing import Any

from tests.api.network.conftest import Net, neutron_error


async def _post(net: Net, token: str | None = None, **body: Any) -> Any:
    return await net.req("POST", "/ports", token, json={"port": body})


async def _put(net: Net, port_id: str, token: str | None = None, **body: Any) -> Any:
    return await net.req("PUT", f"/ports/{port_id}", token, json={"port": body})


def _ips(port: dict[str, Any]) -> list[str]:
    return [f["ip_address"] for f in port["fixed_ips"]]


async def test_create_defaults_show_list(net: Net) -> None:
    n = await net.network()
    s = await net.subnet(n["id"], "10.1.0.0/24")
    p = await net.create("port", network_id=n["id"], name="p1")
    assert p["status"] == "DOWN" and p["admin_state_up"] is True and p["name"] == "p1"
    assert p["mac_address"].startswith("fa:16:3e:") and len(p["mac_address"]) == 17
    assert p["fixed_ips"] == [{"subnet_id": s["id"], "ip_address": "10.1.0.2"}]
    assert p["device_id"] == "" and p["device_owner"] == "" and p["revision_number"] == 0
    assert p["port_security_enabled"] is True and len(p["security_groups"]) == 1
    assert p["allowed_address_pairs"] == [] and p["extra_dhcp_opts"] == []
    assert p["binding:vnic_type"] == "normal" and p["binding:vif_type"] == "unbound"
    assert p["binding:vif_details"] == {} and p["binding:host_id"] == ""
    assert p["binding:profile"] == {} and p["ip_allocation"] == "immediate"
    assert p["propagate_uplink_status"] is False and p["tags"] == []
    assert p["project_id"] == p["tenant_id"] and p["dns_name"] == ""
    assert p["dns_assignment"] == [{"hostname": "host-10-1-0-2", "ip_address": "10.1.0.2",
                                    "fqdn": "host-10-1-0-2.openstacklocal."}]
    groups = (await net.req("GET", "/security-groups?name=default")).json()
    assert p["security_groups"][0] in [g["id"] for g in groups["security_groups"]]
    shown = await net.show("port", p["id"])
    assert {k: v for k, v in shown.items() if k not in ("created_at", "updated_at",
                                                        "status", "revision_number")} == \
        {k: v for k, v in p.items() if k not in ("created_at", "updated_at", "status",
                                                 "revision_number")}
    q = await net.create("port", network_id=n["id"])
    assert _ips(q) == ["10.1.0.3"] and q["mac_address"] != p["mac_address"]
    r = await net.req("GET", f"/ports?network_id={n['id']}&fields=id&fields=mac_address")
    assert sorted(r.json()["ports"], key=lambda x: x["id"]) == sorted(
        [{"id": x["id"], "mac_address": x["mac_address"]} for x in (p, q)],
        key=lambda x: x["id"])
    bare = await net.network()
    b = await net.create("port", network_id=bare["id"])
    assert b["fixed_ips"] == []
    r = await _post(net, network_id="5f2e9e3e-0a57-4b38-9d51-1a2b3c4d5e6f")
    assert r.status_code == 404 and neutron_error(r)[0] == "NetworkNotFound"
    for bad in ({}, {"network_id": n["id"], "status": "ACTIVE"},
                {"network_id": n["id"], "binding:vif_type": "ovs"},
                {"network_id": n["id"], "bogus": 1},
                {"network_id": n["id"], "binding:vnic_type": "weird"},
                {"network_id": n["id"], "admin_state_up": "maybe"}):
        r = await _post(net, **bad)
        assert r.status_code == 400, (bad, r.text)


async def test_fixed_ips(net: Net) -> None:
    n = await net.network()
    s = await net.subnet(n["id"], "10.2.0.0/24", allocation_pools=[
        {"start": "10.2.0.10", "end": "10.2.0.11"}])
    s2 = await net.subnet(n["id"], "10.3.0.0/24")
    other = await net.network()
    foreign = await net.subnet(other["id"], "10.4.0.0/24")
    p = await net.create("port", network_id=n["id"], fixed_ips=[
        {"subnet_id": s["id"], "ip_address": "10.2.0.99"}, {"ip_address": "10.3.0.7"},
        {"subnet_id": s2["id"]}])
    assert p["fixed_ips"] == [{"subnet_id": s["id"], "ip_address": "10.2.0.99"},
                              {"subnet_id": s2["id"], "ip_address": "10.3.0.2"},
                              {"subnet_id": s2["id"], "ip_address": "10.3.0.7"}]
    cases = [
        ([{"subnet_id": s["id"], "ip_address": "10.2.0.99"}], 409,
         "IpAddressAlreadyAllocated",
         f"IP address 10.2.0.99 already allocated in subnet {s['id']}"),
        ([{"subnet_id": s["id"], "ip_address": "10.3.0.9"}], 400, "InvalidIpForSubnet",
         "IP address 10.3.0.9 is not a valid IP for the specified subnet."),
        ([{"subnet_id": s["id"], "ip_address": "10.2.0.255"}], 400, "InvalidIpForSubnet", ""),
        ([{"subnet_id": s["id"], "ip_address": "10.2.0.0"}], 400, "InvalidIpForSubnet", ""),
        ([{"ip_address": "10.9.0.9"}], 400, "InvalidIpForNetwork",
         ("IP address 10.9.0.9 is not a valid IP for any of the subnets on the specified "
         "network.")),
        ([{"subnet_id": foreign["id"]}], 400, "InvalidInput",
         (f"Failed to create port on network {other['id']}, because fixed_ips included "
         f"invalid subnet {foreign['id']}")),
        ([{"subnet_id": "5f2e9e3e-0a57-4b38-9d51-1a2b3c4d5e6f"}], 404, "SubnetNotFound", ""),
        ([{}], 400, "InvalidInput", "IP allocation requires subnet_id or ip_address"),
        ([{"ip_address": "10.3.0.50"}, {"ip_address": "10.3.0.50"}], 400, "HTTPBadRequest",
         "Duplicate IP address"),
        ([{"ip_address": "10.3.0.300"}], 400, "HTTPBadRequest", "not a valid IP address"),
        ([{"subnet_id": "nope"}], 400, "HTTPBadRequest", "not a valid UUID"),
        ("10.3.0.5", 400, "HTTPBadRequest", "Invalid data format for fixed IP"),
        ([{"subnet_id": s2["id"]}] * 6, 400, "InvalidInput",
         "Exceeded maximum amount of fixed ips per port."),
    ]
    for fixed, code, kind, text in cases:
        r = await _post(net, network_id=n["id"], fixed_ips=fixed)
        assert r.status_code == code, (fixed, r.text)
        assert neutron_error(r)[0] == kind and text in neutron_error(r)[1], (fixed, r.text)
    # the pool of s has two addresses: then the subnet, and without a choice the network,
    # is exhausted
    for want in ("10.2.0.10", "10.2.0.11"):
        q = await net.create("port", network_id=n["id"], fixed_ips=[{"subnet_id": s["id"]}])
        assert _ips(q) == [want]
    r = await _post(net, network_id=n["id"], fixed_ips=[{"subnet_id": s["id"]}])
    assert r.status_code == 409 and neutron_error(r) == (
        "IpAddressGenerationFailure", f"No more IP addresses available for subnet {s['id']}.")
    full = await net.network()
    await net.subnet(full["id"], "10.5.0.0/24", allocation_pools=[
        {"start": "10.5.0.5", "end": "10.5.0.5"}])
    await net.create("port", network_id=full["id"])
    r = await _post(net, network_id=full["id"])
    assert r.status_code == 409 and neutron_error(r) == (
        "IpAddressGenerationFailure", f"No more IP addresses available on network {full['id']}.")
    # explicitly none
    e = await net.create("port", network_id=n["id"], fixed_ips=[])
    assert e["fixed_ips"] == []
    # network:* owners are not limited to five addresses
    d = await net.create("port", network_id=n["id"], device_owner="network:dhcp",
                         fixed_ips=[{"subnet_id": s2["id"]}] * 6)
    assert len(d["fixed_ips"]) == 6 and d["security_groups"] == []


async def test_update_fixed_ips_and_attributes(net: Net) -> None:
    n = await net.network()
    s1 = await net.subnet(n["id"], "10.10.0.0/24")
    s2 = await net.subnet(n["id"], "10.11.0.0/24")
    p = await net.create("port", network_id=n["id"], fixed_ips=[
        {"subnet_id": s1["id"]}, {"subnet_id": s2["id"]}])
    assert len(p["fixed_ips"]) == 2
    r = await _put(net, p["id"], fixed_ips=[{"subnet_id": s1["id"]}])
    assert r.status_code == 200, r.text
    u = r.json()["port"]
    assert u["fixed_ips"] == [{"subnet_id": s1["id"], "ip_address": "10.10.0.2"}]
    assert u["revision_number"] == 1
    r = await _put(net, p["id"], fixed_ips=u["fixed_ips"] + [{"subnet_id": s2["id"]}],
                   name="renamed", admin_state_up=False, device_id="vm-1",
                   device_owner="compute:nova", description="d")
    u = r.json()["port"]
    assert len(u["fixed_ips"]) == 2 and u["revision_number"] == 2
    assert (u["name"], u["admin_state_up"], u["device_id"], u["device_owner"]) == (
        "renamed", False, "vm-1", "compute:nova")
    r = await _put(net, p["id"], fixed_ips=[{"subnet_id": s1["id"], "ip_address": "10.10.0.50"}])
    assert _ips(r.json()["port"]) == ["10.10.0.50"]
    # the freed address can be taken again; an address in use cannot
    q = await net.create("port", network_id=n["id"], fixed_ips=[
        {"subnet_id": s1["id"], "ip_address": "10.10.0.2"}])
    r = await _put(net, q["id"], fixed_ips=[{"ip_address": "10.10.0.50"}])
    assert r.status_code == 409 and neutron_error(r)[0] == "IpAddressAlreadyAllocated"
    assert _ips(await net.show("port", q["id"])) == ["10.10.0.2"]
    r = await _put(net, q["id"], fixed_ips=[{"ip_address": "10.99.0.1"}])
    assert r.status_code == 400 and neutron_error(r)[0] == "InvalidIpForNetwork"
    r = await _put(net, q["id"], fixed_ips=[])
    assert r.json()["port"]["fixed_ips"] == []
    # nothing changed: no new revision
    before = (await net.show("port", q["id"]))["revision_number"]
    r = await _put(net, q["id"], name=(await net.show("port", q["id"]))["name"])
    assert r.json()["port"]["revision_number"] == before
    for bad in ({"network_id": n["id"]}, {"status": "ACTIVE"}, {"id": q["id"]},
                {"binding:vif_type": "x"}):
        r = await _put(net, q["id"], **bad)
        assert r.status_code == 400, (bad, r.text)
    r = await net.req("PUT", f"/ports/{q['id']}", json={"port": {"name": "y"}},
                      headers={"If-Match": "revision_number=999"})
    assert r.status_code == 412
    r = await _put(net, "5f2e9e3e-0a57-4b38-9d51-1a2b3c4d5e6f", name="x")
    assert r.status_code == 404 and neutron_error(r)[0] == "PortNotFound"


async def test_mac_addresses(net: Net) -> None:
    n, m = await net.network(), await net.network()
    p = await net.create("port", network_id=n["id"], mac_address="FA-16-3E-00-00-01")
    assert p["mac_address"] == "fa:16:3e:00:00:01"
    r = await _post(net, network_id=n["id"], mac_address="fa:16:3e:00:00:01")
    assert r.status_code == 409 and neutron_error(r) == (
        "MacAddressInUse", (f"Unable to complete operation for network {n['id']}. The mac "
        "address fa:16:3e:00:00:01 is in use."))
    assert (await net.create("port", network_id=m["id"], mac_address="fa:16:3e:00:00:01"))
    for bad in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "fa:16:3e:00:00", "zz:16:3e:00:00:01",
                12):
        r = await _post(net, network_id=n["id"], mac_address=bad)
        assert r.status_code == 400, (bad, r.text)
    r = await _put(net, p["id"], mac_address="fa:16:3e:00:00:02")
    assert r.status_code == 200 and r.json()["port"]["mac_address"] == "fa:16:3e:00:00:02"
    q = await net.create("port", network_id=n["id"])
    r = await _put(net, q["id"], mac_address="fa:16:3e:00:00:02")
    assert r.status_code == 409 and neutron_error(r)[0] == "MacAddressInUse"
    r = await _put(net, q["id"], **{"binding:host_id": "compute-1"})
    assert r.json()["port"]["binding:vif_type"] == "bridge"
    r = await _put(net, q["id"], mac_address="fa:16:3e:00:00:09")
    assert r.status_code == 409 and neutron_error(r)[0] == "PortBound"
    _, member = await net.project_user()
    mine = await net.network(member)
    mp = await net.create("port", member, network_id=mine["id"])
    r = await _put(net, mp["id"], member, mac_address="fa:16:3e:00:00:10")
    assert r.status_code == 403


async def test_filters(net: Net) -> None:
    n = await net.network()
    s = await net.subnet(n["id"], "10.20.0.0/24")
    a = await net.create("port", network_id=n["id"], device_id="dev-a",
                         device_owner="compute:nova",
                         fixed_ips=[{"ip_address": "10.20.0.15"}])
    b = await net.create("port", network_id=n["id"], device_id="dev-b",
                         fixed_ips=[{"ip_address": "10.20.0.150"}],
                         **{"binding:host_id": "h1"})

    async def ids(query: str) -> set[str]:
        r = await net.req("GET", "/ports?" + query)
        assert r.status_code == 200, (query, r.text)
        return {p["id"] for p in r.json()["ports"]}

    assert await ids("fixed_ips=ip_address%3D10.20.0.15") == {a["id"]}
    assert await ids(f"fixed_ips=subnet_id%3D{s['id']}") == {a["id"], b["id"]}
    assert await ids("fixed_ips=ip_address_substr%3D0.15") == {a["id"], b["id"]}
    assert await ids("fixed_ips=ip_address_substr%3D.150") == {b["id"]}
    assert await ids(f"fixed_ips=ip_address%3D10.20.0.15&fixed_ips=subnet_id%3D{s['id']}") \
        == {a["id"]}
    assert await ids("fixed_ips=ip_address%3D10.20.0.16") == set()
    assert await ids("device_id=dev-b") == {b["id"]}
    assert await ids(f"device_owner=compute:nova&network_id={n['id']}") == {a["id"]}
    assert await ids(f"mac_address={a['mac_address']}") == {a["id"]}
    assert await ids("binding:host_id=h1") == {b["id"]}
    assert await ids(f"network_id={n['id']}&device_id=dev-a&device_id=dev-b") == {
        a["id"], b["id"]}
    assert await ids(f"security_groups={a['security_groups'][0]}&network_id={n['id']}") == {
        a["id"], b["id"]}
    assert await ids(f"network_id={n['id']}&admin_state_up=false") == set()
    r = await net.req("GET", "/ports?fixed_ips=10.20.0.15")
    assert r.status_code == 400
    r = await net.req("GET", "/ports?bogus=1")
    assert r.status_code == 400
    r = await net.req("GET", f"/ports?network_id={n['id']}&sort_key=device_id&sort_dir=desc"
                             "&limit=1")
    body = r.json()
    assert [p["id"] for p in body["ports"]] == [b["id"]] and body["ports_links"]


async def test_security_groups_and_port_security(net: Net) -> None:
    n = await net.network()
    await net.subnet(n["id"], "10.30.0.0/24")
    sg = await net.create("security_group", name="web")
    p = await net.create("port", network_id=n["id"], security_groups=[sg["id"], sg["id"]])
    assert p["security_groups"] == [sg["id"]]
    e = await net.create("port", network_id=n["id"], security_groups=[])
    assert e["security_groups"] == []
    r = await _post(net, network_id=n["id"],
                    security_groups=["5f2e9e3e-0a57-4b38-9d51-1a2b3c4d5e6f"])
    assert r.status_code == 404 and neutron_error(r)[0] == "SecurityGroupNotFound"
    r = await _post(net, network_id=n["id"], port_security_enabled=False,
                    security_groups=[sg["id"]])
    assert r.status_code == 400
    assert neutron_error(r)[0] == "PortSecurityAndIPRequiredForSecurityGroups"
    r = await _post(net, network_id=n["id"], port_security_enabled=False,
                    allowed_address_pairs=[{"ip_address": "10.30.0.200"}])
    assert r.status_code == 409 and neutron_error(r)[0] == "AddressPairAndPortSecurityRequired"
    off = await net.create("port", network_id=n["id"], port_security_enabled=False)
    assert off["security_groups"] == [] and off["port_security_enabled"] is False
    r = await _put(net, p["id"], port_security_enabled=False)
    assert r.status_code == 409 and neutron_error(r)[0] == "PortSecurityPortHasSecurityGroup"
    r = await _put(net, p["id"], port_security_enabled=False, security_groups=[])
    assert r.status_code == 200 and r.json()["port"]["security_groups"] == []
    r = await _put(net, p["id"], security_groups=[sg["id"]])
    assert r.status_code == 400
    r = await _put(net, p["id"], port_security_enabled=True, security_groups=[sg["id"]])
    assert r.json()["port"]["security_groups"] == [sg["id"]]
    # a network without port security makes ports without it
    plain = await net.network(port_security_enabled=False)
    q = await net.create("port", network_id=plain["id"])
    assert q["port_security_enabled"] is False and q["security_groups"] == []
    # another project's group cannot be used
    _, member = await net.project_user()
    mine = await net.network(member)
    r = await _post(net, member, network_id=mine["id"], security_groups=[sg["id"]])
    assert r.status_code == 404 and neutron_error(r)[0] == "SecurityGroupNotFound"


async def test_allowed_address_pairs_dhcp_opts_dns_bindings(net: Net) -> None:
    n = await net.network()
    await net.subnet(n["id"], "10.40.0.0/24")
    p = await net.create("port", network_id=n["id"], allowed_address_pairs=[
        {"ip_address": "10.40.0.100"}, {"ip_address": "10.41.0.0/16",
                                        "mac_address": "fa:16:3e:aa:bb:cc"}],
        extra_dhcp_opts=[{"opt_name": "bootfile-name", "opt_value": "pxelinux.0"},
                         {"opt_name": "tftp-server", "opt_value": "10.0.0.9"},
                         {"opt_name": "dns-server", "opt_value": "2001:db8::1",
                          "ip_version": 6}],
        dns_name="MyHost")
    assert p["allowed_address_pairs"] == [
        {"ip_address": "10.40.0.100", "mac_address": p["mac_address"]},
        {"ip_address": "10.41.0.0/16", "mac_address": "fa:16:3e:aa:bb:cc"}]
    assert {(o["opt_name"], o["opt_value"], o["ip_version"]) for o in p["extra_dhcp_opts"]} == {
        ("bootfile-name", "pxelinux.0", 4), ("tftp-server", "10.0.0.9", 4),
        ("dns-server", "2001:db8::1", 6)}
    assert p["dns_name"] == "myhost" and p["dns_assignment"][0]["hostname"] == "myhost"
    r = await _put(net, p["id"], extra_dhcp_opts=[
        {"opt_name": "bootfile-name", "opt_value": "new.0"},
        {"opt_name": "tftp-server", "opt_value": None},
        {"opt_name": "domain-search", "opt_value": "example.com"}])
    assert {(o["opt_name"], o["opt_value"]) for o in r.json()["port"]["extra_dhcp_opts"]} == {
        ("bootfile-name", "new.0"), ("dns-server", "2001:db8::1"),
        ("domain-search", "example.com")}
    r = await _put(net, p["id"], allowed_address_pairs=[])
    assert r.json()["port"]["allowed_address_pairs"] == []
    cases = [
        ({"allowed_address_pairs": [{"mac_address": "fa:16:3e:00:00:01"}]}, "InvalidInput"),
        ({"allowed_address_pairs": [{"ip_address": "10.1.1.1"}] * 2}, "InvalidInput"),
        ({"allowed_address_pairs": [{"ip_address": f"10.1.1.{i}"} for i in range(11)]},
         "AllowedAddressPairExhausted"),
        ({"allowed_address_pairs": [{"ip_address": "10.1.1.1", "x": 1}]}, "HTTPBadRequest"),
        ({"allowed_address_pairs": [{"ip_address": "nope"}]}, "HTTPBadRequest"),
        ({"extra_dhcp_opts": [{"opt_name": "", "opt_value": "x"}]}, "InvalidInput"),
        ({"extra_dhcp_opts": [{"opt_name": "a", "opt_value": "x", "ip_version": 5}]},
         "InvalidInput"),
        ({"dns_name": "-bad-"}, "HTTPBadRequest"),
        ({"dns_name": "a..b"}, "HTTPBadRequest"),
        ({"binding:profile": "x"}, "HTTPBadRequest"),
    ]
    for body, kind in cases:
        r = await _post(net, network_id=n["id"], **body)
        assert r.status_code == 400 and neutron_error(r)[0] == kind, (body, r.text)
    # bindings: admin-only to set and to see
    b = await net.create("port", network_id=n["id"], **{
        "binding:host_id": "compute-1", "binding:profile": {"k": "v"}})
    assert b["binding:vif_type"] == "bridge" and b["binding:vif_details"] == {
        "connectivity": "l2", "port_filter": True, "bridge_name": "brq" + n["id"][:11]}
    assert b["binding:profile"] == {"k": "v"}
    r = await _put(net, b["id"], **{"binding:host_id": ""})
    assert r.json()["port"]["binding:vif_type"] == "unbound"
    assert r.json()["port"]["binding:vif_details"] == {}
    _, member = await net.project_user()
    mine = await net.network(member)
    r = await _post(net, member, network_id=mine["id"], **{"binding:host_id": "h"})
    assert r.status_code == 403
    mp = await net.create("port", member, network_id=mine["id"])
    assert not any(k in mp for k in ("binding:host_id", "binding:vif_type",
                                     "binding:vif_details", "binding:profile"))
    assert mp["binding:vnic_type"] == "normal"


async def test_ipv6_addresses(net: Net) -> None:
    n = await net.network()
    v4 = await net.subnet(n["id"], "10.50.0.0/24")
    slaac = await net.subnet(n["id"], "2001:db8:50::/64", ipv6_ra_mode="slaac",
                             ipv6_address_mode="slaac")
    stateful = await net.subnet(n["id"], "2001:db8:51::/64",
                                ipv6_address_mode="dhcpv6-stateful")
    p = await net.create("port", network_id=n["id"], mac_address="fa:16:3e:11:22:33")
    assert p["fixed_ips"] == [
        {"subnet_id": v4["id"], "ip_address": "10.50.0.2"},
        {"subnet_id": slaac["id"], "ip_address": "2001:db8:50:0:f816:3eff:fe11:2233"},
        {"subnet_id": stateful["id"], "ip_address": "2001:db8:51::2"}]
    # an address on a SLAAC subnet cannot be asked for; the SLAAC one comes anyway
    r = await _post(net, network_id=n["id"], fixed_ips=[
        {"subnet_id": slaac["id"], "ip_address": "2001:db8:50::5"}])
    assert r.status_code == 400 and "automatic addresses" in neutron_error(r)[1]
    q = await net.create("port", network_id=n["id"], fixed_ips=[{"subnet_id": v4["id"]}])
    assert {f["subnet_id"] for f in q["fixed_ips"]} == {v4["id"], slaac["id"]}
    # the EUI-64 address follows the MAC; removing fixed IPs keeps it
    r = await _put(net, p["id"], mac_address="fa:16:3e:44:55:66")
    assert "2001:db8:50:0:f816:3eff:fe44:5566" in _ips(r.json()["port"])
    r = await _put(net, p["id"], fixed_ips=[])
    assert _ips(r.json()["port"]) == ["2001:db8:50:0:f816:3eff:fe44:5566"]
    # a router interface takes no SLAAC address; a new SLAAC subnet numbers other ports
    rp = await net.create("port", network_id=n["id"], device_owner="network:router_interface",
                          fixed_ips=[{"subnet_id": v4["id"]}])
    assert [f["subnet_id"] for f in rp["fixed_ips"]] == [v4["id"]]
    late = await net.subnet(n["id"], "2001:db8:52::/64", ipv6_address_mode="slaac")
    assert late["id"] in {f["subnet_id"] for f in (await net.show("port", q["id"]))[
        "fixed_ips"]}
    assert late["id"] not in {f["subnet_id"] for f in (await net.show("port", rp["id"]))[
        "fixed_ips"]}


async def test_shared_network_policies(net: Net) -> None:
    owner = await net.network(shared=True)
    s = await net.subnet(owner["id"], "10.60.0.0/24")
    project, member = await net.project_user()
    _, third = await net.project_user()
    p = await net.create("port", member, network_id=owner["id"])
    assert p["project_id"] == project and len(p["fixed_ips"]) == 1
    q = await net.create("port", member, network_id=owner["id"],
                         fixed_ips=[{"subnet_id": s["id"]}])
    assert q["fixed_ips"][0]["subnet_id"] == s["id"]
    for body in ({"fixed_ips": [{"ip_address": "10.60.0.99"}]},
                 {"fixed_ips": [{"subnet_id": s["id"], "ip_address": "10.60.0.99"}]},
                 {"mac_address": "fa:16:3e:00:01:01"},
                 {"device_owner": "network:dhcp"},
                 {"port_security_enabled": False},
                 {"project_id": "someone-else"}):
        r = await _post(net, member, network_id=owner["id"], **body)
        assert r.status_code == 403 and neutron_error(r)[0] == "PolicyNotAuthorized", (body,
                                                                                       r.text)
    r = await _put(net, p["id"], member, fixed_ips=[{"ip_address": "10.60.0.98"}])
    assert r.status_code == 403
    r = await _put(net, p["id"], member, device_owner="network:router_interface")
    assert r.status_code == 403
    r = await _put(net, p["id"], member, name="mine", device_owner="compute:nova")
    assert r.status_code == 200
    # the network's owner (admin here) sees the port; a third project does not
    assert (await net.req("GET", f"/ports/{p['id']}")).status_code == 200
    assert (await net.req("GET", f"/ports/{p['id']}", third)).status_code == 404
    assert (await net.req("DELETE", f"/ports/{p['id']}", third)).status_code == 404
    r = await net.req("GET", "/ports", third)
    assert r.json()["ports"] == []
    # a private network of someone else is not there at all
    private = await net.network()
    r = await _post(net, member, network_id=private["id"])
    assert r.status_code == 404 and neutron_error(r)[0] == "NetworkNotFound"
    _, reader = await net.project_user("reader")
    r = await _post(net, reader, network_id=owner["id"])
    assert r.status_code == 403
    assert (await net.req("DELETE", f"/ports/{p['id']}", member)).status_code == 204


async def test_bulk_quota_and_delete(net: Net) -> None:
    a, b = await net.network(), await net.network()
    await net.subnet(a["id"], "10.70.0.0/24")
    r = await net.req("POST", "/ports", json={"ports": [
        {"network_id": a["id"], "name": "x"}, {"network_id": b["id"],
                                               "admin_state_up": False}]})
    assert r.status_code == 201, r.text
    made = r.json()["ports"]
    assert [p["network_id"] for p in made] == [a["id"], b["id"]]
    assert made[1]["admin_state_up"] is False and len(made[0]["fixed_ips"]) == 1
    before = (await net.req("GET", "/ports")).json()["ports"]
    for bad in ([{"network_id": a["id"]}, {"network_id": a["id"],
                                           "fixed_ips": [{"ip_address": "10.99.0.1"}]}],
                [{"network_id": a["id"], "mac_address": "fa:16:3e:01:02:03"},
                 {"network_id": a["id"], "mac_address": "fa:16:3e:01:02:03"}],
                [{"network_id": a["id"]}, {"name": "no network"}]):
        r = await net.req("POST", "/ports", json={"ports": bad})
        assert r.status_code in (400, 409), r.text
    after = (await net.req("GET", "/ports")).json()["ports"]
    assert len(after) == len(before), [(p["device_owner"], p["name"]) for p in after]
    # a router's interface is deleted through the router
    router = await net.create("router", name="r")
    iface = await net.create("port", network_id=a["id"])
    r = await net.req("PUT", f"/routers/{router['id']}/add_router_interface",
                      json={"port_id": iface["id"]})
    assert r.status_code == 200, r.text
    r = await net.req("DELETE", f"/ports/{iface['id']}")
    assert r.status_code == 409 and neutron_error(r) == (
        "ServicePortInUse", (f"Port {iface['id']} cannot be deleted directly via the port API: "
        "has device owner network:router_interface."))
    # an owner whose router is gone does not protect the port
    stray = await net.create("port", network_id=a["id"], device_owner="network:router_gateway",
                             device_id="5f2e9e3e-0a57-4b38-9d51-1a2b3c4d5e6f")
    assert (await net.req("DELETE", f"/ports/{stray['id']}")).status_code == 204
    assert (await net.req("DELETE", f"/ports/{stray['id']}")).status_code == 404
    project, token = await net.project_user()
    r = await net.req("PUT", f"/quotas/{project}", json={"quota": {"port": 1}})
    assert r.status_code == 200, r.text
    mine = await net.network(token)
    await net.create("port", token, network_id=mine["id"])
    r = await _post(net, token, network_id=mine["id"])
    assert r.status_code == 409 and neutron_error(r)[0] == "OverQuota"
    # network:* ports do not count against the quota
    await net.create("port", network_id=mine["id"], project_id=project,
                     device_owner="network:dhcp")


async def test_delete_disassociates_floating_ips(net: Net) -> None:
    ext = await net.network(**{"router:external": True})
    await net.subnet(ext["id"], "203.0.113.0/24", enable_dhcp=False)
    n = await net.network()
    sub = await net.subnet(n["id"], "10.80.0.0/24")
    router = await net.create("router", name="r", external_gateway_info={
        "network_id": ext["id"]})
    r = await net.req("PUT", f"/routers/{router['id']}/add_router_interface",
                      json={"subnet_id": sub["id"]})
    assert r.status_code == 200, r.text
    p = await net.create("port", network_id=n["id"])
    f = await net.create("floatingip", floating_network_id=ext["id"], port_id=p["id"])
    assert f["port_id"] == p["id"] and f["router_id"] == router["id"]
    gw = (await net.req("GET", f"/ports?device_id={router['id']}"
                               "&device_owner=network:router_gateway")).json()["ports"]
    fport = (await net.req("GET", f"/ports?device_id={f['id']}")).json()["ports"]
    for service_port in gw + fport:
        r = await net.req("DELETE", f"/ports/{service_port['id']}")
        assert r.status_code == 409 and neutron_error(r)[0] == "ServicePortInUse"
    assert (await net.req("DELETE", f"/ports/{p['id']}")).status_code == 204
    after = await net.show("floatingip", f["id"])
    assert after["port_id"] is None and after["fixed_ip_address"] is None
    assert after["router_id"] is None
    assert after["revision_number"] > f["revision_number"]
