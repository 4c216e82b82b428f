"""``/os-aggregates``: list, create, show, update, delete and the actions
``add_host``, ``remove_host`` and ``set_metadata`` (all admin-only, as in Nova);
2.41 shows each aggregate's ``uuid``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute import errors
from onestack.compute.api import common as c
from onestack.compute.service import aggregates as svc
from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, read_json

A = "os_compute_api:os-aggregates:"
ACTIONS = ("add_host", "remove_host", "set_metadata")


def _usec(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).replace(tzinfo=None).isoformat(
        timespec="microseconds")


def view(request: Request, info: svc.AggregateInfo, full: bool = True) -> dict[str, Any]:
    row = info.row
    out: dict[str, Any] = {
        "id": row.id, "name": row.name, "availability_zone": info.availability_zone,
        "created_at": _usec(row.created_at), "updated_at": _usec(row.updated_at),
        "deleted": False, "deleted_at": None,
    }
    if full:
        out["hosts"] = list(info.hosts)
        out["metadata"] = dict(info.metadata)
    if c.supports(request, "2.41"):
        out["uuid"] = row.uuid
    return out


def _agg_id(request: Request) -> int:
    """Raises: BadRequest (not an integer, as Nova's ``validate_integer``)."""
    raw = request.path_params["aggregate_id"]
    try:
        return int(raw)
    except ValueError:
        raise BadRequest("Invalid input received: id must be an integer") from None


def _zone(value: Any) -> str | None:
    return c.check_string(value, "availability_zone", min_length=1, max_length=255,
                          nullable=True)


async def index(request: Request) -> Response:
    await c.authorize(request, A + "index", {})
    rows = await svc.list_aggregates(c.state(request))
    return JSONResponse({"aggregates": [view(request, r) for r in rows]})


async def create(request: Request) -> Response:
    await c.authorize(request, A + "create", {})
    body = await c.body_object(request, "aggregate", ("name", "availability_zone"), ("name",))
    name = c.check_name(body["name"])
    zone = _zone(body.get("availability_zone"))
    info = await svc.create(c.state(request), name, zone)
    return JSONResponse({"aggregate": view(request, info, full=False)})


async def show(request: Request) -> Response:
    await c.authorize(request, A + "show", {})
    info = await svc.get(c.state(request), _agg_id(request))
    return JSONResponse({"aggregate": view(request, info)})


async def update(request: Request) -> Response:
    await c.authorize(request, A + "update", {})
    agg_id = _agg_id(request)
    body = await c.body_object(request, "aggregate", ("name", "availability_zone"))
    if not body:
        raise errors.invalid_field("aggregate", body, "{} does not have enough properties")
    name = c.check_name(body["name"]) if "name" in body else None
    zone = _zone(body.get("availability_zone"))
    info = await svc.update(c.state(request), agg_id, name=name, zone=zone,
                            zone_given="availability_zone" in body)
    return JSONResponse({"aggregate": view(request, info)})


async def delete(request: Request) -> Response:
    await c.authorize(request, A + "delete", {})
    await svc.delete_aggregate(c.state(request), _agg_id(request))
    return Response(status_code=200)


def _metadata(value: Any) -> dict[str, str | None]:
    """``set_metadata``'s items: keys of 1 to 255 characters, string (at most 255)
    or null values."""
    meta = c.expect_object(value, "set_metadata", ("metadata",), ("metadata",),
                           path="set_metadata")["metadata"]
    if not isinstance(meta, dict):
        raise errors.invalid_field("set_metadata/metadata", meta,
                                   f"{meta!r} is not of type 'object'")
    for k, v in meta.items():
        if not 1 <= len(k) <= 255:
            raise errors.invalid_field("set_metadata/metadata", meta,
                                       f"Additional properties are not allowed ({k!r} "
                                       "was unexpected)")
        c.check_string(v, f"set_metadata/metadata/{k}", max_length=255, nullable=True)
    return dict(meta)


async def action(request: Request) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict) or len(body) != 1:
        await c.context(request)
        raise BadRequest("Malformed request body")
    if next(iter(body)) not in ACTIONS:
        await c.context(request)
        raise BadRequest(f"There is no such action: {next(iter(body))}")
    name, arg = next(iter(body.items()))
    await c.authorize(request, A + name, {})
    agg_id = _agg_id(request)
    st = c.state(request)
    if name == "set_metadata":
        info = await svc.set_metadata(st, agg_id, _metadata(arg))
    else:
        host = c.check_string(c.expect_object(arg, name, ("host",), ("host",),
                                              path=name)["host"],
                              f"{name}/host", min_length=1, max_length=255) or ""
        info = await (svc.add_host(st, agg_id, host) if name == "add_host"
                      else svc.remove_host(st, agg_id, host))
    return JSONResponse({"aggregate": view(request, info)})


P = c.API_PREFIX + "/os-aggregates"
routes = [
    Route(P, index, methods=["GET"]),
    Route(P, create, methods=["POST"]),
    Route(f"{P}/{{aggregate_id}}", show, methods=["GET"]),
    Route(f"{P}/{{aggregate_id}}", update, methods=["PUT"]),
    Route(f"{P}/{{aggregate_id}}", delete, methods=["DELETE"]),
    Route(f"{P}/{{aggregate_id}}/action", action, methods=["POST"]),
]
