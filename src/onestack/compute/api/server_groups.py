"""``/os-server-groups``: list (``all_projects`` for admins, ``limit``/``offset``),
show, create, delete. Before 2.64 a group shows ``policies`` (one item) and an
empty ``metadata``; from 2.64 ``policy`` and ``rules``; 2.13 adds ``project_id``
and ``user_id``; 2.15 allows the soft policies."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute import errors
from onestack.compute.api import common as c
from onestack.compute.service import server_groups as svc
from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, read_json

POLICY = "os_compute_api:os-server-groups:"
def render(request: Request, view: svc.GroupView) -> dict[str, Any]:
    g = view.group
    out: dict[str, Any] = {"id": g.uuid, "name": g.name}
    if c.supports(request, "2.64"):
        out["policy"] = g.policy
        out["rules"] = dict(g.rules or {})
    else:
        out["policies"] = [g.policy]
        out["metadata"] = {}
    out["members"] = list(view.members)
    if c.supports(request, "2.13"):
        out["project_id"] = g.project_id
        out["user_id"] = g.user_id
    return out


async def index(request: Request) -> Response:
    ctx = await c.context(request)
    c.enforce(request, ctx, POLICY + "index")
    c.check_query(request, ("all_projects", "limit", "offset"))
    limit, offset = c.non_negative_query(request, "limit"), c.non_negative_query(request, "offset")
    project: str | None = ctx.project_id or ""
    # as Nova: all_projects is quietly ignored for non-admins
    if "all_projects" in request.query_params and c.is_admin(request, ctx):
        c.enforce(request, ctx, POLICY + "index:all_projects")
        project = None
    groups = await svc.list_groups(c.state(request), project)
    max_limit = c.state(request).conf.max_limit
    limit = min(max_limit, limit or max_limit)
    page = groups[offset or 0:(offset or 0) + limit]
    return JSONResponse({"server_groups": [render(request, g) for g in page]})


async def show(request: Request) -> Response:
    ctx = await c.context(request)
    view = await svc.get(c.state(request), request.path_params["group_id"])
    c.enforce(request, ctx, POLICY + "show", {"project_id": view.group.project_id})
    return JSONResponse({"server_group": render(request, view)})


async def delete(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    view = await svc.get(st, request.path_params["group_id"])
    c.enforce(request, ctx, POLICY + "delete", {"project_id": view.group.project_id})
    await svc.delete_group(st, view.group.uuid)
    return Response(status_code=204)


def _policies(request: Request, value: Any) -> str:
    """Before 2.64: ``policies``, an array of exactly one known policy."""
    allowed = list(svc.POLICIES[:2] if not c.supports(request, "2.15") else svc.POLICIES)
    if not isinstance(value, list):
        raise errors.invalid_field("policies", value, f"{value!r} is not of type 'array'")
    if len(value) < 1:
        raise errors.invalid_field("policies", value, f"{value!r} is too short")
    if len(value) != len({repr(v) for v in value}):
        raise errors.invalid_field("policies", value, f"{value!r} has non-unique elements")
    if len(value) > 1:
        raise errors.invalid_field("policies", value, f"{value!r} is too long")
    if not isinstance(value[0], str):
        raise errors.invalid_field("policies/0", value[0], f"{value[0]!r} is not of type "
                                   "'string'")
    if value[0] not in allowed:
        raise errors.invalid_field("policies/0", value[0], f"{value[0]!r} is not one of "
                                   f"{allowed!r}")
    return value[0]


def _rules(value: Any) -> dict[str, int]:
    """From 2.64: ``rules``, only ``max_server_per_host`` (a positive integer)."""
    rules = c.expect_object(value, "rules", ("max_server_per_host",), path="rules")
    if "max_server_per_host" not in rules:
        return {}
    return {"max_server_per_host": c.check_int(rules["max_server_per_host"],
                                               "rules/max_server_per_host", 1)}


def parse_create(request: Request, body: Any) -> tuple[str, str, dict[str, int]]:
    """Nova's create schema for the microversion: (name, policy, rules).

    Raises:
        BadRequest.
    """
    if c.supports(request, "2.64"):
        sg = c.member_object(body, "server_group", ("name", "policy", "rules"),
                             ("name", "policy"))
        name = c.check_name(sg["name"])
        policy = sg["policy"]
        if policy not in svc.POLICIES:
            raise errors.invalid_field("policy", policy, f"{policy!r} is not one of "
                                       f"{list(svc.POLICIES)!r}")
        rules = _rules(sg["rules"]) if "rules" in sg else {}
        if policy != svc.ANTI_AFFINITY and rules:
            raise BadRequest("Only anti-affinity policy supports rules.")
        return name, policy, rules
    sg = c.member_object(body, "server_group", ("name", "policies"), ("name", "policies"))
    name = c.check_name(sg["name"])
    return name, _policies(request, sg["policies"]), {}


async def create(request: Request) -> Response:
    ctx = await c.authorize(request, POLICY + "create")
    name, policy, rules = parse_create(request, await read_json(request))
    view = await svc.create(c.state(request), ctx.project_id or "", ctx.user_id or "",
                            name, policy, rules)
    return JSONResponse({"server_group": render(request, view)})


P = c.API_PREFIX
routes = [
    Route(f"{P}/os-server-groups", index, methods=["GET"]),
    Route(f"{P}/os-server-groups", create, methods=["POST"]),
    Route(f"{P}/os-server-groups/{{group_id}}", show, methods=["GET"]),
    Route(f"{P}/os-server-groups/{{group_id}}", delete, methods=["DELETE"]),
]
