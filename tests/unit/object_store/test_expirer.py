"""The object expirer over a real ring: expired objects are tombstoned at their
X-Delete-At and leave the listing; rows that outlived a change are corrected."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from objstore_api import MemoryListings, Row, call, make_state
from objstore_cluster import Cluster

from onestack.object_store.errors import ObjectDeleted
from onestack.object_store.service.expirer import Expirer
from onestack.object_store.state import ObjectStoreState
from onestack.object_store.timestamp import Timestamp


@pytest.fixture
def st(cluster: Cluster, tmp_path: Path) -> ObjectStoreState:
    return make_state(cluster, tmp_path / "data", expiring_objects_interval=0.05)


def listings(st: ObjectStoreState) -> MemoryListings:
    assert isinstance(st.listings, MemoryListings)
    return st.listings


async def put(st: ObjectStoreState, obj: str, **headers: str) -> None:
    resp = await call(st, "PUT", obj, headers=headers, body=b"data")
    assert resp.status == 201, resp.body


async def put_expired(st: ObjectStoreState, obj: str) -> int:
    now = int(time.time())
    delete_at = now - 50
    await put(st, obj, **{"X-Timestamp": f"{now - 100}.00000", "X-Delete-At": str(delete_at)})
    return delete_at


async def test_run_once_deletes_expired_objects_only(st: ObjectStoreState) -> None:
    delete_at = await put_expired(st, "old")
    await put(st, "later", **{"X-Delete-After": "3600"})
    await put(st, "forever")
    assert await Expirer(st).run_once() == 1
    with pytest.raises(ObjectDeleted) as gone:
        await st.reader.open("AUTH_t", "c", "old")
    assert gone.value.timestamp == Timestamp.from_float(delete_at)  # dated like Swift's
    assert sorted(listings(st).listed()) == ["forever", "later"]
    assert (await call(st, "HEAD", "later")).status == 200
    assert await Expirer(st).run_once() == 0


async def test_newer_upload_after_expiry_wins(st: ObjectStoreState) -> None:
    await put_expired(st, "o")
    stale = listings(st).rows["AUTH_t", "c", "o"]
    await put(st, "o")  # replaced without expiry: the listing row no longer expires
    listings(st).rows["AUTH_t", "c", "o"] = stale  # ... unless an update got lost
    assert await Expirer(st).run_once() == 0
    assert (await call(st, "HEAD", "o")).status == 200
    row = listings(st).listed()["o"]
    assert row.delete_at is None and row.timestamp > stale.timestamp


async def test_stale_rows_of_gone_objects_are_dropped(st: ObjectStoreState) -> None:
    await put(st, "deleted")
    assert (await call(st, "DELETE", "deleted")).status == 204
    rows = listings(st).rows
    past = int(time.time()) - 10
    rows["AUTH_t", "c", "deleted"] = Row(Timestamp.from_float(past - 100), 4, "x", "e", past)
    rows["AUTH_t", "c", "never"] = Row(Timestamp.from_float(past - 100), 4, "x", "e", past)
    assert await Expirer(st).run_once() == 0
    assert listings(st).listed() == {}
    assert await listings(st).expired(time.time()) == []


async def test_start_and_stop(st: ObjectStoreState) -> None:
    expirer = Expirer(st)
    await expirer.start()
    try:
        await put_expired(st, "o")
        for _ in range(1000):  # 20 s: a loaded CI machine is slow
            if not listings(st).listed():
                break
            await asyncio.sleep(0.02)
        assert listings(st).listed() == {}
    finally:
        await expirer.stop()
    assert expirer._task is None
    await expirer.stop()  # idempotent
