"""os-server-external-events, and the admin actions a single-host cloud answers
without doing anything (injectNetworkInfo; migrate's own tests are in
test_cold_migration.py)."""

from __future__ import annotations

import uuid

from tests.api.compute.conftest import Compute, fault


async def test_external_events(nova: Compute) -> None:
    img = await nova.image()
    sid = (await nova.boot(imageRef=img["id"]))["server"]["id"]
    await nova.wait(sid, "ACTIVE")
    ev = {"name": "network-changed", "server_uuid": sid}
    r = await nova.req("POST", "/os-server-external-events", json={"events": [ev]})
    assert r.status_code == 200, r.text
    assert r.json()["events"] == [{**ev, "status": "completed", "code": 200}]
    missing = {"name": "network-vif-plugged", "server_uuid": str(uuid.uuid4()),
               "tag": "port-1"}
    r = await nova.req("POST", "/os-server-external-events", json={"events": [ev, missing]})
    assert r.status_code == 207
    assert [e["code"] for e in r.json()["events"]] == [200, 404]
    r = await nova.req("POST", "/os-server-external-events", json={"events": [missing]})
    assert r.status_code == 404 and r.json()["events"][0]["status"] == "failed"
    # names by microversion, bad bodies, and members may not send events
    power = {"name": "power-update", "server_uuid": sid, "tag": "POWER_OFF"}
    r = await nova.req("POST", "/os-server-external-events", json={"events": [power]})
    fault(r, "badRequest", 400)
    for body in ({"events": []}, {"events": [{"name": "network-changed"}]},
                 {"events": [{**ev, "status": "done"}]}, {"other": 1}):
        r = await nova.req("POST", "/os-server-external-events", json=body)
        fault(r, "badRequest", 400)
    r = await nova.req("POST", "/os-server-external-events", nova.cloud.demo_token,
                       json={"events": [ev]})
    fault(r, "forbidden", 403)


async def test_migrate_and_inject_network_info(nova: Compute) -> None:
    img = await nova.image()
    sid = (await nova.boot(imageRef=img["id"]))["server"]["id"]
    await nova.wait(sid, "ACTIVE")
    r = await nova.req("POST", f"/servers/{sid}/action", json={"migrate": {"host": "h"}})
    assert "is not of type 'null'" in fault(r, "badRequest", 400)  # before 2.56
    r = await nova.req("POST", f"/servers/{uuid.uuid4()}/action", json={"migrate": None})
    fault(r, "itemNotFound", 404)
    r = await nova.req("POST", f"/servers/{sid}/action", json={"injectNetworkInfo": None})
    assert r.status_code == 202
    r = await nova.req("POST", f"/servers/{sid}/action", nova.cloud.demo_token,
                       json={"injectNetworkInfo": None})
    assert r.status_code in (403, 404)


async def test_console_output_length_counts_like_nova(nova: Compute) -> None:
    img = await nova.image()
    sid = (await nova.boot(imageRef=img["id"]))["server"]["id"]
    await nova.wait(sid, "ACTIVE")
    full = (await nova.req("POST", f"/servers/{sid}/action",
                           json={"os-getConsoleOutput": {}})).json()["output"]
    assert full.count("\n") >= 3
    r = await nova.req("POST", f"/servers/{sid}/action",
                       json={"os-getConsoleOutput": {"length": 3}})
    out = r.json()["output"]
    assert len(out.split("\n")) == 3 and full.endswith(out)
