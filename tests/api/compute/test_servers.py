"""Servers with the fake driver: create -> ACTIVE, ports on the networking
service, list filters and pages, actions and their conflicts, bad input that
leaves nothing behind, quotas and /limits."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from sqlalchemy import func, select

from onestack.compute.models import Allocation, ComputeNode, Instance
from tests.api.compute.conftest import Compute, fault


async def _usage(nova: Compute) -> tuple[int, int, int]:
    """(allocations, vcpus used on the node, servers not deleted)."""
    st = nova.state
    async with st.db.read() as s:
        allocs = await s.scalar(select(func.count()).select_from(Allocation))
        used = await s.scalar(select(func.sum(ComputeNode.vcpus_used)))
        live = await s.scalar(select(func.count()).select_from(Instance)
                              .where(Instance.deleted.is_(False)))
    return int(allocs or 0), int(used or 0), int(live or 0)


async def test_boot_to_active_with_a_port_then_delete(nova: Compute) -> None:
    cloud = nova.cloud
    img = await nova.image()
    net = await nova.network(cloud.demo_token)
    body = await nova.boot(cloud.demo_token, imageRef=img["id"], networks=[{"uuid": net["id"]}],
                           metadata={"a": "b"})
    srv = body["server"]
    assert srv["adminPass"] and srv["OS-DCF:diskConfig"] == "MANUAL"
    assert srv["links"][0]["href"].endswith(f"/v2.1/servers/{srv['id']}")
    assert srv["security_groups"] == [{"name": "default"}]
    active = await nova.wait(srv["id"], "ACTIVE", token=cloud.demo_token)
    assert active["OS-EXT-STS:vm_state"] == "active"
    assert active["OS-EXT-STS:power_state"] == 1
    assert active["metadata"] == {"a": "b"}
    assert active["flavor"]["original_name"] == "m1.nano"  # 2.47
    assert active["pinned_availability_zone"] is None and active["scheduler_hints"] == {}
    assert active["locked"] is False and active["locked_reason"] is None
    assert "OS-EXT-SRV-ATTR:host" not in active  # not an admin
    (addrs,) = active["addresses"][net["name"]]
    assert addrs["version"] == 4 and addrs["addr"].startswith("10.9.0.")
    (port,) = await nova.ports(device_id=srv["id"])
    assert port["device_owner"] == "compute:nova"
    assert port["binding:host_id"] == nova.state.host
    assert port["mac_address"] == addrs["OS-EXT-IPS-MAC:mac_addr"]
    # admins see the host
    r = await nova.req("GET", f"/servers/{srv['id']}", version="2.3")
    assert r.json()["server"]["OS-EXT-SRV-ATTR:host"] == nova.state.host
    assert r.json()["server"]["OS-EXT-SRV-ATTR:hypervisor_hostname"] == nova.state.host
    # usage reaches /limits
    r = await nova.req("GET", "/limits", cloud.demo_token)
    absolute = r.json()["limits"]["absolute"]
    assert (absolute["totalInstancesUsed"], absolute["totalCoresUsed"],
            absolute["totalRAMUsed"]) == (1, 1, 128)
    # the instance action and its events
    r = await nova.req("GET", f"/servers/{srv['id']}/os-instance-actions", cloud.demo_token)
    (action,) = r.json()["instanceActions"]
    assert action["action"] == "create"
    r = await nova.req("GET", f"/servers/{srv['id']}/os-instance-actions/{action['request_id']}",
                       version="2.62")
    events = {e["event"]: e["result"] for e in r.json()["instanceAction"]["events"]}
    assert events == {"conductor_schedule_and_build_instances": "Success",
                      "compute__do_build_and_run_instance": "Success"}

    r = await nova.req("DELETE", f"/servers/{srv['id']}", cloud.demo_token)
    assert r.status_code == 204, r.text
    await nova.gone(srv["id"], cloud.demo_token)
    assert await nova.ports(device_id=srv["id"]) == []
    assert await _usage(nova) == (0, 0, 0)
    r = await nova.req("GET", "/limits", cloud.demo_token)
    assert r.json()["limits"]["absolute"]["totalInstancesUsed"] == 0


async def test_list_filters_and_pages(nova: Compute) -> None:
    cloud = nova.cloud
    img = await nova.image()
    other = await nova.image()
    ids = []
    for name, flavor, image in (("web-1", "42", img), ("web-2", "84", img),
                                ("db-1", "42", other)):
        body = await nova.boot(cloud.demo_token, name=name, flavorRef=flavor,
                               imageRef=image["id"])
        ids.append(body["server"]["id"])
    for sid in ids:
        await nova.wait(sid, "ACTIVE", token=cloud.demo_token)

    async def names(query: str, token: str | None = None, path: str = "/servers") -> list[str]:
        r = await nova.req("GET", f"{path}?{query}", token or cloud.demo_token)
        assert r.status_code == 200, r.text
        return [s["name"] for s in r.json()["servers"]]

    assert await names("") == ["db-1", "web-2", "web-1"]  # newest first
    assert await names("name=^web") == ["web-2", "web-1"]
    assert await names("flavor=84") == ["web-2"]
    assert await names(f"image={other['id']}") == ["db-1"]
    assert await names("status=ACTIVE&sort_key=display_name&sort_dir=asc") == [
        "db-1", "web-1", "web-2"]
    assert await names("status=SHUTOFF") == []
    r = await nova.req("GET", "/servers/detail?limit=2", cloud.demo_token)
    page = r.json()
    assert [s["name"] for s in page["servers"]] == ["db-1", "web-2"]
    assert page["servers"][0]["status"] == "ACTIVE"
    (link,) = page["servers_links"]
    assert link["rel"] == "next" and f"marker={ids[1]}" in link["href"]
    assert await names(f"limit=2&marker={ids[1]}") == ["web-1"]
    r = await nova.req("GET", "/servers?marker=nope", cloud.demo_token)
    assert "marker [nope] not found" in fault(r, "badRequest", 400)
    # another project's servers: only admins with all_tenants
    assert await names("", cloud.admin_token) == []
    assert await names("all_tenants=1", cloud.admin_token) == ["db-1", "web-2", "web-1"]
    assert await names("all_tenants=1&host=nowhere", cloud.admin_token) == []
    r = await nova.req("GET", "/servers?all_tenants=1", cloud.demo_token)
    fault(r, "forbidden", 403)
    r = await nova.req("GET", f"/servers/{ids[0]}", (await nova.project_user())[2])
    fault(r, "itemNotFound", 404)
    # changes-since shows deleted servers too
    r = await nova.req("DELETE", f"/servers/{ids[2]}", cloud.demo_token)
    assert r.status_code == 204
    await nova.gone(ids[2], cloud.demo_token)
    assert await names("changes-since=2000-01-01T00:00:00Z") == ["db-1", "web-2", "web-1"]
    assert await names("") == ["web-2", "web-1"]


async def test_update_name_and_description(nova: Compute) -> None:
    img = await nova.image()
    sid = (await nova.boot(imageRef=img["id"]))["server"]["id"]
    r = await nova.req("PUT", f"/servers/{sid}", version="2.19",
                       json={"server": {"name": "renamed", "description": "d"}})
    assert r.status_code == 200, r.text
    assert (r.json()["server"]["name"], r.json()["server"]["description"]) == ("renamed", "d")
    r = await nova.req("PUT", f"/servers/{sid}", json={"server": {"description": "d"}})
    fault(r, "badRequest", 400)  # description before 2.19
    r = await nova.req("PUT", f"/servers/{sid}", json={"server": {"name": " x"}})
    fault(r, "badRequest", 400)
    # before 2.75 the answer has none of GET's extended attributes; from 2.75 all
    await nova.wait(sid, "ACTIVE")
    r = await nova.req("PUT", f"/servers/{sid}", version="2.74",
                       json={"server": {"name": "n"}})
    old = r.json()["server"]
    assert not [k for k in old if k.startswith(("OS-EXT-", "OS-SRV-USG:"))], old
    assert "key_name" not in old and "security_groups" not in old
    r = await nova.req("PUT", f"/servers/{sid}", version="2.75",
                       json={"server": {"name": "n"}})
    new = r.json()["server"]
    assert new["OS-EXT-STS:vm_state"] == "active" and "key_name" in new
    # rebuild answers with user_data from 2.57
    r = await nova.req("POST", f"/servers/{sid}/action", version="2.57",
                       json={"rebuild": {"imageRef": img["id"]}})
    assert r.status_code == 202, r.text
    assert r.json()["server"]["user_data"] is None


async def _act(nova: Compute, sid: str, body: dict[str, Any], token: str | None = None,
               version: str | None = None) -> Any:
    return await nova.req("POST", f"/servers/{sid}/action", token, version=version, json=body)


async def test_actions_and_conflicts(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    img = await nova.image()
    sid = (await nova.boot(demo, imageRef=img["id"]))["server"]["id"]
    await nova.wait(sid, "ACTIVE", token=demo)
    r = await _act(nova, sid, {"os-start": None}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'start' instance {sid} while it is in vm_state active")
    assert (await _act(nova, sid, {"os-stop": None}, demo)).status_code == 202
    srv = await nova.wait(sid, "SHUTOFF", token=demo)
    assert srv["OS-EXT-STS:power_state"] == 4
    r = await _act(nova, sid, {"os-stop": None}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'stop' instance {sid} while it is in vm_state stopped")
    r = await _act(nova, sid, {"reboot": {"type": "SOFT"}}, demo)
    fault(r, "conflictingRequest", 409)
    assert (await _act(nova, sid, {"reboot": {"type": "HARD"}}, demo)).status_code == 202
    await nova.wait(sid, "ACTIVE", token=demo)
    assert (await _act(nova, sid, {"pause": None}, demo)).status_code == 202
    srv = await nova.wait(sid, "PAUSED", token=demo)
    assert srv["OS-EXT-STS:power_state"] == 3
    assert (await _act(nova, sid, {"unpause": None}, demo)).status_code == 202
    await nova.wait(sid, "ACTIVE", token=demo)
    r = await _act(nova, sid, {"reboot": {"type": "sideways"}}, demo)
    fault(r, "badRequest", 400)
    r = await _act(nova, sid, {"os-getConsoleOutput": {"length": 1}}, demo)
    # Nova's tail: the last piece between newlines (the text ends with one)
    assert r.status_code == 200 and len(r.json()["output"].split("\n")) == 1
    # lock (2.73 reason): the owner can no longer act, the admin still can
    r = await _act(nova, sid, {"lock": {"locked_reason": "maintenance"}}, demo, "2.73")
    assert r.status_code == 202, r.text
    srv = await nova.wait(sid, "ACTIVE", token=demo, version="2.73")
    assert (srv["locked"], srv["locked_reason"]) == (True, "maintenance")
    r = await _act(nova, sid, {"os-stop": None}, demo)
    assert fault(r, "conflictingRequest", 409) == f"Instance {sid} is locked"
    r = await nova.req("DELETE", f"/servers/{sid}", demo)
    fault(r, "conflictingRequest", 409)
    assert (await _act(nova, sid, {"unlock": None}, demo)).status_code == 202
    # reset state: admins only
    r = await _act(nova, sid, {"os-resetState": {"state": "error"}}, demo)
    fault(r, "forbidden", 403)
    assert (await _act(nova, sid, {"os-resetState": {"state": "error"}})).status_code == 202
    await nova.wait(sid, "ERROR", token=demo)
    r = await _act(nova, sid, {"pause": None}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'pause' instance {sid} while it is in vm_state error")
    r = await nova.req("GET", f"/servers/{sid}/os-instance-actions", demo)
    assert [a["action"] for a in r.json()["instanceActions"]] == [
        "resetState", "unlock", "lock", "unpause", "pause", "reboot", "stop", "create"]
    r = await _act(nova, sid, {"os-migrateLive": None}, demo)
    fault(r, "badRequest", 400)


async def test_bad_input_leaves_nothing(nova: Compute) -> None:
    cloud = nova.cloud
    demo = cloud.demo_token
    img = await nova.image()
    big = await nova.image(min_disk=5)
    hungry = await nova.image(min_ram=4096)
    net = await nova.network(demo)
    cases = [
        ({"imageRef": str(uuid.uuid4())}, "Can not find requested image"),
        ({"imageRef": img["id"], "flavorRef": "nope"}, "Invalid flavorRef provided."),
        ({"imageRef": img["id"], "networks": [{"uuid": str(uuid.uuid4())}]},
         "could not be found"),
        ({"imageRef": img["id"], "key_name": "nokey"}, "Invalid key_name provided."),
        ({"imageRef": big["id"]}, ("Flavor's disk is too small for requested image. Flavor "
         "disk is 1073741824 bytes, minimum requested disk is 5368709120 bytes.")),
        ({"imageRef": hungry["id"]}, "Flavor's memory is too small for requested image."),
        ({"imageRef": img["id"], "user_data": base64.b64encode(b"x" * 65536).decode()},
         "user_data"),
        ({"imageRef": img["id"], "user_data": "not base64!"}, "base64"),
        ({"imageRef": img["id"], "name": ""}, "is too short"),
        ({"imageRef": img["id"], "availability_zone": "elsewhere"},
         "The requested availability zone is not available"),
        ({"imageRef": img["id"], "min_count": 2, "max_count": 1}, "min_count"),
    ]
    for server, message in cases:
        server.setdefault("networks", [{"uuid": net["id"]}])
        server.setdefault("name", "vm")
        server.setdefault("flavorRef", "42")
        r = await nova.req("POST", "/servers", demo, version="2.37", json={"server": server})
        assert message in fault(r, "badRequest", 400), (server, r.text)
    r = await nova.req("POST", "/servers", demo, json={"server": {
        "name": "x", "imageRef": img["id"], "flavorRef": "42", "networks": "none"}})
    fault(r, "badRequest", 400)  # "none" needs 2.37
    r = await nova.req("POST", "/servers", demo, version="2.37", json={"server": {
        "name": "x", "imageRef": img["id"], "flavorRef": "42", "networks": "none",
        "min_count": 11}})
    assert fault(r, "forbidden", 403) == (
        "Quota exceeded for instances: Requested 11, but already used 0 of 10 instances")
    r = await nova.req("POST", "/servers", demo, version="2.37", json={"server": {
        "name": "x", "imageRef": img["id"], "flavorRef": "4", "networks": "none",
        "min_count": 7}})
    assert fault(r, "forbidden", 403) == ("Quota exceeded for cores, ram: Requested 28, "
                                          "57344, but already used 0, 0 of 20, 51200 cores, ram")
    r = await nova.req("GET", "/servers/detail", demo)
    assert r.json()["servers"] == []
    assert await nova.ports(device_owner="compute:nova") == []
    assert await _usage(nova) == (0, 0, 0)


async def test_max_count_is_capped_by_quota(nova: Compute) -> None:
    img = await nova.image()
    body = await nova.boot(nova.cloud.demo_token, imageRef=img["id"], min_count=1,
                           max_count=12, return_reservation_id=True)
    assert body["reservation_id"].startswith("r-")
    r = await nova.req("GET", "/servers", nova.cloud.demo_token)
    assert len(r.json()["servers"]) == 10
    r = await nova.req("GET", "/limits", nova.cloud.demo_token)
    assert r.json()["limits"]["absolute"]["totalInstancesUsed"] == 10


async def test_block_device_mapping_v2_image_root_disk(nova: Compute) -> None:
    """What ``openstack server create --image`` posts: the image as a local boot
    device next to imageRef (or instead of it); volumes are refused clearly."""
    demo = nova.cloud.demo_token
    img = await nova.image()
    root = {"uuid": img["id"], "boot_index": 0, "source_type": "image",
            "destination_type": "local", "delete_on_termination": True}
    made = await nova.boot(demo, imageRef=img["id"], block_device_mapping_v2=[root])
    srv = await nova.wait(made["server"]["id"], "ACTIVE", token=demo)
    assert srv["image"]["id"] == img["id"]
    made = await nova.boot(demo, imageRef="", block_device_mapping_v2=[root])
    srv = await nova.wait(made["server"]["id"], "ACTIVE", token=demo)
    assert srv["image"]["id"] == img["id"]

    async def refused(bdms: Any, **server: Any) -> str:
        server.setdefault("imageRef", img["id"])
        r = await nova.req("POST", "/servers", demo, version="2.37", json={"server": {
            "name": "x", "flavorRef": "42", "networks": "none",
            "block_device_mapping_v2": bdms, **server}})
        return fault(r, "badRequest", 400)

    volume = {"uuid": str(uuid.uuid4()), "boot_index": 0, "source_type": "volume",
              "destination_type": "volume"}
    assert "block storage" in await refused([volume], imageRef="")
    other = {**root, "uuid": str(uuid.uuid4())}
    assert "is not imageRef" in await refused([other])
    assert "is not of type 'array'" in await refused({"uuid": img["id"]})
    assert "'bogus' is not one of" in await refused([{**root, "source_type": "bogus"}])
    assert "was unexpected" in await refused([{**root, "size": 1}])
    blank = {"source_type": "blank", "destination_type": "local", "boot_index": -1,
             "guest_format": "swap", "volume_size": 1}
    assert "only the image-backed root disk" in await refused([root, blank])
    assert "is not a 'uuid'" in await refused([{**root, "uuid": "nope"}], imageRef="")
    # nothing was created by the refused requests
    r = await nova.req("GET", "/servers", demo)
    assert len(r.json()["servers"]) == 2


async def test_access_ips_are_checked_and_normalised(nova: Compute) -> None:
    img = await nova.image()
    made = await nova.boot(imageRef=img["id"], accessIPv4="1.1.1.1",
                           accessIPv6="0000:0000:0000:0000:0000:babe:220.12.22.2")
    srv = await nova.wait(made["server"]["id"], "ACTIVE")
    assert (srv["accessIPv4"], srv["accessIPv6"]) == ("1.1.1.1", "::babe:dc0c:1602")
    for key, bad in (("accessIPv4", "notvalid"), ("accessIPv4", "1.1.1.1.1.1"),
                     ("accessIPv4", "::1"), ("accessIPv6", "notvalid"),
                     ("accessIPv6", "1.1.1.1")):
        r = await nova.req("POST", "/servers", version="2.37", json={"server": {
            "name": "x", "imageRef": img["id"], "flavorRef": "42", "networks": "none",
            key: bad}})
        assert "is not a 'ipv" in fault(r, "badRequest", 400), (key, bad)
        r = await nova.req("PUT", f"/servers/{srv['id']}", json={"server": {key: bad}})
        fault(r, "badRequest", 400)
    r = await nova.req("PUT", f"/servers/{srv['id']}", json={"server": {"accessIPv4": ""}})
    assert r.json()["server"]["accessIPv4"] == ""


async def test_resize_sets_the_disk_config(nova: Compute) -> None:
    img = await nova.image()
    sid = (await nova.boot(imageRef=img["id"], **{"OS-DCF:diskConfig": "MANUAL"}))[
        "server"]["id"]
    await nova.wait(sid, "ACTIVE")
    r = await nova.req("POST", f"/servers/{sid}/action", json={
        "resize": {"flavorRef": "84", "OS-DCF:diskConfig": "AUTO"}})
    assert r.status_code == 202, r.text
    srv = await nova.wait(sid, "VERIFY_RESIZE")
    assert srv["OS-DCF:diskConfig"] == "AUTO"
    r = await nova.req("POST", f"/servers/{sid}/action", json={
        "resize": {"flavorRef": "42", "OS-DCF:diskConfig": "SOMETIMES"}})
    fault(r, "badRequest", 400)
