"""The real ``openstack`` CLI against ``onestack up``: domains, projects, users,
groups, membership and both ways of setting a password."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.clients.conftest import Server

pytestmark = pytest.mark.slow


def show(server: Server, *args: str) -> dict[str, object]:
    return json.loads(server.openstack(*args, "-f", "json"))


def column(server: Server, *args: str) -> list[str]:
    return server.openstack(*args, "-f", "value", "-c", "Name").split()


def test_domain_project_user_group_lifecycle(server: Server) -> None:
    s = uuid.uuid4().hex[:8]
    dom, proj, child, user, group = (f"{x}-{s}" for x in ("dom", "proj", "child", "user", "grp"))
    d = show(server, "domain", "create", "--description", "CLI", dom)
    assert d["name"] == dom and d["enabled"] is True
    server.openstack("domain", "set", "--description", "changed", dom)
    assert show(server, "domain", "show", dom)["description"] == "changed"
    assert dom in column(server, "domain", "list")

    p = show(server, "project", "create", "--domain", dom, "--tag", "a", proj)
    assert p["domain_id"] == d["id"] and p["parent_id"] == d["id"] and p["tags"] == ["a"]
    c = show(server, "project", "create", "--domain", dom, "--parent", proj, child)
    assert c["parent_id"] == p["id"]
    assert sorted(column(server, "project", "list", "--domain", dom)) == sorted([proj, child])
    assert {"admin", "demo"} <= set(column(server, "project", "list", "--domain", "default"))
    server.openstack("project", "set", "--domain", dom, "--description", "x", proj)
    assert show(server, "project", "show", "--domain", dom, proj)["description"] == "x"

    u = show(server, "user", "create", "--domain", dom, "--password", "pw-1",
             "--email", "u@example.test", user)
    assert u["email"] == "u@example.test" and "password" not in u
    server.openstack("user", "set", "--domain", dom, "--description", "someone", user)
    assert show(server, "user", "show", "--domain", dom, user)["description"] == "someone"
    assert column(server, "user", "list", "--domain", dom) == [user]

    show(server, "group", "create", "--domain", dom, group)
    server.openstack("group", "add", "user", "--group-domain", dom, "--user-domain", dom,
                     group, user)
    out = server.openstack("group", "contains", "user", "--group-domain", dom,
                           "--user-domain", dom, group, user)
    assert f"{user} in group {group}" in out
    assert column(server, "group", "list", "--user", user, "--user-domain", dom) == [group]
    server.openstack("group", "set", "--domain", dom, "--description", "g", group)
    assert show(server, "group", "show", "--domain", dom, group)["description"] == "g"

    # an enabled domain is refused; once disabled it goes with its contents
    assert "failed" in server.openstack("domain", "delete", dom, check=False)
    server.openstack("domain", "set", "--disable", dom)
    server.openstack("domain", "delete", dom)
    assert dom not in column(server, "domain", "list")
    assert user not in column(server, "user", "list")


def test_passwords(server: Server, tmp_path: Path) -> None:
    name = f"self-{uuid.uuid4().hex[:8]}"
    server.openstack("user", "create", "--password", "first-pw", "--project", "demo", name)
    server.openstack("role", "add", "--user", name, "--project", "demo", "member")
    admin = yaml.safe_load(server.clouds_yaml.read_text())["clouds"]["onestack-admin"]
    cloud = {**admin, "auth": {**admin["auth"], "username": name, "password": "first-pw",
                               "project_name": "demo"}}
    config = tmp_path / "clouds.yaml"
    config.write_text(yaml.safe_dump({"clouds": {"self": cloud}}))
    as_user = Server(server.url, server.data_dir, config, server.proc, server.log)

    out = as_user.openstack("user", "password", "set", "--original-password", "wrong",
                            "--password", "second-pw", cloud="self", check=False)
    assert "401" in out
    as_user.openstack("user", "password", "set", "--original-password", "first-pw",
                      "--password", "second-pw", cloud="self")
    time.sleep(1.1)  # token revocation has one-second resolution
    assert "401" in as_user.openstack("token", "issue", cloud="self", check=False)
    as_user.openstack("--os-password", "second-pw", "token", "issue", cloud="self")

    server.openstack("user", "set", "--password", "third-pw", name)
    as_user.openstack("--os-password", "third-pw", "token", "issue", cloud="self")
    server.openstack("user", "delete", name)
