"""Image API tests: the whole cloud in-process (see tests/conftest.py), with
helpers for the image endpoints and for extra projects and users."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Cloud

V2 = "/image/v2"
PATCH = "application/openstack-images-v2.1-json-patch"


@dataclass
class Images:
    cloud: Cloud

    def h(self, token: str | None) -> dict[str, str]:
        return {"X-Auth-Token": token or self.cloud.admin_token}

    async def req(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {**self.h(token), **kw.pop("headers", {})}
        return await self.cloud.client.request(method, V2 + path, headers=headers, **kw)

    async def create(self, token: str | None = None, **body: Any) -> dict[str, Any]:
        r = await self.req("POST", "/images", token, json=body)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def upload(self, image_id: str, data: bytes, token: str | None = None,
                     **headers: str) -> httpx.Response:
        return await self.req("PUT", f"/images/{image_id}/file", token, content=data,
                              headers={"Content-Type": "application/octet-stream", **headers})

    async def show(self, image_id: str, token: str | None = None) -> dict[str, Any]:
        r = await self.req("GET", f"/images/{image_id}", token)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def patch(self, image_id: str, ops: list[dict[str, Any]], token: str | None = None) -> httpx.Response:
        return await self.req("PATCH", f"/images/{image_id}", token, json=ops,
                              headers={"Content-Type": PATCH})

    async def active(self, data: bytes = b"x" * 1000, token: str | None = None, **body: Any) -> dict[str, Any]:
        body.setdefault("disk_format", "raw")
        body.setdefault("container_format", "bare")
        img = await self.create(token, **body)
        r = await self.upload(img["id"], data, token)
        assert r.status_code == 204, r.text
        return await self.show(img["id"], token)

    async def project_user(self, role: str = "member") -> tuple[str, str]:
        """A new project with a new user holding ``role`` on it: (project id, token)."""
        project, _, token = await self.cloud.new_project_user(role)
        return project, token

    async def project_of(self, token: str) -> str:
        r = await self.cloud.client.get(
            "/identity/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token})
        return r.json()["token"]["project"]["id"]  # type: ignore[no-any-return]


@pytest.fixture
def images(cloud: Cloud) -> Images:
    return Images(cloud)
