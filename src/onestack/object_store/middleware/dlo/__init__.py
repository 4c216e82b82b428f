"""Dynamic large objects (Swift's ``dlo`` middleware).

A DLO manifest is any object with ``X-Object-Manifest: <container>/<prefix>``
(URL-quoted, as python-swiftclient writes it). A GET or HEAD of it answers with
the objects listed under the prefix, in listing order, as one object: the
Content-Length is their total and the ETag the quoted MD5 of their ETags,
both computed from the first page of the listing (a manifest with more
segments than ``container_listing_limit`` streams without them, as Swift's).
One byte range is served; several are ignored (200), as in Swift.
``?multipart-manifest=get`` returns the manifest object itself.

Swift registers no ``dlo`` section in ``/info``; ours says how many segments
one listing page (and so Content-Length and ETag) covers. Swift's per-segment
rate limiting and ``max_get_time`` are not applied.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import unquote

from onestack.object_store.http import Handler, Headers, HTTPError, Request, Response, error
from onestack.object_store.middleware.dlo.segments import (
    IGNORE_RANGE,
    ListingError,
    Piece,
    SegmentedBody,
    SegmentError,
    add_csv,
    conditional_response,
    normalize_etag,
    not_satisfiable,
    parse_range,
    ranges_for_length,
)
from onestack.object_store.state import ObjectStoreState

log = logging.getLogger("onestack.object_store.dlo")

# one object of a container listing (name, hash, bytes ...)
Listed = dict[str, Any]


def _manifest_value_ok(value: str) -> bool:
    container, sep, prefix = value.partition("/")
    return bool(sep and container and prefix and "?" not in value and "&" not in value
                and not prefix.startswith("/"))


class DynamicLargeObject:
    def __init__(self, app: Handler, st: ObjectStoreState) -> None:
        self.app = app
        self.limit = st.settings.object_store.container_listing_limit

    async def __call__(self, req: Request) -> Response:
        try:
            version, account, _, obj = req.split()
        except HTTPError:
            return await self.app(req)
        if obj is None:
            return await self.app(req)
        if req.method in ("GET", "HEAD") and req.query.get("multipart-manifest") != "get":
            return await self.get_or_head(req, version, account)
        value = req.headers.get("x-object-manifest")
        if req.method == "PUT" and value is not None and not _manifest_value_ok(value):
            return error(400, "X-Object-Manifest must be in the format container/prefix",
                         headers={"Content-Type": "text/html; charset=UTF-8"},
                         method=req.method)
        return await self.app(req)

    async def get_or_head(self, req: Request, version: str, account: str) -> Response:
        add_csv(req.headers, IGNORE_RANGE, "X-Object-Manifest")
        resp = await self.app(req)
        value = resp.headers.get("x-object-manifest")
        if value is None:
            return resp
        await resp.close()
        container, _, prefix = unquote(value).partition("/")
        fail, segments = await self._listing(req, version, account, container, prefix)
        if fail is not None:
            return fail
        assert segments is not None
        return await self._respond(req, resp.headers, (version, account, container, prefix),
                                   segments)

    async def _listing(self, req: Request, version: str, account: str, container: str,
                       prefix: str, marker: str = ""
                       ) -> tuple[Response | None, list[Listed] | None]:
        """One page of the segments' listing, or the failed listing's response."""
        query = {"prefix": prefix, "format": "json"}
        if marker:
            query["marker"] = marker
        sub = req.sub("GET", f"/{version}/{account}/{container}", query=query, source="DLO")
        resp = await self.app(sub)
        if not resp.ok:
            if req.method == "HEAD":
                await resp.close()
                resp.body = b""
            return resp, None
        data = await resp.read()
        try:
            listing = json.loads(data)
        except ValueError:
            return error(500, method=req.method), None
        return None, [item for item in listing if "name" in item]

    async def _respond(self, req: Request, manifest: Headers,
                       where: tuple[str, str, str, str], segments: list[Listed]) -> Response:
        complete = len(segments) < self.limit
        total = sum(int(s["bytes"]) for s in segments)
        headers = manifest.copy()
        headers.pop("Content-Length")
        headers.pop("Content-Range")
        if complete:
            digest = hashlib.md5(usedforsecurity=False)
            for seg in segments:
                digest.update(str(normalize_etag(seg["hash"])).encode())
            headers["Etag"] = f'"{digest.hexdigest()}"'
        byterange, refusal = self._range(req, total, complete, headers)
        if refusal is not None:
            return refusal
        if complete or byterange is not None:
            headers["Content-Length"] = str(total)
        denied = conditional_response(req, headers)
        if denied is not None:
            return denied
        if req.method == "HEAD":
            return Response(200, headers, b"")
        first, last = byterange if byterange is not None else (None, None)
        status = 200
        length = total if complete else None
        if byterange is not None and total:
            status = 206
            length = byterange[1] - byterange[0] + 1
            headers["Content-Range"] = f"bytes {byterange[0]}-{byterange[1]}/{total}"
            headers["Content-Length"] = str(length)
        body = SegmentedBody(self.app, req, self._pieces(req, where, segments, first, last),
                             name=req.path, source="DLO", length=length)
        try:
            await body.prime()
        except HTTPError as exc:
            return exc.response
        except (SegmentError, ListingError) as exc:
            log.error("%s", exc)
            return error(409, method=req.method)
        return Response(status, headers, body.chunks())

    def _range(self, req: Request, total: int, complete: bool, headers: Headers
               ) -> tuple[tuple[int, int] | None, Response | None]:
        """The one byte range to serve (inclusive), or the 416 refusal. More than
        one range, or a range the first listing page cannot settle, is ignored."""
        specs = parse_range(req.headers.get("range"))
        if specs is None or len(specs) != 1:
            return None, None
        first, last = specs[0]
        end = last + 1 if first is not None and last is not None else math.inf
        if not complete and end >= total:
            return None, None
        ranges = ranges_for_length(specs, total)
        if not ranges:
            return None, not_satisfiable(headers, total if complete else None, req.method)
        return (ranges[0][0], ranges[0][1] - 1), None

    async def _pieces(self, req: Request, where: tuple[str, str, str, str],
                      segments: list[Listed], first: int | None, last: int | None
                      ) -> AsyncGenerator[Piece, None]:
        """The pieces of bytes ``first``..``last``, reading further listing pages
        as the body goes on."""
        version, account, container, prefix = where
        skip = first or 0
        stop: float = math.inf if last is None else last
        while True:
            for seg in segments:
                n = int(seg["bytes"])
                if skip >= n:
                    skip, stop = max(skip - n, -1), max(stop - n, -1)
                    continue
                if stop < 0:
                    break
                yield Piece(path=f"/{version}/{account}/{container}/{seg['name']}",
                            first=max(skip, 0), last=None if stop >= n - 1 else int(stop))
                skip, stop = max(skip - n, -1), max(stop - n, -1)
            if len(segments) < self.limit or stop < 0:
                return
            fail, page = await self._listing(req, version, account, container, prefix,
                                             segments[-1]["name"])
            if fail is not None:
                await fail.close()
                raise ListingError(f"Got status {fail.status} listing container "
                                   f"/{account}/{container}")
            assert page is not None
            segments = page


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    st.register("dlo", max_segments=st.settings.object_store.container_listing_limit)
    return DynamicLargeObject(app, st)
