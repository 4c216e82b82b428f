"""``/servers/{id}/metadata`` (and ``/metadata/{key}``) and, from 2.26,
``/servers/{id}/tags`` (and ``/tags/{tag}``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute import errors
from onestack.compute.api import common as c
from onestack.compute.api.servers import _authorized_server
from onestack.compute.service import server_meta as svc
from onestack.core.errors import BadRequest, NotFound
from onestack.core.http import JSONResponse, read_json, service_url

SM = "os_compute_api:server-metadata:"
ST = "os_compute_api:os-server-tags:"
MAX_TAG = 60


# -- metadata ------------------------------------------------------------------------------

async def _meta_body(request: Request, root: str) -> Any:
    body = await read_json(request)
    return c.expect_object(body, root, (root,), (root,))[root]


async def meta_index(request: Request) -> Response:
    _ctx, inst = await _authorized_server(request, SM + "index")
    return JSONResponse({"metadata": dict(inst.metadata_ or {})})


async def meta_create(request: Request) -> Response:
    """POST: merge the given items into the metadata; the whole metadata."""
    ctx, inst = await _authorized_server(request, SM + "create")
    items = c.check_metadata(await _meta_body(request, "metadata"))
    out = await svc.change_metadata(c.state(request), inst.uuid, action="update metadata",
                                    is_admin=c.is_admin(request, ctx), update=items)
    return JSONResponse({"metadata": out})


async def meta_update_all(request: Request) -> Response:
    """PUT: replace the metadata with the given items."""
    ctx, inst = await _authorized_server(request, SM + "update_all")
    items = c.check_metadata(await _meta_body(request, "metadata"))
    await svc.change_metadata(c.state(request), inst.uuid, action="update metadata",
                              is_admin=c.is_admin(request, ctx), update=items, replace=True)
    return JSONResponse({"metadata": items})


async def meta_show(request: Request) -> Response:
    _ctx, inst = await _authorized_server(request, SM + "show")
    key = request.path_params["key"]
    meta = inst.metadata_ or {}
    if key not in meta:
        raise svc.item_not_found()
    return JSONResponse({"meta": {key: meta[key]}})


async def meta_update(request: Request) -> Response:
    """PUT one item; the body's key must be the path's."""
    ctx, inst = await _authorized_server(request, SM + "update")
    key = request.path_params["key"]
    item = c.check_metadata(await _meta_body(request, "meta"), "meta", exactly_one=True)
    if key not in item:
        raise BadRequest("Request body and URI mismatch")
    await svc.change_metadata(c.state(request), inst.uuid, action="update metadata",
                              is_admin=c.is_admin(request, ctx), update=item)
    return JSONResponse({"meta": item})


async def meta_delete(request: Request) -> Response:
    ctx, inst = await _authorized_server(request, SM + "delete")
    await svc.change_metadata(c.state(request), inst.uuid, action="delete metadata",
                              is_admin=c.is_admin(request, ctx),
                              delete_key=request.path_params["key"])
    return Response(status_code=204)


# -- tags ----------------------------------------------------------------------------------

def _tags_version(request: Request) -> None:
    if not c.supports(request, "2.26"):
        raise NotFound("The resource could not be found.")


def tag_problem(tag: Any, min_length: int = 1) -> str | None:
    """Why ``tag`` is not a valid tag (a string of 1 to 60 characters without
    ``/`` or ``,``; a device tag may be empty: ``min_length`` 0), or None."""
    if not isinstance(tag, str):
        return f"{tag!r} is not of type 'string'"
    if len(tag) < min_length:
        return f"{tag!r} is too short"
    if len(tag) > MAX_TAG:
        return f"{tag!r} is too long"
    if "/" in tag or "," in tag:
        return f"{tag!r} does not match '^[^,/]*$'"
    return None


def check_path_tag(tag: str) -> str:
    problem = tag_problem(tag)
    if problem is not None:
        raise BadRequest(f"Tag '{tag}' is invalid. It must be a non empty string without "
                         f"characters '/' and ','. Validation error message: {problem}")
    return tag


async def tags_index(request: Request) -> Response:
    _tags_version(request)
    _ctx, inst = await _authorized_server(request, ST + "index")
    return JSONResponse({"tags": list(inst.tags or [])})


async def tags_update_all(request: Request) -> Response:
    _tags_version(request)
    _ctx, inst = await _authorized_server(request, ST + "update_all")
    body = await read_json(request)
    tags = c.expect_object(body, "", ("tags",), ("tags",))["tags"]
    if not isinstance(tags, list):
        raise errors.invalid_field("tags", tags, f"{tags!r} is not of type 'array'")
    if len(tags) > svc.MAX_TAGS:
        raise errors.invalid_field("tags", tags, f"{tags!r} is too long")
    for tag in tags:
        problem = tag_problem(tag)
        if problem is not None:
            raise errors.invalid_field("tags", tag, problem)
    out, _ = await svc.change_tags(c.state(request), inst.uuid, "update tags", replace=tags)
    return JSONResponse({"tags": out})


async def tags_delete_all(request: Request) -> Response:
    _tags_version(request)
    _ctx, inst = await _authorized_server(request, ST + "delete_all")
    await svc.change_tags(c.state(request), inst.uuid, "delete tags", clear=True)
    return Response(status_code=204)


async def tag_show(request: Request) -> Response:
    _tags_version(request)
    _ctx, inst = await _authorized_server(request, ST + "show")
    tag = request.path_params["tag"]
    if tag not in (inst.tags or []):
        raise NotFound(f"Server {inst.uuid} has no tag '{tag}'")
    return Response(status_code=204)


async def tag_update(request: Request) -> Response:
    """PUT one tag: 201 with its Location if new, 204 if the server had it."""
    _tags_version(request)
    _ctx, inst = await _authorized_server(request, ST + "update")
    tag = check_path_tag(request.path_params["tag"])
    _, changed = await svc.change_tags(c.state(request), inst.uuid, "update tag", add=tag)
    if not changed:
        return Response(status_code=204)
    location = f"{service_url(request)}{c.API_PREFIX}/servers/{inst.uuid}/tags/{tag}"
    return Response(status_code=201, headers={"Location": location})


async def tag_delete(request: Request) -> Response:
    _tags_version(request)
    _ctx, inst = await _authorized_server(request, ST + "delete")
    await svc.change_tags(c.state(request), inst.uuid, "delete tag",
                          remove=request.path_params["tag"])
    return Response(status_code=204)


P = c.API_PREFIX + "/servers/{server_id}"
routes = [
    Route(f"{P}/metadata", meta_index, methods=["GET"]),
    Route(f"{P}/metadata", meta_create, methods=["POST"]),
    Route(f"{P}/metadata", meta_update_all, methods=["PUT"]),
    Route(f"{P}/metadata/{{key}}", meta_show, methods=["GET"]),
    Route(f"{P}/metadata/{{key}}", meta_update, methods=["PUT"]),
    Route(f"{P}/metadata/{{key}}", meta_delete, methods=["DELETE"]),
    Route(f"{P}/tags", tags_index, methods=["GET"]),
    Route(f"{P}/tags", tags_update_all, methods=["PUT"]),
    Route(f"{P}/tags", tags_delete_all, methods=["DELETE"]),
    Route(f"{P}/tags/{{tag}}", tag_show, methods=["GET"]),
    Route(f"{P}/tags/{{tag}}", tag_update, methods=["PUT"]),
    Route(f"{P}/tags/{{tag}}", tag_delete, methods=["DELETE"]),
]
