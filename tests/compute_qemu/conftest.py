"""Fixtures for the QEMU driver's tests: the test image (built once per session
from this machine's kernel and busybox) and drivers whose guests are always
killed at the end.

Everything here boots real guests under TCG (a few seconds each); the tests
skip with the reason when QEMU, a kernel or the image tools are missing."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from onestack.compute.drivers import testimage
from onestack.compute.drivers.qemu import QEMU, QemuDriver
from onestack.core import config

TOOLS = (QEMU, "qemu-img", "mcopy", "mmd", "syslinux")


def missing_tools() -> list[str]:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if shutil.which("mkfs.fat") is None and not Path("/usr/sbin/mkfs.fat").exists():
        missing.append("mkfs.fat")
    return missing


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> testimage.TestImage:
    missing = missing_tools()
    if missing:
        pytest.skip(f"QEMU tests need {', '.join(missing)} (scripts/apt-packages.txt)")
    cache = os.environ.get("ONESTACK_TEST_IMAGE_CACHE")
    try:
        return testimage.build(Path(cache) if cache else tmp_path_factory.mktemp("testimage"))
    except testimage.BuildError as exc:
        pytest.skip(f"cannot build the QEMU test image: {exc}")


@pytest.fixture
async def make_driver(image: testimage.TestImage, tmp_path: Path
                      ) -> AsyncIterator[Callable[..., QemuDriver]]:
    """``make_driver(**options)``: a QemuDriver on this test's instances directory
    whose image fetcher copies the test image (any image id). Every guest still
    running at the end is killed."""
    instances = tmp_path / "instances"
    fetched: list[str] = []

    async def fetch(img: dict[str, Any], dest: Path) -> None:
        fetched.append(img["id"])
        shutil.copyfile(image.disk, dest)

    def make(**options: Any) -> QemuDriver:
        options.setdefault("image_fetcher", fetch)
        options.setdefault("network", "user")
        options.setdefault("shutdown_timeout", 10.0)
        options.setdefault("cache_dir", image.directory.parent)
        driver = QemuDriver(instances, **options)
        driver.fetched = fetched  # type: ignore[attr-defined]
        return driver

    yield make
    for pidfile in instances.glob("*/qemu.pid"):
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def qemu_settings(tmp_path: Path, database_url: str | None,
                  network: dict[str, Any] | None = None, **compute: Any) -> config.Settings:
    """An in-process cloud's settings with the qemu driver under TCG (user-mode
    networking and no data plane unless ``network`` says otherwise), without the
    starter image (tests upload the test image themselves)."""
    return config.load(
        tmp_path / "data", environ={}, database_url=database_url, port=8780,
        access_log=False,
        identity={"password_time_cost": 1, "password_memory_cost_kib": 1024},
        network=network or {"dataplane": "fake"},
        compute={"compute_driver": "qemu", "qemu_accel": "tcg", "qemu_network": "user",
                 "shutdown_timeout": 10.0, "starter_image": "", **compute},
    )
