"""IPAM: concurrent port creation never hands out an address or a MAC twice,
the free-address search stays fast on big subnets, and the address arithmetic
(pools, EUI-64, the search order) is Neutron's."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import insert, select

from onestack.core.errors import CloudError
from onestack.network.models import IPAllocation, Subnet
from onestack.network.service import ipam
from tests.api.network.conftest import Net, neutron_error


async def _ports(net: Net, count: int, **body: Any) -> list[Any]:
    return list(await asyncio.gather(*[
        net.req("POST", "/ports", json={"port": dict(body)}) for _ in range(count)]))


async def test_fifty_concurrent_ports_on_a_small_subnet(net: Net) -> None:
    n = await net.network()
    s = await net.subnet(n["id"], "10.9.0.0/27", enable_dhcp=False)  # 29 free addresses
    results = await _ports(net, 50, network_id=n["id"], security_groups=[])
    made = [r.json()["port"] for r in results if r.status_code == 201]
    refused = [r for r in results if r.status_code != 201]
    ips = [p["fixed_ips"][0]["ip_address"] for p in made]
    assert len(made) == 29 and len(set(ips)) == 29
    assert set(ips) == {f"10.9.0.{i}" for i in range(2, 31)}
    assert len({p["mac_address"] for p in made}) == 29
    assert all(r.status_code == 409 and neutron_error(r) == (
        "IpAddressGenerationFailure", f"No more IP addresses available on network {n['id']}.")
        for r in refused), [r.text for r in refused]
    listed = (await net.req("GET", f"/ports?network_id={n['id']}")).json()["ports"]
    assert sorted(p["fixed_ips"][0]["ip_address"] for p in listed) == sorted(ips)
    assert all(p["fixed_ips"][0]["subnet_id"] == s["id"] for p in listed)
    # freed addresses are found again
    for p in made[:3]:
        assert (await net.req("DELETE", f"/ports/{p['id']}")).status_code == 204
    again = await _ports(net, 5, network_id=n["id"], security_groups=[])
    assert sorted(r.status_code for r in again) == [201, 201, 201, 409, 409]
    got = {r.json()["port"]["fixed_ips"][0]["ip_address"] for r in again
           if r.status_code == 201}
    assert got == {p["fixed_ips"][0]["ip_address"] for p in made[:3]}


async def test_one_address_and_one_mac_are_given_once(net: Net) -> None:
    n = await net.network()
    await net.subnet(n["id"], "10.8.0.0/24", enable_dhcp=False)
    results = await _ports(net, 20, network_id=n["id"], security_groups=[],
                           fixed_ips=[{"ip_address": "10.8.0.77"}])
    assert sorted(r.status_code for r in results) == [201] + [409] * 19
    assert {neutron_error(r)[0] for r in results if r.status_code == 409} == {
        "IpAddressAlreadyAllocated"}
    results = await _ports(net, 20, network_id=n["id"], security_groups=[],
                           mac_address="fa:16:3e:12:34:56")
    assert sorted(r.status_code for r in results) == [201] + [409] * 19
    assert {neutron_error(r)[0] for r in results if r.status_code == 409} == {
        "MacAddressInUse"}
    # nothing of the refused requests stayed behind
    listed = (await net.req("GET", f"/ports?network_id={n['id']}")).json()["ports"]
    assert len(listed) == 2
    # concurrent ports of a new project share one default security group
    project, token = await net.project_user()
    shared = await net.network(shared=True)
    await net.subnet(shared["id"], "10.7.0.0/24", enable_dhcp=False)
    results = await asyncio.gather(*[net.req("POST", "/ports", token, json={"port": {
        "network_id": shared["id"]}}) for _ in range(10)])
    assert [r.status_code for r in results] == [201] * 10, [r.text for r in results]
    assert len({tuple(r.json()["port"]["security_groups"]) for r in results}) == 1
    assert all(r.json()["port"]["project_id"] == project for r in results)


async def test_free_address_search_on_big_subnets(net: Net) -> None:
    st = net.cloud.app.state.runtime.extras["network"]
    n = await net.network()
    s = await net.subnet(n["id"], "10.16.0.0/16", enable_dhcp=False)
    holder = await net.create("port", network_id=n["id"], security_groups=[])
    taken = 3000
    async with st.db.write() as db:
        await db.execute(insert(IPAllocation), [
            {"subnet_id": s["id"], "network_id": n["id"], "port_id": holder["id"],
             "ip_address": ipam.ip_str(4, ipam.ip_int("10.16.0.3") + i)}
            for i in range(taken)])
    first_free = ipam.ip_str(4, ipam.ip_int("10.16.0.3") + taken)
    # no hint: every search reads the subnet's addresses once and walks past them
    started = time.monotonic()
    async with st.db.write() as db:
        sub = await db.get(Subnet, s["id"])
        got = []
        for _ in range(50):
            ipam._HINTS.pop(s["id"], None)
            got.append(await ipam.allocate_any(db, sub, holder["id"]))
    scan = time.monotonic() - started
    assert got[0] == first_free and len(set(got)) == 50
    assert [ipam.ip_int(g) for g in got] == list(range(ipam.ip_int(first_free),
                                                       ipam.ip_int(first_free) + 50))
    # with the hint, an allocation is one insert
    started = time.monotonic()
    async with st.db.write() as db:
        sub = await db.get(Subnet, s["id"])
        more = [await ipam.allocate_any(db, sub, holder["id"]) for _ in range(500)]
    hinted = time.monotonic() - started
    assert len(set(more) | set(got)) == 550
    assert scan < 10 and hinted < 10, (scan, hinted)
    # a stale hint (another process took its address) falls back to the search, from
    # there on, then from the start
    ipam._HINTS[s["id"]] = ipam.ip_int("10.16.0.3")
    async with st.db.write() as db:
        sub = await db.get(Subnet, s["id"])
        ip = await ipam.allocate_any(db, sub, holder["id"])
    assert ip == ipam.ip_str(4, ipam.ip_int(first_free) + 550)
    ipam._HINTS[s["id"]] = ipam.ip_int("10.16.255.254") + 1
    async with st.db.write() as db:
        await ipam.release(db, holder["id"], [(s["id"], "10.16.0.10")])
        sub = await db.get(Subnet, s["id"])
        ip = await ipam.allocate_any(db, sub, holder["id"])
    assert ip == "10.16.0.10"
    async with st.db.read() as db:
        count = len((await db.scalars(select(IPAllocation.ip_address).where(
            IPAllocation.subnet_id == s["id"]))).all())
    assert count == 1 + taken + 550 + 1
    # and through the API, ports keep coming quickly on a /22
    m = await net.network()
    await net.subnet(m["id"], "10.17.0.0/22", enable_dhcp=False)
    started = time.monotonic()
    for _ in range(100):
        await net.create("port", network_id=m["id"], security_groups=[])
    assert time.monotonic() - started < 15
    r = await net.req("GET", f"/ports?network_id={m['id']}&fields=fixed_ips")
    ips = [p["fixed_ips"][0]["ip_address"] for p in r.json()["ports"]]
    assert len(set(ips)) == 100


def test_pools_eui64_and_search_order() -> None:
    assert ipam.generate_pools("10.0.0.0/24", "10.0.0.1") == [
        {"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert ipam.generate_pools("10.0.0.0/24", "10.0.0.100") == [
        {"start": "10.0.0.1", "end": "10.0.0.99"}, {"start": "10.0.0.101", "end": "10.0.0.254"}]
    assert ipam.generate_pools("10.0.0.0/31", None) == []
    assert ipam.generate_pools("10.0.0.0/30", "10.0.0.1") == [
        {"start": "10.0.0.2", "end": "10.0.0.2"}]
    assert ipam.generate_pools("2001:db8::/126", "2001:db8::1") == [
        {"start": "2001:db8::2", "end": "2001:db8::3"}]
    assert ipam.eui64("2001:db8::/64", "fa:16:3e:11:22:33") == "2001:db8::f816:3eff:fe11:2233"
    assert ipam.eui64("2001:db8:1:2::/64", "00:00:5e:00:53:01") == \
        "2001:db8:1:2:200:5eff:fe00:5301"
    assert ipam.is_eui64("2001:db8::f816:3eff:fe11:2233")
    assert not ipam.is_eui64("2001:db8::2")
    assert ipam.check_subnet_ip("10.0.0.0/24", "10.0.0.5")
    assert not ipam.check_subnet_ip("10.0.0.0/24", "10.0.0.255")
    assert not ipam.check_subnet_ip("2001:db8::/64", "2001:db8::", "compute:nova")
    assert ipam.check_subnet_ip("2001:db8::/64", "2001:db8::")  # as Neutron
    assert ipam.check_subnet_ip("2001:db8::/64", "2001:db8::", "network:router_interface")
    assert ipam.is_auto_address(None, "slaac") and ipam.is_auto_address("slaac", None)
    assert not ipam.is_auto_address("slaac", "dhcpv6-stateful")
    ranges = [(10, 12), (20, 22)]
    assert ipam._search(ranges, {10, 11}, None) == 12
    assert ipam._search(ranges, set(), 21) == 21
    assert ipam._search(ranges, {21, 22}, 21) == 10
    assert ipam._search(ranges, {10, 11, 12, 20, 21, 22}, 15) is None
    with pytest.raises(CloudError) as exc:
        ipam.parse_pools([{"start": "10.0.0.5", "end": "10.0.0.9"},
                          {"start": "10.0.0.7", "end": "10.0.0.20"}], "10.0.0.0/24")
    assert exc.value.message == ("Found overlapping allocation pools: 10.0.0.5-10.0.0.9 "
                                 "10.0.0.7-10.0.0.20 for subnet 10.0.0.0/24.")
