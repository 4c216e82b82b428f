"""Application credentials and their access rules.

An application credential belongs to a user and the project of the token that
created it; it carries a subset of that token's roles (all of them by default,
implied roles included) and a secret that is only ever shown on creation and
stored hashed like a password. Access rules (service, method, path) are the
user's own and shared by the credentials that name them. A token issued with a
restricted application credential may not create or delete other credentials.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.context import AuthInfo
from onestack.core.errors import BadRequest, Forbidden
from onestack.identity.errors import conflict, forbidden_action, not_found
from onestack.identity.models import (
    NULL_DOMAIN,
    AccessRule,
    ApplicationCredential,
    ApplicationCredentialAccessRule,
    ApplicationCredentialRole,
    Role,
)
from onestack.identity.schemas.credentials import AccessRuleIn, AppCredCreate, RoleRef
from onestack.identity.service import effective
from onestack.identity.state import IdentityState


def generate_secret() -> str:
    """64 random bytes, URL-safe base64 without padding (as Keystone makes them)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(64)).rstrip(b"=").decode()


def invalid(detail: str) -> BadRequest:
    return BadRequest(f"Invalid application credential: {detail}")


async def ensure_unrestricted(session: AsyncSession, auth: AuthInfo | None, what: str) -> None:
    """A token issued with a restricted application credential may not manage
    ``what`` (application credentials, EC2 credentials)."""
    if auth is None or not auth.app_cred_id:
        return
    ac = await session.get(ApplicationCredential, auth.app_cred_id)
    if ac is None or not ac.unrestricted:
        raise forbidden_action(
            f"Using method 'application_credential' is not allowed for managing "
            f"additional {what}."
        )


def parse_expiry(text: str) -> datetime:
    """An ISO 8601 time in the future (naive means UTC)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            "Timestamp not in expected format. The server could not comply with the "
            "request since it is either malformed or otherwise incorrect. The client is "
            "assumed to be in error."
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when <= datetime.now(UTC):
        raise BadRequest(
            "The 'expires_at' must not be before now. The server could not comply with "
            "the request since it is either malformed or otherwise incorrect. The client "
            "is assumed to be in error."
        )
    return when


async def _role(session: AsyncSession, ref: RoleRef) -> Role:
    if ref.id is not None:
        role = await session.get(Role, ref.id)
        if role is None:
            raise not_found("role", ref.id)
        return role
    named: Role | None = await session.scalar(
        select(Role).where(Role.name == ref.name, Role.domain_id == NULL_DOMAIN)
    )
    if named is None:
        raise not_found("role", str(ref.name))
    return named


async def _role_ids(session: AsyncSession, body: AppCredCreate, token_roles: set[str]) -> set[str]:
    if not body.roles:
        return set(token_roles)
    wanted = {(await _role(session, ref)).id for ref in body.roles}
    wanted = await effective.implied_closure(session, wanted)
    if not wanted <= token_roles:
        raise invalid("Cannot create an application credential with unassigned role")
    return wanted


async def _access_rule(session: AsyncSession, user_id: str, rule: AccessRuleIn) -> AccessRule:
    """The user's rule with this id or these attributes, or a new one."""
    if rule.id is not None:
        by_id: AccessRule | None = await session.scalar(
            select(AccessRule).where(AccessRule.id == rule.id, AccessRule.user_id == user_id)
        )
        if by_id is not None:
            return by_id
    if rule.service is None or rule.path is None or rule.method is None:
        raise invalid("an access rule needs a service, a method and a path")
    found: AccessRule | None = await session.scalar(
        select(AccessRule).where(
            AccessRule.user_id == user_id, AccessRule.service == rule.service,
            AccessRule.path == rule.path, AccessRule.method == rule.method,
        )
    )
    if found is not None:
        return found
    new = AccessRule(id=rule.id or uuid.uuid4().hex, user_id=user_id,
                     service=rule.service, path=rule.path, method=rule.method)
    session.add(new)
    await session.flush()
    return new


async def create(
    st: IdentityState, session: AsyncSession, user_id: str, auth: AuthInfo, body: AppCredCreate
) -> tuple[ApplicationCredential, str]:
    """A new application credential and its secret (the only time it is known).

    Raises:
        BadRequest: not project-scoped, a role the token lacks, a past expiry.
        NotFound: a named role does not exist.
        Conflict: the user already has a credential with this name.
    """
    if auth.project_id is None:
        raise invalid("an application credential is created with a project-scoped token")
    role_ids = await _role_ids(session, body, set(auth.role_ids))
    expires = parse_expiry(body.expires_at) if body.expires_at else None
    duplicate = await session.scalar(
        select(ApplicationCredential.id).where(
            ApplicationCredential.user_id == user_id, ApplicationCredential.name == body.name
        )
    )
    if duplicate is not None:
        raise conflict("application_credential", "Duplicate entry")
    secret = body.secret or generate_secret()
    ac = ApplicationCredential(
        id=uuid.uuid4().hex,
        name=body.name,
        secret_hash=await st.hasher.hash(secret),
        description=body.description,
        user_id=user_id,
        project_id=auth.project_id,
        expires_at=expires,
        unrestricted=bool(body.unrestricted),
    )
    session.add(ac)
    try:
        await session.flush()
        for rid in sorted(role_ids):
            session.add(ApplicationCredentialRole(application_credential_id=ac.id, role_id=rid))
        for rule_in in body.access_rules or []:
            rule = await _access_rule(session, user_id, rule_in)
            session.add(ApplicationCredentialAccessRule(
                application_credential_id=ac.id, access_rule_id=rule.id))
        await session.flush()
    except IntegrityError:
        raise conflict("application_credential", "Duplicate entry") from None
    return ac, secret


async def roles_of(session: AsyncSession, ac_id: str) -> list[Role]:
    ids = await session.scalars(
        select(ApplicationCredentialRole.role_id).where(
            ApplicationCredentialRole.application_credential_id == ac_id
        )
    )
    roles = await session.scalars(select(Role).where(Role.id.in_(list(ids))))
    return sorted(roles, key=lambda r: r.name)


async def rules_of(session: AsyncSession, ac_id: str) -> list[AccessRule]:
    rows = await session.scalars(
        select(AccessRule)
        .join(ApplicationCredentialAccessRule,
              ApplicationCredentialAccessRule.access_rule_id == AccessRule.id)
        .where(ApplicationCredentialAccessRule.application_credential_id == ac_id)
        .order_by(AccessRule.service, AccessRule.path, AccessRule.method)
    )
    return list(rows)


async def get(session: AsyncSession, ac_id: str, user_id: str | None = None) -> ApplicationCredential:
    ac = await session.get(ApplicationCredential, ac_id)
    if ac is None or (user_id is not None and ac.user_id != user_id):
        raise not_found("Application Credential", ac_id)
    return ac


async def get_rule(session: AsyncSession, user_id: str, rule_id: str) -> AccessRule:
    rule = await session.get(AccessRule, rule_id)
    if rule is None or rule.user_id != user_id:
        raise not_found("Access Rule", rule_id)
    return rule


async def delete_rule(session: AsyncSession, user_id: str, rule_id: str) -> None:
    rule = await get_rule(session, user_id, rule_id)
    used = await session.scalar(
        select(ApplicationCredentialAccessRule.application_credential_id)
        .where(ApplicationCredentialAccessRule.access_rule_id == rule.id).limit(1)
    )
    if used is not None:
        raise Forbidden("May not delete access rule in use")
    await session.delete(rule)
    await session.flush()
