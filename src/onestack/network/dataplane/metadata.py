"""The metadata service inside a DHCP namespace, served by this process.

``169.254.169.254/32`` sits on the namespace's ``ns-`` device and DHCP gives VMs a
classless route to it via the DHCP port. The listening socket is made by a thread
that entered the namespace (a socket stays in the namespace it was created in), then
served by asyncio in the host's event loop: a small HTTP/1.1 server that hands each
request, with the network and the VM's address, to the ``metadata`` callable (which
proxies to compute) and writes back its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from http import HTTPStatus

from onestack.core.concurrency import run_blocking
from onestack.network.dataplane import netns
from onestack.network.dataplane.base import MetadataHandler
from onestack.network.dataplane.model import METADATA_IP

log = logging.getLogger(__name__)

IP_FREEBIND = 15
MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
IDLE_TIMEOUT = 30.0
HANDLER_TIMEOUT = 60.0


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)  # before the address is up
        sock.bind((METADATA_IP, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class MetadataServer:
    """One network's metadata listener in namespace ``ns``."""

    def __init__(self, network_id: str, ns: str, handler: MetadataHandler) -> None:
        self.network_id = network_id
        self.ns = ns
        self.ns_identity: tuple[int, int] | None = None
        self._handler = handler
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 80) -> None:
        """Raises: OSError (the namespace is gone, the port is taken)."""
        self.ns_identity = netns.ns_identity(self.ns)
        sock = await run_blocking(netns.run_in_netns, self.ns, _listen, port)
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=MAX_HEAD)

    def current(self) -> bool:
        """Still listening in the namespace that has the name now."""
        return self._server is not None and self.ns_identity == netns.ns_identity(self.ns)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = peer[0] if peer else ""
        try:
            while await self._one(reader, writer, source):
                pass
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError,
                asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   source: str) -> bool:
        """Answer one request; True to keep the connection for another."""
        try:
            async with asyncio.timeout(IDLE_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                await _write(writer, 400, {}, b"bad request\n", close=True)
            return False
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            await _write(writer, 400, {}, b"bad request\n", close=True)
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            await _write(writer, 411, {}, b"length required\n", close=True)
            return False
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY or length < 0:
            await _write(writer, 413, {}, b"too large\n", close=True)
            return False
        body = b""
        if length:
            async with asyncio.timeout(IDLE_TIMEOUT):
                body = await reader.readexactly(length)
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        try:
            async with asyncio.timeout(HANDLER_TIMEOUT):
                status, out_headers, out = await self._handler(
                    self.network_id, source, method, target, headers, body)
        except Exception:
            log.exception("metadata request %s %s from %s failed", method, target, source)
            status, out_headers, out = 500, {}, b"metadata service error\n"
        await _write(writer, status, out_headers, b"" if method == "HEAD" else out,
                     close=not keep, length=len(out))
        return keep


async def _write(writer: asyncio.StreamWriter, status: int, headers: dict[str, str],
                 body: bytes, *, close: bool, length: int | None = None) -> None:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    skip = {"content-length", "connection", "transfer-encoding"}
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in skip]
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines.append("Connection: close" if close else "Connection: keep-alive")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
