"""Roles and implied roles: CRUD, domain roles, options, inference rules."""

from __future__ import annotations

from typing import Any

from onestack import server
from onestack.identity import bootstrap
from onestack.identity.models import ROOT_DOMAIN, Project
from tests.conftest import Cloud


async def make_domain(cloud: Cloud, name: str) -> str:
    """A domain written straight to the database (the domains API is not ours)."""
    st = cloud.app.state.runtime.extras["identity"]
    async with st.write() as session:
        d = Project(name=name, domain_id=ROOT_DOMAIN, is_domain=True, extra={})
        session.add(d)
        await session.flush()
        return d.id


async def create_role(cloud: Cloud, name: str, **attrs: Any) -> dict[str, Any]:
    r = await cloud.post("/roles", {"role": {"name": name, **attrs}})
    assert r.status_code == 201, r.text
    return r.json()["role"]


async def demo_ids(cloud: Cloud) -> tuple[str, str]:
    """The demo user's id and the demo project's id, read from the demo token."""
    r = await cloud.client.get(
        f"{cloud.identity}/auth/tokens",
        headers={"X-Auth-Token": cloud.demo_token, "X-Subject-Token": cloud.demo_token},
    )
    token = r.json()["token"]
    return token["user"]["id"], token["project"]["id"]


async def role_id(cloud: Cloud, name: str) -> str:
    r = await cloud.get(f"/roles?name={name}")
    return r.json()["roles"][0]["id"]


async def test_create_show_list_update_delete(cloud: Cloud) -> None:
    role = await create_role(cloud, "observer", description="Looks", color="blue")
    assert role["name"] == "observer"
    assert role["description"] == "Looks"
    assert role["domain_id"] is None
    assert role["options"] == {}
    assert role["color"] == "blue"
    assert role["links"]["self"].endswith(f"/identity/v3/roles/{role['id']}")

    r = await cloud.get(f"/roles/{role['id']}")
    assert r.status_code == 200
    assert r.json()["role"] == role

    r = await cloud.get("/roles")
    assert r.status_code == 200
    body = r.json()
    names = {x["name"] for x in body["roles"]}
    assert {"admin", "manager", "member", "reader", "service", "observer"} <= names
    assert body["links"]["self"].endswith("/v3/roles")
    assert body["links"]["next"] is None

    r = await cloud.patch(
        f"/roles/{role['id']}", {"role": {"name": "watcher", "description": None}}
    )
    assert r.status_code == 200
    updated = r.json()["role"]
    assert updated["name"] == "watcher" and updated["description"] is None
    assert updated["color"] == "blue"

    assert (await cloud.delete(f"/roles/{role['id']}")).status_code == 204
    r = await cloud.get(f"/roles/{role['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Could not find role: {role['id']}."
    assert (await cloud.delete(f"/roles/{role['id']}")).status_code == 404


async def test_list_filters(cloud: Cloud) -> None:
    await create_role(cloud, "alpha-one")
    await create_role(cloud, "alpha-two")
    r = await cloud.get("/roles?name=alpha-one")
    assert [x["name"] for x in r.json()["roles"]] == ["alpha-one"]
    r = await cloud.get("/roles?name__startswith=alpha")
    assert sorted(x["name"] for x in r.json()["roles"]) == ["alpha-one", "alpha-two"]
    r = await cloud.get("/roles?name__icontains=TWO")
    assert [x["name"] for x in r.json()["roles"]] == ["alpha-two"]
    r = await cloud.get("/roles?name=nothing")
    assert r.json()["roles"] == []


async def test_domain_roles(cloud: Cloud) -> None:
    dom = await make_domain(cloud, "d1")
    role = await create_role(cloud, "dev", domain_id=dom)
    assert role["domain_id"] == dom
    # the same name globally and in another domain is fine
    await create_role(cloud, "dev")
    other = await make_domain(cloud, "d2")
    await create_role(cloud, "dev", domain_id=other)
    # global listing hides domain roles; ?domain_id shows them
    r = await cloud.get("/roles?name=dev")
    assert [x["domain_id"] for x in r.json()["roles"]] == [None]
    r = await cloud.get(f"/roles?domain_id={dom}")
    assert [x["id"] for x in r.json()["roles"]] == [role["id"]]
    # duplicates within a domain conflict
    r = await cloud.post("/roles", {"role": {"name": "dev", "domain_id": dom}})
    assert r.status_code == 409
    assert r.json()["error"]["message"] == (
        "Conflict occurred attempting to store role - "
        f"Duplicate entry found with name dev at domain ID {dom}."
    )
    # domain_id cannot change
    r = await cloud.patch(f"/roles/{role['id']}", {"role": {"domain_id": other}})
    assert r.status_code == 400
    r = await cloud.patch(f"/roles/{role['id']}", {"role": {"domain_id": dom, "name": "dev2"}})
    assert r.status_code == 200
    r = await cloud.post("/roles", {"role": {"name": "x", "domain_id": "nosuchdomain"}})
    assert r.status_code == 404


async def test_duplicate_global_name(cloud: Cloud) -> None:
    r = await cloud.post("/roles", {"role": {"name": "member"}})
    assert r.status_code == 409
    assert r.json()["error"]["message"] == (
        "Conflict occurred attempting to store role - Duplicate entry found with name member."
    )
    role = await create_role(cloud, "other")
    r = await cloud.patch(f"/roles/{role['id']}", {"role": {"name": "reader"}})
    assert r.status_code == 409


async def test_validation(cloud: Cloud) -> None:
    for body in (
        {},
        {"role": {}},
        {"role": {"name": ""}},
        {"role": {"name": "   "}},
        {"role": {"name": 5}},
        {"role": {"name": "x" * 256}},
        {"role": {"name": "ok", "options": {"unknown": True}}},
        {"role": {"name": "ok", "options": {"immutable": "yes"}}},
        {"role": {"name": "ok"}, "extra": 1},
    ):
        r = await cloud.post("/roles", body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == 400
    role = await create_role(cloud, "valid")
    for body in ({"role": {}}, {"role": {"name": None}}, {"role": {"id": "other"}}, {}):
        r = await cloud.patch(f"/roles/{role['id']}", body)
        assert r.status_code == 400, (body, r.text)
    r = await cloud.patch("/roles/nope", {"role": {"name": "z"}})
    assert r.status_code == 404


async def test_immutable_option(cloud: Cloud) -> None:
    role = await create_role(cloud, "locked", options={"immutable": True})
    assert role["options"] == {"immutable": True}
    r = await cloud.patch(f"/roles/{role['id']}", {"role": {"name": "renamed"}})
    assert r.status_code == 403
    assert "immutable" in r.json()["error"]["message"]
    r = await cloud.delete(f"/roles/{role['id']}")
    assert r.status_code == 403
    # clearing immutable together with another change is refused too
    r = await cloud.patch(
        f"/roles/{role['id']}", {"role": {"name": "x", "options": {"immutable": False}}}
    )
    assert r.status_code == 403
    r = await cloud.patch(f"/roles/{role['id']}", {"role": {"options": {"immutable": False}}})
    assert r.status_code == 200
    assert r.json()["role"]["options"] == {"immutable": False}
    r = await cloud.patch(f"/roles/{role['id']}", {"role": {"options": {"immutable": None}}})
    assert r.json()["role"]["options"] == {}
    assert (await cloud.delete(f"/roles/{role['id']}")).status_code == 204


async def test_authorization(cloud: Cloud) -> None:
    demo = cloud.demo_token
    assert (await cloud.get("/roles", token=demo)).status_code == 403
    assert (await cloud.post("/roles", {"role": {"name": "x"}}, token=demo)).status_code == 403
    member = await role_id(cloud, "member")
    assert (await cloud.get(f"/roles/{member}", token=demo)).status_code == 403
    # a member learns nothing about existence either
    assert (await cloud.get("/roles/nope", token=demo)).status_code == 403
    assert (
        await cloud.patch(f"/roles/{member}", {"role": {"name": "y"}}, token=demo)
    ).status_code == 403
    assert (await cloud.delete(f"/roles/{member}", token=demo)).status_code == 403
    assert (await cloud.get("/role_inferences", token=demo)).status_code == 403
    r = await cloud.client.get("/identity/v3/roles")
    assert r.status_code == 401


async def test_implied_roles(cloud: Cloud) -> None:
    prior = await create_role(cloud, "prior")
    implied = await create_role(cloud, "implied")
    path = f"/roles/{prior['id']}/implies/{implied['id']}"
    r = await cloud.put(path)
    assert r.status_code == 201
    body = r.json()
    assert body["role_inference"]["prior_role"] == {
        "id": prior["id"],
        "name": "prior",
        "links": {"self": prior["links"]["self"]},
    }
    assert body["role_inference"]["implies"]["id"] == implied["id"]
    assert body["links"]["self"].endswith(f"/v3{path}")
    assert (await cloud.put(path)).status_code == 409

    r = await cloud.get(path)
    assert r.status_code == 200 and r.json() == body
    assert (await cloud.head(path)).status_code == 204

    r = await cloud.get(f"/roles/{prior['id']}/implies")
    assert r.status_code == 200
    listed = r.json()
    assert [x["name"] for x in listed["role_inference"]["implies"]] == ["implied"]
    assert listed["links"]["self"].endswith(f"/roles/{prior['id']}/implies")

    r = await cloud.get("/role_inferences")
    assert r.status_code == 200
    rules = {
        i["prior_role"]["name"]: [x["name"] for x in i["implies"]]
        for i in r.json()["role_inferences"]
    }
    assert rules == {"admin": ["manager"], "manager": ["member"], "member": ["reader"],
                     "prior": ["implied"]}

    assert (await cloud.delete(path)).status_code == 204
    r = await cloud.get(path)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"{prior['id']} does not imply {implied['id']}."
    assert (await cloud.head(path)).status_code == 404
    assert (await cloud.delete(path)).status_code == 404
    assert (await cloud.put(f"/roles/{prior['id']}/implies/nope")).status_code == 404
    assert (await cloud.get(f"/roles/nope/implies/{prior['id']}")).status_code == 404
    assert (await cloud.get("/roles/nope/implies")).status_code == 404


async def test_implied_role_rules(cloud: Cloud) -> None:
    admin, member = await role_id(cloud, "admin"), await role_id(cloud, "member")
    # admin may not be implied
    r = await cloud.put(f"/roles/{member}/implies/{admin}")
    assert r.status_code == 403
    assert r.json()["error"]["message"] == f"{admin} cannot be an implied roles."
    # a global role may not imply a domain role; a domain role may imply a global one
    dom = await make_domain(cloud, "d")
    drole = await create_role(cloud, "drole", domain_id=dom)
    assert (await cloud.put(f"/roles/{member}/implies/{drole['id']}")).status_code == 403
    assert (await cloud.put(f"/roles/{drole['id']}/implies/{member}")).status_code == 201
    # cycles are allowed, as in Keystone
    a, b = await create_role(cloud, "ca"), await create_role(cloud, "cb")
    assert (await cloud.put(f"/roles/{a['id']}/implies/{b['id']}")).status_code == 201
    assert (await cloud.put(f"/roles/{b['id']}/implies/{a['id']}")).status_code == 201
    # members may not touch rules
    demo = cloud.demo_token
    assert (await cloud.put(f"/roles/{a['id']}/implies/{member}", token=demo)).status_code == 403
    assert (await cloud.get(f"/roles/{a['id']}/implies", token=demo)).status_code == 403


async def test_delete_role_removes_rules_and_assignments(cloud: Cloud) -> None:
    role = await create_role(cloud, "temp")
    member = await role_id(cloud, "member")
    assert (await cloud.put(f"/roles/{role['id']}/implies/{member}")).status_code == 201
    demo_user, project = await demo_ids(cloud)
    grant = f"/projects/{project}/users/{demo_user}/roles/{role['id']}"
    assert (await cloud.put(grant)).status_code == 204
    assert (await cloud.delete(f"/roles/{role['id']}")).status_code == 204
    r = await cloud.get("/role_inferences")
    assert all(i["prior_role"]["id"] != role["id"] for i in r.json()["role_inferences"])
    r = await cloud.get(f"/role_assignments?role.id={role['id']}")
    assert r.json()["role_assignments"] == []


async def _inferences(cloud: Cloud) -> dict[str, list[str]]:
    r = await cloud.get("/role_inferences")
    assert r.status_code == 200
    return {i["prior_role"]["name"]: sorted(x["name"] for x in i["implies"])
            for i in r.json()["role_inferences"]}


async def test_bootstrap_gives_an_older_cloud_the_manager_role(cloud: Cloud) -> None:
    """A cloud bootstrapped before the manager role (admin -> member -> reader)
    gets it at its next start, as keystone-manage bootstrap does since 2024.2:
    admin -> manager -> member, and the admin -> member rule is gone; a rule
    an operator adds back afterwards survives the starts after that."""
    rt = cloud.app.state.runtime
    st = rt.extras["identity"]
    admin, member = await role_id(cloud, "admin"), await role_id(cloud, "member")
    manager = await role_id(cloud, "manager")
    assert await _inferences(cloud) == {"admin": ["manager"], "manager": ["member"],
                                        "member": ["reader"]}
    # the older cloud: no manager role, admin implies member
    assert (await cloud.delete(f"/roles/{manager}")).status_code == 204
    assert (await cloud.put(f"/roles/{admin}/implies/{member}")).status_code == 201
    assert await _inferences(cloud) == {"admin": ["member"], "member": ["reader"]}

    catalog = server.catalog_urls(cloud.settings)
    await bootstrap.bootstrap(st, cloud.creds, catalog)
    assert await _inferences(cloud) == {"admin": ["manager"], "manager": ["member"],
                                        "member": ["reader"]}
    r = await cloud.token("admin", cloud.creds.admin_password, project="admin")
    assert {x["name"] for x in r.json()["token"]["roles"]} == {
        "admin", "manager", "member", "reader"}

    # an operator's own admin -> member rule is left alone from now on
    assert (await cloud.put(f"/roles/{admin}/implies/{member}")).status_code == 201
    await bootstrap.bootstrap(st, cloud.creds, catalog)
    assert await _inferences(cloud) == {"admin": ["manager", "member"],
                                        "manager": ["member"], "member": ["reader"]}
