"""The `openstack` CLI, unchanged, against a real `onestack up`."""

from __future__ import annotations

import pytest

from tests.clients.conftest import Server

pytestmark = pytest.mark.slow


def test_token_issue_as_demo_and_admin(server: Server) -> None:
    out = server.openstack("token", "issue", "-f", "value", "-c", "project_id", "-c", "user_id",
                           cloud="onestack")
    assert len(out.split()) == 2
    assert server.openstack("token", "issue", "-f", "value", "-c", "id").strip().startswith("gAAAA")


def test_catalog_list_and_show(server: Server) -> None:
    out = server.openstack("catalog", "list", "-f", "value", "-c", "Type", cloud="onestack")
    assert "identity" in out.split()
    out = server.openstack("catalog", "show", "identity", "-f", "value", "-c", "endpoints")
    assert server.url + "/identity" in out


def test_wrong_password_is_a_clean_401(server: Server) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = server.env("onestack")
    env["OS_PASSWORD"] = "definitely-wrong"
    # OS_PASSWORD does not override clouds.yaml for OS_CLOUD; use explicit args
    exe = Path(sys.executable).with_name("openstack")
    proc = subprocess.run(
        [str(exe), "--os-password", "definitely-wrong", "token", "issue"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "401" in proc.stderr and "requires authentication" in proc.stderr
    assert os.environ.get("OS_PASSWORD") != "definitely-wrong"
