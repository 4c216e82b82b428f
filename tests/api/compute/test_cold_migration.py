"""The ``migrate`` action (cold migration) and the records it leaves in
``/os-migrations``: with the fake driver (as Nova's, it may migrate to its own
host) the server goes through RESIZE to VERIFY_RESIZE on its host, the record is
a ``migration`` moving migrating, post-migrating, finished, then confirmed or
reverted; where the guest cannot be moved (QEMU's case, or a requested other
host) the answer is Nova's 400 NoValidHost with an ``error`` record. Bad bodies
and hosts get Nova's 400s, members 403."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from onestack.compute.models import ComputeNode
from onestack.compute.service import migrations as migrations_svc
from tests.api.compute.conftest import Compute, fault
from tests.api.compute.test_migrations_api import (
    _act,
    _list,
    _row_id,
    _server,
    statuses_in_driver,
)


async def _migrate(nova: Compute, sid: str, body: Any = None, *, version: str = "2.1",
                   token: str | None = None, status: int = 202) -> Any:
    r = await nova.req("POST", f"/servers/{sid}/action", token, version=version,
                       json={"migrate": body})
    assert r.status_code == status, r.text
    return r


async def _actions(nova: Compute, sid: str) -> list[dict[str, Any]]:
    r = await nova.req("GET", f"/servers/{sid}/os-instance-actions", version="2.51")
    assert r.status_code == 200, r.text
    return r.json()["instanceActions"]  # type: ignore[no-any-return]


async def test_cold_migration_confirm_and_revert(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    flavor = await nova.flavor(ram=256, vcpus=1, disk=1)
    sid = await _server(nova, demo, flavor)
    host = nova.state.host

    # the status while the driver works: migrating
    with statuses_in_driver(nova, sid) as seen:
        await _migrate(nova, sid)
        srv = await nova.wait(sid, "VERIFY_RESIZE")
    assert seen == ["migrating"]
    assert srv["OS-EXT-SRV-ATTR:host"] == host
    assert srv["flavor"]["original_name"] == flavor["name"]
    (m,) = await _list(nova, "2.80", instance_uuid=sid)
    assert (m["migration_type"], m["status"]) == ("migration", "finished")
    assert (m["source_compute"], m["dest_compute"]) == (host, host)
    row = await _row_id(nova, flavor["id"])
    assert (m["old_instance_type_id"], m["new_instance_type_id"]) == (row, row)
    # the server's owner (Nova records the initiator: here the admin)
    assert m["user_id"] == await nova.user_id(demo)
    assert (await _actions(nova, sid))[0]["action"] == "migrate"
    # the filters tell it from a resize; /servers/{id}/migrations lists only
    # in-progress live migrations (Nova's), so not this one
    assert [x["id"] for x in await _list(nova, "2.23", migration_type="migration",
                                          instance_uuid=sid)] == [m["id"]]
    assert await _list(nova, "2.23", migration_type="resize", instance_uuid=sid) == []
    r = await nova.req("GET", f"/servers/{sid}/migrations", version="2.23")
    assert r.status_code == 200 and r.json() == {"migrations": []}

    # a second migrate while it waits: 409 (Nova's message names migrate)
    r = await nova.req("POST", f"/servers/{sid}/action", json={"migrate": None})
    assert f"Cannot 'migrate' instance {sid}" in fault(r, "conflictingRequest", 409)

    await _act(nova, sid, {"confirmResize": None}, demo)
    await nova.wait(sid, "ACTIVE", token=demo)
    (m,) = await _list(nova, "2.23", instance_uuid=sid)
    assert (m["migration_type"], m["status"]) == ("migration", "confirmed")

    # a stopped server migrates and comes back stopped; then a revert
    await _act(nova, sid, {"os-stop": None}, demo)
    await nova.wait(sid, "SHUTOFF", token=demo)
    await _migrate(nova, sid)
    await nova.wait(sid, "VERIFY_RESIZE", token=demo)
    await _act(nova, sid, {"revertResize": None}, demo)
    await nova.wait(sid, "SHUTOFF", token=demo)
    rows = await _list(nova, "2.59", instance_uuid=sid)
    assert [(x["migration_type"], x["status"]) for x in rows] == [
        ("migration", "reverted"), ("migration", "confirmed")]


async def test_migrate_bad_input_and_policy(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    flavor = await nova.flavor(ram=256, vcpus=1, disk=1)
    sid = await _server(nova, demo, flavor)
    host = nova.state.host
    # before 2.56 the body is null; from 2.56 {"host": name or null}
    for body, version in (({"host": host}, "2.55"), ({}, "2.1"), ("x", "2.56"),
                          ({"host": 5}, "2.56"), ({"host": ""}, "2.56"),
                          ({"host": "h" * 256}, "2.56"), ({"other": 1}, "2.56")):
        r = await _migrate(nova, sid, body, version=version, status=400)
        fault(r, "badRequest", 400)
    r = await _migrate(nova, sid, {"host": host}, version="2.56", status=400)
    assert fault(r, "badRequest", 400) == "The target host can't be the same one."
    r = await _migrate(nova, sid, {"host": "no-such-host"}, version="2.56", status=400)
    assert fault(r, "badRequest", 400) == "Compute host no-such-host could not be found."
    fault(await _migrate(nova, sid, token=demo, status=403), "forbidden", 403)
    fault(await _migrate(nova, str(uuid.uuid4()), status=404), "itemNotFound", 404)
    # none of these started anything or left a record
    assert await _list(nova, "2.23", instance_uuid=sid) == []
    # a paused server cannot migrate (ACTIVE and SHUTOFF only)
    await _act(nova, sid, {"pause": None}, demo)
    await nova.wait(sid, "PAUSED", token=demo)
    r = await _migrate(nova, sid, status=409)
    assert "while it is in vm_state paused" in fault(r, "conflictingRequest", 409)
    # a null host from 2.56 lets the scheduler choose, as no body does
    await _act(nova, sid, {"unpause": None}, demo)
    await nova.wait(sid, "ACTIVE", token=demo)
    await _migrate(nova, sid, {"host": None}, version="2.56")
    await nova.wait(sid, "VERIFY_RESIZE", token=demo)


async def test_no_valid_host_records_error(nova: Compute,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a guest cannot be moved (here: the driver is taken as QEMU's, or
    another host is asked for) the attempt is Nova's NoValidHost, and leaves an
    ``error`` record, a fault and a failed ``migrate`` action."""
    demo = nova.cloud.demo_token
    flavor = await nova.flavor(ram=256, vcpus=1, disk=1)
    sid = await _server(nova, demo, flavor)
    monkeypatch.setattr(migrations_svc, "migrates_in_place", lambda st: False)
    r = await _migrate(nova, sid, status=400)
    assert fault(r, "badRequest", 400).startswith("No valid host was found. ")
    srv = await nova.wait(sid, "ACTIVE", token=demo)
    assert srv["OS-EXT-STS:task_state"] is None
    (m,) = await _list(nova, "2.80", instance_uuid=sid)
    assert (m["migration_type"], m["status"], m["source_compute"], m["dest_compute"]) == (
        "migration", "error", nova.state.host, None)
    assert m["user_id"] == await nova.user_id(nova.cloud.admin_token)  # the initiator
    (action, *_) = await _actions(nova, sid)
    assert action["action"] == "migrate"
    r = await nova.req("GET", f"/servers/{sid}/os-instance-actions/{action['request_id']}",
                       version="2.51")
    (event,) = r.json()["instanceAction"]["events"]
    assert (event["event"], event["result"]) == ("conductor_migrate_server", "Error")

    # another (known) host asked for from 2.56: the guest cannot be carried there
    monkeypatch.undo()
    async with nova.state.db.write() as s:
        node = await s.scalar(select(ComputeNode).where(ComputeNode.id == nova.state.node_id))
        assert node is not None
        s.add(ComputeNode(
            uuid=str(uuid.uuid4()), host="other-host", hypervisor_hostname="other-host",
            hypervisor_type=node.hypervisor_type, availability_zone=node.availability_zone,
            disabled=False, vcpus=node.vcpus, memory_mb=node.memory_mb,
            local_gb=node.local_gb, cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
            disk_allocation_ratio=1.0))
    r = await _migrate(nova, sid, {"host": "other-host"}, version="2.56", status=400)
    assert "other-host" in fault(r, "badRequest", 400)
    rows = await _list(nova, "2.59", instance_uuid=sid)
    assert [x["status"] for x in rows] == ["error", "error"]
