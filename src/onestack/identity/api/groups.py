"""``/v3/groups``: groups and their members.

A user may belong to a group of another domain, as in Keystone. Removing a user
from a group revokes that user's tokens; deleting a group that held roles
revokes its members' tokens.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.auth import authenticate
from onestack.core.http import JSONResponse, no_content, read_json, validate
from onestack.identity.api.common import authorize, state
from onestack.identity.api.domains import token_domain
from onestack.identity.errors import not_found
from onestack.identity.models import Group, User
from onestack.identity.schemas.resources import ListQuery, collection, require_some
from onestack.identity.schemas.users import GroupCreateBody, GroupUpdateBody, group_view, user_view
from onestack.identity.service import users as svc


def _group_target(g: Group | None) -> dict[str, Any]:
    if g is None:
        return {}
    return {"id": g.id, "domain_id": g.domain_id, "name": g.name}


async def _authorized(request: Request, action: str) -> Group:
    """Enforce ``action`` on the group in the path (and the user, if the path
    names one), then require the group to exist."""
    group_id = request.path_params["group_id"]
    user_id = request.path_params.get("user_id")
    async with state(request).read() as session:
        g = await session.get(Group, group_id)
        u = await session.get(User, user_id) if user_id else None
    target: dict[str, Any] = {}
    if g is not None:
        target["group"] = _group_target(g)
    if u is not None:
        target["user"] = {"id": u.id, "domain_id": u.domain_id, "name": u.name}
    await authorize(request, action, {"target": target} if target else {})
    if g is None:
        raise not_found("group", group_id)
    return g


async def _show(request: Request, group_id: str, status: int = 200) -> Response:
    async with state(request).read() as session:
        g = await svc.get_group(session, group_id)
    return JSONResponse({"group": group_view(request, g)}, status_code=status)


async def list_groups(request: Request) -> Response:
    """``GET /v3/groups`` (filters: name, domain_id)."""
    st = state(request)
    scoped = token_domain(await authenticate(request, st.tokens))
    await authorize(request, "identity:list_groups",
                    {"target": {"domain_id": scoped, "group": {"domain_id": scoped}}}
                    if scoped else None)
    q = ListQuery.of(request)
    if scoped is not None:
        q.items.append(("domain_id", scoped))
    async with st.read() as session:
        found = await svc.list_groups(session, q)
    found, truncated = q.page(found, st.settings.identity.list_limit, lambda g: g.id)
    return JSONResponse(collection(request, "groups", [group_view(request, g) for g in found],
                                   truncated))


async def create_group(request: Request) -> Response:
    """``POST /v3/groups``; the domain defaults to the token's, else ``default``."""
    body = await read_json(request)
    raw = body.get("group") if isinstance(body, dict) else None
    ctx = await authorize(request, "identity:create_group",
                          {"target": {"group": raw if isinstance(raw, dict) else {}}})
    data = validate(GroupCreateBody, body).group
    fields = data.fields()
    fields["domain_id"] = fields.get("domain_id") or token_domain(ctx) or "default"
    async with state(request).write() as session:
        g = await svc.create_group(session, fields, data.extra())
    return await _show(request, g.id, 201)


async def get_group(request: Request) -> Response:
    """``GET /v3/groups/{group_id}``."""
    g = await _authorized(request, "identity:get_group")
    return await _show(request, g.id)


async def update_group(request: Request) -> Response:
    """``PATCH /v3/groups/{group_id}``."""
    g = await _authorized(request, "identity:update_group")
    body = await read_json(request)
    require_some(body, "group")
    data = validate(GroupUpdateBody, body).group
    async with state(request).write() as session:
        await svc.update_group(session, await svc.get_group(session, g.id), data.fields(),
                               data.extra())
    return await _show(request, g.id)


async def delete_group(request: Request) -> Response:
    """``DELETE /v3/groups/{group_id}``."""
    g = await _authorized(request, "identity:delete_group")
    async with state(request).write() as session:
        await svc.get_group(session, g.id)
        await svc.purge_group(session, g.id)
    return no_content()


async def list_members(request: Request) -> Response:
    """``GET /v3/groups/{group_id}/users`` (filters: name, domain_id, enabled,
    password_expires_at)."""
    st = state(request)
    scoped = token_domain(await authenticate(request, st.tokens))
    g = await _authorized(request, "identity:list_users_in_group")
    q = ListQuery.of(request)
    if scoped is not None:
        q.items.append(("domain_id", scoped))
    async with st.read() as session:
        found, expires = await svc.group_members(session, g.id, q)
    found, truncated = q.page(found, st.settings.identity.list_limit, lambda u: u.id)
    members = [user_view(request, u, expires[u.id]) for u in found]
    return JSONResponse(collection(request, "users", members, truncated))


async def check_member(request: Request) -> Response:
    """``HEAD``/``GET /v3/groups/{group_id}/users/{user_id}``: 204 if a member."""
    g = await _authorized(request, "identity:check_user_in_group")
    async with state(request).read() as session:
        await svc.check_member(session, g.id, request.path_params["user_id"])
    return no_content()


async def add_member(request: Request) -> Response:
    """``PUT /v3/groups/{group_id}/users/{user_id}``."""
    g = await _authorized(request, "identity:add_user_to_group")
    async with state(request).write() as session:
        await svc.add_member(session, g.id, request.path_params["user_id"])
    return no_content()


async def remove_member(request: Request) -> Response:
    """``DELETE /v3/groups/{group_id}/users/{user_id}``."""
    g = await _authorized(request, "identity:remove_user_from_group")
    async with state(request).write() as session:
        await svc.remove_member(session, g.id, request.path_params["user_id"])
    return no_content()


routes = [
    Route("/groups", list_groups, methods=["GET"]),
    Route("/groups", create_group, methods=["POST"]),
    Route("/groups/{group_id}", get_group, methods=["GET"]),
    Route("/groups/{group_id}", update_group, methods=["PATCH"]),
    Route("/groups/{group_id}", delete_group, methods=["DELETE"]),
    Route("/groups/{group_id}/users", list_members, methods=["GET"]),
    Route("/groups/{group_id}/users/{user_id}", check_member, methods=["GET"]),
    Route("/groups/{group_id}/users/{user_id}", add_member, methods=["PUT"]),
    Route("/groups/{group_id}/users/{user_id}", remove_member, methods=["DELETE"]),
]
