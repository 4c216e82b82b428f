"""Unified limits: registered limits, project and domain limits, the model, who
sees what, and ``effective_limit`` (what services read their quotas with)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from onestack.identity.models import Project, Service
from onestack.identity.service.limits import effective_limit
from tests.conftest import Cloud


async def _ids(cloud: Cloud) -> dict[str, str]:
    st = cloud.app.state.runtime.extras["identity"]
    async with st.read() as s:
        projects = {p.name: p.id for p in await s.scalars(select(Project))}
        identity = await s.scalar(select(Service.id).where(Service.type == "identity"))
    return {"admin_project": projects["admin"], "demo_project": projects["demo"],
            "service": identity}


async def _registered(cloud: Cloud, *items: dict[str, Any]) -> list[dict[str, Any]]:
    r = await cloud.post("/registered_limits", {"registered_limits": list(items)})
    assert r.status_code == 201, r.text
    return r.json()["registered_limits"]  # type: ignore[no-any-return]


async def _limits(cloud: Cloud, *items: dict[str, Any]) -> list[dict[str, Any]]:
    r = await cloud.post("/limits", {"limits": list(items)})
    assert r.status_code == 201, r.text
    return r.json()["limits"]  # type: ignore[no-any-return]


async def test_registered_limit_crud_and_filters(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    snap, vol = await _registered(
        cloud,
        {"service_id": ids["service"], "resource_name": "snapshot", "default_limit": 10},
        {"service_id": ids["service"], "region_id": "RegionOne", "resource_name": "volume",
         "default_limit": 5, "description": "Number of volumes"},
    )
    assert snap["region_id"] is None and snap["description"] is None
    assert snap["default_limit"] == 10
    assert snap["links"]["self"].endswith(f"/v3/registered_limits/{snap['id']}")
    assert vol["region_id"] == "RegionOne" and vol["description"] == "Number of volumes"

    r = await cloud.get("/registered_limits?resource_name=volume")
    assert [x["id"] for x in r.json()["registered_limits"]] == [vol["id"]]
    r = await cloud.get("/registered_limits?region_id=RegionOne")
    assert [x["id"] for x in r.json()["registered_limits"]] == [vol["id"]]
    r = await cloud.get(f"/registered_limits?service_id={ids['service']}")
    assert len(r.json()["registered_limits"]) == 2
    # anyone authenticated reads them
    r = await cloud.get(f"/registered_limits/{snap['id']}", token=cloud.demo_token)
    assert r.status_code == 200 and r.json()["registered_limit"] == snap

    r = await cloud.patch(f"/registered_limits/{snap['id']}", {"registered_limit": {
        "default_limit": 20, "description": "snapshots"}})
    assert r.status_code == 200
    assert r.json()["registered_limit"]["default_limit"] == 20
    assert r.json()["registered_limit"]["description"] == "snapshots"
    r = await cloud.patch(f"/registered_limits/{snap['id']}", {"registered_limit": {
        "region_id": "RegionOne", "resource_name": "volume"}})
    assert r.status_code == 409

    assert (await cloud.delete(f"/registered_limits/{snap['id']}")).status_code == 204
    r = await cloud.get(f"/registered_limits/{snap['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Could not find registered limit for {snap['id']}."


async def test_registered_limit_errors(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    one = {"service_id": ids["service"], "resource_name": "x", "default_limit": 1}
    await _registered(cloud, one)
    r = await cloud.post("/registered_limits", {"registered_limits": [one]})
    assert r.status_code == 409
    assert r.json()["error"]["message"] == (
        "Conflict occurred attempting to store registered_limit - Duplicate entry.")
    # a duplicate within one request: nothing of it is created
    two = {**one, "resource_name": "y"}
    r = await cloud.post("/registered_limits", {"registered_limits": [two, two]})
    assert r.status_code == 409
    assert (await cloud.get("/registered_limits?resource_name=y")).json()["registered_limits"] == []

    r = await cloud.post("/registered_limits", {"registered_limits": [
        {**one, "service_id": "nope", "resource_name": "z"}]})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("Expecting to find service_id in registered_limit")
    r = await cloud.post("/registered_limits", {"registered_limits": [
        {**one, "region_id": "nowhere", "resource_name": "z"}]})
    assert r.status_code == 400
    for bad in ([], [{**one, "default_limit": -2}], [{**one, "default_limit": "5"}],
                [{**one, "colour": "red"}], [{"service_id": ids["service"], "default_limit": 1}]):
        r = await cloud.post("/registered_limits", {"registered_limits": bad})
        assert r.status_code == 400, bad
    assert (await cloud.get("/registered_limits/nope")).status_code == 404
    assert (await cloud.delete("/registered_limits/nope")).status_code == 404
    r = await cloud.post("/registered_limits", {"registered_limits": [two]}, token=cloud.demo_token)
    assert r.status_code == 403


async def test_limits_crud(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    await _registered(cloud, {"service_id": ids["service"], "resource_name": "volume",
                              "default_limit": 5})
    (lim,) = await _limits(cloud, {"project_id": ids["demo_project"], "service_id": ids["service"],
                                   "resource_name": "volume", "resource_limit": 11,
                                   "description": "demo volumes"})
    assert lim["project_id"] == ids["demo_project"] and lim["domain_id"] is None
    assert lim["resource_limit"] == 11 and lim["region_id"] is None
    assert lim["links"]["self"].endswith(f"/v3/limits/{lim['id']}")
    # a limit on a domain, named as a project (Keystone accepts both)
    (dom,) = await _limits(cloud, {"project_id": "default", "service_id": ids["service"],
                                   "resource_name": "volume", "resource_limit": 100})
    assert dom["domain_id"] == "default" and dom["project_id"] is None

    r = await cloud.get(f"/limits?project_id={ids['demo_project']}")
    assert [x["id"] for x in r.json()["limits"]] == [lim["id"]]
    r = await cloud.get("/limits?domain_id=default")
    assert [x["id"] for x in r.json()["limits"]] == [dom["id"]]
    assert len((await cloud.get("/limits?resource_name=volume")).json()["limits"]) == 2

    r = await cloud.patch(f"/limits/{lim['id']}", {"limit": {"resource_limit": 0}})
    assert r.status_code == 200 and r.json()["limit"]["resource_limit"] == 0
    assert (await cloud.get(f"/limits/{lim['id']}")).json()["limit"]["resource_limit"] == 0
    assert (await cloud.patch(f"/limits/{lim['id']}", {"limit": {"project_id": "x"}})).status_code == 400

    r = await cloud.get("/limits/model", token=cloud.demo_token)
    assert r.status_code == 200
    assert r.json() == {"model": {"name": "flat", "description": (
        "Limit enforcement and validation does not take project hierarchy into consideration.")}}

    assert (await cloud.delete(f"/limits/{lim['id']}")).status_code == 204
    r = await cloud.get(f"/limits/{lim['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Could not find limit for {lim['id']}."


async def test_limit_errors(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    (reg,) = await _registered(cloud, {"service_id": ids["service"], "resource_name": "volume",
                                       "default_limit": 5})
    base = {"project_id": ids["demo_project"], "service_id": ids["service"],
            "resource_name": "volume", "resource_limit": 1}
    r = await cloud.post("/limits", {"limits": [{**base, "resource_name": "unregistered"}]})
    assert r.status_code == 403
    assert r.json()["error"]["message"] == (
        "Unable to create a limit that has no corresponding registered limit.")
    r = await cloud.post("/limits", {"limits": [{**base, "region_id": "RegionOne"}]})
    assert r.status_code == 403  # registered without a region only
    await _limits(cloud, base)
    r = await cloud.post("/limits", {"limits": [base]})
    assert r.status_code == 409
    r = await cloud.post("/limits", {"limits": [{**base, "project_id": "nope"}]})
    assert r.status_code == 400
    both = {**base, "domain_id": "default"}
    neither = {k: v for k, v in base.items() if k != "project_id"}
    for bad in (both, neither, {**base, "resource_limit": True}):
        assert (await cloud.post("/limits", {"limits": [bad]})).status_code == 400

    # a registered limit with limits depending on it stays as it is
    r = await cloud.patch(f"/registered_limits/{reg['id']}", {"registered_limit": {
        "default_limit": 9}})
    assert r.status_code == 403
    assert (await cloud.delete(f"/registered_limits/{reg['id']}")).status_code == 403
    # nor does its service go away
    assert (await cloud.delete(f"/services/{ids['service']}")).status_code == 409

    r = await cloud.post("/limits", {"limits": [{**base, "project_id": ids["admin_project"]}]},
                         token=cloud.demo_token)
    assert r.status_code == 403


async def test_who_sees_which_limits(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    await _registered(cloud, {"service_id": ids["service"], "resource_name": "volume",
                              "default_limit": 5})
    demo, adm = await _limits(
        cloud,
        {"project_id": ids["demo_project"], "service_id": ids["service"],
         "resource_name": "volume", "resource_limit": 3},
        {"project_id": ids["admin_project"], "service_id": ids["service"],
         "resource_name": "volume", "resource_limit": 30},
    )
    r = await cloud.get("/limits", token=cloud.demo_token)
    assert [x["id"] for x in r.json()["limits"]] == [demo["id"]]
    r = await cloud.get(f"/limits?project_id={ids['admin_project']}", token=cloud.demo_token)
    assert r.json()["limits"] == []
    assert (await cloud.get(f"/limits/{demo['id']}", token=cloud.demo_token)).status_code == 200
    assert (await cloud.get(f"/limits/{adm['id']}", token=cloud.demo_token)).status_code == 403
    assert (await cloud.get("/limits/nope", token=cloud.demo_token)).status_code == 403
    assert len((await cloud.get("/limits")).json()["limits"]) == 2
    for r in (
        await cloud.patch(f"/limits/{demo['id']}", {"limit": {"resource_limit": 99}},
                          token=cloud.demo_token),
        await cloud.delete(f"/limits/{demo['id']}", token=cloud.demo_token),
    ):
        assert r.status_code == 403


@pytest.mark.parametrize("by_type", [True, False])
async def test_effective_limit(cloud: Cloud, by_type: bool) -> None:
    ids = await _ids(cloud)
    await _registered(
        cloud,
        {"service_id": ids["service"], "resource_name": "cores", "default_limit": 20},
        {"service_id": ids["service"], "region_id": "RegionOne", "resource_name": "ram",
         "default_limit": 4096},
    )
    await _limits(cloud, {"project_id": ids["demo_project"], "service_id": ids["service"],
                          "resource_name": "cores", "resource_limit": 8})
    service = "identity" if by_type else ids["service"]
    st = cloud.app.state.runtime.extras["identity"]
    async with st.read() as s:
        assert await effective_limit(s, service, "cores", ids["demo_project"]) == 8
        assert await effective_limit(s, service, "cores", ids["admin_project"]) == 20
        assert await effective_limit(s, service, "cores", ids["demo_project"], "RegionOne") == 8
        assert await effective_limit(s, service, "ram", ids["demo_project"], "RegionOne") == 4096
        assert await effective_limit(s, service, "ram", ids["demo_project"]) is None
        assert await effective_limit(s, service, "disks", ids["demo_project"]) is None
        assert await effective_limit(s, "no-such-service", "cores", ids["demo_project"]) is None
