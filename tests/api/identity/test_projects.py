"""Projects: CRUD, hierarchy rules, filters, tags, a user's projects, authorization."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.identity.test_domains import check_token, make_domain
from tests.conftest import Cloud


async def make_project(cloud: Cloud, name: str, **attrs: Any) -> dict[str, Any]:
    r = await cloud.post("/projects", {"project": {"name": name, **attrs}})
    assert r.status_code == 201, r.text
    return r.json()["project"]


async def names(cloud: Cloud, query: str) -> list[str]:
    r = await cloud.get("/projects" + query)
    assert r.status_code == 200, r.text
    return sorted(p["name"] for p in r.json()["projects"])


async def test_create_show_update_delete(cloud: Cloud) -> None:
    p = await make_project(cloud, "web", description="Web team", owner="ops")
    assert p["domain_id"] == "default" and p["parent_id"] == "default"
    assert p["is_domain"] is False and p["enabled"] is True and p["tags"] == []
    assert p["options"] == {} and p["owner"] == "ops" and p["description"] == "Web team"
    assert p["links"]["self"].endswith(f"/identity/v3/projects/{p['id']}")

    r = await cloud.get(f"/projects/{p['id']}")
    assert r.status_code == 200 and r.json()["project"] == p

    r = await cloud.patch(f"/projects/{p['id']}", {"project": {
        "name": "web2", "description": None, "enabled": False, "owner": "dev", "tags": ["t"]}})
    assert r.status_code == 200, r.text
    q = r.json()["project"]
    assert (q["name"], q["description"], q["enabled"], q["owner"], q["tags"]) == (
        "web2", "", False, "dev", ["t"])

    assert (await cloud.delete(f"/projects/{p['id']}")).status_code == 204
    r = await cloud.get(f"/projects/{p['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Could not find project: {p['id']}."


async def test_domain_and_parent_placement(cloud: Cloud) -> None:
    d = await make_domain(cloud, "org")
    top = await make_project(cloud, "top", domain_id=d["id"])
    assert top["parent_id"] == d["id"]
    # domain_id omitted: the parent's domain
    child = await make_project(cloud, "child", parent_id=top["id"])
    assert child["domain_id"] == d["id"] and child["parent_id"] == top["id"]
    # the same name in another domain is fine, in the same domain it conflicts
    await make_project(cloud, "top")
    r = await cloud.post("/projects", {"project": {"name": "top", "domain_id": d["id"]}})
    assert r.status_code == 409
    # a parent in another domain
    r = await cloud.post("/projects", {"project": {
        "name": "x", "domain_id": "default", "parent_id": top["id"]}})
    assert r.status_code == 400
    r = await cloud.post("/projects", {"project": {"name": "x", "parent_id": "nope"}})
    assert r.status_code == 400
    r = await cloud.post("/projects", {"project": {"name": "x", "domain_id": "nope"}})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Could not find domain: nope."


async def test_depth_limit(cloud: Cloud) -> None:
    parent = None
    for level in range(1, 6):
        extra = {"parent_id": parent} if parent else {}
        parent = (await make_project(cloud, f"level{level}", **extra))["id"]
    r = await cloud.post("/projects", {"project": {"name": "level6", "parent_id": parent}})
    assert r.status_code == 403
    assert r.json()["error"]["message"] == f"Max hierarchy depth reached for {parent} branch."


async def test_disabled_parent_rules(cloud: Cloud) -> None:
    top = await make_project(cloud, "top")
    child = await make_project(cloud, "child", parent_id=top["id"])
    r = await cloud.patch(f"/projects/{top['id']}", {"project": {"enabled": False}})
    assert r.status_code == 403  # the subtree is still enabled
    await cloud.patch(f"/projects/{child['id']}", {"project": {"enabled": False}})
    assert (await cloud.patch(f"/projects/{top['id']}", {"project": {"enabled": False}})).status_code == 200
    r = await cloud.post("/projects", {"project": {"name": "late", "parent_id": top["id"]}})
    assert r.status_code == 400
    r = await cloud.patch(f"/projects/{child['id']}", {"project": {"enabled": True}})
    assert r.status_code == 403


async def test_immutable_attributes(cloud: Cloud) -> None:
    p = await make_project(cloud, "fixed")
    other = await make_project(cloud, "other")
    cases = [
        ({"parent_id": other["id"]}, 403),
        ({"domain_id": "elsewhere"}, 400),
        ({"is_domain": True}, 400),
        ({"id": "another"}, 400),
        ({}, 400),
        ({"name": "other"}, 409),
        ({"name": ""}, 400),
        ({"enabled": "false"}, 400),
    ]
    for body, status in cases:
        r = await cloud.patch(f"/projects/{p['id']}", {"project": body})
        assert r.status_code == status, (body, r.text)
    # naming the current values is allowed
    r = await cloud.patch(f"/projects/{p['id']}", {"project": {
        "parent_id": "default", "domain_id": "default", "is_domain": False, "id": p["id"]}})
    assert r.status_code == 200
    assert (await cloud.patch("/projects/nope", {"project": {"name": "n"}})).status_code == 404


async def test_immutable_option(cloud: Cloud) -> None:
    p = await make_project(cloud, "locked", options={"immutable": True})
    assert p["options"] == {"immutable": True}
    assert (await cloud.patch(f"/projects/{p['id']}", {"project": {"name": "x"}})).status_code == 403
    assert (await cloud.put(f"/projects/{p['id']}/tags/x")).status_code == 403
    assert (await cloud.delete(f"/projects/{p['id']}")).status_code == 403
    r = await cloud.patch(f"/projects/{p['id']}", {"project": {"options": {"immutable": False}}})
    assert r.status_code == 200
    assert (await cloud.delete(f"/projects/{p['id']}")).status_code == 204


async def test_delete_rules_and_cleanup(cloud: Cloud) -> None:
    top = await make_project(cloud, "top")
    child = await make_project(cloud, "child", parent_id=top["id"])
    r = await cloud.delete(f"/projects/{top['id']}")
    assert r.status_code == 403 and "not a leaf" in r.json()["error"]["message"]
    r = await cloud.post("/users", {"user": {"name": "u", "default_project_id": child["id"]}})
    uid = r.json()["user"]["id"]
    assert (await cloud.delete(f"/projects/{child['id']}")).status_code == 204
    assert (await cloud.delete(f"/projects/{top['id']}")).status_code == 204
    assert "default_project_id" not in (await cloud.get(f"/users/{uid}")).json()["user"]
    assert (await cloud.delete(f"/projects/{top['id']}")).status_code == 404


async def test_list_filters(cloud: Cloud) -> None:
    d = await make_domain(cloud, "filters")
    a = await make_project(cloud, "alpha", domain_id=d["id"], tags=["red", "big"])
    await make_project(cloud, "beta", domain_id=d["id"], tags=["red"], enabled=False)
    await make_project(cloud, "gamma", parent_id=a["id"], tags=["blue"])
    base = f"?domain_id={d['id']}"
    assert await names(cloud, base) == ["alpha", "beta", "gamma"]
    assert await names(cloud, "?name=alpha") == ["alpha"]
    assert await names(cloud, base + "&enabled=false") == ["beta"]
    assert await names(cloud, base + "&enabled=true") == ["alpha", "gamma"]
    assert await names(cloud, f"?parent_id={a['id']}") == ["gamma"]
    assert await names(cloud, base + "&name__startswith=a") == ["alpha"]
    assert await names(cloud, base + "&name__icontains=MM") == ["gamma"]
    assert await names(cloud, "?tags=red") == ["alpha", "beta"]
    assert await names(cloud, "?tags=red,big") == ["alpha"]
    assert await names(cloud, "?tags-any=big,blue") == ["alpha", "gamma"]
    assert await names(cloud, base + "&not-tags=red,big") == ["beta", "gamma"]
    assert await names(cloud, base + "&not-tags-any=red") == ["gamma"]
    assert await names(cloud, "?domain_id=default") == ["admin", "demo", "service"]
    assert "filters" in await names(cloud, "?is_domain=true")


async def test_pagination(cloud: Cloud) -> None:
    for i in range(3):
        await make_project(cloud, f"page{i}")
    r = await cloud.get("/projects?limit=2")
    body = r.json()
    assert len(body["projects"]) == 2 and body["truncated"] is True
    nxt = body["links"]["next"]
    assert "marker=" in nxt
    r = await cloud.client.get(nxt, headers=cloud.as_(cloud.admin_token))
    assert r.status_code == 200 and len(r.json()["projects"]) == 2
    assert (await cloud.get("/projects?limit=x")).status_code == 400


async def test_hierarchy_views(cloud: Cloud) -> None:
    a = await make_project(cloud, "a")
    b = await make_project(cloud, "b", parent_id=a["id"])
    c = await make_project(cloud, "c", parent_id=b["id"])
    d = await make_project(cloud, "d", parent_id=b["id"])
    r = await cloud.get(f"/projects/{c['id']}?parents_as_ids")
    assert r.json()["project"]["parents"] == {b["id"]: {a["id"]: {"default": None}}}
    r = await cloud.get(f"/projects/{a['id']}?subtree_as_ids")
    assert r.json()["project"]["subtree"] == {b["id"]: {c["id"]: None, d["id"]: None}}
    # the lists show only projects the caller has a role on: admin has none here
    r = await cloud.get(f"/projects/{c['id']}?parents_as_list&subtree_as_list")
    assert r.json()["project"]["parents"] == [] and r.json()["project"]["subtree"] == []
    admin_role = (await cloud.get("/roles?name=admin")).json()["roles"][0]["id"]
    me = (await cloud.get("/users?name=admin")).json()["users"][0]["id"]
    r = await cloud.put(f"/projects/{a['id']}/users/{me}/roles/{admin_role}")
    if r.status_code == 204:
        r = await cloud.get(f"/projects/{c['id']}?parents_as_list")
        assert [x["project"]["id"] for x in r.json()["project"]["parents"]] == [a["id"]]
    for query in ("parents_as_list&parents_as_ids", "subtree_as_list&subtree_as_ids"):
        assert (await cloud.get(f"/projects/{a['id']}?{query}")).status_code == 400
    r = await cloud.get(f"/projects/{a['id']}?parents_as_list=0")
    assert "parents" not in r.json()["project"]


async def test_tags_api(cloud: Cloud) -> None:
    p = await make_project(cloud, "tagged", tags=["one"])
    path = f"/projects/{p['id']}/tags"
    r = await cloud.get(path)
    assert r.status_code == 200 and r.json()["tags"] == ["one"]
    r = await cloud.put(path, {"tags": ["two", "three"]})
    assert r.status_code == 200 and sorted(r.json()["tags"]) == ["three", "two"]
    assert (await cloud.get(path + "/two")).status_code == 204
    assert (await cloud.head(path + "/two")).status_code == 204
    r = await cloud.get(path + "/one")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Could not find project tag: one."
    r = await cloud.put(path + "/four")
    assert r.status_code == 201
    assert r.headers["Location"].endswith(f"/v3/projects/{p['id']}/tags/four")
    assert (await cloud.put(path + "/four")).status_code == 201  # already there
    assert (await cloud.put(path + "/a,b")).status_code == 400
    assert (await cloud.delete(path + "/two")).status_code == 204
    assert (await cloud.delete(path + "/two")).status_code == 404
    assert sorted((await cloud.get(f"/projects/{p['id']}")).json()["project"]["tags"]) == [
        "four", "three"]
    assert (await cloud.delete(path)).status_code == 204
    assert (await cloud.get(path)).json()["tags"] == []
    for bad in ({"tags": ["a/b"]}, {"tags": ["x"] * 81}, {"tags": ["d", "d"]}, {"tags": "x"}, {}):
        assert (await cloud.put(path, bad)).status_code == 400, bad
    await cloud.put(path, {"tags": [f"t{i}" for i in range(80)]})
    assert (await cloud.put(path + "/t80")).status_code == 400
    assert (await cloud.get("/projects/nope/tags")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"project": {}},
        {"project": {"name": "x" * 65}},
        {"project": {"name": "x", "is_domain": "no"}},
        {"project": {"name": "x", "tags": ["a,b"]}},
        {"project": {"name": "x", "options": {"other": True}}},
        {"project": {"name": "x", "parent_id": "a/b"}},
        {"project": {"name": "x"}, "unexpected": True},
        {"project": {"name": "x", "is_domain": True, "parent_id": "default"}},
    ],
)
async def test_create_validation(cloud: Cloud, body: Any) -> None:
    r = await cloud.post("/projects", body)
    assert r.status_code == 400, r.text


async def test_disabling_project_invalidates_its_tokens(cloud: Cloud) -> None:
    demo = (await cloud.get("/projects?name=demo")).json()["projects"][0]
    assert await check_token(cloud, cloud.demo_token) == 200
    await cloud.patch(f"/projects/{demo['id']}", {"project": {"enabled": False}})
    assert await check_token(cloud, cloud.demo_token) == 404
    await cloud.patch(f"/projects/{demo['id']}", {"project": {"enabled": True}})
    assert await check_token(cloud, cloud.demo_token) == 200


async def test_member_sees_only_its_project(cloud: Cloud) -> None:
    t = cloud.demo_token
    demo = (await cloud.get("/projects?name=demo")).json()["projects"][0]
    admin = (await cloud.get("/projects?name=admin")).json()["projects"][0]
    assert (await cloud.get(f"/projects/{demo['id']}", token=t)).status_code == 200
    assert (await cloud.get(f"/projects/{demo['id']}/tags", token=t)).status_code == 200
    assert (await cloud.get(f"/projects/{admin['id']}", token=t)).status_code == 403
    assert (await cloud.get(f"/projects/{admin['id']}/tags", token=t)).status_code == 403
    assert (await cloud.get("/projects/nonexistent", token=t)).status_code == 403
    assert (await cloud.get("/projects", token=t)).status_code == 403
    assert (await cloud.post("/projects", {"project": {"name": "m"}}, token=t)).status_code == 403
    r = await cloud.patch(f"/projects/{demo['id']}", {"project": {"name": "x"}}, token=t)
    assert r.status_code == 403
    assert (await cloud.put(f"/projects/{demo['id']}/tags/x", token=t)).status_code == 403
    assert (await cloud.delete(f"/projects/{demo['id']}", token=t)).status_code == 403


async def test_user_projects(cloud: Cloud) -> None:
    users = {u["name"]: u["id"] for u in (await cloud.get("/users")).json()["users"]}
    r = await cloud.get(f"/users/{users['demo']}/projects", token=cloud.demo_token)
    assert r.status_code == 200 and [p["name"] for p in r.json()["projects"]] == ["demo"]
    r = await cloud.get(f"/users/{users['admin']}/projects")
    assert [p["name"] for p in r.json()["projects"]] == ["admin"]
    r = await cloud.get(f"/users/{users['admin']}/projects?name=demo")
    assert r.json()["projects"] == []
    r = await cloud.get(f"/users/{users['admin']}/projects", token=cloud.demo_token)
    assert r.status_code == 403
    assert (await cloud.get("/users/nobody/projects")).status_code == 404
