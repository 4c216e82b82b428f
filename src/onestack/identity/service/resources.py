"""Domains and projects, as Keystone's resource manager handles them.

A domain is a project with ``is_domain`` set and ``domain_id`` = ``ROOT_DOMAIN``;
a top-level project's ``parent_id`` is its domain. Rules enforced here: a project's
parent is in its own domain, the hierarchy is at most ``MAX_PROJECT_TREE_DEPTH``
projects deep below the domain, ``parent_id``/``is_domain``/``domain_id`` never
change, a project is disabled only after its subtree, deleted only as a leaf, and
a domain is deleted only when disabled (taking its projects, users, groups and
domain-specific roles with it). Every function works inside the caller's
transaction, so a request either does all of it or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import BadRequest, Forbidden
from onestack.identity.errors import conflict, not_found
from onestack.identity.models import (
    ROOT_DOMAIN,
    ApplicationCredential,
    Assignment,
    Credential,
    Group,
    Limit,
    Project,
    ProjectTag,
    Role,
    User,
    new_id,
)
from onestack.identity.schemas.resources import ListQuery, merge_options, tag_filter

MAX_PROJECT_TREE_DEPTH = 5
PROJECT_ASSIGNMENTS = ("UserProject", "GroupProject")


@dataclass
class ProjectSpec:
    """What a create or update request asks for; ``fields`` holds only the
    attributes the request named (so an update can tell absent from null)."""

    fields: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


# -- look-ups -------------------------------------------------------------------


async def find_project(session: AsyncSession, project_id: str) -> Project | None:
    p = await session.get(Project, project_id)
    # a case-insensitive collation must not make "DEFAULT" find "default"
    return p if p is not None and p.id == project_id else None


async def get_project(session: AsyncSession, project_id: str) -> Project:
    p = await find_project(session, project_id)
    if p is None:
        raise not_found("project", project_id)
    return p


async def find_domain(session: AsyncSession, domain_id: str) -> Project | None:
    d = await find_project(session, domain_id)
    return d if d is not None and d.is_domain else None


async def get_domain(session: AsyncSession, domain_id: str) -> Project:
    d = await find_domain(session, domain_id)
    if d is None:
        raise not_found("domain", domain_id)
    return d


def domain_of(p: Project) -> str:
    """The domain a project belongs to (a domain is its own)."""
    return p.id if p.is_domain else p.domain_id


async def tags_of(session: AsyncSession, ids: Iterable[str]) -> dict[str, list[str]]:
    wanted = list(ids)
    out: dict[str, list[str]] = {i: [] for i in wanted}
    if not wanted:
        return out
    rows = await session.execute(
        select(ProjectTag.project_id, ProjectTag.name).where(ProjectTag.project_id.in_(wanted))
    )
    for pid, name in rows:
        out[pid].append(name)
    return out


async def lineage(session: AsyncSession, p: Project) -> list[Project]:
    """The project's parents, nearest first, up to and including its domain."""
    out: list[Project] = []
    seen = {p.id}
    parent_id = p.parent_id
    while parent_id and parent_id not in seen:
        parent = await session.get(Project, parent_id)
        if parent is None:
            break
        out.append(parent)
        seen.add(parent.id)
        parent_id = parent.parent_id
    return out


async def subtree(session: AsyncSession, p: Project) -> list[Project]:
    """Every project below ``p`` (breadth first; for a domain: all its projects)."""
    out: list[Project] = []
    frontier = [p.id]
    seen = {p.id}
    while frontier:
        children = list(await session.scalars(
            select(Project).where(Project.parent_id.in_(frontier)).order_by(Project.name)
        ))
        children = [c for c in children if c.id not in seen]
        seen.update(c.id for c in children)
        out.extend(children)
        frontier = [c.id for c in children]
    return out


# -- listing ---------------------------------------------------------------------


async def list_projects(
    session: AsyncSession, q: ListQuery, params: dict[str, str]
) -> tuple[list[Project], dict[str, list[str]]]:
    """Projects matching the query (``is_domain`` defaults to false, so domains
    show only when asked for), with their tags."""
    stmt = select(Project).order_by(Project.name)
    is_domain = q.flag("is_domain")
    stmt = stmt.where(Project.is_domain.is_(bool(is_domain)))
    stmt = q.apply(stmt, Project, ("name", "domain_id", "parent_id"), ("enabled",))
    found = [p for p in await session.scalars(stmt) if q.matches(p, ("name",))]
    tags = await tags_of(session, (p.id for p in found))
    keep = tag_filter(params)
    found = [p for p in found if keep(tags[p.id])]
    return found, tags


async def list_domains(
    session: AsyncSession, q: ListQuery
) -> tuple[list[Project], dict[str, list[str]]]:
    stmt = select(Project).where(Project.is_domain.is_(True)).order_by(Project.name)
    stmt = q.apply(stmt, Project, ("name",), ("enabled",))
    found = [d for d in await session.scalars(stmt) if q.matches(d, ("name",))]
    return found, await tags_of(session, (d.id for d in found))


# -- tags and the immutable option ---------------------------------------------------------------


async def set_tags(session: AsyncSession, p: Project, tags: list[str]) -> list[str]:
    clean = list(dict.fromkeys(t.strip() for t in tags))
    await session.execute(delete(ProjectTag).where(ProjectTag.project_id == p.id))
    session.add_all(ProjectTag(project_id=p.id, name=t) for t in clean)
    return clean


def is_immutable(p: Project) -> bool:
    return bool((p.extra or {}).get("options", {}).get("immutable"))


def _immutable(p: Project, verb: str) -> Forbidden:
    kind = "domain" if p.is_domain else "project"
    return Forbidden(f"Unable to {verb} immutable {kind} resource: `{p.id}`. "
                     'Set resource option "immutable" to false first.')


def _check_immutable_update(p: Project, spec: ProjectSpec) -> None:
    """An immutable resource accepts one change only: clearing ``immutable``."""
    if not is_immutable(p):
        return
    opts = spec.fields.get("options") or {}
    names = set(spec.fields) | set(spec.extra)
    if names != {"options"} or len(opts) != 1 or opts.get("immutable", True) not in (False, None):
        raise _immutable(p, "update")


async def _flush(session: AsyncSession, p: Project) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise _name_conflict(p) from None


def _name_conflict(p: Project) -> Exception:
    if p.is_domain:
        return conflict(
            "project",
            f"it is not permitted to have two projects acting as domains with the same name: {p.name}",
        )
    return conflict(
        "project",
        "it is not permitted to have two projects with either the same name or same id "
        f"in the same domain: name is {p.name}, project id {p.id}",
    )


async def _name_taken(session: AsyncSession, domain_id: str, name: str, own_id: str) -> bool:
    other = await session.scalar(
        select(Project.id).where(Project.domain_id == domain_id, Project.name == name)
    )
    return other is not None and other != own_id


# -- create -----------------------------------------------------------------------


async def create_project(session: AsyncSession, spec: ProjectSpec, default_domain: str) -> Project:
    """A new project, or a domain when ``is_domain`` is set.

    Raises:
        BadRequest: the domain or parent does not exist or disagree, or a parent
            is disabled.
        Forbidden: the hierarchy would get too deep.
        Conflict: the name is taken in the domain.
    """
    f = spec.fields
    name = str(f["name"]).strip()
    p = Project(
        id=f.get("id") or new_id(), name=name, description=f.get("description"),
        enabled=f.get("enabled", True), is_domain=bool(f.get("is_domain")), extra={},
    )
    if p.is_domain:
        if f.get("parent_id"):
            raise BadRequest("only root projects are allowed to act as domains.")
        if f.get("domain_id"):
            raise BadRequest("The domain_id of a project acting as a domain must not be set.")
        p.domain_id, p.parent_id = ROOT_DOMAIN, None
        if await find_project(session, p.id) is not None:
            raise conflict("project", f"Duplicate ID, {p.id}.")
    else:
        await _place(session, p, f.get("domain_id"), f.get("parent_id"), default_domain)
    if await _name_taken(session, p.domain_id, name, p.id):
        raise _name_conflict(p)
    p.extra = merge_options(dict(spec.extra), f.get("options"))
    session.add(p)
    await _flush(session, p)
    if f.get("tags"):
        await set_tags(session, p, f["tags"])
        await _flush(session, p)
    return p


async def _place(
    session: AsyncSession, p: Project, domain_id: str | None, parent_id: str | None,
    default_domain: str,
) -> None:
    """Set the project's domain and parent as the API reference prescribes."""
    parent = None
    if parent_id:
        parent = await find_project(session, parent_id)
        if parent is None:
            raise BadRequest(f"Could not find project: {parent_id}.")
    if not domain_id:
        domain_id = domain_of(parent) if parent is not None else default_domain
    domain = await find_domain(session, domain_id)
    if domain is None:
        raise BadRequest(f"Could not find domain: {domain_id}.")
    parent = parent or domain
    if domain_of(parent) != domain.id:
        raise BadRequest(
            f"Cannot create project, since it specifies its domain_id {domain.id}, "
            f"but specifies a parent in a different domain ({domain_of(parent)})."
        )
    chain = [parent, *await lineage(session, parent)]
    for ref in chain:
        if not ref.enabled:
            raise BadRequest(
                f"cannot create a project in a branch containing a disabled project: {ref.id}"
            )
    # the chain includes the domain, hence the one extra level Keystone allows too
    if len(chain) + 1 > MAX_PROJECT_TREE_DEPTH + 1:
        raise Forbidden(f"Max hierarchy depth reached for {parent.id} branch.")
    p.domain_id, p.parent_id = domain.id, parent.id


# -- update -----------------------------------------------------------------------


async def update_project(session: AsyncSession, p: Project, spec: ProjectSpec) -> Project:
    """Apply an update to a project or domain.

    Raises:
        BadRequest: an immutable attribute (id, domain, is_domain) would change.
        Forbidden: parent_id would change, the resource is immutable, or the
            enabled state conflicts with the hierarchy.
        Conflict: the new name is taken.
    """
    f = spec.fields
    if f.get("id") is not None and f["id"] != p.id:
        raise BadRequest("Cannot change ID")
    _check_immutable_update(p, spec)
    if "domain_id" in f and f["domain_id"] != (None if p.is_domain else p.domain_id):
        raise BadRequest("Cannot change Domain ID")
    if "parent_id" in f and f["parent_id"] != p.parent_id:
        raise Forbidden("Update of `parent_id` is not allowed.")
    if "is_domain" in f and f["is_domain"] != p.is_domain:
        raise BadRequest("Update of `is_domain` is not allowed.")
    if "name" in f and (name := f["name"].strip()) != p.name:
        if await _name_taken(session, p.domain_id, name, p.id):
            p.name = name  # for the message only: the transaction is rolled back
            raise _name_conflict(p)
        p.name = name
    if "description" in f:
        p.description = f["description"]
    if "enabled" in f and f["enabled"] != p.enabled:
        await _check_enable(session, p, bool(f["enabled"]))
        p.enabled = bool(f["enabled"])
    p.extra = merge_options({**(p.extra or {}), **spec.extra}, f.get("options"))
    await _flush(session, p)
    if f.get("tags") is not None:
        await set_tags(session, p, f["tags"])
        await _flush(session, p)
    return p


async def _check_enable(session: AsyncSession, p: Project, enabled: bool) -> None:
    if p.is_domain:
        return  # a domain is enabled or disabled regardless of its projects
    if enabled:
        if any(not a.enabled for a in await lineage(session, p)):
            raise Forbidden(f"Cannot enable project {p.id} since it has disabled parents")
    elif any(c.enabled for c in await subtree(session, p)):
        raise Forbidden(
            f"Cannot disable project {p.id} since its subtree contains enabled projects."
        )


# -- delete -----------------------------------------------------------------------


def _check_immutable_delete(p: Project) -> None:
    if is_immutable(p):
        raise _immutable(p, "delete")


async def delete_project(session: AsyncSession, p: Project) -> None:
    """Delete a leaf project (or, for ``is_domain``, the domain).

    Raises:
        Forbidden: the project has children, is immutable, or is an enabled domain.
    """
    if p.is_domain:
        await delete_domain(session, p)
        return
    _check_immutable_delete(p)
    child = await session.scalar(select(Project.id).where(Project.parent_id == p.id).limit(1))
    if child is not None:
        raise Forbidden(
            f"Cannot delete the project {p.id} since it is not a leaf in the hierarchy. "
            "Use the cascade option if you want to delete a whole subtree."
        )
    await _purge_projects(session, [p.id])


async def _purge_projects(session: AsyncSession, ids: list[str]) -> None:
    """Delete projects (children listed before parents) and what refers to them."""
    if not ids:
        return
    await session.execute(delete(Assignment).where(
        Assignment.target_id.in_(ids), Assignment.type.in_(PROJECT_ASSIGNMENTS)
    ))
    await session.execute(delete(Credential).where(Credential.project_id.in_(ids)))
    await session.execute(delete(Limit).where(Limit.project_id.in_(ids)))
    await session.execute(
        delete(ApplicationCredential).where(ApplicationCredential.project_id.in_(ids))
    )
    await session.execute(
        update(User).where(User.default_project_id.in_(ids)).values(default_project_id=None)
    )
    for pid in ids:
        await session.execute(delete(Project).where(Project.id == pid))


async def delete_domain(session: AsyncSession, d: Project) -> None:
    """Delete a disabled domain with its projects, users, groups and roles.

    Raises:
        Forbidden: the domain is enabled or immutable.
    """
    from onestack.identity.service import users as identity

    _check_immutable_delete(d)
    if d.enabled:
        raise Forbidden("Cannot delete a domain that is enabled, please disable it first.")
    projects = await subtree(session, d)
    await _purge_projects(session, [p.id for p in reversed(projects)])
    for gid in list(await session.scalars(select(Group.id).where(Group.domain_id == d.id))):
        await identity.purge_group(session, gid)
    for uid in list(await session.scalars(select(User.id).where(User.domain_id == d.id))):
        await identity.purge_user(session, uid)
    await session.execute(delete(Assignment).where(
        Assignment.target_id == d.id, Assignment.type.in_(("UserDomain", "GroupDomain"))
    ))
    await session.execute(delete(Limit).where(Limit.domain_id == d.id))
    await session.execute(delete(Role).where(Role.domain_id == d.id))
    await session.execute(delete(Project).where(Project.id == d.id))
