"""Compute over two hosts: two in-process clouds (each its own data dir, its own
``[compute] host`` and fake driver) on one database server (PostgreSQL, or
the MariaDB that ``ONESTACK_TEST_DATABASE_URL`` names), as two ``onestack up``
on two machines would be.

The scheduler places servers on both hosts (an anti-affinity group needs both);
every task on a server runs on the server's host, whichever host's API took the
request: each fake driver holds exactly the guests of its host (a fake driver
asked about a guest it does not have makes one up, so a task run by the wrong
host would show there). Console output of a server on the other host comes
from that host's driver. Once a host stops, its heartbeat stops and after
``service_down_time`` os-services and os-hypervisors show it down, the scheduler
skips it (the fault says why), and a server on it is deleted without it (Nova's
local delete).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from onestack.compute.models import Task
from onestack.core import config
from onestack.core.app import RequestIdMiddleware
from onestack.identity import bootstrap
from onestack.server import create_app
from tests.api.compute.conftest import Compute
from tests.conftest import BASE, Cloud, _server_database

pytestmark = pytest.mark.slow

POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1/postgres"
DOWN_TIME = 3.0  # [compute] service_down_time here, seconds
HOSTS = ("compute-a", "compute-b")


def server_url() -> str:
    """The suite's database server (PostgreSQL or MariaDB), else PostgreSQL: SQLite
    is one machine's file."""
    url = os.environ.get("ONESTACK_TEST_DATABASE_URL", "")
    return url if url.startswith(("postgresql", "mysql")) else POSTGRES


@pytest.fixture
async def server_database() -> AsyncIterator[str]:
    url = server_url()
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with asyncio.timeout(10), engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except (OSError, TimeoutError, sa.exc.SQLAlchemyError) as exc:
        pytest.skip(f"the database server is not answering at {url}: {exc}")
    finally:
        await engine.dispose()
    async for db in _server_database(url):
        yield db


def host_settings(data_dir: Path, database: str, host: str) -> config.Settings:
    return config.load(
        data_dir, environ={}, database_url=database, port=8780, access_log=False,
        identity={"password_time_cost": 1, "password_memory_cost_kib": 1024},
        network={"dataplane": "fake", "host": host},
        compute={"compute_driver": "fake", "host": host, "report_interval": 0.5,
                 "service_down_time": DOWN_TIME},
    )


class Hosts:
    """The running hosts, each stoppable on its own."""

    def __init__(self) -> None:
        self.stacks: dict[str, contextlib.AsyncExitStack] = {}
        self.clouds: dict[str, Cloud] = {}

    async def start(self, settings: config.Settings) -> Compute:
        stack = contextlib.AsyncExitStack()
        root = create_app(settings)
        app = RequestIdMiddleware(root, access_log=False)
        await stack.enter_async_context(root.router.lifespan_context(root))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE))
        creds = bootstrap.load_or_create_credentials(settings.path("secrets", "passwords"))
        cloud = Cloud(client=client, settings=settings, creds=creds, app=root)
        r = await cloud.token("admin", creds.admin_password, project="admin")
        assert r.status_code == 201, r.text
        cloud.admin_token = r.headers["X-Subject-Token"]
        host = settings.compute.host
        self.stacks[host], self.clouds[host] = stack, cloud
        return Compute(cloud)

    async def stop(self, host: str) -> None:
        stack = self.stacks.pop(host, None)
        if stack is not None:
            await stack.aclose()

    async def stop_all(self) -> None:
        for host in list(self.stacks):
            await self.stop(host)


@pytest.fixture
async def two_hosts(tmp_path: Path, server_database: str) -> AsyncIterator[
        tuple[Hosts, Compute, Compute]]:
    hosts = Hosts()
    try:
        a_dir, b_dir = tmp_path / "a" / "data", tmp_path / "b" / "data"
        a = await hosts.start(host_settings(a_dir, server_database, HOSTS[0]))
        # what an operator copies to a joining host: the bootstrap's passwords and
        # the key repositories (a token from one host is valid on the other)
        b_dir.mkdir(parents=True)
        for name in ("secrets", "fernet-keys", "credential-keys"):
            shutil.copytree(a_dir / name, b_dir / name)
        b = await hosts.start(host_settings(b_dir, server_database, HOSTS[1]))
        yield hosts, a, b
    finally:
        await hosts.stop_all()


def guests(nova: Compute) -> set[str]:
    return set(nova.state.driver.guests)


async def on_host(nova: Compute, server_id: str) -> str:
    srv = await nova.wait(server_id, "ACTIVE", "SHUTOFF", "PAUSED", "ERROR", timeout=30)
    assert srv["status"] != "ERROR", srv.get("fault")
    return str(srv["OS-EXT-SRV-ATTR:host"])


async def events_hosts(nova: Compute, server_id: str) -> set[str]:
    r = await nova.req("GET", f"/servers/{server_id}/os-instance-actions", version="2.51")
    assert r.status_code == 200, r.text
    out: set[str] = set()
    for action in r.json()["instanceActions"]:
        r = await nova.req("GET", f"/servers/{server_id}/os-instance-actions/"
                           f"{action['request_id']}", version="2.62")
        assert r.status_code == 200, r.text
        out |= {e["host"] for e in r.json()["instanceAction"]["events"]
                if not e["event"].startswith("conductor_")}
    return out


async def test_two_hosts(two_hosts: tuple[Hosts, Compute, Compute]) -> None:
    hosts, a, b = two_hosts
    by_host = {HOSTS[0]: a, HOSTS[1]: b}

    # both hosts registered: two hypervisors, both compute services up
    r = await a.req("GET", "/os-hypervisors/detail", version="2.53")
    assert r.status_code == 200, r.text
    hyps = {h["hypervisor_hostname"]: h for h in r.json()["hypervisors"]}
    assert sorted(hyps) == sorted(HOSTS)
    assert {h["state"] for h in hyps.values()} == {"up"}
    r = await b.req("GET", "/os-services", params={"binary": "nova-compute"})
    assert {(s["host"], s["state"]) for s in r.json()["services"]} == {
        (HOSTS[0], "up"), (HOSTS[1], "up")}

    image = await a.image()
    r = await a.req("POST", "/os-server-groups", version="2.64", json={
        "server_group": {"name": "spread", "policy": "anti-affinity"}})
    assert r.status_code == 200, r.text
    group = r.json()["server_group"]["id"]
    # the anti-affinity pair through A's API, two more through B's
    ids = [(await a.req("POST", "/servers", version="2.37", json={
        "server": {"name": f"g{i}", "imageRef": image["id"], "flavorRef": "42",
                   "networks": "none"}, "os:scheduler_hints": {"group": group}})
            ).json()["server"]["id"] for i in range(2)]
    ids += [(await b.boot(imageRef=image["id"], name=f"s{i}"))["server"]["id"]
            for i in range(2)]
    placed = {sid: await on_host(a, sid) for sid in ids}
    assert {placed[ids[0]], placed[ids[1]]} == set(HOSTS), placed
    for host, nova in by_host.items():
        assert guests(nova) == {s for s, h in placed.items() if h == host}

    # every action on a server runs on its host, through the other host's API
    for sid in ids[:2]:
        host = placed[sid]
        other = b if host == HOSTS[0] else a
        for action, status in (({"os-stop": None}, "SHUTOFF"), ({"os-start": None}, "ACTIVE"),
                               ({"reboot": {"type": "HARD"}}, "ACTIVE"),
                               ({"pause": None}, "PAUSED"), ({"unpause": None}, "ACTIVE"),
                               ({"suspend": None}, "SUSPENDED"), ({"resume": None}, "ACTIVE")):
            r = await other.req("POST", f"/servers/{sid}/action", json=action)
            assert r.status_code == 202, (action, r.text)
            await other.wait(sid, status, timeout=30)
        # the console comes from the driver of the server's host
        r = await other.req("POST", f"/servers/{sid}/action",
                            json={"os-getConsoleOutput": {"length": 50}})
        assert r.status_code == 200, r.text
        assert "Booting the fake kernel" in r.json()["output"]
        r = await other.req("POST", f"/servers/{sid}/remote-consoles", version="2.6", json={
            "remote_console": {"protocol": "vnc", "type": "novnc"}})
        assert r.status_code == 200, r.text
        assert await events_hosts(other, sid) == {host}
    # an interface attached through A to B's server is plugged by B's driver, and
    # bound to B; detached through A, B's driver unplugs it
    net = await a.network(a.cloud.admin_token)
    on_b = next(s for s in ids[:2] if placed[s] == HOSTS[1])
    r = await a.req("POST", f"/servers/{on_b}/os-interface",
                    json={"interfaceAttachment": {"net_id": net["id"]}})
    assert r.status_code == 200, r.text
    port = r.json()["interfaceAttachment"]["port_id"]
    assert [p.get("port_id") for p in b.state.driver.guests[on_b].spec.ports] == [port]
    [bound] = await a.ports(device_id=on_b)
    assert bound["binding:host_id"] == HOSTS[1]
    r = await a.req("DELETE", f"/servers/{on_b}/os-interface/{port}")
    assert r.status_code == 202, r.text
    async with asyncio.timeout(15):
        while b.state.driver.guests[on_b].spec.ports:
            await asyncio.sleep(0.05)
    for host, nova in by_host.items():
        mine = {s for s, h in placed.items() if h == host}
        assert guests(nova) == mine
        assert all(nova.state.driver.guests[s].power_state == 1 for s in mine)

    # a resize on B's server through A: B's driver resizes it
    r = await a.req("POST", f"/servers/{on_b}/action", json={"resize": {"flavorRef": "84"}})
    assert r.status_code == 202, r.text
    await a.wait(on_b, "VERIFY_RESIZE", timeout=30)
    assert b.state.driver.guests[on_b].spec.memory_mb == 192  # m1.micro
    r = await a.req("POST", f"/servers/{on_b}/action", json={"confirmResize": None})
    assert r.status_code == 204, r.text
    await a.wait(on_b, "ACTIVE", timeout=30)
    assert on_b not in guests(a)

    # a delete through the other host's API: the owning driver destroys the guest
    on_a = next(s for s in ids[:2] if placed[s] == HOSTS[0])
    r = await b.req("DELETE", f"/servers/{on_a}")
    assert r.status_code == 204, r.text
    await b.gone(on_a, timeout=30)
    assert on_a not in guests(a) | guests(b)
    del placed[on_a]

    # shelved (offloaded at once) and unshelved to the other host (2.91): the
    # first host's guest is gone, the second host's driver spawns it
    moved = ids[2]
    src = placed[moved]
    dst = HOSTS[1] if src == HOSTS[0] else HOSTS[0]
    r = await a.req("POST", f"/servers/{moved}/action", json={"shelve": None})
    assert r.status_code == 202, r.text
    await a.wait(moved, "SHELVED_OFFLOADED", timeout=30)
    assert moved not in guests(a) | guests(b)
    r = await a.req("POST", f"/servers/{moved}/action", version="2.91",
                    json={"unshelve": {"host": "no-such-host"}})
    assert r.status_code == 400, r.text
    r = await a.req("POST", f"/servers/{moved}/action", version="2.91",
                    json={"unshelve": {"host": dst}})
    assert r.status_code == 202, r.text
    assert await on_host(a, moved) == dst
    assert moved in guests(by_host[dst]) and moved not in guests(by_host[src])
    placed[moved] = dst

    # B stops: after service_down_time it is down everywhere A looks
    await hosts.stop(HOSTS[1])
    await asyncio.sleep(DOWN_TIME + 1)
    r = await a.req("GET", "/os-services", params={"binary": "nova-compute"})
    assert {(s["host"], s["state"]) for s in r.json()["services"]} == {
        (HOSTS[0], "up"), (HOSTS[1], "down")}
    r = await a.req("GET", "/os-hypervisors/detail", version="2.53")
    assert {h["hypervisor_hostname"]: h["state"] for h in r.json()["hypervisors"]} == {
        HOSTS[0]: "up", HOSTS[1]: "down"}
    # host_status (2.16) of the servers follows: UNKNOWN on the silent host
    r = await a.req("GET", "/servers/detail", version="2.16")
    statuses = {(s["OS-EXT-SRV-ATTR:host"], s["host_status"]) for s in r.json()["servers"]}
    assert (HOSTS[1], "UNKNOWN") in statuses and statuses <= {
        (HOSTS[0], "UP"), (HOSTS[1], "UNKNOWN"), (None, "")}, statuses

    # the scheduler skips B: new servers land on A; the second member of a new
    # anti-affinity group finds no host and its fault says why
    r = await a.req("POST", "/os-server-groups", version="2.64", json={
        "server_group": {"name": "late", "policy": "anti-affinity"}})
    assert r.status_code == 200, r.text
    late_group = r.json()["server_group"]["id"]
    late = []
    for i in range(2):
        r = await a.req("POST", "/servers", version="2.37", json={
            "server": {"name": f"late{i}", "imageRef": image["id"], "flavorRef": "42",
                       "networks": "none"}, "os:scheduler_hints": {"group": late_group}})
        assert r.status_code == 202, r.text
        late.append(r.json()["server"]["id"])
        if i == 0:
            assert await on_host(a, late[0]) == HOSTS[0]
    srv = await a.wait(late[1], "ERROR", timeout=30)
    assert f"ComputeFilter removed {HOSTS[1]} (down: no heartbeat" in srv["fault"]["message"]

    # B's console cannot be read while it is down: 409 naming it
    r = await a.req("POST", f"/servers/{on_b}/action",
                    json={"os-getConsoleOutput": {"length": 5}})
    assert r.status_code == 409, r.text
    assert HOSTS[1] in r.json()["conflictingRequest"]["message"]

    # a server on the down host is deleted all the same (Nova's local delete)
    r = await a.req("DELETE", f"/servers/{on_b}")
    assert r.status_code == 204, r.text
    await a.gone(on_b, timeout=30)
    r = await a.req("GET", "/os-hypervisors/detail", version="2.53")
    used = {h["hypervisor_hostname"]: h["running_vms"] for h in r.json()["hypervisors"]}
    assert used[HOSTS[1]] == sum(1 for h in placed.values() if h == HOSTS[1]) - 1
    assert on_b in guests(b)  # B's guest is still there: B was not asked

    # B back: it destroys the guest deleted meanwhile, is up, and takes servers again
    b = await hosts.start(b.cloud.settings)
    t = Task.__table__
    async with asyncio.timeout(15):
        while True:
            async with a.state.db.read() as s:
                reap = (await s.execute(sa.select(t.c.kind, t.c.state).where(
                    t.c.payload["uuid"].as_string() == on_b,
                    t.c.kind.like("reap%")))).all()
            if reap and reap[0][1] == "succeeded":
                break
            await asyncio.sleep(0.1)
    assert reap == [(f"reap@{HOSTS[1]}", "succeeded")]
    r = await a.req("GET", "/os-services", params={"binary": "nova-compute"})
    assert {s["state"] for s in r.json()["services"]} == {"up"}
    r = await a.req("POST", "/servers", version="2.37", json={
        "server": {"name": "late2", "imageRef": image["id"], "flavorRef": "42",
                   "networks": "none"}, "os:scheduler_hints": {"group": late_group}})
    assert r.status_code == 202, r.text
    back = r.json()["server"]["id"]
    assert await on_host(a, back) == HOSTS[1]
    assert back in guests(b)
