"""Users: CRUD, passwords (never shown; admin reset and self-service change),
options, filters, token revocation, authorization."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from onestack.server import service_user_names
from tests.api.identity.test_domains import check_token, make_domain
from tests.conftest import Cloud


async def make_user(cloud: Cloud, name: str, **attrs: Any) -> dict[str, Any]:
    r = await cloud.post("/users", {"user": {"name": name, **attrs}})
    assert r.status_code == 201, r.text
    return r.json()["user"]


async def token_of(cloud: Cloud, name: str, password: str, **kw: Any) -> str:
    r = await cloud.token(name, password, **kw)
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


async def change_password(cloud: Cloud, user_id: str, body: Any, token: str | None = None) -> Any:
    headers = cloud.as_(token) if token else {}
    return await cloud.client.post(
        f"{cloud.identity}/users/{user_id}/password", json=body, headers=headers
    )


async def test_create_show_update_delete(cloud: Cloud) -> None:
    demo_project = (await cloud.get("/projects?name=demo")).json()["projects"][0]["id"]
    u = await make_user(cloud, "jdoe", password="s3cret", email="jdoe@example.test",
                        description="J. Doe", default_project_id=demo_project,
                        options={"ignore_password_expiry": True})
    assert u["domain_id"] == "default" and u["enabled"] is True
    assert u["email"] == "jdoe@example.test" and u["description"] == "J. Doe"
    assert u["default_project_id"] == demo_project
    assert u["options"] == {"ignore_password_expiry": True}
    assert u["password_expires_at"] is None
    assert u["links"]["self"].endswith(f"/identity/v3/users/{u['id']}")
    assert "password" not in u and "s3cret" not in str(u)

    r = await cloud.get(f"/users/{u['id']}")
    assert r.status_code == 200 and r.json()["user"] == u

    r = await cloud.patch(f"/users/{u['id']}", {"user": {
        "name": "john", "email": None, "options": {"lock_password": True,
                                                  "ignore_password_expiry": None}}})
    assert r.status_code == 200, r.text
    v = r.json()["user"]
    assert v["name"] == "john" and v["email"] is None
    assert v["options"] == {"lock_password": True}

    assert (await cloud.delete(f"/users/{u['id']}")).status_code == 204
    r = await cloud.get(f"/users/{u['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Could not find user: {u['id']}."
    assert (await cloud.delete(f"/users/{u['id']}")).status_code == 404


async def test_new_user_can_authenticate(cloud: Cloud) -> None:
    await make_user(cloud, "fresh", password="pw-fresh")
    r = await cloud.token("fresh", "pw-fresh")
    assert r.status_code == 201
    assert (await cloud.token("fresh", "wrong")).status_code == 401
    await make_user(cloud, "nopassword")
    assert (await cloud.token("nopassword", "")).status_code == 401


async def test_domains_and_conflicts(cloud: Cloud) -> None:
    d = await make_domain(cloud, "people")
    await make_user(cloud, "same")
    u = await make_user(cloud, "same", domain_id=d["id"])
    assert u["domain_id"] == d["id"]
    r = await cloud.post("/users", {"user": {"name": "same"}})
    assert r.status_code == 409
    assert r.json()["error"]["message"] == (
        "Conflict occurred attempting to store user - "
        "Duplicate entry found with name same at domain ID default."
    )
    other = await make_user(cloud, "other")
    assert (await cloud.patch(f"/users/{other['id']}", {"user": {"name": "same"}})).status_code == 409
    r = await cloud.post("/users", {"user": {"name": "lost", "domain_id": "nodomain"}})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Could not find domain: nodomain."
    r = await cloud.patch(f"/users/{other['id']}", {"user": {"domain_id": d["id"]}})
    assert r.status_code == 400
    r = await cloud.post("/users", {"user": {"name": "dom", "default_project_id": "default"}})
    assert r.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"user": {}},
        {"user": {"name": ""}},
        {"user": {"name": "x" * 256}},
        {"user": {"name": "x", "enabled": "true"}},
        {"user": {"name": "x", "password": 12}},
        {"user": {"name": "x", "options": {"unknown_option": True}}},
        {"user": {"name": "x", "options": {"lock_password": "yes"}}},
        {"user": {"name": "x", "options": {"multi_factor_auth_rules": [["password", "password"]]}}},
        {"user": {"name": "x", "options": {"multi_factor_auth_rules": [[]]}}},
        {"user": {"name": "x", "federated": [{"idp_id": "idp", "protocols": []}]}},
        {"user": {"name": "x"}, "extra": 1},
    ],
)
async def test_create_validation(cloud: Cloud, body: Any) -> None:
    r = await cloud.post("/users", body)
    assert r.status_code == 400, r.text


async def test_all_documented_options(cloud: Cloud) -> None:
    options = {
        "ignore_change_password_upon_first_use": True,
        "ignore_password_expiry": False,
        "ignore_lockout_failure_attempts": True,
        "lock_password": False,
        "multi_factor_auth_rules": [["password", "totp"], ["password"]],
        "multi_factor_auth_enabled": True,
    }
    u = await make_user(cloud, "opts", options=options)
    assert u["options"] == options


async def test_list_filters(cloud: Cloud) -> None:
    d = await make_domain(cloud, "filtered")
    await make_user(cloud, "alice", domain_id=d["id"])
    await make_user(cloud, "bob", domain_id=d["id"], enabled=False)
    await make_user(cloud, "alicia")

    async def names(query: str) -> list[str]:
        r = await cloud.get("/users" + query)
        assert r.status_code == 200, r.text
        return sorted(u["name"] for u in r.json()["users"])

    services = list(service_user_names().values())  # made by the bootstrap
    assert await names("") == sorted(["admin", "alice", "alicia", "bob", "demo", *services])
    assert await names("?name=alice") == ["alice"]
    assert await names(f"?domain_id={d['id']}") == ["alice", "bob"]
    assert await names("?enabled=false") == ["bob"]
    assert await names(f"?domain_id={d['id']}&enabled=true") == ["alice"]
    assert await names("?name__startswith=ali") == ["alice", "alicia"]
    assert await names("?name__iendswith=CIA") == ["alicia"]
    assert await names("?idp_id=someidp") == []
    assert await names("?password_expires_at=gt:2000-01-01T00:00:00Z") == []
    assert (await cloud.get("/users?password_expires_at=xx:2000-01-01T00:00:00Z")).status_code == 400
    assert (await cloud.get("/users?password_expires_at=lt:yesterday")).status_code == 400


async def test_admin_password_reset_revokes_tokens(cloud: Cloud) -> None:
    u = await make_user(cloud, "reset", password="old-pw")
    token = await token_of(cloud, "reset", "old-pw")
    assert await check_token(cloud, token) == 200
    r = await cloud.patch(f"/users/{u['id']}", {"user": {"password": "new-pw"}})
    assert r.status_code == 200 and "password" not in r.json()["user"]
    assert await check_token(cloud, token) == 404
    assert (await cloud.token("reset", "old-pw")).status_code == 401
    assert (await cloud.token("reset", "new-pw")).status_code == 201


async def test_disabling_revokes_and_blocks(cloud: Cloud) -> None:
    u = await make_user(cloud, "leaver", password="pw")
    token = await token_of(cloud, "leaver", "pw")
    r = await cloud.patch(f"/users/{u['id']}", {"user": {"enabled": False}})
    assert r.status_code == 200 and r.json()["user"]["enabled"] is False
    assert await check_token(cloud, token) == 404
    assert (await cloud.token("leaver", "pw")).status_code == 401
    # re-enabling does not bring the old token back
    await cloud.patch(f"/users/{u['id']}", {"user": {"enabled": True}})
    assert await check_token(cloud, token) == 404


async def test_self_service_password_change(cloud: Cloud) -> None:
    u = await make_user(cloud, "selfie", password="first-pw")
    token = await token_of(cloud, "selfie", "first-pw")
    r = await change_password(cloud, u["id"], {"user": {
        "original_password": "wrong", "password": "second-pw"}}, token)
    assert r.status_code == 401
    for bad in ({"user": {"password": "x"}}, {"user": {"original_password": "first-pw"}},
                {"user": {"original_password": "first-pw", "password": "x", "extra": 1}}, {}):
        assert (await change_password(cloud, u["id"], bad, token)).status_code == 400, bad
    r = await change_password(cloud, u["id"], {"user": {
        "original_password": "first-pw", "password": "second-pw"}}, token)
    assert r.status_code == 204
    assert await check_token(cloud, token) == 404
    assert (await cloud.token("selfie", "first-pw")).status_code == 401
    # revocation works at one-second resolution: a token from the same second
    # as the change would be revoked too
    await asyncio.sleep(1.1)
    new = await token_of(cloud, "selfie", "second-pw")
    assert await check_token(cloud, new) == 200


async def test_password_change_needs_no_token_but_the_original(cloud: Cloud) -> None:
    u = await make_user(cloud, "tokenless", password="pw1")
    r = await change_password(cloud, u["id"], {"user": {"original_password": "pw1", "password": "pw2"}})
    assert r.status_code == 204
    r = await change_password(cloud, "nobody", {"user": {"original_password": "x", "password": "y"}})
    assert r.status_code == 401


async def test_lock_password_blocks_self_service(cloud: Cloud) -> None:
    u = await make_user(cloud, "locked", password="pw", options={"lock_password": True})
    r = await change_password(cloud, u["id"], {"user": {"original_password": "pw", "password": "n"}})
    assert r.status_code == 400
    # the administrator still can
    assert (await cloud.patch(f"/users/{u['id']}", {"user": {"password": "n"}})).status_code == 200


async def test_disabled_user_cannot_change_password(cloud: Cloud) -> None:
    u = await make_user(cloud, "off", password="pw", enabled=False)
    r = await change_password(cloud, u["id"], {"user": {"original_password": "pw", "password": "n"}})
    assert r.status_code == 401


async def test_user_groups(cloud: Cloud) -> None:
    u = await make_user(cloud, "joiner")
    g1 = (await cloud.post("/groups", {"group": {"name": "g1"}})).json()["group"]
    g2 = (await cloud.post("/groups", {"group": {"name": "g2"}})).json()["group"]
    await cloud.put(f"/groups/{g1['id']}/users/{u['id']}")
    await cloud.put(f"/groups/{g2['id']}/users/{u['id']}")
    r = await cloud.get(f"/users/{u['id']}/groups")
    assert r.status_code == 200
    assert [g["name"] for g in r.json()["groups"]] == ["g1", "g2"]
    assert r.json()["groups"][0]["membership_expires_at"] is None
    r = await cloud.get(f"/users/{u['id']}/groups?name=g2")
    assert [g["name"] for g in r.json()["groups"]] == ["g2"]
    assert (await cloud.get("/users/nobody/groups")).status_code == 404
    # deleting the user ends its memberships
    await cloud.delete(f"/users/{u['id']}")
    assert (await cloud.get(f"/groups/{g1['id']}/users")).json()["users"] == []


async def test_member_sees_only_itself(cloud: Cloud) -> None:
    t = cloud.demo_token
    users = {u["name"]: u["id"] for u in (await cloud.get("/users")).json()["users"]}
    r = await cloud.get(f"/users/{users['demo']}", token=t)
    assert r.status_code == 200 and r.json()["user"]["name"] == "demo"
    assert (await cloud.get(f"/users/{users['demo']}/groups", token=t)).status_code == 200
    assert (await cloud.get(f"/users/{users['admin']}", token=t)).status_code == 403
    assert (await cloud.get(f"/users/{users['admin']}/groups", token=t)).status_code == 403
    assert (await cloud.get("/users/nobody", token=t)).status_code == 403
    assert (await cloud.get("/users", token=t)).status_code == 403
    assert (await cloud.post("/users", {"user": {"name": "x"}}, token=t)).status_code == 403
    r = await cloud.patch(f"/users/{users['demo']}", {"user": {"enabled": False}}, token=t)
    assert r.status_code == 403
    assert (await cloud.delete(f"/users/{users['admin']}", token=t)).status_code == 403
