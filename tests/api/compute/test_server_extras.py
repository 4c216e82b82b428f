"""A server's ``/ips``, ``/os-server-password`` and ``/diagnostics``; the static
``/extensions`` list; the (empty) instance usage audit log."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from onestack.compute.models import Instance
from tests.api.compute.conftest import Compute, fault


async def test_ips(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    img = await nova.image()
    net = await nova.network(demo)
    srv = (await nova.boot(demo, imageRef=img["id"], networks=[{"uuid": net["id"]}]))["server"]
    await nova.wait(srv["id"], "ACTIVE", token=demo)
    r = await nova.req("GET", f"/servers/{srv['id']}/ips", demo)
    assert r.status_code == 200, r.text
    [entry] = r.json()["addresses"][net["name"]]
    assert set(entry) == {"version", "addr"} and entry["version"] == 4
    assert entry["addr"].startswith("10.9.0.")
    r = await nova.req("GET", f"/servers/{srv['id']}/ips/{net['name']}", demo)
    assert r.status_code == 200 and r.json() == {net["name"]: [entry]}
    msg = fault(await nova.req("GET", f"/servers/{srv['id']}/ips/nonet", demo),
                "itemNotFound", 404)
    assert msg == "Network not found"
    fault(await nova.req("GET", f"/servers/{uuid.uuid4()}/ips", demo), "itemNotFound", 404)
    # another project does not see it
    _p, _u, other = await nova.project_user()
    fault(await nova.req("GET", f"/servers/{srv['id']}/ips", other), "itemNotFound", 404)


async def test_password_and_diagnostics(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    img = await nova.image()
    srv = (await nova.boot(demo, imageRef=img["id"]))["server"]
    sid = srv["id"]
    await nova.wait(sid, "ACTIVE", token=demo)
    pw = f"/servers/{sid}/os-server-password"
    r = await nova.req("GET", pw, demo)
    assert r.status_code == 200 and r.json() == {"password": ""}
    async with nova.state.db.write() as s:
        row = await s.scalar(select(Instance).where(Instance.uuid == sid))
        row.system_metadata = {**(row.system_metadata or {}), "password": "ENCRYPTED"}
    assert (await nova.req("GET", pw, demo)).json() == {"password": "ENCRYPTED"}
    _p, _u, other = await nova.project_user()
    fault(await nova.req("DELETE", pw, other), "itemNotFound", 404)
    r = await nova.req("DELETE", pw, demo)
    assert r.status_code == 204
    assert (await nova.req("GET", pw, demo)).json() == {"password": ""}

    diag = f"/servers/{sid}/diagnostics"
    fault(await nova.req("GET", diag, demo), "forbidden", 403)
    r = await nova.req("GET", diag)
    assert r.status_code == 200, r.text
    assert "memory" in r.json() and "state" not in r.json()  # free-form before 2.48
    r = await nova.req("GET", diag, version="2.48")
    d = r.json()
    assert (d["state"], d["driver"], d["num_cpus"], d["num_nics"]) == ("running", "libvirt",
                                                                        1, 0)
    assert set(d) == {"state", "driver", "hypervisor", "hypervisor_os", "uptime",
                      "config_drive", "num_cpus", "num_nics", "num_disks", "memory_details",
                      "cpu_details", "nic_details", "disk_details"}
    assert d["memory_details"]["maximum"] > 0 and isinstance(d["uptime"], int)
    fault(await nova.req("GET", f"/servers/{uuid.uuid4()}/diagnostics"), "itemNotFound", 404)


async def test_extensions(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    r = await nova.req("GET", "/extensions", demo)
    assert r.status_code == 200
    exts = r.json()["extensions"]
    assert "Hosts" in {e["name"] for e in exts}
    for e in exts:
        assert set(e) == {"name", "alias", "namespace", "description", "updated", "links"}
    assert len({e["alias"] for e in exts}) == len(exts)
    r = await nova.req("GET", "/extensions/os-consoles", demo)
    assert r.json()["extension"]["alias"] == "os-consoles"
    fault(await nova.req("GET", "/extensions/os-nothing", demo), "itemNotFound", 404)


async def test_instance_usage_audit_log(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    fault(await nova.req("GET", "/os-instance_usage_audit_log", demo), "forbidden", 403)
    r = await nova.req("GET", "/os-instance_usage_audit_log")
    assert r.status_code == 200
    log = r.json()["instance_usage_audit_logs"]
    assert log["hosts_not_run"] == [nova.state.host] and log["num_hosts"] == 1
    assert (log["num_hosts_done"], log["total_instances"], log["log"]) == (0, 0, {})
    r = await nova.req("GET", "/os-instance_usage_audit_log/2020-03-15 10:00:00")
    one = r.json()["instance_usage_audit_log"]
    assert (one["period_beginning"], one["period_ending"]) == (
        "2020-02-01 00:00:00", "2020-03-01 00:00:00")
    r = await nova.req("GET", "/os-instance_usage_audit_log/2020-01-15 10:00:00.5")
    assert r.json()["instance_usage_audit_log"]["period_beginning"] == "2019-12-01 00:00:00"
    msg = fault(await nova.req("GET", "/os-instance_usage_audit_log/invalid_time"),
                "badRequest", 400)
    assert msg == "Invalid timestamp for date invalid_time"
    fault(await nova.req("GET", "/os-instance_usage_audit_log/2020-01-01 00:00:00", demo),
          "forbidden", 403)
