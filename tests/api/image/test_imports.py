"""Interoperable import: stage + glance-direct, web-download from an allowed
URL, copy-image between stores, the tasks that report on them, and the legacy
tasks API."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.core import config
from tests.api.image.conftest import Images


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> config.Settings:
    # two filesystem stores, and web-download allowed from this machine only
    return config.load(
        tmp_path / "data", environ={}, database_url=database_url, port=8780, access_log=False,
        identity={"password_time_cost": 1, "password_memory_cost_kib": 1024},
        image={"file_stores": ["file", "fast"], "web_download_allowed_hosts": ["127.0.0.1"]},
        compute={"compute_driver": "fake"},  # no guests
        network={"dataplane": "fake"},  # no kernel objects
    )


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server serving ``tmp_path/www``."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


async def wait_status(images: Images, image_id: str, wanted: set[str], timeout: float = 20) -> dict[str, Any]:
    st = images.cloud.app.state.runtime.extras["image"]
    for _ in range(int(timeout / 0.05)):
        img = await images.show(image_id)
        if img["status"] in wanted and not img.get("os_glance_import_task"):
            return img
        st.jobs.wake()
        await asyncio.sleep(0.05)
    raise AssertionError(f"image {image_id} stayed {img['status']}: {img}")


async def test_stage_and_glance_direct(images: Images) -> None:
    data = os.urandom(50_000)
    img = await images.create(disk_format="raw", container_format="bare")
    r = await images.req("PUT", f"/images/{img['id']}/stage", content=data,
                         headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    assert (await images.show(img["id"]))["status"] == "uploading"
    r = await images.req("POST", f"/images/{img['id']}/import",
                         json={"method": {"name": "glance-direct"}, "all_stores": True})
    assert r.status_code == 202, r.text
    request_id = r.headers["x-openstack-request-id"]
    out = await wait_status(images, img["id"], {"active"})
    assert out["checksum"] == hashlib.md5(data).hexdigest()
    assert set(out["stores"].split(",")) == {"file", "fast"}
    assert out["os_glance_importing_to_stores"] == "" and out["os_glance_failed_import"] == ""
    r = await images.req("GET", f"/images/{img['id']}/file")
    assert r.content == data
    tasks = (await images.req("GET", f"/images/{img['id']}/tasks")).json()["tasks"]
    assert len(tasks) == 1
    assert tasks[0]["status"] == "success" and tasks[0]["request_id"] == request_id
    assert tasks[0]["input"]["import_req"]["method"]["name"] == "glance-direct"
    staging = images.cloud.settings.path("image-staging")
    assert not any(staging.iterdir())


async def test_import_refusals(images: Images) -> None:
    img = await images.create(disk_format="raw", container_format="bare")
    url = f"/images/{img['id']}/import"
    for body, status in [
        ({"method": {"name": "glance-direct"}}, 409),  # nothing staged
        ({"method": {"name": "teleport"}}, 400),
        ({}, 400),
        ({"method": {"name": "web-download"}}, 400),  # no uri
        ({"method": {"name": "web-download", "uri": "http://example.com/x.img"}}, 400),
        ({"method": {"name": "web-download", "uri": "file:///etc/passwd"}}, 400),
        ({"method": {"name": "glance-direct"}, "stores": ["nowhere"]}, 400),
        ({"method": {"name": "glance-direct"}, "stores": ["file"], "all_stores": True}, 400),
        ({"method": {"name": "copy-image"}, "stores": ["fast"]}, 409),  # not active
    ]:
        r = await images.req("POST", url, json=body)
        assert r.status_code == status, (body, r.text)
    shown = await images.show(img["id"])
    assert shown["status"] == "queued" and "os_glance_import_task" not in shown


async def test_web_download(images: Images, web: tuple[str, Path]) -> None:
    base, root = web
    data = os.urandom(123_456)
    (root / "disk.raw").write_bytes(data)
    img = await images.create(disk_format="raw", container_format="bare")
    r = await images.req("POST", f"/images/{img['id']}/import",
                         json={"method": {"name": "web-download", "uri": f"{base}/disk.raw"}})
    assert r.status_code == 202, r.text
    out = await wait_status(images, img["id"], {"active"})
    assert out["size"] == len(data) and out["stores"] == "file"
    # a URL that answers 404: the import fails and the image is queued again
    img = await images.create(disk_format="raw", container_format="bare")
    r = await images.req("POST", f"/images/{img['id']}/import",
                         json={"method": {"name": "web-download", "uri": f"{base}/missing"}})
    assert r.status_code == 202
    out = await wait_status(images, img["id"], {"queued"})
    assert out["os_glance_failed_import"] == "file"
    tasks = (await images.req("GET", f"/images/{img['id']}/tasks")).json()["tasks"]
    assert tasks[0]["status"] == "failure" and "404" in tasks[0]["message"]


async def test_copy_image(images: Images) -> None:
    img = await images.active(b"copy me")
    assert img["stores"] == "file"
    r = await images.req("POST", f"/images/{img['id']}/import", images.cloud.demo_token,
                         json={"method": {"name": "copy-image"}, "stores": ["fast"]})
    assert r.status_code in (403, 404)
    r = await images.req("POST", f"/images/{img['id']}/import",
                         json={"method": {"name": "copy-image"}, "stores": ["fast"],
                               "all_stores_must_succeed": False})
    assert r.status_code == 202, r.text
    st = images.cloud.app.state.runtime.extras["image"]
    for _ in range(400):
        out = await images.show(img["id"])
        if out.get("os_glance_importing_to_stores") == "" and "os_glance_import_task" not in out:
            break
        st.jobs.wake()
        await asyncio.sleep(0.05)
    assert set(out["stores"].split(",")) == {"file", "fast"}
    assert list(images.cloud.settings.path("images-fast").rglob(img["id"]))
    r = await images.req("GET", f"/images/{img['id']}/file")
    assert r.content == b"copy me"


async def test_legacy_task_api(images: Images) -> None:
    body = {"type": "import", "input": {
        "import_from": "http://example.invalid/x.qcow2", "import_from_format": "qcow2",
        "image_properties": {"name": "t", "disk_format": "qcow2", "container_format": "bare"}}}
    r = await images.req("POST", "/tasks", images.cloud.demo_token, json=body)
    assert r.status_code == 403
    r = await images.req("POST", "/tasks", json={"type": "export", "input": {}})
    assert r.status_code == 400
    r = await images.req("POST", "/tasks", json=body)
    assert r.status_code == 201, r.text
    task_id = r.json()["id"]
    st = images.cloud.app.state.runtime.extras["image"]
    for _ in range(200):
        task = (await images.req("GET", f"/tasks/{task_id}")).json()
        if task["status"] in ("success", "failure"):
            break
        st.jobs.wake()
        await asyncio.sleep(0.05)
    assert task["status"] == "failure" and "filtering" in task["message"]
    listed = (await images.req("GET", "/tasks")).json()["tasks"]
    assert task_id in [t["id"] for t in listed]


async def test_delete_from_store(images: Images) -> None:
    img = await images.active(b"two copies")
    r = await images.req("DELETE", f"/stores/file/{img['id']}")
    assert r.status_code == 409  # its only copy
    r = await images.req("POST", f"/images/{img['id']}/import",
                         json={"method": {"name": "copy-image"}, "stores": ["fast"]})
    assert r.status_code == 202
    st = images.cloud.app.state.runtime.extras["image"]
    for _ in range(200):
        if (await images.show(img["id"]))["stores"] == "fast,file":
            break
        st.jobs.wake()
        await asyncio.sleep(0.05)
    assert (await images.req("DELETE", f"/stores/fast/{img['id']}", images.cloud.demo_token)).status_code == 404
    assert (await images.req("DELETE", f"/stores/fast/{img['id']}")).status_code == 204
    assert (await images.show(img["id"]))["stores"] == "file"
    assert not list(images.cloud.settings.path("images-fast").rglob(img["id"]))
    assert (await images.req("DELETE", f"/stores/fast/{img['id']}")).status_code == 404


async def test_import_converts_to_the_configured_format(images: Images, tmp_path: Path) -> None:
    import subprocess

    images.cloud.settings.image.convert_to_format = "raw"
    disk = tmp_path / "d.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(disk), "8M"], check=True,
                   capture_output=True)
    img = await images.create(disk_format="qcow2", container_format="bare")
    r = await images.req("PUT", f"/images/{img['id']}/stage", content=disk.read_bytes(),
                         headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204
    r = await images.req("POST", f"/images/{img['id']}/import",
                         json={"method": {"name": "glance-direct"}, "stores": ["file"]})
    assert r.status_code == 202
    out = await wait_status(images, img["id"], {"active"})
    assert out["disk_format"] == "raw"
    assert out["size"] == out["virtual_size"] == 8 * 1024 * 1024
