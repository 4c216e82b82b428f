"""Image quotas from the identity service's unified limits (Glance's resource
names), enforced at create and while data streams in."""

from __future__ import annotations

from typing import Any

from tests.api.image.conftest import Images


async def glance_service_id(images: Images) -> str:
    r = await images.cloud.get("/services?type=image")
    return r.json()["services"][0]["id"]  # type: ignore[no-any-return]


async def register(images: Images, resource: str, default: int) -> None:
    body: dict[str, Any] = {"registered_limits": [{
        "service_id": await glance_service_id(images), "resource_name": resource,
        "default_limit": default, "region_id": images.cloud.settings.region}]}
    r = await images.cloud.post("/registered_limits", body)
    assert r.status_code == 201, r.text


async def project_limit(images: Images, project: str, resource: str, limit: int) -> None:
    body = {"limits": [{"service_id": await glance_service_id(images), "project_id": project,
                        "resource_name": resource, "resource_limit": limit,
                        "region_id": images.cloud.settings.region}]}
    r = await images.cloud.post("/limits", body)
    assert r.status_code == 201, r.text


def clear_cache(images: Images) -> None:
    images.cloud.app.state.runtime.extras["image"].limits.clear()


async def test_no_limits_means_unlimited(images: Images) -> None:
    for _ in range(3):
        await images.create()
    r = await images.req("GET", "/info/usage", images.cloud.demo_token)
    assert r.status_code == 200
    assert r.json()["usage"]["image_count_total"] == {"limit": -1, "usage": 0}


async def test_image_count_total(images: Images) -> None:
    project, token = await images.project_user()
    await register(images, "image_count_total", 5)
    await project_limit(images, project, "image_count_total", 2)
    clear_cache(images)
    await images.create(token)
    await images.create(token)
    r = await images.req("POST", "/images", token, json={"name": "third"})
    assert r.status_code == 413
    assert "image_count_total" in r.text
    listed = (await images.req("GET", "/images", token)).json()["images"]
    assert len(listed) == 2  # nothing half-created
    r = await images.req("GET", "/info/usage", token)
    assert r.json()["usage"]["image_count_total"] == {"limit": 2, "usage": 2}
    # another project gets the registered default
    _, other = await images.project_user()
    for _ in range(3):
        await images.create(other)


async def test_image_size_total_is_enforced_while_uploading(images: Images) -> None:
    project, token = await images.project_user()
    await project_limit_with_default(images, project, "image_size_total", 1)  # MiB
    clear_cache(images)
    img = await images.create(token, disk_format="raw", container_format="bare")
    r = await images.upload(img["id"], b"x" * (1024 * 1024 + 1), token)
    assert r.status_code == 413, r.text
    shown = await images.show(img["id"], token)
    assert shown["status"] == "queued" and shown["size"] is None
    root = images.cloud.settings.path("images")
    assert not root.exists() or not [p for p in root.rglob("*") if p.is_file()]
    assert (await images.upload(img["id"], b"x" * (1024 * 1024), token)).status_code == 204
    # full now: the next upload is refused before any data is read
    img2 = await images.create(token, disk_format="raw", container_format="bare")
    r = await images.upload(img2["id"], b"y", token)
    assert r.status_code == 413


async def project_limit_with_default(images: Images, project: str, resource: str, limit: int) -> None:
    await register(images, resource, 1000)
    await project_limit(images, project, resource, limit)


async def test_stage_total(images: Images) -> None:
    project, token = await images.project_user()
    await project_limit_with_default(images, project, "image_stage_total", 1)
    clear_cache(images)
    img = await images.create(token, disk_format="raw", container_format="bare")
    r = await images.req("PUT", f"/images/{img['id']}/stage", token, content=b"z" * (2 * 1024 * 1024),
                         headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 413
    assert (await images.show(img["id"], token))["status"] == "queued"
