"""The object controller and the expirer with the real SQL listings (SQLite): what
a PUT, POST and DELETE leave in the container listing and its usage."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from objstore_api import call
from objstore_cluster import Cluster

from onestack.core.config import Settings
from onestack.core.db import Database
from onestack.object_store.models import Base
from onestack.object_store.service.expirer import Expirer
from onestack.object_store.service.listings import Listings
from onestack.object_store.state import ObjectStoreState
from onestack.object_store.timestamp import Timestamp


@pytest.fixture
async def st(cluster: Cluster, tmp_path: Path) -> AsyncIterator[ObjectStoreState]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'objstore.db'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    settings = Settings(data_dir=tmp_path / "data")
    listings = Listings(db, settings)
    await listings.put_container("AUTH_t", "c", timestamp=Timestamp.now(), metadata={
        "X-Container-Read": ".r:*"})
    try:
        yield ObjectStoreState(settings=settings, db=db, ring=cluster.ring,
                               writer=cluster.writer, reader=cluster.reader, listings=listings)
    finally:
        await db.close()


async def listed(st: ObjectStoreState) -> dict[str, dict[str, Any]]:
    rows = await st.listings.list_objects("AUTH_t", "c", limit=100)
    return {row["name"]: row for row in rows}


async def usage(st: ObjectStoreState) -> tuple[int, int]:
    info = await st.listings.load_container("AUTH_t", "c")
    assert info is not None
    return info.object_count, info.bytes_used


async def test_put_post_delete_keep_the_listing(st: ObjectStoreState) -> None:
    seen: list[str | None] = []

    async def check(req: Any) -> None:
        seen.append(req.environ["swift.acl"])

    env = {"swift.authorize": check}
    resp = await call(st, "PUT", "a.txt", body=b"hello", environ=env)
    assert resp.status == 201
    assert seen == [None]  # no write ACL on the container
    assert (await call(st, "GET", "a.txt", environ=env)).status == 200
    assert seen[-1] == ".r:*"
    row = (await listed(st))["a.txt"]
    assert (row["bytes"], row["hash"], row["content_type"]) == \
        (5, resp.headers["ETag"], "text/plain")
    assert await usage(st) == (1, 5)

    assert (await call(st, "POST", "a.txt", headers={"Content-Type": "text/x-b"})).status == 202
    assert (await listed(st))["a.txt"]["content_type"] == "text/x-b"
    assert await usage(st) == (1, 5)

    assert (await call(st, "DELETE", "a.txt")).status == 204
    assert await listed(st) == {}
    assert await usage(st) == (0, 0)


async def test_manifest_size_override_survives_post(st: ObjectStoreState) -> None:
    headers = {"Content-Type": "application/json;swift_bytes=1000",
               "X-Object-Sysmeta-Container-Update-Override-Etag": "whole"}
    slo = {"swift.content_type_overridden": True}  # as the SLO middleware marks it
    assert (await call(st, "PUT", "m", headers=headers, body=b"[]", environ=slo)).status == 201
    row = (await listed(st))["m"]
    assert (row["bytes"], row["hash"], row["content_type"]) == (1000, "whole", "application/json")
    assert (await call(st, "POST", "m", headers={"Content-Type": "text/x-new"})).status == 202
    row = (await listed(st))["m"]
    assert (row["bytes"], row["hash"], row["content_type"]) == (1000, "whole", "text/x-new")


async def test_missing_container_is_404(st: ObjectStoreState) -> None:
    assert (await call(st, "PUT", "o", container="nope", body=b"x")).status == 404


async def test_expirer_with_sql_listings(st: ObjectStoreState) -> None:
    now = int(time.time())
    resp = await call(st, "PUT", "old", body=b"x", headers={
        "X-Timestamp": f"{now - 100}.00000", "X-Delete-At": str(now - 50)})
    assert resp.status == 201
    assert (await call(st, "PUT", "new", body=b"y", headers={"X-Delete-After": "600"})).status \
        == 201
    assert await Expirer(st).run_once() == 1
    assert sorted(await listed(st)) == ["new"]
    assert await st.listings.expired(time.time()) == []
    assert await Expirer(st).run_once() == 0
