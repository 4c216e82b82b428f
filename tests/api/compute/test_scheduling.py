"""Claims under concurrency and a build that survives a restart."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select

from onestack.compute.models import ComputeNode
from onestack.compute.service import scheduler
from onestack.core import config
from onestack.core.app import RequestIdMiddleware
from onestack.identity import bootstrap
from onestack.server import create_app
from tests.api.compute.conftest import V21, Compute
from tests.conftest import BASE


async def test_concurrent_boots_never_overcommit(nova: Compute) -> None:
    st = nova.state
    await nova.default_quotas(instances=100, cores=100)
    await scheduler.set_inventory(st, st.node_id, vcpus=5, cpu_allocation_ratio=1.0)
    img = await nova.image()
    bodies = await asyncio.gather(*(nova.boot(imageRef=img["id"]) for _ in range(20)))
    servers = [await nova.wait(b["server"]["id"], "ACTIVE", "ERROR") for b in bodies]
    active = [s for s in servers if s["status"] == "ACTIVE"]
    failed = [s for s in servers if s["status"] == "ERROR"]
    assert (len(active), len(failed)) == (5, 15)
    for s in failed:
        message = s["fault"]["message"]
        assert "ResourceFilter removed" in message and st.host in message, message
        assert "VCPU: 1 requested, 0 free" in message
        assert s["OS-EXT-SRV-ATTR:host"] is None
    async with st.db.read() as s:
        node = await s.scalar(select(ComputeNode).where(ComputeNode.id == st.node_id))
    assert node is not None and node.vcpus_used == 5 and node.memory_mb_used == 5 * 128
    # deleting an ERROR server frees nothing it did not hold; an ACTIVE one frees its claim
    for s in (failed[0], active[0]):
        r = await nova.req("DELETE", f"/servers/{s['id']}")
        assert r.status_code == 204
        await nova.gone(s["id"])
    async with st.db.read() as s:
        node = await s.scalar(select(ComputeNode).where(ComputeNode.id == st.node_id))
    assert node is not None and node.vcpus_used == 4


async def test_restart_resumes_a_pending_build(settings: config.Settings) -> None:
    async def run(body: dict[str, object] | None, server_id: str | None) -> str:
        root = create_app(settings)
        app = RequestIdMiddleware(root, access_log=False)
        async with root.router.lifespan_context(root), \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                  base_url=BASE) as client:
            creds = bootstrap.load_or_create_credentials(
                settings.path("secrets", "passwords"))
            r = await client.post("/identity/v3/auth/tokens", json={"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "admin", "domain": {"id": "default"},
                    "password": creds.admin_password}}},
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
            h = {"X-Auth-Token": r.headers["X-Subject-Token"],
                 "OpenStack-API-Version": "compute 2.37"}
            if body is not None:
                # the runner stops first: the build task stays pending
                await root.state.runtime.extras["compute"].tasks.stop()
                r = await client.post("/image/v2/images", headers=h, json={
                    "name": "i", "disk_format": "raw", "container_format": "bare"})
                image = r.json()["id"]
                r = await client.put(f"/image/v2/images/{image}/file", content=b"x",
                                     headers={**h, "Content-Type": "application/octet-stream"})
                assert r.status_code == 204
                r = await client.post(f"{V21}/servers", headers=h, json={"server": {
                    **body, "imageRef": image}})
                assert r.status_code == 202, r.text
                sid: str = r.json()["server"]["id"]
                r = await client.get(f"{V21}/servers/{sid}", headers=h)
                assert r.json()["server"]["status"] == "BUILD"
                return sid
            async with asyncio.timeout(10):
                while True:
                    r = await client.get(f"{V21}/servers/{server_id}", headers=h)
                    if r.json()["server"]["status"] != "BUILD":
                        break
                    await asyncio.sleep(0.02)
            assert r.json()["server"]["status"] == "ACTIVE", r.text
            r = await client.get(f"{V21}/servers/{server_id}/os-instance-actions", headers=h)
            assert [a["action"] for a in r.json()["instanceActions"]] == ["create"]
            return str(server_id)

    sid = await run({"name": "survivor", "flavorRef": "42", "networks": "none"}, None)
    await run(None, sid)
