"""Users, groups, group membership and passwords, as Keystone's identity manager
handles them.

Passwords arrive here already hashed (the handlers hash outside the write
transaction, since Argon2 is slow by design); a user's newest ``Password`` row is
the current one. Whatever should end a user's existing tokens (disabling, a new
password, leaving a group) adds a revocation event, as Keystone does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import BadRequest, NotFound, Unauthorized
from onestack.identity.errors import conflict, not_found
from onestack.identity.models import (
    Assignment,
    Credential,
    Group,
    Membership,
    Password,
    Project,
    User,
    new_id,
)
from onestack.identity.schemas.resources import ListQuery, merge_options
from onestack.identity.schemas.users import expiry_filter
from onestack.identity.service.effective import group_ids
from onestack.identity.service.resources import (
    PROJECT_ASSIGNMENTS,
    find_project,
    get_domain,
    subtree,
)
from onestack.identity.service.tokens import revoke_user_tokens
from onestack.identity.state import IdentityState

# stored for a user whose password was set to null: no password verifies against it
NO_PASSWORD = ""
FEDERATED_FILTERS = ("idp_id", "protocol_id", "unique_id")


# -- look-ups ----------------------------------------------------------------------


async def get_user(session: AsyncSession, user_id: str) -> User:
    u = await session.get(User, user_id)
    if u is None or u.id != user_id:
        raise not_found("user", user_id)
    return u


async def get_group(session: AsyncSession, group_id: str) -> Group:
    g = await session.get(Group, group_id)
    if g is None or g.id != group_id:
        raise not_found("group", group_id)
    return g


async def password_expiries(session: AsyncSession, ids: list[str]) -> dict[str, datetime | None]:
    """Each user's current password expiry (``None``: never, or no password)."""
    out: dict[str, datetime | None] = dict.fromkeys(ids)
    if not ids:
        return out
    newest = (
        select(Password.user_id, func.max(Password.id).label("pid"))
        .where(Password.user_id.in_(ids)).group_by(Password.user_id).subquery()
    )
    rows = await session.execute(
        select(Password.user_id, Password.expires_at).join(newest, Password.id == newest.c.pid)
    )
    for uid, expires in rows:
        out[uid] = expires
    return out


async def _filter_users(
    session: AsyncSession, users: list[User], q: ListQuery
) -> tuple[list[User], dict[str, datetime | None]]:
    users = [u for u in users if q.matches(u, ("name",))]
    expiries = await password_expiries(session, [u.id for u in users])
    raw = q.get("password_expires_at")
    if raw is not None:
        keep = expiry_filter(raw)
        users = [u for u in users if keep(expiries[u.id])]
    return users, expiries


async def list_users(
    session: AsyncSession, q: ListQuery
) -> tuple[list[User], dict[str, datetime | None]]:
    """Users matching the query, with their password expiries. No user here is
    federated, so a filter on an identity provider finds none."""
    if any(q.get(k) is not None for k in FEDERATED_FILTERS):
        return [], {}
    stmt = q.apply(select(User).order_by(User.name), User, ("name", "domain_id"), ("enabled",))
    return await _filter_users(session, list(await session.scalars(stmt)), q)


async def group_members(
    session: AsyncSession, group_id: str, q: ListQuery
) -> tuple[list[User], dict[str, datetime | None]]:
    stmt = (
        select(User).join(Membership, Membership.user_id == User.id)
        .where(Membership.group_id == group_id).order_by(User.name)
    )
    stmt = q.apply(stmt, User, ("name", "domain_id"), ("enabled",))
    return await _filter_users(session, list(await session.scalars(stmt)), q)


async def list_groups(session: AsyncSession, q: ListQuery) -> list[Group]:
    stmt = q.apply(select(Group).order_by(Group.name), Group, ("name", "domain_id"))
    return [g for g in await session.scalars(stmt) if q.matches(g, ("name",))]


async def user_groups(session: AsyncSession, user_id: str, q: ListQuery) -> list[Group]:
    stmt = (
        select(Group).join(Membership, Membership.group_id == Group.id)
        .where(Membership.user_id == user_id).order_by(Group.name)
    )
    stmt = q.apply(stmt, Group, ("name", "domain_id"))
    return [g for g in await session.scalars(stmt) if q.matches(g, ("name",))]


# -- a user's projects --------------------------------------------------------------


async def user_projects(session: AsyncSession, user_id: str) -> list[Project]:
    """Projects the user holds a role on, directly, through a group, or
    inherited from a parent project or the domain (Keystone's effective
    assignments), as ``GET /v3/users/{id}/projects`` lists them."""
    actors = [user_id, *await group_ids(session, user_id)]
    rows = (await session.execute(
        select(Assignment.type, Assignment.target_id, Assignment.inherited).where(
            Assignment.actor_id.in_(actors),
            Assignment.type.in_(("UserProject", "GroupProject", "UserDomain", "GroupDomain")),
        )
    )).all()
    ids: set[str] = set()
    for kind, target, inherited in rows:
        if kind in PROJECT_ASSIGNMENTS and not inherited:
            ids.add(target)
            continue
        if not inherited:
            continue  # a plain domain role gives no project
        top = await find_project(session, target)
        if top is not None:
            ids.update(p.id for p in await subtree(session, top) if not p.is_domain)
    if not ids:
        return []
    found = await session.scalars(
        select(Project).where(Project.id.in_(ids), Project.is_domain.is_(False))
        .order_by(Project.name)
    )
    return list(found)


# -- users -------------------------------------------------------------------------


async def _check_default_project(session: AsyncSession, project_id: str | None) -> None:
    # a missing project is accepted, as in Keystone; a domain is not
    if project_id and (p := await find_project(session, project_id)) is not None and p.is_domain:
        raise BadRequest(f"User's default project ID cannot be a domain ID: {project_id}")


def _duplicate(kind: str, name: str, domain_id: str) -> Exception:
    return conflict(kind, f"Duplicate entry found with name {name} at domain ID {domain_id}")


async def _flush(session: AsyncSession, kind: str, name: str, domain_id: str) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise _duplicate(kind, name, domain_id) from None


async def _user_name_taken(session: AsyncSession, domain_id: str, name: str, own: str) -> bool:
    other = await session.scalar(
        select(User.id).where(User.domain_id == domain_id, User.name == name)
    )
    return other is not None and other != own


async def create_user(
    session: AsyncSession, fields: dict[str, Any], extra: dict[str, Any], pw_hash: str | None
) -> User:
    """A new user in an existing domain, with a first password if one was given.

    Raises:
        NotFound: the domain does not exist.
        BadRequest: the default project is a domain.
        Conflict: the name is taken in the domain.
    """
    domain = await get_domain(session, fields["domain_id"])
    await _check_default_project(session, fields.get("default_project_id"))
    name = fields["name"].strip()
    u = User(
        id=new_id(), name=name, domain_id=domain.id, enabled=fields.get("enabled", True),
        default_project_id=fields.get("default_project_id"),
        description=fields.get("description"),
        options=merge_options({}, fields.get("options")).get("options", {}), extra=extra,
    )
    if await _user_name_taken(session, domain.id, name, u.id):
        raise _duplicate("user", name, domain.id)
    session.add(u)
    await _flush(session, "user", name, domain.id)
    if pw_hash is not None:
        session.add(Password(user_id=u.id, hash=pw_hash))
        await session.flush()
    return u


async def update_user(
    session: AsyncSession, u: User, fields: dict[str, Any], extra: dict[str, Any],
    pw_hash: str | None,
) -> User:
    """Apply an update; a new password (``pw_hash``, given when ``fields`` names
    ``password``) or disabling the user ends the user's tokens.

    Raises:
        BadRequest: the id or domain would change, or the default project is a domain.
        Conflict: the new name is taken.
    """
    if fields.get("id") is not None and fields["id"] != u.id:
        raise BadRequest("Cannot change ID")
    if "domain_id" in fields and fields["domain_id"] != u.domain_id:
        raise BadRequest("Cannot change Domain ID")
    if "default_project_id" in fields:
        await _check_default_project(session, fields["default_project_id"])
        u.default_project_id = fields["default_project_id"]
    if "name" in fields and (name := fields["name"].strip()) != u.name:
        if await _user_name_taken(session, u.domain_id, name, u.id):
            raise _duplicate("user", name, u.domain_id)
        u.name = name
    if "description" in fields:
        u.description = fields["description"]
    revoke = False
    if "enabled" in fields:
        revoke = u.enabled and not fields["enabled"]
        u.enabled = fields["enabled"]
    if "options" in fields:
        u.options = merge_options({"options": u.options or {}}, fields["options"])["options"]
    if extra:
        u.extra = {**(u.extra or {}), **extra}
    await _flush(session, "user", u.name, u.domain_id)
    if "password" in fields:
        session.add(Password(user_id=u.id, hash=pw_hash if pw_hash is not None else NO_PASSWORD))
        revoke = revoke or pw_hash is not None
    if revoke:
        revoke_user_tokens(session, u.id)
    return u


async def purge_user(session: AsyncSession, user_id: str) -> None:
    """Delete a user and what refers to it (passwords, memberships and
    application credentials go with it through their foreign keys)."""
    await session.execute(delete(Assignment).where(
        Assignment.actor_id == user_id,
        Assignment.type.in_(("UserProject", "UserDomain", "UserSystem")),
    ))
    await session.execute(delete(Credential).where(Credential.user_id == user_id))
    await session.execute(delete(User).where(User.id == user_id))


async def change_password(st: IdentityState, user_id: str, original: str, new: str) -> None:
    """Self-service password change: the original password is the authorization.

    Raises:
        Unauthorized: unknown user, wrong original password, or a disabled user.
        BadRequest: the ``lock_password`` option forbids self-service changes.
    """
    failed = Unauthorized("Error when changing user password: Invalid user / password")
    async with st.read() as session:
        u = await session.get(User, user_id)
        stored = None if u is None else await session.scalar(
            select(Password.hash).where(Password.user_id == u.id)
            .order_by(Password.id.desc()).limit(1)
        )
    if u is None or stored is None:
        await st.hasher.dummy_verify()
        raise failed
    if not await st.hasher.verify(stored, original):
        raise failed
    if not u.enabled:
        raise Unauthorized(f"The account is disabled for user: {u.id}.")
    if (u.options or {}).get("lock_password") is True:
        raise BadRequest(
            "You cannot change your password at this time due to password policy "
            "disallowing password changes. Please contact your administrator to reset "
            "your password."
        )
    new_hash = await st.hasher.hash(new)
    async with st.write() as session:
        await get_user(session, user_id)
        session.add(Password(user_id=user_id, hash=new_hash, self_service=True))
        revoke_user_tokens(session, user_id)


# -- groups ------------------------------------------------------------------------


async def _group_name_taken(session: AsyncSession, domain_id: str, name: str, own: str) -> bool:
    other = await session.scalar(
        select(Group.id).where(Group.domain_id == domain_id, Group.name == name)
    )
    return other is not None and other != own


async def create_group(session: AsyncSession, fields: dict[str, Any], extra: dict[str, Any]) -> Group:
    """Raises NotFound (no such domain) or Conflict (name taken in the domain)."""
    domain = await get_domain(session, fields["domain_id"])
    name = fields["name"].strip()
    g = Group(id=new_id(), name=name, domain_id=domain.id,
              description=fields.get("description") or "", extra=extra)
    if await _group_name_taken(session, domain.id, name, g.id):
        raise _duplicate("group", name, domain.id)
    session.add(g)
    await _flush(session, "group", name, domain.id)
    return g


async def update_group(
    session: AsyncSession, g: Group, fields: dict[str, Any], extra: dict[str, Any]
) -> Group:
    if fields.get("id") is not None and fields["id"] != g.id:
        raise BadRequest("Cannot change ID")
    if "domain_id" in fields and fields["domain_id"] != g.domain_id:
        raise BadRequest("Cannot change Domain ID")
    if "name" in fields and (name := fields["name"].strip()) != g.name:
        if await _group_name_taken(session, g.domain_id, name, g.id):
            raise _duplicate("group", name, g.domain_id)
        g.name = name
    if "description" in fields:
        g.description = fields["description"]
    if extra:
        g.extra = {**(g.extra or {}), **extra}
    await _flush(session, "group", g.name, g.domain_id)
    return g


async def purge_group(session: AsyncSession, group_id: str) -> None:
    """Delete a group and its role assignments; if it had any, its members'
    tokens are revoked (as Keystone does)."""
    had_roles = await session.scalar(select(Assignment.role_id).where(
        Assignment.actor_id == group_id,
        Assignment.type.in_(("GroupProject", "GroupDomain", "GroupSystem")),
    ).limit(1))
    if had_roles is not None:
        for uid in list(await session.scalars(
            select(Membership.user_id).where(Membership.group_id == group_id)
        )):
            revoke_user_tokens(session, uid)
        await session.execute(delete(Assignment).where(
            Assignment.actor_id == group_id,
            Assignment.type.in_(("GroupProject", "GroupDomain", "GroupSystem")),
        ))
    await session.execute(delete(Group).where(Group.id == group_id))


async def _membership(session: AsyncSession, group_id: str, user_id: str) -> Membership | None:
    await get_group(session, group_id)
    await get_user(session, user_id)
    return await session.get(Membership, (user_id, group_id))


def _not_member(user_id: str, group_id: str) -> NotFound:
    return NotFound(f"User '{user_id}' not found in group '{group_id}'")


async def add_member(session: AsyncSession, group_id: str, user_id: str) -> None:
    """Idempotent; the user and the group may be in different domains."""
    if await _membership(session, group_id, user_id) is None:
        session.add(Membership(user_id=user_id, group_id=group_id))
        try:
            await session.flush()
        except IntegrityError:  # a concurrent request added it (or removed a side)
            raise conflict("membership", f"user {user_id} in group {group_id}") from None


async def check_member(session: AsyncSession, group_id: str, user_id: str) -> None:
    if await _membership(session, group_id, user_id) is None:
        raise _not_member(user_id, group_id)


async def remove_member(session: AsyncSession, group_id: str, user_id: str) -> None:
    m = await _membership(session, group_id, user_id)
    if m is None:
        raise _not_member(user_id, group_id)
    await session.delete(m)
    revoke_user_tokens(session, user_id)
