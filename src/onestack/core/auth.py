"""Token validation for every service.

A service asks a ``TokenValidator`` what a token means. In the all-in-one process
the identity service hands its own validator to the others, so a check is a
function call (cached); across hosts ``onestack.core.clients.identity`` validates
over HTTP with the same cache. Revocations reach the cache through
``TokenCache.invalidate``/``clear`` in-process and through the TTL across hosts.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from starlette.requests import Request

from onestack.core.context import AuthInfo, RequestContext
from onestack.core.errors import Unauthorized

AUTH_HEADER = "x-auth-token"


class TokenValidator(Protocol):
    async def validate(self, token: str, *, allow_expired: bool = False) -> AuthInfo:
        """What ``token`` says.

        Raises:
            Unauthorized: the token is malformed, expired, revoked, or its user or
                scope is gone or disabled.
        """
        ...


V = TypeVar("V")


class TokenCache(Generic[V]):
    """An LRU of validated tokens that honours each token's expiry and a TTL."""

    def __init__(
        self,
        *,
        ttl: float = 300.0,
        size: int = 10000,
        expires: Callable[[V], datetime | None] = lambda v: getattr(v, "expires_at", None),
    ):
        self.ttl = ttl
        self.size = size
        self._expires = expires
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, token: str) -> V | None:
        hit = self._items.get(token)
        if hit is None:
            return None
        stored, value = hit
        expires = self._expires(value)
        if time.monotonic() - stored > self.ttl or (
            expires is not None and expires <= datetime.now(UTC)
        ):
            self._items.pop(token, None)
            return None
        self._items.move_to_end(token)
        return value

    def put(self, token: str, value: V) -> None:
        self._items[token] = (time.monotonic(), value)
        self._items.move_to_end(token)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def invalidate(self, token: str) -> None:
        self._items.pop(token, None)

    def clear(self) -> None:
        self._items.clear()


def request_context(request: Request) -> RequestContext:
    """The request's context, created on first use (without authenticating)."""
    ctx = request.scope.get("onestack.context")
    if ctx is None:
        ctx = RequestContext(request_id=request.scope.get("state", {}).get("request_id", ""))
        request.scope["onestack.context"] = ctx
    return ctx


async def authenticate(request: Request, validator: TokenValidator) -> RequestContext:
    """The request's context with the caller's token validated.

    Raises:
        Unauthorized: no token, or one the validator refuses.
    """
    ctx = request_context(request)
    if ctx.auth is not None:
        return ctx
    token = request.headers.get(AUTH_HEADER)
    if not token:
        raise Unauthorized("The request you have made requires authentication.")
    ctx.auth = await validator.validate(token)
    return ctx


# -- the metadata proxy's signature ----------------------------------------------------
# Networking's metadata proxy and compute's metadata API share this secret and
# signature, as Neutron and Nova share metadata_proxy_shared_secret.

METADATA_SECRET = ("secrets", "metadata-proxy")  # under the data dir


def instance_signature(secret: bytes, instance_id: str) -> str:
    """``X-Instance-ID-Signature``: the hex HMAC-SHA256 of the instance id."""
    return hmac.new(secret, instance_id.encode(), hashlib.sha256).hexdigest()


def instance_signature_ok(secret: bytes, instance_id: str, given: str) -> bool:
    return hmac.compare_digest(instance_signature(secret, instance_id), given)
