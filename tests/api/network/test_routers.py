"""Routers: CRUD, gateways (ext-gw-mode), interfaces by subnet and by port,
overlapping subnets, extra routes, deletion while in use."""

from __future__ import annotations

import ipaddress
from typing import Any

from tests.api.network.conftest import Net, neutron_error


async def external(net: Net, cidr: str = "198.51.100.0/24") -> tuple[dict[str, Any],
                                                                   dict[str, Any]]:
    """An external network (admin's) with one subnet."""
    n = await net.network(**{"router:external": True})
    sub = await net.subnet(n["id"], cidr, enable_dhcp=False)
    return n, sub


async def private(net: Net, cidr: str = "10.0.0.0/24", token: str | None = None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    token = token or net.cloud.demo_token
    n = await net.network(token)
    sub = await net.subnet(n["id"], cidr, token)
    return n, sub


async def ports_of(net: Net, router_id: str) -> list[dict[str, Any]]:
    r = await net.req("GET", f"/ports?device_id={router_id}")
    assert r.status_code == 200, r.text
    return r.json()["ports"]  # type: ignore[no-any-return]


async def add_intf(net: Net, router_id: str, token: str | None = None,
                   **body: str) -> Any:
    return await net.req("PUT", f"/routers/{router_id}/add_router_interface", token, json=body)


async def remove_intf(net: Net, router_id: str, token: str | None = None,
                      **body: str) -> Any:
    return await net.req("PUT", f"/routers/{router_id}/remove_router_interface", token,
                         json=body)


async def test_create_show_list_update_delete(net: Net) -> None:
    demo = net.cloud.demo_token
    r = await net.create("router", demo, name="r1", admin_state_up=False)
    assert r["name"] == "r1" and r["admin_state_up"] is False and r["status"] == "ACTIVE"
    assert r["external_gateway_info"] is None and r["routes"] == []
    assert r["availability_zones"] == ["nova"] and r["availability_zone_hints"] == []
    assert r["flavor_id"] is None and r["revision_number"] == 0
    assert r["project_id"] == r["tenant_id"] and r["tags"] == []
    # distributed and ha: admin-only attributes
    assert "distributed" not in r and "ha" not in r
    shown = await net.show("router", r["id"])
    assert shown["distributed"] is False and shown["ha"] is False
    lst = (await net.req("GET", "/routers", demo)).json()["routers"]
    assert [x["id"] for x in lst] == [r["id"]]
    lst = (await net.req("GET", "/routers?name=r1&fields=id&fields=name")).json()["routers"]
    assert lst == [{"id": r["id"], "name": "r1"}]
    resp = await net.req("PUT", f"/routers/{r['id']}", demo,
                         json={"router": {"name": "r2", "admin_state_up": True}})
    assert resp.status_code == 200, resp.text
    up = resp.json()["router"]
    assert up["name"] == "r2" and up["admin_state_up"] is True and up["revision_number"] == 1
    resp = await net.req("DELETE", f"/routers/{r['id']}", demo)
    assert resp.status_code == 204, resp.text
    resp = await net.req("GET", f"/routers/{r['id']}", demo)
    assert resp.status_code == 404 and neutron_error(resp)[0] == "RouterNotFound"
    for method in ("GET", "PUT", "DELETE"):
        resp = await net.req(method, "/routers/no-such-router",
                             json={"router": {"name": "x"}} if method == "PUT" else None)
        assert resp.status_code == 404, (method, resp.text)


async def test_bulk_policy_and_bad_input(net: Net) -> None:
    demo = net.cloud.demo_token
    r = await net.req("POST", "/routers", demo,
                      json={"routers": [{"name": "a"}, {"name": "b"}]})
    assert r.status_code == 201, r.text
    assert [x["name"] for x in r.json()["routers"]] == ["a", "b"]
    r = await net.req("POST", "/routers", demo, json={"router": {"distributed": True}})
    assert r.status_code == 403 and neutron_error(r)[0] == "PolicyNotAuthorized"
    r = await net.req("POST", "/routers", json={"router": {"ha": True}})
    assert r.status_code == 400, r.text
    r = await net.req("POST", "/routers", json={"router": {"routes": []}})
    assert r.status_code == 400 and "not allowed in POST" in neutron_error(r)[1]
    r = await net.req("POST", "/routers", json={"router": {"status": "DOWN"}})
    assert r.status_code == 400
    r = await net.req("POST", "/routers", json={"router": {
        "external_gateway_info": {"enable_snat": False}}})
    assert r.status_code == 400 and "Expected keys" in neutron_error(r)[1]
    r = await net.req("POST", "/routers", json={"router": {
        "external_gateway_info": {"network_id": "nope"}}})
    assert r.status_code == 400
    r = await net.req("POST", "/routers", json={"router": {"availability_zone_hints": ["x"]}})
    assert r.status_code == 404 and neutron_error(r)[0] == "AvailabilityZoneNotFound"
    r = await net.create("router", availability_zone_hints=["nova"])
    assert r["availability_zone_hints"] == ["nova"]
    # another project's router is invisible
    _, other = await net.project_user()
    r2 = await net.create("router", demo, name="mine")
    resp = await net.req("GET", f"/routers/{r2['id']}", other)
    assert resp.status_code == 404
    resp = await net.req("PUT", f"/routers/{r2['id']}", other, json={"router": {"name": "x"}})
    assert resp.status_code == 404
    assert all(x["id"] != r2["id"]
               for x in (await net.req("GET", "/routers", other)).json()["routers"])


async def test_gateway_set_update_clear(net: Net) -> None:
    demo = net.cloud.demo_token
    ext, ext_sub = await external(net)
    r = await net.create("router", demo, external_gateway_info={"network_id": ext["id"]})
    gw = r["external_gateway_info"]
    assert gw["network_id"] == ext["id"] and gw["enable_snat"] is True
    [fixed] = gw["external_fixed_ips"]
    assert fixed["subnet_id"] == ext_sub["id"]
    assert ipaddress.ip_address(fixed["ip_address"]) in ipaddress.ip_network(ext_sub["cidr"])
    [port] = await ports_of(net, r["id"])
    assert port["device_owner"] == "network:router_gateway" and port["project_id"] == ""
    assert port["network_id"] == ext["id"]
    assert port["fixed_ips"][0]["ip_address"] == fixed["ip_address"]
    # the project does not see the gateway port
    r2 = await net.req("GET", f"/ports?device_id={r['id']}", demo)
    assert r2.json()["ports"] == []
    # enable_snat is the admin's
    resp = await net.req("PUT", f"/routers/{r['id']}", demo, json={"router": {
        "external_gateway_info": {"network_id": ext["id"], "enable_snat": False}}})
    assert resp.status_code == 403, resp.text
    resp = await net.req("PUT", f"/routers/{r['id']}", json={"router": {
        "external_gateway_info": {"network_id": ext["id"], "enable_snat": False}}})
    assert resp.status_code == 200, resp.text
    up = resp.json()["router"]
    assert up["external_gateway_info"]["enable_snat"] is False
    assert up["external_gateway_info"]["external_fixed_ips"] == [fixed]
    assert up["revision_number"] == r["revision_number"] + 1
    # clearing: {} (or null) removes the gateway port
    resp = await net.req("PUT", f"/routers/{r['id']}", demo,
                         json={"router": {"external_gateway_info": {}}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["router"]["external_gateway_info"] is None
    assert await ports_of(net, r["id"]) == []
    resp = await net.req("PUT", f"/routers/{r['id']}", demo,
                         json={"router": {"external_gateway_info": None}})
    assert resp.status_code == 200, resp.text
    # a chosen address (admin)
    want = str(ipaddress.ip_network(ext_sub["cidr"])[50])
    resp = await net.req("PUT", f"/routers/{r['id']}", json={"router": {
        "external_gateway_info": {"network_id": ext["id"], "external_fixed_ips": [
            {"subnet_id": ext_sub["id"], "ip_address": want}]}}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["router"]["external_gateway_info"]["external_fixed_ips"] == [
        {"subnet_id": ext_sub["id"], "ip_address": want}]
    [gw_port] = await ports_of(net, r["id"])
    # another address on the same network: the same port, renumbered
    want = str(ipaddress.ip_network(ext_sub["cidr"])[51])
    resp = await net.req("PUT", f"/routers/{r['id']}", json={"router": {
        "external_gateway_info": {"network_id": ext["id"], "external_fixed_ips": [
            {"ip_address": want}]}}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["router"]["external_gateway_info"]["external_fixed_ips"] == [
        {"subnet_id": ext_sub["id"], "ip_address": want}]
    assert [p["id"] for p in await ports_of(net, r["id"])] == [gw_port["id"]]
    # the same address for another router: in use
    resp = await net.req("POST", "/routers", json={"router": {
        "external_gateway_info": {"network_id": ext["id"], "external_fixed_ips": [
            {"subnet_id": ext_sub["id"], "ip_address": want}]}}})
    assert resp.status_code == 409, resp.text
    # the subnet's gateway address is refused
    resp = await net.req("POST", "/routers", json={"router": {
        "external_gateway_info": {"network_id": ext["id"], "external_fixed_ips": [
            {"ip_address": ext_sub["gateway_ip"]}]}}})
    assert resp.status_code == 400, resp.text
    # deleting the router removes its gateway port
    resp = await net.req("DELETE", f"/routers/{r['id']}", demo)
    assert resp.status_code == 204, resp.text
    assert await ports_of(net, r["id"]) == []


async def test_gateway_errors(net: Net) -> None:
    demo = net.cloud.demo_token
    priv, _ = await private(net)
    r = await net.create("router", demo)
    resp = await net.req("PUT", f"/routers/{r['id']}", demo, json={"router": {
        "external_gateway_info": {"network_id": priv["id"]}}})
    assert resp.status_code == 400, resp.text
    assert neutron_error(resp) == ("BadRequest", (f"Bad router request: Network {priv['id']} "
                                                 "is not an external network."))
    resp = await net.req("PUT", f"/routers/{r['id']}", demo, json={"router": {
        "external_gateway_info": {"network_id": r["id"]}}})
    assert resp.status_code == 404 and neutron_error(resp)[0] == "NetworkNotFound"
    # nothing half-written: a failed create leaves no router
    resp = await net.req("POST", "/routers", demo, json={"router": {
        "name": "half", "external_gateway_info": {"network_id": priv["id"]}}})
    assert resp.status_code == 400
    names = [x["name"] for x in (await net.req("GET", "/routers", demo)).json()["routers"]]
    assert "half" not in names


async def test_interface_by_subnet(net: Net) -> None:
    demo = net.cloud.demo_token
    n, sub = await private(net)
    r = await net.create("router", demo)
    resp = await add_intf(net, r["id"], demo, subnet_id=sub["id"])
    assert resp.status_code == 200, resp.text
    info = resp.json()
    assert info["id"] == r["id"] and info["subnet_id"] == sub["id"]
    assert info["subnet_ids"] == [sub["id"]] and info["network_id"] == n["id"]
    assert info["project_id"] == info["tenant_id"] == r["project_id"]
    port = await net.show("port", info["port_id"], demo)
    assert port["device_id"] == r["id"] and port["device_owner"] == "network:router_interface"
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": sub["gateway_ip"]}]
    assert (await net.show("router", r["id"]))["revision_number"] == 1
    # twice: refused
    resp = await add_intf(net, r["id"], demo, subnet_id=sub["id"])
    assert resp.status_code == 400, resp.text
    assert neutron_error(resp)[1] == (f"Bad router request: Router already has a port on "
                                      f"subnet {sub['id']}.")
    # in use: the router cannot go
    resp = await net.req("DELETE", f"/routers/{r['id']}", demo)
    assert resp.status_code == 409 and neutron_error(resp)[0] == "RouterInUse"
    resp = await remove_intf(net, r["id"], demo, subnet_id=sub["id"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["port_id"] == info["port_id"]
    resp = await net.req("GET", f"/ports/{info['port_id']}", demo)
    assert resp.status_code == 404
    resp = await remove_intf(net, r["id"], demo, subnet_id=sub["id"])
    assert resp.status_code == 404
    assert neutron_error(resp) == ("RouterInterfaceNotFoundForSubnet",
                                   f"Router {r['id']} has no interface on subnet {sub['id']}")
    resp = await net.req("DELETE", f"/routers/{r['id']}", demo)
    assert resp.status_code == 204, resp.text


async def test_interface_subnet_errors(net: Net) -> None:
    demo = net.cloud.demo_token
    _n, sub = await private(net)
    r = await net.create("router", demo)
    resp = await add_intf(net, r["id"], demo)
    assert resp.status_code == 400 and "Either subnet_id or port_id" in neutron_error(resp)[1]
    resp = await add_intf(net, r["id"], demo, subnet_id=sub["id"], port_id=sub["id"])
    assert resp.status_code == 400 and "Cannot specify both" in neutron_error(resp)[1]
    resp = await add_intf(net, r["id"], demo, subnet_id="bad")
    assert resp.status_code == 400
    resp = await add_intf(net, r["id"], demo, subnet_id=r["id"])
    assert resp.status_code == 404 and neutron_error(resp)[0] == "SubnetNotFound"
    n2 = await net.network(demo)
    nogw = await net.subnet(n2["id"], "10.9.0.0/24", demo, gateway_ip=None)
    resp = await add_intf(net, r["id"], demo, subnet_id=nogw["id"])
    assert resp.status_code == 400
    assert "must have a gateway IP" in neutron_error(resp)[1]
    # another project's router: not found; a reader may not change it
    _, other = await net.project_user()
    resp = await add_intf(net, r["id"], other, subnet_id=sub["id"])
    assert resp.status_code == 404 and neutron_error(resp)[0] == "RouterNotFound"


async def test_overlapping_subnets_refused(net: Net) -> None:
    demo = net.cloud.demo_token
    _, s1 = await private(net, "10.1.0.0/24")
    _, s2 = await private(net, "10.1.0.0/16")
    r = await net.create("router", demo)
    assert (await add_intf(net, r["id"], demo, subnet_id=s1["id"])).status_code == 200
    resp = await add_intf(net, r["id"], demo, subnet_id=s2["id"])
    assert resp.status_code == 400, resp.text
    assert neutron_error(resp) == (
        "BadRequest", (f"Bad router request: Cidr 10.1.0.0/16 of subnet {s2['id']} overlaps "
                      f"with cidr 10.1.0.0/24 of subnet {s1['id']}."))
    # nothing was left behind: no port on s2's network
    r2 = await net.req("GET", f"/ports?network_id={s2['network_id']}", demo)
    assert [p for p in r2.json()["ports"] if p["device_owner"].startswith("network:router")] \
        == []
    # a gateway's subnets count too
    ext, _ = await external(net, "10.1.0.128/25")
    resp = await net.req("PUT", f"/routers/{r['id']}", demo, json={"router": {
        "external_gateway_info": {"network_id": ext["id"]}}})
    assert resp.status_code == 400 and "overlaps" in neutron_error(resp)[1]


async def test_interface_by_port(net: Net) -> None:
    demo = net.cloud.demo_token
    n, sub = await private(net)
    r = await net.create("router", demo)
    port = await net.create("port", demo, network_id=n["id"])
    resp = await add_intf(net, r["id"], demo, port_id=port["id"])
    assert resp.status_code == 200, resp.text
    info = resp.json()
    assert info["port_id"] == port["id"] and info["subnet_id"] == sub["id"]
    shown = await net.show("port", port["id"], demo)
    assert shown["device_id"] == r["id"]
    assert shown["device_owner"] == "network:router_interface"
    # a port with a device is in use
    r2 = await net.create("router", demo)
    resp = await add_intf(net, r2["id"], demo, port_id=port["id"])
    assert resp.status_code == 409 and neutron_error(resp)[0] == "PortInUse"
    resp = await remove_intf(net, r2["id"], demo, port_id=port["id"])
    assert resp.status_code == 404 and neutron_error(resp)[0] == "RouterInterfaceNotFound"
    resp = await remove_intf(net, r["id"], demo, port_id=port["id"], subnet_id=r["id"])
    assert resp.status_code == 400 and neutron_error(resp)[0] == "SubnetMismatchForPort"
    resp = await remove_intf(net, r["id"], demo, port_id=port["id"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["subnet_ids"] == [sub["id"]]
    assert (await net.req("GET", f"/ports/{port['id']}", demo)).status_code == 404
    # a port without addresses cannot be an interface
    n3 = await net.network(demo)
    bare = await net.create("port", demo, network_id=n3["id"])
    resp = await add_intf(net, r["id"], demo, port_id=bare["id"])
    assert resp.status_code == 400 and "at least one fixed IP" in neutron_error(resp)[1]


async def test_extra_routes(net: Net) -> None:
    demo = net.cloud.demo_token
    _, sub = await private(net, "10.2.0.0/24")
    r = await net.create("router", demo)
    routes = [{"destination": "192.168.10.0/24", "nexthop": "10.2.0.10"}]
    resp = await net.req("PUT", f"/routers/{r['id']}", demo, json={"router": {"routes": routes}})
    assert resp.status_code == 400 and neutron_error(resp)[0] == "InvalidRoutes"
    assert "the nexthop is not connected with router" in neutron_error(resp)[1]
    assert (await add_intf(net, r["id"], demo, subnet_id=sub["id"])).status_code == 200
    resp = await net.req("PUT", f"/routers/{r['id']}", demo, json={"router": {"routes": routes}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["router"]["routes"] == routes
    resp = await net.req("PUT", f"/routers/{r['id']}", demo, json={"router": {"routes": [
        {"destination": "192.168.11.0/24", "nexthop": sub["gateway_ip"]}]}})
    assert resp.status_code == 400 and "used by router" in neutron_error(resp)[1]
    for bad in ([{"destination": "192.168.10.1/24", "nexthop": "10.2.0.10"}],
                [{"destination": "192.168.10.0/24"}],
                [{"destination": "192.168.10.0/24", "nexthop": "x"}],
                routes + routes, "nope"):
        resp = await net.req("PUT", f"/routers/{r['id']}", demo,
                             json={"router": {"routes": bad}})
        assert resp.status_code == 400, (bad, resp.text)
    # the interface a route needs cannot go
    resp = await remove_intf(net, r["id"], demo, subnet_id=sub["id"])
    assert resp.status_code == 409 and neutron_error(resp)[0] == "RouterInterfaceInUseByRoute"
    # the atomic actions
    more = [{"destination": "192.168.12.0/24", "nexthop": "10.2.0.12"}]
    resp = await net.req("PUT", f"/routers/{r['id']}/add_extraroutes", demo,
                         json={"router": {"routes": more + routes}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["router"]["routes"] == routes + more
    resp = await net.req("PUT", f"/routers/{r['id']}/remove_extraroutes", demo,
                         json={"router": {"routes": routes}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["router"]["routes"] == more
    # null clears
    resp = await net.req("PUT", f"/routers/{r['id']}", demo, json={"router": {"routes": None}})
    assert resp.status_code == 200 and resp.json()["router"]["routes"] == []
    assert (await remove_intf(net, r["id"], demo, subnet_id=sub["id"])).status_code == 200


async def test_ipv6_interfaces(net: Net) -> None:
    demo = net.cloud.demo_token
    n = await net.network(demo)
    a = await net.subnet(n["id"], "2001:db8:1::/64", demo)
    b = await net.subnet(n["id"], "2001:db8:2::/64", demo)
    r = await net.create("router", demo)
    first = (await add_intf(net, r["id"], demo, subnet_id=a["id"])).json()
    resp = await add_intf(net, r["id"], demo, subnet_id=b["id"])
    assert resp.status_code == 200, resp.text
    # the second prefix joins the router's IPv6 port on that network
    assert resp.json()["port_id"] == first["port_id"]
    port = await net.show("port", first["port_id"], demo)
    assert {x["subnet_id"] for x in port["fixed_ips"]} == {a["id"], b["id"]}
    resp = await remove_intf(net, r["id"], demo, subnet_id=a["id"])
    assert resp.status_code == 200, resp.text
    port = await net.show("port", first["port_id"], demo)
    assert [x["subnet_id"] for x in port["fixed_ips"]] == [b["id"]]
    resp = await remove_intf(net, r["id"], demo, subnet_id=b["id"])
    assert resp.status_code == 200, resp.text
    assert (await net.req("GET", f"/ports/{first['port_id']}", demo)).status_code == 404


async def test_router_quota(net: Net) -> None:
    project, token = await net.project_user()
    resp = await net.req("PUT", f"/quotas/{project}", json={"quota": {"router": 1}})
    assert resp.status_code == 200, resp.text
    await net.create("router", token)
    resp = await net.req("POST", "/routers", token, json={"router": {}})
    assert resp.status_code == 409 and neutron_error(resp)[0] == "OverQuota"
