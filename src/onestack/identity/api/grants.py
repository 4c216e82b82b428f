"""Grants: roles of users and groups on projects, domains (also inherited to
their projects, via OS-INHERIT) and the system.

    /projects/{project_id}/{users|groups}/{id}/roles[/{role_id}]
    /domains/{domain_id}/{users|groups}/{id}/roles[/{role_id}]
    /OS-INHERIT/domains/{domain_id}/{users|groups}/{id}/roles[/{role_id}]/inherited_to_projects
    /OS-INHERIT/projects/{project_id}/{users|groups}/{id}/roles/{role_id}/inherited_to_projects
    /system/{users|groups}/{id}/roles[/{role_id}]

GET and HEAD on one grant answer 204 if it exists, PUT grants (204, also when it
already exists), DELETE revokes; GET on ``roles`` lists the granted roles.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.auth import authenticate
from onestack.core.http import JSONResponse, no_content
from onestack.identity.api.common import authorize, collection_links, state
from onestack.identity.api.roles import render_role
from onestack.identity.models import Group, Project, Role, User
from onestack.identity.service import assignments as svc
from onestack.identity.service.roles import get_role, role_dict

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Kind:
    """Which grants a route manages."""

    actor: svc.ActorKind
    target: svc.TargetKind
    inherited: bool = False

    @property
    def actor_param(self) -> str:
        return f"{self.actor}_id"

    def action(self, verb: str) -> str:
        if self.target == "system":
            plural = "s" if verb == "list" else ""
            return f"identity:{verb}_system_grant{plural}_for_{self.actor}"
        return f"identity:{verb}_grant" if verb != "list" else "identity:list_grants"

    def target_id(self, request: Request) -> str:
        if self.target == "system":
            return svc.SYSTEM
        return str(request.path_params[f"{self.target}_id"])


@dataclass(frozen=True)
class Resolved:
    role: Role | None
    actor: User | Group | None
    target: Project | None


def _policy_target(kind: Kind, r: Resolved, actor_id: str) -> dict[str, Any]:
    target: dict[str, Any] = {}
    if r.role is not None:
        target["role"] = role_dict(r.role)
    target[kind.actor] = (
        {"id": r.actor.id, "domain_id": r.actor.domain_id} if r.actor else {"id": actor_id}
    )
    if r.target is not None:
        if kind.target == "project":
            target["project"] = {"id": r.target.id, "domain_id": r.target.domain_id}
            target["domain"] = {"id": r.target.domain_id}
        else:
            target["domain"] = {"id": r.target.id}
    return {"target": target}


async def _resolve(request: Request, kind: Kind, verb: str, *, actor_must_exist: bool) -> Resolved:
    """Authenticate, look up what the path names (404s), then enforce the policy."""
    st = state(request)
    await authenticate(request, st.tokens)
    params = request.path_params
    actor_id = params[kind.actor_param]
    async with st.read() as session:
        role = await get_role(session, params["role_id"]) if "role_id" in params else None
        if actor_must_exist:
            actor = await svc.get_actor(session, kind.actor, actor_id)
        else:
            actor = await svc.find_actor(session, kind.actor, actor_id)
        target = await svc.get_target(session, kind.target, kind.target_id(request))
    resolved = Resolved(role, actor, target)
    await authorize(request, kind.action(verb), _policy_target(kind, resolved, actor_id))
    return resolved


def _grant(request: Request, kind: Kind) -> svc.Grant:
    p = request.path_params
    return svc.Grant(
        p["role_id"],
        kind.actor,
        p[kind.actor_param],
        kind.target,
        kind.target_id(request),
        kind.inherited,
    )


def check_handler(kind: Kind) -> Handler:
    async def check_grant(request: Request) -> Response:
        """``GET``/``HEAD`` on one grant: 204 if it exists, else 404."""
        await _resolve(request, kind, "check", actor_must_exist=True)
        async with state(request).read() as session:
            await svc.check_grant(session, _grant(request, kind))
        return no_content()

    return check_grant


def create_handler(kind: Kind) -> Handler:
    async def create_grant(request: Request) -> Response:
        """``PUT`` on one grant: grant the role (204)."""
        r = await _resolve(request, kind, "create", actor_must_exist=True)
        assert r.role is not None
        async with state(request).write() as session:
            await svc.create_grant(session, r.role, _grant(request, kind), r.target)
        return no_content()

    return create_grant


def revoke_handler(kind: Kind) -> Handler:
    async def revoke_grant(request: Request) -> Response:
        """``DELETE`` on one grant: revoke it (the actor may be gone already)."""
        await _resolve(request, kind, "revoke", actor_must_exist=False)
        async with state(request).write() as session:
            await svc.delete_grant(session, _grant(request, kind))
        return no_content()

    return revoke_grant


def list_handler(kind: Kind) -> Handler:
    async def list_grants(request: Request) -> Response:
        """``GET`` on ``roles``: the roles granted to the actor on the target."""
        await _resolve(request, kind, "list", actor_must_exist=True)
        actor_id = request.path_params[kind.actor_param]
        async with state(request).read() as session:
            found = await svc.list_grants(
                session, kind.actor, actor_id, kind.target, kind.target_id(request), kind.inherited
            )
        return JSONResponse(
            {
                "roles": [render_role(request, r) for r in found],
                "links": collection_links(request),
            }
        )

    return list_grants


def _routes(path: str, kind: Kind, *, listing: bool = True, suffix: str = "") -> list[Route]:
    one = f"{path}/roles/{{role_id}}{suffix}"
    out = [
        Route(one, check_handler(kind), methods=["GET", "HEAD"]),
        Route(one, create_handler(kind), methods=["PUT"]),
        Route(one, revoke_handler(kind), methods=["DELETE"]),
    ]
    if listing:
        out.append(Route(f"{path}/roles{suffix}", list_handler(kind), methods=["GET"]))
    return out


def _all_routes() -> list[Route]:
    out: list[Route] = []
    for actor, plural in (("user", "users"), ("group", "groups")):
        a: svc.ActorKind = actor  # type: ignore[assignment]
        out += _routes(f"/projects/{{project_id}}/{plural}/{{{a}_id}}", Kind(a, "project"))
        out += _routes(f"/domains/{{domain_id}}/{plural}/{{{a}_id}}", Kind(a, "domain"))
        out += _routes(f"/system/{plural}/{{{a}_id}}", Kind(a, "system"))
        out += _routes(
            f"/OS-INHERIT/domains/{{domain_id}}/{plural}/{{{a}_id}}",
            Kind(a, "domain", inherited=True),
            suffix="/inherited_to_projects",
        )
        out += _routes(
            f"/OS-INHERIT/projects/{{project_id}}/{plural}/{{{a}_id}}",
            Kind(a, "project", inherited=True),
            suffix="/inherited_to_projects",
            listing=False,
        )
    return out


routes = _all_routes()
