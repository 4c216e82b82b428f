"""Regions, services, endpoints and the deprecated policy blobs; the catalog in
tokens follows every change at once."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Cloud


async def _service(cloud: Cloud, **attrs: Any) -> dict[str, Any]:
    r = await cloud.post("/services", {"service": {"type": "key-manager", "name": "barbican", **attrs}})
    assert r.status_code == 201, r.text
    return r.json()["service"]  # type: ignore[no-any-return]


async def _endpoint(cloud: Cloud, service_id: str, **attrs: Any) -> dict[str, Any]:
    body = {"interface": "public", "url": "http://keys.example:9311/v1",
            "service_id": service_id, **attrs}
    r = await cloud.post("/endpoints", {"endpoint": body})
    assert r.status_code == 201, r.text
    return r.json()["endpoint"]  # type: ignore[no-any-return]


# -- regions -------------------------------------------------------------------


async def test_region_crud_with_client_chosen_ids(cloud: Cloud) -> None:
    r = await cloud.put("/regions/East", {"region": {"description": "east coast", "zone": "a"}})
    assert r.status_code == 201, r.text
    east = r.json()["region"]
    assert east == {
        "id": "East", "description": "east coast", "parent_region_id": None, "zone": "a",
        "links": {"self": "http://onestack.test/identity/v3/regions/East"},
    }
    r = await cloud.post("/regions", {"region": {"id": "East-1", "parent_region_id": "East"}})
    assert r.status_code == 201
    assert r.json()["region"]["description"] == ""
    r = await cloud.post("/regions", {"region": {}})
    assert r.status_code == 201
    generated = r.json()["region"]["id"]
    assert len(generated) == 32

    r = await cloud.get("/regions?parent_region_id=East")
    assert [x["id"] for x in r.json()["regions"]] == ["East-1"]
    r = await cloud.get("/regions")
    ids = {x["id"] for x in r.json()["regions"]}
    assert {"RegionOne", "East", "East-1", generated} <= ids
    assert r.json()["links"]["self"].endswith("/identity/v3/regions")

    r = await cloud.patch("/regions/East", {"region": {"description": "new", "zone": None}})
    assert r.status_code == 200
    assert r.json()["region"]["description"] == "new"
    r = await cloud.get("/regions/East")
    assert r.json()["region"]["description"] == "new"

    # deleting a parent takes its children along
    r = await cloud.delete("/regions/East")
    assert r.status_code == 204
    assert (await cloud.get("/regions/East-1")).status_code == 404


async def test_region_errors(cloud: Cloud) -> None:
    r = await cloud.put("/regions/A", {"region": {}})
    assert r.status_code == 201
    r = await cloud.put("/regions/A", {"region": {}})
    assert r.status_code == 409
    assert r.json()["error"]["message"] == (
        "Conflict occurred attempting to store region - Duplicate ID, A.."
    )
    r = await cloud.put("/regions/B", {"region": {"id": "C"}})
    assert r.status_code == 400
    r = await cloud.post("/regions", {"region": {"parent_region_id": "nowhere"}})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Could not find region: nowhere."
    r = await cloud.post("/regions", {"region": {"description": 5}})
    assert r.status_code == 400
    r = await cloud.get("/regions/nowhere")
    assert r.status_code == 404
    r = await cloud.patch("/regions/A", {"region": {}})
    assert r.status_code == 400
    r = await cloud.patch("/regions/A", {"region": {"id": "Z"}})
    assert r.status_code == 400

    # no loops: A -> B -> A is refused, and so is A -> A
    assert (await cloud.put("/regions/B", {"region": {"parent_region_id": "A"}})).status_code == 201
    r = await cloud.patch("/regions/A", {"region": {"parent_region_id": "B"}})
    assert r.status_code == 400
    assert "circular" in r.json()["error"]["message"]
    r = await cloud.patch("/regions/A", {"region": {"parent_region_id": "A"}})
    assert r.status_code == 400


async def test_region_with_endpoints_cannot_be_deleted(cloud: Cloud) -> None:
    await cloud.put("/regions/Parent", {"region": {}})
    await cloud.put("/regions/Child", {"region": {"parent_region_id": "Parent"}})
    svc = await _service(cloud)
    ep = await _endpoint(cloud, svc["id"], region_id="Child")
    r = await cloud.delete("/regions/Parent")
    assert r.status_code == 403
    assert r.json()["error"]["message"] == (
        "Unable to delete region Parent because it or its child regions have associated endpoints."
    )
    assert (await cloud.delete(f"/endpoints/{ep['id']}")).status_code == 204
    assert (await cloud.delete("/regions/Parent")).status_code == 204


async def test_regions_authorization(cloud: Cloud) -> None:
    # anyone authenticated reads regions; only admins change them
    assert (await cloud.get("/regions", token=cloud.demo_token)).status_code == 200
    assert (await cloud.get("/regions/RegionOne", token=cloud.demo_token)).status_code == 200
    r = await cloud.put("/regions/X", {"region": {}}, token=cloud.demo_token)
    assert r.status_code == 403
    assert (await cloud.post("/regions", {"region": {}}, token=cloud.demo_token)).status_code == 403
    r = await cloud.patch("/regions/RegionOne", {"region": {"description": "x"}},
                          token=cloud.demo_token)
    assert r.status_code == 403
    assert (await cloud.delete("/regions/RegionOne", token=cloud.demo_token)).status_code == 403
    r = await cloud.client.get("/identity/v3/regions")
    assert r.status_code == 401


# -- services ------------------------------------------------------------------


async def test_service_crud_and_filters(cloud: Cloud) -> None:
    svc = await _service(cloud, description="Key manager", region_hint="x")
    assert svc["type"] == "key-manager" and svc["name"] == "barbican" and svc["enabled"] is True
    assert svc["description"] == "Key manager" and svc["region_hint"] == "x"
    assert svc["links"]["self"].endswith(f"/v3/services/{svc['id']}")
    r = await cloud.post("/services", {"service": {"type": "volumev3"}})
    assert r.status_code == 201
    assert r.json()["service"]["name"] == ""

    r = await cloud.get("/services?type=key-manager")
    assert [s["id"] for s in r.json()["services"]] == [svc["id"]]
    r = await cloud.get("/services?name=barbican")
    assert [s["id"] for s in r.json()["services"]] == [svc["id"]]
    r = await cloud.get("/services?name__startswith=barb")
    assert [s["id"] for s in r.json()["services"]] == [svc["id"]]
    r = await cloud.get("/services")
    assert {"identity", "key-manager", "volumev3"} <= {s["type"] for s in r.json()["services"]}

    r = await cloud.patch(f"/services/{svc['id']}", {"service": {"enabled": False, "name": "n2"}})
    assert r.status_code == 200
    assert r.json()["service"]["enabled"] is False
    assert r.json()["service"]["name"] == "n2"
    assert r.json()["service"]["description"] == "Key manager"
    r = await cloud.get(f"/services/{svc['id']}")
    assert r.json()["service"]["name"] == "n2"
    assert (await cloud.delete(f"/services/{svc['id']}")).status_code == 204
    assert (await cloud.get(f"/services/{svc['id']}")).status_code == 404


async def test_service_errors_and_authorization(cloud: Cloud) -> None:
    assert (await cloud.post("/services", {"service": {}})).status_code == 400
    assert (await cloud.post("/services", {"service": {"type": ""}})).status_code == 400
    r = await cloud.post("/services", {"service": {"type": "x", "enabled": "yes"}})
    assert r.status_code == 400
    r = await cloud.get("/services/nope")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Could not find service: nope."
    assert (await cloud.patch("/services/nope", {"service": {"name": "x"}})).status_code == 404
    assert (await cloud.delete("/services/nope")).status_code == 404
    svc = await _service(cloud)
    assert (await cloud.patch(f"/services/{svc['id']}", {"service": {}})).status_code == 400
    for r in (
        await cloud.get("/services", token=cloud.demo_token),
        await cloud.get(f"/services/{svc['id']}", token=cloud.demo_token),
        await cloud.post("/services", {"service": {"type": "x"}}, token=cloud.demo_token),
        await cloud.patch(f"/services/{svc['id']}", {"service": {"name": "x"}},
                          token=cloud.demo_token),
        await cloud.delete(f"/services/{svc['id']}", token=cloud.demo_token),
    ):
        assert r.status_code == 403


# -- endpoints -----------------------------------------------------------------


async def test_endpoint_crud_and_filters(cloud: Cloud) -> None:
    svc = await _service(cloud)
    ep = await _endpoint(cloud, svc["id"], region_id="RegionOne", name="pub")
    assert ep["region"] == ep["region_id"] == "RegionOne"
    assert ep["enabled"] is True and ep["interface"] == "public" and ep["name"] == "pub"
    assert "managed_by_onestack" not in ep
    internal = await _endpoint(cloud, svc["id"], interface="internal", url="http://10.0.0.1:8774")
    assert internal["region_id"] is None

    r = await cloud.get(f"/endpoints?service_id={svc['id']}")
    assert {e["id"] for e in r.json()["endpoints"]} == {ep["id"], internal["id"]}
    r = await cloud.get(f"/endpoints?service_id={svc['id']}&interface=internal")
    assert [e["id"] for e in r.json()["endpoints"]] == [internal["id"]]
    r = await cloud.get("/endpoints?region_id=RegionOne&interface=public")
    ids = [e["id"] for e in r.json()["endpoints"]]
    assert ep["id"] in ids and internal["id"] not in ids
    assert (await cloud.get("/endpoints?interface=bogus")).status_code == 400

    r = await cloud.patch(f"/endpoints/{ep['id']}", {"endpoint": {
        "url": "http://new.example/v2.1", "enabled": False}})
    assert r.status_code == 200
    assert r.json()["endpoint"]["url"] == "http://new.example/v2.1"
    assert r.json()["endpoint"]["enabled"] is False
    r = await cloud.get(f"/endpoints/{ep['id']}")
    assert r.json()["endpoint"]["url"] == "http://new.example/v2.1"

    # the legacy "region" attribute creates the region on the fly
    r = await cloud.patch(f"/endpoints/{ep['id']}", {"endpoint": {"region": "Legacy"}})
    assert r.status_code == 200
    assert r.json()["endpoint"]["region_id"] == "Legacy"
    assert (await cloud.get("/regions/Legacy")).status_code == 200

    assert (await cloud.delete(f"/endpoints/{ep['id']}")).status_code == 204
    assert (await cloud.get(f"/endpoints/{ep['id']}")).status_code == 404
    # deleting the service deletes its remaining endpoint
    assert (await cloud.delete(f"/services/{svc['id']}")).status_code == 204
    assert (await cloud.get(f"/endpoints/{internal['id']}")).status_code == 404


@pytest.mark.parametrize("body", [
    {"interface": "public", "url": "http://x"},                       # no service_id
    {"service_id": "S", "url": "http://x"},                           # no interface
    {"service_id": "S", "interface": "public"},                       # no url
    {"service_id": "S", "interface": "outside", "url": "http://x"},   # bad interface
    {"service_id": "S", "interface": "public", "url": "not a url"},   # bad url
    {"service_id": "S", "interface": "public", "url": "http://x/$(bogus)s"},
    {"service_id": "S", "interface": "public", "url": "http://x", "enabled": "true"},
])
async def test_endpoint_validation(cloud: Cloud, body: dict[str, Any]) -> None:
    svc = await _service(cloud)
    body = {k: (svc["id"] if v == "S" else v) for k, v in body.items()}
    r = await cloud.post("/endpoints", {"endpoint": body})
    assert r.status_code == 400, r.text


async def test_endpoint_dangling_references(cloud: Cloud) -> None:
    r = await cloud.post("/endpoints", {"endpoint": {
        "service_id": "nope", "interface": "public", "url": "http://x"}})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(
        "Expecting to find endpoint service_id in service table.")
    svc = await _service(cloud)
    r = await cloud.post("/endpoints", {"endpoint": {
        "service_id": svc["id"], "interface": "public", "url": "http://x", "region_id": "nope"}})
    assert r.status_code == 400
    assert "region_id" in r.json()["error"]["message"]
    ep = await _endpoint(cloud, svc["id"], url="http://x/$(project_id)s")
    r = await cloud.patch(f"/endpoints/{ep['id']}", {"endpoint": {"service_id": "nope"}})
    assert r.status_code == 400
    assert (await cloud.get("/endpoints/nope")).status_code == 404
    assert (await cloud.delete("/endpoints/nope")).status_code == 404


async def test_endpoints_authorization(cloud: Cloud) -> None:
    svc = await _service(cloud)
    ep = await _endpoint(cloud, svc["id"])
    for r in (
        await cloud.get("/endpoints", token=cloud.demo_token),
        await cloud.get(f"/endpoints/{ep['id']}", token=cloud.demo_token),
        await cloud.post("/endpoints", {"endpoint": {
            "service_id": svc["id"], "interface": "public", "url": "http://x"}},
            token=cloud.demo_token),
        await cloud.patch(f"/endpoints/{ep['id']}", {"endpoint": {"url": "http://y"}},
                          token=cloud.demo_token),
        await cloud.delete(f"/endpoints/{ep['id']}", token=cloud.demo_token),
    ):
        assert r.status_code == 403


async def test_token_catalog_follows_changes(cloud: Cloud) -> None:
    async def catalog() -> list[dict[str, Any]]:
        r = await cloud.token("demo", cloud.creds.demo_password, project="demo")
        return r.json()["token"]["catalog"]  # type: ignore[no-any-return]

    svc = await _service(cloud, name="barbican-x")
    ep = await _endpoint(cloud, svc["id"], region_id="RegionOne")
    entry = next(s for s in await catalog() if s["id"] == svc["id"])
    assert entry["name"] == "barbican-x" and entry["type"] == "key-manager"
    assert entry["endpoints"] == [{"id": ep["id"], "interface": "public", "region": "RegionOne",
                                   "region_id": "RegionOne", "url": ep["url"]}]
    r = await cloud.get("/auth/catalog", token=cloud.demo_token)
    assert svc["id"] in {s["id"] for s in r.json()["catalog"]}

    await cloud.patch(f"/endpoints/{ep['id']}", {"endpoint": {"url": "http://moved/v2.1"}})
    entry = next(s for s in await catalog() if s["id"] == svc["id"])
    assert entry["endpoints"][0]["url"] == "http://moved/v2.1"
    await cloud.patch(f"/endpoints/{ep['id']}", {"endpoint": {"enabled": False}})
    entry = next(s for s in await catalog() if s["id"] == svc["id"])
    assert entry["endpoints"] == []
    await cloud.patch(f"/services/{svc['id']}", {"service": {"enabled": False}})
    assert svc["id"] not in {s["id"] for s in await catalog()}
    await cloud.delete(f"/services/{svc['id']}")
    assert svc["id"] not in {s["id"] for s in await catalog()}


# -- policy blobs --------------------------------------------------------------


async def test_policy_blobs(cloud: Cloud) -> None:
    r = await cloud.post("/policies", {"policy": {"type": "application/json",
                                                  "blob": '{"a": "role:x"}', "owner": "ops"}})
    assert r.status_code == 201, r.text
    p = r.json()["policy"]
    assert p["type"] == "application/json" and p["blob"] == '{"a": "role:x"}'
    assert p["owner"] == "ops" and p["links"]["self"].endswith(f"/v3/policies/{p['id']}")
    r = await cloud.get("/policies?type=application/json")
    assert [x["id"] for x in r.json()["policies"]] == [p["id"]]
    assert (await cloud.get("/policies?type=text/plain")).json()["policies"] == []
    r = await cloud.patch(f"/policies/{p['id']}", {"policy": {"blob": "{}"}})
    assert r.status_code == 200 and r.json()["policy"]["blob"] == "{}"
    assert (await cloud.get(f"/policies/{p['id']}")).json()["policy"]["blob"] == "{}"
    assert (await cloud.post("/policies", {"policy": {"type": "x"}})).status_code == 400
    assert (await cloud.post("/policies", {"policy": {"blob": "x"}})).status_code == 400
    assert (await cloud.get(f"/policies/{p['id']}", token=cloud.demo_token)).status_code == 403
    r = await cloud.post("/policies", {"policy": {"type": "x", "blob": "y"}}, token=cloud.demo_token)
    assert r.status_code == 403
    assert (await cloud.delete(f"/policies/{p['id']}")).status_code == 204
    r = await cloud.get(f"/policies/{p['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Could not find policy: {p['id']}."
