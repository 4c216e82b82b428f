"""Effective roles: what a user holds on a project, a domain or the system.

Keystone's rules, which tokens and ``role_assignments?effective`` share:
- a project's roles come from assignments to the user and to the user's groups
  on the project itself, plus *inherited* assignments on any of its ancestor
  projects and on its domain;
- a domain's roles come from the non-inherited user and group assignments on it;
- implied roles are expanded transitively (admin implies manager implies member
  implies reader);
- domain-specific roles are never put in a token themselves, only what they imply.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.identity.models import NULL_DOMAIN, Assignment, ImpliedRole, Membership, Project, Role


async def group_ids(session: AsyncSession, user_id: str) -> list[str]:
    rows = await session.scalars(select(Membership.group_id).where(Membership.user_id == user_id))
    return list(rows)


async def ancestors(session: AsyncSession, project: Project) -> list[Project]:
    """The project's parents up to (not including) its domain, nearest first."""
    out: list[Project] = []
    parent_id = project.parent_id
    while parent_id and parent_id != project.domain_id:
        parent = await session.get(Project, parent_id)
        if parent is None or parent.is_domain:
            break
        out.append(parent)
        parent_id = parent.parent_id
    return out


async def implied_closure(session: AsyncSession, role_ids: Iterable[str]) -> set[str]:
    """``role_ids`` plus every role they imply, transitively."""
    result = set(role_ids)
    frontier = set(result)
    while frontier:
        rows = await session.scalars(
            select(ImpliedRole.implied_role_id).where(ImpliedRole.prior_role_id.in_(frontier))
        )
        frontier = set(rows) - result
        result |= frontier
    return result


async def direct_role_ids(
    session: AsyncSession,
    user_id: str,
    *,
    project: Project | None = None,
    domain_id: str | None = None,
    system: bool = False,
) -> set[str]:
    """Role ids assigned (directly or through groups or inheritance) for one scope,
    before implied roles are expanded."""
    actors = [user_id, *await group_ids(session, user_id)]
    conditions = []
    if project is not None:
        conditions.append(
            (Assignment.target_id == project.id) & (Assignment.inherited.is_(False))
            & Assignment.type.in_(("UserProject", "GroupProject"))
        )
        inherited_targets = [p.id for p in await ancestors(session, project)]
        conditions.append(
            Assignment.target_id.in_(inherited_targets) & Assignment.inherited.is_(True)
            & Assignment.type.in_(("UserProject", "GroupProject"))
        )
        conditions.append(
            (Assignment.target_id == project.domain_id) & Assignment.inherited.is_(True)
            & Assignment.type.in_(("UserDomain", "GroupDomain"))
        )
    elif domain_id is not None:
        conditions.append(
            (Assignment.target_id == domain_id) & Assignment.inherited.is_(False)
            & Assignment.type.in_(("UserDomain", "GroupDomain"))
        )
    elif system:
        conditions.append(
            (Assignment.target_id == "system") & Assignment.type.in_(("UserSystem", "GroupSystem"))
        )
    else:
        return set()
    rows = await session.scalars(
        select(Assignment.role_id).where(Assignment.actor_id.in_(actors), or_(*conditions))
    )
    return set(rows)


async def token_roles(
    session: AsyncSession,
    user_id: str,
    *,
    project: Project | None = None,
    domain_id: str | None = None,
    system: bool = False,
) -> list[Role]:
    """The roles a token for this scope carries, sorted by name."""
    direct = await direct_role_ids(
        session, user_id, project=project, domain_id=domain_id, system=system
    )
    if not direct:
        return []
    ids = await implied_closure(session, direct)
    roles = await session.scalars(select(Role).where(Role.id.in_(ids)))
    return sorted((r for r in roles if r.domain_id == NULL_DOMAIN), key=lambda r: r.name)
