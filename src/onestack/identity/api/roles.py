"""``/v3/roles``, ``/v3/roles/{prior}/implies`` and ``/v3/role_inferences``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.http import JSONResponse, no_content, read_json, validate
from onestack.identity.api.common import authorize, collection_links, state, v3_url
from onestack.identity.errors import not_found
from onestack.identity.models import Role
from onestack.identity.schemas.roles import RoleCreateBody, RoleUpdateBody
from onestack.identity.service import roles as svc


def render_role(request: Request, role: Role) -> dict[str, Any]:
    out = svc.role_dict(role)
    out["links"] = {"self": v3_url(request, "roles", role.id)}
    return out


def _brief(request: Request, role: Role) -> dict[str, Any]:
    """A role as inference rules show it: id, name and link."""
    return {"id": role.id, "name": role.name, "links": {"self": v3_url(request, "roles", role.id)}}


def _inference(request: Request, inf: svc.Inference, *, single: bool) -> dict[str, Any]:
    implies = [_brief(request, r) for r in inf.implies]
    return {"prior_role": _brief(request, inf.prior), "implies": implies[0] if single else implies}


async def _authorize_role(request: Request, role_id: str, action: str) -> Role:
    """Enforce ``identity:<action>_role`` (or ``_domain_role`` for a domain's role)
    before telling whether the role exists, as Keystone does."""
    async with state(request).read() as session:
        role = await svc.find_role(session, role_id)
    if role is None or not svc.is_domain_role(role):
        await authorize(request, f"identity:{action}_role")
        if role is None:
            raise not_found("role", role_id)
    else:
        await authorize(
            request, f"identity:{action}_domain_role", {"target": {"role": svc.role_dict(role)}}
        )
    return role


async def list_roles(request: Request) -> Response:
    """``GET /v3/roles``: global roles, or a domain's with ``?domain_id``."""
    params = request.query_params
    domain_id = params.get("domain_id")
    await authorize(request, "identity:list_domain_roles" if domain_id else "identity:list_roles")
    filters = {k: v for k, v in params.items() if k == "name" or k.startswith("name__")}
    st = state(request)
    async with st.read() as session:
        found = await svc.list_roles(session, domain_id=domain_id, filters=filters)
    body: dict[str, Any] = {"links": collection_links(request)}
    limit = st.settings.identity.list_limit
    if limit and len(found) > limit:
        found, body["truncated"] = found[:limit], True
    body["roles"] = [render_role(request, r) for r in found]
    return JSONResponse(body)


async def create_role(request: Request) -> Response:
    """``POST /v3/roles``."""
    data = validate(RoleCreateBody, await read_json(request)).role
    if data.domain_id:
        await authorize(
            request,
            "identity:create_domain_role",
            {"target": {"role": {"domain_id": data.domain_id}}},
        )
    else:
        await authorize(request, "identity:create_role")
    async with state(request).write() as session:
        role = await svc.create_role(session, data)
        out = render_role(request, role)
    return JSONResponse({"role": out}, status_code=201)


async def get_role(request: Request) -> Response:
    """``GET /v3/roles/{role_id}``."""
    role = await _authorize_role(request, request.path_params["role_id"], "get")
    return JSONResponse({"role": render_role(request, role)})


async def update_role(request: Request) -> Response:
    """``PATCH /v3/roles/{role_id}``."""
    data = validate(RoleUpdateBody, await read_json(request)).role
    role_id = request.path_params["role_id"]
    await _authorize_role(request, role_id, "update")
    async with state(request).write() as session:
        role = await svc.update_role(session, await svc.get_role(session, role_id), data)
        out = render_role(request, role)
    return JSONResponse({"role": out})


async def delete_role(request: Request) -> Response:
    """``DELETE /v3/roles/{role_id}``: also its assignments and inference rules."""
    role_id = request.path_params["role_id"]
    await _authorize_role(request, role_id, "delete")
    async with state(request).write() as session:
        await svc.delete_role(session, await svc.get_role(session, role_id))
    return no_content()


# -- implied roles ------------------------------------------------------------


def _pair(request: Request) -> tuple[str, str]:
    return request.path_params["prior_role_id"], request.path_params["implied_role_id"]


async def _authorize_rule(request: Request, *actions: str) -> None:
    """Keystone builds the target from the roles, so a missing one is a 404 first."""
    params = request.path_params
    target: dict[str, Any] = {}
    async with state(request).read() as session:
        target["prior_role"] = svc.role_dict(await svc.get_role(session, params["prior_role_id"]))
        if "implied_role_id" in params:
            implied = await svc.get_role(session, params["implied_role_id"])
            target["implied_role"] = svc.role_dict(implied)
    for action in actions:
        await authorize(request, action, {"target": target})


def _rule_body(request: Request, inf: svc.Inference, *parts: str) -> dict[str, Any]:
    return {
        "role_inference": _inference(request, inf, single=len(parts) == 4),
        "links": {"self": v3_url(request, *parts)},
    }


async def create_implied_role(request: Request) -> Response:
    """``PUT /v3/roles/{prior_role_id}/implies/{implied_role_id}``."""
    await _authorize_rule(request, "identity:create_implied_role")
    prior_id, implied_id = _pair(request)
    async with state(request).write() as session:
        inf = await svc.create_implied_role(session, prior_id, implied_id)
        body = _rule_body(request, inf, "roles", prior_id, "implies", implied_id)
    return JSONResponse(body, status_code=201)


async def get_implied_role(request: Request) -> Response:
    """``GET /v3/roles/{prior_role_id}/implies/{implied_role_id}``."""
    await _authorize_rule(request, "identity:get_implied_role")
    prior_id, implied_id = _pair(request)
    async with state(request).read() as session:
        inf = await svc.get_implied_role(session, prior_id, implied_id)
    return JSONResponse(_rule_body(request, inf, "roles", prior_id, "implies", implied_id))


async def check_implied_role(request: Request) -> Response:
    """``HEAD /v3/roles/{prior_role_id}/implies/{implied_role_id}``: 204 if the rule exists."""
    # Keystone enforces both rules on HEAD
    await _authorize_rule(request, "identity:check_implied_role", "identity:get_implied_role")
    async with state(request).read() as session:
        await svc.get_implied_role(session, *_pair(request))
    return no_content()


async def delete_implied_role(request: Request) -> Response:
    """``DELETE /v3/roles/{prior_role_id}/implies/{implied_role_id}``."""
    await _authorize_rule(request, "identity:delete_implied_role")
    async with state(request).write() as session:
        await svc.delete_implied_role(session, *_pair(request))
    return no_content()


async def list_implied_roles(request: Request) -> Response:
    """``GET /v3/roles/{prior_role_id}/implies``: what the role implies directly."""
    await _authorize_rule(request, "identity:list_implied_roles")
    prior_id = request.path_params["prior_role_id"]
    async with state(request).read() as session:
        inf = await svc.list_implied_roles(session, prior_id)
    return JSONResponse(_rule_body(request, inf, "roles", prior_id, "implies"))


async def list_role_inferences(request: Request) -> Response:
    """``GET /v3/role_inferences``: every rule, grouped by prior role."""
    await authorize(request, "identity:list_role_inference_rules")
    async with state(request).read() as session:
        inferences = await svc.list_inferences(session)
    return JSONResponse(
        {
            "role_inferences": [_inference(request, i, single=False) for i in inferences],
            "links": collection_links(request),
        }
    )


routes = [
    Route("/roles", list_roles, methods=["GET"]),
    Route("/roles", create_role, methods=["POST"]),
    Route("/roles/{role_id}", get_role, methods=["GET"]),
    Route("/roles/{role_id}", update_role, methods=["PATCH"]),
    Route("/roles/{role_id}", delete_role, methods=["DELETE"]),
    Route("/roles/{prior_role_id}/implies", list_implied_roles, methods=["GET"]),
    # HEAD before GET: Starlette lets a GET route answer HEAD too
    Route("/roles/{prior_role_id}/implies/{implied_role_id}", check_implied_role, methods=["HEAD"]),
    Route("/roles/{prior_role_id}/implies/{implied_role_id}", get_implied_role, methods=["GET"]),
    Route("/roles/{prior_role_id}/implies/{implied_role_id}", create_implied_role, methods=["PUT"]),
    Route(
        "/roles/{prior_role_id}/implies/{implied_role_id}", delete_implied_role, methods=["DELETE"]
    ),
    Route("/role_inferences", list_role_inferences, methods=["GET"]),
]
