"""Servers: create (checks against the image and networking services, quotas,
rows and a durable build task in one transaction), read (listing is
``server_list``), update, delete and the power actions; the build, delete and
action tasks; instance actions.

States are Nova's: ``vm_state`` (building, active, stopped, paused, error,
deleted), ``task_state`` (what is under way: scheduling, networking, spawning,
powering-off ...; ``None`` when idle) and ``power_state`` (the driver's number).

Every change a user asks for is a durable task (``compute_tasks``), so that work
under way survives a restart of the process:

- ``build``: schedule and claim (``scheduler.schedule``, idempotent through the
  allocation row), create or bind the ports through the networking API (found
  again by ``device_id`` on a second attempt), spawn with the driver, ACTIVE. When
  nothing fits, or the last attempt fails, the server goes to ERROR with a fault;
- ``delete``: cancel a build that has not started, wait for one under way to
  notice, destroy the guest, delete the ports compute created (and unbind the
  ones the user gave), free the allocation, mark the row deleted: always finishes;
- ``action``: a power action through the driver, then the resulting states.

Each records its steps as events of the server's instance action.

Several hosts on one database: a task on a server is routed to the server's host
(kind ``<kind>@<host>``, see ``routed``); a build starts unrouted, and the host
that schedules it hands it to the chosen host; when that host goes down before
building it, another host takes the build over and schedules it again without
that host (``build_takeover``). Driver questions asked by the API
(console output, VNC console) go to the server's host as a ``driver_call`` task.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import secrets
import string
import uuid as uuidlib
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.compute import errors
from onestack.compute.drivers.base import RUNNING as RUNS
from onestack.compute.drivers.base import DriverError, GuestNotFound, InstanceSpec, VncConsole
from onestack.compute.models import (
    Flavor,
    Instance,
    InstanceAction,
    InstanceActionEvent,
    KeyPair,
    Task,
    utcnow,
)
from onestack.compute.service import external, quotas, scheduler
from onestack.compute.service import hosts as hosts_svc
from onestack.compute.service import metadata as metadata_svc
from onestack.compute.service import server_groups as groups_svc
from onestack.compute.service.flavors import Viewer, _extra_specs, _find
from onestack.compute.state import ComputeState
from onestack.core import tasks as tasks_mod
from onestack.core.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from onestack.core.tasks import TaskHandle

if TYPE_CHECKING:  # server_list imports this module
    from onestack.compute.service.server_list import Listed

log = logging.getLogger("onestack.compute")

# vm states
BUILDING, ACTIVE, STOPPED, PAUSED, ERROR, DELETED = (
    "building", "active", "stopped", "paused", "error", "deleted")
# task states
SCHEDULING, NETWORKING, SPAWNING, DELETING = "scheduling", "networking", "spawning", "deleting"

STATUS = {BUILDING: "BUILD", ACTIVE: "ACTIVE", STOPPED: "SHUTOFF", PAUSED: "PAUSED",
          ERROR: "ERROR", DELETED: "DELETED", "suspended": "SUSPENDED", "rescued": "RESCUE",
          "resized": "VERIFY_RESIZE", "shelved": "SHELVED",
          "shelved_offloaded": "SHELVED_OFFLOADED"}
# task states that show as REBUILD / RESIZE whatever the vm state (service/actions.py)
REBUILD_TASKS = ("rebuilding", "rebuild_spawning")
RESIZE_TASKS = ("resize_prep", "resize_migrating", "resize_migrated", "resize_finish")
TASK_STATUS = {"rebooting": "REBOOT", "reboot_pending": "REBOOT", "reboot_started": "REBOOT",
               "rebooting_hard": "HARD_REBOOT", "reboot_pending_hard": "HARD_REBOOT",
               "reboot_started_hard": "HARD_REBOOT"}
# API status filter -> (vm_state, task states or None for any)
STATUS_FILTER: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "BUILD": (BUILDING, None), "ACTIVE": (ACTIVE, None), "SHUTOFF": (STOPPED, None),
    "PAUSED": (PAUSED, None), "ERROR": (ERROR, None), "DELETED": (DELETED, None),
    "REBOOT": (ACTIVE, ("rebooting", "reboot_pending", "reboot_started")),
    "HARD_REBOOT": (ACTIVE, ("rebooting_hard", "reboot_pending_hard", "reboot_started_hard")),
    "SUSPENDED": ("suspended", None), "RESCUE": ("rescued", None),
    "VERIFY_RESIZE": ("resized", None), "SHELVED": ("shelved", None),
    "SHELVED_OFFLOADED": ("shelved_offloaded", None),
    "REBUILD": (ACTIVE, REBUILD_TASKS), "RESIZE": (ACTIVE, RESIZE_TASKS),
}

BUILD, DELETE, ACTION = "build", "delete", "action"
BUILD_EVENT = "compute__do_build_and_run_instance"
SCHEDULE_EVENT = "conductor_schedule_and_build_instances"
DELETE_EVENT = "compute_terminate_instance"


# -- several hosts: a task on a server runs on the server's host ------------------------

def routed(kind: str, host: str | None) -> str:
    """The task kind for work on ``host``'s guests (``build@compute-2``): only that
    host's runner claims it. With no host yet (a build not scheduled, a server never
    placed) the plain kind, which every host's runner claims."""
    return f"{kind}@{host}" if host else kind


async def submit_for(st: ComputeState, s: AsyncSession, kind: str, host: str | None,
                     payload: dict[str, Any], *, task_id: str | None = None) -> str:
    """Submit a task for the server on ``host``, in the caller's transaction."""
    return await st.tasks.submit(s, routed(kind, host), payload, task_id=task_id,  # type: ignore[no-any-return]
                                 elsewhere=bool(host) and host != st.host)


async def run_here(st: ComputeState, handle: TaskHandle, host: str | None) -> bool:
    """Whether this host runs the task of a server on ``host``; if not, the task is
    handed to that host's runner (the caller returns at once)."""
    if not host or host == st.host:
        return True
    await handle.hand_over(routed(handle.kind.split("@")[0], host))
    log.info("task %s (%s) handed to host %s", handle.id, handle.kind, host)
    return False


DRIVER_CALL = "driver_call"  # a question for the driver of another host (always routed)
REAP = "reap"  # destroy the guest of a server deleted while its host was down (routed)
DRIVER_CALLS = frozenset({"console_output", "vnc_console"})
DRIVER_CALL_WAIT = 30.0  # seconds; the other host claims it at its next poll (1 s)


async def handle_driver_call(st: ComputeState, handle: TaskHandle) -> dict[str, Any]:
    method, inst_uuid = handle.payload["method"], handle.payload["uuid"]
    if method not in DRIVER_CALLS:
        return {"error": f"unknown driver call {method!r}"}
    try:
        value = await getattr(st.driver, method)(inst_uuid)
    except GuestNotFound:
        return {"error": "GuestNotFound"}
    except NotImplementedError:
        return {"error": "NotImplementedError"}
    if isinstance(value, VncConsole):
        return {"value": asdict(value)}
    return {"value": value}


async def call_driver(st: ComputeState, inst: Instance, method: str) -> Any:
    """``driver.<method>(uuid)`` on the server's host: here directly; for a server
    on another host through a task routed to it, waited for (the API answers from
    any host, the guest is where it runs).

    Raises:
        GuestNotFound; NotImplementedError; Conflict: the server's host is down;
        ServiceUnavailable: it did not answer in time.
    """
    host = inst.host
    if not host or host == st.host:
        return await getattr(st.driver, method)(inst.uuid)
    if not await hosts_svc.is_up(st, host):
        raise Conflict(f"Compute service of {host} is unavailable at this time.")
    async with st.db.write() as s:
        task_id = await submit_for(st, s, DRIVER_CALL, host,
                                   {"uuid": inst.uuid, "method": method})
    try:
        info = await st.tasks.wait(task_id, timeout=DRIVER_CALL_WAIT)
    except TimeoutError:
        raise ServiceUnavailable(f"Compute service of {host} did not answer within "
                                 f"{DRIVER_CALL_WAIT:g} s.") from None
    finally:
        t = Task.__table__
        async with st.db.write() as s:  # its answer is read: the row has done its job
            await s.execute(sa.delete(t).where(t.c.id == task_id))
    result = info.result or {}
    error = result.get("error") or (info.error if info.state == tasks_mod.FAILED else None)
    if error == "GuestNotFound":
        raise GuestNotFound(inst.uuid)
    if error == "NotImplementedError":
        raise NotImplementedError(method)
    if error:
        raise ServiceUnavailable(f"Compute service of {host} failed: {error}")
    value = result.get("value")
    return VncConsole(**dict(value or {})) if method == "vnc_console" else value


def status(inst: Instance | Listed) -> str:
    """Nova's status from vm_state and task_state."""
    if inst.vm_state in (ACTIVE, STOPPED, ERROR) and inst.task_state in REBUILD_TASKS:
        return "REBUILD"
    if inst.vm_state in (ACTIVE, STOPPED) and inst.task_state in RESIZE_TASKS:
        return "RESIZE"
    if inst.vm_state == "resized" and inst.task_state == "resize_reverting":
        return "REVERT_RESIZE"
    if inst.vm_state == ACTIVE and inst.task_state in TASK_STATUS:
        return TASK_STATUS[inst.task_state]
    if inst.vm_state == STOPPED and inst.task_state in ("rebooting_hard",):
        return "HARD_REBOOT"
    return STATUS.get(inst.vm_state, "UNKNOWN")


def not_found(server_id: str) -> NotFound:
    return NotFound(f"Instance {server_id} could not be found.")


def invalid_state(action: str, inst: Instance, attr: str = "vm_state") -> Conflict:
    value = inst.vm_state if attr == "vm_state" else inst.task_state
    return Conflict(f"Cannot '{action}' instance {inst.uuid} while it is in {attr} {value}")


def locked(inst: Instance) -> Conflict:
    return Conflict(f"Instance {inst.uuid} is locked")


# -- power actions: (allowed vm states, task state while it runs, driver method) ------

@dataclass(frozen=True)
class PowerAction:
    name: str  # the instance action and the conflict messages' word
    vm_states: tuple[str, ...]
    task_state: str
    event: str


POWER_ACTIONS = {
    "stop": PowerAction("stop", (ACTIVE, ERROR), "powering-off", "compute_stop_instance"),
    "start": PowerAction("start", (STOPPED,), "powering-on", "compute_start_instance"),
    "reboot_soft": PowerAction("reboot", (ACTIVE,), "rebooting", "compute_reboot_instance"),
    "reboot_hard": PowerAction("reboot", (ACTIVE, STOPPED, PAUSED, ERROR), "rebooting_hard",
                               "compute_reboot_instance"),
    "pause": PowerAction("pause", (ACTIVE,), "pausing", "compute_pause_instance"),
    "unpause": PowerAction("unpause", (PAUSED,), "unpausing", "compute_unpause_instance"),
}


# -- create ------------------------------------------------------------------------

@dataclass
class NetworkRequest:
    network_id: str | None = None
    port_id: str | None = None
    fixed_ip: str | None = None
    tag: str | None = None


@dataclass
class CreateRequest:
    name: str
    image_ref: str
    flavor_ref: str
    networks: str | list[NetworkRequest] | None = None  # None: not given (before 2.37)
    key_name: str | None = None
    user_data: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    security_groups: list[str] = field(default_factory=list)
    availability_zone: str | None = None
    min_count: int = 1
    max_count: int = 1
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    disk_config: str = "MANUAL"
    config_drive: bool = False
    return_reservation_id: bool = False
    hostname: str | None = None
    scheduler_hints: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Caller:
    project_id: str
    user_id: str
    token: str
    request_id: str
    is_admin: bool


def generate_password(length: int = 12) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def check_user_data(value: str) -> None:
    """Base64 text of at most 65535 characters, as Nova's schema.

    Raises:
        BadRequest.
    """
    if len(value) > 65535:
        raise errors.invalid_field("user_data", value[:32] + "...",
                                   "The user_data is too long (more than 65535 characters).")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise errors.invalid_field("user_data", value[:32], f"{value[:32]!r} is not a 'base64'") \
            from None


def hostname_of(name: str) -> str:
    """Nova's sanitised host name: lower case letters, digits and hyphens."""
    h = re.sub(r"[^\w.-]+", "", name.replace(" ", "-").replace("_", "-")).lower()
    h = h.replace(".", "-").strip("-")[:63]
    return h or "server"


async def _resolve_networks(st: ComputeState, caller: Caller,
                            req: CreateRequest) -> list[dict[str, Any]]:
    """The networks and ports the server gets, checked with the caller's token.

    Raises:
        BadRequest: unknown network or port; Conflict: a port in use, or several
            networks to choose from.
    """
    requested = req.networks
    if requested == "none":
        return []
    if requested is None or requested == "auto":
        nets = [n for n in await external.list_networks(st, caller.token)
                if not n.get("router:external") and
                (n.get("project_id") == caller.project_id or n.get("shared"))]
        if len(nets) > 1:
            raise Conflict("Multiple possible networks found, use a Network ID to be more "
                           "specific.")
        if not nets:
            if requested == "auto":
                raise BadRequest("Unable to automatically allocate a network for project "
                                 f"{caller.project_id}")
            return []
        return [{"network_id": nets[0]["id"]}]
    out: list[dict[str, Any]] = []
    assert isinstance(requested, list)
    for nr in requested:
        if nr.port_id:
            port = await external.get_port(st, {"X-Auth-Token": caller.token}, nr.port_id)
            if port is None:
                raise BadRequest(f"Port {nr.port_id} could not be found.")
            if port.get("device_id"):
                raise Conflict(f"Port {nr.port_id} is still in use.")
            out.append({"port_id": nr.port_id, "network_id": port["network_id"]})
            continue
        assert nr.network_id is not None
        if await external.get_network(st, caller.token, nr.network_id) is None:
            raise BadRequest(f"Network {nr.network_id} could not be found.")
        entry: dict[str, Any] = {"network_id": nr.network_id}
        if nr.fixed_ip:
            entry["fixed_ip"] = nr.fixed_ip
        out.append(entry)
    return out


def _check_image(image: dict[str, Any], flavor: Flavor) -> None:
    """Raises: BadRequest (Nova's messages) when the image cannot boot on the flavor."""
    if image.get("status") != "active":
        raise BadRequest(f"Image {image['id']} is not active.")
    min_ram = int(image.get("min_ram") or 0)
    if min_ram > flavor.memory_mb:
        raise BadRequest("Flavor's memory is too small for requested image.")
    if flavor.root_gb:
        gib = 1024 ** 3
        min_disk = int(image.get("min_disk") or 0)
        if min_disk > flavor.root_gb:
            raise BadRequest(
                "Flavor's disk is too small for requested image. Flavor disk is "
                f"{flavor.root_gb * gib} bytes, minimum requested disk is {min_disk * gib} bytes.")
        size = int(image.get("size") or 0)
        if size > flavor.root_gb * gib:
            raise BadRequest(
                "Flavor's disk is too small for requested image. Flavor disk is "
                f"{flavor.root_gb * gib} bytes, image is {size} bytes.")


IMAGE_KEYS = frozenset({
    "id", "name", "status", "visibility", "protected", "checksum", "os_hash_algo",
    "os_hash_value", "owner", "size", "virtual_size", "min_ram", "min_disk", "created_at",
    "updated_at", "tags", "self", "file", "schema", "direct_url", "locations",
    "os_hidden", "stores",
})


def image_snapshot(image: dict[str, Any]) -> dict[str, Any]:
    props = {k: v for k, v in image.items() if k not in IMAGE_KEYS}
    return {"id": image["id"], "name": image.get("name"), "min_ram": image.get("min_ram"),
            "min_disk": image.get("min_disk"), "size": image.get("size"),
            "disk_format": image.get("disk_format"), "properties": props}


def flavor_snapshot(flavor: Flavor, specs: dict[str, str]) -> dict[str, Any]:
    return {"flavorid": flavor.flavorid, "name": flavor.name, "vcpus": flavor.vcpus,
            "ram": flavor.memory_mb, "disk": flavor.root_gb, "ephemeral": flavor.ephemeral_gb,
            "swap": flavor.swap, "extra_specs": specs}


async def usage(s: AsyncSession, project_id: str) -> dict[str, int]:
    """What a project's servers use: instances, cores, ram."""
    i = Instance
    row = (await s.execute(
        select(func.count(i.id), func.coalesce(func.sum(i.vcpus), 0),
               func.coalesce(func.sum(i.memory_mb), 0))
        .where(i.project_id == project_id, i.deleted.is_(False)))).one()
    return {"instances": int(row[0]), "cores": int(row[1]), "ram": int(row[2])}


def _fit_quota(used: dict[str, int], allowed: dict[str, int], flavor: Flavor,
               min_count: int, max_count: int) -> int:
    """How many servers fit (``max_count`` down to ``min_count``).

    Raises:
        Forbidden: not even ``min_count`` fit (Nova's TooManyInstances).
    """
    per = {"instances": 1, "cores": flavor.vcpus, "ram": flavor.memory_mb}
    count = max_count
    while count >= min_count:
        if all(allowed[k] < 0 or used[k] + per[k] * count <= allowed[k] for k in per):
            return count
        count -= 1
    overs = [k for k in ("instances", "cores", "ram")
             if allowed[k] >= 0 and used[k] + per[k] * min_count > allowed[k]]
    req = ", ".join(str(per[k] * min_count) for k in overs)
    use = ", ".join(str(used[k]) for k in overs)
    allow = ", ".join(str(allowed[k]) for k in overs)
    names = ", ".join(overs)
    raise Forbidden(f"Quota exceeded for {names}: Requested {req}, but already used {use} "
                    f"of {allow} {names}")


async def create(st: ComputeState, caller: Caller, req: CreateRequest) -> tuple[list[Instance], str]:
    """Check everything, then write the servers, their create actions and build
    tasks in one transaction; (servers, admin password).

    Raises:
        BadRequest, Conflict, Forbidden (quota).
    """
    viewer = Viewer(caller.project_id, caller.is_admin)
    await quotas.prefetch(st, caller.project_id)  # the identity service's limits
    async with st.db.read() as s:
        try:
            flavor = await _find(s, req.flavor_ref, viewer)
        except NotFound:
            raise BadRequest("Invalid flavorRef provided.") from None
        specs = (await _extra_specs(s, [flavor.id]))[flavor.id]
        key = None
        if req.key_name is not None:
            key = await s.scalar(select(KeyPair).where(
                KeyPair.user_id == caller.user_id, KeyPair.name == req.key_name))
            if key is None:
                raise BadRequest("Invalid key_name provided.")
        max_meta = (await quotas.project_limits(s, st, caller.project_id))["metadata_items"]
    if flavor.disabled:
        raise BadRequest("Flavor is disabled.")
    if 0 <= max_meta < len(req.metadata):
        raise Forbidden(f"Maximum number of metadata items exceeds {max_meta}")
    group_id = groups_svc.hint_group_id(req.scheduler_hints)
    if group_id is not None:
        await groups_svc.find_for_boot(st, group_id, caller.project_id, caller.is_admin)
    zone = st.conf.default_availability_zone
    if req.availability_zone is not None and req.availability_zone != zone:
        raise BadRequest("The requested availability zone is not available")
    image = await external.get_image(st, caller.token, req.image_ref)
    if image is None:
        raise BadRequest("Can not find requested image")
    _check_image(image, flavor)
    networks = await _resolve_networks(st, caller, req)
    groups: list[str] = []
    for name in req.security_groups or (["default"] if networks else []):
        if await external.find_security_group(st, caller.token, name) is None:
            raise BadRequest(f"Security group {name} not found.")
        groups.append(name)
    if len(networks) > 0 and any("port_id" in n for n in networks) and req.max_count > 1:
        raise BadRequest("Unable to launch multiple instances with a single configured "
                         "port ID. Please launch your instance one by one with different "
                         "ports.")
    password = generate_password()
    reservation = "r-" + secrets.token_hex(4)
    now = utcnow()
    async with st.db.write() as s:
        count = req.max_count
        for used, allowed in await quotas.server_checks(s, st, caller.project_id,
                                                        caller.user_id):
            count = _fit_quota(used, allowed, flavor, req.min_count, count)
        made: list[Instance] = []
        for index in range(count):
            name = req.name if count == 1 else f"{req.name}-{index + 1}"
            inst = Instance(
                uuid=str(uuidlib.uuid4()), project_id=caller.project_id, user_id=caller.user_id,
                display_name=name, display_description=req.description,
                hostname=req.hostname or hostname_of(name), reservation_id=reservation,
                launch_index=index, image_ref=req.image_ref, image=image_snapshot(image),
                flavor=flavor_snapshot(flavor, specs), instance_type_id=flavor.flavorid,
                vcpus=flavor.vcpus, memory_mb=flavor.memory_mb, root_gb=flavor.root_gb,
                ephemeral_gb=flavor.ephemeral_gb, key_name=req.key_name,
                key_data=key.public_key if key else None, user_data=req.user_data,
                config_drive="True" if req.config_drive else "", metadata_=req.metadata,
                tags=req.tags, security_groups=groups, requested_networks=networks,
                network_info=[], scheduler_hints=req.scheduler_hints,
                availability_zone=req.availability_zone,
                requested_availability_zone=req.availability_zone,
                disk_config=req.disk_config, access_ip_v4=req.access_ip_v4,
                access_ip_v6=req.access_ip_v6, vm_state=BUILDING, task_state=SCHEDULING,
                power_state=0, locked=False, created_at=now, updated_at=now, deleted=False,
            )
            s.add(inst)
            await s.flush()
            action = await _start_action(s, inst, "create", caller)
            await submit_for(st, s, BUILD, None, {"uuid": inst.uuid, "action_id": action.id},
                             task_id=inst.uuid)
            made.append(inst)
        if group_id is not None:
            await groups_svc.add_members(s, st, group_id, caller.user_id,
                                         [i.uuid for i in made])
    return made, password


# -- reading -------------------------------------------------------------------------

async def get(st: ComputeState, server_id: str, *, deleted: bool = False) -> Instance:
    """Raises: NotFound."""
    async with st.db.read() as s:
        inst = await s.scalar(select(Instance).where(Instance.uuid == server_id))
    if inst is None or (inst.deleted and not deleted):
        raise not_found(server_id)
    return inst


# -- update --------------------------------------------------------------------------

async def update_server(st: ComputeState, server_id: str, values: dict[str, Any],
                        project_id: str | None) -> Instance:
    """Raises: NotFound."""
    async with st.db.write() as s:
        inst = await _load(s, server_id, project_id)
        for k, v in values.items():
            setattr(inst, k, v)
        if values.get("display_name"):
            inst.hostname = inst.hostname or hostname_of(values["display_name"])
        inst.updated_at = utcnow()
        await s.flush()
        return inst


async def _load(s: AsyncSession, server_id: str, project_id: str | None = None,
                *, lock: bool = False) -> Instance:
    q = select(Instance).where(Instance.uuid == server_id, Instance.deleted.is_(False))
    if lock:
        q = q.with_for_update()
    inst = await s.scalar(q)
    if inst is None or (project_id is not None and inst.project_id != project_id):
        raise not_found(server_id)
    return inst


# -- instance actions ------------------------------------------------------------------

async def _start_action(s: AsyncSession, inst: Instance, action: str,
                        caller: Caller) -> InstanceAction:
    row = InstanceAction(instance_uuid=inst.uuid, action=action,
                         request_id=caller.request_id, user_id=caller.user_id,
                         project_id=caller.project_id, start_time=utcnow(), updated_at=utcnow())
    s.add(row)
    await s.flush()
    return row


async def _event_start(st: ComputeState, action_id: int, event: str) -> None:
    async with st.db.write() as s:
        exists = await s.scalar(select(InstanceActionEvent).where(
            InstanceActionEvent.action_id == action_id, InstanceActionEvent.event == event))
        if exists is None:
            s.add(InstanceActionEvent(action_id=action_id, event=event, host=st.host,
                                      start_time=utcnow()))
            await s.execute(update(InstanceAction).where(InstanceAction.id == action_id)
                            .values(updated_at=utcnow()))


async def _event_finish(s: AsyncSession, action_id: int, event: str, result: str,
                        traceback: str | None = None, details: str | None = None) -> None:
    now = utcnow()
    ev = await s.scalar(select(InstanceActionEvent).where(
        InstanceActionEvent.action_id == action_id, InstanceActionEvent.event == event))
    if ev is None:
        ev = InstanceActionEvent(action_id=action_id, event=event, start_time=now)
        s.add(ev)
    ev.finish_time, ev.result, ev.traceback, ev.details = now, result, traceback, details
    values: dict[str, Any] = {"updated_at": now, "finish_time": now}
    if result == "Error":
        values["message"] = "Error"
    await s.execute(update(InstanceAction).where(InstanceAction.id == action_id).values(**values))


async def list_actions(st: ComputeState, server_id: str) -> list[InstanceAction]:
    async with st.db.read() as s:
        return list(await s.scalars(
            select(InstanceAction).where(InstanceAction.instance_uuid == server_id)
            .order_by(InstanceAction.start_time.desc(), InstanceAction.id.desc())))


async def get_action(st: ComputeState, server_id: str,
                     request_id: str) -> tuple[InstanceAction, list[InstanceActionEvent]]:
    """Raises: NotFound."""
    async with st.db.read() as s:
        action = await s.scalar(select(InstanceAction).where(
            InstanceAction.instance_uuid == server_id,
            InstanceAction.request_id == request_id).order_by(InstanceAction.id.desc()))
        if action is None:
            raise NotFound(f"Action {request_id} not found")
        events = list(await s.scalars(select(InstanceActionEvent).where(
            InstanceActionEvent.action_id == action.id).order_by(InstanceActionEvent.id)))
    return action, events


# -- faults ----------------------------------------------------------------------------

def _fault(code: int, message: str, details: str = "") -> dict[str, Any]:
    return {"code": code, "message": message[:255], "details": details,
            "created": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}


async def _set_error(st: ComputeState, inst_uuid: str, action_id: int | None, event: str,
                     message: str, details: str = "") -> None:
    async with st.db.write() as s:
        inst = await s.scalar(select(Instance).where(Instance.uuid == inst_uuid))
        if inst is None or inst.deleted or inst.task_state == DELETING:
            return
        inst.vm_state, inst.task_state = ERROR, None
        inst.fault = _fault(500, message, details)
        inst.updated_at = utcnow()
        await scheduler.free(s, inst_uuid)
        inst.host = inst.node = None
        if action_id is not None:
            await _event_finish(s, action_id, event, "Error", traceback=details or message)


# -- the build task --------------------------------------------------------------------

async def _still_wanted(st: ComputeState, inst_uuid: str) -> Instance | None:
    async with st.db.read() as s:
        inst = await s.scalar(select(Instance).where(Instance.uuid == inst_uuid))
    if inst is None or inst.deleted or inst.task_state == DELETING or inst.vm_state != BUILDING:
        return None
    return inst


async def _set(st: ComputeState, inst_uuid: str, **values: Any) -> None:
    async with st.db.write() as s:
        await s.execute(update(Instance).where(
            Instance.uuid == inst_uuid, Instance.deleted.is_(False),
            Instance.task_state != DELETING).values(updated_at=utcnow(), **values))


async def _allocate_ports(st: ComputeState, inst: Instance, host: str,
                          handle: TaskHandle) -> list[dict[str, Any]]:
    """Create (or find again, by ``device_id``) the server's ports, bound to ``host``;
    the user's own ports are bound to the server."""
    zone = inst.availability_zone or st.conf.default_availability_zone
    binding = {"device_id": inst.uuid, "device_owner": f"compute:{zone}",
               "binding:host_id": host}
    existing = await external.ports_of(st, inst.uuid)
    used: set[str] = set()
    infos: list[dict[str, Any]] = []
    sg_ids: list[str] | None = None
    for want in inst.requested_networks:
        if "port_id" in want:
            port = await external.update_port(st, want["port_id"], binding)
            preexisting = True
        else:
            found = next((p for p in existing if p["id"] not in used
                          and p["network_id"] == want["network_id"]), None)
            if found is not None and found.get("binding:host_id") != host:
                # made by a build on a host that went down (rescheduled here)
                found = await external.update_port(st, found["id"], binding)
            if found is not None:
                port = found
            else:
                if sg_ids is None:
                    sg_ids = await _security_group_ids(st, inst)
                body: dict[str, Any] = {"network_id": want["network_id"],
                                        "project_id": inst.project_id, **binding}
                if sg_ids:
                    body["security_groups"] = sg_ids
                if want.get("fixed_ip"):
                    body["fixed_ips"] = [{"ip_address": want["fixed_ip"]}]
                port = await external.create_port(st, body)
            preexisting = False
        used.add(port["id"])
        infos.append({"port_id": port["id"], "network_id": port["network_id"],
                      "mac_address": port.get("mac_address"),
                      "fixed_ips": port.get("fixed_ips", []), "preexisting": preexisting})
        await handle.progress(ports=[i["port_id"] for i in infos])
    names = await external.subnet_names(st, {i["network_id"] for i in infos})
    for i in infos:
        i["network_name"] = names.get(i["network_id"], i["network_id"])
    return infos


async def _security_group_ids(st: ComputeState, inst: Instance) -> list[str]:
    """The ids of the server's security groups in its project (service token)."""
    headers = await external.service_headers(st)
    out = []
    assert st.http is not None
    for name in inst.security_groups:
        r = await st.http.get(f"{external.NETWORK}/security-groups",
                              params={"project_id": inst.project_id, "name": name},
                              headers=headers)
        groups = r.json().get("security_groups", []) if r.status_code == 200 else []
        if not groups:
            r = await st.http.get(f"{external.NETWORK}/security-groups",
                                  params={"project_id": inst.project_id, "id": name},
                                  headers=headers)
            groups = r.json().get("security_groups", []) if r.status_code == 200 else []
        if groups:
            out.append(groups[0]["id"])
    return out


def spec_of(inst: Instance) -> InstanceSpec:
    return InstanceSpec(
        uuid=inst.uuid, name=f"instance-{inst.id:08x}", vcpus=inst.vcpus,
        memory_mb=inst.memory_mb, root_gb=inst.root_gb, ephemeral_gb=inst.ephemeral_gb,
        image=inst.image, user_data=inst.user_data, key_data=inst.key_data,
        ports=tuple(inst.network_info), metadata=dict(inst.metadata_ or {}),
    )


def wants_config_drive(st: ComputeState, inst: Instance) -> bool:
    """Nova's ``configdrive.required_by``: the user asked for one, or every guest
    gets one (``[compute] config_drive``, Nova's ``force_config_drive``)."""
    return bool(inst.config_drive) or st.conf.config_drive


async def spawn_spec(st: ComputeState, inst: Instance) -> InstanceSpec:
    """``spec_of`` with the config drive's files, as Nova renders them
    (``InstanceMetadata.config_drive_files``, the network read from the
    networking API), when the server gets one."""
    spec = spec_of(inst)
    if not wants_config_drive(st, inst):
        return spec
    md = await metadata_svc.for_instance(st, inst)
    return replace(spec, config_drive_files=md.config_drive_files())  # a few ms of JSON


async def handle_build(st: ComputeState, handle: TaskHandle) -> dict[str, Any]:
    inst_uuid, action_id = handle.payload["uuid"], handle.payload.get("action_id")
    inst = await _still_wanted(st, inst_uuid)
    if inst is None:
        return {"skipped": True}
    if not await run_here(st, handle, inst.host):  # scheduled already, to another host
        return {"host": inst.host}
    if action_id is not None:
        await _event_start(st, action_id, SCHEDULE_EVENT)
    dead = handle.payload.get("rescheduled_from")  # its host went down (build_takeover)
    try:
        node = await scheduler.schedule(st, inst_uuid, scheduler.Request(
            inst.vcpus, inst.memory_mb, inst.root_gb + inst.ephemeral_gb,
            inst.requested_availability_zone,
            exclude=tuple(handle.payload.get("exclude_hosts", ()))))
    except scheduler.NoValidHost as exc:
        message = details = str(exc)
        if dead:  # the filters say why (the message is cut at 255 characters)
            message = f"Host {dead} went down before building the server: {exc}"
            details = (f"Host {dead} went down before building the server "
                       f"({handle.payload.get('reschedule_reason', 'down')}); rescheduling "
                       f"it elsewhere failed. {exc}")
        await _set_error(st, inst_uuid, action_id, SCHEDULE_EVENT, message, details)
        return {"error": details}
    if node.host != st.host:  # the conductor's part is done: that host builds it
        await _set(st, inst_uuid, host=node.host, node=node.hypervisor_hostname,
                   availability_zone=node.availability_zone)
        await run_here(st, handle, node.host)
        return {"host": node.host}
    fetching = _start_image_fetch(st, inst)
    try:
        async with st.db.write() as s:
            if action_id is not None:
                await _event_finish(s, action_id, SCHEDULE_EVENT, "Success")
        if action_id is not None:
            await _event_start(st, action_id, BUILD_EVENT)
        await _set(st, inst_uuid, host=node.host, node=node.hypervisor_hostname,
                   availability_zone=node.availability_zone, task_state=NETWORKING)
        inst = await _still_wanted(st, inst_uuid)
        if inst is None:
            return {"skipped": True}
        infos = await _allocate_ports(st, inst, node.host, handle)
        infos = await external.with_floating_ips(st, infos)  # pre-existing ports' ones
        await _set(st, inst_uuid, network_info=infos, task_state=SPAWNING)
        inst = await _still_wanted(st, inst_uuid)
        if inst is None:
            return {"skipped": True}
        spec = await spawn_spec(st, inst)
        if fetching is not None:
            await fetching  # its error is the build's, as the spawn's would be
        await st.driver.spawn(spec)
        info = await st.driver.get_info(inst_uuid)
        async with st.db.write() as s:
            res = await s.execute(update(Instance).where(
                Instance.uuid == inst_uuid, Instance.vm_state == BUILDING,
                Instance.deleted.is_(False), Instance.task_state != DELETING).values(
                vm_state=ACTIVE, task_state=None, power_state=info.power_state,
                launched_at=utcnow(), updated_at=utcnow(),
                # a forced config drive shows in the API too (Nova's update_instance)
                **({"config_drive": "True"} if wants_config_drive(st, inst) else {})))
            if res.rowcount == 1 and action_id is not None:  # type: ignore[attr-defined]
                await _event_finish(s, action_id, BUILD_EVENT, "Success")
        return {"built": True}
    except tasks_mod.LeaseLost:
        raise
    except Exception as exc:
        if handle.attempt >= st.tasks.max_attempts:
            log.exception("building %s failed", inst_uuid)
            await _set_error(st, inst_uuid, action_id, BUILD_EVENT,
                             f"Build of instance {inst_uuid} aborted: {exc}",
                             f"{type(exc).__name__}: {exc}")
            return {"error": str(exc)}
        raise
    finally:
        if fetching is not None:  # not left running (a skipped build), nor unretrieved
            fetching.cancel()
            await asyncio.wait([fetching])
            if not fetching.cancelled():
                fetching.exception()


def _start_image_fetch(st: ComputeState, inst: Instance) -> asyncio.Future[None] | None:
    """The driver's fetch of the server's image into its cache (``cache_image``, for
    a driver with one), started once the server is scheduled here, so that the download
    runs while the build binds its ports and renders its config drive."""
    if not st.driver.has_image_cache or not inst.image:
        return None
    fetch: asyncio.Future[None] = asyncio.ensure_future(st.driver.cache_image(inst.image))
    return fetch


# -- delete ----------------------------------------------------------------------------

async def delete(st: ComputeState, server_id: str, caller: Caller,
                 project_id: str | None) -> None:
    """Mark the server deleting and submit its delete task.

    Raises:
        NotFound; Conflict: locked (non-admins).
    """
    async with st.db.write() as s:
        inst = await _load(s, server_id, project_id)
        if inst.locked and not caller.is_admin:
            raise locked(inst)
        if inst.task_state == DELETING:
            return
        inst.task_state = DELETING
        inst.updated_at = utcnow()
        action = await _start_action(s, inst, "delete", caller)
        # a host that is down cannot delete its guest: any host deletes the records
        host = inst.host if inst.host and await hosts_svc.is_up(st, inst.host, s) else None
        await submit_for(st, s, DELETE, host, {"uuid": inst.uuid, "action_id": action.id})


async def _wait_build(st: ComputeState, inst_uuid: str, timeout: float = 60.0) -> None:
    """Cancel the server's build if it has not started; wait for one under way to
    see the deletion and stop."""
    t = Task.__table__
    async with st.db.write() as s:
        await s.execute(update(t).where(t.c.id == inst_uuid, t.c.state == tasks_mod.PENDING)
                        .values(state=tasks_mod.SUCCEEDED, result={"cancelled": True},
                                owner=None, lease_until=None, updated_at=utcnow()))
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        info = await st.tasks.get(inst_uuid)
        if info is None or info.done:
            return
        await asyncio.sleep(0.05)


async def handle_delete(st: ComputeState, handle: TaskHandle) -> dict[str, Any]:
    inst_uuid, action_id = handle.payload["uuid"], handle.payload.get("action_id")
    if action_id is not None:
        await _event_start(st, action_id, DELETE_EVENT)
    await _wait_build(st, inst_uuid)
    async with st.db.read() as s:
        inst = await s.scalar(select(Instance).where(Instance.uuid == inst_uuid))
    if inst is None or inst.deleted:
        return {"deleted": True}
    if inst.host and inst.host != st.host and await hosts_svc.is_up(st, inst.host):
        await run_here(st, handle, inst.host)
        return {"host": inst.host}
    local_delete = bool(inst.host) and inst.host != st.host
    if local_delete:
        # Nova's local delete: the server's host is down, so its records go now and
        # its guest when the host is back (the REAP task below waits for it)
        log.warning("deleting %s while its host %s is down: its guest goes when the "
                    "host is back", inst_uuid, inst.host)
    else:
        await st.driver.destroy(inst_uuid)
    shelved_image = (inst.system_metadata or {}).get("shelved_image_id")
    if shelved_image:  # a shelved server's snapshot goes with it, as in Nova
        from onestack.compute.service import actions  # it imports this module
        await actions.delete_image(st, str(shelved_image))
    preexisting = {i["port_id"] for i in inst.network_info if i.get("preexisting")}
    for want in inst.requested_networks:
        if "port_id" in want:
            preexisting.add(want["port_id"])
    for port in await external.ports_of(st, inst_uuid):
        if port["id"] in preexisting:
            await external.update_port(st, port["id"], {
                "device_id": "", "device_owner": "", "binding:host_id": ""})
        else:
            await external.delete_port(st, port["id"])
    async with st.db.write() as s:
        await scheduler.free(s, inst_uuid)
        await groups_svc.remove_member(s, inst_uuid)
        now = utcnow()
        await s.execute(update(Instance).where(Instance.uuid == inst_uuid).values(
            vm_state=DELETED, task_state=None, power_state=0, deleted=True, deleted_at=now,
            terminated_at=now, updated_at=now))
        if action_id is not None:
            await _event_finish(s, action_id, DELETE_EVENT, "Success")
        if local_delete:
            await submit_for(st, s, REAP, inst.host, {"uuid": inst_uuid})
    return {"deleted": True}


async def handle_reap(st: ComputeState, handle: TaskHandle) -> dict[str, Any]:
    """Destroy the guest of a server deleted while this host was down, or of one
    whose build this host had begun when it went down and another host took over
    (``build_takeover``): the server is not this host's any more."""
    async with st.db.read() as s:
        row = (await s.execute(select(Instance.deleted, Instance.host).where(
            Instance.uuid == handle.payload["uuid"]))).first()
    deleted, inst_host = (row[0], row[1]) if row is not None else (None, None)
    if deleted is False and inst_host == st.host:  # its build came back here
        return {"skipped": True}
    await st.driver.destroy(handle.payload["uuid"])
    return {"destroyed": True}


# -- power actions ---------------------------------------------------------------------

async def power_action(st: ComputeState, server_id: str, key: str, caller: Caller,
                       project_id: str | None) -> None:
    """Check the state, set the task state and submit the action task.

    Raises:
        NotFound; Conflict (locked, wrong vm_state, another task under way).
    """
    act = POWER_ACTIONS[key]
    async with st.db.write() as s:
        inst = await _load(s, server_id, project_id)
        if inst.locked and not caller.is_admin:
            raise locked(inst)
        if inst.task_state is not None:
            raise invalid_state(act.name, inst, "task_state")
        if inst.vm_state not in act.vm_states:
            raise invalid_state(act.name, inst)
        res = await s.execute(update(Instance).where(
            Instance.uuid == inst.uuid, Instance.task_state.is_(None),
            Instance.vm_state == inst.vm_state).values(task_state=act.task_state,
                                                       updated_at=utcnow()))
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise invalid_state(act.name, inst, "task_state")
        action = await _start_action(s, inst, act.name, caller)
        await submit_for(st, s, ACTION, inst.host, {"uuid": inst.uuid, "action": key,
                                                    "action_id": action.id})


async def handle_action(st: ComputeState, handle: TaskHandle) -> dict[str, Any]:
    inst_uuid, key = handle.payload["uuid"], handle.payload["action"]
    action_id = handle.payload.get("action_id")
    act = POWER_ACTIONS[key]
    async with st.db.read() as s:
        inst = await s.scalar(select(Instance).where(Instance.uuid == inst_uuid))
    if inst is None or inst.deleted or inst.task_state != act.task_state:
        return {"skipped": True}
    if not await run_here(st, handle, inst.host):
        return {"host": inst.host}
    if action_id is not None:
        await _event_start(st, action_id, act.event)
    d = st.driver
    try:
        if key == "stop":
            await d.power_off(inst_uuid)
            vm_state = STOPPED
        elif key == "start":
            await d.power_on(inst_uuid)
            vm_state = ACTIVE
        elif key in ("reboot_soft", "reboot_hard"):
            await d.reboot(inst_uuid, hard=key == "reboot_hard")
            vm_state = ACTIVE
        elif key == "pause":
            await d.pause(inst_uuid)
            vm_state = PAUSED
        else:
            await d.unpause(inst_uuid)
            vm_state = ACTIVE
        info = await d.get_info(inst_uuid)
    except tasks_mod.LeaseLost:
        raise
    except Exception as exc:
        if handle.attempt < st.tasks.max_attempts:
            raise
        async with st.db.write() as s:
            await s.execute(update(Instance).where(
                Instance.uuid == inst_uuid, Instance.task_state == act.task_state).values(
                task_state=None, updated_at=utcnow()))
            if action_id is not None:
                await _event_finish(s, action_id, act.event, "Error",
                                    traceback=f"{type(exc).__name__}: {exc}")
        return {"error": str(exc)}
    async with st.db.write() as s:
        await s.execute(update(Instance).where(
            Instance.uuid == inst_uuid, Instance.task_state == act.task_state).values(
            vm_state=vm_state, task_state=None, power_state=info.power_state,
            updated_at=utcnow()))
        if action_id is not None:
            await _event_finish(s, action_id, act.event, "Success")
    return {"done": True}


# -- lock, reset state, console ----------------------------------------------------------

async def set_lock(st: ComputeState, server_id: str, caller: Caller, project_id: str | None,
                   lock: bool, reason: str | None = None, *, may_override: bool) -> None:
    """Raises: NotFound; Forbidden: unlocking an admin's lock without the override."""
    async with st.db.write() as s:
        inst = await _load(s, server_id, project_id)
        owner = "owner" if caller.project_id == inst.project_id else "admin"
        if lock:
            if inst.locked:
                return
            inst.locked, inst.locked_by, inst.locked_reason = True, owner, reason
            await _start_action(s, inst, "lock", caller)
        else:
            if inst.locked and inst.locked_by != owner and not may_override:
                raise Forbidden("Policy doesn't allow os_compute_api:os-lock-server:"
                                "unlock:unlock_override to be performed.")
            inst.locked, inst.locked_by, inst.locked_reason = False, None, None
            await _start_action(s, inst, "unlock", caller)
        inst.updated_at = utcnow()


async def reset_state(st: ComputeState, server_id: str, state: str, caller: Caller) -> None:
    async with st.db.write() as s:
        inst = await _load(s, server_id)
        inst.vm_state = state
        inst.task_state = None
        inst.updated_at = utcnow()
        await _start_action(s, inst, "resetState", caller)


async def console_output(st: ComputeState, server_id: str, project_id: str | None,
                         length: int | None) -> str:
    """Raises: NotFound; Conflict: the server has no guest yet."""
    async with st.db.read() as s:
        inst = await _load(s, server_id, project_id)
    if inst.vm_state == BUILDING or inst.host is None:
        raise Conflict(f"Instance {inst.uuid} is not ready")
    text: str = await call_driver(st, inst, "console_output")
    if length is not None:  # Nova's tail: the last ``length`` pieces between newlines
        text = "\n".join(text.split("\n")[-length:]) if length else ""
    return text


# -- start-up ---------------------------------------------------------------------------

async def fail_orphaned_builds(st: ComputeState) -> int:
    """Servers still building whose build task has failed (its workers kept dying)
    go to ERROR with a fault; the number of them. Only this host's servers and
    those on no host yet: another host's are that host's business."""
    t = Task.__table__
    async with st.db.read() as s:
        rows = list(await s.execute(
            select(Instance.uuid, t.c.error)
            .join(t, t.c.id == Instance.uuid)
            .where(Instance.vm_state == BUILDING, Instance.deleted.is_(False),
                   sa.or_(Instance.host == st.host, Instance.host.is_(None)),
                   t.c.state == tasks_mod.FAILED)))
    for inst_uuid, error in rows:
        await _set_error(st, inst_uuid, None, BUILD_EVENT,
                         f"Build of instance {inst_uuid} aborted: the build task failed",
                         error or "")
    return len(rows)


async def resume_guests_state(st: ComputeState) -> int:
    """Nova's ``resume_guests_state_on_host_boot``: start again each guest of this
    host that the database says runs (``power_state`` RUNNING, ACTIVE, no task
    under way) but whose driver says it does not (the host rebooted: its QEMU
    process is gone). A guest that still runs (OneStack restarted alone) is left
    alone, a stopped one stays stopped. As in Nova no instance action is
    recorded; a guest that fails to start goes to ERROR. The number started."""
    async with st.db.read() as s:
        rows = list(await s.scalars(select(Instance).where(
            Instance.host == st.host, Instance.deleted.is_(False),
            Instance.vm_state == ACTIVE, Instance.task_state.is_(None),
            Instance.power_state == RUNS)))
    started = 0
    for inst in rows:
        try:
            state = (await st.driver.get_info(inst.uuid)).power_state
        except GuestNotFound:
            state = 0  # NOSTATE: the driver has no such guest; starting it fails below
        if state == RUNS:
            continue
        log.info("starting %s again after the host's restart (power state %s)",
                 inst.uuid, state)
        try:
            await st.driver.power_on(inst.uuid)
            state = (await st.driver.get_info(inst.uuid)).power_state
        except DriverError as exc:
            log.warning("failed to resume %s: %s", inst.uuid, exc)
            async with st.db.write() as s:
                await s.execute(update(Instance).where(
                    Instance.uuid == inst.uuid, Instance.task_state.is_(None)).values(
                    vm_state=ERROR, fault=_fault(500, f"Failed to resume instance: {exc}",
                                                 f"{type(exc).__name__}: {exc}"),
                    updated_at=utcnow()))
            continue
        started += 1
        await _set(st, inst.uuid, power_state=state)
    return started
