"""os-aggregates: admin-only CRUD, hosts (compute hosts only, once, one zone) and
metadata; 2.41 shows the uuid."""

from __future__ import annotations

import uuid

from tests.api.compute.conftest import Compute, fault

CREATE_KEYS = {"id", "name", "availability_zone", "created_at", "updated_at", "deleted",
               "deleted_at"}


async def test_crud(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    name = "agg-" + uuid.uuid4().hex[:6]
    fault(await nova.req("GET", "/os-aggregates", demo), "forbidden", 403)
    fault(await nova.req("POST", "/os-aggregates", demo,
                         json={"aggregate": {"name": name}}), "forbidden", 403)
    r = await nova.req("POST", "/os-aggregates", json={"aggregate": {
        "name": name, "availability_zone": "az1"}})
    assert r.status_code == 200, r.text
    agg = r.json()["aggregate"]
    assert set(agg) == CREATE_KEYS
    assert (agg["name"], agg["availability_zone"], agg["deleted"], agg["deleted_at"],
            agg["updated_at"]) == (name, "az1", False, None, None)
    assert isinstance(agg["id"], int)
    msg = fault(await nova.req("POST", "/os-aggregates", json={"aggregate": {"name": name}}),
                "conflictingRequest", 409)
    assert msg == f"Aggregate {name} already exists."
    for bad in ({"name": ""}, {"name": "x" * 256}, {}, {"name": "ok", "extra": 1},
                {"name": "ok2", "availability_zone": ""}):
        fault(await nova.req("POST", "/os-aggregates", json={"aggregate": bad}),
              "badRequest", 400)
    r = await nova.req("GET", "/os-aggregates")
    assert [a for a in r.json()["aggregates"] if a["id"] == agg["id"]] == [
        {**agg, "hosts": [], "metadata": {"availability_zone": "az1"}}]
    assert not [a for a in r.json()["aggregates"] if a["name"] in ("ok", "ok2")]

    r = await nova.req("GET", f"/os-aggregates/{agg['id']}", version="2.41")
    shown = r.json()["aggregate"]
    uuid.UUID(shown["uuid"])
    assert "uuid" not in (await nova.req("GET", f"/os-aggregates/{agg['id']}")).json()[
        "aggregate"]
    msg = fault(await nova.req("GET", "/os-aggregates/99999"), "itemNotFound", 404)
    assert msg == "Aggregate 99999 could not be found."
    fault(await nova.req("GET", "/os-aggregates/abc"), "badRequest", 400)
    fault(await nova.req("GET", f"/os-aggregates/{agg['id']}", demo), "forbidden", 403)

    r = await nova.req("PUT", f"/os-aggregates/{agg['id']}", json={"aggregate": {
        "name": name + "-2", "availability_zone": "az2"}})
    assert r.status_code == 200, r.text
    up = r.json()["aggregate"]
    assert (up["name"], up["availability_zone"], up["metadata"]) == (
        name + "-2", "az2", {"availability_zone": "az2"})
    assert up["updated_at"] is not None
    fault(await nova.req("PUT", f"/os-aggregates/{agg['id']}", json={"aggregate": {}}),
          "badRequest", 400)
    other = (await nova.req("POST", "/os-aggregates", json={"aggregate": {
        "name": name + "-o"}})).json()["aggregate"]
    fault(await nova.req("PUT", f"/os-aggregates/{other['id']}", json={"aggregate": {
        "name": name + "-2"}}), "conflictingRequest", 409)

    fault(await nova.req("DELETE", f"/os-aggregates/{agg['id']}", demo), "forbidden", 403)
    r = await nova.req("DELETE", f"/os-aggregates/{agg['id']}")
    assert r.status_code == 200
    fault(await nova.req("GET", f"/os-aggregates/{agg['id']}"), "itemNotFound", 404)
    fault(await nova.req("DELETE", f"/os-aggregates/{agg['id']}"), "itemNotFound", 404)


async def test_hosts_and_metadata(nova: Compute) -> None:
    host = nova.state.host
    demo = nova.cloud.demo_token
    a = (await nova.req("POST", "/os-aggregates", json={"aggregate": {
        "name": "h-" + uuid.uuid4().hex[:6], "availability_zone": "zone-a"}})).json()["aggregate"]
    b = (await nova.req("POST", "/os-aggregates", json={"aggregate": {
        "name": "h-" + uuid.uuid4().hex[:6], "availability_zone": "zone-b"}})).json()["aggregate"]
    act = f"/os-aggregates/{a['id']}/action"
    fault(await nova.req("POST", act, demo, json={"add_host": {"host": host}}),
          "forbidden", 403)
    msg = fault(await nova.req("POST", act, json={"add_host": {"host": "nohost"}}),
                "itemNotFound", 404)
    assert msg == "Compute host nohost could not be found."
    r = await nova.req("POST", act, json={"add_host": {"host": host}}, version="2.41")
    assert r.status_code == 200, r.text
    assert r.json()["aggregate"]["hosts"] == [host] and r.json()["aggregate"]["uuid"]
    msg = fault(await nova.req("POST", act, json={"add_host": {"host": host}}),
                "conflictingRequest", 409)
    assert msg == f"Aggregate {a['id']} already has host {host}."
    # in zone-a already: not into zone-b
    fault(await nova.req("POST", f"/os-aggregates/{b['id']}/action",
                         json={"add_host": {"host": host}}), "conflictingRequest", 409)
    fault(await nova.req("POST", "/os-aggregates/99999/action",
                         json={"add_host": {"host": host}}), "itemNotFound", 404)
    # an aggregate with hosts is not deleted
    fault(await nova.req("DELETE", f"/os-aggregates/{a['id']}"), "badRequest", 400)
    fault(await nova.req("POST", act, json={"bogus": {}}), "badRequest", 400)
    fault(await nova.req("POST", act, json={"add_host": {}}), "badRequest", 400)

    r = await nova.req("POST", act, json={"set_metadata": {"metadata": {
        "k1": "v1", "k2": "v2"}}})
    assert r.status_code == 200, r.text
    assert r.json()["aggregate"]["metadata"] == {"availability_zone": "zone-a", "k1": "v1",
                                                 "k2": "v2"}
    r = await nova.req("POST", act, json={"set_metadata": {"metadata": {"k1": None}}})
    assert r.json()["aggregate"]["metadata"] == {"availability_zone": "zone-a", "k2": "v2"}
    fault(await nova.req("POST", act, json={"set_metadata": {"metadata": {"k": 1}}}),
          "badRequest", 400)
    # a zoneless aggregate takes the host too, but cannot then move it to zone-b
    c = (await nova.req("POST", "/os-aggregates", json={"aggregate": {
        "name": "h-" + uuid.uuid4().hex[:6]}})).json()["aggregate"]
    c_act = f"/os-aggregates/{c['id']}/action"
    assert (await nova.req("POST", c_act, json={"add_host": {"host": host}})).status_code == 200
    fault(await nova.req("POST", c_act, json={"set_metadata": {"metadata": {
        "availability_zone": "zone-b"}}}), "badRequest", 400)
    fault(await nova.req("PUT", f"/os-aggregates/{c['id']}", json={"aggregate": {
        "availability_zone": "zone-b"}}), "badRequest", 400)
    assert (await nova.req("GET", f"/os-aggregates/{c['id']}")).json()["aggregate"][
        "metadata"] == {}
    r = await nova.req("POST", c_act, json={"set_metadata": {"metadata": {
        "availability_zone": "zone-a"}}})
    assert r.status_code == 200, r.text
    assert (await nova.req("POST", c_act, json={"remove_host": {"host": host}})
            ).status_code == 200
    assert (await nova.req("GET", f"/os-aggregates/{a['id']}")).json()["aggregate"][
        "metadata"] == {"availability_zone": "zone-a", "k2": "v2"}

    r = await nova.req("POST", act, json={"remove_host": {"host": host}})
    assert r.status_code == 200 and r.json()["aggregate"]["hosts"] == []
    msg = fault(await nova.req("POST", act, json={"remove_host": {"host": host}}),
                "itemNotFound", 404)
    assert msg == f"Cannot remove host {host} in aggregate {a['id']}"
    # now free to join zone-b
    r = await nova.req("POST", f"/os-aggregates/{b['id']}/action",
                       json={"add_host": {"host": host}})
    assert r.status_code == 200, r.text
    assert (await nova.req("DELETE", f"/os-aggregates/{a['id']}")).status_code == 200
