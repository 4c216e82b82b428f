"""``/os-keypairs``: list (2.35 pagination), show, create (import, or generate
before 2.92), delete; ``user_id`` (2.10) lets an admin act on another user's."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute import errors
from onestack.compute.api import common as c
from onestack.compute.models import KeyPair
from onestack.compute.service import keypairs as svc
from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, read_json

POLICY = "os_compute_api:os-keypairs:"
NAME_PATTERN = r"^[_\- a-zA-Z0-9]+$"
NAME_PATTERN_V292 = r"^[_\-\@\. a-zA-Z0-9]+$"


def _user(request: Request, ctx: RequestContext) -> str:
    """The user whose key pairs are meant: ``user_id`` (from 2.10) or the caller."""
    if c.supports(request, "2.10"):
        wanted = c.query_one(request, "user_id")
        if wanted:
            return wanted
    assert ctx.user_id is not None
    return ctx.user_id


def render(request: Request, kp: KeyPair, *, detail: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": kp.name, "public_key": kp.public_key,
                           "fingerprint": kp.fingerprint}
    if c.supports(request, "2.2"):
        out["type"] = kp.type
    if detail:
        out.update({
            "user_id": kp.user_id,
            "created_at": kp.created_at.replace(tzinfo=None).isoformat(),
            "deleted": False, "deleted_at": None, "updated_at": None, "id": kp.id,
        })
    return out


async def index(request: Request) -> Response:
    ctx = await c.context(request)
    paged = c.supports(request, "2.35")
    c.check_query(request, ("user_id", "limit", "marker"))
    user_id = _user(request, ctx)
    c.enforce(request, ctx, POLICY + "index", {"user_id": user_id})
    pairs = await svc.list_keypairs(c.state(request), user_id)
    if paged:
        limit, marker = c.limit_and_marker(request)
        pairs = c.paginate(pairs, lambda kp: kp.name, limit, marker,
                           BadRequest(f"Marker {marker} could not be found."))
    body: dict[str, Any] = {
        "keypairs": [{"keypair": render(request, kp, detail=False)} for kp in pairs]}
    if paged:
        links = c.collection_links(request, [{"name": kp.name} for kp in pairs],
                                   "os-keypairs", "name")
        if links:
            body["keypairs_links"] = links
    return JSONResponse(body)


async def show(request: Request) -> Response:
    ctx = await c.context(request)
    c.check_query(request, ("user_id",))
    user_id = _user(request, ctx)
    c.enforce(request, ctx, POLICY + "show", {"user_id": user_id})
    kp = await svc.get_keypair(c.state(request), user_id, request.path_params["name"])
    return JSONResponse({"keypair": render(request, kp, detail=True)})


def parse_create(request: Request, body: Any) -> dict[str, Any]:
    """Nova's create schema for the request's microversion.

    Raises:
        BadRequest.
    """
    keys = ["name", "public_key"]
    if c.supports(request, "2.2"):
        keys.append("type")
    if c.supports(request, "2.10"):
        keys.append("user_id")
    v292 = c.supports(request, "2.92")
    required = ("name", "public_key") if v292 else ("name",)
    kp = c.member_object(body, "keypair", keys, required)
    name = c.check_name(kp["name"])
    pattern = NAME_PATTERN_V292 if v292 else NAME_PATTERN
    if not re.match(pattern, name):
        raise errors.invalid_field("name", name, f"{name!r} does not match {pattern!r}")
    key_type = kp.get("type", svc.SSH)
    if key_type not in (svc.SSH, svc.X509):
        raise errors.invalid_field("type", key_type, f"{key_type!r} is not one of "
                                   "['ssh', 'x509']")
    public_key = kp.get("public_key")
    if public_key is not None and not isinstance(public_key, str):
        raise errors.invalid_field("public_key", public_key,
                                   f"{public_key!r} is not of type 'string'")
    user_id = kp.get("user_id")
    if user_id is not None:
        c.check_string(user_id, "user_id")
    return {"name": name.strip(), "type": key_type, "public_key": public_key,
            "user_id": user_id}


async def create(request: Request) -> Response:
    ctx = await c.context(request)
    args = parse_create(request, await read_json(request))
    user_id: str = args["user_id"] or ctx.user_id or ""
    c.enforce(request, ctx, POLICY + "create", {"user_id": user_id})
    kp, private_key = await svc.create_keypair(
        c.state(request), user_id, args["name"], args["type"], args["public_key"],
        project_id=ctx.project_id)
    out = render(request, kp, detail=False)
    out["user_id"] = kp.user_id
    if private_key is not None:
        out["private_key"] = private_key
    return JSONResponse({"keypair": out}, status_code=201 if c.supports(request, "2.2") else 200)


async def delete(request: Request) -> Response:
    ctx = await c.context(request)
    c.check_query(request, ("user_id",))
    user_id = _user(request, ctx)
    c.enforce(request, ctx, POLICY + "delete", {"user_id": user_id})
    await svc.delete_keypair(c.state(request), user_id, request.path_params["name"])
    return Response(status_code=204 if c.supports(request, "2.2") else 202)


P = c.API_PREFIX
routes = [
    Route(f"{P}/os-keypairs", index, methods=["GET"]),
    Route(f"{P}/os-keypairs", create, methods=["POST"]),
    Route(f"{P}/os-keypairs/{{name}}", show, methods=["GET"]),
    Route(f"{P}/os-keypairs/{{name}}", delete, methods=["DELETE"]),
]
