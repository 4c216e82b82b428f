"""Guests come back after a host reboot (Nova's ``resume_guests_state_on_host_boot``),
with real QEMU guests and the whole cloud in-process: OneStack restarting alone
adopts the running guests (no second boot); a "host reboot" (the cloud stopped,
every QEMU process killed with SIGKILL, so the pidfiles are stale) brings an
ACTIVE server's guest up again at the next start, while a stopped one stays
stopped. The guests also read their config drive (the service's ISO)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from onestack.compute.drivers import testimage
from onestack.core import config
from tests.api.compute.conftest import Compute
from tests.compute_qemu.conftest import qemu_settings
from tests.compute_qemu.test_api_boot import console, upload
from tests.conftest import running_cloud

pytestmark = pytest.mark.slow
M = testimage.MARKER


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, image: testimage.TestImage
             ) -> config.Settings:
    return qemu_settings(tmp_path, database_url)


@contextlib.asynccontextmanager
async def running(settings: config.Settings) -> AsyncIterator[Compute]:
    """One life of the cloud on the settings' data dir (as the ``cloud`` fixture)."""
    async with running_cloud(settings) as c:
        yield Compute(c)


def kill_guests(instances: Path) -> list[int]:
    """SIGKILL every guest's QEMU (what a host reboot does to them); their pids."""
    pids = []
    for pidfile in instances.glob("*/qemu.pid"):
        try:
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGKILL)
            pids.append(pid)
        except (ValueError, ProcessLookupError):
            pass
    return pids


async def console_twice(nova: Compute, server_id: str, marker: str,
                        timeout: float = 90) -> str:
    """The console once ``marker`` is in it twice (a second boot's)."""
    async with asyncio.timeout(timeout):
        while True:
            out = await console(nova, server_id, marker)
            if out.count(marker) >= 2:
                return out
            await asyncio.sleep(0.5)


async def test_guests_come_back_after_a_host_reboot(settings: config.Settings,
                                                    image: testimage.TestImage) -> None:
    instances = settings.path("compute", "instances")
    try:
        async with running(settings) as nova:
            img = await upload(nova, image.disk)
            sid = (await nova.boot(imageRef=img["id"], flavorRef="42"))["server"]["id"]
            off = (await nova.boot(imageRef=img["id"], flavorRef="42"))["server"]["id"]
            await nova.wait(sid, "ACTIVE", timeout=90)
            await nova.wait(off, "ACTIVE", timeout=90)
            out = await console(nova, sid, testimage.READY, timeout=90)
            # slirp has no metadata service: the guest read the service's ISO
            assert f"{M} config-drive iso9660 network_data=" in out
            assert f"{M} metadata {sid} (config drive)" in out
            r = await nova.req("POST", f"/servers/{off}/action", json={"os-stop": None})
            assert r.status_code == 202, r.text
            await nova.wait(off, "SHUTOFF", timeout=30)
            driver = nova.state.driver
            pid = driver.pid(sid)
            assert pid is not None and driver.pid(off) is None

        # OneStack restarts alone: the guest keeps running and is adopted, not
        # started a second time
        async with running(settings) as nova:
            driver = nova.state.driver
            assert driver.pid(sid) == pid
            srv = await nova.wait(sid, "ACTIVE")
            assert srv["OS-EXT-STS:power_state"] == 1
            out = await console(nova, sid, testimage.READY)
            assert out.count(testimage.BOOTED) == 1
            assert driver.pid(off) is None

        # the host reboots: the cloud is down and QEMU is killed
        assert kill_guests(instances) == [pid]
        assert (instances / sid / "qemu.pid").exists()  # stale, as after a reboot

        async with running(settings) as nova:
            driver = nova.state.driver
            new_pid = driver.pid(sid)  # started during the service's start-up
            assert new_pid is not None and new_pid != pid
            srv = await nova.wait(sid, "ACTIVE")
            assert srv["OS-EXT-STS:power_state"] == 1
            out = await console_twice(nova, sid, testimage.READY)
            assert out.count(testimage.BOOTED) == 2  # booted again on the same disk
            assert out.count(f"{M} metadata {sid} (config drive)") == 2
            # the stopped server stays stopped
            srv = await nova.wait(off, "SHUTOFF")
            assert srv["OS-EXT-STS:power_state"] == 4 and driver.pid(off) is None
    finally:
        kill_guests(instances)
