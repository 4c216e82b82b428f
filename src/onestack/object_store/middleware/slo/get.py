"""GET and HEAD of a manifest: the large object (or, with
``multipart-manifest=get``, the manifest itself).

The layers below answer If-* against the SLO ETag (``X-Backend-Etag-Is-At``)
and ignore Range for manifests; should they not, a partial or conditional
answer is fetched again in full and the conditions are checked here, against
the large object's ETag, Last-Modified and size, as swob does for Swift.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from onestack.object_store.api.common import conditional_etag, config_true
from onestack.object_store.http import Headers, HTTPError, Request, Response, error
from onestack.object_store.middleware.dlo.segments import (
    ETAG_IS_AT,
    IGNORE_RANGE,
    MANIFEST_ONLY,
    ListingError,
    Piece,
    SegmentedBody,
    SegmentError,
    add_csv,
    clean_content_type,
    conditional_response,
    multipart_body,
    multipart_length,
    not_satisfiable,
    parse_range,
    peek,
    ranges_for_length,
)
from onestack.object_store.middleware.slo.manifest import (
    SYSMETA_SLO_ETAG,
    SYSMETA_SLO_SIZE,
    Segment,
    bad,
    etag_and_size,
    is_slo,
    parse_stored,
    raw_manifest,
)

if TYPE_CHECKING:
    from onestack.object_store.middleware.slo import StaticLargeObject

log = logging.getLogger("onestack.object_store.slo")

MAX_RECURSION_DEPTH = 10
SUB_MANIFEST_CACHE = 20
Where = tuple[str, str]  # version, account


def _part_number(req: Request) -> int | None:
    value = req.query.get("part-number")
    if value is None:
        return None
    try:
        part = int(value)
        if part <= 0:
            raise ValueError(value)
    except ValueError:
        raise bad(400, "Part number must be an integer greater than 0", req.method) from None
    if parse_range(req.headers.get("range")) is not None:
        raise bad(400, "Range requests are not supported with part number queries",
                  req.method)
    return part


async def get_or_head(slo: StaticLargeObject, req: Request, where: Where) -> Response:
    manifest_get = req.query.get("multipart-manifest") == "get"
    if not manifest_get:
        add_csv(req.headers, ETAG_IS_AT, SYSMETA_SLO_ETAG)
        add_csv(req.headers, IGNORE_RANGE, "X-Static-Large-Object")
    resp = await slo.app(req)
    if not is_slo(resp.headers):
        return resp
    if manifest_get:
        return await _manifest(slo, req, resp, req.query.get("format") == "raw")
    try:
        part = _part_number(req)
    except HTTPError:
        await resp.close()
        raise
    read = LargeObjectRead(slo, req, where)
    legacy = not (resp.headers.get(SYSMETA_SLO_ETAG) and resp.headers.get(SYSMETA_SLO_SIZE))
    need_segments = req.method == "GET" or legacy or part is not None
    has_body = req.method == "GET" and resp.status == 200
    if resp.status in (304, 412) and not legacy:
        # unmet conditions: the manifest's headers settle it, its body is not needed
        await resp.close()
        resp = await _refetch(slo, req, "HEAD")
        if not is_slo(resp.headers):
            return resp
        if read.unmet(resp.headers) or not need_segments:
            return await read.respond(resp, False, part)
    if (need_segments and not has_body) or resp.status != 200:
        await resp.close()
        resp = await _refetch(slo, req, "GET" if need_segments else "HEAD")
        if not is_slo(resp.headers):
            return resp
    return await read.respond(resp, need_segments, part)


async def _refetch(slo: StaticLargeObject, req: Request, method: str) -> Response:
    """The manifest again, whole and unconditionally."""
    query = {k: v for k, v in req.query.items() if k != "part-number"}
    return await slo.app(req.sub(method, req.path, query=query, source="SLO"))


async def _manifest(slo: StaticLargeObject, req: Request, resp: Response, raw: bool
                    ) -> Response:
    if not raw:
        resp.headers["Content-Type"] = "application/json; charset=utf-8"
        return resp
    if req.method == "HEAD":
        await resp.close()
        resp = await slo.app(req.sub("GET", req.path, query=req.query, source="SLO"))
    data = raw_manifest(await resp.read())
    h = resp.headers
    h["Content-Length"] = str(len(data))
    h["Etag"] = hashlib.md5(data, usedforsecurity=False).hexdigest()
    h["Content-Type"] = clean_content_type(h.get("content-type") or "")
    denied = conditional_response(req, h) if resp.status == 200 else None
    if denied is not None:
        return denied
    return Response(resp.status, h, b"" if req.method == "HEAD" else data)


class LargeObjectRead:
    """The response for the large object behind one manifest response."""

    def __init__(self, slo: StaticLargeObject, req: Request, where: Where) -> None:
        self.slo = slo
        self.req = req
        self.where = where
        self.cache: OrderedDict[str, list[Segment]] = OrderedDict()

    def unmet(self, manifest: Headers) -> bool:
        """Whether the request's conditions fail for a (modern) manifest's object."""
        h = manifest.copy()
        h["Etag"] = conditional_etag(self.req, manifest) or h.get(SYSMETA_SLO_ETAG) or ""
        return conditional_response(self.req, h) is not None

    async def respond(self, resp: Response, need_segments: bool, part: int | None
                      ) -> Response:
        req = self.req
        h = resp.headers.copy()
        etag = h.get(SYSMETA_SLO_ETAG) or ""
        try:
            size = int(h.get(SYSMETA_SLO_SIZE) or "")
        except ValueError:
            size = -1
        segments: list[Segment] = []
        if need_segments:
            segments = parse_stored(await resp.read())
            if not etag or size < 0:
                etag, size = etag_and_size(segments)
        else:
            await resp.close()
        h["X-Manifest-Etag"] = resp.headers.get("etag") or ""
        h["Etag"] = f'"{etag}"'
        h["Content-Length"] = str(size)
        h.pop("Content-Range")
        h["Content-Type"] = clean_content_type(h.get("content-type") or "")
        tested = h.copy()
        tested["Etag"] = conditional_etag(req, resp.headers) or etag
        denied = conditional_response(req, tested)
        if denied is not None:
            denied.headers["Etag"] = h["Etag"]
            return denied
        if part is not None:
            return await self._part(h, segments, size, part)
        if req.method == "HEAD":
            return Response(200, h, b"")
        specs = parse_range(req.headers.get("range"))
        if specs is None or size == 0:
            return await self._body(h, segments, 200, [(0, size)], size)
        ranges = ranges_for_length(specs, size)
        if not ranges:
            return not_satisfiable(h, size, req.method)
        if len(ranges) == 1:
            (start, stop), = ranges
            h["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
            h["Content-Length"] = str(stop - start)
            return await self._body(h, segments, 206, ranges, size)
        boundary = f"{random.getrandbits(128):032x}"
        ctype = h.get("content-type") or ""
        h["Content-Type"] = f"multipart/byteranges;boundary={boundary}"
        h["Content-Length"] = str(multipart_length(ranges, ctype, boundary, size))
        return await self._body(h, segments, 206, ranges, size, multipart=(ctype, boundary))

    async def _part(self, h: Headers, segments: list[Segment], size: int, part: int
                    ) -> Response:
        """``?part-number=N``: the Nth segment of the manifest as a 206."""
        head = self.req.method == "HEAD"
        h["X-Parts-Count"] = str(len(segments))
        if part > len(segments):
            text = "The requested part number is not satisfiable"
            h["Content-Range"] = f"bytes */{size}"
            h["Content-Length"] = "0" if head else str(len(text))
            return Response(416, h, b"" if head else text.encode())
        start = sum(s["segment_length"] for s in segments[:part - 1])
        stop = start + segments[part - 1]["segment_length"]
        h["Content-Length"] = str(stop - start)
        h["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        if head:
            return Response(206, h, b"")
        return await self._body(h, segments, 206, [(start, stop)], size)

    async def _body(self, h: Headers, segments: list[Segment], status: int,
                    ranges: list[tuple[int, int]], size: int,
                    multipart: tuple[str, str] | None = None) -> Response:
        body = SegmentedBody(self.slo.app, self.req, self._pieces(segments, ranges),
                             name=self.req.path, source="SLO",
                             length=sum(stop - start for start, stop in ranges))
        try:
            await body.prime()
        except (SegmentError, ListingError) as exc:
            # the manifest names a segment that is gone or has changed
            log.error("%s", exc)
            return error(409, method=self.req.method)
        chunks = body.chunks()
        if multipart is not None:
            chunks = multipart_body(chunks, ranges, multipart[0], multipart[1], size)
        return Response(status, h, chunks)

    async def _pieces(self, segments: list[Segment], ranges: list[tuple[int, int]]
                      ) -> AsyncGenerator[Piece, None]:
        for start, stop in ranges:
            async for piece in self._range_pieces(segments, start, stop - 1, 1):
                yield piece

    async def _range_pieces(self, segments: list[Segment], first: int, last: int, depth: int
                            ) -> AsyncGenerator[Piece, None]:
        """The pieces of bytes ``first``..``last`` of ``segments``, nested manifests
        replaced by their own segments (nested manifests not needed are not read)."""
        version, account = self.where
        for seg in segments:
            n = seg["segment_length"]
            if first >= n:
                first, last = first - n, last - n
                continue
            if last < 0:
                return
            if "raw_data" in seg:
                yield Piece(data=seg["raw_data"], first=max(0, first), last=min(n - 1, last))
            else:
                start, end = 0, n - 1
                if seg.get("range"):
                    start, end = (int(x) for x in seg["range"].split("-"))
                if config_true(seg.get("sub_slo")):
                    if depth >= MAX_RECURSION_DEPTH:
                        raise ListingError(f"While processing manifest {self.req.path!r}, "
                                           "max recursion depth was exceeded")
                    inner = await self._sub_manifest(seg["name"])
                    async for piece in self._range_pieces(
                            inner, start + max(0, first), min(end, start + last), depth + 1):
                        yield piece
                else:
                    size = seg.get("bytes")
                    yield Piece(path=f"/{version}/{account}/{seg['name'].lstrip('/')}",
                                first=max(0, first) + start, last=min(end, start + last),
                                etag=seg.get("hash"),
                                size=None if size is None else int(size))
            first, last = first - n, last - n

    async def _sub_manifest(self, name: str) -> list[Segment]:
        if name in self.cache:
            self.cache.move_to_end(name)
            return self.cache[name]
        req = self.req
        path = f"/{self.where[0]}/{self.where[1]}/{name.lstrip('/')}"
        resp = await self.slo.app(req.sub("GET", path, query=MANIFEST_ONLY, source="SLO"))
        if not resp.ok:
            text = (await peek(resp)).decode("utf-8", "replace")
            raise ListingError(f"while fetching {req.path}, GET of submanifest {path} failed "
                               f"with status {resp.status} "
                               f"({text if len(text) <= 60 else text[:57] + '...'})")
        try:
            segments = parse_stored(await resp.read())
        except HTTPError:
            raise ListingError(f"while fetching {req.path}, JSON-decoding of submanifest "
                               f"{path} failed") from None
        self.cache[name] = segments
        if len(self.cache) > SUB_MANIFEST_CACHE:
            self.cache.popitem(last=False)
        return segments
