"""Agents, availability zones and network IP availability."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

from onestack.network.models import Agent, IPAllocation, Port, Subnet, new_id, utcnow
from tests.api.network.conftest import Net, neutron_error


def _state(net: Net) -> Any:
    return net.cloud.app.state.runtime.extras["network"]


async def _agents(net: Net) -> tuple[str, str]:
    """Two agents as the data-plane agent records them: one beating, one silent."""
    st = _state(net)
    now = utcnow()
    alive = Agent(agent_type="Test DHCP agent", binary="neutron-dhcp-agent", topic="dhcp_agent",
                  host="h1", availability_zone="nova", configurations={"driver": "fake"},
                  created_at=now, started_at=now, heartbeat_timestamp=now)
    dead = Agent(agent_type="Test L3 agent", binary="neutron-l3-agent", topic="l3_agent",
                 host="h2", created_at=now, started_at=now,
                 heartbeat_timestamp=now - timedelta(seconds=200))
    async with st.db.write() as s:
        s.add_all([alive, dead])
    return alive.id, dead.id


async def test_agents(net: Net) -> None:
    alive_id, dead_id = await _agents(net)
    r = await net.req("GET", "/agents?agent_type=Test DHCP agent&agent_type=Test L3 agent")
    assert r.status_code == 200, r.text
    agents = {a["id"]: a for a in r.json()["agents"]}
    assert set(agents) == {alive_id, dead_id}
    a = agents[alive_id]
    assert a["alive"] is True and agents[dead_id]["alive"] is False
    assert (a["binary"], a["topic"], a["host"], a["availability_zone"]) == (
        "neutron-dhcp-agent", "dhcp_agent", "h1", "nova")
    assert a["admin_state_up"] is True and a["description"] is None
    assert a["configurations"] == {"driver": "fake"} and a["resources_synced"] is None
    assert len(a["heartbeat_timestamp"]) == 19 and a["heartbeat_timestamp"][10] == " "
    r = await net.req("GET", "/agents?alive=false&host=h2&fields=id&fields=alive")
    assert r.json()["agents"] == [{"id": dead_id, "alive": False}]
    r = await net.req("GET", "/agents?bogus=1")
    assert r.status_code == 400
    r = await net.req("GET", f"/agents/{alive_id}")
    assert r.json()["agent"]["id"] == alive_id
    r = await net.req("PUT", f"/agents/{alive_id}", json={"agent": {
        "admin_state_up": False, "description": "for update"}})
    assert r.status_code == 200, r.text
    up = r.json()["agent"]
    assert up["admin_state_up"] is False and up["description"] == "for update"
    r = await net.req("PUT", f"/agents/{alive_id}", json={"agent": {"description": None}})
    assert r.json()["agent"]["description"] is None
    r = await net.req("PUT", f"/agents/{alive_id}", json={"agent": {"host": "h9"}})
    assert r.status_code == 400
    r = await net.req("DELETE", f"/agents/{dead_id}")
    assert r.status_code == 204
    for method in ("GET", "DELETE"):
        r = await net.req(method, f"/agents/{dead_id}")
        assert r.status_code == 404 and neutron_error(r) == (
            "AgentNotFound", f"Agent {dead_id} could not be found.")


async def test_agents_are_admin_only(net: Net) -> None:
    alive_id, _ = await _agents(net)
    token = net.cloud.demo_token
    r = await net.req("GET", "/agents", token)
    assert r.status_code == 200 and r.json()["agents"] == []
    for method in ("GET", "DELETE"):
        r = await net.req(method, f"/agents/{alive_id}", token)
        assert r.status_code == 404 and neutron_error(r)[0] == "AgentNotFound"
    r = await net.req("PUT", f"/agents/{alive_id}", token,
                      json={"agent": {"description": "x"}})
    assert r.status_code == 404
    assert (await net.req("GET", f"/agents/{alive_id}")).json()["agent"]["description"] is None


async def test_availability_zones(net: Net) -> None:
    r = await net.req("GET", "/availability_zones", net.cloud.demo_token)
    assert r.status_code == 200
    assert sorted(r.json()["availability_zones"], key=lambda z: z["resource"]) == [
        {"name": "nova", "resource": "network", "state": "available"},
        {"name": "nova", "resource": "router", "state": "available"},
    ]
    r = await net.req("GET", "/availability_zones?resource=router&fields=name")
    assert r.json()["availability_zones"] == [{"name": "nova"}]
    r = await net.req("GET", "/availability_zones?state=unavailable")
    assert r.json()["availability_zones"] == []


async def _subnet(net: Net, network_id: str, project: str, cidr: str,
                  pools: list[dict[str, str]], ports: int) -> str:
    """A subnet with ``ports`` ports holding one address each (rows as the subnet
    and port services write them)."""
    st = _state(net)
    version = ipaddress.ip_network(cidr).version
    async with st.db.write() as s:
        sub = Subnet(project_id=project, network_id=network_id, name=f"s-{cidr}",
                     ip_version=version, cidr=cidr, allocation_pools=pools)
        s.add(sub)
        await s.flush()
        first = ipaddress.ip_address(pools[0]["start"]) if pools else \
            next(ipaddress.ip_network(cidr).hosts())
        for i in range(ports):
            port = Port(project_id=project, network_id=network_id,
                        mac_address=f"fa:16:3e:{version:02x}:00:{i:02x}")
            s.add(port)
            await s.flush()
            s.add(IPAllocation(subnet_id=sub.id, ip_address=str(first + i),
                               network_id=network_id, port_id=port.id))
        return sub.id


async def test_network_ip_availability(net: Net) -> None:
    n = await net.network(name="avail")
    empty = await net.network(name="bare")
    v4 = await _subnet(net, n["id"], n["project_id"], "10.9.0.0/28",
                       [{"start": "10.9.0.2", "end": "10.9.0.14"}], 2)
    v6 = await _subnet(net, n["id"], n["project_id"], "2001:db8::/64",
                       [{"start": "2001:db8::2", "end": "2001:db8::ffff:ffff:ffff:ffff"}], 1)
    r = await net.req("GET", "/network-ip-availabilities")
    assert r.status_code == 200, r.text
    by_net = {a["network_id"]: a for a in r.json()["network_ip_availabilities"]}
    assert by_net[empty["id"]]["total_ips"] == 0 and by_net[empty["id"]]["used_ips"] == 0
    a = by_net[n["id"]]
    v6_total = 2**64 - 2
    assert (a["network_name"], a["project_id"], a["tenant_id"]) == (
        "avail", n["project_id"], n["project_id"])
    assert (a["total_ips"], a["used_ips"]) == (13 + v6_total, 3)
    subnets = {x["subnet_id"]: x for x in a["subnet_ip_availability"]}
    assert subnets[v4] == {"subnet_id": v4, "subnet_name": "s-10.9.0.0/28",
                           "cidr": "10.9.0.0/28", "ip_version": 4, "total_ips": 13,
                           "used_ips": 2}
    assert (subnets[v6]["total_ips"], subnets[v6]["used_ips"]) == (v6_total, 1)
    r = await net.req("GET", f"/network-ip-availabilities/{n['id']}")
    assert r.json()["network_ip_availability"] == a
    r = await net.req("GET", f"/network-ip-availabilities?network_id={n['id']}&ip_version=4"
                             "&fields=network_id&fields=used_ips")
    assert r.json()["network_ip_availabilities"] == [{"network_id": n["id"], "used_ips": 2}]
    r = await net.req("GET", "/network-ip-availabilities?network_name=bare")
    assert [x["network_id"] for x in r.json()["network_ip_availabilities"]] == [empty["id"]]
    r = await net.req("GET", f"/network-ip-availabilities?network_id={empty['id']}&ip_version=6")
    assert r.json()["network_ip_availabilities"] == []
    r = await net.req("GET", f"/network-ip-availabilities/{new_id()}")
    assert r.status_code == 404 and neutron_error(r)[0] == "NetworkNotFound"
    r = await net.req("GET", "/network-ip-availabilities?bogus=1")
    assert r.status_code == 400
    # admin only: others see nothing
    token = net.cloud.demo_token
    mine = await net.network(token)
    r = await net.req("GET", "/network-ip-availabilities", token)
    assert r.status_code == 200 and r.json()["network_ip_availabilities"] == []
    r = await net.req("GET", f"/network-ip-availabilities/{mine['id']}", token)
    assert r.status_code == 404
