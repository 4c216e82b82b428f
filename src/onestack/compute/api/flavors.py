"""``/flavors``: list, detail, show, create, update (2.55), delete, and the
``addTenantAccess``/``removeTenantAccess`` actions; ``os-flavor-access`` and
``os-extra_specs`` below a flavor."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute import errors
from onestack.compute.api import common as c
from onestack.compute.service import flavors as svc
from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest, NotFound
from onestack.core.http import JSONResponse, read_json

MANAGE = "os_compute_api:os-flavor-manage:"
SPECS = "os_compute_api:os-flavor-extra-specs:"
ACCESS = "os_compute_api:os-flavor-access"
COLLECTION = "flavors"

LIST_QUERY = ("limit", "marker", "is_public", "minRam", "minDisk", "sort_key", "sort_dir")
CREATE_KEYS = ("name", "id", "ram", "vcpus", "disk", "OS-FLV-EXT-DATA:ephemeral", "swap",
               "rxtx_factor", "os-flavor-access:is_public")
ID_PATTERN = r"^(?! )[a-zA-Z0-9. _-]+(?<! )$"
SPEC_KEY_PATTERN = r"^[a-zA-Z0-9-_:. ]{1,255}$"
SQL_SP_FLOAT_MAX = 3.40282e38


def viewer(request: Request, ctx: RequestContext) -> svc.Viewer:
    return svc.Viewer(ctx.project_id, c.is_admin(request, ctx))


def shows_specs(request: Request, ctx: RequestContext) -> bool:
    """From 2.61 flavor bodies carry ``extra_specs`` when the caller may read them."""
    return c.supports(request, "2.61") and c.allowed(request, ctx, SPECS + "index")


# -- rendering -----------------------------------------------------------------------


def brief(request: Request, view: svc.FlavorView) -> dict[str, Any]:
    f = view.flavor
    out: dict[str, Any] = {
        "id": f.flavorid, "name": f.name,
        "links": c.resource_links(request, COLLECTION, f.flavorid),
    }
    if c.supports(request, "2.55"):
        out["description"] = f.description
    return out


def full(request: Request, view: svc.FlavorView, with_specs: bool) -> dict[str, Any]:
    f = view.flavor
    out: dict[str, Any] = {
        "id": f.flavorid,
        "name": f.name,
        "ram": f.memory_mb,
        "disk": f.root_gb,
        # before 2.75 a zero swap shows as "" (Nova's quirk)
        "swap": f.swap if c.supports(request, "2.75") else (f.swap or ""),
        "OS-FLV-EXT-DATA:ephemeral": f.ephemeral_gb,
        "OS-FLV-DISABLED:disabled": f.disabled,
        "vcpus": f.vcpus,
        "os-flavor-access:is_public": f.is_public,
        "rxtx_factor": f.rxtx_factor or "",
        "links": c.resource_links(request, COLLECTION, f.flavorid),
    }
    if c.supports(request, "2.55"):
        out["description"] = f.description
    if with_specs:
        out["extra_specs"] = view.extra_specs
    return out


# -- list, show ----------------------------------------------------------------------


def _int_filter(request: Request, name: str) -> int | None:
    raw = c.query_one(request, name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"Invalid {name} filter [{raw}]") from None


def _is_public(raw: str | None) -> bool | None:
    """The admin's ``is_public`` filter: absent means true, ``none`` means all."""
    if raw is None:
        return True
    if raw.strip().lower() == "none":
        return None
    value = raw.strip().lower()
    if value in ("1", "t", "true", "on", "y", "yes"):
        return True
    if value in ("0", "f", "false", "off", "n", "no"):
        return False
    raise BadRequest(f"Invalid is_public filter [{raw}]")


async def _list(request: Request, detail: bool) -> Response:
    ctx = await c.context(request)
    c.check_query(request, LIST_QUERY)
    sort_key = c.query_one(request, "sort_key") or "flavorid"
    sort_dir = c.query_one(request, "sort_dir") or "asc"
    if sort_key not in svc.SORT_KEYS:
        raise errors.invalid_query("sort_key", sort_key,
                                   f"{sort_key!r} is not one of {list(svc.SORT_KEYS)!r}")
    if sort_dir not in ("asc", "desc"):
        raise errors.invalid_query("sort_dir", sort_dir,
                                   f"{sort_dir!r} is not one of ['asc', 'desc']")
    limit, marker = c.limit_and_marker(request)
    who = viewer(request, ctx)
    with_specs = detail and shows_specs(request, ctx)
    views = await svc.list_flavors(
        c.state(request), who,
        is_public=_is_public(c.query_one(request, "is_public")) if who.is_admin else True,
        min_ram=_int_filter(request, "minRam"), min_disk=_int_filter(request, "minDisk"),
        sort_key=sort_key, sort_dir=sort_dir, with_specs=with_specs,
    )
    page = c.paginate(views, lambda v: v.flavor.flavorid, limit, marker,
                      BadRequest(f"marker [{marker}] not found"))
    items = [full(request, v, with_specs) if detail else brief(request, v) for v in page]
    body: dict[str, Any] = {"flavors": items}
    links = c.collection_links(request, items, "flavors/detail" if detail else COLLECTION, "id")
    if links:
        body["flavors_links"] = links
    return JSONResponse(body)


async def index(request: Request) -> Response:
    return await _list(request, detail=False)


async def detail(request: Request) -> Response:
    return await _list(request, detail=True)


async def show(request: Request) -> Response:
    ctx = await c.context(request)
    with_specs = shows_specs(request, ctx)
    view = await svc.get_flavor(c.state(request), request.path_params["flavor_id"],
                                viewer(request, ctx), with_specs=with_specs)
    return JSONResponse({"flavor": full(request, view, with_specs)})


# -- create, update, delete ----------------------------------------------------------


def parse_create(request: Request, body: Any) -> dict[str, Any]:
    """The flavor's columns from a create body, checked as Nova's schema does.

    Raises:
        BadRequest.
    """
    keys = CREATE_KEYS + (("description",) if c.supports(request, "2.55") else ())
    f = c.member_object(body, "flavor", keys, ("name", "ram", "vcpus", "disk"))
    values: dict[str, Any] = {
        "name": c.check_name(f["name"]),
        "memory_mb": c.check_int(f["ram"], "ram", 1),
        "vcpus": c.check_int(f["vcpus"], "vcpus", 1),
        "root_gb": c.check_int(f["disk"], "disk", 0),
        "ephemeral_gb": c.check_int(f.get("OS-FLV-EXT-DATA:ephemeral", 0),
                                    "OS-FLV-EXT-DATA:ephemeral", 0),
        "swap": c.check_int(f.get("swap", 0), "swap", 0),
        "rxtx_factor": _rxtx(f.get("rxtx_factor", 1.0)),
        "is_public": c.check_bool(f.get("os-flavor-access:is_public", True),
                                  "os-flavor-access:is_public"),
        "flavorid": _flavor_id(f.get("id")),
    }
    if "description" in f:
        values["description"] = c.check_description(f["description"])
    return values


def _flavor_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise errors.invalid_field("id", value, f"{value!r} is not of type 'string', "
                                   "'number', 'null'")
    if isinstance(value, str):
        c.check_string(value, "id", min_length=1, max_length=255, pattern=ID_PATTERN)
    return str(value)


def _rxtx(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise errors.invalid_field("rxtx_factor", value,
                                   f"{value!r} is not of type 'number', 'string'")
    if isinstance(value, str) and not re.match(r"^[0-9]+(\.[0-9]+)?$", value):
        raise errors.invalid_field("rxtx_factor", value,
                                   f"{value!r} does not match '^[0-9]+(\\.[0-9]+)?$'")
    number = float(value)
    if not 0 < number <= SQL_SP_FLOAT_MAX:
        raise errors.invalid_field("rxtx_factor", value,
                                   f"{value} is not between 0 (exclusive) and {SQL_SP_FLOAT_MAX}")
    return number


async def create(request: Request) -> Response:
    ctx = await c.context(request)
    values = parse_create(request, await read_json(request))
    c.enforce(request, ctx, MANAGE + "create", {})
    view = await svc.create_flavor(c.state(request), values)
    return JSONResponse({"flavor": full(request, view, shows_specs(request, ctx))})


async def update(request: Request) -> Response:
    if not c.supports(request, "2.55"):
        raise NotFound("The resource could not be found.")
    ctx = await c.context(request)
    f = await c.body_object(request, "flavor", ("description",), ("description",))
    description = c.check_description(f["description"])
    c.enforce(request, ctx, MANAGE + "update", {})
    with_specs = shows_specs(request, ctx)
    view = await svc.update_description(c.state(request), request.path_params["flavor_id"],
                                        description, viewer(request, ctx),
                                        with_specs=with_specs)
    return JSONResponse({"flavor": full(request, view, with_specs)})


async def delete(request: Request) -> Response:
    await c.authorize(request, MANAGE + "delete", {})
    await svc.delete_flavor(c.state(request), request.path_params["flavor_id"])
    return Response(status_code=202)


# -- access --------------------------------------------------------------------------


async def list_access(request: Request) -> Response:
    ctx = await c.authorize(request, ACCESS)
    return JSONResponse(await svc.list_access(
        c.state(request), request.path_params["flavor_id"], viewer(request, ctx)))


async def action(request: Request) -> Response:
    ctx = await c.context(request)
    body = await read_json(request)
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("Malformed request body")
    name = next(iter(body))
    if name not in ("addTenantAccess", "removeTenantAccess"):
        raise BadRequest(f"There is no such action: {name}")
    args = c.member_object(body, name, ("tenant",), ("tenant",))
    tenant = c.check_string(args["tenant"], "tenant", min_length=1, max_length=255)
    assert tenant is not None
    st, flavorid, who = c.state(request), request.path_params["flavor_id"], viewer(request, ctx)
    if name == "addTenantAccess":
        c.enforce(request, ctx, ACCESS + ":add_tenant_access", {})
        assert ctx.auth is not None
        await svc.verify_project(st, ctx.auth.token, tenant)
        result = await svc.add_access(st, flavorid, tenant, who,
                                      refuse_public=c.supports(request, "2.7"))
    else:
        c.enforce(request, ctx, ACCESS + ":remove_tenant_access", {})
        result = await svc.remove_access(st, flavorid, tenant, who)
    return JSONResponse(result)


# -- extra specs ---------------------------------------------------------------------


def _check_specs(specs: Any, field: str = "extra_specs") -> dict[str, str]:
    """Keys of Nova's metadata pattern, values strings (or numbers) up to 255."""
    if not isinstance(specs, dict):
        raise errors.invalid_field(field, specs, f"{specs!r} is not of type 'object'")
    out = {}
    for key, value in specs.items():
        if not re.match(SPEC_KEY_PATTERN, key):
            raise errors.invalid_field(field, specs, "Additional properties are not allowed "
                                       f"({key!r} was unexpected)")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise errors.invalid_field(f"{field}/{key}", value,
                                       f"{value!r} is not of type 'string', 'number'")
        text = str(value)
        if len(text) > 255:
            raise errors.invalid_field(f"{field}/{key}", value, f"{value!r} is too long")
        out[key] = text
    return out


async def list_specs(request: Request) -> Response:
    ctx = await c.authorize(request, SPECS + "index")
    specs = await svc.get_extra_specs(c.state(request), request.path_params["flavor_id"],
                                      viewer(request, ctx))
    return JSONResponse({"extra_specs": specs})


async def create_specs(request: Request) -> Response:
    ctx = await c.context(request)
    body = c.expect_object(await read_json(request), "", ("extra_specs",), ("extra_specs",))
    specs = _check_specs(body["extra_specs"])
    c.enforce(request, ctx, SPECS + "create", {})
    await svc.set_extra_specs(c.state(request), request.path_params["flavor_id"], specs,
                              viewer(request, ctx))
    return JSONResponse(body)


async def show_spec(request: Request) -> Response:
    ctx = await c.authorize(request, SPECS + "show")
    flavorid, key = request.path_params["flavor_id"], request.path_params["key"]
    specs = await svc.get_extra_specs(c.state(request), flavorid, viewer(request, ctx))
    if key not in specs:
        raise svc.spec_not_found(flavorid, key)
    return JSONResponse({key: specs[key]})


async def update_spec(request: Request) -> Response:
    ctx = await c.context(request)
    body = await read_json(request)
    specs = _check_specs(body, "")
    if len(specs) != 1:
        raise BadRequest(f"{body!r} has {'too many' if specs else 'too few'} properties"
                         if isinstance(body, dict) else "Malformed request body")
    c.enforce(request, ctx, SPECS + "update", {})
    key = request.path_params["key"]
    if key not in specs:
        raise BadRequest("Request body and URI mismatch")
    await svc.set_extra_specs(c.state(request), request.path_params["flavor_id"], specs,
                              viewer(request, ctx))
    return JSONResponse(body)


async def delete_spec(request: Request) -> Response:
    ctx = await c.authorize(request, SPECS + "delete", {})
    await svc.delete_extra_spec(c.state(request), request.path_params["flavor_id"],
                                request.path_params["key"], viewer(request, ctx))
    return Response(status_code=200)


P = c.API_PREFIX
routes = [
    Route(f"{P}/flavors", index, methods=["GET"]),
    Route(f"{P}/flavors", create, methods=["POST"]),
    Route(f"{P}/flavors/detail", detail, methods=["GET"]),
    Route(f"{P}/flavors/{{flavor_id}}", show, methods=["GET"]),
    Route(f"{P}/flavors/{{flavor_id}}", update, methods=["PUT"]),
    Route(f"{P}/flavors/{{flavor_id}}", delete, methods=["DELETE"]),
    Route(f"{P}/flavors/{{flavor_id}}/action", action, methods=["POST"]),
    Route(f"{P}/flavors/{{flavor_id}}/os-flavor-access", list_access, methods=["GET"]),
    Route(f"{P}/flavors/{{flavor_id}}/os-extra_specs", list_specs, methods=["GET"]),
    Route(f"{P}/flavors/{{flavor_id}}/os-extra_specs", create_specs, methods=["POST"]),
    Route(f"{P}/flavors/{{flavor_id}}/os-extra_specs/{{key}}", show_spec, methods=["GET"]),
    Route(f"{P}/flavors/{{flavor_id}}/os-extra_specs/{{key}}", update_spec, methods=["PUT"]),
    Route(f"{P}/flavors/{{flavor_id}}/os-extra_specs/{{key}}", delete_spec,
          methods=["DELETE"]),
]
