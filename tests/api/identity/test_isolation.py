"""A member of one project sees nothing of another project, and a password never
appears in a response or a log line."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import Cloud

SECRET = "pw-that-must-not-leak-7f3a"


async def _project_with_member(cloud: Cloud, name: str) -> tuple[str, str, str]:
    """(project id, user id, the user's token)."""
    r = await cloud.post("/projects", {"project": {"name": name, "domain_id": "default"}})
    pid = r.json()["project"]["id"]
    r = await cloud.post("/users", {"user": {"name": f"{name}-user", "password": SECRET,
                                             "default_project_id": pid}})
    assert SECRET not in r.text
    uid = r.json()["user"]["id"]
    role = (await cloud.get("/roles?name=member")).json()["roles"][0]["id"]
    assert (await cloud.put(f"/projects/{pid}/users/{uid}/roles/{role}")).status_code == 204
    r = await cloud.token(f"{name}-user", SECRET, project=name)
    assert r.status_code == 201
    return pid, uid, r.headers["X-Subject-Token"]


async def test_member_of_one_project_sees_nothing_of_another(cloud: Cloud) -> None:
    pa, ua, ta = await _project_with_member(cloud, "alpha")
    pb, ub, tb = await _project_with_member(cloud, "beta")
    # b's own things, as b
    r = await cloud.post(f"/users/{ub}/credentials/OS-EC2", {"tenant_id": pb}, token=tb)
    assert r.status_code == 201
    r = await cloud.post(f"/users/{ub}/application_credentials", {"application_credential": {"name": "b"}}, token=tb)
    assert r.status_code == 201
    # a looks at b's project, user, credentials, assignments
    assert (await cloud.get(f"/projects/{pb}", token=ta)).status_code == 403
    assert (await cloud.get(f"/users/{ub}", token=ta)).status_code == 403
    assert (await cloud.get(f"/users/{ub}/projects", token=ta)).status_code == 403
    assert (await cloud.get("/users", token=ta)).status_code == 403
    assert (await cloud.get(f"/users/{ub}/credentials/OS-EC2", token=ta)).status_code in (403, 404)
    assert (await cloud.get(f"/users/{ub}/application_credentials", token=ta)).status_code in (403, 404)
    r = await cloud.get("/credentials", token=ta)
    assert r.status_code in (200, 403)
    if r.status_code == 200:
        assert all(c["user_id"] == ua for c in r.json()["credentials"])
    assert (await cloud.get(f"/role_assignments?scope.project.id={pb}", token=ta)).status_code == 403
    r = await cloud.get("/auth/projects", token=ta)
    assert [p["id"] for p in r.json()["projects"]] == [pa]
    # a cannot scope a token to b's project
    r = await cloud.token("alpha-user", SECRET, project="beta")
    assert r.status_code == 401


async def test_passwords_are_never_logged(cloud: Cloud, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await _project_with_member(cloud, "gamma")
    await cloud.token("gamma-user", "wrong-" + SECRET, project="gamma")
    r = await cloud.patch("/users/" + (await cloud.get("/users?name=gamma-user")).json()["users"][0]["id"],
                          {"user": {"password": SECRET + "-2"}})
    assert r.status_code == 200 and SECRET not in r.text
    assert SECRET not in caplog.text
