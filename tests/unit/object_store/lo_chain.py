"""Test helpers for the large-object middlewares: ``slo`` and ``dlo`` over the real
object controller on a real three-device ring, with container listings (what DLO
reads) answered from the in-memory listings the controller updates."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

from objstore_api import MemoryListings, make_state
from objstore_cluster import Cluster

from onestack.object_store import pipeline
from onestack.object_store.api import object as object_api
from onestack.object_store.http import Handler, Headers, Request, Response, error
from onestack.object_store.service.listings import listed_content_type
from onestack.object_store.state import ObjectStoreState

ACCOUNT = "AUTH_t"


def md5(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.md5(raw, usedforsecurity=False).hexdigest()


def _listing(st: ObjectStoreState, req: Request, account: str, container: str) -> Response:
    """A JSON container listing (prefix, marker, the configured page size)."""
    if (account, container) not in st.listings.containers:  # type: ignore[attr-defined]
        return error(404)
    rows = st.listings.listed(account, container)  # type: ignore[attr-defined]
    prefix = req.query.get("prefix", "")
    marker = req.query.get("marker", "")
    limit = st.settings.object_store.container_listing_limit
    items = []
    for name, row in sorted(rows.items()):
        if name.startswith(prefix) and name > marker:
            ctype, size = listed_content_type(row.content_type)
            items.append({"name": name, "hash": row.etag,
                          "bytes": row.size if size is None else size, "content_type": ctype,
                          "last_modified": "2024-01-01T00:00:00.000000"})
    items = items[:limit]
    if req.query.get("format") != "json":
        text = "".join(i["name"] + "\n" for i in items).encode()
        return Response(200, Headers({"Content-Type": "text/plain; charset=utf-8"}), text)
    body = json.dumps(items).encode()
    return Response(200, Headers({"Content-Type": "application/json; charset=utf-8",
                                  "Content-Length": str(len(body))}), body)


@dataclass
class Chain:
    """The ``slo`` and ``dlo`` layers over the object controller, and requests to them."""

    st: ObjectStoreState
    app: Handler
    calls: list[tuple[str, str, dict[str, str]]]

    @property
    def listings(self) -> MemoryListings:
        assert isinstance(self.st.listings, MemoryListings)
        return self.st.listings

    async def req(self, method: str, path: str, body: bytes | None = None, *,
                  query: dict[str, str] | None = None, environ: dict[str, Any] | None = None,
                  **headers: str) -> Response:
        """``path`` below the account (``/c/o``); header names use ``_`` for ``-``."""
        h = Headers({k.replace("_", "-"): v for k, v in headers.items()})
        if body is not None and "content-length" not in h:
            h["Content-Length"] = str(len(body))
        return await self.app(Request(method, f"/v1/{ACCOUNT}{path}", query=dict(query or {}),
                                      headers=h, body=body, environ=dict(environ or {})))

    async def put(self, path: str, data: bytes = b"", **headers: str) -> Response:
        headers.setdefault("Content_Type", "application/octet-stream")
        resp = await self.req("PUT", path, data, **headers)
        assert resp.status == 201, (resp.status, await resp.read())
        return resp

    async def get(self, path: str, **kw: Any) -> tuple[Response, bytes]:
        resp = await self.req("GET", path, **kw)
        return resp, await resp.read()


def build(cluster: Cluster, data_dir: Path, *, plain_backend: bool = False, **conf: Any
          ) -> Chain:
    """The chain; ``plain_backend``: an object layer that ignores the backend
    headers large objects send (``X-Backend-Etag-Is-At`` ...), as older ones do."""
    st = make_state(cluster, data_dir, **conf)
    assert isinstance(st.listings, MemoryListings)
    st.listings.add_container(ACCOUNT, "segs")
    calls: list[tuple[str, str, dict[str, str]]] = []

    async def proxy(req: Request) -> Response:
        calls.append((req.method, req.path, dict(req.query)))
        _, account, container, obj = req.split()
        assert container is not None
        if obj is None:
            return _listing(st, req, account, container)
        if plain_backend:
            for name in req.headers.with_prefix("x-backend-"):
                del req.headers[name[0]]
        return await object_api.handle(st, req, account, container, obj)

    return Chain(st, pipeline.build(proxy, st, names=("slo", "dlo")), calls)


def http_date(seconds: float) -> str:
    return formatdate(seconds, usegmt=True)
