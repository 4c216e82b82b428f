"""Building a service's ASGI app and the middleware every request goes through.

The order is explicit code, outermost first:

1. ``RequestIdMiddleware`` (mounted once at the root): ``x-openstack-request-id`` on
   every response, the id in every log line, and one access-log line per request.
2. The service's Starlette app, whose exception handlers render every
   ``CloudError`` (and routing's 404/405) in that service's upstream envelope.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from onestack.core import errors
from onestack.core.context import request_id_var
from onestack.core.types import ASGIApp, Message, Receive, Scope, Send

ErrorRenderer = Callable[[Request, errors.CloudError], Response]

log = logging.getLogger("onestack.access")
errlog = logging.getLogger("onestack.error")

REQUEST_ID_HEADER = b"x-openstack-request-id"


class RequestIdMiddleware:
    """Gives each request an id (``req-<uuid>``), returns it and logs the request."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True):
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = f"req-{uuid.uuid4()}"
        token = request_id_var.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        header = (REQUEST_ID_HEADER, rid.encode())
        status = 500
        method, path = scope["method"], scope["path"]  # routing rewrites scope in place
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log and log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s %d",
                    method,
                    path,
                    status,
                    extra={"ms": round((time.perf_counter() - start) * 1000, 2)},
                )
            request_id_var.reset(token)


class CatchAllMiddleware:
    """Turns an unexpected exception into a 500 in the service's envelope, logged with
    its traceback, instead of letting it escape to the server (or to a test client)."""

    def __init__(self, app: ASGIApp, *, render_error: ErrorRenderer):
        self.app = app
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            errlog.error("unhandled error", exc_info=exc)
            if started or scope["type"] != "http":
                raise
            err = errors.CloudError(
                "An unexpected error prevented the server from fulfilling your request."
            )
            await self.render_error(Request(scope), err)(scope, receive, send)


def build_service_app(
    routes: Sequence[BaseRoute],
    render_error: ErrorRenderer,
    *,
    on_startup: Sequence[Callable[[], Any]] = (),
    on_shutdown: Sequence[Callable[[], Any]] = (),
) -> Starlette:
    """A service's Starlette app with one handler that renders every error."""

    def cloud_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.CloudError)
        return render_error(request, exc)

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        mapped = {404: errors.NotFound, 405: errors.MethodNotAllowed}.get(exc.status_code)
        err = mapped(exc.detail if exc.status_code != 404 else None) if mapped else None
        if err is None:
            err = errors.CloudError(exc.detail)
            err.status_code = exc.status_code
        return render_error(request, err)

    app = Starlette(
        routes=list(routes),
        middleware=[Middleware(CatchAllMiddleware, render_error=render_error)],
        exception_handlers={errors.CloudError: cloud_error, HTTPException: http_error},
    )
    for fn in on_startup:
        app.router.on_startup.append(fn)
    for fn in on_shutdown:
        app.router.on_shutdown.append(fn)
    return app
