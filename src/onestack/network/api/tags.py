"""``/v2.0/<collection>/{id}/tags``: the standard-attr-tag extension for every
taggable resource. Who may update a resource may tag it; a tag change bumps the
resource's revision, as Neutron's does."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, no_content, read_json
from onestack.network import errors, models
from onestack.network.api import common as c
from onestack.network.service import common as svc

MAX_TAG = 60

# collection -> (model, member)
TAGGABLE: dict[str, tuple[type[Any], str]] = {
    "networks": (models.Network, "network"),
    "subnets": (models.Subnet, "subnet"),
    "ports": (models.Port, "port"),
    "routers": (models.Router, "router"),
    "floatingips": (models.FloatingIP, "floatingip"),
    "security-groups": (models.SecurityGroup, "security_group"),
    "subnetpools": (models.SubnetPool, "subnetpool"),
}


def _check_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG or "," in tag:
        raise BadRequest(f"Invalid input for operation: '{tag}' is not a valid tag.")
    return tag


async def _row(request: Request, s: Any, write: bool) -> tuple[Any, str]:
    ctx = await c.context(request)
    coll = request.path_params["collection"]
    if coll not in TAGGABLE:
        raise errors.not_found("HTTPNotFound", "The resource could not be found.")
    model, member = TAGGABLE[coll]
    rid = request.path_params["id"]
    row = await s.get(model, rid)
    target: dict[str, Any] = {"project_id": getattr(row, "project_id", None)}
    if row is not None and member == "network":
        target.update({"shared": str(row.shared), "router:external": str(row.external)})
    if row is not None and member in ("port", "subnet"):
        net = await s.get(models.Network, row.network_id)
        target.update({"network:project_id": net.project_id if net else None,
                       "network:shared": str(bool(net and net.shared)),
                       "network:router:external": str(bool(net and net.external))})
    if row is None or not c.allowed(request, ctx, f"get_{member}", target):
        raise errors.not_found(f"{member.title().replace('_', '')}NotFound",
                               f"{member.replace('_', ' ').capitalize()} {rid} could not be "
                               "found.")
    if write:
        c.enforce(request, ctx, f"update_{member}", target)
    return row, rid


async def _tags(s: Any, rid: str) -> list[str]:
    return sorted((await s.scalars(select(models.Tag.tag).where(
        models.Tag.resource_id == rid))).all())


async def get_tags(request: Request) -> Response:
    st = c.state(request)
    async with st.db.read() as s:
        _, rid = await _row(request, s, False)
        return JSONResponse({"tags": await _tags(s, rid)})


async def check_tag(request: Request) -> Response:
    st = c.state(request)
    tag = request.path_params["tag"]
    async with st.db.read() as s:
        _, rid = await _row(request, s, False)
        if tag not in await _tags(s, rid):
            raise errors.not_found("TagNotFound", f"Tag {tag} could not be found for "
                                   f"{request.path_params['collection'][:-1]} {rid}.")
    return no_content()


async def replace_tags(request: Request) -> Response:
    st = c.state(request)
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("tags"), list):
        raise BadRequest("Invalid input for operation: 'tags' must be a list.")
    tags = sorted({_check_tag(t) for t in body["tags"]})
    async with st.db.write() as s:
        row, rid = await _row(request, s, True)
        await svc.delete_tags(s, rid)
        await s.flush()
        coll = request.path_params["collection"]
        for t in tags:
            s.add(models.Tag(resource_id=rid, tag=t, resource_type=TAGGABLE[coll][1]))
        svc.touch(row)
    return JSONResponse({"tags": tags})


async def add_tag(request: Request) -> Response:
    st = c.state(request)
    tag = _check_tag(request.path_params["tag"])
    async with st.db.write() as s:
        row, rid = await _row(request, s, True)
        if tag not in await _tags(s, rid):
            coll = request.path_params["collection"]
            s.add(models.Tag(resource_id=rid, tag=tag, resource_type=TAGGABLE[coll][1]))
            svc.touch(row)
    return Response(status_code=201)


async def delete_tags(request: Request) -> Response:
    st = c.state(request)
    async with st.db.write() as s:
        row, rid = await _row(request, s, True)
        await svc.delete_tags(s, rid)
        svc.touch(row)
    return no_content()


async def delete_tag(request: Request) -> Response:
    st = c.state(request)
    tag = request.path_params["tag"]
    async with st.db.write() as s:
        row, rid = await _row(request, s, True)
        existing = await s.get(models.Tag, (rid, tag))
        if existing is None:
            raise errors.not_found("TagNotFound", f"Tag {tag} could not be found for "
                                   f"{request.path_params['collection'][:-1]} {rid}.")
        await s.delete(existing)
        svc.touch(row)
    return no_content()


routes = [
    Route("/v2.0/{collection}/{id}/tags", get_tags, methods=["GET"]),
    Route("/v2.0/{collection}/{id}/tags", replace_tags, methods=["PUT"]),
    Route("/v2.0/{collection}/{id}/tags", delete_tags, methods=["DELETE"]),
    Route("/v2.0/{collection}/{id}/tags/{tag}", check_tag, methods=["GET"]),
    Route("/v2.0/{collection}/{id}/tags/{tag}", add_tag, methods=["PUT"]),
    Route("/v2.0/{collection}/{id}/tags/{tag}", delete_tag, methods=["DELETE"]),
]
