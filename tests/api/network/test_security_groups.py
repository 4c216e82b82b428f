"""Security groups and rules: the default group, CRUD, Neutron's rule validation
and duplicate check, isolation between projects, quotas."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from onestack.core.errors import CloudError
from onestack.network.models import Port, PortSecurityGroup, new_id
from onestack.network.service import security_groups as sg_svc
from tests.api.network.conftest import Net, neutron_error

RULES = "/security-group-rules"


def _state(net: Net) -> Any:
    return net.cloud.app.state.runtime.extras["network"]


async def _groups(net: Net, token: str | None = None, query: str = "") -> list[dict[str, Any]]:
    r = await net.req("GET", "/security-groups" + query, token)
    assert r.status_code == 200, r.text
    return r.json()["security_groups"]  # type: ignore[no-any-return]


async def _rule(net: Net, sg_id: str, token: str | None = None,
                **body: Any) -> httpx.Response:
    return await net.req("POST", RULES, token,
                         json={"security_group_rule": {"security_group_id": sg_id, **body}})


def _shape(rules: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(r["direction"], r["ethertype"], r["protocol"], r["remote_ip_prefix"],
             r["remote_group_id"]) for r in rules}


async def test_default_group_made_on_first_list(net: Net) -> None:
    token = net.cloud.demo_token
    groups = await _groups(net, token)
    assert [g["name"] for g in groups] == ["default"]
    d = groups[0]
    assert d["description"] == "Default security group" and d["stateful"] is True
    assert d["shared"] is False and d["tags"] == [] and d["project_id"] == d["tenant_id"]
    assert _shape(d["security_group_rules"]) == {
        ("egress", "IPv4", None, None, None), ("egress", "IPv6", None, None, None),
        ("ingress", "IPv4", None, None, d["id"]), ("ingress", "IPv6", None, None, d["id"]),
    }
    assert all(r["belongs_to_default_sg"] for r in d["security_group_rules"])
    # listed again: the same group, not a second one
    assert [g["id"] for g in await _groups(net, token)] == [d["id"]]
    # listing rules also works from the default group
    r = await net.req("GET", RULES, token)
    assert {x["security_group_id"] for x in r.json()["security_group_rules"]} == {d["id"]}


async def test_admin_listing_makes_no_groups_for_other_projects(net: Net) -> None:
    project, token = await net.project_user()
    everything = await _groups(net)
    assert project not in {g["project_id"] for g in everything}
    # an explicit project filter from an admin makes that project's default group
    mine = await _groups(net, query=f"?project_id={project}")
    assert [g["name"] for g in mine] == ["default"]
    assert [g["id"] for g in await _groups(net, token)] == [mine[0]["id"]]


async def test_ensure_default_contract_and_concurrency(net: Net) -> None:
    st = _state(net)
    project = new_id().replace("-", "")

    async def ensure() -> str:
        async with st.db.write() as s:
            return await sg_svc.ensure_default(st, s, project)

    first, second = await asyncio.gather(ensure(), ensure())
    assert first == second
    assert await ensure() == first
    groups = await _groups(net, query=f"?project_id={project}")
    assert [g["id"] for g in groups] == [first]
    assert len(groups[0]["security_group_rules"]) == 4


async def test_group_crud(net: Net) -> None:
    token = net.cloud.demo_token
    sg = await net.create("security_group", token, name="web", description="d1")
    assert sg["name"] == "web" and sg["description"] == "d1" and sg["revision_number"] == 0
    assert _shape(sg["security_group_rules"]) == {
        ("egress", "IPv4", None, None, None), ("egress", "IPv6", None, None, None)}
    assert not any(r["belongs_to_default_sg"] for r in sg["security_group_rules"])
    names = {g["name"] for g in await _groups(net, token)}
    assert names == {"default", "web"}
    assert [g["id"] for g in await _groups(net, token, "?name=web&fields=id")] == [sg["id"]]
    r = await net.req("PUT", f"/security-groups/{sg['id']}", token,
                      json={"security_group": {"name": "web2", "description": "d2",
                                               "stateful": False}})
    assert r.status_code == 200, r.text
    up = r.json()["security_group"]
    assert (up["name"], up["description"], up["stateful"]) == ("web2", "d2", False)
    assert up["revision_number"] == 1
    assert (await net.show("security_group", sg["id"], token))["name"] == "web2"
    r = await net.req("PUT", f"/security-groups/{sg['id']}", token,
                      json={"security_group": {"shared": True}})
    assert r.status_code == 400
    r = await net.req("DELETE", f"/security-groups/{sg['id']}", token)
    assert r.status_code == 204
    r = await net.req("GET", f"/security-groups/{sg['id']}", token)
    assert r.status_code == 404 and neutron_error(r)[0] == "SecurityGroupNotFound"
    r = await net.req("DELETE", f"/security-groups/{sg['id']}", token)
    assert r.status_code == 404


async def test_bulk_create_groups_all_or_nothing(net: Net) -> None:
    r = await net.req("POST", "/security-groups", json={"security_groups": [
        {"name": "b1"}, {"name": "b2"}]})
    assert r.status_code == 201, r.text
    assert [g["name"] for g in r.json()["security_groups"]] == ["b1", "b2"]
    r = await net.req("POST", "/security-groups", json={"security_groups": [
        {"name": "b3"}, {"name": "b4", "bogus": 1}]})
    assert r.status_code == 400
    r = await net.req("POST", "/security-groups", json={"security_groups": [
        {"name": "b5"}, {"name": "default"}]})
    assert r.status_code == 409
    names = {g["name"] for g in await _groups(net)}
    assert {"b1", "b2"} <= names and not {"b3", "b4", "b5"} & names


async def test_default_group_is_protected(net: Net) -> None:
    token = net.cloud.demo_token
    default = (await _groups(net, token))[0]
    for name in ("default", "Default"):
        r = await net.req("POST", "/security-groups", token,
                          json={"security_group": {"name": name}})
        assert r.status_code == 409
        assert neutron_error(r)[0] == "SecurityGroupDefaultAlreadyExists"
    sg = await net.create("security_group", token, name="x")
    r = await net.req("PUT", f"/security-groups/{sg['id']}", token,
                      json={"security_group": {"name": "default"}})
    assert r.status_code == 409 and neutron_error(r)[0] == "SecurityGroupDefaultAlreadyExists"
    r = await net.req("PUT", f"/security-groups/{default['id']}", token,
                      json={"security_group": {"name": "mine"}})
    assert r.status_code == 409 and neutron_error(r)[0] == "SecurityGroupCannotUpdateDefault"
    r = await net.req("PUT", f"/security-groups/{default['id']}", token,
                      json={"security_group": {"description": "still default"}})
    assert r.status_code == 200 and r.json()["security_group"]["name"] == "default"
    r = await net.req("DELETE", f"/security-groups/{default['id']}", token)
    assert r.status_code == 409 and neutron_error(r)[0] == "SecurityGroupCannotRemoveDefault"
    # an admin may remove it; the project gets a new one when it next needs one
    r = await net.req("DELETE", f"/security-groups/{default['id']}")
    assert r.status_code == 204
    again = [g for g in await _groups(net, token) if g["name"] == "default"]
    assert len(again) == 1 and again[0]["id"] != default["id"]


async def test_group_in_use_by_a_port(net: Net) -> None:
    st = _state(net)
    sg = await net.create("security_group", name="bound")
    n = await net.network()
    async with st.db.write() as s:
        port = Port(project_id=sg["project_id"], network_id=n["id"],
                    mac_address="fa:16:3e:00:00:01")
        s.add(port)
        await s.flush()
        s.add(PortSecurityGroup(port_id=port.id, security_group_id=sg["id"]))
    r = await net.req("DELETE", f"/security-groups/{sg['id']}")
    assert r.status_code == 409 and neutron_error(r) == (
        "SecurityGroupInUse", f"Security Group {sg['id']} in use.")
    r = await net.req("PUT", f"/security-groups/{sg['id']}",
                      json={"security_group": {"stateful": False}})
    assert r.status_code == 409 and neutron_error(r)[0] == "SecurityGroupInUse"
    r = await net.req("PUT", f"/security-groups/{sg['id']}",
                      json={"security_group": {"name": "renamed"}})
    assert r.status_code == 200


async def test_rules_as_created(net: Net) -> None:
    sg = (await net.create("security_group", name="rules"))["id"]
    other = (await net.create("security_group", name="remote"))["id"]
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"direction": "ingress", "protocol": "tcp", "port_range_min": 77,
          "port_range_max": 77}, {"protocol": "tcp", "ethertype": "IPv4"}),
        ({"direction": "ingress", "protocol": "udp", "port_range_min": 50,
          "port_range_max": 55, "remote_group_id": other}, {"remote_group_id": other}),
        ({"direction": "ingress", "protocol": "tcp", "port_range_min": 76, "port_range_max": 77,
          "remote_ip_prefix": "10.1.0.0/24"},
         {"remote_ip_prefix": "10.1.0.0/24", "normalized_cidr": "10.1.0.0/24"}),
        ({"direction": "ingress", "protocol": 17}, {"protocol": "17"}),
        ({"direction": "egress", "protocol": "TCP", "remote_ip_prefix": "192.168.1.10"},
         {"protocol": "tcp", "remote_ip_prefix": "192.168.1.10/32"}),
        ({"direction": "ingress", "protocol": "tcp", "remote_ip_prefix": "10.2.0.5/16"},
         {"remote_ip_prefix": "10.2.0.5/16", "normalized_cidr": "10.2.0.0/16"}),
        ({"direction": "ingress", "ethertype": "ipv6", "protocol": "icmp"},
         {"ethertype": "IPv6", "protocol": "ipv6-icmp"}),
        ({"direction": "ingress", "protocol": "any", "port_range_min": None},
         {"protocol": None}),
        ({"direction": "ingress", "protocol": "sctp", "port_range_min": 1,
          "port_range_max": 65535}, {"port_range_min": None, "port_range_max": None}),
        ({"direction": "egress", "protocol": "gre", "description": "tunnels"},
         {"description": "tunnels"}),
    ]
    for icmp_type, icmp_code in [(3, 2), (3, 0), (8, 0), (0, 0), (11, None)]:
        cases.append(({"direction": "ingress", "protocol": "icmp", "port_range_min": icmp_type,
                       "port_range_max": icmp_code},
                      {"port_range_min": icmp_type, "port_range_max": icmp_code}))
    for body, expected in cases:
        r = await _rule(net, sg, **body)
        assert r.status_code == 201, (body, r.text)
        rule = r.json()["security_group_rule"]
        for key, value in expected.items():
            assert rule[key] == value, (body, key, rule)
        assert rule["security_group_id"] == sg and rule["project_id"] == rule["tenant_id"]
        assert rule["belongs_to_default_sg"] is False
        assert await net.show("security_group_rule", rule["id"]) == rule
    group = await net.show("security_group", sg)
    assert len(group["security_group_rules"]) == 2 + len(cases)
    # every added rule bumps the group's revision
    assert group["revision_number"] == len(cases)
    r = await net.req("GET", f"{RULES}?security_group_id={sg}&protocol=icmp&port_range_min=3")
    assert len(r.json()["security_group_rules"]) == 2


async def test_rule_validation(net: Net) -> None:
    sg = (await net.create("security_group", name="strict"))["id"]
    before = len((await net.show("security_group", sg))["security_group_rules"])
    ingress = {"direction": "ingress"}
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({**ingress, "protocol": "bad_protocol_name"}, 400,
         "SecurityGroupRuleInvalidProtocol", "not supported"),
        ({**ingress, "protocol": 256}, 400, "SecurityGroupRuleInvalidProtocol", "256"),
        ({**ingress, "protocol": "udp", "ethertype": "bad_ethertype"}, 400,
         "SecurityGroupRuleInvalidEtherType", "bad_ethertype"),
        ({"direction": "sideways"}, 400, "HTTPBadRequest", "sideways"),
        ({"protocol": "tcp"}, 400, "HTTPBadRequest", "direction"),
        ({**ingress, "bogus": 1}, 400, "HTTPBadRequest", "Unrecognized attribute"),
        ({**ingress, "protocol": "tcp", "remote_ip_prefix": "10.0.0.0/24",
          "remote_group_id": sg}, 400, "SecurityGroupMultipleRemoteEntites", "Only one of"),
        ({**ingress, "protocol": "tcp", "ethertype": "IPv6",
          "remote_ip_prefix": "10.0.0.0/24"}, 400, "SecurityGroupRuleParameterConflict",
         "Conflicting value ethertype"),
        ({**ingress, "protocol": "tcp", "ethertype": "IPv4",
          "remote_ip_prefix": "2001:db8::/64"}, 400, "SecurityGroupRuleParameterConflict",
         "Conflicting value ethertype"),
        ({**ingress, "protocol": "ipv6-icmp", "ethertype": "IPv4"}, 400,
         "SecurityGroupEthertypeConflictWithProtocol", "Invalid ethertype IPv4"),
        ({**ingress, "port_range_min": 22, "port_range_max": 22}, 400,
         "SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol"),
        ({**ingress, "protocol": "gre", "port_range_min": 22, "port_range_max": 22}, 400,
         "SecurityGroupInvalidProtocolForPort", "Ports cannot be specified for protocol 47"),
        ({**ingress, "protocol": "tcp", "port_range_min": 0, "port_range_max": 10}, 400,
         "SecurityGroupInvalidPortValue", "Invalid value for port 0"),
        ({**ingress, "protocol": "tcp", "port_range_min": "x", "port_range_max": 10}, 400,
         "SecurityGroupInvalidPortValue", "Invalid value for port x"),
    ]
    for prefix in ("192.168.1./24", "192.168.1.1/33", "bad_prefix", "256"):
        cases.append(({**ingress, "protocol": "tcp", "remote_ip_prefix": prefix}, 400,
                      "InvalidCIDR", f"Invalid CIDR {prefix} given as IP prefix."))
    for group in ("bad_group_id", new_id()):
        cases.append(({**ingress, "protocol": "tcp", "remote_group_id": group}, 404,
                      "SecurityGroupNotFound", group))
    # Tempest's port cases, message for message
    for pmin, pmax, kind, msg in [
        (-16, 80, "SecurityGroupInvalidPortValue", "Invalid value for port -16"),
        (80, 79, "SecurityGroupInvalidPortRange", "port_range_min must be <= port_range_max"),
        (80, 65536, "SecurityGroupInvalidPortValue", "Invalid value for port 65536"),
        (None, 6, "SecurityGroupInvalidPortRange", "port_range_min must be <= port_range_max"),
        (-16, 65536, "SecurityGroupInvalidPortValue", "Invalid value for port"),
    ]:
        cases.append(({**ingress, "protocol": "tcp", "port_range_min": pmin,
                       "port_range_max": pmax}, 400, kind, msg))
    for pmin, pmax, kind, msg in [
        (1, 256, "SecurityGroupInvalidIcmpValue", "Invalid value for ICMP code"),
        (-1, 25, "SecurityGroupInvalidPortValue", "Invalid value"),
        (None, 6, "SecurityGroupMissingIcmpType", "ICMP type (port-range-min) is missing"),
        (300, 1, "SecurityGroupInvalidIcmpValue", "Invalid value for ICMP type"),
    ]:
        cases.append(({**ingress, "protocol": "icmp", "port_range_min": pmin,
                       "port_range_max": pmax}, 400, kind, msg))
    for body, status, kind, msg in cases:
        r = await _rule(net, sg, **body)
        assert r.status_code == status, (body, r.text)
        got_kind, got_msg = neutron_error(r)
        assert got_kind == kind and msg in got_msg, (body, got_kind, got_msg)
    r = await _rule(net, new_id(), direction="ingress")
    assert r.status_code == 404 and neutron_error(r)[0] == "SecurityGroupNotFound"
    r = await net.req("PUT", f"{RULES}/{new_id()}", json={"security_group_rule": {}})
    assert r.status_code == 405
    after = (await net.show("security_group", sg))["security_group_rules"]
    assert len(after) == before


async def test_duplicates(net: Net) -> None:
    sg = (await net.create("security_group", name="dups"))["id"]
    first = await _rule(net, sg, direction="ingress", protocol="tcp", port_range_min=66,
                        port_range_max=67)
    rule_id = first.json()["security_group_rule"]["id"]
    for protocol in ("tcp", "6", "TCP"):
        r = await _rule(net, sg, direction="ingress", protocol=protocol, port_range_min=66,
                        port_range_max=67)
        assert r.status_code == 409
        assert neutron_error(r) == ("SecurityGroupRuleExists",
                                    f"Security group rule already exists. Rule id is {rule_id}.")
    # an "everything" prefix is no prefix; the egress defaults exist already
    r = await _rule(net, sg, direction="egress", remote_ip_prefix="0.0.0.0/0")
    assert r.status_code == 409 and neutron_error(r)[0] == "SecurityGroupRuleExists"
    # the same rule in another group is another rule
    other = (await net.create("security_group", name="dups2"))["id"]
    r = await _rule(net, other, direction="ingress", protocol="tcp", port_range_min=66,
                    port_range_max=67)
    assert r.status_code == 201


async def test_bulk_rules_all_or_nothing(net: Net) -> None:
    sg = (await net.create("security_group", name="bulk"))["id"]
    other = (await net.create("security_group", name="bulk2"))["id"]

    def rules(*bodies: dict[str, Any]) -> dict[str, Any]:
        return {"security_group_rules": [{"security_group_id": sg, **b} for b in bodies]}

    r = await net.req("POST", RULES, json=rules(
        {"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
        {"direction": "ingress", "protocol": "udp", "port_range_min": 53, "port_range_max": 53}))
    assert r.status_code == 201, r.text
    assert [x["protocol"] for x in r.json()["security_group_rules"]] == ["tcp", "udp"]
    bad = [
        (rules({"direction": "ingress", "protocol": "icmp"},
               {"direction": "ingress", "protocol": "tcp", "port_range_min": 9,
                "port_range_max": 1}), 400, "SecurityGroupInvalidPortRange"),
        (rules({"direction": "ingress", "protocol": "icmp"},
               {"direction": "ingress", "protocol": "1"}), 409,
         "DuplicateSecurityGroupRuleInPost"),
        (rules({"direction": "ingress", "protocol": "icmp"},
               {"direction": "ingress", "protocol": "tcp", "port_range_min": 22,
                "port_range_max": 22}), 409, "SecurityGroupRuleExists"),
        ({"security_group_rules": [
            {"security_group_id": sg, "direction": "ingress", "protocol": "icmp"},
            {"security_group_id": other, "direction": "ingress", "protocol": "gre"}]}, 400,
         "SecurityGroupNotSingleGroupRules"),
    ]
    for body, status, kind in bad:
        r = await net.req("POST", RULES, json=body)
        assert r.status_code == status and neutron_error(r)[0] == kind, r.text
    protocols = {x["protocol"] for x in (await net.show("security_group", sg))
                 ["security_group_rules"]}
    assert protocols == {None, "tcp", "udp"}
    assert len((await net.show("security_group", other))["security_group_rules"]) == 2


async def test_rule_delete_and_cascades(net: Net) -> None:
    a = (await net.create("security_group", name="a"))["id"]
    b = (await net.create("security_group", name="b"))["id"]
    r = await _rule(net, a, direction="ingress", protocol="tcp")
    rule = r.json()["security_group_rule"]
    r = await net.req("DELETE", f"{RULES}/{rule['id']}")
    assert r.status_code == 204
    r = await net.req("GET", f"{RULES}/{rule['id']}")
    assert r.status_code == 404 and neutron_error(r) == (
        "SecurityGroupRuleNotFound", f"Security group rule {rule['id']} does not exist")
    r = await net.req("DELETE", f"{RULES}/{rule['id']}")
    assert r.status_code == 404
    # a rule naming b as its remote goes with b; a's own rules go with a
    r = await _rule(net, a, direction="ingress", protocol="udp", remote_group_id=b)
    via_b = r.json()["security_group_rule"]["id"]
    r = await _rule(net, b, direction="ingress", protocol="udp")
    own_b = r.json()["security_group_rule"]["id"]
    assert (await net.req("DELETE", f"/security-groups/{b}")).status_code == 204
    for rid in (via_b, own_b):
        assert (await net.req("GET", f"{RULES}/{rid}")).status_code == 404
    assert len((await net.show("security_group", a))["security_group_rules"]) == 2


async def test_projects_are_isolated(net: Net) -> None:
    pa, ta = await net.project_user()
    pb, tb = await net.project_user()
    sg = await net.create("security_group", ta, name="private")
    r = await _rule(net, sg["id"], ta, direction="ingress", protocol="tcp")
    rule_id = r.json()["security_group_rule"]["id"]
    for method, path in (("GET", f"/security-groups/{sg['id']}"),
                         ("PUT", f"/security-groups/{sg['id']}"),
                         ("DELETE", f"/security-groups/{sg['id']}"),
                         ("GET", f"{RULES}/{rule_id}"), ("DELETE", f"{RULES}/{rule_id}")):
        kw = {"json": {"security_group": {"name": "x"}}} if method == "PUT" else {}
        r = await net.req(method, path, tb, **kw)
        assert r.status_code == 404, (method, path, r.text)
    assert sg["id"] not in {g["id"] for g in await _groups(net, tb)}
    r = await net.req("GET", RULES, tb)
    assert {x["project_id"] for x in r.json()["security_group_rules"]} == {pb}
    # B may neither add rules to A's group nor point at it
    r = await _rule(net, sg["id"], tb, direction="ingress", protocol="udp")
    assert r.status_code == 404 and neutron_error(r)[0] == "SecurityGroupNotFound"
    mine = await net.create("security_group", tb, name="mine")
    r = await _rule(net, mine["id"], tb, direction="ingress", remote_group_id=sg["id"])
    assert r.status_code == 404
    # nor act as another project
    r = await _rule(net, mine["id"], tb, direction="ingress", project_id=pa)
    assert r.status_code == 403 and neutron_error(r)[0] == "PolicyNotAuthorized"
    # an admin may add a rule to any group
    r = await _rule(net, sg["id"], direction="egress", protocol="tcp")
    assert r.status_code == 201
    r = await net.req("GET", RULES, ta)
    assert len(r.json()["security_group_rules"]) == 4 + 2 + 2


async def test_quotas(net: Net) -> None:
    project, token = await net.project_user()
    groups = await _groups(net, query=f"?project_id={project}")
    r = await net.req("PUT", f"/quotas/{project}",
                      json={"quota": {"security_group": len(groups) + 1}})
    assert r.status_code == 200, r.text
    sg = await net.create("security_group", token, name="one")
    r = await net.req("POST", "/security-groups", token, json={"security_group": {"name": "two"}})
    assert r.status_code == 409 and neutron_error(r) == (
        "OverQuota", "Quota exceeded for resources: ['security_group'].")
    r = await net.req("GET", f"{RULES}?project_id={project}", token)
    used = len(r.json()["security_group_rules"])
    r = await net.req("PUT", f"/quotas/{project}", json={"quota": {"security_group_rule": used + 1}})
    assert r.status_code == 200
    r = await _rule(net, sg["id"], token, direction="ingress")
    assert r.status_code == 201
    r = await _rule(net, sg["id"], token, direction="ingress", protocol="tcp")
    assert r.status_code == 409 and neutron_error(r)[0] == "OverQuota"
    r = await net.req("POST", RULES, token, json={"security_group_rules": [
        {"security_group_id": sg["id"], "direction": "egress", "protocol": p}
        for p in ("tcp", "udp")]})
    assert r.status_code == 409


async def test_groups_for_port_helper(net: Net) -> None:
    st = _state(net)
    project, token = await net.project_user()
    mine = await net.create("security_group", token, name="mine")
    loose = await net.create("security_group", token, name="loose", stateful=False)
    theirs = await net.create("security_group", name="theirs")
    async with st.db.read() as s:
        assert await sg_svc.groups_for_port(s, [mine["id"], mine["id"]], project, False) == [
            mine["id"]]
        assert await sg_svc.groups_for_port(s, [theirs["id"]], project, True) == [theirs["id"]]
        for ids, kind in (([theirs["id"]], "SecurityGroupNotFound"),
                          ([new_id()], "SecurityGroupNotFound"),
                          ([mine["id"], loose["id"]], "SecurityGroupConflict")):
            with pytest.raises(CloudError) as info:
                await sg_svc.groups_for_port(s, ids, project, False)
            assert getattr(info.value, "neutron_type", None) == kind
