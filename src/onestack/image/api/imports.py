"""``POST /v2/images/{id}/import`` and the task resources that report on it."""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.errors import NotFound
from onestack.core.http import JSONResponse, read_json
from onestack.image import render
from onestack.image.api.common import authorize, check, context, state
from onestack.image.api.data import STORE_HEADER
from onestack.image.models import Task
from onestack.image.service import images as images_svc
from onestack.image.service import imports as svc


async def import_image(request: Request) -> Response:
    """``POST /v2/images/{image_id}/import`` (202): the import runs in the background."""
    st = state(request)
    ctx = await context(request)
    body = await read_json(request)
    task_id = await svc.start(st, ctx, request.path_params["image_id"], body,
                              request.headers.get(STORE_HEADER))
    del task_id  # clients find it in GET /v2/images/{id}/tasks, as with Glance
    return Response(status_code=202)


async def image_tasks(request: Request) -> Response:
    """``GET /v2/images/{image_id}/tasks``: the image's import tasks."""
    st = state(request)
    ctx = await context(request)
    async with st.db.read() as session:
        seen = await images_svc.get_visible(session, ctx, request.path_params["image_id"])
        check(request, ctx, "image:get_image", seen.target(ctx))
        rows = await svc.tasks_of(session, seen.image.id)
    return JSONResponse({"tasks": [render.task(t) for t in rows]})


async def list_tasks(request: Request) -> Response:
    """``GET /v2/tasks`` (admins): newest first, filtered by type and status."""
    st = state(request)
    await authorize(request, "image:get_tasks")
    stmt = select(Task)
    for key in ("type", "status"):
        if key in request.query_params:
            stmt = stmt.where(getattr(Task, key) == request.query_params[key])
    async with st.db.read() as session:
        rows = (await session.scalars(stmt.order_by(Task.created_at.desc()).limit(1000))).all()
    return JSONResponse({"tasks": [render.task(t, detail=False) for t in rows],
                         "first": "/v2/tasks", "schema": "/v2/schemas/tasks"})


async def create_task(request: Request) -> Response:
    """``POST /v2/tasks`` (admins): a legacy ``import`` task (201)."""
    st = state(request)
    ctx = await authorize(request, "image:add_task")
    task = await svc.create_task(st, ctx, await read_json(request))
    return JSONResponse(render.task(task), status_code=201)


async def show_task(request: Request) -> Response:
    """``GET /v2/tasks/{task_id}`` (admins)."""
    st = state(request)
    await authorize(request, "image:get_task")
    async with st.db.read() as session:
        task = await session.get(Task, request.path_params["task_id"])
    if task is None:
        raise NotFound(f"Task with the given id {request.path_params['task_id']} not found")
    return JSONResponse(render.task(task))


routes = [
    Route("/v2/images/{image_id}/import", import_image, methods=["POST"]),
    Route("/v2/images/{image_id}/tasks", image_tasks, methods=["GET"]),
    Route("/v2/tasks", list_tasks, methods=["GET"]),
    Route("/v2/tasks", create_task, methods=["POST"]),
    Route("/v2/tasks/{task_id}", show_task, methods=["GET"]),
]
