"""Remote consoles with the fake driver: ``POST /servers/{id}/remote-consoles``
(2.6+) and the pre-2.6 actions by microversion, Nova's errors for the console
types this cloud does not offer, ``os-console-auth-tokens`` for admins, token
expiry, the noVNC page, and the console proxy's websocket (through a real
uvicorn server and a real websocket client) refusing what it cannot proxy."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import uvicorn
from sqlalchemy import select, update
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from onestack.compute.api import consoles as api
from onestack.compute.models import ConsoleAuthToken, utcnow
from onestack.compute.service import consoles as svc
from onestack.core.app import RequestIdMiddleware
from tests.api.compute.conftest import Compute, fault
from tests.conftest import Cloud

VNC = {"remote_console": {"protocol": "vnc", "type": "novnc"}}


@contextlib.asynccontextmanager
async def serve(cloud: Cloud) -> AsyncIterator[str]:
    """The cloud's app (lifespan already run) behind a real uvicorn on a free
    port of 127.0.0.1, in this event loop: ``host:port``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(RequestIdMiddleware(cloud.app, access_log=False),
                                           lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _raw_upgrade(where: str, target: str) -> tuple[bytes, bytes]:
    """A websocket upgrade by hand, as Tempest's novnc test makes it; the
    response's head, and every byte after it until the server closes."""
    host, port = where.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write((f"GET {target} HTTP/1.1\r\nHost: {where}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n"
                  ).encode())
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def token_of(url: str) -> str:
    """The token in a novnc console URL (inside noVNC's ``path`` parameter)."""
    path = parse_qs(urlparse(url).query)["path"][0]
    return parse_qs(urlparse(path).query)["token"][0]


async def _server(nova: Compute, token: str | None = None) -> str:
    img = await nova.image()
    sid: str = (await nova.boot(token or nova.cloud.demo_token,
                                imageRef=img["id"]))["server"]["id"]
    await nova.wait(sid, "ACTIVE")
    return sid


async def _console(nova: Compute, sid: str, body: Any = None, token: str | None = None,
                   version: str = "2.6") -> Any:
    return await nova.req("POST", f"/servers/{sid}/remote-consoles", token, version=version,
                          json=VNC if body is None else body)


async def _action(nova: Compute, sid: str, body: Any, version: str = "2.1",
                  token: str | None = None) -> Any:
    return await nova.req("POST", f"/servers/{sid}/action", token, version=version, json=body)


async def test_remote_console_vnc(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    sid = await _server(nova)
    r = await _console(nova, sid, token=demo)
    assert r.status_code == 200, r.text
    body = r.json()["remote_console"]
    assert set(body) == {"protocol", "type", "url"}
    assert (body["protocol"], body["type"]) == ("vnc", "novnc")
    url = urlparse(body["url"])
    base = nova.cloud.settings.base_url
    assert body["url"].startswith(base + "/compute/vnc/vnc_lite.html?")
    path = parse_qs(url.query)["path"][0]
    token = token_of(body["url"])
    assert path == f"compute/vnc/websockify?token={token}"
    # the token is random, stored hashed, for this server, Nova's 600 s ahead
    async with nova.state.db.read() as s:
        rows = (await s.scalars(select(ConsoleAuthToken))).all()
    (row,) = rows
    assert row.token_hash == svc.hash_token(token) and token not in row.token_hash
    assert row.instance_uuid == sid and row.console_type == "novnc"
    assert row.expires - row.created_at == timedelta(seconds=600)
    again = token_of((await _console(nova, sid, token=demo)).json()["remote_console"]["url"])
    assert again != token
    # 2.8 and 2.99 take the same body
    for version in ("2.8", "2.99", "2.100"):
        r = await _console(nova, sid, version=version)
        assert r.status_code == 200, r.text
        assert r.json()["remote_console"]["protocol"] == "vnc"


async def test_pre_2_6_actions(nova: Compute) -> None:
    sid = await _server(nova)
    r = await _action(nova, sid, {"os-getVNCConsole": {"type": "novnc"}},
                      token=nova.cloud.demo_token)
    assert r.status_code == 200, r.text
    console = r.json()["console"]
    assert set(console) == {"type", "url"} and console["type"] == "novnc"
    assert "/compute/vnc/vnc_lite.html?path=" in console["url"]
    assert token_of(console["url"])
    r = await _action(nova, sid, {"os-getVNCConsole": {"type": "novnc"}}, version="2.5")
    assert r.status_code == 200, r.text
    # the actions end at 2.5, the resource starts at 2.6
    for name in ("os-getVNCConsole", "os-getSPICEConsole", "os-getSerialConsole",
                 "os-getRDPConsole"):
        r = await _action(nova, sid, {name: {"type": "novnc"}}, version="2.6")
        fault(r, "itemNotFound", 404)
    fault(await _console(nova, sid, version="2.5"), "itemNotFound", 404)
    # what Nova answers with SPICE and serial consoles switched off, RDP removed
    r = await _action(nova, sid, {"os-getSPICEConsole": {"type": "spice-html5"}})
    assert fault(r, "badRequest", 400) == "Unavailable console type spice-html5."
    r = await _action(nova, sid, {"os-getSerialConsole": {"type": "serial"}})
    assert fault(r, "badRequest", 400) == "Unavailable console type serial."
    r = await _action(nova, sid, {"os-getRDPConsole": {"type": "rdp-html5"}})
    fault(r, "badRequest", 400)
    r = await _action(nova, sid, {"os-getVNCConsole": {"type": "xvpvnc"}})
    assert fault(r, "badRequest", 400) == "Invalid console type xvpvnc"
    # the schemas
    for bad in ({}, {"type": "spice-html5"}, {"type": "novnc", "x": 1}, None):
        fault(await _action(nova, sid, {"os-getVNCConsole": bad}), "badRequest", 400)
    fault(await _action(nova, sid, {"os-getSPICEConsole": {"type": "novnc"}}),
          "badRequest", 400)
    async with nova.state.db.read() as s:
        assert len((await s.scalars(select(ConsoleAuthToken))).all()) == 2


async def test_unavailable_types_and_bad_bodies(nova: Compute) -> None:
    sid = await _server(nova)

    def body(protocol: str, kind: str) -> dict[str, Any]:
        return {"remote_console": {"protocol": protocol, "type": kind}}

    for (protocol, kind), message in {
        ("spice", "spice-html5"): "Unavailable console type spice-html5.",
        ("serial", "serial"): "Unavailable console type serial.",
        ("rdp", "rdp-html5"): "Unavailable console type rdp.",
        ("vnc", "xvpvnc"): "Invalid console type xvpvnc",
        ("vnc", "spice-html5"): "Invalid console type spice-html5",
    }.items():
        r = await _console(nova, sid, body(protocol, kind))
        assert fault(r, "badRequest", 400) == message, (protocol, kind)
    # mks/webmks from 2.8, spice-direct from 2.99: schema errors before
    r = await _console(nova, sid, body("mks", "webmks"))
    assert "is not one of" in fault(r, "badRequest", 400)
    r = await _console(nova, sid, body("mks", "webmks"), version="2.8")
    assert fault(r, "badRequest", 400) == "Unavailable console type webmks."
    fault(await _console(nova, sid, body("spice", "spice-direct"), version="2.98"),
          "badRequest", 400)
    r = await _console(nova, sid, body("spice", "spice-direct"), version="2.99")
    assert fault(r, "badRequest", 400) == "Unavailable console type spice-direct."
    for bad in ({}, {"remote_console": {"protocol": "vnc"}},
                {"remote_console": {"type": "novnc"}},
                {"remote_console": {"protocol": "vnc", "type": "novnc", "x": 1}},
                {"remote_console": {"protocol": "telnet", "type": "novnc"}},
                {"remote_console": {"protocol": 1, "type": "novnc"}},
                {"remote_console": "vnc"}, {"remote_console": VNC["remote_console"], "x": 1}):
        fault(await _console(nova, sid, bad), "badRequest", 400)
    # nothing was stored for any of them
    async with nova.state.db.read() as s:
        assert (await s.scalars(select(ConsoleAuthToken))).all() == []


async def test_not_found_unauthorized_forbidden_conflict(nova: Compute) -> None:
    sid = await _server(nova)
    fault(await _console(nova, "00000000-0000-0000-0000-000000000000"), "itemNotFound", 404)
    # another project's server does not exist for its members
    _, _, other = await nova.project_user("member")
    r = await _console(nova, sid, token=other)
    assert fault(r, "itemNotFound", 404) == f"Instance {sid} could not be found."
    fault(await _action(nova, sid, {"os-getVNCConsole": {"type": "novnc"}}, token=other),
          "itemNotFound", 404)
    # a reader of the project may not
    reader_token = await nova.demo_reader()
    r = await _console(nova, sid, token=reader_token)
    assert fault(r, "forbidden", 403) == (
        "Policy doesn't allow os_compute_api:os-remote-consoles to be performed.")
    r = await nova.cloud.client.post(f"/compute/v2.1/servers/{sid}/remote-consoles", json=VNC,
                                     headers={"OpenStack-API-Version": "compute 2.6"})
    assert r.status_code == 401, r.text
    # no host: Nova's InstanceNotReady
    nova.state.extras["shelved_offload_time"] = 0
    r = await _action(nova, sid, {"shelve": None}, token=nova.cloud.demo_token)
    assert r.status_code == 202, r.text
    await nova.wait(sid, "SHELVED_OFFLOADED")
    r = await _console(nova, sid)
    assert fault(r, "conflictingRequest", 409) == f"Instance {sid} is not ready"
    r = await _console(nova, sid, {"remote_console": {"protocol": "serial", "type": "serial"}})
    assert fault(r, "conflictingRequest", 409) == f"Instance {sid} is not ready"
    r = await _action(nova, sid, {"os-getVNCConsole": {"type": "novnc"}})
    fault(r, "conflictingRequest", 409)


async def test_console_auth_tokens(nova: Compute) -> None:
    sid = await _server(nova)
    url = (await _console(nova, sid, token=nova.cloud.demo_token)).json()["remote_console"]["url"]
    token = token_of(url)
    path = f"/os-console-auth-tokens/{token}"
    r = await nova.req("GET", path, version="2.31")
    assert r.status_code == 200, r.text
    assert r.json() == {"console": {"instance_uuid": sid, "host": "fakevncconsole.com",
                                    "port": 6969, "internal_access_path": None}}
    assert (await nova.req("GET", path, version="2.100")).status_code == 200
    # before 2.31: rdp-html5 only, which is gone
    fault(await nova.req("GET", path, version="2.30"), "badRequest", 400)
    fault(await nova.req("GET", path), "badRequest", 400)
    # admins only
    r = await nova.req("GET", path, nova.cloud.demo_token, version="2.31")
    assert fault(r, "forbidden", 403) == (
        "Policy doesn't allow os_compute_api:os-console-auth-tokens to be performed.")
    r = await nova.req("GET", "/os-console-auth-tokens/" + "0" * 36, version="2.31")
    assert fault(r, "itemNotFound", 404) == "Token not found"
    # 2.99: no query parameters
    fault(await nova.req("GET", path + "?x=1", version="2.99"), "badRequest", 400)
    assert (await nova.req("GET", path + "?x=1", version="2.98")).status_code == 200
    # expired: gone for the API (and removed when the next token is made)
    async with nova.state.db.write() as s:
        await s.execute(update(ConsoleAuthToken).values(
            expires=utcnow() - timedelta(seconds=1)))
    fault(await nova.req("GET", path, version="2.31"), "itemNotFound", 404)
    await _console(nova, sid)
    async with nova.state.db.read() as s:
        rows = (await s.scalars(select(ConsoleAuthToken))).all()
    assert [row.token_hash for row in rows] != [svc.hash_token(token)] and len(rows) == 1


async def test_proxy_refuses_fake_guests_and_bad_tokens(nova: Compute) -> None:
    sid = await _server(nova)
    url = (await _console(nova, sid)).json()["remote_console"]["url"]
    token = token_of(url)
    async with serve(nova.cloud) as where:
        # the fake driver's guest has no VNC server: accepted, then closed saying so
        async with connect(f"ws://{where}/compute/vnc/websockify?token={token}",
                           subprotocols=["binary"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "binary"
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1011
        assert "has no VNC server" in info.value.rcvd.reason
        # a bad token is refused before the upgrade: 403, no body, no frame (what
        # Tempest's test_novnc_bad_token reads after its hand-made handshake)
        for bad in ("nope", "", "0" * 36, "bad" + token):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"ws://{where}/compute/vnc/websockify?token={bad}"):
                    pass
            assert refused.value.response.status_code == 403
            assert refused.value.response.body in (b"", None)
            head, rest = await _raw_upgrade(where, f"/compute/vnc/websockify?token={bad}")
            assert head.startswith(b"HTTP/1.1 403 ") and rest == b"", (head, rest)
        # a page of another site may not use the proxy (cross-site websocket hijacking)
        async with connect(f"ws://{where}/compute/vnc/websockify?token={token}",
                           origin="http://evil.example") as ws:  # type: ignore[arg-type]
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        # a deleted server's token is refused too
        assert (await nova.req("DELETE", f"/servers/{sid}")).status_code == 204
        await nova.gone(sid)
        async with connect(f"ws://{where}/compute/vnc/websockify?token={token}") as ws:
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 10)
        assert info.value.rcvd is not None
        assert info.value.rcvd.reason == f"Instance {sid} could not be found."


async def test_novnc_page(nova: Compute, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                          ) -> None:
    client = nova.cloud.client
    monkeypatch.setattr(api, "NOVNC_DIR", tmp_path / "novnc")
    r = await client.get("/compute/vnc/vnc_lite.html")
    assert r.status_code == 503, r.text
    assert "install the Debian package novnc" in r.text
    (tmp_path / "novnc" / "core").mkdir(parents=True)
    (tmp_path / "novnc" / "vnc_lite.html").write_text("<html>noVNC</html>")
    (tmp_path / "novnc" / "core" / "rfb.js").write_text("export default class RFB {}")
    (tmp_path / "secret").write_text("not served")
    r = await client.get("/compute/vnc/vnc_lite.html")
    assert r.status_code == 200 and r.text == "<html>noVNC</html>"
    assert r.headers["content-type"].startswith("text/html")
    r = await client.get("/compute/vnc/core/rfb.js")
    assert r.status_code == 200 and "RFB" in r.text
    assert (await client.get("/compute/vnc/")).text == "<html>noVNC</html>"
    for bad in ("missing.html", "../secret", "core/../../secret", "core//rfb.js", "core"):
        r = await client.get("/compute/vnc/" + bad)
        assert r.status_code == 404, (bad, r.text)


@pytest.mark.skipif(not (api.NOVNC_DIR / api.PAGE).is_file(),
                    reason="Debian's novnc package is not installed (scripts/apt-packages.txt)")
async def test_novnc_package_page(nova: Compute) -> None:
    """The page a console URL names, from the installed package: it reads the
    websocket's path from its ``path`` parameter, as the URL expects."""
    sid = await _server(nova)
    url = (await _console(nova, sid)).json()["remote_console"]["url"]
    r = await nova.cloud.client.get(urlparse(url)._replace(scheme="", netloc="").geturl())
    assert r.status_code == 200, r.text
    assert "<title>noVNC</title>" in r.text and "readQueryVariable('path'" in r.text
    r = await nova.cloud.client.get("/compute/vnc/core/rfb.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
