"""os-hypervisors, os-services (a disabled service's host is not scheduled to) and
os-simple-tenant-usage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.api.compute.conftest import Compute, fault


async def test_hypervisors_by_microversion(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    host = nova.state.host
    fault(await nova.req("GET", "/os-hypervisors", demo), "forbidden", 403)
    r = await nova.req("GET", "/os-hypervisors")
    assert r.status_code == 200
    [h] = r.json()["hypervisors"]
    assert h == {"id": h["id"], "hypervisor_hostname": host, "state": "up",
                 "status": "enabled"}
    assert isinstance(h["id"], int)
    img = await nova.image()
    srv = (await nova.boot(demo, imageRef=img["id"], name="on-node"))["server"]
    await nova.wait(srv["id"], "ACTIVE", token=demo)
    r = await nova.req("GET", "/os-hypervisors/detail")
    [d] = r.json()["hypervisors"]
    assert d["vcpus"] == 1000 and d["vcpus_used"] == 1 and d["running_vms"] == 1
    ram = (await nova.req("GET", "/flavors/42")).json()["flavor"]["ram"]
    assert d["memory_mb_used"] == ram and d["free_ram_mb"] == d["memory_mb"] - ram
    assert d["hypervisor_type"] and d["service"]["host"] == host
    assert isinstance(d["cpu_info"], str)
    assert isinstance((await nova.req("GET", "/os-hypervisors/detail", version="2.28"))
                      .json()["hypervisors"][0]["cpu_info"], dict)
    r = await nova.req("GET", f"/os-hypervisors/{h['id']}")
    assert r.status_code == 200 and r.json()["hypervisor"]["vcpus_used"] == 1
    fault(await nova.req("GET", "/os-hypervisors/9999"), "itemNotFound", 404)
    stats = (await nova.req("GET", "/os-hypervisors/statistics")).json()
    assert stats["hypervisor_statistics"]["count"] == 1
    assert stats["hypervisor_statistics"]["running_vms"] == 1
    # 2.53: uuids, with_servers, pattern
    r = await nova.req("GET", "/os-hypervisors?with_servers=true", version="2.53")
    [h53] = r.json()["hypervisors"]
    uuid.UUID(h53["id"])
    assert h53["servers"] == [{"uuid": srv["id"], "name": "on-node"}]
    r = await nova.req("GET", f"/os-hypervisors/{h53['id']}", version="2.53")
    assert r.status_code == 200
    assert r.json()["hypervisor"]["service"]["id"] != d["service"]["id"]
    fault(await nova.req("GET", f"/os-hypervisors/{h['id']}", version="2.53"),
          "badRequest", 400)
    fault(await nova.req("GET", f"/os-hypervisors/{uuid.uuid4()}", version="2.53"),
          "itemNotFound", 404)
    r = await nova.req("GET", f"/os-hypervisors?hypervisor_hostname_pattern={host[:3]}",
                       version="2.53")
    assert [x["hypervisor_hostname"] for x in r.json()["hypervisors"]] == [host]
    fault(await nova.req("GET", "/os-hypervisors?hypervisor_hostname_pattern=zz-none",
                         version="2.53"), "itemNotFound", 404)
    fault(await nova.req("GET", "/os-hypervisors?hypervisor_hostname_pattern=a&limit=1",
                         version="2.53"), "badRequest", 400)
    fault(await nova.req("GET", "/os-hypervisors?bogus=1", version="2.53"), "badRequest", 400)
    # 2.33 paging
    r = await nova.req("GET", "/os-hypervisors?limit=1", version="2.33")
    assert r.json()["hypervisors_links"][0]["rel"] == "next"
    fault(await nova.req("GET", "/os-hypervisors?marker=nope", version="2.33"),
          "badRequest", 400)
    # 2.88: no resource fields, uptime, no statistics
    r = await nova.req("GET", f"/os-hypervisors/{h53['id']}", version="2.88")
    hv = r.json()["hypervisor"]
    assert "vcpus" not in hv and "running_vms" not in hv and "cpu_info" not in hv
    assert "uptime" in hv
    fault(await nova.req("GET", "/os-hypervisors/statistics", version="2.88"),
          "itemNotFound", 404)


async def test_services_disable_blocks_scheduling(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    host = nova.state.host
    fault(await nova.req("GET", "/os-services", demo), "forbidden", 403)
    r = await nova.req("GET", "/os-services")
    services = {s["binary"]: s for s in r.json()["services"]}
    assert set(services) == {"nova-compute", "nova-scheduler", "nova-conductor"}
    compute = services["nova-compute"]
    assert compute["host"] == host and compute["zone"] == "nova"
    assert compute["status"] == "enabled" and compute["state"] == "up"
    assert services["nova-scheduler"]["zone"] == "internal"
    assert "forced_down" not in compute and isinstance(compute["id"], int)
    r = await nova.req("GET", "/os-services?binary=nova-compute", version="2.53")
    [c53] = r.json()["services"]
    assert c53["forced_down"] is False
    sid = c53["id"]
    uuid.UUID(sid)
    # 2.53 validation; nothing changes
    for body, code in (({}, 400), ({"status": "off"}, 400),
                       ({"status": "enabled", "disabled_reason": "x"}, 400),
                       ({"disabled_reason": "x"}, 400), ({"bogus": 1}, 400),
                       ({"status": "disabled", "disabled_reason": "x" * 256}, 400)):
        fault(await nova.req("PUT", f"/os-services/{sid}", version="2.53", json=body),
              "badRequest", code)
    fault(await nova.req("PUT", "/os-services/not-a-uuid", version="2.53",
                         json={"status": "disabled"}), "badRequest", 400)
    fault(await nova.req("PUT", f"/os-services/{uuid.uuid4()}", version="2.53",
                         json={"status": "disabled"}), "itemNotFound", 404)
    sched = (await nova.req("GET", "/os-services?binary=nova-scheduler",
                            version="2.53")).json()["services"][0]
    fault(await nova.req("PUT", f"/os-services/{sched['id']}", version="2.53",
                         json={"status": "disabled"}), "badRequest", 400)
    fault(await nova.req("PUT", f"/os-services/{sid}", demo, version="2.53",
                         json={"status": "disabled"}), "forbidden", 403)
    r = await nova.req("GET", "/os-services?binary=nova-compute", version="2.53")
    assert r.json()["services"][0]["status"] == "enabled"
    # disable with a reason: the hypervisor shows it and a boot fails with ComputeFilter
    r = await nova.req("PUT", f"/os-services/{sid}", version="2.53",
                       json={"status": "disabled", "disabled_reason": "maintenance"})
    assert r.status_code == 200, r.text
    assert r.json()["service"]["status"] == "disabled"
    assert r.json()["service"]["disabled_reason"] == "maintenance"
    hv = (await nova.req("GET", "/os-hypervisors/detail")).json()["hypervisors"][0]
    assert hv["status"] == "disabled" and hv["service"]["disabled_reason"] == "maintenance"
    img = await nova.image()
    body = await nova.boot(demo, imageRef=img["id"])
    srv = await nova.wait(body["server"]["id"], "ERROR", token=demo)
    assert "ComputeFilter" in srv["fault"]["message"] and host in srv["fault"]["message"]
    # enabled again: boots work and the reason is gone
    r = await nova.req("PUT", f"/os-services/{sid}", version="2.53", json={"status": "enabled"})
    assert r.json()["service"]["disabled_reason"] is None
    body = await nova.boot(demo, imageRef=img["id"])
    await nova.wait(body["server"]["id"], "ACTIVE", token=demo)
    # forced down: the state is down and the host is skipped too
    r = await nova.req("PUT", f"/os-services/{sid}", version="2.53", json={"forced_down": True})
    assert r.json()["service"]["state"] == "down"
    body = await nova.boot(demo, imageRef=img["id"])
    srv = await nova.wait(body["server"]["id"], "ERROR", token=demo)
    assert "ComputeFilter" in srv["fault"]["message"]
    await nova.req("PUT", f"/os-services/{sid}", version="2.53", json={"forced_down": False})
    # before 2.53: by host and binary
    r = await nova.req("PUT", "/os-services/disable-log-reason", json={
        "host": host, "binary": "nova-compute", "disabled_reason": "old api"})
    assert r.status_code == 200 and r.json() == {"service": {
        "host": host, "binary": "nova-compute", "status": "disabled",
        "disabled_reason": "old api"}}
    r = await nova.req("PUT", "/os-services/enable", json={"host": host,
                                                          "binary": "nova-compute"})
    assert r.json() == {"service": {"host": host, "binary": "nova-compute",
                                    "status": "enabled"}}
    fault(await nova.req("PUT", "/os-services/enable", json={
        "host": "nowhere", "binary": "nova-compute"}), "itemNotFound", 404)
    fault(await nova.req("PUT", "/os-services/force-down", json={
        "host": host, "binary": "nova-compute", "forced_down": True}), "itemNotFound", 404)
    r = await nova.req("PUT", "/os-services/force-down", version="2.11", json={
        "host": host, "binary": "nova-compute", "forced_down": False})
    assert r.json()["service"]["forced_down"] is False


async def test_simple_tenant_usage(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    img = await nova.image()
    before = datetime.now(UTC) - timedelta(hours=1)
    srv = (await nova.boot(demo, imageRef=img["id"], name="counted"))["server"]
    active = await nova.wait(srv["id"], "ACTIVE", token=demo)
    tenant = active["tenant_id"]
    start = before.strftime("%Y-%m-%dT%H:%M:%S")
    end = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    q = f"start={start}&end={end}"
    fault(await nova.req("GET", f"/os-simple-tenant-usage?{q}", demo), "forbidden", 403)
    r = await nova.req("GET", f"/os-simple-tenant-usage?{q}&detailed=1")
    assert r.status_code == 200
    [u] = [x for x in r.json()["tenant_usages"] if x["tenant_id"] == tenant]
    [s] = u["server_usages"]
    assert s["instance_id"] == srv["id"] and s["name"] == "counted"
    assert s["flavor"] == "m1.nano" and s["state"] == "active" and s["ended_at"] is None
    ram = (await nova.req("GET", "/flavors/42")).json()["flavor"]["ram"]
    assert s["memory_mb"] == ram and s["vcpus"] == 1 and s["local_gb"] == 1
    # from launch to the end of the period: about an hour
    assert 0.9 < s["hours"] < 1.1
    assert abs(u["total_memory_mb_usage"] - ram * s["hours"]) < 1e-6
    assert abs(u["total_vcpus_usage"] - s["hours"]) < 1e-6
    assert u["start"].startswith(start)
    r = await nova.req("GET", f"/os-simple-tenant-usage?{q}")
    assert "server_usages" not in r.json()["tenant_usages"][0]
    # a project reads its own; another's is forbidden
    r = await nova.req("GET", f"/os-simple-tenant-usage/{tenant}?{q}", demo)
    assert r.status_code == 200 and r.json()["tenant_usage"]["server_usages"][0]["hours"] > 0
    fault(await nova.req("GET", f"/os-simple-tenant-usage/other?{q}", demo), "forbidden", 403)
    # a period before the server launched: nothing
    old = "start=2000-01-01T00:00:00&end=2000-01-02T00:00:00"
    r = await nova.req("GET", f"/os-simple-tenant-usage/{tenant}?{old}", demo)
    assert r.json() == {"tenant_usage": {}}
    # bad periods
    msg = fault(await nova.req("GET", "/os-simple-tenant-usage?start=2001-01-02T00:00:00"
                               "&end=2001-01-01T00:00:00"), "badRequest", 400)
    assert msg.startswith("Invalid start time")
    fault(await nova.req("GET", "/os-simple-tenant-usage?start=yesterday"), "badRequest", 400)
    # a deleted server is terminated, with its hours up to then
    assert (await nova.req("DELETE", f"/servers/{srv['id']}", demo)).status_code == 204
    await nova.gone(srv["id"], demo)
    r = await nova.req("GET", f"/os-simple-tenant-usage/{tenant}?{q}", demo)
    [s] = r.json()["tenant_usage"]["server_usages"]
    assert s["state"] == "terminated" and s["ended_at"] is not None and s["hours"] < 0.1
    # 2.40 paging over servers
    r = await nova.req("GET", f"/os-simple-tenant-usage?{q}&limit=1", version="2.40")
    assert r.status_code == 200 and r.json()["tenant_usages_links"][0]["rel"] == "next"
    fault(await nova.req("GET", f"/os-simple-tenant-usage?{q}&marker=nope", version="2.40"),
          "badRequest", 400)
