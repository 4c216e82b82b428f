"""``/os-migrations`` and ``/servers/{id}/migrations`` with the fake driver: the
records a resize leaves (statuses along the task, confirmed, reverted, error),
the fields and filters per microversion, paging, and the policies (a project's
manager sees its own project's, without hosts; members and readers none)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from onestack.compute.models import Flavor, Migration
from tests.api.compute.conftest import Compute, fault

BASE = {"id", "instance_uuid", "status", "source_compute", "dest_compute", "source_node",
        "dest_node", "dest_host", "old_instance_type_id", "new_instance_type_id",
        "created_at", "updated_at"}


async def _act(nova: Compute, sid: str, body: dict[str, Any], token: str | None = None
               ) -> None:
    r = await nova.req("POST", f"/servers/{sid}/action", token, json=body)
    assert r.status_code in (202, 204), r.text


async def _server(nova: Compute, token: str, flavor: dict[str, Any]) -> str:
    sid: str = (await nova.boot(token, imageRef=(await nova.image())["id"],
                                flavorRef=flavor["id"]))["server"]["id"]
    await nova.wait(sid, "ACTIVE", token=token)
    return sid


async def _resize(nova: Compute, sid: str, flavor: dict[str, Any], token: str) -> None:
    await _act(nova, sid, {"resize": {"flavorRef": flavor["id"]}}, token)
    await nova.wait(sid, "VERIFY_RESIZE", token=token)


async def _list(nova: Compute, version: str = "2.1", token: str | None = None,
                **params: str) -> list[dict[str, Any]]:
    r = await nova.req("GET", "/os-migrations", token, version=version, params=params)
    assert r.status_code == 200, r.text
    return r.json()["migrations"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def statuses_in_driver(nova: Compute, sid: str) -> Iterator[list[str]]:
    """The server's migration record's status each time the fake driver resizes."""
    seen: list[str] = []
    driver = nova.state.driver
    real = driver.resize

    async def watching(spec: Any) -> Any:
        async with nova.state.db.read() as s:
            seen.append(await s.scalar(select(Migration.status).where(
                Migration.instance_uuid == sid)))
        return await real(spec)

    driver.resize = watching  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del driver.resize


async def _row_id(nova: Compute, flavorid: str) -> int:
    async with nova.state.db.read() as s:
        ident = await s.scalar(select(Flavor.id).where(Flavor.flavorid == flavorid))
    assert ident is not None
    return int(ident)


async def test_resize_records_and_fields_per_microversion(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    small = await nova.flavor(ram=256, vcpus=1, disk=1)
    big = await nova.flavor(ram=512, vcpus=2, disk=2)
    sid = await _server(nova, demo, small)
    assert [m for m in await _list(nova) if m["instance_uuid"] == sid] == []

    # the status while the driver works, and right after: migrating, post-migrating
    with statuses_in_driver(nova, sid) as seen:
        await _resize(nova, sid, big, demo)
    assert seen == ["migrating"]

    (m,) = [m for m in await _list(nova) if m["instance_uuid"] == sid]
    assert set(m) == BASE  # 2.1: no migration_type, uuid, user or project
    host = nova.state.host
    assert m["status"] == "finished"
    assert (m["source_compute"], m["dest_compute"]) == (host, host)
    assert m["source_node"] == m["dest_node"] and m["source_node"]
    assert (m["old_instance_type_id"], m["new_instance_type_id"]) == (
        await _row_id(nova, small["id"]), await _row_id(nova, big["id"]))
    datetime.fromisoformat(m["created_at"])
    (m23,) = await _list(nova, "2.23", instance_uuid=sid)
    assert set(m23) == BASE | {"migration_type"} and m23["migration_type"] == "resize"
    (m59,) = await _list(nova, "2.59", instance_uuid=sid)
    assert set(m59) == BASE | {"migration_type", "uuid"}
    (m80,) = await _list(nova, "2.80", instance_uuid=sid)
    assert set(m80) == BASE | {"migration_type", "uuid", "user_id", "project_id"}
    assert m80["user_id"] == await nova.user_id(demo)
    r = await nova.req("GET", f"/servers/{sid}", demo)
    assert m80["project_id"] == r.json()["server"]["tenant_id"]

    # confirm: confirmed; a second resize reverted: reverted, listed first from 2.59
    await _act(nova, sid, {"confirmResize": None}, demo)
    await nova.wait(sid, "ACTIVE", token=demo)
    mid = await nova.flavor(ram=384, vcpus=1, disk=2)
    await _resize(nova, sid, mid, demo)
    await _act(nova, sid, {"revertResize": None}, demo)
    await nova.wait(sid, "ACTIVE", token=demo)
    rows = await _list(nova, "2.59", instance_uuid=sid)
    assert [m["status"] for m in rows] == ["reverted", "confirmed"]
    assert (rows[0]["old_instance_type_id"], rows[0]["new_instance_type_id"]) == (
        await _row_id(nova, big["id"]), await _row_id(nova, mid["id"]))
    assert [m["status"] for m in await _list(nova, instance_uuid=sid)] == [
        "confirmed", "reverted"]  # before 2.59: the order they were made in


async def test_resize_without_room_records_error(nova: Compute) -> None:
    from onestack.compute.service import scheduler
    demo = nova.cloud.demo_token
    small = await nova.flavor(ram=256, vcpus=1, disk=1)
    huge = await nova.flavor(ram=256, vcpus=4, disk=1)
    sid = await _server(nova, demo, small)
    await scheduler.set_inventory(nova.state, nova.state.node_id, vcpus=2,
                                  cpu_allocation_ratio=1.0)
    await _act(nova, sid, {"resize": {"flavorRef": huge["id"]}}, demo)
    await nova.wait(sid, "ACTIVE", token=demo)
    (m,) = await _list(nova, "2.59", instance_uuid=sid)
    assert (m["status"], m["migration_type"]) == ("error", "resize")


async def test_filters_and_paging(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    small = await nova.flavor(ram=256, vcpus=1, disk=1)
    big = await nova.flavor(ram=512, vcpus=2, disk=2)
    a, b = await _server(nova, demo, small), await _server(nova, demo, small)
    await _resize(nova, a, big, demo)
    await _resize(nova, b, big, demo)
    # MariaDB keeps whole seconds (as Nova's schema does): confirm b in a
    # later second than a's last change, so changes-since can tell them apart
    await asyncio.sleep(1.05)
    await _act(nova, b, {"confirmResize": None}, demo)
    await nova.wait(b, "ACTIVE", token=demo)
    host = nova.state.host
    mine = {a, b}

    def ids(rows: list[dict[str, Any]]) -> set[str]:
        return {m["instance_uuid"] for m in rows} & mine

    assert ids(await _list(nova, status="finished")) == {a}
    assert ids(await _list(nova, status="confirmed")) == {b}
    assert ids(await _list(nova, instance_uuid=b)) == {b}
    assert ids(await _list(nova, host=host)) == mine
    assert ids(await _list(nova, host="elsewhere")) == set()
    assert ids(await _list(nova, source_compute=host)) == mine
    assert ids(await _list(nova, "2.23", migration_type="resize")) == mine
    assert ids(await _list(nova, "2.23", migration_type="live-migration")) == set()
    assert ids(await _list(nova, hidden="0")) == mine
    assert ids(await _list(nova, hidden="1")) == set()
    demo_user = await nova.user_id(demo)
    assert ids(await _list(nova, "2.80", user_id=demo_user)) == mine
    assert ids(await _list(nova, "2.80", user_id="someone-else")) == set()

    # changes-since from 2.59, changes-before from 2.66 (ignored before)
    rows = {m["instance_uuid"]: m for m in await _list(nova, "2.59") if m["instance_uuid"] in mine}
    b_time = datetime.fromisoformat(rows[b]["updated_at"])
    since = (b_time - timedelta(microseconds=1)).isoformat()
    assert ids(await _list(nova, "2.59", **{"changes-since": since})) == {b}
    assert ids(await _list(nova, "2.58", **{"changes-since": since})) == mine
    assert ids(await _list(nova, "2.66", **{"changes-before": since})) == {a}
    assert ids(await _list(nova, "2.65", **{"changes-before": since})) == mine
    r = await nova.req("GET", "/os-migrations", version="2.66", params={
        "changes-since": since, "changes-before": "2000-01-01T00:00:00"})
    assert fault(r, "badRequest", 400) == (
        "The value of changes-since must be less than or equal to changes-before.")
    r = await nova.req("GET", "/os-migrations", version="2.59",
                       params={"changes-since": "yesterday"})
    fault(r, "badRequest", 400)

    # paging (2.59): newest first, a next link while pages are full
    r = await nova.req("GET", "/os-migrations", version="2.59", params={"limit": "1"})
    body = r.json()
    (first,) = body["migrations"]
    (link,) = body["migrations_links"]
    assert link["rel"] == "next" and f"marker={first['uuid']}" in link["href"]
    assert "/v2.1/os-migrations?" in link["href"]
    r = await nova.req("GET", "/os-migrations", version="2.59",
                       params={"limit": "1", "marker": first["uuid"]})
    (second,) = r.json()["migrations"]
    every = await _list(nova, "2.59")
    assert [first["uuid"], second["uuid"]] == [m["uuid"] for m in every[:2]]
    assert [m["id"] for m in every] == sorted((m["id"] for m in every), reverse=True)
    r = await nova.req("GET", "/os-migrations", version="2.59", params={"marker": "nope"})
    assert fault(r, "badRequest", 400) == "Marker nope could not be found."
    r = await nova.req("GET", "/os-migrations", version="2.59", params={"limit": "-1"})
    fault(r, "badRequest", 400)
    r = await nova.req("GET", "/os-migrations", version="2.58", params={"limit": "1"})
    assert len(r.json()["migrations"]) >= 2 and "migrations_links" not in r.json()


async def test_policies(nova: Compute) -> None:
    small = await nova.flavor(ram=256, vcpus=1, disk=1)
    big = await nova.flavor(ram=512, vcpus=2, disk=2)
    project, _uid, manager = await nova.project_user("manager")
    sid = await _server(nova, manager, small)  # a manager is a member too
    await _resize(nova, sid, big, manager)
    other = await _server(nova, nova.cloud.demo_token, small)
    await _resize(nova, other, big, nova.cloud.demo_token)

    # members and readers: no listing at all
    _p, _u, reader = await nova.project_user("reader")
    for token in (nova.cloud.demo_token, reader):
        r = await nova.req("GET", "/os-migrations", token)
        assert fault(r, "forbidden", 403) == (
            "Policy doesn't allow os_compute_api:os-migrations:index to be performed.")
    # a manager: their own project's, asked for by project_id, without the hosts
    r = await nova.req("GET", "/os-migrations", manager)
    assert fault(r, "forbidden", 403) == ("Policy doesn't allow "
                                          "os_compute_api:os-migrations:index:all_projects "
                                          "to be performed.")
    r = await nova.req("GET", "/os-migrations", manager, params={"project_id": "another"})
    fault(r, "forbidden", 403)
    rows = await _list(nova, "2.80", manager, project_id=project)
    assert [m["instance_uuid"] for m in rows] == [sid]
    assert all(rows[0][k] is None for k in ("source_compute", "dest_compute", "source_node",
                                            "dest_node", "dest_host"))
    # an admin: every project's, with the hosts
    rows = await _list(nova, "2.80")
    assert {sid, other} <= {m["instance_uuid"] for m in rows}
    assert all(m["source_compute"] == nova.state.host for m in rows)


async def test_server_migrations(nova: Compute) -> None:
    small = await nova.flavor(ram=256, vcpus=1, disk=1)
    big = await nova.flavor(ram=512, vcpus=2, disk=2)
    _project, _uid, manager = await nova.project_user("manager")
    sid = await _server(nova, manager, small)
    await _resize(nova, sid, big, manager)
    (m,) = await _list(nova, instance_uuid=sid)

    # before 2.23 the resource does not exist
    r = await nova.req("GET", f"/servers/{sid}/migrations", version="2.22")
    fault(r, "itemNotFound", 404)
    # only in-progress live migrations are listed: none here
    for token in (None, manager):
        r = await nova.req("GET", f"/servers/{sid}/migrations", token, version="2.23")
        assert r.status_code == 200, r.text
        assert r.json() == {"migrations": []}
    r = await nova.req("GET", f"/servers/{sid}/migrations/{m['id']}", version="2.23")
    assert fault(r, "itemNotFound", 404) == (
        f"Migration {m['id']} for server {sid} is not live-migration.")
    r = await nova.req("GET", f"/servers/{sid}/migrations/999999", version="2.23")
    fault(r, "itemNotFound", 404)
    r = await nova.req("GET", "/servers/00000000-0000-4000-8000-000000000000/migrations",
                       version="2.23")
    fault(r, "itemNotFound", 404)
    # a member of another project may not, nor one of the server's own project
    _p, _u, member = await nova.project_user("member")
    r = await nova.req("GET", f"/servers/{sid}/migrations", nova.cloud.demo_token,
                       version="2.23")
    fault(r, "forbidden", 403)
    mine = await _server(nova, member, small)
    r = await nova.req("GET", f"/servers/{mine}/migrations", member, version="2.23")
    assert fault(r, "forbidden", 403) == (
        "Policy doesn't allow os_compute_api:servers:migrations:index to be performed.")
