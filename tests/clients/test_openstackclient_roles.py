"""`openstack role ...`, `openstack implied role ...` and `openstack role
assignment list` with the real CLI against a real `onestack up`."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.clients.conftest import Server

pytestmark = pytest.mark.slow


def _json(server: Server, *args: str) -> object:
    return json.loads(server.openstack(*args, "-f", "json"))


def _token_as(server: Server, user: str, password: str, project: str) -> str:
    exe = Path(sys.executable).with_name("openstack")
    proc = subprocess.run(
        [
            str(exe),
            "--os-username",
            user,
            "--os-password",
            password,
            "--os-project-name",
            project,
            "--os-user-domain-id",
            "default",
            "--os-project-domain-id",
            "default",
            "token",
            "issue",
            "-f",
            "value",
            "-c",
            "id",
        ],
        env=server.env("onestack-admin"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _catalog_status(server: Server, token: str) -> int:
    req = urllib.request.Request(
        server.url + "/identity/v3/auth/catalog", headers={"X-Auth-Token": token}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_role_crud(server: Server) -> None:
    name = f"role-{uuid.uuid4().hex[:8]}"
    role = _json(server, "role", "create", "--description", "For tests", name)
    assert isinstance(role, dict) and role["name"] == name and role["description"] == "For tests"
    assert name in server.openstack("role", "list", "-f", "value", "-c", "Name").split()
    server.openstack("role", "set", "--name", name + "-2", name)
    shown = _json(server, "role", "show", name + "-2")
    assert isinstance(shown, dict) and shown["id"] == role["id"]
    server.openstack("role", "create", "--domain", "default", name + "-dom")
    out = server.openstack("role", "list", "--domain", "default", "-f", "value", "-c", "Name")
    assert name + "-dom" in out.split()
    server.openstack("role", "delete", "--domain", "default", name + "-dom")
    server.openstack("role", "create", "--immutable", name + "-locked")
    out = server.openstack("role", "delete", name + "-locked", check=False)
    assert "immutable" in out
    server.openstack("role", "set", "--no-immutable", name + "-locked")
    server.openstack("role", "delete", name + "-locked", name + "-2")
    assert name + "-2" not in server.openstack("role", "list", "-f", "value", "-c", "Name").split()


def test_implied_roles(server: Server) -> None:
    prior, implied = (f"{p}-{uuid.uuid4().hex[:8]}" for p in ("prior", "implied"))
    server.openstack("role", "create", prior)
    server.openstack("role", "create", implied)
    server.openstack("implied", "role", "create", prior, "--implied-role", implied)
    rules = _json(server, "implied", "role", "list")
    assert isinstance(rules, list)
    assert {"Prior Role Name": prior, "Implied Role Name": implied} in [
        {k: r[k] for k in ("Prior Role Name", "Implied Role Name")} for r in rules
    ]
    server.openstack("implied", "role", "delete", prior, "--implied-role", implied)
    out = server.openstack("implied", "role", "list", "-f", "value", "-c", "Prior Role Name")
    assert prior not in out.split()
    server.openstack("role", "delete", prior, implied)


def test_role_add_remove_and_assignment_list(server: Server) -> None:
    suffix = uuid.uuid4().hex[:8]
    project, user, group, password = f"p-{suffix}", f"u-{suffix}", f"g-{suffix}", "pw-" + suffix
    server.openstack("project", "create", "--domain", "default", project)
    server.openstack("user", "create", "--domain", "default", "--password", password, user)
    server.openstack("group", "create", "--domain", "default", group)
    server.openstack("group", "add", "user", group, user)

    server.openstack("role", "add", "--project", project, "--user", user, "member")
    server.openstack("role", "add", "--system", "all", "--user", user, "reader")
    server.openstack(
        "role", "add", "--domain", "default", "--group", group, "--inherited", "reader"
    )
    server.openstack("role", "add", "--domain", "default", "--user", user, "reader")

    rows = _json(server, "role", "assignment", "list", "--names", "--user", user)
    assert isinstance(rows, list)
    got = {(r["Role"], r["Project"], r["Domain"], r["System"], r["Inherited"]) for r in rows}
    assert got == {
        ("member", f"{project}@Default", "", "", False),
        ("reader", "", "", "all", False),
        ("reader", "", "Default", "", False),
    }
    rows = _json(
        server,
        "role",
        "assignment",
        "list",
        "--names",
        "--effective",
        "--user",
        user,
        "--project",
        project,
    )
    assert isinstance(rows, list)
    assert {(r["Role"], r["Inherited"]) for r in rows} == {
        ("member", False),
        ("reader", False),
        ("reader", True),
    }
    assert all(r["User"] == f"{user}@Default" for r in rows)

    token = _token_as(server, user, password, project)
    assert _catalog_status(server, token) == 200
    server.openstack("role", "remove", "--project", project, "--user", user, "member")
    # the inherited group reader still gives a role on the project
    assert _catalog_status(server, token) == 200
    server.openstack(
        "role", "remove", "--domain", "default", "--group", group, "--inherited", "reader"
    )
    # no role left on the project: the token stops working at once
    assert _catalog_status(server, token) == 401

    server.openstack("role", "remove", "--system", "all", "--user", user, "reader")
    server.openstack("role", "remove", "--domain", "default", "--user", user, "reader")
    assert _json(server, "role", "assignment", "list", "--user", user) == []
