"""``/servers/{id}/os-interface``: list, show, attach (POST) and detach (DELETE)
a server's port interfaces (service/interfaces.py)."""

from __future__ import annotations

import ipaddress
import uuid as uuidlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute import errors
from onestack.compute.api import common as c
from onestack.compute.api.server_meta import tag_problem
from onestack.compute.api.servers import _authorized_server, caller
from onestack.compute.models import Instance
from onestack.compute.service import interfaces as svc
from onestack.compute.service import servers as servers_svc
from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, read_json

AI = "os_compute_api:os-attach-interfaces:"
ROOT = "interfaceAttachment"


def view(request: Request, port: dict[str, Any], tags: dict[str, str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "net_id": port["network_id"], "port_id": port["id"],
        "mac_addr": port.get("mac_address"), "port_state": port.get("status"),
        "fixed_ips": port.get("fixed_ips"),
    }
    if c.supports(request, "2.70"):
        out["tag"] = tags.get(port["id"])
    return out


async def index(request: Request) -> Response:
    _ctx, inst = await _authorized_server(request, AI + "list")
    st = c.state(request)
    ports = await svc.list_ports(st, inst, request.headers.get("x-auth-token", ""))
    tags = svc.tags(inst)
    return JSONResponse({"interfaceAttachments": [view(request, p, tags) for p in ports]})


async def _show(request: Request, inst: Instance, port_id: str) -> dict[str, Any]:
    port = await svc.show_port(c.state(request), inst, port_id,
                               request.headers.get("x-auth-token", ""))
    return {ROOT: view(request, port, svc.tags(inst))}


async def show(request: Request) -> Response:
    _ctx, inst = await _authorized_server(request, AI + "show")
    return JSONResponse(await _show(request, inst, request.path_params["port_id"]))


# -- the body, as Nova's schema checks it ---------------------------------------------------

def _is_uuid(value: str) -> bool:
    """oslo's ``is_uuid_like``: a UUID with or without hyphens, any case."""
    try:
        return str(uuidlib.UUID(value)).replace("-", "") == \
            value.replace("-", "").replace("{", "").replace("}", "").lower().removeprefix(
                "urn:uuid:")
    except (TypeError, ValueError, AttributeError):
        return False


def uuid_field(attachment: dict[str, Any], key: str) -> str | None:
    if key not in attachment:
        return None
    value = attachment[key]
    if not isinstance(value, str):
        raise errors.invalid_field(key, value, f"{value!r} is not of type 'string'")
    if not _is_uuid(value):
        raise errors.invalid_field(key, value, f"{value!r} is not a 'uuid'")
    return value


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _fixed_ip(attachment: dict[str, Any]) -> str | None:
    if "fixed_ips" not in attachment:
        return None
    value = attachment["fixed_ips"]
    if not isinstance(value, list):
        raise errors.invalid_field("fixed_ips", value, f"{value!r} is not of type 'array'")
    if len(value) < 1:
        raise errors.invalid_field("fixed_ips", value, f"{value!r} is too short")
    if len(value) > 1:
        raise errors.invalid_field("fixed_ips", value, f"{value!r} is too long")
    item = c.expect_object(value[0], "fixed_ips", ("ip_address",), ("ip_address",),
                           path="fixed_ips")
    ip = item["ip_address"]
    if not isinstance(ip, str):
        raise errors.invalid_field("ip_address", ip, f"{ip!r} is not of type 'string'")
    if not _is_ip(ip):
        raise errors.invalid_field("ip_address", ip,
                                   f"{ip!r} is not valid under any of the given schemas")
    return ip


def device_tag(attachment: dict[str, Any]) -> str | None:
    if "tag" not in attachment:
        return None
    value = attachment["tag"]
    problem = tag_problem(value, min_length=0)  # Nova's device tag schema
    if problem is not None:
        raise errors.invalid_field("tag", value, problem)
    return str(value)


async def parse_attach(request: Request) -> svc.AttachRequest:
    """Raises: BadRequest (Nova's schema and its two rules)."""
    body = await read_json(request)
    keys = ["net_id", "port_id", "fixed_ips"] + (["tag"] if c.supports(request, "2.49") else [])
    body = c.expect_object(body, "body", [ROOT])
    attachment: dict[str, Any] = {}
    if ROOT in body:
        attachment = c.expect_object(body[ROOT], ROOT, keys, path=ROOT)
    req = svc.AttachRequest(net_id=uuid_field(attachment, "net_id"),
                            port_id=uuid_field(attachment, "port_id"),
                            fixed_ip=_fixed_ip(attachment), tag=device_tag(attachment))
    if req.net_id and req.port_id:
        raise BadRequest("Must not input both network_id and port_id")
    if req.fixed_ip and not req.net_id:
        raise BadRequest("Must input network_id when request IP address")
    return req


async def create(request: Request) -> Response:
    await c.context(request)
    req = await parse_attach(request)  # Nova checks the body first
    ctx, inst = await _authorized_server(request, AI + "create")
    port_id = await svc.attach(c.state(request), inst.uuid, caller(request, ctx), req)
    inst = await servers_svc.get(c.state(request), inst.uuid)
    return JSONResponse(await _show(request, inst, port_id))


async def delete(request: Request) -> Response:
    ctx, inst = await _authorized_server(request, AI + "delete")
    await svc.detach(c.state(request), inst.uuid, caller(request, ctx),
                     request.path_params["port_id"])
    return Response(status_code=202)


P = c.API_PREFIX + "/servers/{server_id}/os-interface"
routes = [
    Route(P, index, methods=["GET"]),
    Route(P, create, methods=["POST"]),
    Route(P + "/{port_id}", show, methods=["GET"]),
    Route(P + "/{port_id}", delete, methods=["DELETE"]),
]
