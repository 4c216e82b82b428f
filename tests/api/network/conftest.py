"""Networking API tests: the whole cloud in-process (see tests/conftest.py) with
the fake data plane, and helpers for the Neutron endpoints and for extra
projects and users."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Cloud

V2 = "/network/v2.0"


@dataclass
class Net:
    cloud: Cloud

    async def req(self, method: str, path: str, token: str | None = None,
                  **kw: Any) -> httpx.Response:
        headers = {"X-Auth-Token": token or self.cloud.admin_token, **kw.pop("headers", {})}
        return await self.cloud.client.request(method, V2 + path, headers=headers, **kw)

    async def create(self, member: str, token: str | None = None, **body: Any) -> dict[str, Any]:
        """POST ``{member: body}`` to its collection; asserts 201."""
        coll = COLLECTIONS.get(member, member + "s")
        r = await self.req("POST", f"/{coll}", token, json={member: body})
        assert r.status_code == 201, r.text
        return r.json()[member]  # type: ignore[no-any-return]

    async def show(self, member: str, rid: str, token: str | None = None) -> dict[str, Any]:
        coll = COLLECTIONS.get(member, member + "s")
        r = await self.req("GET", f"/{coll}/{rid}", token)
        assert r.status_code == 200, r.text
        return r.json()[member]  # type: ignore[no-any-return]

    async def network(self, token: str | None = None, **body: Any) -> dict[str, Any]:
        body.setdefault("name", "net-" + uuid.uuid4().hex[:6])
        return await self.create("network", token, **body)

    async def subnet(self, network_id: str, cidr: str = "10.0.0.0/24",
                     token: str | None = None, **body: Any) -> dict[str, Any]:
        body.setdefault("ip_version", 6 if ":" in cidr else 4)
        return await self.create("subnet", token, network_id=network_id, cidr=cidr, **body)

    async def project_user(self, role: str = "member") -> tuple[str, str]:
        """A new project with a new user holding ``role`` on it: (project id, token)."""
        project, _, token = await self.cloud.new_project_user(role)
        return project, token


COLLECTIONS = {
    "security_group": "security-groups",
    "security_group_rule": "security-group-rules",
    "policy": "policies",
}


def neutron_error(r: httpx.Response) -> tuple[str, str]:
    """The (type, message) of a Neutron error response."""
    body = r.json()["NeutronError"]
    return body["type"], body["message"]


@pytest.fixture
def net(cloud: Cloud) -> Net:
    return Net(cloud)
