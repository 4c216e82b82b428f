"""Accounts, containers and the names of objects in SQL: what Swift keeps in its
account and container databases (records, metadata, listings, usage).

Object data lives in the ring; the object controller reports each PUT and
DELETE here (``object_updated``/``object_deleted``). A row per object name
holds its newest version, a tombstone after a DELETE, so that a PUT that
finishes late with an older timestamp cannot bring back a deleted object nor
replace a newer one. Container usage changes by increments in the same
transaction as the row (``n = n + d``), after the row is locked, so concurrent
writers never lose an update; conflicts between writers (a deadlock, two first
inserts of a name) roll back and are retried.

Listings follow Swift's ``list_objects_iter``: names in UTF-8 byte order, and
with a delimiter each ``subdir`` is reported once, the next query starting past
it instead of reading every name below it.

Object updates are group-committed: the updates of concurrent PUTs and DELETEs
queue up while a transaction is running and the next transaction applies all of
them, one after the other, as each would have been applied alone (SQL engines
serialise writers, so one transaction per update would make every small PUT
wait its turn). Each caller returns only once its update is committed; when a
group fails, each update is tried again on its own, so one bad update never
fails the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core import errors
from onestack.core.config import Settings
from onestack.core.db import Database
from onestack.object_store.models import Account, Container, Object
from onestack.object_store.timestamp import Timestamp

T = TypeVar("T")

STORAGE_POLICY = "Policy-0"
CACHE_TTL = 3.0  # seconds a container's info may be reused by this process
CACHE_SIZE = 10_000
# the tag of a cached container whose metadata holds but whose counters may miss a
# group commit its read overlapped (see load_container)
UNCOUNTED = -1
WRITE_ATTEMPTS = 8
MAX_GROUP = 256  # object updates committed in one transaction at most
# With a delimiter, names are read a page at a time (a subdir ends the page);
# pages grow while no subdir shows up.
FIRST_PAGE = 64

ACC = Account.__table__
CON = Container.__table__
OBJ = Object.__table__

# PostgreSQL SQLSTATEs and MariaDB/MySQL error numbers of transient conflicts:
# serialization failure, deadlock; deadlock, lock wait timeout.
_RETRY_SQLSTATES = {"40001", "40P01"}
_RETRY_MYSQL = {1213, 1205}


def _strip(metadata: dict[str, str], prefix: str) -> dict[str, str]:
    """``{X-<prefix>foo: v}`` -> ``{foo: v}`` (keys lower-case), as Swift's info dicts."""
    n = len(prefix)
    return {k[n:].lower(): v for k, v in metadata.items() if k.lower().startswith(prefix)}


@dataclass(frozen=True)
class AccountInfo:
    """An account as its controller and the auth layer see it. A missing
    account reads as an empty one (``exists`` false), as Swift's account
    autocreate answers; a deleted one has ``deleted`` set."""

    name: str
    container_count: int
    object_count: int
    bytes_used: int
    metadata: dict[str, str]
    created_at: Timestamp
    put_timestamp: Timestamp
    exists: bool
    deleted: bool = False

    @functools.cached_property
    def meta(self) -> dict[str, str]:
        return _strip(self.metadata, "x-account-meta-")

    @functools.cached_property
    def sysmeta(self) -> dict[str, str]:
        return _strip(self.metadata, "x-account-sysmeta-")


@dataclass(frozen=True)
class ContainerInfo:
    """A container as the controllers and middlewares see it (Swift's
    ``get_container_info``); ``metadata`` is every stored header."""

    account: str
    name: str
    object_count: int
    bytes_used: int
    metadata: dict[str, str]
    created_at: Timestamp
    put_timestamp: Timestamp

    @property
    def read_acl(self) -> str | None:
        return self.metadata.get("X-Container-Read")

    @property
    def write_acl(self) -> str | None:
        return self.metadata.get("X-Container-Write")

    @functools.cached_property
    def sysmeta(self) -> dict[str, str]:
        return _strip(self.metadata, "x-container-sysmeta-")

    @functools.cached_property
    def meta(self) -> dict[str, str]:
        return _strip(self.metadata, "x-container-meta-")


# -- listing entries ------------------------------------------------------------------

def isoformat(ts: Timestamp | str) -> str:
    """Swift's ``Timestamp.isoformat``: UTC, no zone, always six decimals."""
    if isinstance(ts, str):
        ts = Timestamp.parse(ts)
    seconds, ticks = divmod(ts.ticks, 100_000)
    day = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{day}.{ticks * 10:06d}"


_TOKEN = r'[^()<>@,;:\"/\[\]?={}\x00-\x20\x7f]+'
_PARAM = re.compile(r'(?:\s*;\s*(' + _TOKEN + r')\s*(?:=\s*(' + _TOKEN + r'|"(?:[^"\\]|\\.)*"))?)')


def listed_content_type(content_type: str) -> tuple[str, int | None]:
    """The content type a listing shows and the size a ``swift_bytes`` parameter
    gives (large-object manifests record their total size so). Parameters are
    rewritten without spaces, as Swift's listings print them."""
    if ";" not in content_type:
        return content_type, None
    main, params = content_type.split(";", 1)
    size: int | None = None
    for key, value in _PARAM.findall(";" + params):
        key, value = key.strip(), value.strip()
        if key == "swift_bytes":
            try:
                size = int(value)
            except ValueError:
                size = None
        else:
            main += f";{key}={value}"
    return main, size


def _object_entry(row: Row[Any]) -> dict[str, Any]:
    content_type, size = listed_content_type(row.content_type)
    return {
        "bytes": row.size if size is None else size,
        "hash": row.etag,
        "name": row.name,
        "content_type": content_type,
        "last_modified": isoformat(row.timestamp),
    }


def _container_entry(row: Row[Any]) -> dict[str, Any]:
    return {
        "name": row.name,
        "count": row.object_count,
        "bytes": row.bytes_used,
        "last_modified": isoformat(row.put_timestamp),
        "storage_policy": STORAGE_POLICY,
    }


# -- the walk over names ----------------------------------------------------------------

def _after(prefix: str) -> str | None:
    """The smallest string above every string starting with ``prefix``
    (``None``: there is none). Code point order is UTF-8 byte order."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if 0xD800 <= code <= 0xDFFF:
            code = 0xE000  # surrogates are no characters of UTF-8 text
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


Fetch = Callable[[list[ColumnElement[bool]], int], Awaitable[Sequence[Row[Any]]]]


@dataclass
class _Walk:
    """One listing request in Swift's terms (markers already swapped when reversed)."""

    column: Any
    prefix: str | None
    delimiter: str | None
    marker: str | None
    end_marker: str | None
    limit: int
    reverse: bool
    path: str | None
    force_gte: bool = False

    def conditions(self) -> list[ColumnElement[bool]]:
        col, prefix = self.column, self.prefix
        end_prefix = _after(prefix) if prefix else None
        out: list[ColumnElement[bool]] = []
        if self.end_marker and (not prefix or end_prefix is None or self.end_marker < end_prefix):
            out.append(col < self.end_marker)
        elif prefix and end_prefix is not None:
            out.append(col < end_prefix)
        if self.force_gte and self.marker is not None:
            out.append(col >= self.marker)
        elif self.marker and (not prefix or self.marker >= prefix):
            out.append(col > self.marker)
        elif prefix:
            out.append(col >= prefix)
        self.force_gte = False
        return out

    def skip_past(self, directory: str) -> bool:
        """Continue after every name under ``directory``; false when nothing can follow."""
        if self.reverse:
            self.end_marker = directory
            return True
        after = _after(directory)
        if after is None:
            return False
        self.marker, self.force_gte = after, True
        return True


async def _walk(fetch: Fetch, w: _Walk) -> list[Row[Any] | str]:
    """Rows (and subdir names, as ``str``) of one listing, as Swift's
    ``list_objects_iter``/``list_containers_iter`` give them."""
    if w.reverse:
        w.marker, w.end_marker = w.end_marker, w.marker
    if w.path is not None:
        w.prefix = w.path = w.path.rstrip("/") + "/" if w.path else w.path
        w.delimiter = "/"
    elif w.delimiter and not w.prefix:
        w.prefix = ""
    if w.limit <= 0:
        return []
    if w.prefix is None or not w.delimiter:
        return list(await fetch(w.conditions(), w.limit))
    return await _walk_delimited(fetch, w, w.prefix, w.delimiter)


async def _walk_delimited(fetch: Fetch, w: _Walk, prefix: str, delim: str) -> list[Row[Any] | str]:
    out: list[Row[Any] | str] = []
    first_marker = w.marker
    page = FIRST_PAGE
    while len(out) < w.limit:
        want = min(w.limit - len(out), page)
        rows = await fetch(w.conditions(), want)
        skipped = False
        for row in rows:
            name: str = row[0]
            if w.reverse:
                w.end_marker = name
            else:
                w.marker = name
            end = name.find(delim, len(prefix))
            if w.path is not None:
                if name == w.path:
                    continue
                if end >= 0 and len(name) > end + len(delim):
                    skipped = True  # deeper than the path: not listed
                    if not w.skip_past(name[:end + len(delim)]):
                        return out
                    break
            elif end >= 0:
                directory = name[:end + len(delim)]
                if directory != first_marker:
                    out.append(directory)
                skipped = True
                if not w.skip_past(directory):
                    return out
                break
            out.append(row)
            if len(out) >= w.limit:
                return out
        if not skipped and len(rows) < want:
            break
        page = FIRST_PAGE if skipped else page * 2
    return out


# -- metadata ------------------------------------------------------------------------

def merge_metadata(current: dict[str, str], updates: dict[str, str]) -> dict[str, str]:
    """``current`` with ``updates`` applied; an empty value removes the header."""
    merged = dict(current)
    lower = {k.lower(): k for k in merged}
    for key, value in updates.items():
        old = lower.pop(key.lower(), None)
        if old is not None:
            del merged[old]
        if value != "":
            merged[key] = value
            lower[key.lower()] = key
    return merged


# -- the service -----------------------------------------------------------------------

@dataclass
class _Update:
    """One queued object update (``Listings._record``) and the future its caller awaits."""

    account: str
    container: str
    obj: str
    values: dict[str, Any]
    done: asyncio.Future[None]


class _Changed(Exception):
    """A row changed between its read and its update: the transaction is retried."""


def _retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True  # a concurrent first insert of the same name: the retry sees it
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    args = getattr(orig, "args", ())
    if args and args[0] in _RETRY_MYSQL:
        return True
    # SQLite: another process (another engine) held the write lock
    return "database is locked" in str(orig)


class Listings:
    """Account and container records, object names and usage (see the module doc)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.limits = settings.object_store
        # (account, container) -> (expiry, info, the group commit it may have overlapped,
        # 0, or UNCOUNTED): this process's own object updates are added to the counters
        # as they commit, so a busy container is not read again for every object PUT
        self._cache: dict[tuple[str, str], tuple[float, ContainerInfo, int]] = {}
        self._accounts: dict[str, tuple[float, AccountInfo]] = {}  # without counters
        # bumped by every local write, so that a read that started before a write
        # does not put what it read into the cache after the write dropped it
        self._generation = 0
        # object updates waiting for the next group commit, the task committing them,
        # the number of the last group and whether it is committing now
        self._queue: list[_Update] = []
        self._group = 0
        self._committing = False
        self._flusher: asyncio.Task[None] | None = None

    # -- transactions -----------------------------------------------------------

    async def _write(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``fn`` in a write transaction, again when it lost a conflict."""
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.db.write() as session:
                    return await fn(session)
            except DBAPIError as exc:
                if attempt >= WRITE_ATTEMPTS or not _retryable(exc):
                    raise
            except _Changed:
                if attempt >= WRITE_ATTEMPTS:
                    raise
            await asyncio.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))

    # -- lookups --------------------------------------------------------------------

    @staticmethod
    async def _account_row(s: AsyncSession, account: str, *, lock: bool = False) -> Row[Any] | None:
        q = select(ACC).where(ACC.c.name == account)
        if lock:
            q = q.with_for_update()
        return (await s.execute(q)).one_or_none()

    @staticmethod
    def _container_query(account: str, container: str) -> Any:
        return (
            select(CON, ACC.c.name.label("account_name"))
            .join(ACC, ACC.c.id == CON.c.account_id)
            .where(ACC.c.name == account, ACC.c.deleted.is_(False), CON.c.name == container)
        )

    async def _container_row(
        self, s: AsyncSession, account: str, container: str, *, lock: bool = False
    ) -> Row[Any] | None:
        q = self._container_query(account, container)
        if lock:
            q = q.with_for_update(of=CON)
        return (await s.execute(q)).one_or_none()

    async def _container_id(self, s: AsyncSession, account: str, container: str) -> int | None:
        row = await self._container_row(s, account, container)
        return None if row is None else int(row.id)

    # -- accounts ---------------------------------------------------------------------

    async def account_info(self, account: str, *, stats: bool = True) -> AccountInfo:
        """The account; with ``stats=False`` its counters are left at 0 and not
        summed over its containers (for callers that only need its metadata, such as
        the account quota check of every upload): that one comes from this process's
        cache when read in the last ``CACHE_TTL`` seconds."""
        if not stats:
            hit = self._accounts.get(account)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        generation = self._generation
        info = await self._load_account(account, stats)
        if not stats and info.exists and generation == self._generation:
            if len(self._accounts) >= CACHE_SIZE:
                self._accounts.clear()
            self._accounts[account] = (time.monotonic() + CACHE_TTL, info)
        return info

    async def _load_account(self, account: str, stats: bool) -> AccountInfo:
        async with self.db.read() as s:
            row = await self._account_row(s, account)
            if row is None:
                now = Timestamp.now()
                return AccountInfo(account, 0, 0, 0, {}, now, now, exists=False)
            totals: Any = (0, 0, 0)
            if stats:
                totals = (await s.execute(
                    select(func.count(), func.coalesce(func.sum(CON.c.object_count), 0),
                           func.coalesce(func.sum(CON.c.bytes_used), 0))
                    .where(CON.c.account_id == row.id)
                )).one()
        return AccountInfo(
            name=account, container_count=int(totals[0]), object_count=int(totals[1]),
            bytes_used=int(totals[2]), metadata=dict(row.metadata or {}),
            created_at=Timestamp.parse(row.created_at),
            put_timestamp=Timestamp.parse(row.put_timestamp),
            exists=not row.deleted, deleted=bool(row.deleted),
        )

    async def _ensure_account(self, s: AsyncSession, account: str, ts: Timestamp) -> int:
        """The id of ``account``, created if missing (Swift's account autocreate).

        Raises:
            errors.NotFound: the account was deleted.
        """
        row = await self._account_row(s, account)
        if row is None:
            result = await s.execute(insert(ACC).values(
                name=account, created_at=ts.normal, put_timestamp=ts.normal, metadata={}))
            return int(result.inserted_primary_key[0])
        if row.deleted:
            raise errors.NotFound(f"Account {account} was deleted")
        return int(row.id)

    async def put_account(self, account: str, *, timestamp: Timestamp,
                          metadata: dict[str, str]) -> bool:
        """Create ``account`` or update it; whether it was created.

        Raises:
            errors.Forbidden: ``Recently deleted`` (Swift keeps a deleted account's name).
            errors.BadRequest: the merged metadata breaks the limits.
        """

        async def change(s: AsyncSession) -> bool:
            row = await self._account_row(s, account, lock=True)
            if row is not None and row.deleted:
                raise errors.Forbidden("Recently deleted")
            merged = merge_metadata(row.metadata if row is not None else {}, metadata)
            self._check_metadata(merged, "x-account-meta-")
            if row is None:
                await s.execute(insert(ACC).values(
                    name=account, created_at=timestamp.normal, put_timestamp=timestamp.normal,
                    metadata=merged))
                return True
            await s.execute(update(ACC).where(ACC.c.id == row.id).values(
                put_timestamp=max(row.put_timestamp, timestamp.normal), metadata=merged))
            return False

        try:
            return await self._write(change)
        finally:
            self._forget_account(account)

    async def post_account(self, account: str, *, timestamp: Timestamp,
                           metadata: dict[str, str]) -> None:
        """Update the metadata of ``account`` (created first if missing).

        Raises:
            errors.NotFound: the account was deleted.
            errors.BadRequest: the merged metadata breaks the limits.
        """

        async def change(s: AsyncSession) -> None:
            await self._ensure_account(s, account, timestamp)
            row = await self._account_row(s, account, lock=True)
            assert row is not None
            merged = merge_metadata(row.metadata or {}, metadata)
            self._check_metadata(merged, "x-account-meta-")
            await s.execute(update(ACC).where(ACC.c.id == row.id).values(metadata=merged))

        try:
            await self._write(change)
        finally:
            self._forget_account(account)

    async def delete_account(self, account: str, *, timestamp: Timestamp) -> None:
        """Mark ``account`` deleted: it answers 410 and its name cannot be reused.
        Its containers stay (Swift's account reaper would empty them).

        Raises:
            errors.NotFound: no such account (or already deleted).
        """

        async def change(s: AsyncSession) -> None:
            row = await self._account_row(s, account, lock=True)
            if row is None or row.deleted:
                raise errors.NotFound()
            await s.execute(update(ACC).where(ACC.c.id == row.id).values(
                deleted=True, delete_timestamp=timestamp.normal))

        await self._write(change)
        self._forget_account(account)

    def _check_metadata(self, merged: dict[str, str], prefix: str) -> None:
        """Swift's database-side limits on the whole stored set (a request alone
        may pass them and still take an account or container over)."""
        count = size = 0
        for key, value in merged.items():
            if value and key.lower().startswith(prefix):
                count += 1
                size += len(key) - len(prefix) + len(value)
        if count > self.limits.max_meta_count:
            raise errors.BadRequest(f"Too many metadata items; max {self.limits.max_meta_count}")
        if size > self.limits.max_meta_overall_size:
            raise errors.BadRequest(
                f"Total metadata too large; max {self.limits.max_meta_overall_size}")

    # -- containers -------------------------------------------------------------------

    async def container_info(self, account: str, container: str, *,
                             counts: bool = True) -> ContainerInfo | None:
        """The container, from this process's cache when read in the last
        ``CACHE_TTL`` seconds (every object request asks); ``None`` if missing.

        With ``counts=False`` the caller uses only its existence and metadata
        (ACLs, sysmeta): then a cached read whose counters may miss a concurrent
        group commit still serves, so that a container under a stream of PUTs is
        not read from the database by every one of them."""
        hit = self._cache.get((account, container))
        if (hit is not None and hit[0] > time.monotonic()
                and (not counts or hit[2] != UNCOUNTED)):
            return hit[1]
        return await self.load_container(account, container)

    async def load_container(self, account: str, container: str) -> ContainerInfo | None:
        """The container as stored now (and cached for ``container_info``)."""
        generation, group, committing = self._generation, self._group, self._committing
        async with self.db.read() as s:
            row = await self._container_row(s, account, container)
        key = (account, container)
        if row is None:
            self._cache.pop(key, None)
            return None
        info = ContainerInfo(
            account=account, name=container, object_count=int(row.object_count),
            bytes_used=int(row.bytes_used), metadata=dict(row.metadata or {}),
            created_at=Timestamp.parse(row.created_at),
            put_timestamp=Timestamp.parse(row.put_timestamp),
        )
        # A read that overlapped a group commit may or may not include its changes: it is
        # tagged with the group (whose settling leaves its counters unknown), or as
        # UNCOUNTED when that group has settled already. Its metadata holds either way:
        # group commits change only counters and rows of objects.
        overlapped = committing or self._group != group
        if generation == self._generation:
            if len(self._cache) >= CACHE_SIZE:
                self._prune()
            tag = 0 if not overlapped else self._group if self._committing else UNCOUNTED
            self._cache[key] = (time.monotonic() + CACHE_TTL, info, tag)
        return info

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, (until, _, _) in self._cache.items() if until <= now]:
            del self._cache[key]
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()

    def _forget(self, account: str, container: str) -> None:
        self._generation += 1
        self._cache.pop((account, container), None)

    def _forget_account(self, account: str) -> None:
        self._generation += 1
        self._accounts.pop(account, None)
        for key in [k for k in self._cache if k[0] == account]:
            del self._cache[key]

    async def put_container(self, account: str, container: str, *, timestamp: Timestamp,
                            metadata: dict[str, str]) -> bool:
        """Create ``container`` (and its account if missing) or update it; whether
        it was created.

        Raises:
            errors.NotFound: the account was deleted.
            errors.BadRequest: the merged metadata breaks the limits.
        """

        async def change(s: AsyncSession) -> bool:
            account_id = await self._ensure_account(s, account, timestamp)
            row = await self._container_row(s, account, container, lock=True)
            merged = merge_metadata(row.metadata if row is not None else {}, metadata)
            self._check_metadata(merged, "x-container-meta-")
            if row is None:
                await s.execute(insert(CON).values(
                    account_id=account_id, name=container, created_at=timestamp.normal,
                    put_timestamp=timestamp.normal, metadata=merged, object_count=0,
                    bytes_used=0))
                return True
            await s.execute(update(CON).where(CON.c.id == row.id).values(
                put_timestamp=max(row.put_timestamp, timestamp.normal), metadata=merged))
            return False

        try:
            return await self._write(change)
        finally:
            self._forget(account, container)

    async def post_container(self, account: str, container: str, *, timestamp: Timestamp,
                             metadata: dict[str, str]) -> None:
        """Update the metadata of ``container`` (and its put timestamp, as Swift does).

        Raises:
            errors.NotFound: no such container.
            errors.BadRequest: the merged metadata breaks the limits.
        """

        async def change(s: AsyncSession) -> None:
            row = await self._container_row(s, account, container, lock=True)
            if row is None:
                raise errors.NotFound()
            merged = merge_metadata(row.metadata or {}, metadata)
            self._check_metadata(merged, "x-container-meta-")
            await s.execute(update(CON).where(CON.c.id == row.id).values(
                put_timestamp=max(row.put_timestamp, timestamp.normal), metadata=merged))

        try:
            await self._write(change)
        finally:
            self._forget(account, container)

    async def delete_container(self, account: str, container: str, *,
                               timestamp: Timestamp) -> None:
        """Delete an empty container (with its tombstones).

        Raises:
            errors.NotFound: no such container.
            errors.Conflict: it still holds objects.
        """

        async def change(s: AsyncSession) -> None:
            row = await self._container_row(s, account, container, lock=True)
            if row is None:
                raise errors.NotFound()
            if row.object_count > 0:
                raise errors.Conflict()
            await s.execute(delete(OBJ).where(OBJ.c.container_id == row.id))
            await s.execute(delete(CON).where(CON.c.id == row.id))

        try:
            await self._write(change)
        finally:
            self._forget(account, container)

    # -- objects ----------------------------------------------------------------------

    async def object_updated(
        self, account: str, container: str, obj: str, *, timestamp: Timestamp, size: int,
        content_type: str, etag: str, delete_at: int | None = None,
    ) -> None:
        """Record a PUT of ``obj`` at ``timestamp`` unless a newer PUT or DELETE is
        recorded; a missing container (deleted meanwhile) is ignored."""
        await self._record(account, container, obj, {
            "timestamp": timestamp.normal, "size": size, "content_type": content_type,
            "etag": etag, "deleted": False, "delete_at": delete_at,
        })

    async def object_deleted(self, account: str, container: str, obj: str, *,
                             timestamp: Timestamp) -> None:
        """Record a DELETE of ``obj`` at ``timestamp`` (a tombstone) unless newer."""
        await self._record(account, container, obj, {
            "timestamp": timestamp.normal, "size": 0, "content_type": "", "etag": "",
            "deleted": True, "delete_at": None,
        })

    async def _record(self, account: str, container: str, obj: str,
                      values: dict[str, Any]) -> None:
        """Queue the update for the next group commit and wait until it is committed."""
        loop = asyncio.get_running_loop()
        update_ = _Update(account, container, obj, values, loop.create_future())
        self._queue.append(update_)
        flusher = self._flusher
        if flusher is None or flusher.done() or flusher.get_loop() is not loop:
            self._flusher = loop.create_task(self._flush())
        # a cancelled caller leaves its update queued: the object is already written
        await asyncio.shield(update_.done)

    async def _flush(self) -> None:
        """Commit what is queued, a group per transaction, until the queue is empty."""
        while self._queue:
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
            try:
                await self._commit_group(group)
            except BaseException:  # cancelled (shutdown): nobody waits for ever
                for u in group + self._queue:
                    u.done.cancel()
                raise

    async def _commit_group(self, group: list[_Update]) -> None:
        # a read of a container that overlaps this transaction may or may not see the
        # group's changes: see load_container
        self._group += 1
        self._committing = True
        try:
            await self._commit_or_split(group)
        finally:
            self._committing = False

    async def _commit_or_split(self, group: list[_Update]) -> None:
        try:
            deltas = await self._write(lambda s: self._apply(s, group))
        except Exception as exc:  # noqa: BLE001 - handed to the waiting callers
            if len(group) == 1:
                self._settle(group, {}, exc)
                return
            # one update may be at fault: each on its own, so that only it fails
            for u in group:
                try:
                    one = await self._write(functools.partial(self._apply, group=[u]))
                except Exception as failed:  # noqa: BLE001 - handed to the waiting caller
                    self._settle([u], {}, failed)
                else:
                    self._settle([u], one, None)
            return
        self._settle(group, deltas, None)

    def _settle(self, group: list[_Update], deltas: dict[tuple[str, str], tuple[int, int]],
                exc: Exception | None) -> None:
        """Bring the cached counters up to date, then tell the callers."""
        for key, (d_count, d_bytes) in deltas.items():
            hit = self._cache.get(key)
            if hit is None:
                continue
            until, info, tag = hit
            if tag == UNCOUNTED:
                continue
            if tag == self._group:  # read during this transaction: it may hold the changes
                self._cache[key] = (until, info, UNCOUNTED)
            else:  # read before it began: add what it changed
                self._cache[key] = (until, dataclasses.replace(
                    info, object_count=info.object_count + d_count,
                    bytes_used=info.bytes_used + d_bytes), 0)
        for u in group:
            if u.done.done():
                continue
            if exc is None:
                u.done.set_result(None)
            else:
                u.done.set_exception(exc)

    async def _apply(
        self, s: AsyncSession, group: list[_Update]
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """The updates of ``group`` in the transaction ``s``, with the result of applying
        them one after the other, in a few statements per container: one read of the
        rows they touch, one insert of the new names, an update per replaced row, and
        one change of the counters by the sum. Returns the changes of the counters by
        (account, container)."""
        by_container: dict[tuple[str, str], list[_Update]] = {}
        for u in group:
            by_container.setdefault((u.account, u.container), []).append(u)
        deltas: dict[tuple[str, str], tuple[int, int]] = {}
        for key, updates in by_container.items():
            container_id = await self._container_id(s, *key)
            if container_id is not None:  # a missing container (deleted meanwhile): ignored
                deltas[key] = await self._apply_container(s, container_id, updates)
        return deltas

    @staticmethod
    async def _apply_container(
        s: AsyncSession, container_id: int, updates: list[_Update]
    ) -> tuple[int, int]:
        names = sorted({u.obj for u in updates})
        rows = (await s.execute(
            select(OBJ.c.name, OBJ.c.timestamp, OBJ.c.size, OBJ.c.deleted)
            .where(OBJ.c.container_id == container_id, OBJ.c.name.in_(names))
            .order_by(OBJ.c.name).with_for_update()
        )).all()
        stored = {r.name: r for r in rows}
        # each name's newest version so far: (timestamp, size, deleted, values to write)
        current: dict[str, tuple[str, int, bool, dict[str, Any] | None]] = {
            r.name: (r.timestamp, int(r.size), bool(r.deleted), None) for r in rows}
        d_count = d_bytes = 0
        for u in updates:
            values = u.values
            old = current.get(u.obj)
            if old is None:
                count, used = 0, 0
            elif old[0] >= values["timestamp"]:
                continue  # a newer version is recorded
            else:
                count, used = (0, 0) if old[2] else (1, old[1])
            live = not values["deleted"]
            d_count += int(live) - count
            d_bytes += (values["size"] if live else 0) - used
            current[u.obj] = (values["timestamp"], values["size"], values["deleted"], values)
        written = {name: v for name, (_, _, _, v) in current.items() if v is not None}
        new = [dict(v, container_id=container_id, name=name)
               for name, v in written.items() if name not in stored]
        if new:
            await s.execute(insert(OBJ), new)
        for name, v in written.items():
            if name not in stored:
                continue
            # compare-and-set on the version read: where the read took no lock
            # (SQLite reads outside the write transaction) a change in between
            # makes this match nothing, and the attempt is made again
            done = await s.execute(update(OBJ).where(
                OBJ.c.container_id == container_id, OBJ.c.name == name,
                OBJ.c.timestamp == stored[name].timestamp).values(**v))
            if done.rowcount != 1:
                raise _Changed()
        if d_count or d_bytes:
            await s.execute(update(CON).where(CON.c.id == container_id).values(
                object_count=CON.c.object_count + d_count,
                bytes_used=CON.c.bytes_used + d_bytes))
        return d_count, d_bytes

    async def expired(self, now: float, limit: int = 1000) -> list[tuple[str, str, str, Timestamp]]:
        """Live objects whose ``X-Delete-At`` is at or before ``now``, soonest first:
        ``(account, container, object, timestamp of the version)``."""
        q = (
            select(ACC.c.name.label("a"), CON.c.name.label("c"), OBJ.c.name.label("o"),
                   OBJ.c.timestamp)
            .select_from(OBJ.join(CON, CON.c.id == OBJ.c.container_id)
                         .join(ACC, ACC.c.id == CON.c.account_id))
            .where(OBJ.c.delete_at.is_not(None), OBJ.c.delete_at <= int(now),
                   OBJ.c.deleted.is_(False))
            .order_by(OBJ.c.delete_at)
            .limit(limit)
        )
        async with self.db.read() as s:
            rows = (await s.execute(q)).all()
        return [(r.a, r.c, r.o, Timestamp.parse(r.timestamp)) for r in rows]

    async def reclaim(self, before: Timestamp, limit: int = 1000) -> int:
        """Drop up to ``limit`` tombstones older than ``before`` (Swift reclaims
        them after a week, ``reclaim_age``); how many were dropped."""

        async def change(s: AsyncSession) -> int:
            rows = (await s.execute(
                select(OBJ.c.container_id, OBJ.c.name)
                .where(OBJ.c.deleted.is_(True), OBJ.c.timestamp < before.normal).limit(limit)
            )).all()
            for r in rows:
                await s.execute(delete(OBJ).where(
                    OBJ.c.container_id == r.container_id, OBJ.c.name == r.name,
                    OBJ.c.deleted.is_(True), OBJ.c.timestamp < before.normal))
            return len(rows)

        return await self._write(change)

    # -- listings ---------------------------------------------------------------------

    async def list_objects(
        self, account: str, container: str, *, prefix: str | None = None,
        delimiter: str | None = None, marker: str | None = None, end_marker: str | None = None,
        limit: int, reverse: bool = False, path: str | None = None,
    ) -> list[dict[str, Any]]:
        """A container listing's entries (Swift's JSON listing rows, ``{"subdir": ...}``
        for the names a delimiter groups)."""
        walk = _Walk(OBJ.c.name, prefix, delimiter, marker, end_marker, limit, reverse, path)
        async with self.db.read() as s:
            container_id = await self._container_id(s, account, container)
            if container_id is None:
                return []

            async def fetch(conds: list[ColumnElement[bool]], n: int) -> Sequence[Row[Any]]:
                q = (select(OBJ.c.name, OBJ.c.timestamp, OBJ.c.size, OBJ.c.content_type,
                            OBJ.c.etag)
                     .where(OBJ.c.container_id == container_id, OBJ.c.deleted.is_(False), *conds)
                     .order_by(OBJ.c.name.desc() if reverse else OBJ.c.name).limit(n))
                return (await s.execute(q)).all()

            found = await _walk(fetch, walk)
        return [{"subdir": x} if isinstance(x, str) else _object_entry(x) for x in found]

    async def list_containers(
        self, account: str, *, prefix: str | None = None, delimiter: str | None = None,
        marker: str | None = None, end_marker: str | None = None, limit: int,
        reverse: bool = False,
    ) -> list[dict[str, Any]]:
        """An account listing's entries (name, count, bytes, last_modified, policy)."""
        walk = _Walk(CON.c.name, prefix, delimiter, marker, end_marker, limit, reverse, None)
        async with self.db.read() as s:
            row = await self._account_row(s, account)
            if row is None or row.deleted:
                return []
            account_id = row.id

            async def fetch(conds: list[ColumnElement[bool]], n: int) -> Sequence[Row[Any]]:
                q = (select(CON.c.name, CON.c.object_count, CON.c.bytes_used,
                            CON.c.put_timestamp)
                     .where(CON.c.account_id == account_id, *conds)
                     .order_by(CON.c.name.desc() if reverse else CON.c.name).limit(n))
                return (await s.execute(q)).all()

            found = await _walk(fetch, walk)
        return [{"subdir": x} if isinstance(x, str) else _container_entry(x) for x in found]
