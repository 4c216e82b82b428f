"""Image records: create, show, list (filters, sorting, pagination), patch,
delete, deactivate/reactivate, tags, and the errors Glance gives."""

from __future__ import annotations

import uuid

from tests.api.image.conftest import Images


async def test_create_show_and_defaults(images: Images) -> None:
    img = await images.create(name="cirros", disk_format="qcow2", container_format="bare",
                              os_distro="cirros", tags=["a", "b", "a"], min_ram=64)
    assert img["status"] == "queued"
    assert img["visibility"] == "shared"
    assert img["protected"] is False and img["os_hidden"] is False
    assert img["os_distro"] == "cirros"
    assert img["tags"] == ["a", "b"]
    assert img["min_ram"] == 64 and img["min_disk"] == 0
    assert img["size"] is None and img["checksum"] is None
    assert img["self"] == f"/v2/images/{img['id']}"
    assert img["file"] == f"/v2/images/{img['id']}/file"
    assert img["schema"] == "/v2/schemas/image"
    assert img["created_at"].endswith("Z")
    shown = await images.show(img["id"])
    assert shown == img


async def test_create_with_id_and_conflict(images: Images) -> None:
    wanted = str(uuid.uuid4())
    img = await images.create(id=wanted, name="x")
    assert img["id"] == wanted
    r = await images.req("POST", "/images", json={"id": wanted})
    assert r.status_code == 409
    r = await images.req("POST", "/images", json={"id": "not-a-uuid"})
    assert r.status_code == 400


async def test_create_refuses_bad_input(images: Images) -> None:
    cases = [
        ({"disk_format": "floppy"}, 400),
        ({"container_format": "zip"}, 400),
        ({"visibility": "everyone"}, 400),
        ({"min_ram": -1}, 400),
        ({"min_disk": "1"}, 400),
        ({"protected": "yes"}, 400),
        ({"name": "n" * 256}, 400),
        ({"my_prop": 5}, 400),
        ({"my_prop": "v" * 70000}, 400),
        ({"k" * 256: "v"}, 400),
        ({"status": "active"}, 403),
        ({"size": 10}, 403),
        ({"checksum": "abc"}, 403),
        ({"os_glance_foo": "bar"}, 403),
        ({"locations": []}, 403),
    ]
    for body, status in cases:
        r = await images.req("POST", "/images", json=body, headers={"Accept": "application/json"})
        assert r.status_code == status, (body, r.text)
        assert r.json()["code"].startswith(str(status))
    r = await images.req("POST", "/images", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = await images.req("GET", "/images")
    assert r.json()["images"] == []  # nothing half-created


async def test_property_and_tag_limits(images: Images) -> None:
    quota = images.cloud.settings.image.image_property_quota
    body = {f"p{i}": "v" for i in range(quota + 1)}
    r = await images.req("POST", "/images", json=body)
    assert r.status_code == 413
    img = await images.create()
    for i in range(images.cloud.settings.image.image_tag_quota):
        r = await images.req("PUT", f"/images/{img['id']}/tags/t{i}")
        assert r.status_code == 204
    r = await images.req("PUT", f"/images/{img['id']}/tags/one-too-many")
    assert r.status_code == 413


async def test_error_bodies_plain_and_json(images: Images) -> None:
    missing = str(uuid.uuid4())
    r = await images.req("GET", f"/images/{missing}")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/plain")
    assert missing in r.text
    r = await images.req("GET", f"/images/{missing}", headers={"Accept": "application/json"})
    assert r.json() == {"message": f"No image found with ID {missing}", "code": "404 Not Found",
                        "title": "Not Found"}
    r = await images.cloud.client.get("/image/v2/images")
    assert r.status_code == 401


async def test_patch_add_replace_remove(images: Images) -> None:
    img = await images.create(name="old", color="red")
    r = await images.patch(img["id"], [
        {"op": "replace", "path": "/name", "value": "new"},
        {"op": "add", "path": "/size_hint", "value": "big"},
        {"op": "replace", "path": "/color", "value": "blue"},
        {"op": "add", "path": "/tags", "value": ["x", "y"]},
        {"op": "replace", "path": "/min_disk", "value": 2},
        {"op": "add", "path": "/protected", "value": True},
    ])
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["name"], out["size_hint"], out["color"], out["tags"], out["min_disk"], out["protected"]) == \
        ("new", "big", "blue", ["x", "y"], 2, True)
    r = await images.patch(img["id"], [{"op": "remove", "path": "/color"}])
    assert r.status_code == 200 and "color" not in r.json()
    # replace or remove a missing property: 409; read-only: 403; bad pointer: 400
    for ops, status in [
        ([{"op": "replace", "path": "/nothere", "value": "v"}], 409),
        ([{"op": "remove", "path": "/nothere"}], 409),
        ([{"op": "replace", "path": "/status", "value": "active"}], 403),
        ([{"op": "add", "path": "/os_glance_x", "value": "v"}], 403),
        ([{"op": "replace", "path": "/id", "value": str(uuid.uuid4())}], 403),
        ([{"op": "move", "path": "/name", "value": "v"}], 400),
        ([{"op": "add", "path": "name", "value": "v"}], 400),
        ([{"op": "add", "path": "/a/b", "value": "v"}], 400),
        ([{"op": "add", "path": "/x"}], 400),
        ({"op": "add"}, 400),
        ([{"op": "replace", "path": "/visibility", "value": "nope"}], 400),
    ]:
        r = await images.patch(img["id"], ops)  # type: ignore[arg-type]
        assert r.status_code == status, (ops, r.text)
    # one bad operation fails the whole patch: nothing of it is applied
    r = await images.patch(img["id"], [{"op": "replace", "path": "/name", "value": "changed"},
                                       {"op": "remove", "path": "/nothere"}])
    assert r.status_code == 409
    assert (await images.show(img["id"]))["name"] == "new"
    r = await images.req("PATCH", f"/images/{img['id']}", json=[], headers={"Content-Type": "application/json"})
    assert r.status_code == 415


async def test_json_pointer_escapes(images: Images) -> None:
    img = await images.create()
    r = await images.patch(img["id"], [{"op": "add", "path": "/a~1b~0c", "value": "v"}])
    assert r.status_code == 200, r.text
    assert r.json()["a/b~c"] == "v"


async def test_delete_and_protected(images: Images) -> None:
    img = await images.create(protected=True)
    r = await images.req("DELETE", f"/images/{img['id']}")
    assert r.status_code == 403
    await images.patch(img["id"], [{"op": "replace", "path": "/protected", "value": False}])
    r = await images.req("DELETE", f"/images/{img['id']}")
    assert r.status_code == 204
    r = await images.req("GET", f"/images/{img['id']}")
    assert r.status_code == 404
    r = await images.req("DELETE", f"/images/{img['id']}")
    assert r.status_code == 404


async def test_tags(images: Images) -> None:
    img = await images.create()
    assert (await images.req("PUT", f"/images/{img['id']}/tags/blue")).status_code == 204
    assert (await images.req("PUT", f"/images/{img['id']}/tags/blue")).status_code == 204
    assert (await images.show(img["id"]))["tags"] == ["blue"]
    assert (await images.req("DELETE", f"/images/{img['id']}/tags/blue")).status_code == 204
    assert (await images.req("DELETE", f"/images/{img['id']}/tags/blue")).status_code == 404
    missing = str(uuid.uuid4())
    assert (await images.req("PUT", f"/images/{missing}/tags/x")).status_code == 404


async def test_deactivate_reactivate(images: Images) -> None:
    img = await images.active(b"data")
    _, member_token = await images.project_user()
    r = await images.req("POST", f"/images/{img['id']}/actions/deactivate", images.cloud.demo_token)
    assert r.status_code in (403, 404)
    r = await images.req("POST", f"/images/{img['id']}/actions/deactivate")
    assert r.status_code == 204
    assert (await images.show(img["id"]))["status"] == "deactivated"
    r = await images.req("POST", f"/images/{img['id']}/actions/reactivate")
    assert r.status_code == 204
    assert (await images.show(img["id"]))["status"] == "active"
    queued = await images.create()
    r = await images.req("POST", f"/images/{queued['id']}/actions/deactivate")
    assert r.status_code == 403
    del member_token


async def test_list_filters_sort_and_pages(images: Images) -> None:
    made = []
    for i, (fmt, size) in enumerate([("raw", 10), ("qcow2", 20), ("raw", 30), ("iso", 40)]):
        img = await images.create(name=f"img{i}", disk_format=fmt, container_format="bare",
                                  os_distro="debian" if i % 2 else "cirros", tags=["t"] if i < 2 else [])
        r = await images.upload(img["id"], b"z" * size)
        assert r.status_code == 204 or fmt != "raw", r.text
        made.append(img["id"])

    async def ids(query: str) -> list[str]:
        r = await images.req("GET", "/images" + query)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["images"]]

    assert await ids("") == list(reversed(made))  # newest first
    assert await ids("?sort_key=name&sort_dir=asc") == made
    assert await ids("?sort=name:desc") == list(reversed(made))
    assert set(await ids("?disk_format=raw")) == {made[0], made[2]}
    assert set(await ids("?os_distro=debian")) == {made[1], made[3]}
    assert set(await ids("?tag=t")) == {made[0], made[1]}
    assert set(await ids("?name=in:img0,img3")) == {made[0], made[3]}
    assert set(await ids("?size_min=20&size_max=30")) <= {made[2], made[1]}
    assert set(await ids("?status=queued")) | set(await ids("?status=active")) == set(made)
    # pagination with limit and marker follows next links to the end
    seen: list[str] = []
    r = await images.req("GET", "/images?limit=3&sort_key=name&sort_dir=asc")
    page = r.json()
    seen += [i["id"] for i in page["images"]]
    assert page["next"].startswith("/v2/images?")
    r = await images.req("GET", page["next"][len("/v2"):])
    page = r.json()
    seen += [i["id"] for i in page["images"]]
    assert seen == made and "next" not in page
    for bad in ("?limit=-1", "?limit=x", "?sort_key=nope", "?sort_dir=sideways",
                f"?marker={uuid.uuid4()}", "?created_at=gt:yesterday", "?visibility=nope",
                "?member_status=maybe", "?sort=name:asc&sort_key=id"):
        r = await images.req("GET", "/images" + bad)
        assert r.status_code == 400, (bad, r.text)


async def test_list_time_filters(images: Images) -> None:
    img = await images.create(name="t")
    r = await images.req("GET", f"/images?created_at=gte:{img['created_at']}")
    assert img["id"] in [i["id"] for i in r.json()["images"]]
    r = await images.req("GET", "/images?created_at=lt:2000-01-01T00:00:00Z")
    assert r.json()["images"] == []


async def test_hidden_images(images: Images) -> None:
    img = await images.create(os_hidden=True)
    r = await images.req("GET", "/images")
    assert img["id"] not in [i["id"] for i in r.json()["images"]]
    r = await images.req("GET", "/images?os_hidden=true")
    assert [i["id"] for i in r.json()["images"]] == [img["id"]]


async def test_versions_schemas_info(images: Images) -> None:
    c = images.cloud.client
    r = await c.get("/image/")
    assert r.status_code == 300
    assert r.json()["versions"][0]["status"] == "CURRENT"
    assert r.json()["versions"][0]["links"][0]["href"].endswith("/image/v2/")
    for name in ("image", "images", "member", "members", "task", "tasks"):
        r = await images.req("GET", f"/schemas/{name}")
        assert r.status_code == 200 and r.json()["name"] == name
    assert (await images.req("GET", "/schemas/nope")).status_code == 404
    r = await images.req("GET", "/info/import")
    assert "glance-direct" in r.json()["import-methods"]["value"]
    r = await images.req("GET", "/info/stores")
    assert {"id": "file", "description": r.json()["stores"][0]["description"], "default": True} \
        in r.json()["stores"]
    r = await images.req("GET", "/info/stores/detail", images.cloud.demo_token)
    assert r.status_code == 403
