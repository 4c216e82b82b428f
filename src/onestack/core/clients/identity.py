"""Calling the Identity API v3 from other services: validating tokens (for
services on another host), a service's own token (``ServiceSession``) and
unified limits (``LimitsClient``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from onestack.core.auth import TokenCache
from onestack.core.context import AuthInfo
from onestack.core.errors import ServiceUnavailable, Unauthorized

TOKEN_RENEW_MARGIN = 300.0  # seconds before expiry when a service renews its token


def auth_info_from_token(token: str, body: dict) -> AuthInfo:  # type: ignore[type-arg]
    """An ``AuthInfo`` from a token response body (``{"token": {...}}``)."""
    t = body["token"]
    user = t["user"]
    project = t.get("project") or {}
    domain = t.get("domain") or {}
    system = t.get("system") or {}
    return AuthInfo(
        token=token,
        user_id=user["id"],
        user_name=user.get("name", ""),
        user_domain_id=user.get("domain", {}).get("id", ""),
        user_domain_name=user.get("domain", {}).get("name", ""),
        roles=tuple(r["name"] for r in t.get("roles", [])),
        role_ids=tuple(r["id"] for r in t.get("roles", [])),
        project_id=project.get("id"),
        project_name=project.get("name"),
        project_domain_id=(project.get("domain") or {}).get("id"),
        project_domain_name=(project.get("domain") or {}).get("name"),
        domain_id=domain.get("id"),
        domain_name=domain.get("name"),
        system_scope="all" if system.get("all") else None,
        is_admin_project=bool(t.get("is_admin_project", False)),
        expires_at=datetime.fromisoformat(t["expires_at"].replace("Z", "+00:00")),
        audit_ids=tuple(t.get("audit_ids", [])),
        methods=tuple(t.get("methods", [])),
        app_cred_id=(t.get("application_credential") or {}).get("id"),
    )


class IdentityTokenValidator:
    """A ``TokenValidator`` that asks the identity service, authenticated as a
    service user whose token ``service_token`` returns."""

    def __init__(self, http: httpx.AsyncClient, service_token: str, *, cache_ttl: float = 60.0):
        self.http = http
        self.service_token = service_token
        self.cache: TokenCache[AuthInfo] = TokenCache(ttl=cache_ttl)

    async def validate(self, token: str, *, allow_expired: bool = False) -> AuthInfo:
        if not allow_expired and (hit := self.cache.get(token)) is not None:
            return hit
        params = {"nocatalog": "1"} | ({"allow_expired": "1"} if allow_expired else {})
        try:
            resp = await self.http.get(
                "/v3/auth/tokens",
                params=params,
                headers={"X-Auth-Token": self.service_token, "X-Subject-Token": token},
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("The identity service cannot be reached.") from exc
        if resp.status_code in (401, 404):
            raise Unauthorized("The request you have made requires authentication.")
        if resp.status_code != 200:
            raise ServiceUnavailable(f"The identity service answered {resp.status_code}.")
        info = auth_info_from_token(token, resp.json())
        if not allow_expired:
            self.cache.put(token, info)
        return info


# -- a service's own credentials and token ---------------------------------------------


@dataclass(frozen=True)
class ServiceCredentials:
    """A service user's password credentials, scoped to the ``service`` project."""

    username: str
    password: str = field(repr=False)
    project_name: str = "service"
    domain_name: str = "Default"


class ServiceSession:
    """A service's authenticated session with the identity service: a project-scoped
    token from password authentication, reused until five minutes before it
    expires (or half its lifetime, for short tokens) and renewed under a lock, so
    concurrent callers cause one authentication."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        username: str,
        password: str,
        project: str = "service",
        domain: str = "Default",
        auth_path: str = "/identity/v3",
    ):
        self.http = http
        self.auth_path = auth_path.rstrip("/")
        self.username = username
        self._password = password
        self.project = project
        self.domain = domain
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_credentials(
        cls, http: httpx.AsyncClient, creds: ServiceCredentials, *, auth_path: str = "/identity/v3"
    ) -> ServiceSession:
        return cls(
            http, username=creds.username, password=creds.password,
            project=creds.project_name, domain=creds.domain_name, auth_path=auth_path,
        )

    async def token(self) -> str:
        """The current token, authenticating when there is none or it is about to
        expire.

        Raises:
            ServiceUnavailable: identity cannot be reached or refuses the service
                user (a deployment error, not the end user's).
        """
        if self._token is not None and time.monotonic() < self._renew_at:
            return self._token
        async with self._lock:
            if self._token is not None and time.monotonic() < self._renew_at:
                return self._token
            self._token, self._renew_at = await self._authenticate()
            return self._token

    async def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": await self.token()}

    def invalidate(self) -> None:
        """Forget the token (identity answered 401 to it: revoked, keys rotated)."""
        self._token = None

    async def _authenticate(self) -> tuple[str, float]:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.username,
                            "domain": {"name": self.domain},
                            "password": self._password,
                        }
                    },
                },
                "scope": {"project": {"name": self.project, "domain": {"name": self.domain}}},
            }
        }
        try:
            resp = await self.http.post(
                self.auth_path + "/auth/tokens", params={"nocatalog": "1"}, json=body
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("The identity service cannot be reached.") from exc
        if resp.status_code != 201:
            raise ServiceUnavailable(
                f"The identity service refused the {self.username} service user "
                f"({resp.status_code})."
            )
        token = resp.headers["X-Subject-Token"]
        expires = datetime.fromisoformat(resp.json()["token"]["expires_at"])
        lifetime = (expires - datetime.now(timezone.utc)).total_seconds()
        margin = min(TOKEN_RENEW_MARGIN, lifetime / 2)
        return token, time.monotonic() + max(lifetime - margin, 0.0)


# -- unified limits ----------------------------------------------------------------------


class LimitsClient:
    """A project's effective unified limits, read from the identity service with
    the service's own token and cached for ``ttl`` seconds (quota checks sit on
    upload and create paths, so they must be cheap; a limit changed by an admin
    takes effect within ``ttl``)."""

    def __init__(self, session: ServiceSession, *, ttl: float = 10.0, size: int = 10000):
        self.session = session
        self.ttl = ttl
        self.size = size
        self._cache: dict[tuple[str, ...], tuple[float, Any]] = {}

    async def project_limits(
        self,
        project_id: str,
        service_type: str,
        resource_names: Sequence[str],
        region: str | None = None,
    ) -> dict[str, int | None]:
        """The limit on each resource for a project: the project's own limit if it
        has one, else the registered default; ``None`` means unlimited (nothing
        registered, or ``-1``). A limit for ``region`` wins over one without a
        region; with ``region`` None, one without a region wins over any other.

        Raises:
            ServiceUnavailable: the identity service cannot be asked.
        """
        service_ids = await self._cached(("services", service_type), self._service_ids,
                                         service_type)
        if not service_ids:
            return {name: None for name in resource_names}
        registered = await self._cached(
            ("registered", service_type), self._list, "registered_limits", service_ids, {}
        )
        own = await self._cached(
            ("limits", service_type, project_id), self._list, "limits", service_ids,
            {"project_id": project_id},
        )
        out: dict[str, int | None] = {}
        for name in resource_names:
            value = _pick(own, name, region, "resource_limit")
            if value is None:
                value = _pick(registered, name, region, "default_limit")
            out[name] = None if value is None or value < 0 else value
        return out

    def clear(self) -> None:
        self._cache.clear()

    async def _cached(
        self, key: tuple[str, ...], fetch: Callable[..., Awaitable[Any]], *args: Any
    ) -> Any:
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = await fetch(*args)
        if len(self._cache) >= self.size:
            self._cache.clear()
        self._cache[key] = (now, value)
        return value

    async def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """GET with the service token; one retry with a new token after a 401."""
        for retry in (False, True):
            headers = await self.session.headers()
            try:
                resp = await self.session.http.get(
                    self.session.auth_path + path, params=params, headers=headers
                )
            except httpx.HTTPError as exc:
                raise ServiceUnavailable("The identity service cannot be reached.") from exc
            if resp.status_code == 401 and not retry:
                self.session.invalidate()
                continue
            if resp.status_code != 200:
                raise ServiceUnavailable(
                    f"The identity service answered {resp.status_code} to GET {path}."
                )
            return resp.json()  # type: ignore[no-any-return]
        raise AssertionError("unreachable")

    async def _service_ids(self, service_type: str) -> list[str]:
        body = await self._get("/services", {"type": service_type})
        return [s["id"] for s in body.get("services", [])]

    async def _list(
        self, collection: str, service_ids: list[str], extra: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for service_id in service_ids:
            body = await self._get("/" + collection, {"service_id": service_id, **extra})
            items.extend(body.get(collection, []))
        return items


def _pick(items: list[dict[str, Any]], name: str, region: str | None, field_: str) -> int | None:
    """The value of the best-matching item for ``name``: same region, then no region
    (then, when no region was asked for, any region)."""
    matching = [i for i in items if i.get("resource_name") == name]
    order = [region, None] if region is not None else [None]
    for wanted in order:
        for item in matching:
            if item.get("region_id") == wanted and item.get(field_) is not None:
                return int(item[field_])
    if region is None:
        for item in matching:
            if item.get(field_) is not None:
                return int(item[field_])
    return None
