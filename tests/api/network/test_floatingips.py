"""Floating IPs: create, associate, disassociate, errors, what they hold on
routers (gateway and interfaces), visibility."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from tests.api.network.conftest import Net, neutron_error


@dataclass
class Topo:
    ext: dict[str, Any]
    ext_sub: dict[str, Any]
    net: dict[str, Any]
    sub: dict[str, Any]
    router: dict[str, Any]
    port: dict[str, Any]
    port2: dict[str, Any]


async def topology(net: Net) -> Topo:
    """An external network; the demo project's network behind a router with its
    gateway there; two ports on it."""
    demo = net.cloud.demo_token
    ext = await net.network(**{"router:external": True})
    ext_sub = await net.subnet(ext["id"], "203.0.113.0/24", enable_dhcp=False)
    n = await net.network(demo)
    sub = await net.subnet(n["id"], "10.5.0.0/24", demo)
    router = await net.create("router", demo, external_gateway_info={"network_id": ext["id"]})
    r = await net.req("PUT", f"/routers/{router['id']}/add_router_interface", demo,
                      json={"subnet_id": sub["id"]})
    assert r.status_code == 200, r.text
    port = await net.create("port", demo, network_id=n["id"])
    port2 = await net.create("port", demo, network_id=n["id"])
    return Topo(ext, ext_sub, n, sub, router, port, port2)


async def test_create_associate_disassociate_delete(net: Net) -> None:
    demo = net.cloud.demo_token
    t = await topology(net)
    f = await net.create("floatingip", demo, floating_network_id=t.ext["id"])
    assert f["status"] == "DOWN" and f["port_id"] is None and f["router_id"] is None
    assert f["fixed_ip_address"] is None and f["port_details"] is None
    assert ipaddress.ip_address(f["floating_ip_address"]) in ipaddress.ip_network(
        t.ext_sub["cidr"])
    assert f["project_id"] == f["tenant_id"] != "" and f["revision_number"] == 0
    # its address is held by a port on the external network
    r = await net.req("GET", f"/ports?device_id={f['id']}")
    [fport] = r.json()["ports"]
    assert fport["device_owner"] == "network:floatingip" and fport["project_id"] == ""
    assert fport["fixed_ips"][0]["ip_address"] == f["floating_ip_address"]
    # associate
    r = await net.req("PUT", f"/floatingips/{f['id']}", demo,
                      json={"floatingip": {"port_id": t.port["id"]}})
    assert r.status_code == 200, r.text
    up = r.json()["floatingip"]
    assert up["port_id"] == t.port["id"] and up["router_id"] == t.router["id"]
    assert up["fixed_ip_address"] == t.port["fixed_ips"][0]["ip_address"]
    assert up["status"] == "ACTIVE" and up["revision_number"] == 1
    details = up["port_details"]
    assert details["network_id"] == t.net["id"] and details["mac_address"] == \
        t.port["mac_address"]
    assert set(details) == {"name", "network_id", "mac_address", "admin_state_up", "status",
                            "device_id", "device_owner"}
    # to another port
    r = await net.req("PUT", f"/floatingips/{f['id']}", demo,
                      json={"floatingip": {"port_id": t.port2["id"]}})
    assert r.status_code == 200, r.text
    assert r.json()["floatingip"]["fixed_ip_address"] == t.port2["fixed_ips"][0]["ip_address"]
    # filters
    r = await net.req("GET", f"/floatingips?port_id={t.port2['id']}", demo)
    assert [x["id"] for x in r.json()["floatingips"]] == [f["id"]]
    r = await net.req("GET", f"/floatingips?router_id={t.router['id']}&status=ACTIVE", demo)
    assert [x["id"] for x in r.json()["floatingips"]] == [f["id"]]
    # disassociate
    r = await net.req("PUT", f"/floatingips/{f['id']}", demo,
                      json={"floatingip": {"port_id": None}})
    assert r.status_code == 200, r.text
    down = r.json()["floatingip"]
    assert down["port_id"] is None and down["router_id"] is None
    assert down["fixed_ip_address"] is None and down["status"] == "DOWN"
    # description alone
    r = await net.req("PUT", f"/floatingips/{f['id']}", demo,
                      json={"floatingip": {"description": "d"}})
    assert r.status_code == 200 and r.json()["floatingip"]["description"] == "d"
    r = await net.req("DELETE", f"/floatingips/{f['id']}", demo)
    assert r.status_code == 204, r.text
    r = await net.req("GET", f"/floatingips/{f['id']}", demo)
    assert r.status_code == 404 and neutron_error(r)[0] == "FloatingIPNotFound"
    r = await net.req("GET", f"/ports/{fport['id']}")
    assert r.status_code == 404


async def test_create_associated_and_errors(net: Net) -> None:
    demo = net.cloud.demo_token
    t = await topology(net)
    ip = t.port["fixed_ips"][0]["ip_address"]
    f = await net.create("floatingip", demo, floating_network_id=t.ext["id"],
                         port_id=t.port["id"], fixed_ip_address=ip)
    assert f["fixed_ip_address"] == ip and f["router_id"] == t.router["id"]
    # the same fixed address again
    r = await net.req("POST", "/floatingips", demo, json={"floatingip": {
        "floating_network_id": t.ext["id"], "port_id": t.port["id"]}})
    assert r.status_code == 409, r.text
    assert neutron_error(r)[0] == "FloatingIPPortAlreadyAssociated"
    # nothing half-written: no second floating IP, no stray port on the external network
    r = await net.req("GET", "/floatingips", demo)
    assert len(r.json()["floatingips"]) == 1
    r = await net.req("GET", f"/ports?network_id={t.ext['id']}"
                             "&device_owner=network:floatingip")
    assert len(r.json()["ports"]) == 1, [(p["device_owner"], p["device_id"]) for p in r.json()["ports"]]
    # a private network is not a floating network
    r = await net.req("POST", "/floatingips", demo, json={"floatingip": {
        "floating_network_id": t.net["id"]}})
    assert r.status_code == 400
    assert neutron_error(r)[1] == (f"Bad floatingip request: Network {t.net['id']} is not a "
                                   "valid external network.")
    r = await net.req("POST", "/floatingips", demo, json={"floatingip": {
        "floating_network_id": t.router["id"]}})
    assert r.status_code == 404 and neutron_error(r)[0] == "NetworkNotFound"
    r = await net.req("POST", "/floatingips", demo, json={"floatingip": {}})
    assert r.status_code == 400
    r = await net.req("POST", "/floatingips", demo, json={"floatingip": {
        "floating_network_id": t.ext["id"], "fixed_ip_address": ip}})
    assert r.status_code == 400 and "without a port_id" in neutron_error(r)[1]
    r = await net.req("POST", "/floatingips", demo, json={"floatingip": {
        "floating_network_id": t.ext["id"], "port_id": t.port2["id"],
        "fixed_ip_address": "10.5.0.250"}})
    assert r.status_code == 400 and "does not have fixed ip" in neutron_error(r)[1]
    r = await net.req("POST", "/floatingips", demo, json={"floatingip": {
        "floating_network_id": t.ext["id"], "port_id": t.router["id"]}})
    assert r.status_code == 404 and neutron_error(r)[0] == "PortNotFound"
    # a port on a network no router joins to the external network
    n2 = await net.network(demo)
    await net.subnet(n2["id"], "10.6.0.0/24", demo)
    lone = await net.create("port", demo, network_id=n2["id"])
    r = await net.req("POST", "/floatingips", demo, json={"floatingip": {
        "floating_network_id": t.ext["id"], "port_id": lone["id"]}})
    assert r.status_code == 404
    assert neutron_error(r)[0] == "ExternalGatewayForFloatingIPNotFound"
    # the floating address is the admin's to choose
    want = str(ipaddress.ip_network(t.ext_sub["cidr"])[77])
    r = await net.req("POST", "/floatingips", demo, json={"floatingip": {
        "floating_network_id": t.ext["id"], "floating_ip_address": want}})
    assert r.status_code == 403
    f2 = await net.create("floatingip", floating_network_id=t.ext["id"],
                          floating_ip_address=want, project_id=f["project_id"])
    assert f2["floating_ip_address"] == want and f2["project_id"] == f["project_id"]
    r = await net.req("POST", "/floatingips", json={"floatingip": {
        "floating_network_id": t.ext["id"], "floating_ip_address": want}})
    assert r.status_code == 409, r.text


async def test_several_fixed_ips(net: Net) -> None:
    demo = net.cloud.demo_token
    t = await topology(net)
    a, b = "10.5.0.100", "10.5.0.101"
    port = await net.create("port", demo, network_id=t.net["id"],
                            fixed_ips=[{"ip_address": a}, {"ip_address": b}])
    r = await net.req("POST", "/floatingips", demo, json={"floatingip": {
        "floating_network_id": t.ext["id"], "port_id": port["id"]}})
    assert r.status_code == 400 and "multiple fixed IPv4" in neutron_error(r)[1]
    f = await net.create("floatingip", demo, floating_network_id=t.ext["id"],
                         port_id=port["id"], fixed_ip_address=a)
    r = await net.req("PUT", f"/floatingips/{f['id']}", demo, json={"floatingip": {
        "port_id": port["id"], "fixed_ip_address": b}})
    assert r.status_code == 200, r.text
    assert r.json()["floatingip"]["fixed_ip_address"] == b


async def test_floating_ips_hold_gateway_and_interface(net: Net) -> None:
    demo = net.cloud.demo_token
    t = await topology(net)
    f = await net.create("floatingip", demo, floating_network_id=t.ext["id"],
                         port_id=t.port["id"])
    r = await net.req("PUT", f"/routers/{t.router['id']}", demo,
                      json={"router": {"external_gateway_info": None}})
    assert r.status_code == 409, r.text
    assert neutron_error(r)[0] == "RouterExternalGatewayInUseByFloatingIp"
    r = await net.req("PUT", f"/routers/{t.router['id']}/remove_router_interface", demo,
                      json={"subnet_id": t.sub["id"]})
    assert r.status_code == 409, r.text
    assert neutron_error(r)[0] == "RouterInterfaceInUseByFloatingIP"
    # deleting the fixed port disassociates
    r = await net.req("DELETE", f"/ports/{t.port['id']}", demo)
    assert r.status_code == 204, r.text
    shown = await net.show("floatingip", f["id"], demo)
    assert shown["port_id"] is None and shown["router_id"] is None
    assert shown["fixed_ip_address"] is None
    r = await net.req("PUT", f"/routers/{t.router['id']}/remove_router_interface", demo,
                      json={"subnet_id": t.sub["id"]})
    assert r.status_code == 200, r.text
    r = await net.req("PUT", f"/routers/{t.router['id']}", demo,
                      json={"router": {"external_gateway_info": None}})
    assert r.status_code == 200, r.text


async def test_visibility_and_projects(net: Net) -> None:
    demo = net.cloud.demo_token
    t = await topology(net)
    mine = await net.create("floatingip", demo, floating_network_id=t.ext["id"])
    admins = await net.create("floatingip", floating_network_id=t.ext["id"])
    project, other = await net.project_user()
    theirs = await net.create("floatingip", other, floating_network_id=t.ext["id"])
    ids = {x["id"] for x in (await net.req("GET", "/floatingips", demo)).json()["floatingips"]}
    assert mine["id"] in ids and admins["id"] not in ids and theirs["id"] not in ids
    ids = {x["id"] for x in (await net.req("GET", "/floatingips")).json()["floatingips"]}
    assert {mine["id"], admins["id"], theirs["id"]} <= ids
    r = await net.req("GET", f"/floatingips/{mine['id']}", other)
    assert r.status_code == 404
    r = await net.req("DELETE", f"/floatingips/{mine['id']}", other)
    assert r.status_code == 404
    # another project's port: not found for them
    r = await net.req("PUT", f"/floatingips/{theirs['id']}", other,
                      json={"floatingip": {"port_id": t.port["id"]}})
    assert r.status_code == 404, r.text
    # the admin creates one for the demo project, associated with its port
    f = await net.create("floatingip", floating_network_id=t.ext["id"],
                         project_id=t.net["project_id"], port_id=t.port["id"])
    assert f["project_id"] == t.net["project_id"] and f["port_id"] == t.port["id"]
    assert project != t.net["project_id"]


async def test_floatingip_quota(net: Net) -> None:
    t = await topology(net)
    project, token = await net.project_user()
    r = await net.req("PUT", f"/quotas/{project}", json={"quota": {"floatingip": 1}})
    assert r.status_code == 200, r.text
    await net.create("floatingip", token, floating_network_id=t.ext["id"])
    r = await net.req("POST", "/floatingips", token,
                      json={"floatingip": {"floating_network_id": t.ext["id"]}})
    assert r.status_code == 409 and neutron_error(r)[0] == "OverQuota"
