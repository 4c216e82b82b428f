"""Reading a large object from its segments: what the ``dlo`` and ``slo``
middlewares share (Swift's ``SegmentedIterable`` and the bits of swob they rely on).

The body is read segment by segment with sub-requests (``multipart-manifest=get``
so that a segment is never expanded again). ``SegmentedBody.prime`` fetches the
first segment before the response starts, so a missing one is still an error
status (409); a segment that is missing or has changed later cuts the response
short, which makes the server drop the connection: the client sees a truncated
body, never wrong bytes. Range and If-* requests are answered as swob answers them.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from onestack.object_store.http import (
    Handler,
    Headers,
    HTTPError,
    Request,
    Response,
    error,
)

log = logging.getLogger("onestack.object_store.large_objects")

IGNORE_RANGE = "X-Backend-Ignore-Range-If-Metadata-Present"
ETAG_IS_AT = "X-Backend-Etag-Is-At"
MANIFEST_ONLY = {"multipart-manifest": "get"}

# swob's limits on what a Range header may ask of one response
_MAX_RANGES = 50
_MAX_OVERLAPS = 2
_MAX_NONASCENDING = 8


class SegmentError(Exception):
    """A segment is missing, unreadable or no longer what the manifest says."""


class ListingError(Exception):
    """The list of segments (a sub-manifest, a listing page) could not be read."""


# -- Range and conditional requests, as swob answers them ---------------------------

Spec = tuple[int | None, int | None]


def parse_range(value: str | None) -> list[Spec] | None:
    """The ``(first, last)`` specs of a Range header (``None`` for an open end or a
    suffix length in ``last``); ``None`` when the header must be ignored."""
    if not value:
        return None
    value = value.replace(" ", "")
    if not value.lower().startswith("bytes="):
        return None
    specs: list[Spec] = []
    for item in value[6:].split(","):
        first_s, sep, last_s = item.partition("-")
        if not sep or (last_s and not last_s.isdigit()) or not (first_s or last_s):
            return None
        try:
            first = int(first_s) if first_s else None
        except ValueError:
            return None
        last = int(last_s) if last_s else None
        if first is not None and last is not None and last < first:
            return None
        specs.append((first, last))
    return specs


def ranges_for_length(specs: Sequence[Spec], length: int) -> list[tuple[int, int]]:
    """Half-open byte ranges of an object of ``length`` bytes; ``[]`` means 416
    (nothing satisfiable, or more ranges than swob serves)."""
    out: list[tuple[int, int]] = []
    for first, last in specs:
        if first is None:
            assert last is not None
            if last:
                out.append((0, length) if last > length else (length - last, length))
        elif first < length:
            out.append((first, length if last is None else min(last + 1, length)))
    if len(out) > _MAX_RANGES:
        return []
    overlaps = 0
    for i, (s1, e1) in enumerate(out):
        for s2, e2 in out[i + 1:]:
            if s1 < s2 < e1 or s1 < e2 < e1 or s2 < s1 < e2 or s2 < e1 < e2:
                overlaps += 1
                if overlaps > _MAX_OVERLAPS:
                    return []
    ascending = all(a <= b for a, b in itertools.pairwise(out))
    if not ascending and len(out) >= _MAX_NONASCENDING:
        return []
    return out


def normalize_etag(tag: str | None) -> str | None:
    if tag and len(tag) > 1 and tag.startswith('"') and tag.endswith('"'):
        return tag[1:-1]
    return tag


def _tags(value: str) -> set[str]:
    return {str(normalize_etag(t.strip())) for t in value.split(",") if t.strip()}


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


def conditional_status(req: Request, headers: Headers) -> int | None:
    """304 or 412 when the request's If-* headers fail against the response's
    Etag and Last-Modified (in swob's order), else ``None``."""
    etag = (headers.get("etag") or "").replace('"', "")
    none_match = req.headers.get("if-none-match")
    if etag and none_match:
        tags = _tags(none_match)
        if "*" in tags or etag in tags:
            return 304
    match = req.headers.get("if-match")
    if etag and match:
        tags = _tags(match)
        if "*" not in tags and etag not in tags:
            return 412
    modified = _date(headers.get("last-modified"))
    since = _date(req.headers.get("if-modified-since"))
    if modified and since and modified <= since:
        return 304
    unmodified = _date(req.headers.get("if-unmodified-since"))
    if modified and unmodified and modified > unmodified:
        return 412
    return None


def conditional_response(req: Request, headers: Headers) -> Response | None:
    """The empty 304/412 answer when the request's conditions fail, else ``None``."""
    status = conditional_status(req, headers)
    if status is None:
        return None
    h = headers.copy()
    h["Content-Length"] = "0"
    h.pop("Content-Range")
    return Response(status, h, b"")


def not_satisfiable(headers: Headers, size: int | None, method: str) -> Response:
    """416 with swob's page, keeping the object's headers."""
    resp = error(416, method=method)
    h = headers.copy()
    h.update(resp.headers)
    h["Accept-Ranges"] = "bytes"
    if size is not None:
        h["Content-Range"] = f"bytes */{size}"
    resp.headers = h
    return resp


def clean_content_type(value: str) -> str:
    """``value`` without the ``swift_bytes`` parameter Swift keeps for listings."""
    left, sep, right = value.rpartition(";")
    if sep and right.strip().startswith("swift_bytes="):
        return left
    return value


def add_csv(headers: Headers, name: str, item: str) -> None:
    current = headers.get(name)
    headers[name] = f"{current},{item}" if current else item


# -- multipart/byteranges ---------------------------------------------------------------


def _part_head(boundary: str, content_type: str, start: int, stop: int, size: int) -> bytes:
    return (f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Range: bytes {start}-{stop - 1}/{size}\r\n\r\n").encode("latin-1")


def multipart_length(ranges: Sequence[tuple[int, int]], content_type: str, boundary: str,
                     size: int) -> int:
    total = sum(len(_part_head(boundary, content_type, s, e, size)) + (e - s) + 2
                for s, e in ranges)
    return total + len(boundary) + 4


async def multipart_body(chunks: AsyncIterator[bytes], ranges: Sequence[tuple[int, int]],
                         content_type: str, boundary: str, size: int) -> AsyncIterator[bytes]:
    """The parts of a 206 ``multipart/byteranges`` body around ``chunks``, the
    bytes of all the ranges one after the other."""
    pending = b""
    try:
        for start, stop in ranges:
            yield _part_head(boundary, content_type, start, stop, size)
            need = stop - start
            while need:
                if not pending:
                    pending = await anext(chunks, b"")
                    if not pending:
                        return  # the segments ended early: cut the response short
                piece, pending = pending[:need], pending[need:]
                need -= len(piece)
                yield piece
            yield b"\r\n"
        yield f"--{boundary}--".encode()
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


# -- reading segments ----------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """Bytes ``first``..``last`` (inclusive; ``None``: to the end) of one segment:
    the object at ``path`` or the inline ``data``. ``etag`` and ``size`` are what
    the manifest expects of the whole segment object (checked when given)."""

    path: str = ""
    first: int = 0
    last: int | None = None
    etag: str | None = None
    size: int | None = None
    data: bytes | None = None


async def peek(resp: Response, size: int = 1024) -> bytes:
    """The start of an (error) response's body; the response is closed."""
    body = resp.body
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)[:size]
    else:
        data = b""
        async for chunk in body:
            data += chunk
            if len(data) >= size:
                break
    await resp.close()
    return data[:size]


def _short(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    return text if len(text) <= 60 else text[:57] + "..."


class SegmentedBody:
    """The bytes of a large object, read piece by piece through ``app``.

    ``prime`` reads the first chunk before the response starts; after that a
    failing segment is logged and ends the body early (``length`` is the number
    of bytes the response announced: fewer or more is an error too).
    """

    def __init__(self, app: Handler, req: Request, pieces: AsyncGenerator[Piece, None], *,
                 name: str, source: str, length: int | None = None) -> None:
        self.app = app
        self.req = req
        self.pieces = pieces
        self.name = name
        self.source = source
        self.length = length
        self._gen = self._counted()
        self._first: bytes | None = None

    async def prime(self) -> None:
        """Fetch up to the first byte.

        Raises:
            SegmentError, ListingError: the first segment cannot be served.
            HTTPError: a server error reading it (503).
        """
        try:
            self._first = await anext(self._gen)
        except StopAsyncIteration:
            self._first = b""
        except BaseException:
            await self._gen.aclose()
            raise

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            if self._first:
                yield self._first
            async for chunk in self._gen:
                yield chunk
        except (SegmentError, ListingError) as exc:
            log.error("%s", exc)
        except HTTPError as exc:
            log.error("While processing manifest %s: status %s reading a segment",
                      self.name, exc.response.status)
        finally:
            await self._gen.aclose()

    async def aclose(self) -> None:
        await self._gen.aclose()

    async def _counted(self) -> AsyncGenerator[bytes, None]:
        left = self.length
        async with aclosing(self._segments()) as segments:
            async for chunk in segments:
                if left is not None and len(chunk) > left:
                    yield chunk[:left]
                    raise SegmentError(f"Too many bytes for {self.name}; truncating with "
                                       f"{len(chunk) - left} bytes left")
                if left is not None:
                    left -= len(chunk)
                yield chunk
        if left:
            raise SegmentError(f"Expected another {left} bytes for {self.name}; "
                               "closing connection")

    async def _segments(self) -> AsyncGenerator[bytes, None]:
        async with aclosing(self.pieces) as pieces:
            async for piece in pieces:
                if piece.data is not None:
                    end = None if piece.last is None else piece.last + 1
                    if piece.data[piece.first:end]:
                        yield piece.data[piece.first:end]
                    continue
                ranged, resp = await self._fetch(piece)
                try:
                    async with aclosing(self._verified(piece, ranged, resp)) as chunks:
                        async for chunk in chunks:
                            yield chunk
                finally:
                    await resp.close()

    async def _fetch(self, piece: Piece) -> tuple[bool, Response]:
        to_end = piece.last is None or (piece.size is not None and piece.last == piece.size - 1)
        headers = {}
        if piece.first or not to_end:
            headers["Range"] = f"bytes={piece.first}-{'' if to_end else piece.last}"
        sub = self.req.sub("GET", piece.path, headers=headers, query=MANIFEST_ONLY,
                           source=self.source)
        resp = await self.app(sub)
        if not resp.ok:
            msg = (f"While processing manifest {self.name}, got {resp.status} "
                   f"({_short(await peek(resp))}) while retrieving {piece.path}")
            if resp.status >= 500:
                log.error("%s", msg)
                raise HTTPError(error(503, headers={"Content-Type": "text/plain"}))
            raise SegmentError(msg)
        got_etag = (resp.headers.get("etag") or "").replace('"', "")
        got_size = resp.headers.get("content-length")
        if ((piece.etag and got_etag != piece.etag)
                or (piece.size and not headers and got_size != str(piece.size))):
            await resp.close()
            raise SegmentError(f"Object segment no longer valid: {piece.path} etag: "
                               f"{got_etag} != {piece.etag} or {got_size} != {piece.size}.")
        return bool(headers), resp

    async def _verified(self, piece: Piece, ranged: bool, resp: Response
                        ) -> AsyncGenerator[bytes, None]:
        """The segment's bytes; a whole segment is checked against its ETag."""
        etag = (resp.headers.get("etag") or "").replace('"', "")
        digest = hashlib.md5(usedforsecurity=False) if etag and not ranged else None
        size = 0
        body = resp.body
        if isinstance(body, (bytes, bytearray)):
            body_iter: AsyncIterator[bytes] = _single(bytes(body))
        else:
            body_iter = aiter(body)
        async for chunk in body_iter:
            if digest is not None:
                digest.update(chunk)
                size += len(chunk)
            if chunk:
                yield chunk
        if digest is None:
            return
        announced = resp.headers.get("content-length")
        if announced is not None and int(announced) != size:
            raise SegmentError(f"Bad response length for {piece.path} as part of {self.name}: "
                               f"headers had {announced}, but response length was "
                               f"actually {size}")
        if digest.hexdigest() != etag:
            raise SegmentError(f"Bad MD5 checksum for {piece.path} as part of {self.name}: "
                               f"headers had {etag}, but object MD5 was actually "
                               f"{digest.hexdigest()}")


async def _single(data: bytes) -> AsyncIterator[bytes]:
    yield data
