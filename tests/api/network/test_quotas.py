"""Quotas: defaults, per-project limits (set, listed, reset), details, checks
against usage, who may read and write them, and enforcement on create."""

from __future__ import annotations

from tests.api.network.conftest import Net, neutron_error

RESOURCES = {"network", "subnet", "port", "router", "floatingip", "security_group",
             "security_group_rule", "subnetpool"}


async def test_defaults_and_own_project(net: Net) -> None:
    project, token = await net.project_user()
    r = await net.req("GET", f"/quotas/{project}", token)
    assert r.status_code == 200, r.text
    quota = r.json()["quota"]
    assert set(quota) == RESOURCES
    assert quota["network"] == 100 and quota["port"] == 500 and quota["subnetpool"] == -1
    r = await net.req("GET", f"/quotas/{project}/default", token)
    assert r.json()["quota"] == quota
    r = await net.req("GET", "/quotas/project", token)
    assert r.json() == {"project": {"project_id": project}}
    r = await net.req("GET", "/quotas/tenant", token)
    assert r.json() == {"tenant": {"tenant_id": project}}
    # another project's quotas are the admin's business
    other, _ = await net.project_user()
    for path in (f"/quotas/{other}", f"/quotas/{other}/default"):
        r = await net.req("GET", path, token)
        assert r.status_code == 403 and neutron_error(r)[0] == "PolicyNotAuthorized"
    r = await net.req("GET", f"/quotas/{other}/details", token)
    assert r.status_code == 403 and neutron_error(r)[0] == "AdminRequired"
    r = await net.req("GET", f"/quotas/{other}")
    assert r.status_code == 200
    r = await net.req("POST", "/quotas", json={"quota": {}})
    assert r.status_code == 501


async def test_set_list_reset(net: Net) -> None:
    project, token = await net.project_user()
    r = await net.req("PUT", f"/quotas/{project}", token, json={"quota": {"network": 5}})
    assert r.status_code == 403 and neutron_error(r)[0] == "PolicyNotAuthorized"
    r = await net.req("PUT", f"/quotas/{project}", json={"quota": {
        "network": 0, "security_group": "0", "port": -1, "force": True}})
    assert r.status_code == 200, r.text
    quota = r.json()["quota"]
    assert (quota["network"], quota["security_group"], quota["port"]) == (0, 0, -1)
    assert quota["subnet"] == 100
    listed = [q for q in (await net.req("GET", "/quotas")).json()["quotas"]
              if q["project_id"] == project]
    assert len(listed) == 1 and listed[0]["tenant_id"] == project
    assert listed[0]["network"] == 0 and listed[0]["subnet"] == 100
    # the project reads its own; a member sees only its own project in the list
    assert (await net.req("GET", f"/quotas/{project}", token)).json()["quota"] == quota
    r = await net.req("GET", "/quotas", token)
    assert [q["project_id"] for q in r.json()["quotas"]] == [project]
    r = await net.req("GET", "/quotas", net.cloud.demo_token)
    assert r.json()["quotas"] == []
    r = await net.req("DELETE", f"/quotas/{project}", token)
    assert r.status_code == 403
    r = await net.req("DELETE", f"/quotas/{project}")
    assert r.status_code == 204
    assert project not in {q["project_id"] for q in (await net.req("GET", "/quotas")).json()
                           ["quotas"]}
    assert (await net.req("GET", f"/quotas/{project}")).json()["quota"]["network"] == 100
    r = await net.req("DELETE", f"/quotas/{project}")
    assert r.status_code == 404 and neutron_error(r) == (
        "TenantQuotaNotFound", f"Quota for project {project} could not be found.")


async def test_invalid_limits(net: Net) -> None:
    project, _ = await net.project_user()
    for body, message in (
        ({"network": -2}, "'-2' is too small - must be at least '-1'"),
        ({"network": 2**31}, "is too large"),
        ({"network": "abc"}, "'abc' is not an integer"),
        ({"network": True}, "is not an integer"),
        ({"network": None}, "is not an integer"),
        ({"bogus": 1}, "Unrecognized attribute(s) 'bogus'"),
    ):
        r = await net.req("PUT", f"/quotas/{project}", json={"quota": body})
        assert r.status_code == 400, (body, r.text)
        assert message in neutron_error(r)[1], (body, r.text)
    r = await net.req("PUT", f"/quotas/{project}", json={"network": 1})
    assert r.status_code == 400
    # nothing was written by the bad requests
    assert project not in {q["project_id"] for q in (await net.req("GET", "/quotas")).json()
                           ["quotas"]}


async def test_enforced_on_create(net: Net) -> None:
    project, token = await net.project_user()
    r = await net.req("PUT", f"/quotas/{project}", json={"quota": {"network": 1}})
    assert r.status_code == 200
    await net.network(token)
    r = await net.req("POST", "/networks", token, json={"network": {"name": "second"}})
    assert r.status_code == 409 and neutron_error(r) == (
        "OverQuota", "Quota exceeded for resources: ['network'].")
    # an admin creating for the project is held to the project's quota too
    r = await net.req("POST", "/networks", json={"network": {"project_id": project}})
    assert r.status_code == 409
    # a limit below usage needs force; -1 is unlimited
    r = await net.req("PUT", f"/quotas/{project}", json={"quota": {"network": 0}})
    assert r.status_code == 400 and "must be greater than or equal to already used 1" in \
        neutron_error(r)[1]
    r = await net.req("PUT", f"/quotas/{project}", json={"quota": {"network": 0,
                                                                   "check_limit": True}})
    assert r.status_code == 400
    r = await net.req("PUT", f"/quotas/{project}", json={"quota": {"network": -1}})
    assert r.status_code == 200
    await net.network(token)
    details = (await net.req("GET", f"/quotas/{project}/details", token)).json()["quota"]
    assert set(details) == RESOURCES
    assert details["network"] == {"limit": -1, "used": 2, "reserved": 0}
    assert details["subnet"] == {"limit": 100, "used": 0, "reserved": 0}
    r = await net.req("GET", f"/quotas/{project}/details")
    assert r.json()["quota"] == details
