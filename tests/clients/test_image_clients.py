"""The image service through real clients against ``onestack up``: the
``openstack image ...`` CLI and openstacksdk, plus a client that really
disconnects in the middle of an upload."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import openstack
import pytest

from tests.clients.conftest import Server

pytestmark = pytest.mark.slow


def show(server: Server, *args: str, cloud: str = "onestack-admin") -> dict[str, object]:
    return json.loads(server.openstack(*args, "-f", "json", cloud=cloud))


def connect(server: Server, cloud: str = "onestack-admin") -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(config_files=[str(server.clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud))


def test_cli_image_lifecycle(server: Server, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    src = tmp_path / "disk.raw"
    src.write_bytes(data)
    name = f"img-{uuid.uuid4().hex[:8]}"
    img = show(server, "image", "create", "--file", str(src), "--disk-format", "raw",
               "--container-format", "bare", "--property", "os_distro=debian",
               "--property", "hw_rng_model=virtio", "--public", name)
    assert img["status"] == "active"
    assert img["visibility"] == "public"
    assert img["checksum"] == hashlib.md5(data).hexdigest()
    listed = json.loads(server.openstack("image", "list", "-f", "json"))
    assert name in [i["Name"] for i in listed]
    shown = show(server, "image", "show", name)
    assert shown["size"] == len(data)
    assert shown["properties"]["os_distro"] == "debian"  # type: ignore[index]
    out = tmp_path / "saved.raw"
    server.openstack("image", "save", "--file", str(out), name)
    assert out.read_bytes() == data
    server.openstack("image", "set", "--property", "color=blue", "--min-disk", "2",
                     "--tag", "fast", "--protected", name)
    shown = show(server, "image", "show", name)
    assert shown["min_disk"] == 2 and "fast" in shown["tags"]  # type: ignore[operator]
    assert shown["properties"]["color"] == "blue"  # type: ignore[index]
    assert "delete" in server.openstack("image", "delete", name, check=False).lower()
    server.openstack("image", "unset", "--property", "color", name)
    server.openstack("image", "set", "--unprotected", name)
    assert "color" not in show(server, "image", "show", name)["properties"]  # type: ignore[operator]
    server.openstack("image", "delete", name)
    assert name not in server.openstack("image", "list", "-f", "value", "-c", "Name").split()


def test_cli_sharing_with_a_project(server: Server) -> None:
    name = f"shared-{uuid.uuid4().hex[:8]}"
    show(server, "image", "create", "--disk-format", "raw", "--container-format", "bare",
         "--shared", name, cloud="onestack")
    demo_project = show(server, "project", "show", "demo")["id"]
    admin_project = show(server, "project", "show", "admin")["id"]
    member = show(server, "image", "add", "project", name, str(admin_project), cloud="onestack")
    assert member["status"] == "pending"
    members = json.loads(server.openstack("image", "member", "list", name, "-f", "json",
                                          cloud="onestack"))
    assert [m["Member ID"] for m in members] == [admin_project]
    assert demo_project != admin_project
    server.openstack("image", "set", "--accept", "--project", str(admin_project),
                     show(server, "image", "show", name, cloud="onestack")["id"])  # type: ignore[arg-type]
    server.openstack("image", "delete", name, cloud="onestack")


def test_cli_stage_and_import(server: Server, tmp_path: Path) -> None:
    src = tmp_path / "disk.raw"
    src.write_bytes(os.urandom(65_536))
    name = f"imp-{uuid.uuid4().hex[:8]}"
    # (not `openstack image create`: without --file it uploads its stdin, which is
    # not a terminal here, and the image would be active already)
    img = connect(server).image.create_image(name=name, disk_format="raw", container_format="bare")
    server.openstack("image", "stage", "--file", str(src), name)
    assert show(server, "image", "show", name)["status"] == "uploading"
    server.openstack("image", "import", "--method", "glance-direct", name)
    for _ in range(200):
        if show(server, "image", "show", name)["status"] == "active":
            break
        time.sleep(0.1)
    assert show(server, "image", "show", name)["status"] == "active"
    tasks = json.loads(server.openstack("image", "task", "list", "-f", "json"))
    assert img.id in [t["ID"] for t in tasks] or tasks


def test_sdk_create_and_download(server: Server, tmp_path: Path) -> None:
    conn = connect(server, "onestack")
    data = os.urandom(300_000)
    src = tmp_path / "disk.raw"
    src.write_bytes(data)
    image = conn.create_image(f"sdk-{uuid.uuid4().hex[:8]}", filename=str(src),
                              disk_format="raw", container_format="bare", wait=True)
    assert image.status == "active"
    assert image.checksum == hashlib.md5(data).hexdigest()
    got = conn.image.download_image(image)  # a response, its checksum verified by the SDK
    assert got.content == data
    out = tmp_path / "out.raw"
    conn.image.download_image(image, output=str(out))
    assert out.read_bytes() == data
    assert image.id in [i.id for i in conn.image.images()]
    conn.image.update_image(image, name="renamed")
    assert conn.image.get_image(image).name == "renamed"
    conn.image.add_tag(image, "t1")
    assert "t1" in conn.image.get_image(image).tags
    conn.image.delete_image(image)
    assert conn.image.find_image(image.id) is None


def test_disconnect_mid_upload_returns_the_image_to_queued(server: Server) -> None:
    conn = connect(server, "onestack")
    image = conn.image.create_image(name="cut", disk_format="raw", container_format="bare")
    token = conn.session.get_token()
    url = urlsplit(server.url)
    sock = socket.create_connection((url.hostname, url.port))
    head = (f"PUT /image/v2/images/{image.id}/file HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"X-Auth-Token: {token}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {50 * 1024 * 1024}\r\n\r\n")
    sock.sendall(head.encode() + b"x" * (4 * 1024 * 1024))
    time.sleep(0.3)
    sock.close()
    for _ in range(100):
        status = conn.image.get_image(image).status
        if status == "queued":
            break
        time.sleep(0.1)
    assert status == "queued"
    images_dir = server.data_dir / "images"
    assert not [p for p in images_dir.rglob("*") if image.id in p.name]  # nor a temp file
    conn.image.delete_image(image)
