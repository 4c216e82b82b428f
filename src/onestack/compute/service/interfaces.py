"""Interfaces (``/servers/{id}/os-interface``): a server's ports, attached and
detached while it exists, as Nova's attach_interface and detach_interface.

Attach (synchronous in Nova: the answer is the attached port) checks the lock
and the states (ACTIVE, PAUSED or SHUTOFF, no task under way), then with the
caller's token the port (found, the server's project's, not in use) or the
network (found; none given: the one network the project has, as a boot
without networks picks it). The port is then made or bound as the build task
does (the compute service user's token: ``device_id`` = the server,
``device_owner`` ``compute:<az>``, ``binding:host_id`` = its host), and in one
transaction the ``attach_interface`` instance action and a durable
``interface`` task are recorded; if that fails the port is deleted again (or
the user's unbound). The request waits for the task: it plugs the port in
with the driver (``compute_attach_interface`` event) and adds it to the
server's ``network_info`` (its ``addresses``). A last failure takes the NIC
out again, deletes (or unbinds) the port and answers 500.

Detach (202) checks the same states and that the port is one of the server's,
records ``detach_interface`` and submits the task, which unplugs the port with
the driver (``compute_detach_interface``), deletes the port if compute made it
(unbinds the user's own: ``device_id``, ``device_owner`` and
``binding:host_id`` cleared) and drops it from ``network_info``.

Neither sets a task state (Nova's do not); the driver serialises its work on a
guest, and every step may run twice (a retried task finds it done).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from onestack.compute.models import Instance, utcnow
from onestack.compute.service import external
from onestack.compute.service import servers as svc
from onestack.compute.state import ComputeState
from onestack.core import tasks as tasks_mod
from onestack.core.errors import BadRequest, CloudError, Conflict, Forbidden, NotFound
from onestack.core.tasks import TaskHandle

log = logging.getLogger("onestack.compute")

KIND = "interface"  # the task kind
ATTACH, DETACH = "attach_interface", "detach_interface"  # Nova's instance actions
ATTACH_EVENT, DETACH_EVENT = "compute_attach_interface", "compute_detach_interface"
VM_STATES = (svc.ACTIVE, svc.PAUSED, svc.STOPPED)
WAIT_SECONDS = 120.0  # how long an attach request waits for its task


class AttachFailed(CloudError):
    status_code = 500


def port_not_found(port_id: str) -> NotFound:
    return NotFound(f"Port id {port_id} could not be found.")


def _port_id(info: dict[str, Any]) -> str | None:
    value = info.get("port_id") or info.get("id")
    return str(value) if value else None


# -- reading ---------------------------------------------------------------------------

async def list_ports(st: ComputeState, inst: Instance, token: str) -> list[dict[str, Any]]:
    """The server's ports (``device_id``) as the caller sees them."""
    r = await external._client(st).get(f"{external.NETWORK}/ports",
                                       params={"device_id": inst.uuid},
                                       headers={"X-Auth-Token": token})
    return external._check(r, "listing the server's ports")["ports"]  # type: ignore[no-any-return]


async def show_port(st: ComputeState, inst: Instance, port_id: str,
                    token: str) -> dict[str, Any]:
    """One of the server's ports as the caller sees it.

    Raises:
        NotFound: no such port, or not the server's.
    """
    port = await external.get_port(st, {"X-Auth-Token": token}, port_id)
    if port is None:
        raise port_not_found(port_id)
    if port.get("device_id") != inst.uuid:
        raise NotFound(f"Instance {inst.uuid} does not have a port with id {port_id}")
    return port


def tags(inst: Instance) -> dict[str, str | None]:
    """port id -> the tag it was attached with (2.49)."""
    return {pid: i.get("tag") for i in inst.network_info or [] if (pid := _port_id(i))}


# -- checks ----------------------------------------------------------------------------

def _check_state(inst: Instance, caller: svc.Caller, action: str) -> None:
    """Nova's check_instance_lock then check_instance_state.

    Raises:
        Conflict.
    """
    if inst.locked and not caller.is_admin:
        raise svc.locked(inst)
    if inst.vm_state not in VM_STATES:
        raise svc.invalid_state(action, inst)
    if inst.task_state is not None:
        raise svc.invalid_state(action, inst, "task_state")


async def _load_checked(st: ComputeState, server_id: str, caller: svc.Caller,
                        action: str) -> Instance:
    async with st.db.read() as s:
        inst = await svc._load(s, server_id)
    _check_state(inst, caller, action)
    return inst


async def _pick_network(st: ComputeState, caller: svc.Caller, inst: Instance) -> str:
    """The network of an attach that names none: the server's project's own or
    shared networks (not external ones), when there is exactly one.

    Raises:
        BadRequest: none, or several.
    """
    nets = [n for n in await external.list_networks(st, caller.token)
            if not n.get("router:external")
            and (n.get("project_id") == inst.project_id or n.get("shared"))]
    if not nets:
        raise BadRequest("No specific network was requested and none are available for "
                         f"project '{inst.project_id}'.")
    if len(nets) > 1:
        raise BadRequest("Multiple possible networks found, use a Network ID to be more "
                         "specific.")
    return str(nets[0]["id"])


# -- ports -----------------------------------------------------------------------------

def _binding(st: ComputeState, inst: Instance) -> dict[str, Any]:
    zone = inst.availability_zone or st.conf.default_availability_zone
    return {"device_id": inst.uuid, "device_owner": f"compute:{zone}",
            "binding:host_id": inst.host or st.host}


async def _create_port(st: ComputeState, inst: Instance, body: dict[str, Any],
                       fixed_ip: str | None) -> dict[str, Any]:
    """Create the port with the compute service user's token; Neutron's refusals
    as Nova words them.

    Raises:
        BadRequest (no address left, an address not on the network), Conflict
        (the address is taken), Forbidden (port quota).
    """
    r = await external._client(st).post(f"{external.NETWORK}/ports", json={"port": body},
                                        headers=await external.service_headers(st))
    if r.status_code < 400:
        return r.json()["port"]  # type: ignore[no-any-return]
    kind = ""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        kind = r.json()["NeutronError"]["type"]
    net = body["network_id"]
    if kind in ("IpAddressAlreadyAllocated", "IpAddressInUse"):
        raise Conflict(f"Fixed IP address {fixed_ip} is already in use on instance "
                       f"{inst.uuid}.")
    if kind == "IpAddressGenerationFailure":
        raise BadRequest(f"No fixed IP addresses available for network: {net}")
    if kind in ("InvalidIpForNetwork", "InvalidIpForSubnet"):
        raise BadRequest(f"Invalid input received: Fixed IP {fixed_ip} is not a valid ip "
                         f"address for network {net}.")
    if kind == "OverQuota":
        raise Forbidden("Maximum number of ports exceeded")
    external._check(r, "creating a port")
    raise AssertionError("unreachable")


async def release_port(st: ComputeState, port_id: str, preexisting: bool) -> None:
    """Give the port up: delete the one compute made, unbind the user's own."""
    if preexisting:
        port = await external.get_port(st, await external.service_headers(st), port_id)
        if port is not None:
            await external.update_port(st, port_id, {
                "device_id": "", "device_owner": "", "binding:host_id": ""})
    else:
        await external.delete_port(st, port_id)


def port_info(port: dict[str, Any], preexisting: bool, tag: str | None) -> dict[str, Any]:
    """A ``network_info`` entry (what the build task writes, and the tag)."""
    info: dict[str, Any] = {
        "port_id": port["id"], "network_id": port["network_id"],
        "mac_address": port.get("mac_address"), "fixed_ips": port.get("fixed_ips", []),
        "preexisting": preexisting}
    if tag is not None:
        info["tag"] = tag
    return info



# -- floating IPs (network-changed) ------------------------------------------------

async def refresh_floating_ips(st: ComputeState, server_uuid: str) -> None:
    """Store the floating IPs of the server's ports (asked of the networking
    service) in its ``network_info`` entries, in one write, as Nova refreshes its
    network info cache on ``network-changed``. A failure is logged, not raised:
    the event is taken all the same. Refreshes of one server take turns, so the
    last one stores what networking said last."""
    locks: weakref.WeakValueDictionary[str, asyncio.Lock] = st.extras.setdefault(
        "floating_ip_refresh", weakref.WeakValueDictionary())
    lock = locks.get(server_uuid)
    if lock is None:
        lock = locks[server_uuid] = asyncio.Lock()
    async with lock:
        await _refresh_floating_ips(st, server_uuid)


async def _refresh_floating_ips(st: ComputeState, server_uuid: str) -> None:
    async with st.db.read() as s:
        inst = (await s.scalars(select(Instance).where(
            Instance.uuid == server_uuid, Instance.deleted.is_(False)))).first()
        port_ids = [i["port_id"] for i in (inst.network_info or []) if i.get("port_id")] \
            if inst is not None else []
    if not port_ids:
        return
    try:
        fips = await external.floating_ips_of(st, port_ids)
    except (CloudError, httpx.HTTPError) as exc:
        log.warning("could not refresh the floating IPs of server %s: %s", server_uuid, exc)
        return
    async with st.db.write() as s:
        row = (await s.scalars(select(Instance).where(
            Instance.uuid == server_uuid, Instance.deleted.is_(False)))).first()
        if row is None:
            return
        infos = external.add_floating_ips(row.network_info or [], fips)
        if infos != (row.network_info or []):
            row.network_info = infos

# -- attach ----------------------------------------------------------------------------

@dataclass
class AttachRequest:
    net_id: str | None = None
    port_id: str | None = None
    fixed_ip: str | None = None
    tag: str | None = None


async def attach(st: ComputeState, server_id: str, caller: svc.Caller,
                 req: AttachRequest) -> str:
    """Attach a port (see the module's docstring); its id.

    Raises:
        NotFound (server, port, network), Conflict (locked, state, port in use,
        address taken), BadRequest, Forbidden (port quota), AttachFailed.
    """
    inst = await _load_checked(st, server_id, caller, ATTACH)
    binding = _binding(st, inst)
    if req.port_id:
        port = await external.get_port(st, {"X-Auth-Token": caller.token}, req.port_id)
        if port is None:
            raise port_not_found(req.port_id)
        owner = port.get("project_id", port.get("tenant_id"))
        if owner != inst.project_id:
            raise BadRequest(f"Port {req.port_id} not usable for instance {inst.uuid}.")
        if port.get("device_id"):
            raise Conflict(f"Port {req.port_id} is still in use.")
        port = await external.update_port(st, req.port_id, binding)
        preexisting = True
    else:
        if req.net_id:
            if await external.get_network(st, caller.token, req.net_id) is None:
                raise NotFound(f"Network {req.net_id} could not be found.")
            net_id = req.net_id
        else:
            net_id = await _pick_network(st, caller, inst)
        body: dict[str, Any] = {"network_id": net_id, "project_id": inst.project_id,
                                **binding}
        groups = await svc._security_group_ids(st, inst) if inst.security_groups else []
        if groups:
            body["security_groups"] = groups
        if req.fixed_ip:
            body["fixed_ips"] = [{"ip_address": req.fixed_ip}]
        port = await _create_port(st, inst, body, req.fixed_ip)
        preexisting = False
    info = port_info(port, preexisting, req.tag)
    try:
        async with st.db.write() as s:
            current = await svc._load(s, server_id, lock=True)
            _check_state(current, caller, ATTACH)  # it may have changed meanwhile
            action = await svc._start_action(s, current, ATTACH, caller)
            task_id = await svc.submit_for(st, s, KIND, current.host, {
                "op": "attach", "uuid": current.uuid, "action_id": action.id,
                "port": info})
    except BaseException:
        await release_port(st, port["id"], preexisting)
        raise
    try:
        done = await st.tasks.wait(task_id, timeout=float(
            st.extras.get("interface_wait", WAIT_SECONDS)))
    except TimeoutError:
        raise AttachFailed(f"Failed to attach network adapter device to {inst.uuid}") \
            from None
    error = (done.result or {}).get("error")
    if done.state == tasks_mod.FAILED or error:
        raise AttachFailed(f"Failed to attach network adapter device to {inst.uuid}")
    return str(port["id"])


# -- detach ----------------------------------------------------------------------------

async def detach(st: ComputeState, server_id: str, caller: svc.Caller, port_id: str) -> None:
    """Check, record the action and submit the detach task.

    Raises:
        NotFound (server, a port not attached to it), Conflict (locked, state).
    """
    async with st.db.write() as s:
        inst = await svc._load(s, server_id, lock=True)
        _check_state(inst, caller, DETACH)
        if not any(_port_id(i) == port_id for i in inst.network_info or []):
            raise NotFound(f"Port {port_id} is not attached")
        action = await svc._start_action(s, inst, DETACH, caller)
        await svc.submit_for(st, s, KIND, inst.host, {"op": "detach", "uuid": inst.uuid,
                                                      "action_id": action.id,
                                                      "port_id": port_id})


async def vif_deleted(st: ComputeState, server_uuid: str, port_id: str) -> bool:
    """Networking deleted one of the server's ports (``network-vif-deleted``): as
    Nova does, take the interface out of the guest and of ``network_info``, by
    the detach task with no instance action. Nothing to do if the port is not
    attached (compute's own detach deleted it) or the server is being deleted.
    Whether a detach was submitted."""
    async with st.db.write() as s:
        inst = await s.scalar(select(Instance).where(
            Instance.uuid == server_uuid, Instance.deleted.is_(False)).with_for_update())
        if inst is None or inst.task_state == svc.DELETING or not any(
                _port_id(i) == port_id for i in inst.network_info or []):
            return False
        await svc.submit_for(st, s, KIND, inst.host, {"op": "detach", "uuid": inst.uuid,
                                                      "port_id": port_id})
    return True


# -- the task ---------------------------------------------------------------------------

async def _live(st: ComputeState, inst_uuid: str) -> Instance | None:
    """The server unless it is gone or being deleted."""
    async with st.db.read() as s:
        inst: Instance | None = await s.scalar(select(Instance).where(Instance.uuid == inst_uuid))
    if inst is None or inst.deleted or inst.task_state == svc.DELETING:
        return None
    return inst


async def handle(st: ComputeState, handle: TaskHandle) -> dict[str, Any]:
    inst = await _live(st, handle.payload["uuid"])
    if inst is not None and not await svc.run_here(st, handle, inst.host):
        return {"host": inst.host}  # the guest is on another host: its runner does it
    if handle.payload["op"] == "attach":
        return await _attach(st, handle)
    return await _detach(st, handle)


async def _finish_event(st: ComputeState, action_id: int | None, event: str, result: str,
                        traceback: str | None = None) -> None:
    if action_id is not None:
        async with st.db.write() as s:
            await svc._event_finish(s, action_id, event, result, traceback=traceback)


async def _attach(st: ComputeState, handle: TaskHandle) -> dict[str, Any]:
    inst_uuid, action_id = handle.payload["uuid"], handle.payload.get("action_id")
    info: dict[str, Any] = dict(handle.payload["port"])
    port_id = info["port_id"]
    inst = await _live(st, inst_uuid)
    if inst is None:  # deleted meanwhile: the port is not its any more
        await release_port(st, port_id, info["preexisting"])
        await _finish_event(st, action_id, ATTACH_EVENT, "Error",
                            f"Instance {inst_uuid} could not be found.")
        return {"error": f"Instance {inst_uuid} could not be found."}
    if action_id is not None:
        await svc._event_start(st, action_id, ATTACH_EVENT)
    if any(_port_id(i) == port_id for i in inst.network_info or []):
        await _finish_event(st, action_id, ATTACH_EVENT, "Success")  # a second run
        return {"port_id": port_id}
    try:
        await st.driver.attach_interface(svc.spec_of(inst), info)
    except tasks_mod.LeaseLost:
        raise
    except Exception as exc:
        if handle.attempt < st.tasks.max_attempts:
            raise
        log.exception("attaching port %s to %s failed", port_id, inst_uuid)
        with contextlib.suppress(Exception):  # take out whatever got in
            await st.driver.detach_interface(inst_uuid, info)
        await release_port(st, port_id, info["preexisting"])
        await _finish_event(st, action_id, ATTACH_EVENT, "Error", f"{type(exc).__name__}: {exc}")
        return {"error": str(exc)}
    names = await external.subnet_names(st, {info["network_id"]})
    info["network_name"] = names.get(info["network_id"], info["network_id"])
    async with st.db.write() as s:
        row = await s.scalar(select(Instance).where(Instance.uuid == inst_uuid)
                             .with_for_update())
        gone = row is None or row.deleted or row.task_state == svc.DELETING
        if not gone:
            assert row is not None
            row.network_info = [*(i for i in row.network_info or [] if _port_id(i) != port_id),
                                info]
            row.updated_at = utcnow()
            if action_id is not None:
                await svc._event_finish(s, action_id, ATTACH_EVENT, "Success")
    if gone:
        await release_port(st, port_id, info["preexisting"])
        await _finish_event(st, action_id, ATTACH_EVENT, "Error",
                            f"Instance {inst_uuid} could not be found.")
        return {"error": f"Instance {inst_uuid} could not be found."}
    return {"port_id": port_id}


async def _detach(st: ComputeState, handle: TaskHandle) -> dict[str, Any]:
    inst_uuid, action_id = handle.payload["uuid"], handle.payload.get("action_id")
    port_id = handle.payload["port_id"]
    inst = await _live(st, inst_uuid)
    if inst is None:  # its delete releases its ports
        return {"skipped": True}
    if action_id is not None:
        await svc._event_start(st, action_id, DETACH_EVENT)
    info = next((i for i in inst.network_info or [] if _port_id(i) == port_id), None)
    if info is None:  # another detach came first
        await _finish_event(st, action_id, DETACH_EVENT, "Error",
                            f"PortNotFound: Port {port_id} is not attached")
        return {"error": f"Port {port_id} is not attached"}
    try:
        await st.driver.detach_interface(inst_uuid, info)
    except tasks_mod.LeaseLost:
        raise
    except Exception as exc:
        if await _live(st, inst_uuid) is None:
            return {"skipped": True}
        if handle.attempt < st.tasks.max_attempts:
            raise
        log.exception("detaching port %s from %s failed", port_id, inst_uuid)
        await _finish_event(st, action_id, DETACH_EVENT, "Error",
                            f"InterfaceDetachFailed: Failed to detach network adapter device "
                            f"from {inst_uuid}: {exc}")
        return {"error": str(exc)}
    requested = {w["port_id"] for w in inst.requested_networks or [] if "port_id" in w}
    await release_port(st, port_id, bool(info.get("preexisting")) or port_id in requested)
    async with st.db.write() as s:
        row = await s.scalar(select(Instance).where(Instance.uuid == inst_uuid)
                             .with_for_update())
        if row is not None and not row.deleted:
            row.network_info = [i for i in row.network_info or [] if _port_id(i) != port_id]
            row.updated_at = utcnow()
        if action_id is not None:
            await svc._event_finish(s, action_id, DETACH_EVENT, "Success")
    return {"done": True}
