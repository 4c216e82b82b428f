"""The server actions of service/actions.py with the fake driver: suspend/resume,
rescue/unrescue, resize with confirm and revert (claims on the node),
rebuild, createImage (the image service holds the snapshot), shelve,
shelveOffload and unshelve; their states, Nova's conflicts, locks, policies,
instance actions and events, bad input that changes nothing, and a task that
fails part-way."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from onestack.compute.models import Allocation, ComputeNode, Instance
from onestack.compute.service import actions
from tests.api.compute.conftest import Compute, fault


async def _act(nova: Compute, sid: str, body: dict[str, Any], token: str | None = None,
               version: str | None = None) -> Any:
    return await nova.req("POST", f"/servers/{sid}/action", token, version=version, json=body)


async def _active(nova: Compute, **server: Any) -> tuple[str, dict[str, Any]]:
    """A demo server, ACTIVE; (id, its image)."""
    img = server.pop("image", None) or await nova.image()
    sid = (await nova.boot(nova.cloud.demo_token, imageRef=img["id"], **server))["server"]["id"]
    await nova.wait(sid, "ACTIVE", token=nova.cloud.demo_token)
    return sid, img


async def _events(nova: Compute, sid: str, action: str) -> dict[str, str | None]:
    r = await nova.req("GET", f"/servers/{sid}/os-instance-actions")
    (a,) = [a for a in r.json()["instanceActions"] if a["action"] == action][:1]
    r = await nova.req("GET", f"/servers/{sid}/os-instance-actions/{a['request_id']}")
    return {e["event"]: e["result"] for e in r.json()["instanceAction"]["events"]}


async def _actions(nova: Compute, sid: str) -> list[str]:
    r = await nova.req("GET", f"/servers/{sid}/os-instance-actions")
    return [a["action"] for a in r.json()["instanceActions"]]


async def _claim(nova: Compute, sid: str) -> tuple[int, int, int] | None:
    async with nova.state.db.read() as s:
        a = await s.get(Allocation, sid)
    return None if a is None else (a.vcpus, a.memory_mb, a.disk_gb)


async def _node_used(nova: Compute) -> tuple[int, int, int]:
    async with nova.state.db.read() as s:
        n = await s.scalar(select(ComputeNode).where(ComputeNode.id == nova.state.node_id))
    assert n is not None
    return n.vcpus_used, n.memory_mb_used, n.local_gb_used


async def _image(nova: Compute, image_id: str) -> dict[str, Any] | None:
    r = await nova.cloud.client.get(f"/image/v2/images/{image_id}",
                                    headers={"X-Auth-Token": nova.cloud.admin_token})
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _images(nova: Compute, **params: str) -> list[dict[str, Any]]:
    r = await nova.cloud.client.get("/image/v2/images", params=params,
                                    headers={"X-Auth-Token": nova.cloud.admin_token})
    assert r.status_code == 200, r.text
    return r.json()["images"]  # type: ignore[no-any-return]


async def test_create_backup_keeps_the_rotation_newest(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    sid, img = await _active(nova)
    count = len(await _images(nova))
    for bad in ({"name": "b"}, {"name": "b", "backup_type": "daily", "rotation": -1},
                {"name": "b", "backup_type": "daily", "rotation": "x"},
                {"name": "b", "backup_type": 1, "rotation": 1},
                {"name": "b", "backup_type": "daily", "rotation": 1, "extra": 1}):
        fault(await _act(nova, sid, {"createBackup": bad}, demo), "badRequest", 400)
    assert len(await _images(nova)) == count  # nothing half-made

    made = []
    for n in range(3):
        r = await _act(nova, sid, {"createBackup": {
            "name": f"bk{n}", "backup_type": "daily", "rotation": "2",
            "metadata": {"k": "v"}}}, demo, "2.1")
        assert r.status_code == 202, r.text
        made.append(r.headers["Location"].rsplit("/", 1)[-1])
        await nova.wait(sid, "ACTIVE", token=demo)
    backups = await _images(nova, image_type="backup", instance_uuid=sid)
    assert {b["id"] for b in backups} == set(made[1:])  # the oldest was rotated out
    b = await _image(nova, made[2])
    assert b is not None
    assert (b["status"], b["backup_type"], b["k"], b["base_image_ref"]) == (
        "active", "daily", "v", img["id"])
    assert await _events(nova, sid, "createBackup") == {"compute_backup_instance": "Success"}

    # another type rotates separately; rotation 0 keeps none (no Location before 2.45)
    r = await _act(nova, sid, {"createBackup": {"name": "w", "backup_type": "weekly",
                                                "rotation": 0}}, demo, "2.1")
    assert r.status_code == 202 and "Location" not in r.headers
    await nova.wait(sid, "ACTIVE", token=demo)
    assert await _images(nova, image_type="backup", backup_type="weekly",
                         instance_uuid=sid) == []
    r = await _act(nova, sid, {"createBackup": {"name": "w", "backup_type": "weekly",
                                                "rotation": 1}}, demo, "2.45")
    assert r.status_code == 202 and set(r.json()) == {"image_id"}
    await nova.wait(sid, "ACTIVE", token=demo)
    assert len(await _images(nova, image_type="backup", instance_uuid=sid)) == 3

    # the wrong state: 409 and no image
    assert (await _act(nova, sid, {"rescue": None}, demo)).status_code == 200
    await nova.wait(sid, "RESCUE", token=demo)
    count = len(await _images(nova))
    r = await _act(nova, sid, {"createBackup": {"name": "x", "backup_type": "daily",
                                                "rotation": 1}}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'createBackup' instance {sid} while it is in vm_state rescued")
    assert len(await _images(nova)) == count


async def test_suspend_resume(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    sid, _ = await _active(nova)
    r = await _act(nova, sid, {"resume": None}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'resume' instance {sid} while it is in vm_state active")
    assert (await _act(nova, sid, {"suspend": None}, demo)).status_code == 202
    srv = await nova.wait(sid, "SUSPENDED", token=demo)
    assert (srv["OS-EXT-STS:vm_state"], srv["OS-EXT-STS:power_state"]) == ("suspended", 7)
    r = await nova.req("GET", "/servers?status=SUSPENDED", demo)
    assert [s["id"] for s in r.json()["servers"]] == [sid]
    r = await _act(nova, sid, {"suspend": None}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'suspend' instance {sid} while it is in vm_state suspended")
    assert (await _act(nova, sid, {"resume": None}, demo)).status_code == 202
    srv = await nova.wait(sid, "ACTIVE", token=demo)
    assert srv["OS-EXT-STS:power_state"] == 1
    assert (await _actions(nova, sid))[:2] == ["resume", "suspend"]
    assert await _events(nova, sid, "suspend") == {"compute_suspend_instance": "Success"}
    assert await _events(nova, sid, "resume") == {"compute_resume_instance": "Success"}


async def test_rescue_unrescue(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    sid, img = await _active(nova)
    other = await nova.image()
    r = await _act(nova, sid, {"unrescue": None}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'unrescue' instance {sid} while it is in vm_state active")
    # bad input changes nothing
    for body in ({"rescue": {"rescue_image_ref": "nope"}}, {"rescue": {"color": "red"}},
                 {"rescue": {"adminPass": 5}}):
        fault(await _act(nova, sid, body, demo), "badRequest", 400)
    r = await _act(nova, sid, {"rescue": {"rescue_image_ref":
                                          "00000000-0000-4000-8000-000000000000"}}, demo)
    fault(r, "badRequest", 400)
    srv = await nova.wait(sid, "ACTIVE", token=demo)
    assert await _actions(nova, sid) == ["create"]

    r = await _act(nova, sid, {"rescue": {"adminPass": "s3cret",
                                          "rescue_image_ref": other["id"]}}, demo)
    assert r.status_code == 200 and r.json() == {"adminPass": "s3cret"}
    srv = await nova.wait(sid, "RESCUE", token=demo)
    assert srv["OS-EXT-STS:vm_state"] == "rescued"
    assert nova.state.driver.guests[sid].rescue_image == other["id"]
    r = await _act(nova, sid, {"rescue": None}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'rescue' instance {sid} while it is in vm_state rescued")
    assert (await _act(nova, sid, {"unrescue": None}, demo)).status_code == 202
    await nova.wait(sid, "ACTIVE", token=demo)
    assert nova.state.driver.guests[sid].rescue_image is None
    # no body: a generated password, the server's own image
    r = await _act(nova, sid, {"rescue": None}, demo)
    assert r.status_code == 200 and len(r.json()["adminPass"]) >= 8
    await nova.wait(sid, "RESCUE", token=demo)
    assert nova.state.driver.guests[sid].rescue_image == img["id"]
    assert await _events(nova, sid, "rescue") == {"compute_rescue_instance": "Success"}


async def test_resize_confirm_and_revert_move_the_claim(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    small = await nova.flavor(ram=256, vcpus=1, disk=1)
    big = await nova.flavor(ram=512, vcpus=2, disk=2)
    tiny_disk = await nova.flavor(ram=512, vcpus=2, disk=0)
    sid, _ = await _active(nova, flavorRef=small["id"])
    before = await _node_used(nova)
    assert await _claim(nova, sid) == (1, 256, 1)

    # bad input and refusals leave the server and its claim alone
    fault(await _act(nova, sid, {"resize": {}}, demo), "badRequest", 400)
    fault(await _act(nova, sid, {"resize": {"flavorRef": big["id"], "x": 1}}, demo),
          "badRequest", 400)
    r = await _act(nova, sid, {"resize": {"flavorRef": small["id"]}}, demo)
    assert fault(r, "badRequest", 400) == "When resizing, instances must change flavor!"
    r = await _act(nova, sid, {"resize": {"flavorRef": "no-such-flavor"}}, demo)
    assert fault(r, "badRequest", 400) == "Unable to locate requested flavor."
    r = await _act(nova, sid, {"resize": {"flavorRef": tiny_disk["id"]}}, demo)
    fault(r, "badRequest", 400)
    r = await _act(nova, sid, {"confirmResize": None}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'confirmResize' instance {sid} while it is in vm_state active")
    fault(await _act(nova, sid, {"revertResize": None}, demo), "conflictingRequest", 409)
    assert await _actions(nova, sid) == ["create"]

    r = await _act(nova, sid, {"resize": {"flavorRef": big["id"]}}, demo)
    assert r.status_code == 202, r.text
    srv = await nova.wait(sid, "VERIFY_RESIZE", token=demo, version="2.47")
    assert srv["OS-EXT-STS:vm_state"] == "resized"
    assert (srv["flavor"]["original_name"], srv["flavor"]["vcpus"]) == (big["name"], 2)
    assert await _claim(nova, sid) == (2, 512, 2)
    assert await _node_used(nova) == (before[0] + 1, before[1] + 256, before[2] + 1)
    async with nova.state.db.read() as s:
        row = await s.scalar(select(Instance).where(Instance.uuid == sid))
    assert row is not None and row.old_flavor is not None and row.new_flavor is not None
    assert (row.old_flavor["flavorid"], row.new_flavor["flavorid"]) == (small["id"], big["id"])
    assert nova.state.driver.guests[sid].spec.memory_mb == 512
    assert await _events(nova, sid, "resize") == {
        "compute_prep_resize": "Success", "compute_resize_instance": "Success",
        "compute_finish_resize": "Success"}
    r = await _act(nova, sid, {"resize": {"flavorRef": small["id"]}}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'resize' instance {sid} while it is in vm_state resized")

    # revert: the old flavor and claim come back
    assert (await _act(nova, sid, {"revertResize": None}, demo)).status_code == 202
    srv = await nova.wait(sid, "ACTIVE", token=demo, version="2.47")
    assert srv["flavor"]["original_name"] == small["name"]
    assert await _claim(nova, sid) == (1, 256, 1)
    assert await _node_used(nova) == before
    async with nova.state.db.read() as s:
        row = await s.scalar(select(Instance).where(Instance.uuid == sid))
    assert row is not None and row.old_flavor is None and row.new_flavor is None
    assert (row.vcpus, row.memory_mb, row.instance_type_id) == (1, 256, small["id"])
    assert await _events(nova, sid, "revertResize") == {
        "compute_revert_resize": "Success", "compute_finish_revert_resize": "Success"}

    # resize a stopped server and confirm: it stays stopped, on the new flavor
    assert (await _act(nova, sid, {"os-stop": None}, demo)).status_code == 202
    await nova.wait(sid, "SHUTOFF", token=demo)
    assert (await _act(nova, sid, {"resize": {"flavorRef": big["id"]}}, demo)).status_code \
        == 202
    await nova.wait(sid, "VERIFY_RESIZE", token=demo)
    r = await _act(nova, sid, {"confirmResize": None}, demo)
    assert r.status_code == 204, r.text
    srv = await nova.wait(sid, "SHUTOFF", token=demo, version="2.47")
    assert srv["flavor"]["original_name"] == big["name"]
    assert await _claim(nova, sid) == (2, 512, 2)
    r = await nova.req("GET", "/limits", demo)
    absolute = r.json()["limits"]["absolute"]
    assert (absolute["totalCoresUsed"], absolute["totalRAMUsed"]) == (2, 512)
    assert (await _actions(nova, sid))[:3] == ["confirmResize", "resize", "stop"]


async def test_resize_without_room_keeps_the_old_claim(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    small = await nova.flavor(ram=256, vcpus=1, disk=1)
    huge = await nova.flavor(ram=256, vcpus=4, disk=1)
    sid, _ = await _active(nova, flavorRef=small["id"])
    from onestack.compute.service import scheduler
    await scheduler.set_inventory(nova.state, nova.state.node_id, vcpus=2,
                                  cpu_allocation_ratio=1.0)
    r = await _act(nova, sid, {"resize": {"flavorRef": huge["id"]}}, demo)
    assert r.status_code == 202, r.text
    srv = await nova.wait(sid, "ACTIVE", token=demo, version="2.47")
    assert srv["flavor"]["original_name"] == small["name"]
    assert await _claim(nova, sid) == (1, 256, 1)
    assert (await _node_used(nova))[0] == 1
    events = await _events(nova, sid, "resize")
    assert events == {"compute_prep_resize": "Error"}


async def test_resize_over_quota_is_403(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    sid, _ = await _active(nova)
    greedy = await nova.flavor(ram=256, vcpus=21, disk=1)
    r = await _act(nova, sid, {"resize": {"flavorRef": greedy["id"]}}, demo)
    assert fault(r, "forbidden", 403).startswith("Quota exceeded for cores: Requested 20")
    await nova.wait(sid, "ACTIVE", token=demo)


async def test_rebuild(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    sid, img = await _active(nova, metadata={"old": "1"})
    new = await nova.image()
    r = await nova.req("POST", "/os-keypairs", demo, version="2.10", json={
        "keypair": {"name": "k1", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx"
                    "hUfVjyq0Mze6dtKaVx4t5Tc/7CQ3xNHa8aJW5FUUn me@host"}})
    assert r.status_code == 201, r.text
    # refusals change nothing
    fault(await _act(nova, sid, {"rebuild": {}}, demo), "badRequest", 400)
    r = await _act(nova, sid, {"rebuild": {"imageRef": new["id"], "key_name": "k1"}}, demo,
                   "2.53")
    fault(r, "badRequest", 400)
    r = await _act(nova, sid, {"rebuild": {
        "imageRef": "00000000-0000-4000-8000-000000000000", "name": "x"}}, demo)
    assert fault(r, "badRequest", 400) == "Cannot find image for rebuild"
    r = await _act(nova, sid, {"rebuild": {"imageRef": new["id"], "key_name": "nokey"}},
                   demo, "2.54")
    assert fault(r, "badRequest", 400) == "Invalid key_name provided."
    srv = await nova.wait(sid, "ACTIVE", token=demo)
    assert srv["metadata"] == {"old": "1"} and srv["image"]["id"] == img["id"]

    r = await _act(nova, sid, {"rebuild": {
        "imageRef": new["id"], "name": "rebuilt", "metadata": {"new": "2"},
        "adminPass": "pw123", "description": "d", "key_name": "k1",
        "user_data": "aGVsbG8=", "hostname": "rb-host"}}, demo, "2.90")
    assert r.status_code == 202, r.text
    out = r.json()["server"]
    assert out["adminPass"] == "pw123" and out["name"] == "rebuilt"
    assert out["image"]["id"] == new["id"] and out["status"] == "REBUILD"
    srv = await nova.wait(sid, "ACTIVE", token=demo, version="2.90")
    assert (srv["name"], srv["metadata"], srv["description"], srv["key_name"]) == (
        "rebuilt", {"new": "2"}, "d", "k1")
    assert srv["OS-EXT-SRV-ATTR:hostname"] == "rb-host"
    assert nova.state.driver.guests[sid].spec.image["id"] == new["id"]
    assert await _events(nova, sid, "rebuild") == {"compute_rebuild_instance": "Success"}
    # a stopped server is rebuilt stopped; key_name null removes the key
    assert (await _act(nova, sid, {"os-stop": None}, demo)).status_code == 202
    await nova.wait(sid, "SHUTOFF", token=demo)
    r = await _act(nova, sid, {"rebuild": {"imageRef": img["id"], "key_name": None}}, demo,
                   "2.54")
    assert r.status_code == 202, r.text
    srv = await nova.wait(sid, "SHUTOFF", token=demo)
    assert srv["key_name"] is None and srv["image"]["id"] == img["id"]


async def test_create_image(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    sid, img = await _active(nova)
    # bad input leaves no image behind
    count = len(await _images(nova))
    fault(await _act(nova, sid, {"createImage": {}}, demo), "badRequest", 400)
    fault(await _act(nova, sid, {"createImage": {"name": "x", "metadata": {"a": 1}}}, demo),
          "badRequest", 400)
    assert len(await _images(nova)) == count

    r = await _act(nova, sid, {"createImage": {"name": "snap1", "metadata": {"k": "v"}}},
                   demo, "2.1")
    assert r.status_code == 202, r.text
    assert r.content == b""
    image_id = r.headers["Location"].rsplit("/", 1)[-1]
    assert r.headers["Location"].endswith(f"/image/v2/images/{image_id}")
    srv = await nova.wait(sid, "ACTIVE", token=demo)
    snap = await _image(nova, image_id)
    assert snap is not None
    assert (snap["name"], snap["status"], snap["visibility"]) == ("snap1", "active", "private")
    assert (snap["instance_uuid"], snap["image_type"], snap["base_image_ref"], snap["k"]) == (
        sid, "snapshot", img["id"], "v")
    assert snap["owner"] == srv["tenant_id"]
    assert snap["size"] == len(nova.state.driver.PLACEHOLDER_DISK)
    assert await _events(nova, sid, "createImage") == {"compute_snapshot_instance": "Success"}

    r = await _act(nova, sid, {"createImage": {"name": "snap2"}}, demo, "2.45")
    assert r.status_code == 202 and "Location" not in r.headers
    image_id = r.json()["image_id"]
    await nova.wait(sid, "ACTIVE", token=demo)
    snap = await _image(nova, image_id)
    assert snap is not None and snap["status"] == "active"

    # the wrong state: 409 and no image
    assert (await _act(nova, sid, {"rescue": None}, demo)).status_code == 200
    await nova.wait(sid, "RESCUE", token=demo)
    count = len(await _images(nova))
    r = await _act(nova, sid, {"createImage": {"name": "snap3"}}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'createImage' instance {sid} while it is in vm_state rescued")
    assert len(await _images(nova)) == count


async def test_shelve_offload_unshelve(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    nova.state.extras["shelved_offload_time"] = -1
    sid, img = await _active(nova, name="shelfy")
    before = await _node_used(nova)
    fault(await _act(nova, sid, {"unshelve": None}, demo), "conflictingRequest", 409)
    assert (await _act(nova, sid, {"shelve": None}, demo)).status_code == 202
    srv = await nova.wait(sid, "SHELVED", token=demo)
    assert srv["OS-EXT-STS:power_state"] == 4
    (shelved,) = await _images(nova, name="shelfy-shelved")
    assert shelved["status"] == "active" and shelved["instance_uuid"] == sid
    r = await _act(nova, sid, {"shelve": None}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'shelve' instance {sid} while it is in vm_state shelved")
    # offloading is for admins
    fault(await _act(nova, sid, {"shelveOffload": None}, demo), "forbidden", 403)
    assert (await _act(nova, sid, {"shelveOffload": None})).status_code == 202
    srv = await nova.wait(sid, "SHELVED_OFFLOADED", token=demo)
    r = await nova.req("GET", f"/servers/{sid}", version="2.3")
    assert r.json()["server"]["OS-EXT-SRV-ATTR:host"] is None
    assert await _claim(nova, sid) is None
    assert (await _node_used(nova))[1] == before[1] - 128
    assert sid not in nova.state.driver.guests
    # unshelve: scheduled again, spawned from the shelved image, which goes away
    fault(await _act(nova, sid, {"unshelve": {}}, demo, "2.77"), "badRequest", 400)
    r = await _act(nova, sid, {"unshelve": {"availability_zone": "elsewhere"}}, demo, "2.77")
    assert fault(r, "badRequest", 400) == "The requested availability zone is not available"
    await nova.wait(sid, "SHELVED_OFFLOADED", token=demo)
    r = await _act(nova, sid, {"unshelve": {"availability_zone": "nova"}}, demo, "2.77")
    assert r.status_code == 202, r.text
    srv = await nova.wait(sid, "ACTIVE", token=demo)
    assert srv["image"]["id"] == img["id"]
    assert await _claim(nova, sid) == (1, 128, 1)
    assert nova.state.driver.guests[sid].spec.image["id"] == shelved["id"]
    assert await _image(nova, shelved["id"]) is None
    assert (await _actions(nova, sid))[:3] == ["unshelve", "shelveOffload", "shelve"]
    assert await _events(nova, sid, "unshelve") == {
        "conductor_schedule_and_build_instances": "Success",
        "compute_unshelve_instance": "Success"}


async def test_shelve_offloads_at_once_by_default(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    assert actions.shelved_offload_time(nova.state) == 0
    sid, _ = await _active(nova)
    assert (await _act(nova, sid, {"shelve": None}, demo)).status_code == 202
    await nova.wait(sid, "SHELVED_OFFLOADED", token=demo)
    assert await _claim(nova, sid) is None
    assert await _events(nova, sid, "shelve") == {
        "compute_shelve_instance": "Success", "compute_shelve_offload_instance": "Success"}
    (shelved,) = await _images(nova, instance_uuid=sid)
    # deleting a shelved server deletes its shelved image
    r = await nova.req("DELETE", f"/servers/{sid}", demo)
    assert r.status_code == 204
    await nova.gone(sid, demo)
    assert await _image(nova, shelved["id"]) is None


async def test_locks_policies_and_other_projects(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    sid, _ = await _active(nova)
    assert (await _act(nova, sid, {"lock": None}, demo)).status_code == 202
    for body in ({"suspend": None}, {"rescue": None}, {"resize": {"flavorRef": "1"}},
                 {"rebuild": {"imageRef": (await nova.image())["id"]}},
                 {"createImage": {"name": "s"}}, {"shelve": None}):
        r = await _act(nova, sid, body, demo)
        assert fault(r, "conflictingRequest", 409) == f"Instance {sid} is locked", body
    assert (await _act(nova, sid, {"suspend": None})).status_code == 202  # admins may
    await nova.wait(sid, "SUSPENDED", token=demo)
    assert (await _act(nova, sid, {"unlock": None}, demo)).status_code == 202
    # another project's member does not see it
    _p, _u, stranger = await nova.project_user()
    fault(await _act(nova, sid, {"resume": None}, stranger), "itemNotFound", 404)
    # restore: nothing is soft-deleted here; forceDelete deletes
    r = await _act(nova, sid, {"restore": None}, demo)
    assert fault(r, "conflictingRequest", 409) == (
        f"Cannot 'restore' instance {sid} while it is in vm_state suspended")
    assert (await _act(nova, sid, {"forceDelete": None}, demo)).status_code == 202
    await nova.gone(sid, demo)


async def test_a_failing_driver_retries_then_ends_cleanly(nova: Compute,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    demo = nova.cloud.demo_token
    sid, img = await _active(nova)
    driver = nova.state.driver
    calls: list[str] = []
    real_suspend = driver.suspend

    async def flaky(uuid: str) -> None:
        calls.append(uuid)
        if len(calls) == 1:
            raise RuntimeError("hypervisor hiccup")
        await real_suspend(uuid)

    monkeypatch.setattr(driver, "suspend", flaky)
    assert (await _act(nova, sid, {"suspend": None}, demo)).status_code == 202
    await nova.wait(sid, "SUSPENDED", token=demo)
    assert len(calls) == 2  # the task ran again after the failure
    assert (await _act(nova, sid, {"resume": None}, demo)).status_code == 202
    await nova.wait(sid, "ACTIVE", token=demo)

    async def broken(*_a: Any) -> None:
        raise RuntimeError("disk on fire")

    # resume failing for good: back to SUSPENDED, the event says Error
    monkeypatch.setattr(driver, "suspend", real_suspend)
    assert (await _act(nova, sid, {"suspend": None}, demo)).status_code == 202
    await nova.wait(sid, "SUSPENDED", token=demo)
    monkeypatch.setattr(driver, "resume", broken)
    assert (await _act(nova, sid, {"resume": None}, demo)).status_code == 202
    srv = await nova.wait(sid, "SUSPENDED", token=demo)
    assert "fault" not in srv
    r = await nova.req("GET", f"/servers/{sid}/os-instance-actions")
    assert r.json()["instanceActions"][0]["message"] == "Error"
    assert await _events(nova, sid, "resume") == {"compute_resume_instance": "Error"}
    # a rebuild failing for good leaves the server in ERROR with a fault
    monkeypatch.setattr(driver, "rebuild", broken)
    assert (await _act(nova, sid, {"os-resetState": {"state": "active"}})).status_code == 202
    r = await _act(nova, sid, {"rebuild": {"imageRef": img["id"]}}, demo)
    assert r.status_code == 202, r.text
    srv = await nova.wait(sid, "ERROR", token=demo)
    assert "disk on fire" in srv["fault"]["message"]
