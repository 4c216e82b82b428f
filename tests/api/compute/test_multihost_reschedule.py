"""A build handed to a host that then goes down is rescheduled, as Nova
reschedules a build to an alternate host: the two in-process hosts of
test_multihost.py on one database server; host B stops just after the scheduler
(on A) chose it. Once B is down (no heartbeat for ``service_down_time``) A takes
its builds over: a build B never started (pending) is scheduled again without B
and becomes ACTIVE on A; one that does not fit on A goes to ERROR with a fault
naming B; a build B had begun (claimed, its lease run out: B died while running
it) is rescheduled too, and a ``reap@B`` task destroys whatever B left of it when
B is back. B's claims are given back, and B, back, builds none of them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from onestack.compute.models import ComputeNode, Instance, Service, Task
from onestack.compute.service import scheduler
from tests.api.compute.conftest import Compute
from tests.api.compute.test_multihost import (  # noqa: F401  (fixtures)
    DOWN_TIME,
    HOSTS,
    Hosts,
    guests,
    server_database,
    two_hosts,
)

pytestmark = pytest.mark.slow

A, B = HOSTS


async def tasks_of(nova: Compute, server_id: str) -> list[tuple[str, str]]:
    t = Task.__table__
    async with nova.state.db.read() as s:
        return [(k, st) for k, st in (await s.execute(
            sa.select(t.c.kind, t.c.state).where(
                t.c.payload["uuid"].as_string() == server_id)
            .order_by(t.c.created_at))).all()]


async def wait_routed(nova: Compute, server_id: str, kind: str) -> None:
    t = Task.__table__
    async with asyncio.timeout(10):
        while True:
            async with nova.state.db.read() as s:
                got = await s.scalar(sa.select(t.c.kind).where(t.c.id == server_id))
            if got == kind:
                return
            await asyncio.sleep(0.02)


async def test_builds_of_a_host_that_went_down(
        two_hosts: tuple[Hosts, Compute, Compute]) -> None:  # noqa: F811
    hosts, a, b = two_hosts
    # A small (1000 MiB), B large: the scheduler prefers B (most free RAM)
    await scheduler.set_inventory(a.state, a.state.node_id, memory_mb=1000,
                                  ram_allocation_ratio=1.0)
    big = await a.flavor(ram=4096)
    image = await a.image()

    # B stops (heartbeat and runner gone) but counts as up for DOWN_TIME: the
    # builds asked of A now are scheduled to B and handed to it
    await hosts.stop(B)

    async def boot_on_b(**server: str) -> str:
        # B's last heartbeat, as if it stopped just now (on a slow machine too)
        async with a.state.db.write() as s:
            await s.execute(sa.update(Service).where(Service.host == B).values(
                updated_at=datetime.now(UTC)))
        sid: str = (await a.boot(imageRef=image["id"], **server))["server"]["id"]
        await wait_routed(a, sid, f"build@{B}")
        return sid

    fits = await boot_on_b(name="fits")
    too_big = await boot_on_b(name="too-big", flavorRef=big["id"])
    begun = await boot_on_b(name="begun")
    # B had claimed `begun` when it died (its worker gone, the lease run out)
    t = Task.__table__
    async with a.state.db.write() as s:
        await s.execute(sa.update(t).where(t.c.id == begun).values(
            state="running", owner="compute-b:dead", attempts=1,
            lease_until=datetime.now(UTC) - timedelta(hours=1)))
    async with a.state.db.read() as s:
        assert {i.uuid: i.host for i in await s.scalars(sa.select(Instance).where(
            Instance.uuid.in_((fits, too_big, begun))))} == {
            fits: B, too_big: B, begun: B}
        used_b = await s.scalar(sa.select(ComputeNode.memory_mb_used).where(
            ComputeNode.host == B))
    assert used_b == 128 + 4096 + 128  # B holds the three claims

    # once B is down, A reschedules: ACTIVE on A (within a bounded time) ...
    srv = await a.wait(fits, "ACTIVE", "ERROR", timeout=DOWN_TIME + 15)
    assert srv["status"] == "ACTIVE", srv.get("fault")
    assert srv["OS-EXT-SRV-ATTR:host"] == A
    srv = await a.wait(begun, "ACTIVE", "ERROR", timeout=15)
    assert (srv["status"], srv["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", A), srv.get("fault")
    assert {fits, begun} <= guests(a)
    # ... or ERROR when nothing else fits, the fault naming the down host
    srv = await a.wait(too_big, "ERROR", timeout=15)
    message = srv["fault"]["message"]
    assert message.startswith(f"Host {B} went down before building the server"), message
    assert f"ResourceFilter removed {A} (MEMORY_MB: 4096 requested" in message, message
    assert srv["fault"]["details"].startswith(
        f"Host {B} went down before building the server (no heartbeat for "), srv["fault"]
    assert srv["OS-EXT-SRV-ATTR:host"] is None
    # B's claims are given back; nothing is left routed to B but the reap of the
    # build it had begun
    async with a.state.db.read() as s:
        used = dict((await s.execute(sa.select(ComputeNode.host,
                                               ComputeNode.memory_mb_used))).tuples().all())
    assert used == {A: 2 * 128, B: 0}
    assert await tasks_of(a, fits) == [("build", "succeeded")]
    assert await tasks_of(a, too_big) == [("build", "succeeded")]
    assert await tasks_of(a, begun) == [("build", "succeeded"), (f"reap@{B}", "pending")]

    # B back: it builds none of them; it destroys what its begun build left
    b = await hosts.start(b.cloud.settings)
    async with asyncio.timeout(15):
        while (await tasks_of(a, begun))[-1] != (f"reap@{B}", "succeeded"):
            await asyncio.sleep(0.1)
    async with a.state.db.read() as s:
        assert await s.scalar(sa.select(t.c.result).where(
            t.c.kind == f"reap@{B}", t.c.payload["uuid"].as_string() == begun)) == {
            "destroyed": True}  # not skipped: the server is on A now
    await asyncio.sleep(1.5)  # a few of B's polls
    assert not guests(b) & {fits, too_big, begun}
    for sid in (fits, begun):
        srv = await a.wait(sid, "ACTIVE", timeout=5)
        assert srv["OS-EXT-SRV-ATTR:host"] == A
    # and B takes new servers again (most free RAM)
    late = (await a.boot(imageRef=image["id"], name="late"))["server"]["id"]
    srv = await a.wait(late, "ACTIVE", "ERROR", timeout=30)
    assert (srv["status"], srv["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", B), srv.get("fault")
