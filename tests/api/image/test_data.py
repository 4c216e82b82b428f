"""Image data: upload and download, hashes, ranges, the status machine and the
failures that must leave nothing behind."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

from tests.api.image.conftest import Images


def stored_files(images: Images) -> list[Path]:
    root = images.cloud.settings.path("images")
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_upload_download_round_trip(images: Images) -> None:
    data = os.urandom(300_000)
    img = await images.create(name="r", disk_format="raw", container_format="bare")
    r = await images.upload(img["id"], data)
    assert r.status_code == 204, r.text
    shown = await images.show(img["id"])
    assert shown["status"] == "active"
    assert shown["size"] == len(data) == shown["virtual_size"]
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert shown["stores"] == "file"
    r = await images.req("GET", f"/images/{img['id']}/file")
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-md5"] == shown["checksum"]
    assert r.headers["content-type"] == "application/octet-stream"
    assert int(r.headers["content-length"]) == len(data)


async def test_chunked_upload(images: Images) -> None:
    parts = [os.urandom(10_000) for _ in range(7)]

    async def body() -> AsyncIterator[bytes]:
        for p in parts:
            yield p

    img = await images.create(disk_format="raw", container_format="bare")
    r = await images.req("PUT", f"/images/{img['id']}/file", content=body(),
                         headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    assert (await images.show(img["id"]))["size"] == 70_000


async def test_ranged_downloads(images: Images) -> None:
    data = bytes(range(256)) * 40
    img = await images.active(data)
    url = f"/images/{img['id']}/file"
    r = await images.req("GET", url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
    r = await images.req("GET", url, headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == data[-5:]
    r = await images.req("GET", url, headers={"Range": "bytes=10000-"})
    assert r.status_code == 206 and r.content == data[10000:]
    r = await images.req("GET", url, headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(data)}"


async def test_status_machine_and_conflicts(images: Images) -> None:
    img = await images.create()
    r = await images.req("GET", f"/images/{img['id']}/file")
    assert r.status_code == 204  # no data yet
    r = await images.upload(img["id"], b"abc")
    assert r.status_code == 400  # formats not set
    assert (await images.show(img["id"]))["status"] == "queued"
    await images.patch(img["id"], [{"op": "add", "path": "/disk_format", "value": "raw"},
                                   {"op": "add", "path": "/container_format", "value": "bare"}])
    assert (await images.upload(img["id"], b"abc")).status_code == 204
    r = await images.upload(img["id"], b"again")
    assert r.status_code == 409
    assert (await images.show(img["id"]))["size"] == 3
    r = await images.patch(img["id"], [{"op": "replace", "path": "/disk_format", "value": "qcow2"}])
    assert r.status_code == 403
    r = await images.req("PUT", f"/images/{img['id']}/file", content=b"x",
                         headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


async def test_deactivated_image_data_is_admin_only(images: Images) -> None:
    demo = images.cloud.demo_token
    img = await images.active(b"payload", token=demo)
    assert (await images.req("POST", f"/images/{img['id']}/actions/deactivate")).status_code == 204
    r = await images.req("GET", f"/images/{img['id']}/file", demo)
    assert r.status_code == 403
    r = await images.req("GET", f"/images/{img['id']}/file")
    assert r.status_code == 200 and r.content == b"payload"


async def test_disconnect_mid_upload_leaves_nothing(images: Images) -> None:
    img = await images.create(disk_format="raw", container_format="bare")

    class Gone(Exception):
        pass

    async def body() -> AsyncIterator[bytes]:
        yield b"a" * 100_000
        raise Gone("client went away")

    try:  # the in-process transport turns the failing body into an error response
        r = await images.req("PUT", f"/images/{img['id']}/file", content=body(),
                             headers={"Content-Type": "application/octet-stream"})
        assert r.status_code >= 400
    except Gone:
        pass
    shown = await images.show(img["id"])
    assert shown["status"] == "queued" and shown["size"] is None
    assert stored_files(images) == []
    # and it can be uploaded again
    assert (await images.upload(img["id"], b"fine")).status_code == 204


async def test_content_length_mismatch(images: Images) -> None:
    img = await images.create(disk_format="raw", container_format="bare")

    async def body() -> AsyncIterator[bytes]:
        yield b"12345"

    r = await images.req("PUT", f"/images/{img['id']}/file", content=body(),
                         headers={"Content-Type": "application/octet-stream", "Content-Length": "10"})
    assert r.status_code == 400
    assert (await images.show(img["id"]))["status"] == "queued"
    assert stored_files(images) == []


async def test_size_cap(images: Images) -> None:
    images.cloud.settings.image.image_size_cap = 1000
    img = await images.create(disk_format="raw", container_format="bare")
    r = await images.upload(img["id"], b"x" * 1001)
    assert r.status_code == 413
    assert (await images.show(img["id"]))["status"] == "queued"
    assert stored_files(images) == []
    assert (await images.upload(img["id"], b"x" * 1000)).status_code == 204


async def test_delete_removes_data(images: Images) -> None:
    img = await images.active(b"to be deleted")
    assert len(stored_files(images)) == 1
    assert (await images.req("DELETE", f"/images/{img['id']}")).status_code == 204
    st = images.cloud.app.state.runtime.extras["image"]
    for _ in range(400):  # 20 s: a loaded CI machine is slow
        if not stored_files(images):
            break
        st.jobs.wake()
        import asyncio

        await asyncio.sleep(0.05)
    assert stored_files(images) == []


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


async def test_qcow2_virtual_size_and_format_checks(images: Images, tmp_path: Path) -> None:
    disk = tmp_path / "d.qcow2"
    qemu_img("create", "-f", "qcow2", str(disk), "64M")
    data = disk.read_bytes()
    img = await images.create(disk_format="qcow2", container_format="bare")
    assert (await images.upload(img["id"], data)).status_code == 204
    shown = await images.show(img["id"])
    assert shown["virtual_size"] == 64 * 1024 * 1024
    assert shown["size"] == len(data)
    # qcow2 data declared raw, raw declared qcow2, qcow2 with a backing file
    base = tmp_path / "base.qcow2"
    qemu_img("create", "-f", "qcow2", str(base), "1M")
    child = tmp_path / "child.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(child))
    for declared, payload in [("raw", data), ("qcow2", b"\0" * 4096), ("qcow2", child.read_bytes())]:
        img = await images.create(disk_format=declared, container_format="bare")
        r = await images.upload(img["id"], payload)
        assert r.status_code == 400, (declared, r.text)
        assert (await images.show(img["id"]))["status"] == "queued"
    assert len(stored_files(images)) == 1


async def test_format_match_can_be_turned_off(images: Images, tmp_path: Path) -> None:
    images.cloud.settings.image.require_format_match = False
    img = await images.create(disk_format="qcow2", container_format="bare")
    assert (await images.upload(img["id"], os.urandom(4096))).status_code == 204
    assert (await images.show(img["id"]))["status"] == "active"
    # the safety rules stay: a backing file is refused all the same
    base = tmp_path / "base.qcow2"
    qemu_img("create", "-f", "qcow2", str(base), "1M")
    child = tmp_path / "child.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(child))
    img = await images.create(disk_format="qcow2", container_format="bare")
    assert (await images.upload(img["id"], child.read_bytes())).status_code == 400


async def test_checksum_mismatch(images: Images) -> None:
    import base64

    data = b"the real data"
    img = await images.create(disk_format="raw", container_format="bare")
    r = await images.upload(img["id"], data, **{"Content-MD5": hashlib.md5(b"other").hexdigest()})
    assert r.status_code == 400 and "Checksum" in r.text
    assert (await images.show(img["id"]))["status"] == "queued"
    assert stored_files(images) == []
    r = await images.upload(img["id"], data, **{"Content-MD5": "not a digest"})
    assert r.status_code == 400
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    assert (await images.upload(img["id"], data, **{"Content-MD5": good})).status_code == 204
