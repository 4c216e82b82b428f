"""Visibility and members: who sees, lists, changes and downloads which image."""

from __future__ import annotations

from tests.api.image.conftest import Images


async def test_private_images_are_invisible_to_others(images: Images) -> None:
    demo = images.cloud.demo_token
    _, other = await images.project_user()
    img = await images.active(b"secret", token=demo, visibility="private")
    for token in (other,):
        for method, path in [("GET", ""), ("GET", "/file"), ("DELETE", ""),
                             ("PUT", "/tags/x"), ("GET", "/members")]:
            r = await images.req(method, f"/images/{img['id']}{path}", token)
            assert r.status_code == 404, (method, path, r.status_code)
        r = await images.patch(img["id"], [{"op": "replace", "path": "/name", "value": "x"}], token)
        assert r.status_code == 404
        listed = (await images.req("GET", "/images?visibility=all", token)).json()["images"]
        assert img["id"] not in [i["id"] for i in listed]
    # the admin sees it, and its owner
    assert (await images.show(img["id"]))["id"] == img["id"]
    assert (await images.show(img["id"], demo))["id"] == img["id"]


async def test_only_admins_publicize(images: Images) -> None:
    demo = images.cloud.demo_token
    r = await images.req("POST", "/images", demo, json={"visibility": "public"})
    assert r.status_code == 403
    img = await images.create(demo)
    r = await images.patch(img["id"], [{"op": "replace", "path": "/visibility", "value": "public"}], demo)
    assert r.status_code == 403
    r = await images.patch(img["id"], [{"op": "replace", "path": "/visibility", "value": "community"}], demo)
    assert r.status_code == 200
    r = await images.patch(img["id"], [{"op": "replace", "path": "/visibility", "value": "public"}])
    assert r.status_code == 200 and r.json()["visibility"] == "public"


async def test_reader_cannot_change(images: Images) -> None:
    project, reader = await images.project_user("reader")
    img = await images.create(owner=project)
    assert (await images.show(img["id"], reader))["id"] == img["id"]
    r = await images.patch(img["id"], [{"op": "replace", "path": "/name", "value": "x"}], reader)
    assert r.status_code == 403
    assert (await images.req("DELETE", f"/images/{img['id']}", reader)).status_code == 403
    assert (await images.req("POST", "/images", reader, json={})).status_code == 403


async def test_cannot_create_for_another_project(images: Images) -> None:
    other_project, _ = await images.project_user()
    r = await images.req("POST", "/images", images.cloud.demo_token, json={"owner": other_project})
    assert r.status_code == 403
    img = await images.create(owner=other_project)  # admins may
    assert img["owner"] == other_project


async def test_public_and_community_listing(images: Images) -> None:
    _, other = await images.project_user()
    public = await images.create(visibility="public")
    community = await images.create(visibility="community")

    async def ids(query: str) -> set[str]:
        r = await images.req("GET", "/images" + query, other)
        return {i["id"] for i in r.json()["images"]}

    assert public["id"] in await ids("")
    assert community["id"] not in await ids("")
    assert community["id"] in await ids("?visibility=community")
    assert {public["id"], community["id"]} <= await ids("?visibility=all")
    assert (await images.show(community["id"], other))["id"] == community["id"]
    # seen but not owned: no changes
    r = await images.patch(public["id"], [{"op": "replace", "path": "/name", "value": "x"}], other)
    assert r.status_code == 403


async def test_members_flow(images: Images) -> None:
    demo = images.cloud.demo_token
    member_project, member = await images.project_user()
    _, stranger = await images.project_user()
    img = await images.active(b"shared data", token=demo)
    assert img["visibility"] == "shared"
    # not shared yet: the other project sees nothing
    assert (await images.req("GET", f"/images/{img['id']}", member)).status_code == 404
    r = await images.req("POST", f"/images/{img['id']}/members", demo, json={"member": member_project})
    assert r.status_code == 200, r.text
    m = r.json()
    assert (m["image_id"], m["member_id"], m["status"], m["schema"]) == \
        (img["id"], member_project, "pending", "/v2/schemas/member")
    r = await images.req("POST", f"/images/{img['id']}/members", demo, json={"member": member_project})
    assert r.status_code == 409
    # pending: visible by id, listed only with member_status
    assert (await images.show(img["id"], member))["id"] == img["id"]
    listed = (await images.req("GET", "/images", member)).json()["images"]
    assert img["id"] not in [i["id"] for i in listed]
    listed = (await images.req("GET", "/images?member_status=pending&visibility=shared", member)).json()["images"]
    assert [i["id"] for i in listed] == [img["id"]]
    # only the member answers; the owner cannot accept for it
    path = f"/images/{img['id']}/members/{member_project}"
    assert (await images.req("PUT", path, demo, json={"status": "accepted"})).status_code == 403
    assert (await images.req("PUT", path, member, json={"status": "maybe"})).status_code == 400
    r = await images.req("PUT", path, member, json={"status": "accepted"})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    listed = (await images.req("GET", "/images", member)).json()["images"]
    assert img["id"] in [i["id"] for i in listed]
    r = await images.req("GET", f"/images/{img['id']}/file", member)
    assert r.status_code == 200 and r.content == b"shared data"
    # the member sees only its membership; a stranger sees nothing
    r = await images.req("GET", f"/images/{img['id']}/members", member)
    assert [x["member_id"] for x in r.json()["members"]] == [member_project]
    assert r.json()["schema"] == "/v2/schemas/members"
    assert (await images.req("GET", path, stranger)).status_code == 404
    assert (await images.req("GET", f"/images/{img['id']}/file", stranger)).status_code == 404
    # the member can neither change the image nor remove members
    r = await images.patch(img["id"], [{"op": "replace", "path": "/name", "value": "x"}], member)
    assert r.status_code == 403
    assert (await images.req("DELETE", path, member)).status_code == 403
    assert (await images.req("DELETE", path, demo)).status_code == 204
    assert (await images.req("GET", f"/images/{img['id']}", member)).status_code == 404


async def test_members_only_for_shared_images(images: Images) -> None:
    project, _ = await images.project_user()
    img = await images.create(visibility="private")
    r = await images.req("POST", f"/images/{img['id']}/members", json={"member": project})
    assert r.status_code == 403
    r = await images.req("POST", f"/images/{img['id']}/members", json={})
    assert r.status_code == 400
