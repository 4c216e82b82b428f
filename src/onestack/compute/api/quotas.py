"""``/os-quota-sets/{project_id}`` (``?user_id`` for one user's): show, ``/detail``
(``in_use``, ``limit``, ``reserved``), ``/defaults``, update (admins; ``force``)
and delete (back to the defaults); ``/os-quota-class-sets/{class}`` show and
update (admins). The resources shown and accepted follow the microversion: 2.36
drops the networking quotas from quota sets (2.50 from quota classes, which show
the server group quotas only from 2.50), 2.57 the injected file quotas. Where the
limits live (the identity service's unified limits for most of a project's) is
service/quotas.py's business; the API is Nova's either way."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute import errors
from onestack.compute.api import common as c
from onestack.compute.service import flavors as flavors_svc
from onestack.compute.service import quotas as svc
from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, read_json

POLICY = "os_compute_api:os-quota-sets:"
CLASS_POLICY = "os_compute_api:os-quota-class-sets:"
QUOTA_VALUE = re.compile(r"^-?[0-9]+$")
SERVER_GROUP_QUOTAS = ("server_groups", "server_group_members")


def hidden(request: Request) -> tuple[str, ...]:
    if c.supports(request, "2.57"):
        return svc.NETWORK_QUOTAS + svc.INJECTED_QUOTAS
    if c.supports(request, "2.36"):
        return svc.NETWORK_QUOTAS
    return ()


def class_hidden(request: Request) -> tuple[str, ...]:
    if c.supports(request, "2.57"):
        return svc.NETWORK_QUOTAS + svc.INJECTED_QUOTAS
    if c.supports(request, "2.50"):
        return svc.NETWORK_QUOTAS
    return ()


def _user(request: Request) -> str | None:
    return c.query_one(request, "user_id") or None


async def _verify_project(request: Request, ctx: RequestContext, project_id: str) -> None:
    """Nova's ``verify_project_id`` (see flavors.verify_project).

    Raises:
        BadRequest: the identity service does not know the project.
    """
    assert ctx.auth is not None
    await flavors_svc.verify_project(c.state(request), ctx.auth.token, project_id)


async def _start(request: Request, action: str) -> tuple[RequestContext, str]:
    ctx = await c.context(request)
    project_id = request.path_params["project_id"]
    c.enforce(request, ctx, POLICY + action, {"project_id": project_id})
    return ctx, project_id


async def show(request: Request) -> Response:
    ctx, project_id = await _start(request, "show")
    c.check_query(request, ("user_id",))
    await _verify_project(request, ctx, project_id)
    values = await svc.get(c.state(request), project_id, _user(request))
    return JSONResponse({"quota_set": {"id": project_id,
                                       **svc.visible(values, hidden(request))}})


async def detail(request: Request) -> Response:
    ctx, project_id = await _start(request, "detail")
    c.check_query(request, ("user_id",))
    await _verify_project(request, ctx, project_id)
    details = await svc.detail(c.state(request), project_id, _user(request))
    values = {k: d.as_dict() for k, d in details.items()}
    return JSONResponse({"quota_set": {"id": project_id,
                                       **svc.visible(values, hidden(request))}})


async def defaults(request: Request) -> Response:
    ctx, project_id = await _start(request, "defaults")
    await _verify_project(request, ctx, project_id)
    values = await svc.defaults(c.state(request))
    return JSONResponse({"quota_set": {"id": project_id,
                                       **svc.visible(values, hidden(request))}})


def quota_value(key: str, value: Any) -> int:
    """Nova's quota value: an integer, or a string of one, from -1 to 2**31-1.

    Raises:
        BadRequest.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise errors.invalid_field(key, value, f"{value!r} is not of type 'integer', 'string'")
    if isinstance(value, str) and not QUOTA_VALUE.match(value):
        raise errors.invalid_field(key, value, f"{value!r} does not match '^-?[0-9]+$'")
    number = int(value)
    if number < -1:
        raise errors.invalid_field(key, value, f"{value} is less than the minimum of -1")
    if number > c.MAX_INT:
        raise errors.invalid_field(key, value,
                                   f"{value} is greater than the maximum of {c.MAX_INT}")
    return number


def parse_values(body: Any, root: str, allowed: tuple[str, ...],
                 extra: tuple[str, ...] = ()) -> tuple[dict[str, int], dict[str, Any]]:
    """The quota values of ``body[root]`` and its other allowed keys (``force``)."""
    obj = c.member_object(body, root, (*allowed, *extra))
    values = {k: quota_value(k, v) for k, v in obj.items() if k not in extra}
    return values, {k: obj[k] for k in extra if k in obj}


async def update(request: Request) -> Response:
    ctx, project_id = await _start(request, "update")
    c.check_query(request, ("user_id",))
    allowed = tuple(k for k in svc.RESOURCES if k not in hidden(request))
    values, other = parse_values(await read_json(request), "quota_set", allowed, ("force",))
    force = c.check_bool(other["force"], "force") if "force" in other else False
    await _verify_project(request, ctx, project_id)
    after = await svc.update(c.state(request), project_id, _user(request), values, force)
    # as Nova, no "id" in the update's answer
    return JSONResponse({"quota_set": svc.visible(after, hidden(request))})


async def delete(request: Request) -> Response:
    _, project_id = await _start(request, "delete")
    c.check_query(request, ("user_id",))
    await svc.revert(c.state(request), project_id, _user(request))
    return Response(status_code=202)


# -- quota classes -----------------------------------------------------------------------

def _class_view(request: Request, values: dict[str, int]) -> dict[str, int]:
    out = svc.visible(values, class_hidden(request))
    if not c.supports(request, "2.50"):
        for k in SERVER_GROUP_QUOTAS:
            out.pop(k, None)
    return out


async def class_show(request: Request) -> Response:
    await c.authorize(request, CLASS_POLICY + "show", {})
    name = request.path_params["class_name"]
    await svc.prefetch(c.state(request))
    async with c.state(request).db.read() as s:
        values = await svc.class_limits(s, c.state(request), name)
    return JSONResponse({"quota_class_set": {"id": name, **_class_view(request, values)}})


async def class_update(request: Request) -> Response:
    await c.authorize(request, CLASS_POLICY + "update", {})
    name = request.path_params["class_name"]
    if not 1 <= len(name) <= 255:
        raise BadRequest("quota_class_name has a length of at most 255 characters.")
    allowed = tuple(k for k in svc.RESOURCES if k not in class_hidden(request))
    values, _ = parse_values(await read_json(request), "quota_class_set", allowed)
    after = await svc.update_class(c.state(request), name, values)
    return JSONResponse({"quota_class_set": _class_view(request, after)})


P = c.API_PREFIX
routes = [
    Route(f"{P}/os-quota-sets/{{project_id}}", show, methods=["GET"]),
    Route(f"{P}/os-quota-sets/{{project_id}}", update, methods=["PUT"]),
    Route(f"{P}/os-quota-sets/{{project_id}}", delete, methods=["DELETE"]),
    Route(f"{P}/os-quota-sets/{{project_id}}/detail", detail, methods=["GET"]),
    Route(f"{P}/os-quota-sets/{{project_id}}/defaults", defaults, methods=["GET"]),
    Route(f"{P}/os-quota-class-sets/{{class_name}}", class_show, methods=["GET"]),
    Route(f"{P}/os-quota-class-sets/{{class_name}}", class_update, methods=["PUT"]),
]
