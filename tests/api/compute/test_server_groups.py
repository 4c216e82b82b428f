"""os-server-groups: the API by microversion, Nova's validation and quotas, and
membership through the scheduler hint ``group`` (filters, weighers, deletion).

Most tests make servers through ``service.servers.create`` (what POST /servers
hands the hint to), so that they can boot several and see the error raised;
test_hint_through_the_api goes through POST /servers itself."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from onestack.compute.models import ServerGroup, ServerGroupMember
from onestack.compute.service import servers as servers_svc
from onestack.core.errors import CloudError
from tests.api.compute.conftest import Compute, fault


async def _caller(nova: Compute, token: str) -> servers_svc.Caller:
    r = await nova.cloud.client.get("/identity/v3/auth/tokens", headers={
        "X-Auth-Token": token, "X-Subject-Token": token})
    body = r.json()["token"]
    return servers_svc.Caller(project_id=body["project"]["id"], user_id=body["user"]["id"],
                              token=token, request_id="req-" + uuid.uuid4().hex,
                              is_admin=False)


async def _boot(nova: Compute, token: str, image: str, hints: dict[str, Any],
                count: int = 1) -> list[str]:
    """Create servers with scheduler hints as POST /servers does; their ids.

    Raises:
        CloudError: as the API would answer it.
    """
    req = servers_svc.CreateRequest(name="vm", image_ref=image, flavor_ref="42",
                                    networks="none", scheduler_hints=hints,
                                    min_count=count, max_count=count)
    made, _ = await servers_svc.create(nova.state, await _caller(nova, token), req)
    return [i.uuid for i in made]


async def _group(nova: Compute, token: str | None = None, *, version: str = "2.64",
                 **body: Any) -> dict[str, Any]:
    body.setdefault("name", "g-" + uuid.uuid4().hex[:6])
    if "policies" not in body:
        body.setdefault("policy", "anti-affinity")
    r = await nova.req("POST", "/os-server-groups", token, version=version,
                       json={"server_group": body})
    assert r.status_code == 200, r.text
    return r.json()["server_group"]  # type: ignore[no-any-return]


async def _count_groups(nova: Compute) -> int:
    async with nova.state.db.read() as s:
        return int(await s.scalar(select(func.count(ServerGroup.id))) or 0)


async def test_views_by_microversion(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    old = await _group(nova, demo, version="2.1", name="old", policies=["affinity"])
    assert set(old) == {"id", "name", "policies", "members", "metadata"}
    assert (old["policies"], old["metadata"], old["members"]) == (["affinity"], {}, [])
    user_id = await nova.user_id(demo)
    r = await nova.req("GET", f"/os-server-groups/{old['id']}", demo, version="2.13")
    g = r.json()["server_group"]
    assert g["user_id"] == user_id and g["project_id"] and "policy" not in g
    new = await _group(nova, demo, version="2.64", name="new", policy="anti-affinity",
                       rules={"max_server_per_host": 2})
    assert set(new) == {"id", "name", "policy", "rules", "members", "project_id", "user_id"}
    assert (new["policy"], new["rules"]) == ("anti-affinity", {"max_server_per_host": 2})
    # an older client sees the 2.64 group as a one-item list of policies
    r = await nova.req("GET", f"/os-server-groups/{new['id']}", demo, version="2.63")
    assert r.json()["server_group"]["policies"] == ["anti-affinity"]
    soft = await _group(nova, demo, version="2.15", policies=["soft-affinity"])
    assert soft["policies"] == ["soft-affinity"]
    r = await nova.req("GET", "/os-server-groups", demo, version="2.64")
    assert [g["name"] for g in r.json()["server_groups"]] == ["old", "new", soft["name"]]
    r = await nova.req("GET", "/os-server-groups?limit=1&offset=1", demo)
    assert [g["name"] for g in r.json()["server_groups"]] == ["new"]
    fault(await nova.req("GET", "/os-server-groups?limit=x", demo), "badRequest", 400)
    fault(await nova.req("GET", "/os-server-groups?bogus=1", demo, version="2.75"),
          "badRequest", 400)
    assert (await nova.req("GET", "/os-server-groups?bogus=1", demo)).status_code == 200


async def test_all_projects_and_other_projects(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    mine = await _group(nova, demo)
    _, _, other = await nova.project_user()
    theirs = await _group(nova, other)
    # non-admins quietly get their own; admins every project's
    r = await nova.req("GET", "/os-server-groups?all_projects=True", demo)
    assert [g["id"] for g in r.json()["server_groups"]] == [mine["id"]]
    r = await nova.req("GET", "/os-server-groups?all_projects=True")
    assert {mine["id"], theirs["id"]} <= {g["id"] for g in r.json()["server_groups"]}
    r = await nova.req("GET", "/os-server-groups")
    assert r.json()["server_groups"] == []
    r = await nova.req("GET", f"/os-server-groups/{theirs['id']}", demo)
    fault(r, "forbidden", 403)
    fault(await nova.req("DELETE", f"/os-server-groups/{theirs['id']}", demo), "forbidden", 403)
    missing = str(uuid.uuid4())
    assert fault(await nova.req("GET", f"/os-server-groups/{missing}", demo),
                 "itemNotFound", 404) == f"Instance group {missing} could not be found."
    r = await nova.req("DELETE", f"/os-server-groups/{mine['id']}", demo)
    assert r.status_code == 204
    fault(await nova.req("DELETE", f"/os-server-groups/{mine['id']}", demo), "itemNotFound", 404)
    # the admin may delete anyone's
    assert (await nova.req("DELETE", f"/os-server-groups/{theirs['id']}")).status_code == 204


async def test_create_validation(nova: Compute) -> None:
    demo = nova.cloud.demo_token

    async def bad(version: str, body: Any) -> str:
        r = await nova.req("POST", "/os-server-groups", demo, version=version, json=body)
        return fault(r, "badRequest", 400)

    assert "'policies' is a required property" in await bad("2.1", {"server_group": {
        "name": "x"}})
    # soft policies only from 2.15; one policy only; the 2.64 names only from 2.64
    assert "is not one of ['anti-affinity', 'affinity']" in await bad("2.14", {
        "server_group": {"name": "x", "policies": ["soft-affinity"]}})
    assert "is too long" in await bad("2.15", {"server_group": {
        "name": "x", "policies": ["affinity", "anti-affinity"]}})
    assert "non-unique" in await bad("2.15", {"server_group": {
        "name": "x", "policies": ["affinity", "affinity"]}})
    assert "is too short" in await bad("2.15", {"server_group": {"name": "x", "policies": []}})
    assert "Additional properties" in await bad("2.63", {"server_group": {
        "name": "x", "policy": "affinity"}})
    assert "'policy' is a required property" in await bad("2.64", {"server_group": {
        "name": "x"}})
    assert "'policies' was unexpected" in await bad("2.64", {"server_group": {
        "name": "x", "policy": "affinity", "policies": ["affinity"]}})
    assert "is not one of" in await bad("2.64", {"server_group": {
        "name": "x", "policy": "legacy"}})
    assert await bad("2.64", {"server_group": {
        "name": "x", "policy": "affinity", "rules": {"max_server_per_host": 2}}}) == \
        "Only anti-affinity policy supports rules."
    assert "less than the minimum of 1" in await bad("2.64", {"server_group": {
        "name": "x", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}}})
    assert "Additional properties" in await bad("2.64", {"server_group": {
        "name": "x", "policy": "anti-affinity", "rules": {"other": 1}}})
    assert "name" in await bad("2.64", {"server_group": {"name": " x", "policy": "affinity"}})
    assert "'server_group' is a required property" in await bad("2.64", {})
    assert await _count_groups(nova) == 0


async def test_server_groups_quota(nova: Compute) -> None:
    await nova.default_quotas(server_groups=2)
    project, _, token = await nova.project_user()
    await _group(nova, token)
    await _group(nova, token)
    r = await nova.req("POST", "/os-server-groups", token, version="2.64",
                       json={"server_group": {"name": "3", "policy": "affinity"}})
    assert fault(r, "forbidden", 403) == "Quota exceeded, too many server groups."
    assert await _count_groups(nova) == 2
    # the project's own quota wins over the default
    r = await nova.req("PUT", f"/os-quota-sets/{project}",
                       json={"quota_set": {"server_groups": 3}})
    assert r.status_code == 200, r.text
    await _group(nova, token)
    r = await nova.req("GET", "/limits", token)
    a = r.json()["limits"]["absolute"]
    assert (a["maxServerGroups"], a["totalServerGroupsUsed"]) == (3, 3)


async def test_boot_into_groups(nova: Compute) -> None:
    st, demo = nova.state, nova.cloud.demo_token
    img = await nova.image()
    aff = await _group(nova, demo, policy="affinity")
    anti = await _group(nova, demo, policy="anti-affinity")

    async def boot(group: str) -> dict[str, Any]:
        [sid] = await _boot(nova, demo, img["id"], {"group": group})
        return await nova.wait(sid, "ACTIVE", "ERROR")

    a1, a2 = await boot(aff["id"]), await boot(aff["id"])
    assert a1["status"] == a2["status"] == "ACTIVE"
    r = await nova.req("GET", f"/os-server-groups/{aff['id']}", demo)
    assert r.json()["server_group"]["members"] == [a1["id"], a2["id"]]
    # anti-affinity: one host, so the second member has nowhere to go
    b1 = await boot(anti["id"])
    assert b1["status"] == "ACTIVE"
    b2 = await boot(anti["id"])
    assert b2["status"] == "ERROR"
    message = b2["fault"]["message"]
    assert message.startswith("No valid host was found. ServerGroupAntiAffinityFilter "
                              f"removed {st.host} "), message
    assert anti["id"] in message
    # the failed member is still a member until deleted; deleting members empties it
    r = await nova.req("GET", f"/os-server-groups/{anti['id']}", demo)
    assert r.json()["server_group"]["members"] == [b1["id"], b2["id"]]
    for sid in (b1["id"], b2["id"]):
        assert (await nova.req("DELETE", f"/servers/{sid}", demo)).status_code == 204
        await nova.gone(sid, demo)
    r = await nova.req("GET", f"/os-server-groups/{anti['id']}", demo)
    assert r.json()["server_group"]["members"] == []
    async with st.db.read() as s:
        left = await s.scalar(select(func.count(ServerGroupMember.id)).where(
            ServerGroupMember.instance_uuid.in_([b1["id"], b2["id"]])))
    assert left == 0
    # room again for one member
    assert (await boot(anti["id"]))["status"] == "ACTIVE"


async def test_max_server_per_host_and_soft_policies(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    img = await nova.image()
    two = await _group(nova, demo, policy="anti-affinity", rules={"max_server_per_host": 2})
    soft = await _group(nova, demo, policy="soft-anti-affinity")
    statuses = []
    for _ in range(3):
        [sid] = await _boot(nova, demo, img["id"], {"group": two["id"]})
        statuses.append((await nova.wait(sid, "ACTIVE", "ERROR"))["status"])
    assert statuses == ["ACTIVE", "ACTIVE", "ERROR"]
    # soft anti-affinity is a weigher: it never fails a boot
    await _boot(nova, demo, img["id"], {"group": soft["id"]}, count=2)
    r = await nova.req("GET", f"/os-server-groups/{soft['id']}", demo)
    members = r.json()["server_group"]["members"]
    assert len(members) == 2
    for sid in members:
        assert (await nova.wait(sid, "ACTIVE", "ERROR"))["status"] == "ACTIVE"


async def test_boot_hint_errors_and_member_quota(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    img = await nova.image()

    async def refused(hints: dict[str, Any], count: int = 1) -> CloudError:
        try:
            await _boot(nova, demo, img["id"], hints, count)
        except CloudError as exc:
            return exc
        raise AssertionError("the boot was accepted")

    missing = str(uuid.uuid4())
    exc = await refused({"group": missing})
    assert exc.status_code == 400
    assert exc.message == f"Instance group {missing} could not be found."
    exc = await refused({"group": "nope"})
    assert exc.status_code == 400 and "os:scheduler_hints/group" in exc.message
    _, _, other = await nova.project_user()
    theirs = await _group(nova, other, policy="affinity")
    assert (await refused({"group": [theirs["id"]]})).status_code == 400
    await nova.default_quotas(server_group_members=2)
    g = await _group(nova, demo, policy="soft-affinity")
    exc = await refused({"group": g["id"]}, 3)
    assert (exc.status_code, exc.message) == (403, "Quota exceeded, too many servers in group")
    # nothing was written: no server, no member
    r = await nova.req("GET", "/servers", demo)
    assert r.json()["servers"] == []
    assert len(await _boot(nova, demo, img["id"], {"group": [g["id"]]}, 2)) == 2
    assert (await refused({"group": g["id"]})).status_code == 403
    r = await nova.req("GET", f"/os-server-groups/{g['id']}", demo)
    assert len(r.json()["server_group"]["members"]) == 2


async def test_hint_through_the_api(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    img = await nova.image()
    g = await _group(nova, demo, policy="affinity")
    for hints_key in ("os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"):
        body = {"server": {"name": "vm", "imageRef": img["id"], "flavorRef": "42",
                           "networks": "none"}, hints_key: {"group": g["id"]}}
        r = await nova.req("POST", "/servers", demo, version="2.37", json=body)
        assert r.status_code == 202, r.text
        await nova.wait(r.json()["server"]["id"], "ACTIVE")
    r = await nova.req("GET", f"/os-server-groups/{g['id']}", demo)
    members = r.json()["server_group"]["members"]
    assert len(members) == 2
    # 2.71: a server's view names its group
    r = await nova.req("GET", f"/servers/{members[0]}", demo, version="2.71")
    assert r.json()["server"]["server_groups"] == [g["id"]]
    r = await nova.req("GET", f"/servers/{members[0]}", demo, version="2.70")
    assert "server_groups" not in r.json()["server"]
    lone = (await nova.boot(demo, imageRef=img["id"]))["server"]["id"]
    r = await nova.req("GET", f"/servers/{lone}", demo, version="2.71")
    assert r.json()["server"]["server_groups"] == []
    missing = str(uuid.uuid4())
    body = {"server": {"name": "vm", "imageRef": img["id"], "flavorRef": "42",
                       "networks": "none"}, "os:scheduler_hints": {"group": missing}}
    r = await nova.req("POST", "/servers", demo, version="2.37", json=body)
    assert fault(r, "badRequest", 400) == f"Instance group {missing} could not be found."
    r = await nova.req("POST", "/servers", demo, version="2.37",
                       json={"os:scheduler_hints": {}})
    assert fault(r, "badRequest", 400) == "'server' is a required property"
