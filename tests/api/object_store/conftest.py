"""Object storage API tests: the whole cloud in-process (tests/conftest.py) and a
``swift`` helper addressing the Swift API of a project's account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Cloud

PREFIX = "/object-store"


@dataclass
class Account:
    """A project's Swift account as seen with one token."""

    swift: Swift
    project_id: str
    token: str | None

    @property
    def path(self) -> str:
        return f"{PREFIX}/v1/AUTH_{self.project_id}"

    async def req(self, method: str, path: str = "", *, token: str | None = "",
                  headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        """``path`` below the account (``/c``, ``/c/o``); ``token=None`` sends none,
        the default sends this account's token."""
        h = dict(headers or {})
        tok = self.token if token == "" else token
        if tok:
            h["X-Auth-Token"] = tok
        return await self.swift.cloud.client.request(method, self.path + path, headers=h, **kw)

    async def put_container(self, name: str, **headers: str) -> None:
        r = await self.req("PUT", f"/{name}", headers=headers)
        assert r.status_code in (201, 202), r.text

    async def put_object(self, container: str, name: str, data: bytes = b"data",
                         **headers: str) -> httpx.Response:
        r = await self.req("PUT", f"/{container}/{name}", content=data, headers=headers)
        assert r.status_code == 201, r.text
        return r


@dataclass
class Swift:
    cloud: Cloud
    admin: Account
    demo: Account

    async def project_id(self, token: str) -> str:
        r = await self.cloud.client.get(
            "/identity/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}
        )
        assert r.status_code == 200, r.text
        return str(r.json()["token"]["project"]["id"])

    async def project_user(self, role: str = "member") -> Account:
        """A new project with a new user holding ``role`` on it."""
        project, _, token = await self.cloud.new_project_user(role)
        return Account(self, project, token)

    async def ec2_credentials(self, account: Account) -> tuple[str, str]:
        """(access, secret) of a new EC2 credential of ``account``'s user."""
        c = self.cloud
        r = await c.client.get("/identity/v3/auth/tokens", headers={
            "X-Auth-Token": account.token or "", "X-Subject-Token": account.token or ""})
        user = r.json()["token"]["user"]["id"]
        r = await c.client.post(f"/identity/v3/users/{user}/credentials/OS-EC2",
                                json={"tenant_id": account.project_id},
                                headers={"X-Auth-Token": account.token or ""})
        assert r.status_code == 201, r.text
        cred = r.json()["credential"]
        return cred["access"], cred["secret"]


@pytest.fixture
async def swift(cloud: Cloud) -> Swift:
    s = Swift(cloud, None, None)  # type: ignore[arg-type]
    s.admin = Account(s, await s.project_id(cloud.admin_token), cloud.admin_token)
    s.demo = Account(s, await s.project_id(cloud.demo_token), cloud.demo_token)
    return s
