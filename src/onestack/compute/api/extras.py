"""Smaller Nova endpoints: a server's ``/ips``, ``/os-server-password`` and
``/diagnostics``, the static ``/extensions`` list and
``/os-instance_usage_audit_log``.

No periodic instance usage audit runs here, so the audit log is always the
empty audit of the last completed period: every compute host ``not run``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute.api import common as c
from onestack.compute.api.servers import _authorized_server
from onestack.compute.models import Instance, Service
from onestack.compute.service import interfaces as interfaces_svc
from onestack.compute.service import metadata as md_svc
from onestack.compute.service import servers as servers_svc
from onestack.compute.service.scheduler import COMPUTE_BINARY
from onestack.core.errors import BadRequest, Conflict, NotFound
from onestack.core.http import JSONResponse, read_json

log = logging.getLogger("onestack.compute")

IPS = "os_compute_api:ips:"
PW = "os_compute_api:os-server-password:"
DIAG = "os_compute_api:os-server-diagnostics"
EXT = "os_compute_api:extensions"
AUDIT = "os_compute_api:os-instance-usage-audit-log:"


# -- /servers/{id}/ips --------------------------------------------------------------------

def _addresses(inst: Instance) -> dict[str, list[dict[str, Any]]]:
    """The server's fixed addresses (each followed by its floating IPs) by
    network name, as the ips API shows them (``version`` and ``addr`` only)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for port in inst.network_info or []:
        entries = out.setdefault(port.get("network_name") or port["network_id"], [])
        for ip in port.get("fixed_ips", []):
            addr = ip["ip_address"]
            entries.append({"version": 6 if ":" in addr else 4, "addr": addr})
            entries.extend({"version": 4, "addr": f["address"]}
                           for f in port.get("floating_ips") or ()
                           if f.get("fixed_ip_address") == addr)
    return out


async def ips_index(request: Request) -> Response:
    _ctx, inst = await _authorized_server(request, IPS + "index")
    return JSONResponse({"addresses": _addresses(inst)})


async def ips_show(request: Request) -> Response:
    _ctx, inst = await _authorized_server(request, IPS + "show")
    label = request.path_params["network_label"]
    addresses = _addresses(inst)
    if label not in addresses:
        raise NotFound("Network not found")
    return JSONResponse({label: addresses[label]})


# -- /servers/{id}/os-server-password ------------------------------------------------------

PASSWORD_KEY = md_svc.PASSWORD_KEY  # in system_metadata: what the guest posted (encrypted)


async def password_show(request: Request) -> Response:
    _ctx, inst = await _authorized_server(request, PW + "show")
    return JSONResponse({"password": str((inst.system_metadata or {}).get(PASSWORD_KEY)
                                         or "")})


async def password_clear(request: Request) -> Response:
    """Forget the password (the guest keeps whatever it has)."""
    _ctx, inst = await _authorized_server(request, PW + "clear")
    async with c.state(request).db.write() as s:
        row = await s.scalar(select(Instance).where(Instance.uuid == inst.uuid))
        if row is not None and PASSWORD_KEY in (row.system_metadata or {}):
            row.system_metadata = {k: v for k, v in (row.system_metadata or {}).items()
                                   if k != PASSWORD_KEY}
    return Response(status_code=204)


# -- /servers/{id}/diagnostics ---------------------------------------------------------------

POWER_NAMES = {0: "pending", 1: "running", 3: "paused", 4: "shutdown", 6: "crashed",
               7: "suspended"}


def _legacy_diagnostics(inst: Instance) -> dict[str, Any]:
    """Before 2.48, the driver's free-form dict (libvirt's key names)."""
    out: dict[str, Any] = {"cpu0_time": 0, "memory": inst.memory_mb * 1024}
    for i in range(len(inst.network_info or [])):
        out[f"tap{i}_rx"] = 0
        out[f"tap{i}_tx"] = 0
    out.update({"vda_read": 0, "vda_read_req": 0, "vda_write": 0, "vda_write_req": 0,
                "vda_errors": -1})
    return out


def _diagnostics(inst: Instance, uptime: int | None) -> dict[str, Any]:
    """2.48's standard shape, from what the database knows of the guest (the
    drivers report no counters: they are 0)."""
    ports = inst.network_info or []
    return {
        "state": POWER_NAMES.get(inst.power_state, "pending"),
        "driver": "libvirt", "hypervisor": "qemu", "hypervisor_os": "linux",
        "uptime": uptime, "config_drive": bool(inst.config_drive),
        "num_cpus": inst.vcpus, "num_nics": len(ports), "num_disks": 1,
        "memory_details": {"maximum": inst.memory_mb, "used": 0},
        "cpu_details": [{"id": i, "time": 0, "utilisation": None}
                        for i in range(inst.vcpus)],
        "nic_details": [{"mac_address": p.get("mac_address"), "rx_octets": 0,
                         "rx_errors": 0, "rx_drop": 0, "rx_packets": 0, "rx_rate": None,
                         "tx_octets": 0, "tx_errors": 0, "tx_drop": 0, "tx_packets": 0,
                         "tx_rate": None} for p in ports],
        "disk_details": [{"read_bytes": 0, "read_requests": 0, "write_bytes": 0,
                          "write_requests": 0, "errors_count": 0}],
    }


async def diagnostics(request: Request) -> Response:
    _ctx, inst = await _authorized_server(request, DIAG)
    if not inst.host or inst.vm_state in (servers_svc.BUILDING,):
        raise Conflict(f"Instance {inst.uuid} is not ready")
    if not c.supports(request, "2.48"):
        return JSONResponse(_legacy_diagnostics(inst))
    uptime = None
    if inst.launched_at is not None and inst.power_state == 1:
        uptime = int((datetime.now(UTC) - inst.launched_at).total_seconds())
    return JSONResponse(_diagnostics(inst, uptime))


# -- /extensions -----------------------------------------------------------------------------

EXTENSIONS: tuple[tuple[str, str, str], ...] = (
    # (name, alias, description): the entries Nova's v2.1 API still lists
    ("AccessIPs", "os-access-ips", "Access IPs support."),
    ("AdminActions", "os-admin-actions", "Enable admin-only server actions."),
    ("AdminPassword", "os-admin-password", "Admin password management support."),
    ("Agents", "os-agents", "Agents support."),
    ("Aggregates", "os-aggregates", "Admin-only aggregate administration."),
    ("AssistedVolumeSnapshots", "os-assisted-volume-snapshots",
     "Assisted volume snapshots."),
    ("AttachInterfaces", "os-attach-interfaces", "Attach interface support."),
    ("AvailabilityZone", "os-availability-zone", ("1. Add availability_zone to the "
     "Create Server API. 2. Add availability zones describing.")),
    ("BareMetalExtStatus", "os-baremetal-ext-status", ("Add extended status in "
     "Baremetal Nodes v2 API.")),
    ("BareMetalNodes", "os-baremetal-nodes", "Admin-only bare-metal node administration."),
    ("BlockDeviceMapping", "os-block-device-mapping", "Block device mapping boot support."),
    ("BlockDeviceMappingV2Boot", "os-block-device-mapping-v2-boot",
     "Allow boot with the new BDM data format."),
    ("CellCapacities", "os-cell-capacities", "Adding functionality to get cell capacities."),
    ("Cells", "os-cells", ("Enables cells-related functionality such as adding "
     "neighbor cells, listing neighbor cells, and getting the capabilities of the "
     "local cell.")),
    ("Certificates", "os-certificates", "Certificates support."),
    ("Cloudpipe", "os-cloudpipe", "Adds actions to create cloudpipe instances."),
    ("CloudpipeUpdate", "os-cloudpipe-update", ("Adds the ability to set the vpn ip/port "
     "for cloudpipe instances.")),
    ("ConfigDrive", "os-config-drive", "Config Drive Extension."),
    ("ConsoleAuthTokens", "os-console-auth-tokens", "Console token authentication support."),
    ("ConsoleOutput", "os-console-output", ("Console log output support, with tailing "
     "ability.")),
    ("Consoles", "os-consoles", "Interactive Console support."),
    ("CreateBackup", "os-create-backup", "Create a backup of a server."),
    ("Createserverext", "os-create-server-ext", ("Extended support to the Create Server "
     "v1.1 API.")),
    ("DeferredDelete", "os-deferred-delete", "Instance deferred delete."),
    ("DiskConfig", "os-disk-config", "Disk Management Extension."),
    ("ExtendedAvailabilityZone", "os-extended-availability-zone",
     "Extended Availability Zone support."),
    ("ExtendedIps", "os-extended-ips", "Adds type parameter to the ip list."),
    ("ExtendedIpsMac", "os-extended-ips-mac", "Adds mac address parameter to the ip list."),
    ("ExtendedQuotas", "os-extended-quotas", ("Adds ability for admins to delete quota "
     "and optionally force the update Quota command.")),
    ("ExtendedServerAttributes", "os-extended-server-attributes",
     "Extended Server Attributes support."),
    ("ExtendedStatus", "os-extended-status", "Extended Status support."),
    ("ExtendedVolumes", "os-extended-volumes", "Extended Volumes support."),
    ("FixedIPs", "os-fixed-ips", "Fixed IPs support."),
    ("FlavorAccess", "os-flavor-access", "Flavor access support."),
    ("FlavorDisabled", "OS-FLV-DISABLED", "Support to show the disabled status of a flavor."),
    ("FlavorExtraData", "OS-FLV-EXT-DATA", "Provide additional data for flavors."),
    ("FlavorExtraSpecs", "os-flavor-extra-specs", "Flavors extra specs support."),
    ("FlavorManage", "os-flavor-manage", "Flavor create/delete API support."),
    ("FlavorRxtx", "os-flavor-rxtx", "Support to show the rxtx status of a flavor."),
    ("FlavorSwap", "os-flavor-swap", "Support to show the swap status of a flavor."),
    ("Flavors", "flavors", "Flavors Extension."),
    ("FloatingIpDns", "os-floating-ip-dns", "Floating IP DNS support."),
    ("FloatingIpPools", "os-floating-ip-pools", "Floating IPs support."),
    ("FloatingIps", "os-floating-ips", "Floating IPs support."),
    ("FloatingIpsBulk", "os-floating-ips-bulk", "Bulk handling of Floating IPs."),
    ("Fping", "os-fping", "Fping Management Extension."),
    ("Hide_server_addresses", "os-hide-server-addresses",
     "Support hiding server addresses in certain states."),
    ("Hosts", "os-hosts", "Admin-only host administration."),
    ("HypervisorStatus", "os-hypervisor-status", "Show hypervisor status."),
    ("Hypervisors", "os-hypervisors", "Admin-only hypervisor administration."),
    ("ImageMetadata", "image-metadata", "Image Metadata API."),
    ("ImageSize", "OS-EXT-IMG-SIZE", "Adds image size to image listings."),
    ("Images", "images", "Images."),
    ("InstanceActions", "os-instance-actions", ("View a log of actions and events "
     "taken on an instance.")),
    ("InstanceUsageAuditLog", "os-instance_usage_audit_log",
     "Admin-only Task Log Monitoring."),
    ("Keypairs", "os-keypairs", "Keypair Support."),
    ("Limits", "limits", "Limits support."),
    ("Lock_server", "os-lock-server", "Enable lock/unlock server actions."),
    ("MigrateServer", "os-migrate-server", ("Enable migrate and live-migrate server "
     "actions.")),
    ("Migrations", "os-migrations", "Provide data on migrations."),
    ("MultinicExtension", "os-multinic", "Multiple network support."),
    ("Multiple_create", "os-multiple-create", ("Allow multiple create in the Create "
     "Server v2.1 API.")),
    ("Networks", "os-networks", "Admin-only Network Management Extension."),
    ("NetworkAssociationSupport", "os-networks-associate", "Network association support."),
    ("OSInstanceUsageAuditLog", "os-instance-usage-audit-log",
     "Admin-only Task Log Monitoring."),
    ("PauseServer", "os-pause-server", "Enable pause/unpause server actions."),
    ("PreserveEphemeralOnRebuild", "os-preserve-ephemeral-rebuild",
     "Allow preservation of the ephemeral partition on rebuild."),
    ("QuotaClasses", "os-quota-class-sets", "Quota classes management support."),
    ("Quotas", "os-quota-sets", "Quotas management support."),
    ("Rescue", "os-rescue", "Instance rescue mode."),
    ("SchedulerHints", "os-scheduler-hints", ("Pass arbitrary key/value pairs to the "
     "scheduler.")),
    ("SecurityGroupDefaultRules", "os-security-group-default-rules",
     "Default rules for security group support."),
    ("SecurityGroups", "os-security-groups", "Security group support."),
    ("ServerDiagnostics", "os-server-diagnostics", ("Allow Admins to view server "
     "diagnostics through server action.")),
    ("ServerExternalEvents", "os-server-external-events", ("Server External Event "
     "Triggers.")),
    ("ServerGroupQuotas", "os-server-group-quotas", "Adds quota support to server groups."),
    ("ServerGroups", "os-server-groups", "Server group support."),
    ("ServerListMultiStatus", "os-server-list-multi-status", ("Allow to filter the "
     "servers by a set of status values.")),
    ("ServerPassword", "os-server-password", "Server password support."),
    ("ServerSortKeys", "os-server-sort-keys", "Add sorting support in get Server v2 API."),
    ("ServerStartStop", "os-server-start-stop", "Start/Stop instance compute API support."),
    ("ServerUsage", "os-server-usage", "Adds launched_at and terminated_at on Servers."),
    ("Services", "os-services", "Services support."),
    ("Shelve", "os-shelve", "Instance shelve mode."),
    ("SimpleTenantUsage", "os-simple-tenant-usage", "Simple tenant usage extension."),
    ("SuspendServer", "os-suspend-server", "Enable suspend/resume server actions."),
    ("TenantNetworks", "os-tenant-networks", "Tenant-based Network Management Extension."),
    ("UsedLimits", "os-used-limits", ("Provide data on limited resources that are being "
     "used.")),
    ("UserData", "os-user-data", "Add user_data to the Create Server API."),
    ("VirtualInterfaces", "os-virtual-interfaces", "Virtual interface support."),
    ("Volumes", "os-volumes", "Volumes support."),
)
EXTENSION_NAMESPACE = "http://docs.openstack.org/compute/ext/fake_xml"
EXTENSION_UPDATED = "2014-12-03T00:00:00Z"


def _extension(name: str, alias: str, description: str) -> dict[str, Any]:
    return {"name": name, "alias": alias, "description": description,
            "namespace": EXTENSION_NAMESPACE, "updated": EXTENSION_UPDATED, "links": []}


async def extensions_index(request: Request) -> Response:
    await c.authorize(request, EXT, {})
    return JSONResponse({"extensions": [_extension(*e) for e in EXTENSIONS]})


async def extensions_show(request: Request) -> Response:
    await c.authorize(request, EXT, {})
    alias = request.path_params["alias"]
    for e in EXTENSIONS:
        if e[1] == alias:
            return JSONResponse({"extension": _extension(*e)})
    raise NotFound("The resource could not be found.")


# -- /os-instance_usage_audit_log --------------------------------------------------------------

AUDIT_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f")


def audit_period(before: datetime) -> tuple[datetime, datetime]:
    """The last whole month that ended at or before ``before`` (Nova's default
    ``instance_usage_audit_period``)."""
    end = before.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    begin = (end.replace(year=end.year - 1, month=12) if end.month == 1
             else end.replace(month=end.month - 1))
    return begin, end


async def _audit(request: Request, before: datetime) -> dict[str, Any]:
    begin, end = audit_period(before)
    async with c.state(request).db.read() as s:
        hosts = sorted(set(await s.scalars(select(Service.host).where(
            Service.binary == COMPUTE_BINARY))))
    return {
        "hosts_not_run": hosts, "log": {}, "num_hosts": len(hosts), "num_hosts_done": 0,
        "num_hosts_not_run": len(hosts), "num_hosts_running": 0,
        "overall_status": f"0 of {len(hosts)} hosts done. 0 errors.",
        "period_beginning": str(begin), "period_ending": str(end),
        "total_errors": 0, "total_instances": 0,
    }


async def audit_index(request: Request) -> Response:
    await c.authorize(request, AUDIT + "list", {})
    now = datetime.now(UTC).replace(tzinfo=None)
    return JSONResponse({"instance_usage_audit_logs": await _audit(request, now)})


async def audit_show(request: Request) -> Response:
    await c.authorize(request, AUDIT + "show", {})
    raw = request.path_params["before_timestamp"]
    for fmt in AUDIT_TIME_FORMATS:
        try:
            before = datetime.strptime(raw, fmt)
            break
        except ValueError:
            continue
    else:
        raise BadRequest(f"Invalid timestamp for date {raw}")
    return JSONResponse({"instance_usage_audit_log": await _audit(request, before)})


P = c.API_PREFIX
S = P + "/servers/{server_id}"
# -- os-server-external-events -------------------------------------------------------------

EVENT_NAMES = (("network-changed", "2.1"), ("network-vif-plugged", "2.1"),
               ("network-vif-unplugged", "2.1"), ("network-vif-deleted", "2.1"),
               ("volume-extended", "2.51"), ("power-update", "2.76"),
               ("accelerator-request-bound", "2.82"), ("volume-reimaged", "2.93"))


async def external_events(request: Request) -> Response:
    """What the networking and block storage services tell compute about a
    server (Neutron's vif plugged, changed ...). Each event gets its own code:
    200 for a server of this cloud with a host, 422 for one not on a host yet,
    404 for an unknown one; the answer is 200 when all were taken, 404 when none,
    207 otherwise. ``network-changed`` (Neutron sends it when a floating IP of
    the server's port changes) refreshes the floating IPs in the server's
    ``network_info``; ``network-vif-deleted`` (the port was deleted) takes the
    interface out of the server (``interfaces.vif_deleted``); nothing waits on
    the other events here (the agent plugs a VM's tap itself), so taking one is
    acknowledging it."""
    await c.authorize(request, "os_compute_api:os-server-external-events:create")
    raw = await read_json(request)
    outer = c.expect_object(raw, "", ("events",), ("events",))
    events = outer["events"]
    if not isinstance(events, list) or not events:
        raise BadRequest("Invalid input for field/attribute events. Value: "
                         f"{events!r}. {events!r} is too short" if isinstance(events, list)
                         else f"{events!r} is not of type 'array'")
    names = [n for n, v in EVENT_NAMES if c.supports(request, v)]
    parsed = []
    for event in events:
        e = c.expect_object(event, "events", ("name", "server_uuid", "status", "tag"),
                            ("name", "server_uuid"), path="events")
        if e["name"] not in names:
            raise BadRequest(f"Invalid input for field/attribute name. Value: {e['name']}. "
                             f"{e['name']!r} is not one of {names}")
        status = e.get("status", "completed")
        if status not in ("failed", "completed", "in-progress"):
            raise BadRequest(f"Invalid input for field/attribute status. Value: {status}. "
                             f"{status!r} is not one of ['failed', 'completed', "
                             "'in-progress']")
        if not isinstance(e["server_uuid"], str):
            raise BadRequest("Invalid input for field/attribute server_uuid.")
        parsed.append({"name": e["name"], "server_uuid": e["server_uuid"], "status": status,
                       **({"tag": e["tag"]} if e.get("tag") is not None else {})})
    uuids = {e["server_uuid"] for e in parsed}
    async with c.state(request).db.read() as s:
        found = {row.uuid: row.host for row in (await s.execute(
            select(Instance.uuid, Instance.host).where(
                Instance.uuid.in_(uuids), Instance.deleted.is_(False))))}
    out = []
    for e in parsed:
        if e["server_uuid"] not in found:
            out.append({**e, "code": 404, "status": "failed"})
        elif not found[e["server_uuid"]]:
            out.append({**e, "code": 422, "status": "failed"})
        else:
            out.append({**e, "code": 200})
    changed = sorted({e["server_uuid"] for e in out
                      if e["code"] == 200 and e["name"] == "network-changed"})
    for server_uuid in changed:
        await interfaces_svc.refresh_floating_ips(c.state(request), server_uuid)
    for e in out:
        if e["code"] == 200 and e["name"] == "network-vif-deleted" and e.get("tag"):
            await interfaces_svc.vif_deleted(c.state(request), e["server_uuid"], e["tag"])
    codes = {e["code"] for e in out}
    status = 200 if codes == {200} else 404 if 200 not in codes and 422 not in codes else 207
    return JSONResponse({"events": out}, status_code=status)


routes = [
    Route(f"{P}/os-server-external-events", external_events, methods=["POST"]),
    Route(f"{S}/ips", ips_index, methods=["GET"]),
    Route(f"{S}/ips/{{network_label}}", ips_show, methods=["GET"]),
    Route(f"{S}/os-server-password", password_show, methods=["GET"]),
    Route(f"{S}/os-server-password", password_clear, methods=["DELETE"]),
    Route(f"{S}/diagnostics", diagnostics, methods=["GET"]),
    Route(f"{P}/extensions", extensions_index, methods=["GET"]),
    Route(f"{P}/extensions/{{alias}}", extensions_show, methods=["GET"]),
    Route(f"{P}/os-instance_usage_audit_log", audit_index, methods=["GET"]),
    Route(f"{P}/os-instance_usage_audit_log/{{before_timestamp}}", audit_show,
          methods=["GET"]),
]
