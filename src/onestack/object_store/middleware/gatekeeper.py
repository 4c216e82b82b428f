"""Keeps system metadata internal: callers from outside can neither set nor see
``X-{Account,Container,Object}-Sysmeta-*`` (the layers below keep their state
there) nor the backend headers between proxy and storage. Sub-requests made by
middlewares (``Request.sub`` marks them with ``swift.source``) pass untouched."""

from __future__ import annotations

from onestack.object_store.http import Handler, Headers, Request, Response
from onestack.object_store.state import ObjectStoreState

_REQUEST_PREFIXES = (
    "x-account-sysmeta-", "x-container-sysmeta-", "x-object-sysmeta-",
    "x-object-transient-sysmeta-", "x-backend-",
)
_RESPONSE_PREFIXES = _REQUEST_PREFIXES


def _strip(headers: Headers, prefixes: tuple[str, ...]) -> None:
    for name in headers:
        if name.lower().startswith(prefixes):
            del headers[name]


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    async def gatekeeper(req: Request) -> Response:
        if "swift.source" in req.environ:
            return await app(req)  # a middleware's own sub-request: it may use sysmeta
        _strip(req.headers, _REQUEST_PREFIXES)
        resp = await app(req)
        _strip(resp.headers, _RESPONSE_PREFIXES)
        return resp

    return gatekeeper
