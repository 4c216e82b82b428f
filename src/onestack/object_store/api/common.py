"""What the proxy's controllers share: authorization, timestamps, header helpers."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

from onestack.object_store.http import Headers, HTTPError, Request

# environ key: the ACL string ``swift.authorize`` checks against (Swift's req.acl)
ACL = "swift.acl"
# only an account's owner may set or see these (Swift's swift_owner_headers)
OWNER_HEADERS = (
    "x-container-read", "x-container-write", "x-container-sync-key", "x-container-sync-to",
    "x-account-meta-temp-url-key", "x-account-meta-temp-url-key-2",
    "x-container-meta-temp-url-key", "x-container-meta-temp-url-key-2",
    "x-account-access-control",
)
# environ key: the container's info, for auth (owner checks) and middlewares
CONTAINER_INFO = "swift.container_info"


async def authorize(req: Request, acl: str | None = None) -> None:
    """Ask the auth middleware (``swift.authorize``) whether ``req`` may go on,
    given the container ``acl`` that applies (read ACL for GET/HEAD, write ACL
    otherwise; ``None`` at the account level).

    A caller allowed in without owning the account loses the owner-only
    headers of its request (ACLs, TempURL keys ...), as in Swift's proxy.

    Raises:
        HTTPError: the denial (401 when the caller is anonymous, else 403).
    """
    req.environ[ACL] = acl
    check = req.environ.get("swift.authorize")
    if check is None:
        return
    denial = await check(req)
    if denial is not None:
        raise HTTPError(denial)
    if not req.environ.get("swift_owner") and "swift.source" not in req.environ:
        strip_owner_headers(req.headers)


def strip_owner_headers(headers: Headers) -> None:
    """Remove what only an account's owner may set or see (``OWNER_HEADERS``)."""
    for name in headers:
        if name.lower() in OWNER_HEADERS:
            del headers[name]


def conditional_etag(req: Request, headers: Mapping[str, str] | Headers) -> str | None:
    """The ETag that If-Match / If-None-Match test when a middleware names another
    than the object's own (``X-Backend-Etag-Is-At``: the leftmost of the named
    headers that ``headers`` has; S3 names its multipart ETag so), else ``None``."""
    names = req.headers.get("x-backend-etag-is-at")
    if not names:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in names.split(","):
        value = lowered.get(name.strip().lower())
        if value is not None:
            return value
    return None


def http_date(seconds: float) -> str:
    """An HTTP date (``Last-Modified``) for a Unix time; Swift rounds up to the second."""
    return _http_date(int(seconds) if seconds == int(seconds) else int(seconds) + 1)


@functools.lru_cache(maxsize=4096)  # every GET and HEAD formats one
def _http_date(seconds: int) -> str:
    return formatdate(float(seconds), usegmt=True)


def new_trans_id() -> str:
    """A transaction id as Swift formats one: ``tx`` + 21 hex chars + ``-`` + hex time."""
    return f"tx{uuid.uuid4().hex[:21]}-{int(time.time()):010x}"


def meta_headers(headers: Headers, prefixes: tuple[str, ...]) -> dict[str, str]:
    """The headers of ``headers`` that start with one of ``prefixes`` (lower-case)."""
    out: dict[str, str] = {}
    for k, v in headers.items():
        lk = k.lower()
        if any(lk.startswith(p) for p in prefixes):
            out[k.title() if not lk.startswith("x-") else _title(k)] = v
    return out


def _title(name: str) -> str:
    """``x-object-meta-foo-bar`` -> ``X-Object-Meta-Foo-Bar`` (Swift stores names titled)."""
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def config_true(value: Any) -> bool:
    """Swift's ``config_true_value``: true, 1, yes, on, t, y (any case)."""
    return value is True or (isinstance(value, str)
                             and value.strip().lower() in ("true", "1", "yes", "on", "t", "y"))
