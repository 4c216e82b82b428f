"""Nova's deprecated network proxies (security groups and rules, floating IPs and
pools, networks) and the server actions on security groups and floating IPs,
answered from the networking API of the same cloud."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.compute.conftest import Compute, fault


async def _group(nova: Compute, token: str, name: str | None = None) -> dict[str, Any]:
    r = await nova.req("POST", "/os-security-groups", token, json={"security_group": {
        "name": name or "sg-" + uuid.uuid4().hex[:6], "description": "a group"}})
    assert r.status_code == 200, r.text
    return r.json()["security_group"]  # type: ignore[no-any-return]


async def _rule(nova: Compute, token: str, **rule: Any) -> Any:
    return await nova.req("POST", "/os-security-group-rules", token,
                          json={"security_group_rule": rule})


async def test_security_group_lifecycle(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    sg = await _group(nova, demo, "web")
    assert set(sg) == {"id", "name", "description", "tenant_id", "rules"}
    assert sg["name"] == "web" and sg["description"] == "a group" and sg["rules"] == []
    # Neutron's default egress rules are not Nova rules
    neutron = (await nova.neutron("GET", f"/security-groups/{sg['id']}", demo))
    assert neutron["security_group"]["security_group_rules"]
    r = await nova.req("GET", f"/os-security-groups/{sg['id']}", demo)
    assert r.status_code == 200 and r.json()["security_group"] == sg
    r = await nova.req("GET", "/os-security-groups", demo)
    assert sg["id"] in [g["id"] for g in r.json()["security_groups"]]

    r = await nova.req("PUT", f"/os-security-groups/{sg['id']}", demo, json={
        "security_group": {"name": "web2", "description": "d2"}})
    assert r.status_code == 200, r.text
    assert r.json()["security_group"]["name"] == "web2"
    assert r.json()["security_group"]["description"] == "d2"

    r = await _rule(nova, demo, parent_group_id=sg["id"], ip_protocol="tcp", from_port=22,
                    to_port=22, cidr="10.0.0.0/8")
    assert r.status_code == 200, r.text
    rule = r.json()["security_group_rule"]
    assert rule["ip_protocol"] == "tcp" and (rule["from_port"], rule["to_port"]) == (22, 22)
    assert rule["ip_range"] == {"cidr": "10.0.0.0/8"} and rule["group"] == {}
    assert rule["parent_group_id"] == sg["id"]
    # a rule from another group, all of ICMP
    other = await _group(nova, demo)
    r = await _rule(nova, demo, parent_group_id=sg["id"], ip_protocol="icmp",
                    group_id=other["id"])
    assert r.status_code == 200, r.text
    grule = r.json()["security_group_rule"]
    assert grule["group"] == {"name": other["name"], "tenant_id": sg["tenant_id"]}
    assert grule["ip_range"] == {} and (grule["from_port"], grule["to_port"]) == (-1, -1)
    r = await nova.req("GET", f"/os-security-groups/{sg['id']}", demo)
    rules = {x["id"]: x for x in r.json()["security_group"]["rules"]}
    assert rules == {rule["id"]: rule, grule["id"]: grule}

    # a duplicate is Nova's 400 with Neutron's words
    r = await _rule(nova, demo, parent_group_id=sg["id"], ip_protocol="tcp", from_port=22,
                    to_port=22, cidr="10.0.0.0/8")
    assert fault(r, "badRequest", 400).startswith("Security group rule already exists")

    r = await nova.req("DELETE", f"/os-security-group-rules/{rule['id']}", demo)
    assert r.status_code == 202, r.text
    r = await nova.req("DELETE", f"/os-security-group-rules/{rule['id']}", demo)
    assert fault(r, "itemNotFound", 404) == f"Security group with rule {rule['id']} not found."

    r = await nova.req("DELETE", f"/os-security-groups/{sg['id']}", demo)
    assert r.status_code == 202, r.text
    r = await nova.req("GET", f"/os-security-groups/{sg['id']}", demo)
    assert fault(r, "itemNotFound", 404) == f"Security group {sg['id']} not found."
    r = await nova.req("DELETE", f"/os-security-groups/{sg['id']}", demo)
    assert fault(r, "itemNotFound", 404) == f"Security group {sg['id']} not found."
    missing = str(uuid.uuid4())
    r = await nova.req("PUT", f"/os-security-groups/{missing}", demo, json={
        "security_group": {"name": "x", "description": "y"}})
    fault(r, "itemNotFound", 404)


async def test_security_group_errors(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    before = (await nova.req("GET", "/os-security-groups", demo)).json()["security_groups"]
    for body, message in [
        ({"security_group": {"name": "", "description": "d"}},
         "name has 0 characters, less than 1."),
        ({"security_group": {"name": "   ", "description": "d"}},
         "name has 0 characters, less than 1."),
        ({"security_group": {"name": "x" * 256, "description": "d"}},
         "name has 256 characters, more than 255."),
        ({"security_group": {"name": "n", "description": 5}},
         "Security group description is not a string or unicode"),
        ({"security_group": {"name": "n"}},
         "Security group description is not a string or unicode"),
        ({"other": {}}, "Missing parameter security_group"),
    ]:
        r = await nova.req("POST", "/os-security-groups", demo, json=body)
        assert fault(r, "badRequest", 400) == message
    after = (await nova.req("GET", "/os-security-groups", demo)).json()["security_groups"]
    assert after == before

    r = await nova.req("GET", "/os-security-groups/not-a-uuid", demo)
    assert fault(r, "badRequest", 400) == "Security group id should be uuid"
    default = next(g for g in after if g["name"] == "default")
    r = await nova.req("DELETE", f"/os-security-groups/{default['id']}", demo)
    assert "default security group" in fault(r, "badRequest", 400)

    sg = await _group(nova, demo)
    r = await nova.req("PUT", f"/os-security-groups/{sg['id']}", demo, json={
        "security_group": {"name": "", "description": "d"}})
    fault(r, "badRequest", 400)
    for rule, message in [
        ({"ip_protocol": "tcp", "from_port": 22, "to_port": 21},
         "Invalid port range 22:21. Former value cannot be greater than the later"),
        ({"ip_protocol": "tcp", "from_port": 0, "to_port": 70000},
         "Invalid port range 0:70000. Valid TCP ports should be between 1-65535"),
        ({"ip_protocol": "icmp", "from_port": 256, "to_port": 0},
         "Invalid port range 256:0. For ICMP, the type:code must be valid"),
        ({"ip_protocol": "gre", "from_port": 1, "to_port": 2}, "Invalid IP protocol gre."),
        ({"ip_protocol": "tcp", "from_port": "a", "to_port": 2},
         "Invalid input received: To and From ports must be integers"),
        ({"ip_protocol": "tcp", "from_port": 1, "to_port": 2, "cidr": "10.0.0.300/8"},
         "10.0.0.300/8 is not a valid IP network."),
        ({"ip_protocol": "tcp", "from_port": 1, "to_port": 2, "cidr": "10.0.0.0/0"},
         "Bad prefix for network in cidr 10.0.0.0/0"),
        ({"ip_protocol": "tcp"}, "Not enough parameters to build a valid rule."),
    ]:
        r = await _rule(nova, demo, parent_group_id=sg["id"], **rule)
        assert fault(r, "badRequest", 400) == message, rule
    r = await _rule(nova, demo, parent_group_id="nope", ip_protocol="tcp", from_port=1,
                    to_port=2)
    assert fault(r, "badRequest", 400) == "Security group id should be uuid"
    missing = str(uuid.uuid4())
    r = await _rule(nova, demo, parent_group_id=missing, ip_protocol="tcp", from_port=1,
                    to_port=2)
    assert fault(r, "itemNotFound", 404) == f"Security group {missing} not found."
    r = await _rule(nova, demo, parent_group_id=sg["id"], group_id=missing, ip_protocol="tcp")
    fault(r, "itemNotFound", 404)
    r = await nova.req("GET", f"/os-security-groups/{sg['id']}", demo)
    assert r.json()["security_group"]["rules"] == []  # nothing half-written
    r = await nova.req("DELETE", f"/os-security-group-rules/{missing}", demo)
    fault(r, "itemNotFound", 404)


async def test_removed_from_2_36(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    for path in ("/os-security-groups", "/os-floating-ips", "/os-floating-ip-pools",
                 "/os-networks", "/os-tenant-networks"):
        r = await nova.req("GET", path, demo, version="2.36")
        assert "is not supported on this method" in fault(r, "itemNotFound", 404)
        r = await nova.req("GET", path, demo, version="2.35")
        assert r.status_code == 200, (path, r.text)


async def test_list_all_tenants(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    sg = await _group(nova, demo)
    _pid, _uid, other = await nova.project_user()
    theirs = await _group(nova, other)
    r = await nova.req("GET", "/os-security-groups?all_tenants=1")
    ids = {g["id"] for g in r.json()["security_groups"]}
    assert {sg["id"], theirs["id"]} <= ids
    r = await nova.req("GET", "/os-security-groups?all_tenants=1", demo)
    ids = {g["id"] for g in r.json()["security_groups"]}
    assert sg["id"] in ids and theirs["id"] not in ids
    r = await nova.req("GET", f"/os-security-groups/{theirs['id']}", demo)
    fault(r, "itemNotFound", 404)
    r = await nova.req("GET", "/os-security-groups?limit=1", demo)
    assert len(r.json()["security_groups"]) == 1


async def _server(nova: Compute) -> tuple[dict[str, Any], dict[str, Any]]:
    """An ACTIVE server of the demo project on a network behind a router to the
    external network: (server, network)."""
    demo = nova.cloud.demo_token
    img = await nova.image()
    net = await nova.network(demo, "10.7.0.0/24")
    body = await nova.boot(demo, imageRef=img["id"], networks=[{"uuid": net["id"]}])
    srv = await nova.wait(body["server"]["id"], "ACTIVE", token=demo)
    return srv, net


async def test_server_security_groups(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    srv, _net = await _server(nova)
    path = f"/servers/{srv['id']}"
    r = await nova.req("GET", path + "/os-security-groups", demo)
    assert r.status_code == 200, r.text
    assert [g["name"] for g in r.json()["security_groups"]] == ["default"]

    sg = await _group(nova, demo, "extra")
    r = await nova.req("POST", path + "/action", demo, json={
        "addSecurityGroup": {"name": "extra"}})
    assert r.status_code == 202, r.text
    [port] = await nova.ports(device_id=srv["id"])
    assert sg["id"] in port["security_groups"] and len(port["security_groups"]) == 2
    r = await nova.req("GET", path + "/os-security-groups", demo)
    assert [g["name"] for g in r.json()["security_groups"]] == ["default", "extra"]
    r = await nova.req("GET", path, demo)
    assert r.json()["server"]["security_groups"] == [{"name": "default"}, {"name": "extra"}]

    r = await nova.req("POST", path + "/action", demo, json={
        "addSecurityGroup": {"name": "nope"}})
    assert fault(r, "itemNotFound", 404).startswith("Security group nope is not found")
    for arg, message in [({"name": ""}, "Security group name cannot be empty"),
                         ({}, "Security group not specified"),
                         ("x", "Missing parameter dict")]:
        r = await nova.req("POST", path + "/action", demo, json={"addSecurityGroup": arg})
        assert fault(r, "badRequest", 400) == message

    r = await nova.req("POST", path + "/action", demo, json={
        "removeSecurityGroup": {"name": sg["id"]}})
    assert r.status_code == 202, r.text
    [port] = await nova.ports(device_id=srv["id"])
    assert sg["id"] not in port["security_groups"]
    r = await nova.req("POST", path + "/action", demo, json={
        "removeSecurityGroup": {"name": "extra"}})
    assert fault(r, "itemNotFound", 404) == (
        f"Security group extra not associated with the instance {srv['id']}")
    r = await nova.req("GET", path, demo)
    assert r.json()["server"]["security_groups"] == [{"name": "default"}]
    # another project cannot see the server
    _p, _u, other = await nova.project_user()
    r = await nova.req("POST", path + "/action", other, json={
        "addSecurityGroup": {"name": "default"}})
    fault(r, "itemNotFound", 404)


async def test_floating_ips(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    srv, net = await _server(nova)
    [ext] = (await nova.neutron("GET", "/networks?router:external=true"))["networks"]
    subnet = net["subnets"][0] if net["subnets"] else (await nova.neutron(
        "GET", f"/subnets?network_id={net['id']}", demo))["subnets"][0]["id"]
    router = (await nova.neutron("POST", "/routers", demo, json={"router": {
        "name": "r", "external_gateway_info": {"network_id": ext["id"]}}}))["router"]
    await nova.neutron("PUT", f"/routers/{router['id']}/add_router_interface", demo,
                       json={"subnet_id": subnet})

    r = await nova.req("GET", "/os-floating-ip-pools", demo)
    assert {"name": ext["name"]} in r.json()["floating_ip_pools"]
    r = await nova.req("POST", "/os-floating-ips", demo)
    assert r.status_code == 200, r.text
    fip = r.json()["floating_ip"]
    assert fip["pool"] == ext["name"] and fip["instance_id"] is None
    assert fip["fixed_ip"] is None and set(fip) == {"id", "ip", "pool", "fixed_ip",
                                                   "instance_id"}
    r = await nova.req("POST", "/os-floating-ips", demo, json={"pool": ext["name"]})
    assert r.status_code == 200, r.text
    second = r.json()["floating_ip"]
    r = await nova.req("POST", "/os-floating-ips", demo, json={"pool": "nowhere"})
    assert fault(r, "itemNotFound", 404) == "Floating IP pool not found."

    r = await nova.req("GET", "/os-floating-ips", demo)
    assert {f["id"] for f in r.json()["floating_ips"]} == {fip["id"], second["id"]}

    path = f"/servers/{srv['id']}/action"
    fixed = next(iter(srv["addresses"].values()))[0]["addr"]
    r = await nova.req("POST", path, demo, json={"addFloatingIp": {"address": fip["ip"]}})
    assert r.status_code == 202, r.text
    r = await nova.req("GET", f"/os-floating-ips/{fip['id']}", demo)
    shown = r.json()["floating_ip"]
    assert shown["instance_id"] == srv["id"] and shown["fixed_ip"] == fixed

    r = await nova.req("POST", path, demo, json={"addFloatingIp": {
        "address": second["ip"], "fixed_address": "10.7.0.250"}})
    assert fault(r, "badRequest", 400) == "Specified fixed address not assigned to instance"
    r = await nova.req("POST", path, demo, json={"addFloatingIp": {"address": "192.0.2.1"}})
    assert fault(r, "itemNotFound", 404) == "floating IP not found"
    r = await nova.req("POST", path, demo, json={"addFloatingIp": {"address": "bad"}})
    fault(r, "badRequest", 400)
    r = await nova.req("POST", path, demo, json={"addFloatingIp": {}})
    fault(r, "badRequest", 400)
    r = await nova.req("POST", path, demo, version="2.44",
                       json={"addFloatingIp": {"address": fip["ip"]}})
    fault(r, "itemNotFound", 404)

    r = await nova.req("POST", path, demo, json={"removeFloatingIp": {"address": second["ip"]}})
    assert fault(r, "conflictingRequest", 409) == (
        f"Floating IP {second['ip']} is not associated with instance {srv['id']}.")
    r = await nova.req("POST", path, demo, json={"removeFloatingIp": {"address": fip["ip"]}})
    assert r.status_code == 202, r.text
    r = await nova.req("GET", f"/os-floating-ips/{fip['id']}", demo)
    assert r.json()["floating_ip"]["instance_id"] is None

    r = await nova.req("DELETE", f"/os-floating-ips/{fip['id']}", demo)
    assert r.status_code == 202, r.text
    r = await nova.req("GET", f"/os-floating-ips/{fip['id']}", demo)
    assert fault(r, "itemNotFound", 404) == f"Floating IP not found for ID {fip['id']}"
    r = await nova.req("DELETE", f"/os-floating-ips/{fip['id']}", demo)
    fault(r, "itemNotFound", 404)
    r = await nova.req("GET", "/os-floating-ips/abc", demo)
    fault(r, "badRequest", 400)


async def test_networks(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    net = await nova.network(demo)
    r = await nova.req("GET", "/os-networks", demo)
    assert r.status_code == 200, r.text
    mine = next(n for n in r.json()["networks"] if n["id"] == net["id"])
    assert mine["label"] == net["name"] and mine["cidr"] is None and "vlan" not in mine
    r = await nova.req("GET", f"/os-networks/{net['id']}")
    shown = r.json()["network"]
    assert shown["label"] == net["name"] and "vlan" in shown  # admins see every field
    r = await nova.req("GET", f"/os-networks/{uuid.uuid4()}", demo)
    assert fault(r, "itemNotFound", 404) == "Network not found"
    r = await nova.req("POST", "/os-networks", json={"network": {"label": "x"}})
    fault(r, "computeFault", 410)

    r = await nova.req("GET", "/os-tenant-networks", demo)
    assert {"id": net["id"], "cidr": "None", "label": net["name"]} in r.json()["networks"]
    r = await nova.req("GET", f"/os-tenant-networks/{net['id']}", demo)
    assert r.json()["network"] == {"id": net["id"], "cidr": "None", "label": net["name"]}
    r = await nova.req("GET", f"/os-tenant-networks/{uuid.uuid4()}", demo)
    assert fault(r, "itemNotFound", 404) == "Network not found"


async def test_rule_cidr_kept_and_empty_group_id(nova: Compute) -> None:
    """Tempest's cases: a CIDR with host bits comes back as given; a DELETE without
    a group id is a 404."""
    demo = nova.cloud.demo_token
    sg = await _group(nova, demo)
    r = await _rule(nova, demo, parent_group_id=sg["id"], ip_protocol="tcp", from_port=80,
                    to_port=81, cidr="10.2.3.124/24")
    assert r.status_code == 200, r.text
    assert r.json()["security_group_rule"]["ip_range"] == {"cidr": "10.2.3.124/24"}
    r = await _rule(nova, demo, parent_group_id=sg["id"], ip_protocol="udp", from_port=53,
                    to_port=53)
    assert r.json()["security_group_rule"]["ip_range"] == {"cidr": "0.0.0.0/0"}
    r = await nova.req("DELETE", "/os-security-groups/", demo)
    fault(r, "itemNotFound", 404)
