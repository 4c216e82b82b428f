"""``/v3/users``: users, their groups, and the self-service password change.

Passwords are hashed before the write transaction opens and never returned.
``POST /v3/users/{id}/password`` is not policy-enforced, as in Keystone: the
original password is the authorization, so that a user whose password expired
(and who therefore cannot get a token) can still change it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.auth import authenticate
from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, no_content, read_json, validate
from onestack.identity.api.common import authorize, state
from onestack.identity.api.domains import token_domain
from onestack.identity.errors import not_found
from onestack.identity.models import User
from onestack.identity.schemas.resources import ListQuery, collection, require_some
from onestack.identity.schemas.users import (
    PasswordChangeBody,
    UserCreateBody,
    UserUpdateBody,
    group_view,
    user_view,
)
from onestack.identity.service import users as svc


def user_target(u: User | None) -> dict[str, Any]:
    if u is None:
        return {}
    return {"target": {"user": {"id": u.id, "domain_id": u.domain_id, "name": u.name}}}


async def _authorized(request: Request, action: str) -> User:
    """Enforce ``action`` on the user in the path, then require it to exist."""
    user_id = request.path_params["user_id"]
    async with state(request).read() as session:
        u = await session.get(User, user_id)
    await authorize(request, action, user_target(u))
    if u is None:
        raise not_found("user", user_id)
    return u


def _check_federated(fields: dict[str, Any]) -> None:
    for obj in fields.pop("federated", None) or []:
        idp = obj.get("idp_id") if isinstance(obj, dict) else None
        raise BadRequest(f"Could not find Identity Provider: {idp}")


async def _show(request: Request, user_id: str, status: int = 200) -> Response:
    async with state(request).read() as session:
        u = await svc.get_user(session, user_id)
        expires = await svc.password_expiries(session, [u.id])
    return JSONResponse({"user": user_view(request, u, expires[u.id])}, status_code=status)


async def list_users(request: Request) -> Response:
    """``GET /v3/users`` (filters: name, domain_id, enabled, password_expires_at;
    ``name__contains`` and the other inexact forms)."""
    st = state(request)
    scoped = token_domain(await authenticate(request, st.tokens))
    await authorize(request, "identity:list_users",
                    {"target": {"domain_id": scoped}} if scoped else None)
    q = ListQuery.of(request)
    if scoped is not None:
        q.items.append(("domain_id", scoped))
    async with st.read() as session:
        found, expires = await svc.list_users(session, q)
    found, truncated = q.page(found, st.settings.identity.list_limit, lambda u: u.id)
    members = [user_view(request, u, expires[u.id]) for u in found]
    return JSONResponse(collection(request, "users", members, truncated))


async def create_user(request: Request) -> Response:
    """``POST /v3/users``; the domain defaults to the token's, else ``default``."""
    st = state(request)
    body = await read_json(request)
    raw = body.get("user") if isinstance(body, dict) else None
    safe = {k: v for k, v in raw.items() if k != "password"} if isinstance(raw, dict) else {}
    ctx = await authorize(request, "identity:create_user", {"target": {"user": safe}})
    data = validate(UserCreateBody, body).user
    fields = data.fields()
    _check_federated(fields)
    fields["domain_id"] = fields.get("domain_id") or token_domain(ctx) or "default"
    pw_hash = await st.hasher.hash(data.password) if data.password is not None else None
    async with st.write() as session:
        u = await svc.create_user(session, fields, data.extra(), pw_hash)
    return await _show(request, u.id, 201)


async def get_user(request: Request) -> Response:
    """``GET /v3/users/{user_id}``."""
    u = await _authorized(request, "identity:get_user")
    return await _show(request, u.id)


async def update_user(request: Request) -> Response:
    """``PATCH /v3/users/{user_id}``; a new password or disabling the user
    revokes the user's tokens."""
    st = state(request)
    u = await _authorized(request, "identity:update_user")
    body = await read_json(request)
    require_some(body, "user")
    data = validate(UserUpdateBody, body).user
    fields = data.fields()
    _check_federated(fields)
    pw_hash = await st.hasher.hash(data.password) if data.password is not None else None
    async with st.write() as session:
        await svc.update_user(session, await svc.get_user(session, u.id), fields,
                              data.extra(), pw_hash)
    return await _show(request, u.id)


async def delete_user(request: Request) -> Response:
    """``DELETE /v3/users/{user_id}`` with its assignments, memberships and
    credentials."""
    u = await _authorized(request, "identity:delete_user")
    async with state(request).write() as session:
        await svc.get_user(session, u.id)
        await svc.purge_user(session, u.id)
    return no_content()


async def change_password(request: Request) -> Response:
    """``POST /v3/users/{user_id}/password``: the user changes their own password
    (the original is required); the user's existing tokens are revoked."""
    data = validate(PasswordChangeBody, await read_json(request)).user
    await svc.change_password(
        state(request), request.path_params["user_id"], data.original_password, data.password
    )
    return no_content()


async def user_groups(request: Request) -> Response:
    """``GET /v3/users/{user_id}/groups`` (filter: name)."""
    st = state(request)
    scoped = token_domain(await authenticate(request, st.tokens))
    u = await _authorized(request, "identity:list_groups_for_user")
    q = ListQuery.of(request)
    if scoped is not None:
        q.items.append(("domain_id", scoped))
    async with st.read() as session:
        found = await svc.user_groups(session, u.id, q)
    found, truncated = q.page(found, st.settings.identity.list_limit, lambda g: g.id)
    members = [group_view(request, g, membership=True) for g in found]
    return JSONResponse(collection(request, "groups", members, truncated))


routes = [
    Route("/users", list_users, methods=["GET"]),
    Route("/users", create_user, methods=["POST"]),
    Route("/users/{user_id}", get_user, methods=["GET"]),
    Route("/users/{user_id}", update_user, methods=["PATCH"]),
    Route("/users/{user_id}", delete_user, methods=["DELETE"]),
    Route("/users/{user_id}/password", change_password, methods=["POST"]),
    Route("/users/{user_id}/groups", user_groups, methods=["GET"]),
]
