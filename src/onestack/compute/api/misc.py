"""``/os-availability-zone`` (one zone, ``nova``, until compute hosts exist) and
``/limits`` (the project's quotas, see service/quotas.py, and what its servers and
server groups use)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute.api import common as c
from onestack.compute.service import quotas as quotas_svc
from onestack.core.http import JSONResponse

AZ = "os_compute_api:os-availability-zone:"


async def zones(request: Request) -> Response:
    await c.authorize(request, AZ + "list", {})
    name = c.state(request).conf.default_availability_zone
    return JSONResponse({"availabilityZoneInfo": [
        {"zoneName": name, "zoneState": {"available": True}, "hosts": None}]})


async def zones_detail(request: Request) -> Response:
    await c.authorize(request, AZ + "detail", {})
    name = c.state(request).conf.default_availability_zone
    # hosts appear here once compute services register
    return JSONResponse({"availabilityZoneInfo": [
        {"zoneName": name, "zoneState": {"available": True}, "hosts": {}}]})


# quota name -> the absolute limits that show it
LIMIT_NAMES = {
    "ram": ("maxTotalRAMSize",),
    "instances": ("maxTotalInstances",),
    "cores": ("maxTotalCores",),
    "key_pairs": ("maxTotalKeypairs",),
    "floating_ips": ("maxTotalFloatingIps",),
    "metadata_items": ("maxServerMeta", "maxImageMeta"),
    "injected_files": ("maxPersonality",),
    "injected_file_content_bytes": ("maxPersonalitySize",),
    "security_groups": ("maxSecurityGroups",),
    "security_group_rules": ("maxSecurityGroupRules",),
    "server_groups": ("maxServerGroups",),
    "server_group_members": ("maxServerGroupMembers",),
}
USED_NAMES = {
    "totalRAMUsed": "ram", "totalCoresUsed": "cores", "totalInstancesUsed": "instances",
    "totalFloatingIpsUsed": "floating_ips", "totalSecurityGroupsUsed": "security_groups",
    "totalServerGroupsUsed": "server_groups",
}
HIDDEN_236 = ("floating_ips", "security_groups", "security_group_rules")
HIDDEN_257 = (*HIDDEN_236, "injected_files", "injected_file_content_bytes")


async def limits(request: Request) -> Response:
    ctx = await c.authorize(request, "os_compute_api:limits", {})
    c.check_query(request, ("tenant_id", "reserved"))
    project = ctx.project_id or ""
    if c.query_one(request, "tenant_id") is not None:
        c.enforce(request, ctx, "os_compute_api:limits:other_project", {})
        project = c.query_one(request, "tenant_id") or project
    st = c.state(request)
    await quotas_svc.prefetch(st, project)  # the identity service's limits
    async with st.db.read() as s:
        used = await quotas_svc.usage(s, project)
        limits_ = await quotas_svc.project_limits(s, st, project)
    hidden: tuple[str, ...] = ()
    if c.supports(request, "2.57"):
        hidden = HIDDEN_257
    elif c.supports(request, "2.36"):
        hidden = HIDDEN_236
    absolute: dict[str, Any] = {}
    for quota, value in limits_.items():
        if quota in hidden or quota not in LIMIT_NAMES:
            continue
        for name in LIMIT_NAMES[quota]:
            if name == "maxImageMeta" and c.supports(request, "2.39"):
                continue
            absolute[name] = value
    for name, quota in USED_NAMES.items():
        if quota not in hidden:
            absolute[name] = used.get(quota, 0)
    return JSONResponse({"limits": {"rate": [], "absolute": absolute}})


P = c.API_PREFIX
routes = [
    Route(f"{P}/os-availability-zone", zones, methods=["GET"]),
    Route(f"{P}/os-availability-zone/detail", zones_detail, methods=["GET"]),
    Route(f"{P}/limits", limits, methods=["GET"]),
]
