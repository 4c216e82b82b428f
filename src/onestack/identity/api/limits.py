"""``/v3/registered_limits``, ``/v3/limits`` and ``/v3/limits/model``: Keystone's
unified limits. Anyone authenticated reads registered limits; a project member
lists only their project's limits, a domain member their domain's; admins
manage them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.context import RequestContext
from onestack.core.http import JSONResponse, no_content, read_json, validate
from onestack.identity.api.common import authorize, collection_links, state, v3_url
from onestack.identity.models import Limit, Project, RegisteredLimit
from onestack.identity.schemas.limits import (
    LimitsCreateBody,
    LimitUpdateBody,
    RegisteredLimitsCreateBody,
    RegisteredLimitUpdateBody,
)
from onestack.identity.service import limits as svc
from onestack.identity.service.catalog_admin import apply_filters

REG = "registered_limits"


def render_registered(request: Request, rl: RegisteredLimit) -> dict[str, Any]:
    return {
        "id": rl.id, "service_id": rl.service_id, "region_id": rl.region_id,
        "resource_name": rl.resource_name, "default_limit": rl.default_limit,
        "description": rl.description, "links": {"self": v3_url(request, REG, rl.id)},
    }


def render_limit(request: Request, lim: Limit) -> dict[str, Any]:
    return {
        "id": lim.id, "project_id": lim.project_id, "domain_id": lim.domain_id,
        "service_id": lim.service_id, "region_id": lim.region_id,
        "resource_name": lim.resource_name, "resource_limit": lim.resource_limit,
        "description": lim.description, "links": {"self": v3_url(request, "limits", lim.id)},
    }


# -- registered limits ----------------------------------------------------------------


async def list_registered_limits(request: Request) -> Response:
    """``GET /v3/registered_limits`` (filters: service_id, region_id, resource_name)."""
    await authorize(request, "identity:list_registered_limits")
    async with state(request).read() as session:
        rows = await session.scalars(select(RegisteredLimit).order_by(RegisteredLimit.id))
        items = [render_registered(request, rl) for rl in rows]
    items = apply_filters(items, request.query_params.multi_items(),
                          ("service_id", "region_id", "resource_name"))
    return JSONResponse({REG: items, "links": collection_links(request)})


async def create_registered_limits(request: Request) -> Response:
    """``POST /v3/registered_limits``: a list, created together or not at all."""
    await authorize(request, "identity:create_registered_limits")
    body = validate(RegisteredLimitsCreateBody, await read_json(request))
    items = [x.model_dump(exclude_unset=True) for x in body.registered_limits]
    async with state(request).write() as session:
        created = await svc.create_registered_limits(session, items)
        out = [render_registered(request, rl) for rl in created]
    return JSONResponse({REG: out}, status_code=201)


async def get_registered_limit(request: Request) -> Response:
    """``GET /v3/registered_limits/{registered_limit_id}``."""
    await authorize(request, "identity:get_registered_limit")
    async with state(request).read() as session:
        rl = await svc.get_registered_limit(session, request.path_params["registered_limit_id"])
    return JSONResponse({"registered_limit": render_registered(request, rl)})


async def update_registered_limit(request: Request) -> Response:
    """``PATCH /v3/registered_limits/{registered_limit_id}``: refused (403) while
    limits depend on it."""
    await authorize(request, "identity:update_registered_limit")
    body = validate(RegisteredLimitUpdateBody, await read_json(request))
    data = body.registered_limit.model_dump(exclude_unset=True)
    async with state(request).write() as session:
        rl = await svc.update_registered_limit(
            session, request.path_params["registered_limit_id"], data
        )
        out = render_registered(request, rl)
    return JSONResponse({"registered_limit": out})


async def delete_registered_limit(request: Request) -> Response:
    """``DELETE /v3/registered_limits/{registered_limit_id}``: refused (403) while
    limits depend on it."""
    await authorize(request, "identity:delete_registered_limit")
    async with state(request).write() as session:
        await svc.delete_registered_limit(session, request.path_params["registered_limit_id"])
    return no_content()


# -- limits ---------------------------------------------------------------------------


async def _visible(session: Any, ctx: RequestContext, rows: list[Limit]) -> list[Limit]:
    """What the caller may list: everything for admins, the system and services;
    their domain's projects and the domain itself for a domain-scoped caller; their
    project's for a project-scoped one."""
    roles = {r.lower() for r in ctx.roles}
    if ctx.is_system or "admin" in roles or "service" in roles:
        return rows
    assert ctx.auth is not None
    if ctx.auth.domain_id:
        projects = set(await session.scalars(
            select(Project.id).where(Project.domain_id == ctx.auth.domain_id)
        ))
        return [x for x in rows if x.project_id in projects or x.domain_id == ctx.auth.domain_id]
    if ctx.project_id:
        return [x for x in rows if x.project_id == ctx.project_id]
    return []


async def list_limits(request: Request) -> Response:
    """``GET /v3/limits`` (filters: service_id, region_id, resource_name, project_id,
    domain_id)."""
    ctx = await authorize(request, "identity:list_limits")
    async with state(request).read() as session:
        rows = list(await session.scalars(select(Limit).order_by(Limit.id)))
        items = [render_limit(request, x) for x in await _visible(session, ctx, rows)]
    items = apply_filters(items, request.query_params.multi_items(),
                          ("service_id", "region_id", "resource_name", "project_id", "domain_id"))
    return JSONResponse({"limits": items, "links": collection_links(request)})


async def create_limits(request: Request) -> Response:
    """``POST /v3/limits``: each needs a matching registered limit (403 otherwise)."""
    await authorize(request, "identity:create_limits")
    body = validate(LimitsCreateBody, await read_json(request))
    items = [x.model_dump(exclude_unset=True) for x in body.limits]
    async with state(request).write() as session:
        created = await svc.create_limits(session, items)
        out = [render_limit(request, x) for x in created]
    return JSONResponse({"limits": out}, status_code=201)


async def get_limit_model(request: Request) -> Response:
    """``GET /v3/limits/model``: the enforcement model (always ``flat``)."""
    await authorize(request, "identity:get_limit_model")
    return JSONResponse({"model": dict(svc.MODEL)})


async def get_limit(request: Request) -> Response:
    """``GET /v3/limits/{limit_id}``."""
    limit_id = request.path_params["limit_id"]
    async with state(request).read() as session:
        found = await session.get(Limit, limit_id)
    target = {"project_id": found.project_id, "domain_id": found.domain_id} if found else {}
    await authorize(request, "identity:get_limit", {"target": {"limit": target}})
    async with state(request).read() as session:
        limit = await svc.get_limit(session, limit_id)
    return JSONResponse({"limit": render_limit(request, limit)})


async def update_limit(request: Request) -> Response:
    """``PATCH /v3/limits/{limit_id}``: only ``resource_limit`` and ``description``."""
    await authorize(request, "identity:update_limit")
    data = validate(LimitUpdateBody, await read_json(request)).limit.model_dump(exclude_unset=True)
    async with state(request).write() as session:
        limit = await svc.update_limit(session, request.path_params["limit_id"], data)
        out = render_limit(request, limit)
    return JSONResponse({"limit": out})


async def delete_limit(request: Request) -> Response:
    """``DELETE /v3/limits/{limit_id}``."""
    await authorize(request, "identity:delete_limit")
    async with state(request).write() as session:
        await session.delete(await svc.get_limit(session, request.path_params["limit_id"]))
    return no_content()


routes = [
    Route("/registered_limits", list_registered_limits, methods=["GET"]),
    Route("/registered_limits", create_registered_limits, methods=["POST"]),
    Route("/registered_limits/{registered_limit_id}", get_registered_limit, methods=["GET"]),
    Route("/registered_limits/{registered_limit_id}", update_registered_limit,
          methods=["PATCH"]),
    Route("/registered_limits/{registered_limit_id}", delete_registered_limit,
          methods=["DELETE"]),
    Route("/limits", list_limits, methods=["GET"]),
    Route("/limits", create_limits, methods=["POST"]),
    # before /limits/{limit_id}, which would otherwise take "model" for an id
    Route("/limits/model", get_limit_model, methods=["GET"]),
    Route("/limits/{limit_id}", get_limit, methods=["GET"]),
    Route("/limits/{limit_id}", update_limit, methods=["PATCH"]),
    Route("/limits/{limit_id}", delete_limit, methods=["DELETE"]),
]
