"""Application credentials and access rules: the whole loop of creating one,
authenticating with it, what its tokens may do, and deleting it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from onestack.identity.models import Project, User
from tests.conftest import Cloud


async def _ids(cloud: Cloud) -> dict[str, str]:
    st = cloud.app.state.runtime.extras["identity"]
    async with st.read() as s:
        users = {u.name: u.id for u in await s.scalars(select(User))}
        projects = {p.name: p.id for p in await s.scalars(select(Project))}
    return {"admin": users["admin"], "demo": users["demo"], "demo_project": projects["demo"]}


async def _create(cloud: Cloud, token: str | None = None, user: str = "demo",
                  **attrs: Any) -> httpx.Response:
    ids = await _ids(cloud)
    body = {"name": "monitoring", **attrs}
    return await cloud.post(f"/users/{ids[user]}/application_credentials",
                            {"application_credential": body}, token=token or cloud.demo_token)


async def _auth(cloud: Cloud, ac: dict[str, Any], secret: str | None = None,
                by_name: bool = False) -> httpx.Response:
    ref: dict[str, Any] = {"secret": secret or ac["secret"]}
    if by_name:
        ref.update(name=ac["name"], user={"name": "demo", "domain": {"id": "default"}})
    else:
        ref["id"] = ac["id"]
    return await cloud.client.post("/identity/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["application_credential"], "application_credential": ref}}})


async def test_create_and_authenticate(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    r = await _create(cloud, description="for the monitoring agent")
    assert r.status_code == 201, r.text
    ac = r.json()["application_credential"]
    assert ac["name"] == "monitoring" and ac["description"] == "for the monitoring agent"
    assert ac["project_id"] == ids["demo_project"]
    assert ac["unrestricted"] is False and ac["expires_at"] is None
    assert ac["access_rules"] == []
    assert {r["name"] for r in ac["roles"]} == {"member", "reader"}
    assert all(r["domain_id"] is None for r in ac["roles"])
    assert len(ac["secret"]) == 86
    assert ac["links"]["self"].endswith(
        f"/v3/users/{ids['demo']}/application_credentials/{ac['id']}")

    for by_name in (False, True):
        r = await _auth(cloud, ac, by_name=by_name)
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        assert token["methods"] == ["application_credential"]
        assert token["project"]["id"] == ids["demo_project"]
        assert token["application_credential"] == {
            "id": ac["id"], "name": "monitoring", "restricted": True}
    assert (await _auth(cloud, ac, secret="wrong")).status_code == 401

    # the secret is never shown again
    r = await cloud.get(f"/users/{ids['demo']}/application_credentials/{ac['id']}",
                        token=cloud.demo_token)
    assert r.status_code == 200
    shown = r.json()["application_credential"]
    assert "secret" not in shown and shown["id"] == ac["id"]
    r = await cloud.get(f"/users/{ids['demo']}/application_credentials", token=cloud.demo_token)
    assert [x["id"] for x in r.json()["application_credentials"]] == [ac["id"]]
    r = await cloud.get(f"/users/{ids['demo']}/application_credentials?name=other",
                        token=cloud.demo_token)
    assert r.json()["application_credentials"] == []


async def test_restricted_token_cannot_manage_credentials(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    ac = (await _create(cloud)).json()["application_credential"]
    restricted = (await _auth(cloud, ac)).headers["X-Subject-Token"]
    r = await _create(cloud, token=restricted, name="another")
    assert r.status_code == 403
    assert "application_credential" in r.json()["error"]["message"]
    r = await cloud.delete(f"/users/{ids['demo']}/application_credentials/{ac['id']}",
                           token=restricted)
    assert r.status_code == 403
    r = await cloud.post(f"/users/{ids['demo']}/credentials/OS-EC2",
                         {"tenant_id": ids["demo_project"]}, token=restricted)
    assert r.status_code == 403
    # reading is fine
    r = await cloud.get(f"/users/{ids['demo']}/application_credentials", token=restricted)
    assert r.status_code == 200

    # an unrestricted one may
    free = (await _create(cloud, name="free", unrestricted=True)).json()["application_credential"]
    assert free["unrestricted"] is True
    unrestricted = (await _auth(cloud, free)).headers["X-Subject-Token"]
    r = await _create(cloud, token=unrestricted, name="child")
    assert r.status_code == 201, r.text
    r = await cloud.post(f"/users/{ids['demo']}/credentials/OS-EC2",
                         {"tenant_id": ids["demo_project"]}, token=unrestricted)
    assert r.status_code == 201


async def test_roles_are_a_subset_of_the_token(cloud: Cloud) -> None:
    r = await _create(cloud, roles=[{"name": "reader"}])
    assert r.status_code == 201, r.text
    ac = r.json()["application_credential"]
    assert [x["name"] for x in ac["roles"]] == ["reader"]
    token = (await _auth(cloud, ac)).json()["token"]
    assert [x["name"] for x in token["roles"]] == ["reader"]

    # member implies reader: both come along
    r = await _create(cloud, name="m", roles=[{"name": "member"}])
    assert {x["name"] for x in r.json()["application_credential"]["roles"]} == {"member", "reader"}

    r = await _create(cloud, name="x", roles=[{"name": "admin"}])
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "Invalid application credential: Cannot create an application credential with "
        "unassigned role")
    r = await _create(cloud, name="y", roles=[{"name": "no-such-role"}])
    assert r.status_code == 404
    r = await _create(cloud, name="z", roles=[{"id": "abc", "name": "reader"}])
    assert r.status_code == 400


async def test_validation_and_conflicts(cloud: Cloud) -> None:
    assert (await _create(cloud)).status_code == 201
    r = await _create(cloud)
    assert r.status_code == 409
    assert r.json()["error"]["message"] == (
        "Conflict occurred attempting to store application_credential - Duplicate entry.")
    assert (await _create(cloud, name="")).status_code == 400
    assert (await _create(cloud, name="a", colour="blue")).status_code == 400
    assert (await _create(cloud, name="b", unrestricted="yes")).status_code == 400
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    r = await _create(cloud, name="c", expires_at=past)
    assert r.status_code == 400
    assert "expires_at" in r.json()["error"]["message"]
    assert (await _create(cloud, name="d", expires_at="someday")).status_code == 400
    r = await _create(cloud, name="e", expires_at="2999-01-02T03:04:05", secret="my-own-secret")
    assert r.status_code == 201
    ac = r.json()["application_credential"]
    assert ac["expires_at"] == "2999-01-02T03:04:05.000000"
    assert ac["secret"] == "my-own-secret"
    assert (await _auth(cloud, ac)).status_code == 201


async def test_ownership(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    ac = (await _create(cloud)).json()["application_credential"]
    # nobody creates one for somebody else, not even an admin
    assert (await _create(cloud, user="admin")).status_code == 403
    assert (await _create(cloud, token=cloud.admin_token)).status_code == 403
    admin_ac = (await _create(cloud, token=cloud.admin_token, user="admin")).json()
    admin_ac_id = admin_ac["application_credential"]["id"]

    base_demo = f"/users/{ids['demo']}/application_credentials"
    base_admin = f"/users/{ids['admin']}/application_credentials"
    assert (await cloud.get(base_admin, token=cloud.demo_token)).status_code == 403
    assert (await cloud.get(f"{base_admin}/{admin_ac_id}", token=cloud.demo_token)).status_code == 403
    # someone else's credential through one's own path: the real owner is checked
    assert (await cloud.get(f"{base_demo}/{admin_ac_id}", token=cloud.demo_token)).status_code == 403
    assert (await cloud.delete(f"{base_demo}/{admin_ac_id}", token=cloud.demo_token)).status_code == 403
    # admins read and delete anyone's
    assert (await cloud.get(base_demo)).json()["application_credentials"][0]["id"] == ac["id"]
    assert (await cloud.get(f"{base_admin}/{ac['id']}")).status_code == 404
    r = await cloud.get(f"{base_demo}/nope", token=cloud.demo_token)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Could not find Application Credential: nope."
    assert (await cloud.delete(f"{base_demo}/{ac['id']}")).status_code == 204


async def test_delete_invalidates_tokens(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    ac = (await _create(cloud)).json()["application_credential"]
    token = (await _auth(cloud, ac)).headers["X-Subject-Token"]
    path = f"/users/{ids['demo']}/application_credentials"
    assert (await cloud.get(path, token=token)).status_code == 200
    assert (await cloud.delete(f"{path}/{ac['id']}", token=cloud.demo_token)).status_code == 204
    assert (await cloud.get(path, token=token)).status_code == 401
    assert (await _auth(cloud, ac)).status_code == 401


async def test_access_rules(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    rules = [{"service": "compute", "method": "GET", "path": "/v2.1/servers"},
             {"service": "image", "method": "GET", "path": "/v2/images"}]
    r = await _create(cloud, access_rules=rules)
    assert r.status_code == 201, r.text
    ac = r.json()["application_credential"]
    got = {(x["service"], x["method"], x["path"]) for x in ac["access_rules"]}
    assert got == {(x["service"], x["method"], x["path"]) for x in rules}
    # the same rule again is the same rule
    ac2 = (await _create(cloud, name="two", access_rules=rules[:1])).json()["application_credential"]
    shared = next(x for x in ac["access_rules"] if x["service"] == "compute")
    assert ac2["access_rules"] == [shared]
    # and a rule can be named by id
    ac3 = (await _create(cloud, name="three", access_rules=[{"id": shared["id"]}])).json()
    assert ac3["application_credential"]["access_rules"] == [shared]

    base = f"/users/{ids['demo']}/access_rules"
    r = await cloud.get(base, token=cloud.demo_token)
    assert len(r.json()["access_rules"]) == 2
    r = await cloud.get(f"{base}?service=image", token=cloud.demo_token)
    assert [x["path"] for x in r.json()["access_rules"]] == ["/v2/images"]
    r = await cloud.get(f"{base}/{shared['id']}", token=cloud.demo_token)
    assert r.status_code == 200
    rule = r.json()["access_rule"]
    assert rule["path"] == "/v2.1/servers"
    assert rule["links"]["self"].endswith(f"{base}/{shared['id']}")
    assert (await cloud.get(base, token=cloud.admin_token)).status_code == 200
    admin_rules = f"/users/{ids['admin']}/access_rules"
    assert (await cloud.get(admin_rules, token=cloud.demo_token)).status_code == 403

    r = await cloud.delete(f"{base}/{shared['id']}", token=cloud.demo_token)
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "May not delete access rule in use"
    for x in (ac, ac2, ac3["application_credential"]):
        await cloud.delete(f"/users/{ids['demo']}/application_credentials/{x['id']}")
    assert (await cloud.delete(f"{base}/{shared['id']}", token=cloud.demo_token)).status_code == 204
    r = await cloud.get(f"{base}/{shared['id']}", token=cloud.demo_token)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Could not find Access Rule: {shared['id']}."

    bad = [{"service": "compute", "method": "FETCH", "path": "/x"}]
    assert (await _create(cloud, name="bad", access_rules=bad)).status_code == 400
    bad = [{"service": "compute", "method": "GET", "path": "no-slash"}]
    assert (await _create(cloud, name="bad", access_rules=bad)).status_code == 400
    assert (await _create(cloud, name="bad", access_rules=[{"service": "x"}])).status_code == 400


async def test_needs_authentication(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    r = await cloud.client.get(f"/identity/v3/users/{ids['demo']}/application_credentials")
    assert r.status_code == 401
