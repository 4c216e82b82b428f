"""``/servers``: create, list (``/servers``, ``/servers/detail``), show, update,
delete, the actions (``POST /servers/{id}/action``) and
``/servers/{id}/os-instance-actions``. The views are ``server_views``."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute import errors
from onestack.compute.api import common as c
from onestack.compute.api import consoles, net_proxies
from onestack.compute.api.server_views import COLLECTION, S, View, _usec, brief, full, target
from onestack.compute.models import Instance, InstanceAction, InstanceActionEvent
from onestack.compute.service import actions as actions_svc
from onestack.compute.service import hosts as hosts_svc
from onestack.compute.service import migrations as migrations_svc
from onestack.compute.service import scheduler
from onestack.compute.service import server_groups as groups_svc
from onestack.compute.service import server_list as list_svc
from onestack.compute.service import servers as svc
from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, read_json

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                     r"[0-9a-fA-F]{12}$")


def caller(request: Request, ctx: RequestContext) -> svc.Caller:
    return svc.Caller(project_id=ctx.project_id or "", user_id=ctx.user_id or "",
                      token=request.headers.get("x-auth-token", ""),
                      request_id=ctx.request_id, is_admin=c.is_admin(request, ctx))


_authorized_server = c.authorized_server


# -- create ----------------------------------------------------------------------------

def _check_uuid(value: Any, field: str) -> str:
    if not isinstance(value, str) or not UUID_RE.match(value):
        raise errors.invalid_field(field, value, f"{value!r} is not a 'uuid'")
    return value


def _parse_networks(request: Request, value: Any) -> str | list[svc.NetworkRequest]:
    if c.supports(request, "2.37") and value in ("auto", "none"):
        return str(value)
    if not isinstance(value, list):
        kind = "'array'" if not c.supports(request, "2.37") else "'array', 'string'"
        raise errors.invalid_field("networks", value, f"{value!r} is not of type {kind}")
    keys = ["uuid", "port", "fixed_ip"]
    if c.supports(request, "2.32"):
        keys.append("tag")
    out = []
    for item in value:
        net = c.expect_object(item, "networks", keys, path="networks")
        if "port" in net and net["port"] is not None:
            _check_uuid(net["port"], "port")
        elif "uuid" in net:
            _check_uuid(net["uuid"], "uuid")
        else:
            raise BadRequest("Bad networks format: network uuid is not in proper format")
        fixed = net.get("fixed_ip")
        if fixed is not None and not isinstance(fixed, str):
            raise errors.invalid_field("fixed_ip", fixed, f"{fixed!r} is not a 'ip-address'")
        out.append(svc.NetworkRequest(network_id=net.get("uuid"), port_id=net.get("port"),
                                      fixed_ip=fixed, tag=net.get("tag")))
    return out


def access_ip(value: Any, key: str) -> str | None:
    """accessIPv4/accessIPv6: an address of that family (Nova's ``ipv4``/``ipv6``
    formats), kept in its normal form as Nova's netaddr does; "" clears it.

    Raises:
        BadRequest.
    """
    text = c.check_string(value, key)
    if not text:
        return None
    family = "ipv4" if key == "accessIPv4" else "ipv6"
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        addr = None
    if addr is None or (addr.version == 4) != (family == "ipv4"):
        raise errors.invalid_field(key, text, f"{text!r} is not a '{family}'")
    return str(addr)


BDM_KEYS = ("source_type", "destination_type", "uuid", "boot_index", "device_name",
            "volume_size", "delete_on_termination", "guest_format", "disk_bus",
            "device_type", "no_device", "tag", "volume_type", "connection_info",
            "volume_id", "snapshot_id", "encrypted", "encryption_secret_uuid",
            "encryption_format", "encryption_options", "image_id")


def _boot_image(request: Request, bdms: Any) -> str | None:
    """``block_device_mapping_v2`` as far as this cloud goes: the image-backed
    local root disk that ``openstack server create --image`` sends (source image,
    destination local, boot_index 0); the image's id, or None without one.

    Raises:
        BadRequest: malformed, or a mapping this cloud cannot honour yet
        (volumes: there is no block storage service; extra local disks).
    """
    if bdms is None:
        return None
    if not isinstance(bdms, list):
        raise errors.invalid_field("block_device_mapping_v2", bdms,
                                   f"{bdms!r} is not of type 'array'")
    image = None
    for bdm in bdms:
        bdm = c.expect_object(bdm, "block_device_mapping_v2", BDM_KEYS,
                              path="block_device_mapping_v2")
        source = bdm.get("source_type", "volume" if bdm.get("uuid") else "blank")
        dest = bdm.get("destination_type", "volume" if source == "volume" else "local")
        if source not in ("image", "volume", "snapshot", "blank"):
            raise errors.invalid_field("source_type", source, f"{source!r} is not one of "
                                       "['volume', 'image', 'snapshot', 'blank']")
        if dest not in ("local", "volume"):
            raise errors.invalid_field("destination_type", dest,
                                       f"{dest!r} is not one of ['local', 'volume']")
        if dest == "volume" or source in ("volume", "snapshot"):
            raise BadRequest("Block Device Mapping is Invalid: volumes need the block "
                             "storage service, which this cloud does not run yet.")
        boot_index = bdm.get("boot_index")
        if source == "image" and str(boot_index) == "0":
            uuid_ = bdm.get("uuid")
            if not isinstance(uuid_, str) or not UUID_RE.match(uuid_):
                raise errors.invalid_field("uuid", uuid_, f"{uuid_!r} is not a 'uuid'")
            if image is not None:
                raise BadRequest("Block Device Mapping is Invalid: Boot sequence for the "
                                 "instance and image/block device mapping combination is "
                                 "not valid.")
            image = uuid_
        else:
            raise BadRequest("Block Device Mapping is Invalid: only the image-backed root "
                             "disk (source image, destination local, boot_index 0) is "
                             "supported; ephemeral and swap disks come from the flavor.")
    return image


def parse_create(request: Request, body: Any) -> svc.CreateRequest:
    """Nova's create schema (the parts this service supports).

    Raises:
        BadRequest.
    """
    outer = c.expect_object(body, "", ("server", "os:scheduler_hints",
                                       "OS-SCH-HNT:scheduler_hints"))
    keys = ["name", "imageRef", "flavorRef", "adminPass", "metadata", "networks",
            "OS-DCF:diskConfig", "accessIPv4", "accessIPv6", "key_name", "user_data",
            "security_groups", "availability_zone", "min_count", "max_count",
            "return_reservation_id", "config_drive", "block_device_mapping_v2"]
    if not c.supports(request, "2.57"):
        keys.append("personality")
    if c.supports(request, "2.19"):
        keys.append("description")
    if c.supports(request, "2.52"):
        keys.append("tags")
    if c.supports(request, "2.90"):
        keys.append("hostname")
    required = ["name", "flavorRef"]
    if c.supports(request, "2.37"):
        required.append("networks")
    if "server" not in outer:  # the outer keys were checked above, hints included
        raise BadRequest("'server' is a required property")
    srv = c.expect_object(outer["server"], "server", keys, required, path="server")
    name = c.check_name(srv["name"])
    image_ref = srv.get("imageRef", "")
    boot_image = _boot_image(request, srv.get("block_device_mapping_v2"))
    if boot_image is not None:
        if image_ref and image_ref.rsplit("/", 1)[-1] != boot_image:
            raise BadRequest("Block Device Mapping is Invalid: the boot device's image "
                             f"{boot_image} is not imageRef {image_ref}.")
        image_ref = boot_image
    if not isinstance(image_ref, str) or not image_ref:
        raise errors.invalid_field("imageRef", image_ref, f"{image_ref!r} is not a 'uuid'")
    image_ref = image_ref.rsplit("/", 1)[-1]
    flavor_ref = srv["flavorRef"]
    if isinstance(flavor_ref, bool) or not isinstance(flavor_ref, (str, int)) \
            or str(flavor_ref) == "":
        raise errors.invalid_field("flavorRef", flavor_ref,
                                   f"{flavor_ref!r} is not of type 'string', 'integer'")
    req = svc.CreateRequest(name=name, image_ref=image_ref,
                            flavor_ref=str(flavor_ref).rsplit("/", 1)[-1])
    if "networks" in srv:
        req.networks = _parse_networks(request, srv["networks"])
    if srv.get("key_name") is not None:
        req.key_name = c.check_string(srv["key_name"], "key_name", min_length=1)
    if srv.get("user_data") is not None:
        ud = c.check_string(srv["user_data"], "user_data", max_length=1 << 30)
        assert ud is not None
        svc.check_user_data(ud)
        req.user_data = ud
    if "metadata" in srv:
        req.metadata = c.check_metadata(srv["metadata"])
    if "security_groups" in srv:
        groups = srv["security_groups"]
        if not isinstance(groups, list):
            raise errors.invalid_field("security_groups", groups,
                                       f"{groups!r} is not of type 'array'")
        for g in groups:
            c.expect_object(g, "security_groups", ("name",), path="security_groups")
            req.security_groups.append(c.check_string(g.get("name"), "name",
                                                      min_length=1) or "")
    if srv.get("availability_zone") is not None:
        req.availability_zone = c.check_string(srv["availability_zone"],
                                               "availability_zone", min_length=1)
    req.min_count = c.check_int(srv.get("min_count", 1), "min_count", 1)
    req.max_count = c.check_int(srv.get("max_count", req.min_count), "max_count", 1)
    if req.min_count > req.max_count:
        raise BadRequest("min_count must be <= max_count")
    if "description" in srv:
        req.description = c.check_description(srv["description"], max_length=255)
    if "tags" in srv:
        tags = srv["tags"]
        if not isinstance(tags, list) or len(tags) > 50 or not all(
                isinstance(t, str) and 1 <= len(t) <= 60 and "/" not in t and "," not in t
                for t in tags):
            raise errors.invalid_field("tags", tags, "Tags are at most 50 strings of 1 to "
                                       "60 characters without '/' or ','")
        req.tags = list(dict.fromkeys(tags))
    if "hostname" in srv:
        req.hostname = c.check_string(srv["hostname"], "hostname", min_length=1,
                                      max_length=255, pattern=r"^[a-zA-Z0-9-._]*$")
    dc = srv.get("OS-DCF:diskConfig", "MANUAL")
    if dc not in ("AUTO", "MANUAL"):
        raise errors.invalid_field("OS-DCF:diskConfig", dc, f"{dc!r} is not one of "
                                   "['AUTO', 'MANUAL']")
    req.disk_config = dc
    for key, attr in (("accessIPv4", "access_ip_v4"), ("accessIPv6", "access_ip_v6")):
        if srv.get(key) is not None:
            setattr(req, attr, access_ip(srv[key], key))
    if "config_drive" in srv:
        req.config_drive = c.check_bool(srv["config_drive"], "config_drive")
    if "return_reservation_id" in srv:
        req.return_reservation_id = c.check_bool(srv["return_reservation_id"],
                                                 "return_reservation_id")
    hints = outer.get("os:scheduler_hints") or outer.get("OS-SCH-HNT:scheduler_hints")
    if hints is not None:
        req.scheduler_hints = c.expect_object(hints, "os:scheduler_hints",
                                              hints.keys() if isinstance(hints, dict) else ())
    if srv.get("adminPass") is not None:
        c.check_string(srv["adminPass"], "adminPass")
    return req


async def create(request: Request) -> Response:
    ctx = await c.authorize(request, S + "create")
    body = await read_json(request)
    req = parse_create(request, body)
    if req.networks is not None and req.networks != "none":
        c.enforce(request, ctx, S + "create:attach_network")
    made, password = await svc.create(c.state(request), caller(request, ctx), req)
    if req.return_reservation_id:
        return JSONResponse({"reservation_id": made[0].reservation_id}, status_code=202)
    inst = made[0]
    admin_pass = body["server"].get("adminPass") or password
    out: dict[str, Any] = {
        "id": inst.uuid, "links": c.resource_links(request, COLLECTION, inst.uuid),
        "OS-DCF:diskConfig": inst.disk_config, "adminPass": admin_pass,
    }
    if inst.security_groups:
        out["security_groups"] = [{"name": n} for n in inst.security_groups]
    return JSONResponse({"server": out}, status_code=202,
                        headers={"Location": out["links"][0]["href"]})


# -- list ------------------------------------------------------------------------------

LIST_QUERY = (
    "user_id", "project_id", "tenant_id", "launch_index", "image_ref", "image", "kernel_id",
    "ramdisk_id", "hostname", "key_name", "power_state", "vm_state", "task_state", "host",
    "node", "flavor", "reservation_id", "launched_at", "terminated_at", "availability_zone",
    "name", "display_name", "description", "display_description", "locked_by", "uuid",
    "root_device_name", "config_drive", "access_ip_v4", "access_ip_v6", "auto_disk_config",
    "progress", "sort_key", "sort_dir", "all_tenants", "soft_deleted", "deleted", "status",
    "changes-since", "changes-before", "ip", "ip6", "created_at", "block_device_mapping",
    "services", "metadata", "system_metadata", "info_cache", "security_groups", "pci_devices",
    "limit", "marker", "tags", "tags-any", "not-tags", "not-tags-any", "locked",
    "availability_zone", "config_drive", "pinned_availability_zone",
)


def _filters(request: Request, ctx: RequestContext, detail: bool) -> list_svc.ListFilters:
    c.check_query(request, LIST_QUERY)
    q = request.query_params
    admin = c.is_admin(request, ctx)
    all_tenants = False
    if "all_tenants" in q:
        raw = q.get("all_tenants") or "true"
        all_tenants = raw.lower() not in ("false", "0", "off", "no")
        if all_tenants:
            c.enforce(request, ctx, S + ("detail" if detail else "index") + ":get_all_tenants",
                      {})
    project = None if all_tenants else ctx.project_id
    if admin and all_tenants and (q.get("project_id") or q.get("tenant_id")):
        project = q.get("project_id") or q.get("tenant_id")
    f = list_svc.ListFilters(project_id=project)
    f.name = q.get("name") or q.get("display_name")
    f.status = q.get("status")
    if q.get("image"):
        f.image = q["image"].rsplit("/", 1)[-1]
    if q.get("flavor"):
        f.flavor = q["flavor"].rsplit("/", 1)[-1]
    if admin:
        f.host = q.get("host")
        f.user_id = q.get("user_id")
        if q.get("deleted") is not None:
            f.deleted = q["deleted"].lower() in ("true", "1", "yes", "on")
    if q.get("changes-since"):
        f.changes_since = c.check_date_time(q["changes-since"], "changes-since")
    if q.get("changes-before") and c.supports(request, "2.66"):
        f.changes_before = c.check_date_time(q["changes-before"], "changes-before")
    if c.supports(request, "2.26"):
        for param, attr in (("tags", "tags"), ("tags-any", "tags_any"),
                            ("not-tags", "not_tags"), ("not-tags-any", "not_tags_any")):
            given = c.query_one(request, param)
            if given:
                setattr(f, attr, [t.strip() for t in given.split(",") if t.strip()])
    if q.get("locked") is not None and c.supports(request, "2.73"):
        f.locked = c.check_bool(q["locked"], "locked")
    f.ip, f.ip6 = q.get("ip") or None, q.get("ip6") or None
    keys = q.getlist("sort_key")
    dirs = q.getlist("sort_dir")
    if keys or dirs:
        sort = []
        for i, key in enumerate(keys or ["created_at"]):
            if key not in list_svc.SORT_KEYS or (key in list_svc.ADMIN_SORT_KEYS and not admin):
                raise BadRequest(f"Invalid sort_key {key!r}" if key in list_svc.SORT_KEYS else
                                 f"Invalid input for query parameters sort_key. Value: "
                                 f"{key}. {key!r} is not one of the allowed sort keys")
            d = dirs[i] if i < len(dirs) else (dirs[-1] if dirs else "desc")
            if d not in ("asc", "desc"):
                raise errors.invalid_query("sort_dir", d, f"{d!r} is not one of "
                                           "['asc', 'desc']")
            sort.append((key, d))
        f.sort = sort
    return f


async def _list(request: Request, detail: bool) -> Response:
    ctx = await c.authorize(request, S + ("detail" if detail else "index"))
    f = _filters(request, ctx, detail)
    limit, marker = c.limit_and_marker(request)
    page = await list_svc.list_servers(c.state(request), f, limit, marker, brief=not detail)
    view = View(request, ctx)
    if detail:
        await view.load_host_statuses(page)
    items = [full(request, i, ctx, view) if detail else brief(request, i, view)
             for i in page]
    body: dict[str, Any] = {"servers": items}
    links = c.collection_links(request, [{"id": i.uuid} for i in page],
                               "servers/detail" if detail else "servers", "id")
    if links:
        body["servers_links"] = links
    return JSONResponse(body)


async def index(request: Request) -> Response:
    return await _list(request, False)


async def detail(request: Request) -> Response:
    return await _list(request, True)


# What the answers of update and rebuild leave out before 2.75, which made them
# show everything GET shows (Nova's view flags off for these extensions).
_NOT_IN_UPDATE = ("OS-EXT-AZ:", "OS-EXT-STS:", "OS-EXT-SRV-ATTR:", "OS-SRV-USG:",
                  "os-extended-volumes:")
_NOT_IN_UPDATE_KEYS = ("config_drive", "key_name", "security_groups", "host_status")


async def full_one(request: Request, inst: Instance, ctx: RequestContext, *,
                   changed: str = "") -> dict[str, Any]:
    """``full`` of one server, with 2.71's ``server_groups`` (show, update and
    rebuild have it; the list does not, as in Nova). ``changed``: "update" or
    "rebuild", whose answers lack the extended attributes before 2.75 (rebuild
    shows key_name from 2.54, and user_data instead of
    OS-EXT-SRV-ATTR:user_data from 2.57)."""
    view = View(request, ctx)
    await view.load_host_statuses([inst])
    out = full(request, inst, ctx, view)
    if changed == "rebuild":
        out.pop("OS-EXT-SRV-ATTR:user_data", None)
        if c.supports(request, "2.57"):
            out["user_data"] = inst.user_data
    if changed and not c.supports(request, "2.75"):
        keep = ("key_name",) if changed == "rebuild" and c.supports(request, "2.54") else ()
        for key in list(out):
            if (key.startswith(_NOT_IN_UPDATE) or key in _NOT_IN_UPDATE_KEYS) \
                    and key not in keep:
                del out[key]
        if keep:
            out["key_name"] = inst.key_name
        for entries in (out.get("addresses") or {}).values():
            for entry in entries:
                entry.pop("OS-EXT-IPS:type", None)
                entry.pop("OS-EXT-IPS-MAC:mac_addr", None)
    if c.supports(request, "2.71"):
        async with c.state(request).db.read() as s:
            group = (await groups_svc.groups_of(s, [inst.uuid])).get(inst.uuid)
        out["server_groups"] = [group] if group else []
    return out


async def show(request: Request) -> Response:
    ctx, inst = await _authorized_server(request, S + "show")
    return JSONResponse({"server": await full_one(request, inst, ctx)})


async def update(request: Request) -> Response:
    ctx, inst = await _authorized_server(request, S + "update")
    keys = ["name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig"]
    if c.supports(request, "2.19"):
        keys.append("description")
    if c.supports(request, "2.90"):
        keys.append("hostname")
    srv = await c.body_object(request, "server", keys)
    values: dict[str, Any] = {}
    if "name" in srv:
        values["display_name"] = c.check_name(srv["name"])
    if "description" in srv:
        values["display_description"] = c.check_description(srv["description"],
                                                            max_length=255)
    if "hostname" in srv:
        values["hostname"] = c.check_string(srv["hostname"], "hostname", min_length=1,
                                            pattern=r"^[a-zA-Z0-9-._]*$")
    for key, attr in (("accessIPv4", "access_ip_v4"), ("accessIPv6", "access_ip_v6")):
        if key in srv:
            values[attr] = None if srv[key] is None else access_ip(srv[key], key)
    if "OS-DCF:diskConfig" in srv:
        if srv["OS-DCF:diskConfig"] not in ("AUTO", "MANUAL"):
            raise errors.invalid_field("OS-DCF:diskConfig", srv["OS-DCF:diskConfig"],
                                       "not one of ['AUTO', 'MANUAL']")
        values["disk_config"] = srv["OS-DCF:diskConfig"]
    inst = await svc.update_server(c.state(request), inst.uuid, values, None)
    return JSONResponse({"server": await full_one(request, inst, ctx, changed="update")})


async def delete(request: Request) -> Response:
    ctx, inst = await _authorized_server(request, S + "delete")
    await svc.delete(c.state(request), inst.uuid, caller(request, ctx), None)
    return Response(status_code=204)


# -- actions ---------------------------------------------------------------------------

POWER = {
    "os-stop": ("stop", S + "stop"), "os-start": ("start", S + "start"),
    "pause": ("pause", "os_compute_api:os-pause-server:pause"),
    "unpause": ("unpause", "os_compute_api:os-pause-server:unpause"),
}


async def action(request: Request) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("There is no such action: "
                         + (", ".join(body) if isinstance(body, dict) else ""))
    name, arg = next(iter(body.items()))
    st = c.state(request)
    if name in POWER:
        key, rule = POWER[name]
        ctx, inst = await _authorized_server(request, rule)
        await svc.power_action(st, inst.uuid, key, caller(request, ctx), None)
        return Response(status_code=202)
    if name == "reboot":
        ctx, inst = await _authorized_server(request, S + "reboot")
        c.expect_object(arg, "reboot", ("type",), ("type",), path="reboot")
        kind = arg["type"]
        if not isinstance(kind, str) or kind.upper() not in ("SOFT", "HARD"):
            raise errors.invalid_field("reboot/type", kind, f"{kind!r} is not one of "
                                       "['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']")
        key = "reboot_hard" if kind.upper() == "HARD" else "reboot_soft"
        await svc.power_action(st, inst.uuid, key, caller(request, ctx), None)
        return Response(status_code=202)
    if name in ("lock", "unlock"):
        ctx, inst = await _authorized_server(request, f"os_compute_api:os-lock-server:{name}")
        reason = None
        if name == "lock" and arg is not None:
            allowed = ("locked_reason",) if c.supports(request, "2.73") else ()
            c.expect_object(arg, "lock", allowed, path="lock")
            reason = c.check_string(arg.get("locked_reason"), "locked_reason",
                                    nullable=True, max_length=255)
        override = c.allowed(request, ctx, "os_compute_api:os-lock-server:unlock:"
                             "unlock_override", target(inst))
        await svc.set_lock(st, inst.uuid, caller(request, ctx), None, name == "lock", reason,
                           may_override=override)
        return Response(status_code=202)
    if name == "os-resetState":
        ctx, inst = await _authorized_server(request,
                                             "os_compute_api:os-admin-actions:reset_state")
        c.expect_object(arg, "os-resetState", ("state",), ("state",), path="os-resetState")
        state = arg["state"]
        if state not in ("active", "error"):
            raise errors.invalid_field("os-resetState/state", state,
                                       f"{state!r} is not one of ['active', 'error']")
        await svc.reset_state(st, inst.uuid, state, caller(request, ctx))
        return Response(status_code=202)
    if name == "os-getConsoleOutput":
        ctx, inst = await _authorized_server(request, "os_compute_api:os-console-output")
        c.expect_object(arg, "os-getConsoleOutput", ("length",), path="os-getConsoleOutput")
        length = arg.get("length")
        if length is not None:
            if isinstance(length, str) and re.match(r"^-?[0-9]+$", length):
                length = int(length)
            if isinstance(length, bool) or not isinstance(length, int) or length < -1:
                raise errors.invalid_field("length", length,
                                           f"{length!r} is not of type 'integer', 'string'")
            if length == -1:
                length = None
        text = await svc.console_output(st, inst.uuid, None, length)
        return JSONResponse({"output": text})
    if name == "migrate":
        ctx, inst = await _authorized_server(request, "os_compute_api:os-migrate-server:migrate")
        host = _migrate_host(request, arg)
        await migrations_svc.cold_migrate(st, inst.uuid, caller(request, ctx), host)
        return Response(status_code=202)
    if name == "injectNetworkInfo":
        # guests take their network by DHCP and the metadata service, which always
        # have the ports' current state: nothing to push
        await _authorized_server(request, "os_compute_api:os-admin-actions:inject_network_info")
        return Response(status_code=202)
    if name in MORE_ACTIONS:
        return await MORE_ACTIONS[name](request, arg)
    raise BadRequest(f"There is no such action: {name}")


def _migrate_host(request: Request, arg: Any) -> str | None:
    """``migrate``'s body: null, or from 2.56 ``{"host": name or null}``.

    Raises:
        BadRequest (Nova's schema messages).
    """
    if not c.supports(request, "2.56"):
        if arg is not None:
            raise errors.invalid_field("migrate", arg, f"{arg!r} is not of type 'null'")
        return None
    if arg is None:
        return None
    c.expect_object(arg, "migrate", ("host",), path="migrate")
    return c.check_string(arg.get("host"), "host", nullable=True, min_length=1,
                          max_length=255)


# -- the actions of service/actions.py: (instance action, policy rule) -------------------

SIMPLE = {
    "suspend": ("suspend", "os_compute_api:os-suspend-server:suspend"),
    "resume": ("resume", "os_compute_api:os-suspend-server:resume"),
    "unrescue": ("unrescue", "os_compute_api:os-unrescue"),
    "revertResize": ("revertResize", S + "revert_resize"),
    "shelveOffload": ("shelveOffload", "os_compute_api:os-shelve:shelve_offload"),
}


ActionHandler = Callable[[Request, Any], Awaitable[Response]]


def _simple(name: str) -> ActionHandler:
    key, rule = SIMPLE[name]

    async def run(request: Request, arg: Any) -> Response:
        ctx, inst = await _authorized_server(request, rule)
        await actions_svc.simple(c.state(request), inst.uuid, caller(request, ctx), key)
        return Response(status_code=202)
    return run


async def _confirm_resize(request: Request, arg: Any) -> Response:
    ctx, inst = await _authorized_server(request, S + "confirm_resize")
    await actions_svc.simple(c.state(request), inst.uuid, caller(request, ctx),
                             "confirmResize")
    return Response(status_code=204)


async def _rescue(request: Request, arg: Any) -> Response:
    ctx, inst = await _authorized_server(request, "os_compute_api:os-rescue")
    password, image_ref = None, None
    if arg is not None:
        c.expect_object(arg, "rescue", ("adminPass", "rescue_image_ref"), path="rescue")
        if "adminPass" in arg:
            password = c.check_string(arg["adminPass"], "adminPass")
        if "rescue_image_ref" in arg:
            image_ref = _check_uuid(arg["rescue_image_ref"], "rescue_image_ref")
    await actions_svc.rescue(c.state(request), inst.uuid, caller(request, ctx), image_ref)
    return JSONResponse({"adminPass": password or svc.generate_password()})


def _flavor_ref(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise errors.invalid_field("flavorRef", value,
                                   f"{value!r} is not of type 'string', 'integer'")
    return str(value).rsplit("/", 1)[-1]


async def _resize(request: Request, arg: Any) -> Response:
    ctx, inst = await _authorized_server(request, S + "resize")
    c.expect_object(arg, "resize", ("flavorRef", "OS-DCF:diskConfig"), ("flavorRef",),
                    path="resize")
    dc = _disk_config(arg)
    await actions_svc.resize(c.state(request), inst.uuid, caller(request, ctx),
                             _flavor_ref(arg["flavorRef"]))
    if dc is not None:  # the resized server's disk config, as Nova records it
        await svc.update_server(c.state(request), inst.uuid, {"disk_config": dc}, None)
    return Response(status_code=202)


def _disk_config(arg: dict[str, Any]) -> str | None:
    dc = arg.get("OS-DCF:diskConfig")
    if dc is not None and dc not in ("AUTO", "MANUAL"):
        raise errors.invalid_field("OS-DCF:diskConfig", dc,
                                   f"{dc!r} is not one of ['AUTO', 'MANUAL']")
    return dc


def parse_rebuild(request: Request, arg: Any) -> tuple[actions_svc.RebuildRequest, str | None]:
    """Nova's rebuild schema for the microversion; (request, adminPass).

    Raises:
        BadRequest.
    """
    keys = ["imageRef", "name", "adminPass", "metadata", "OS-DCF:diskConfig", "accessIPv4",
            "accessIPv6", "preserve_ephemeral"]
    if not c.supports(request, "2.57"):
        keys.append("personality")
    for version, key in (("2.19", "description"), ("2.54", "key_name"),
                         ("2.57", "user_data"), ("2.63", "trusted_image_certificates"),
                         ("2.90", "hostname")):
        if c.supports(request, version):
            keys.append(key)
    c.expect_object(arg, "rebuild", keys, ("imageRef",), path="rebuild")
    image_ref = arg["imageRef"]
    if not isinstance(image_ref, str) or not image_ref:
        raise errors.invalid_field("imageRef", image_ref, f"{image_ref!r} is not a 'uuid'")
    req = actions_svc.RebuildRequest(image_ref=image_ref.rsplit("/", 1)[-1])
    if "name" in arg:
        req.name = c.check_name(arg["name"])
    if "metadata" in arg:
        req.metadata = c.check_metadata(arg["metadata"])
    if "description" in arg:
        req.description = c.check_description(arg["description"], max_length=255)
        req.set_description = True
    if "key_name" in arg:
        req.key_name = c.check_string(arg["key_name"], "key_name", min_length=1,
                                      nullable=True)
        req.set_key_name = True
    if "user_data" in arg:
        ud = arg["user_data"]
        if ud is not None:
            ud = c.check_string(ud, "user_data", max_length=1 << 30)
            assert ud is not None
            svc.check_user_data(ud)
        req.user_data, req.set_user_data = ud, True
    if "hostname" in arg:
        req.hostname = c.check_string(arg["hostname"], "hostname", min_length=1,
                                      max_length=255, pattern=r"^[a-zA-Z0-9-._]*$")
    for key, attr in (("accessIPv4", "access_ip_v4"), ("accessIPv6", "access_ip_v6")):
        if arg.get(key) is not None:
            setattr(req, attr, access_ip(arg[key], key))
    req.disk_config = _disk_config(arg)
    if "preserve_ephemeral" in arg:
        c.check_bool(arg["preserve_ephemeral"], "preserve_ephemeral")
    if arg.get("trusted_image_certificates") is not None:
        raise BadRequest("Image certificate validation is not supported by this cloud.")
    password = None
    if "adminPass" in arg:
        password = c.check_string(arg["adminPass"], "adminPass")
    return req, password


async def _rebuild(request: Request, arg: Any) -> Response:
    ctx, inst = await _authorized_server(request, S + "rebuild")
    req, password = parse_rebuild(request, arg)
    inst = await actions_svc.rebuild(c.state(request), inst.uuid, caller(request, ctx), req)
    out = await full_one(request, inst, ctx, changed="rebuild")
    out["adminPass"] = password or svc.generate_password()
    return JSONResponse({"server": out}, status_code=202)


async def _create_image(request: Request, arg: Any) -> Response:
    ctx, inst = await _authorized_server(request, S + "create_image")
    c.expect_object(arg, "createImage", ("name", "metadata"), ("name",), path="createImage")
    name = c.check_name(arg["name"])
    metadata = c.check_metadata(arg["metadata"]) if "metadata" in arg else {}
    image_id = await actions_svc.create_image(c.state(request), inst.uuid,
                                              caller(request, ctx), name, metadata)
    if c.supports(request, "2.45"):
        return JSONResponse({"image_id": image_id}, status_code=202)
    url = request.url
    return Response(status_code=202, headers={
        "Location": f"{url.scheme}://{url.netloc}/image/v2/images/{image_id}"})


async def _create_backup(request: Request, arg: Any) -> Response:
    ctx, inst = await _authorized_server(request, "os_compute_api:os-create-backup")
    c.expect_object(arg, "createBackup", ("name", "backup_type", "rotation", "metadata"),
                    ("name", "backup_type", "rotation"), path="createBackup")
    name = c.check_name(arg["name"])
    backup_type = c.check_string(arg["backup_type"], "backup_type")
    rotation = c.check_int(arg["rotation"], "rotation", 0)
    metadata = c.check_metadata(arg["metadata"]) if "metadata" in arg else {}
    image_id = await actions_svc.create_backup(c.state(request), inst.uuid,
                                               caller(request, ctx), name, backup_type or "",
                                               rotation, metadata)
    if c.supports(request, "2.45"):
        return JSONResponse({"image_id": image_id}, status_code=202)
    url = request.url
    headers = ({"Location": f"{url.scheme}://{url.netloc}/image/v2/images/{image_id}"}
               if rotation > 0 else {})  # rotation 0 deletes the backup once made
    return Response(status_code=202, headers=headers)


async def _shelve(request: Request, arg: Any) -> Response:
    ctx, inst = await _authorized_server(request, "os_compute_api:os-shelve:shelve")
    await actions_svc.shelve(c.state(request), inst.uuid, caller(request, ctx))
    return Response(status_code=202)


async def _unshelve(request: Request, arg: Any) -> Response:
    ctx, inst = await _authorized_server(request, "os_compute_api:os-shelve:unshelve")
    if arg is not None and c.supports(request, "2.77"):  # before 2.77 the body is ignored
        if c.supports(request, "2.91"):
            c.expect_object(arg, "unshelve", ("availability_zone", "host"), path="unshelve")
            if not arg:
                raise errors.invalid_field("unshelve", arg, "{} does not have enough properties")
        else:
            c.expect_object(arg, "unshelve", ("availability_zone",), ("availability_zone",),
                            path="unshelve")
            c.check_name(arg["availability_zone"], "availability_zone")
        zone = arg.get("availability_zone")
        st = c.state(request)
        if zone is not None and zone != st.conf.default_availability_zone:
            raise BadRequest("The requested availability zone is not available")
        if arg.get("host") is not None:
            c.enforce(request, ctx, "os_compute_api:os-shelve:unshelve_to_host", target(inst))
            if not await hosts_svc.list_services(st, scheduler.COMPUTE_BINARY, arg["host"]):
                raise BadRequest(f"Compute host {arg['host']} could not be found.")
    host = arg.get("host") if isinstance(arg, dict) and c.supports(request, "2.91") else None
    await actions_svc.unshelve(c.state(request), inst.uuid, caller(request, ctx), host)
    return Response(status_code=202)


async def _force_delete(request: Request, arg: Any) -> Response:
    """Without soft delete every delete is immediate: forceDelete is a delete."""
    ctx, inst = await _authorized_server(request, "os_compute_api:os-deferred-delete:force")
    await svc.delete(c.state(request), inst.uuid, caller(request, ctx), None)
    return Response(status_code=202)


async def _restore(request: Request, arg: Any) -> Response:
    """No server is ever soft-deleted here, so there is never one to restore."""
    ctx, inst = await _authorized_server(request, "os_compute_api:os-deferred-delete:restore")
    if inst.locked and not c.is_admin(request, ctx):
        raise svc.locked(inst)
    raise svc.invalid_state("restore", inst)


MORE_ACTIONS: dict[str, ActionHandler] = {
    **{name: _simple(name) for name in SIMPLE},
    "confirmResize": _confirm_resize, "rescue": _rescue, "resize": _resize,
    "rebuild": _rebuild, "createImage": _create_image, "createBackup": _create_backup,
    "shelve": _shelve,
    "unshelve": _unshelve, "forceDelete": _force_delete, "restore": _restore,
    # addSecurityGroup, removeSecurityGroup, addFloatingIp, removeFloatingIp
    **net_proxies.ACTIONS,
    # os-getVNCConsole, os-getSPICEConsole, os-getSerialConsole, os-getRDPConsole
    **consoles.ACTIONS,
}


# -- os-instance-actions ------------------------------------------------------------------

IA = "os_compute_api:os-instance-actions:"


def _action(request: Request, a: InstanceAction) -> dict[str, Any]:
    out: dict[str, Any] = {"action": a.action, "instance_uuid": a.instance_uuid,
                           "message": a.message, "project_id": a.project_id,
                           "request_id": a.request_id, "start_time": _usec(a.start_time),
                           "user_id": a.user_id}
    if c.supports(request, "2.58"):
        out["updated_at"] = _usec(a.updated_at or a.start_time)
    return out


def _event(request: Request, e: InstanceActionEvent, inst: Instance, admin: bool,
           details: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"event": e.event, "start_time": _usec(e.start_time),
                           "finish_time": _usec(e.finish_time), "result": e.result}
    if admin:
        out["traceback"] = e.traceback
    if c.supports(request, "2.62"):
        if admin:
            out["host"] = e.host or ""
        out["hostId"] = (hashlib.sha224((inst.project_id + e.host).encode()).hexdigest()
                         if e.host else "")
    if c.supports(request, "2.84") and details:
        out["details"] = e.details
    return out


async def _server_any(request: Request, rule: str) -> tuple[RequestContext, Instance]:
    ctx = await c.context(request)
    inst = await svc.get(c.state(request), request.path_params["server_id"], deleted=True)
    if not c.allowed(request, ctx, rule, target(inst)):
        if ctx.project_id != inst.project_id:
            raise svc.not_found(inst.uuid)
        raise errors.policy_refused(rule)
    return ctx, inst


async def actions_index(request: Request) -> Response:
    _ctx, inst = await _server_any(request, IA + "list")
    rows = await svc.list_actions(c.state(request), inst.uuid)
    items = [_action(request, a) for a in rows]
    body: dict[str, Any] = {"instanceActions": items}
    return JSONResponse(body)


async def actions_show(request: Request) -> Response:
    ctx, inst = await _server_any(request, IA + "show")
    a, events = await svc.get_action(c.state(request), inst.uuid,
                                     request.path_params["request_id"])
    out = _action(request, a)
    admin = c.allowed(request, ctx, IA + "events", target(inst))
    if admin or c.supports(request, "2.51"):
        details = c.allowed(request, ctx, IA + "events:details", target(inst))
        out["events"] = [_event(request, e, inst, admin, details) for e in events]
    return JSONResponse({"instanceAction": out})


P = c.API_PREFIX
routes = [
    Route(f"{P}/servers", index, methods=["GET"]),
    Route(f"{P}/servers", create, methods=["POST"]),
    Route(f"{P}/servers/detail", detail, methods=["GET"]),
    Route(f"{P}/servers/{{server_id}}", show, methods=["GET"]),
    Route(f"{P}/servers/{{server_id}}", update, methods=["PUT"]),
    Route(f"{P}/servers/{{server_id}}", delete, methods=["DELETE"]),
    Route(f"{P}/servers/{{server_id}}/action", action, methods=["POST"]),
    Route(f"{P}/servers/{{server_id}}/os-instance-actions", actions_index, methods=["GET"]),
    Route(f"{P}/servers/{{server_id}}/os-instance-actions/{{request_id}}", actions_show,
          methods=["GET"]),
]
