"""Subnets: defaults, CIDR and gateway rules, allocation pools, DNS servers and
host routes, IPv6 modes, bulk creation, deletion with ports, visibility."""

from __future__ import annotations

from typing import Any

from tests.api.network.conftest import Net, neutron_error


async def _post(net: Net, token: str | None = None, **body: Any) -> Any:
    return await net.req("POST", "/subnets", token, json={"subnet": body})


async def test_create_show_list_update_delete(net: Net) -> None:
    n = await net.network()
    s = await net.subnet(n["id"], "10.1.0.0/24", name="s1")
    assert s["gateway_ip"] == "10.1.0.1" and s["cidr"] == "10.1.0.0/24"
    assert s["allocation_pools"] == [{"start": "10.1.0.2", "end": "10.1.0.254"}]
    assert s["enable_dhcp"] is True and s["dns_nameservers"] == [] and s["host_routes"] == []
    assert s["ipv6_ra_mode"] is None and s["ipv6_address_mode"] is None
    assert s["subnetpool_id"] is None and s["service_types"] == [] and s["segment_id"] is None
    assert s["revision_number"] == 0 and s["project_id"] == s["tenant_id"] != ""
    assert s["dns_publish_fixed_ip"] is False and s["tags"] == [] and s["ip_version"] == 4
    assert s["router:external"] is False
    assert (await net.show("network", n["id"]))["subnets"] == [s["id"]]
    shown = await net.show("subnet", s["id"])
    assert shown == s
    r = await net.req("GET", f"/subnets?network_id={n['id']}&cidr=10.1.0.0/24&fields=id")
    assert r.json()["subnets"] == [{"id": s["id"]}]
    r = await net.req("GET", f"/subnets?network_id={n['id']}&ip_version=6")
    assert r.json()["subnets"] == []
    r = await net.req("PUT", f"/subnets/{s['id']}", json={"subnet": {
        "name": "s2", "gateway_ip": "10.1.0.254", "dns_nameservers": ["8.8.8.8", "1.1.1.1"],
        "host_routes": [{"destination": "10.20.0.0/16", "nexthop": "10.1.0.9"}],
        "allocation_pools": [{"start": "10.1.0.10", "end": "10.1.0.20"}],
        "enable_dhcp": False, "description": "d"}})
    assert r.status_code == 200, r.text
    u = r.json()["subnet"]
    assert u["name"] == "s2" and u["gateway_ip"] == "10.1.0.254" and u["enable_dhcp"] is False
    assert u["dns_nameservers"] == ["8.8.8.8", "1.1.1.1"] and u["revision_number"] == 1
    assert u["allocation_pools"] == [{"start": "10.1.0.10", "end": "10.1.0.20"}]
    assert u["host_routes"] == [{"destination": "10.20.0.0/16", "nexthop": "10.1.0.9"}]
    r = await net.req("PUT", f"/subnets/{s['id']}", json={"subnet": {"gateway_ip": None}})
    assert r.json()["subnet"]["gateway_ip"] is None
    for bad in ({"cidr": "10.2.0.0/24"}, {"ip_version": 6}, {"network_id": n["id"]},
                {"ipv6_ra_mode": "slaac"}, {"bogus": 1}):
        r = await net.req("PUT", f"/subnets/{s['id']}", json={"subnet": bad})
        assert r.status_code == 400, (bad, r.text)
    r = await net.req("DELETE", f"/subnets/{s['id']}")
    assert r.status_code == 204
    r = await net.req("GET", f"/subnets/{s['id']}")
    assert r.status_code == 404 and neutron_error(r)[0] == "SubnetNotFound"
    assert (await net.show("network", n["id"]))["subnets"] == []
    for method in ("PUT", "DELETE"):
        r = await net.req(method, f"/subnets/{s['id']}", json={"subnet": {"name": "x"}})
        assert r.status_code == 404


async def test_cidr_gateway_and_overlap_rules(net: Net) -> None:
    n = await net.network()
    s = await net.subnet(n["id"], "10.3.0.77/24")
    assert s["cidr"] == "10.3.0.0/24" and s["gateway_ip"] == "10.3.0.1"
    cases = [
        ({"cidr": "10.4.0.0", "ip_version": 4}, "HTTPBadRequest", "not a valid IP subnet"),
        ({"cidr": "bogus/24", "ip_version": 4}, "HTTPBadRequest", "not a valid IP subnet"),
        ({"cidr": "10.4.0.0/33", "ip_version": 4}, "HTTPBadRequest", "not a valid IP subnet"),
        ({"cidr": "10.4.0.0/24", "ip_version": 6}, "InvalidInput", "does not match"),
        ({"cidr": "10.4.0.0/24", "ip_version": 5}, "HTTPBadRequest", "is not in"),
        ({"cidr": "0.0.0.0/0", "ip_version": 4}, "InvalidInput", "0 is not allowed"),
        ({"cidr": "10.4.0.0/24", "ip_version": 4, "gateway_ip": "10.4.0.0"},
         "InvalidInput", "Gateway is not valid on subnet"),
        ({"cidr": "10.4.0.0/24", "ip_version": 4, "gateway_ip": "10.4.0.255"},
         "InvalidInput", "Gateway is not valid on subnet"),
        ({"cidr": "10.4.0.0/24", "ip_version": 4, "gateway_ip": "fe80::1"},
         "InvalidInput", "does not match"),
        ({"cidr": "10.4.0.0/24", "ip_version": 4, "gateway_ip": "10.4.0.300"},
         "HTTPBadRequest", "not a valid IP address"),
        ({"cidr": "10.4.0.0/31", "ip_version": 4}, "InvalidInput", "prefix length"),
        ({"cidr": "127.0.0.0/24", "ip_version": 4}, "InvalidInput", "Loopback"),
        ({"cidr": "10.3.0.128/25", "ip_version": 4}, "InvalidInput",
         (f"Requested subnet with cidr: 10.3.0.128/25 for network: {n['id']} overlaps with "
         "another subnet")),
        ({"ip_version": 4}, "BadRequest", "a subnetpool must be specified"),
        ({"cidr": "10.4.0.0/24", "ip_version": 4, "prefixlen": 24}, "BadRequest",
         "cidr and prefixlen must not be supplied together"),
        ({"cidr": "10.4.0.0/24"}, "HTTPBadRequest", "Required attribute 'ip_version'"),
    ]
    for body, kind, text in cases:
        r = await _post(net, network_id=n["id"], **body)
        assert r.status_code == 400, (body, r.text)
        assert neutron_error(r)[0] == kind and text in neutron_error(r)[1], (body, r.text)
    r = await _post(net, network_id=n["id"], cidr="10.4.0.0/24", ip_version=4,
                    segment_id=n["id"])
    assert r.status_code == 404 and neutron_error(r)[0] == "SegmentNotFound"
    # no gateway: the pool is the whole range; a gateway outside the subnet is allowed
    a = await net.subnet(n["id"], "10.5.0.0/29", gateway_ip=None)
    assert a["gateway_ip"] is None
    assert a["allocation_pools"] == [{"start": "10.5.0.1", "end": "10.5.0.6"}]
    b = await net.subnet(n["id"], "10.6.0.0/24", gateway_ip="10.6.0.100", enable_dhcp=False)
    assert b["allocation_pools"] == [{"start": "10.6.0.1", "end": "10.6.0.99"},
                                     {"start": "10.6.0.101", "end": "10.6.0.254"}]
    c = await net.subnet(n["id"], "10.7.0.0/24", gateway_ip="10.99.0.1")
    assert c["allocation_pools"] == [{"start": "10.7.0.1", "end": "10.7.0.254"}]
    d = await net.subnet(n["id"], "10.8.0.0/32", enable_dhcp=False, gateway_ip=None)
    assert d["allocation_pools"] == [{"start": "10.8.0.0", "end": "10.8.0.0"}]
    v6 = await net.subnet(n["id"], "2001:DB8:0:1::/64")
    assert v6["cidr"] == "2001:db8:0:1::/64" and v6["gateway_ip"] == "2001:db8:0:1::1"
    assert v6["allocation_pools"] == [{"start": "2001:db8:0:1::2",
                                       "end": "2001:db8:0:1:ffff:ffff:ffff:ffff"}]
    r = await _post(net, network_id=n["id"], cidr="2001:db8:0:1:8000::/65", ip_version=6)
    assert r.status_code == 400 and "overlaps" in neutron_error(r)[1]
    # the same CIDR on another network is fine
    other = await net.network()
    await net.subnet(other["id"], "10.3.0.0/24")
    r = await _post(net, network_id="5f2e9e3e-0a57-4b38-9d51-1a2b3c4d5e6f", cidr="10.9.0.0/24",
                    ip_version=4)
    assert r.status_code == 404 and neutron_error(r)[0] == "NetworkNotFound"


async def test_allocation_pools(net: Net) -> None:
    n = await net.network()
    base = {"network_id": n["id"], "cidr": "10.10.0.0/24", "ip_version": 4}
    cases = [
        ([{"start": "10.10.0.5", "end": "10.11.0.5"}], 400, "OutOfBoundsAllocationPool"),
        ([{"start": "10.10.0.0", "end": "10.10.0.5"}], 400, "OutOfBoundsAllocationPool"),
        ([{"start": "10.10.0.250", "end": "10.10.0.255"}], 400, "OutOfBoundsAllocationPool"),
        ([{"start": "10.10.0.9", "end": "10.10.0.5"}], 400, "InvalidAllocationPool"),
        ([{"start": "10.10.0.5", "end": "10.10.0.9"}, {"start": "10.10.0.9",
                                                         "end": "10.10.0.20"}],
         409, "OverlappingAllocationPools"),
        ([{"start": "10.10.0.1", "end": "10.10.0.9"}], 409,
         "GatewayConflictWithAllocationPools"),
        ([{"start": "10.10.0.2"}], 400, "HTTPBadRequest"),
        ([{"start": "10.10.0.2", "end": "x"}], 400, "HTTPBadRequest"),
        ("10.10.0.2-10.10.0.9", 400, "HTTPBadRequest"),
    ]
    for pools, code, kind in cases:
        r = await _post(net, **base, allocation_pools=pools)
        assert r.status_code == code and neutron_error(r)[0] == kind, (pools, r.text)
    r = await _post(net, **base, allocation_pools=[{"start": "10.10.0.1", "end": "10.10.0.9"}])
    assert "Gateway ip 10.10.0.1 conflicts with allocation pool 10.10.0.1-10.10.0.9" in \
        neutron_error(r)[1]
    s = await net.subnet(n["id"], "10.10.0.0/24", allocation_pools=[
        {"start": "10.10.0.100", "end": "10.10.0.110"},
        {"start": "10.10.0.20", "end": "10.10.0.30"}])
    assert len(s["allocation_pools"]) == 2
    r = await net.req("PUT", f"/subnets/{s['id']}", json={"subnet": {
        "gateway_ip": "10.10.0.25"}})
    assert r.status_code == 409 and neutron_error(r)[0] == "GatewayConflictWithAllocationPools"
    r = await net.req("PUT", f"/subnets/{s['id']}", json={"subnet": {
        "allocation_pools": [{"start": "10.10.0.1", "end": "10.10.0.3"}]}})
    assert r.status_code == 409
    r = await net.req("PUT", f"/subnets/{s['id']}", json={"subnet": {
        "allocation_pools": [{"start": "10.10.0.200", "end": "10.10.1.3"}]}})
    assert r.status_code == 400 and neutron_error(r)[0] == "OutOfBoundsAllocationPool"
    r = await net.req("PUT", f"/subnets/{s['id']}", json={"subnet": {
        "gateway_ip": "10.10.0.2", "allocation_pools": [
            {"start": "10.10.0.3", "end": "10.10.0.4"}]}})
    assert r.status_code == 200, r.text
    assert (await net.show("subnet", s["id"]))["revision_number"] == 1
    empty = await net.subnet((await net.network())["id"], "10.12.0.0/24", allocation_pools=[])
    assert empty["allocation_pools"] == []


async def test_dns_nameservers_and_host_routes(net: Net) -> None:
    n = await net.network()
    base = {"network_id": n["id"], "cidr": "10.20.0.0/24", "ip_version": 4}
    cases = [
        ({"dns_nameservers": [f"10.0.0.{i}" for i in range(1, 7)]}, "DNSNameServersExhausted"),
        ({"dns_nameservers": ["8.8.8.8", "8.8.8.8"]}, "HTTPBadRequest"),
        ({"dns_nameservers": ["dns.example.com"]}, "HTTPBadRequest"),
        ({"dns_nameservers": ["2001:4860:4860::8888"]}, "InvalidInput"),
        ({"dns_nameservers": "8.8.8.8"}, "HTTPBadRequest"),
        ({"host_routes": [{"destination": "10.30.0.0/16"}]}, "HTTPBadRequest"),
        ({"host_routes": [{"destination": "10.30.0.1/16", "nexthop": "10.20.0.5"}]},
         "HTTPBadRequest"),
        ({"host_routes": [{"destination": "10.30.0.0/16", "nexthop": "10.20.0.5"}] * 2},
         "HTTPBadRequest"),
        ({"host_routes": [{"destination": "2001:db8::/64", "nexthop": "10.20.0.5"}]},
         "InvalidInput"),
        ({"host_routes": [{"destination": f"10.{i}.0.0/16", "nexthop": "10.20.0.5"}
                          for i in range(30, 51)]}, "HostRoutesExhausted"),
    ]
    for body, kind in cases:
        r = await _post(net, **base, **body)
        assert r.status_code == 400 and neutron_error(r)[0] == kind, (body, r.text)
    s = await net.subnet(n["id"], "10.20.0.0/24", dns_nameservers=None, host_routes=None)
    assert s["dns_nameservers"] == [] and s["host_routes"] == []
    r = await net.req("PUT", f"/subnets/{s['id']}", json={"subnet": {
        "dns_nameservers": [f"10.0.0.{i}" for i in range(1, 7)]}})
    assert r.status_code == 400 and neutron_error(r)[0] == "DNSNameServersExhausted"
    assert s["id"] in neutron_error(r)[1]


async def test_ipv6_modes(net: Net) -> None:
    n = await net.network()
    for i, mode in enumerate(("slaac", "dhcpv6-stateless", "dhcpv6-stateful")):
        s = await net.subnet(n["id"], f"2001:db8:{i}::/64", ipv6_ra_mode=mode,
                             ipv6_address_mode=mode)
        assert s["ipv6_ra_mode"] == mode == s["ipv6_address_mode"]
    s = await net.subnet(n["id"], "2001:db8:10::/64", ipv6_address_mode="slaac")
    assert s["ipv6_ra_mode"] is None and s["ipv6_address_mode"] == "slaac"
    base = {"network_id": n["id"], "ip_version": 6}
    cases = [
        ({"cidr": "2001:db8:20::/64", "ipv6_ra_mode": "slaac",
          "ipv6_address_mode": "dhcpv6-stateful"}, "InvalidInput", "must be the same value"),
        ({"cidr": "2001:db8:20::/64", "ipv6_ra_mode": "slaac", "enable_dhcp": False},
         "InvalidInput", "cannot be set when enable_dhcp is set to False"),
        ({"cidr": "2001:db8:20::/80", "ipv6_address_mode": "slaac"}, "InvalidInput",
         "requires the prefix to be /64"),
        ({"cidr": "2001:db8:20::/64", "ipv6_address_mode": "bogus"}, "HTTPBadRequest",
         "is not in"),
        ({"cidr": "10.30.0.0/24", "ip_version": 4, "ipv6_ra_mode": "slaac"}, "InvalidInput",
         "ipv6_ra_mode is not valid when ip_version is 4"),
        ({"cidr": "::/64"}, "InvalidInput", "'::' is not supported"),
    ]
    for body, kind, text in cases:
        r = await _post(net, **{**base, **body})
        assert r.status_code == 400, (body, r.text)
        assert neutron_error(r)[0] == kind and text in neutron_error(r)[1], (body, r.text)
    r = await net.req("PUT", f"/subnets/{s['id']}", json={"subnet": {"enable_dhcp": False}})
    assert r.status_code == 400 and "Cannot disable enable_dhcp" in neutron_error(r)[1]
    small = await net.network(mtu=1200)
    r = await _post(net, network_id=small["id"], cidr="2001:db8:30::/64", ip_version=6)
    assert r.status_code == 409 and neutron_error(r)[0] == "NetworkMTUSubnetConflict"


async def test_bulk_create_is_all_or_nothing(net: Net) -> None:
    a, b = await net.network(), await net.network()
    r = await net.req("POST", "/subnets", json={"subnets": [
        {"network_id": a["id"], "cidr": "10.40.0.0/24", "ip_version": 4, "name": "x"},
        {"network_id": b["id"], "cidr": "10.40.0.0/24", "ip_version": 4}]})
    assert r.status_code == 201, r.text
    got = r.json()["subnets"]
    assert [s["network_id"] for s in got] == [a["id"], b["id"]] and got[0]["name"] == "x"
    c = await net.network()
    bad_bodies = [
        [{"network_id": c["id"], "cidr": "10.41.0.0/24", "ip_version": 4},
         {"network_id": c["id"], "cidr": "10.41.0.0/25", "ip_version": 4}],
        [{"network_id": c["id"], "cidr": "10.41.0.0/24", "ip_version": 4},
         {"network_id": c["id"], "cidr": "10.42.0.0/24", "ip_version": 4,
          "gateway_ip": "10.42.0.0"}],
        [{"network_id": c["id"], "cidr": "10.41.0.0/24", "ip_version": 4},
         {"network_id": c["id"], "cidr": "10.42.0.0/24"}],
    ]
    for body in bad_bodies:
        r = await net.req("POST", "/subnets", json={"subnets": body})
        assert r.status_code == 400, r.text
    r = await net.req("GET", f"/subnets?network_id={c['id']}")
    assert r.json()["subnets"] == []
    assert (await net.show("network", c["id"]))["subnets"] == []


async def test_delete_with_ports(net: Net) -> None:
    n = await net.network()
    s = await net.subnet(n["id"], "10.50.0.0/24")
    port = await net.create("port", network_id=n["id"], security_groups=[])
    dhcp = await net.create("port", network_id=n["id"], device_owner="network:dhcp",
                            device_id="dhcp-host")
    r = await net.req("DELETE", f"/subnets/{s['id']}")
    assert r.status_code == 409 and neutron_error(r) == (
        "SubnetInUse", (f"Unable to complete operation on subnet {s['id']}: One or more ports "
        "have an IP allocation from this subnet."))
    assert (await net.req("DELETE", f"/ports/{port['id']}")).status_code == 204
    r = await net.req("DELETE", f"/subnets/{s['id']}")
    assert r.status_code == 204, r.text
    d = await net.show("port", dhcp["id"])
    assert d["fixed_ips"] == [] and d["revision_number"] > dhcp["revision_number"]
    # a SLAAC subnet's addresses leave ordinary ports with it
    v6 = await net.subnet(n["id"], "2001:db8:50::/64", ipv6_ra_mode="slaac",
                          ipv6_address_mode="slaac")
    p6 = await net.create("port", network_id=n["id"], security_groups=[])
    assert [f["subnet_id"] for f in p6["fixed_ips"]] == [v6["id"]]
    assert [f["subnet_id"] for f in (await net.show("port", dhcp["id"]))["fixed_ips"]] == [
        v6["id"]]
    assert (await net.req("DELETE", f"/subnets/{v6['id']}")).status_code == 204
    assert (await net.show("port", p6["id"]))["fixed_ips"] == []


async def test_visibility_and_policy(net: Net) -> None:
    owner_project, owner = await net.project_user()
    _, other = await net.project_user()
    _, reader = await net.project_user("reader")
    private = await net.network(owner)
    s = await net.subnet(private["id"], "10.60.0.0/24", token=owner)
    assert s["project_id"] == owner_project
    r = await net.req("GET", f"/subnets/{s['id']}", other)
    assert r.status_code == 404
    assert s["id"] not in [x["id"] for x in (await net.req("GET", "/subnets", other)).json()[
        "subnets"]]
    r = await _post(net, other, network_id=private["id"], cidr="10.61.0.0/24", ip_version=4)
    assert r.status_code == 404 and neutron_error(r)[0] == "NetworkNotFound"
    r = await net.req("PUT", f"/subnets/{s['id']}", other, json={"subnet": {"name": "x"}})
    assert r.status_code == 404
    r = await _post(net, owner, network_id=private["id"], cidr="10.62.0.0/24", ip_version=4,
                    service_types=["compute:nova"])
    assert r.status_code == 403 and neutron_error(r)[0] == "PolicyNotAuthorized"
    # readers see, members change
    r = await net.req("PUT", f"/subnets/{s['id']}", owner, json={"subnet": {"name": "y"}})
    assert r.status_code == 200
    shared = await net.network(shared=True)
    t = await net.subnet(shared["id"], "10.63.0.0/24")
    assert (await net.req("GET", f"/subnets/{t['id']}", other)).status_code == 200
    ext = await net.network(**{"router:external": True})
    e = await net.subnet(ext["id"], "198.51.100.0/24", enable_dhcp=False)
    assert e["router:external"] is True
    r = await net.req("GET", "/subnets?router:external=True", other)
    got = r.json()["subnets"]
    assert e["id"] in [x["id"] for x in got] and all(x["router:external"] for x in got)
    assert t["id"] not in [x["id"] for x in got]
    r = await net.req("GET", "/subnets?shared=True", other)
    assert t["id"] in [x["id"] for x in r.json()["subnets"]]
    assert s["id"] not in [x["id"] for x in r.json()["subnets"]]
    r = await net.req("PUT", f"/subnets/{t['id']}", other, json={"subnet": {"name": "z"}})
    assert r.status_code == 403
    r = await _post(net, reader, network_id=shared["id"], cidr="10.64.0.0/24", ip_version=4)
    assert r.status_code == 403
    mine = await net.subnet(shared["id"], "10.65.0.0/24", token=other)
    r = await net.req("DELETE", f"/subnets/{mine['id']}", other)
    assert r.status_code == 204
    # If-Match on revisions
    r = await net.req("PUT", f"/subnets/{t['id']}", json={"subnet": {"name": "q"}},
                      headers={"If-Match": "revision_number=7"})
    assert r.status_code == 412


async def test_quota(net: Net) -> None:
    project, token = await net.project_user()
    r = await net.req("PUT", f"/quotas/{project}", json={"quota": {"subnet": 1}})
    assert r.status_code == 200, r.text
    n = await net.network(token)
    await net.subnet(n["id"], "10.70.0.0/24", token=token)
    r = await _post(net, token, network_id=n["id"], cidr="10.71.0.0/24", ip_version=4)
    assert r.status_code == 409 and neutron_error(r)[0] == "OverQuota"
