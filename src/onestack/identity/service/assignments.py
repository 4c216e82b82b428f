"""Grants (role assignments on projects, domains and the system) and the
``/v3/role_assignments`` listing, in Keystone's direct and effective modes.

Effective mode answers "what does each user actually hold": group assignments
become one assignment per member (remembering the group), inherited ones
become assignments on each project below their target (remembering where they
came from), implied roles are added (remembering the prior role), and
domain-specific roles are dropped, as they never reach a token.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import BadRequest, Forbidden, NotFound
from onestack.identity.errors import conflict, not_found
from onestack.identity.models import (
    NULL_DOMAIN,
    Assignment,
    Group,
    ImpliedRole,
    Membership,
    Project,
    Role,
    User,
)
from onestack.identity.service import effective

ActorKind = Literal["user", "group"]
TargetKind = Literal["project", "domain", "system"]
SYSTEM = "system"
_TYPES = {
    ("user", "project"): "UserProject",
    ("group", "project"): "GroupProject",
    ("user", "domain"): "UserDomain",
    ("group", "domain"): "GroupDomain",
    ("user", "system"): "UserSystem",
    ("group", "system"): "GroupSystem",
}


def assignment_type(actor: ActorKind, target: TargetKind) -> str:
    return _TYPES[(actor, target)]


def _types(*, actor: ActorKind | None = None, target: TargetKind | None = None) -> list[str]:
    return [t for (a, g), t in _TYPES.items() if actor in (None, a) and target in (None, g)]


# -- lookups ---------------------------------------------------------------------


async def get_actor(session: AsyncSession, kind: ActorKind, actor_id: str) -> User | Group:
    obj = await session.get(User if kind == "user" else Group, actor_id)
    if obj is None:
        raise not_found(kind, actor_id)
    return obj


async def find_actor(session: AsyncSession, kind: ActorKind, actor_id: str) -> User | Group | None:
    return await session.get(User if kind == "user" else Group, actor_id)


async def get_target(session: AsyncSession, kind: TargetKind, target_id: str) -> Project | None:
    """The project or domain (``None`` for the system); ``NotFound`` if missing."""
    if kind == "system":
        return None
    obj = await session.get(Project, target_id)
    if obj is None or obj.is_domain != (kind == "domain"):
        raise not_found(kind, target_id)
    return obj


async def descendants(session: AsyncSession, project_id: str) -> list[str]:
    """Ids of every project below ``project_id`` (not itself)."""
    out: list[str] = []
    frontier = [project_id]
    while frontier:
        rows = await session.scalars(
            select(Project.id).where(Project.parent_id.in_(frontier), Project.is_domain.is_(False))
        )
        frontier = [r for r in rows if r not in out]
        out += frontier
    return out


async def projects_in_domain(session: AsyncSession, domain_id: str) -> list[str]:
    rows = await session.scalars(
        select(Project.id).where(Project.domain_id == domain_id, Project.is_domain.is_(False))
    )
    return list(rows)


# -- grants ------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """One grant, as the grant URLs name it."""

    role_id: str
    actor: ActorKind
    actor_id: str
    target: TargetKind
    target_id: str
    inherited: bool = False

    def where(self) -> tuple[object, ...]:
        return (
            Assignment.type == assignment_type(self.actor, self.target),
            Assignment.actor_id == self.actor_id,
            Assignment.target_id == self.target_id,
            Assignment.role_id == self.role_id,
            Assignment.inherited.is_(self.inherited),
        )


async def create_grant(session: AsyncSession, role: Role, g: Grant, target: Project | None) -> None:
    """Grant ``role``; granting what is already granted is not an error.

    Raises:
        Forbidden: a domain-specific role on a project of another domain.
        BadRequest: a domain-specific role on the system.
    """
    domain_role = role.domain_id != NULL_DOMAIN
    if g.target == "system" and domain_role:
        raise BadRequest(
            f"Role {role.id} is a domain-specific role. Unable to use a domain-specific "
            "role in a system assignment."
        )
    if g.target == "project" and domain_role and target and target.domain_id != role.domain_id:
        raise Forbidden(
            f"Project {target.id} must be in the same domain as the role {role.id} being assigned."
        )
    if await session.scalar(select(Assignment).where(*g.where())) is not None:
        return
    session.add(
        Assignment(
            type=assignment_type(g.actor, g.target),
            actor_id=g.actor_id,
            target_id=g.target_id,
            role_id=g.role_id,
            inherited=g.inherited,
        )
    )
    try:
        await session.flush()
    except IntegrityError:  # an identical grant committed meanwhile
        raise conflict("role grant", "Duplicate entry") from None


async def check_grant(session: AsyncSession, g: Grant) -> Assignment:
    """The assignment, or Keystone's ``RoleAssignmentNotFound`` (404)."""
    found = await session.scalar(select(Assignment).where(*g.where()))
    if found is None:
        raise NotFound(
            f"Could not find role assignment with role: {g.role_id}, user or group: "
            f"{g.actor_id}, project, domain, or system: {g.target_id}."
        )
    return found


async def delete_grant(session: AsyncSession, g: Grant) -> None:
    """Revoke; tokens lose the role at once since validation recomputes roles."""
    await session.delete(await check_grant(session, g))


async def list_grants(
    session: AsyncSession,
    actor: ActorKind,
    actor_id: str,
    target: TargetKind,
    target_id: str,
    inherited: bool,
) -> list[Role]:
    """The roles granted directly to the actor on the target."""
    rows = await session.scalars(
        select(Role)
        .join(Assignment, Assignment.role_id == Role.id)
        .where(
            Assignment.type == assignment_type(actor, target),
            Assignment.actor_id == actor_id,
            Assignment.target_id == target_id,
            Assignment.inherited.is_(inherited),
        )
        .order_by(Role.name, Role.id)
    )
    return list(rows)


# -- listing -------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """The filters of ``GET /v3/role_assignments``."""

    user_id: str | None = None
    group_id: str | None = None
    role_id: str | None = None
    project_id: str | None = None
    domain_id: str | None = None
    system: bool = False
    inherited: bool | None = None  # None: both
    effective: bool = False
    include_subtree: bool = False


@dataclass(frozen=True)
class Ref:
    """One (possibly derived) assignment, like Keystone's assignment dicts."""

    role_id: str
    user_id: str | None = None
    group_id: str | None = None
    project_id: str | None = None
    domain_id: str | None = None
    system: bool = False
    inherited: bool = False
    via_group: str | None = None  # effective: granted to this group
    via_project: str | None = None  # effective: inherited from this project
    via_domain: str | None = None  # effective: inherited from this domain
    prior_role: str | None = None  # effective: implied by this role


def _ref(a: Assignment) -> Ref:
    actor = {"user_id" if a.type.startswith("User") else "group_id": a.actor_id}
    if a.type.endswith("Project"):
        return Ref(a.role_id, project_id=a.target_id, inherited=a.inherited, **actor)
    if a.type.endswith("Domain"):
        return Ref(a.role_id, domain_id=a.target_id, inherited=a.inherited, **actor)
    return Ref(a.role_id, system=True, **actor)


async def list_assignments(session: AsyncSession, q: Query) -> list[Ref]:
    """Role assignments matching ``q``.

    Raises:
        NotFound: ``effective`` or ``include_subtree`` with an unknown project.
    """
    if q.effective:
        return await _effective(session, q)
    stmt = select(Assignment)
    actor: ActorKind | None = "user" if q.user_id else "group" if q.group_id else None
    if actor:
        stmt = stmt.where(Assignment.actor_id == (q.user_id or q.group_id))
    target: TargetKind | None = None
    if q.project_id:
        target = "project"
        ids = [q.project_id]
        if q.include_subtree:
            await get_target(session, "project", q.project_id)
            ids += await descendants(session, q.project_id)
        stmt = stmt.where(Assignment.target_id.in_(ids))
    elif q.domain_id:
        target = "domain"
        stmt = stmt.where(Assignment.target_id == q.domain_id)
    elif q.system:
        target = "system"
    stmt = stmt.where(Assignment.type.in_(_types(actor=actor, target=target)))
    if q.role_id:
        stmt = stmt.where(Assignment.role_id == q.role_id)
    if q.inherited is not None:
        stmt = stmt.where(Assignment.inherited.is_(q.inherited))
    return [_ref(a) for a in await session.scalars(stmt)]


async def _effective(session: AsyncSession, q: Query) -> list[Ref]:
    inherited = False if q.domain_id else q.inherited
    project = await get_target(session, "project", q.project_id) if q.project_id else None
    scope: list[str] = []  # the projects of interest, when filtering on a project
    if project is not None:
        scope = [project.id] + (await descendants(session, project.id) if q.include_subtree else [])
    direct = []  # conditions for non-inherited assignments
    inheriting = []  # conditions for inherited ones
    if project is not None:
        direct.append(
            Assignment.target_id.in_(scope) & Assignment.type.in_(_types(target="project"))
        )
        sources = [p.id for p in await effective.ancestors(session, project)]
        if q.include_subtree:
            sources += scope
        inheriting.append(
            Assignment.target_id.in_(sources) & Assignment.type.in_(_types(target="project"))
        )
        inheriting.append(
            (Assignment.target_id == project.domain_id)
            & Assignment.type.in_(_types(target="domain"))
        )
    elif q.domain_id:
        direct.append(
            (Assignment.target_id == q.domain_id) & Assignment.type.in_(_types(target="domain"))
        )
    elif q.system:
        direct.append(Assignment.type.in_(_types(target="system")))
    else:
        direct.append(Assignment.type.isnot(None))
        inheriting.append(Assignment.type.isnot(None))
    conds = []
    if inherited in (None, False) and direct:
        conds.append(and_(Assignment.inherited.is_(False), or_(*direct)))
    if inherited in (None, True) and inheriting:
        conds.append(and_(Assignment.inherited.is_(True), or_(*inheriting)))
    if not conds:
        return []
    stmt = select(Assignment).where(or_(*conds))
    if q.user_id:
        actors = [q.user_id, *await effective.group_ids(session, q.user_id)]
        stmt = stmt.where(Assignment.actor_id.in_(actors))
    refs: list[Ref] = []
    for a in await session.scalars(stmt):
        refs += await _expand(session, _ref(a), q, scope)
    refs = await _add_implied(session, refs)
    global_roles = set(await session.scalars(select(Role.id).where(Role.domain_id == NULL_DOMAIN)))
    return [r for r in refs if r.role_id in global_roles and q.role_id in (None, r.role_id)]


async def _expand(session: AsyncSession, ref: Ref, q: Query, scope: list[str]) -> list[Ref]:
    """A group assignment becomes one per member; an inherited one, one per project
    it applies to."""
    refs = [ref]
    if ref.inherited:
        source = ref.project_id or ref.domain_id or ""
        if scope:
            targets = scope
            if ref.project_id and ref.project_id in scope:
                targets = await descendants(session, ref.project_id)
        elif ref.domain_id:
            targets = await projects_in_domain(session, ref.domain_id)
        else:
            targets = await descendants(session, source)
        via = {"via_project": ref.project_id} if ref.project_id else {"via_domain": ref.domain_id}
        refs = [replace(ref, project_id=p, domain_id=None, inherited=False, **via) for p in targets]
    if ref.group_id:
        if q.user_id:
            members = [q.user_id]
        else:
            members = list(
                await session.scalars(
                    select(Membership.user_id).where(Membership.group_id == ref.group_id)
                )
            )
        refs = [
            replace(r, user_id=m, group_id=None, via_group=ref.group_id)
            for m in members
            for r in refs
        ]
    return refs


async def _add_implied(session: AsyncSession, refs: Iterable[Ref]) -> list[Ref]:
    """Each ref plus a copy for every role its role implies, transitively (a
    cycle of rules is walked once)."""
    implies: dict[str, list[str]] = {}
    for rule in await session.scalars(select(ImpliedRole)):
        implies.setdefault(rule.prior_role_id, []).append(rule.implied_role_id)
    result = list(refs)
    todo = list(result)
    checked: set[Ref] = set()
    while todo:
        ref = todo.pop()
        checked.add(ref)
        for implied in implies.get(ref.role_id, []):
            new = replace(ref, role_id=implied, prior_role=ref.role_id)
            if new not in checked:
                result.append(new)
                todo.append(new)
    return result
