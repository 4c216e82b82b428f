"""``/v2/images/{image_id}/members``: sharing an image with other projects."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, no_content, read_json
from onestack.image import render
from onestack.image.api.common import check, context, state
from onestack.image.service import images as images_svc
from onestack.image.service import members as svc


async def _seen(
    request: Request, session: AsyncSession, rule: str
) -> tuple[RequestContext, images_svc.Seen]:
    ctx = await context(request)
    seen = await images_svc.get_visible(session, ctx, request.path_params["image_id"])
    target = seen.target(ctx)
    if "member_id" in request.path_params and rule != "image:add_member":
        target = {**target, "member_id": request.path_params["member_id"]}
    check(request, ctx, rule, target)
    return ctx, seen


async def create_member(request: Request) -> Response:
    """``POST /v2/images/{image_id}/members`` ``{"member": "<project id>"}``."""
    st = state(request)
    body = await read_json(request)
    if not isinstance(body, dict) or "member" not in body:
        raise BadRequest("Member to be added not specified")
    async with st.db.write() as session:
        _, seen = await _seen(request, session, "image:add_member")
        member = await svc.add(st, session, seen.image, body["member"])
        out = render.member(member)
    return JSONResponse(out)


async def list_members(request: Request) -> Response:
    """``GET /v2/images/{image_id}/members``."""
    st = state(request)
    async with st.db.read() as session:
        ctx, seen = await _seen(request, session, "image:get_members")
        rows = await svc.list_for(session, ctx, seen.image)
        out = [render.member(m) for m in rows]
    return JSONResponse({"members": out, "schema": "/v2/schemas/members"})


async def show_member(request: Request) -> Response:
    """``GET /v2/images/{image_id}/members/{member_id}``."""
    st = state(request)
    async with st.db.read() as session:
        ctx, seen = await _seen(request, session, "image:get_member")
        member = await svc.get(session, ctx, seen.image, request.path_params["member_id"])
        out = render.member(member)
    return JSONResponse(out)


async def update_member(request: Request) -> Response:
    """``PUT /v2/images/{image_id}/members/{member_id}`` ``{"status": ...}``
    (the member's own answer)."""
    st = state(request)
    body = await read_json(request)
    if not isinstance(body, dict) or "status" not in body:
        raise BadRequest("Status not specified")
    async with st.db.write() as session:
        ctx, seen = await _seen(request, session, "image:modify_member")
        member = await svc.set_status(session, ctx, seen.image, request.path_params["member_id"],
                                      body["status"])
        out = render.member(member)
    return JSONResponse(out)


async def delete_member(request: Request) -> Response:
    """``DELETE /v2/images/{image_id}/members/{member_id}`` (the owner)."""
    st = state(request)
    async with st.db.write() as session:
        ctx, seen = await _seen(request, session, "image:delete_member")
        await svc.remove(session, ctx, seen.image, request.path_params["member_id"])
    return no_content()


routes = [
    Route("/v2/images/{image_id}/members", create_member, methods=["POST"]),
    Route("/v2/images/{image_id}/members", list_members, methods=["GET"]),
    Route("/v2/images/{image_id}/members/{member_id}", show_member, methods=["GET"]),
    Route("/v2/images/{image_id}/members/{member_id}", update_member, methods=["PUT"]),
    Route("/v2/images/{image_id}/members/{member_id}", delete_member, methods=["DELETE"]),
]
