"""Validating tokens over the Identity API v3 (for services on another host)."""

from __future__ import annotations

from datetime import datetime

import httpx

from onestack.core.auth import TokenCache
from onestack.core.context import AuthInfo
from onestack.core.errors import ServiceUnavailable, Unauthorized


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
