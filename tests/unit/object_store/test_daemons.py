"""The replicator and auditor run by the service (``service/daemons.py``), over the real
state ``app.make_state`` builds on a data dir (ring, devices, routing backend), and in
the whole cloud's lifespan."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from objstore_cluster import MiB, body
from tests.conftest import Cloud

from onestack.core import config
from onestack.core.db import Database
from onestack.core.service import Runtime
from onestack.object_store.app import make_state
from onestack.object_store.errors import DeviceUnavailable, ObjectNotFound
from onestack.object_store.remote import RoutingBackend
from onestack.object_store.ring import Device
from onestack.object_store.service.daemons import ObjectDaemons
from onestack.object_store.state import ObjectStoreState

DATA = os.urandom(MiB + 4321)


def object_settings(data_dir: Path, **object_store: Any) -> config.Settings:
    conf = {"part_power": 4, "replication_interval": 0.05, **object_store}
    return config.load(data_dir, environ={}, port=8780, object_store=conf)


@pytest.fixture
async def st(tmp_path: Path) -> AsyncIterator[ObjectStoreState]:
    settings = object_settings(tmp_path / "data")
    runtime = Runtime(settings=settings, db=Database(settings.db_url))
    state = make_state(runtime)
    yield state
    for hook in reversed(runtime.shutdown):
        await hook()
    await runtime.db.close()


def routing(st: ObjectStoreState) -> RoutingBackend:
    backend = st.extras["backend"]
    assert isinstance(backend, RoutingBackend)
    return backend


def where(st: ObjectStoreState, obj: str) -> tuple[int, str]:
    return st.ring.partition("AUTH_t", "c", obj), st.ring.object_hash("AUTH_t", "c", obj)


def replica_path(st: ObjectStoreState, device: Device, obj: str) -> Path:
    hash_dir = routing(st).local.manager(device).hash_dir(*where(st, obj))
    (name,) = os.listdir(hash_dir)
    return hash_dir / name


def replicas(st: ObjectStoreState, obj: str) -> list[bytes]:
    """Each primary's data of ``obj`` (b"" where it has none)."""
    out = []
    for device in st.ring.nodes(where(st, obj)[0]):
        try:
            reader = routing(st).local.manager(device).open(*where(st, obj))
        except (ObjectNotFound, DeviceUnavailable):
            out.append(b"")
            continue
        out.append(reader.pread(0, reader.size))
        reader.close()
    return out


def damage(st: ObjectStoreState, obj: str) -> None:
    """Lose the replica on the first primary, flip a data byte on the second."""
    first, second, _ = st.ring.nodes(where(st, obj)[0])
    shutil.rmtree(replica_path(st, first, obj).parent)
    path = replica_path(st, second, obj)
    with open(path, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0x01]))


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_one_pass_restores_a_lost_and_a_corrupt_replica(st: ObjectStoreState) -> None:
    await st.writer.put("AUTH_t", "c", "o", body(DATA), {})
    await st.writer.put("AUTH_t", "c", "other", body(b"fine"), {})
    damage(st, "o")
    assert sorted(map(len, replicas(st, "o"))) == [0, len(DATA), len(DATA)]
    daemons = ObjectDaemons.for_state(st)
    assert daemons is not None and daemons.devices == st.ring.devices
    audit, replication = await daemons.run_once()
    assert audit.quarantined == 1 and audit.failures == 0
    assert replication.objects_copied == 2 and replication.failures == 0
    assert replicas(st, "o") == [DATA] * 3
    assert replicas(st, "other") == [b"fine"] * 3
    audit, replication = await daemons.run_once()  # in sync: nothing more to do
    assert (audit.quarantined, replication.objects_copied) == (0, 0)
    assert audit.files == 6


async def test_the_background_loops_repair_and_stop(st: ObjectStoreState) -> None:
    await st.writer.put("AUTH_t", "c", "o", body(DATA), {})
    daemons = ObjectDaemons.for_state(st, first_delay=0.0)
    assert daemons is not None
    await daemons.start()
    try:
        damage(st, "o")
        await until(lambda: replicas(st, "o") == [DATA] * 3)
    finally:
        await daemons.stop()
    tasks = {t.get_name() for t in asyncio.all_tasks()}
    assert not tasks & {"object-replicator", "object-auditor"}
    damage(st, "o")
    await asyncio.sleep(0.3)  # stopped: nothing repairs any more
    assert sorted(map(len, replicas(st, "o"))) == [0, len(DATA), len(DATA)]


async def test_a_failing_pass_is_logged_and_retried(
    st: ObjectStoreState, caplog: pytest.LogCaptureFixture
) -> None:
    await st.writer.put("AUTH_t", "c", "o", body(b"x"), {})
    daemons = ObjectDaemons.for_state(st, first_delay=0.0)
    assert daemons is not None
    passes: list[str] = []
    real = daemons.replicator.replicate_once

    async def flaky() -> Any:
        passes.append("pass")
        if len(passes) == 1:
            raise RuntimeError("the network fell over")
        return await real()

    daemons.replicator.replicate_once = flaky  # type: ignore[method-assign]
    shutil.rmtree(replica_path(st, st.ring.nodes(where(st, "o")[0])[0], "o").parent)
    with caplog.at_level(logging.INFO, "onestack.object_store.service.daemons"):
        await daemons.start()
        try:
            await until(lambda: replicas(st, "o") == [b"x"] * 3)
        finally:
            await daemons.stop()
    assert len(passes) >= 2
    assert any(r.levelno == logging.ERROR and "object-replicator pass failed" in r.message
               for r in caplog.records)
    assert any("objects_copied=1" in r.message for r in caplog.records)


async def test_no_devices_here_means_no_tasks(st: ObjectStoreState) -> None:
    backend = routing(st)
    daemons = ObjectDaemons(st.ring, backend, backend.local, [], interval=0.05)
    await daemons.start()
    assert daemons._tasks == []
    await daemons.stop()


# -- in the whole cloud: build() registers the hooks -----------------------------------


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> config.Settings:
    """tests/conftest.py's settings, with passes every 50 ms."""
    return config.load(
        tmp_path / "data", environ={}, database_url=database_url, port=8780, access_log=False,
        identity={"password_time_cost": 1, "password_memory_cost_kib": 1024},
        object_store={"part_power": 4, "replication_interval": 0.05},
        network={"dataplane": "fake"},  # no kernel objects
    )


async def admin_account(cloud: Cloud) -> str:
    r = await cloud.client.get("/identity/v3/auth/tokens", headers={
        "X-Auth-Token": cloud.admin_token, "X-Subject-Token": cloud.admin_token})
    return "AUTH_" + r.json()["token"]["project"]["id"]


async def test_the_running_cloud_repairs_replicas(cloud: Cloud) -> None:
    account = await admin_account(cloud)
    url = f"/object-store/v1/{account}/c"
    headers = {"X-Auth-Token": cloud.admin_token}
    assert (await cloud.client.put(url, headers=headers)).status_code == 201
    r = await cloud.client.put(url + "/o", content=DATA, headers=headers)
    assert r.status_code == 201
    st: ObjectStoreState = cloud.app.state.runtime.extras["object_store"]
    partition = st.ring.partition(account, "c", "o")
    obj_hash = st.ring.object_hash(account, "c", "o")
    local = routing(st).local
    first, second, third = st.ring.nodes(partition)
    # The replicator runs every 50 ms and may restore the replica while it is
    # being removed: take the directory away in one rename, then delete it.
    doomed = local.manager(first).hash_dir(partition, obj_hash)
    gone = local.manager(first).objects.parent / "removed-by-test"
    doomed.rename(gone)
    shutil.rmtree(gone)
    hash_dir = local.manager(second).hash_dir(partition, obj_hash)
    (path,) = hash_dir.iterdir()
    data = bytearray(path.read_bytes())
    data[7] ^= 0xFF
    path.write_bytes(bytes(data))

    def healthy() -> bool:
        found = []
        for device in (first, second, third):
            try:
                reader = local.manager(device).open(partition, obj_hash)
            except ObjectNotFound:
                return False
            found.append(reader.pread(0, reader.size))
            reader.close()
        return found == [DATA] * 3

    await until(healthy)
    r = await cloud.client.get(url + "/o", headers=headers)
    assert r.status_code == 200 and r.content == DATA

