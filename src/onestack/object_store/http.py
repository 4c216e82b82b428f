"""The object storage service's own request and response objects.

Swift is a chain of middlewares (auth, large objects, versioning, TempURL, S3 ...)
in front of a proxy that talks to the storage. Middlewares make sub-requests:
a static large object's GET reads each segment with a GET, a copy is a GET and a
PUT, S3 is a translation into Swift requests. Those sub-requests must be cheap and
must not go through HTTP or ASGI again, so the chain works on the small objects
here instead of raw ASGI: ``Request`` and ``Response`` with bodies as async
iterators of bytes, and ``Handler``, an ``async`` function from one to the other.

A middleware is a function ``(next_handler, ctx) -> Handler`` (see ``pipeline``).
``Request.environ`` carries what middlewares tell each other, by Swift's
environ key names where one exists (``swift.authorize``, ``keystone.identity``,
``swift.source`` ...).
"""

from __future__ import annotations

import html
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

Body = bytes | AsyncIterable[bytes]


class Headers:
    """Case-insensitive, single-valued headers that keep the case they were set with."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        if items is not None:
            self.update(items)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        self._items[name.lower()] = (name, str(value))

    def __delitem__(self, name: str) -> None:
        del self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        """The names (a snapshot: deleting while iterating is fine)."""
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"

    def get(self, name: str, default: str | None = None) -> str | None:
        hit = self._items.get(name.lower())
        return default if hit is None else hit[1]

    def pop(self, name: str, default: str | None = None) -> str | None:
        hit = self._items.pop(name.lower(), None)
        return default if hit is None else hit[1]

    def setdefault(self, name: str, value: str) -> str:
        if name.lower() not in self._items:
            self[name] = value
        return self[name]

    def update(self, items: Mapping[str, str] | Iterable[tuple[str, str]] | Headers) -> None:
        pairs = items.items() if isinstance(items, (Mapping, Headers)) else items
        for k, v in pairs:
            self[k] = v

    def keys(self) -> list[str]:
        return [k for k, _ in self._items.values()]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items.values())

    def with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        """The headers whose name starts with ``prefix`` (any case)."""
        p = prefix.lower()
        return [(k, v) for lk, (k, v) in self._items.items() if lk.startswith(p)]

    def copy(self) -> Headers:
        h = Headers()
        h._items = dict(self._items)
        return h


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


def as_stream(body: Body | None) -> AsyncIterator[bytes]:
    """``body`` as an async iterator of bytes."""
    if body is None:
        return _empty()
    if isinstance(body, (bytes, bytearray, memoryview)):
        return _once(bytes(body))
    return aiter(body)


async def read_all(body: Body | None, limit: int | None = None) -> bytes:
    """All of ``body``; more than ``limit`` bytes raises ``TooLarge``."""
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
        if limit is not None and len(data) > limit:
            raise TooLarge(limit)
        return data
    parts: list[bytes] = []
    size = 0
    async for chunk in body:
        size += len(chunk)
        if limit is not None and size > limit:
            raise TooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)


class TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


# The environ keys a sub-request inherits from the request that makes it: who is
# calling and what the chain already decided about them, nothing request-specific.
INHERITED_ENVIRON = (
    "keystone.identity",
    "swift.authorize",
    "swift.authorize_override",
    "swift.owner",
    "reseller_request",
    "swift.infocache",
    "onestack.runtime",
    "REMOTE_USER",
    "swift.trans_id",
)


@dataclass
class Request:
    """One request through the chain.

    ``path`` is the decoded path below the service prefix (``/v1/AUTH_x/c/o``);
    ``query`` the decoded query parameters (the last of repeated names wins,
    as in Swift's ``req.params``); ``body`` streams the request body.
    """

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: Headers = field(default_factory=Headers)
    body: Body | None = None
    environ: dict[str, Any] = field(default_factory=dict)
    client: str = ""
    scheme: str = "http"
    host: str = "localhost"
    script_name: str = ""

    # -- path ---------------------------------------------------------------------

    def split(self) -> tuple[str, str, str | None, str | None]:
        """``(version, account, container, object)`` of ``/version/account[/c[/o]]``.

        Raises:
            HTTPError: 400 (or 412 for a name Swift calls invalid) when the path has
                no account or empty segments where a name is required.
        """
        return split_path(self.path)

    @property
    def query_string(self) -> str:
        return urlencode(self.query, quote_via=quote)

    @property
    def url(self) -> str:
        """The absolute URL of this request as the client addressed it."""
        qs = self.query_string
        return (f"{self.scheme}://{self.host}{self.script_name}{quote(self.path)}"
                + (f"?{qs}" if qs else ""))

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            return None
        try:
            n = int(value)
        except ValueError:
            raise HTTPError(error(400, "Invalid Content-Length")) from None
        if n < 0:
            raise HTTPError(error(400, "Invalid Content-Length"))
        return n

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (once); more than ``limit`` bytes is a 413."""
        try:
            data = await read_all(self.body, limit)
        except TooLarge:
            raise HTTPError(error(413, "Request Entity Too Large")) from None
        self.body = data
        return data

    def stream(self) -> AsyncIterator[bytes]:
        return as_stream(self.body)

    # -- sub-requests ---------------------------------------------------------------

    def sub(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | Headers | None = None,
        query: Mapping[str, str] | None = None,
        body: Body | None = None,
        source: str = "",
        environ: Mapping[str, Any] | None = None,
    ) -> Request:
        """A request a middleware makes on behalf of this one (same caller, same
        authorization decisions), marked with ``swift.source``."""
        env = {k: self.environ[k] for k in INHERITED_ENVIRON if k in self.environ}
        env["swift.source"] = source
        if environ:
            env.update(environ)
        return Request(
            method=method, path=path, query=dict(query or {}),
            headers=Headers(headers) if not isinstance(headers, Headers) else headers.copy(),
            body=body, environ=env, client=self.client, scheme=self.scheme, host=self.host,
            script_name=self.script_name,
        )


@dataclass
class Response:
    """A response: ``body`` is bytes or an async iterator that must be consumed or
    closed (``close``) so that readers behind it release their files."""

    status: int = 200
    headers: Headers = field(default_factory=Headers)
    body: Body = b""
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (and close)."""
        try:
            data = await read_all(self.body, limit)
        finally:
            await self.close()
        self.body = data
        return data

    async def close(self) -> None:
        body = self.body
        if not isinstance(body, (bytes, bytearray, memoryview)):
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()
        callbacks, self.on_close = self.on_close, []
        for cb in callbacks:
            await cb()


Handler = Callable[[Request], Awaitable[Response]]


class HTTPError(Exception):
    """Raise a response: the chain's outermost layer turns it into the reply."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"{response.status}")
        self.response = response


# Swift (through swob) answers errors with a short HTML page naming the status
# unless a middleware gives a plain-text body; clients show the body as is.
_EXPLANATIONS = {
    400: "The server could not comply with the request since it is either malformed or "
         "otherwise incorrect.",
    401: "This server could not verify that you are authorized to access the document "
         "you requested.",
    403: "Access was denied to this resource.",
    404: "The resource could not be found.",
    405: "The method is not allowed for this resource.",
    406: "The resource is not available in a format acceptable to your browser.",
    408: "The client did not produce a request within the time that the server was "
         "prepared to wait.",
    409: "There was a conflict when trying to complete your request.",
    410: "This resource is no longer available.",
    411: "Content-Length header required.",
    412: "A precondition for this request was not met.",
    413: "The body of your request was too large for this server.",
    416: "The Range requested is not available.",
    422: "Unable to process the contained instructions",
    499: "The client was disconnected during request.",
    500: "The server has either erred or is incapable of performing the requested "
         "operation.",
    501: "The server does not support this operation.",
    503: "The server is currently unavailable. Please try again at a later time.",
    507: "There is not enough space on the disk.",
}


def reason(status: int) -> str:
    if status == 499:
        return "Client Disconnect"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def error(status: int, body: str | None = None, headers: Mapping[str, str] | None = None,
          *, method: str = "GET") -> Response:
    """An error response as Swift writes it: ``body`` as plain text when given, else
    Swift's default page for ``status``; no body for HEAD (``method``)."""
    h = Headers(headers or {})
    if body is None:
        text = f"<html><h1>{html.escape(reason(status))}</h1>"
        explanation = _EXPLANATIONS.get(status, "")
        text += f"<p>{html.escape(explanation)}</p></html>" if explanation else "</html>"
        h.setdefault("Content-Type", "text/html; charset=UTF-8")
    else:
        text = body
        h.setdefault("Content-Type", "text/plain; charset=UTF-8")
    data = b"" if method == "HEAD" else text.encode()
    h["Content-Length"] = str(len(text.encode()))
    return Response(status, h, data)


def split_path(path: str) -> tuple[str, str, str | None, str | None]:
    """``/v1/a[/c[/o...]]`` -> ``(v1, a, c, o)``; ``c`` and ``o`` may be ``None``.

    The object part keeps its slashes (``/v1/a/c/d/e`` -> ``o = "d/e"``), and a
    trailing slash after the container is no object (``/v1/a/c/`` -> ``o = None``).
    """
    if not path.startswith("/"):
        raise HTTPError(error(400, "Invalid path"))
    parts = path[1:].split("/", 3)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise HTTPError(error(400, "Invalid path"))
    version, account = parts[0], parts[1]
    container = parts[2] if len(parts) > 2 and parts[2] else None
    obj = parts[3] if len(parts) > 3 and parts[3] else None
    if obj is not None and container is None:
        raise HTTPError(error(400, "Invalid path"))
    if len(parts) > 3 and parts[3] == "" and container is not None:
        obj = None
    return version, account, container, obj


def parse_query(query_string: str) -> dict[str, str]:
    """Decoded query parameters (last value wins); a bare ``name`` maps to ``""``."""
    return dict(parse_qsl(query_string, keep_blank_values=True))


# ``swift.authorize``: ``None`` lets the request go on, a response refuses it
Authorize = Callable[[Request], Awaitable["Response | None"]]
