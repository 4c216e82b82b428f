"""``/v2.0/quotas``: the quotas and quota_details extensions.

A project reads its own quotas; another project's need the ``get_quota`` policy
(admin by default); setting and resetting them need ``update_quota`` and
``delete_quota``. A PUT refuses a limit below current usage unless the body
says ``"force": true``, as Neutron does since 2025.1.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.context import RequestContext
from onestack.core.errors import NotImplementedYet
from onestack.core.http import JSONResponse, no_content, read_json
from onestack.network import errors
from onestack.network.api import common as c
from onestack.network.service import quotas as svc


def _may_read(request: Request, ctx: RequestContext, project_id: str) -> None:
    if project_id != ctx.project_id:
        c.enforce(request, ctx, "get_quota", {"project_id": project_id})


async def list_quotas(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    c.enforce(request, ctx, "get_quota", {"project_id": ctx.project_id})
    async with st.db.read() as s:
        items = await svc.all_quotas(st, s)
    items = [i for i in items if c.allowed(request, ctx, "get_quota", {"project_id": i["project_id"]})]
    return JSONResponse({"quotas": items})


async def create_quota(request: Request) -> Response:
    await c.context(request)
    raise NotImplementedYet("POST requests are not supported on this resource.")


async def own_project(request: Request) -> Response:
    ctx = await c.context(request)
    key = "tenant" if request.url.path.endswith("/tenant") else "project"
    if not ctx.project_id:
        raise errors.bad_request("QuotaMissingTenant", "Tenant-id was missing from quota request.")
    return JSONResponse({key: {f"{key}_id": ctx.project_id}})


async def show_quota(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    project_id = request.path_params["project_id"]
    _may_read(request, ctx, project_id)
    async with st.db.read() as s:
        out = await svc.project_quotas(st, s, project_id)
    return JSONResponse({"quota": out})


async def default_quota(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    _may_read(request, ctx, request.path_params["project_id"])
    return JSONResponse({"quota": svc.defaults(st)})


async def quota_details(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    project_id = request.path_params["project_id"]
    if project_id != ctx.project_id and not c.is_admin(request, ctx):
        raise errors.forbidden("AdminRequired", "User does not have admin privileges: Only "
                               "admin is authorized to access quotas for another project.")
    async with st.db.read() as s:
        out = await svc.details(st, s, project_id)
    return JSONResponse({"quota": out})


async def update_quota(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    project_id = request.path_params["project_id"]
    c.enforce(request, ctx, "update_quota", {"project_id": project_id})
    limits, force = svc.convert_limits(await read_json(request))
    async with st.db.write() as s:
        await svc.update(st, s, project_id, limits, force)
        await s.flush()
        out = await svc.project_quotas(st, s, project_id)
    return JSONResponse({"quota": out})


async def delete_quota(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    project_id = request.path_params["project_id"]
    c.enforce(request, ctx, "delete_quota", {"project_id": project_id})
    async with st.db.write() as s:
        await svc.reset(s, project_id)
    return no_content()


routes = [
    Route("/v2.0/quotas", list_quotas, methods=["GET"]),
    Route("/v2.0/quotas", create_quota, methods=["POST"]),
    Route("/v2.0/quotas/project", own_project, methods=["GET"]),
    Route("/v2.0/quotas/tenant", own_project, methods=["GET"]),
    Route("/v2.0/quotas/{project_id}", show_quota, methods=["GET"]),
    Route("/v2.0/quotas/{project_id}", update_quota, methods=["PUT"]),
    Route("/v2.0/quotas/{project_id}", delete_quota, methods=["DELETE"]),
    Route("/v2.0/quotas/{project_id}/default", default_quota, methods=["GET"]),
    Route("/v2.0/quotas/{project_id}/details", quota_details, methods=["GET"]),
]
