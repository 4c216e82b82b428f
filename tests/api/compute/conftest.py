"""Compute API tests: the whole cloud in-process (see tests/conftest.py) and
helpers for Nova's endpoints, microversions and extra projects and users."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Cloud

V21 = "/compute/v2.1"


@dataclass
class Compute:
    cloud: Cloud

    async def req(self, method: str, path: str, token: str | None = None, *,
                  version: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"X-Auth-Token": token or self.cloud.admin_token, **kw.pop("headers", {})}
        if version is not None:
            headers["OpenStack-API-Version"] = f"compute {version}"
        return await self.cloud.client.request(method, V21 + path, headers=headers, **kw)

    async def flavor(self, token: str | None = None, *, version: str | None = None,
                     **body: Any) -> dict[str, Any]:
        """Create a flavor (admin by default); asserts 200."""
        body.setdefault("name", "f-" + uuid.uuid4().hex[:8])
        body.setdefault("ram", 256)
        body.setdefault("vcpus", 1)
        body.setdefault("disk", 1)
        r = await self.req("POST", "/flavors", token, version=version, json={"flavor": body})
        assert r.status_code == 200, r.text
        return r.json()["flavor"]  # type: ignore[no-any-return]

    async def project_user(self, role: str = "member") -> tuple[str, str, str]:
        """A new project with a new user holding ``role`` on it:
        (project id, user id, token)."""
        return await self.cloud.new_project_user(role)

    async def demo_reader(self) -> str:
        """A token of a new user with only the reader role on the demo project
        (whose member is ``cloud.demo_token``)."""
        c = self.cloud
        project = (await c.get("/projects?name=demo")).json()["projects"][0]["id"]
        name = "rd-" + uuid.uuid4().hex[:8]
        r = await c.post("/users", {"user": {"name": name, "password": "secret-pass-1",
                                             "domain_id": "default"}})
        assert r.status_code == 201, r.text
        user = r.json()["user"]["id"]
        role = (await c.get("/roles?name=reader")).json()["roles"][0]["id"]
        r = await c.put(f"/projects/{project}/users/{user}/roles/{role}")
        assert r.status_code == 204, r.text
        r = await c.token(name, "secret-pass-1", project="demo")
        assert r.status_code == 201, r.text
        return r.headers["X-Subject-Token"]

    async def default_quotas(self, **values: int) -> None:
        """Every project's default quotas (the ``default`` quota class: the compute
        service's registered limits in the identity service)."""
        r = await self.req("PUT", "/os-quota-class-sets/default", version="2.57",
                           json={"quota_class_set": values})
        assert r.status_code == 200, r.text

    # -- servers -----------------------------------------------------------------

    @property
    def state(self) -> Any:
        """The compute service's ComputeState (tests size the fake host with it)."""
        return self.cloud.app.state.runtime.extras["compute"]

    async def image(self, **body: Any) -> dict[str, Any]:
        """A public, active image (admin's)."""
        body.setdefault("name", "img-" + uuid.uuid4().hex[:6])
        body.setdefault("disk_format", "raw")
        body.setdefault("container_format", "bare")
        body.setdefault("visibility", "public")
        h = {"X-Auth-Token": self.cloud.admin_token}
        r = await self.cloud.client.post("/image/v2/images", json=body, headers=h)
        assert r.status_code == 201, r.text
        img = r.json()
        r = await self.cloud.client.put(f"/image/v2/images/{img['id']}/file", content=b"x" * 512,
                                        headers={**h, "Content-Type": "application/octet-stream"})
        assert r.status_code == 204, r.text
        return img  # type: ignore[no-any-return]

    async def network(self, token: str, cidr: str = "10.9.0.0/24") -> dict[str, Any]:
        """A network with one subnet, owned by the token's project."""
        h = {"X-Auth-Token": token}
        r = await self.cloud.client.post("/network/v2.0/networks", headers=h, json={
            "network": {"name": "net-" + uuid.uuid4().hex[:6]}})
        assert r.status_code == 201, r.text
        net = r.json()["network"]
        r = await self.cloud.client.post("/network/v2.0/subnets", headers=h, json={
            "subnet": {"network_id": net["id"], "cidr": cidr, "ip_version": 4}})
        assert r.status_code == 201, r.text
        return net  # type: ignore[no-any-return]

    async def neutron(self, method: str, path: str, token: str | None = None,
                      **kw: Any) -> Any:
        """A networking API call under ``/network/v2.0`` (admin by default); asserts
        it succeeded; the JSON body, or None."""
        r = await self.cloud.client.request(method, "/network/v2.0" + path, headers={
            "X-Auth-Token": token or self.cloud.admin_token}, **kw)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    async def ports(self, **params: str) -> list[dict[str, Any]]:
        r = await self.cloud.client.get("/network/v2.0/ports", params=params,
                                        headers={"X-Auth-Token": self.cloud.admin_token})
        assert r.status_code == 200, r.text
        return r.json()["ports"]  # type: ignore[no-any-return]

    async def boot(self, token: str | None = None, *, version: str = "2.37",
                   status: int = 202, **server: Any) -> dict[str, Any]:
        """POST /servers (``networks`` "none" unless given); the response body."""
        server.setdefault("name", "vm-" + uuid.uuid4().hex[:6])
        server.setdefault("flavorRef", "42")
        server.setdefault("networks", "none")
        r = await self.req("POST", "/servers", token, version=version, json={"server": server})
        assert r.status_code == status, r.text
        return r.json()  # type: ignore[no-any-return]

    async def wait(self, server_id: str, *statuses: str, token: str | None = None,
                   version: str = "2.100", timeout: float = 10.0) -> dict[str, Any]:
        """Poll GET until the server's status is one of ``statuses`` (and no task
        is under way); the server."""
        async with asyncio.timeout(timeout):
            while True:
                r = await self.req("GET", f"/servers/{server_id}", token, version=version)
                assert r.status_code == 200, r.text
                srv = r.json()["server"]
                if srv["status"] in statuses and srv["OS-EXT-STS:task_state"] is None:
                    return srv  # type: ignore[no-any-return]
                await asyncio.sleep(0.02)

    async def gone(self, server_id: str, token: str | None = None,
                   timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                r = await self.req("GET", f"/servers/{server_id}", token)
                if r.status_code == 404:
                    return
                await asyncio.sleep(0.02)

    async def user_id(self, token: str) -> str:
        r = await self.cloud.client.get("/identity/v3/auth/tokens", headers={
            "X-Auth-Token": token, "X-Subject-Token": token})
        assert r.status_code == 200, r.text
        return r.json()["token"]["user"]["id"]  # type: ignore[no-any-return]


def fault(r: httpx.Response, name: str, code: int) -> str:
    """Asserts Nova's fault envelope ``{name: {"code", "message"}}``; its message."""
    assert r.status_code == code, r.text
    body = r.json()
    assert list(body) == [name], body
    assert body[name]["code"] == code
    return body[name]["message"]  # type: ignore[no-any-return]


@pytest.fixture
def nova(cloud: Cloud) -> Compute:
    return Compute(cloud)
