"""Compute quotas from the identity service's unified limits: compute registers
its limits at startup, a limit set in the identity service is what os-quota-sets,
/limits and the create checks see, os-quota-sets and the ``default`` quota class
write there, and without the identity service quota reads fail (503)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select

from tests.api.compute.conftest import Compute, fault

REGISTERED = {"servers": 10, "class:VCPU": 20, "class:MEMORY_MB": 51200,
              "server_metadata_items": 128, "server_key_pairs": 100, "server_groups": 10,
              "server_group_members": 10}
TTL = 2.1  # a little over the compute service's cache of what identity answers


async def _service(nova: Compute) -> str:
    r = await nova.cloud.get("/services?type=compute")
    assert r.status_code == 200, r.text
    (svc,) = r.json()["services"]
    return svc["id"]  # type: ignore[no-any-return]


async def _registered(nova: Compute) -> dict[str, dict[str, Any]]:
    r = await nova.cloud.get(f"/registered_limits?service_id={await _service(nova)}")
    assert r.status_code == 200, r.text
    return {x["resource_name"]: x for x in r.json()["registered_limits"]}


async def _limits(nova: Compute, project: str) -> dict[str, dict[str, Any]]:
    r = await nova.cloud.get(f"/limits?project_id={project}&service_id={await _service(nova)}")
    assert r.status_code == 200, r.text
    return {x["resource_name"]: x for x in r.json()["limits"]}


async def _set_limits(nova: Compute, project: str, **values: int) -> None:
    sid = await _service(nova)
    r = await nova.cloud.post("/limits", {"limits": [
        {"project_id": project, "service_id": sid, "resource_name": name.replace("__", ":"),
         "resource_limit": value} for name, value in values.items()]})
    assert r.status_code == 201, r.text


async def test_registered_at_startup(nova: Compute) -> None:
    reg = await _registered(nova)
    assert {k: v["default_limit"] for k, v in reg.items()} == REGISTERED
    assert all(v["region_id"] is None for v in reg.values())


async def test_identity_limits_apply(nova: Compute) -> None:
    project, _, token = await nova.project_user()
    img = await nova.image()
    await _set_limits(nova, project, servers=1, class__VCPU=3, server_metadata_items=1)
    q = (await nova.req("GET", f"/os-quota-sets/{project}", token)).json()["quota_set"]
    assert (q["instances"], q["cores"], q["metadata_items"], q["ram"]) == (1, 3, 1, 51200)
    r = await nova.req("GET", f"/os-quota-sets/{project}/detail", token)
    assert r.json()["quota_set"]["instances"] == {"in_use": 0, "limit": 1, "reserved": 0}
    a = (await nova.req("GET", "/limits", token)).json()["limits"]["absolute"]
    assert (a["maxTotalInstances"], a["maxTotalCores"], a["maxServerMeta"]) == (1, 3, 1)
    # defaults stay the registered limits
    q = (await nova.req("GET", f"/os-quota-sets/{project}/defaults",
                        token)).json()["quota_set"]
    assert (q["instances"], q["cores"]) == (10, 20)
    # the create checks use them
    r = await nova.req("POST", "/servers", token, version="2.37", json={"server": {
        "name": "x", "flavorRef": "42", "imageRef": img["id"], "networks": "none",
        "metadata": {"a": "1", "b": "2"}}})
    assert fault(r, "forbidden", 403) == "Maximum number of metadata items exceeds 1"
    await nova.boot(token, imageRef=img["id"])
    r = await nova.req("POST", "/servers", token, version="2.37", json={"server": {
        "name": "x", "flavorRef": "42", "imageRef": img["id"], "networks": "none"}})
    assert fault(r, "forbidden", 403) == ("Quota exceeded for instances: Requested 1, but "
                                          "already used 1 of 1 instances")
    # a change in the identity service shows promptly
    own = await _limits(nova, project)
    r = await nova.cloud.patch(f"/limits/{own['servers']['id']}",
                               {"limit": {"resource_limit": 2}})
    assert r.status_code == 200, r.text
    await asyncio.sleep(TTL)
    a = (await nova.req("GET", "/limits", token)).json()["limits"]["absolute"]
    assert (a["maxTotalInstances"], a["totalInstancesUsed"]) == (2, 1)
    await nova.boot(token, imageRef=img["id"])
    # cores: 2 used of 3, the 1-vCPU flavor fits once more but not a 2-vCPU one
    flavor = await nova.flavor(vcpus=2)
    r = await nova.cloud.patch(f"/limits/{own['servers']['id']}",
                               {"limit": {"resource_limit": -1}})
    assert r.status_code == 200
    await asyncio.sleep(TTL)
    r = await nova.req("POST", "/servers", token, version="2.37", json={"server": {
        "name": "x", "flavorRef": flavor["id"], "imageRef": img["id"], "networks": "none"}})
    assert fault(r, "forbidden", 403) == ("Quota exceeded for cores: Requested 2, but "
                                          "already used 2 of 3 cores")
    # a registered limit changed in the identity service is every project's default
    reg = await _registered(nova)
    r = await nova.cloud.patch(f"/registered_limits/{reg['server_groups']['id']}",
                               {"registered_limit": {"default_limit": 0}})
    assert r.status_code == 200, r.text
    await asyncio.sleep(TTL)
    q = (await nova.req("GET", f"/os-quota-sets/{project}/defaults",
                        token)).json()["quota_set"]
    assert q["server_groups"] == 0
    r = await nova.req("POST", "/os-server-groups", token, version="2.64", json={
        "server_group": {"name": "g", "policy": "affinity"}})
    assert "Quota exceeded" in fault(r, "forbidden", 403)


async def test_quota_sets_write_identity_limits(nova: Compute) -> None:
    project, user, token = await nova.project_user()
    assert await _limits(nova, project) == {}
    r = await nova.req("PUT", f"/os-quota-sets/{project}", json={"quota_set": {
        "instances": 3, "key_pairs": 7, "ram": -1, "injected_files": 2}})
    assert r.status_code == 200, r.text
    own = await _limits(nova, project)
    assert {k: v["resource_limit"] for k, v in own.items()} == {
        "servers": 3, "server_key_pairs": 7, "class:MEMORY_MB": -1}
    # a second update changes the same limits; the injected files stay in compute
    r = await nova.req("PUT", f"/os-quota-sets/{project}", json={"quota_set": {
        "instances": 4, "cores": 9}})
    assert r.status_code == 200, r.text
    again = await _limits(nova, project)
    assert again["servers"]["id"] == own["servers"]["id"]
    assert {k: v["resource_limit"] for k, v in again.items()} == {
        "servers": 4, "server_key_pairs": 7, "class:MEMORY_MB": -1, "class:VCPU": 9}
    q = (await nova.req("GET", f"/os-quota-sets/{project}", token)).json()["quota_set"]
    assert (q["instances"], q["cores"], q["ram"], q["injected_files"]) == (4, 9, -1, 2)
    # a user's limits stay in compute
    r = await nova.req("PUT", f"/os-quota-sets/{project}?user_id={user}",
                       json={"quota_set": {"instances": 2}})
    assert r.status_code == 200, r.text
    assert (await _limits(nova, project))["servers"]["resource_limit"] == 4
    # refused updates write nothing there
    await nova.boot(token, imageRef=(await nova.image())["id"])
    r = await nova.req("PUT", f"/os-quota-sets/{project}", json={"quota_set": {
        "cores": 20, "instances": 0}})
    fault(r, "badRequest", 400)
    assert (await _limits(nova, project))["class:VCPU"]["resource_limit"] == 9
    # delete: back to the registered limits
    r = await nova.req("DELETE", f"/os-quota-sets/{project}")
    assert r.status_code == 202
    assert await _limits(nova, project) == {}
    q = (await nova.req("GET", f"/os-quota-sets/{project}", token)).json()["quota_set"]
    assert (q["instances"], q["cores"], q["injected_files"]) == (10, 20, 5)


async def test_default_class_writes_registered_limits(nova: Compute) -> None:
    project, _, token = await nova.project_user()
    other, _, other_token = await nova.project_user()
    r = await nova.req("PUT", f"/os-quota-sets/{project}", json={"quota_set": {"cores": 4}})
    assert r.status_code == 200, r.text
    # the registered limit has a project limit depending on it: it still changes
    r = await nova.req("PUT", "/os-quota-class-sets/default", version="2.57",
                       json={"quota_class_set": {"cores": 6, "instances": 8}})
    assert r.status_code == 200, r.text
    reg = await _registered(nova)
    assert (reg["class:VCPU"]["default_limit"], reg["servers"]["default_limit"]) == (6, 8)
    assert (await _limits(nova, project))["class:VCPU"]["resource_limit"] == 4
    q = (await nova.req("GET", f"/os-quota-sets/{project}", token)).json()["quota_set"]
    assert (q["cores"], q["instances"]) == (4, 8)
    q = (await nova.req("GET", f"/os-quota-sets/{other}", other_token)).json()["quota_set"]
    assert (q["cores"], q["instances"]) == (6, 8)
    r = await nova.req("GET", "/os-quota-class-sets/default", version="2.57")
    assert r.json()["quota_class_set"]["cores"] == 6


async def test_identity_unreachable(nova: Compute) -> None:
    project, _, token = await nova.project_user()
    img = await nova.image()
    st = nova.state
    real = st.http
    st.http = httpx.AsyncClient(base_url="http://127.0.0.1:9")
    st.extras["unified_limits"].forget()
    try:
        r = await nova.req("GET", "/limits", token)
        assert "identity service cannot be reached" in fault(r, "serviceUnavailable", 503)
        r = await nova.req("GET", f"/os-quota-sets/{project}", token)
        assert "for the quota limits" in fault(r, "serviceUnavailable", 503)
        r = await nova.req("POST", "/servers", token, version="2.37", json={"server": {
            "name": "x", "flavorRef": "42", "imageRef": img["id"], "networks": "none"}})
        assert "for the quota limits" in fault(r, "serviceUnavailable", 503)
    finally:
        await st.http.aclose()
        st.http = real
    r = await nova.req("GET", f"/os-quota-sets/{project}", token)
    assert r.status_code == 200, r.text


async def test_startup_moves_old_quota_rows(nova: Compute) -> None:
    """Limits compute kept in its own tables before (a project's, the ``default``
    class's) move to the identity service when compute registers its limits."""
    from onestack.compute.models import Quota, QuotaClass
    from onestack.compute.service import quotas

    project, user, token = await nova.project_user()
    st = nova.state
    reg = await _registered(nova)
    r = await nova.cloud.delete(f"/registered_limits/{reg['server_key_pairs']['id']}")
    assert r.status_code == 204
    async with st.db.write() as s:
        s.add(Quota(project_id=project, user_id="", resource="instances", hard_limit=3))
        s.add(Quota(project_id=project, user_id="", resource="injected_files", hard_limit=1))
        s.add(Quota(project_id=project, user_id=user, resource="instances", hard_limit=2))
        s.add(QuotaClass(class_name="default", resource="key_pairs", hard_limit=4))
    await quotas.register_limits(st)
    assert (await _registered(nova))["server_key_pairs"]["default_limit"] == 4
    assert {k: v["resource_limit"] for k, v in (await _limits(nova, project)).items()} == {
        "servers": 3}
    async with st.db.read() as s:
        rows = {(q.user_id, q.resource) for q in await s.scalars(
            select(Quota).where(Quota.project_id == project))}
        classes = list(await s.scalars(select(QuotaClass)))
    assert rows == {("", "injected_files"), (user, "instances")} and classes == []
    q = (await nova.req("GET", f"/os-quota-sets/{project}", token)).json()["quota_set"]
    assert (q["instances"], q["key_pairs"], q["injected_files"]) == (3, 4, 1)
    q = (await nova.req("GET", f"/os-quota-sets/{project}?user_id={user}",
                        token)).json()["quota_set"]
    assert q["instances"] == 2


async def test_image_metadata_quota(nova: Compute) -> None:
    """The image proxy's metadata checks use the project's metadata_items limit."""
    from tests.api.compute.test_images_proxy import _own_image

    demo = nova.cloud.demo_token
    r = await nova.cloud.get("/projects?name=demo")
    (project,) = r.json()["projects"]
    await _set_limits(nova, project["id"], server_metadata_items=1)
    img = await _own_image(nova, demo)
    base = f"/images/{img['id']}/metadata"
    r = await nova.req("PUT", base, demo, json={"metadata": {"a": "1", "b": "2"}})
    assert fault(r, "forbidden", 403) == "Image metadata limit exceeded"
    r = await nova.req("PUT", base, demo, json={"metadata": {"a": "1"}})
    assert r.status_code == 200, r.text
