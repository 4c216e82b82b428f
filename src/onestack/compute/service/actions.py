"""The server actions beyond power: suspend/resume, rescue/unrescue, resize with
confirmResize/revertResize, rebuild, createImage, shelve/shelveOffload/unshelve.

Each has the shape of the power actions (``servers.power_action``): the API call
checks the lock and the states and, in one transaction, sets the task state
(conditionally on the row still being idle), records the instance action under
Nova's name and submits a durable task (kind ``OP``). The task's handler checks
that the server is still in one of the action's task states (a delete or
another run may have come first), does the driver's work (every driver method
may run twice) and ends with an update conditional on that task state, so a
crash part-way either resumes the action at its next attempt or, after the
last attempt, ends it cleanly (task state cleared, or ERROR for the actions
that leave the guest half-changed: rebuild, resize, revert, rescue, unshelve).

What an action must remember between its steps is on the row: the flavors of a
resize (``old_flavor``, ``new_flavor``), and in ``system_metadata`` the state
to go back to (``old_vm_state``), the shelved image (``shelved_image_id``,
``shelved_image``, ``shelved_at``, ``shelved_host``).

Single host: a resize happens in place. Its claim moves from the old flavor to
the new one on the same node in one transaction (``scheduler``'s conditional
claim), before the driver changes the guest; a revert moves it back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.compute.drivers.base import SHUTDOWN, DriverError
from onestack.compute.models import Allocation, ComputeNode, Instance, KeyPair, utcnow
from onestack.compute.service import external, quotas, scheduler
from onestack.compute.service import migrations as migrations_mod
from onestack.compute.service import servers as svc
from onestack.compute.service.flavors import Viewer, _extra_specs, _find
from onestack.compute.state import ComputeState
from onestack.core import tasks as tasks_mod
from onestack.core.concurrency import run_blocking
from onestack.core.errors import BadRequest, Forbidden, NotFound
from onestack.core.tasks import TaskHandle

log = logging.getLogger("onestack.compute")

OP = "server_op"  # the task kind

ACTIVE, STOPPED, PAUSED, ERROR = svc.ACTIVE, svc.STOPPED, svc.PAUSED, svc.ERROR
SUSPENDED, RESCUED, RESIZED = "suspended", "rescued", "resized"
SHELVED, SHELVED_OFFLOADED = "shelved", "shelved_offloaded"


@dataclass(frozen=True)
class Op:
    name: str  # Nova's instance action name and the conflict messages' word
    vm_states: tuple[str, ...]  # where it may start
    task_state: str  # set by the API call
    event: str  # the compute event recorded around the work
    steps: tuple[str, ...] = ()  # further task states the handler moves through
    fail_to_error: bool = False  # a last failure leaves the server in ERROR

    @property
    def task_states(self) -> tuple[str, ...]:
        return (self.task_state, *self.steps)


OPS: dict[str, Op] = {op.name: op for op in (
    Op("suspend", (ACTIVE,), "suspending", "compute_suspend_instance"),
    Op("resume", (SUSPENDED,), "resuming", "compute_resume_instance"),
    Op("rescue", (ACTIVE, STOPPED, ERROR), "rescuing", "compute_rescue_instance",
       fail_to_error=True),
    Op("unrescue", (RESCUED,), "unrescuing", "compute_unrescue_instance",
       fail_to_error=True),
    Op("resize", (ACTIVE, STOPPED), "resize_prep", "compute_prep_resize",
       ("resize_migrating", "resize_finish"), fail_to_error=True),
    Op("confirmResize", (RESIZED,), "resize_confirming", "compute_confirm_resize"),
    Op("revertResize", (RESIZED,), "resize_reverting", "compute_revert_resize",
       fail_to_error=True),
    Op("rebuild", (ACTIVE, STOPPED, ERROR), "rebuilding", "compute_rebuild_instance",
       ("rebuild_spawning",), fail_to_error=True),
    Op("createImage", (ACTIVE, STOPPED, PAUSED, SUSPENDED), "image_snapshot",
       "compute_snapshot_instance", ("image_uploading",)),
    Op("createBackup", (ACTIVE, STOPPED, PAUSED, SUSPENDED), "image_backup",
       "compute_backup_instance", ("image_uploading",)),
    Op("shelve", (ACTIVE, STOPPED, PAUSED, SUSPENDED), "shelving", "compute_shelve_instance",
       ("shelving_image_uploading", "shelving_offloading")),
    Op("shelveOffload", (SHELVED,), "shelving_offloading",
       "compute_shelve_offload_instance"),
    Op("unshelve", (SHELVED, SHELVED_OFFLOADED), "unshelving", "compute_unshelve_instance",
       ("spawning",), fail_to_error=False),
)}


def shelved_offload_time(st: ComputeState) -> int:
    """Nova's ``shelved_offload_time``: 0 offloads at once after a shelve (Nova's
    default), -1 never. Read from ``[compute] shelved_offload_time`` when the
    settings have it, else ``st.extras`` (tests), else 0."""
    value = st.extras.get("shelved_offload_time",
                          getattr(st.conf, "shelved_offload_time", 0))
    return int(value)


# -- starting an action --------------------------------------------------------------

async def _begin(st: ComputeState, server_id: str, caller: svc.Caller, key: str, *,
                 payload: dict[str, Any] | None = None, values: dict[str, Any] | None = None,
                 sysmeta: dict[str, Any] | None = None, action: str | None = None
                 ) -> Instance:
    """Check the lock and the states, set the task state (with ``values`` and
    ``sysmeta`` merged into ``system_metadata``), record the instance action and
    submit the task, in one transaction; the row as it was read. ``action`` names
    the instance action (and the action in errors) when it is not the task's
    (a cold migration runs the resize task).

    Raises:
        NotFound; Conflict (locked, wrong vm_state, another task under way).
    """
    op = OPS[key]
    if action is not None:
        op = replace(op, name=action)
    async with st.db.write() as s:
        inst = await svc._load(s, server_id)
        _check_state(inst, op, caller)
        more = dict(values or {})
        if sysmeta is not None:
            more["system_metadata"] = {**(inst.system_metadata or {}), **sysmeta}
        res = await s.execute(update(Instance).where(
            Instance.uuid == inst.uuid, Instance.task_state.is_(None),
            Instance.vm_state == inst.vm_state).values(task_state=op.task_state,
                                                       updated_at=utcnow(), **more))
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise svc.invalid_state(op.name, inst, "task_state")
        row = await svc._start_action(s, inst, op.name, caller)
        await svc.submit_for(st, s, OP, inst.host, {"uuid": inst.uuid, "op": key,
                                                     "action_id": row.id, **(payload or {})})
    return inst


def _check_state(inst: Instance, op: Op, caller: svc.Caller) -> None:
    """Raises: Conflict (Nova's messages) when ``op`` may not start now."""
    if inst.locked and not caller.is_admin:
        raise svc.locked(inst)
    if inst.task_state is not None:
        raise svc.invalid_state(op.name, inst, "task_state")
    if inst.vm_state not in op.vm_states:
        raise svc.invalid_state(op.name, inst)


async def precheck(st: ComputeState, server_id: str, caller: svc.Caller, key: str) -> Instance:
    """The checks of ``_begin`` without writing, for actions that must call another
    service first (createImage and shelve make the image record)."""
    async with st.db.read() as s:
        inst = await svc._load(s, server_id)
    _check_state(inst, OPS[key], caller)
    return inst


async def simple(st: ComputeState, server_id: str, caller: svc.Caller, key: str) -> None:
    """suspend, resume, unrescue, confirmResize, revertResize, shelveOffload."""
    await _begin(st, server_id, caller, key)


async def unshelve(st: ComputeState, server_id: str, caller: svc.Caller,
                   host: str | None = None) -> None:
    """Unshelve; an offloaded server is scheduled again, to ``host`` when given
    (2.91: the scheduler considers only that host)."""
    await _begin(st, server_id, caller, "unshelve", payload={"host": host} if host else None)


async def rescue(st: ComputeState, server_id: str, caller: svc.Caller,
                 image_ref: str | None) -> None:
    """Rescue from ``image_ref`` (the server's own image by default), checked with
    the caller's token. Raises: BadRequest (no such image), NotFound, Conflict."""
    inst = await precheck(st, server_id, caller, "rescue")
    image = await external.get_image(st, caller.token, image_ref or inst.image_ref)
    if image is None:
        raise BadRequest(f"Image {image_ref or inst.image_ref} could not be found.")
    if image.get("status") != "active":
        raise BadRequest(f"Image {image['id']} is not active.")
    await _begin(st, server_id, caller, "rescue",
                 payload={"rescue_image": svc.image_snapshot(image)},
                 sysmeta={"old_vm_state": inst.vm_state})


async def resize(st: ComputeState, server_id: str, caller: svc.Caller, flavor_ref: str) -> None:
    """Check the new flavor (exists for the caller, differs, no smaller root disk,
    fits the project's quota) and start the resize.

    Raises:
        BadRequest, Forbidden (quota), NotFound, Conflict.
    """
    viewer = Viewer(caller.project_id, caller.is_admin)
    await quotas.prefetch(st, caller.project_id)  # the identity service's limits
    async with st.db.read() as s:
        inst = await svc._load(s, server_id)
        try:
            flavor = await _find(s, flavor_ref, viewer)
        except NotFound:
            raise BadRequest("Unable to locate requested flavor.") from None
        specs = (await _extra_specs(s, [flavor.id]))[flavor.id]
        checks = await quotas.server_checks(s, st, inst.project_id, inst.user_id)
    _check_state(inst, OPS["resize"], caller)
    if flavor.flavorid == inst.instance_type_id:
        raise BadRequest("When resizing, instances must change flavor!")
    if flavor.disabled:
        raise BadRequest("Flavor is disabled.")
    if inst.root_gb and flavor.root_gb == 0:
        raise BadRequest("Server disk was unable to be resized because: Resize to zero "
                         "disk flavor is not allowed.")
    if flavor.root_gb < inst.root_gb:
        raise BadRequest("Server disk was unable to be resized because: Unable to resize "
                         "disk down.")
    for used, allowed in checks:
        _check_resize_quota(used, allowed, inst, flavor.vcpus, flavor.memory_mb)
    await _begin(st, server_id, caller, "resize",
                 payload={"new_flavor": svc.flavor_snapshot(flavor, specs)},
                 sysmeta={"old_vm_state": inst.vm_state})


def _check_resize_quota(used: dict[str, int], allowed: dict[str, int], inst: Instance,
                        vcpus: int, ram: int) -> None:
    """Raises: Forbidden, Nova's message, when the growth exceeds cores or ram
    (the project's limits, and the user's when they have their own)."""
    grow = {"cores": vcpus - inst.vcpus, "ram": ram - inst.memory_mb}
    overs = [k for k in ("cores", "ram")
             if grow[k] > 0 and allowed[k] >= 0 and used[k] + grow[k] > allowed[k]]
    if overs:
        names = ", ".join(overs)
        raise Forbidden(
            f"Quota exceeded for {names}: Requested "
            f"{', '.join(str(grow[k]) for k in overs)}, but already used "
            f"{', '.join(str(used[k]) for k in overs)} of "
            f"{', '.join(str(allowed[k]) for k in overs)} {names}")


@dataclass
class RebuildRequest:
    image_ref: str
    name: str | None = None
    metadata: dict[str, str] | None = None
    description: str | None = None
    set_description: bool = False
    key_name: str | None = None
    set_key_name: bool = False
    user_data: str | None = None
    set_user_data: bool = False
    hostname: str | None = None
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    disk_config: str | None = None


async def rebuild(st: ComputeState, server_id: str, caller: svc.Caller,
                  req: RebuildRequest) -> Instance:
    """Check the image as create does and the key pair, write the new name,
    metadata, image ... and start the rebuild; the server as it now is.

    Raises:
        BadRequest, Forbidden (metadata quota), NotFound, Conflict.
    """
    inst = await precheck(st, server_id, caller, "rebuild")
    image = await external.get_image(st, caller.token, req.image_ref)
    if image is None:
        raise BadRequest("Cannot find image for rebuild")
    svc._check_image(image, SimpleNamespace(  # type: ignore[arg-type]
        memory_mb=inst.memory_mb, root_gb=inst.root_gb))
    if req.metadata is not None:
        await quotas.prefetch(st, inst.project_id)
        async with st.db.read() as s:
            max_meta = (await quotas.project_limits(s, st, inst.project_id))["metadata_items"]
        if 0 <= max_meta < len(req.metadata):
            raise Forbidden(f"Maximum number of metadata items exceeds {max_meta}")
    values: dict[str, Any] = {"image_ref": image["id"], "image": svc.image_snapshot(image)}
    if req.name is not None:
        values["display_name"] = req.name
    if req.metadata is not None:
        values["metadata_"] = req.metadata
    if req.set_description:
        values["display_description"] = req.description
    if req.set_key_name:
        key_data = None
        if req.key_name is not None:
            async with st.db.read() as s:
                key = await s.scalar(select(KeyPair).where(
                    KeyPair.user_id == caller.user_id, KeyPair.name == req.key_name))
            if key is None:
                raise BadRequest("Invalid key_name provided.")
            key_data = key.public_key
        values["key_name"], values["key_data"] = req.key_name, key_data
    if req.set_user_data:
        values["user_data"] = req.user_data
    if req.hostname is not None:
        values["hostname"] = req.hostname
    if req.access_ip_v4 is not None:
        values["access_ip_v4"] = req.access_ip_v4
    if req.access_ip_v6 is not None:
        values["access_ip_v6"] = req.access_ip_v6
    if req.disk_config is not None:
        values["disk_config"] = req.disk_config
    await _begin(st, server_id, caller, "rebuild", values=values,
                 sysmeta={"old_vm_state": inst.vm_state})
    return await svc.get(st, server_id)


# -- images: createImage and shelve ------------------------------------------------------

SNAPSHOT_SKIP = frozenset({"instance_uuid", "image_type", "base_image_ref", "user_id",
                           "owner_id", "image_location", "image_state"})


async def _new_image(st: ComputeState, caller: svc.Caller, inst: Instance, name: str,
                     metadata: dict[str, str], image_type: str) -> dict[str, Any]:
    """Create the snapshot's image record (queued) with the caller's token: the
    base image's properties, then Nova's (instance_uuid, image_type, ...), then
    the caller's metadata. Raises: ExternalError."""
    inherited = {k: v for k, v in ((inst.image or {}).get("properties") or {}).items()
                 if k not in SNAPSHOT_SKIP and isinstance(v, str)}
    body: dict[str, Any] = {
        **inherited, "name": name, "disk_format": st.driver.snapshot_disk_format,
        "container_format": "bare", "visibility": "private",
        "instance_uuid": inst.uuid, "image_type": image_type,
        "base_image_ref": inst.image_ref, "user_id": caller.user_id,
        "owner_project_name": None, **metadata,
    }
    body = {k: v for k, v in body.items() if v is not None}
    if inst.image and inst.image.get("min_ram"):
        body["min_ram"] = inst.image["min_ram"]
    body["min_disk"] = max(inst.root_gb, int((inst.image or {}).get("min_disk") or 0))
    assert st.http is not None
    r = await st.http.post(f"{external.IMAGE}/images", json=body,
                           headers={"X-Auth-Token": caller.token})
    if r.status_code == 413 or (r.status_code == 403 and "quota" in r.text.lower()):
        raise Forbidden("Quota exceeded for images")
    if r.status_code == 400:
        raise BadRequest(f"Invalid image metadata: {r.json().get('message', r.text)[:200]}"
                         if r.headers.get("content-type", "").startswith("application/json")
                         else "Invalid image metadata")
    return external._check(r, "creating the snapshot image")  # type: ignore[no-any-return]


async def delete_image(st: ComputeState, image_id: str, token: str | None = None) -> None:
    """Delete an image (the caller's token, else the service user's); a missing
    image is fine."""
    assert st.http is not None
    headers = {"X-Auth-Token": token} if token else await external.service_headers(st)
    r = await st.http.delete(f"{external.IMAGE}/images/{image_id}", headers=headers)
    if r.status_code not in (204, 404):
        log.warning("deleting image %s: %s %s", image_id, r.status_code, r.text[:200])


async def create_image(st: ComputeState, server_id: str, caller: svc.Caller, name: str,
                       metadata: dict[str, str]) -> str:
    """The image record now, the snapshot and its upload in the task; the image id.

    Raises:
        NotFound, Conflict, Forbidden (image quota), BadRequest.
    """
    inst = await precheck(st, server_id, caller, "createImage")
    image = await _new_image(st, caller, inst, name, metadata, "snapshot")
    try:
        await _begin(st, server_id, caller, "createImage", payload={"image_id": image["id"]})
    except BaseException:
        await delete_image(st, image["id"], caller.token)
        raise
    return str(image["id"])


async def create_backup(st: ComputeState, server_id: str, caller: svc.Caller, name: str,
                        backup_type: str, rotation: int, metadata: dict[str, str]) -> str:
    """As ``create_image``, an image of type ``backup`` (with ``backup_type``);
    after its upload the task keeps only the ``rotation`` newest backups of the
    server of that type, as Nova's ``_rotate_backups`` (0 keeps none).

    Raises:
        NotFound, Conflict, Forbidden (image quota), BadRequest.
    """
    inst = await precheck(st, server_id, caller, "createBackup")
    image = await _new_image(st, caller, inst, name,
                             {**metadata, "backup_type": backup_type}, "backup")
    try:
        await _begin(st, server_id, caller, "createBackup", payload={
            "image_id": image["id"], "backup_type": backup_type, "rotation": rotation})
    except BaseException:
        await delete_image(st, image["id"], caller.token)
        raise
    return str(image["id"])


async def _rotate_backups(st: ComputeState, inst_uuid: str, backup_type: str,
                          rotation: int) -> list[str]:
    """Delete the server's backups of ``backup_type`` beyond the ``rotation``
    newest (the service user's token); the ids deleted."""
    assert st.http is not None
    headers = await external.service_headers(st)
    r = await st.http.get(f"{external.IMAGE}/images", headers=headers, params={
        "image_type": "backup", "backup_type": backup_type, "instance_uuid": inst_uuid,
        "sort_key": "created_at", "sort_dir": "desc", "limit": "1000"})
    images = external._check(r, "listing the backups")["images"]
    images.sort(key=lambda img: img.get("created_at") or "", reverse=True)
    gone = [str(img["id"]) for img in images[rotation:]]
    for image_id in gone:
        await delete_image(st, image_id)
    return gone


async def shelve(st: ComputeState, server_id: str, caller: svc.Caller) -> None:
    """The ``<name>-shelved`` image record now, then the task: power off,
    snapshot, upload, SHELVED, and offloaded at once if ``shelved_offload_time``
    is 0. Raises: NotFound, Conflict, Forbidden (image quota)."""
    inst = await precheck(st, server_id, caller, "shelve")
    image = await _new_image(st, caller, inst, f"{inst.display_name}-shelved", {}, "snapshot")
    shelved = {"id": image["id"], "name": image.get("name"), "min_ram": image.get("min_ram"),
               "min_disk": image.get("min_disk"), "size": None,
               "disk_format": image.get("disk_format"), "properties": {}}
    try:
        await _begin(st, server_id, caller, "shelve", payload={"image_id": image["id"]},
                     sysmeta={"shelved_image_id": image["id"], "shelved_image": shelved,
                              "shelved_at": utcnow().isoformat(), "shelved_host": inst.host})
    except BaseException:
        await delete_image(st, image["id"], caller.token)
        raise


async def _upload_snapshot(st: ComputeState, inst_uuid: str, image_id: str) -> bool:
    """Snapshot the guest's disk to a file and upload it to the image (service
    user's token: the task may outlive the caller's); False if the image is
    gone. An image already active (a second run) is left alone."""
    assert st.http is not None
    headers = await external.service_headers(st)
    r = await st.http.get(f"{external.IMAGE}/images/{image_id}", headers=headers)
    if r.status_code == 404:
        return False
    current = external._check(r, "reading the snapshot image")
    if current.get("status") == "active":
        return True
    tmp_dir = st.settings.path("compute", "snapshots")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{inst_uuid}-", dir=tmp_dir)
    os.close(fd)
    path = Path(name)
    try:
        await st.driver.snapshot(inst_uuid, path)

        async def chunks() -> Any:
            f = await run_blocking(path.open, "rb")
            try:
                while block := await run_blocking(f.read, 1 << 20):
                    yield block
            finally:
                f.close()

        r = await st.http.put(f"{external.IMAGE}/images/{image_id}/file", content=chunks(),
                              headers={**headers, "Content-Type": "application/octet-stream"})
        if r.status_code == 404:
            return False
        external._check(r, "uploading the snapshot")
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return True


# -- the task -----------------------------------------------------------------------------

async def handle(st: ComputeState, handle: TaskHandle) -> dict[str, Any]:
    """Run one action's work (see the module's docstring)."""
    inst_uuid, key = handle.payload["uuid"], handle.payload["op"]
    action_id: int | None = handle.payload.get("action_id")
    op = OPS[key]
    inst = await _current(st, inst_uuid, op)
    if inst is None:
        return {"skipped": True}
    if not await svc.run_here(st, handle, inst.host):  # the guest is on another host
        return {"host": inst.host}
    if action_id is not None:
        await svc._event_start(st, action_id, op.event)
    try:
        result = await WORK[key](st, inst, handle)
    except tasks_mod.LeaseLost:
        raise
    except Exception as exc:
        if handle.attempt < st.tasks.max_attempts:
            raise
        log.exception("%s of %s failed", op.name, inst_uuid)
        await _fail(st, inst_uuid, op, action_id, exc)
        return {"error": str(exc)}
    if action_id is not None and not result.get("recorded") and not result.get("skipped"):
        async with st.db.write() as s:
            await svc._event_finish(s, action_id, op.event, "Success")
    return result


async def _current(st: ComputeState, inst_uuid: str, op: Op) -> Instance | None:
    """The server if it is still in one of ``op``'s task states."""
    async with st.db.read() as s:
        inst: Instance | None = await s.scalar(
            select(Instance).where(Instance.uuid == inst_uuid))
    if inst is None or inst.deleted or inst.task_state not in op.task_states:
        return None
    return inst


async def _step(st: ComputeState, inst: Instance, op: Op, task_state: str,
                **values: Any) -> bool:
    """Move to the next task state (from any of the op's); False if the server
    left them (deleted meanwhile)."""
    async with st.db.write() as s:
        res = await s.execute(update(Instance).where(
            Instance.uuid == inst.uuid, Instance.deleted.is_(False),
            Instance.task_state.in_(op.task_states)).values(
            task_state=task_state, updated_at=utcnow(), **values))
    return res.rowcount == 1  # type: ignore[attr-defined,no-any-return]


async def _finish(st: ComputeState, inst: Instance, op: Op, s: AsyncSession | None = None,
                  **values: Any) -> bool:
    """The end state, if the server is still in the op's task states."""
    values.setdefault("task_state", None)

    async def run(sess: AsyncSession) -> bool:
        res = await sess.execute(update(Instance).where(
            Instance.uuid == inst.uuid, Instance.deleted.is_(False),
            Instance.task_state.in_(op.task_states)).values(updated_at=utcnow(), **values))
        return res.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    if s is not None:
        return await run(s)
    async with st.db.write() as sess:
        return await run(sess)


async def _power(st: ComputeState, inst_uuid: str) -> int:
    try:
        return int((await st.driver.get_info(inst_uuid)).power_state)
    except DriverError:  # the guest is gone (offloaded): no state
        return 0


async def _fail(st: ComputeState, inst_uuid: str, op: Op, action_id: int | None,
                exc: Exception) -> None:
    """The last attempt failed: clear the task state (ERROR with a fault for the
    actions that leave the guest half-changed) and record the event's error."""
    detail = f"{type(exc).__name__}: {exc}"
    async with st.db.write() as s:
        inst = await s.scalar(select(Instance).where(Instance.uuid == inst_uuid))
        if inst is None or inst.deleted or inst.task_state not in op.task_states:
            return
        inst.task_state = None
        if op.fail_to_error:
            inst.vm_state = ERROR
            inst.fault = svc._fault(500, f"{op.name} of instance {inst_uuid} failed: {exc}",
                                    detail)
        if op.name in ("resize", "confirmResize", "revertResize"):
            await migrations_mod.set_status(s, inst_uuid, "error")
        inst.updated_at = utcnow()
        if action_id is not None:
            await svc._event_finish(s, action_id, op.event, "Error", traceback=detail)


def _sysmeta(inst: Instance, *drop: str, **set_: Any) -> dict[str, Any]:
    out = {k: v for k, v in (inst.system_metadata or {}).items() if k not in drop}
    out.update(set_)
    return out


def _old_vm_state(inst: Instance, default: str = ACTIVE) -> str:
    return str((inst.system_metadata or {}).get("old_vm_state") or default)


# suspend, resume, rescue, unrescue

async def _suspend(st: ComputeState, inst: Instance, handle: TaskHandle) -> dict[str, Any]:
    await st.driver.suspend(inst.uuid)
    await _finish(st, inst, OPS["suspend"], vm_state=SUSPENDED,
                  power_state=await _power(st, inst.uuid))
    return {"done": True}


async def _resume(st: ComputeState, inst: Instance, handle: TaskHandle) -> dict[str, Any]:
    await st.driver.resume(inst.uuid)
    await _finish(st, inst, OPS["resume"], vm_state=ACTIVE,
                  power_state=await _power(st, inst.uuid))
    return {"done": True}


async def _rescue(st: ComputeState, inst: Instance, handle: TaskHandle) -> dict[str, Any]:
    await st.driver.rescue(svc.spec_of(inst), handle.payload["rescue_image"])
    await _finish(st, inst, OPS["rescue"], vm_state=RESCUED,
                  power_state=await _power(st, inst.uuid))
    return {"done": True}


async def _unrescue(st: ComputeState, inst: Instance, handle: TaskHandle) -> dict[str, Any]:
    await st.driver.unrescue(inst.uuid)
    await _finish(st, inst, OPS["unrescue"], vm_state=ACTIVE,
                  power_state=await _power(st, inst.uuid),
                  system_metadata=_sysmeta(inst, "old_vm_state"))
    return {"done": True}


# resize, confirm, revert

def _sizes(flavor: dict[str, Any]) -> dict[str, Any]:
    """The row's columns a flavor sets."""
    return {"flavor": flavor, "instance_type_id": flavor["flavorid"], "vcpus": flavor["vcpus"],
            "memory_mb": flavor["ram"], "root_gb": flavor["disk"],
            "ephemeral_gb": flavor["ephemeral"]}


def _request(flavor: dict[str, Any]) -> scheduler.Request:
    return scheduler.Request(flavor["vcpus"], flavor["ram"],
                             flavor["disk"] + flavor["ephemeral"])


async def move_claim(s: AsyncSession, st: ComputeState, inst_uuid: str,
                     flavor: dict[str, Any], *, force: bool = False) -> bool:
    """In the caller's transaction, give back the instance's claim and claim
    ``flavor`` on the same node (this host's if it holds none) with the
    scheduler's conditional claim; False (the transaction must roll back) if
    the node has no room. ``force`` takes the claim even past the node's
    capacity (a revert must get its old flavor back)."""
    held = await s.get(Allocation, inst_uuid)
    node_id = held.node_id if held is not None else st.node_id
    assert node_id is not None
    await scheduler.free(s, inst_uuid)
    req = _request(flavor)
    if await scheduler._claim(s, node_id, inst_uuid, req):
        return True
    if not force:
        return False
    n = ComputeNode
    await s.execute(update(n).where(n.id == node_id).values(
        vcpus_used=n.vcpus_used + req.vcpus, memory_mb_used=n.memory_mb_used + req.memory_mb,
        local_gb_used=n.local_gb_used + req.disk_gb))
    s.add(Allocation(instance_uuid=inst_uuid, node_id=node_id, vcpus=req.vcpus,
                     memory_mb=req.memory_mb, disk_gb=req.disk_gb))
    await s.flush()
    return True


class _NoRoom(Exception):
    pass


async def _resize(st: ComputeState, inst: Instance, handle: TaskHandle) -> dict[str, Any]:
    op = OPS["resize"]
    action_id = handle.payload.get("action_id")
    new = handle.payload["new_flavor"]
    if inst.task_state == op.task_state:  # the claim has not moved yet
        try:
            async with st.db.write() as s:
                if not await move_claim(s, st, inst.uuid, new):
                    raise _NoRoom
                res = await s.execute(update(Instance).where(
                    Instance.uuid == inst.uuid, Instance.task_state == op.task_state).values(
                    task_state="resize_migrating", old_flavor=inst.flavor, new_flavor=new,
                    updated_at=utcnow()))
                if res.rowcount != 1:  # type: ignore[attr-defined]
                    raise _NoRoom  # deleted meanwhile: roll the claim back too
                await migrations_mod.record_resize(s, inst, inst.flavor, new, "migrating")
        except _NoRoom:
            cur = await _current(st, inst.uuid, op)
            if cur is None:
                return {"skipped": True}
            message = ("No valid host was found. " + (scheduler._shortfall(
                await _node(st, inst.uuid), _request(new)) or "") + ".")
            async with st.db.write() as s:
                await s.execute(update(Instance).where(
                    Instance.uuid == inst.uuid, Instance.task_state == op.task_state).values(
                    task_state=None, fault=svc._fault(500, message), updated_at=utcnow()))
                # Nova's conductor leaves the resize's record in "error" then
                await migrations_mod.record_resize(s, inst, inst.flavor, new, "error")
                if action_id is not None:
                    await svc._event_finish(s, action_id, op.event, "Error", traceback=message)
            return {"error": message, "recorded": True}
    if action_id is not None:
        async with st.db.write() as s:
            await svc._event_finish(s, action_id, op.event, "Success")
        await svc._event_start(st, action_id, "compute_resize_instance")
    spec = replace(svc.spec_of(inst), vcpus=new["vcpus"], memory_mb=new["ram"],
                   root_gb=new["disk"], ephemeral_gb=new["ephemeral"])
    await st.driver.resize(spec)
    async with st.db.write() as s:
        await migrations_mod.set_status(s, inst.uuid, "post-migrating", only_from=("migrating",))
        if action_id is not None:
            await svc._event_finish(s, action_id, "compute_resize_instance", "Success")
    if action_id is not None:
        await svc._event_start(st, action_id, "compute_finish_resize")
    async with st.db.write() as s:
        done = await _finish(st, inst, op, s, vm_state=RESIZED,
                             power_state=await _power(st, inst.uuid), **_sizes(new))
        if done:
            await migrations_mod.set_status(s, inst.uuid, "finished")
        if done and action_id is not None:
            await svc._event_finish(s, action_id, "compute_finish_resize", "Success")
    return {"done": True, "recorded": True}  # its events are finished already


async def _node(st: ComputeState, inst_uuid: str) -> ComputeNode:
    async with st.db.read() as s:
        held = await s.get(Allocation, inst_uuid)
        node = await s.get(ComputeNode, held.node_id if held else st.node_id)
    assert node is not None
    return node


async def _confirm(st: ComputeState, inst: Instance, handle: TaskHandle) -> dict[str, Any]:
    await st.driver.confirm_resize(inst.uuid)
    async with st.db.write() as s:
        if await _finish(st, inst, OPS["confirmResize"], s, vm_state=_old_vm_state(inst),
                         old_flavor=None, new_flavor=None,
                         system_metadata=_sysmeta(inst, "old_vm_state")):
            await migrations_mod.set_status(s, inst.uuid, "confirmed")
    return {"done": True}


async def _revert(st: ComputeState, inst: Instance, handle: TaskHandle) -> dict[str, Any]:
    op = OPS["revertResize"]
    old = inst.old_flavor or inst.flavor
    spec = replace(svc.spec_of(inst), vcpus=old["vcpus"], memory_mb=old["ram"],
                   root_gb=old["disk"], ephemeral_gb=old["ephemeral"])
    await st.driver.revert_resize(spec)
    vm_state = _old_vm_state(inst)
    if vm_state == STOPPED:
        await st.driver.power_off(inst.uuid)
    action_id = handle.payload.get("action_id")
    if action_id is not None:
        await svc._event_start(st, action_id, "compute_finish_revert_resize")
    async with st.db.write() as s:
        cur = await s.scalar(select(Instance.task_state).where(Instance.uuid == inst.uuid))
        if cur != op.task_state:
            return {"skipped": True}
        await move_claim(s, st, inst.uuid, old, force=True)
        await _finish(st, inst, op, s, vm_state=vm_state, old_flavor=None, new_flavor=None,
                      power_state=await _power(st, inst.uuid),
                      system_metadata=_sysmeta(inst, "old_vm_state"), **_sizes(old))
        await migrations_mod.set_status(s, inst.uuid, "reverted")
        if action_id is not None:
            await svc._event_finish(s, action_id, "compute_finish_revert_resize", "Success")
    return {"done": True}


# rebuild

async def _rebuild(st: ComputeState, inst: Instance, handle: TaskHandle) -> dict[str, Any]:
    op = OPS["rebuild"]
    if not await _step(st, inst, op, "rebuild_spawning"):
        return {"skipped": True}
    await st.driver.rebuild(await svc.spawn_spec(st, inst))
    vm_state = _old_vm_state(inst)
    if vm_state == STOPPED:
        await st.driver.power_off(inst.uuid)
    else:
        vm_state = ACTIVE
    await _finish(st, inst, op, vm_state=vm_state, power_state=await _power(st, inst.uuid),
                  launched_at=utcnow(), system_metadata=_sysmeta(inst, "old_vm_state"))
    return {"done": True}


# createImage, shelve, offload, unshelve

async def _create_image(st: ComputeState, inst: Instance, handle: TaskHandle) -> dict[str, Any]:
    op = OPS["createImage"]
    if not await _step(st, inst, op, "image_uploading"):
        return {"skipped": True}
    uploaded = await _upload_snapshot(st, inst.uuid, handle.payload["image_id"])
    await _finish(st, inst, op)
    return {"done": True, "uploaded": uploaded}


async def _create_backup(st: ComputeState, inst: Instance,
                         handle: TaskHandle) -> dict[str, Any]:
    op = OPS["createBackup"]
    if not await _step(st, inst, op, "image_uploading"):
        return {"skipped": True}
    uploaded = await _upload_snapshot(st, inst.uuid, handle.payload["image_id"])
    rotated = await _rotate_backups(st, inst.uuid, handle.payload["backup_type"],
                                    int(handle.payload["rotation"]))
    await _finish(st, inst, op)
    return {"done": True, "uploaded": uploaded, "rotated": rotated}


async def _shelve(st: ComputeState, inst: Instance, handle: TaskHandle) -> dict[str, Any]:
    op = OPS["shelve"]
    if inst.task_state != "shelving_offloading":
        if not await _step(st, inst, op, "shelving_image_uploading"):
            return {"skipped": True}
        with contextlib.suppress(Exception):  # a guest that will not stop is snapshotted anyway
            await st.driver.power_off(inst.uuid)
        await _upload_snapshot(st, inst.uuid, handle.payload["image_id"])
        offload = shelved_offload_time(st) == 0
        if offload:
            if not await _step(st, inst, op, "shelving_offloading", vm_state=SHELVED,
                               power_state=SHUTDOWN):
                return {"skipped": True}
        else:
            await _finish(st, inst, op, vm_state=SHELVED, power_state=SHUTDOWN)
            return {"done": True}
    action_id = handle.payload.get("action_id")
    if action_id is not None:
        await svc._event_start(st, action_id, OPS["shelveOffload"].event)
    await _offload(st, inst, op)
    if action_id is not None:
        async with st.db.write() as s:
            await svc._event_finish(s, action_id, OPS["shelveOffload"].event, "Success")
    return {"done": True}


async def _offload(st: ComputeState, inst: Instance, op: Op) -> None:
    """Destroy the guest and free its claim: SHELVED_OFFLOADED, on no host."""
    await st.driver.destroy(inst.uuid)
    async with st.db.write() as s:
        cur = await s.scalar(select(Instance.task_state).where(
            Instance.uuid == inst.uuid, Instance.deleted.is_(False)))
        if cur not in op.task_states:
            return
        await scheduler.free(s, inst.uuid)
        await _finish(st, inst, op, s, vm_state=SHELVED_OFFLOADED, power_state=0, host=None,
                      node=None)


async def _shelve_offload(st: ComputeState, inst: Instance,
                          handle: TaskHandle) -> dict[str, Any]:
    await _offload(st, inst, OPS["shelveOffload"])
    return {"done": True}


async def _unshelve(st: ComputeState, inst: Instance, handle: TaskHandle) -> dict[str, Any]:
    op = OPS["unshelve"]
    action_id = handle.payload.get("action_id")
    meta = inst.system_metadata or {}
    if inst.vm_state == SHELVED:  # never offloaded: the guest is there, stopped
        await st.driver.power_on(inst.uuid)
    else:
        if inst.task_state == op.task_state:
            if action_id is not None:
                await svc._event_start(st, action_id, svc.SCHEDULE_EVENT)
            try:
                node = await scheduler.schedule(st, inst.uuid, scheduler.Request(
                    inst.vcpus, inst.memory_mb, inst.root_gb + inst.ephemeral_gb,
                    inst.requested_availability_zone, host=handle.payload.get("host")))
            except scheduler.NoValidHost as exc:
                async with st.db.write() as s:
                    await s.execute(update(Instance).where(
                        Instance.uuid == inst.uuid, Instance.task_state == op.task_state)
                        .values(task_state=None, fault=svc._fault(500, str(exc)),
                                updated_at=utcnow()))
                    if action_id is not None:
                        await svc._event_finish(s, action_id, svc.SCHEDULE_EVENT, "Error",
                                                traceback=str(exc))
                        await svc._event_finish(s, action_id, op.event, "Error",
                                                traceback=str(exc))
                return {"error": str(exc), "recorded": True}
            if action_id is not None:
                async with st.db.write() as s:
                    await svc._event_finish(s, action_id, svc.SCHEDULE_EVENT, "Success")
            if not await _step(st, inst, op, "spawning", host=node.host,
                               node=node.hypervisor_hostname,
                               availability_zone=node.availability_zone):
                return {"skipped": True}
            if not await svc.run_here(st, handle, node.host):  # that host spawns it
                return {"host": node.host, "recorded": True}
        image = meta.get("shelved_image") or {"id": meta.get("shelved_image_id")}
        await st.driver.spawn(replace(await svc.spawn_spec(st, inst), image=image))
    if meta.get("shelved_image_id"):  # the guest has its disk: the image has done its job
        await delete_image(st, str(meta["shelved_image_id"]))
    await _finish(st, inst, op, vm_state=ACTIVE, power_state=await _power(st, inst.uuid),
                  system_metadata=_sysmeta(inst, "shelved_image_id", "shelved_image",
                                           "shelved_at", "shelved_host"))
    return {"done": True}


WORK = {
    "suspend": _suspend, "resume": _resume, "rescue": _rescue, "unrescue": _unrescue,
    "resize": _resize, "confirmResize": _confirm, "revertResize": _revert,
    "rebuild": _rebuild, "createImage": _create_image, "createBackup": _create_backup,
    "shelve": _shelve, "shelveOffload": _shelve_offload, "unshelve": _unshelve,
}
