"""Server-side copy: ``PUT`` with ``X-Copy-From`` and the ``COPY`` method.

A copy is a GET of the source and a PUT of the destination sent to the layers
below, the body streamed from one to the other, so the caller needs read rights
on the source and write rights on the destination (each sub-request is
authorized by the proxy as any request is), and a copy of a large object
copies its whole data (the large-object layers are below this one) unless
``?multipart-manifest=get`` asks for the manifest itself.

``COPY`` becomes a ``PUT`` here: the proxy knows no such method. Metadata of
the source is kept, headers of the request override it, ``X-Fresh-Metadata``
drops the source's user metadata. ``?heartbeat=on`` answers 202 at once and
keeps the connection alive with spaces until the copy is done, then writes the
outcome in the body, as Swift does for long copies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

from onestack.object_store.api.common import config_true
from onestack.object_store.http import (
    Handler,
    Headers,
    HTTPError,
    Request,
    Response,
    error,
    reason,
)
from onestack.object_store.state import ObjectStoreState

SOURCE = "SSC"
# Seconds between the spaces of a ``?heartbeat=on`` copy (Swift's yield_frequency).
YIELD_FREQUENCY = 10.0
OVERRIDE_PREFIX = "x-object-sysmeta-container-update-override-"
# Source headers a copy never takes over: the large-object markers and the
# checksum follow their own rules below, the rest describe the source response.
_NOT_COPIED = (
    "x-static-large-object", "x-object-manifest", "etag", "content-type", "x-timestamp",
    "x-backend-timestamp", "content-length", "transfer-encoding", "content-range",
    "last-modified", "date", "accept-ranges", "x-trans-id", "x-openstack-request-id",
    "content-location",
)


RESERVED = "\x00"


def allow_reserved_names(req: Request) -> bool:
    """Whether ``req`` may name things in the reserved namespace (``\x00...``):
    only a middleware's sub-request says so; the gatekeeper strips the header
    from the outside."""
    return (req.headers.get("x-backend-allow-reserved-names") or "").lower() == "true"


def check_path_header(req: Request, name: str, message: str) -> tuple[str, str]:
    """``(container, object)`` of a ``<container>/<object>`` header (URL-quoted,
    the leading slash optional), as Swift's ``check_path_header`` reads it.

    Raises:
        HTTPError: 412 with ``message`` when either part is missing, 412 for a
            name in the reserved namespace (as Swift's proxy refuses those).
    """
    value = unquote(req.headers.get(name) or "")
    if RESERVED in value and not allow_reserved_names(req):
        raise HTTPError(error(412, "Invalid UTF8 or contains NULL", method=req.method))
    if not value.startswith("/"):
        value = "/" + value
    parts = value[1:].split("/", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise HTTPError(error(412, message, method=req.method))
    return parts[0], parts[1]


def check_account_format(req: Request, name: str | None) -> str:
    """Raises: HTTPError: 412 for an empty account name or one with a slash."""
    if not name:
        raise HTTPError(error(412, "Account name cannot be empty", method=req.method))
    if RESERVED in name:
        raise HTTPError(error(412, "Invalid UTF8 or contains NULL", method=req.method))
    if "/" in name:
        raise HTTPError(error(412, "Account name cannot contain slashes", method=req.method))
    return name


def is_meta(name: str) -> bool:
    """User or system metadata of an object, or transient sysmeta (all kept by a copy)."""
    lk = name.lower()
    return any(lk.startswith(p) and len(lk) > len(p) for p in (
        "x-object-meta-", "x-object-sysmeta-", "x-object-transient-sysmeta-"))


def is_sysmeta(name: str) -> bool:
    lk = name.lower()
    return lk.startswith("x-object-sysmeta-") and len(lk) > len("x-object-sysmeta-")


def normalize_etag(etag: str | None) -> str | None:
    """The etag without the quotes HTTP puts around it."""
    if etag is None:
        return None
    return etag[1:-1] if len(etag) > 1 and etag[0] == etag[-1] == '"' else etag


class ServerSideCopy:
    def __init__(self, app: Handler, st: ObjectStoreState) -> None:
        self.app = app
        self.max_file_size = st.settings.object_store.max_file_size
        self.yield_frequency = float(st.extras.get("copy_yield_frequency", YIELD_FREQUENCY))

    async def __call__(self, req: Request) -> Response:
        try:
            version, account, container, obj = req.split()
        except HTTPError:
            return await self.app(req)
        if obj is None:
            return await self.app(req)
        if req.method == "PUT" and req.headers.get("x-copy-from"):
            return await self.handle_put(req)
        if req.method == "COPY":
            return await self.handle_copy(req, version, account, container or "", obj)
        if req.method == "OPTIONS":
            return await self.handle_options(req)
        return await self.app(req)

    async def handle_copy(
        self, req: Request, version: str, account: str, container: str, obj: str
    ) -> Response:
        """Turn ``COPY`` into the ``PUT`` with ``X-Copy-From`` it stands for."""
        if not req.headers.get("destination"):
            return error(412, "Destination header required", method=req.method)
        req.environ["swift.orig_req_method"] = "COPY"
        dest_account = account
        if "destination-account" in req.headers:
            dest_account = check_account_format(
                req, unquote(req.headers.pop("destination-account") or ""))
            req.headers["X-Copy-From-Account"] = quote(account)
        dest_container, dest_obj = check_path_header(
            req, "destination",
            "Destination header must be of the form <container name>/<object name>")
        req.method = "PUT"
        req.path = f"/{version}/{dest_account}/{dest_container}/{dest_obj}"
        req.headers["Content-Length"] = "0"
        req.headers.pop("transfer-encoding")
        req.headers["X-Copy-From"] = quote(f"/{container}/{obj}")
        del req.headers["destination"]
        return await self.handle_put(req)

    async def handle_put(self, req: Request) -> Response:
        if req.content_length:
            return error(400, "Copy requests require a zero byte body", method=req.method)
        version, account, _, _ = req.split()
        src_account = account
        if req.headers.get("x-copy-from-account"):
            src_account = check_account_format(
                req, unquote(req.headers["x-copy-from-account"]))
        src_container, src_obj = check_path_header(
            req, "x-copy-from",
            "X-Copy-From header must be of the form <container name>/<object name>")
        source_path = f"/{version}/{src_account}/{src_container}/{src_obj}"
        source = await self._get_source(req, source_path)
        if source.status >= 300:
            return source
        sink = self._sink_request(req, source)
        extra = self._response_headers(src_account, src_container, src_obj, source, sink)
        if config_true(req.query.get("heartbeat")):
            return self._heartbeat(req, sink, source, extra)
        try:
            resp = await self.app(sink)
        finally:
            await source.close()
        if resp.ok:
            resp.headers.update(extra)
        return resp

    async def _get_source(self, req: Request, path: str) -> Response:
        """The source's GET response, or the 413 for a source too big to copy."""
        headers = req.headers.copy()
        for name in ("content-length", "transfer-encoding", "x-backend-storage-policy-index"):
            headers.pop(name)
        headers["X-Newest"] = "true"
        query = dict(req.query)
        query.pop("heartbeat", None)
        if query.get("multipart-manifest") == "get":
            query["format"] = "raw"
        source = await self.app(req.sub("GET", path, headers=headers, query=query,
                                        source=SOURCE))
        if source.status >= 300:
            return source
        length = source.headers.get("content-length")
        if length is None or int(length) > self.max_file_size:
            # a chunked source is a large object of too many segments to size
            await source.close()
            return error(413, method=req.method)
        return source

    def _sink_request(self, req: Request, source: Response) -> Request:
        """The destination PUT: the source's headers under the request's."""
        headers = Headers()
        if config_true(req.headers.get("x-fresh-metadata")):
            headers.update(req.headers)
            for name, value in source.headers.items():
                if is_sysmeta(name):
                    headers[name] = value
            for name, value in req.headers.items():
                if is_sysmeta(name):
                    headers[name] = value
        else:
            for name, value in source.headers.items():
                if name.lower() not in _NOT_COPIED:
                    headers[name] = value
            headers.update(req.headers)
        query = dict(req.query)
        query.pop("version-id", None)
        query.pop("heartbeat", None)
        slo = "x-static-large-object" in source.headers
        dlo = "x-object-manifest" in source.headers
        if query.get("multipart-manifest") == "get":
            if slo:
                query["multipart-manifest"] = "put"
            if dlo:
                del query["multipart-manifest"]
                headers["X-Object-Manifest"] = source.headers["x-object-manifest"]
        headers.pop("transfer-encoding")
        headers["Content-Length"] = source.headers["content-length"]
        if source.status == 200 and not slo and (
                not dlo or req.query.get("multipart-manifest") == "get"):
            # the stored checksum of an ordinary object verifies the copy; a
            # large object's etag is not the checksum of its data
            etag = normalize_etag(source.headers.get("etag"))
            if etag:
                headers["Etag"] = etag
        else:
            for name in headers:
                if name.lower().startswith(OVERRIDE_PREFIX):
                    del headers[name]
        headers.pop("x-copy-from")
        headers.pop("x-copy-from-account")
        if not req.headers.get("content-type") and "content-type" in source.headers:
            headers["Content-Type"] = source.headers["content-type"]
        sink = req.sub("PUT", req.path, headers=headers, query=query, body=source.body,
                       source=SOURCE)
        if "swift.orig_req_method" in req.environ:
            sink.environ["swift.orig_req_method"] = req.environ["swift.orig_req_method"]
        return sink

    @staticmethod
    def _response_headers(
        account: str, container: str, obj: str, source: Response, sink: Request
    ) -> dict[str, str]:
        out = {"X-Copied-From-Account": quote(account),
               "X-Copied-From": quote(f"{container}/{obj}")}
        if "last-modified" in source.headers:
            out["X-Copied-From-Last-Modified"] = source.headers["last-modified"]
        if "x-object-version-id" in source.headers:
            out["X-Copied-From-Version-Id"] = source.headers["x-object-version-id"]
        for name, value in sink.headers.items():
            if is_meta(name) or name.lower() == "x-delete-at":
                out[name] = value
        return out

    def _heartbeat(self, req: Request, sink: Request, source: Response,
                   extra: dict[str, str]) -> Response:
        """202 now; spaces while the copy runs; its outcome as the body."""
        accept = req.headers.get("accept") or ""
        fmt = "application/json" if _prefers_json(accept) else "text/plain"
        task = asyncio.create_task(self._put_and_read(sink, source))

        async def body() -> AsyncIterator[bytes]:
            try:
                yield b" "
                while True:
                    done, _ = await asyncio.wait({task}, timeout=self.yield_frequency)
                    if done:
                        break
                    yield b" "
                yield _heartbeat_body(fmt, task, extra)
            finally:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task  # the client is gone: its outcome goes nowhere

        return Response(202, Headers({"Content-Type": fmt}), body())

    async def _put_and_read(self, sink: Request, source: Response) -> Response:
        try:
            try:
                resp = await self.app(sink)
            except HTTPError as exc:
                resp = exc.response
            await resp.read()
            return resp
        finally:
            await source.close()

    async def handle_options(self, req: Request) -> Response:
        resp = await self.app(req)
        if resp.ok:
            for name in ("allow", "access-control-allow-methods"):
                value = resp.headers.get(name)
                if value is not None and "COPY" not in value:
                    resp.headers[name] = value + ", COPY"
        return resp


def _prefers_json(accept: str) -> bool:
    """Whether ``Accept`` ranks application/json above text/plain."""
    best: tuple[float, str] = (0.0, "text/plain")
    for part in accept.split(","):
        kind, _, params = part.strip().partition(";")
        kind = kind.strip().lower()
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        for offered in ("text/plain", "application/json"):
            if kind in (offered, offered.split("/")[0] + "/*", "*/*") and q > best[0]:
                best = (q, offered)
    return best[1] == "application/json"


def _heartbeat_body(fmt: str, task: asyncio.Task[Response], extra: dict[str, str]) -> bytes:
    """The outcome of a heartbeat copy, as Swift's ``get_heartbeat_response_body``."""
    errors: list[list[str]] = []
    exc = task.exception()
    if exc is not None:
        status, text, headers = "500 Internal Error", str(exc), Headers()
    else:
        resp = task.result()
        body = resp.body if isinstance(resp.body, bytes) else b""
        status = f"{resp.status} {reason(resp.status)}"
        text, headers = body.decode("utf-8", "replace"), resp.headers
    result: dict[str, Any] = {"Response Status": status, "Response Body": text}
    if not status.startswith("2"):
        errors.append([quote(extra["X-Copied-From"]), status])
    for name, value in list(extra.items()) + headers.items():
        if not name.lower().startswith(("x-object-sysmeta-", "x-backend")):
            result[name] = value
    if fmt == "application/json":
        result["Errors"] = errors
        return json.dumps(result).encode("ascii")
    lines = [f"{k}: {result[k]}\n" for k in sorted(result)]
    lines.append("Errors:\n")
    lines.extend(f"{name}, {st}\n" for name, st in errors)
    return "".join(lines).encode("utf-8")


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    return ServerSideCopy(app, st)
