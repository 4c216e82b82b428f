"""Nova's image proxy: ``/images`` and ``/images/{id}/metadata`` through the image
service with the caller's token, in Nova's view; gone at 2.36 (metadata at 2.39)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.compute.conftest import Compute, fault


async def _own_image(nova: Compute, token: str, **body: Any) -> dict[str, Any]:
    """A private image of the token's project (queued: no data)."""
    body.setdefault("name", "own-" + uuid.uuid4().hex[:6])
    body.setdefault("disk_format", "raw")
    body.setdefault("container_format", "bare")
    r = await nova.cloud.client.post("/image/v2/images", json=body,
                                     headers={"X-Auth-Token": token})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_list_show_and_view(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    pub = await nova.image(min_ram=64, min_disk=1, hw_disk_bus="virtio")
    own = await _own_image(nova, demo, image_type="snapshot",
                           instance_uuid="3f9e8f53-7b4b-4d23-9b3a-0a9f0d1e2c3b")
    r = await nova.req("GET", "/images", demo)
    assert r.status_code == 200, r.text
    listed = {i["id"]: i for i in r.json()["images"]}
    assert {pub["id"], own["id"]} <= set(listed)
    brief = listed[pub["id"]]
    assert set(brief) == {"id", "name", "links"}
    assert [lk["rel"] for lk in brief["links"]] == ["self", "bookmark", "alternate"]
    assert brief["links"][0]["href"].endswith(f"/compute/v2.1/images/{pub['id']}")
    assert brief["links"][2]["type"] == "application/vnd.openstack.image"

    r = await nova.req("GET", f"/images/{pub['id']}", demo)
    assert r.status_code == 200, r.text
    img = r.json()["image"]
    assert (img["status"], img["progress"], img["minRam"], img["minDisk"]) == (
        "ACTIVE", 100, 64, 1)
    assert img["metadata"] == {"hw_disk_bus": "virtio"}
    assert img["OS-EXT-IMG-SIZE:size"] == 512
    assert img["created"].endswith("Z") and img["updated"].endswith("Z")
    assert "server" not in img
    r = await nova.req("GET", f"/images/{own['id']}", demo)
    snap = r.json()["image"]
    assert (snap["status"], snap["progress"]) == ("SAVING", 25)  # queued
    assert snap["server"]["id"] == "3f9e8f53-7b4b-4d23-9b3a-0a9f0d1e2c3b"
    assert snap["server"]["links"][0]["href"].endswith(
        "/v2.1/servers/3f9e8f53-7b4b-4d23-9b3a-0a9f0d1e2c3b")
    assert snap["metadata"]["image_type"] == "snapshot"

    # another project's private image is not there for the demo user
    _p, _u, other = await nova.project_user()
    hidden = await _own_image(nova, other)
    msg = fault(await nova.req("GET", f"/images/{hidden['id']}", demo), "itemNotFound", 404)
    assert msg == "Image not found."
    fault(await nova.req("GET", f"/images/{uuid.uuid4()}", demo), "itemNotFound", 404)
    # gone from 2.36
    fault(await nova.req("GET", "/images", demo, version="2.36"), "itemNotFound", 404)
    fault(await nova.req("GET", f"/images/{pub['id']}", demo, version="2.36"),
          "itemNotFound", 404)
    assert (await nova.req("GET", "/images", demo, version="2.35")).status_code == 200


async def test_detail_filters_and_paging(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    name = "flt-" + uuid.uuid4().hex[:6]
    active = await nova.image(name=name)
    snap = await _own_image(nova, demo, name=name, image_type="snapshot",
                            instance_uuid="9b0a3a52-1f4e-4ad5-8c3e-55e1b7a3c001")

    async def ids(query: str) -> set[str]:
        r = await nova.req("GET", f"/images/detail?{query}", demo)
        assert r.status_code == 200, r.text
        for i in r.json()["images"]:
            assert {"id", "name", "status", "progress", "minRam", "minDisk", "metadata",
                    "created", "updated", "links"} <= set(i)
        return {i["id"] for i in r.json()["images"]}

    assert await ids(f"name={name}") == {active["id"], snap["id"]}
    assert await ids(f"name={name}&status=ACTIVE") == {active["id"]}
    assert await ids(f"name={name}&status=SAVING") == {snap["id"]}
    assert await ids(f"name={name}&type=snapshot") == {snap["id"]}
    assert await ids("server=9b0a3a52-1f4e-4ad5-8c3e-55e1b7a3c001") == {snap["id"]}
    assert await ids(f"name={name}&changes-since=2000-01-01T00:00:00Z") == {
        active["id"], snap["id"]}
    assert await ids(f"name={name}&changes-since=2999-01-01T00:00:00Z") == set()
    fault(await nova.req("GET", "/images/detail?changes-since=yesterday", demo),
          "badRequest", 400)
    # limit and marker walk the same list page by page
    r = await nova.req("GET", f"/images/detail?name={name}&limit=1", demo)
    first = r.json()["images"]
    assert len(first) == 1 and r.json()["images_links"][0]["rel"] == "next"
    r = await nova.req("GET", f"/images?name={name}&limit=1&marker={first[0]['id']}", demo)
    second = r.json()["images"]
    assert len(second) == 1 and second[0]["id"] != first[0]["id"]
    fault(await nova.req("GET", f"/images?marker={uuid.uuid4()}", demo), "badRequest", 400)
    fault(await nova.req("GET", "/images?limit=-1", demo), "badRequest", 400)


async def test_delete(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    own = await _own_image(nova, demo)
    pub = await nova.image()
    # another project's public image: the image service refuses, Nova says 403
    fault(await nova.req("DELETE", f"/images/{pub['id']}", demo), "forbidden", 403)
    assert (await nova.req("GET", f"/images/{pub['id']}", demo)).status_code == 200
    r = await nova.req("DELETE", f"/images/{own['id']}", demo)
    assert r.status_code == 204, r.text
    fault(await nova.req("GET", f"/images/{own['id']}", demo), "itemNotFound", 404)
    fault(await nova.req("DELETE", f"/images/{own['id']}", demo), "itemNotFound", 404)
    fault(await nova.req("DELETE", f"/images/{own['id']}", demo, version="2.36"),
          "itemNotFound", 404)


async def test_metadata(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    img = await _own_image(nova, demo, a="1", b="2")
    base = f"/images/{img['id']}/metadata"
    r = await nova.req("GET", base, demo)
    assert r.status_code == 200 and r.json() == {"metadata": {"a": "1", "b": "2"}}
    r = await nova.req("GET", f"{base}/a", demo)
    assert r.json() == {"meta": {"a": "1"}}
    fault(await nova.req("GET", f"{base}/zz", demo), "itemNotFound", 404)
    # POST merges
    r = await nova.req("POST", base, demo, json={"metadata": {"b": "two", "c": "3"}})
    assert r.status_code == 200, r.text
    assert r.json() == {"metadata": {"a": "1", "b": "two", "c": "3"}}
    # PUT one item
    r = await nova.req("PUT", f"{base}/d", demo, json={"meta": {"d": "4"}})
    assert r.status_code == 200 and r.json() == {"meta": {"d": "4"}}
    msg = fault(await nova.req("PUT", f"{base}/d", demo, json={"meta": {"e": "5"}}),
                "badRequest", 400)
    assert msg == "Request body and URI mismatch"
    fault(await nova.req("PUT", f"{base}/d", demo, json={"meta": {"d": "4", "e": "5"}}),
          "badRequest", 400)
    # DELETE one
    r = await nova.req("DELETE", f"{base}/a", demo)
    assert r.status_code == 204
    msg = fault(await nova.req("DELETE", f"{base}/a", demo), "itemNotFound", 404)
    assert msg == "Invalid metadata key"
    r = await nova.req("GET", base, demo)
    assert r.json()["metadata"] == {"b": "two", "c": "3", "d": "4"}
    # PUT replaces all
    r = await nova.req("PUT", base, demo, json={"metadata": {"only": "x"}})
    assert r.status_code == 200 and r.json() == {"metadata": {"only": "x"}}
    r = await nova.cloud.client.get(f"/image/v2/images/{img['id']}",
                                    headers={"X-Auth-Token": demo})
    glance = r.json()
    assert glance["only"] == "x" and "b" not in glance and "d" not in glance
    # bad bodies change nothing
    fault(await nova.req("POST", base, demo, json={"metadata": {"k": 1}}), "badRequest", 400)
    fault(await nova.req("PUT", base, demo, json={"meta": {"k": "v"}}), "badRequest", 400)
    too_many = {f"k{i}": "v" for i in range(129)}
    fault(await nova.req("PUT", base, demo, json={"metadata": too_many}), "forbidden", 403)
    assert (await nova.req("GET", base, demo)).json() == {"metadata": {"only": "x"}}
    # another project's image: 403 from the image service; unknown: 404
    pub = await nova.image()
    fault(await nova.req("POST", f"/images/{pub['id']}/metadata", demo,
                         json={"metadata": {"x": "y"}}), "forbidden", 403)
    fault(await nova.req("GET", f"/images/{uuid.uuid4()}/metadata", demo),
          "itemNotFound", 404)
    # 2.38 still serves it, 2.39 not
    assert (await nova.req("GET", base, demo, version="2.38")).status_code == 200
    fault(await nova.req("GET", base, demo, version="2.39"), "itemNotFound", 404)
