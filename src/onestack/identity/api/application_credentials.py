"""``/v3/users/{user_id}/application_credentials`` and ``.../access_rules``.

Only the owner creates them (for the project of the token used); owners and
admins read and delete them. Authenticating with one is the
``application_credential`` method of ``POST /v3/auth/tokens``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.context import RequestContext
from onestack.core.http import JSONResponse, no_content, read_json, validate
from onestack.identity.api.common import authorize, collection_links, state, v3_url
from onestack.identity.errors import forbidden_action, not_found
from onestack.identity.models import NULL_DOMAIN, AccessRule, ApplicationCredential
from onestack.identity.schemas.credentials import AppCredCreateBody
from onestack.identity.service import app_creds
from onestack.identity.service.catalog_admin import apply_filters

APP_CREDS = "application_credentials"


def _rule(r: AccessRule) -> dict[str, Any]:
    return {"id": r.id, "service": r.service, "path": r.path, "method": r.method}


def _rule_with_link(request: Request, r: AccessRule) -> dict[str, Any]:
    return {**_rule(r), "links": {"self": v3_url(request, "users", r.user_id, "access_rules", r.id)}}


async def render(request: Request, session: Any, ac: ApplicationCredential) -> dict[str, Any]:
    roles = [
        {"id": r.id, "name": r.name, "domain_id": None if r.domain_id == NULL_DOMAIN else r.domain_id,
         "description": r.description, "options": r.options or {}}
        for r in await app_creds.roles_of(session, ac.id)
    ]
    return {
        "id": ac.id,
        "name": ac.name,
        "description": ac.description,
        "expires_at": ac.expires_at.strftime("%Y-%m-%dT%H:%M:%S.%f") if ac.expires_at else None,
        "project_id": ac.project_id,
        "roles": roles,
        "unrestricted": bool(ac.unrestricted),
        "access_rules": [_rule(r) for r in await app_creds.rules_of(session, ac.id)],
        "links": {"self": v3_url(request, "users", ac.user_id, APP_CREDS, ac.id)},
    }


def _owner(user_id: str) -> dict[str, Any]:
    return {"user_id": user_id, "target": {"user_id": user_id}}


async def list_app_creds(request: Request) -> Response:
    """``GET /v3/users/{user_id}/application_credentials`` (filter: name)."""
    user_id = request.path_params["user_id"]
    await authorize(request, "identity:list_application_credentials", _owner(user_id))
    async with state(request).read() as session:
        rows = await session.scalars(
            select(ApplicationCredential).where(ApplicationCredential.user_id == user_id)
            .order_by(ApplicationCredential.name)
        )
        items = [await render(request, session, ac) for ac in rows]
    items = apply_filters(items, request.query_params.multi_items(), ("name",))
    return JSONResponse({APP_CREDS: items, "links": collection_links(request)})


async def create_app_cred(request: Request) -> Response:
    """``POST /v3/users/{user_id}/application_credentials``: the secret is in this
    response only."""
    st = state(request)
    user_id = request.path_params["user_id"]
    ctx = await authorize(request, "identity:create_application_credential", {"user_id": user_id})
    body = validate(AppCredCreateBody, await read_json(request)).application_credential
    assert ctx.auth is not None
    async with st.write() as session:
        await app_creds.ensure_unrestricted(session, ctx.auth, "application credentials")
        if ctx.user_id != user_id:
            raise forbidden_action("Cannot create an application credential for another user.")
        ac, secret = await app_creds.create(st, session, user_id, ctx.auth, body)
        out = await render(request, session, ac)
    out["secret"] = secret
    return JSONResponse({"application_credential": out}, status_code=201)


async def _one(request: Request, action: str) -> tuple[RequestContext, ApplicationCredential]:
    """Authorised against the credential's real owner, not the user in the path."""
    user_id = request.path_params["user_id"]
    ac_id = request.path_params["application_credential_id"]
    async with state(request).read() as session:
        found = await session.get(ApplicationCredential, ac_id)
    ctx = await authorize(request, action, _owner(found.user_id if found else user_id))
    if found is None or found.user_id != user_id:
        raise not_found("Application Credential", ac_id)
    return ctx, found


async def get_app_cred(request: Request) -> Response:
    """``GET /v3/users/{user_id}/application_credentials/{id}``."""
    _, ac = await _one(request, "identity:get_application_credential")
    async with state(request).read() as session:
        out = await render(request, session, ac)
    return JSONResponse({"application_credential": out})


async def delete_app_cred(request: Request) -> Response:
    """``DELETE /v3/users/{user_id}/application_credentials/{id}``: tokens issued
    with it stop validating."""
    ctx, ac = await _one(request, "identity:delete_application_credential")
    async with state(request).write() as session:
        await app_creds.ensure_unrestricted(session, ctx.auth, "application credentials")
        await session.delete(await app_creds.get(session, ac.id))
    return no_content()


async def list_access_rules(request: Request) -> Response:
    """``GET /v3/users/{user_id}/access_rules`` (filters: service, path, method)."""
    user_id = request.path_params["user_id"]
    await authorize(request, "identity:list_access_rules", _owner(user_id))
    async with state(request).read() as session:
        rows = await session.scalars(
            select(AccessRule).where(AccessRule.user_id == user_id)
            .order_by(AccessRule.service, AccessRule.path, AccessRule.method)
        )
        items = [_rule_with_link(request, r) for r in rows]
    items = apply_filters(items, request.query_params.multi_items(), ("service", "path", "method"))
    return JSONResponse({"access_rules": items, "links": collection_links(request)})


async def get_access_rule(request: Request) -> Response:
    """``GET /v3/users/{user_id}/access_rules/{access_rule_id}``."""
    user_id = request.path_params["user_id"]
    await authorize(request, "identity:get_access_rule", _owner(user_id))
    async with state(request).read() as session:
        rule = await app_creds.get_rule(session, user_id, request.path_params["access_rule_id"])
    return JSONResponse({"access_rule": _rule_with_link(request, rule)})


async def delete_access_rule(request: Request) -> Response:
    """``DELETE /v3/users/{user_id}/access_rules/{access_rule_id}``: refused (403)
    while an application credential uses the rule."""
    user_id = request.path_params["user_id"]
    await authorize(request, "identity:delete_access_rule", _owner(user_id))
    async with state(request).write() as session:
        await app_creds.delete_rule(session, user_id, request.path_params["access_rule_id"])
    return no_content()


routes = [
    Route("/users/{user_id}/application_credentials", list_app_creds, methods=["GET"]),
    Route("/users/{user_id}/application_credentials", create_app_cred, methods=["POST"]),
    Route("/users/{user_id}/application_credentials/{application_credential_id}",
          get_app_cred, methods=["GET"]),
    Route("/users/{user_id}/application_credentials/{application_credential_id}",
          delete_app_cred, methods=["DELETE"]),
    Route("/users/{user_id}/access_rules", list_access_rules, methods=["GET"]),
    Route("/users/{user_id}/access_rules/{access_rule_id}", get_access_rule, methods=["GET"]),
    Route("/users/{user_id}/access_rules/{access_rule_id}", delete_access_rule,
          methods=["DELETE"]),
]
