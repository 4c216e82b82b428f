"""A server's floating IPs in its ``addresses``: the networking service tells
compute (``network-changed``) when a floating IP of a server's port changes, and
compute refreshes them from the networking service, as Neutron and Nova do."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import httpx
import pytest

from tests.api.compute.conftest import Compute

NET = "/network/v2.0"


def floating(addresses: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [a for entries in addresses.values() for a in entries
            if a["OS-EXT-IPS:type"] == "floating"]


async def routed_server(nova: Compute, *, port_first: bool = False) -> dict[str, Any]:
    """The demo project's ACTIVE server on a network with a router to the external
    network; ``port_first``: booted with a port made beforehand."""
    cloud = nova.cloud
    demo = {"X-Auth-Token": cloud.demo_token}
    ext = (await cloud.client.get(f"{NET}/networks?router:external=true", headers={
        "X-Auth-Token": cloud.admin_token})).json()["networks"]
    assert ext, "the test cloud has an external network"
    net = await nova.network(cloud.demo_token, cidr="10.31.0.0/24")
    subnet = (await cloud.client.get(f"{NET}/subnets", params={"network_id": net["id"]},
                                     headers=demo)).json()["subnets"][0]
    r = await cloud.client.post(f"{NET}/routers", headers=demo, json={"router": {
        "name": "r", "external_gateway_info": {"network_id": ext[0]["id"]}}})
    assert r.status_code == 201, r.text
    router = r.json()["router"]
    r = await cloud.client.put(f"{NET}/routers/{router['id']}/add_router_interface",
                               headers=demo, json={"subnet_id": subnet["id"]})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = {"ext": ext[0], "network": net}
    nic: dict[str, str] = {"uuid": net["id"]}
    if port_first:
        r = await cloud.client.post(f"{NET}/ports", headers=demo, json={"port": {
            "network_id": net["id"]}})
        assert r.status_code == 201, r.text
        port = r.json()["port"]
        r = await cloud.client.post(f"{NET}/floatingips", headers=demo, json={"floatingip": {
            "floating_network_id": ext[0]["id"], "port_id": port["id"]}})
        assert r.status_code == 201, r.text
        out["fip"] = r.json()["floatingip"]
        nic = {"port": port["id"]}
    img = await nova.image()
    body = await nova.boot(cloud.demo_token, imageRef=img["id"], networks=[nic])
    out["server"] = await nova.wait(body["server"]["id"], "ACTIVE", token=cloud.demo_token)
    out["port"] = (await nova.ports(device_id=out["server"]["id"]))[0]
    return out


async def addresses(nova: Compute, server_id: str) -> dict[str, list[dict[str, Any]]]:
    r = await nova.req("GET", f"/servers/{server_id}", nova.cloud.demo_token)
    assert r.status_code == 200, r.text
    return r.json()["server"]["addresses"]  # type: ignore[no-any-return]


async def until(nova: Compute, server_id: str, want: list[str],
                timeout: float = 5.0) -> dict[str, list[dict[str, Any]]]:
    """Poll the server until its floating addresses are ``want`` (the event is
    sent in the background); its addresses."""
    async with asyncio.timeout(timeout):
        while True:
            addrs = await addresses(nova, server_id)
            if [a["addr"] for a in floating(addrs)] == want:
                return addrs
            await asyncio.sleep(0.02)


def network_state(nova: Compute) -> Any:
    return nova.cloud.app.state.runtime.extras["network"]


async def test_associate_and_disassociate_show_in_addresses(nova: Compute) -> None:
    b = await routed_server(nova)
    sid, port = b["server"]["id"], b["port"]
    demo = {"X-Auth-Token": nova.cloud.demo_token}
    fixed = port["fixed_ips"][0]["ip_address"]
    assert floating(b["server"]["addresses"]) == []
    r = await nova.cloud.client.post(f"{NET}/floatingips", headers=demo, json={"floatingip": {
        "floating_network_id": b["ext"]["id"], "port_id": port["id"]}})
    assert r.status_code == 201, r.text
    fip = r.json()["floatingip"]
    addrs = await until(nova, sid, [fip["floating_ip_address"]])
    entries = addrs[b["network"]["name"]]
    # the floating entry follows its fixed address, as Nova lists it
    assert entries == [
        {"version": 4, "addr": fixed, "OS-EXT-IPS:type": "fixed",
         "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]},
        {"version": 4, "addr": fip["floating_ip_address"], "OS-EXT-IPS:type": "floating",
         "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]}]
    # the ips API and the list show it too
    r = await nova.req("GET", f"/servers/{sid}/ips", nova.cloud.demo_token)
    assert r.json()["addresses"][b["network"]["name"]] == [
        {"version": 4, "addr": fixed}, {"version": 4, "addr": fip["floating_ip_address"]}]
    r = await nova.req("GET", "/servers/detail", nova.cloud.demo_token)
    listed = next(s for s in r.json()["servers"] if s["id"] == sid)
    assert floating(listed["addresses"])[0]["addr"] == fip["floating_ip_address"]

    r = await nova.cloud.client.put(f"{NET}/floatingips/{fip['id']}", headers=demo,
                                    json={"floatingip": {"port_id": None}})
    assert r.status_code == 200, r.text
    await until(nova, sid, [])
    # associating again, then deleting the floating IP, takes it away too
    r = await nova.cloud.client.put(f"{NET}/floatingips/{fip['id']}", headers=demo,
                                    json={"floatingip": {"port_id": port["id"]}})
    assert r.status_code == 200, r.text
    await until(nova, sid, [fip["floating_ip_address"]])
    r = await nova.cloud.client.delete(f"{NET}/floatingips/{fip['id']}", headers=demo)
    assert r.status_code == 204, r.text
    await until(nova, sid, [])


async def test_the_external_event_alone_refreshes(nova: Compute,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    b = await routed_server(nova)
    sid, port = b["server"]["id"], b["port"]
    # networking tells nobody: only the event posted by hand refreshes
    monkeypatch.delitem(network_state(nova).extras, "session")
    r = await nova.cloud.client.post(f"{NET}/floatingips", headers={
        "X-Auth-Token": nova.cloud.demo_token}, json={"floatingip": {
            "floating_network_id": b["ext"]["id"], "port_id": port["id"]}})
    assert r.status_code == 201, r.text
    fip = r.json()["floatingip"]["floating_ip_address"]
    await asyncio.sleep(0.1)
    assert floating(await addresses(nova, sid)) == []
    ev = {"name": "network-changed", "server_uuid": sid, "tag": port["id"]}
    r = await nova.req("POST", "/os-server-external-events", json={"events": [ev]})
    assert r.status_code == 200, r.text
    assert r.json()["events"] == [{**ev, "status": "completed", "code": 200}]
    assert [a["addr"] for a in floating(await addresses(nova, sid))] == [fip]


async def test_a_failing_compute_call_does_not_fail_the_request(
        nova: Compute, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    b = await routed_server(nova)
    st = network_state(nova)
    # the compute API cannot be reached: a port nothing listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{dead}") as broken:
        monkeypatch.setitem(st.extras, "http", broken)
        monkeypatch.setitem(st.extras, "session", FixedSession())
        with caplog.at_level(logging.WARNING, logger="onestack.network"):
            r = await nova.cloud.client.post(f"{NET}/floatingips", headers={
                "X-Auth-Token": nova.cloud.demo_token}, json={"floatingip": {
                    "floating_network_id": b["ext"]["id"], "port_id": b["port"]["id"]}})
            assert r.status_code == 201, r.text
            pending = list(st.extras.get("notify_tasks", ()))
            assert pending, "an event was being sent"
            await asyncio.wait_for(asyncio.gather(*pending), 10)
    assert any("could not send 1 network-changed events" in m for m in caplog.messages)
    assert floating(await addresses(nova, b["server"]["id"])) == []


class FixedSession:
    async def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": "unused"}


async def test_a_booted_port_brings_its_floating_ip(nova: Compute) -> None:
    """A server booted with a port that has a floating IP lists it from the start."""
    b = await routed_server(nova, port_first=True)
    assert [a["addr"] for a in floating(b["server"]["addresses"])] == [
        b["fip"]["floating_ip_address"]]
