"""``GET /v3/role_assignments``: every assignment, filtered, optionally in
effective mode (``?effective``) and with names (``?include_names``).

Each entry names its role, its actor (``user`` or ``group``), its ``scope``
(``project``, ``domain`` or ``system``, plus ``OS-INHERIT:inherited_to`` for an
inherited one) and, in ``links.assignment``, the grant URL it comes from
(``links.membership`` when through a group, ``links.prior_role`` when implied).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.auth import authenticate
from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse
from onestack.identity.api.common import authorize, collection_links, state, v3_base
from onestack.identity.models import NULL_DOMAIN, Group, Project, Role, User
from onestack.identity.service import assignments as svc

INHERITED_TO = "scope.OS-INHERIT:inherited_to"


def _flag(request: Request, name: str) -> bool:
    """Keystone's key-only flags: present and not ``0`` is true."""
    value = request.query_params.get(name)
    return value is not None and value != "0"


def _query(request: Request) -> svc.Query:
    p = request.query_params
    pairs = (
        ("scope.domain.id", "scope.project.id", "Specify a domain or project, not both"),
        ("scope.domain.id", "scope.system", "Specify system or domain, not both"),
        ("scope.project.id", "scope.system", "Specify system or project, not both"),
        ("user.id", "group.id", "Specify a user or group, not both"),
    )
    for a, b, msg in pairs:
        if p.get(a) and p.get(b):
            raise BadRequest(msg)
    inherited = p[INHERITED_TO] == "projects" if INHERITED_TO in p else None
    effective = _flag(request, "effective")
    if effective and p.get("group.id"):
        raise BadRequest(
            "Combining effective and group filter will always result in an empty list."
        )
    if effective and inherited and p.get("scope.domain.id"):
        raise BadRequest(
            "Combining effective, domain and inherited filters will always result in an empty list."
        )
    return svc.Query(
        user_id=p.get("user.id") or None,
        group_id=p.get("group.id") or None,
        role_id=p.get("role.id") or None,
        project_id=p.get("scope.project.id") or None,
        domain_id=p.get("scope.domain.id") or None,
        system=p.get("scope.system") == "all",
        inherited=inherited,
        effective=effective,
        include_subtree=_flag(request, "include_subtree"),
    )


@dataclass
class Names:
    """Names of everything the listed assignments mention, loaded in bulk."""

    users: dict[str, User] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)  # also domains
    roles: dict[str, Role] = field(default_factory=dict)

    @classmethod
    async def load(cls, session: AsyncSession, refs: list[svc.Ref]) -> Names:
        n = cls()
        user_ids = {r.user_id for r in refs if r.user_id}
        group_ids = {r.group_id for r in refs if r.group_id}
        role_ids = {r.role_id for r in refs}
        if user_ids:
            n.users = {
                u.id: u for u in await session.scalars(select(User).where(User.id.in_(user_ids)))
            }
        if group_ids:
            n.groups = {
                g.id: g for g in await session.scalars(select(Group).where(Group.id.in_(group_ids)))
            }
        if role_ids:
            n.roles = {
                r.id: r for r in await session.scalars(select(Role).where(Role.id.in_(role_ids)))
            }
        wanted = {r.project_id or r.domain_id for r in refs} - {None}
        wanted |= {o.domain_id for o in [*n.users.values(), *n.groups.values()]}
        wanted |= {r.domain_id for r in n.roles.values() if r.domain_id != NULL_DOMAIN}
        for _ in range(2):  # projects, then their domains
            missing = wanted - set(n.projects)
            if missing:
                found = await session.scalars(select(Project).where(Project.id.in_(missing)))
                n.projects.update({p.id: p for p in found})
            wanted = {p.domain_id for p in n.projects.values() if not p.is_domain}
        return n

    def domain(self, domain_id: str) -> dict[str, str]:
        d = self.projects.get(domain_id)
        return {"id": domain_id, "name": d.name if d else ""}

    def actor(self, kind: str, actor_id: str) -> dict[str, Any]:
        obj = (self.users if kind == "user" else self.groups).get(actor_id)
        if obj is None:  # Keystone's answer for an actor that is gone
            return {"id": actor_id, "name": "", "domain": {"id": "", "name": ""}}
        return {"id": actor_id, "name": obj.name, "domain": self.domain(obj.domain_id)}


def _format(base: str, ref: svc.Ref, names: Names | None) -> dict[str, Any]:
    """One assignment in the API's shape."""
    entity: dict[str, Any] = {"links": {}}
    inherited = ref.inherited
    if ref.project_id:
        scope: dict[str, Any] = {"id": ref.project_id}
        if names is not None:
            p = names.projects.get(ref.project_id)
            scope["name"] = p.name if p else ""
            scope["domain"] = names.domain(p.domain_id) if p else {"id": "", "name": ""}
        entity["scope"] = {"project": scope}
        if ref.via_domain:
            inherited, link = True, f"/domains/{ref.via_domain}"
        elif ref.via_project:
            inherited, link = True, f"/projects/{ref.via_project}"
        else:
            link = f"/projects/{ref.project_id}"
    elif ref.domain_id:
        domain = names.domain(ref.domain_id) if names else {"id": ref.domain_id}
        entity["scope"] = {"domain": domain}
        link = f"/domains/{ref.domain_id}"
    else:
        entity["scope"] = {"system": {"all": True}}
        link = "/system"
    if ref.user_id:
        entity["user"] = names.actor("user", ref.user_id) if names else {"id": ref.user_id}
        if ref.via_group:
            entity["links"]["membership"] = f"{base}/groups/{ref.via_group}/users/{ref.user_id}"
            link += f"/groups/{ref.via_group}"
        else:
            link += f"/users/{ref.user_id}"
    elif ref.group_id:
        entity["group"] = names.actor("group", ref.group_id) if names else {"id": ref.group_id}
        link += f"/groups/{ref.group_id}"
    entity["role"] = {"id": ref.role_id}
    if names is not None:
        role = names.roles.get(ref.role_id)
        entity["role"]["name"] = role.name if role else ""
        if role is not None and role.domain_id != NULL_DOMAIN:
            entity["role"]["domain"] = names.domain(role.domain_id)
    link += f"/roles/{ref.prior_role or ref.role_id}"
    if inherited:
        entity["scope"]["OS-INHERIT:inherited_to"] = "projects"
        link = f"/OS-INHERIT{link}/inherited_to_projects"
    entity["links"]["assignment"] = base + link
    if ref.prior_role:
        entity["links"]["prior_role"] = f"{base}/roles/{ref.prior_role}/implies/{ref.role_id}"
    return entity


async def _in_domain(session: AsyncSession, refs: list[svc.Ref], domain_id: str) -> list[svc.Ref]:
    """What a domain-scoped caller may see: assignments on the domain or its projects."""
    ids = {r.project_id for r in refs if r.project_id}
    inside = (
        set(
            await session.scalars(
                select(Project.id).where(Project.id.in_(ids), Project.domain_id == domain_id)
            )
        )
        if ids
        else set()
    )
    return [r for r in refs if r.domain_id == domain_id or (r.project_id in inside)]


async def list_role_assignments(request: Request) -> Response:
    """``GET /v3/role_assignments``."""
    st = state(request)
    if _flag(request, "include_subtree"):
        project_id = request.query_params.get("scope.project.id")
        target: dict[str, Any] = {}
        if project_id:
            async with st.read() as session:
                project = await svc.get_target(session, "project", project_id)
            assert project is not None
            target = {
                "project": {"id": project.id, "domain_id": project.domain_id},
                "domain_id": project.domain_id,
            }
        await authorize(request, "identity:list_role_assignments_for_tree", {"target": target})
        if not project_id:
            raise BadRequest(
                "scope.project.id must be specified if include_subtree is also specified"
            )
        caller_domain = None
    else:
        ctx = await authenticate(request, st.tokens)
        caller_domain = ctx.auth.domain_id if ctx.auth else None
        policy_target = {"domain_id": caller_domain} if caller_domain else {}
        await authorize(request, "identity:list_role_assignments", {"target": policy_target})
    q = _query(request)
    async with st.read() as session:
        refs = await svc.list_assignments(session, q)
        if caller_domain:
            refs = await _in_domain(session, refs, caller_domain)
        names = await Names.load(session, refs) if _flag(request, "include_names") else None
    base = v3_base(request)
    return JSONResponse(
        {
            "role_assignments": [_format(base, r, names) for r in refs],
            "links": collection_links(request),
        }
    )


routes = [Route("/role_assignments", list_role_assignments, methods=["GET"])]
