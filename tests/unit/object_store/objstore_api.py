"""Test helpers for the object API: an in-memory stand-in for ``service.listings.Listings``
(the SQL one is tested on its own) and a state over a real ring of device directories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from objstore_cluster import Cluster

from onestack.core.config import ObjectStoreSettings, Settings
from onestack.object_store import ObjectReader, ReplicaReader
from onestack.object_store.api import object as object_api
from onestack.object_store.http import Body, Headers, Request, Response
from onestack.object_store.state import ObjectStoreState
from onestack.object_store.timestamp import Timestamp


@dataclass
class ContainerInfo:
    account: str
    name: str
    object_count: int = 0
    bytes_used: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: str = "0"
    put_timestamp: str = "0"
    read_acl: str | None = None
    write_acl: str | None = None
    sysmeta: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class Row:
    timestamp: Timestamp
    size: int = 0
    content_type: str = ""
    etag: str = ""
    delete_at: int | None = None
    deleted: bool = False


class MemoryListings:
    """Newest-wins rows per object, as the container servers merge updates."""

    def __init__(self) -> None:
        self.containers: dict[tuple[str, str], ContainerInfo] = {}
        self.rows: dict[tuple[str, str, str], Row] = {}

    def add_container(self, account: str, name: str, **kw: Any) -> ContainerInfo:
        info = ContainerInfo(account, name, **kw)
        self.containers[account, name] = info
        return info

    async def container_info(self, account: str, container: str, *,
                             counts: bool = True) -> ContainerInfo | None:
        return self.containers.get((account, container))

    def _merge(self, key: tuple[str, str, str], row: Row) -> None:
        old = self.rows.get(key)
        if old is None or old.timestamp < row.timestamp:
            self.rows[key] = row

    async def object_updated(
        self, account: str, container: str, obj: str, *, timestamp: Timestamp, size: int,
        content_type: str, etag: str, delete_at: int | None = None,
    ) -> None:
        self._merge((account, container, obj),
                    Row(timestamp, size, content_type, etag, delete_at))

    async def object_deleted(
        self, account: str, container: str, obj: str, *, timestamp: Timestamp
    ) -> None:
        self._merge((account, container, obj), Row(timestamp, deleted=True))

    async def expired(self, now: float, limit: int = 1000) -> list[tuple[str, str, str, Timestamp]]:
        found = [(*key, row.timestamp)
                 for key, row in sorted(self.rows.items())
                 if not row.deleted and row.delete_at is not None and row.delete_at <= now]
        return found[:limit]

    def listed(self, account: str = "AUTH_t", container: str = "c") -> dict[str, Row]:
        return {o: r for (a, c, o), r in self.rows.items()
                if (a, c) == (account, container) and not r.deleted}


class TrackingReader(ObjectReader):
    """A real reader that counts the replicas it hands out and those closed again."""

    opened = 0
    closed = 0

    async def open(
        self, account: str, container: str, obj: str, *, newest: bool = True
    ) -> ReplicaReader:
        replica = await super().open(account, container, obj, newest=newest)
        self.opened += 1
        close = replica.close

        async def counted() -> None:
            self.closed += 1
            await close()

        replica.close = counted  # type: ignore[method-assign]
        return replica


def make_state(cluster: Cluster, data_dir: Path, **conf: Any) -> ObjectStoreState:
    settings = Settings(data_dir=data_dir, object_store=ObjectStoreSettings(**conf))
    listings = MemoryListings()
    listings.add_container("AUTH_t", "c")
    return ObjectStoreState(
        settings=settings, db=None,  # type: ignore[arg-type] - the object API uses no SQL
        ring=cluster.ring, writer=cluster.writer,
        reader=TrackingReader(cluster.ring, cluster.backend),
        listings=listings,  # type: ignore[arg-type]
    )


async def call(
    st: ObjectStoreState, method: str, obj: str = "o", *, headers: dict[str, str] | None = None,
    body: Body | None = None, container: str = "c", account: str = "AUTH_t",
    environ: dict[str, Any] | None = None,
) -> Response:
    """One request straight into the object handler; a bytes body gets its Content-Length."""
    h = Headers(headers or {})
    if isinstance(body, bytes) and "content-length" not in h and "transfer-encoding" not in h:
        h["Content-Length"] = str(len(body))
    req = Request(method, f"/v1/{account}/{container}/{obj}", headers=h, body=body,
                  environ=dict(environ or {}))
    return await object_api.handle(st, req, account, container, obj)


async def chunks(*parts: bytes, error: BaseException | None = None) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    if error is not None:
        raise error
