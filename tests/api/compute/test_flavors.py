"""Flavors: defaults, CRUD, microversion fields, validation, filters, pagination,
extra specs and private flavors' access lists."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.compute.conftest import Compute, fault

DEFAULT_IDS = {"1", "2", "3", "4", "5", "42", "84"}


async def names(nova: Compute, token: str | None = None, query: str = "") -> set[str]:
    r = await nova.req("GET", "/flavors" + query, token)
    assert r.status_code == 200, r.text
    return {f["name"] for f in r.json()["flavors"]}


async def test_default_flavors_like_devstack(nova: Compute) -> None:
    r = await nova.req("GET", "/flavors/detail", nova.cloud.demo_token)
    assert r.status_code == 200
    flavors = {f["id"]: f for f in r.json()["flavors"]}
    assert set(flavors) == DEFAULT_IDS
    tiny = flavors["1"]
    assert (tiny["name"], tiny["vcpus"], tiny["ram"], tiny["disk"]) == ("m1.tiny", 1, 512, 1)
    assert flavors["5"]["name"] == "m1.xlarge" and flavors["5"]["vcpus"] == 8
    nano = flavors["42"]
    assert (nano["name"], nano["ram"], nano["disk"]) == ("m1.nano", 128, 1)


async def test_show_fields_by_microversion(nova: Compute) -> None:
    r = await nova.req("GET", "/flavors/1")
    f = r.json()["flavor"]
    assert f["swap"] == "" and f["rxtx_factor"] == 1.0
    assert f["OS-FLV-DISABLED:disabled"] is False and f["os-flavor-access:is_public"] is True
    assert f["OS-FLV-EXT-DATA:ephemeral"] == 0
    assert "description" not in f and "extra_specs" not in f
    assert f["links"] == [
        {"rel": "self", "href": "http://onestack.test/compute/v2.1/flavors/1"},
        {"rel": "bookmark", "href": "http://onestack.test/compute/flavors/1"},
    ]
    f = (await nova.req("GET", "/flavors/1", version="2.55")).json()["flavor"]
    assert f["description"] is None and "extra_specs" not in f and f["swap"] == ""
    f = (await nova.req("GET", "/flavors/1", version="2.61")).json()["flavor"]
    assert f["extra_specs"] == {} and f["swap"] == ""
    f = (await nova.req("GET", "/flavors/1", version="2.75")).json()["flavor"]
    assert f["swap"] == 0
    brief = (await nova.req("GET", "/flavors", version="2.55")).json()["flavors"][0]
    assert set(brief) == {"id", "name", "links", "description"}
    brief = (await nova.req("GET", "/flavors")).json()["flavors"][0]
    assert set(brief) == {"id", "name", "links"}


async def test_create_show_delete(nova: Compute) -> None:
    f = await nova.flavor(name="c1.test", ram=1024, vcpus=2, disk=10, id=77, swap=512,
                          **{"OS-FLV-EXT-DATA:ephemeral": 5, "rxtx_factor": 2.5})
    assert f["id"] == "77"
    assert (f["ram"], f["vcpus"], f["disk"], f["swap"]) == (1024, 2, 10, 512)
    assert f["OS-FLV-EXT-DATA:ephemeral"] == 5 and f["rxtx_factor"] == 2.5
    shown = (await nova.req("GET", "/flavors/77")).json()["flavor"]
    assert shown == f
    # a generated id is a UUID; string numbers are accepted
    g = await nova.flavor(ram="64", vcpus="1", disk="0")
    assert len(g["id"]) == 36 and g["ram"] == 64
    r = await nova.req("DELETE", "/flavors/77")
    assert r.status_code == 202
    fault(await nova.req("GET", "/flavors/77"), "itemNotFound", 404)
    fault(await nova.req("DELETE", "/flavors/77"), "itemNotFound", 404)


async def test_create_with_description_and_specs_at_new_versions(nova: Compute) -> None:
    f = await nova.flavor(version="2.75", description="for tests", swap=0)
    assert f["description"] == "for tests" and f["extra_specs"] == {} and f["swap"] == 0
    # before 2.55 a description is an unknown property
    r = await nova.req("POST", "/flavors", json={"flavor": {
        "name": "nodesc", "ram": 1, "vcpus": 1, "disk": 1, "description": "x"}})
    fault(r, "badRequest", 400)


async def test_only_admins_manage_flavors(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    body = {"flavor": {"name": "mine", "ram": 64, "vcpus": 1, "disk": 1}}
    message = fault(await nova.req("POST", "/flavors", demo, json=body), "forbidden", 403)
    assert "os_compute_api:os-flavor-manage:create" in message
    fault(await nova.req("DELETE", "/flavors/1", demo), "forbidden", 403)
    r = await nova.req("PUT", "/flavors/1", demo, version="2.55",
                       json={"flavor": {"description": "x"}})
    fault(r, "forbidden", 403)
    assert "mine" not in await names(nova)
    assert (await nova.req("GET", "/flavors/1", demo)).status_code == 200


@pytest.mark.parametrize(("field", "value"), [
    ("name", ""), ("name", " lead"), ("name", "trail "), ("name", "tab\there"), ("name", 5),
    ("name", "x" * 256),
    ("ram", 0), ("ram", -1), ("ram", "1.5"), ("ram", True), ("ram", 2**31),
    ("vcpus", 0), ("vcpus", "two"), ("vcpus", None),
    ("disk", -1), ("disk", 1.5),
    ("OS-FLV-EXT-DATA:ephemeral", -1), ("swap", "x"),
    ("rxtx_factor", 0), ("rxtx_factor", "abc"), ("rxtx_factor", -1.0),
    ("os-flavor-access:is_public", "maybe"), ("os-flavor-access:is_public", 2),
    ("id", ""), ("id", " x"), ("id", "a/b"), ("id", True), ("id", {"a": 1}),
    ("unknown", 1),
])
async def test_bad_create_input(nova: Compute, field: str, value: Any) -> None:
    before = await names(nova, query="?is_public=none")
    body = {"name": "bad-flavor", "ram": 64, "vcpus": 1, "disk": 1, field: value}
    r = await nova.req("POST", "/flavors", json={"flavor": body})
    fault(r, "badRequest", 400)
    assert await names(nova, query="?is_public=none") == before


@pytest.mark.parametrize("body", [
    {}, {"flavor": "x"}, {"flavor": {"name": "a", "ram": 1, "vcpus": 1}}, [], {"other": {}},
])
async def test_bad_create_shape(nova: Compute, body: Any) -> None:
    fault(await nova.req("POST", "/flavors", json=body), "badRequest", 400)


async def test_malformed_json(nova: Compute) -> None:
    r = await nova.req("POST", "/flavors", content=b"{not json",
                       headers={"Content-Type": "application/json"})
    fault(r, "badRequest", 400)


async def test_duplicates_conflict(nova: Compute) -> None:
    await nova.flavor(name="dup", id="dup-id")
    r = await nova.req("POST", "/flavors", json={"flavor": {
        "name": "dup", "ram": 1, "vcpus": 1, "disk": 1}})
    assert "dup already exists" in fault(r, "conflictingRequest", 409)
    r = await nova.req("POST", "/flavors", json={"flavor": {
        "name": "other", "ram": 1, "vcpus": 1, "disk": 1, "id": "dup-id"}})
    assert "ID dup-id already exists" in fault(r, "conflictingRequest", 409)
    r = await nova.req("POST", "/flavors", json={"flavor": {
        "name": "m1.tiny", "ram": 1, "vcpus": 1, "disk": 1}})
    fault(r, "conflictingRequest", 409)
    assert "other" not in await names(nova)


async def test_update_description(nova: Compute) -> None:
    f = await nova.flavor()
    path = f"/flavors/{f['id']}"
    r = await nova.req("PUT", path, version="2.55", json={"flavor": {"description": "new"}})
    assert r.status_code == 200, r.text
    assert r.json()["flavor"]["description"] == "new"
    r = await nova.req("PUT", path, version="2.61", json={"flavor": {"description": None}})
    assert r.json()["flavor"]["description"] is None and r.json()["flavor"]["extra_specs"] == {}
    # only the description may change; before 2.55 there is no update at all
    r = await nova.req("PUT", path, version="2.55", json={"flavor": {"name": "x"}})
    fault(r, "badRequest", 400)
    r = await nova.req("PUT", path, version="2.55", json={"flavor": {"description": "x" * 65536}})
    fault(r, "badRequest", 400)
    fault(await nova.req("PUT", path, json={"flavor": {"description": "x"}}), "itemNotFound", 404)
    r = await nova.req("PUT", "/flavors/nope", version="2.55",
                       json={"flavor": {"description": "x"}})
    fault(r, "itemNotFound", 404)
    r = await nova.req("GET", path, version="2.55")
    assert r.json()["flavor"]["description"] is None


async def test_filters_and_sorting(nova: Compute) -> None:
    r = await nova.req("GET", "/flavors/detail?minRam=4096&minDisk=80")
    assert {f["name"] for f in r.json()["flavors"]} == {"m1.large", "m1.xlarge"}
    r = await nova.req("GET", "/flavors?sort_key=memory_mb&sort_dir=desc")
    order = [f["name"] for f in r.json()["flavors"]]
    assert order[:2] == ["m1.xlarge", "m1.large"] and order[-1] == "m1.nano"
    r = await nova.req("GET", "/flavors?sort_key=name")
    order = [f["name"] for f in r.json()["flavors"]]
    assert order == sorted(order)
    for query in ("minRam=abc", "minDisk=1.5", "sort_key=bogus", "sort_dir=up", "limit=-1",
                  "limit=x", "marker=no-such-flavor"):
        fault(await nova.req("GET", "/flavors?" + query), "badRequest", 400)
    # unknown parameters are ignored before 2.75 and refused from it
    assert (await nova.req("GET", "/flavors?foo=1", version="2.74")).status_code == 200
    fault(await nova.req("GET", "/flavors?foo=1", version="2.75"), "badRequest", 400)


async def test_pagination(nova: Compute) -> None:
    r = await nova.req("GET", "/flavors/detail?limit=3")
    body = r.json()
    assert [f["id"] for f in body["flavors"]] == ["1", "2", "3"]
    [link] = body["flavors_links"]
    assert link["rel"] == "next"
    assert link["href"].startswith("http://onestack.test/compute/v2.1/flavors/detail?")
    assert "marker=3" in link["href"] and "limit=3" in link["href"]
    seen = [f["id"] for f in body["flavors"]]
    while "flavors_links" in body:
        href = body["flavors_links"][0]["href"].removeprefix("http://onestack.test/compute/v2.1")
        body = (await nova.req("GET", href)).json()
        seen += [f["id"] for f in body["flavors"]]
    assert sorted(seen) == sorted(DEFAULT_IDS)  # flavorid sorts as a string
    assert len(seen) == len(set(seen))
    r = await nova.req("GET", "/flavors?marker=5")
    assert [f["id"] for f in r.json()["flavors"]] == ["84"]
    assert "flavors_links" not in r.json()


async def test_private_flavor_access(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    f = await nova.flavor(name="secret", **{"os-flavor-access:is_public": False})
    fid = f["id"]
    assert f["os-flavor-access:is_public"] is False
    assert "secret" not in await names(nova, demo)
    fault(await nova.req("GET", f"/flavors/{fid}", demo), "itemNotFound", 404)
    # the admin's default list is public flavors (and their project's)
    assert "secret" not in await names(nova)
    assert await names(nova, query="?is_public=false") == {"secret"}
    assert "secret" in await names(nova, query="?is_public=none")
    fault(await nova.req("GET", "/flavors?is_public=perhaps"), "badRequest", 400)
    # a non-admin cannot widen their view
    assert "secret" not in await names(nova, demo, "?is_public=none")

    demo_project = (await nova.cloud.get("/projects?name=demo")).json()["projects"][0]["id"]
    r = await nova.req("POST", f"/flavors/{fid}/action",
                       json={"addTenantAccess": {"tenant": demo_project}})
    assert r.status_code == 200, r.text
    assert r.json() == {"flavor_access": [{"flavor_id": fid, "tenant_id": demo_project}]}
    assert "secret" in await names(nova, demo)
    assert (await nova.req("GET", f"/flavors/{fid}", demo)).status_code == 200
    r = await nova.req("GET", f"/flavors/{fid}/os-flavor-access")
    assert r.json()["flavor_access"] == [{"flavor_id": fid, "tenant_id": demo_project}]

    r = await nova.req("POST", f"/flavors/{fid}/action",
                       json={"addTenantAccess": {"tenant": demo_project}})
    fault(r, "conflictingRequest", 409)
    r = await nova.req("POST", f"/flavors/{fid}/action",
                       json={"addTenantAccess": {"tenant": "no-such-project"}})
    assert "not a valid project" in fault(r, "badRequest", 400)
    r = await nova.req("POST", f"/flavors/{fid}/action", demo,
                       json={"removeTenantAccess": {"tenant": demo_project}})
    fault(r, "forbidden", 403)
    fault(await nova.req("GET", f"/flavors/{fid}/os-flavor-access", demo), "forbidden", 403)

    r = await nova.req("POST", f"/flavors/{fid}/action",
                       json={"removeTenantAccess": {"tenant": demo_project}})
    assert r.status_code == 200 and r.json() == {"flavor_access": []}
    assert "secret" not in await names(nova, demo)
    r = await nova.req("POST", f"/flavors/{fid}/action",
                       json={"removeTenantAccess": {"tenant": demo_project}})
    fault(r, "itemNotFound", 404)


async def test_access_on_public_flavors(nova: Compute) -> None:
    fault(await nova.req("GET", "/flavors/1/os-flavor-access"), "itemNotFound", 404)
    demo_project = (await nova.cloud.get("/projects?name=demo")).json()["projects"][0]["id"]
    body = {"addTenantAccess": {"tenant": demo_project}}
    fault(await nova.req("POST", "/flavors/1/action", version="2.7", json=body),
          "conflictingRequest", 409)
    # before 2.7 Nova adds the access anyway (and it changes nothing for a public flavor)
    r = await nova.req("POST", "/flavors/1/action", version="2.6", json=body)
    assert r.status_code == 200, r.text
    for bad in ({"addTenantAccess": {}}, {"addTenantAccess": {"tenant": ""}},
                {"noSuchAction": {}}, {"addTenantAccess": {"tenant": "a", "x": 1}}):
        fault(await nova.req("POST", "/flavors/1/action", json=bad), "badRequest", 400)
    fault(await nova.req("POST", "/flavors/nope/action", json=body), "itemNotFound", 404)


async def test_extra_specs(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    f = await nova.flavor()
    base = f"/flavors/{f['id']}/os-extra_specs"
    r = await nova.req("POST", base, json={"extra_specs": {"hw:cpu_policy": "dedicated",
                                                           "quota:cpu_shares": 1024}})
    assert r.status_code == 200, r.text
    assert r.json() == {"extra_specs": {"hw:cpu_policy": "dedicated", "quota:cpu_shares": 1024}}
    r = await nova.req("GET", base, demo)
    assert r.json() == {"extra_specs": {"hw:cpu_policy": "dedicated", "quota:cpu_shares": "1024"}}
    r = await nova.req("GET", f"{base}/hw:cpu_policy", demo)
    assert r.json() == {"hw:cpu_policy": "dedicated"}
    r = await nova.req("PUT", f"{base}/hw:cpu_policy", json={"hw:cpu_policy": "shared"})
    assert r.status_code == 200 and r.json() == {"hw:cpu_policy": "shared"}
    # 2.61 shows them in flavor bodies
    shown = (await nova.req("GET", f"/flavors/{f['id']}", demo, version="2.61")).json()
    assert shown["flavor"]["extra_specs"] == {"hw:cpu_policy": "shared",
                                              "quota:cpu_shares": "1024"}
    detail = (await nova.req("GET", "/flavors/detail", version="2.61")).json()["flavors"]
    assert all("extra_specs" in d for d in detail)

    # only admins change them
    fault(await nova.req("POST", base, demo, json={"extra_specs": {"a": "b"}}), "forbidden", 403)
    fault(await nova.req("DELETE", f"{base}/hw:cpu_policy", demo), "forbidden", 403)
    # bad input leaves everything as it was
    for bad in ({"extra_specs": {"bad/key": "v"}}, {"extra_specs": {"k": "v" * 256}},
                {"extra_specs": {"k": None}}, {"extra_specs": "x"}, {"specs": {}},
                {"extra_specs": {"ok": "v", "": "v"}}):
        fault(await nova.req("POST", base, json=bad), "badRequest", 400)
    for bad in ({"other": "v"}, {"hw:cpu_policy": "a", "b": "c"}, {}):
        fault(await nova.req("PUT", f"{base}/hw:cpu_policy", json=bad), "badRequest", 400)
    r = await nova.req("GET", base)
    assert r.json()["extra_specs"] == {"hw:cpu_policy": "shared", "quota:cpu_shares": "1024"}

    r = await nova.req("DELETE", f"{base}/hw:cpu_policy")
    assert r.status_code == 200
    fault(await nova.req("GET", f"{base}/hw:cpu_policy"), "itemNotFound", 404)
    fault(await nova.req("DELETE", f"{base}/hw:cpu_policy"), "itemNotFound", 404)
    fault(await nova.req("GET", "/flavors/nope/os-extra_specs"), "itemNotFound", 404)


async def test_deleting_a_flavor_drops_its_specs_and_access(nova: Compute) -> None:
    f = await nova.flavor(name="gone", id="gone", **{"os-flavor-access:is_public": False})
    await nova.req("POST", "/flavors/gone/os-extra_specs", json={"extra_specs": {"a": "b"}})
    admin_project = (await nova.cloud.get("/projects?name=admin")).json()["projects"][0]["id"]
    r = await nova.req("POST", "/flavors/gone/action",
                       json={"addTenantAccess": {"tenant": admin_project}})
    assert r.status_code == 200
    assert (await nova.req("DELETE", "/flavors/gone")).status_code == 202
    f = await nova.flavor(name="gone", id="gone", **{"os-flavor-access:is_public": False})
    r = await nova.req("GET", "/flavors/gone/os-extra_specs")
    assert r.json() == {"extra_specs": {}}
    r = await nova.req("GET", "/flavors/gone/os-flavor-access")
    assert r.json() == {"flavor_access": []}
    assert f["id"] == "gone"


async def test_defaults_are_created_once(nova: Compute) -> None:
    from onestack.compute.service import flavors as flavors_svc

    assert (await nova.req("DELETE", "/flavors/1")).status_code == 202
    # what the next start runs: the marker keeps a deleted default deleted
    await flavors_svc.ensure_default_flavors(nova.cloud.app.state.runtime.extras["compute"])
    fault(await nova.req("GET", "/flavors/1"), "itemNotFound", 404)
    assert "m1.small" in await names(nova)
