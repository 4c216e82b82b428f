"""ASGI in front of the middleware chain: scope -> ``Request``, ``Response`` -> send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import unquote_to_bytes

from onestack.core.types import ASGIApp, Receive, Scope, Send
from onestack.object_store.http import (
    Handler,
    Headers,
    HTTPError,
    Request,
    Response,
    error,
    parse_query,
)


# Sent instead of a body chunk when the client went away mid-upload: whoever is
# consuming the body (an object PUT) aborts and stores nothing.
class ClientDisconnect(Exception):
    pass


def _body(receive: Receive) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    return gen()


def request_from_scope(scope: Scope, receive: Receive) -> Request:
    """The ``Request`` for an ASGI HTTP scope below a mount (``root_path``).

    The path is decoded from ``raw_path`` as UTF-8 here (not by the server), so
    that a name that is not UTF-8 can be refused as Swift refuses it (412).
    """
    root = scope.get("root_path", "")
    raw = scope.get("raw_path")
    if raw is not None:
        decoded = unquote_to_bytes(raw.split(b"?", 1)[0])
        try:
            path = decoded.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPError(error(412, "Invalid UTF8 or contains NULL")) from None
        if root and path.startswith(root):
            path = path[len(root):]
    else:
        path = scope["path"]
        if root and path.startswith(root):
            path = path[len(root):]
    if "\x00" in path:
        raise HTTPError(error(412, "Invalid UTF8 or contains NULL"))
    headers = Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
    host = headers.get("host") or "localhost"
    client = scope.get("client")
    return Request(
        method=scope["method"],
        path=path or "/",
        query=parse_query(scope.get("query_string", b"").decode("latin-1")),
        headers=headers,
        body=_body(receive),
        environ={"onestack.scope": scope},
        client=client[0] if client else "",
        scheme=scope.get("scheme", "http"),
        host=host,
        script_name=root,
    )


async def send_response(resp: Response, send: Send, *, head: bool = False) -> None:
    """Send ``resp``; the body is always closed, whatever happens to the client."""
    try:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers.items()]
        body = resp.body
        if isinstance(body, (bytes, bytearray, memoryview)) and "content-length" not in resp.headers:
            raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": resp.status, "headers": raw})
        if head:
            await send({"type": "http.response.body", "body": b""})
        elif isinstance(body, (bytes, bytearray, memoryview)):
            await send({"type": "http.response.body", "body": bytes(body)})
        else:
            async for chunk in body:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
    finally:
        await resp.close()


def asgi(handler: Handler) -> ASGIApp:
    """An ASGI app serving ``handler``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            req = request_from_scope(scope, receive)
        except HTTPError as exc:
            await send_response(exc.response, send)
            return
        try:
            resp = await handler(req)
        except HTTPError as exc:
            resp = exc.response
        except ClientDisconnect:
            resp = error(499)
        await send_response(resp, send, head=req.method == "HEAD")

    return app
