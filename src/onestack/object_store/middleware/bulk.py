"""Many operations in one request: bulk delete (``POST ?bulk-delete`` with a list of
paths) and archive extraction (``PUT ?extract-archive=tar|tar.gz|tar.bz2``).

Each item becomes an ordinary sub-request down the chain, with the caller's token,
so auth, quotas and versioning judge it as if the caller had sent it. As in
Swift the reply is always a 200 that starts at once and carries the outcome in
its body (text, JSON or XML by ``Accept``): the work may take longer than a
client waits for headers, so whitespace is sent every ``yield_frequency``
seconds while it runs.

An archive is never held whole: ``tarfile`` reads it in streaming mode in a worker
thread, from a file object the event loop keeps a little ahead of it, and each
member's bytes go straight into its object PUT.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import re
import tarfile
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import aclosing, suppress
from typing import Any, TypeVar
from urllib.parse import quote, unquote_to_bytes
from xml.sax.saxutils import escape

from onestack.core.concurrency import SerialLane
from onestack.object_store.asgi import ClientDisconnect
from onestack.object_store.http import (
    Handler,
    Headers,
    HTTPError,
    Request,
    Response,
    error,
    reason,
    split_path,
)
from onestack.object_store.state import ObjectStoreState

log = logging.getLogger("onestack.object_store.bulk")

T = TypeVar("T")
ACCEPTABLE_FORMATS = ("text/plain", "application/json", "application/xml", "text/xml")
ARCHIVE_TYPES = {"tar": "", "tar.gz": "gz", "tar.bz2": "bz2"}
READ_CHUNK_SIZE = 1 << 20
# how much of an archive is read ahead of tarfile (in the event loop, so that the
# worker thread seldom has to ask it for more)
READ_AHEAD = 2 << 20
# the limits Swift's bulk middleware defaults to
MAX_CONTAINERS_PER_EXTRACTION = 10000
MAX_FAILED_EXTRACTIONS = 1000
MAX_DELETES_PER_REQUEST = 10000
MAX_FAILED_DELETES = 1000
YIELD_FREQUENCY = 10.0
DELETE_CONCURRENCY = 2


class BulkError(Exception):
    """Ends a bulk operation with ``status`` and ``body`` in its result."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(body)
        self.status = status
        self.body = body


class CreateContainerError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def status_line(code: int) -> str:
    """A status as swob words it (``500 Internal Error``)."""
    return f"{code} {'Internal Error' if code == 500 else reason(code)}"


# -- Accept -------------------------------------------------------------------------

_TOKEN = r'[^()<>@,;:\"/\[\]?={}\x00-\x20\x7f]+'
_PARAM = r'(?:\s*;\s*(?:' + _TOKEN + r')\s*=\s*(?:' + _TOKEN + r'|"(?:[^"\\]|\\.)*"))'
_MEDIA = re.compile(r"^\s*(" + _TOKEN + r")/(" + _TOKEN + r")(" + _PARAM + r"*?\s*)$")


def best_match(accept: str | None, options: Iterable[str]) -> str | None:
    """The first of ``options`` the ``Accept`` header takes, best quality first (exact
    types before wildcards); the first option when there is no header.

    Raises:
        ValueError: the header does not parse.
    """
    opts = list(options)
    if not accept:
        return opts[0] if opts else None
    ranked: list[tuple[float, bool, re.Pattern[str]]] = []
    for item in accept.split(","):
        m = _MEDIA.match(item)
        if m is None:
            raise ValueError("invalid Accept header")
        kind, sub, params = m.groups()
        quality, seen_q = 1.0, False
        for param in (p.strip() for p in params.split(";") if p.strip()):
            name, _, value = param.partition("=")
            if name.strip() == "q":
                if seen_q:
                    raise ValueError('multiple "q" params')
                seen_q, quality = True, float(value.strip())
        pattern = ("^" + (_TOKEN if kind == "*" else re.escape(kind)) + "/"
                   + (_TOKEN if sub == "*" else re.escape(sub)) + "$")
        ranked.append((quality, "*" not in (kind, sub), re.compile(pattern)))
    ranked.sort(key=lambda r: (r[0], r[1]), reverse=True)
    for _, _, pattern in ranked:
        for option in opts:
            if pattern.match(option):
                return option
    return None


# -- result bodies ------------------------------------------------------------------

def result_body(fmt: str, data: dict[str, Any], errors: list[list[str]], root: str) -> bytes:
    """The outcome of a bulk operation in ``fmt`` (as Swift's heartbeat body)."""
    if fmt == "application/json":
        return json.dumps(dict(data, Errors=errors)).encode("ascii")
    if fmt.endswith("/xml"):
        out = [f"<{root}>\n"]
        for key in sorted(data):
            tag = key.replace(" ", "_").lower()
            out.append(f"<{tag}>{escape(str(data[key]))}</{tag}>\n")
        out.append("<errors>\n")
        out += [f"<object><name>{escape(name)}</name><status>{escape(status)}</status>"
                "</object>\n" for name, status in errors]
        out.append(f"</errors>\n</{root}>\n")
        return "".join(out).encode()
    lines = [f"{key}: {data[key]}\n" for key in sorted(data)]
    lines.append("Errors:\n")
    lines += [f"{name}, {status}\n" for name, status in errors]
    return "".join(lines).encode()


async def _stop(task: asyncio.Future[Any]) -> None:
    if not task.done():
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def heartbeat(task: asyncio.Future[bytes], first: bytes,
                    every: float) -> AsyncIterator[bytes]:
    """The body of a bulk reply whose headers went out ``every`` seconds into the
    work (or at its end): ``task``'s result, preceded, while it runs, by ``first``
    and then a space every ``every`` seconds (a blank line separates them)."""
    beat, separator = first, b""
    try:
        while not task.done():
            yield beat
            beat, separator = b" ", b"\r\n\r\n"
            await asyncio.wait({task}, timeout=every)
        yield separator + task.result()
    finally:
        await _stop(task)


async def reply(work: Awaitable[bytes], content_type: str, first: bytes,
                every: float) -> Response:
    """The 200 of a bulk operation, once ``work`` is done or ``every`` seconds into it.

    Waiting lets the request body be read before any response goes out: a client
    that sent ``Expect: 100-continue`` gets its ``100 Continue`` first (a final
    response before it would make the client hold the body back), as Swift's
    server sends headers only with the first body bytes. The body is always
    streamed (no Content-Length), as Swift's is.
    """
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task}, timeout=every)
    except BaseException:
        await _stop(task)
        raise
    resp = Response(200, Headers({"Content-Type": content_type}),
                    heartbeat(task, first, every))
    resp.on_close.append(lambda: _stop(task))
    return resp


def _quote(name: str) -> str:
    return quote(name.encode("utf-8", "surrogateescape"), safe="/")


def _valid_utf8(path: str) -> bool:
    """Swift's ``check_utf8``: valid UTF-8 without NUL."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in path


def _as_header(text: str) -> str:
    """``text`` as a header value reads here: the latin-1 text of its UTF-8 bytes."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


async def _call(app: Handler, req: Request) -> Response:
    try:
        return await app(req)
    except HTTPError as exc:
        return exc.response


async def pile(make: Callable[[T], Awaitable[Any]], items: Iterable[T],
               width: int) -> AsyncIterator[Any]:
    """Results of ``make(item)`` for ``items``, at most ``width`` running at once,
    in the order they finish; what still runs is cancelled if the reader stops."""
    pending: set[asyncio.Future[Any]] = set()
    feed = iter(items)
    try:
        while True:
            for item in feed:
                pending.add(asyncio.ensure_future(make(item)))
                if len(pending) >= width:
                    break
            if not pending:
                return
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                yield task.result()
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


# -- reading an archive off the event loop --------------------------------------------

class _BodyFile:
    """A blocking file object over an async body, for ``tarfile`` in worker threads.

    The event loop reads ahead into the buffer before each blocking step
    (``fill``), so the thread rarely has to ask for more; when it does, it asks
    the loop (free then: it is awaiting that thread) and waits. Only one of the
    two touches the buffer at a time.
    """

    def __init__(self, stream: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self.stream = stream
        self.loop = loop
        self.chunks: deque[memoryview] = deque()
        self.size = 0
        self.eof = False
        self.closed = False
        self.error: BaseException | None = None

    async def fill(self, target: int = READ_AHEAD) -> None:
        """Buffer at least ``target`` bytes, or all that is left of the body."""
        while self.size < target and not self.eof:
            try:
                chunk = await anext(self.stream)
            except StopAsyncIteration:
                self.eof = True
                return
            if chunk:
                self.chunks.append(memoryview(chunk))
                self.size += len(chunk)

    def _fill_from_thread(self) -> None:
        if self.closed:
            raise OSError("the request body was closed")
        fut = asyncio.run_coroutine_threadsafe(self.fill(), self.loop)
        try:
            while True:
                try:
                    return fut.result(timeout=1.0)
                except concurrent.futures.TimeoutError:
                    if self.closed:
                        fut.cancel()
                        raise OSError("the request body was closed") from None
        except BaseException as exc:
            self.error = exc  # tarfile may wrap it: the driver re-raises the original
            raise

    def read(self, size: int = -1) -> bytes:
        if not self.size and not self.eof:
            self._fill_from_thread()
        n = self.size if size is None or size < 0 else min(size, self.size)
        out = bytearray()
        while len(out) < n:
            head = self.chunks[0]
            take = min(len(head), n - len(out))
            out += head[:take]
            if take == len(head):
                self.chunks.popleft()
            else:
                self.chunks[0] = head[take:]
        self.size -= n
        return bytes(out)


class TarStream:
    """A tar archive read member by member from a request body."""

    def __init__(self, body: AsyncIterator[bytes], compression: str) -> None:
        self.file = _BodyFile(body, asyncio.get_running_loop())
        self.compression = compression
        self.tar: tarfile.TarFile | None = None
        # a thread of its own: the shared pool is busy with the PUTs' disk writes,
        # and every step of the archive would queue behind them
        self.lane = SerialLane("tar")

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        await self.file.fill()
        try:
            return await self.lane.submit(fn, *args)
        except Exception:
            if self.file.error is not None:
                raise self.file.error from None
            raise

    async def open(self) -> None:
        self.tar = await self._blocking(self._open)

    def _open(self) -> tarfile.TarFile:
        return tarfile.open(mode="r|" + self.compression, fileobj=self.file,
                            encoding="utf-8", errors="surrogateescape")

    async def next(self) -> tarfile.TarInfo | None:
        assert self.tar is not None
        return await self._blocking(self.tar.next)

    async def member(self, info: tarfile.TarInfo) -> AsyncIterator[bytes]:
        """The bytes of ``info`` (the member just returned by ``next``)."""
        assert self.tar is not None
        f = self.tar.extractfile(info)
        if f is None:
            return
        while chunk := await self._blocking(f.read, READ_CHUNK_SIZE):
            yield chunk

    def close(self) -> None:
        """Stop the worker, even one still waiting for the body (the request is over)."""
        self.file.closed = True
        self.lane.close()


def _pax_header(key: str) -> str | None:
    """The object header a tar extended attribute becomes (GNU or BSD tar names)."""
    for prefix in ("SCHILY.xattr.user.", "LIBARCHIVE.xattr.user."):
        if key.startswith(prefix):
            name = key[len(prefix):]
            if name == "mime_type":
                return "Content-Type"
            if name.startswith("meta."):
                return "X-Object-Meta-" + _as_header(name[len("meta."):])
    return None


# -- the middleware -------------------------------------------------------------------

class Bulk:
    def __init__(self, app: Handler, st: ObjectStoreState, *,
                 max_containers_per_extraction: int = MAX_CONTAINERS_PER_EXTRACTION,
                 max_failed_extractions: int = MAX_FAILED_EXTRACTIONS,
                 max_deletes_per_request: int = MAX_DELETES_PER_REQUEST,
                 max_failed_deletes: int = MAX_FAILED_DELETES,
                 yield_frequency: float = YIELD_FREQUENCY,
                 delete_concurrency: int = DELETE_CONCURRENCY) -> None:
        conf = st.settings.object_store
        self.app = app
        self.st = st
        self.max_containers = max_containers_per_extraction
        self.max_failed_extractions = max_failed_extractions
        self.max_deletes = max_deletes_per_request
        self.max_failed_deletes = max_failed_deletes
        self.yield_frequency = yield_frequency
        self.delete_concurrency = min(1000, max(1, delete_concurrency))
        self.max_file_size = conf.max_file_size
        self.max_path_length = conf.max_object_name_length + conf.max_container_name_length + 2

    async def __call__(self, req: Request) -> Response:
        extract = req.query.get("extract-archive")
        if extract is not None and req.method == "PUT":
            compression = ARCHIVE_TYPES.get(extract.lower().strip("."))
            if compression is None:
                return error(400, "Unsupported archive format", method=req.method)
            return await self._reply(req, lambda fmt: self.extract(req, compression, fmt))
        if "bulk-delete" in req.query and req.method in ("POST", "DELETE"):
            return await self._reply(req, lambda fmt: self.delete(req, fmt))
        return await self.app(req)

    async def _reply(self, req: Request,
                     work: Callable[[str | None], Awaitable[bytes]]) -> Response:
        """The 200 carrying ``work``'s outcome in the format ``Accept`` asks for."""
        try:
            fmt = best_match(req.headers.get("accept"), ACCEPTABLE_FORMATS)
        except ValueError:
            fmt = None
        first = b'<?xml version="1.0" encoding="UTF-8"?>\n' if fmt and fmt.endswith("/xml") \
            else b" "
        return await reply(work(fmt), fmt or "text/html; charset=UTF-8", first,
                           self.yield_frequency)

    def _length_known(self, req: Request) -> None:
        if (req.content_length is None
                and (req.headers.get("transfer-encoding") or "").lower() != "chunked"):
            raise BulkError(411)

    @staticmethod
    def _outcome(exc: BulkError | HTTPError, data: dict[str, Any]) -> None:
        """Record in ``data`` how ``exc`` ended the operation."""
        if isinstance(exc, BulkError):
            data["Response Status"], data["Response Body"] = status_line(exc.status), exc.body
            return
        body = exc.response.body
        text = bytes(body).decode("utf-8", "replace") if isinstance(body, bytes) else ""
        data["Response Status"] = status_line(exc.response.status)
        data["Response Body"] = text

    # -- bulk delete ----------------------------------------------------------------

    async def delete(self, req: Request, fmt: str | None) -> bytes:
        data: dict[str, Any] = {"Response Status": status_line(200), "Response Body": "",
                                "Number Deleted": 0, "Number Not Found": 0}
        failed: list[list[str]] = []
        try:
            if not fmt:
                raise BulkError(406)
            try:
                version, account, _, _ = split_path(req.path)
            except HTTPError:
                raise BulkError(404) from None
            incoming = req.headers.get("content-type")
            if incoming and not incoming.startswith("text/plain"):
                raise BulkError(406)  # only newline-separated names are understood
            names = await self._names(req)
            failure = await self._delete_all(req, version, account, names, data, failed)
            if failed:
                data["Response Status"] = status_line(failure)
            elif not (data["Number Deleted"] or data["Number Not Found"]):
                data["Response Status"] = status_line(400)
                data["Response Body"] = "Invalid bulk delete."
        except (BulkError, HTTPError) as exc:
            self._outcome(exc, data)
        except ClientDisconnect:
            data["Response Status"] = status_line(499)  # nobody reads it: no log either
        except Exception:
            log.exception("Error in bulk delete.")
            data["Response Status"] = status_line(500)
        return result_body(fmt or "text/plain", data, failed, "delete")

    async def _names(self, req: Request) -> list[str]:
        """The names listed in the body, URL-decoded, one a line.

        Raises:
            BulkError: 411 without a length, 413 past the limit of names, 400 for a
                line longer than any name can be.
        """
        self._length_known(req)
        names: list[str] = []
        tail = b""
        async for chunk in req.stream():
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            names += [self._unquote(line) for line in lines]
            if len(names) > self.max_deletes:
                raise BulkError(413, f"Maximum Bulk Deletes: {self.max_deletes} per request")
            if len(tail) > self.max_path_length * 2:
                raise BulkError(400, "Invalid File Name")
        last = self._unquote(tail)
        if last:
            names.append(last)
        if len(names) > self.max_deletes:
            raise BulkError(413, f"Maximum Bulk Deletes: {self.max_deletes} per request")
        return names

    @staticmethod
    def _unquote(line: bytes) -> str:
        return unquote_to_bytes(line.strip()).decode("utf-8", "surrogateescape")

    async def _delete_all(self, req: Request, version: str, account: str, names: list[str],
                          data: dict[str, Any], failed: list[list[str]]) -> int:
        """Delete the objects, then the containers (emptied by then); the status
        that stands for the failures."""
        failure = 400
        for is_object in (True, False):
            chosen = [n for n in names if n and ("/" in n.strip("/")) == is_object]
            async with aclosing(pile(lambda n: self._delete_one(req, version, account, n),
                                     self._until_too_many(chosen, failed),
                                     self.delete_concurrency)) as results:
                async for name, status in results:
                    failure = self._count(name, status, data, failed, failure)
            if len(failed) >= self.max_failed_deletes:
                raise BulkError(400, "Max delete failures exceeded")
        return failure

    def _until_too_many(self, names: list[str], failed: list[list[str]]) -> Iterator[str]:
        for name in names:
            if len(failed) >= self.max_failed_deletes:
                return
            yield name

    async def _delete_one(self, req: Request, version: str, account: str,
                          name: str) -> tuple[str, int]:
        path = f"/{version}/{account}/{name.lstrip('/')}"
        if not _valid_utf8(path):
            return name, 412
        headers = Headers()
        if req.headers.get("x-auth-token"):
            headers["X-Auth-Token"] = req.headers["x-auth-token"]
        resp = await _call(self.app, req.sub("DELETE", path, headers=headers, source="BD"))
        await resp.close()
        return name, resp.status

    @staticmethod
    def _count(name: str, status: int, data: dict[str, Any], failed: list[list[str]],
               failure: int) -> int:
        if status // 100 == 2:
            data["Number Deleted"] += 1
        elif status == 404:
            data["Number Not Found"] += 1
        else:
            failed.append([_quote(name), status_line(status)])
            if status // 100 == 5:
                failure = 502
        return failure

    # -- extract archive --------------------------------------------------------------

    async def extract(self, req: Request, compression: str, fmt: str | None) -> bytes:
        data: dict[str, Any] = {"Response Status": status_line(201), "Response Body": "",
                                "Number Files Created": 0}
        failed: list[list[str]] = []
        try:
            if not fmt:
                raise BulkError(406)
            self._length_known(req)
            version, account, base = self._extract_target(req)
            tar = TarStream(req.stream(), compression)
            try:
                await tar.open()
                failure = await _Extraction(self, req, tar, version, account, base,
                                            data, failed).run()
            finally:
                tar.close()
            if failed:
                data["Response Status"] = status_line(failure)
            elif not data["Number Files Created"]:
                data["Response Status"] = status_line(400)
                data["Response Body"] = "Invalid Tar File: No Valid Files"
        except (tarfile.TarError, zlib.error) as exc:
            data["Response Status"] = status_line(400)
            data["Response Body"] = f"Invalid Tar File: {exc}"
        except (BulkError, HTTPError) as exc:
            self._outcome(exc, data)
        except ClientDisconnect:
            data["Response Status"] = status_line(499)  # nobody reads it: no log either
        except Exception:
            log.exception("Error in extract archive.")
            data["Response Status"] = status_line(500)
        return result_body(fmt or "text/plain", data, failed, "extract")

    @staticmethod
    def _extract_target(req: Request) -> tuple[str, str, str]:
        """``(version, account, where in the account the archive goes)``."""
        try:
            split_path(req.path)
        except HTTPError:
            raise BulkError(404) from None
        parts = req.path[1:].split("/", 2)
        base = parts[2] if len(parts) > 2 else ""
        return parts[0], parts[1], base.rstrip("/")

    async def create_container(self, req: Request, path: str) -> bool:
        """Make the container at ``path`` unless it exists; whether it was made.

        Raises:
            CreateContainerError: it neither exists nor could be made.
        """
        headers = Headers()
        if req.headers.get("x-auth-token"):
            headers["X-Auth-Token"] = req.headers["x-auth-token"]
        resp = await _call(self.app, req.sub("HEAD", path, headers=headers, source="EA"))
        await resp.close()
        if resp.ok:
            return False
        if resp.status == 404:
            resp = await _call(self.app, req.sub("PUT", path, headers=headers, source="EA"))
            await resp.close()
            if resp.ok:
                return True
        raise CreateContainerError(resp.status)


class _Extraction:
    """One archive going into an account: member by member, each file a PUT."""

    def __init__(self, bulk: Bulk, req: Request, tar: TarStream, version: str, account: str,
                 base: str, data: dict[str, Any], failed: list[list[str]]) -> None:
        self.bulk = bulk
        self.req = req
        self.tar = tar
        self.version = version
        self.account = account
        self.base = base
        self.data = data
        self.failed = failed
        self.accessed: set[str] = set()
        self.created = 0
        self.failure = 400

    def _fail(self, path: str, status: int | str) -> None:
        shown = path.encode("utf-8", "surrogateescape")[:self.bulk.max_path_length]
        line = status if isinstance(status, str) else status_line(status)
        self.failed.append([quote(shown, safe="/"), line])

    async def run(self) -> int:
        """Store every regular file; the status that stands for the failures."""
        while True:
            info = await self.tar.next()
            if info is None or len(self.failed) >= self.bulk.max_failed_extractions:
                return self.failure
            if info.isfile():
                await self._member(info)

    def _object_path(self, info: tarfile.TarInfo) -> str | None:
        path = info.name.removeprefix("./").lstrip("/")
        if self.base:
            path = self.base + "/" + path
        return path if "/" in path else None  # a file at the top has no container

    async def _member(self, info: tarfile.TarInfo) -> None:
        path = self._object_path(info)
        if path is None:
            return
        destination = f"/{self.version}/{self.account}/{path}"
        container = path.split("/", 1)[0]
        if not _valid_utf8(destination):
            return self._fail(path, 412)
        if info.size > self.bulk.max_file_size:
            return self._fail(path, 413)
        container_failure = None
        if container not in self.accessed:
            container_failure = await self._container(container)
        resp = await _call(self.bulk.app, self._put(info, destination))
        await resp.close()
        self.accessed.add(container)
        if resp.ok:
            self.data["Number Files Created"] += 1
            return None
        if container_failure:
            self.failed.append(container_failure)
        if resp.status == 401:
            self._fail(path, 401)
            raise BulkError(401)
        if resp.status // 100 == 5:
            self.failure = 502
        return self._fail(path, resp.status)

    async def _container(self, container: str) -> list[str] | None:
        """Make ``container`` if it is new; the failure to report if the object PUT
        fails too (an ACL may let it in even when the container cannot be made)."""
        path = f"/{self.version}/{self.account}/{container}"
        try:
            if await self.bulk.create_container(self.req, path):
                self.created += 1
                if self.created > self.bulk.max_containers:
                    raise BulkError(400, f"More than {self.bulk.max_containers} containers "
                                         "to create from tar.")
        except CreateContainerError as exc:
            if exc.status == 401:
                raise BulkError(401) from None
            shown = path.encode("utf-8", "surrogateescape")[:self.bulk.max_path_length]
            return [quote(shown, safe="/"), status_line(exc.status)]
        return None

    def _put(self, info: tarfile.TarInfo, destination: str) -> Request:
        headers = Headers({"Content-Length": str(info.size)})
        for name, value in self.req.headers.items():
            lower = name.lower()
            if lower in ("x-auth-token", "x-delete-at", "x-delete-after") or (
                    lower.startswith("x-object-meta-") and len(lower) > len("x-object-meta-")):
                headers[name] = value
        for key, value in info.pax_headers.items():
            header = _pax_header(key)
            if header:
                headers[header] = _as_header(value)
        return self.req.sub("PUT", destination, headers=headers,
                            body=self.tar.member(info), source="EA")


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    bulk = Bulk(app, st)
    st.register("bulk_upload", max_containers_per_extraction=bulk.max_containers,
                max_failed_extractions=bulk.max_failed_extractions)
    st.register("bulk_delete", max_deletes_per_request=bulk.max_deletes,
                max_failed_deletes=bulk.max_failed_deletes)
    return bulk
