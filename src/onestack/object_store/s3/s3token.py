"""Who signed an S3 request: the identity service's ``POST /v3/s3tokens``, as
Swift's ``s3token`` middleware asks it.

The identity service holds the EC2 secrets; it is sent the access key, the
string to sign and the signature, and answers with a token body naming the
user, project and roles. That costs a token issue per request, so, as
``s3token`` does with its ``secret_cache_duration``, a successful validation
is followed by one read of the credential's secret (with the service's own
token) and both are kept for a short while: further requests with the same
access key are checked here, with an HMAC, and only a signature that does not
match goes back to the identity service (the secret may have changed). The
secret is also what checks the signatures of ``aws-chunked`` bodies, chunk by
chunk, which the identity service cannot do.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from onestack.core.clients.identity import ServiceSession, auth_info_from_token
from onestack.core.context import AuthInfo
from onestack.object_store.s3.errors import S3Error
from onestack.object_store.s3.signing import Signed
from onestack.object_store.state import ObjectStoreState

log = logging.getLogger("onestack.object_store.s3")

SERVICE_TYPE = "object-store"
_MAX_ENTRIES = 10000


@dataclass(frozen=True)
class Identity:
    """The signer of a request; ``secret`` is ``None`` when it could not be read
    (then ``aws-chunked`` signed bodies cannot be checked)."""

    auth: AuthInfo
    secret: str | None


@dataclass
class _Entry:
    identity: Identity
    until: float


class S3TokenAuth:
    """Validates signed requests against the identity service, with a short
    per-access-key cache of the answer and the secret."""

    def __init__(self, st: ObjectStoreState, *, ttl: float = 60.0) -> None:
        self.st = st
        self.ttl = ttl
        self._cache: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._session: ServiceSession | None = None

    async def authenticate(self, signed: Signed) -> Identity:
        """The identity of the signer of ``signed``.

        Raises:
            S3Error: ``InvalidAccessKeyId``, ``SignatureDoesNotMatch``,
                ``AccessDenied`` (disabled user or project, no role), or
                ``ServiceUnavailable`` when identity cannot answer.
        """
        hit = self._cached(signed)
        if hit is not None:
            return hit
        lock = self._locks.setdefault(signed.access_key, asyncio.Lock())
        async with lock:
            # another request may have validated this key while this one waited
            hit = self._cached(signed)
            if hit is not None:
                return hit
            identity = await self._validate(signed)
        self._locks.pop(signed.access_key, None)
        return identity

    def forget(self, access_key: str) -> None:
        self._cache.pop(access_key, None)

    def _cached(self, signed: Signed) -> Identity | None:
        entry = self._cache.get(signed.access_key)
        if entry is None:
            return None
        if entry.until < time.monotonic():
            self._cache.pop(signed.access_key, None)
            return None
        secret = entry.identity.secret
        if secret is not None and signed.matches(secret):
            return entry.identity
        return None

    async def _validate(self, signed: Signed) -> Identity:
        body = await self._s3tokens(signed)
        try:
            auth = auth_info_from_token("", body)
        except (KeyError, TypeError, ValueError):
            log.error("unexpected answer from /s3tokens: %r", body)
            raise S3Error("InternalError") from None
        secret = await self._secret(auth.user_id, signed.access_key)
        identity = Identity(auth, secret)
        if secret is not None:
            self._remember(signed.access_key, identity)
        return identity

    def _remember(self, access_key: str, identity: Identity) -> None:
        now = time.monotonic()
        if len(self._cache) >= _MAX_ENTRIES:
            for key in [k for k, e in self._cache.items() if e.until < now]:
                del self._cache[key]
            if len(self._cache) >= _MAX_ENTRIES:
                self._cache.clear()
        until = now + self.ttl
        expires = identity.auth.expires_at
        if expires is not None:
            until = min(until, now + max(expires.timestamp() - time.time(), 0.0))
        self._cache[access_key] = _Entry(identity, until)

    # -- identity calls ---------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        runtime = self.st.runtime
        if runtime is None or runtime.http is None:
            raise RuntimeError("the object store has no identity client")
        return runtime.http

    def _service(self) -> ServiceSession:
        if self._session is None:
            assert self.st.runtime is not None
            self._session = self.st.runtime.service_session(SERVICE_TYPE)
        return self._session

    def _path(self, *parts: str) -> str:
        assert self.st.runtime is not None
        return "/".join((self.st.runtime.identity_path.rstrip("/"), *parts))

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """``method path`` with the service's token; a rejected token (revoked,
        keys rotated) is renewed once."""
        session = self._service()
        for attempt in (1, 2):
            headers = await session.headers()
            try:
                resp = await self._http().request(method, path, headers=headers, **kw)
            except httpx.HTTPError as exc:
                log.warning("identity cannot be reached: %s", exc)
                raise S3Error("ServiceUnavailable") from None
            if resp.status_code == 401 and attempt == 1 and _service_token_refused(resp):
                session.invalidate()
                continue
            return resp
        return resp

    async def _s3tokens(self, signed: Signed) -> dict[str, Any]:
        """The token body for the first string to sign the signature is good for
        (a v2 request has more than one candidate: see ``signing``)."""
        for string_to_sign in signed.candidates():
            creds = {"access": signed.access_key, "signature": signed.signature,
                     "token": base64.urlsafe_b64encode(string_to_sign).decode()}
            resp = await self._call("POST", self._path("s3tokens"), json={"credentials": creds})
            if resp.status_code == 200:
                body: dict[str, Any] = resp.json()
                return body
            message = _message(resp)
            if resp.status_code == 404:
                raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=signed.access_key)
            if resp.status_code == 401 and "signature" in message.lower():
                continue
            if resp.status_code == 401:
                raise S3Error("AccessDenied")
            log.error("/s3tokens answered %s: %s", resp.status_code, message)
            raise S3Error("ServiceUnavailable")
        raise signed.mismatch()

    async def _secret(self, user_id: str, access_key: str) -> str | None:
        """The EC2 secret of ``access_key`` (the service user reads it as Swift's
        ``s3token`` does), or ``None`` when that is not allowed."""
        path = self._path("users", user_id, "credentials", "OS-EC2", access_key)
        try:
            resp = await self._call("GET", path)
        except S3Error:
            return None
        if resp.status_code != 200:
            log.warning("cannot read the secret of an EC2 credential (%s): S3 requests are "
                        "validated by identity one by one", resp.status_code)
            return None
        secret = (resp.json().get("credential") or {}).get("secret")
        return str(secret) if secret else None


def _message(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return resp.text


def _service_token_refused(resp: httpx.Response) -> bool:
    """A 401 about the service's own token, not about the signed request."""
    message = _message(resp).lower()
    return "signature" not in message and "ec2" not in message and "credential" not in message \
        and "project" not in message
