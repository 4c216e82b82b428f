"""Concurrent writes through the whole stack: listing updates are group-committed,
and the listings, counters and quota checks stay exact; reads take one replica
unless ``X-Newest``."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

from tests.api.object_store.conftest import Swift


async def test_concurrent_puts_and_deletes_keep_listings_and_counters_exact(
    swift: Swift,
) -> None:
    a = await swift.project_user()
    c = "c-" + uuid.uuid4().hex[:8]
    await a.put_container(c)
    sizes = {f"o{i:02d}": i * 10 for i in range(30)}

    async def put(name: str, size: int) -> None:
        r = await a.req("PUT", f"/{c}/{name}", content=b"x" * size)
        assert r.status_code == 201, r.text
        r = await a.req("HEAD", f"/{c}/{name}")  # answered after its update: listed
        assert r.status_code == 200

    await asyncio.gather(*(put(n, s) for n, s in sizes.items()),
                         *(put(n, s + 1) for n, s in list(sizes.items())[:5]))
    r = await a.req("GET", f"/{c}", params={"format": "json"})
    listed = {e["name"]: e["bytes"] for e in r.json()}
    for name in list(sizes)[:5]:  # written twice: the newer timestamp won
        assert listed[name] in (sizes[name], sizes[name] + 1)
        sizes[name] = listed[name]
    assert listed == sizes

    gone = list(sizes)[::3]
    results = await asyncio.gather(*(a.req("DELETE", f"/{c}/{n}") for n in gone))
    assert [r.status_code for r in results] == [204] * len(gone)
    live = {n: s for n, s in sizes.items() if n not in gone}
    r = await a.req("GET", f"/{c}", params={"format": "json"})
    assert {e["name"]: e["bytes"] for e in r.json()} == live
    r = await a.req("HEAD", f"/{c}")
    assert (r.headers["X-Container-Object-Count"], r.headers["X-Container-Bytes-Used"]) == (
        str(len(live)), str(sum(live.values())))
    r = await a.req("HEAD")
    assert (r.headers["X-Account-Object-Count"], r.headers["X-Account-Bytes-Used"]) == (
        str(len(live)), str(sum(live.values())))


async def test_container_quota_sees_each_write_at_once(swift: Swift) -> None:
    """The quota check reads the cached container info: the process's own writes
    are added to it as they commit, so the limit holds exactly."""
    a = await swift.project_user()
    c = "c-" + uuid.uuid4().hex[:8]
    await a.put_container(c, **{"X-Container-Meta-Quota-Count": "3",
                                "X-Container-Meta-Quota-Bytes": "100"})
    r = await a.req("HEAD", f"/{c}")  # caches the container info
    assert r.headers["X-Container-Object-Count"] == "0"
    for i in range(3):
        await a.put_object(c, f"o{i}", b"x" * 30)
    r = await a.req("PUT", f"/{c}/o3", content=b"x")
    assert r.status_code == 413, r.text
    r = await a.req("DELETE", f"/{c}/o2")
    assert r.status_code == 204
    r = await a.req("PUT", f"/{c}/big", content=b"x" * 41)  # 60 + 41 > 100
    assert r.status_code == 413, r.text
    await a.put_object(c, "fits", b"x" * 40)


async def test_x_newest_reads(swift: Swift) -> None:
    a = await swift.project_user()
    c = "c-" + uuid.uuid4().hex[:8]
    await a.put_container(c)
    await a.put_object(c, "o", b"hello")
    for headers in ({}, {"X-Newest": "true"}):
        r = await a.req("GET", f"/{c}/o", headers=headers)
        assert (r.status_code, r.content) == (200, b"hello")
        assert r.headers["ETag"] == hashlib.md5(b"hello").hexdigest()
        r = await a.req("HEAD", f"/{c}/o", headers=headers)
        assert (r.status_code, r.headers["Content-Length"]) == (200, "5")
    r = await a.req("DELETE", f"/{c}/o")
    assert r.status_code == 204
    for headers in ({}, {"X-Newest": "true"}):
        r = await a.req("GET", f"/{c}/o", headers=headers)
        assert r.status_code == 404
