"""The base-image cache: the image fetched and checked (``qemu-img info``) once,
``cache_image`` ahead of the spawn, and a broken image failing the build through
the API (the build's early fetch)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from onestack.compute.drivers import qemu, testimage
from onestack.compute.drivers.base import DriverError
from onestack.compute.drivers.qemu import QemuDriver
from onestack.core.concurrency import run_command
from tests.api.compute.conftest import Compute
from tests.compute_qemu.test_api_boot import nova, settings  # noqa: F401  (fixtures)
from tests.compute_qemu.test_qemu_driver import spec

pytestmark = pytest.mark.slow


async def upload(c: Compute, disk: Path, disk_format: str) -> dict[str, Any]:
    h = {"X-Auth-Token": c.cloud.admin_token}
    r = await c.cloud.client.post("/image/v2/images", headers=h, json={
        "name": "unusable", "disk_format": disk_format, "container_format": "bare"})
    assert r.status_code == 201, r.text
    img: dict[str, Any] = r.json()
    r = await c.cloud.client.put(
        f"/image/v2/images/{img['id']}/file", content=disk.read_bytes(),
        headers={**h, "Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    return img


async def test_cache_image_fetches_and_checks_once(
        make_driver: Callable[..., QemuDriver], monkeypatch: pytest.MonkeyPatch) -> None:
    infos: list[str] = []

    async def counting(*argv: str, **kw: Any) -> tuple[int, str, str]:
        if argv[:2] == ("qemu-img", "info"):
            infos.append(argv[-1])
        return await run_command(*argv, **kw)

    monkeypatch.setattr(qemu, "run_command", counting)
    driver = make_driver(accel="tcg")
    await driver.cache_image({"id": "img-a"})
    await driver.cache_image({"id": "img-a"})
    assert driver.fetched == ["img-a"] and len(infos) == 1  # type: ignore[attr-defined]
    assert Path(infos[0]).name.startswith(".fetch-")  # checked before it is renamed in

    s = spec(image={"id": "img-a"}, root_gb=2)
    await driver.spawn(s)
    try:
        assert driver.fetched == ["img-a"] and len(infos) == 1
        _, out, _ = await run_command("qemu-img", "info", "-U", "--output=json",
                                      str(driver.guest_dir(s.uuid) / "disk"))
        assert json.loads(out)["virtual-size"] == 2 << 30  # grown to the flavor's disk
        assert driver.pid(s.uuid) is not None
    finally:
        await driver.destroy(s.uuid)

    # another driver object (OneStack restarted): the cached file is checked again, once
    again = make_driver(accel="tcg")
    await again.cache_image({"id": "img-a"})
    await again.cache_image({"id": "img-a"})
    assert again.fetched == ["img-a"] and len(infos) == 2

    async def bad_fetch(img: dict[str, Any], dest: Path) -> None:
        dest.write_bytes(b"QFI\xfb" + b"\xff" * 1020)

    bad = make_driver(accel="tcg", image_fetcher=bad_fetch)
    with pytest.raises(DriverError, match="not a disk image|unsupported format"):
        await bad.cache_image({"id": "broken"})
    assert sorted(p.name for p in bad.base_dir.iterdir()) == sorted(
        p.name for p in again.base_dir.iterdir())  # nothing new: no base, no temp file


async def test_an_unusable_image_fails_the_build(nova: Compute, tmp_path: Path,  # noqa: F811
                                                 image: testimage.TestImage) -> None:
    """A VDI disk: the image service takes it, the driver boots only qcow2 and raw."""
    vdi = tmp_path / "disk.vdi"
    code, _, err = await run_command("qemu-img", "create", "-q", "-f", "vdi", str(vdi), "1M")
    assert code == 0, err
    img = await upload(nova, vdi, disk_format="vdi")
    srv = await nova.boot(imageRef=img["id"], flavorRef="42")
    sid = srv["server"]["id"]
    got = await nova.wait(sid, "ERROR", timeout=60)
    assert "unsupported format vdi" in got["fault"]["message"], got["fault"]
    assert nova.state.driver.pid(sid) is None
    assert not nova.state.driver.guest_dir(sid).exists()
    base = nova.state.driver.base_dir
    assert not base.exists() or list(base.iterdir()) == []  # nothing kept, no temp file
