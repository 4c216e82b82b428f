"""Symlinks: zero-byte objects that point at another object.

``PUT`` with ``X-Symlink-Target: <container>/<object>`` (and optionally
``X-Symlink-Target-Account``) stores an empty object whose system metadata
names the target; ``GET``/``HEAD`` of it answer with the target (following at
most ``symloop_max`` links, each read authorized as the caller), ``?symlink=get``
with the link itself. ``X-Symlink-Target-Etag`` makes a static link: the target
must exist with that ETag when the link is made and whenever it is read.

The container listing learns about the link through the container-update
override of the ETag (``<etag>; symlink_target=c/o; ...``); a JSON listing
turns those parameters into ``symlink_path`` (and ``symlink_etag``,
``symlink_bytes``) here. ``POST`` to a link changes the link's metadata and
answers 307 with the target's location, as Swift does.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

from onestack.object_store.api.account import listing_content_type, render_listing
from onestack.object_store.http import (
    Handler,
    Headers,
    HTTPError,
    Request,
    Response,
    error,
)
from onestack.object_store.middleware.copy import (
    RESERVED,
    check_account_format,
    check_path_header,
    normalize_etag,
)
from onestack.object_store.state import ObjectStoreState

DEFAULT_SYMLOOP_MAX = 2
SOURCE = "SYM"
MD5_OF_EMPTY_STRING = "d41d8cd98f00b204e9800998ecf8427e"

TARGET = "x-symlink-target"
TARGET_ACCOUNT = "x-symlink-target-account"
TARGET_ETAG = "x-symlink-target-etag"
TARGET_BYTES = "x-symlink-target-bytes"
SYS_TARGET = "x-object-sysmeta-symlink-target"
SYS_TARGET_ACCOUNT = "x-object-sysmeta-symlink-target-account"
SYS_TARGET_ETAG = "x-object-sysmeta-symlink-target-etag"
SYS_TARGET_BYTES = "x-object-sysmeta-symlink-target-bytes"
# a link another middleware made (object versioning) that does not count as a hop
SYMLOOP_EXTEND = "x-object-sysmeta-symloop-extend"
# a link into the reserved namespace: its target is read without a second auth
ALLOW_RESERVED_NAMES = "x-object-sysmeta-allow-reserved-names"
OVERRIDE_ETAG = "x-object-sysmeta-container-update-override-etag"
USER_TO_SYS = ((TARGET, SYS_TARGET), (TARGET_ACCOUNT, SYS_TARGET_ACCOUNT),
               (TARGET_ETAG, SYS_TARGET_ETAG), (TARGET_BYTES, SYS_TARGET_BYTES))
_TARGET_FORM = "X-Symlink-Target header must be of the form <container name>/<object name>"


class LinkLoop(Exception):
    """More links in a row than ``symloop_max``."""


def sysmeta_to_user(headers: Headers) -> None:
    """Show a link's system metadata under its client-facing names."""
    for user, sysmeta in USER_TO_SYS:
        value = headers.pop(sysmeta)
        if value is not None:
            headers[user.title()] = value


def parse_header_params(value: str) -> tuple[str, dict[str, str]]:
    """``"etag; a=b; c=d"`` -> ``("etag", {"a": "b", "c": "d"})`` (Swift's parse_header)."""
    first, *rest = value.split(";")
    params: dict[str, str] = {}
    for part in rest:
        key, sep, val = part.strip().partition("=")
        if sep:
            params[key.strip().lower()] = val.strip().strip('"')
    return first.strip(), params


def listing_item(item: dict[str, Any], version: str, account: str) -> dict[str, Any]:
    """A JSON container listing entry with its link parameters made fields."""
    if "hash" not in item:
        return item
    etag, params = parse_header_params(item["hash"])
    item["hash"] = etag
    target = None
    for key, value in params.items():
        if key == "symlink_target":
            target = value
        elif key == "symlink_target_account":
            account = value
        elif key == "symlink_target_etag":
            item["symlink_etag"] = value
        elif key == "symlink_target_bytes":
            item["symlink_bytes"] = int(value)
        else:
            item["hash"] += f"; {key}={value}"
    if target:
        item["symlink_path"] = f"/{version}/{account}/{target}"
    return item


Transform = Callable[[list[dict[str, Any]], Response], Awaitable[list[dict[str, Any]]]]


async def rewrite_listing(app: Handler, req: Request, transform: Transform) -> Response:
    """A listing GET asked below as JSON, its entries changed by ``transform`` (which
    also sees the response, for its headers) and answered in the format the client
    asked for (what Swift's middlewares do under its ``listing_formats``)."""
    try:
        content_type = listing_content_type(req)
    except HTTPError:
        return await app(req)  # the controller refuses it the same way
    asked = "format" in req.query
    req.query["format"] = "json"
    resp = await app(req)
    if resp.status != 200 or not (resp.headers.get("content-type") or "").startswith(
            "application/json"):
        return resp
    body = await resp.read()
    try:
        listing = json.loads(body)
    except ValueError:
        return resp
    if not isinstance(listing, list):
        return resp
    listing = await transform(listing, resp)
    _, _, container, _ = req.split()
    root, name = ("container", container) if container else ("account", req.split()[1])
    data = render_listing(listing, content_type, root, name)
    resp.headers["Content-Type"] = f"{content_type}; charset=utf-8"
    resp.headers["Content-Length"] = str(len(data))
    if not asked:
        resp.headers["Vary"] = "Accept"
    resp.status = 200 if data else 204
    resp.body = data
    return resp


class Symlink:
    def __init__(self, app: Handler, symloop_max: int) -> None:
        self.app = app
        self.symloop_max = symloop_max

    async def __call__(self, req: Request) -> Response:
        try:
            version, account, container, obj = req.split()
        except HTTPError:
            return await self.app(req)
        if container is None:
            return await self.app(req)
        if obj is None:
            return await self.handle_container(req, version, account)
        if req.method in ("GET", "HEAD"):
            if req.query.get("symlink") == "get":
                resp = await self.app(req)
                sysmeta_to_user(resp.headers)
                return resp
            return await _LinkWalk(self.app, self.symloop_max).get_head(req)
        if req.method == "PUT" and TARGET in req.headers:
            return await self.handle_put(req)
        if req.method == "POST":
            return await self.handle_post(req, version, account)
        return await self.app(req)

    async def handle_container(self, req: Request, version: str, account: str) -> Response:
        if req.method != "GET":
            return await self.app(req)

        async def show_links(listing: list[dict[str, Any]], _: Response) -> list[dict[str, Any]]:
            return [listing_item(item, version, account) for item in listing]

        return await rewrite_listing(self.app, req, show_links)

    async def handle_put(self, req: Request) -> Response:
        await _require_empty_body(req)
        target_path, etag = _validate_target(req)
        if etag:
            await _LinkWalk(self.app, self.symloop_max).check_static_target(
                req, target_path, etag)
        req.headers.pop(TARGET_ETAG)
        for user, sysmeta in USER_TO_SYS[:2]:
            value = req.headers.pop(user)
            if value is not None:
                req.headers[sysmeta.title()] = value
        override = [req.headers.get(OVERRIDE_ETAG) or MD5_OF_EMPTY_STRING,
                    f"symlink_target={req.headers[SYS_TARGET]}"]
        if SYS_TARGET_ACCOUNT in req.headers:
            override.append(f"symlink_target_account={req.headers[SYS_TARGET_ACCOUNT]}")
        if SYS_TARGET_ETAG in req.headers:
            override.append(f"symlink_target_etag={req.headers[SYS_TARGET_ETAG]}")
            override.append(f"symlink_target_bytes={req.headers[SYS_TARGET_BYTES]}")
        req.headers[OVERRIDE_ETAG.title()] = "; ".join(override)
        return await self.app(req)

    async def handle_post(self, req: Request, version: str, account: str) -> Response:
        """A POST lands on the link itself (the storage cannot know better); the
        client is told where the target is."""
        if TARGET in req.headers:
            return error(400, "A PUT request is required to set a symlink target",
                         method=req.method)
        resp = await self.app(req)
        target = resp.headers.get(SYS_TARGET)
        if not resp.ok or not target:
            return resp
        await resp.close()
        target_account = resp.headers.get(SYS_TARGET_ACCOUNT) or quote(account)
        headers = Headers({"Location": f"/{version}/{target_account}/{target}"})
        etag = resp.headers.get(SYS_TARGET_ETAG)
        if etag:
            headers["X-Symlink-Target-Etag"] = etag
        for name, value in resp.headers.items():
            if name.lower().startswith("x-object-sysmeta-"):
                headers[name] = value
        req.environ["swift.leave_relative_location"] = True
        return error(307, "The requested POST was applied to a symlink. POST directly to "
                          "the target to apply requested metadata.", dict(headers.items()))


async def _require_empty_body(req: Request) -> None:
    """Raises: HTTPError: 400 when a link PUT carries data."""
    length = req.content_length
    if length is None:
        stream = req.stream()
        has_body = False
        async for chunk in stream:
            if chunk:
                has_body = True
                break
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
        req.body = b""
    else:
        has_body = length != 0
    if has_body:
        raise HTTPError(error(400, "Symlink requests require a zero byte body",
                              method=req.method))


def _validate_target(req: Request) -> tuple[str, str | None]:
    """The target's full path and the static link's ETag, with the request's
    link headers put in their stored form.

    Raises:
        HTTPError: 412 for a badly formed target or account, 400 for a link to
            itself or an ETag with characters a listing cannot carry.
    """
    if unquote(req.headers[TARGET]).startswith("/"):
        raise HTTPError(error(412, _TARGET_FORM, method=req.method))
    container, obj = check_path_header(req, TARGET, _TARGET_FORM)
    req.headers[TARGET] = quote(f"{container}/{obj}")
    account = None
    if TARGET_ACCOUNT in req.headers:
        account = check_account_format(req, unquote(req.headers[TARGET_ACCOUNT] or ""))
    version, req_account, req_container, req_obj = req.split()
    if account:
        req.headers[TARGET_ACCOUNT] = quote(account)
    else:
        account = req_account
    if (account, container, obj) == (req_account, req_container, req_obj):
        raise HTTPError(error(400, "Symlink cannot target itself", method=req.method))
    etag = normalize_etag(req.headers.get(TARGET_ETAG))
    if etag and any(c in etag for c in ';"\\'):
        raise HTTPError(error(400, "Bad X-Symlink-Target-Etag format", method=req.method))
    if not (etag or req.headers.get("content-type")):
        req.headers["Content-Type"] = "application/symlink"
    return f"/{version}/{account}/{container}/{obj}", etag


class _LinkWalk:
    """One GET/HEAD through a chain of links (Swift's SymlinkObjectContext)."""

    def __init__(self, app: Handler, symloop_max: int) -> None:
        self.app = app
        self.symloop_max = symloop_max
        self.hops = 0
        self.last_target: str | None = None
        self.method = "GET"  # of the client's request: a HEAD's errors have no body

    async def get_head(self, req: Request) -> Response:
        self.method = req.method
        _ignore_range_if(req, SYS_TARGET)
        try:
            return await self._follow(req, req)
        except LinkLoop:
            return error(409, "Too many levels of symbolic links, maximum allowed is "
                              f"{self.symloop_max}", method=req.method)

    async def check_static_target(self, req: Request, target_path: str, etag: str) -> None:
        """Check that a static link's target exists with ``etag`` and put its size,
        type and listing parameters on the link ``req``.

        Raises:
            HTTPError: 409 for a missing target or another ETag, the target's
                error status otherwise.
        """
        self.method = req.method
        head = req.sub("HEAD", target_path, source=SOURCE)
        self.last_target = quote(target_path)
        try:
            resp = await self._follow(head, head, target_etag=etag, follow_soft=False)
        except LinkLoop:
            raise HTTPError(error(409, "Too many levels of symbolic links, maximum allowed "
                                       f"is {self.symloop_max}", method=req.method)) from None
        await resp.close()
        if resp.status == 404:
            raise HTTPError(error(409, "X-Symlink-Target does not exist", {
                "Content-Location": self.last_target or ""}, method=req.method))
        if not resp.ok:
            raise HTTPError(error(resp.status, method=req.method))
        found = resp.headers
        if OVERRIDE_ETAG in found and OVERRIDE_ETAG not in req.headers:
            _, sep, params = found[OVERRIDE_ETAG].partition(";")
            req.headers[OVERRIDE_ETAG.title()] = MD5_OF_EMPTY_STRING + sep + params
        if "x-object-sysmeta-slo-etag" in found and OVERRIDE_ETAG not in req.headers:
            req.headers[OVERRIDE_ETAG.title()] = (
                f"{MD5_OF_EMPTY_STRING}; slo_etag={found['x-object-sysmeta-slo-etag']}")
        req.headers[SYS_TARGET_BYTES.title()] = (
            found.get("x-object-sysmeta-slo-size") or found.get("content-length") or "0")
        req.headers[SYS_TARGET_ETAG.title()] = etag
        if not req.headers.get("content-type"):
            req.headers["Content-Type"] = found.get("content-type") or ""

    async def _follow(self, req: Request, orig: Request, *, target_etag: str | None = None,
                      follow_soft: bool = True) -> Response:
        resp = await self.app(req)
        target = resp.headers.get(SYS_TARGET)
        link_etag = resp.headers.get(SYS_TARGET_ETAG)
        if target and (link_etag or follow_soft):
            await resp.close()
            found = link_etag or normalize_etag(resp.headers.get("etag"))
            if target_etag and target_etag != found:
                raise HTTPError(error(409, "X-Symlink-Target-Etag headers do not match", {
                    "Content-Location": self.last_target or ""}, method=self.method))
            if self.hops >= self.symloop_max:
                raise LinkLoop()
            nxt = self._next_request(req, orig, resp.headers, target)
            if not _true(resp.headers.get(SYMLOOP_EXTEND)):
                self.hops += 1
            return await self._follow(nxt, req, target_etag=link_etag)
        final = normalize_etag(resp.headers.get("etag"))
        if final and target_etag and target_etag != final:
            await resp.close()
            raise HTTPError(error(
                409, f"Object Etag {final!r} does not match X-Symlink-Target-Etag header "
                     f"{target_etag!r}",
                {"Content-Location": self.last_target or ""}, method=self.method))
        if self.last_target:
            # which object answered (an error too) once at least one link was followed
            resp.headers["Content-Location"] = self.last_target
        return resp

    def _next_request(self, req: Request, orig: Request, found: Headers,
                      target: str) -> Request:
        version, account, _, _ = req.split()
        target_account = found.get(SYS_TARGET_ACCOUNT) or quote(account)
        self.last_target = f"/{version}/{target_account}/{target.lstrip('/')}"
        path = f"/{version}/{unquote(target_account)}/{unquote(target.lstrip('/'))}"
        headers = req.headers.copy()
        headers.pop("x-backend-storage-policy-index")
        environ: dict[str, Any] = {}
        if RESERVED in path and not _true(found.get(ALLOW_RESERVED_NAMES)):
            # what Swift's proxy answers a path in the reserved namespace
            raise HTTPError(error(412, "Invalid UTF8 or contains NULL", method=self.method))
        if _true(found.get(ALLOW_RESERVED_NAMES)):
            # only a middleware can have made such a link: it authorized the caller
            headers["X-Backend-Allow-Reserved-Names"] = "true"
            environ["swift.authorize"] = None
        query = {k: v for k, v in req.query.items() if k != "version-id"}
        return orig.sub(req.method, path, headers=headers, query=query, source=SOURCE,
                        environ=environ)


def _ignore_range_if(req: Request, name: str) -> None:
    """Ask the object server for the whole object when it has ``name`` (a link is
    empty; a Range would make it a 416 instead of the link to follow)."""
    header = "X-Backend-Ignore-Range-If-Metadata-Present"
    current = req.headers.get(header)
    names = [n.strip() for n in current.split(",")] if current else []
    if name not in (n.lower() for n in names):
        names.append(name)
    req.headers[header] = ",".join(names)


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on", "t", "y")


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    symloop_max = int(st.extras.get("symloop_max", DEFAULT_SYMLOOP_MAX))
    if symloop_max < 1:
        symloop_max = DEFAULT_SYMLOOP_MAX
    st.register("symlink", symloop_max=symloop_max, static_links=True)
    return Symlink(app, symloop_max)
