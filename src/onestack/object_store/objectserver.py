"""The object server: one host's devices (a ``LocalBackend``) served over HTTP to the others.

Every ``ObjectBackend`` operation has a route, addressed as Swift's object
server addresses replicas, by device, partition and name hash::

    HEAD   /<device>                                 can the device serve? (200 / 507)
    GET    /<device>/partitions                      partitions with data
    GET    /<device>/<partition>/suffixes            suffix digests (?reclaim_before=<ts>)
    POST   /<device>/<partition>/hashes              newest versions ({"suffixes": [...] | null})
    PUT    /<device>/<partition>/<hash>              write a version (framed body, below)
    GET    /<device>/<partition>/<hash>              read the newest version (?offset=&length=)
    DELETE /<device>/<partition>/<hash>              write a tombstone (X-Timestamp)
    DELETE /<device>/<partition>/<hash>/<version>    drop one version (<timestamp>.data|.ts)

A PUT body is a sequence of frames, each a 9-byte header (kind, 8-byte length)
and its payload: data frames, then one commit frame whose payload is the JSON
``{"metadata": {...}, "timestamp": "..."}``. The writer learns the metadata
(the ETag above all) only once the data is through, so it travels last, as
Swift's proxy sends it in MIME footers. The server commits only when the commit
frame arrived whole and the stream ended right after it, then answers 201; a
stream that ends (or breaks) before that is aborted and leaves nothing.

A read answers with the version's metadata (JSON), timestamp and whole size in
``X-Backend-*`` headers and streams the data. ``X-Backend-Timestamp`` on the
request pins the version: a different newest version answers 409, so a read in
several requests never mixes two versions. ``?check=1`` hashes the whole
replica while sending from ``offset`` on, so a client that already holds the
start of the data still has the replica checked (and quarantined if corrupt).

Every request must carry the cluster secret in ``X-Backend-Secret`` (401
otherwise). Errors are JSON ``{"error": <kind>, "message": ...}`` so that a
client tells a missing replica (``not_found``) from, say, a path this server
does not know.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from onestack.core import errors
from onestack.core.app import build_service_app
from onestack.core.concurrency import run_blocking
from onestack.core.http import JSONResponse, no_content, read_json
from onestack.core.types import ASGIApp, Receive, Scope, Send
from onestack.object_store.backend import LocalBackend, ReplicaReader, ReplicaWriter
from onestack.object_store.diskfile import FileInfo
from onestack.object_store.errors import (
    DeviceUnavailable,
    DiskFileCorrupt,
    EtagMismatch,
    ObjectDeleted,
    ObjectNotFound,
)
from onestack.object_store.ring import Device
from onestack.object_store.timestamp import Timestamp

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Backend-Secret"
TIMESTAMP_HEADER = "X-Backend-Timestamp"
METADATA_HEADER = "X-Backend-Metadata"
SIZE_HEADER = "X-Backend-Size"

FRAME = struct.Struct(">cQ")  # kind, payload length
DATA_FRAME = b"D"
COMMIT_FRAME = b"C"
MAX_COMMIT_FRAME = 1024 * 1024  # metadata is a few KB; refuse to buffer absurd claims
WRITE_SIZE = 1024 * 1024  # coalesce small network reads into fewer disk writes

_DEVICE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")
_HASH = re.compile(r"[0-9a-f]{32}")
_SUFFIX = re.compile(r"[0-9a-f]{3}")


def frame_header(kind: bytes, length: int) -> bytes:
    return FRAME.pack(kind, length)


def encode_metadata(metadata: Mapping[str, str]) -> str:
    """Metadata as one header value: JSON escapes everything outside ASCII."""
    return json.dumps(dict(metadata), separators=(",", ":"), sort_keys=True)


def decode_metadata(text: str) -> dict[str, str]:
    """Raises ``ValueError`` unless ``text`` is a JSON str -> str object."""
    return checked_metadata(json.loads(text))


def checked_metadata(metadata: Any) -> dict[str, str]:
    """``metadata`` if it is a str -> str dict; raises ``ValueError`` otherwise."""
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError("metadata must map str to str")
    return metadata


class VersionChanged(errors.Conflict):
    """The newest version is not the one the client pinned with ``X-Backend-Timestamp``."""


def error_kind(err: errors.CloudError) -> str:
    if isinstance(err, ObjectDeleted):
        return "deleted"
    if isinstance(err, ObjectNotFound):
        return "not_found"
    kinds = {
        EtagMismatch: "etag_mismatch",
        DeviceUnavailable: "device_unavailable",
        VersionChanged: "version_changed",
        errors.Unauthorized: "unauthorized",
        errors.BadRequest: "bad_request",
    }
    return next((kind for cls, kind in kinds.items() if isinstance(err, cls)), "error")


def render_error(request: Request, err: errors.CloudError) -> Response:
    body: dict[str, Any] = {"error": error_kind(err), "message": err.message}
    if isinstance(err, ObjectDeleted):
        body["timestamp"] = err.timestamp.normal
    if isinstance(err, EtagMismatch):
        body.update(expected=err.expected, actual=err.actual)
    return JSONResponse(body, status_code=err.status_code, headers=err.headers)


# -- request parsing -----------------------------------------------------------------


def _device(request: Request) -> Device:
    name = request.path_params["device"]
    if not _DEVICE.fullmatch(name):
        raise errors.BadRequest(f"Invalid device name {name!r}")
    # LocalBackend only looks at the name: the ring's id, host and port are the caller's.
    return Device(id=0, host="", port=0, device=name)


def _partition(request: Request) -> int:
    partition = int(request.path_params["partition"])
    if partition >= 1 << 32:
        raise errors.BadRequest("Invalid partition")
    return partition


def _object(request: Request) -> tuple[Device, int, str]:
    obj_hash = request.path_params["obj_hash"]
    if not _HASH.fullmatch(obj_hash):
        raise errors.BadRequest(f"Invalid object hash {obj_hash!r}")
    return _device(request), _partition(request), obj_hash


def _timestamp(value: str | None, what: str) -> Timestamp | None:
    if value is None:
        return None
    try:
        return Timestamp.parse(value)
    except ValueError:
        raise errors.BadRequest(f"Invalid {what} {value!r}") from None


def _count(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise errors.BadRequest(f"Invalid {name} {value!r}")
    return int(value)


def _backend(request: Request) -> LocalBackend:
    backend: LocalBackend = request.app.state.backend
    return backend


# -- handlers ------------------------------------------------------------------------


async def check_device(request: Request) -> Response:
    manager = _backend(request).manager(_device(request))
    await run_blocking(manager.check)
    return Response(status_code=200)


async def list_partitions(request: Request) -> Response:
    partitions = await _backend(request).partitions(_device(request))
    return JSONResponse({"partitions": partitions})


async def suffix_hashes(request: Request) -> Response:
    reclaim = _timestamp(request.query_params.get("reclaim_before"), "reclaim_before")
    digests = await _backend(request).suffix_hashes(
        _device(request), _partition(request), reclaim_before=reclaim
    )
    return JSONResponse({"suffixes": digests})


async def object_hashes(request: Request) -> Response:
    device, partition = _device(request), _partition(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise errors.BadRequest("The body must be a JSON object")
    wanted = body.get("suffixes")
    if wanted is not None and not (
        isinstance(wanted, list)
        and all(isinstance(s, str) and _SUFFIX.fullmatch(s) for s in wanted)
    ):
        raise errors.BadRequest("'suffixes' must be null or a list of 3-digit hex suffixes")
    found = await _backend(request).hashes(
        device, partition, None if wanted is None else set(wanted)
    )
    return JSONResponse({"hashes": {h: info.filename for h, info in found.items()}})


async def put_object(request: Request) -> Response:
    device, partition, obj_hash = _object(request)
    writer = await _backend(request).open_writer(device, partition, obj_hash)
    try:
        metadata, timestamp = await receive_frames(request.stream(), writer)
        await writer.commit(metadata, timestamp)
    except BaseException:
        await writer.abort()
        raise
    return Response(status_code=201, headers={TIMESTAMP_HEADER: timestamp.normal})


async def get_object(request: Request) -> Response:
    device, partition, obj_hash = _object(request)
    offset = _count(request, "offset") or 0
    length = _count(request, "length")
    check = request.query_params.get("check") == "1"
    pinned = _timestamp(request.headers.get(TIMESTAMP_HEADER), TIMESTAMP_HEADER)
    reader = await _backend(request).open_reader(device, partition, obj_hash)
    if pinned is not None and reader.timestamp != pinned:
        await reader.close()
        raise VersionChanged(f"The newest version is {reader.timestamp}, not {pinned}")
    end = reader.size if check or length is None else min(reader.size, offset + length)
    count = max(0, end - offset)
    headers = {
        TIMESTAMP_HEADER: reader.timestamp.normal,
        METADATA_HEADER: encode_metadata(reader.metadata),
        SIZE_HEADER: str(reader.size),
        "Content-Length": str(count),
    }
    if request.method == "HEAD":  # routed here with GET; reading the data would be wasted
        await reader.close()
        return Response(status_code=200, headers=headers)
    blocks = _skip(reader.iter(), offset) if check else reader.iter(offset, count)
    return _ReplicaResponse(reader, blocks, headers)


async def delete_object(request: Request) -> Response:
    device, partition, obj_hash = _object(request)
    timestamp = _timestamp(request.headers.get("X-Timestamp"), "X-Timestamp")
    if timestamp is None:
        raise errors.BadRequest("Missing X-Timestamp")
    raw = request.headers.get(METADATA_HEADER)
    try:
        metadata = None if raw is None else decode_metadata(raw)
    except ValueError as exc:
        raise errors.BadRequest(f"Invalid {METADATA_HEADER}: {exc}") from None
    await _backend(request).delete(device, partition, obj_hash, timestamp, metadata)
    return no_content()


async def remove_version(request: Request) -> Response:
    device, partition, obj_hash = _object(request)
    info = FileInfo.parse(request.path_params["version"])
    if info is None:
        raise errors.BadRequest("Invalid version: expected <timestamp>.data or <timestamp>.ts")
    await _backend(request).remove(device, partition, obj_hash, info)
    return no_content()


# -- streams -------------------------------------------------------------------------


async def receive_frames(
    chunks: AsyncIterator[bytes], writer: ReplicaWriter
) -> tuple[dict[str, str], Timestamp]:
    """Write the data frames of a PUT body as they arrive; returns the commit frame's
    metadata and timestamp.

    Raises:
        BadRequest: the stream ended or broke before a whole commit frame, carried
            anything after it, or is not frames.
    """
    parser = _FrameParser()
    pending = bytearray()
    try:
        async for chunk in chunks:
            for data in parser.feed(chunk):
                pending += data
                if len(pending) >= WRITE_SIZE:
                    await writer.write(bytes(pending))
                    pending.clear()
    except ClientDisconnect:
        raise errors.BadRequest("The client went away before the commit frame") from None
    commit = parser.commit
    if commit is None:
        raise errors.BadRequest("The stream ended before its commit frame")
    if pending:
        await writer.write(bytes(pending))
    try:
        payload = json.loads(commit)
        metadata = checked_metadata(payload["metadata"])
        timestamp = Timestamp.parse(payload["timestamp"])
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.BadRequest(f"Invalid commit frame: {exc}") from None
    return metadata, timestamp


class _FrameParser:
    """Splits a byte stream into data frame payloads and the one commit frame."""

    def __init__(self) -> None:
        self.commit: bytes | None = None
        self._header = bytearray()
        self._data_left = 0
        self._commit_size: int | None = None
        self._commit = bytearray()

    def feed(self, chunk: bytes) -> list[memoryview]:
        """The data in ``chunk`` (zero or more pieces of data frames)."""
        out = []
        view = memoryview(chunk)
        while view:
            if self.commit is not None:
                raise errors.BadRequest("Data after the commit frame")
            if self._data_left:
                piece = view[: self._data_left]
                out.append(piece)
                self._data_left -= len(piece)
            elif self._commit_size is not None:
                piece = view[: self._commit_size - len(self._commit)]
                self._commit += piece
                self._finish_commit()
            else:
                piece = view[: FRAME.size - len(self._header)]
                self._header += piece
                if len(self._header) == FRAME.size:
                    self._start_frame()
            view = view[len(piece) :]
        return out

    def _start_frame(self) -> None:
        kind, size = FRAME.unpack(self._header)
        self._header.clear()
        if kind == DATA_FRAME:
            self._data_left = size
        elif kind == COMMIT_FRAME:
            if size > MAX_COMMIT_FRAME:
                raise errors.BadRequest("Commit frame too large")
            self._commit_size = size
            self._finish_commit()
        else:
            raise errors.BadRequest(f"Unknown frame kind {kind!r}")

    def _finish_commit(self) -> None:
        if self._commit_size is not None and len(self._commit) == self._commit_size:
            self.commit = bytes(self._commit)
            self._commit_size = None


async def _skip(blocks: AsyncIterator[bytes], count: int) -> AsyncGenerator[bytes, None]:
    """``blocks`` without their first ``count`` bytes (read and hashed all the same)."""
    async for block in blocks:
        if count >= len(block):
            count -= len(block)
            continue
        yield block[count:] if count else block
        count = 0


class _ReplicaResponse(StreamingResponse):
    """Streams a replica and closes its reader however the response ends.

    A whole read that fails its MD5 has quarantined the replica on the way, but its
    bytes are already out: the response ends normally and the client, which hashes
    whole reads too, finds the mismatch. A failing device breaks the response (the
    server drops the connection), which the client sees as a short body.
    """

    def __init__(
        self, reader: ReplicaReader, blocks: AsyncIterator[bytes], headers: dict[str, str]
    ) -> None:
        self._blocks = _guarded(blocks)
        super().__init__(self._blocks, headers=headers)
        self.reader = reader

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._blocks.aclose()
            await self.reader.close()


async def _guarded(blocks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    try:
        async for block in blocks:
            yield block
    except DiskFileCorrupt as exc:
        log.warning("object server: %s", exc)
    finally:
        if isinstance(blocks, AsyncGenerator):
            await blocks.aclose()


# -- the app -------------------------------------------------------------------------


class _RequireSecret:
    """Refuses (401) any request without the cluster secret, before routing."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        self.app = app
        self.secret = secret.encode()
        self.header = SECRET_HEADER.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = next((v for k, v in scope["headers"] if k == self.header), b"")
            if not hmac.compare_digest(given, self.secret):
                err = errors.Unauthorized("This request needs the cluster secret")
                await render_error(Request(scope), err)(scope, receive, send)
                return
        await self.app(scope, receive, send)


ROUTES = [
    Route("/{device}", check_device, methods=["HEAD"]),
    Route("/{device}/partitions", list_partitions, methods=["GET"]),
    Route("/{device}/{partition:int}/suffixes", suffix_hashes, methods=["GET"]),
    Route("/{device}/{partition:int}/hashes", object_hashes, methods=["POST"]),
    Route("/{device}/{partition:int}/{obj_hash}", put_object, methods=["PUT"]),
    Route("/{device}/{partition:int}/{obj_hash}", get_object, methods=["GET"]),
    Route("/{device}/{partition:int}/{obj_hash}", delete_object, methods=["DELETE"]),
    Route("/{device}/{partition:int}/{obj_hash}/{version}", remove_version, methods=["DELETE"]),
]


def build_object_server(backend: LocalBackend, secret: str) -> ASGIApp:
    """The object server for the devices of ``backend``, refusing requests without
    ``secret`` (shared by every host of the cluster; must not be empty)."""
    if not secret:
        raise ValueError("the object server needs a cluster secret")
    app = build_service_app(ROUTES, render_error)
    app.state.backend = backend
    return _RequireSecret(app, secret)
