"""Grants on projects, domains (also inherited) and the system, and their effect
on tokens."""

from __future__ import annotations

from typing import Any

from onestack.identity.models import Group, Membership, Password, Project, User
from tests.api.identity.test_roles import create_role, demo_ids, make_domain, role_id
from tests.conftest import Cloud

PASSWORD = "secret-password-1"


def _state(cloud: Cloud) -> Any:
    return cloud.app.state.runtime.extras["identity"]


async def make_project(
    cloud: Cloud, name: str, domain_id: str = "default", parent_id: str | None = None
) -> str:
    async with _state(cloud).write() as session:
        p = Project(name=name, domain_id=domain_id, parent_id=parent_id or domain_id, extra={})
        session.add(p)
        await session.flush()
        return p.id


async def make_user(cloud: Cloud, name: str, domain_id: str = "default") -> str:
    st = _state(cloud)
    async with st.write() as session:
        u = User(name=name, domain_id=domain_id, options={}, extra={})
        session.add(u)
        await session.flush()
        session.add(Password(user_id=u.id, hash=await st.hasher.hash(PASSWORD)))
        return u.id


async def make_group(cloud: Cloud, name: str, domain_id: str = "default", *members: str) -> str:
    async with _state(cloud).write() as session:
        g = Group(name=name, domain_id=domain_id, extra={})
        session.add(g)
        await session.flush()
        for m in members:
            session.add(Membership(user_id=m, group_id=g.id))
        return g.id


async def project_token(cloud: Cloud, user: str, project_id: str) -> int:
    """The status of a password token request for ``user`` scoped to a project id."""
    auth = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "domain": {"id": "default"}, "password": PASSWORD}},
        },
        "scope": {"project": {"id": project_id}},
    }
    r = await cloud.client.post(f"{cloud.identity}/auth/tokens", json={"auth": auth})
    return r.status_code


async def test_project_user_grant_lifecycle(cloud: Cloud) -> None:
    user = await make_user(cloud, "alice")
    project = await make_project(cloud, "p1")
    reader = await role_id(cloud, "reader")
    path = f"/projects/{project}/users/{user}/roles/{reader}"
    assert (await cloud.head(path)).status_code == 404
    r = await cloud.get(path)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == (
        f"Could not find role assignment with role: {reader}, user or group: {user}, "
        f"project, domain, or system: {project}."
    )
    assert await project_token(cloud, "alice", project) == 401

    assert (await cloud.put(path)).status_code == 204
    assert (await cloud.put(path)).status_code == 204  # idempotent
    assert (await cloud.head(path)).status_code == 204
    assert (await cloud.get(path)).status_code == 204
    r = await cloud.get(f"/projects/{project}/users/{user}/roles")
    assert r.status_code == 200
    body = r.json()
    assert [x["name"] for x in body["roles"]] == ["reader"]
    assert body["roles"][0]["links"]["self"].endswith(f"/v3/roles/{reader}")
    assert body["links"]["self"].endswith(f"/projects/{project}/users/{user}/roles")
    assert await project_token(cloud, "alice", project) == 201

    assert (await cloud.delete(path)).status_code == 204
    assert (await cloud.delete(path)).status_code == 404
    assert (await cloud.get(f"/projects/{project}/users/{user}/roles")).json()["roles"] == []
    assert await project_token(cloud, "alice", project) == 401


async def test_removing_the_only_role_invalidates_tokens_at_once(cloud: Cloud) -> None:
    demo_user, demo_project = await demo_ids(cloud)
    member = await role_id(cloud, "member")
    check = {"X-Auth-Token": cloud.demo_token, "X-Subject-Token": cloud.demo_token}
    assert (
        await cloud.client.get(f"{cloud.identity}/auth/tokens", headers=check)
    ).status_code == 200
    path = f"/projects/{demo_project}/users/{demo_user}/roles/{member}"
    assert (await cloud.delete(path)).status_code == 204
    r = await cloud.client.get(f"{cloud.identity}/auth/tokens", headers=check)
    assert r.status_code == 401
    # admin sees the token as gone too
    r = await cloud.client.get(
        f"{cloud.identity}/auth/tokens",
        headers={"X-Auth-Token": cloud.admin_token, "X-Subject-Token": cloud.demo_token},
    )
    assert r.status_code == 404


async def test_group_grants_on_project(cloud: Cloud) -> None:
    user = await make_user(cloud, "bob")
    group = await make_group(cloud, "devs", "default", user)
    project = await make_project(cloud, "p2")
    member = await role_id(cloud, "member")
    path = f"/projects/{project}/groups/{group}/roles/{member}"
    assert (await cloud.put(path)).status_code == 204
    assert (await cloud.head(path)).status_code == 204
    r = await cloud.get(f"/projects/{project}/groups/{group}/roles")
    assert [x["name"] for x in r.json()["roles"]] == ["member"]
    # the user holds it through the group
    assert await project_token(cloud, "bob", project) == 201
    # the user has no direct grant
    assert (await cloud.head(f"/projects/{project}/users/{user}/roles/{member}")).status_code == 404
    assert (await cloud.delete(path)).status_code == 204
    assert await project_token(cloud, "bob", project) == 401


async def test_domain_grants(cloud: Cloud) -> None:
    user = await make_user(cloud, "carol")
    group = await make_group(cloud, "ops")
    admin = await role_id(cloud, "admin")
    for actor, ident in (("users", user), ("groups", group)):
        path = f"/domains/default/{actor}/{ident}/roles/{admin}"
        assert (await cloud.put(path)).status_code == 204
        assert (await cloud.head(path)).status_code == 204
        r = await cloud.get(f"/domains/default/{actor}/{ident}/roles")
        assert [x["name"] for x in r.json()["roles"]] == ["admin"]
    r = await cloud.token("carol", PASSWORD, domain="default")
    assert r.status_code == 201
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"admin", "manager", "member", "reader"}
    # a domain grant is not inherited by the domain's projects
    project = await make_project(cloud, "p3")
    assert await project_token(cloud, "carol", project) == 401
    assert (await cloud.delete(f"/domains/default/users/{user}/roles/{admin}")).status_code == 204
    assert (await cloud.token("carol", PASSWORD, domain="default")).status_code == 401


async def test_inherited_grants(cloud: Cloud) -> None:
    user = await make_user(cloud, "dave")
    group = await make_group(cloud, "inh", "default", user)
    parent = await make_project(cloud, "parent")
    child = await make_project(cloud, "child", parent_id=parent)
    reader = await role_id(cloud, "reader")
    member = await role_id(cloud, "member")

    # inherited on a project: its subtree gets the role, the project itself doesn't
    path = f"/OS-INHERIT/projects/{parent}/users/{user}/roles/{member}/inherited_to_projects"
    assert (await cloud.head(path)).status_code == 404
    assert (await cloud.put(path)).status_code == 204
    assert (await cloud.head(path)).status_code == 204
    assert (await cloud.get(path)).status_code == 204
    assert await project_token(cloud, "dave", child) == 201
    assert await project_token(cloud, "dave", parent) == 401
    # it is not a plain grant on the project
    assert (await cloud.head(f"/projects/{parent}/users/{user}/roles/{member}")).status_code == 404
    assert (await cloud.get(f"/projects/{parent}/users/{user}/roles")).json()["roles"] == []
    assert (await cloud.delete(path)).status_code == 204
    assert await project_token(cloud, "dave", child) == 401

    # inherited on a domain (through a group): every project of the domain
    dpath = f"/OS-INHERIT/domains/default/groups/{group}/roles/{reader}/inherited_to_projects"
    assert (await cloud.put(dpath)).status_code == 204
    assert await project_token(cloud, "dave", parent) == 201
    assert await project_token(cloud, "dave", child) == 201
    r = await cloud.get(f"/OS-INHERIT/domains/default/groups/{group}/roles/inherited_to_projects")
    assert [x["name"] for x in r.json()["roles"]] == ["reader"]
    assert (await cloud.get(f"/domains/default/groups/{group}/roles")).json()["roles"] == []
    assert (await cloud.token("dave", PASSWORD, domain="default")).status_code == 401
    assert (await cloud.delete(dpath)).status_code == 204
    assert (await cloud.delete(dpath)).status_code == 404

    upath = f"/OS-INHERIT/domains/default/users/{user}/roles/{reader}/inherited_to_projects"
    assert (await cloud.put(upath)).status_code == 204
    r = await cloud.get(f"/OS-INHERIT/domains/default/users/{user}/roles/inherited_to_projects")
    assert [x["name"] for x in r.json()["roles"]] == ["reader"]


async def test_system_grants(cloud: Cloud) -> None:
    user = await make_user(cloud, "erin")
    group = await make_group(cloud, "sys", "default")
    reader = await role_id(cloud, "reader")
    path = f"/system/users/{user}/roles/{reader}"
    assert (await cloud.head(path)).status_code == 404
    r = await cloud.get(path)
    assert r.json()["error"]["message"].endswith("project, domain, or system: system.")
    assert (await cloud.put(path)).status_code == 204
    assert (await cloud.head(path)).status_code == 204
    r = await cloud.get(f"/system/users/{user}/roles")
    assert r.status_code == 200
    assert [(x["name"], x["domain_id"]) for x in r.json()["roles"]] == [("reader", None)]
    r = await cloud.token("erin", PASSWORD, system=True)
    assert r.status_code == 201
    reader_token = r.headers["X-Subject-Token"]
    # a system reader reads grants and assignments but changes nothing
    assert (await cloud.get(f"/system/users/{user}/roles", token=reader_token)).status_code == 200
    assert (await cloud.get("/role_assignments", token=reader_token)).status_code == 200
    assert (
        await cloud.put(f"/system/groups/{group}/roles/{reader}", token=reader_token)
    ).status_code == 403
    assert (await cloud.delete(path)).status_code == 204
    assert (await cloud.token("erin", PASSWORD, system=True)).status_code == 401

    gpath = f"/system/groups/{group}/roles/{reader}"
    assert (await cloud.put(gpath)).status_code == 204
    assert (await cloud.head(gpath)).status_code == 204
    r = await cloud.get(f"/system/groups/{group}/roles")
    assert [x["name"] for x in r.json()["roles"]] == ["reader"]
    assert (await cloud.delete(gpath)).status_code == 204
    assert (await cloud.delete(gpath)).status_code == 404

    dom = await make_domain(cloud, "sysdom")
    drole = await create_role(cloud, "local", domain_id=dom)
    r = await cloud.put(f"/system/users/{user}/roles/{drole['id']}")
    assert r.status_code == 400
    assert "domain-specific role" in r.json()["error"]["message"]


async def test_not_found(cloud: Cloud) -> None:
    user = await make_user(cloud, "frank")
    project = await make_project(cloud, "p4")
    reader = await role_id(cloud, "reader")
    cases = [
        (f"/projects/{project}/users/nouser/roles/{reader}", "Could not find user: nouser."),
        (f"/projects/{project}/groups/nogroup/roles/{reader}", "Could not find group: nogroup."),
        (f"/projects/noproj/users/{user}/roles/{reader}", "Could not find project: noproj."),
        (f"/projects/{project}/users/{user}/roles/norole", "Could not find role: norole."),
        (f"/domains/nodom/users/{user}/roles/{reader}", "Could not find domain: nodom."),
        # a project is not a domain, nor a domain a project
        (f"/domains/{project}/users/{user}/roles/{reader}", f"Could not find domain: {project}."),
        (f"/projects/default/users/{user}/roles/{reader}", "Could not find project: default."),
        (f"/system/users/nouser/roles/{reader}", "Could not find user: nouser."),
        (f"/system/groups/{user}/roles/{reader}", f"Could not find group: {user}."),
        (
            f"/OS-INHERIT/domains/nodom/users/{user}/roles/{reader}/inherited_to_projects",
            "Could not find domain: nodom.",
        ),
    ]
    for path, message in cases:
        r = await cloud.put(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["message"] == message
        assert (await cloud.head(path)).status_code == 404
    r = await cloud.get("/projects/noproj/users/nouser/roles")
    assert r.status_code == 404
    # revoking for a user that is gone: only the assignment matters
    r = await cloud.delete(f"/projects/{project}/users/gone/roles/{reader}")
    assert r.status_code == 404
    assert r.json()["error"]["message"].startswith("Could not find role assignment")


async def test_domain_role_must_match_project_domain(cloud: Cloud) -> None:
    user = await make_user(cloud, "gina")
    dom = await make_domain(cloud, "other")
    drole = await create_role(cloud, "localrole", domain_id=dom)
    project = await make_project(cloud, "p5")  # in default
    r = await cloud.put(f"/projects/{project}/users/{user}/roles/{drole['id']}")
    assert r.status_code == 403
    assert r.json()["error"]["message"] == (
        f"Project {project} must be in the same domain as the role {drole['id']} being assigned."
    )
    other_project = await make_project(cloud, "p6", domain_id=dom)
    r = await cloud.put(f"/projects/{other_project}/users/{user}/roles/{drole['id']}")
    assert r.status_code == 204


async def test_domain_role_implies_global_role_in_token(cloud: Cloud) -> None:
    hank = await make_user(cloud, "hank2")
    dom = await make_domain(cloud, "dd")
    project = await make_project(cloud, "p7", domain_id=dom)
    drole = await create_role(cloud, "dmember", domain_id=dom)
    member = await role_id(cloud, "member")
    assert (await cloud.put(f"/roles/{drole['id']}/implies/{member}")).status_code == 201
    assert (
        await cloud.put(f"/projects/{project}/users/{hank}/roles/{drole['id']}")
    ).status_code == 204
    auth = {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {"name": "hank2", "domain": {"id": "default"}, "password": PASSWORD}
            },
        },
        "scope": {"project": {"id": project}},
    }
    r = await cloud.client.post(f"{cloud.identity}/auth/tokens", json={"auth": auth})
    assert r.status_code == 201
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"member", "reader"}


async def test_member_cannot_manage_grants(cloud: Cloud) -> None:
    demo_user, demo_project = await demo_ids(cloud)
    member = await role_id(cloud, "member")
    demo = cloud.demo_token
    path = f"/projects/{demo_project}/users/{demo_user}/roles/{member}"
    assert (await cloud.head(path, token=demo)).status_code == 403
    assert (await cloud.put(path, token=demo)).status_code == 403
    assert (await cloud.delete(path, token=demo)).status_code == 403
    assert (
        await cloud.get(f"/projects/{demo_project}/users/{demo_user}/roles", token=demo)
    ).status_code == 403
    assert (await cloud.get(f"/system/users/{demo_user}/roles", token=demo)).status_code == 403
    assert (
        await cloud.put(f"/system/users/{demo_user}/roles/{member}", token=demo)
    ).status_code == 403
    r = await cloud.client.put(f"{cloud.identity}{path}")
    assert r.status_code == 401
