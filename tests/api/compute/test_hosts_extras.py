"""os-hypervisors' uptime, search and servers (the older microversions) and the
deprecated os-hosts (until 2.43)."""

from __future__ import annotations

from tests.api.compute.conftest import Compute, fault


async def test_hypervisor_uptime_search_servers(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    host = nova.state.host
    [h] = (await nova.req("GET", "/os-hypervisors")).json()["hypervisors"]
    r = await nova.req("GET", f"/os-hypervisors/{h['id']}/uptime")
    assert r.status_code == 200, r.text
    up = r.json()["hypervisor"]
    assert (up["id"], up["hypervisor_hostname"]) == (h["id"], host)
    assert " up " in up["uptime"] and "load average" in up["uptime"]
    fault(await nova.req("GET", f"/os-hypervisors/{h['id']}/uptime", demo), "forbidden", 403)
    fault(await nova.req("GET", "/os-hypervisors/9999/uptime"), "itemNotFound", 404)
    h53 = (await nova.req("GET", "/os-hypervisors", version="2.53")).json()["hypervisors"][0]
    r = await nova.req("GET", f"/os-hypervisors/{h53['id']}/uptime", version="2.53")
    assert r.status_code == 200 and r.json()["hypervisor"]["id"] == h53["id"]
    fault(await nova.req("GET", f"/os-hypervisors/{h53['id']}/uptime", version="2.88"),
          "itemNotFound", 404)
    # 2.88 puts the uptime in the hypervisor itself
    r = await nova.req("GET", f"/os-hypervisors/{h53['id']}", version="2.88")
    assert " up " in r.json()["hypervisor"]["uptime"]

    img = await nova.image()
    srv = (await nova.boot(demo, imageRef=img["id"], name="hv-srv"))["server"]
    await nova.wait(srv["id"], "ACTIVE", token=demo)
    r = await nova.req("GET", f"/os-hypervisors/{host[:3]}/search")
    assert r.status_code == 200
    assert r.json()["hypervisors"] == [{"id": h["id"], "hypervisor_hostname": host,
                                        "state": "up", "status": "enabled"}]
    r = await nova.req("GET", f"/os-hypervisors/{host}/servers")
    [hs] = r.json()["hypervisors"]
    assert {"uuid": srv["id"], "name": "hv-srv"} in hs["servers"]
    msg = fault(await nova.req("GET", "/os-hypervisors/zz-none/search"), "itemNotFound", 404)
    assert msg == "No hypervisor matching 'zz-none' could be found."
    fault(await nova.req("GET", "/os-hypervisors/zz-none/servers"), "itemNotFound", 404)
    fault(await nova.req("GET", f"/os-hypervisors/{host}/search", demo), "forbidden", 403)
    fault(await nova.req("GET", f"/os-hypervisors/{host}/servers", demo), "forbidden", 403)
    fault(await nova.req("GET", f"/os-hypervisors/{host}/search", version="2.53"),
          "itemNotFound", 404)


async def test_os_hosts(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    host = nova.state.host
    fault(await nova.req("GET", "/os-hosts", demo), "forbidden", 403)
    r = await nova.req("GET", "/os-hosts")
    assert r.status_code == 200
    hosts = r.json()["hosts"]
    assert {(x["host_name"], x["service"]) for x in hosts} == {
        (host, "compute"), (host, "scheduler"), (host, "conductor")}
    r = await nova.req("GET", "/os-hosts?zone=internal")
    assert {x["service"] for x in r.json()["hosts"]} == {"scheduler", "conductor"}
    zone = nova.state.conf.default_availability_zone
    r = await nova.req("GET", f"/os-hosts?zone={zone}")
    assert [x["service"] for x in r.json()["hosts"]] == ["compute"]

    img = await nova.image()
    srv = (await nova.boot(demo, imageRef=img["id"]))["server"]
    await nova.wait(srv["id"], "ACTIVE", token=demo)
    r = await nova.req("GET", f"/os-hosts/{host}")
    assert r.status_code == 200, r.text
    res = [x["resource"] for x in r.json()["host"]]
    assert [x["project"] for x in res[:3]] == ["(total)", "(used_now)", "(used_max)"]
    assert res[0]["cpu"] == 1000 and res[1]["cpu"] == 1 and res[2]["cpu"] == 1
    [mine] = res[3:]
    assert mine["host"] == host and mine["cpu"] == 1 and mine["memory_mb"] > 0
    msg = fault(await nova.req("GET", "/os-hosts/nohost"), "itemNotFound", 404)
    assert msg == "Compute host nohost could not be found."
    fault(await nova.req("GET", f"/os-hosts/{host}", demo), "forbidden", 403)
    fault(await nova.req("GET", "/os-hosts", version="2.43"), "itemNotFound", 404)
    assert (await nova.req("GET", "/os-hosts", version="2.42")).status_code == 200
    # a blank zone is no filter
    assert len((await nova.req("GET", "/os-hosts?zone=")).json()["hosts"]) == 3


async def test_os_hosts_update_and_power(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    host = nova.state.host
    fault(await nova.req("PUT", f"/os-hosts/{host}", demo, json={"status": "disable"}),
          "forbidden", 403)
    for bad in ({"status": "invalid"}, {"maintenance_mode": "invalid"}, {},
                {"status": "enable", "extra": 1}):
        fault(await nova.req("PUT", f"/os-hosts/{host}", json=bad), "badRequest", 400)
    fault(await nova.req("PUT", "/os-hosts/nohost", json={"status": "enable"}),
          "itemNotFound", 404)
    r = await nova.req("PUT", f"/os-hosts/{host}", json={"status": "Disable"})
    assert r.status_code == 200 and r.json() == {"host": host, "status": "disabled"}
    services = (await nova.req("GET", f"/os-services?host={host}&binary=nova-compute")
                ).json()["services"]
    assert services[0]["status"] == "disabled"
    r = await nova.req("PUT", f"/os-hosts/{host}", json={"status": "enable"})
    assert r.json() == {"host": host, "status": "enabled"}
    fault(await nova.req("PUT", f"/os-hosts/{host}", json={"maintenance_mode": "enable"}),
          "notImplemented", 501)
    for action in ("startup", "shutdown", "reboot"):
        fault(await nova.req("GET", f"/os-hosts/{host}/{action}", demo), "forbidden", 403)
        fault(await nova.req("GET", f"/os-hosts/nohost/{action}"), "itemNotFound", 404)
        fault(await nova.req("GET", f"/os-hosts/{host}/{action}"), "notImplemented", 501)
    fault(await nova.req("GET", f"/os-hosts/{host}/dance"), "itemNotFound", 404)
