"""Test helpers for the TempURL, FormPost and bulk middlewares: a small in-memory Swift
below the middleware (what the layers under it would answer) and the account and
container records the middlewares read their keys from."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onestack.core import config
from onestack.object_store.http import Headers, Request, Response, error, read_all
from onestack.object_store.state import ObjectStoreState


@dataclass
class Info:
    metadata: dict[str, str] = field(default_factory=dict)
    exists: bool = True


class Listings:
    """Account and container records, as ``st.listings`` gives them."""

    def __init__(self) -> None:
        self.accounts: dict[str, Info] = {}
        self.containers: dict[tuple[str, str], Info] = {}

    async def account_info(self, account: str, *, stats: bool = True) -> Info:
        return self.accounts.get(account, Info(exists=False))

    async def container_info(self, account: str, container: str, *,
                             counts: bool = True) -> Info | None:
        return self.containers.get((account, container))


@dataclass
class Seen:
    """A request as the layer below the middleware received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    environ: dict[str, Any]


class FakeSwift:
    """Objects and containers in memory, answering as the proxy would; it asks
    ``swift.authorize`` when the request carries one, as the controllers do."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[Headers, bytes]] = {}
        self.containers: set[str] = set()
        self.seen: list[Seen] = []
        self.fail: dict[tuple[str, str], int] = {}  # (method, path) -> status to answer
        self.delay = 0.0

    def put(self, path: str, data: bytes = b"data", **headers: str) -> None:
        self.containers.add(path.rsplit("/", 1)[0])
        self.objects[path] = (Headers(headers), data)

    async def __call__(self, req: Request) -> Response:
        self.seen.append(Seen(req.method, req.path, dict(req.query), req.headers.copy(),
                              dict(req.environ)))
        if self.delay:
            await asyncio.sleep(self.delay)
        check = req.environ.get("swift.authorize")
        if check is not None:
            denial = await check(req)
            if denial is not None:
                return denial
        status = self.fail.get((req.method, req.path))
        if status is not None:
            await read_all(req.body)
            return error(status, f"failed {status}", method=req.method)
        if req.path.count("/") == 3:
            return await self._container(req)
        return await self._object(req)

    async def _container(self, req: Request) -> Response:
        path = req.path
        if req.method == "PUT":
            created = path not in self.containers
            self.containers.add(path)
            return Response(201 if created else 202)
        if path not in self.containers:
            return error(404, method=req.method)
        if req.method == "DELETE":
            if any(k.startswith(path + "/") for k in self.objects):
                return error(409, "There was a conflict when trying to complete your request.")
            self.containers.discard(path)
            return Response(204)
        return Response(204)

    async def _object(self, req: Request) -> Response:
        path = req.path
        container = "/".join(path.split("/")[:4])
        if container not in self.containers:
            return error(404, method=req.method)
        if req.method == "PUT":
            data = await read_all(req.body)  # an exception leaves nothing behind
            keep = Headers((k, v) for k, v in req.headers.items()
                           if k.lower().startswith(("x-object-meta-", "content-", "x-delete")))
            self.objects[path] = (keep, data)
            return Response(201, Headers({"Etag": "x"}))
        hit = self.objects.get(path)
        if hit is None:
            return error(404, method=req.method)
        if req.method == "DELETE":
            del self.objects[path]
            return Response(204)
        headers, data = hit
        out = headers.copy()
        out["Content-Length"] = str(len(data))
        return Response(200, out, b"" if req.method == "HEAD" else data)


def make_state(tmp_path: Path, listings: Listings | None = None) -> ObjectStoreState:
    settings = config.load(tmp_path / "data", environ={})
    unused: Any = None  # storage: the middlewares under test do not touch it
    return ObjectStoreState(settings=settings, db=unused, ring=unused, writer=unused,
                            reader=unused, listings=listings or Listings())


async def stream(data: bytes,
                 sizes: Iterable[int] = (7, 1, 4096, 3, 65536)) -> AsyncIterator[bytes]:
    """``data`` in uneven chunks, as a server hands a body over."""
    sizes = list(sizes)
    pos = i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        yield data[pos:pos + n]
        pos, i = pos + n, i + 1
        await asyncio.sleep(0)


class Source:
    """A request body that counts how much of it was taken."""

    def __init__(self, data: bytes, size: int = 1024) -> None:
        self.data = data
        self.size = size
        self.taken = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.taken < len(self.data):
            chunk = self.data[self.taken:self.taken + self.size]
            self.taken += len(chunk)
            yield chunk
            await asyncio.sleep(0)
