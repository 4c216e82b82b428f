"""``/v2/images``: image records, actions and tags."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.errors import UnsupportedMediaType
from onestack.core.http import JSONResponse, no_content, read_json
from onestack.image import render
from onestack.image.api.common import authorize, check, context, state
from onestack.image.models import Image
from onestack.image.service import data as data_svc
from onestack.image.service import images as svc
from onestack.image.service import quotas


async def create_image(request: Request) -> Response:
    """``POST /v2/images``: a ``queued`` image record (201)."""
    st = state(request)
    ctx = await context(request)
    body = await read_json(request)
    owner = body.get("owner", ctx.project_id) if isinstance(body, dict) else ctx.project_id
    check(request, ctx, "image:add_image", {"project_id": owner})
    async with st.db.write() as session:
        await quotas.enforce(st, session, owner if isinstance(owner, str) else None,
                             {"image_count_total": 1})
        image = await svc.create(st, session, ctx, body)
        out = render.image(st, image)
    return JSONResponse(out, status_code=201, headers={"Location": f"/v2/images/{image.id}"})


async def list_images(request: Request) -> Response:
    """``GET /v2/images`` with Glance's filters, sorting and marker pagination."""
    st = state(request)
    ctx = await authorize(request, "image:get_images", {})
    params = request.query_params.multi_items()
    q = svc.list_query(st, ctx, params)
    async with st.db.read() as session:
        rows = await svc.list_images(st, session, ctx, q)
        items = [render.image(st, i) for i in rows]
    body: dict[str, object] = {"images": items, "first": "/v2/images", "schema": "/v2/schemas/images"}
    if q.limit and len(items) == q.limit:
        rest = [(k, v) for k, v in params if k != "marker"]
        body["next"] = "/v2/images?" + urlencode([*rest, ("marker", items[-1]["id"])])
    return JSONResponse(body)


async def show_image(request: Request) -> Response:
    """``GET /v2/images/{image_id}``."""
    st = state(request)
    ctx = await context(request)
    async with st.db.read() as session:
        seen = await svc.get_visible(session, ctx, request.path_params["image_id"])
        check(request, ctx, "image:get_image", seen.target(ctx))
        out = render.image(st, seen.image)
    return JSONResponse(out)


async def update_image(request: Request) -> Response:
    """``PATCH /v2/images/{image_id}`` with a Glance JSON patch."""
    st = state(request)
    ctx = await context(request)
    media = request.headers.get("content-type", "").split(";")[0].strip()
    if media not in svc.PATCH_TYPES:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {media or '(none)'}; use one of {', '.join(svc.PATCH_TYPES)}",
            headers={"Accept-Patch": ", ".join(svc.PATCH_TYPES)},
        )
    ops = await read_json(request)
    async with st.db.write() as session:
        seen = await svc.get_visible(session, ctx, request.path_params["image_id"])
        check(request, ctx, "image:modify_image", seen.target(ctx))
        image = await svc.patch(st, session, ctx, seen, ops)
        out = render.image(st, image)
    return JSONResponse(out)


async def delete_image(request: Request) -> Response:
    """``DELETE /v2/images/{image_id}``: the record now, its data right after."""
    st = state(request)
    ctx = await context(request)
    image_id = request.path_params["image_id"]
    async with st.db.write() as session:
        seen = await svc.get_visible(session, ctx, image_id)
        check(request, ctx, "image:delete_image", seen.target(ctx))
        stored = await svc.delete(session, seen.image)
        stored.append((st.staging.id, data_svc.staging_location(st, image_id)))
        if st.jobs is not None:
            await st.jobs.submit(session, "delete_data", {"data": stored})
    if st.jobs is None:
        await data_svc.delete_data(st, stored)
    return no_content()


async def _action(request: Request, rule: str, apply: Callable[[Image], None]) -> Response:
    st = state(request)
    ctx = await context(request)
    async with st.db.write() as session:
        seen = await svc.get_visible(session, ctx, request.path_params["image_id"])
        check(request, ctx, rule, seen.target(ctx))
        apply(seen.image)
    return no_content()


async def deactivate(request: Request) -> Response:
    """``POST /v2/images/{image_id}/actions/deactivate`` (admins)."""
    return await _action(request, "image:deactivate", svc.deactivate)


async def reactivate(request: Request) -> Response:
    """``POST /v2/images/{image_id}/actions/reactivate`` (admins)."""
    return await _action(request, "image:reactivate", svc.reactivate)


async def add_tag(request: Request) -> Response:
    """``PUT /v2/images/{image_id}/tags/{tag}`` (204, idempotent)."""
    st = state(request)
    ctx = await context(request)
    async with st.db.write() as session:
        seen = await svc.get_visible(session, ctx, request.path_params["image_id"])
        check(request, ctx, "image:modify_image", seen.target(ctx))
        await svc.add_tag(st, session, seen.image, request.path_params["tag"])
    return no_content()


async def delete_tag(request: Request) -> Response:
    """``DELETE /v2/images/{image_id}/tags/{tag}`` (404 if the image lacks it)."""
    st = state(request)
    ctx = await context(request)
    async with st.db.write() as session:
        seen = await svc.get_visible(session, ctx, request.path_params["image_id"])
        check(request, ctx, "image:modify_image", seen.target(ctx))
        await svc.delete_tag(session, seen.image, request.path_params["tag"])
    return no_content()


async def delete_from_store(request: Request) -> Response:
    """``DELETE /v2/stores/{store_id}/{image_id}``: drop one store's copy of an
    active image's data (not its last copy)."""
    st = state(request)
    ctx = await context(request)
    store_id, image_id = request.path_params["store_id"], request.path_params["image_id"]
    async with st.db.write() as session:
        seen = await svc.get_visible(session, ctx, image_id)
        check(request, ctx, "image:delete_image_location", seen.target(ctx))
        stored = svc.remove_location(seen.image, store_id)
    await data_svc.delete_data(st, stored)
    return no_content()


routes = [
    Route("/v2/images", create_image, methods=["POST"]),
    Route("/v2/images", list_images, methods=["GET"]),
    Route("/v2/images/{image_id}", show_image, methods=["GET"]),
    Route("/v2/images/{image_id}", update_image, methods=["PATCH"]),
    Route("/v2/images/{image_id}", delete_image, methods=["DELETE"]),
    Route("/v2/images/{image_id}/actions/deactivate", deactivate, methods=["POST"]),
    Route("/v2/images/{image_id}/actions/reactivate", reactivate, methods=["POST"]),
    Route("/v2/images/{image_id}/tags/{tag:path}", add_tag, methods=["PUT"]),
    Route("/v2/images/{image_id}/tags/{tag:path}", delete_tag, methods=["DELETE"]),
    Route("/v2/stores/{store_id}/{image_id}", delete_from_store, methods=["DELETE"]),
]
