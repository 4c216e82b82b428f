"""Remote consoles: console auth tokens and the VNC proxy's end.

Getting a console (Nova's compute API and manager ``get_vnc_console``): the
server must be on a host and not being deleted or migrated; the driver says
where the guest's VNC server is; a random token (a UUID, as Nova's) is stored
as its SHA-256 with that endpoint, the instance and an expiry ``TOKEN_TTL``
seconds (Nova's ``[consoleauth] token_ttl``) ahead, and the URL carries the token
in noVNC's ``path`` parameter. Only ``novnc`` is offered: SPICE, serial, MKS and
RDP consoles are answered as a Nova with them switched off answers.

The proxy (api/consoles.py) validates the token here and connects to the
endpoint's unix socket on this host.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid as uuid_mod
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlparse

from sqlalchemy import delete, select

from onestack.compute.drivers.base import GuestNotFound
from onestack.compute.models import ConsoleAuthToken, Instance, utcnow
from onestack.compute.service import servers as servers_svc
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest, Conflict, NotFound, NotImplementedYet

TOKEN_TTL = 600  # seconds, Nova's [consoleauth] token_ttl
REJECTED_TASK_STATES = ("deleting", "migrating")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def unavailable(console_type: object) -> BadRequest:
    return BadRequest(f"Unavailable console type {console_type}.")


def not_ready(inst: Instance) -> Conflict:
    return Conflict(f"Instance {inst.uuid} is not ready")


def not_supported() -> NotImplementedYet:
    return NotImplementedYet("The requested functionality is not supported.")


def access_url(base: str, token: str) -> str:
    """Nova's novnc access URL: the token goes into noVNC's ``path`` parameter
    (noVNC 1.1 dropped its own ``token`` parameter)."""
    parsed = urlparse(base)
    params = parse_qs(parsed.query)
    params["path"] = [params.get("path", [""])[0] + "?token=" + token]
    return parsed._replace(query=urlencode(params, doseq=True)).geturl()


def check_server(inst: Instance, method: str) -> None:
    """Nova's ``check_instance_host`` and ``reject_instance_state``.

    Raises: Conflict."""
    if not inst.host:
        raise not_ready(inst)
    if inst.task_state in REJECTED_TASK_STATES:
        raise servers_svc.invalid_state(method, inst, "task_state")


async def get_vnc_console(st: ComputeState, inst: Instance, console_type: str,
                          url_base: str, method: str = "get_vnc_console") -> str:
    """A new token for ``inst``'s VNC server; the console's URL.

    Raises: Conflict (no host yet, being deleted or migrated, still building),
    BadRequest (a type other than novnc), NotFound (the driver has no such
    guest), NotImplementedYet (a driver without consoles)."""
    check_server(inst, method)
    if console_type != "novnc":
        raise BadRequest(f"Invalid console type {console_type}")
    try:
        console = await servers_svc.call_driver(st, inst, "vnc_console")
    except GuestNotFound:
        if inst.vm_state == "building":
            raise not_ready(inst) from None
        raise servers_svc.not_found(inst.uuid) from None
    except NotImplementedError:
        raise not_supported() from None
    token = str(uuid_mod.uuid4())
    now = utcnow()
    async with st.db.write() as s:
        # expired tokens go when new ones come (Nova's periodic clean-up)
        await s.execute(delete(ConsoleAuthToken).where(ConsoleAuthToken.expires <= now))
        s.add(ConsoleAuthToken(
            token_hash=hash_token(token), console_type=console_type,
            instance_uuid=inst.uuid, host=console.host or inst.host or st.host,
            port=console.port, internal_access_path=console.internal_access_path,
            socket=console.socket, created_at=now,
            expires=now + timedelta(seconds=TOKEN_TTL)))
    return access_url(url_base, token)


@dataclass(frozen=True)
class Connection:
    instance_uuid: str
    host: str
    port: int
    internal_access_path: str | None
    socket: str | None
    console_type: str


async def validate(st: ComputeState, token: str) -> Connection:
    """The connection a token grants, if it exists and has not expired.

    Raises: NotFound."""
    if not token:
        raise NotFound("Token not found")
    async with st.db.read() as s:
        row = await s.scalar(select(ConsoleAuthToken).where(
            ConsoleAuthToken.token_hash == hash_token(token),
            ConsoleAuthToken.expires > utcnow()))
    if row is None:
        raise NotFound("Token not found")
    return Connection(row.instance_uuid, row.host, row.port, row.internal_access_path,
                      row.socket, row.console_type)


class ProxyRefused(Exception):
    """Why the proxy cannot connect: the websocket's close reason and code
    (1008, policy violation, for a bad token; 1011 when there is nothing to
    connect to)."""

    def __init__(self, reason: str, code: int = 1011) -> None:
        super().__init__(reason)
        self.code = code


async def open_vnc(st: ComputeState, token: str
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the VNC server a token grants (the proxy's end).

    Raises: ProxyRefused."""
    try:
        conn = await validate(st, token)
    except NotFound:
        raise ProxyRefused("The token '***' is invalid or has expired", 1008) from None
    async with st.db.read() as s:
        inst = await s.scalar(select(Instance).where(Instance.uuid == conn.instance_uuid))
    if inst is None or inst.deleted:
        raise ProxyRefused(f"Instance {conn.instance_uuid} could not be found.")
    if inst.host != st.host:
        raise ProxyRefused(f"Instance {inst.uuid} is on compute host {inst.host}, not on "
                           f"this one ({st.host}): connect to that host's console proxy")
    if conn.socket is None:
        # the fake driver's guests (Nova's fake console is on a host that does
        # not exist), a qemu guest started before guests had a VNC server
        raise ProxyRefused(f"Instance {inst.uuid} has no VNC server to connect to "
                           f"(console host {conn.host}:{conn.port})")
    try:
        return await asyncio.wait_for(asyncio.open_unix_connection(conn.socket), 10.0)
    except (OSError, TimeoutError) as exc:
        raise ProxyRefused(f"The VNC server of instance {inst.uuid} is not running "
                           f"({exc.__class__.__name__})") from None
