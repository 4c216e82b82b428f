"""The whole path with the qemu driver: the test image uploaded to the image
service, `POST /servers` through the compute API, a real guest under QEMU (TCG,
user-mode networking: this test does not use the networking data plane), its
console log through os-getConsoleOutput, stop/start, and delete leaving no
process behind."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from onestack.compute.drivers import testimage
from onestack.core import config
from tests.api.compute.conftest import Compute
from tests.compute_qemu.conftest import qemu_settings
from tests.conftest import Cloud

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, image: testimage.TestImage
             ) -> config.Settings:
    return qemu_settings(tmp_path, database_url)


@pytest.fixture
async def nova(cloud: Cloud) -> AsyncIterator[Compute]:
    c = Compute(cloud)
    yield c
    # never leave a guest running, whatever the test did
    driver = c.state.driver
    for pidfile in Path(driver.dir).glob("*/qemu.pid"):
        try:
            os.kill(int(pidfile.read_text()), 9)
        except (ValueError, ProcessLookupError):
            pass


async def console(nova: Compute, server_id: str, marker: str, timeout: float = 60) -> str:
    async with asyncio.timeout(timeout):
        while True:
            r = await nova.req("POST", f"/servers/{server_id}/action",
                               json={"os-getConsoleOutput": {}})
            assert r.status_code == 200, r.text
            out: str = r.json()["output"]
            if marker in out:
                return out
            await asyncio.sleep(0.25)


async def upload(nova: Compute, disk: Path) -> dict[str, Any]:
    h = {"X-Auth-Token": nova.cloud.admin_token}
    r = await nova.cloud.client.post("/image/v2/images", headers=h, json={
        "name": "onestack-test", "disk_format": "qcow2", "container_format": "bare",
        "visibility": "public"})
    assert r.status_code == 201, r.text
    img = r.json()
    r = await nova.cloud.client.put(
        f"/image/v2/images/{img['id']}/file", content=disk.read_bytes(),
        headers={**h, "Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    return img  # type: ignore[no-any-return]


async def test_boot_console_stop_start_delete(nova: Compute,
                                              image: testimage.TestImage) -> None:
    img = await upload(nova, image.disk)
    srv = await nova.boot(imageRef=img["id"], flavorRef="42")
    sid = srv["server"]["id"]
    active = await nova.wait(sid, "ACTIVE", timeout=60)
    assert active["OS-EXT-STS:power_state"] == 1
    out = await console(nova, sid, testimage.READY)
    assert testimage.BOOTED in out and f"{testimage.MARKER} metadata {sid}" in out

    driver = nova.state.driver
    pid = driver.pid(sid)
    assert pid is not None

    r = await nova.req("POST", f"/servers/{sid}/action", json={"os-stop": None})
    assert r.status_code == 202, r.text
    stopped = await nova.wait(sid, "SHUTOFF", timeout=30)
    assert stopped["OS-EXT-STS:power_state"] == 4 and driver.pid(sid) is None

    r = await nova.req("POST", f"/servers/{sid}/action", json={"os-start": None})
    assert r.status_code == 202, r.text
    await nova.wait(sid, "ACTIVE", timeout=30)
    assert driver.pid(sid) is not None

    r = await nova.req("DELETE", f"/servers/{sid}")
    assert r.status_code == 204, r.text
    await nova.gone(sid, timeout=30)
    assert driver.pid(sid) is None and not driver.guest_dir(sid).exists()
