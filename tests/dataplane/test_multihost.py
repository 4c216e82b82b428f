"""Networking over two hosts: two real ``onestack up`` processes, each in its own
network namespace standing in for a host, sharing one PostgreSQL database.

    root namespace: bridge 10.77.N.1/24 (the hosts' underlay)
      |-- hA: 10.77.N.2, the network node (DHCP, routers), tunnel_ip 10.77.N.2
      '-- hB: 10.77.N.3, a compute-only host, tunnel_ip 10.77.N.3

Through hA's API: a VXLAN network with a DHCP subnet, one port bound to each host,
and a namespace "VM" plugged into each host's bridge by its port's tap (as QEMU's
tap would be). hB learns hA's tunnel address from its agent row and hA learns
hB's when hB starts; the VM on hB gets its lease from the dnsmasq on hA across
VXLAN, and the two VMs ping each other. Deleting the ports and the network
through the API empties both hosts.

The servers run under ``nsenter --net`` rather than ``ip netns exec``: the latter
also gives them a private mount namespace, where the ``qdhcp-`` namespaces hA
mounts on /run/netns would be invisible to this test and to ``onestack down
--purge-network``. Both processes reach PostgreSQL over its unix socket (a network
namespace does not isolate the file system).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from onestack.core.concurrency import run_blocking, run_command
from onestack.network.app import owner_id
from onestack.network.dataplane import netns as kernel
from onestack.network.dataplane.model import FixedIP, PortState, names
from onestack.network.models import Agent as AgentRow
from onestack.network.models import Task, utcnow
from onestack.network.service.common import L2_AGENT
from tests.api.network.conftest import Net
from tests.conftest import Cloud
from tests.dataplane.helpers import Vm, _owned_objects, must

pytestmark = pytest.mark.slow

PG_SOCKET_DIR = "/var/run/postgresql"
ADMIN_URL = f"postgresql+asyncpg://postgres@/postgres?host={PG_SOCKET_DIR}"
API_PORT = 8780  # the same in both hosts: each listens in its own namespace
NOTHING = {"links": [], "namespaces": [], "tables": []}


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists(os.path.join(PG_SOCKET_DIR, ".s.PGSQL.5432")):
        return f"no PostgreSQL socket in {PG_SOCKET_DIR}"
    if shutil.which("nsenter") is None:
        return "nsenter is not installed"
    return None


async def _admin(statement: str) -> None:
    engine = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with asyncio.timeout(10), engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


@dataclass
class Host:
    name: str  # [network] host
    ns: str  # its network namespace
    address: str  # its underlay (and tunnel) address
    data_dir: Path
    network_node: bool
    proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{API_PORT}"

    @property
    def owner(self) -> str:
        return owner_id(self.data_dir)

    def configure(self, database: str, public_url: str) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "onestack.toml").write_text(
            f'host = "0.0.0.0"\nport = {API_PORT}\ndatabase_url = "{database}"\n'
            f'public_url = "{public_url}"\naccess_log = false\n'
            f'[network]\ndataplane = "linux"\nhost = "{self.name}"\n'
            f'tunnel_ip = "{self.address}"\nnetwork_node = {str(self.network_node).lower()}\n'
            f'external_network = ""\nexternal_bridge = "brx-{self.name[-6:]}"\n'
            # no periodic pass within the test: every change must come by a task
            'external_masquerade = false\nresync_interval = 3600\n'
            '[compute]\ncompute_driver = "fake"\n'
            '[identity]\npassword_time_cost = 1\npassword_memory_cost_kib = 1024\n')

    def onestack(self, *args: str) -> list[str]:
        exe = Path(sys.executable).with_name("onestack")
        return ["nsenter", f"--net=/run/netns/{self.ns}", "--", str(exe), *args,
                "--data-dir", str(self.data_dir)]

    async def start(self) -> None:
        log = self.data_dir.parent / "onestack.log"
        env = {**os.environ, "ONESTACK_LOG_LEVEL": "warning"}
        with log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.onestack("up"), stdout=out, stderr=asyncio.subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"onestack up exited: {log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.url + "/healthcheck")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"onestack up did not become healthy: {log.read_text()[-3000:]}")

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def purge(self) -> str:
        """``onestack down --purge-network`` in this host's namespace."""
        rc, out, err = await run_command(*self.onestack("down", "--purge-network"),
                                         timeout=120)
        return "" if rc == 0 else f"{out}{err}"

    async def owned(self) -> dict[str, object]:
        """This host's kernel objects: links and nft tables in its namespace, and
        the namespaces (qdhcp-, qrouter-) marked as its."""
        return await run_blocking(kernel.run_in_netns, self.ns, _owned_objects, self.owner)


class HostVm(Vm):
    """A namespace VM whose tap is in a host's namespace instead of the root one."""

    def __init__(self, port: PortState, workdir: Path, host: Host) -> None:
        super().__init__(port, workdir)
        self.host = host

    async def create(self) -> HostVm:
        await must("ip", "netns", "add", self.name)
        await must("ip", "-n", self.host.ns, "link", "add", self.tap, "type", "veth",
                   "peer", "name", "eth0", "netns", self.name)
        await must("ip", "-n", self.name, "link", "set", "eth0", "address",
                   self.port.mac_address, "up")
        await must("ip", "-n", self.name, "link", "set", "lo", "up")
        await must("ip", "-n", self.host.ns, "link", "set", self.tap, "up")
        return self

    async def delete(self) -> None:
        await run_command("ip", "-n", self.host.ns, "link", "del", self.tap)
        await run_command("ip", "netns", "del", self.name)


@pytest.fixture
async def database() -> AsyncIterator[str]:
    try:
        await _admin("SELECT 1")
    except (OSError, TimeoutError, sa.exc.SQLAlchemyError) as exc:
        pytest.skip(f"PostgreSQL is not answering on {PG_SOCKET_DIR}: {exc}")
    name = f"onestack_test_{uuid.uuid4().hex[:12]}"
    await _admin(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+asyncpg://postgres@/{name}?host={PG_SOCKET_DIR}"
    finally:
        await _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def hosts(tmp_path: Path) -> AsyncIterator[tuple[Host, Host]]:
    """Two host namespaces on a bridge of the root namespace; afterwards their
    servers are stopped, their data planes purged and every kernel object the
    test made is removed, whatever happened."""
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:6]
    third = random.randrange(1, 255)
    bridge = f"osmh{tag}"
    a = Host(f"hosta-{tag}", f"osmhA-{tag}", f"10.77.{third}.2", tmp_path / "a" / "data", True)
    b = Host(f"hostb-{tag}", f"osmhB-{tag}", f"10.77.{third}.3", tmp_path / "b" / "data",
             False)
    made_ns: list[str] = []
    try:
        # nf_call_iptables off: the root namespace's firewall has no say on the underlay
        await must("ip", "link", "add", bridge, "type", "bridge", "nf_call_iptables", "0",
                   "nf_call_ip6tables", "0")
        await must("ip", "addr", "add", f"10.77.{third}.1/24", "dev", bridge)
        await must("ip", "link", "set", bridge, "up")
        for i, host in enumerate((a, b)):
            await must("ip", "netns", "add", host.ns)
            made_ns.append(host.ns)
            uplink = f"osmh{i}{tag}"
            await must("ip", "link", "add", uplink, "type", "veth", "peer", "name", "eth0",
                       "netns", host.ns)
            await must("ip", "link", "set", uplink, "master", bridge, "up")
            await must("ip", "-n", host.ns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            await must("ip", "-n", host.ns, "link", "set", "eth0", "up")
            await must("ip", "-n", host.ns, "link", "set", "lo", "up")
        yield a, b
    finally:
        problems = []
        for host in (b, a):
            await host.stop()
            if host.ns in made_ns and (host.data_dir / "network").exists():
                error = await host.purge()
                if error:
                    problems.append(f"{host.name}: {error}")
        # whatever a purge missed: namespaces marked as the hosts' (and their dnsmasq)
        for name in kernel.list_namespaces():
            for h in (a, b):
                if await run_blocking(kernel.namespace_owned, name, h.owner):
                    problems.append(f"{h.name}: namespace {name} was left")
                    await run_blocking(kernel.delete_namespace, name)
        for name in made_ns:
            await run_command("ip", "netns", "del", name)  # takes its links with it
        await run_command("ip", "link", "del", bridge)
        assert not problems, problems


@pytest.fixture
async def vms(tmp_path: Path) -> AsyncIterator[Callable[[dict[str, Any], Host],
                                                        Awaitable[HostVm]]]:
    made: list[HostVm] = []

    async def make(port: dict[str, Any], host: Host) -> HostVm:
        state = PortState(id=port["id"], network_id=port["network_id"],
                          mac_address=port["mac_address"],
                          fixed_ips=tuple(FixedIP(f["subnet_id"], f["ip_address"])
                                          for f in port["fixed_ips"]),
                          device_owner=port["device_owner"], device_id=port["device_id"])
        vm = HostVm(state, tmp_path, host)
        made.append(vm)
        return await vm.create()

    try:
        yield make
    finally:
        for vm in made:
            await vm.delete()


async def wait_for(check: Callable[[], Awaitable[bool]], what: str,
                   timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def admin_client(host: Host) -> httpx.AsyncClient:
    lines = (host.data_dir / "secrets" / "passwords").read_text().splitlines()
    password = dict(line.split("=", 1) for line in lines)["admin"]
    auth = {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(host.url + "/identity/v3/auth/tokens", json={"auth": auth})
    assert r.status_code == 201, r.text
    return httpx.AsyncClient(base_url=host.url + "/network/v2.0", timeout=30,
                             headers={"X-Auth-Token": r.headers["X-Subject-Token"]})


async def create(api: httpx.AsyncClient, kind: str, **body: Any) -> dict[str, Any]:
    r = await api.post(f"/{kind}s", json={kind: body})
    assert r.status_code == 201, r.text
    return r.json()[kind]  # type: ignore[no-any-return]


async def fdb_flood(host: Host, vni: int) -> str:
    _, out, _ = await run_command("ip", "netns", "exec", host.ns, "bridge", "fdb", "show",
                                  "dev", f"vxlan-{vni}")
    return out


async def test_two_hosts_share_a_vxlan_network(
        tmp_path: Path, database: str, hosts: tuple[Host, Host],
        vms: Callable[[dict[str, Any], Host], Awaitable[HostVm]]) -> None:
    a, b = hosts
    for host in (a, b):
        host.configure(database, public_url=a.url)  # one catalog: host A's
    await a.start()
    # what an operator copies to another host: the bootstrap's passwords and the
    # other secrets, and the key repositories (tokens issued by A are valid on B)
    for name in ("secrets", "fernet-keys", "credential-keys"):
        shutil.copytree(a.data_dir / name, b.data_dir / name)
    await b.start()
    api = await admin_client(a)
    async with api:
        # both agents report; B only its L2 agent, with its tunnel address
        r = await api.get("/agents")
        agents = {(x["host"], x["agent_type"]): x for x in r.json()["agents"]}
        assert agents[(b.name, "Linux bridge agent")]["configurations"]["tunneling_ip"] \
            == b.address
        assert agents[(a.name, "Linux bridge agent")]["configurations"]["tunneling_ip"] \
            == a.address
        assert (a.name, "DHCP agent") in agents and (b.name, "DHCP agent") not in agents
        assert all(x["alive"] for x in agents.values())

        net = await create(api, "network", name="spread", **{"provider:network_type": "vxlan"})
        vni = net["provider:segmentation_id"]
        sub = await create(api, "subnet", network_id=net["id"], cidr="10.78.0.0/24",
                           ip_version=4, enable_dhcp=True)
        ports = {}
        for host in (a, b):
            ports[host.name] = await create(
                api, "port", network_id=net["id"], device_owner="compute:nova",
                device_id=str(uuid.uuid4()), **{"binding:host_id": host.name})
        pa, pb = ports[a.name], ports[b.name]

        # B converges because the API on A asked it to (a converge:<B> task): its
        # bridge for the network appears before any VM tap could poke it
        async def bridged() -> bool:
            links = (await b.owned())["links"]
            return names.bridge(net["id"]) in [n for n, _ in links]  # type: ignore[attr-defined]

        await wait_for(bridged, "host B to make the network's bridge")
        va, vb = await vms(pa, a), await vms(pb, b)

        async def active() -> bool:
            for p in (pa, pb):
                r = await api.get(f"/ports/{p['id']}")
                if r.json()["port"]["status"] != "ACTIVE":
                    return False
            return True

        await wait_for(active, "both ports ACTIVE (each wired by its own host)")

        # each host floods its VXLAN device to the other (B learnt A from its row at
        # start, A learnt B because B's start asked it to converge)
        async def tunnels() -> bool:
            return (f"00:00:00:00:00:00 dst {b.address}" in await fdb_flood(a, vni)
                    and f"00:00:00:00:00:00 dst {a.address}" in await fdb_flood(b, vni))

        await wait_for(tunnels, "VXLAN flooding between the hosts")
        # DHCP runs on the network node only
        dhcp_ns = f"qdhcp-{net['id']}"
        assert (await a.owned())["namespaces"] == [dhcp_ns]
        assert (await b.owned())["namespaces"] == []

        async def lease(vm: HostVm) -> dict[str, str]:
            for _ in range(20):
                try:
                    return await vm.dhcp()
                except AssertionError:
                    await asyncio.sleep(0.5)
            return await vm.dhcp()

        assert (await lease(va))["ip"] == pa["fixed_ips"][0]["ip_address"]
        assert (await lease(vb))["ip"] == pb["fixed_ips"][0]["ip_address"]  # across VXLAN
        assert await va.reaches(pb["fixed_ips"][0]["ip_address"])
        assert await vb.reaches(pa["fixed_ips"][0]["ip_address"])

        # everything goes when deleted through the API, on both hosts
        for p in (pa, pb):
            assert (await api.delete(f"/ports/{p['id']}")).status_code == 204
        assert (await api.delete(f"/subnets/{sub['id']}")).status_code == 204
        assert (await api.delete(f"/networks/{net['id']}")).status_code == 204

        async def emptied() -> bool:
            left_a, left_b = await a.owned(), await b.owned()
            # the network node keeps its external bridge; nft tables stay while a
            # server runs
            links_a = [name for name, _ in left_a["links"]]  # type: ignore[attr-defined]
            return (links_a == [f"brx-{a.name[-6:]}"] and left_a["namespaces"] == []
                    and left_b["links"] == [] and left_b["namespaces"] == [])

        await wait_for(emptied, "both hosts to remove the network")
    # stopped and purged, nothing of either host is left in its namespace
    for host in (b, a):
        await host.stop()
        assert await host.purge() == ""
        assert await host.owned() == NOTHING


# -- the same rules in-process (fake data plane): which hosts are asked, who peers ------


async def test_writes_ask_every_live_host_and_peers_follow_agent_rows(cloud: Cloud) -> None:
    st = cloud.app.state.runtime.extras["network"]
    now = utcnow()
    async with st.db.write() as s:
        for host, beat, ip in (("peer-live", now, "10.9.0.2"),
                               ("peer-dead", now - timedelta(hours=1), "10.9.0.3"),
                               ("peer-untunneled", now, None)):
            s.add(AgentRow(agent_type=L2_AGENT, binary="neutron-linuxbridge-agent",
                           topic="N/A", host=host, configurations={"tunneling_ip": ip},
                           created_at=beat, started_at=beat, heartbeat_timestamp=beat))
    net = Net(cloud)
    n = await net.network()
    await net.network()  # a second write: still one pending task per host

    async with st.db.read() as s:
        kinds = sorted((await s.scalars(select(Task.kind).where(
            Task.kind.like("converge:peer-%"), Task.state == "pending"))).all())
    assert kinds == ["converge:peer-live", "converge:peer-untunneled"]

    agent = st.agent
    assert (await agent.desired_state()).tunnel_peers == ()  # no tunnel_ip here
    agent.tunnel_ip = "10.9.0.1"
    state = await agent.desired_state()
    assert (state.local_ip, state.tunnel_peers) == ("10.9.0.1", ("10.9.0.2",))

    # a compute-only host: only the ports bound to it, and only their networks
    sub = await net.create("subnet", network_id=n["id"], cidr="10.9.1.0/24", ip_version=4)
    mine = await net.create("port", network_id=n["id"], device_owner="compute:nova",
                            **{"binding:host_id": st.host})
    other = await net.create("port", network_id=n["id"], device_owner="compute:nova",
                             **{"binding:host_id": "peer-live"})
    r = await net.create("router")
    resp = await net.req("PUT", f"/routers/{r['id']}/add_router_interface",
                         json={"subnet_id": sub["id"]})
    assert resp.status_code == 200, resp.text
    agent.network_node = False
    state = await agent.desired_state()
    assert set(state.ports) == {mine["id"]} and set(state.networks) == {n["id"]}
    assert state.routers == {} and state.remote_ports == {}
    agent.network_node = True
    state = await agent.desired_state()
    assert mine["id"] in state.ports and other["id"] not in state.ports
    assert r["id"] in state.routers and len(state.networks) >= 2
