"""``/v3/services``: the catalog's services (``name``, ``description`` and any
other attribute live in ``extra``, as in Keystone)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, no_content, read_json, validate
from onestack.identity.api.common import authorize, collection_links, state, v3_url
from onestack.identity.models import Service
from onestack.identity.schemas.catalog import ServiceCreateBody, ServiceUpdateBody
from onestack.identity.service import catalog_admin as cat


def render(request: Request, s: Service) -> dict[str, Any]:
    out: dict[str, Any] = dict(s.extra)
    out.setdefault("name", "")
    out.update(
        id=s.id, type=s.type, enabled=s.enabled,
        links={"self": v3_url(request, "services", s.id)},
    )
    return out


async def list_services(request: Request) -> Response:
    """``GET /v3/services`` (filters: type, name)."""
    await authorize(request, "identity:list_services")
    async with state(request).read() as session:
        rows = (await session.scalars(select(Service).order_by(Service.type, Service.id))).all()
    items = cat.apply_filters(
        [render(request, s) for s in rows], request.query_params.multi_items(), ("type", "name")
    )
    return JSONResponse({"services": items, "links": collection_links(request)})


async def create_service(request: Request) -> Response:
    """``POST /v3/services``."""
    await authorize(request, "identity:create_service")
    data = validate(ServiceCreateBody, await read_json(request)).service.given()
    data.pop("id", None)
    async with state(request).write() as session:
        body = {"service": render(request, await cat.create_service(session, data))}
    return JSONResponse(body, status_code=201)


async def get_service(request: Request) -> Response:
    """``GET /v3/services/{service_id}``."""
    await authorize(request, "identity:get_service")
    async with state(request).read() as session:
        service = await cat.get_service(session, request.path_params["service_id"])
    return JSONResponse({"service": render(request, service)})


async def update_service(request: Request) -> Response:
    """``PATCH /v3/services/{service_id}``."""
    await authorize(request, "identity:update_service")
    data = validate(ServiceUpdateBody, await read_json(request)).service.given()
    if not data:
        raise BadRequest("Invalid input for field 'service': {} does not have enough properties")
    async with state(request).write() as session:
        service = await cat.update_service(session, request.path_params["service_id"], data)
        body = {"service": render(request, service)}
    return JSONResponse(body)


async def delete_service(request: Request) -> Response:
    """``DELETE /v3/services/{service_id}``: its endpoints are deleted too."""
    await authorize(request, "identity:delete_service")
    async with state(request).write() as session:
        await cat.delete_service(session, request.path_params["service_id"])
    return no_content()


routes = [
    Route("/services", list_services, methods=["GET"]),
    Route("/services", create_service, methods=["POST"]),
    Route("/services/{service_id}", get_service, methods=["GET"]),
    Route("/services/{service_id}", update_service, methods=["PATCH"]),
    Route("/services/{service_id}", delete_service, methods=["DELETE"]),
]
