"""``/servers/{id}/os-volume_attachments``: list, show, attach (POST), update or
swap (PUT) and detach (DELETE) a server's volumes, with Nova's schemas by
microversion (tag 2.49, delete_on_termination 2.79, an update of the attachment
itself 2.85) and its policies. With no block storage service yet, no volume
exists (service/volumes.py): lists are empty and a named volume is a 404, after
the checks Nova makes before it looks the volume up."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute import errors
from onestack.compute.api import common as c
from onestack.compute.api.interfaces import device_tag, uuid_field
from onestack.compute.api.servers import caller
from onestack.compute.models import Instance
from onestack.compute.service import servers as servers_svc
from onestack.compute.service import volumes as svc
from onestack.compute.service.actions import SHELVED, SHELVED_OFFLOADED
from onestack.core.http import JSONResponse, read_json

POLICY = "os_compute_api:os-volumes-attachments:"
ROOT = "volumeAttachment"
# nova/block_device.py's match_device, as Nova's schema has it
DEVICE = "(^/dev/x{0,1}[a-z]{0,1}d{0,1})([a-z]+)[0-9]*$"
_DEVICE = re.compile(DEVICE)


async def index(request: Request) -> Response:
    c.check_query(request, ("limit", "offset"))
    for name in ("limit", "offset"):
        c.non_negative_query(request, name)
    _ctx, inst = await c.authorized_server(request, POLICY + "index")
    return JSONResponse({"volumeAttachments": svc.attachments(inst)})


async def show(request: Request) -> Response:
    _ctx, inst = await c.authorized_server(request, POLICY + "show")
    raise svc.not_attached(inst.uuid, request.path_params["volume_id"])


# -- bodies, as Nova's schemas check them ------------------------------------------------

def _device(attachment: dict[str, Any]) -> str | None:
    value = attachment.get("device")
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.invalid_field("device", value, f"{value!r} is not of type 'string', 'null'")
    if not _DEVICE.search(value):
        raise errors.invalid_field("device", value, f"{value!r} does not match '{DEVICE}'")
    return value


async def _attachment(request: Request, keys: list[str]) -> dict[str, Any]:
    body = c.expect_object(await read_json(request), "body", [ROOT], [ROOT])
    attachment = c.expect_object(body[ROOT], ROOT, keys, ["volumeId"], path=ROOT)
    uuid_field(attachment, "volumeId")
    _device(attachment)
    device_tag(attachment)
    if "delete_on_termination" in attachment:
        c.check_bool(attachment["delete_on_termination"], "delete_on_termination")
    return attachment


def _shelved_before_220(request: Request, inst: Instance, action: str) -> None:
    """Nova attaches to and detaches from shelved servers from 2.20 on."""
    if inst.vm_state in (SHELVED, SHELVED_OFFLOADED) and not c.supports(request, "2.20"):
        raise servers_svc.invalid_state(action, inst)


async def create(request: Request) -> Response:
    keys = ["volumeId", "device"]
    if c.supports(request, "2.49"):
        keys.append("tag")
    if c.supports(request, "2.79"):
        keys.append("delete_on_termination")
    await c.context(request)
    attachment = await _attachment(request, keys)  # Nova checks the body first
    ctx, inst = await c.authorized_server(request, POLICY + "create")
    _shelved_before_220(request, inst, "attach_volume")
    svc.check_attach(inst, caller(request, ctx))
    await svc.find_volume(attachment["volumeId"])  # the attach needs the volume


async def update(request: Request) -> Response:
    keys = ["volumeId"]
    if c.supports(request, "2.85"):
        keys += ["device", "tag", "delete_on_termination", "serverId", "id"]
    ctx = await c.context(request)
    attachment = await _attachment(request, keys)
    if c.supports(request, "2.85"):
        uuid_field(attachment, "serverId")
        uuid_field(attachment, "id")
    volume_id = request.path_params["volume_id"]
    if c.supports(request, "2.85") and attachment["volumeId"] == volume_id:
        await c.authorized_server(request, POLICY + "update", ctx)
        raise svc.no_mapping(volume_id)  # no volume is attached to update
    # a swap is Cinder's call: checked against no project, as Nova does
    await servers_svc.get(c.state(request), request.path_params["server_id"])
    c.enforce(request, ctx, POLICY + "swap", {})
    await svc.find_volume(volume_id)  # the volume being swapped out


async def delete(request: Request) -> Response:
    _ctx, inst = await c.authorized_server(request, POLICY + "delete")
    _shelved_before_220(request, inst, "detach_volume")
    await svc.find_volume(request.path_params["volume_id"])


P = c.API_PREFIX + "/servers/{server_id}/os-volume_attachments"
routes = [
    Route(P, index, methods=["GET"]),
    Route(P, create, methods=["POST"]),
    Route(P + "/{volume_id}", show, methods=["GET"]),
    Route(P + "/{volume_id}", update, methods=["PUT"]),
    Route(P + "/{volume_id}", delete, methods=["DELETE"]),
]
