"""Domains: CRUD, filters, deletion rules and cascade, options, authorization."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Cloud


async def check_token(cloud: Cloud, token: str) -> int:
    """The status of validating ``token`` as the admin."""
    headers = {**cloud.as_(cloud.admin_token), "X-Subject-Token": token}
    return (await cloud.client.get(cloud.identity + "/auth/tokens", headers=headers)).status_code


async def make_domain(cloud: Cloud, name: str, **attrs: Any) -> dict[str, Any]:
    r = await cloud.post("/domains", {"domain": {"name": name, **attrs}})
    assert r.status_code == 201, r.text
    return r.json()["domain"]


async def test_create_show_update_list_delete(cloud: Cloud) -> None:
    d = await make_domain(cloud, "acme", description="Acme Inc", email="ops@acme.test", tags=["x"])
    assert d["name"] == "acme" and d["enabled"] is True and d["description"] == "Acme Inc"
    assert d["options"] == {} and d["tags"] == ["x"] and d["email"] == "ops@acme.test"
    assert d["links"]["self"].endswith(f"/identity/v3/domains/{d['id']}")
    assert {"parent_id", "domain_id", "is_domain"}.isdisjoint(d)

    r = await cloud.get(f"/domains/{d['id']}")
    assert r.status_code == 200 and r.json()["domain"] == d

    r = await cloud.patch(f"/domains/{d['id']}", {"domain": {"description": "new", "enabled": False}})
    assert r.status_code == 200
    assert r.json()["domain"]["description"] == "new" and r.json()["domain"]["enabled"] is False

    r = await cloud.get("/domains")
    assert r.status_code == 200
    body = r.json()
    assert {x["name"] for x in body["domains"]} == {"Default", "acme"}
    assert body["links"]["self"].endswith("/identity/v3/domains")

    assert (await cloud.delete(f"/domains/{d['id']}")).status_code == 204
    r = await cloud.get(f"/domains/{d['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Could not find domain: {d['id']}."


async def test_filters(cloud: Cloud) -> None:
    await make_domain(cloud, "alpha")
    await make_domain(cloud, "beta", enabled=False)
    names = lambda r: sorted(x["name"] for x in r.json()["domains"])
    assert names(await cloud.get("/domains?name=alpha")) == ["alpha"]
    assert names(await cloud.get("/domains?enabled=false")) == ["beta"]
    assert names(await cloud.get("/domains?enabled=true")) == ["Default", "alpha"]
    assert names(await cloud.get("/domains?name__startswith=al")) == ["alpha"]
    assert names(await cloud.get("/domains?name__icontains=ETA")) == ["beta"]


async def test_domains_are_projects_acting_as_domains(cloud: Cloud) -> None:
    r = await cloud.post("/projects", {"project": {"name": "viaproj", "is_domain": True}})
    assert r.status_code == 201, r.text
    p = r.json()["project"]
    assert p["is_domain"] is True and p["domain_id"] is None and p["parent_id"] is None
    r = await cloud.get(f"/domains/{p['id']}")
    assert r.status_code == 200 and r.json()["domain"]["name"] == "viaproj"
    r = await cloud.get("/projects?is_domain=true")
    assert {x["name"] for x in r.json()["projects"]} == {"Default", "viaproj"}
    assert "viaproj" not in {x["name"] for x in (await cloud.get("/projects")).json()["projects"]}
    r = await cloud.get("/projects/default")
    assert r.status_code == 200 and r.json()["project"]["is_domain"] is True


async def test_explicit_domain_id(cloud: Cloud) -> None:
    wanted = "0123456789abcdef0123456789abcdef"
    d = await make_domain(cloud, "explicit", explicit_domain_id=wanted)
    assert d["id"] == wanted and "explicit_domain_id" not in d
    r = await cloud.post("/domains", {"domain": {"name": "other", "explicit_domain_id": wanted}})
    assert r.status_code == 409
    r = await cloud.post("/domains", {"domain": {"name": "bad", "explicit_domain_id": "not-a-uuid"}})
    assert r.status_code == 400


async def test_duplicate_name_conflicts(cloud: Cloud) -> None:
    await make_domain(cloud, "dup")
    r = await cloud.post("/domains", {"domain": {"name": "dup"}})
    assert r.status_code == 409
    assert r.json()["error"]["message"].startswith("Conflict occurred attempting to store project")
    other = await make_domain(cloud, "dup2")
    r = await cloud.patch(f"/domains/{other['id']}", {"domain": {"name": "dup"}})
    assert r.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"domain": {}},
        {"domain": {"name": ""}},
        {"domain": {"name": "   "}},
        {"domain": {"name": "x" * 65}},
        {"domain": {"name": "x", "enabled": "yes"}},
        {"domain": {"name": "x", "options": {"nope": True}}},
        {"domain": {"name": "x", "tags": ["a,b"]}},
        {"domain": {"name": "x"}, "extra": 1},
        {"name": "x"},
        [],
    ],
)
async def test_create_validation(cloud: Cloud, body: Any) -> None:
    r = await cloud.post("/domains", body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == 400


async def test_update_validation_and_not_found(cloud: Cloud) -> None:
    d = await make_domain(cloud, "upd")
    assert (await cloud.patch(f"/domains/{d['id']}", {"domain": {}})).status_code == 400
    assert (await cloud.patch(f"/domains/{d['id']}", {"domain": {"enabled": 1}})).status_code == 400
    assert (await cloud.patch("/domains/nope", {"domain": {"name": "n"}})).status_code == 404
    assert (await cloud.delete("/domains/nope")).status_code == 404


async def test_enabled_domain_cannot_be_deleted(cloud: Cloud) -> None:
    d = await make_domain(cloud, "live")
    r = await cloud.delete(f"/domains/{d['id']}")
    assert r.status_code == 403
    assert r.json()["error"]["message"] == (
        "Cannot delete a domain that is enabled, please disable it first."
    )
    # the same rule through /v3/projects
    assert (await cloud.delete(f"/projects/{d['id']}")).status_code == 403


async def test_delete_cascades_to_projects_users_groups(cloud: Cloud) -> None:
    d = await make_domain(cloud, "doomed")
    r = await cloud.post("/projects", {"project": {"name": "top", "domain_id": d["id"]}})
    top = r.json()["project"]
    r = await cloud.post("/projects", {"project": {"name": "child", "parent_id": top["id"]}})
    child = r.json()["project"]
    assert child["domain_id"] == d["id"]
    r = await cloud.post("/users", {"user": {"name": "u", "domain_id": d["id"], "password": "pw"}})
    user = r.json()["user"]
    r = await cloud.post("/groups", {"group": {"name": "g", "domain_id": d["id"]}})
    group = r.json()["group"]
    assert (await cloud.put(f"/groups/{group['id']}/users/{user['id']}")).status_code == 204
    # a user of another domain in the doomed group stays
    r = await cloud.post("/users", {"user": {"name": "outsider"}})
    outsider = r.json()["user"]
    assert (await cloud.put(f"/groups/{group['id']}/users/{outsider['id']}")).status_code == 204

    assert (await cloud.patch(f"/domains/{d['id']}", {"domain": {"enabled": False}})).status_code == 200
    assert (await cloud.delete(f"/domains/{d['id']}")).status_code == 204
    for path in (f"/projects/{top['id']}", f"/projects/{child['id']}",
                 f"/users/{user['id']}", f"/groups/{group['id']}", f"/domains/{d['id']}"):
        assert (await cloud.get(path)).status_code == 404, path
    r = await cloud.get(f"/users/{outsider['id']}/groups")
    assert r.status_code == 200 and r.json()["groups"] == []


async def test_disabling_domain_invalidates_its_users_tokens(cloud: Cloud) -> None:
    d = await make_domain(cloud, "closing")
    await cloud.post("/users", {"user": {"name": "worker", "domain_id": d["id"], "password": "pw"}})
    r = await cloud.token("worker", "pw", user_domain=d["id"])
    assert r.status_code == 201
    token = r.headers["X-Subject-Token"]
    assert await check_token(cloud, token) == 200
    await cloud.patch(f"/domains/{d['id']}", {"domain": {"enabled": False}})
    assert await check_token(cloud, token) == 404
    assert (await cloud.token("worker", "pw", user_domain=d["id"])).status_code == 401


async def test_immutable_domain(cloud: Cloud) -> None:
    d = await make_domain(cloud, "frozen", options={"immutable": True})
    assert d["options"] == {"immutable": True}
    r = await cloud.patch(f"/domains/{d['id']}", {"domain": {"description": "x"}})
    assert r.status_code == 403
    r = await cloud.patch(f"/domains/{d['id']}", {"domain": {"enabled": False}})
    assert r.status_code == 403
    r = await cloud.patch(f"/domains/{d['id']}", {"domain": {"options": {"immutable": False}}})
    assert r.status_code == 200 and r.json()["domain"]["options"] == {"immutable": False}
    r = await cloud.patch(f"/domains/{d['id']}", {"domain": {"options": {"immutable": None}}})
    assert r.json()["domain"]["options"] == {}


async def test_member_is_refused(cloud: Cloud) -> None:
    d = await make_domain(cloud, "private")
    token = cloud.demo_token
    assert (await cloud.get("/domains", token=token)).status_code == 403
    assert (await cloud.post("/domains", {"domain": {"name": "mine"}}, token=token)).status_code == 403
    r = await cloud.patch(f"/domains/{d['id']}", {"domain": {"name": "x"}}, token=token)
    assert r.status_code == 403
    assert (await cloud.delete(f"/domains/{d['id']}", token=token)).status_code == 403
    assert (await cloud.get(f"/domains/{d['id']}", token=token)).status_code == 403
    # existence is not revealed to a refused caller
    assert (await cloud.get("/domains/nonexistent", token=token)).status_code == 403


async def test_requires_a_token(cloud: Cloud) -> None:
    r = await cloud.client.get(cloud.identity + "/domains")
    assert r.status_code == 401


async def test_domain_reader(cloud: Cloud) -> None:
    """A reader on a domain reads that domain, not another."""
    d = await make_domain(cloud, "readers")
    r = await cloud.post("/users", {"user": {"name": "dr", "domain_id": d["id"], "password": "pw"}})
    uid = r.json()["user"]["id"]
    reader = (await cloud.get("/roles?name=reader")).json()["roles"][0]["id"]
    r = await cloud.put(f"/domains/{d['id']}/users/{uid}/roles/{reader}")
    if r.status_code != 204:
        pytest.skip("domain grants are not available yet")
    r = await cloud.token("dr", "pw", domain=d["id"], user_domain=d["id"])
    assert r.status_code == 201, r.text
    token = r.headers["X-Subject-Token"]
    assert (await cloud.get(f"/domains/{d['id']}", token=token)).status_code == 200
    # a domain reader sees its domain's projects and users, not others'
    r = await cloud.get("/users", token=token)
    assert r.status_code == 200 and [x["name"] for x in r.json()["users"]] == ["dr"]
    assert (await cloud.get("/projects", token=token)).status_code == 200
    assert (await cloud.get("/domains/default", token=token)).status_code == 403
