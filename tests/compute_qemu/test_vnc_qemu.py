"""The VNC console of a real guest: a TCG guest booted through the compute API,
its console URL from ``POST /servers/{id}/remote-consoles``, and the websocket
of that URL (a real uvicorn server, the ``websockets`` client) carrying the RFB
conversation with QEMU's VNC server both ways: the version handshake, the
security handshake and the server's init with the guest's name. A bad token is
refused before the upgrade (403); a stopped guest's console is closed with the
reason."""

from __future__ import annotations

import asyncio
import struct
from urllib.parse import parse_qs, urlparse

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from onestack.compute.drivers import testimage
from tests.api.compute.conftest import Compute
from tests.api.compute.test_remote_consoles import serve, token_of
from tests.compute_qemu.test_api_boot import nova, settings, upload  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


class Stream:
    """Bytes from websocket messages, however QEMU and the proxy cut them."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws, self.buf = ws, b""

    async def read(self, n: int) -> bytes:
        async with asyncio.timeout(30):
            while len(self.buf) < n:
                msg = await self.ws.recv()
                assert isinstance(msg, bytes), msg
                self.buf += msg
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


async def test_vnc_console_through_the_proxy(nova: Compute,  # noqa: F811
                                             image: testimage.TestImage) -> None:
    img = await upload(nova, image.disk)
    sid = (await nova.boot(imageRef=img["id"], flavorRef="42"))["server"]["id"]
    await nova.wait(sid, "ACTIVE", timeout=60)
    r = await nova.req("POST", f"/servers/{sid}/remote-consoles", version="2.6",
                       json={"remote_console": {"protocol": "vnc", "type": "novnc"}})
    assert r.status_code == 200, r.text
    url = r.json()["remote_console"]["url"]
    token = token_of(url)
    path = parse_qs(urlparse(url).query)["path"][0]
    assert path.startswith("compute/vnc/websockify?token=")
    r = await nova.req("GET", f"/os-console-auth-tokens/{token}", version="2.31")
    assert r.status_code == 200, r.text
    assert r.json()["console"]["instance_uuid"] == sid
    assert r.json()["console"]["host"] == nova.state.host

    async with serve(nova.cloud) as where:
        # noVNC's request: the path of the URL, the binary subprotocol
        async with connect(f"ws://{where}/{path}",
                           subprotocols=["binary"]) as ws:  # type: ignore[list-item]
            rfb = Stream(ws)
            version = await rfb.read(12)
            assert version in (b"RFB 003.008\n", b"RFB 003.007\n", b"RFB 003.003\n"), version
            await ws.send(b"RFB 003.008\n")
            (count,) = struct.unpack("!B", await rfb.read(1))
            types = await rfb.read(count)
            assert 1 in types  # None: QEMU's VNC server without a password
            await ws.send(b"\x01")
            assert await rfb.read(4) == b"\x00\x00\x00\x00"  # SecurityResult OK
            await ws.send(b"\x01")  # ClientInit, shared
            width, height = struct.unpack("!HH", await rfb.read(4))
            assert width > 0 and height > 0
            await rfb.read(16)  # pixel format
            (length,) = struct.unpack("!I", await rfb.read(4))
            name = (await rfb.read(length)).decode()
            assert name.startswith("QEMU") and "instance-" in name, name

        with pytest.raises(InvalidStatus) as refused:  # before the upgrade
            async with connect(f"ws://{where}/compute/vnc/websockify?token=x{token}"):
                pass
        assert refused.value.response.status_code == 403

        # a stopped guest has no VNC server running: refused, saying so
        r = await nova.req("POST", f"/servers/{sid}/action", json={"os-stop": None})
        assert r.status_code == 202, r.text
        await nova.wait(sid, "SHUTOFF", timeout=30)
        async with connect(f"ws://{where}/{path}") as ws:
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1011
        assert "is not running" in info.value.rcvd.reason

    r = await nova.req("DELETE", f"/servers/{sid}")
    assert r.status_code == 204, r.text
    await nova.gone(sid, timeout=30)
