"""Objects: ``GET``, ``HEAD``, ``PUT``, ``POST`` and ``DELETE`` of ``/v1/<a>/<c>/<o>``.

This is Swift's proxy object controller and object server in one: the checks,
status codes and headers are theirs. Differences that follow from our storage:

- there are no ``.meta`` files, so a POST (Swift's "fast POST") rewrites the
  object as a new version: the newest replica streams into a quorum write with
  the POST's metadata and a new timestamp. Data, ETag and system metadata stay.
- the container update (listing row) is made here, after the quorum write, as
  the object servers make it after their commit.

Bodies are never held in memory: a GET streams from the open replica and the
replica is closed when the response is (``Response.close``).
"""

from __future__ import annotations

import calendar
import contextlib
import itertools
import logging
import math
import mimetypes
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate
from typing import Any

from onestack.object_store import constraints
from onestack.object_store.api.common import (
    CONTAINER_INFO,
    authorize,
    conditional_etag,
    config_true,
    http_date,
    meta_headers,
)
from onestack.object_store.asgi import ClientDisconnect
from onestack.object_store.backend import ReplicaReader
from onestack.object_store.errors import (
    EtagMismatch,
    ObjectDeleted,
    ObjectNotFound,
    QuorumNotMet,
    SizeMismatch,
)
from onestack.object_store.http import Headers, HTTPError, Request, Response, error
from onestack.object_store.state import ObjectStoreState
from onestack.object_store.timestamp import Timestamp

log = logging.getLogger(__name__)

USER_META = "x-object-meta-"
SYSMETA = "x-object-sysmeta-"
TRANSIENT_SYSMETA = "x-object-transient-sysmeta-"
OVERRIDE = "x-object-sysmeta-container-update-override-"
# The object server's default ``allowed_headers``: kept with the object, returned on reads.
ALLOWED_HEADERS = {
    name.lower(): name
    for name in (
        "Content-Disposition", "Content-Encoding", "X-Delete-At", "X-Object-Manifest",
        "X-Static-Large-Object", "Cache-Control", "Content-Language", "Expires",
        "X-Robots-Tag",
    )
}
# Only a PUT sets this one: a POST cannot turn an object into a large-object manifest.
DATA_ONLY_HEADERS = frozenset({"x-static-large-object"})
# swob's defences against abusive Range headers (RFC 7233 section 6.1).
MAX_RANGES, MAX_RANGE_OVERLAPS, MAX_NONASCENDING_RANGES = 50, 2, 8
HTML = "text/html; charset=UTF-8"
ACCEPTED_BODY = (b"<html><h1>Accepted</h1><p>The request is accepted for processing.</p>"
                 b"</html>")


async def handle(
    st: ObjectStoreState, req: Request, account: str, container: str, obj: str
) -> Response:
    """Answer one object request as Swift does (see the module doc)."""
    method = req.method
    handler = _HANDLERS.get(method)
    if handler is None:
        return error(405, headers={"Allow": ", ".join(sorted(_HANDLERS))}, method=method)
    try:
        if method == "PUT":
            _check_put_if_none_match(req)
        await _container_info(st, req, account, container)
        return await handler(st, req, account, container, obj)
    except HTTPError as exc:
        return exc.response
    except ClientDisconnect:
        return error(499, method=method)
    except EtagMismatch:
        return error(422, method=method)
    except QuorumNotMet:
        return error(503, method=method)
    except ObjectNotFound:
        return error(404, method=method)
    except SizeMismatch:
        return error(400, method=method)


async def _container_info(
    st: ObjectStoreState, req: Request, account: str, container: str
) -> None:
    """The container's info (also in the environ, for auth's owner checks and for
    middlewares); auth sees its ACL first, so 401/403 come before a 404."""
    info = await st.listings.container_info(account, container, counts=False)
    req.environ[CONTAINER_INFO] = info
    if info is None:
        await authorize(req, None)
        raise HTTPError(error(404, method=req.method))
    read = req.method in ("GET", "HEAD")
    await authorize(req, info.read_acl if read else info.write_acl)


# -- GET and HEAD ---------------------------------------------------------------------


async def _get_or_head(
    st: ObjectStoreState, req: Request, account: str, container: str, obj: str
) -> Response:
    newest = config_true(req.headers.get("x-newest"))
    try:
        replica = await st.reader.open(account, container, obj, newest=newest)
    except ObjectNotFound:
        return _not_found(req)
    closer = _Closer(replica)
    try:
        if _expired(req, replica.metadata, time.time()):
            await closer()
            return _not_found(req)
        return await _read_response(req, replica, closer)
    except BaseException:
        await closer()
        raise


def _not_found(req: Request) -> Response:
    """404, or 412 when ``If-Match: *`` asked for an existing object (RFC 7232 3.1)."""
    match = _match(req.headers.get("if-match"))
    if match is not None and "*" in match:
        return Response(412, Headers({"Content-Type": HTML, "Content-Length": "0"}), b"")
    return error(404, method=req.method)


def _expired(req: Request, metadata: dict[str, str], now: float) -> bool:
    """Whether the object is past its X-Delete-At (internal callers may still open it)."""
    if config_true(req.headers.get("x-backend-open-expired")):
        return False
    when = delete_at(metadata)
    return when is not None and when <= now


def delete_at(metadata: dict[str, str]) -> int | None:
    """The object's X-Delete-At in seconds, if it has one."""
    value = metadata.get("X-Delete-At")
    try:
        return int(value) if value else None
    except ValueError:
        return None


async def _read_response(req: Request, replica: ReplicaReader, closer: _Closer) -> Response:
    headers = _object_headers(replica)
    etag = conditional_etag(req, replica.metadata) or replica.etag
    status = _conditional_status(req, etag, math.ceil(float(replica.timestamp)))
    if status is not None:
        await closer()
        headers["Content-Length"] = "0"
        return Response(status, headers, b"")
    if req.method == "HEAD":
        await closer()
        return Response(200, headers, b"")
    ranges = _ranges(req, replica)
    if ranges == []:
        await closer()
        headers["Content-Range"] = f"bytes */{replica.size}"
        return error(416, headers=dict(headers.items()))
    if not ranges or replica.size == 0:
        body = _stream(replica, closer, [(0, replica.size)])
        return Response(200, headers, body, on_close=[closer])
    if len(ranges) == 1:
        start, end = ranges[0]
        headers["Content-Range"] = _content_range(start, end, replica.size)
        headers["Content-Length"] = str(end - start)
        return Response(206, headers, _stream(replica, closer, ranges), on_close=[closer])
    return _multipart_response(replica, closer, ranges, headers)


def _object_headers(replica: ReplicaReader) -> Headers:
    """What the object server shows of the stored metadata, plus what the proxy adds."""
    meta = replica.metadata
    headers = Headers({"Content-Type": _clean_content_type(
        meta.get("Content-Type", "application/octet-stream"))})
    for name, value in meta.items():
        lower = name.lower()
        if lower.startswith((USER_META, SYSMETA, TRANSIENT_SYSMETA)) or lower in ALLOWED_HEADERS:
            headers[name] = value
    headers["ETag"] = replica.etag
    headers["Last-Modified"] = http_date(float(replica.timestamp))
    headers["X-Timestamp"] = replica.timestamp.normal
    headers["Content-Length"] = str(replica.size)
    headers["Accept-Ranges"] = "bytes"
    return headers


def _clean_content_type(value: str) -> str:
    """Without the ``swift_bytes`` parameter that large-object manifests carry."""
    if ";" in value:
        left, right = value.rsplit(";", 1)
        if right.lstrip().startswith("swift_bytes="):
            return left
    return value


def _match(value: str | None) -> set[str] | None:
    """The entity tags of an If-Match / If-None-Match header, unquoted."""
    if value is None:
        return None
    return {_unquote(tag.strip()) for tag in value.split(",") if tag.strip()}


def _unquote(tag: str) -> str:
    if len(tag) > 1 and tag.startswith('"') and tag.endswith('"'):
        return tag[1:-1]
    return tag


def _matches(tags: set[str], etag: str) -> bool:
    return "*" in tags or _unquote(etag) in tags


def _http_time(value: str | None) -> int | None:
    """Seconds of an HTTP date (a bad one is ignored, as swob ignores it)."""
    if not value:
        return None
    parts = parsedate(value)
    if parts is None:
        return None
    try:
        return calendar.timegm(parts[:6] + (0, 0, 0))
    except (ValueError, OverflowError):
        return None


def _conditional_status(req: Request, etag: str, last_modified: int) -> int | None:
    """304 or 412 in swob's order: If-None-Match, If-Match, If-Modified-Since,
    If-Unmodified-Since (whole seconds, as Last-Modified is sent)."""
    none_match = _match(req.headers.get("if-none-match"))
    if none_match is not None and _matches(none_match, etag):
        return 304
    match = _match(req.headers.get("if-match"))
    if match is not None and not _matches(match, etag):
        return 412
    since = _http_time(req.headers.get("if-modified-since"))
    if since is not None and last_modified <= since:
        return 304
    unmodified = _http_time(req.headers.get("if-unmodified-since"))
    if unmodified is not None and last_modified > unmodified:
        return 412
    return None


# -- ranges ---------------------------------------------------------------------------


def _ranges(req: Request, replica: ReplicaReader) -> list[tuple[int, int]] | None:
    """Half-open byte ranges to send: ``None`` to ignore the header (absent, invalid,
    or refused by ``X-Backend-Ignore-Range-If-Metadata-Present``), ``[]`` for 416."""
    header = req.headers.get("range")
    if header is None or _ignore_range(req, replica.metadata):
        return None
    specs = parse_range(header)
    if specs is None:
        return None
    return ranges_for_length(specs, replica.size)


def _ignore_range(req: Request, metadata: dict[str, str]) -> bool:
    names = {n.strip().lower() for n in
             (req.headers.get("x-backend-ignore-range-if-metadata-present") or "").split(",")}
    return bool(names & {k.lower() for k in metadata})


def parse_range(header: str) -> list[tuple[int | None, int | None]] | None:
    """The specs of a ``bytes=`` Range header; ``None`` when any spec is invalid,
    because RFC 7233 says to ignore such a header entirely."""
    value = header.replace(" ", "")
    if not value.lower().startswith("bytes="):
        return None
    specs: list[tuple[int | None, int | None]] = []
    for spec in value[6:].split(","):
        if "-" not in spec:
            return None
        first, last = spec.split("-", 1)
        try:
            start = int(first) if first else None
        except ValueError:
            return None
        if last and not last.isdigit():
            return None
        end = int(last) if last else None
        if (start is None and end is None) or (start is not None and start < 0):
            return None
        if start is not None and end is not None and end < start:
            return None
        specs.append((start, end))
    return specs


def ranges_for_length(
    specs: list[tuple[int | None, int | None]], length: int
) -> list[tuple[int, int]] | None:
    """swob's resolution of range specs against ``length``: the satisfiable ones,
    ``[]`` when none is (or the set is abusive), ``None`` when there are none."""
    if not specs:
        return None
    ranges: list[tuple[int, int]] = []
    for start, end in specs:
        if start is None:
            assert end is not None
            if end:
                ranges.append((max(0, length - end), length))
        elif start < length:
            ranges.append((start, length if end is None else min(end + 1, length)))
    if len(ranges) > MAX_RANGES:
        return []
    overlaps = sum(1 for (s1, e1), (s2, e2) in itertools.combinations(ranges, 2)
                   if s1 < s2 < e1 or s1 < e2 < e1 or s2 < s1 < e2 or s2 < e1 < e2)
    if overlaps > MAX_RANGE_OVERLAPS:
        return []
    ascending = all(a <= b for a, b in itertools.pairwise(ranges))
    if not ascending and len(ranges) >= MAX_NONASCENDING_RANGES:
        return []
    return ranges


def _content_range(start: int, end: int, size: int) -> str:
    return f"bytes {start}-{end - 1}/{size}"


def _multipart_response(
    replica: ReplicaReader, closer: _Closer, ranges: list[tuple[int, int]], headers: Headers
) -> Response:
    boundary = secrets.token_hex(16)
    content_type = _raw(headers["Content-Type"])
    heads = [
        b"--" + boundary.encode() + b"\r\nContent-Type: " + content_type + b"\r\nContent-Range: "
        + _content_range(s, e, replica.size).encode() + b"\r\n\r\n"
        for s, e in ranges
    ]
    tail = b"--" + boundary.encode() + b"--"
    length = sum(len(h) + (e - s) + 2 for h, (s, e) in zip(heads, ranges, strict=True))
    headers["Content-Type"] = f"multipart/byteranges;boundary={boundary}"
    headers["Content-Length"] = str(length + len(tail))
    headers.pop("Content-Range")
    body = _stream(replica, closer, ranges, heads=heads, tail=tail)
    return Response(206, headers, body, on_close=[closer])


def _raw(text: str) -> bytes:
    """A header value's bytes (our headers are latin-1 text of what the client sent)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


async def _stream(
    replica: ReplicaReader,
    closer: _Closer,
    ranges: list[tuple[int, int]],
    *,
    heads: list[bytes] | None = None,
    tail: bytes | None = None,
) -> AsyncIterator[bytes]:
    """The ranges' bytes (with multipart framing when ``heads`` is given); the
    replica is closed when the stream ends or is closed."""
    try:
        for i, (start, end) in enumerate(ranges):
            if heads is not None:
                yield heads[i]
            whole = start == 0 and end == replica.size
            source = replica.iter(start, None if whole else end - start)
            try:
                async for chunk in source:
                    yield chunk
            finally:
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    await aclose()
            if heads is not None:
                yield b"\r\n"
        if tail is not None:
            yield tail
    finally:
        await closer()


class _Closer:
    """Closes a replica once, whoever gets there first (stream end or response close)."""

    def __init__(self, replica: ReplicaReader) -> None:
        self._replica: ReplicaReader | None = replica

    async def __call__(self) -> None:
        replica, self._replica = self._replica, None
        if replica is not None:
            await replica.close()


# -- PUT ------------------------------------------------------------------------------


def _check_put_if_none_match(req: Request) -> None:
    """Raises: HTTPError: 400 for If-None-Match with ETags: Swift supports only ``*``."""
    tags = _match(req.headers.get("if-none-match"))
    if tags is not None and "*" not in tags:
        raise HTTPError(error(400, "If-None-Match only supports *"))


async def _put(
    st: ObjectStoreState, req: Request, account: str, container: str, obj: str
) -> Response:
    conf = st.settings.object_store
    ts = _request_timestamp(req)
    _update_content_type(req)
    constraints.check_object_creation(req, obj, conf, now=float(ts))
    tags = _match(req.headers.get("if-none-match"))
    if tags is not None or "x-timestamp" in req.headers:
        current = await _current_version(st, req, account, container, obj, float(ts))
        if current is not None and current.live and tags is not None:
            return error(412)
        if current is not None and current.timestamp >= ts:
            return _accepted()  # a newer version is already there (Swift: 409 -> 202)
    metadata = _put_metadata(req)
    length = constraints.message_length(req)
    body = _LimitedBody(req.stream(), conf.max_file_size)
    try:
        result = await st.writer.put(
            account, container, obj, body, metadata, timestamp=ts,
            expected_etag=_unquote((req.headers.get("etag") or "").strip()) or None,
            expected_size=length,
        )
    except SizeMismatch:
        short = length is not None and body.size < length
        return error(499 if short else 400)
    await _update_listing(st, account, container, obj, metadata, ts, result.size, result.etag)
    return Response(201, Headers({
        "Content-Type": HTML, "Content-Length": "0", "ETag": result.etag,
        "Last-Modified": http_date(float(ts)),
    }), b"")


def _request_timestamp(req: Request) -> Timestamp:
    """The request's time: now, or the X-Timestamp an internal client (container sync)
    chose, which Swift honours too.

    Raises:
        HTTPError: 400 for an X-Timestamp that is no timestamp.
    """
    value = req.headers.get("x-timestamp")
    if value is None:
        return Timestamp.now()
    try:
        return Timestamp.parse(value.strip())
    except ValueError:
        raise HTTPError(error(
            400, f"X-Timestamp should be a UNIX timestamp float value; was {value!r}")) from None


def _update_content_type(req: Request) -> None:
    """Guess the Content-Type from the name when none is given (or when asked to)."""
    detect = config_true(req.headers.get("x-detect-content-type"))
    if detect or not req.headers.get("content-type"):
        guessed, _encoding = mimetypes.guess_type(req.path)
        req.headers["Content-Type"] = guessed or "application/octet-stream"
        req.headers.pop("x-detect-content-type")


def _put_metadata(req: Request) -> dict[str, str]:
    """What a PUT stores besides the data: Content-Type, user and system metadata and
    the allowed headers (the object server's ``_get_request_metadata``)."""
    metadata = {"Content-Type": req.headers["content-type"]}
    metadata.update(meta_headers(req.headers, (USER_META, SYSMETA, TRANSIENT_SYSMETA)))
    for lower, name in ALLOWED_HEADERS.items():
        value = req.headers.get(lower)
        if value is not None:
            metadata[name] = value
    return metadata


class _LimitedBody:
    """The request body, counted; past ``limit`` bytes (a chunked upload has no
    Content-Length to check first) it raises 413 and the write is undone."""

    def __init__(self, source: AsyncIterable[bytes], limit: int) -> None:
        self.source, self.limit, self.size = source, limit, 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self.source:
            self.size += len(chunk)
            if self.size > self.limit:
                raise HTTPError(error(413))
            yield chunk


@dataclass(frozen=True)
class _Version:
    """The newest version of an object: a live one, an expired one or a tombstone."""

    timestamp: Timestamp
    live: bool
    metadata: dict[str, str]


async def _current_version(
    st: ObjectStoreState, req: Request, account: str, container: str, obj: str, now: float
) -> _Version | None:
    """The newest version; ``None`` when there is none at all."""
    try:
        replica = await st.reader.open(account, container, obj)
    except ObjectDeleted as deleted:
        return _Version(deleted.timestamp, False, {})
    except ObjectNotFound:
        return None
    async with replica:
        live = not _expired(req, replica.metadata, now)
        return _Version(replica.timestamp, live, dict(replica.metadata))


async def _update_listing(
    st: ObjectStoreState, account: str, container: str, obj: str,
    metadata: dict[str, str], ts: Timestamp, size: int, etag: str,
    content_type: str | None = None,
) -> None:
    await st.listings.object_updated(
        account, container, obj, timestamp=ts,
        **listing_values(metadata, size, etag, content_type),
    )


def listing_values(
    metadata: dict[str, str], size: int, etag: str, content_type: str | None = None
) -> dict[str, Any]:
    """The container listing's view of an object (``Listings.object_updated``'s keyword
    arguments), with what a middleware overrode (SLO, symlinks) through
    ``X-Object-Sysmeta-Container-Update-Override-*``."""
    overrides = {k.lower()[len(OVERRIDE):]: v for k, v in metadata.items()
                 if k.lower().startswith(OVERRIDE)}
    with contextlib.suppress(ValueError):
        size = int(overrides.get("size", size))
    return {
        "size": size,
        "content_type": overrides.get("content-type",
                                      content_type or metadata.get("Content-Type", "")),
        "etag": overrides.get("etag", etag),
        "delete_at": delete_at(metadata),
    }


def _accepted() -> Response:
    return Response(202, Headers({"Content-Type": HTML,
                                  "Content-Length": str(len(ACCEPTED_BODY))}), ACCEPTED_BODY)


# -- POST -----------------------------------------------------------------------------


async def _post(
    st: ObjectStoreState, req: Request, account: str, container: str, obj: str
) -> Response:
    conf = st.settings.object_store
    ts = _request_timestamp(req)
    constraints.check_metadata(req, "object", conf)
    constraints.check_delete_headers(req, now=float(ts))
    async with await st.reader.open(account, container, obj) as replica:
        if _expired(req, replica.metadata, float(ts)):
            return error(404)
        if replica.timestamp >= ts:
            return error(409)
        metadata = _post_metadata(req, replica.metadata)
        result = await st.writer.put(
            account, container, obj, replica.iter(), metadata, timestamp=ts,
            expected_etag=replica.etag, expected_size=replica.size,
        )
        listed_type = _with_swift_bytes(metadata["Content-Type"],
                                        replica.metadata.get("Content-Type", ""))
    await _update_listing(st, account, container, obj, metadata, ts, result.size, result.etag,
                          content_type=listed_type)
    resp = _accepted()
    # as Swift's object server: the layers above (symlink, versioning) read them
    for name, value in metadata.items():
        if name.lower().startswith(SYSMETA):
            resp.headers[name] = value
    return resp


def _post_metadata(req: Request, current: dict[str, str]) -> dict[str, str]:
    """A POST's metadata: user metadata, transient sysmeta and the allowed headers are
    replaced wholesale (so a POST without X-Delete-At ends the expiry, as in Swift);
    Content-Type changes only when given; system metadata stays with the data."""
    metadata = {"Content-Type": req.headers.get("content-type")
                or current.get("Content-Type", "application/octet-stream")}
    metadata.update(meta_headers(req.headers, (USER_META, TRANSIENT_SYSMETA)))
    for lower, name in ALLOWED_HEADERS.items():
        value = req.headers.get(lower)
        if value is not None and lower not in DATA_ONLY_HEADERS:
            metadata[name] = value
    for name, value in current.items():
        lower = name.lower()
        if lower.startswith(SYSMETA) or lower in DATA_ONLY_HEADERS:
            metadata[name] = value
    return metadata


def _with_swift_bytes(content_type: str, original: str) -> str:
    """A new Content-Type keeps the manifest's ``swift_bytes`` in the listing."""
    if ";" not in original or _clean_content_type(content_type) != content_type:
        return content_type
    param = original.rsplit(";", 1)[1]
    return f"{content_type};{param.strip()}" if param.strip().startswith("swift_bytes=") \
        else content_type


# -- DELETE ---------------------------------------------------------------------------


async def _delete(
    st: ObjectStoreState, req: Request, account: str, container: str, obj: str
) -> Response:
    ts = _request_timestamp(req)
    if_delete_at = _if_delete_at(req)
    current = await _current_version(st, req, account, container, obj, float(ts))
    status = 404
    if current is not None and current.live:
        status = 204 if current.timestamp < ts else 409
    if if_delete_at is not None:
        if current is None:
            return error(404)
        if current.timestamp >= ts:
            return error(409)
        if Timestamp.from_float(delete_at(current.metadata) or 0) != if_delete_at:
            return error(412, "X-If-Delete-At and X-Delete-At do not match")
        status = 204
    if current is None or current.timestamp < ts:
        await st.writer.delete(account, container, obj, timestamp=ts)
        await st.listings.object_deleted(account, container, obj, timestamp=ts)
    if status == 204:
        return Response(204, Headers({"Content-Type": HTML, "Content-Length": "0"}), b"")
    return error(status)


def _if_delete_at(req: Request) -> Timestamp | None:
    """Raises: HTTPError: 400 for an X-If-Delete-At that is no timestamp."""
    value = req.headers.get("x-if-delete-at")
    if value is None:
        return None
    try:
        return Timestamp.parse(value.strip())
    except ValueError:
        raise HTTPError(error(400, "Bad X-If-Delete-At header value")) from None


Method = Callable[[ObjectStoreState, Request, str, str, str], Awaitable[Response]]
_HANDLERS: dict[str, Method] = {
    "GET": _get_or_head,
    "HEAD": _get_or_head,
    "PUT": _put,
    "POST": _post,
    "DELETE": _delete,
}
