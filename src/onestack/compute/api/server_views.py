"""How ``/servers`` renders a server (show, update, create, the detailed and the
brief list) by microversion: ``full``, ``brief`` and the per-request ``View``.
The handlers are in ``servers``."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from onestack.compute.api import common as c
from onestack.compute.models import Instance
from onestack.compute.service import hosts as hosts_svc
from onestack.compute.service import server_list as list_svc
from onestack.compute.service import servers as svc
from onestack.core.context import RequestContext
from onestack.core.http import service_url

S = "os_compute_api:servers:"
COLLECTION = "servers"


def _time(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _usec(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).replace(tzinfo=None).isoformat()


# a server as the views render it: a row of the database (show, update ...) or of a list
Server = Instance | list_svc.Listed


def target(inst: Server) -> dict[str, str]:
    return {"project_id": inst.project_id, "user_id": inst.user_id}


# -- rendering -------------------------------------------------------------------------

def addresses(inst: Server) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for port in inst.network_info or []:
        entries = out.setdefault(port.get("network_name") or port["network_id"], [])
        for ip in port.get("fixed_ips", []):
            addr = ip["ip_address"]
            entries.append({"version": 6 if ":" in addr else 4, "addr": addr,
                            "OS-EXT-IPS:type": "fixed",
                            "OS-EXT-IPS-MAC:mac_addr": port.get("mac_address")})
            # then the floating IPs on that fixed address, as Nova lists them
            entries.extend({"version": 4, "addr": f["address"], "OS-EXT-IPS:type": "floating",
                            "OS-EXT-IPS-MAC:mac_addr": port.get("mac_address")}
                           for f in port.get("floating_ips") or ()
                           if f.get("fixed_ip_address") == addr)
    return out


def host_id(inst: Server) -> str:
    if not inst.host:
        return ""
    return hashlib.sha224((inst.project_id + inst.host).encode()).hexdigest()


class View:
    """What rendering a server needs from its request, worked out once: the
    microversion's switches, the link prefixes, and the policy answers, which
    depend only on the server's (project, user) (a listing renders up to a
    thousand servers of a handful of owners)."""

    def __init__(self, request: Request, ctx: RequestContext) -> None:
        self.request, self.ctx = request, ctx
        at = c.supports
        self.v2_3, self.v2_9, self.v2_16 = at(request, "2.3"), at(request, "2.9"), at(request, "2.16")
        self.v2_19, self.v2_26, self.v2_47 = (at(request, "2.19"), at(request, "2.26"),
                                              at(request, "2.47"))
        self.v2_63, self.v2_73, self.v2_90 = (at(request, "2.63"), at(request, "2.73"),
                                              at(request, "2.90"))
        self.v2_96, self.v2_98, self.v2_100 = (at(request, "2.96"), at(request, "2.98"),
                                               at(request, "2.100"))
        self.base = service_url(request)
        self._self = f"{self.base}{c.API_PREFIX}/{COLLECTION}/"
        self._bookmark = f"{self.base}/{COLLECTION}/"
        self._allowed: dict[tuple[str, str, str], bool] = {}
        self._host_ids: dict[tuple[str, str], str] = {}
        self._host_statuses: dict[str, str] | None = None

    def allowed(self, action: str, inst: Server) -> bool:
        key = (action, inst.project_id, inst.user_id)
        ok = self._allowed.get(key)
        if ok is None:
            ok = self._allowed[key] = c.allowed(self.request, self.ctx, action, target(inst))
        return ok

    def links(self, ident: str) -> list[dict[str, str]]:
        """``c.resource_links`` of a server."""
        return [{"rel": "self", "href": self._self + ident},
                {"rel": "bookmark", "href": self._bookmark + ident}]

    def _host_status_rule(self, inst: Server) -> bool | None:
        """Nova's two rules: False when any ``host_status`` may be shown, True
        when only ``UNKNOWN`` may (``show:host_status:unknown-only``), None when
        none may."""
        if self.allowed(S + "show:host_status", inst):
            return False
        if self.allowed(S + "show:host_status:unknown-only", inst):
            return True
        return None

    async def load_host_statuses(self, servers: list[Server]) -> None:
        """Look up, once for the request, the ``host_status`` of the hosts of
        the ``servers`` that may show it (2.16); ``full`` renders from it."""
        hosts: set[str] = set()
        if self.v2_16:
            hosts = {i.host for i in servers
                     if i.host and self._host_status_rule(i) is not None}
        self._host_statuses = await hosts_svc.host_statuses(c.state(self.request), hosts)

    def host_status(self, inst: Server) -> str | None:
        """The server's ``host_status``, None when the caller may not see it."""
        rule = self._host_status_rule(inst)
        if rule is None:
            return None
        if not inst.host:
            status = hosts_svc.HOST_NONE
        else:
            assert self._host_statuses is not None, "load_host_statuses first"
            status = self._host_statuses.get(inst.host, hosts_svc.HOST_NONE)
        if rule and status != hosts_svc.HOST_UNKNOWN:
            return None
        return status

    def host_id(self, inst: Server) -> str:
        if not inst.host:
            return ""
        key = (inst.project_id, inst.host)
        hid = self._host_ids.get(key)
        if hid is None:
            hid = self._host_ids[key] = host_id(inst)
        return hid


def brief(request: Request, inst: Server, view: View | None = None) -> dict[str, Any]:
    links = (view.links(inst.uuid) if view is not None
             else c.resource_links(request, COLLECTION, inst.uuid))
    return {"id": inst.uuid, "name": inst.display_name, "links": links}


def _flavor(view: View, inst: Server) -> dict[str, Any]:
    f = inst.flavor
    if not view.v2_47:
        return {"id": f["flavorid"], "links": [
            {"rel": "bookmark", "href": f"{view.base}/flavors/{f['flavorid']}"}]}
    out = {"vcpus": f["vcpus"], "ram": f["ram"], "disk": f["disk"],
           "ephemeral": f["ephemeral"], "swap": f["swap"], "original_name": f["name"]}
    if view.allowed("os_compute_api:os-flavor-extra-specs:index", inst):
        out["extra_specs"] = f.get("extra_specs", {})
    return out


def _image(view: View, inst: Server) -> dict[str, Any]:
    out: dict[str, Any] = {"id": inst.image_ref, "links": [
        {"rel": "bookmark", "href": f"{view.base}/images/{inst.image_ref}"}]}
    if view.v2_98:
        out["properties"] = {k: str(v) for k, v in
                             (inst.image.get("properties") or {}).items()}
    return out


def full(request: Request, inst: Server, ctx: RequestContext,
         view: View | None = None) -> dict[str, Any]:
    """The server as show and the detailed list render it (``view``: the
    request's, shared by a listing's servers)."""
    if view is None:
        view = View(request, ctx)
    admin = view.allowed("os_compute_api:os-extended-server-attributes", inst)
    status = svc.status(inst)
    out: dict[str, Any] = {
        "id": inst.uuid, "name": inst.display_name, "status": status,
        "tenant_id": inst.project_id, "user_id": inst.user_id,
        "metadata": dict(inst.metadata_ or {}), "hostId": view.host_id(inst),
        "image": _image(view, inst), "flavor": _flavor(view, inst),
        "created": _time(inst.created_at), "updated": _time(inst.updated_at or inst.created_at),
        "addresses": addresses(inst), "accessIPv4": inst.access_ip_v4 or "",
        "accessIPv6": inst.access_ip_v6 or "",
        "links": view.links(inst.uuid),
        "OS-DCF:diskConfig": inst.disk_config,
        "OS-EXT-AZ:availability_zone": inst.availability_zone or "",
        "config_drive": inst.config_drive, "key_name": inst.key_name,
        "OS-SRV-USG:launched_at": _usec(inst.launched_at),
        "OS-SRV-USG:terminated_at": _usec(inst.terminated_at),
        "OS-EXT-STS:task_state": inst.task_state, "OS-EXT-STS:vm_state": inst.vm_state,
        "OS-EXT-STS:power_state": inst.power_state,
        "os-extended-volumes:volumes_attached": [],
    }
    if status in ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"):
        out["progress"] = 100 if status == "ACTIVE" else 0
    if inst.security_groups:
        out["security_groups"] = [{"name": n} for n in inst.security_groups]
    if inst.vm_state in (svc.ERROR, svc.DELETED) and inst.fault:
        fault = {"code": inst.fault["code"], "created": inst.fault["created"],
                 "message": inst.fault["message"]}
        if admin or inst.fault["code"] != 500:
            fault["details"] = inst.fault.get("details", "")
        out["fault"] = fault
    if admin:
        out["OS-EXT-SRV-ATTR:host"] = inst.host
        out["OS-EXT-SRV-ATTR:hypervisor_hostname"] = inst.node
        out["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{inst.id:08x}"
        if view.v2_3:
            out.update({
                "OS-EXT-SRV-ATTR:reservation_id": inst.reservation_id,
                "OS-EXT-SRV-ATTR:launch_index": inst.launch_index,
                "OS-EXT-SRV-ATTR:hostname": inst.hostname,
                "OS-EXT-SRV-ATTR:kernel_id": "", "OS-EXT-SRV-ATTR:ramdisk_id": "",
                "OS-EXT-SRV-ATTR:root_device_name": None,
                "OS-EXT-SRV-ATTR:user_data": inst.user_data,
            })
    elif view.v2_90:
        out["OS-EXT-SRV-ATTR:hostname"] = inst.hostname
    if view.v2_3:
        out["os-extended-volumes:volumes_attached"] = []
    if view.v2_9:
        out["locked"] = inst.locked
    if view.v2_16:
        host_status = view.host_status(inst)
        if host_status is not None:
            out["host_status"] = host_status
    if view.v2_19:
        out["description"] = inst.display_description
    if view.v2_26:
        out["tags"] = list(inst.tags or [])
    if view.v2_63:
        out["trusted_image_certificates"] = None
    if view.v2_73:
        out["locked_reason"] = inst.locked_reason
    if view.v2_96:
        out["pinned_availability_zone"] = inst.requested_availability_zone
    if view.v2_100:
        out["scheduler_hints"] = dict(inst.scheduler_hints or {})
    return out
