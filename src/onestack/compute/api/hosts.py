"""``/os-hypervisors`` (list, detail, show, statistics), ``/os-services`` (list,
enable/disable/force down) and ``/os-simple-tenant-usage`` (list, show)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute import errors
from onestack.compute.api import common as c
from onestack.compute.models import Service
from onestack.compute.service import hosts as svc
from onestack.compute.service import usage as usage_svc
from onestack.compute.service.scheduler import _free
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest, NotFound
from onestack.core.http import JSONResponse, read_json

H = "os_compute_api:os-hypervisors:"
SV = "os_compute_api:os-services:"
U = "os_compute_api:os-simple-tenant-usage:"
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}$")
HYPERVISOR_VERSION = 1000  # the fake driver's (Nova's fake reports 1000)


def _usec(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).replace(tzinfo=None).isoformat(
        timespec="microseconds")


# -- os-hypervisors ------------------------------------------------------------------------

def _ident(request: Request, h: svc.Hypervisor) -> Any:
    return h.node.uuid if c.supports(request, "2.53") else h.node.id


def _service_ident(request: Request, service: Service | None) -> Any:
    if service is None:
        return None
    return service.uuid if c.supports(request, "2.53") else service.id


def hypervisor_view(request: Request, h: svc.Hypervisor, detail: bool,
                    with_servers: bool) -> dict[str, Any]:
    n, service = h.node, h.service
    disabled = n.disabled or bool(service and service.disabled)
    out: dict[str, Any] = {
        "id": _ident(request, h), "hypervisor_hostname": n.hypervisor_hostname,
        "state": "down" if service is not None and service.forced_down else "up",
        "status": "disabled" if disabled else "enabled",
    }
    if detail:
        out.update({
            "hypervisor_type": n.hypervisor_type, "hypervisor_version": HYPERVISOR_VERSION,
            "host_ip": None,
            "service": {"host": n.host, "id": _service_ident(request, service),
                        "disabled_reason": service.disabled_reason if service else None},
        })
        if c.supports(request, "2.88"):
            out["uptime"] = None
        else:
            cpu_info: Any = {}
            free_disk = _free(n)[2]
            out.update({
                "vcpus": n.vcpus, "memory_mb": n.memory_mb, "local_gb": n.local_gb,
                "vcpus_used": n.vcpus_used, "memory_mb_used": n.memory_mb_used,
                "local_gb_used": n.local_gb_used,
                "free_ram_mb": n.memory_mb - n.memory_mb_used,
                "free_disk_gb": n.local_gb - n.local_gb_used,
                "current_workload": 0, "running_vms": h.running_vms,
                "disk_available_least": max(free_disk, 0),
                "cpu_info": cpu_info if c.supports(request, "2.28") else json.dumps(cpu_info),
            })
    if with_servers and h.servers:
        out["servers"] = [{"uuid": u, "name": name} for u, name in h.servers]
    return out


def _hypervisor_query(request: Request) -> tuple[bool, str | None]:
    """(with_servers, hostname pattern) of 2.53's query."""
    if not c.supports(request, "2.53"):
        return False, None
    c.check_query(request, ("limit", "marker", "hypervisor_hostname_pattern",
                            "with_servers"), strict_from="2.53")
    raw = c.query_one(request, "with_servers")
    with_servers = c.check_bool(raw, "with_servers") if raw is not None else False
    pattern = c.query_one(request, "hypervisor_hostname_pattern")
    if pattern is not None and ("limit" in request.query_params
                                or "marker" in request.query_params):
        raise BadRequest("Paging over hypervisors with the hypervisor_hostname_pattern "
                         "query parameter is not supported.")
    return with_servers, pattern


async def _hypervisor_list(request: Request, detail: bool) -> Response:
    await c.authorize(request, H + ("list-detail" if detail else "list"))
    with_servers, pattern = _hypervisor_query(request)
    rows = await svc.hypervisors(c.state(request), with_servers=with_servers, pattern=pattern)
    if pattern is not None and not rows:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    links: list[dict[str, str]] = []
    if c.supports(request, "2.33"):
        limit, marker = c.limit_and_marker(request)
        rows = c.paginate(rows, lambda h: str(_ident(request, h)), limit, marker,
                          BadRequest(f"marker [{marker}] not found"))
        items = [{"id": _ident(request, h)} for h in rows]
        links = c.collection_links(request, items, "os-hypervisors/detail" if detail
                                   else "os-hypervisors", "id")
    body: dict[str, Any] = {"hypervisors": [hypervisor_view(request, h, detail, with_servers)
                                            for h in rows]}
    if links:
        body["hypervisors_links"] = links
    return JSONResponse(body)


async def hypervisors_index(request: Request) -> Response:
    return await _hypervisor_list(request, False)


async def hypervisors_detail(request: Request) -> Response:
    return await _hypervisor_list(request, True)


async def hypervisor_show(request: Request) -> Response:
    await c.authorize(request, H + "show")
    ident = request.path_params["hypervisor_id"]
    with_servers = False
    if c.supports(request, "2.53"):
        c.check_query(request, ("with_servers",), strict_from="2.53")
        raw = c.query_one(request, "with_servers")
        with_servers = c.check_bool(raw, "with_servers") if raw is not None else False
        if not UUID_RE.match(ident):
            raise BadRequest(f"Invalid uuid {ident}")
    h = await svc.hypervisor(c.state(request), ident, by_uuid=c.supports(request, "2.53"),
                             with_servers=with_servers)
    return JSONResponse({"hypervisor": hypervisor_view(request, h, True, with_servers)})


async def hypervisor_statistics(request: Request) -> Response:
    if c.supports(request, "2.88"):
        raise NotFound("The resource could not be found.")
    await c.authorize(request, H + "statistics")
    rows = await svc.hypervisors(c.state(request))
    keys = ("vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used")
    stats: dict[str, int] = {k: sum(getattr(h.node, k) for h in rows) for k in keys}
    stats["count"] = len(rows)
    stats["free_ram_mb"] = stats["memory_mb"] - stats["memory_mb_used"]
    stats["free_disk_gb"] = stats["local_gb"] - stats["local_gb_used"]
    stats["disk_available_least"] = sum(max(_free(h.node)[2], 0) for h in rows)
    stats["current_workload"] = 0
    stats["running_vms"] = sum(h.running_vms for h in rows)
    return JSONResponse({"hypervisor_statistics": stats})


# -- os-services ---------------------------------------------------------------------------

def service_view(request: Request, st: ComputeState, row: Service) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.uuid if c.supports(request, "2.53") else row.id, "binary": row.binary,
        "host": row.host, "zone": svc.zone_of(st, row),
        "status": "disabled" if row.disabled else "enabled", "state": svc.state_of(row),
        "updated_at": _usec(row.updated_at), "disabled_reason": row.disabled_reason,
    }
    if c.supports(request, "2.11"):
        out["forced_down"] = row.forced_down
    return out


async def services_index(request: Request) -> Response:
    await c.authorize(request, SV + "list")
    c.check_query(request, ("binary", "host"))
    st = c.state(request)
    rows = await svc.list_services(st, c.query_one(request, "binary"),
                                   c.query_one(request, "host"))
    return JSONResponse({"services": [service_view(request, st, r) for r in rows]})


async def _legacy_service_update(request: Request, action: str) -> Response:
    """Before 2.53: ``PUT /os-services/{enable,disable,disable-log-reason,force-down}``
    with the host and binary in the body."""
    allowed = ["host", "binary"]
    if action == "disable-log-reason":
        allowed.append("disabled_reason")
    if action == "force-down":
        if not c.supports(request, "2.11"):
            raise NotFound("Unknown action")
        allowed.append("forced_down")
    body = c.expect_object(await read_json(request), "", allowed, allowed)
    host = c.check_string(body["host"], "host", min_length=1) or ""
    binary = c.check_string(body["binary"], "binary", min_length=1) or ""
    change = svc.ServiceUpdate()
    if action == "force-down":
        change.forced_down = c.check_bool(body["forced_down"], "forced_down")
    else:
        change.status = "enabled" if action == "enable" else "disabled"
    if action == "disable-log-reason":
        change.disabled_reason = c.check_string(body["disabled_reason"], "disabled_reason",
                                                min_length=1, max_length=255)
        change.reason_given = True
    row = await svc.update_service(c.state(request), host=host, binary=binary, change=change)
    out: dict[str, Any] = {"host": row.host, "binary": row.binary}
    if action == "force-down":
        out["forced_down"] = row.forced_down
    else:
        out["status"] = "disabled" if row.disabled else "enabled"
    if action == "disable-log-reason":
        out["disabled_reason"] = row.disabled_reason
    return JSONResponse({"service": out})


async def service_update(request: Request) -> Response:
    await c.authorize(request, SV + "update")
    ident = request.path_params["service_id"]
    if not c.supports(request, "2.53"):
        if ident not in ("enable", "disable", "disable-log-reason", "force-down"):
            raise NotFound("Unknown action")
        return await _legacy_service_update(request, ident)
    if not UUID_RE.match(ident):
        raise BadRequest(f"Invalid uuid {ident}")
    body = c.expect_object(await read_json(request), "",
                           ("status", "disabled_reason", "forced_down"))
    change = svc.ServiceUpdate()
    if "status" in body:
        if body["status"] not in ("enabled", "disabled"):
            raise errors.invalid_field("status", body["status"], f"{body['status']!r} is not "
                                       "one of ['enabled', 'disabled']")
        change.status = body["status"]
    if "disabled_reason" in body:
        change.disabled_reason = c.check_string(body["disabled_reason"], "disabled_reason",
                                                min_length=1, max_length=255)
        change.reason_given = True
        if change.status != "disabled":
            raise BadRequest(f"Specifying 'disabled_reason' with status "
                             f"'{change.status}' is invalid.")
    if "forced_down" in body:
        change.forced_down = c.check_bool(body["forced_down"], "forced_down")
    if change.status is None and change.forced_down is None:
        raise BadRequest("No updates were requested. Fields 'status' or 'forced_down' "
                         "should be specified.")
    st = c.state(request)
    row = await svc.update_service(st, uuid=ident, change=change)
    return JSONResponse({"service": service_view(request, st, row)})


# -- os-simple-tenant-usage ------------------------------------------------------------------

TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")


def _parse_time(raw: str | None) -> datetime:
    if not raw:
        return datetime.now(UTC)
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(raw, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise BadRequest("Datetime is in invalid format")


def _period(request: Request) -> tuple[datetime, datetime]:
    start = _parse_time(c.query_one(request, "start"))
    stop = _parse_time(c.query_one(request, "end"))
    if not start < stop:
        raise BadRequest("Invalid start time. The start time cannot occur after the "
                         "end time.")
    return start, stop


def usage_view(u: usage_svc.ProjectUsage, detailed: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tenant_id": u.tenant_id, "total_hours": u.total_hours,
        "total_local_gb_usage": u.total_local_gb_usage,
        "total_memory_mb_usage": u.total_memory_mb_usage,
        "total_vcpus_usage": u.total_vcpus_usage,
        "start": usage_svc.naive(u.start), "stop": usage_svc.naive(u.stop),
    }
    if detailed:
        out["server_usages"] = u.server_usages
    return out


def _usage_page(request: Request) -> tuple[int | None, str | None]:
    if not c.supports(request, "2.40"):
        return None, None
    return c.limit_and_marker(request)


async def usage_index(request: Request) -> Response:
    await c.authorize(request, U + "list")
    keys = ["start", "end", "detailed"] + (["limit", "marker"] if c.supports(request, "2.40")
                                           else [])
    c.check_query(request, keys)
    start, stop = _period(request)
    detailed = c.query_one(request, "detailed") == "1"
    limit, marker = _usage_page(request)
    rows, last = await usage_svc.usage(c.state(request), start, stop, limit=limit,
                                       marker=marker)
    body: dict[str, Any] = {"tenant_usages": [usage_view(u, detailed) for u in rows]}
    if last is not None:
        links = c.collection_links(request, [{"id": x} for x in last],
                                   "os-simple-tenant-usage", "id")
        if links:
            body["tenant_usages_links"] = links
    return JSONResponse(body)


async def usage_show(request: Request) -> Response:
    tenant_id = request.path_params["tenant_id"]
    await c.authorize(request, U + "show", {"project_id": tenant_id})
    keys = ["start", "end"] + (["limit", "marker"] if c.supports(request, "2.40") else [])
    c.check_query(request, keys)
    start, stop = _period(request)
    limit, marker = _usage_page(request)
    rows, last = await usage_svc.usage(c.state(request), start, stop, project_id=tenant_id,
                                       limit=limit, marker=marker)
    body: dict[str, Any] = {"tenant_usage": usage_view(rows[0], True) if rows else {}}
    if last is not None:
        links = c.collection_links(request, [{"id": x} for x in last],
                                   f"os-simple-tenant-usage/{tenant_id}", "id")
        if links:
            body["tenant_usage_links"] = links
    return JSONResponse(body)


P = c.API_PREFIX
routes = [
    Route(f"{P}/os-hypervisors", hypervisors_index, methods=["GET"]),
    Route(f"{P}/os-hypervisors/detail", hypervisors_detail, methods=["GET"]),
    Route(f"{P}/os-hypervisors/statistics", hypervisor_statistics, methods=["GET"]),
    Route(f"{P}/os-hypervisors/{{hypervisor_id}}", hypervisor_show, methods=["GET"]),
    Route(f"{P}/os-services", services_index, methods=["GET"]),
    Route(f"{P}/os-services/{{service_id}}", service_update, methods=["PUT"]),
    Route(f"{P}/os-simple-tenant-usage", usage_index, methods=["GET"]),
    Route(f"{P}/os-simple-tenant-usage/{{tenant_id}}", usage_show, methods=["GET"]),
]
