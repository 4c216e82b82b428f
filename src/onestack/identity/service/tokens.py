"""Issuing, validating and revoking tokens.

Tokens are Fernet tokens (``onestack.identity.fernet``): nothing is stored when
one is issued. Validating one decrypts it, then checks what Keystone checks: not
expired, not revoked (revocation events), the user, its domain and the scope
still exist and are enabled, and the user still holds a role on the scope. Roles
are computed at validation time, so removing an assignment takes effect at once.

Validation results are cached in-process and dropped whenever identity commits a
write (``IdentityState.generation``), so a token check on the hot path of every
API request costs a dictionary look-up.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.auth import TokenCache
from onestack.core.context import AuthInfo
from onestack.core.errors import Unauthorized
from onestack.identity.errors import AuthFailed, TokenNotFound
from onestack.identity.fernet import InvalidToken, TokenPayload, random_audit_id
from onestack.identity.models import (
    ApplicationCredential,
    ApplicationCredentialRole,
    Password,
    Project,
    RevocationEvent,
    Role,
    User,
)
from onestack.identity.service import effective
from onestack.identity.service.catalog import build_catalog, for_scope
from onestack.identity.state import IdentityState, LazySession

EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def isotime(value: datetime) -> str:
    return value.astimezone(UTC).strftime(EXPIRES_FORMAT)


@dataclass(frozen=True)
class TokenData:
    """A validated token with everything its response body shows."""

    token: str
    payload: TokenPayload
    issued_at: datetime
    user: dict[str, Any]
    roles: list[dict[str, str]]
    project: dict[str, Any] | None = None
    domain: dict[str, Any] | None = None
    app_cred: dict[str, Any] | None = None

    def body(self, catalog: list[dict[str, Any]] | None) -> dict[str, Any]:
        p = self.payload
        token: dict[str, Any] = {
            "methods": list(p.methods),
            "user": self.user,
            "audit_ids": list(p.audit_ids),
            "expires_at": isotime(p.expires_at),
            "issued_at": isotime(self.issued_at),
        }
        if self.project is not None:
            token["project"] = self.project
            token["is_domain"] = False
        if self.domain is not None:
            token["domain"] = self.domain
        if p.system:
            token["system"] = {"all": True}
        if p.project_id or p.domain_id or p.system:
            token["roles"] = self.roles
        if self.app_cred is not None:
            token["application_credential"] = self.app_cred
        if catalog is not None and (p.project_id or p.domain_id or p.system):
            # Keystone gives unscoped tokens no catalog
            token["catalog"] = for_scope(catalog, project_id=p.project_id, user_id=p.user_id)
        return {"token": token}

    @functools.cached_property
    def auth_info(self) -> AuthInfo:
        """What other services see of the token (computed once per cached token)."""
        p = self.payload
        project_domain = (self.project or {}).get("domain") or {}
        return AuthInfo(
            token=self.token,
            user_id=p.user_id,
            user_name=self.user["name"],
            user_domain_id=self.user["domain"]["id"],
            user_domain_name=self.user["domain"]["name"],
            roles=tuple(r["name"] for r in self.roles),
            role_ids=tuple(r["id"] for r in self.roles),
            project_id=p.project_id,
            project_name=(self.project or {}).get("name"),
            project_domain_id=project_domain.get("id"),
            project_domain_name=project_domain.get("name"),
            domain_id=p.domain_id,
            domain_name=(self.domain or {}).get("name"),
            system_scope=p.system,
            is_admin_project=True,
            expires_at=p.expires_at,
            audit_ids=tuple(p.audit_ids),
            methods=tuple(p.methods),
            app_cred_id=p.app_cred_id,
        )


@dataclass(frozen=True)
class _Scope:
    """The part of a token's data that depends on its user and scope, not on the
    token itself (so it is shared by every token for the same user and scope)."""

    user: dict[str, Any]
    roles: list[dict[str, str]]
    project: dict[str, Any] | None
    domain: dict[str, Any] | None
    app_cred: dict[str, Any] | None
    app_cred_expires: datetime | None


def _ref(obj_id: str, name: str) -> dict[str, str]:
    return {"id": obj_id, "name": name}


class TokenProvider:
    """Issues and validates tokens; also the ``TokenValidator`` other services use."""

    def __init__(self, st: IdentityState):
        self.st = st
        self._keys_mtime = self._keys_stamp()
        self._keys_checked = time.monotonic()
        self.data_cache: TokenCache[TokenData] = TokenCache(
            ttl=300.0, expires=lambda d: d.payload.expires_at
        )
        self._cache_generation = -1
        self._catalog: list[dict[str, Any]] | None = None
        self._catalog_generation = -1

    # -- keys ----------------------------------------------------------------

    def _keys_stamp(self) -> float:
        return os.stat(self.st.keys.path).st_mtime

    def _reload_if_rotated(self, *, force_check: bool = False) -> bool:
        """Pick up keys that ``onestack rotate-keys`` changed on disk (rotation
        renames files in the directory, which changes its mtime). Checked at most
        once a second, and whenever a token fails to decrypt."""
        now = time.monotonic()
        if not force_check and now - self._keys_checked < 1.0:
            return False
        self._keys_checked = now
        stamp = self._keys_stamp()
        if stamp == self._keys_mtime:
            return False
        self._keys_mtime = stamp
        self.st.formatter.reload()
        # a removed key must take its tokens with it
        self.data_cache.clear()
        return True

    # -- validation --------------------------------------------------------

    def _sync_cache(self) -> None:
        self._reload_if_rotated()
        if self._cache_generation != self.st.generation:
            self.data_cache.clear()
            self._cache_generation = self.st.generation

    async def validate(self, token: str, *, allow_expired: bool = False) -> AuthInfo:
        """``TokenValidator.validate``: what ``token`` says, or ``Unauthorized``."""
        try:
            data = await self.validate_data(token, allow_expired=allow_expired)
        except TokenNotFound:
            raise Unauthorized("The request you have made requires authentication.") from None
        return data.auth_info

    async def validate_data(self, token: str, *, allow_expired: bool = False) -> TokenData:
        """The full token data.

        Raises:
            TokenNotFound: the token is not valid, for whatever reason (the
                reason is deliberately not told).
        """
        self._sync_cache()
        if not allow_expired and (hit := self.data_cache.get(token)) is not None:
            return hit
        data = await self._validate_data(token, allow_expired=allow_expired)
        if not allow_expired:
            self.data_cache.put(token, data)
        return data

    async def _validate_data(self, token: str, *, allow_expired: bool) -> TokenData:
        try:
            payload = self.st.formatter.validate(token)
        except InvalidToken:
            if not self._reload_if_rotated(force_check=True):
                raise TokenNotFound() from None
            try:
                payload = self.st.formatter.validate(token)
            except InvalidToken:
                raise TokenNotFound() from None
        issued_at = self.st.formatter.creation_time(token)
        now = datetime.now(UTC)
        if payload.expires_at <= now:
            window = timedelta(seconds=self.st.settings.identity.allow_expired_window)
            if not allow_expired or payload.expires_at + window <= now:
                raise TokenNotFound()
        async with self.st.lazy_read() as session:
            if await self._revoked(await session(), payload, issued_at):
                raise TokenNotFound()
            try:
                return await self._build(session, token, payload, issued_at)
            except Unauthorized:
                raise TokenNotFound() from None

    async def _revoked(self, session: AsyncSession, p: TokenPayload, issued_at: datetime) -> bool:
        # Fernet timestamps have one-second resolution; Keystone compares at that
        # resolution too, so a token issued in the second of an event is revoked.
        issued = issued_at.replace(microsecond=0)
        conds = [RevocationEvent.user_id == p.user_id, RevocationEvent.audit_id.in_(p.audit_ids)]
        if p.audit_ids:
            conds.append(RevocationEvent.audit_chain_id == p.audit_ids[-1])
        if p.project_id:
            conds.append(RevocationEvent.project_id == p.project_id)
        rows = await session.scalars(select(RevocationEvent).where(or_(*conds)))
        for ev in rows:
            if ev.issued_before.replace(microsecond=0) < issued:
                continue
            if ev.audit_id and ev.audit_id not in p.audit_ids:
                continue
            if ev.audit_chain_id and (not p.audit_ids or ev.audit_chain_id != p.audit_ids[-1]):
                continue
            if ev.user_id and ev.user_id != p.user_id:
                continue
            if ev.project_id and ev.project_id != p.project_id:
                continue
            return True
        return False

    async def _build(
        self, session: LazySession, token: str, p: TokenPayload, issued_at: datetime
    ) -> TokenData:
        key = ("scope", p.user_id, p.project_id, p.domain_id, p.system, p.app_cred_id)
        scope: _Scope | None = self.st.lookups.get(key)
        if scope is None:
            scope = await self._scope(await session(), p)
            self.st.lookups.put(key, scope)
        if scope.app_cred_expires and scope.app_cred_expires <= datetime.now(UTC):
            raise AuthFailed()
        return TokenData(
            token=token,
            payload=p,
            issued_at=issued_at,
            user=scope.user,
            roles=scope.roles,
            project=scope.project,
            domain=scope.domain,
            app_cred=scope.app_cred,
        )

    async def _scope(self, session: AsyncSession, p: TokenPayload) -> _Scope:
        """What a token for ``p``'s user and scope carries now.

        Raises:
            AuthFailed: the user, its domain or the scope is gone or disabled,
                or the user holds no role on the scope.
        """
        user = await session.get(User, p.user_id)
        if user is None or not user.enabled:
            raise AuthFailed()
        user_domain = await session.get(Project, user.domain_id)
        if user_domain is None or not user_domain.enabled:
            raise AuthFailed()
        pw = await session.scalar(
            select(Password.expires_at)
            .where(Password.user_id == user.id)
            .order_by(Password.id.desc())
            .limit(1)
        )
        user_ref: dict[str, Any] = {
            "domain": _ref(user_domain.id, user_domain.name),
            "id": user.id,
            "name": user.name,
            "password_expires_at": isotime(pw) if pw else None,
        }
        project_ref = domain_ref = app_ref = None
        app_expires = None
        roles: list[Role] = []
        if p.project_id:
            project = await session.get(Project, p.project_id)
            if project is None or project.is_domain or not project.enabled:
                raise AuthFailed()
            pdomain = await session.get(Project, project.domain_id)
            if pdomain is None or not pdomain.enabled:
                raise AuthFailed()
            project_ref = {"domain": _ref(pdomain.id, pdomain.name), **_ref(project.id, project.name)}
            roles = await effective.token_roles(session, user.id, project=project)
        elif p.domain_id:
            domain = await session.get(Project, p.domain_id)
            if domain is None or not domain.is_domain or not domain.enabled:
                raise AuthFailed()
            domain_ref = _ref(domain.id, domain.name)
            roles = await effective.token_roles(session, user.id, domain_id=domain.id)
        elif p.system:
            roles = await effective.token_roles(session, user.id, system=True)
        if p.app_cred_id:
            ac = await session.get(ApplicationCredential, p.app_cred_id)
            if ac is None:
                raise AuthFailed()
            allowed = set(
                await session.scalars(
                    select(ApplicationCredentialRole.role_id).where(
                        ApplicationCredentialRole.application_credential_id == ac.id
                    )
                )
            )
            implied = await effective.implied_closure(session, allowed)
            roles = [r for r in roles if r.id in implied]
            app_ref = {"id": ac.id, "name": ac.name, "restricted": not ac.unrestricted}
            app_expires = ac.expires_at
        if (p.project_id or p.domain_id or p.system) and not roles:
            raise AuthFailed()
        return _Scope(
            user=user_ref,
            roles=[_ref(r.id, r.name) for r in roles],
            project=project_ref,
            domain=domain_ref,
            app_cred=app_ref,
            app_cred_expires=app_expires,
        )

    # -- issuing -----------------------------------------------------------

    async def catalog(self) -> list[dict[str, Any]]:
        if self._catalog is None or self._catalog_generation != self.st.generation:
            generation = self.st.generation
            async with self.st.read() as session:
                self._catalog = await build_catalog(session)
            self._catalog_generation = generation
        return self._catalog

    async def issue(self, payload: TokenPayload) -> TokenData:
        """Make a token for ``payload`` and check it as validation would: a scope
        the user holds no role on is refused here rather than on first use."""
        self._reload_if_rotated()
        token = self.st.formatter.create(payload)
        issued_at = self.st.formatter.creation_time(token)
        async with self.st.lazy_read() as session:
            return await self._build(session, token, payload, issued_at)

    def expiry(self, parent: datetime | None = None) -> datetime:
        # whole seconds, as Keystone issues them
        exp = datetime.now(UTC).replace(microsecond=0) + timedelta(
            seconds=self.st.settings.identity.token_expiration
        )
        return min(exp, parent) if parent else exp

    async def revoke(self, data: TokenData) -> None:
        """Revoke one token (by its audit id): ``DELETE /v3/auth/tokens``."""
        async with self.st.write() as session:
            session.add(
                RevocationEvent(
                    audit_id=data.payload.audit_ids[0],
                    issued_before=datetime.now(UTC),
                    expires_at=data.payload.expires_at,
                )
            )

    @staticmethod
    def new_payload(
        user_id: str,
        methods: list[str],
        expires_at: datetime,
        *,
        parent_audit_ids: list[str] | None = None,
        project_id: str | None = None,
        domain_id: str | None = None,
        system: str | None = None,
        app_cred_id: str | None = None,
    ) -> TokenPayload:
        audit = [random_audit_id()]
        if parent_audit_ids:
            audit.append(parent_audit_ids[-1])
        return TokenPayload(
            user_id=user_id,
            methods=methods,
            expires_at=expires_at,
            audit_ids=audit,
            project_id=project_id,
            domain_id=domain_id,
            system=system,
            app_cred_id=app_cred_id,
        )


def revoke_user_tokens(session: AsyncSession, user_id: str) -> None:
    """Add the event that revokes every token the user holds now (password change,
    disabling)."""
    session.add(RevocationEvent(user_id=user_id, issued_before=datetime.now(UTC)))
