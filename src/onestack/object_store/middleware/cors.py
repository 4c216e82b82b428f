"""Cross-origin resource sharing, as Swift's proxy does it.

A container opts in with ``X-Container-Meta-Access-Control-Allow-Origin`` (origins
separated by spaces, or ``*``), ``-Max-Age`` and ``-Expose-Headers``. Two things
follow for a browser:

- a preflight ``OPTIONS`` with ``Origin`` (no token needed) is answered here: 200
  with ``Access-Control-Allow-*`` when the origin is allowed and the method is one
  the resource has, 401 otherwise; without ``Origin`` it is a plain ``Allow``
  answer. Accounts have no CORS settings, so their preflight is never refused;
- a container or object request with ``Origin`` gets ``Access-Control-Allow-Origin``
  and ``Access-Control-Expose-Headers`` (the simple response headers, Swift's own,
  the metadata headers of the response and the container's list). In strict mode,
  Swift's default, a request from an origin the container does not allow gets no
  CORS headers at all, so the browser hides the response from the page.

``/info`` answers any origin (its ``OPTIONS`` is the proxy's). The operator-wide
``cors_allow_origin``, ``cors_expose_headers`` and ``strict_cors_mode`` settings
of Swift's proxy are read when the configuration has them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass

from onestack.object_store.http import Handler, Headers, HTTPError, Request, Response, error
from onestack.object_store.state import ObjectStoreState

VERSIONS = ("v1", "v1.0")
# what browsers may always read, plus what Swift adds to every CORS response
DEFAULT_EXPOSE = (
    "cache-control", "content-language", "content-type", "expires", "last-modified",
    "pragma", "etag", "x-timestamp", "x-trans-id", "x-openstack-request-id",
)
META_PREFIXES = ("x-container-meta-", "x-object-meta-")
# what the proxy's controllers answer (an account PUT and DELETE need
# ``allow_account_management``, which is off)
ACCOUNT_METHODS = ("GET", "HEAD", "POST", "OPTIONS")
CONTAINER_METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS")


@dataclass(frozen=True)
class CorsRules:
    """A container's CORS metadata (empty when the container does not exist)."""

    allow_origin: str = ""
    expose_headers: str = ""
    max_age: str | None = None

    def origins(self) -> set[str]:
        return set(self.allow_origin.split())

    @property
    def any_origin(self) -> bool:
        return self.allow_origin.strip() == "*"


class Cors:
    def __init__(self, app: Handler, st: ObjectStoreState) -> None:
        conf = st.settings.object_store
        self.app = app
        self.st = st
        self.allow_origin = set(_listed(getattr(conf, "cors_allow_origin", ())))
        self.expose = [h.lower() for h in _listed(getattr(conf, "cors_expose_headers", ()))]
        self.strict = bool(getattr(conf, "strict_cors_mode", True))
        # the copy layer adds COPY to an object's methods, as Swift's does
        copy = importlib.util.find_spec("onestack.object_store.middleware.copy") is not None
        self.object_methods = CONTAINER_METHODS + (("COPY",) if copy else ())

    async def __call__(self, req: Request) -> Response:
        if "swift.source" in req.environ:
            return await self.app(req)
        if req.path.rstrip("/") == "/info":
            return _info_cors(req, await self.app(req))
        try:
            version, account, container, obj = req.split()
        except HTTPError:
            return await self.app(req)
        if version not in VERSIONS:
            return await self.app(req)
        if req.method == "OPTIONS":
            return await self.preflight(req, account, container, obj)
        origin = req.headers.get("origin")
        if not origin or container is None:
            return await self.app(req)
        rules = await self.rules(account, container)
        try:
            resp = await self.app(req)
        except HTTPError as exc:
            resp = exc.response
        if self.strict and not self.allowed(rules, origin):
            return resp
        self.decorate(resp, rules, origin)
        return resp

    async def rules(self, account: str, container: str) -> CorsRules:
        info = await self.st.listings.container_info(account, container, counts=False)
        if info is None:
            return CorsRules()
        meta = info.meta
        return CorsRules(
            allow_origin=meta.get("access-control-allow-origin", ""),
            expose_headers=meta.get("access-control-expose-headers", ""),
            max_age=meta.get("access-control-max-age"),
        )

    def allowed(self, rules: CorsRules, origin: str) -> bool:
        origins = rules.origins() | self.allow_origin
        return origin in origins or "*" in origins

    async def preflight(
        self, req: Request, account: str, container: str | None, obj: str | None
    ) -> Response:
        """Swift's ``OPTIONS``: the methods the resource has, and for a preflight
        from an allowed origin the ``Access-Control-Allow-*`` headers."""
        if obj is not None:
            methods = self.object_methods
        elif container is not None:
            methods = CONTAINER_METHODS
        else:
            methods = ACCOUNT_METHODS
        allow = ", ".join(methods)
        origin = req.headers.get("origin")
        if not origin or container is None:
            return _ok(Headers({"Allow": allow}))
        rules = await self.rules(account, container)
        wanted = req.headers.get("access-control-request-method")
        if not self.allowed(rules, origin) or wanted not in methods:
            return error(401, headers={"Allow": allow}, method=req.method)
        headers = Headers({"Allow": allow})
        _allow_origin(headers, rules, origin)
        if rules.max_age is not None:
            headers["Access-Control-Max-Age"] = rules.max_age
        headers["Access-Control-Allow-Methods"] = allow
        # any header asked for is allowed (the CORS spec leaves the list open)
        asked = _unique(h.strip() for h in
                        (req.headers.get("access-control-request-headers") or "").split(","))
        if asked:
            headers["Access-Control-Allow-Headers"] = ", ".join(asked)
            _vary(headers, "Access-Control-Request-Headers")
        return _ok(headers)

    def decorate(self, resp: Response, rules: CorsRules, origin: str) -> None:
        """The headers of a CORS response, unless a layer below already chose them."""
        h = resp.headers
        if "access-control-expose-headers" not in h:
            meta = [k.lower() for k in h if k.lower().startswith(META_PREFIXES)]
            own = [e.lower() for e in rules.expose_headers.split()]
            h["Access-Control-Expose-Headers"] = ", ".join(
                _unique([*DEFAULT_EXPOSE, *self.expose, *meta, *own]))
        if "access-control-allow-origin" not in h:
            _allow_origin(h, rules, origin)


def _allow_origin(headers: Headers, rules: CorsRules, origin: str) -> None:
    """``*`` for a container open to every origin, else the caller's origin (and
    ``Vary: Origin``, since the answer then depends on it)."""
    if rules.any_origin:
        headers["Access-Control-Allow-Origin"] = "*"
    else:
        headers["Access-Control-Allow-Origin"] = origin
        _vary(headers, "Origin")


def _vary(headers: Headers, name: str) -> None:
    current = headers.get("vary")
    headers["Vary"] = f"{current}, {name}" if current else name


def _ok(headers: Headers) -> Response:
    headers["Content-Length"] = "0"
    return Response(200, headers, b"")


def _info_cors(req: Request, resp: Response) -> Response:
    """``/info`` is for everyone: any origin may read it (and its transaction id)."""
    origin = req.headers.get("origin")
    if origin and req.method in ("GET", "HEAD") and resp.ok:
        resp.headers.setdefault("Access-Control-Allow-Origin", origin)
        resp.headers.setdefault("Access-Control-Expose-Headers", "x-trans-id")
    return resp


def _listed(value: str | Iterable[str] | None) -> list[str]:
    """A setting given as a comma-separated string or a list."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [v.strip() for v in items if v.strip()]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    return Cors(app, st)
