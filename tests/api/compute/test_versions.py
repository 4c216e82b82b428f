"""Version discovery and microversion negotiation."""

from __future__ import annotations

import pytest

from tests.api.compute.conftest import Compute, fault
from tests.conftest import Cloud

MAX = "2.100"


async def test_root_lists_v20_and_v21(cloud: Cloud) -> None:
    r = await cloud.client.get("/compute/")
    assert r.status_code == 200
    versions = {v["id"]: v for v in r.json()["versions"]}
    assert set(versions) == {"v2.0", "v2.1"}
    assert versions["v2.1"]["status"] == "CURRENT"
    assert versions["v2.1"]["min_version"] == "2.1"
    assert versions["v2.1"]["version"] == MAX
    assert versions["v2.1"]["links"][0]["href"] == "http://onestack.test/compute/v2.1/"
    assert versions["v2.0"]["version"] == "" and versions["v2.0"]["min_version"] == ""
    # the root is not under microversion control
    assert "OpenStack-API-Version" not in r.headers
    # every self link can be followed (Tempest's test_get_version_details)
    for v in versions.values():
        (link,) = [x["href"] for x in v["links"] if x["rel"] == "self"]
        doc = await cloud.client.get(link.replace("http://onestack.test", ""))
        assert doc.status_code == 200, link
        assert doc.json()["version"]["id"] == v["id"]


@pytest.mark.parametrize("path", ["/compute/v2.1", "/compute/v2.1/"])
async def test_v21_document(cloud: Cloud, path: str) -> None:
    r = await cloud.client.get(path)
    assert r.status_code == 200, r.text
    v = r.json()["version"]
    assert (v["id"], v["min_version"], v["version"]) == ("v2.1", "2.1", MAX)
    assert v["media-types"][0]["type"] == "application/vnd.openstack.compute+json;version=2.1"
    assert r.headers["OpenStack-API-Version"] == "compute 2.1"


async def test_default_version_headers(nova: Compute) -> None:
    r = await nova.req("GET", "/flavors")
    assert r.status_code == 200
    assert r.headers["OpenStack-API-Version"] == "compute 2.1"
    assert r.headers["X-OpenStack-Nova-API-Version"] == "2.1"
    vary = r.headers["Vary"]
    assert "OpenStack-API-Version" in vary and "X-OpenStack-Nova-API-Version" in vary


@pytest.mark.parametrize(("headers", "expected"), [
    ({"OpenStack-API-Version": "compute 2.55"}, "2.55"),
    ({"OpenStack-API-Version": "compute latest"}, MAX),
    ({"X-OpenStack-Nova-API-Version": "2.10"}, "2.10"),
    ({"X-OpenStack-Nova-API-Version": "latest"}, MAX),
    # the new header wins over the legacy one; another service's is ignored
    ({"OpenStack-API-Version": "compute 2.20", "X-OpenStack-Nova-API-Version": "2.30"}, "2.20"),
    ({"OpenStack-API-Version": "volume 3.50"}, "2.1"),
])
async def test_negotiation(nova: Compute, headers: dict[str, str], expected: str) -> None:
    r = await nova.req("GET", "/flavors", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["OpenStack-API-Version"] == f"compute {expected}"
    assert r.headers["X-OpenStack-Nova-API-Version"] == expected


@pytest.mark.parametrize("value", ["2.0", "2.101", "3.1", "1.1"])
async def test_outside_the_range_is_406(nova: Compute, value: str) -> None:
    r = await nova.req("GET", "/flavors", version=value)
    message = fault(r, "computeFault", 406)
    assert f"Version {value} is not supported by the API" in message


@pytest.mark.parametrize("value", ["2", "abc", "2.1.1", "2.01", " "])
async def test_malformed_is_400(nova: Compute, value: str) -> None:
    r = await nova.req("GET", "/flavors", headers={"X-OpenStack-Nova-API-Version": value})
    message = fault(r, "badRequest", 400)
    assert "invalid format" in message


async def test_errors_carry_the_version(nova: Compute) -> None:
    r = await nova.req("GET", "/flavors/nope", version="2.61")
    fault(r, "itemNotFound", 404)
    assert r.headers["OpenStack-API-Version"] == "compute 2.61"


async def test_unauthenticated_is_401_in_the_envelope(cloud: Cloud) -> None:
    r = await cloud.client.get("/compute/v2.1/flavors")
    fault(r, "unauthorized", 401)
    r = await cloud.client.get("/compute/v2.1/flavors", headers={"X-Auth-Token": "bogus"})
    fault(r, "unauthorized", 401)


async def test_unknown_path_and_method(nova: Compute) -> None:
    fault(await nova.req("GET", "/no-such-thing"), "itemNotFound", 404)
    fault(await nova.req("PATCH", "/flavors"), "badMethod", 405)


async def test_catalog_has_compute(cloud: Cloud) -> None:
    r = await cloud.client.get("/identity/v3/auth/catalog",
                               headers={"X-Auth-Token": cloud.demo_token})
    assert r.status_code == 200, r.text
    [entry] = [s for s in r.json()["catalog"] if s["type"] == "compute"]
    assert entry["name"] == "nova"
    urls = {e["url"] for e in entry["endpoints"]}
    assert urls == {"http://127.0.0.1:8780/compute/v2.1"}


async def test_compute_request_id_matches_the_openstack_one(cloud: Cloud) -> None:
    r = await cloud.client.get("/compute/v2.1/flavors",
                               headers={"X-Auth-Token": cloud.admin_token})
    assert r.status_code == 200
    assert r.headers["x-compute-request-id"] == r.headers["x-openstack-request-id"]
    assert r.headers["x-compute-request-id"].startswith("req-")
