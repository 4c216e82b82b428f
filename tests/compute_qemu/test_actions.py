"""Server actions with the qemu driver through the compute API (TCG, user-mode
networking): one guest is suspended and resumed (QMP), snapshotted with
createImage (``qemu-img convert`` of its overlay, uploaded to the image
service), resized in place (bigger overlay, restarted with more memory) and
confirmed, rescued and unrescued, then deleted."""

from __future__ import annotations

import json
from pathlib import Path

from onestack.compute.drivers import testimage
from onestack.core.concurrency import run_command
from tests.api.compute.conftest import Compute
from tests.compute_qemu.test_api_boot import console, nova, settings, upload

__all__ = ["nova", "settings"]  # the fixtures of test_api_boot, used here too


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


async def _info(path: Path) -> dict[str, object]:
    code, out, err = await run_command("qemu-img", "info", "-U", "--output=json", str(path))
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


async def test_suspend_snapshot_resize_confirm(nova: Compute, image: testimage.TestImage,
                                               tmp_path: Path) -> None:
    img = await upload(nova, image.disk)
    bigger = await nova.flavor(ram=192, vcpus=1, disk=2)
    srv = await nova.boot(imageRef=img["id"], flavorRef="42")
    sid = srv["server"]["id"]
    await nova.wait(sid, "ACTIVE", timeout=60)
    await console(nova, sid, testimage.READY)
    driver = nova.state.driver

    async def act(body: dict[str, object], code: int = 202) -> None:
        r = await nova.req("POST", f"/servers/{sid}/action", json=body)
        assert r.status_code == code, r.text

    await act({"suspend": None})
    suspended = await nova.wait(sid, "SUSPENDED", timeout=30)
    assert suspended["OS-EXT-STS:power_state"] == 7
    # a managed save: QEMU has ended, the guest's memory is in its directory
    assert driver.pid(sid) is None and (driver.guest_dir(sid) / "memory.save").exists()
    await act({"resume": None})
    assert (await nova.wait(sid, "ACTIVE", timeout=30))["OS-EXT-STS:power_state"] == 1

    r = await nova.req("POST", f"/servers/{sid}/action", version="2.45",
                       json={"createImage": {"name": "qemu-snap"}})
    assert r.status_code == 202, r.text
    image_id = r.json()["image_id"]
    await nova.wait(sid, "ACTIVE", timeout=60)
    h = {"X-Auth-Token": nova.cloud.admin_token}
    r = await nova.cloud.client.get(f"/image/v2/images/{image_id}", headers=h)
    snap = r.json()
    assert (snap["status"], snap["disk_format"]) == ("active", "qcow2")
    r = await nova.cloud.client.get(f"/image/v2/images/{image_id}/file", headers=h)
    (tmp_path / "snap").write_bytes(r.content)
    info = await _info(tmp_path / "snap")
    assert info["format"] == "qcow2" and "backing-filename" not in info

    await act({"resize": {"flavorRef": bigger["id"]}})
    await nova.wait(sid, "VERIFY_RESIZE", timeout=90)
    pid = driver.pid(sid)
    assert pid is not None
    argv = _cmdline(pid)
    assert argv[argv.index("-m") + 1] == "192"
    gdir = driver.guest_dir(sid)
    assert (gdir / "disk.pre-resize").exists()
    assert (await _info(gdir / "disk"))["virtual-size"] == 2 << 30
    await act({"confirmResize": None}, 204)
    await nova.wait(sid, "ACTIVE", timeout=30)
    assert not (gdir / "disk.pre-resize").exists()

    # rescue boots an overlay of the image with the guest's disk second; unrescue undoes it
    r = await nova.req("POST", f"/servers/{sid}/action", json={"rescue": None})
    assert r.status_code == 200 and r.json()["adminPass"], r.text
    await nova.wait(sid, "RESCUE", timeout=60)
    pid = driver.pid(sid)
    assert pid is not None
    drives = [a for a in _cmdline(pid) if a.startswith("file=")]
    assert drives[0].startswith(f"file={gdir / 'disk.rescue'},")
    assert drives[1].startswith(f"file={gdir / 'disk'},")
    await act({"unrescue": None})
    await nova.wait(sid, "ACTIVE", timeout=60)
    pid = driver.pid(sid)
    assert pid is not None and not any("disk.rescue" in a for a in _cmdline(pid))
    assert not (gdir / "disk.rescue").exists()

    r = await nova.req("DELETE", f"/servers/{sid}")
    assert r.status_code == 204, r.text
    await nova.gone(sid, timeout=30)
    assert driver.pid(sid) is None and not gdir.exists()
