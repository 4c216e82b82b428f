"""Tokens: issue, validate, check, revoke, scopes and the failures Keystone gives."""

from __future__ import annotations

import pytest

from tests.conftest import Cloud


async def test_issue_project_scoped_token_has_catalog_and_roles(cloud: Cloud) -> None:
    r = await cloud.token("admin", cloud.creds.admin_password, project="admin")
    assert r.status_code == 201
    token = r.json()["token"]
    assert r.headers["X-Subject-Token"]
    assert token["project"]["name"] == "admin"
    assert token["project"]["domain"] == {"id": "default", "name": "Default"}
    assert {r["name"] for r in token["roles"]} == {"admin", "manager", "member", "reader"}
    assert token["methods"] == ["password"]
    assert token["user"]["name"] == "admin"
    assert len(token["audit_ids"]) == 1
    types = {s["type"] for s in token["catalog"]}
    assert "identity" in types
    assert token["expires_at"].endswith("Z")
    assert r.headers["x-openstack-request-id"].startswith("req-")


async def test_nocatalog(cloud: Cloud) -> None:
    r = await cloud.client.post(
        "/identity/v3/auth/tokens?nocatalog",
        json={"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "demo", "domain": {"name": "Default"}, "password": cloud.creds.demo_password}}}}},
    )
    assert r.status_code == 201
    assert "catalog" not in r.json()["token"]


async def test_unscoped_request_uses_default_project(cloud: Cloud) -> None:
    r = await cloud.token("demo", cloud.creds.demo_password)
    assert r.status_code == 201
    assert r.json()["token"]["project"]["name"] == "demo"


async def test_unscoped_explicit(cloud: Cloud) -> None:
    r = await cloud.client.post("/identity/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "demo", "domain": {"id": "default"}, "password": cloud.creds.demo_password}}},
        "scope": "unscoped"}})
    assert r.status_code == 201
    body = r.json()["token"]
    assert "project" not in body and "roles" not in body


async def test_system_and_domain_scope(cloud: Cloud) -> None:
    r = await cloud.token("admin", cloud.creds.admin_password, system=True)
    assert r.status_code == 201
    assert r.json()["token"]["system"] == {"all": True}
    # admin has no role on the default domain: a domain-scoped token is refused
    r = await cloud.token("admin", cloud.creds.admin_password, domain="default")
    assert r.status_code == 401


@pytest.mark.parametrize(
    "user,password,domain",
    [("admin", "wrong", "default"), ("nobody", "x", "default"), ("admin", "x", "nodomain")],
)
async def test_bad_credentials_all_look_the_same(cloud: Cloud, user: str, password: str, domain: str) -> None:
    r = await cloud.token(user, password, user_domain=domain)
    assert r.status_code == 401
    assert r.json() == {"error": {"code": 401, "title": "Unauthorized",
                                  "message": "The request you have made requires authentication."}}
    assert r.headers["WWW-Authenticate"].startswith("Keystone uri=")


async def test_demo_cannot_scope_to_admin_project(cloud: Cloud) -> None:
    r = await cloud.token("demo", cloud.creds.demo_password, project="admin")
    assert r.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"auth": {}}',
        b'{"auth": {"identity": {"methods": "password"}}}',
        b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin"}}}}}',
    ],
)
async def test_malformed_auth_requests(cloud: Cloud, body: bytes) -> None:
    r = await cloud.client.post("/identity/v3/auth/tokens", content=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == 400


async def test_unsupported_method(cloud: Cloud) -> None:
    r = await cloud.client.post("/identity/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["totp"], "totp": {}}}})
    assert r.status_code == 401


async def test_validate_check_revoke(cloud: Cloud) -> None:
    r = await cloud.token("demo", cloud.creds.demo_password, project="demo")
    subject = r.headers["X-Subject-Token"]
    hdrs = {"X-Auth-Token": cloud.admin_token, "X-Subject-Token": subject}
    r = await cloud.client.get("/identity/v3/auth/tokens", headers=hdrs)
    assert r.status_code == 200
    assert r.json()["token"]["user"]["name"] == "demo"
    assert r.headers["X-Subject-Token"] == subject
    r = await cloud.client.get("/identity/v3/auth/tokens?nocatalog=1", headers=hdrs)
    assert "catalog" not in r.json()["token"]
    r = await cloud.client.head("/identity/v3/auth/tokens", headers=hdrs)
    assert r.status_code == 200
    # a user may validate their own token
    own = {"X-Auth-Token": subject, "X-Subject-Token": subject}
    assert (await cloud.client.get("/identity/v3/auth/tokens", headers=own)).status_code == 200
    r = await cloud.client.delete("/identity/v3/auth/tokens", headers=hdrs)
    assert r.status_code == 204
    r = await cloud.client.get("/identity/v3/auth/tokens", headers=hdrs)
    assert r.status_code == 404
    # and the revoked token no longer authenticates anything
    r = await cloud.get("/auth/projects", token=subject)
    assert r.status_code == 401


async def test_member_cannot_validate_someone_elses_token(cloud: Cloud) -> None:
    hdrs = {"X-Auth-Token": cloud.demo_token, "X-Subject-Token": cloud.admin_token}
    r = await cloud.client.get("/identity/v3/auth/tokens", headers=hdrs)
    assert r.status_code == 403


@pytest.mark.parametrize("garbage", ["garbage", "gAAAAAB" + "x" * 180, ""])
async def test_garbage_tokens(cloud: Cloud, garbage: str) -> None:
    r = await cloud.client.get("/identity/v3/auth/projects", headers={"X-Auth-Token": garbage})
    assert r.status_code == 401
    hdrs = {"X-Auth-Token": cloud.admin_token, "X-Subject-Token": garbage}
    r = await cloud.client.get("/identity/v3/auth/tokens", headers=hdrs)
    assert r.status_code == (404 if garbage else 400)


async def test_rescope_with_token_method(cloud: Cloud) -> None:
    r = await cloud.client.post("/identity/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "demo", "domain": {"id": "default"}, "password": cloud.creds.demo_password}}},
        "scope": "unscoped"}})
    unscoped = r.headers["X-Subject-Token"]
    parent = r.json()["token"]
    r = await cloud.client.post("/identity/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["token"], "token": {"id": unscoped}},
        "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}})
    assert r.status_code == 201
    token = r.json()["token"]
    assert set(token["methods"]) == {"token", "password"}
    assert token["audit_ids"][1] == parent["audit_ids"][0]
    assert token["expires_at"] <= parent["expires_at"]


async def test_expired_token_and_allow_expired(cloud: Cloud) -> None:
    from datetime import datetime, timedelta, timezone

    st = cloud.app.state.runtime.extras["identity"]
    r = await cloud.token("demo", cloud.creds.demo_password, project="demo")
    tok = r.json()["token"]
    payload = st.formatter.validate(r.headers["X-Subject-Token"])
    expired = st.formatter.create(
        type(payload)(**{**payload.__dict__, "expires_at": datetime.now(timezone.utc) - timedelta(seconds=5)})
    )
    hdrs = {"X-Auth-Token": cloud.admin_token, "X-Subject-Token": expired}
    assert (await cloud.client.get("/identity/v3/auth/tokens", headers=hdrs)).status_code == 404
    r = await cloud.client.get("/identity/v3/auth/tokens?allow_expired=1", headers=hdrs)
    assert r.status_code == 200
    assert r.json()["token"]["user"]["id"] == tok["user"]["id"]
    assert (await cloud.get("/auth/projects", token=expired)).status_code == 401


async def test_auth_projects_domains_system_catalog(cloud: Cloud) -> None:
    r = await cloud.get("/auth/projects", token=cloud.demo_token)
    assert [p["name"] for p in r.json()["projects"]] == ["demo"]
    r = await cloud.get("/auth/system", token=cloud.admin_token)
    assert r.json()["system"] == [{"all": True}]
    r = await cloud.get("/auth/system", token=cloud.demo_token)
    assert r.json()["system"] == []
    r = await cloud.get("/auth/domains", token=cloud.demo_token)
    assert r.json()["domains"] == []
    r = await cloud.get("/auth/catalog", token=cloud.demo_token)
    assert r.status_code == 200
    assert any(s["type"] == "identity" for s in r.json()["catalog"])


async def test_version_discovery(cloud: Cloud) -> None:
    r = await cloud.client.get("/identity/")
    assert r.status_code == 300
    v = r.json()["versions"]["values"][0]
    assert v["id"].startswith("v3.") and v["links"][0]["href"] == "http://onestack.test/identity/v3/"
    r = await cloud.client.get("/identity/v3")
    assert r.json()["version"]["status"] == "stable"


async def test_unknown_path_is_keystone_404(cloud: Cloud) -> None:
    r = await cloud.get("/nothing-here")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == 404


async def test_key_rotation_is_picked_up_without_restart(cloud: Cloud) -> None:
    from onestack.identity.fernet import KeyRepository, TokenFormatter

    st = cloud.app.state.runtime.extras["identity"]
    old = cloud.demo_token
    # another process (`onestack rotate-keys`, or another host) rotates the keys
    repo = KeyRepository(cloud.settings.path("fernet-keys"), 3)
    repo.rotate()
    outside = TokenFormatter(repo)
    payload = st.formatter.validate(old)
    fresh = outside.create(payload)  # made with the new primary key
    hdrs = {"X-Auth-Token": cloud.admin_token, "X-Subject-Token": fresh}
    assert (await cloud.client.get("/identity/v3/auth/tokens", headers=hdrs)).status_code == 200
    # tokens made before the rotation still validate
    hdrs["X-Subject-Token"] = old
    assert (await cloud.client.get("/identity/v3/auth/tokens", headers=hdrs)).status_code == 200
    # after enough rotations the old key is gone and so is the old token
    for _ in range(3):
        repo.rotate()
    st.tokens._keys_checked = 0.0  # the running process looks at most once a second
    assert (await cloud.client.get("/identity/v3/auth/tokens", headers=hdrs)).status_code in (401, 404)


async def test_unscoped_token_has_no_catalog(cloud: Cloud) -> None:
    r = await cloud.client.post("/identity/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": cloud.creds.admin_password}}},
        "scope": "unscoped"}})
    assert "catalog" not in r.json()["token"]


async def test_member_validating_a_revoked_token_gets_404(cloud: Cloud) -> None:
    r = await cloud.token("demo", cloud.creds.demo_password, project="demo")
    subject = r.headers["X-Subject-Token"]
    hdrs = {"X-Auth-Token": cloud.demo_token, "X-Subject-Token": subject}
    assert (await cloud.client.delete("/identity/v3/auth/tokens", headers=hdrs)).status_code == 204
    assert (await cloud.client.get("/identity/v3/auth/tokens", headers=hdrs)).status_code == 404
    assert (await cloud.client.head("/identity/v3/auth/tokens", headers=hdrs)).status_code == 404
