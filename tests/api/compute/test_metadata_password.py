"""The guest's password through the metadata API: POST
``/openstack/<version>/password`` (2013-04-04 on, and latest) stores it once
(400 past 256 bytes, 409 while one is set), GET reads it, and
``os-server-password`` shows and clears it."""

from __future__ import annotations

import base64
import json
import uuid

import httpx

from onestack.compute.models import Instance
from onestack.compute.service import metadata as md
from onestack.core.auth import instance_signature
from tests.api.compute.conftest import Compute, fault
from tests.api.compute.test_metadata_api import get, secret


async def post(nova: Compute, path: str, instance_id: str, tenant_id: str,
               body: bytes, signature: str | None = None) -> httpx.Response:
    headers = {"X-Instance-ID": instance_id, "X-Tenant-ID": tenant_id,
               "X-Forwarded-For": "10.0.0.5",
               "X-Instance-ID-Signature": signature if signature is not None
               else instance_signature(secret(nova), instance_id)}
    return await nova.cloud.client.post("/compute/metadata" + path, headers=headers,
                                        content=body)


async def test_guest_posts_its_password_once(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    image = await nova.image()
    srv = (await nova.boot(demo, imageRef=image["id"]))["server"]
    sid = srv["id"]
    tenant = (await nova.wait(sid, "ACTIVE", token=demo))["tenant_id"]
    pw_api = f"/servers/{sid}/os-server-password"

    # listed from 2013-04-04 on; empty until the guest sets it
    assert "password" not in (await get(nova, "/openstack/2012-08-10", sid, tenant)).text
    for version in ("2013-04-04", "latest"):
        r = await get(nova, f"/openstack/{version}", sid, tenant)
        assert "password" in r.text.splitlines(), r.text
    r = await get(nova, "/openstack/latest/password", sid, tenant)
    assert r.status_code == 200 and r.text == ""
    r = await get(nova, "/openstack/2012-08-10/password", sid, tenant)
    assert r.status_code == 404

    # bad input: too large, not text, an older version, another path, a bad signature
    r = await post(nova, "/openstack/latest/password", sid, tenant, b"x" * 257)
    assert r.status_code == 400 and "too large" in r.text, r.text
    r = await post(nova, "/openstack/latest/password", sid, tenant, b"\xff\xfe")
    assert r.status_code == 400, r.text
    r = await post(nova, "/openstack/2012-08-10/password", sid, tenant, b"pw")
    assert r.status_code == 405, r.text
    r = await post(nova, "/openstack/latest/meta_data.json", sid, tenant, b"pw")
    assert r.status_code == 405, r.text
    r = await post(nova, "/openstack/latest/password", sid, tenant, b"pw", signature="bad")
    assert r.status_code == 403, r.text
    r = await post(nova, "/openstack/latest/password", sid, str(uuid.uuid4()), b"pw")
    assert r.status_code == 404, r.text
    assert (await nova.req("GET", pw_api, demo)).json() == {"password": ""}

    # the guest posts it (256 bytes is the most), the API and the metadata read it
    secret_pw = base64.b64encode(b"\x01" * 192).decode()
    assert len(secret_pw) == 256
    r = await post(nova, "/openstack/2013-04-04/password", sid, tenant, secret_pw.encode())
    assert r.status_code == 200 and r.text == "", r.text
    r = await get(nova, "/openstack/latest/password", sid, tenant)
    assert r.status_code == 200 and r.text == secret_pw
    assert (await nova.req("GET", pw_api, demo)).json() == {"password": secret_pw}
    # once: a second post conflicts, whatever its size (Nova checks that first)
    r = await post(nova, "/openstack/latest/password", sid, tenant, b"other")
    assert r.status_code == 409, r.text
    r = await post(nova, "/openstack/latest/password", sid, tenant, b"x" * 1000)
    assert r.status_code == 409, r.text
    assert (await get(nova, "/openstack/latest/password", sid, tenant)).text == secret_pw

    # cleared through the API: the guest may post a new one
    fault(await nova.req("DELETE", pw_api, nova.cloud.demo_token + "x"), "unauthorized", 401)
    r = await nova.req("DELETE", pw_api, demo)
    assert r.status_code == 204, r.text
    assert (await get(nova, "/openstack/latest/password", sid, tenant)).text == ""
    r = await post(nova, "/openstack/latest/password", sid, tenant, b"new")
    assert r.status_code == 200, r.text
    assert (await nova.req("GET", pw_api, demo)).json() == {"password": "new"}


def test_config_drive_has_no_password_file() -> None:
    inst = Instance(
        id=3, uuid=str(uuid.uuid4()), project_id="p", user_id="u", display_name="vm",
        hostname="vm", reservation_id="r-1", launch_index=0, image_ref=str(uuid.uuid4()),
        image={}, flavor={"name": "m1.tiny"}, vcpus=1, memory_mb=512, root_gb=1,
        ephemeral_gb=0, metadata_={}, tags=[], security_groups=[], network_info=[],
        availability_zone="nova", vm_state="active", system_metadata={"password": "pw"})
    files = md.InstanceMetadata(inst).config_drive_files()
    assert not [f for f in files if f.endswith("/password")]
    assert json.loads(files["openstack/latest/meta_data.json"])["uuid"] == inst.uuid
    assert md.is_password_path("openstack/latest/password")
    assert md.is_password_path("/openstack/2013-04-04/password")
    assert not md.is_password_path("openstack/2012-08-10/password")
    assert not md.is_password_path("openstack/1999-01-01/password")
    assert not md.is_password_path("openstack/latest/password/x")
