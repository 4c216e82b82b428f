"""Subnet pools: CRUD, prefix rules, the default pool, allocating subnets from
pools (also concurrently: a prefix is never given twice)."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from tests.api.network.conftest import Net, neutron_error


async def _pool(net: Net, token: str | None = None, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "pool")
    return await net.create("subnetpool", token, **body)


async def _subnet(net: Net, token: str | None = None, **body: Any) -> Any:
    body.setdefault("ip_version", 4)
    return await net.req("POST", "/subnets", token, json={"subnet": body})


async def test_crud_and_defaults(net: Net) -> None:
    p = await _pool(net, prefixes=["10.100.1.0/24", "10.100.0.0/24", "10.100.0.128/25"])
    assert p["prefixes"] == ["10.100.0.0/23"] and p["ip_version"] == 4
    assert (p["min_prefixlen"], p["max_prefixlen"], p["default_prefixlen"]) == (8, 32, 8)
    assert p["default_quota"] is None and p["shared"] is False and p["is_default"] is False
    assert p["address_scope_id"] is None and p["revision_number"] == 0
    assert p["project_id"] == p["tenant_id"]
    assert await net.show("subnetpool", p["id"]) == p
    v6 = await _pool(net, prefixes=["2001:DB8::/48"], min_prefixlen=56, max_prefixlen=64)
    assert v6["prefixes"] == ["2001:db8::/48"] and v6["default_prefixlen"] == 56
    r = await net.req("GET", "/subnetpools?ip_version=6&fields=id&fields=name")
    assert {"id": v6["id"], "name": "pool"} in r.json()["subnetpools"]
    assert all(x["id"] != p["id"] for x in r.json()["subnetpools"])
    r = await net.req("PUT", f"/subnetpools/{p['id']}", json={"subnetpool": {
        "name": "renamed", "prefixes": ["10.100.0.0/23", "10.200.0.0/16"],
        "default_prefixlen": 24, "min_prefixlen": 16, "default_quota": 1024}})
    assert r.status_code == 200, r.text
    u = r.json()["subnetpool"]
    assert u["name"] == "renamed" and u["prefixes"] == ["10.100.0.0/23", "10.200.0.0/16"]
    assert (u["min_prefixlen"], u["default_prefixlen"], u["default_quota"]) == (16, 24, 1024)
    assert u["revision_number"] == 1
    r = await net.req("PUT", f"/subnetpools/{p['id']}", json={"subnetpool": {
        "prefixes": ["10.200.0.0/16"]}})
    assert r.status_code == 400 and neutron_error(r)[0] == "IllegalSubnetPoolPrefixUpdate"
    r = await net.req("PUT", f"/subnetpools/{p['id']}", json={"subnetpool": {
        "default_prefixlen": 8}})
    assert r.status_code == 400 and neutron_error(r)[0] == "IllegalSubnetPoolPrefixBounds"
    r = await net.req("PUT", f"/subnetpools/{p['id']}", json={"subnetpool": {
        "ip_version": 6}})
    assert r.status_code == 400
    assert (await net.req("DELETE", f"/subnetpools/{p['id']}")).status_code == 204
    r = await net.req("GET", f"/subnetpools/{p['id']}")
    assert r.status_code == 404 and neutron_error(r)[0] == "SubnetPoolNotFound"


async def test_bad_pools(net: Net) -> None:
    cases = [
        ({"prefixes": ["10.0.0.0/8", "2001:db8::/32"]}, "PrefixVersionMismatch"),
        ({"prefixes": []}, "EmptySubnetPoolPrefixList"),
        ({"prefixes": ["10.0.0.0"]}, "HTTPBadRequest"),
        ({"prefixes": "10.0.0.0/8"}, "HTTPBadRequest"),
        ({"prefixes": ["10.0.0.0/8"], "min_prefixlen": 24, "max_prefixlen": 16},
         "IllegalSubnetPoolPrefixBounds"),
        ({"prefixes": ["10.0.0.0/8"], "max_prefixlen": 33}, "IllegalSubnetPoolPrefixBounds"),
        ({"prefixes": ["10.0.0.0/8"], "min_prefixlen": 16, "default_prefixlen": 12},
         "IllegalSubnetPoolPrefixBounds"),
        ({"prefixes": ["10.0.0.0/8"], "default_quota": -1}, "HTTPBadRequest"),
        ({"prefixes": ["10.0.0.0/8"], "name": " "}, "HTTPBadRequest"),
        ({"prefixes": ["10.0.0.0/8"], "ip_version": 4}, "HTTPBadRequest"),
    ]
    for body, kind in cases:
        body.setdefault("name", "x")
        r = await net.req("POST", "/subnetpools", json={"subnetpool": body})
        assert r.status_code == 400 and neutron_error(r)[0] == kind, (body, r.text)
    r = await net.req("POST", "/subnetpools", json={"subnetpool": {"prefixes": ["10.0.0.0/8"]}})
    assert r.status_code == 400 and "Required attribute 'name'" in neutron_error(r)[1]
    r = await net.req("POST", "/subnetpools", json={"subnetpool": {
        "name": "x", "prefixes": ["10.0.0.0/8"],
        "address_scope_id": "5f2e9e3e-0a57-4b38-9d51-1a2b3c4d5e6f"}})
    assert r.status_code == 404 and neutron_error(r)[0] == "AddressScopeNotFound"
    r = await net.req("GET", "/subnetpools")
    assert r.json()["subnetpools"] == []


async def test_default_pools(net: Net) -> None:
    _, member = await net.project_user()
    r = await net.req("POST", "/subnetpools", member, json={"subnetpool": {
        "name": "d", "prefixes": ["10.0.0.0/8"], "is_default": True}})
    assert r.status_code == 403
    d4 = await _pool(net, prefixes=["10.128.0.0/9"], default_prefixlen=24, is_default=True,
                     shared=True)
    r = await net.req("POST", "/subnetpools", json={"subnetpool": {
        "name": "d2", "prefixes": ["172.16.0.0/12"], "is_default": True}})
    assert r.status_code == 400 and "Only one default may exist" in neutron_error(r)[1]
    other = await _pool(net, prefixes=["172.16.0.0/12"])
    r = await net.req("PUT", f"/subnetpools/{other['id']}", json={"subnetpool": {
        "is_default": True}})
    assert r.status_code == 400
    await _pool(net, prefixes=["2001:db8::/32"], is_default=True)
    n = await net.network(member)
    r = await _subnet(net, member, network_id=n["id"], use_default_subnetpool=True)
    assert r.status_code == 201, r.text
    s = r.json()["subnet"]
    assert s["subnetpool_id"] == d4["id"] and s["cidr"] == "10.128.0.0/24"
    assert s["gateway_ip"] == "10.128.0.1" and "use_default_subnetpool" not in s
    r = await _subnet(net, member, network_id=n["id"], use_default_subnetpool=True,
                      subnetpool_id=other["id"])
    assert r.status_code == 400 and neutron_error(r)[0] == "BadRequest"
    r = await net.req("PUT", f"/subnetpools/{d4['id']}", json={"subnetpool": {
        "is_default": False}})
    assert r.status_code == 200
    r = await _subnet(net, member, network_id=n["id"], use_default_subnetpool=True)
    assert r.status_code == 400 and "No default subnetpool found for IPv4" in \
        neutron_error(r)[1]


async def test_allocation(net: Net) -> None:
    p = await _pool(net, prefixes=["10.110.0.0/22"], min_prefixlen=23, max_prefixlen=28,
                    default_prefixlen=26)
    n = await net.network()
    got = []
    for body in ({}, {"prefixlen": 24}, {"prefixlen": 26}, {"prefixlen": 28}):
        r = await _subnet(net, network_id=n["id"], subnetpool_id=p["id"], **body)
        assert r.status_code == 201, (body, r.text)
        got.append(r.json()["subnet"])
    assert got[0]["cidr"] == "10.110.0.0/26" and got[0]["gateway_ip"] == "10.110.0.1"
    assert got[0]["allocation_pools"] == [{"start": "10.110.0.2", "end": "10.110.0.62"}]
    assert all(s["subnetpool_id"] == p["id"] for s in got)
    nets = [ipaddress.ip_network(s["cidr"]) for s in got]
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    assert {str(x) for x in nets} == {"10.110.0.0/26", "10.110.1.0/24", "10.110.0.64/26",
                                      "10.110.0.128/28"}
    r = await _subnet(net, network_id=n["id"], subnetpool_id=p["id"], cidr="10.110.2.0/24",
                      gateway_ip=None)
    assert r.status_code == 201 and r.json()["subnet"]["gateway_ip"] is None
    cases = [
        ({"cidr": "10.110.2.0/25"}, 409, "SubnetAllocationError"),
        ({"cidr": "10.111.0.0/24"}, 409, "SubnetAllocationError"),
        ({"prefixlen": 29}, 400, "MaxPrefixSubnetAllocationError"),
        ({"prefixlen": 22}, 400, "MinPrefixSubnetAllocationError"),
        ({"prefixlen": 24, "cidr": "10.110.3.0/24"}, 400, "BadRequest"),
        ({"allocation_pools": [{"start": "10.110.3.2", "end": "10.110.3.9"}]}, 400,
         "BadRequest"),
        ({"ip_version": 6}, 400, "InvalidInput"),
    ]
    for body, code, kind in cases:
        r = await _subnet(net, **{"network_id": n["id"], "subnetpool_id": p["id"], **body})
        assert r.status_code == code and neutron_error(r)[0] == kind, (body, r.text)
    r = await _subnet(net, network_id=n["id"], subnetpool_id=p["id"], gateway_ip="10.110.3.1",
                      prefixlen=24)
    assert r.status_code == 201 and r.json()["subnet"]["cidr"] == "10.110.3.0/24", r.text
    r = await _subnet(net, network_id=n["id"], subnetpool_id=p["id"], prefixlen=24)
    assert r.status_code == 409 and "Insufficient prefix space" in neutron_error(r)[1]
    r = await _subnet(net, network_id=n["id"], subnetpool_id=p["id"], prefixlen=28)
    assert r.json()["subnet"]["cidr"] == "10.110.0.144/28"
    # a network's subnets of one IP version come from one pool
    r = await _subnet(net, network_id=n["id"], cidr="192.168.0.0/24")
    assert r.status_code == 400 and neutron_error(r)[0] == "NetworkSubnetPoolAffinityError"
    r = await net.req("DELETE", f"/subnetpools/{p['id']}")
    assert r.status_code == 400 and neutron_error(r)[0] == "SubnetPoolDeleteError"
    r = await net.req("GET", f"/subnets?subnetpool_id={p['id']}")
    assert len(r.json()["subnets"]) == 7


async def test_project_quota_and_visibility(net: Net) -> None:
    owner_project, owner = await net.project_user()
    _, other = await net.project_user()
    p = await _pool(net, owner, prefixes=["10.120.0.0/16"], default_prefixlen=24,
                    default_quota=512)
    n = await net.network(owner)
    for _ in range(2):
        r = await _subnet(net, owner, network_id=n["id"], subnetpool_id=p["id"])
        assert r.status_code == 201, r.text
    r = await _subnet(net, owner, network_id=n["id"], subnetpool_id=p["id"])
    assert r.status_code == 409 and neutron_error(r)[0] == "SubnetPoolQuotaExceeded"
    assert (await net.req("GET", f"/subnetpools/{p['id']}", other)).status_code == 404
    m = await net.network(other)
    r = await _subnet(net, other, network_id=m["id"], subnetpool_id=p["id"])
    assert r.status_code == 404 and neutron_error(r)[0] == "SubnetPoolNotFound"
    r = await net.req("PUT", f"/subnetpools/{p['id']}", other, json={"subnetpool": {
        "name": "x"}})
    assert r.status_code == 404
    r = await net.req("POST", "/subnetpools", owner, json={"subnetpool": {
        "name": "s", "prefixes": ["10.121.0.0/16"], "shared": True}})
    assert r.status_code == 403
    shared = await _pool(net, prefixes=["10.122.0.0/16"], default_prefixlen=24, shared=True)
    assert (await net.req("GET", f"/subnetpools/{shared['id']}", other)).status_code == 200
    r = await _subnet(net, other, network_id=m["id"], subnetpool_id=shared["id"])
    assert r.status_code == 201, r.text
    r = await net.req("DELETE", f"/subnetpools/{shared['id']}", other)
    assert r.status_code == 403
    r = await net.req("GET", "/subnetpools", owner)
    assert {x["id"] for x in r.json()["subnetpools"]} == {p["id"], shared["id"]}
    assert owner_project == p["project_id"]


async def test_concurrent_allocation_never_overlaps(net: Net) -> None:
    p = await _pool(net, prefixes=["10.130.0.0/22"], default_prefixlen=26)
    nets = [await net.network() for _ in range(24)]
    results = await asyncio.gather(*[
        _subnet(net, network_id=n["id"], subnetpool_id=p["id"]) for n in nets])
    ok = [r.json()["subnet"]["cidr"] for r in results if r.status_code == 201]
    failed = [r for r in results if r.status_code != 201]
    assert len(ok) == 16 and len(set(ok)) == 16
    assert all(r.status_code == 409 and neutron_error(r)[0] == "SubnetAllocationError"
               for r in failed)
