"""``GET /v3/role_assignments``: direct and effective listings, filters, names,
subtrees and who may list what."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.api.identity.test_grants import (
    PASSWORD,
    make_group,
    make_project,
    make_user,
)
from tests.api.identity.test_roles import create_role, make_domain, role_id
from tests.conftest import Cloud


@dataclass
class World:
    u1: str
    u2: str
    group: str
    parent: str
    child: str
    admin: str
    member: str
    reader: str
    base: str


async def world(cloud: Cloud) -> World:
    """u1, u2 in a group; parent and child projects; a grant of every kind."""
    u1, u2 = await make_user(cloud, "u1"), await make_user(cloud, "u2")
    group = await make_group(cloud, "g", "default", u1, u2)
    parent = await make_project(cloud, "parent")
    child = await make_project(cloud, "child", parent_id=parent)
    w = World(
        u1,
        u2,
        group,
        parent,
        child,
        await role_id(cloud, "admin"),
        await role_id(cloud, "member"),
        await role_id(cloud, "reader"),
        "http://onestack.test/identity/v3",
    )
    for path in (
        f"/projects/{parent}/users/{u1}/roles/{w.member}",
        f"/projects/{child}/groups/{group}/roles/{w.reader}",
        f"/domains/default/users/{u2}/roles/{w.admin}",
        f"/OS-INHERIT/domains/default/groups/{group}/roles/{w.member}/inherited_to_projects",
        f"/OS-INHERIT/projects/{parent}/users/{u1}/roles/{w.reader}/inherited_to_projects",
        f"/system/users/{u1}/roles/{w.reader}",
    ):
        assert (await cloud.put(path)).status_code == 204, path
    return w


async def listing(cloud: Cloud, query: str = "", token: str | None = None) -> list[dict[str, Any]]:
    r = await cloud.get(f"/role_assignments{query}", token=token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["links"]["self"].endswith(f"/role_assignments{query}")
    return body["role_assignments"]


def links(entries: list[dict[str, Any]]) -> set[str]:
    return {e["links"]["assignment"] for e in entries}


async def test_direct_listing_shapes(cloud: Cloud) -> None:
    w = await world(cloud)
    b = w.base
    entries = await listing(cloud, f"?user.id={w.u1}")
    by_link = {e["links"]["assignment"]: e for e in entries}
    assert set(by_link) == {
        f"{b}/projects/{w.parent}/users/{w.u1}/roles/{w.member}",
        f"{b}/OS-INHERIT/projects/{w.parent}/users/{w.u1}/roles/{w.reader}/inherited_to_projects",
        f"{b}/system/users/{w.u1}/roles/{w.reader}",
    }
    assert by_link[f"{b}/projects/{w.parent}/users/{w.u1}/roles/{w.member}"] == {
        "links": {"assignment": f"{b}/projects/{w.parent}/users/{w.u1}/roles/{w.member}"},
        "role": {"id": w.member},
        "scope": {"project": {"id": w.parent}},
        "user": {"id": w.u1},
    }
    inherited = by_link[
        f"{b}/OS-INHERIT/projects/{w.parent}/users/{w.u1}/roles/{w.reader}/inherited_to_projects"
    ]
    assert inherited["scope"] == {
        "project": {"id": w.parent},
        "OS-INHERIT:inherited_to": "projects",
    }
    system = by_link[f"{b}/system/users/{w.u1}/roles/{w.reader}"]
    assert system["scope"] == {"system": {"all": True}}

    entries = await listing(cloud, f"?group.id={w.group}")
    assert {e["group"]["id"] for e in entries} == {w.group}
    assert links(entries) == {
        f"{b}/projects/{w.child}/groups/{w.group}/roles/{w.reader}",
        f"{b}/OS-INHERIT/domains/default/groups/{w.group}/roles/{w.member}/inherited_to_projects",
    }


async def test_filters(cloud: Cloud) -> None:
    bootstrapped = len(await listing(cloud))  # admin, demo and the service users
    w = await world(cloud)
    everything = await listing(cloud)
    assert len(everything) == bootstrapped + 6
    assert all(e["role"]["id"] == w.admin for e in await listing(cloud, f"?role.id={w.admin}"))
    entries = await listing(cloud, f"?scope.project.id={w.parent}")
    assert {e["scope"]["project"]["id"] for e in entries} == {w.parent}
    assert len(entries) == 2
    entries = await listing(cloud, "?scope.domain.id=default")
    assert len(entries) == 2 and all(e["scope"]["domain"]["id"] == "default" for e in entries)
    entries = await listing(cloud, "?scope.system=all")
    assert all("system" in e["scope"] for e in entries)
    assert len(entries) == 2  # the bootstrap admin's and u1's
    entries = await listing(cloud, "?scope.OS-INHERIT:inherited_to=projects")
    assert len(entries) == 2
    assert all(e["scope"]["OS-INHERIT:inherited_to"] == "projects" for e in entries)
    entries = await listing(cloud, f"?scope.domain.id=default&user.id={w.u2}")
    assert [e["role"]["id"] for e in entries] == [w.admin]
    assert await listing(cloud, "?user.id=nobody") == []


async def test_effective(cloud: Cloud) -> None:
    w = await world(cloud)
    b = w.base
    entries = await listing(cloud, f"?effective&user.id={w.u1}")
    assert all("group" not in e and e["user"]["id"] == w.u1 for e in entries)
    got = {
        (
            e["role"]["id"],
            next(iter(e["scope"]["project"].values()))
            if "project" in e["scope"]
            else "system"
            if "system" in e["scope"]
            else e["scope"]["domain"]["id"],
            e["links"]["assignment"],
        )
        for e in entries
    }
    parent_direct = f"{b}/projects/{w.parent}/users/{w.u1}/roles/{w.member}"
    child_group = f"{b}/projects/{w.child}/groups/{w.group}/roles/{w.reader}"
    dom_inh = (
        f"{b}/OS-INHERIT/domains/default/groups/{w.group}/roles/{w.member}/inherited_to_projects"
    )
    par_inh = (
        f"{b}/OS-INHERIT/projects/{w.parent}/users/{w.u1}/roles/{w.reader}/inherited_to_projects"
    )
    # the demo and admin projects also get the domain-inherited group grant
    expected_core = {
        (w.member, w.parent, parent_direct),
        (w.reader, w.parent, parent_direct),  # implied by member
        (w.reader, w.child, child_group),
        (w.member, w.child, dom_inh),
        (w.reader, w.child, dom_inh),
        (w.member, w.parent, dom_inh),
        (w.reader, w.parent, dom_inh),
        (w.reader, w.child, par_inh),  # inherited from the parent, not on it
        (w.reader, "system", f"{b}/system/users/{w.u1}/roles/{w.reader}"),
    }
    assert expected_core <= got
    assert (w.reader, w.parent, par_inh) not in got
    extra = got - expected_core
    # the rest: the domain-inherited member (and implied reader) on other projects
    assert extra and all(link == dom_inh for _, _, link in extra)

    via_group = next(e for e in entries if e["links"]["assignment"] == child_group)
    assert via_group["links"]["membership"] == f"{b}/groups/{w.group}/users/{w.u1}"
    assert "OS-INHERIT:inherited_to" not in via_group["scope"]
    inherited = next(e for e in entries if e["links"]["assignment"] == par_inh)
    assert inherited["scope"] == {"project": {"id": w.child}, "OS-INHERIT:inherited_to": "projects"}
    implied = next(
        e
        for e in entries
        if e["links"]["assignment"] == parent_direct and e["role"]["id"] == w.reader
    )
    assert implied["links"]["prior_role"] == f"{b}/roles/{w.member}/implies/{w.reader}"

    # effective on one project: what a token there carries
    entries = await listing(cloud, f"?effective&user.id={w.u1}&scope.project.id={w.child}")
    assert {e["role"]["id"] for e in entries} == {w.member, w.reader}
    assert all(e["scope"]["project"]["id"] == w.child for e in entries)
    entries = await listing(
        cloud, f"?effective&user.id={w.u1}&scope.project.id={w.child}&role.id={w.member}"
    )
    assert {e["links"]["assignment"] for e in entries} == {dom_inh}
    # u2's domain admin: effective on the domain, with implied roles
    entries = await listing(cloud, f"?effective&user.id={w.u2}&scope.domain.id=default")
    assert {e["role"]["id"] for e in entries} == {
        w.admin, await role_id(cloud, "manager"), w.member, w.reader}


async def test_effective_drops_domain_roles(cloud: Cloud) -> None:
    user = await make_user(cloud, "du")
    dom = await make_domain(cloud, "dd")
    project = await make_project(cloud, "dp", domain_id=dom)
    drole = await create_role(cloud, "drole", domain_id=dom)
    member = await role_id(cloud, "member")
    assert (await cloud.put(f"/roles/{drole['id']}/implies/{member}")).status_code == 201
    assert (
        await cloud.put(f"/projects/{project}/users/{user}/roles/{drole['id']}")
    ).status_code == 204
    direct = await listing(cloud, f"?user.id={user}")
    assert [e["role"]["id"] for e in direct] == [drole["id"]]
    entries = await listing(cloud, f"?user.id={user}&effective")
    assert {e["role"]["id"] for e in entries} == {member, await role_id(cloud, "reader")}
    named = await listing(cloud, f"?user.id={user}&include_names")
    assert named[0]["role"] == {
        "id": drole["id"],
        "name": "drole",
        "domain": {"id": dom, "name": "dd"},
    }


async def test_include_names(cloud: Cloud) -> None:
    w = await world(cloud)
    entries = await listing(
        cloud, f"?include_names&user.id={w.u1}&scope.project.id={w.parent}&role.id={w.member}"
    )
    assert entries == [
        {
            "links": {"assignment": f"{w.base}/projects/{w.parent}/users/{w.u1}/roles/{w.member}"},
            "role": {"id": w.member, "name": "member"},
            "scope": {
                "project": {
                    "id": w.parent,
                    "name": "parent",
                    "domain": {"id": "default", "name": "Default"},
                }
            },
            "user": {"id": w.u1, "name": "u1", "domain": {"id": "default", "name": "Default"}},
        }
    ]
    entries = await listing(cloud, f"?include_names=1&group.id={w.group}&scope.domain.id=default")
    assert entries[0]["group"] == {
        "id": w.group,
        "name": "g",
        "domain": {"id": "default", "name": "Default"},
    }
    assert entries[0]["scope"]["domain"] == {"id": "default", "name": "Default"}
    # include_names=0 means no names
    entries = await listing(cloud, f"?include_names=0&user.id={w.u2}")
    assert entries[0]["user"] == {"id": w.u2}


async def test_include_subtree(cloud: Cloud) -> None:
    w = await world(cloud)
    entries = await listing(cloud, f"?scope.project.id={w.parent}&include_subtree")
    assert {e["scope"]["project"]["id"] for e in entries} == {w.parent, w.child}
    assert len(entries) == 3
    entries = await listing(
        cloud, f"?scope.project.id={w.parent}&include_subtree&effective&user.id={w.u1}"
    )
    assert {e["scope"]["project"]["id"] for e in entries} == {w.parent, w.child}
    r = await cloud.get("/role_assignments?include_subtree")
    assert r.status_code == 400
    r = await cloud.get("/role_assignments?include_subtree&scope.project.id=nope")
    assert r.status_code == 404


async def test_bad_combinations(cloud: Cloud) -> None:
    for query, message in (
        ("scope.domain.id=a&scope.project.id=b", "Specify a domain or project, not both"),
        ("scope.domain.id=a&scope.system=all", "Specify system or domain, not both"),
        ("scope.project.id=a&scope.system=all", "Specify system or project, not both"),
        ("user.id=a&group.id=b", "Specify a user or group, not both"),
        (
            "effective&group.id=b",
            "Combining effective and group filter will always result in an empty list.",
        ),
        (
            "effective&scope.domain.id=a&scope.OS-INHERIT:inherited_to=projects",
            "Combining effective, domain and inherited filters will always result in an "
            + "empty list.",
        ),
    ):
        r = await cloud.get(f"/role_assignments?{query}")
        assert r.status_code == 400, query
        assert r.json()["error"]["message"] == message


async def test_authorization(cloud: Cloud) -> None:
    w = await world(cloud)
    assert (await cloud.get("/role_assignments", token=cloud.demo_token)).status_code == 403
    assert (await cloud.client.get(f"{cloud.identity}/role_assignments")).status_code == 401
    # a domain reader sees the assignments of their domain only
    other = await make_domain(cloud, "elsewhere")
    project = await make_project(cloud, "there", domain_id=other)
    watcher = await make_user(cloud, "watcher")
    assert (
        await cloud.put(f"/domains/{other}/users/{watcher}/roles/{w.reader}")
    ).status_code == 204
    assert (
        await cloud.put(f"/projects/{project}/users/{w.u2}/roles/{w.member}")
    ).status_code == 204
    r = await cloud.token("watcher", PASSWORD, domain=other)
    assert r.status_code == 201
    token = r.headers["X-Subject-Token"]
    entries = await listing(cloud, "", token=token)
    assert {e["links"]["assignment"] for e in entries} == {
        f"{w.base}/domains/{other}/users/{watcher}/roles/{w.reader}",
        f"{w.base}/projects/{project}/users/{w.u2}/roles/{w.member}",
    }
    # the domain reader may not read the default domain's grants
    r = await cloud.get(f"/domains/default/users/{w.u2}/roles", token=token)
    assert r.status_code == 403
    r = await cloud.get(f"/domains/{other}/users/{watcher}/roles", token=token)
    assert r.status_code == 200
