"""Building a service's ASGI app and the middleware every request goes through.

The order is explicit code, outermost first:

1. ``RequestIdMiddleware`` (mounted once at the root): ``x-openstack-request-id`` on
   every response, the id in every log line, and one access-log line per request.
2. The service's ``ServiceApp``: its router inside one layer that renders every
   ``CloudError`` (and routing's 404/405, and unexpected errors as 500) in that
   service's upstream envelope.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence

from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router

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
                headers = message.get("headers", [])
                # a service that names requests itself (Swift's transaction id) wins
                if not any(k.lower() == REQUEST_ID_HEADER for k, _ in headers):
                    message["headers"] = [*headers, header]
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


class ServiceApp:
    """A service's ASGI app: its router inside one layer that renders every error
    in the service's envelope (``CloudError``, routing's 404/405, and anything
    unexpected as a logged 500). One layer instead of Starlette's three keeps
    the per-request cost of a service small; ``request.app.state`` works as in
    Starlette."""

    def __init__(self, routes: Sequence[BaseRoute], render_error: ErrorRenderer):
        self.router = Router(routes=list(routes), redirect_slashes=False)
        self.render_error = render_error
        self.state = State()
        # Routes without path parameters are found by a dictionary look-up rather
        # than by trying every route's regex in turn (the first route listed for a
        # path and method wins, as in the router).
        self._static: dict[tuple[str, str], Route] = {}
        for route in routes:
            if isinstance(route, Route) and not route.param_convertors:
                for method in route.methods or ():
                    self._static.setdefault((route.path, method), route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # handlers find the state as in HTTP
                scope["app"] = self
            await self.router(scope, receive, send)
            return
        scope["app"] = self
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            route = self._static.get((_route_path(scope), scope["method"]))
            if route is not None:
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                await route.app(scope, receive, send_tracking)
            else:
                await self.router(scope, receive, send_tracking)
        except Exception as exc:
            if started:
                errlog.error("error after the response started", exc_info=exc)
                raise
            err = _as_cloud_error(exc)
            await self.render_error(Request(scope), err)(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the mount point, as the router matches it."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _as_cloud_error(exc: Exception) -> errors.CloudError:
    if isinstance(exc, errors.CloudError):
        return exc
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return errors.NotFound()
        if exc.status_code == 405:
            return errors.MethodNotAllowed()
        err = errors.CloudError(exc.detail)
        err.status_code = exc.status_code
        return err
    errlog.error("unhandled error", exc_info=exc)
    return errors.CloudError("An unexpected error prevented the server from fulfilling your request.")


def build_service_app(routes: Sequence[BaseRoute], render_error: ErrorRenderer) -> ServiceApp:
    """A service's app with one handler that renders every error."""
    return ServiceApp(routes, render_error)
