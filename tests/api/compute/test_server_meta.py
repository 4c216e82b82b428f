"""Server metadata (/servers/{id}/metadata) and tags (/servers/{id}/tags, 2.26),
and the tag list filters."""

from __future__ import annotations

from typing import Any

from tests.api.compute.conftest import Compute, fault


async def active(nova: Compute, **server: Any) -> dict[str, Any]:
    img = await nova.image()
    body = await nova.boot(nova.cloud.demo_token, imageRef=img["id"], **server)
    return await nova.wait(body["server"]["id"], "ACTIVE", token=nova.cloud.demo_token)


async def test_metadata_crud_and_validation(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    srv = await active(nova, metadata={"a": "1"})
    base = f"/servers/{srv['id']}/metadata"
    r = await nova.req("GET", base, demo)
    assert r.status_code == 200 and r.json() == {"metadata": {"a": "1"}}
    # POST merges, PUT replaces
    r = await nova.req("POST", base, demo, json={"metadata": {"b": "2", "a": "one"}})
    assert r.status_code == 200 and r.json() == {"metadata": {"a": "one", "b": "2"}}
    r = await nova.req("PUT", base, demo, json={"metadata": {"c": "3"}})
    assert r.status_code == 200 and r.json() == {"metadata": {"c": "3"}}
    assert (await nova.req("GET", base, demo)).json() == {"metadata": {"c": "3"}}
    # one item
    r = await nova.req("PUT", f"{base}/d", demo, json={"meta": {"d": "4"}})
    assert r.status_code == 200 and r.json() == {"meta": {"d": "4"}}
    r = await nova.req("GET", f"{base}/d", demo)
    assert r.status_code == 200 and r.json() == {"meta": {"d": "4"}}
    assert (await nova.req("DELETE", f"{base}/d", demo)).status_code == 204
    msg = fault(await nova.req("GET", f"{base}/d", demo), "itemNotFound", 404)
    assert msg == "Metadata item was not found"
    fault(await nova.req("DELETE", f"{base}/d", demo), "itemNotFound", 404)
    # the server's view shows it
    r = await nova.req("GET", f"/servers/{srv['id']}", demo)
    assert r.json()["server"]["metadata"] == {"c": "3"}
    # validation: nothing changes
    for body in ({"metadata": {"k" * 256: "v"}}, {"metadata": {"": "v"}},
                 {"metadata": {"bad/key": "v"}}, {"metadata": {"k": "v" * 256}},
                 {"metadata": {"k": 1}}, {"metadata": []}, {"meta": {"k": "v"}}, {}):
        fault(await nova.req("POST", base, demo, json=body), "badRequest", 400)
        fault(await nova.req("PUT", base, demo, json=body), "badRequest", 400)
    r = await nova.req("POST", base, demo, json={"metadata": {"k" * 255: "v" * 255}})
    assert r.status_code == 200
    msg = fault(await nova.req("PUT", f"{base}/x", demo, json={"meta": {"y": "1"}}),
                "badRequest", 400)
    assert msg == "Request body and URI mismatch"
    fault(await nova.req("PUT", f"{base}/x", demo, json={"meta": {"x": "1", "y": "2"}}),
          "badRequest", 400)
    fault(await nova.req("PUT", f"{base}/x", demo, json={"meta": {}}), "badRequest", 400)
    assert set((await nova.req("GET", base, demo)).json()["metadata"]) == {"c", "k" * 255}
    # quota: 128 items
    many = {f"k{i}": "v" for i in range(129)}
    msg = fault(await nova.req("PUT", base, demo, json={"metadata": many}), "forbidden", 403)
    assert msg == "Maximum number of metadata items exceeds 128"
    assert len((await nova.req("GET", base, demo)).json()["metadata"]) == 2
    # unknown server
    fault(await nova.req("GET", "/servers/00000000-0000-0000-0000-000000000000/metadata",
                         demo), "itemNotFound", 404)
    # the same rules when a server is created, and nothing is created
    before = (await nova.req("GET", "/servers", demo)).json()["servers"]
    img = srv["image"]["id"]
    r = await nova.req("POST", "/servers", demo, version="2.37", json={"server": {
        "name": "x", "imageRef": img, "flavorRef": "42", "networks": "none",
        "metadata": many}})
    assert fault(r, "forbidden", 403) == "Maximum number of metadata items exceeds 128"
    r = await nova.req("POST", "/servers", demo, version="2.37", json={"server": {
        "name": "x", "imageRef": img, "flavorRef": "42", "networks": "none",
        "metadata": {"bad/key": "v"}}})
    fault(r, "badRequest", 400)
    assert (await nova.req("GET", "/servers", demo)).json()["servers"] == before


async def test_metadata_locked_and_other_projects(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    srv = await active(nova)
    base = f"/servers/{srv['id']}/metadata"
    _, _, other = await nova.project_user()
    fault(await nova.req("GET", base, other), "itemNotFound", 404)
    fault(await nova.req("POST", base, other, json={"metadata": {"a": "b"}}),
          "itemNotFound", 404)
    r = await nova.req("POST", f"/servers/{srv['id']}/action", demo, json={"lock": None})
    assert r.status_code == 202
    msg = fault(await nova.req("POST", base, demo, json={"metadata": {"a": "b"}}),
                "conflictingRequest", 409)
    assert msg == f"Instance {srv['id']} is locked"
    fault(await nova.req("DELETE", f"{base}/a", demo), "conflictingRequest", 409)
    # an admin may change a locked server's metadata
    r = await nova.req("POST", base, json={"metadata": {"a": "b"}})
    assert r.status_code == 200 and r.json() == {"metadata": {"a": "b"}}
    assert (await nova.req("GET", base, demo)).json() == {"metadata": {"a": "b"}}
    # a stopped server's metadata may change, a building one's may not
    r = await nova.req("POST", f"/servers/{srv['id']}/action", demo, json={"unlock": None})
    assert r.status_code == 202
    r = await nova.req("POST", f"/servers/{srv['id']}/action", demo, json={"os-resetState": {
        "state": "error"}})
    assert r.status_code == 403
    r = await nova.req("POST", f"/servers/{srv['id']}/action", json={"os-resetState": {
        "state": "error"}})
    assert r.status_code == 202
    msg = fault(await nova.req("PUT", f"{base}/a", demo, json={"meta": {"a": "c"}}),
                "conflictingRequest", 409)
    assert msg == f"Cannot 'update metadata' instance {srv['id']} while it is in vm_state error"


async def test_tags(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    v = "2.26"
    srv = await active(nova)
    base = f"/servers/{srv['id']}/tags"
    fault(await nova.req("GET", base, demo, version="2.25"), "itemNotFound", 404)
    r = await nova.req("GET", base, demo, version=v)
    assert r.status_code == 200 and r.json() == {"tags": []}
    r = await nova.req("PUT", f"{base}/blue", demo, version=v)
    assert r.status_code == 201 and r.headers["location"].endswith(f"{base}/blue")
    assert (await nova.req("PUT", f"{base}/blue", demo, version=v)).status_code == 204
    assert (await nova.req("GET", f"{base}/blue", demo, version=v)).status_code == 204
    msg = fault(await nova.req("GET", f"{base}/red", demo, version=v), "itemNotFound", 404)
    assert "red" in msg
    r = await nova.req("PUT", base, demo, version=v, json={"tags": ["a", "b", "a"]})
    assert r.status_code == 200 and r.json() == {"tags": ["a", "b"]}
    r = await nova.req("GET", f"/servers/{srv['id']}", demo, version=v)
    assert r.json()["server"]["tags"] == ["a", "b"]
    assert (await nova.req("DELETE", f"{base}/a", demo, version=v)).status_code == 204
    fault(await nova.req("DELETE", f"{base}/a", demo, version=v), "itemNotFound", 404)
    # validation and the limit of 50, nothing written on failure
    for bad in (["x" * 61], ["a/b"], ["a,b"], [""], [1], "a", [f"t{i}" for i in range(51)]):
        fault(await nova.req("PUT", base, demo, version=v, json={"tags": bad}),
              "badRequest", 400)
    fault(await nova.req("PUT", base, demo, version=v, json={"tag": []}), "badRequest", 400)
    fault(await nova.req("PUT", f"{base}/{'x' * 61}", demo, version=v), "badRequest", 400)
    fault(await nova.req("PUT", f"{base}/a,b", demo, version=v), "badRequest", 400)
    assert (await nova.req("GET", base, demo, version=v)).json() == {"tags": ["b"]}
    fifty = [f"t{i}" for i in range(50)]
    r = await nova.req("PUT", base, demo, version=v, json={"tags": fifty})
    assert r.status_code == 200
    msg = fault(await nova.req("PUT", f"{base}/one-more", demo, version=v), "badRequest", 400)
    assert msg == "The number of tags exceeded the per-server limit 50"
    assert (await nova.req("PUT", f"{base}/t3", demo, version=v)).status_code == 204
    assert (await nova.req("DELETE", base, demo, version=v)).status_code == 204
    assert (await nova.req("GET", base, demo, version=v)).json() == {"tags": []}
    # another project's server is not found
    _, _, other = await nova.project_user()
    fault(await nova.req("GET", base, other, version=v), "itemNotFound", 404)


async def test_tag_list_filters(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    v = "2.26"
    img = await nova.image()
    ids = {}
    for name, tags in (("ab", ["a", "b"]), ("a", ["a"]), ("c", ["c"]), ("none", [])):
        body = await nova.boot(demo, imageRef=img["id"], name=name, version="2.52", tags=tags)
        ids[name] = body["server"]["id"]

    async def names(query: str) -> set[str]:
        r = await nova.req("GET", f"/servers?{query}", demo, version=v)
        assert r.status_code == 200, r.text
        return {s["name"] for s in r.json()["servers"]}

    assert await names("tags=a,b") == {"ab"}
    assert await names("tags=a") == {"ab", "a"}
    assert await names("tags-any=b,c") == {"ab", "c"}
    assert await names("not-tags=a,b") == {"a", "c", "none"}
    assert await names("not-tags-any=a,c") == {"none"}
    assert await names("tags=a&not-tags-any=b") == {"a"}
    # before 2.26 the filters are ignored
    r = await nova.req("GET", "/servers?tags=a,b", demo, version="2.25")
    assert {s["name"] for s in r.json()["servers"]} == {"ab", "a", "c", "none"}
    for sid in ids.values():
        await nova.wait(sid, "ACTIVE", token=demo)
