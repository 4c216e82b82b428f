"""Services calling identity through ``Runtime.http`` as their own service user:
the token, unified limits, and the service users the bootstrap makes.

An ``image`` service stand-in is added to the process so that the bootstrap makes
its ``glance`` user exactly as it will for the real one."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from onestack import server
from onestack.core.clients.identity import LimitsClient, ServiceSession
from onestack.core.errors import ServiceUnavailable
from onestack.core.service import CatalogEntry, Runtime, ServiceSpec
from onestack.core.types import ASGIApp
from onestack.identity import bootstrap
from onestack.identity.models import Project, Service
from tests.conftest import Cloud

STARTUP: dict[str, Any] = {}


async def _build_fake_image(runtime: Runtime) -> ASGIApp:
    session = runtime.service_session("image")

    async def on_start() -> None:
        # runs after the bootstrap: the glance user exists by now
        STARTUP["token"] = await session.token()

    runtime.on_startup(on_start)
    return Starlette()


@pytest.fixture(autouse=True)
def fake_image_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    versions = tmp_path / "fake-image-migrations"
    versions.mkdir()
    spec = ServiceSpec(
        service_type="image", prefix="/image", migrations=versions,
        catalog=(CatalogEntry("image", "glance"),), build=_build_fake_image,
    )
    monkeypatch.setattr(server, "SERVICES", (*server.SERVICES, spec))
    STARTUP.clear()
    yield


def runtime(cloud: Cloud) -> Runtime:
    rt = cloud.app.state.runtime
    assert isinstance(rt, Runtime)
    return rt


async def test_service_user_authenticates_through_runtime_http(cloud: Cloud) -> None:
    rt = runtime(cloud)
    creds = rt.service_credentials("image")
    assert (creds.username, creds.project_name, creds.domain_name) == (
        "glance", "service", "Default")
    assert creds.password not in repr(creds)
    with pytest.raises(LookupError):
        rt.service_credentials("identity")

    secrets_file = cloud.settings.path("secrets", "service-users")
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert f"glance={creds.password}\n" in secrets_file.read_text()

    assert rt.http is not None
    session = rt.service_session("image")
    token = await session.token()
    assert await session.token() == token  # cached
    assert await session.headers() == {"X-Auth-Token": token}
    r = await cloud.client.get(
        "/identity/v3/auth/tokens",
        headers={"X-Auth-Token": cloud.admin_token, "X-Subject-Token": token},
    )
    assert r.status_code == 200, r.text
    t = r.json()["token"]
    assert t["user"]["name"] == "glance" and t["project"]["name"] == "service"
    assert {"service", "admin"} <= {role["name"] for role in t["roles"]}
    # a startup hook runs after the bootstrap, so it could authenticate too
    assert STARTUP["token"]

    session.invalidate()
    assert await session.token() != token


async def test_service_session_errors_are_service_unavailable(cloud: Cloud) -> None:
    rt = runtime(cloud)
    assert rt.http is not None
    wrong = ServiceSession(rt.http, username="glance", password="not-the-password")
    with pytest.raises(ServiceUnavailable):
        await wrong.token()
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as unreachable:
        session = ServiceSession(unreachable, username="glance", password="x")
        with pytest.raises(ServiceUnavailable):
            await session.token()
        creds = rt.service_credentials("image")
        limits = LimitsClient(ServiceSession.from_credentials(unreachable, creds))
        with pytest.raises(ServiceUnavailable):
            await limits.project_limits("p", "image", ["image_count_total"], "RegionOne")


async def test_bootstrap_restores_a_changed_service_user_password(cloud: Cloud) -> None:
    rt = runtime(cloud)
    st = rt.extras["identity"]
    r = await cloud.get("/users?name=glance")
    [user] = r.json()["users"]
    r = await cloud.patch(f"/users/{user['id']}", {"user": {"password": "changed-by-hand"}})
    assert r.status_code == 200
    with pytest.raises(ServiceUnavailable):
        await rt.service_session("image").token()

    passwords = {"glance": rt.service_credentials("image").password}
    await bootstrap.bootstrap(st, cloud.creds, server.catalog_urls(cloud.settings), passwords)
    await bootstrap.bootstrap(st, cloud.creds, server.catalog_urls(cloud.settings), passwords)
    assert await rt.service_session("image").token()
    r = await cloud.get(f"/role_assignments?user.id={user['id']}&include_names=1")
    granted = sorted((a["role"]["name"], a["scope"]["project"]["name"])
                     for a in r.json()["role_assignments"])
    assert granted == [("admin", "service"), ("service", "service")]


async def test_project_limits_default_then_override(cloud: Cloud) -> None:
    rt = runtime(cloud)
    st = rt.extras["identity"]
    async with st.read() as s:
        projects = {p.name: p.id for p in await s.scalars(select(Project))}
        image_service = await s.scalar(select(Service.id).where(Service.type == "image"))
    demo, admin = projects["demo"], projects["admin"]
    names = ["image_size_total", "image_count_total", "image_stage_total", "other"]
    region = cloud.settings.region

    cached = LimitsClient(rt.service_session("image"))
    fresh = LimitsClient(rt.service_session("image"), ttl=0)
    nothing = dict.fromkeys(names)
    assert await cached.project_limits(demo, "image", names, region) == nothing
    assert await fresh.project_limits(demo, "no-such-type", names, region) == nothing

    r = await cloud.post("/registered_limits", {"registered_limits": [
        {"service_id": image_service, "region_id": region, "resource_name": "image_size_total",
         "default_limit": 1000},
        {"service_id": image_service, "resource_name": "image_count_total",
         "default_limit": 100},
        {"service_id": image_service, "resource_name": "image_stage_total",
         "default_limit": -1},
    ]})
    assert r.status_code == 201, r.text
    defaults = {"image_size_total": 1000, "image_count_total": 100,
                "image_stage_total": None, "other": None}
    assert await fresh.project_limits(demo, "image", names, region) == defaults
    # the cached client answers from its cache until the TTL or clear()
    assert await cached.project_limits(demo, "image", names, region) == nothing
    cached.clear()
    assert await cached.project_limits(demo, "image", names, region) == defaults
    # a region-specific limit does not apply to another region
    assert (await fresh.project_limits(demo, "image", names, "OtherRegion"))[
        "image_size_total"] is None

    r = await cloud.post("/limits", {"limits": [
        {"service_id": image_service, "project_id": demo, "region_id": region,
         "resource_name": "image_size_total", "resource_limit": 50},
        {"service_id": image_service, "project_id": demo,
         "resource_name": "image_count_total", "resource_limit": 3},
    ]})
    assert r.status_code == 201, r.text
    assert await fresh.project_limits(demo, "image", names, region) == {
        "image_size_total": 50, "image_count_total": 3, "image_stage_total": None,
        "other": None}
    assert await fresh.project_limits(admin, "image", names, region) == defaults
