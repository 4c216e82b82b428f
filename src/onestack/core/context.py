"""The request context: who is calling, in which scope, with which roles."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)


@dataclass(frozen=True)
class AuthInfo:
    """What a validated token says; produced by the identity service's validator."""

    token: str
    user_id: str
    user_name: str
    user_domain_id: str
    user_domain_name: str
    roles: tuple[str, ...] = ()
    role_ids: tuple[str, ...] = ()
    project_id: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    project_domain_name: str | None = None
    domain_id: str | None = None
    domain_name: str | None = None
    system_scope: str | None = None
    is_admin_project: bool = False
    expires_at: datetime | None = None
    audit_ids: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    app_cred_id: str | None = None


@dataclass
class RequestContext:
    """Per-request identity and scope; ``None`` auth means an anonymous caller."""

    request_id: str
    auth: AuthInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # policy_creds() of ``auth``: built once, as a listing checks policies per item
    _creds: tuple[AuthInfo | None, dict[str, Any]] | None = field(
        default=None, init=False, repr=False, compare=False)

    @property
    def user_id(self) -> str | None:
        return self.auth.user_id if self.auth else None

    @property
    def project_id(self) -> str | None:
        return self.auth.project_id if self.auth else None

    @property
    def roles(self) -> tuple[str, ...]:
        return self.auth.roles if self.auth else ()

    @property
    def is_system(self) -> bool:
        return bool(self.auth and self.auth.system_scope)

    def policy_creds(self) -> dict[str, Any]:
        """The credential dict the policy engine checks rules against.

        Built once per ``auth`` (the same dict is returned again until ``auth``
        changes): callers read it, never change it."""
        cached = self._creds
        if cached is not None and cached[0] is self.auth:
            return cached[1]
        creds = self._build_creds()
        self._creds = (self.auth, creds)
        return creds

    def _build_creds(self) -> dict[str, Any]:
        a = self.auth
        if a is None:
            return {"roles": [], "is_admin": False}
        return {
            "user_id": a.user_id,
            "user_domain_id": a.user_domain_id,
            "project_id": a.project_id,
            "project_domain_id": a.project_domain_id,
            "domain_id": a.domain_id,
            "system_scope": a.system_scope,
            "roles": list(a.roles),
            "is_admin": False,
            "is_admin_project": a.is_admin_project,
            # Keystone's rules also read the token's own scope this way
            "token": {
                "is_admin_project": a.is_admin_project,
                "project": {"id": a.project_id, "domain": {"id": a.project_domain_id}},
                "domain": {"id": a.domain_id},
                "user": {"id": a.user_id, "domain": {"id": a.user_domain_id}},
            },
        }
