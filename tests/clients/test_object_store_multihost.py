"""Object storage over two hosts: two real ``onestack up`` processes (ports standing
in for hosts) sharing one PostgreSQL database and one 3-replica ring whose four
devices are split two and two, each host serving its own through its object server.

Written through A, read through B; with B killed, A still reads everything and writes
(quorum 2 of 3: a partition with two primaries on B gets A's other device as handoff);
B back, the replicators fill B's devices and take the handoff copies back, so that B
alone then serves every object.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from onestack.object_store.diskfile import FileInfo
from onestack.object_store.ring import Device, Ring
from tests.clients.conftest import Server, free_port, start_server, stop_server

pytestmark = pytest.mark.slow

POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1/postgres"
BIG = os.urandom(300 * 1024)  # more than the object servers' 64 KiB prefetch: streamed


def postgres_url() -> str:
    url = os.environ.get("ONESTACK_TEST_DATABASE_URL", "")
    return url if url.startswith("postgresql") else POSTGRES


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with asyncio.timeout(10), engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards (as tests/conftest.py does)."""
    url = postgres_url()
    try:
        asyncio.run(_admin(url, "SELECT 1"))
    except (OSError, TimeoutError, sa.exc.SQLAlchemyError) as exc:
        pytest.skip(f"PostgreSQL is not answering at {url}: {exc}")
    name = f"onestack_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(url, f"CREATE DATABASE {name}"))
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_admin(url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def onestack(data_dir: Path, *args: str) -> str:
    exe = Path(sys.executable).with_name("onestack")
    proc = subprocess.run([str(exe), *args, "--data-dir", str(data_dir)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def configure(data_dir: Path, port: int, database: str, public_url: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "onestack.toml").write_text(
        f'host = "127.0.0.1"\nport = {port}\ndatabase_url = "{database}"\n'
        f'public_url = "{public_url}"\n[object_store]\nreplication_interval = 1\n'
    )


def copy_to_other_host(src: Path, dst: Path) -> None:
    """What an operator copies: the ring, the secrets (object hash suffix, cluster
    secret, the bootstrap's passwords) and the identity key repositories."""
    shutil.copy(src / "object.ring.json", dst)
    for name in ("secrets", "fernet-keys", "credential-keys"):
        shutil.copytree(src / name, dst / name)


class Cluster:
    """The two hosts' data dirs and the ring they share, as the test sees them."""

    def __init__(self, a: Path, b: Path, ports: tuple[int, int]) -> None:
        self.dirs = {ports[0]: a, ports[1]: b}
        self.port_b = ports[1]
        suffix = (a / "secrets" / "object-hash-suffix").read_text().strip().encode()
        self.ring = Ring.load(a / "object.ring.json", hash_suffix=suffix)
        self.account = ""

    def place(self, obj: str) -> tuple[int, str, list[Device]]:
        partition, primaries = self.ring.get_nodes(self.account, "c", obj)
        return partition, self.ring.object_hash(self.account, "c", obj), primaries

    def on_b(self, obj: str) -> int:
        return sum(d.port == self.port_b for d in self.place(obj)[2])

    def name(self, prefix: str, on_b: int) -> str:
        """The first ``prefix-N`` with ``on_b`` of its three primaries on host B."""
        return next(f"{prefix}-{i}" for i in range(1000) if self.on_b(f"{prefix}-{i}") == on_b)

    def newest(self, device: Device, obj: str) -> str | None:
        """The newest version file of ``obj`` on ``device`` (read only)."""
        partition, obj_hash, _ = self.place(obj)
        root = self.dirs[device.port] / "object-devices" / device.device / "objects"
        hash_dir = root / str(partition) / obj_hash[-3:] / obj_hash
        try:
            names = os.listdir(hash_dir)
        except FileNotFoundError:  # none yet, or removed as we looked
            names = []
        found = [i for i in map(FileInfo.parse, names) if i is not None]
        return max(found).filename if found else None

    def in_place(self, obj: str) -> bool:
        """Every primary holds the same version, and no other device any."""
        _, _, primaries = self.place(obj)
        versions = {self.newest(d, obj) for d in primaries}
        others = [self.newest(d, obj) for d in self.ring.devices if d not in primaries]
        return len(versions) == 1 and None not in versions and others == [None] * len(others)


class Client:
    def __init__(self, server: Server, account: str, token: str) -> None:
        self.http = httpx.Client(base_url=f"{server.url}/object-store/v1/{account}",
                                 headers={"X-Auth-Token": token}, timeout=30)

    def put(self, path: str, data: bytes = b"") -> None:
        r = self.http.put(path, content=data)
        assert r.status_code in (201, 202), r.text

    def get(self, path: str) -> bytes:
        r = self.http.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.content

    def status(self, method: str, path: str) -> int:
        return self.http.request(method, path).status_code


def admin_token(server: Server) -> tuple[str, str]:
    """(token, project id) of the bootstrap admin, from the data dir's passwords."""
    lines = (server.data_dir / "secrets" / "passwords").read_text().splitlines()
    password = dict(line.split("=", 1) for line in lines)["admin"]
    auth = {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}
    r = httpx.post(server.url + "/identity/v3/auth/tokens", json={"auth": auth}, timeout=30)
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]


def wait_until(check: object, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "replication did not converge"
        time.sleep(0.5)


def test_two_hosts_share_a_ring(tmp_path: Path, database: str) -> None:
    port_a, port_b = free_port(), free_port()
    a, b = tmp_path / "a" / "data", tmp_path / "b" / "data"
    url_a = f"http://127.0.0.1:{port_a}"
    for data_dir, port in ((a, port_a), (b, port_b)):
        configure(data_dir, port, database, public_url=url_a)  # one catalog: host A's
    onestack(a, "ring", "create", "--part-power", "6", "--replicas", "3")
    for zone, (port, device) in enumerate(
        ((port_a, "a1"), (port_a, "a2"), (port_b, "b1"), (port_b, "b2")), 1
    ):
        onestack(a, "ring", "add", "--host", "127.0.0.1", "--port", str(port),
                 "--device", device, "--zone", str(zone))
    assert "wrote" in onestack(a, "ring", "rebalance")
    assert "object.ring.json is up to date" in onestack(a, "ring", "show")

    servers: list[Server] = []
    try:
        host_a = start_server(a, port_a)
        servers.append(host_a)
        copy_to_other_host(a, b)
        host_b = start_server(b, port_b)  # the same database, bootstrapped again
        servers.append(host_b)
        assert sorted(os.listdir(a / "object-devices")) == ["a1", "a2"]
        assert sorted(os.listdir(b / "object-devices")) == ["b1", "b2"]

        token, project = admin_token(host_a)
        r = httpx.get(url_a + "/identity/v3/auth/catalog", headers={"X-Auth-Token": token})
        urls = [e["url"] for s in r.json()["catalog"] if s["type"] in ("object-store", "s3")
                for e in s["endpoints"]]
        assert urls and all(u.startswith(url_a + "/object-store") for u in urls), urls

        cluster = Cluster(a, b, (port_a, port_b))
        cluster.account = f"AUTH_{project}"
        via_a = Client(host_a, cluster.account, token)
        via_b = Client(host_b, cluster.account, token)  # B validates A's token: shared keys
        before = {cluster.name("before", n): f"{n} on B".encode() * 50 for n in (1, 2)}
        before[cluster.name("big", 2)] = BIG
        doomed = cluster.name("doomed", 2)
        via_a.put("/c")
        for name, data in {**before, doomed: b"short-lived"}.items():
            via_a.put(f"/c/{name}", data)
        for name, data in before.items():
            assert via_b.get(f"/c/{name}") == data
        listing = via_b.get("/c").decode().split()  # the listing is in the shared database
        assert sorted(listing) == sorted([*before, doomed])

        host_b.proc.kill()  # host B fails
        host_b.proc.wait(timeout=20)
        for name, data in before.items():
            assert via_a.get(f"/c/{name}") == data
        during = {cluster.name("during", n): f"written with B down, {n} on B".encode()
                  for n in (1, 2)}
        for name, data in during.items():
            via_a.put(f"/c/{name}", data)
            assert via_a.get(f"/c/{name}") == data
        assert via_a.status("DELETE", f"/c/{doomed}") == 204
        assert via_a.status("GET", f"/c/{doomed}") == 404
        two_on_b = cluster.name("during", 2)
        (handoff,) = [d for d in cluster.ring.devices if d not in cluster.place(two_on_b)[2]]
        assert handoff.port == port_a and cluster.newest(handoff, two_on_b) is not None

        host_b = start_server(b, port_b)  # B is back: the replicators catch up
        servers.append(host_b)
        everything = {**before, **during}
        wait_until(lambda: all(cluster.in_place(n) for n in [*everything, doomed]))
        assert cluster.newest(handoff, two_on_b) is None  # taken back from the handoff
        for device in cluster.place(doomed)[2]:
            assert (cluster.newest(device, doomed) or "").endswith(".ts")

        assert stop_server(host_a) == 0  # now B alone serves everything from its devices
        for name, data in everything.items():
            body = via_b.get(f"/c/{name}")
            assert hashlib.md5(body).hexdigest() == hashlib.md5(data).hexdigest(), name
        assert via_b.status("GET", f"/c/{doomed}") == 404
        status = json.loads(onestack(b, "status", "--json"))["cloud"]
        assert status["running"] and status["healthy"], status  # B itself, not public_url
    finally:
        for server in servers:
            if server.proc.poll() is None:
                stop_server(server)
