"""``/os-migrations`` and ``/servers/{id}/migrations``.

``GET /os-migrations`` lists the migration records (here: resizes) with Nova's
filters (``host``, ``source_compute``, ``status``, ``instance_uuid``,
``migration_type``, ``hidden``; from 2.59 ``limit``, ``marker`` and
``changes-since``, newest first with a ``migrations_links`` next link; from
2.66 ``changes-before``; from 2.80 ``user_id`` and ``project_id``). The fields
grow with the microversion as Nova's do (2.23 ``migration_type``, 2.59
``uuid``, 2.80 ``user_id`` and ``project_id``). Policy: ``index`` (a project's
managers, admins), then, unless the query names the caller's own project,
``index:all_projects`` (admins); without ``index:host`` the host fields are
null.

``/servers/{id}/migrations`` (2.23) lists a server's in-progress live
migrations: OneStack has no live migration, so the list is empty and showing
one is a 404 with Nova's messages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute.api import common as c
from onestack.compute.models import Migration
from onestack.compute.service import migrations as msvc
from onestack.compute.service import servers as svc
from onestack.core.errors import BadRequest, NotFound
from onestack.core.http import JSONResponse

M = "os_compute_api:os-migrations:"
SM = "os_compute_api:servers:migrations:"
LIVE_IN_PROGRESS = ("queued", "preparing", "running", "post-migrating")


def _time(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _view(request: Request, m: Migration, add_host: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id, "instance_uuid": m.instance_uuid, "status": m.status,
        "source_compute": m.source_compute, "dest_compute": m.dest_compute,
        "source_node": m.source_node, "dest_node": m.dest_node, "dest_host": m.dest_host,
        "old_instance_type_id": m.old_instance_type_id,
        "new_instance_type_id": m.new_instance_type_id,
        "created_at": _time(m.created_at), "updated_at": _time(m.updated_at),
    }
    if not add_host:
        for key in ("source_compute", "dest_compute", "source_node", "dest_node", "dest_host"):
            out[key] = None
    if c.supports(request, "2.23"):
        out["migration_type"] = m.migration_type
        if m.migration_type == "live-migration" and m.status in LIVE_IN_PROGRESS:
            out["links"] = c.resource_links(
                request, f"servers/{m.instance_uuid}/migrations", str(m.id))
    if c.supports(request, "2.59"):
        out["uuid"] = m.uuid
    if c.supports(request, "2.80"):
        out["user_id"] = m.user_id
        out["project_id"] = m.project_id
    return out


def _filters(request: Request) -> msvc.Filters:
    # Nova hands the whole query to its filter at any version (its schemas let
    # unknown keys through), so migration_type, user_id and project_id filter
    # before the versions that document them too; the change times do not
    q = request.query_params
    f = msvc.Filters(host=c.query_one(request, "host"),
                     source_compute=c.query_one(request, "source_compute"),
                     status=c.query_one(request, "status"),
                     instance_uuid=c.query_one(request, "instance_uuid"),
                     migration_type=c.query_one(request, "migration_type"),
                     user_id=c.query_one(request, "user_id"),
                     project_id=c.query_one(request, "project_id"))
    hidden = c.query_one(request, "hidden")
    if hidden is not None:
        f.hidden = hidden.strip().lower() in ("1", "true", "t", "yes", "y", "on")
    if c.supports(request, "2.59") and q.get("changes-since"):
        f.changes_since = c.check_date_time(q["changes-since"], "changes-since")
    if c.supports(request, "2.66") and q.get("changes-before"):
        f.changes_before = c.check_date_time(q["changes-before"], "changes-before")
        if f.changes_since is not None and f.changes_before < f.changes_since:
            raise BadRequest("The value of changes-since must be less than or equal to "
                             "changes-before.")
    return f


async def index(request: Request) -> Response:
    ctx = await c.authorize(request, M + "index")
    project_id = c.query_one(request, "project_id")
    if not project_id or project_id != ctx.project_id:
        c.enforce(request, ctx, M + "index:all_projects")
    add_host = c.allowed(request, ctx, M + "index:host")
    f = _filters(request)
    st = c.state(request)
    paged = c.supports(request, "2.59")
    limit, marker = c.limit_and_marker(request) if paged else (None, None)
    rows = await msvc.list_migrations(st, f, sorted_=paged, limit=limit, marker=marker)
    items = [_view(request, m, add_host) for m in rows if not m.hidden]
    body: dict[str, Any] = {"migrations": items}
    if paged:
        links = c.collection_links(request, items, "os-migrations", "uuid")
        if links:
            body["migrations_links"] = links
    return JSONResponse(body)


async def _server(request: Request, rule: str) -> None:
    """The server exists and the caller may read its migrations.

    Raises:
        NotFound (also: before 2.23), Forbidden.
    """
    if not c.supports(request, "2.23"):
        raise NotFound("The resource could not be found.")
    ctx = await c.context(request)
    inst = await svc.get(c.state(request), request.path_params["server_id"])
    c.enforce(request, ctx, rule, {"project_id": inst.project_id, "user_id": inst.user_id})


async def server_index(request: Request) -> Response:
    await _server(request, SM + "index")
    # only in-progress live migrations are listed, and there is no live migration
    return JSONResponse({"migrations": []})


async def server_show(request: Request) -> Response:
    await _server(request, SM + "show")
    server_id, ident = request.path_params["server_id"], request.path_params["migration_id"]
    st = c.state(request)
    rows = await msvc.list_migrations(st, msvc.Filters(instance_uuid=server_id))
    found = next((m for m in rows if str(m.id) == ident), None)
    if found is None:
        raise NotFound(f"Migration {ident} for instance {server_id} could not be found.")
    if found.migration_type != "live-migration":
        raise NotFound(f"Migration {ident} for server {server_id} is not live-migration.")
    raise NotFound(f"Live migration {ident} for server {server_id} is not in progress.")


P = c.API_PREFIX
routes = [
    Route(f"{P}/os-migrations", index, methods=["GET"]),
    Route(f"{P}/servers/{{server_id}}/migrations", server_index, methods=["GET"]),
    Route(f"{P}/servers/{{server_id}}/migrations/{{migration_id}}", server_show,
          methods=["GET"]),
]
