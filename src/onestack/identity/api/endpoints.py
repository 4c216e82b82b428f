"""``/v3/endpoints``: the catalog's endpoints."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, no_content, read_json, validate
from onestack.identity.api.common import authorize, collection_links, state, v3_url
from onestack.identity.models import Endpoint
from onestack.identity.schemas.catalog import EndpointCreateBody, EndpointUpdateBody
from onestack.identity.service import catalog_admin as cat


def render(request: Request, ep: Endpoint) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in ep.extra.items() if k != cat.MANAGED_KEY}
    out.update(
        id=ep.id,
        interface=ep.interface,
        region_id=ep.region_id,
        region=ep.region_id,
        service_id=ep.service_id,
        url=ep.url,
        enabled=ep.enabled,
        links={"self": v3_url(request, "endpoints", ep.id)},
    )
    return out


async def list_endpoints(request: Request) -> Response:
    """``GET /v3/endpoints`` (filters: interface, service_id, region_id)."""
    await authorize(request, "identity:list_endpoints")
    interface = request.query_params.get("interface")
    if interface is not None and interface not in ("admin", "internal", "public"):
        raise BadRequest(
            f"Invalid input for field 'interface': '{interface}' is not one of "
            "['admin', 'internal', 'public']"
        )
    async with state(request).read() as session:
        rows = (await session.scalars(select(Endpoint).order_by(Endpoint.id))).all()
    items = cat.apply_filters(
        [render(request, ep) for ep in rows], request.query_params.multi_items(),
        ("interface", "service_id", "region_id"),
    )
    return JSONResponse({"endpoints": items, "links": collection_links(request)})


async def create_endpoint(request: Request) -> Response:
    """``POST /v3/endpoints``: the service must exist, and the region too unless
    it is named with the legacy ``region`` attribute (then it is created)."""
    await authorize(request, "identity:create_endpoint")
    data = validate(EndpointCreateBody, await read_json(request)).endpoint.given()
    async with state(request).write() as session:
        body = {"endpoint": render(request, await cat.create_endpoint(session, data))}
    return JSONResponse(body, status_code=201)


async def get_endpoint(request: Request) -> Response:
    """``GET /v3/endpoints/{endpoint_id}``."""
    await authorize(request, "identity:get_endpoint")
    async with state(request).read() as session:
        ep = await cat.get_endpoint(session, request.path_params["endpoint_id"])
    return JSONResponse({"endpoint": render(request, ep)})


async def update_endpoint(request: Request) -> Response:
    """``PATCH /v3/endpoints/{endpoint_id}``."""
    await authorize(request, "identity:update_endpoint")
    data = validate(EndpointUpdateBody, await read_json(request)).endpoint.given()
    if not data:
        raise BadRequest("Invalid input for field 'endpoint': {} does not have enough properties")
    async with state(request).write() as session:
        ep = await cat.update_endpoint(session, request.path_params["endpoint_id"], data)
        body = {"endpoint": render(request, ep)}
    return JSONResponse(body)


async def delete_endpoint(request: Request) -> Response:
    """``DELETE /v3/endpoints/{endpoint_id}``."""
    await authorize(request, "identity:delete_endpoint")
    async with state(request).write() as session:
        await cat.delete_endpoint(session, request.path_params["endpoint_id"])
    return no_content()


routes = [
    Route("/endpoints", list_endpoints, methods=["GET"]),
    Route("/endpoints", create_endpoint, methods=["POST"]),
    Route("/endpoints/{endpoint_id}", get_endpoint, methods=["GET"]),
    Route("/endpoints/{endpoint_id}", update_endpoint, methods=["PATCH"]),
    Route("/endpoints/{endpoint_id}", delete_endpoint, methods=["DELETE"]),
]
