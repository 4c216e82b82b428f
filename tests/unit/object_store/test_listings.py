"""Listings (accounts, containers, object names, usage) on a real database made by
the service's migration: SQLite by default, PostgreSQL or MariaDB when
``ONESTACK_TEST_DATABASE_URL`` is set (a fresh database per test)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event

from onestack.core import config, errors, migrate
from onestack.core.db import Database
from onestack.object_store.service import listings as listings_mod
from onestack.object_store.service.listings import Listings, isoformat, listed_content_type
from onestack.object_store.timestamp import Timestamp

VERSIONS = Path(listings_mod.__file__).parents[1] / "migrations" / "versions"


class Env:
    """Listings on one database; each ``listings()`` is like another process."""

    def __init__(self, url: str, settings: config.Settings) -> None:
        self.url, self.settings = url, settings
        self.dbs: list[Database] = []

    def listings(self) -> Listings:
        db = Database(self.url)
        self.dbs.append(db)
        return Listings(db, self.settings)


@pytest.fixture
async def env(tmp_path: Path, database_url: str | None) -> AsyncIterator[Env]:
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'objstore.db'}"
    settings = config.load(tmp_path / "data", environ={})
    e = Env(url, settings)
    db = Database(url)
    await migrate.upgrade(db, [VERSIONS])
    await db.close()
    yield e
    for d in e.dbs:
        await d.close()


@pytest.fixture
async def ls(env: Env) -> Listings:
    return env.listings()


def ts(seconds: float) -> Timestamp:
    return Timestamp.from_float(1_700_000_000 + seconds)


async def put(ls: Listings, name: str, t: float, size: int = 10, c: str = "c",
              **kw: object) -> None:
    await ls.object_updated("AUTH_a", c, name, timestamp=ts(t), size=size,
                            content_type="text/plain", etag="e" * 32, **kw)  # type: ignore[arg-type]


async def names(ls: Listings, c: str = "c", **kw: object) -> list[str]:
    kw.setdefault("limit", 10000)
    rows = await ls.list_objects("AUTH_a", c, **kw)  # type: ignore[arg-type]
    return [r.get("name") or "dir:" + r["subdir"] for r in rows]


async def usage(ls: Listings, c: str = "c") -> tuple[int, int]:
    info = await ls.load_container("AUTH_a", c)
    assert info is not None
    return info.object_count, info.bytes_used


# -- accounts and containers ----------------------------------------------------------

async def test_missing_account_reads_as_empty(ls: Listings) -> None:
    info = await ls.account_info("AUTH_nobody")
    assert (info.exists, info.deleted, info.container_count, info.object_count,
            info.bytes_used, info.metadata) == (False, False, 0, 0, 0, {})
    assert await ls.list_containers("AUTH_nobody", limit=10) == []
    assert await ls.container_info("AUTH_nobody", "c") is None


async def test_container_put_creates_account_and_updates(ls: Listings) -> None:
    assert await ls.put_container("AUTH_a", "c", timestamp=ts(1),
                                  metadata={"X-Container-Meta-Color": "blue",
                                            "X-Container-Read": ".r:*"})
    assert not await ls.put_container("AUTH_a", "c", timestamp=ts(2),
                                      metadata={"X-Container-Meta-Color": "",
                                                "X-Container-Sysmeta-Mode": "x"})
    info = await ls.load_container("AUTH_a", "c")
    assert info is not None
    assert info.metadata == {"X-Container-Read": ".r:*", "X-Container-Sysmeta-Mode": "x"}
    assert (info.read_acl, info.write_acl, info.sysmeta, info.meta) == (
        ".r:*", None, {"mode": "x"}, {})
    assert (info.created_at, info.put_timestamp) == (ts(1), ts(2))
    acct = await ls.account_info("AUTH_a")
    assert acct.exists and acct.container_count == 1 and acct.created_at == ts(1)


async def test_metadata_limits_count_what_is_stored(ls: Listings) -> None:
    limit = ls.limits.max_meta_count
    await ls.put_container("AUTH_a", "c", timestamp=ts(1), metadata={
        f"X-Container-Meta-K{i}": "v" for i in range(limit)})
    with pytest.raises(errors.BadRequest, match=f"Too many metadata items; max {limit}"):
        await ls.post_container("AUTH_a", "c", timestamp=ts(2),
                                metadata={"X-Container-Meta-One-More": "v"})
    # removing one makes room; sysmeta does not count
    await ls.post_container("AUTH_a", "c", timestamp=ts(3), metadata={
        "X-Container-Meta-K0": "", "X-Container-Meta-One-More": "v",
        "X-Container-Sysmeta-X": "y"})
    with pytest.raises(errors.BadRequest, match="Total metadata too large; max 4096"):
        await ls.post_account("AUTH_a", timestamp=ts(4), metadata={
            f"X-Account-Meta-K{i}": "v" * 200 for i in range(21)})
    assert (await ls.account_info("AUTH_a")).metadata == {}


async def test_container_delete_only_when_empty(ls: Listings) -> None:
    await ls.put_container("AUTH_a", "c", timestamp=ts(1), metadata={})
    await put(ls, "o", 2)
    with pytest.raises(errors.Conflict):
        await ls.delete_container("AUTH_a", "c", timestamp=ts(3))
    await ls.object_deleted("AUTH_a", "c", "o", timestamp=ts(4))
    await ls.delete_container("AUTH_a", "c", timestamp=ts(5))  # the tombstone goes with it
    assert await ls.load_container("AUTH_a", "c") is None
    with pytest.raises(errors.NotFound):
        await ls.delete_container("AUTH_a", "c", timestamp=ts(6))
    with pytest.raises(errors.NotFound):
        await ls.post_container("AUTH_a", "c", timestamp=ts(6), metadata={})
    # recreated, it is empty: the old tombstone does not hide a new PUT
    await ls.put_container("AUTH_a", "c", timestamp=ts(7), metadata={})
    await put(ls, "o", 3)
    assert await names(ls) == ["o"]


async def test_deleted_account(ls: Listings) -> None:
    with pytest.raises(errors.NotFound):
        await ls.delete_account("AUTH_a", timestamp=ts(1))
    assert await ls.put_account("AUTH_a", timestamp=ts(1), metadata={"X-Account-Meta-A": "1"})
    assert not await ls.put_account("AUTH_a", timestamp=ts(2), metadata={})
    await ls.put_container("AUTH_a", "c", timestamp=ts(2), metadata={})
    await ls.delete_account("AUTH_a", timestamp=ts(3))
    info = await ls.account_info("AUTH_a")
    assert (info.exists, info.deleted) == (False, True)
    assert await ls.container_info("AUTH_a", "c") is None
    assert await ls.list_containers("AUTH_a", limit=10) == []
    with pytest.raises(errors.Forbidden, match="Recently deleted"):
        await ls.put_account("AUTH_a", timestamp=ts(4), metadata={})
    with pytest.raises(errors.NotFound):
        await ls.put_container("AUTH_a", "d", timestamp=ts(4), metadata={})
    with pytest.raises(errors.NotFound):
        await ls.post_account("AUTH_a", timestamp=ts(4), metadata={})


# -- object rows ---------------------------------------------------------------------

async def test_newest_version_wins_whatever_the_order(ls: Listings) -> None:
    await ls.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    await put(ls, "o", 5, size=100)
    await put(ls, "o", 3, size=7)  # older: ignored
    assert await usage(ls) == (1, 100)
    await put(ls, "o", 6, size=40)
    assert await usage(ls) == (1, 40)
    await ls.object_deleted("AUTH_a", "c", "o", timestamp=ts(8))
    assert await usage(ls) == (0, 0)
    await put(ls, "o", 7, size=1)  # a PUT that started before the DELETE finishes late
    assert await usage(ls) == (0, 0)
    assert await names(ls) == []
    await ls.object_deleted("AUTH_a", "c", "never-put", timestamp=ts(9))
    await put(ls, "never-put", 8)  # older than the DELETE recorded before it
    assert await names(ls) == []
    await put(ls, "o", 9, size=5)
    assert await usage(ls) == (1, 5)
    rows = await ls.list_objects("AUTH_a", "c", limit=10)
    assert rows == [{"bytes": 5, "hash": "e" * 32, "name": "o", "content_type": "text/plain",
                     "last_modified": isoformat(ts(9))}]


async def test_missing_container_is_ignored(ls: Listings) -> None:
    await put(ls, "o", 1, c="gone")
    await ls.object_deleted("AUTH_a", "gone", "o", timestamp=ts(2))
    assert await ls.container_info("AUTH_a", "gone") is None


async def test_concurrent_updates_keep_usage_right(env: Env) -> None:
    """Many writers (two "processes") on overlapping names: the container's
    counts always equal what its live rows add up to."""
    a, b = env.listings(), env.listings()
    await a.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    rnd = random.Random(7)
    ops = []
    for i in range(160):
        name = f"o{rnd.randrange(12)}"
        if rnd.random() < 0.25:
            ops.append(("del", name, i, 0))
        else:
            ops.append(("put", name, i, rnd.randrange(1, 1000)))
    rnd.shuffle(ops)  # timestamps arrive out of order, as from slow uploads

    async def run(ls: Listings, op: tuple[str, str, int, int]) -> None:
        kind, name, t, size = op
        if kind == "put":
            await put(ls, name, t, size=size)
        else:
            await ls.object_deleted("AUTH_a", "c", name, timestamp=ts(t))

    await asyncio.gather(*(run(a if i % 2 else b, op) for i, op in enumerate(ops)))

    newest: dict[str, tuple[int, str, int]] = {}
    for kind, name, t, size in ops:
        if name not in newest or t > newest[name][0]:
            newest[name] = (t, kind, size)
    live = {n: s for n, (_, kind, s) in newest.items() if kind == "put"}
    rows = await a.list_objects("AUTH_a", "c", limit=100)
    assert {r["name"]: r["bytes"] for r in rows} == live
    assert await usage(a) == (len(live), sum(live.values()))
    acct = await b.account_info("AUTH_a")
    assert (acct.object_count, acct.bytes_used) == (len(live), sum(live.values()))


async def test_concurrent_first_writes_of_one_name(env: Env) -> None:
    a, b = env.listings(), env.listings()
    await a.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    await asyncio.gather(*(put(a if i % 2 else b, "same", i, size=i) for i in range(1, 21)))
    assert await usage(a) == (1, 20)


async def test_expired(ls: Listings) -> None:
    await ls.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    await put(ls, "soon", 1, delete_at=1000)
    await put(ls, "later", 1, delete_at=3000)
    await put(ls, "never", 1)
    await put(ls, "gone", 1, delete_at=500)
    await ls.object_deleted("AUTH_a", "c", "gone", timestamp=ts(2))
    await put(ls, "kept", 1, delete_at=900)
    await put(ls, "kept", 3)  # a newer version without X-Delete-At
    assert await ls.expired(2000) == [("AUTH_a", "c", "soon", ts(1))]
    assert [e[2] for e in await ls.expired(5000)] == ["soon", "later"]
    assert [e[2] for e in await ls.expired(5000, limit=1)] == ["soon"]


async def test_reclaim_tombstones(ls: Listings) -> None:
    await ls.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    for i in range(3):
        await ls.object_deleted("AUTH_a", "c", f"o{i}", timestamp=ts(i))
    assert await ls.reclaim(ts(2)) == 2
    await put(ls, "o0", 0.5)  # its tombstone is gone: an old PUT lands again
    await put(ls, "o2", 1)  # still guarded
    assert await names(ls) == ["o0"]


# -- the cache -------------------------------------------------------------------------

async def test_container_info_cache(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = env.listings(), env.listings()
    await a.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    first = await a.container_info("AUTH_a", "c")
    assert first is not None and first.object_count == 0
    await put(b, "o", 1)  # another process: not seen before the cache expires
    assert await a.container_info("AUTH_a", "c") is first
    await put(a, "p", 2, size=7)  # this process's own writes are added to its entry
    info = await a.container_info("AUTH_a", "c")
    assert info is not None and (info.object_count, info.bytes_used) == (1, 7)
    assert await usage(a) == (2, 17)  # both are in the database
    await b.post_container("AUTH_a", "c", timestamp=ts(3),
                           metadata={"X-Container-Read": "x"})
    monkeypatch.setattr(listings_mod, "CACHE_TTL", 0.0)
    await a.load_container("AUTH_a", "c")
    info = await a.container_info("AUTH_a", "c")
    assert info is not None and info.read_acl == "x"


# -- listings --------------------------------------------------------------------------

TREE = ["a", "a/", "a/b", "a/b/c", "a/c", "b", "b/x", "c-d", "c-e/f"]


@pytest.fixture
async def tree(ls: Listings) -> Listings:
    await ls.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    for i, n in enumerate(TREE):
        await put(ls, n, i + 1)
    return ls


@pytest.mark.parametrize(("query", "expected"), [
    ({}, TREE),
    ({"delimiter": "/"}, ["a", "dir:a/", "b", "dir:b/", "c-d", "dir:c-e/"]),
    ({"delimiter": "/", "reverse": True}, ["dir:c-e/", "c-d", "dir:b/", "b", "dir:a/", "a"]),
    ({"prefix": "a/", "delimiter": "/"}, ["a/", "a/b", "dir:a/b/", "a/c"]),
    ({"path": "a"}, ["a/b", "a/c"]),
    ({"path": "a/"}, ["a/b", "a/c"]),
    ({"delimiter": "/", "marker": "a/"}, ["b", "dir:b/", "c-d", "dir:c-e/"]),
    ({"delimiter": "/", "end_marker": "b"}, ["a", "dir:a/"]),
    ({"delimiter": "/", "limit": 3}, ["a", "dir:a/", "b"]),
    ({"delimiter": "-"}, ["a", "a/", "a/b", "a/b/c", "a/c", "b", "b/x", "dir:c-"]),
    ({"prefix": "c-"}, ["c-d", "c-e/f"]),
    ({"prefix": "a/", "marker": "a/b"}, ["a/b/c", "a/c"]),
    ({"prefix": "b", "marker": "a"}, ["b", "b/x"]),
    ({"prefix": "a", "end_marker": "z"}, ["a", "a/", "a/b", "a/b/c", "a/c"]),
    ({"marker": "a/c", "end_marker": "c-e"}, ["b", "b/x", "c-d"]),
    ({"reverse": True, "marker": "b", "limit": 2}, ["a/c", "a/b/c"]),
    ({"reverse": True, "end_marker": "b"}, ["c-e/f", "c-d", "b/x"]),
    ({"limit": 0}, []),
])
async def test_object_listing(tree: Listings, query: dict[str, object],
                              expected: list[str]) -> None:
    assert await names(tree, **query) == expected


async def test_names_sort_by_utf8_bytes(ls: Listings) -> None:
    await ls.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    words = ["😀", "é", "a", "Z", "A", "z", "\u4e00", "\ufffd", "a b"]
    for i, w in enumerate(words):
        await put(ls, w, i + 1)
    expected = sorted(words, key=lambda w: w.encode())
    assert await names(ls) == expected
    assert await names(ls, reverse=True) == expected[::-1]
    assert await names(ls, marker="z") == ["é", "\u4e00", "\ufffd", "😀"]
    assert await names(ls, prefix="a") == ["a", "a b"]  # "A" is another name
    assert (await usage(ls))[0] == len(words)


async def test_reserved_names_hold_nul(ls: Listings) -> None:
    """Swift's middlewares name their hidden containers and objects with NUL
    (``\x00versions\x00c``); they sort before every other name."""
    hidden = "\x00versions\x00c"
    await ls.put_container("AUTH_a", hidden, timestamp=ts(0), metadata={})
    await ls.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    await put(ls, "\x00o\x009999", 1, c=hidden)
    await put(ls, "\x00o\x001111", 2, c=hidden)
    assert await names(ls, c=hidden, prefix="\x00o\x00") == ["\x00o\x001111", "\x00o\x009999"]
    got = await ls.list_containers("AUTH_a", limit=10)
    assert [r["name"] for r in got] == [hidden, "c"]
    got = await ls.list_containers("AUTH_a", prefix="\x00", delimiter="\x00", limit=10)
    assert got == [{"subdir": "\x00versions\x00"}]
    info = await ls.container_info("AUTH_a", hidden)
    assert info is not None and info.object_count == 2


async def test_delimiter_listing_skips_subdirs_in_few_queries(ls: Listings) -> None:
    await ls.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    async with ls.db.write() as s:  # 3 x 400 names below three subdirs, quickly
        from sqlalchemy import insert

        from onestack.object_store.models import Object
        cid = await ls._container_id(s, "AUTH_a", "c")
        await s.execute(insert(Object), [
            {"container_id": cid, "name": f"{d}/{i:04d}", "timestamp": ts(1).normal,
             "size": 1, "content_type": "x", "etag": "e", "deleted": False}
            for d in ("d1", "d2", "d3") for i in range(400)])
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(ls.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        assert await names(ls, delimiter="/") == ["dir:d1/", "dir:d2/", "dir:d3/"]
    finally:
        event.remove(ls.db.engine.sync_engine, "before_cursor_execute", count)
    assert len(statements) <= 6, statements  # the container, then a query per subdir


async def test_container_listing(ls: Listings) -> None:
    for i, name in enumerate(["b", "a", "a-x", "c/d"]):
        await ls.put_container("AUTH_a", name, timestamp=ts(i), metadata={})
    await put(ls, "o", 10, size=7, c="a")
    rows = await ls.list_containers("AUTH_a", limit=10)
    assert rows[0] == {"name": "a", "count": 1, "bytes": 7,
                       "last_modified": isoformat(ts(1)), "storage_policy": "Policy-0"}
    assert [r["name"] for r in rows] == ["a", "a-x", "b", "c/d"]
    got = await ls.list_containers("AUTH_a", delimiter="-", limit=10)
    assert [r.get("name", r.get("subdir")) for r in got] == ["a", "a-", "b", "c/d"]
    got = await ls.list_containers("AUTH_a", prefix="a", reverse=True, limit=10)
    assert [r["name"] for r in got] == ["a-x", "a"]
    got = await ls.list_containers("AUTH_a", marker="a", end_marker="c", limit=10)
    assert [r["name"] for r in got] == ["a-x", "b"]


def test_isoformat_and_content_type() -> None:
    assert isoformat(Timestamp.parse("1700000000.12345")) == "2023-11-14T22:13:20.123450"
    assert isoformat(Timestamp.parse("0000000001")) == "1970-01-01T00:00:01.000000"
    assert listed_content_type("text/plain") == ("text/plain", None)
    assert listed_content_type("text/plain; charset=utf-8;swift_bytes=123") == (
        "text/plain;charset=utf-8", 123)


# -- group commit of object updates -----------------------------------------------------

async def test_concurrent_object_updates_share_transactions(
    ls: Listings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent updates are committed together, and each caller returns only once
    its own update is visible to any reader."""
    await ls.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    transactions = 0
    real = ls.db.write

    def counted() -> object:
        nonlocal transactions
        transactions += 1
        return real()

    monkeypatch.setattr(ls.db, "write", counted)
    other = Listings(ls.db, ls.settings)  # a reader without this one's cache

    async def one(i: int) -> None:
        await put(ls, f"o{i:02d}", i + 1, size=i)
        assert f"o{i:02d}" in await names(other)

    await asyncio.gather(*(one(i) for i in range(40)))
    assert transactions <= 5  # one for the first, then whole groups
    assert await usage(other) == (40, sum(range(40)))
    acct = await other.account_info("AUTH_a")
    assert (acct.object_count, acct.bytes_used) == (40, sum(range(40)))
    info = await ls.container_info("AUTH_a", "c")  # this process's cache was dropped
    assert info is not None and info.object_count == 40


async def test_a_failing_update_fails_alone(
    ls: Listings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ls.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    real = Listings._apply_container

    async def apply(s: object, container_id: int, updates: list) -> object:  # type: ignore[type-arg]
        if any(u.obj == "bad" for u in updates):
            raise ValueError("bad update")
        return await real(s, container_id, updates)  # type: ignore[arg-type]

    monkeypatch.setattr(Listings, "_apply_container", staticmethod(apply))
    results = await asyncio.gather(
        *(put(ls, name, i + 1, size=10) for i, name in enumerate(["a", "b", "bad", "c", "d"])),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results] == [
        "NoneType", "NoneType", "ValueError", "NoneType", "NoneType"]
    assert await names(ls) == ["a", "b", "c", "d"]
    assert await usage(ls) == (4, 40)


async def test_a_cancelled_caller_still_gets_its_update_committed(ls: Listings) -> None:
    await ls.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    task = asyncio.create_task(put(ls, "o", 1, size=5))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await put(ls, "p", 2, size=1)  # queued after it: committed after it
    assert await names(ls) == ["o", "p"]
    assert await usage(ls) == (2, 6)


async def test_a_read_during_a_group_commit_is_not_cached(
    ls: Listings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container read while updates commit may or may not see them: it is not
    cached, so the cache (which adds this process's own updates to its entry) never
    counts them twice."""
    await ls.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    await put(ls, "before", 1, size=3)
    assert (await ls.container_info("AUTH_a", "c")).object_count == 1  # type: ignore[union-attr]
    real = ls._write
    seen: list[int] = []

    async def write_then_read(fn: object) -> object:
        result = await real(fn)  # type: ignore[arg-type]
        info = await ls.load_container("AUTH_a", "c")  # committed, not yet settled
        assert info is not None
        seen.append(info.object_count)
        return result

    monkeypatch.setattr(ls, "_write", write_then_read)
    await put(ls, "during", 2, size=4)
    assert seen == [2]
    info = await ls.container_info("AUTH_a", "c")
    assert info is not None and (info.object_count, info.bytes_used) == (2, 7)


async def test_metadata_of_a_read_during_a_group_commit_stays_cached(
    ls: Listings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metadata of a container read while updates commit is right whatever the
    commit: callers that use only it (``counts=False``, every object request) are
    served from the cache, while the counters are read again."""
    await ls.put_container("AUTH_a", "c", timestamp=ts(0),
                           metadata={"X-Container-Read": ".r:*"})
    real_write, real_read = ls._write, ls.db.read
    reads = 0

    def counted() -> object:
        nonlocal reads
        reads += 1
        return real_read()

    async def write_then_read(fn: object) -> object:
        result = await real_write(fn)  # type: ignore[arg-type]
        await ls.load_container("AUTH_a", "c")  # committed, not yet settled
        return result

    monkeypatch.setattr(ls, "_write", write_then_read)
    await put(ls, "during", 1, size=4)
    monkeypatch.setattr(ls.db, "read", counted)
    for _ in range(3):
        info = await ls.container_info("AUTH_a", "c", counts=False)
        assert info is not None and info.read_acl == ".r:*"
    assert reads == 0
    info = await ls.container_info("AUTH_a", "c")
    assert info is not None and (info.object_count, info.bytes_used) == (1, 4)
    assert reads == 1
    monkeypatch.setattr(ls, "_write", real_write)
    await put(ls, "after", 2, size=5)  # read before this commit: its counters follow
    info = await ls.container_info("AUTH_a", "c")
    assert info is not None and (info.object_count, info.bytes_used) == (2, 9)
    assert reads == 1


async def test_account_metadata_cache(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """``account_info(stats=False)`` (asked by every upload) is cached like a
    container's info; this process's own account writes drop it."""
    a, b = env.listings(), env.listings()
    assert not (await a.account_info("AUTH_a", stats=False)).exists  # not cached
    await b.put_container("AUTH_a", "c", timestamp=ts(0), metadata={})
    first = await a.account_info("AUTH_a", stats=False)
    assert first.exists and first.metadata == {}
    await b.post_account("AUTH_a", timestamp=ts(1), metadata={"X-Account-Meta-Quota-Bytes": "5"})
    assert await a.account_info("AUTH_a", stats=False) is first  # another process's write
    assert (await a.account_info("AUTH_a")).metadata  # with stats: always read
    await a.post_account("AUTH_a", timestamp=ts(2), metadata={"X-Account-Meta-K": "v"})
    monkeypatch.setattr(listings_mod, "CACHE_TTL", 0.0)
    info = await a.account_info("AUTH_a", stats=False)  # read again, cached for 0 s
    assert info.metadata == {"X-Account-Meta-Quota-Bytes": "5", "X-Account-Meta-K": "v"}
    await b.post_account("AUTH_a", timestamp=ts(3), metadata={"X-Account-Meta-K": ""})
    info = await a.account_info("AUTH_a", stats=False)
    assert info.metadata == {"X-Account-Meta-Quota-Bytes": "5"}
