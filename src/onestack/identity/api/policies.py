"""``/v3/policies``: Keystone's deprecated policy blobs, stored and returned but
never enforced (``DATA_DIR/policy.yaml`` is what the policy engine reads)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, no_content, read_json, validate
from onestack.identity.api.common import authorize, collection_links, state, v3_url
from onestack.identity.errors import not_found
from onestack.identity.models import Policy
from onestack.identity.schemas.catalog import PolicyCreateBody, PolicyUpdateBody
from onestack.identity.service.catalog_admin import apply_filters, extra_of

ATTRS = ("id", "type", "blob", "links")


def render(request: Request, p: Policy) -> dict[str, Any]:
    out: dict[str, Any] = dict(p.extra)
    out.update(id=p.id, type=p.type, blob=p.blob,
               links={"self": v3_url(request, "policies", p.id)})
    return out


async def list_policies(request: Request) -> Response:
    """``GET /v3/policies`` (filter: type)."""
    await authorize(request, "identity:list_policies")
    async with state(request).read() as session:
        rows = (await session.scalars(select(Policy).order_by(Policy.id))).all()
    items = apply_filters(
        [render(request, p) for p in rows], request.query_params.multi_items(), ("type",)
    )
    return JSONResponse({"policies": items, "links": collection_links(request)})


async def create_policy(request: Request) -> Response:
    """``POST /v3/policies``."""
    await authorize(request, "identity:create_policy")
    data = validate(PolicyCreateBody, await read_json(request)).policy.given()
    async with state(request).write() as session:
        p = Policy(id=uuid.uuid4().hex, type=data["type"], blob=data["blob"],
                   extra=extra_of(data, ATTRS))
        session.add(p)
        await session.flush()
        body = {"policy": render(request, p)}
    return JSONResponse(body, status_code=201)


async def get_policy(request: Request) -> Response:
    """``GET /v3/policies/{policy_id}``."""
    await authorize(request, "identity:get_policy")
    policy_id = request.path_params["policy_id"]
    async with state(request).read() as session:
        p = await session.get(Policy, policy_id)
        if p is None:
            raise not_found("policy", policy_id)
    return JSONResponse({"policy": render(request, p)})


async def update_policy(request: Request) -> Response:
    """``PATCH /v3/policies/{policy_id}``."""
    await authorize(request, "identity:update_policy")
    policy_id = request.path_params["policy_id"]
    data = validate(PolicyUpdateBody, await read_json(request)).policy.given()
    if not data:
        raise BadRequest("Invalid input for field 'policy': {} does not have enough properties")
    if data.get("id") is not None and data["id"] != policy_id:
        raise BadRequest("Cannot change ID")
    async with state(request).write() as session:
        p = await session.get(Policy, policy_id)
        if p is None:
            raise not_found("policy", policy_id)
        if data.get("type") is not None:
            p.type = data["type"]
        if data.get("blob") is not None:
            p.blob = data["blob"]
        if extra := extra_of(data, ATTRS):
            p.extra = {**p.extra, **extra}
        await session.flush()
        body = {"policy": render(request, p)}
    return JSONResponse(body)


async def delete_policy(request: Request) -> Response:
    """``DELETE /v3/policies/{policy_id}``."""
    await authorize(request, "identity:delete_policy")
    policy_id = request.path_params["policy_id"]
    async with state(request).write() as session:
        p = await session.get(Policy, policy_id)
        if p is None:
            raise not_found("policy", policy_id)
        await session.delete(p)
    return no_content()


routes = [
    Route("/policies", list_policies, methods=["GET"]),
    Route("/policies", create_policy, methods=["POST"]),
    Route("/policies/{policy_id}", get_policy, methods=["GET"]),
    Route("/policies/{policy_id}", update_policy, methods=["PATCH"]),
    Route("/policies/{policy_id}", delete_policy, methods=["DELETE"]),
]
