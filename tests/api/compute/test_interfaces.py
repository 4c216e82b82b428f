"""``/servers/{id}/os-interface``: list, show, attach (by network, by port, by
neither) and detach, with the networking service of the same cloud and the fake
driver; the refusals leave no port, binding or NIC behind."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from onestack.compute.drivers.base import DriverError
from onestack.compute.models import Instance
from tests.api.compute.conftest import Compute, fault


async def _port(nova: Compute, token: str, net_id: str, **body: Any) -> dict[str, Any]:
    made = await nova.neutron("POST", "/ports", token,
                              json={"port": {"network_id": net_id, **body}})
    return made["port"]  # type: ignore[no-any-return]


async def _active(nova: Compute, token: str, **server: Any) -> str:
    img = await nova.image()
    sid = (await nova.boot(token, imageRef=img["id"], **server))["server"]["id"]
    await nova.wait(sid, "ACTIVE", token=token)
    return str(sid)


def _path(sid: str, port_id: str | None = None) -> str:
    return f"/servers/{sid}/os-interface" + (f"/{port_id}" if port_id else "")


async def _attach(nova: Compute, sid: str, body: Any, token: str,
                  version: str | None = None) -> httpx.Response:
    return await nova.req("POST", _path(sid), token, version=version,
                          json={"interfaceAttachment": body} if isinstance(body, dict)
                          and "interfaceAttachment" not in body else body)


async def _events(nova: Compute, sid: str, action: str) -> list[dict[str, str | None]]:
    """The events of each of the server's ``action`` actions, newest first."""
    r = await nova.req("GET", f"/servers/{sid}/os-instance-actions")
    out = []
    for a in r.json()["instanceActions"]:
        if a["action"] == action:
            r = await nova.req("GET", f"/servers/{sid}/os-instance-actions/{a['request_id']}")
            out.append({e["event"]: e["result"] for e in r.json()["instanceAction"]["events"]})
    return out


async def _network_info(nova: Compute, sid: str) -> list[str]:
    async with nova.state.db.read() as s:
        inst = await s.scalar(select(Instance).where(Instance.uuid == sid))
    assert inst is not None
    return [i["port_id"] for i in inst.network_info]


def _guest_ports(nova: Compute, sid: str) -> list[str]:
    return [p["port_id"] for p in nova.state.driver.guests[sid].spec.ports]


async def _until(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def test_list_attach_by_network_and_port_then_detach(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    net1 = await nova.network(demo)
    sid = await _active(nova, demo, networks=[{"uuid": net1["id"]}])
    (boot_port,) = await nova.ports(device_id=sid)

    r = await nova.req("GET", _path(sid), demo)
    assert r.status_code == 200, r.text
    (att,) = r.json()["interfaceAttachments"]
    assert att == {"net_id": net1["id"], "port_id": boot_port["id"],
                   "mac_addr": boot_port["mac_address"], "port_state": boot_port["status"],
                   "fixed_ips": boot_port["fixed_ips"]}
    r = await nova.req("GET", _path(sid), demo, version="2.70")
    assert r.json()["interfaceAttachments"][0]["tag"] is None

    # by network, with an address and (2.49) a tag
    net2 = await nova.network(demo, "10.19.0.0/24")
    r = await _attach(nova, sid, {"net_id": net2["id"], "tag": "second",
                                  "fixed_ips": [{"ip_address": "10.19.0.50"}]}, demo, "2.70")
    assert r.status_code == 200, r.text
    att = r.json()["interfaceAttachment"]
    assert set(att) == {"net_id", "port_id", "mac_addr", "port_state", "fixed_ips", "tag"}
    assert att["net_id"] == net2["id"] and att["tag"] == "second"
    assert [ip["ip_address"] for ip in att["fixed_ips"]] == ["10.19.0.50"]
    made = att["port_id"]
    (port,) = await nova.ports(id=made)
    assert port["device_id"] == sid and port["device_owner"] == "compute:nova"
    assert port["binding:host_id"] == nova.state.host
    assert port["mac_address"] == att["mac_addr"]
    assert _guest_ports(nova, sid) == [boot_port["id"], made]
    srv = await nova.wait(sid, "ACTIVE", token=demo)
    assert [a["addr"] for a in srv["addresses"][net2["name"]]] == ["10.19.0.50"]
    assert srv["addresses"][net2["name"]][0]["OS-EXT-IPS-MAC:mac_addr"] == port["mac_address"]
    r = await nova.req("GET", _path(sid, made), demo, version="2.70")
    assert r.status_code == 200 and r.json()["interfaceAttachment"] == att
    r = await nova.req("GET", _path(sid, made), demo, version="2.69")
    assert "tag" not in r.json()["interfaceAttachment"]

    # the user's own port
    own = await _port(nova, demo, net2["id"], name="mine")
    r = await _attach(nova, sid, {"port_id": own["id"]}, demo)
    assert r.status_code == 200, r.text
    assert r.json()["interfaceAttachment"]["port_id"] == own["id"]
    (bound,) = await nova.ports(id=own["id"])
    assert bound["device_id"] == sid and bound["binding:host_id"] == nova.state.host
    r = await nova.req("GET", _path(sid), demo)
    assert {a["port_id"] for a in r.json()["interfaceAttachments"]} == {
        boot_port["id"], made, own["id"]}
    assert await _network_info(nova, sid) == [boot_port["id"], made, own["id"]]
    assert await _events(nova, sid, "attach_interface") == [
        {"compute_attach_interface": "Success"}] * 2

    # show: another port, an unknown one
    other = await _port(nova, demo, net2["id"])
    r = await nova.req("GET", _path(sid, other["id"]), demo)
    assert fault(r, "itemNotFound", 404) == (
        f"Instance {sid} does not have a port with id {other['id']}")
    missing = str(uuid.uuid4())
    r = await nova.req("GET", _path(sid, missing), demo)
    assert fault(r, "itemNotFound", 404) == f"Port id {missing} could not be found."

    # detach: the port compute made is deleted, the user's is unbound and stays
    r = await nova.req("DELETE", _path(sid, made), demo)
    assert r.status_code == 202 and not r.content
    r = await nova.req("DELETE", _path(sid, own["id"]), demo)
    assert r.status_code == 202, r.text

    async def detached() -> bool:
        return await _network_info(nova, sid) == [boot_port["id"]]
    await _until(detached)
    assert await nova.ports(id=made) == []
    (unbound,) = await nova.ports(id=own["id"])
    assert (unbound["device_id"], unbound["device_owner"], unbound["binding:host_id"]) == (
        "", "", "")
    assert _guest_ports(nova, sid) == [boot_port["id"]]
    srv = await nova.wait(sid, "ACTIVE", token=demo)
    assert net2["name"] not in srv["addresses"] and net1["name"] in srv["addresses"]
    assert await _events(nova, sid, "detach_interface") == [
        {"compute_detach_interface": "Success"}] * 2
    r = await nova.req("GET", _path(sid), demo)
    assert [a["port_id"] for a in r.json()["interfaceAttachments"]] == [boot_port["id"]]

    # a port attached then left on the server goes with it (the user's unbound)
    r = await _attach(nova, sid, {"port_id": own["id"]}, demo)
    assert r.status_code == 200, r.text
    r = await nova.req("DELETE", f"/servers/{sid}", demo)
    assert r.status_code == 204
    await nova.gone(sid, demo)
    assert await nova.ports(device_id=sid) == []
    (kept,) = await nova.ports(id=own["id"])
    assert kept["device_id"] == ""


async def test_attach_without_network_picks_the_projects_only_one(nova: Compute) -> None:
    project, _user, token = await nova.project_user()
    sid = await _active(nova, token)
    r = await _attach(nova, sid, {}, token)
    assert fault(r, "badRequest", 400) == (
        "No specific network was requested and none are available for project "
        f"'{project}'.")
    net = await nova.network(token, "10.21.0.0/24")
    r = await _attach(nova, sid, {}, token)
    assert r.status_code == 200, r.text
    assert r.json()["interfaceAttachment"]["net_id"] == net["id"]
    await nova.network(token, "10.22.0.0/24")
    before = await nova.ports(device_id=sid)
    r = await _attach(nova, sid, {}, token)
    assert fault(r, "badRequest", 400) == (
        "Multiple possible networks found, use a Network ID to be more specific.")
    assert await nova.ports(device_id=sid) == before


async def test_bad_bodies(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    net = await nova.network(demo)
    sid = await _active(nova, demo)
    port = await _port(nova, demo, net["id"])
    cases: list[tuple[Any, str | None, str]] = [
        ({"net_id": net["id"], "port_id": port["id"]}, None,
         "Must not input both network_id and port_id"),
        ({"port_id": port["id"], "fixed_ips": [{"ip_address": "10.9.0.9"}]}, None,
         "Must input network_id when request IP address"),
        ({"net_id": "nope"}, None,
         "Invalid input for field/attribute net_id. Value: nope. 'nope' is not a 'uuid'"),
        ({"port_id": 5}, None,
         "Invalid input for field/attribute port_id. Value: 5. 5 is not of type 'string'"),
        ({"net_id": net["id"], "fixed_ips": []}, None,
         "Invalid input for field/attribute fixed_ips. Value: []. [] is too short"),
        ({"net_id": net["id"], "fixed_ips": [{"ip_address": "10.9.0.300"}]}, None,
         ("Invalid input for field/attribute ip_address. Value: 10.9.0.300. '10.9.0.300' "
         "is not valid under any of the given schemas")),
        ({"net_id": net["id"], "tag": "t"}, "2.48", ("Additional properties are not allowed "
         "('tag' was unexpected)")),
        ({"net_id": net["id"], "tag": "a/b"}, "2.49", "'a/b' does not match '^[^,/]*$'"),
        ({"interfaceAttachment": {}, "extra": 1}, None,
         "Additional properties are not allowed ('extra' was unexpected)"),
        ({"interfaceAttachment": "x"}, None, "'x' is not of type 'object'"),
    ]
    for body, version, message in cases:
        r = await _attach(nova, sid, body, demo, version)
        assert message in fault(r, "badRequest", 400), (body, r.text)
    assert await nova.ports(device_id=sid) == []
    assert await _events(nova, sid, "attach_interface") == []


async def test_refusals_leave_nothing(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    net = await nova.network(demo)
    sid = await _active(nova, demo, networks=[{"uuid": net["id"]}])
    (boot_port,) = await nova.ports(device_id=sid)
    taken = boot_port["fixed_ips"][0]["ip_address"]
    ports_before = {p["id"] for p in await nova.ports(network_id=net["id"])}

    missing = str(uuid.uuid4())
    r = await _attach(nova, sid, {"net_id": missing}, demo)
    assert fault(r, "itemNotFound", 404) == f"Network {missing} could not be found."
    r = await _attach(nova, sid, {"port_id": missing}, demo)
    assert fault(r, "itemNotFound", 404) == f"Port id {missing} could not be found."
    # another server's port
    other = await _active(nova, demo, networks=[{"uuid": net["id"]}])
    (other_port,) = await nova.ports(device_id=other)
    r = await _attach(nova, sid, {"port_id": other_port["id"]}, demo)
    assert fault(r, "conflictingRequest", 409) == f"Port {other_port['id']} is still in use."
    ports_before.add(other_port["id"])
    # another project's port: unseen by the demo user, not usable even for an admin
    _p, _u, token2 = await nova.project_user()
    net_b = await nova.network(token2, "10.30.0.0/24")
    foreign = await _port(nova, token2, net_b["id"])
    r = await _attach(nova, sid, {"port_id": foreign["id"]}, demo)
    assert fault(r, "itemNotFound", 404) == f"Port id {foreign['id']} could not be found."
    r = await _attach(nova, sid, {"port_id": foreign["id"]}, nova.cloud.admin_token)
    assert fault(r, "badRequest", 400) == (
        f"Port {foreign['id']} not usable for instance {sid}.")
    # another project's network
    r = await _attach(nova, sid, {"net_id": net_b["id"]}, demo)
    assert fault(r, "itemNotFound", 404) == f"Network {net_b['id']} could not be found."
    # an address in use, one outside the network's subnets
    r = await _attach(nova, sid, {"net_id": net["id"], "fixed_ips": [
        {"ip_address": taken}]}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Fixed IP address {taken} is already in use on instance {sid}.")
    r = await _attach(nova, sid, {"net_id": net["id"], "fixed_ips": [
        {"ip_address": "192.0.2.7"}]}, demo)
    assert "192.0.2.7" in fault(r, "badRequest", 400)
    assert {p["id"] for p in await nova.ports(network_id=net["id"])} == ports_before

    # detach of a port that is not the server's
    r = await nova.req("DELETE", _path(sid, other_port["id"]), demo)
    assert fault(r, "itemNotFound", 404) == f"Port {other_port['id']} is not attached"

    # locked (admins may still)
    r = await nova.req("POST", f"/servers/{sid}/action", demo, json={"lock": None})
    assert r.status_code == 202
    r = await _attach(nova, sid, {"net_id": net["id"]}, demo)
    assert fault(r, "conflictingRequest", 409) == f"Instance {sid} is locked"
    r = await nova.req("DELETE", _path(sid, boot_port["id"]), demo)
    assert fault(r, "conflictingRequest", 409) == f"Instance {sid} is locked"
    r = await _attach(nova, sid, {"net_id": net["id"]}, nova.cloud.admin_token)
    assert r.status_code == 200, r.text
    admin_made = r.json()["interfaceAttachment"]["port_id"]
    r = await nova.req("DELETE", _path(sid, admin_made))
    assert r.status_code == 202
    await _until(lambda: _absent(nova, admin_made))
    r = await nova.req("POST", f"/servers/{sid}/action", demo, json={"unlock": None})
    assert r.status_code == 202

    # a suspended server: neither
    r = await nova.req("POST", f"/servers/{sid}/action", demo, json={"suspend": None})
    assert r.status_code == 202
    await nova.wait(sid, "SUSPENDED", token=demo)
    r = await _attach(nova, sid, {"net_id": net["id"]}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'attach_interface' instance {sid} while it is in vm_state suspended")
    r = await nova.req("DELETE", _path(sid, boot_port["id"]), demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'detach_interface' instance {sid} while it is in vm_state suspended")
    assert {p["id"] for p in await nova.ports(network_id=net["id"])} == ports_before
    assert await _network_info(nova, sid) == [boot_port["id"]]

    # another project sees no server
    r = await nova.req("GET", _path(sid), token2)
    assert fault(r, "itemNotFound", 404) == f"Instance {sid} could not be found."
    r = await _attach(nova, sid, {"net_id": net["id"]}, token2)
    fault(r, "itemNotFound", 404)


async def _absent(nova: Compute, port_id: str) -> bool:
    return await nova.ports(id=port_id) == []


async def test_stopped_server_gets_the_nic_at_its_next_start(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    net = await nova.network(demo)
    sid = await _active(nova, demo)
    r = await nova.req("POST", f"/servers/{sid}/action", demo, json={"os-stop": None})
    assert r.status_code == 202
    await nova.wait(sid, "SHUTOFF", token=demo)
    r = await _attach(nova, sid, {"net_id": net["id"]}, demo)
    assert r.status_code == 200, r.text
    made = r.json()["interfaceAttachment"]["port_id"]
    assert _guest_ports(nova, sid) == [made]
    r = await nova.req("POST", f"/servers/{sid}/action", demo, json={"os-start": None})
    srv = await nova.wait(sid, "ACTIVE", token=demo)
    assert net["name"] in srv["addresses"]
    assert _guest_ports(nova, sid) == [made]
    # and a paused one
    r = await nova.req("POST", f"/servers/{sid}/action", demo, json={"pause": None})
    await nova.wait(sid, "PAUSED", token=demo)
    r = await nova.req("DELETE", _path(sid, made), demo)
    assert r.status_code == 202, r.text

    async def gone() -> bool:
        return _guest_ports(nova, sid) == [] and await _network_info(nova, sid) == []
    await _until(gone)
    assert await nova.ports(id=made) == []


async def test_driver_failures(nova: Compute, monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver refuses: an attach answers 500 and takes the port back (deleted,
    or the user's unbound); a detach keeps the port attached. Both are Errors."""
    demo = nova.cloud.demo_token
    net = await nova.network(demo)
    sid = await _active(nova, demo)
    driver = nova.state.driver
    calls: list[str] = []

    async def broken(*args: Any) -> None:
        calls.append("attach")
        raise DriverError("no slot left")

    monkeypatch.setattr(driver, "attach_interface", broken)
    r = await _attach(nova, sid, {"net_id": net["id"]}, demo)
    assert fault(r, "computeFault", 500) == f"Failed to attach network adapter device to {sid}"
    assert len(calls) == nova.state.tasks.max_attempts
    assert await nova.ports(network_id=net["id"]) == []
    own = await _port(nova, demo, net["id"])
    r = await _attach(nova, sid, {"port_id": own["id"]}, demo)
    fault(r, "computeFault", 500)
    (port,) = await nova.ports(id=own["id"])
    assert (port["device_id"], port["binding:host_id"]) == ("", "")
    assert await _network_info(nova, sid) == []
    events = await _events(nova, sid, "attach_interface")
    assert events == [{"compute_attach_interface": "Error"}] * 2
    monkeypatch.undo()

    r = await _attach(nova, sid, {"port_id": own["id"]}, demo)
    assert r.status_code == 200, r.text

    async def stuck(*args: Any) -> None:
        raise DriverError("the guest keeps its NIC")

    monkeypatch.setattr(driver, "detach_interface", stuck)
    r = await nova.req("DELETE", _path(sid, own["id"]), demo)
    assert r.status_code == 202

    async def failed() -> bool:
        return await _events(nova, sid, "detach_interface") == [
            {"compute_detach_interface": "Error"}]
    await _until(failed)
    assert await _network_info(nova, sid) == [own["id"]]
    (port,) = await nova.ports(id=own["id"])
    assert port["device_id"] == sid


async def test_a_port_deleted_in_networking_leaves_the_server(nova: Compute) -> None:
    """Networking tells compute (``network-vif-deleted``), which takes the interface
    out of the guest and of the server's addresses, recording no action."""
    demo = nova.cloud.demo_token
    net = await nova.network(demo)
    sid = await _active(nova, demo, networks=[{"uuid": net["id"]}])
    (boot_port,) = await nova.ports(device_id=sid)
    own = await _port(nova, demo, net["id"])
    r = await _attach(nova, sid, {"port_id": own["id"]}, demo)
    assert r.status_code == 200, r.text
    await nova.wait(sid, "ACTIVE", token=demo)
    assert _guest_ports(nova, sid) == [boot_port["id"], own["id"]]

    await nova.neutron("DELETE", f"/ports/{boot_port['id']}", demo)

    async def only_own() -> bool:
        r = await nova.req("GET", f"/servers/{sid}", demo)
        addrs = [a["addr"] for a in r.json()["server"]["addresses"].get(net["name"], [])]
        return addrs == [ip["ip_address"] for ip in own["fixed_ips"]]

    await _until(only_own)
    assert _guest_ports(nova, sid) == [own["id"]]
    r = await nova.req("GET", _path(sid), demo)
    assert [a["port_id"] for a in r.json()["interfaceAttachments"]] == [own["id"]]
    r = await nova.req("GET", f"/servers/{sid}/os-instance-actions", demo)
    assert sorted(a["action"] for a in r.json()["instanceActions"]) == [
        "attach_interface", "create"]
    # the user's own port, detached through compute, stays; its deletion event finds
    # nothing to do
    r = await nova.req("DELETE", _path(sid, own["id"]), demo)
    assert r.status_code == 202, r.text
    await _until(lambda: _no_ports(nova, sid, demo))
    assert (await nova.ports(id=own["id"]))[0]["device_id"] == ""
    await nova.neutron("DELETE", f"/ports/{own['id']}", demo)
    srv = await nova.wait(sid, "ACTIVE", token=demo)
    assert srv["addresses"] == {}


async def _no_ports(nova: Compute, sid: str, token: str) -> bool:
    r = await nova.req("GET", f"/servers/{sid}", token)
    return not r.json()["server"]["addresses"]
