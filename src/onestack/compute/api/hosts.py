"""``/os-hypervisors`` (list, detail, show, statistics, uptime, search, servers),
``/os-hosts`` (list, show, update, power actions; until 2.43), ``/os-services`` (list,
enable/disable/force down) and ``/os-simple-tenant-usage`` (list, show)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute import errors
from onestack.compute.api import common as c
from onestack.compute.models import Instance, Service
from onestack.compute.service import hosts as svc
from onestack.compute.service import usage as usage_svc
from onestack.compute.service.scheduler import _free
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest, CloudError, NotFound
from onestack.core.http import JSONResponse, read_json

H = "os_compute_api:os-hypervisors:"
SV = "os_compute_api:os-services:"
U = "os_compute_api:os-simple-tenant-usage:"
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}$")
HYPERVISOR_VERSION = 1000  # the fake driver's (Nova's fake reports 1000)


class HTTPError501(CloudError):
    status_code = 501


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
        "state": "down" if service is not None and svc.state_of(c.state(request), service)
        == "down" else "up",
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
            out["uptime"] = host_uptime(c.state(request), n.host)
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


def host_uptime(st: ComputeState, host: str) -> str | None:
    """``uptime``'s line for this host, from /proc (another host's is unknown
    here: ``None``)."""
    if host != st.host:
        return None
    try:
        seconds = float(Path("/proc/uptime").read_text().split()[0])
        loads = Path("/proc/loadavg").read_text().split()[:3]
    except (OSError, ValueError, IndexError):
        return None
    days, rest = divmod(int(seconds), 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    up = (f"{days} day{'s' if days != 1 else ''}, " if days else "") + f"{hours:2d}:{minutes:02d}"
    now = datetime.now().strftime("%H:%M:%S")
    return f" {now} up {up},  0 users,  load average: {', '.join(loads)}"


async def hypervisor_uptime(request: Request) -> Response:
    if c.supports(request, "2.88"):
        raise NotFound("The resource could not be found.")
    await c.authorize(request, H + "uptime")
    ident = request.path_params["hypervisor_id"]
    if c.supports(request, "2.53") and not UUID_RE.match(ident):
        raise BadRequest(f"Invalid uuid {ident}")
    st = c.state(request)
    h = await svc.hypervisor(st, ident, by_uuid=c.supports(request, "2.53"))
    uptime = host_uptime(st, h.node.host)
    if uptime is None:
        raise HTTPError501("Virt driver does not implement host uptime function.")
    out = hypervisor_view(request, h, False, False)
    out["uptime"] = uptime
    return JSONResponse({"hypervisor": out})


async def _hypervisors_matching(request: Request, rule: str,
                                with_servers: bool) -> Response:
    """Before 2.53: ``/os-hypervisors/{pattern}/search`` and ``.../servers``."""
    if c.supports(request, "2.53"):
        raise NotFound("The resource could not be found.")
    await c.authorize(request, H + rule)
    pattern = request.path_params["pattern"]
    rows = await svc.hypervisors(c.state(request), with_servers=with_servers,
                                 pattern=pattern)
    if not rows:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    return JSONResponse({"hypervisors": [hypervisor_view(request, h, False, with_servers)
                                         for h in rows]})


async def hypervisors_search(request: Request) -> Response:
    return await _hypervisors_matching(request, "search", False)


async def hypervisors_servers(request: Request) -> Response:
    return await _hypervisors_matching(request, "servers", True)


# -- os-hosts (until 2.43) -------------------------------------------------------------------

HS = "os_compute_api:os-hosts:"


def _hosts_api(request: Request) -> None:
    if c.supports(request, "2.43"):
        raise NotFound("The resource could not be found.")


async def hosts_index(request: Request) -> Response:
    _hosts_api(request)
    await c.authorize(request, HS + "list", {})
    st = c.state(request)
    zone = c.query_one(request, "zone")
    rows = [{"host_name": r.host, "service": r.topic, "zone": svc.zone_of(st, r)}
            for r in await svc.list_services(st)]
    if zone:  # a blank zone is no filter, as in Nova
        rows = [r for r in rows if r["zone"] == zone]
    return JSONResponse({"hosts": rows})


async def host_show(request: Request) -> Response:
    """A compute host's resources: its total, what is in use now, what its servers
    take, and what each project's servers take."""
    _hosts_api(request)
    await c.authorize(request, HS + "show", {})
    host = request.path_params["host_name"]
    st = c.state(request)
    nodes = [h.node for h in await svc.hypervisors(st) if h.node.host == host]
    if not nodes:
        raise NotFound(f"Compute host {host} could not be found.")
    async with st.db.read() as s:
        servers = list(await s.execute(
            select(Instance.project_id, Instance.vcpus, Instance.memory_mb,
                   Instance.root_gb, Instance.ephemeral_gb)
            .where(Instance.host == host, Instance.deleted.is_(False))))

    def resource(project: str, cpu: int, mem: int, disk: int) -> dict[str, Any]:
        return {"resource": {"host": host, "project": project, "cpu": cpu,
                             "memory_mb": mem, "disk_gb": disk}}

    per_project: dict[str, list[int]] = {}
    for project, vcpus, mem, root, eph in servers:
        acc = per_project.setdefault(project, [0, 0, 0])
        acc[0] += vcpus
        acc[1] += mem
        acc[2] += root + eph
    used_max = [sum(v[i] for v in per_project.values()) for i in range(3)]
    out = [resource("(total)", sum(n.vcpus for n in nodes), sum(n.memory_mb for n in nodes),
                    sum(n.local_gb for n in nodes)),
           resource("(used_now)", sum(n.vcpus_used for n in nodes),
                    sum(n.memory_mb_used for n in nodes),
                    sum(n.local_gb_used for n in nodes)),
           resource("(used_max)", *used_max)]
    out += [resource(p, *v) for p, v in sorted(per_project.items())]
    return JSONResponse({"host": out})


HOST_SWITCH = ("enable", "disable", "Enable", "Disable", "ENABLE", "DISABLE")


async def _compute_host(st: ComputeState, host: str) -> None:
    """Raises: NotFound (no nova-compute service on ``host``)."""
    if not await svc.list_services(st, "nova-compute", host):
        raise NotFound(f"Compute host {host} could not be found.")


async def host_update(request: Request) -> Response:
    """``status`` enables or disables the host's nova-compute service (what the
    scheduler reads); maintenance mode is a driver feature none of ours has (501,
    as libvirt answers)."""
    _hosts_api(request)
    await c.authorize(request, HS + "update", {})
    body = c.expect_object(await read_json(request), "", ("status", "maintenance_mode"))
    for key in ("status", "maintenance_mode"):
        if key in body and body[key] not in HOST_SWITCH:
            raise errors.invalid_field(key, body[key],
                                       f"{body[key]!r} is not one of {list(HOST_SWITCH)!r}")
    status, maintenance = body.get("status"), body.get("maintenance_mode")
    if status is None and maintenance is None:
        raise BadRequest("'status' or 'maintenance_mode' needed for host update")
    host = request.path_params["host_name"]
    st = c.state(request)
    await _compute_host(st, host)
    if maintenance is not None:
        raise HTTPError501("Virt driver does not implement host maintenance mode.")
    enabled = str(status).lower() == "enable"
    await svc.update_service(st, host=host, binary="nova-compute", change=svc.ServiceUpdate(
        status="enabled" if enabled else "disabled"))
    return JSONResponse({"host": host, "status": "enabled" if enabled else "disabled"})


async def host_power(request: Request) -> Response:
    """``startup``, ``shutdown``, ``reboot``: no driver here powers hosts (501)."""
    _hosts_api(request)
    action = request.path_params["action"]
    rule = {"startup": "start", "shutdown": "shutdown", "reboot": "reboot"}.get(action)
    if rule is None:
        raise NotFound("The resource could not be found.")
    await c.authorize(request, HS + rule, {})
    await _compute_host(c.state(request), request.path_params["host_name"])
    raise HTTPError501("Virt driver does not implement host power management.")


# -- os-services ---------------------------------------------------------------------------

def service_view(request: Request, st: ComputeState, row: Service) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.uuid if c.supports(request, "2.53") else row.id, "binary": row.binary,
        "host": row.host, "zone": svc.zone_of(st, row),
        "status": "disabled" if row.disabled else "enabled", "state": svc.state_of(st, row),
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
    Route(f"{P}/os-hypervisors/{{hypervisor_id}}/uptime", hypervisor_uptime, methods=["GET"]),
    Route(f"{P}/os-hypervisors/{{pattern}}/search", hypervisors_search, methods=["GET"]),
    Route(f"{P}/os-hypervisors/{{pattern}}/servers", hypervisors_servers, methods=["GET"]),
    Route(f"{P}/os-hosts", hosts_index, methods=["GET"]),
    Route(f"{P}/os-hosts/{{host_name}}", host_show, methods=["GET"]),
    Route(f"{P}/os-hosts/{{host_name}}", host_update, methods=["PUT"]),
    Route(f"{P}/os-hosts/{{host_name}}/{{action}}", host_power, methods=["GET"]),
    Route(f"{P}/os-services", services_index, methods=["GET"]),
    Route(f"{P}/os-services/{{service_id}}", service_update, methods=["PUT"]),
    Route(f"{P}/os-simple-tenant-usage", usage_index, methods=["GET"]),
    Route(f"{P}/os-simple-tenant-usage/{{tenant_id}}", usage_show, methods=["GET"]),
]
