"""A restart of the service finishes what was left: an import whose job had
not run completes, and an upload cut off by the stop goes back to queued."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from onestack.core import config
from onestack.core.app import RequestIdMiddleware
from onestack.identity import bootstrap
from onestack.image.models import Image
from onestack.server import create_app


@contextlib.asynccontextmanager
async def running(settings: config.Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Any, dict[str, str]]]:
    root = create_app(settings)
    async with root.router.lifespan_context(root):
        transport = httpx.ASGITransport(app=RequestIdMiddleware(root, access_log=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            creds = bootstrap.load_or_create_credentials(settings.path("secrets", "passwords"))
            r = await client.post("/identity/v3/auth/tokens", json={"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "admin", "domain": {"id": "default"}, "password": creds.admin_password}}},
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
            yield client, root, {"X-Auth-Token": r.headers["X-Subject-Token"]}


async def test_import_resumes_after_restart(settings: config.Settings) -> None:
    async with running(settings) as (client, root, h):
        st = root.state.runtime.extras["image"]
        await st.jobs.stop()  # the "crash": nothing runs the job in this process
        r = await client.post("/image/v2/images", headers=h,
                              json={"disk_format": "raw", "container_format": "bare"})
        image_id = r.json()["id"]
        r = await client.put(f"/image/v2/images/{image_id}/stage", content=b"resumed data",
                             headers={**h, "Content-Type": "application/octet-stream"})
        assert r.status_code == 204
        r = await client.post(f"/image/v2/images/{image_id}/import", headers=h,
                              json={"method": {"name": "glance-direct"}})
        assert r.status_code == 202
        await asyncio.sleep(0.2)
        assert (await client.get(f"/image/v2/images/{image_id}", headers=h)).json()["status"] == "importing"
    async with running(settings) as (client, root, h):
        for _ in range(400):  # 20 s: a loaded CI machine is slow
            img = (await client.get(f"/image/v2/images/{image_id}", headers=h)).json()
            if img["status"] == "active":
                break
            await asyncio.sleep(0.05)
        assert img["status"] == "active" and img["size"] == len(b"resumed data")
        r = await client.get(f"/image/v2/images/{image_id}/file", headers=h)
        assert r.content == b"resumed data"


async def test_upload_interrupted_by_a_stop_is_reset(settings: config.Settings) -> None:
    async with running(settings) as (client, root, h):
        r = await client.post("/image/v2/images", headers=h,
                              json={"disk_format": "raw", "container_format": "bare"})
        image_id = r.json()["id"]
        st = root.state.runtime.extras["image"]
        # what a process of this host killed mid-upload leaves: the image in
        # saving, claimed by that process
        host = st.holder.split(":", 1)[0]
        async with st.db.write() as session:
            image = await session.get(Image, image_id)
            image.status = "saving"
            image.data_holder = f"{host}:1:dead"
    async with running(settings) as (client, root, h):
        img = (await client.get(f"/image/v2/images/{image_id}", headers=h)).json()
        assert img["status"] == "queued"
        r = await client.put(f"/image/v2/images/{image_id}/file", content=b"again",
                             headers={**h, "Content-Type": "application/octet-stream"})
        assert r.status_code == 204
