"""``/v3/auth``: tokens, and what a token may be scoped to."""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.auth import AUTH_HEADER
from onestack.core.auth import authenticate as authenticate_caller
from onestack.core.errors import BadRequest, Unauthorized
from onestack.core.http import JSONResponse, query_bool, read_json
from onestack.identity import render
from onestack.identity.api.common import authorize, collection_links, state
from onestack.identity.errors import TokenNotFound
from onestack.identity.models import ROOT_DOMAIN, Project
from onestack.identity.service import authn, effective
from onestack.identity.service.catalog import for_scope
from onestack.identity.service.tokens import TokenData

SUBJECT_HEADER = "X-Subject-Token"


async def issue_token(request: Request) -> Response:
    """Authenticate and issue a token (``POST /v3/auth/tokens``)."""
    st = state(request)
    body = await read_json(request)
    if not isinstance(body, dict) or "auth" not in body:
        raise BadRequest("Expecting to find auth in request body.")
    payload = await authn.authenticate(st, body["auth"])
    data = await st.tokens.issue(payload)
    nocatalog = query_bool(request.query_params.get("nocatalog"))
    catalog = None if nocatalog else await st.tokens.catalog()
    return JSONResponse(
        data.body(catalog), status_code=201, headers={SUBJECT_HEADER: data.token}
    )


async def _subject(request: Request, action: str) -> TokenData:
    st = state(request)
    await authenticate_caller(request, st.tokens)
    subject = request.headers.get(SUBJECT_HEADER)
    if not subject:
        raise BadRequest(f"Expecting to find {SUBJECT_HEADER} in request headers.")
    allow_expired = bool(query_bool(request.query_params.get("allow_expired")))
    try:
        data = await st.tokens.validate_data(subject, allow_expired=allow_expired)
    except TokenNotFound:
        # Keystone answers 404 to any authenticated caller here: that a token is
        # not valid tells nothing about anybody.
        raise
    await authorize(request, action, {"target": {"token": {"user_id": data.payload.user_id}}})
    return data


async def validate_token(request: Request) -> Response:
    """``GET /v3/auth/tokens`` (X-Subject-Token)."""
    data = await _subject(request, "identity:validate_token")
    st = state(request)
    nocatalog = bool(query_bool(request.query_params.get("nocatalog")))
    # services validate the same tokens over and over: keep the rendered body
    # (dropped with the other caches on any identity write)
    key = ("validate-body", data.token, nocatalog)
    body: bytes | None = st.lookups.get(key)
    if body is None:
        catalog = None if nocatalog else await st.tokens.catalog()
        body = JSONResponse(data.body(catalog)).body
        st.lookups.put(key, body)
    return Response(body, media_type="application/json", headers={SUBJECT_HEADER: data.token})


async def check_token(request: Request) -> Response:
    """``HEAD /v3/auth/tokens``: 200 if the subject token is valid."""
    data = await _subject(request, "identity:check_token")
    return Response(status_code=200, headers={SUBJECT_HEADER: data.token})


async def revoke_token(request: Request) -> Response:
    """``DELETE /v3/auth/tokens``: revoke the subject token."""
    data = await _subject(request, "identity:revoke_token")
    await state(request).tokens.revoke(data)
    return Response(status_code=204)


async def _caller(request: Request) -> TokenData:
    st = state(request)
    token = request.headers.get(AUTH_HEADER)
    if not token:
        raise Unauthorized("The request you have made requires authentication.")
    try:
        return await st.tokens.validate_data(token)
    except TokenNotFound:
        raise Unauthorized("The request you have made requires authentication.") from None


async def auth_catalog(request: Request) -> Response:
    """``GET /v3/auth/catalog``: the catalog for the caller's token."""
    data = await _caller(request)
    if not (data.payload.project_id or data.payload.domain_id or data.payload.system):
        raise Unauthorized("A scoped token is required to get a service catalog.")
    catalog = for_scope(await state(request).tokens.catalog(),
                        project_id=data.payload.project_id, user_id=data.payload.user_id)
    return JSONResponse({"catalog": catalog, "links": collection_links(request)})


async def auth_projects(request: Request) -> Response:
    """``GET /v3/auth/projects``: the projects the caller can scope to."""
    data = await _caller(request)
    st = state(request)
    out = []
    async with st.read() as session:
        for p in await session.scalars(
            select(Project).where(Project.is_domain.is_(False), Project.enabled.is_(True))
        ):
            dom = await session.get(Project, p.domain_id)
            if dom is None or not dom.enabled:
                continue
            if await effective.direct_role_ids(session, data.payload.user_id, project=p):
                out.append(render.project(request, p))
    return JSONResponse({"projects": out, "links": collection_links(request)})


async def auth_domains(request: Request) -> Response:
    """``GET /v3/auth/domains``: the domains the caller can scope to."""
    data = await _caller(request)
    st = state(request)
    out = []
    async with st.read() as session:
        for d in await session.scalars(
            select(Project).where(
                Project.is_domain.is_(True),
                Project.enabled.is_(True),
                Project.domain_id == ROOT_DOMAIN,
            )
        ):
            if await effective.direct_role_ids(session, data.payload.user_id, domain_id=d.id):
                out.append(render.domain(request, d))
    return JSONResponse({"domains": out, "links": collection_links(request)})


async def auth_system(request: Request) -> Response:
    """``GET /v3/auth/system``: whether the caller can scope to the system."""
    data = await _caller(request)
    async with state(request).read() as session:
        has = await effective.direct_role_ids(session, data.payload.user_id, system=True)
    return JSONResponse(
        {"system": [{"all": True}] if has else [], "links": collection_links(request)}
    )


routes = [
    Route("/auth/tokens", issue_token, methods=["POST"]),
    # HEAD before GET: Starlette lets a GET route answer HEAD too
    Route("/auth/tokens", check_token, methods=["HEAD"]),
    Route("/auth/tokens", validate_token, methods=["GET"]),
    Route("/auth/tokens", revoke_token, methods=["DELETE"]),
    Route("/auth/catalog", auth_catalog, methods=["GET"]),
    Route("/auth/projects", auth_projects, methods=["GET"]),
    Route("/auth/domains", auth_domains, methods=["GET"]),
    Route("/auth/system", auth_system, methods=["GET"]),
]
