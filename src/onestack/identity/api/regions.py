"""``/v3/regions``: the catalog's regions, with client-chosen ids."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, no_content, read_json, validate
from onestack.identity.api.common import authorize, collection_links, state, v3_url
from onestack.identity.models import Region
from onestack.identity.schemas.catalog import RegionCreateBody, RegionUpdateBody
from onestack.identity.service import catalog_admin as cat


def render(request: Request, r: Region) -> dict[str, Any]:
    out: dict[str, Any] = dict(r.extra)
    out.update(
        id=r.id,
        description=r.description or "",
        parent_region_id=r.parent_region_id,
        links={"self": v3_url(request, "regions", r.id)},
    )
    return out


async def list_regions(request: Request) -> Response:
    """``GET /v3/regions`` (filter: parent_region_id)."""
    await authorize(request, "identity:list_regions")
    async with state(request).read() as session:
        rows = (await session.scalars(select(Region).order_by(Region.id))).all()
    items = cat.apply_filters(
        [render(request, r) for r in rows], request.query_params.multi_items(),
        ("parent_region_id",),
    )
    return JSONResponse({"regions": items, "links": collection_links(request)})


async def _create(request: Request, data: dict[str, Any]) -> Response:
    async with state(request).write() as session:
        region = await cat.create_region(session, data)
        body = {"region": render(request, region)}
    return JSONResponse(body, status_code=201)


async def create_region(request: Request) -> Response:
    """``POST /v3/regions``: the id is generated unless the body names one."""
    await authorize(request, "identity:create_region")
    body = validate(RegionCreateBody, await read_json(request))
    return await _create(request, body.region.given())


async def put_region(request: Request) -> Response:
    """``PUT /v3/regions/{region_id}``: create a region with the id in the URL."""
    await authorize(request, "identity:create_region")
    region_id = request.path_params["region_id"]
    data = validate(RegionCreateBody, await read_json(request)).region.given()
    if data.get("id") is None:
        data["id"] = region_id
    elif data["id"] != region_id:
        raise BadRequest(f'Conflicting region IDs specified: "{region_id}" != "{data["id"]}"')
    return await _create(request, data)


async def get_region(request: Request) -> Response:
    """``GET /v3/regions/{region_id}``."""
    await authorize(request, "identity:get_region")
    async with state(request).read() as session:
        region = await cat.get_region(session, request.path_params["region_id"])
    return JSONResponse({"region": render(request, region)})


async def update_region(request: Request) -> Response:
    """``PATCH /v3/regions/{region_id}``."""
    await authorize(request, "identity:update_region")
    data = validate(RegionUpdateBody, await read_json(request)).region.given()
    if not data:
        raise BadRequest("Invalid input for field 'region': {} does not have enough properties")
    async with state(request).write() as session:
        region = await cat.update_region(session, request.path_params["region_id"], data)
        body = {"region": render(request, region)}
    return JSONResponse(body)


async def delete_region(request: Request) -> Response:
    """``DELETE /v3/regions/{region_id}``: also deletes its child regions; refused
    (403) while the region or a child has endpoints."""
    await authorize(request, "identity:delete_region")
    async with state(request).write() as session:
        await cat.delete_region(session, request.path_params["region_id"])
    return no_content()


routes = [
    Route("/regions", list_regions, methods=["GET"]),
    Route("/regions", create_region, methods=["POST"]),
    Route("/regions/{region_id}", get_region, methods=["GET"]),
    Route("/regions/{region_id}", put_region, methods=["PUT"]),
    Route("/regions/{region_id}", update_region, methods=["PATCH"]),
    Route("/regions/{region_id}", delete_region, methods=["DELETE"]),
]
