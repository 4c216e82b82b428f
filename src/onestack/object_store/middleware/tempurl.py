"""Temporary URLs: a signed, expiring link grants one method on one object (or on
the objects under a prefix) to whoever holds it, without a token.

The signature is an HMAC (sha1, sha256 or sha512; hex, or ``<algo>:<base64>``) of
``[ip=<range>\\n]<method>\\n<expires>\\n<path>`` under one of the account's or the
container's Temp-URL keys (``X-{Account,Container}-Meta-Temp-URL-Key[-2]``). A valid
request goes on with auth bypassed (``swift.authorize_override``) and an
authorization limited to the key's account or container, so that sub-requests
(segments, copies) cannot reach further than the key's owner allowed. As in
Swift, such a request cannot leave a pointer to other data (manifest or symlink
headers), loses the headers listed in ``INCOMING_REMOVE`` and the reply loses
private object metadata and every owner-only header.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hmac
import ipaddress
import posixpath
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from onestack.core.errors import CloudError
from onestack.object_store.api.common import strip_owner_headers
from onestack.object_store.http import (
    Authorize,
    Handler,
    Headers,
    HTTPError,
    Request,
    Response,
    error,
    split_path,
)
from onestack.object_store.state import ObjectStoreState

METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
ALLOWED_DIGESTS = ("sha1", "sha256", "sha512")
DEPRECATED_DIGESTS = ("sha1",)
# a request that could store a pointer to data the URL does not grant is refused
DISALLOWED_INCOMING = ("x-object-manifest", "x-symlink-target")
INCOMING_REMOVE = ("x-timestamp", "x-open-expired")
INCOMING_ALLOW: tuple[str, ...] = ()
OUTGOING_REMOVE = ("x-object-meta-*",)
OUTGOING_ALLOW = ("x-object-meta-public-*",)
KEY_NAMES = ("temp-url-key", "temp-url-key-2")
ACCOUNT_SCOPE = "account"
CONTAINER_SCOPE = "container"
ISO8601 = "%Y-%m-%dT%H:%M:%SZ"
_HEX_LENGTHS = {40: "sha1", 64: "sha256", 128: "sha512"}


def get_hmac(method: str, path: str, expires: int | str, key: str | bytes,
             digest: str = "sha1", ip_range: str | None = None) -> str:
    """The hex HMAC a temporary URL for ``method`` on ``path`` carries.

    The IP range goes first so that a path (which may hold newlines) can never
    be made to look like one.
    """
    parts = [method, str(expires), path]
    if ip_range:
        parts.insert(0, f"ip={ip_range}")
    raw_key = key.encode() if isinstance(key, str) else key
    return hmac.new(raw_key, "\n".join(parts).encode(), digest).hexdigest()


def extract_digest(value: str) -> tuple[str, str]:
    """``(algorithm, hex digest)`` of a signature: hex (the algorithm follows from
    its length) or ``<algorithm>:<base64>`` (standard or URL-safe alphabet).

    Raises:
        ValueError: the signature does not decode.
    """
    if ":" in value:
        algo, b64 = value.split(":", 1)
        if ("-" in b64 or "_" in b64) and not ("+" in b64 or "/" in b64):
            b64 = b64.replace("-", "+").replace("_", "/")
        b64 = b64.rstrip("=")
        b64 += "=" * (-len(b64) % 4)
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error as exc:
            raise ValueError(str(exc)) from None
        return algo, raw.hex()
    binascii.unhexlify(value)  # raises ValueError when it is no hex
    algo = _HEX_LENGTHS.get(len(value))
    if algo is None:
        raise ValueError("bad digest length")
    return algo, value


def keys_in(metadata: Mapping[str, str] | None, prefix: str) -> list[str]:
    """The Temp-URL keys among an account's (``prefix`` ``x-account-meta-``) or a
    container's (``x-container-meta-``) stored headers."""
    names = {prefix + name for name in KEY_NAMES}
    return [value for name, value in (metadata or {}).items()
            if name.lower() in names and value]


async def temp_url_keys(st: ObjectStoreState, account: str,
                        container: str | None) -> list[tuple[str, str]]:
    """``(key, scope)`` for each Temp-URL key of ``account`` and of ``container``;
    an account or container that does not exist has none."""
    out: list[tuple[str, str]] = []
    try:
        account_info = await st.listings.account_info(account)
    except CloudError:
        account_info = None
    if account_info is not None and account_info.exists:
        keys = keys_in(account_info.metadata, "x-account-meta-")
        out += [(k, ACCOUNT_SCOPE) for k in keys]
    if container:
        try:
            container_info = await st.listings.container_info(account, container,
                                                                 counts=False)
        except CloudError:
            container_info = None
        if container_info is not None:
            keys = keys_in(container_info.metadata, "x-container-meta-")
            out += [(k, CONTAINER_SCOPE) for k in keys]
    return out


def signed_paths(req: Request, path: str) -> list[str]:
    """The paths a signature may cover: Swift's ``/v1/...``, and the same path below
    the prefix the service is mounted at (``/object-store/v1/...``), which clients
    that sign the URL path of the catalog's endpoint (Tempest) use."""
    return [path, req.script_name + path] if req.script_name else [path]


def normalize_expires(value: str | None) -> int | None:
    """The expiry as a Unix time: ``None`` when absent, 0 when unreadable or past."""
    if value is None:
        return None
    try:
        expires = int(value)
    except ValueError:
        try:
            expires = calendar.timegm(time.strptime(value, ISO8601))
        except ValueError:
            return 0
    return 0 if expires < time.time() else expires


def disposition(kind: str, filename: str) -> str:
    """A ``Content-Disposition`` value naming ``filename`` in both RFC 6266 forms."""
    return (f'{kind}; filename="{quote(filename, safe=" /")}"; '
            f"filename*=UTF-8''{quote(filename)}")


def invalid(req: Request) -> Response:
    """Swift's refusal of a temporary URL: the same whatever was wrong with it."""
    return error(401, "401 Unauthorized: Temp URL invalid\n",
                 {"Content-Type": "text/html; charset=UTF-8",
                  "WWW-Authenticate": 'Swift realm="unknown"'}, method=req.method)


def _unauthorized(req: Request) -> Response:
    return error(401, headers={"WWW-Authenticate": 'Swift realm="unknown"'}, method=req.method)




def authorize_scope(account: str, container: str | None) -> Authorize:
    """``swift.authorize`` for a request let in by a key of ``account`` (or of its
    ``container``): anything else, a sub-request included, is refused."""

    async def check(req: Request) -> Response | None:
        try:
            _, acc, cont, _ = req.split()
        except HTTPError:
            return _unauthorized(req)
        if acc != account or (container is not None and cont != container):
            return _unauthorized(req)
        return None

    return check


@dataclass
class TempURLParams:
    sig: str | None
    expires: str | None
    prefix: str | None
    filename: str | None
    inline: bool
    ip_range: str | None

    @classmethod
    def of(cls, query: Mapping[str, str]) -> TempURLParams:
        return cls(query.get("temp_url_sig"), query.get("temp_url_expires"),
                   query.get("temp_url_prefix"), query.get("filename"),
                   "inline" in query, query.get("temp_url_ip_range"))


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    lower = name.lower()
    return any(lower.startswith(p[:-1]) if p.endswith("*") else lower == p for p in patterns)


def _clean(headers: Headers, remove: tuple[str, ...], allow: tuple[str, ...]) -> None:
    for name in headers:
        if not _matches(name, allow) and _matches(name, remove):
            del headers[name]


def _ip_allowed(client: str, ip_range: str) -> bool:
    if not client:
        return False
    try:
        return ipaddress.ip_address(client) in ipaddress.ip_network(ip_range)
    except ValueError:
        return False


class TempURL:
    def __init__(self, app: Handler, st: ObjectStoreState,
                 methods: tuple[str, ...] = METHODS,
                 allowed_digests: tuple[str, ...] = ALLOWED_DIGESTS) -> None:
        self.app = app
        self.st = st
        self.methods = methods
        self.allowed_digests = allowed_digests

    def _target(self, req: Request, container_root: bool) -> tuple[str, str, str] | None:
        """``(account, container, object)`` of a request a temporary URL may address;
        the object is ``""`` for a container root when ``container_root``."""
        if req.method not in self.methods:
            return None
        try:
            version, account, container, obj = split_path(req.path)
        except HTTPError:
            return None
        if version != "v1" or container is None:
            return None
        if obj is None or not obj.strip("/"):
            if not container_root:
                return None
            obj = obj or ""
        return account, container, obj

    async def _scope(self, req: Request, p: TempURLParams, expires: int,
                     target: tuple[str, str, str]) -> str | None:
        """The scope of the key that signed ``req``, ``None`` when none did."""
        assert p.sig is not None
        try:
            algo, sig = extract_digest(p.sig)
        except ValueError:
            return None
        if algo not in self.allowed_digests:
            return None
        account, container, obj = target
        if p.ip_range and not _ip_allowed(req.client, p.ip_range):
            return None
        keys = await temp_url_keys(self.st, account, container)
        if p.prefix is None:
            tag, path = "", f"/v1/{account}/{container}/{obj}"
        elif obj.startswith(p.prefix):
            tag, path = "prefix:", f"/v1/{account}/{container}/{p.prefix}"
        else:
            return None
        methods = ("HEAD", "GET", "POST", "PUT") if req.method == "HEAD" else (req.method,)
        for signed in signed_paths(req, path):
            for method in methods:
                for key, scope in keys:
                    mac = get_hmac(method, tag + signed, expires, key, algo, p.ip_range)
                    if hmac.compare_digest(mac.encode(), sig.encode()):
                        return scope
        return None

    async def __call__(self, req: Request) -> Response:
        if req.method == "OPTIONS":
            return await self.app(req)
        p = TempURLParams.of(req.query)
        expires = normalize_expires(p.expires)
        if p.sig is None and expires is None:
            return await self.app(req)
        if not p.sig or not expires:
            return invalid(req)
        target = self._target(req, req.method in ("GET", "HEAD") and p.prefix == "")
        if target is None:
            return invalid(req)
        scope = await self._scope(req, p, expires, target)
        if scope is None:
            return invalid(req)
        if req.method not in ("GET", "HEAD", "OPTIONS"):
            for name in DISALLOWED_INCOMING:
                if name in req.headers:
                    title = "-".join(w.capitalize() for w in name.split("-"))
                    return error(400, f"The header {title!r} is not allowed in this tempurl",
                                 {"Content-Type": "text/html; charset=UTF-8"},
                                 method=req.method)
        _clean(req.headers, INCOMING_REMOVE, INCOMING_ALLOW)
        strip_owner_headers(req.headers)
        account, container, obj = target
        self._let_in(req, p, account, container if scope == CONTAINER_SCOPE else None)
        resp = await self.app(req)
        _clean(resp.headers, OUTGOING_REMOVE, OUTGOING_ALLOW)
        strip_owner_headers(resp.headers)
        if req.method in ("GET", "HEAD") and resp.ok:
            if resp.headers.get("x-backend-content-generator") == "staticweb":
                p.inline = True
            elif obj == "":
                # a container root only serves staticweb's pages
                await resp.close()
                return invalid(req)
            self._disposition(req, resp, p, expires)
        return resp

    def _let_in(self, req: Request, p: TempURLParams, account: str,
                container: str | None) -> None:
        """Let ``req`` through auth, limited to the key's scope, with only the
        temporary URL's own query parameters (nothing else may change what it reads)."""
        req.environ["swift.authorize"] = authorize_scope(account, container)
        req.environ["swift.authorize_override"] = True
        req.environ["REMOTE_USER"] = ".wsgi.tempurl"
        req.environ.pop("swift_owner", None)
        query = {"temp_url_sig": p.sig or "", "temp_url_expires": p.expires or ""}
        if p.prefix is not None:
            query["temp_url_prefix"] = p.prefix
        if p.filename:
            query["filename"] = p.filename
        if p.inline:
            query["inline"] = ""  # kept so that staticweb's links keep it
        req.query = query

    @staticmethod
    def _disposition(req: Request, resp: Response, p: TempURLParams, expires: int) -> None:
        existing = resp.headers.pop("content-disposition")
        if p.inline:
            value = disposition("inline", p.filename) if p.filename else "inline"
        elif p.filename:
            value = disposition("attachment", p.filename)
        elif existing:
            value = existing
        else:
            value = disposition("attachment", posixpath.basename(req.path.rstrip("/")))
        resp.headers["Content-Disposition"] = value.replace("\n", "%0A")
        resp.headers["Expires"] = formatdate(expires, usegmt=True)


def info() -> dict[str, Any]:
    """The ``tempurl`` section of ``GET /info``."""
    return {
        "methods": list(METHODS),
        "incoming_remove_headers": list(INCOMING_REMOVE),
        "incoming_allow_headers": list(INCOMING_ALLOW),
        "outgoing_remove_headers": list(OUTGOING_REMOVE),
        "outgoing_allow_headers": list(OUTGOING_ALLOW),
        "allowed_digests": sorted(ALLOWED_DIGESTS),
        "deprecated_digests": sorted(DEPRECATED_DIGESTS),
    }


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    st.register("tempurl", **info())
    return TempURL(app, st)

