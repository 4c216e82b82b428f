"""Authenticating a ``POST /v3/auth/tokens`` request: who, by which methods, and
for which scope. Every failure to identify the caller is the same ``AuthFailed``,
so a response never tells whether the user, the password or the domain was wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import BadRequest, Forbidden, Unauthorized
from onestack.identity.errors import AuthFailed, TokenNotFound
from onestack.identity.fernet import TokenPayload
from onestack.identity.models import ApplicationCredential, Password, Project, User
from onestack.identity.service import effective
from onestack.identity.service.tokens import TokenProvider
from onestack.identity.state import IdentityState, LazySession

SUPPORTED_METHODS = ("password", "token", "application_credential")


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid input for field '{where}': expected an object.")
    return value


async def _domain(session: AsyncSession, ref: Any, where: str) -> Project:
    ref = _obj(ref, where)
    if "id" in ref:
        dom = await session.get(Project, str(ref["id"]))
    elif "name" in ref:
        dom = await session.scalar(
            select(Project).where(Project.is_domain.is_(True), Project.name == str(ref["name"]))
        )
    else:
        raise BadRequest(f"Expecting to find id or name in {where}.")
    if dom is None or not dom.is_domain:
        raise AuthFailed()
    return dom


async def _user(session: AsyncSession, ref: dict[str, Any]) -> User:
    if "id" in ref:
        user = await session.get(User, str(ref["id"]))
    elif "name" in ref:
        if "domain" not in ref:
            raise BadRequest("Expecting to find domain in user.")
        dom = await _domain(session, ref["domain"], "user/domain")
        user = await session.scalar(
            select(User).where(User.domain_id == dom.id, User.name == str(ref["name"]))
        )
    else:
        raise BadRequest("Expecting to find id or name in user.")
    if user is None:
        raise AuthFailed()
    return user


async def _check_user_usable(session: AsyncSession, user: User) -> None:
    dom = await session.get(Project, user.domain_id)
    if not user.enabled or dom is None or not dom.enabled:
        raise AuthFailed()


@dataclass(frozen=True)
class _PasswordUser:
    user_id: str
    hash: str
    expires_at: datetime | None
    usable: bool


async def _password_user_lookup(session: AsyncSession, uref: dict[str, Any]) -> _PasswordUser:
    user = await _user(session, uref)
    stored = await session.scalar(
        select(Password).where(Password.user_id == user.id).order_by(Password.id.desc()).limit(1)
    )
    if stored is None:
        raise AuthFailed()
    dom = await session.get(Project, user.domain_id)
    usable = user.enabled and dom is not None and dom.enabled
    return _PasswordUser(user.id, stored.hash, stored.expires_at, usable)


async def password_user(st: IdentityState, session: LazySession, body: Any) -> str:
    """The id of the user that ``body`` (the ``password`` method) authenticates."""
    body = _obj(body, "password")
    uref = _obj(body.get("user"), "password/user")
    password = uref.get("password")
    if not isinstance(password, str):
        raise BadRequest("Expecting to find password in user.")
    key = ("password-user", json.dumps({k: v for k, v in uref.items() if k != "password"},
                                       sort_keys=True, default=str))
    found: _PasswordUser | None = st.lookups.get(key)
    if found is None:
        try:
            found = await _password_user_lookup(await session(), uref)
        except Unauthorized:
            await st.hasher.dummy_verify()
            raise
        st.lookups.put(key, found)
    if not await st.hasher.verify(found.hash, password):
        raise AuthFailed()
    if found.expires_at and found.expires_at <= datetime.now(timezone.utc):
        raise Unauthorized("The password is expired and needs to be changed.")
    if not found.usable:
        raise AuthFailed()
    return found.user_id


async def app_cred(
    st: IdentityState, lazy: LazySession, body: Any
) -> ApplicationCredential:
    body = _obj(body, "application_credential")
    session = await lazy()
    secret = body.get("secret")
    if not isinstance(secret, str):
        raise BadRequest("Expecting to find secret in application_credential.")
    if "id" in body:
        ac = await session.get(ApplicationCredential, str(body["id"]))
    elif "name" in body:
        user = await _user(session, _obj(body.get("user"), "application_credential/user"))
        ac = await session.scalar(
            select(ApplicationCredential).where(
                ApplicationCredential.user_id == user.id,
                ApplicationCredential.name == str(body["name"]),
            )
        )
    else:
        raise BadRequest("Expecting to find id or name in application_credential.")
    if ac is None:
        await st.hasher.dummy_verify()
        raise AuthFailed()
    if not await st.hasher.verify(ac.secret_hash, secret):
        raise AuthFailed()
    if ac.expires_at and ac.expires_at <= datetime.now(timezone.utc):
        raise AuthFailed()
    user = await session.get(User, ac.user_id)
    if user is None:
        raise AuthFailed()
    await _check_user_usable(session, user)
    return ac


async def _scope(
    session: AsyncSession, scope: Any
) -> tuple[str | None, str | None, str | None]:
    """(project_id, domain_id, system) named by ``auth.scope``."""
    if scope is None or scope == "unscoped":
        return None, None, None
    scope = _obj(scope, "scope")
    if "project" in scope:
        pref = _obj(scope["project"], "scope/project")
        if "id" in pref:
            project = await session.get(Project, str(pref["id"]))
        elif "name" in pref:
            if "domain" not in pref:
                raise BadRequest("Expecting to find domain in project.")
            dom = await _domain(session, pref["domain"], "scope/project/domain")
            project = await session.scalar(
                select(Project).where(
                    Project.domain_id == dom.id,
                    Project.name == str(pref["name"]),
                    Project.is_domain.is_(False),
                )
            )
        else:
            raise BadRequest("Expecting to find id or name in project.")
        if project is None or project.is_domain:
            raise AuthFailed()
        return project.id, None, None
    if "domain" in scope:
        return None, (await _domain(session, scope["domain"], "scope/domain")).id, None
    if "system" in scope:
        if _obj(scope["system"], "scope/system").get("all") is not True:
            raise BadRequest("Only system scope 'all' is supported.")
        return None, None, "all"
    if "OS-TRUST:trust" in scope:
        raise Forbidden("Trusts are not supported by this cloud.")
    raise BadRequest("Invalid scope: expected project, domain or system.")


async def authenticate(st: IdentityState, auth: Any) -> TokenPayload:
    """The payload of the token that ``auth`` (the body's ``auth`` object) earns.

    Raises:
        BadRequest: the body is malformed or names an unsupported method.
        Unauthorized: the credentials do not identify an enabled user.
    """
    auth = _obj(auth, "auth")
    ident = _obj(auth.get("identity"), "auth/identity")
    methods = ident.get("methods")
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise BadRequest("Expecting to find methods in identity.")
    for m in methods:
        if m not in SUPPORTED_METHODS:
            raise Unauthorized(f"Attempted to authenticate with an unsupported method: {m}.")
    provider: TokenProvider = st.tokens
    parent: TokenPayload | None = None
    async with st.lazy_read() as session:
        user_id: str | None = None
        ac: ApplicationCredential | None = None
        if "token" in methods:
            tok = _obj(ident.get("token"), "identity/token").get("id")
            if not isinstance(tok, str):
                raise BadRequest("Expecting to find id in token.")
            try:
                parent = (await provider.validate_data(tok)).payload
            except TokenNotFound:
                raise AuthFailed() from None
            if parent.app_cred_id:
                raise Forbidden("Using a token issued with an application credential to "
                                "get another token is not allowed.")
            user_id = parent.user_id
        if "password" in methods:
            pw_user_id = await password_user(st, session, ident.get("password"))
            if user_id is not None and user_id != pw_user_id:
                raise AuthFailed()
            user_id = pw_user_id
        if "application_credential" in methods:
            ac = await app_cred(st, session, ident.get("application_credential"))
            if user_id is not None and user_id != ac.user_id:
                raise AuthFailed()
            user_id = ac.user_id
        assert user_id is not None
        if ac is not None:
            if "scope" in auth:
                raise Forbidden("Application credentials cannot request a scope.")
            project_id, domain_id, system = ac.project_id, None, ac.system
        else:
            skey = ("scope-ref", json.dumps(auth.get("scope"), sort_keys=True, default=str))
            scoped = st.lookups.get(skey)
            if scoped is None:
                scoped = await _scope(await session(), auth.get("scope"))
                st.lookups.put(skey, scoped)
            project_id, domain_id, system = scoped
            if (
                "scope" not in auth
                and parent is None
                and (user := await (await session()).get(User, user_id)) is not None
                and user.default_project_id
            ):
                project_id = await _usable_default_project(await session(), user)
    if parent is not None:
        # Keystone carries the methods of the token being exchanged into the new one
        methods = [*methods, *(m for m in parent.methods if m not in methods)]
    return provider.new_payload(
        user_id,
        methods,
        provider.expiry(parent.expires_at if parent else None),
        parent_audit_ids=parent.audit_ids if parent else None,
        project_id=project_id,
        domain_id=domain_id,
        system=system,
        app_cred_id=ac.id if ac else None,
    )


async def _usable_default_project(session: AsyncSession, user: User) -> str | None:
    """Keystone scopes an unscoped request to the user's default project only when
    the project is enabled and the user has a role on it; otherwise unscoped."""
    project = await session.get(Project, user.default_project_id)
    if project is None or project.is_domain or not project.enabled:
        return None
    if not await effective.direct_role_ids(session, user.id, project=project):
        return None
    return project.id
