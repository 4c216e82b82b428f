"""``/v3/domains``: create, list, show, update and delete domains.

A domain must be disabled before it can be deleted; deleting it deletes its
projects, users and groups. Domain configuration (``/v3/domains/{id}/config``)
is not implemented.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.auth import authenticate
from onestack.core.context import RequestContext
from onestack.core.http import JSONResponse, no_content, read_json, validate
from onestack.identity import render
from onestack.identity.api.common import authorize, state
from onestack.identity.errors import not_found
from onestack.identity.models import Project
from onestack.identity.schemas.resources import (
    DomainCreateBody,
    DomainUpdateBody,
    ListQuery,
    collection,
    require_some,
)
from onestack.identity.service import resources as svc
from onestack.identity.service.resources import ProjectSpec


def token_domain(ctx: RequestContext) -> str | None:
    """The domain a domain-scoped token is scoped to."""
    return ctx.auth.domain_id if ctx.auth else None


def _target(d: Project | None) -> dict[str, Any]:
    if d is None:
        return {}
    return {"target": {"domain": {"id": d.id, "name": d.name, "enabled": d.enabled}}}


async def _authorized_domain(request: Request, action: str) -> Project | None:
    """Enforce ``action`` on the domain in the path (found or not, so that a
    refused caller cannot tell); the domain, if it exists."""
    domain_id = request.path_params["domain_id"]
    async with state(request).read() as session:
        d = await svc.find_domain(session, domain_id)
    await authorize(request, action, _target(d))
    return d


async def _show(request: Request, domain_id: str, status: int = 200) -> Response:
    async with state(request).read() as session:
        d = await svc.get_domain(session, domain_id)
        tags = await svc.tags_of(session, [d.id])
    return JSONResponse({"domain": render.domain(request, d, tags[d.id])}, status_code=status)


async def list_domains(request: Request) -> Response:
    """``GET /v3/domains`` (filters: name, enabled)."""
    st = state(request)
    # a domain-scoped caller is checked against (and sees only) its own domain
    scoped = token_domain(await authenticate(request, st.tokens))
    await authorize(request, "identity:list_domains",
                    {"target": {"domain": {"id": scoped}}} if scoped else None)
    q = ListQuery.of(request)
    async with st.read() as session:
        found, tags = await svc.list_domains(session, q)
    if scoped is not None:
        found = [d for d in found if d.id == scoped]
    found, truncated = q.page(found, st.settings.identity.list_limit, lambda d: d.id)
    members = [render.domain(request, d, tags[d.id]) for d in found]
    return JSONResponse(collection(request, "domains", members, truncated))


async def create_domain(request: Request) -> Response:
    """``POST /v3/domains``."""
    await authorize(request, "identity:create_domain")
    data = validate(DomainCreateBody, await read_json(request)).domain
    fields = data.fields()
    fields.pop("explicit_domain_id", None)
    fields.update(is_domain=True, id=data.explicit_domain_id)
    async with state(request).write() as session:
        d = await svc.create_project(session, ProjectSpec(fields, data.extra()), "default")
    return await _show(request, d.id, 201)


async def get_domain(request: Request) -> Response:
    """``GET /v3/domains/{domain_id}``."""
    d = await _authorized_domain(request, "identity:get_domain")
    if d is None:
        raise not_found("domain", request.path_params["domain_id"])
    return await _show(request, d.id)


async def update_domain(request: Request) -> Response:
    """``PATCH /v3/domains/{domain_id}``."""
    await _authorized_domain(request, "identity:update_domain")
    body = await read_json(request)
    require_some(body, "domain")
    data = validate(DomainUpdateBody, body).domain
    async with state(request).write() as session:
        d = await svc.get_domain(session, request.path_params["domain_id"])
        await svc.update_project(session, d, ProjectSpec(data.fields(), data.extra()))
    return await _show(request, d.id)


async def delete_domain(request: Request) -> Response:
    """``DELETE /v3/domains/{domain_id}``: only a disabled domain."""
    await _authorized_domain(request, "identity:delete_domain")
    async with state(request).write() as session:
        d = await svc.get_domain(session, request.path_params["domain_id"])
        await svc.delete_domain(session, d)
    return no_content()


routes = [
    Route("/domains", list_domains, methods=["GET"]),
    Route("/domains", create_domain, methods=["POST"]),
    Route("/domains/{domain_id}", get_domain, methods=["GET"]),
    Route("/domains/{domain_id}", update_domain, methods=["PATCH"]),
    Route("/domains/{domain_id}", delete_domain, methods=["DELETE"]),
]
