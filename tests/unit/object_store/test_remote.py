"""A ring over three hosts: this one (its disks through ``LocalBackend``) and two
object servers reached over HTTP (ASGI apps in this process, and in one test a
real uvicorn process on a socket)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from objstore_cluster import MiB, body

from onestack.core.types import ASGIApp
from onestack.object_store import (
    Device,
    DiskFileManager,
    HttpBackend,
    LocalBackend,
    ObjectReader,
    ObjectWriter,
    Replicator,
    ReplicaWriter,
    Ring,
    RingBuilder,
    RoutingBackend,
    Timestamp,
    build_object_server,
)
from onestack.object_store.errors import (
    DeviceUnavailable,
    DiskFileCorrupt,
    EtagMismatch,
    ObjectDeleted,
    ObjectNotFound,
    QuorumNotMet,
)
from onestack.object_store.objectserver import COMMIT_FRAME, DATA_FRAME, frame_header
from onestack.object_store.remote import PREFETCH

SECRET = "cluster-secret-for-tests"
DATA = os.urandom(3 * PREFETCH + 12345)  # read in two requests: prefetch, then the rest
ETAG = hashlib.md5(DATA).hexdigest()
SMALL = b"small object, read with the prefetch"
META = {"Content-Type": "application/x-test", "X-Object-Meta-Who": "Zoë ☃"}


def free_port() -> int:
    """A port nothing listens on (a host that is down, until something binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def files(root: Path) -> list[str]:
    """Every file under a host's devices root: objects, temp files, anything."""
    return sorted(str(Path(d, f).relative_to(root)) for d, _, names in os.walk(root) for f in names)


class Network(httpx.AsyncBaseTransport):
    """Object servers by (host, port) as ASGI apps in this process; every other address
    goes to the real network, where nothing listens on these tests' ports."""

    def __init__(self) -> None:
        self.apps: dict[tuple[str, int], httpx.ASGITransport] = {}
        self.real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        app = self.apps.get((request.url.host, request.url.port or 80))
        return await (app or self.real).handle_async_request(request)

    async def aclose(self) -> None:
        await self.real.aclose()


@dataclass
class Host:
    address: tuple[str, int]
    root: Path
    device: Device
    app: ASGIApp

    def manager(self) -> DiskFileManager:
        return LocalBackend(self.root).manager(self.device)


@dataclass
class Hosts:
    ring: Ring
    here: Host
    others: list[Host]
    network: Network
    http: HttpBackend
    routing: RoutingBackend
    writer: ObjectWriter
    reader: ObjectReader

    @property
    def all(self) -> list[Host]:
        return [self.here, *self.others]

    def where(self, obj: str) -> tuple[int, str]:
        return self.ring.partition("AUTH_t", "c", obj), self.ring.object_hash("AUTH_t", "c", obj)

    def versions(self, host: Host, obj: str) -> list[str]:
        hash_dir = host.manager().hash_dir(*self.where(obj))
        return sorted(p.name for p in hash_dir.iterdir()) if hash_dir.is_dir() else []

    def down(self, host: Host) -> None:
        del self.network.apps[host.address]

    def up(self, host: Host) -> None:
        self.network.apps[host.address] = httpx.ASGITransport(app=host.app)

    def break_device(self, host: Host) -> None:
        path = host.root / host.device.device
        path.rename(host.root / "away")
        path.write_bytes(b"not a directory")

    def repair_device(self, host: Host) -> None:
        path = host.root / host.device.device
        path.unlink()
        (host.root / "away").rename(path)

    async def read(self, obj: str) -> bytes:
        async with await self.reader.open("AUTH_t", "c", obj) as replica:
            return b"".join([chunk async for chunk in replica.iter()])


def make_hosts(
    tmp_path: Path, kinds: Mapping[str, type[LocalBackend]] | None = None
) -> tuple[Ring, list[Host]]:
    """Three hosts of one device each (``sda`` here, ``sdb`` and ``sdc`` remote)."""
    builder = RingBuilder(4)
    specs = []
    for zone, name in enumerate(("sda", "sdb", "sdc"), 1):
        address = ("127.0.0.1", free_port())
        root = tmp_path / f"host-{name}"
        (root / name).mkdir(parents=True)
        device = builder.add_device(host=address[0], port=address[1], device=name, zone=zone)
        specs.append((address, root, device))
    builder.rebalance()
    ring = builder.get_ring(hash_prefix=b"p", hash_suffix=b"s")
    hosts = []
    for address, root, device in specs:
        backend = (kinds or {}).get(device.device, LocalBackend)(root)
        hosts.append(Host(address, root, device, build_object_server(backend, SECRET)))
    return ring, hosts


@pytest.fixture
async def hosts(tmp_path: Path) -> AsyncIterator[Hosts]:
    async with _hosts(tmp_path) as made:
        yield made


class _hosts:
    """Async context: the three hosts, seen from the first."""

    def __init__(self, tmp_path: Path, kinds: Mapping[str, type[LocalBackend]] | None = None):
        self.ring, self.all = make_hosts(tmp_path, kinds)

    async def __aenter__(self) -> Hosts:
        here, *others = self.all
        network = Network()
        http = HttpBackend(SECRET, transport=network)
        routing = RoutingBackend(LocalBackend(here.root), http, [here.address])
        self.made = Hosts(
            self.ring,
            here,
            others,
            network,
            http,
            routing,
            ObjectWriter(self.ring, routing, block_size=64 * 1024),
            ObjectReader(self.ring, routing),
        )
        for host in others:
            self.made.up(host)
        return self.made

    async def __aexit__(self, *exc: object) -> None:
        await self.made.routing.aclose()


# -- the data path ----------------------------------------------------------------------------


async def test_quorum_put_read_and_delete_across_hosts(hosts: Hosts) -> None:
    result = await hosts.writer.put("AUTH_t", "c", "o", body(DATA), META)
    assert (result.etag, result.size) == (ETAG, len(DATA))
    assert {d.device for d in result.devices} == {"sda", "sdb", "sdc"}
    for host in hosts.all:
        assert hosts.versions(host, "o") == [f"{result.timestamp.normal}.data"]
        assert [f for f in files(host.root) if "/tmp/" in f] == []
    assert hosts.routing.is_local(hosts.here.device)
    assert not any(hosts.routing.is_local(h.device) for h in hosts.others)
    assert await hosts.read("o") == DATA
    head = await hosts.reader.head("AUTH_t", "c", "o")
    assert head == META | {
        "ETag": ETAG,
        "Content-Length": str(len(DATA)),
        "X-Timestamp": result.timestamp.normal,
        "name": "/AUTH_t/c/o",
    }

    ts = await hosts.writer.delete("AUTH_t", "c", "o")
    for host in hosts.all:
        assert hosts.versions(host, "o") == [f"{ts.normal}.ts"]
    with pytest.raises(ObjectDeleted) as deleted:
        await hosts.read("o")
    assert deleted.value.timestamp == ts


async def test_remote_replicas_read_like_local_ones(hosts: Hosts) -> None:
    await hosts.writer.put("AUTH_t", "c", "o", body(DATA), META)
    await hosts.writer.put("AUTH_t", "c", "small", body(SMALL), {})
    remote = hosts.others[0]
    for obj, data in (("o", DATA), ("small", SMALL)):
        local = await LocalBackend(remote.root).open_reader(remote.device, *hosts.where(obj))
        async with await hosts.routing.open_reader(remote.device, *hosts.where(obj)) as replica:
            assert (replica.metadata, replica.timestamp, replica.size, replica.device) == (
                local.metadata, local.timestamp, local.size, remote.device
            )  # fmt: skip
            spans = [(0, None), (0, 10), (PREFETCH - 5, 10), (PREFETCH, None), (7, 2 * PREFETCH)]
            spans += [(len(data) - 1, 5), (len(data) + 5, 3), (3, 0)]
            for offset, length in spans:
                got = b"".join([c async for c in replica.iter(offset, length)])
                end = len(data) if length is None else offset + length
                assert got == data[offset:end], (obj, offset, length)
            with pytest.raises(ValueError):
                await anext(replica.iter(-1))
        await local.close()
        url = hosts.http.url(remote.device, *hosts.where(obj))
        head = await hosts.http.request(remote.device, "HEAD", url)
        assert (head.status_code, head.headers["X-Backend-Size"]) == (200, str(len(data)))
        assert json.loads(head.headers["X-Backend-Metadata"]) == local.metadata


async def test_a_read_never_mixes_two_versions(hosts: Hosts) -> None:
    await hosts.writer.put("AUTH_t", "c", "o", body(DATA), {})
    await hosts.writer.put("AUTH_t", "c", "small", body(SMALL), {})
    b = hosts.others[0]
    big = await hosts.routing.open_reader(b.device, *hosts.where("o"))
    small = await hosts.routing.open_reader(b.device, *hosts.where("small"))
    await hosts.writer.put("AUTH_t", "c", "o", body(DATA[::-1]), {})
    await hosts.writer.put("AUTH_t", "c", "small", body(SMALL[::-1]), {})
    chunks = big.iter()
    with pytest.raises(DeviceUnavailable, match="409"):
        await anext(chunks)  # fails before the prefetched start goes out
    assert b"".join([c async for c in big.iter(0, 100)]) == DATA[:100]
    assert b"".join([c async for c in small.iter()]) == SMALL  # read whole at open
    assert await hosts.read("o") == DATA[::-1]


async def test_replication_calls_answer_as_the_local_backend(hosts: Hosts) -> None:
    for i in range(12):
        await hosts.writer.put("AUTH_t", "c", f"o{i}", body(SMALL), {})
    await hosts.writer.delete("AUTH_t", "c", "o3")
    remote = hosts.others[1]
    local, http = LocalBackend(remote.root), hosts.routing
    partitions = await http.partitions(remote.device)
    assert partitions == await local.partitions(remote.device) and partitions
    for part in partitions:
        digests = await http.suffix_hashes(remote.device, part)
        assert digests == await local.suffix_hashes(remote.device, part)
        assert await http.hashes(remote.device, part) == await local.hashes(remote.device, part)
        some = set(list(digests)[:1])
        assert await http.hashes(remote.device, part, some) == await local.hashes(
            remote.device, part, some
        )
    part, obj_hash = hosts.where("o5")
    (info,) = (await http.hashes(remote.device, part, {obj_hash[-3:]})).values()
    await http.remove(remote.device, part, obj_hash, info)
    assert hosts.versions(remote, "o5") == []
    part, _ = hosts.where("o3")
    later = Timestamp.now()
    reclaimed = await http.suffix_hashes(remote.device, part, reclaim_before=later)
    assert hosts.versions(remote, "o3") == []  # the tombstone is gone
    assert reclaimed == await local.suffix_hashes(remote.device, part)


# -- failures -------------------------------------------------------------------------------


async def test_one_host_down_still_meets_the_quorum_and_reads_fall_back(hosts: Hosts) -> None:
    b, c = hosts.others
    hosts.down(c)
    result = await hosts.writer.put("AUTH_t", "c", "o", body(DATA), META)
    assert {d.device for d in result.devices} == {"sda", "sdb"}
    assert hosts.versions(c, "o") == []
    assert await hosts.read("o") == DATA
    hosts.up(c)
    hosts.down(b)
    hosts.break_device(hosts.here)
    with pytest.raises(ObjectNotFound):  # only c is left, and it never got the object
        await hosts.read("o")
    hosts.up(b)
    assert await hosts.read("o") == DATA  # from b alone
    hosts.repair_device(hosts.here)
    hosts.down(c)
    ts = await hosts.writer.delete("AUTH_t", "c", "o")
    assert hosts.versions(b, "o") == [f"{ts.normal}.ts"]
    with pytest.raises(DeviceUnavailable, match="unreachable"):
        await hosts.routing.partitions(c.device)


async def test_two_hosts_down_fail_the_write_and_leave_nothing(hosts: Hosts) -> None:
    b, c = hosts.others
    hosts.down(b)
    hosts.down(c)
    with pytest.raises(QuorumNotMet):
        await hosts.writer.put("AUTH_t", "c", "o", body(DATA), {})
    with pytest.raises(QuorumNotMet):
        await hosts.writer.delete("AUTH_t", "c", "o")
    (tombstone,) = hosts.versions(hosts.here, "o")  # one that landed stays, as in Swift
    assert tombstone.endswith(".ts")
    assert [f for f in files(hosts.here.root) if not f.endswith(".ts")] == []
    assert files(b.root) == [] and files(c.root) == []


class _CommitFails(LocalBackend):
    """A host whose disk fills up just before the commit."""

    async def open_writer(self, device: Device, partition: int, obj_hash: str) -> ReplicaWriter:
        return _FailingCommit(await super().open_writer(device, partition, obj_hash))


class _FailingCommit(ReplicaWriter):
    def __init__(self, inner: ReplicaWriter) -> None:
        self.inner = inner

    async def write(self, block: bytes) -> None:
        await self.inner.write(block)

    async def commit(self, metadata: Mapping[str, str], timestamp: Timestamp) -> None:
        raise DeviceUnavailable("sdc", "failed: ENOSPC")

    async def abort(self) -> None:
        await self.inner.abort()


async def test_a_missed_quorum_removes_a_replica_committed_on_a_remote_host(
    tmp_path: Path,
) -> None:
    async with _hosts(tmp_path, {"sdc": _CommitFails}) as hosts:
        b, c = hosts.others
        hosts.break_device(hosts.here)
        with pytest.raises(QuorumNotMet):
            await hosts.writer.put("AUTH_t", "c", "o", body(DATA), {})
        assert files(b.root) == [] and files(c.root) == []


async def test_a_device_that_cannot_serve_answers_507(hosts: Hosts) -> None:
    b = hosts.others[0]
    hosts.break_device(b)
    async with httpx.AsyncClient(
        transport=hosts.network, headers={"X-Backend-Secret": SECRET}
    ) as c:
        url = f"http://{b.address[0]}:{b.address[1]}/sdb"
        response = await c.get(f"{url}/partitions")
        assert response.status_code == 507
        assert response.json()["error"] == "device_unavailable"
        assert (await c.head(url)).status_code == 507
        response = await c.get(f"{url}/1/{'0' * 32}")
        assert (response.status_code, response.json()["error"]) == (507, "device_unavailable")
        response = await c.get(f"http://{b.address[0]}:{b.address[1]}/sda/1/{'0' * 32}")
        assert response.status_code == 507  # no such device on this host
        c_host = hosts.others[1].address
        response = await c.get(f"http://{c_host[0]}:{c_host[1]}/sdc/1/{'0' * 32}")
        assert (response.status_code, response.json()["error"]) == (404, "not_found")
        head = await c.head(f"http://{c_host[0]}:{c_host[1]}/sdc/1/{'0' * 32}")
        assert head.status_code == 404
        response = await c.get(f"{url}/1/not-a-hash")
        assert response.status_code == 400
        response = await c.get(f"http://{b.address[0]}:{b.address[1]}/.hidden/partitions")
        assert (response.status_code, response.json()["error"]) == (400, "bad_request")
    with pytest.raises(DeviceUnavailable, match="507"):
        await hosts.routing.open_writer(b.device, 1, "0" * 32)
    with pytest.raises(DeviceUnavailable, match="507"):
        await hosts.routing.open_reader(b.device, 1, "0" * 32)


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 1]))


async def test_a_corrupt_remote_replica_is_quarantined_by_its_server(hosts: Hosts) -> None:
    await hosts.writer.put("AUTH_t", "c", "o", body(DATA), {})
    await hosts.writer.put("AUTH_t", "c", "small", body(SMALL), {})
    b = hosts.others[0]
    for obj, offset in (("o", len(DATA) - 10), ("small", 3)):
        (name,) = hosts.versions(b, obj)
        flip(b.manager().hash_dir(*hosts.where(obj)) / name, offset)
    # A big one opens (its start is sound) and fails the whole read.
    replica = await hosts.routing.open_reader(b.device, *hosts.where("o"))
    with pytest.raises(DiskFileCorrupt):
        async for _ in replica.iter():
            pass
    # A small one came whole with the prefetch: it reads as missing at once.
    with pytest.raises(ObjectNotFound):
        await hosts.routing.open_reader(b.device, *hosts.where("small"))
    for obj in ("o", "small"):
        assert hosts.versions(b, obj) == []
        assert (b.manager().quarantined / hosts.where(obj)[1]).is_dir()
        with pytest.raises(ObjectNotFound):
            await hosts.routing.open_reader(b.device, *hosts.where(obj))
    assert await hosts.read("o") == DATA and await hosts.read("small") == SMALL


# -- the PUT stream ---------------------------------------------------------------------------


def frames(data: bytes, *, meta: dict[str, str] | None = None, ts: str | None = None) -> bytes:
    out = frame_header(DATA_FRAME, len(data)) + data
    if meta is not None:
        payload = json.dumps({"metadata": meta, "timestamp": ts or Timestamp.now().normal})
        out += frame_header(COMMIT_FRAME, len(payload)) + payload.encode()
    return out


async def test_a_put_stream_is_committed_only_whole(hosts: Hosts) -> None:
    b = hosts.others[0]
    part, obj_hash = hosts.where("o")
    url = f"http://{b.address[0]}:{b.address[1]}/sdb/{part}/{obj_hash}"
    good = {"ETag": hashlib.md5(SMALL).hexdigest()}
    cases = {
        "no commit frame": (frames(SMALL), 400),
        "cut in the commit frame": (frames(SMALL, meta=good)[:-3], 400),
        "cut in a data frame": (frames(SMALL)[:-3], 400),
        "data after the commit": (frames(SMALL, meta=good) + frames(b"x"), 400),
        "unknown frame": (b"X" + frames(SMALL, meta=good)[1:], 400),
        "bad metadata": (frames(SMALL, meta={"ETag": 5}), 400),  # type: ignore[dict-item]
        "bad timestamp": (frames(SMALL, meta=good, ts="yesterday"), 400),
        "wrong ETag": (frames(SMALL, meta={"ETag": "0" * 32}), 422),
    }
    async with httpx.AsyncClient(
        transport=hosts.network, headers={"X-Backend-Secret": SECRET}
    ) as c:

        async def pieces(data: bytes) -> AsyncIterator[bytes]:
            for i in range(0, len(data), 7):  # frames split anywhere
                yield data[i : i + 7]

        for name, (content, status) in cases.items():
            response = await c.put(url, content=pieces(content))
            assert response.status_code == status, (name, response.text)
            assert files(b.root) == [], name
        response = await c.put(url, content=pieces(frames(SMALL, meta=good)))
        assert response.status_code == 201
    async with await hosts.routing.open_reader(b.device, part, obj_hash) as replica:
        assert b"".join([c async for c in replica.iter()]) == SMALL


async def test_an_aborted_or_refused_remote_write_leaves_nothing(hosts: Hosts) -> None:
    b = hosts.others[0]
    part, obj_hash = hosts.where("o")
    writer = await hosts.routing.open_writer(b.device, part, obj_hash)
    await writer.write(DATA[:1000])
    assert [f for f in files(b.root) if "/tmp/" in f]  # the server is writing
    await writer.abort()
    assert files(b.root) == []

    writer = await hosts.routing.open_writer(b.device, part, obj_hash)
    await writer.write(DATA)
    with pytest.raises(EtagMismatch):
        await writer.commit({"ETag": "0" * 32}, Timestamp.now())
    await writer.abort()
    assert files(b.root) == []

    ts = Timestamp.now()
    writer = await hosts.routing.open_writer(b.device, part, obj_hash)
    await writer.write(DATA)
    await writer.commit({"ETag": ETAG}, ts)
    assert hosts.versions(b, "o") == [f"{ts.normal}.data"]
    await writer.abort()  # after a commit: the version goes again
    assert files(b.root) == []

    hosts.down(b)
    with pytest.raises(DeviceUnavailable, match="unreachable"):
        await hosts.routing.open_writer(b.device, part, obj_hash)


async def test_requests_without_the_cluster_secret_are_refused(hosts: Hosts) -> None:
    b = hosts.others[0]
    part, obj_hash = hosts.where("o")
    url = f"http://{b.address[0]}:{b.address[1]}/sdb/{part}/{obj_hash}"
    good = frames(SMALL, meta={"ETag": hashlib.md5(SMALL).hexdigest()})
    for headers in ({}, {"X-Backend-Secret": "wrong"}, {"X-Backend-Secret": SECRET + "x"}):
        async with httpx.AsyncClient(transport=hosts.network, headers=headers) as c:
            response = await c.put(url, content=good)
            assert (response.status_code, response.json()["error"]) == (401, "unauthorized")
            assert (await c.get(url)).status_code == 401
            assert (await c.delete(url, headers={"X-Timestamp": "1"})).status_code == 401
            partitions = f"http://{b.address[0]}:{b.address[1]}/sdb/partitions"
            assert (await c.get(partitions)).status_code == 401
    assert files(b.root) == []
    async with HttpBackend("wrong", transport=hosts.network) as intruder:
        with pytest.raises(DeviceUnavailable, match="401"):
            await intruder.open_writer(b.device, part, obj_hash)
        with pytest.raises(DeviceUnavailable, match="401"):
            await intruder.open_reader(b.device, part, obj_hash)
    with pytest.raises(ValueError):
        build_object_server(LocalBackend(b.root), "")


async def test_cancelling_a_put_at_any_point_leaves_all_or_nothing(hosts: Hosts) -> None:
    start = asyncio.get_running_loop().time()
    await hosts.writer.put("AUTH_t", "c", "warm", body(DATA), {})
    step = (asyncio.get_running_loop().time() - start) / 20
    cancelled = completed = 0
    for i in range(200):
        task = asyncio.create_task(hosts.writer.put("AUTH_t", "c", "o", body(DATA), {}))
        await asyncio.sleep(step * i)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            cancelled += 1
            for host in hosts.all:
                assert hosts.versions(host, "o") == [], i
                assert [f for f in files(host.root) if "/tmp/" in f] == [], i
        else:
            completed += 1
            assert await hosts.read("o") == DATA
            break
    assert cancelled >= 3 and completed == 1


# -- repair -----------------------------------------------------------------------------------


async def test_the_replicator_repairs_replicas_missing_on_remote_hosts(hosts: Hosts) -> None:
    b, c = hosts.others
    hosts.down(c)
    result = await hosts.writer.put("AUTH_t", "c", "o", body(DATA), META)
    hosts.up(c)
    hosts.down(b)
    await hosts.writer.put("AUTH_t", "c", "gone", body(SMALL), {})
    ts = await hosts.writer.delete("AUTH_t", "c", "gone")
    hosts.up(b)
    here = hosts.routing.local_devices(hosts.ring.devices)
    assert here == [hosts.here.device]
    stats = await Replicator(hosts.ring, hosts.routing, devices=here).replicate_once()
    assert (stats.objects_copied, stats.tombstones_copied, stats.failures) == (1, 1, 0)
    assert hosts.versions(c, "o") == [f"{result.timestamp.normal}.data"]
    assert hosts.versions(b, "gone") == [f"{ts.normal}.ts"]
    async with await hosts.routing.open_reader(c.device, *hosts.where("o")) as replica:
        assert replica.metadata["X-Object-Meta-Who"] == META["X-Object-Meta-Who"]
        assert b"".join([chunk async for chunk in replica.iter()]) == DATA
    stats = await Replicator(hosts.ring, hosts.routing, devices=here).replicate_once()
    assert (stats.objects_copied, stats.tombstones_copied) == (0, 0)


# -- a real server process ---------------------------------------------------------------------

SERVE = textwrap.dedent(
    """
    import asyncio, socket, sys
    from pathlib import Path
    import uvicorn
    from onestack.object_store import LocalBackend, build_object_server

    sock = socket.socket(fileno=int(sys.argv[1]))
    app = build_object_server(LocalBackend(Path(sys.argv[2])), sys.argv[3])
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))
    """
)


@dataclass
class RealServer:
    root: Path
    port: int
    proc: subprocess.Popen[bytes]


@pytest.fixture
def real_server(tmp_path: Path) -> Iterator[RealServer]:
    """An object server process for ``tmp_path/real`` on a socket bound before it starts
    (connections wait in the backlog until it serves)."""
    root = tmp_path / "real"
    (root / "sdr").mkdir(parents=True)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(listener.fileno()), str(root), SECRET],
        pass_fds=[listener.fileno()],
    )
    server = RealServer(root, listener.getsockname()[1], proc)
    listener.close()
    try:
        yield server
    finally:
        proc.kill()
        proc.wait(10)


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_a_real_object_server_over_a_socket(hosts: Hosts, real_server: RealServer) -> None:
    root, port = real_server.root, real_server.port
    real = Device(0, "127.0.0.1", port, "sdr", zone=2)
    builder = RingBuilder(2)
    for d in (hosts.here.device, real, hosts.others[1].device):
        builder.add_device(host=d.host, port=d.port, device=d.device, zone=d.zone)
    builder.rebalance()
    ring = builder.get_ring()
    data = os.urandom(9 * MiB + 4321)  # blocks of 4 MiB, streamed both ways
    etag = hashlib.md5(data).hexdigest()
    result = await ObjectWriter(ring, hosts.routing).put("AUTH_t", "c", "o", body(data), META)
    assert {d.device for d in result.devices} == {"sda", "sdr", "sdc"}
    part, obj_hash = ring.partition("AUTH_t", "c", "o"), ring.object_hash("AUTH_t", "c", "o")
    async with await hosts.routing.open_reader(real, part, obj_hash) as replica:
        assert (replica.size, replica.etag) == (len(data), etag)
        assert replica.timestamp == result.timestamp
        assert replica.metadata["X-Object-Meta-Who"] == META["X-Object-Meta-Who"]
        assert b"".join([c async for c in replica.iter()]) == data
        assert b"".join([c async for c in replica.iter(MiB, 3 * MiB)]) == data[MiB : 4 * MiB]
    assert await hosts.routing.partitions(real) == [part]
    ts = await ObjectWriter(ring, hosts.routing).delete("AUTH_t", "c", "o")
    with pytest.raises(ObjectDeleted):
        await hosts.routing.open_reader(real, part, obj_hash)
    tombstone = [f"sdr/objects/{part}/{obj_hash[-3:]}/{obj_hash}/{ts}.ts"]
    assert files(root) == tombstone

    # A stream cut before its end commits nothing, even with its commit frame through.
    tmp = root / "sdr" / "tmp"
    good = frames(data[:300_000], meta={"ETag": hashlib.md5(data[:300_000]).hexdigest()})
    for cut in (good[:200_000], good):
        _, stream = await asyncio.open_connection("127.0.0.1", port)
        head = (
            f"PUT /sdr/{part}/{'b' * 32} HTTP/1.1\r\nHost: x\r\nX-Backend-Secret: {SECRET}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        stream.write(head.encode() + f"{len(cut):x}\r\n".encode() + cut + b"\r\n")
        await stream.drain()
        assert await eventually(lambda: any(tmp.iterdir()))  # the server is writing
        stream.close()
        await stream.wait_closed()
        assert await eventually(lambda: not any(tmp.iterdir()))
        assert files(root) == tombstone

    async with HttpBackend("wrong") as intruder:
        with pytest.raises(DeviceUnavailable, match="401"):
            await intruder.open_reader(real, part, obj_hash)

    # The host dying in the middle of a write.
    writer = await hosts.routing.open_writer(real, part, obj_hash)
    await writer.write(data[: 4 * MiB])
    real_server.proc.kill()
    with pytest.raises(DeviceUnavailable):
        async with asyncio.timeout(5):
            for _ in range(3):
                await writer.write(data[: 4 * MiB])
            await writer.commit({"ETag": etag}, Timestamp.now())
    await writer.abort()
    with pytest.raises(DeviceUnavailable, match="unreachable"):
        await hosts.routing.open_reader(real, part, obj_hash)
