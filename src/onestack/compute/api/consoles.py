"""Remote consoles: ``POST /servers/{id}/remote-consoles`` (2.6+), the pre-2.6
actions ``os-getVNCConsole`` and friends, ``GET /os-console-auth-tokens/{token}``
(admins), and the console proxy Nova runs as ``nova-novncproxy``: the noVNC
page (Debian's ``novnc`` package, ``/usr/share/novnc``) at ``/compute/vnc/`` and
the websocket at ``/compute/vnc/websockify?token=...`` that carries the RFB
bytes to the guest's VNC server. Tokens and the checks are in
``service/consoles.py``."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketState

from onestack.compute import errors
from onestack.compute.api import common as c
from onestack.compute.models import Instance
from onestack.compute.service import consoles as svc
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest, NotFound, ServiceUnavailable
from onestack.core.http import JSONResponse

RULE = "os_compute_api:os-remote-consoles"
TOKENS_RULE = "os_compute_api:os-console-auth-tokens"
NOVNC_DIR = Path("/usr/share/novnc")
PAGE = "vnc_lite.html"
WEBSOCKET = "/vnc/websockify"

PROTOCOLS = ["vnc", "spice", "serial", "rdp"]  # Nova's schema (rdp is refused)
TYPES = ["novnc", "xvpvnc", "spice-html5", "serial", "rdp-html5"]
OLD_ACTION_TYPES = {"os-getVNCConsole": ["novnc", "xvpvnc"],
                    "os-getSPICEConsole": ["spice-html5"],
                    "os-getSerialConsole": ["serial"]}


def _not_found() -> NotFound:
    return NotFound("The resource could not be found.")


def url_base(request: Request) -> str:
    """The noVNC page's public URL, its ``path`` the websocket's (noVNC takes the
    path from the page's host: the cloud's public base URL's path included)."""
    base = c.state(request).settings.base_url.rstrip("/")
    root = request.scope.get("root_path", "")  # the compute service's prefix
    ws_path = (urlparse(base).path + root + WEBSOCKET).lstrip("/")
    return f"{base}{root}/vnc/{PAGE}?" + urlencode({"path": ws_path})


def _enum(value: Any, field: str, allowed: list[str]) -> str:
    if not isinstance(value, str):
        raise errors.invalid_field(field, value, f"{value!r} is not of type 'string'")
    if value not in allowed:
        raise errors.invalid_field(field, value, f"{value!r} is not one of {allowed!r}")
    return value


async def _console_url(request: Request, inst: Instance, protocol: str,
                       console_type: str, method: str) -> str:
    """The compute API's ``get_<protocol>_console``: novnc only; the others
    as Nova answers with them switched off (after its host and state checks)."""
    st = c.state(request)
    if protocol == "vnc":
        return await svc.get_vnc_console(st, inst, console_type, url_base(request), method)
    svc.check_server(inst, method)
    raise svc.unavailable(console_type)


async def create(request: Request) -> Response:
    ctx = await c.context(request)
    if not c.supports(request, "2.6"):
        raise _not_found()
    protocols, types = list(PROTOCOLS), list(TYPES)
    if c.supports(request, "2.8"):
        protocols.append("mks")
        types.append("webmks")
    if c.supports(request, "2.99"):
        types.append("spice-direct")
    arg = await c.body_object(request, "remote_console", ("protocol", "type"),
                              ("protocol", "type"))
    protocol = _enum(arg["protocol"], "remote_console/protocol", protocols)
    console_type = _enum(arg["type"], "remote_console/type", types)
    _ctx, inst = await c.authorized_server(request, RULE, ctx)
    if protocol == "rdp":  # removed with Hyper-V in Nova 29.0.0
        raise svc.unavailable(protocol)
    url = await _console_url(request, inst, protocol, console_type, "get_vnc_console"
                             if protocol == "vnc" else f"get_{protocol}_console")
    return JSONResponse({"remote_console": {"protocol": protocol, "type": console_type,
                                            "url": url}})


def _old_action(name: str, protocol: str) -> Any:
    async def run(request: Request, arg: Any) -> Response:
        ctx = await c.context(request)
        if c.supports(request, "2.6"):
            raise _not_found()
        c.expect_object(arg, name, ("type",), ("type",), path=name)
        console_type = _enum(arg["type"], f"{name}/type", OLD_ACTION_TYPES[name])
        _ctx, inst = await c.authorized_server(request, RULE, ctx)
        url = await _console_url(request, inst, protocol, console_type,
                                 f"get_{protocol}_console")
        return JSONResponse({"console": {"type": console_type, "url": url}})
    return run


async def _rdp(request: Request, arg: Any) -> Response:
    """Removed with the Hyper-V driver (Nova 29.0.0): a bare 400 at once."""
    await c.context(request)
    if c.supports(request, "2.6"):
        raise _not_found()
    raise BadRequest("The server could not comply with the request since it is either "
                     "malformed or otherwise incorrect.")


ACTIONS = {
    "os-getVNCConsole": _old_action("os-getVNCConsole", "vnc"),
    "os-getSPICEConsole": _old_action("os-getSPICEConsole", "spice"),
    "os-getSerialConsole": _old_action("os-getSerialConsole", "serial"),
    "os-getRDPConsole": _rdp,
}


async def show_token(request: Request) -> Response:
    """Before 2.31 this was for rdp-html5 consoles only, which are gone: 400."""
    ctx = await c.context(request)
    if not c.supports(request, "2.31"):
        raise BadRequest("The server could not comply with the request since it is "
                         "either malformed or otherwise incorrect.")
    c.check_query(request, (), strict_from="2.99")
    c.enforce(request, ctx, TOKENS_RULE)
    conn = await svc.validate(c.state(request), request.path_params["token"])
    return JSONResponse({"console": {
        "instance_uuid": conn.instance_uuid, "host": conn.host, "port": conn.port,
        "internal_access_path": conn.internal_access_path}})


# -- the proxy: noVNC's files and the websocket ------------------------------------------


async def novnc_file(request: Request) -> Response:
    """A file of Debian's noVNC (unauthenticated, as nova-novncproxy serves it)."""
    rel = request.path_params.get("path") or PAGE
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\\" in rel or "\x00" in rel:
        raise _not_found()
    if not NOVNC_DIR.is_dir():
        raise ServiceUnavailable(f"noVNC is not installed on this host ({NOVNC_DIR} is "
                                 "missing: install the Debian package novnc)")
    path = NOVNC_DIR.joinpath(*parts)
    if not path.is_file():
        raise _not_found()
    return FileResponse(path)


def _origin_ok(ws: WebSocket, st: ComputeState) -> bool:
    """Nova's proxy check against cross-site websocket hijacking: a browser's
    ``Origin`` must name this host (as the client reached it, or the public URL)."""
    origin = ws.headers.get("origin")
    if not origin:
        return True
    hostname = urlparse(origin).hostname
    expected = {urlparse("//" + ws.headers.get("host", "")).hostname,
                urlparse(st.settings.base_url).hostname}
    return hostname is not None and hostname in expected


async def websockify(ws: WebSocket) -> None:
    st: ComputeState = ws.app.state.compute
    token = ws.query_params.get("token") or ws.cookies.get("token") or ""
    offered = ws.scope.get("subprotocols") or []
    subprotocol = "binary" if "binary" in offered else None
    if not _origin_ok(ws, st):
        await ws.accept(subprotocol=subprotocol)
        await ws.close(code=1008, reason="Origin header does not match this host.")
        return
    try:
        reader, writer = await svc.open_vnc(st, token)
    except svc.ProxyRefused as exc:
        if exc.code == 1008:
            # A bad token is refused before the upgrade, as nova-novncproxy's
            # websockify does: a bare 403 with no body, and not one websocket frame.
            await ws.close(code=exc.code)
            return
        await ws.accept(subprotocol=subprotocol)
        await ws.close(code=exc.code, reason=str(exc).encode()[:123].decode(errors="ignore"))
        return
    await ws.accept(subprotocol=subprotocol)

    async def to_guest() -> None:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes"):
                writer.write(message["bytes"])
                await writer.drain()

    async def to_client() -> None:
        while data := await reader.read(65536):
            await ws.send_bytes(data)

    tasks = [asyncio.create_task(to_guest()), asyncio.create_task(to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        if ws.application_state == WebSocketState.CONNECTED \
                and ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await ws.close(code=1000, reason="The VNC server closed the connection")


P = c.API_PREFIX
routes: list[BaseRoute] = [
    Route(f"{P}/servers/{{server_id}}/remote-consoles", create, methods=["POST"]),
    Route(f"{P}/os-console-auth-tokens/{{token}}", show_token, methods=["GET"]),
    WebSocketRoute(WEBSOCKET, websockify),
    Route("/vnc/{path:path}", novnc_file, methods=["GET", "HEAD"]),
]
