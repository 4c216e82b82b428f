"""Replicas on other hosts: ``HttpBackend`` talks to their object servers, and
``RoutingBackend`` sends each call to this host's disks or over HTTP.

``HttpBackend`` keeps the ``ObjectBackend`` contract across the network:

- anything that keeps a host from answering (refused or reset connections,
  timeouts, a broken body, an answer that is not the object server's) is
  ``DeviceUnavailable``, so quorum writes move on to handoffs and reads to the
  other replicas when a host is down;
- ``open_writer`` first asks the server whether the device can serve (Swift's
  proxy learns that from ``Expect: 100-continue``, which httpx does not send),
  then streams one PUT whose body ``write`` feeds block by block: each ``write``
  returns once its block is on the wire, so at most one block per replica is
  held in memory. ``commit`` sends the commit frame and waits for the 201;
  ``abort`` ends the body without it (the server discards the data) or, after a
  commit that may have landed, removes that version;
- ``open_reader`` fetches the metadata and the first ``prefetch`` bytes in one
  request; a small object is then read from memory, a larger one streams in a
  second request pinned to the version opened (``X-Backend-Timestamp``), so a
  newer version landing in between fails the read (``DeviceUnavailable``)
  instead of mixing two versions. Whole reads are hashed here as well as on the
  server: the server quarantines a corrupt replica, this side raises
  ``DiskFileCorrupt`` (or, when the whole object came with the prefetch, reads
  the replica as missing).

The URL of a device is ``<scheme>://<host>:<port><path_prefix>/<device>``, host
and port from the ring; see ``objectserver`` for the routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx

from onestack.object_store.backend import LocalBackend, ObjectBackend, ReplicaReader, ReplicaWriter
from onestack.object_store.diskfile import DATA, FileInfo
from onestack.object_store.errors import (
    DeviceUnavailable,
    DiskFileCorrupt,
    EtagMismatch,
    ObjectDeleted,
    ObjectNotFound,
)
from onestack.object_store.objectserver import (
    COMMIT_FRAME,
    DATA_FRAME,
    METADATA_HEADER,
    SECRET_HEADER,
    SIZE_HEADER,
    TIMESTAMP_HEADER,
    decode_metadata,
    encode_metadata,
    frame_header,
)
from onestack.object_store.ring import Device
from onestack.object_store.timestamp import Timestamp

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=3.0)
PREFETCH = 64 * 1024
ABORT_TIMEOUT = 10.0  # how long an abort waits for the server to discard a write


class HttpBackend(ObjectBackend):
    """Devices served by object servers, one ``httpx.AsyncClient`` (pooled connections)
    for all of them; ``transport`` replaces the network (tests pass ASGI apps)."""

    def __init__(
        self,
        secret: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        prefetch: int = PREFETCH,
        scheme: str = "http",
        path_prefix: str = "",
        max_keepalive: int = 64,
    ) -> None:
        if not secret:
            raise ValueError("the object servers need a cluster secret")
        self.prefetch = prefetch
        self.scheme = scheme
        self.path_prefix = path_prefix.rstrip("/")
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            headers={SECRET_HEADER: secret},
            # Streaming PUTs hold a connection each: the API layer bounds how many.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=max_keepalive),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def url(self, device: Device, *parts: int | str) -> str:
        host = f"[{device.host}]" if ":" in device.host else device.host
        path = "/".join(quote(str(p), safe="") for p in (device.device, *parts))
        return f"{self.scheme}://{host}:{device.port}{self.path_prefix}/{path}"

    async def request(self, device: Device, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The server's answer, whatever its status.

        Raises:
            DeviceUnavailable: the host did not answer.
        """
        try:
            return await self._client.request(method, url, **kwargs)
        except (httpx.HTTPError, OSError) as exc:
            raise unreachable(device, exc) from exc

    async def _call(
        self, device: Device, method: str, url: str, ok: int = 200, **kwargs: Any
    ) -> httpx.Response:
        response = await self.request(device, method, url, **kwargs)
        if response.status_code != ok:
            raise response_error(device, response)
        return response

    async def open_writer(self, device: Device, partition: int, obj_hash: str) -> ReplicaWriter:
        await self._call(device, "HEAD", self.url(device))
        return _HttpWriter(self, device, partition, obj_hash)

    async def open_reader(self, device: Device, partition: int, obj_hash: str) -> ReplicaReader:
        url = self.url(device, partition, obj_hash)
        params = {"offset": 0, "length": self.prefetch}
        response = await self._call(device, "GET", url, params=params)
        try:
            timestamp = Timestamp.parse(response.headers[TIMESTAMP_HEADER])
            metadata = decode_metadata(response.headers[METADATA_HEADER])
            size = int(response.headers[SIZE_HEADER])
        except (KeyError, ValueError) as exc:
            raise DeviceUnavailable(device.device, f"sent a malformed answer: {exc!r}") from exc
        head = response.content
        if len(head) != min(size, self.prefetch):
            raise DeviceUnavailable(device.device, "sent a short body")
        etag = metadata.get("ETag", "")
        if len(head) == size and hashlib.md5(head, usedforsecurity=False).hexdigest() != etag:
            log.warning("object read: %s sent data that does not hash to its ETag", device.device)
            raise ObjectNotFound()  # the server has quarantined it, as a local read would
        return _HttpReader(self, device, url, metadata, timestamp, size, head)

    async def delete(
        self,
        device: Device,
        partition: int,
        obj_hash: str,
        timestamp: Timestamp,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        headers = {"X-Timestamp": timestamp.normal}
        if metadata is not None:
            headers[METADATA_HEADER] = encode_metadata(metadata)
        url = self.url(device, partition, obj_hash)
        await self._call(device, "DELETE", url, ok=204, headers=headers)

    async def partitions(self, device: Device) -> list[int]:
        response = await self._call(device, "GET", self.url(device, "partitions"))
        return [int(p) for p in _json(device, response, "partitions", list)]

    async def suffix_hashes(
        self, device: Device, partition: int, *, reclaim_before: Timestamp | None = None
    ) -> dict[str, str]:
        params = {} if reclaim_before is None else {"reclaim_before": reclaim_before.normal}
        url = self.url(device, partition, "suffixes")
        response = await self._call(device, "GET", url, params=params)
        return {str(k): str(v) for k, v in _json(device, response, "suffixes", dict).items()}

    async def hashes(
        self, device: Device, partition: int, suffixes: set[str] | None = None
    ) -> dict[str, FileInfo]:
        body = {"suffixes": None if suffixes is None else sorted(suffixes)}
        url = self.url(device, partition, "hashes")
        response = await self._call(device, "POST", url, json=body)
        out = {}
        for obj_hash, filename in _json(device, response, "hashes", dict).items():
            info = FileInfo.parse(str(filename))
            if info is None:
                raise DeviceUnavailable(device.device, f"listed a bad version {filename!r}")
            out[str(obj_hash)] = info
        return out

    async def remove(self, device: Device, partition: int, obj_hash: str, info: FileInfo) -> None:
        url = self.url(device, partition, obj_hash, info.filename)
        await self._call(device, "DELETE", url, ok=204)

    @contextlib.asynccontextmanager
    async def read_range(
        self, device: Device, url: str, timestamp: Timestamp, offset: int, length: int, check: bool
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """The data of the pinned version from ``offset`` (``length`` bytes, which with
        ``check`` must reach the end: the server then hashes the whole replica). Entered
        once the server answered, so a missing version fails before any byte is used."""
        params: dict[str, Any] = {"offset": offset}
        if check:
            params["check"] = "1"
        else:
            params["length"] = length
        headers = {TIMESTAMP_HEADER: timestamp.normal}
        try:
            async with self._client.stream("GET", url, params=params, headers=headers) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise response_error(device, response, changed=True)
                yield _exactly(device, response.aiter_raw(), length)
        except (httpx.HTTPError, OSError) as exc:
            raise unreachable(device, exc) from exc


async def _exactly(
    device: Device, chunks: AsyncIterator[bytes], length: int
) -> AsyncIterator[bytes]:
    got = 0
    async for chunk in chunks:
        got += len(chunk)
        yield chunk
    if got != length:
        raise DeviceUnavailable(device.device, f"sent {got} of {length} bytes")


class _HttpWriter(ReplicaWriter):
    """One streaming PUT; ``write`` hands blocks to the request body through a one-slot queue."""

    def __init__(self, backend: HttpBackend, device: Device, partition: int, obj_hash: str):
        self.device = device
        self._backend = backend
        self._partition, self._hash = partition, obj_hash
        self._slot: asyncio.Queue[tuple[bytes, bytes] | None] = asyncio.Queue(maxsize=1)
        self._timestamp: Timestamp | None = None  # set once a commit frame may have gone out
        self._ended = False  # the body is complete: the server may commit
        url = backend.url(device, partition, obj_hash)
        self._request = asyncio.ensure_future(
            backend.request(device, "PUT", url, content=self._frames())
        )
        self._request.add_done_callback(_retrieve)

    async def _frames(self) -> AsyncIterator[bytes]:
        while True:
            frame = await self._slot.get()
            try:
                if frame is None:
                    self._ended = True
                    return
                yield frame[0]
                yield frame[1]
            finally:
                # Reached when the transport asks for more: the frame has been sent.
                self._slot.task_done()

    async def write(self, block: bytes) -> None:
        if block:
            await self._send(frame_header(DATA_FRAME, len(block)), block)

    async def commit(self, metadata: Mapping[str, str], timestamp: Timestamp) -> None:
        payload = json.dumps({"metadata": dict(metadata), "timestamp": timestamp.normal}).encode()
        self._timestamp = timestamp
        await self._send(frame_header(COMMIT_FRAME, len(payload)), payload)
        await self._until_answered(self._slot.put(None))
        await asyncio.wait({self._request})  # not cancelled with us: abort decides
        response = self._request.result()
        if response.status_code != 201:
            raise response_error(self.device, response)

    async def abort(self) -> None:
        try:
            await asyncio.shield(self._abort())
        except Exception as exc:  # noqa: BLE001 - abort never raises; the replicator cleans up
            log.warning("object write: abort on %s failed: %s", self.device.device, exc)

    async def _abort(self) -> None:
        request = self._request
        if not request.done():
            if self._timestamp is None:
                # End the body without a commit frame: the server discards the data and
                # answers, and the connection stays in the pool.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(ABORT_TIMEOUT):
                        await self._until_answered(self._slot.put(None))
            if self._ended:
                await asyncio.wait({request}, timeout=ABORT_TIMEOUT)
            # A body cut before its end is discarded by the server; a server that does
            # not answer loses the connection.
            request.cancel()
            await asyncio.wait({request})
        if self._timestamp is not None and self._ended and not self._refused():
            await self._backend.remove(
                self.device, self._partition, self._hash, FileInfo(self._timestamp, DATA)
            )

    def _refused(self) -> bool:
        """Whether the server answered the PUT with something other than 201 (so it
        committed nothing); a complete body whose answer was lost might have committed."""
        request = self._request
        if request.cancelled() or request.exception() is not None:
            return False
        return request.result().status_code != 201

    async def _send(self, header: bytes, payload: bytes) -> None:
        await self._until_answered(self._slot.put((header, payload)))
        await self._until_answered(self._slot.join())

    async def _until_answered(self, step: Awaitable[T]) -> T:
        """Await ``step`` unless the PUT ends first (the server refused or the connection
        broke), which raises its error instead."""
        future = asyncio.ensure_future(step)
        try:
            await asyncio.wait({future, self._request}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not future.done():
                future.cancel()
        if future.done() and not future.cancelled():
            return future.result()
        raise self._early_end()

    def _early_end(self) -> Exception:
        request = self._request
        if request.cancelled():
            return DeviceUnavailable(self.device.device, "write cancelled")
        exc = request.exception()
        if exc is not None:
            return exc if isinstance(exc, Exception) else DeviceUnavailable(self.device.device)
        return response_error(self.device, request.result())


class _HttpReader(ReplicaReader):
    """A version on a remote device: the metadata and the first bytes, fetched at open."""

    def __init__(
        self,
        backend: HttpBackend,
        device: Device,
        url: str,
        metadata: dict[str, str],
        timestamp: Timestamp,
        size: int,
        head: bytes,
    ) -> None:
        self.device = device
        self.metadata = metadata
        self.timestamp = timestamp
        self.size = size
        self._backend = backend
        self._url = url
        self._head = head

    async def iter(self, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        end = self.size if length is None else min(self.size, offset + length)
        if offset >= end:
            return
        head = self._head
        if end <= len(head):  # a whole object in the prefetch was checked at open
            yield head[offset:end]
            return
        whole = offset == 0 and end == self.size
        md5 = hashlib.md5(usedforsecurity=False) if whole else None
        start = max(offset, len(head))
        rest = self._backend.read_range(
            self.device, self._url, self.timestamp, start, end - start, check=whole
        )
        async with rest as blocks:  # before the prefetched bytes go out: it may fail
            if offset < start:
                if md5 is not None:
                    md5.update(head)
                yield head[offset:]
            async for block in blocks:
                if md5 is not None:
                    md5.update(block)
                yield block
        if md5 is not None and md5.hexdigest() != self.etag:
            raise DiskFileCorrupt(f"{self._url}: data does not hash to its ETag (quarantined)")

    async def close(self) -> None:
        self._head = b""


class RoutingBackend(ObjectBackend):
    """Each call to ``local`` when the device's (host, port) is one of this host's
    ``addresses``, else to ``remote`` (an ``HttpBackend``)."""

    def __init__(
        self, local: LocalBackend, remote: ObjectBackend, addresses: Iterable[tuple[str, int]]
    ) -> None:
        self.local = local
        self.remote = remote
        self.addresses = {_address(host, port) for host, port in addresses}
        self._local: dict[tuple[str, int], bool] = {}

    @classmethod
    def for_host(
        cls,
        devices_root: Path,
        host: str,
        port: int,
        secret: str,
        *,
        mount_check: bool = False,
        **http_options: Any,
    ) -> RoutingBackend:
        """This host's devices under ``devices_root``; the ring's devices at (``host``,
        ``port``) are those. ``http_options`` go to ``HttpBackend``."""
        local = LocalBackend(devices_root, mount_check=mount_check)
        return cls(local, HttpBackend(secret, **http_options), [(host, port)])

    async def aclose(self) -> None:
        if isinstance(self.remote, HttpBackend):
            await self.remote.aclose()

    def is_local(self, device: Device) -> bool:
        # asked for every replica of every request: remembered per (host, port)
        key = (device.host, device.port)
        local = self._local.get(key)
        if local is None:
            local = self._local[key] = _address(device.host, device.port) in self.addresses
        return local

    def local_devices(self, devices: Iterable[Device]) -> list[Device]:
        """The ones on this host (what its replicator and auditor go through)."""
        return [d for d in devices if self.is_local(d)]

    def backend_for(self, device: Device) -> ObjectBackend:
        return self.local if self.is_local(device) else self.remote

    async def open_writer(self, device: Device, partition: int, obj_hash: str) -> ReplicaWriter:
        return await self.backend_for(device).open_writer(device, partition, obj_hash)

    async def write_whole(
        self, device: Device, partition: int, obj_hash: str, data: bytes,
        metadata: Mapping[str, str], timestamp: Timestamp,
    ) -> ReplicaWriter:
        return await self.backend_for(device).write_whole(device, partition, obj_hash, data,
                                                          metadata, timestamp)

    async def open_reader(self, device: Device, partition: int, obj_hash: str) -> ReplicaReader:
        return await self.backend_for(device).open_reader(device, partition, obj_hash)

    async def delete(
        self,
        device: Device,
        partition: int,
        obj_hash: str,
        timestamp: Timestamp,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        await self.backend_for(device).delete(device, partition, obj_hash, timestamp, metadata)

    async def partitions(self, device: Device) -> list[int]:
        return await self.backend_for(device).partitions(device)

    async def suffix_hashes(
        self, device: Device, partition: int, *, reclaim_before: Timestamp | None = None
    ) -> dict[str, str]:
        backend = self.backend_for(device)
        return await backend.suffix_hashes(device, partition, reclaim_before=reclaim_before)

    async def hashes(
        self, device: Device, partition: int, suffixes: set[str] | None = None
    ) -> dict[str, FileInfo]:
        return await self.backend_for(device).hashes(device, partition, suffixes)

    async def remove(self, device: Device, partition: int, obj_hash: str, info: FileInfo) -> None:
        await self.backend_for(device).remove(device, partition, obj_hash, info)


def _address(host: str, port: int) -> tuple[str, int]:
    """One spelling per address (``::1`` and ``0::1`` are the same host)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).compressed, port
    except ValueError:
        return host.lower(), port


def unreachable(device: Device, exc: BaseException) -> DeviceUnavailable:
    return DeviceUnavailable(device.device, f"unreachable at {device.host}:{device.port}: {exc!r}")


def response_error(device: Device, response: httpx.Response, *, changed: bool = False) -> Exception:
    """The contract's error for an object server's error answer; ``changed``: the
    version being read is gone (a newer one, a delete, a quarantine)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    kind, status = body.get("error"), response.status_code
    if not changed:
        if status == 404 and kind == "deleted":
            with contextlib.suppress(KeyError, ValueError, TypeError):
                return ObjectDeleted(Timestamp.parse(body["timestamp"]))
        if status == 404 and kind in ("not_found", "deleted"):
            return ObjectNotFound()
        if status == 422 and kind == "etag_mismatch":
            return EtagMismatch(str(body.get("expected")), str(body.get("actual")))
    message = body.get("message") or response.reason_phrase
    return DeviceUnavailable(
        device.device, f"at {device.host}:{device.port} answered {status}: {message}"
    )


def _json(device: Device, response: httpx.Response, key: str, kind: type[T]) -> T:
    try:
        value = response.json()[key]
    except (ValueError, KeyError, TypeError) as exc:
        raise DeviceUnavailable(device.device, f"sent a malformed answer: {exc!r}") from exc
    if not isinstance(value, kind):
        raise DeviceUnavailable(device.device, f"sent a malformed {key!r}")
    return value


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a failed request's error as seen (the writer reports it, or abort ignores it)."""
    if not task.cancelled():
        task.exception()
