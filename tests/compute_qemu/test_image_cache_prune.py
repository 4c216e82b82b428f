"""Pruning the base-image cache (Nova's image cache manager): real qcow2 overlays
made by the driver with qemu-img on small raw base files, no guest booted.

A base file some guest's overlay (``disk``, ``disk.rescue`` ...) is backed by is
kept whatever its age, and touched; an unused one goes once its last use is
``min_age`` old; a file being fetched, and a base a spawn is using before its
overlay exists, are left alone; a removed image is fetched again."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from onestack.compute.drivers import qemu
from onestack.compute.drivers.qemu import QemuDriver
from onestack.core import config
from onestack.core.concurrency import run_command
from tests.api.compute.conftest import Compute
from tests.compute_qemu.conftest import qemu_settings
from tests.compute_qemu.test_qemu_driver import spec
from tests.conftest import Cloud

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None,
                                reason="the image cache tests need qemu-img")

DAY = 86400.0
GUEST_A = "0b8a3c1e-6a51-4c1f-8f7e-3d2a1b0c9e01"
GUEST_B = "0b8a3c1e-6a51-4c1f-8f7e-3d2a1b0c9e02"


def make_driver(tmp_path: Path, fetch: Any = None) -> tuple[QemuDriver, list[str]]:
    """A driver whose fetcher writes a 1 MiB raw disk for any image id."""
    fetched: list[str] = []

    async def write_raw(image: dict[str, Any], dest: Path) -> None:
        fetched.append(image["id"])
        dest.write_bytes(b"\0" * (1 << 20))

    driver = QemuDriver(tmp_path / "instances", image_fetcher=fetch or write_raw,
                        accel="tcg", network="user", cache_dir=tmp_path / "cache")
    return driver, fetched


def age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


async def test_prune_removes_only_unused_bases_older_than_the_minimum(tmp_path: Path) -> None:
    driver, fetched = make_driver(tmp_path)
    info = {i: await driver._base_image({"id": i})
            for i in ("in-use", "rescue", "old", "young")}
    base = {i: b.path for i, b in info.items()}
    assert fetched == ["in-use", "rescue", "old", "young"]
    # two guests on "in-use"; the second is rescued on "rescue"
    for uuid in (GUEST_A, GUEST_B):
        (driver.dir / uuid).mkdir()
        await driver._make_overlay(driver.dir / uuid, info["in-use"], 1)
    await driver._make_overlay(driver.dir / GUEST_B, info["rescue"], 0, name="disk.rescue")
    assert qemu.qcow2_backing_file(driver.dir / GUEST_B / "disk.rescue") == str(base["rescue"])
    # other files a guest's directory has: a raw config drive, a log, a unix socket
    (driver.dir / GUEST_A / "disk.config").write_bytes(b"\0" * 4096)
    (driver.dir / GUEST_A / "console.log").write_text("QFI")
    sock = socket.socket(socket.AF_UNIX)
    short = tempfile.mkdtemp()  # the guest's path is too long for a socket's
    sock.bind(f"{short}/s")
    os.rename(f"{short}/s", driver.dir / GUEST_A / "qmp.sock")
    os.rmdir(short)
    # a download under way (or left by a crash): never the prune's
    fetching = driver.base_dir / ".fetch-k2j3h4"
    fetching.write_bytes(b"\0" * 512)
    for f in (base["in-use"], base["rescue"], base["old"], fetching):
        age(f, 2 * DAY)
    age(base["young"], 3600)

    try:
        removed = await driver.prune_base_images(DAY)
    finally:
        sock.close()
    assert removed == [base["old"]]
    assert names(driver.base_dir) == sorted(
        [base["in-use"].name, base["rescue"].name, base["young"].name, fetching.name])
    assert base["old"] not in driver._base_info and base["in-use"] in driver._base_info
    # found in use: touched, their age starts again; the others were not
    for i in ("in-use", "rescue"):
        assert time.time() - base[i].stat().st_mtime < 60
    assert time.time() - base["young"].stat().st_mtime > 3000
    assert time.time() - fetching.stat().st_mtime > DAY

    # unrescued: "rescue" is unused from now on, but it was used (seen) just now
    (driver.dir / GUEST_B / "disk.rescue").unlink()
    assert await driver.prune_base_images(DAY) == []
    # a day later every unused base goes; the guests' one stays, whatever its mtime
    removed = await driver.prune_base_images(DAY, now=time.time() + DAY + 60)
    assert sorted(removed) == sorted([base["rescue"], base["young"]])
    assert names(driver.base_dir) == sorted([base["in-use"].name, fetching.name])
    code, _, err = await run_command("qemu-img", "info", "--backing-chain",
                                     str(driver.dir / GUEST_A / "disk"))
    assert code == 0, err

    # a removed image is fetched (and checked) again when next used
    fetched.clear()
    await driver.cache_image({"id": "old"})
    again = await driver._base_image({"id": "young"})
    assert fetched == ["old", "young"]
    assert base["old"].is_file() and again.path == base["young"] and again.format == "raw"
    # every use of a cached base (here: found in this driver's memory) is its last use
    age(base["old"], 2 * DAY)
    await driver.cache_image({"id": "old"})
    assert fetched == ["old", "young"]
    assert await driver.prune_base_images(DAY) == []
    assert base["old"].is_file()


async def test_prune_spares_a_base_being_fetched_or_used_by_a_spawn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """min_age 0: only the pins and the file names keep these files."""
    release_fetch = asyncio.Event()
    temp: list[Path] = []

    async def slow_fetch(image: dict[str, Any], dest: Path) -> None:
        dest.write_bytes(b"\0" * (1 << 20))
        temp.append(dest)
        await release_fetch.wait()

    driver, _ = make_driver(tmp_path, fetch=slow_fetch)
    s = spec(GUEST_A, image={"id": "img"}, root_gb=0)
    base = driver._base_path(s.image)

    # being fetched: the temp file is left alone
    prepare = asyncio.create_task(driver._prepare(s))
    while not temp:
        await asyncio.sleep(0.01)
    assert await driver.prune_base_images(0) == []
    assert temp[0].exists()

    # fetched, not yet an overlay on it: pinned, kept
    at_create, release_create = asyncio.Event(), asyncio.Event()

    async def slow_command(*argv: str, **kw: Any) -> tuple[int, str, str]:
        if argv[:2] == ("qemu-img", "create"):
            at_create.set()
            await release_create.wait()
        return await run_command(*argv, **kw)

    monkeypatch.setattr(qemu, "run_command", slow_command)
    release_fetch.set()
    await at_create.wait()
    assert base.is_file() and not temp[0].exists()
    assert await driver.prune_base_images(0) == []
    assert base.is_file()
    release_create.set()
    await prepare
    assert await driver.prune_base_images(0) == []  # the guest's disk is on it
    assert base.is_file()

    # a guest made on it while a prune read the guests' directories (after the
    # prune saw who pinned what, before it took the base's lock): kept
    shutil.rmtree(driver.guest_dir(GUEST_A))
    scanning, scanned = asyncio.Event(), threading.Event()
    loop = asyncio.get_running_loop()
    scan = driver._scan_bases

    def slow_scan() -> tuple[dict[Path, str], set[str]]:
        found = scan()
        loop.call_soon_threadsafe(scanning.set)
        scanned.wait(30)
        return found

    monkeypatch.setattr(driver, "_scan_bases", slow_scan)
    pruning = asyncio.create_task(driver.prune_base_images(0))
    await scanning.wait()
    other = spec(GUEST_B, image={"id": "img"}, root_gb=0)
    await driver._prepare(other)
    await driver.destroy(other.uuid)  # gone again before the prune decides
    scanned.set()
    assert await pruning == []
    assert base.is_file()
    # the next prune sees no guest on it
    monkeypatch.setattr(driver, "_scan_bases", scan)
    assert await driver.prune_base_images(0) == [base]
    assert not base.exists() and base not in driver._base_info


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, request: pytest.FixtureRequest
             ) -> config.Settings:
    """The qemu driver; ``image_cache_manager_interval`` the test's parameter."""
    return qemu_settings(tmp_path, database_url,
                         image_cache_manager_interval=getattr(request, "param", 1),
                         remove_unused_original_minimum_age_seconds=3600)


def manager_runs() -> bool:
    return any(t.get_name() == "image-cache-manager" for t in asyncio.all_tasks())


@pytest.mark.parametrize("settings", [1], indirect=True)
async def test_the_compute_service_prunes_periodically(cloud: Cloud) -> None:
    """Every ``image_cache_manager_interval`` seconds: the unused base older than
    ``remove_unused_original_minimum_age_seconds`` goes, the younger one stays."""
    driver = Compute(cloud).state.driver
    assert isinstance(driver, QemuDriver) and manager_runs()
    driver.base_dir.mkdir(parents=True, exist_ok=True)
    old, young = driver.base_dir / ("a" * 40), driver.base_dir / ("b" * 40)
    for f in (old, young):
        f.write_bytes(b"\0" * 512)
    age(old, 7200)
    age(young, 1800)
    deadline = time.monotonic() + 20
    while old.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not old.exists(), "the compute service did not prune within 20 s"
    assert young.exists()


@pytest.mark.parametrize("settings", [-1], indirect=True)
async def test_a_negative_interval_disables_the_manager(cloud: Cloud) -> None:
    driver = Compute(cloud).state.driver
    assert isinstance(driver, QemuDriver) and not manager_runs()
    fields = config.ComputeSettings.model_fields  # Nova's defaults
    assert fields["image_cache_manager_interval"].default == 2400
    assert fields["remove_unused_original_minimum_age_seconds"].default == 86400
