"""The `onestack up` contract that tools outside the repo rely on."""

from __future__ import annotations

import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.clients.conftest import Server, free_port, start_server, stop_server

pytestmark = pytest.mark.slow


def test_clouds_yaml_and_secrets_are_private(server: Server) -> None:
    clouds = yaml.safe_load(server.clouds_yaml.read_text())["clouds"]
    assert set(clouds) == {"onestack", "onestack-admin"}
    assert clouds["onestack"]["auth"]["auth_url"] == server.url + "/identity/v3"
    assert stat.S_IMODE(server.clouds_yaml.stat().st_mode) == 0o600
    pw = server.data_dir / "secrets" / "passwords"
    assert stat.S_IMODE(pw.stat().st_mode) == 0o600
    # generated, not hard-coded: two clouds never share passwords
    assert clouds["onestack"]["auth"]["password"] != clouds["onestack-admin"]["auth"]["password"]


def test_every_response_has_a_request_id(server: Server) -> None:
    with urllib.request.urlopen(server.url + "/healthcheck") as r:
        assert r.headers["x-openstack-request-id"].startswith("req-")


def _validate(server: Server, caller: str, subject: str) -> int:
    req = urllib.request.Request(
        server.url + "/identity/v3/auth/tokens",
        headers={"X-Auth-Token": caller, "X-Subject-Token": subject},
    )
    try:
        with urllib.request.urlopen(req) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_restart_resumes_the_same_cloud_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data, free_port())
    project = first.openstack("project", "create", "kept", "-f", "value", "-c", "id").strip()
    token_before = first.openstack("token", "issue", "-f", "value", "-c", "id").strip()
    clouds_before = yaml.safe_load(first.clouds_yaml.read_text())
    assert stop_server(first) == 0
    second = start_server(data, free_port())
    try:
        clouds = yaml.safe_load(second.clouds_yaml.read_text())
        assert clouds["clouds"]["onestack"]["auth"]["password"] == \
            clouds_before["clouds"]["onestack"]["auth"]["password"]
        # the catalog follows the new port
        assert clouds["clouds"]["onestack"]["auth"]["auth_url"] == second.url + "/identity/v3"
        token_after = second.openstack("token", "issue", "-f", "value", "-c", "id").strip()
        # a token issued before the restart is still valid: keys live in the data dir
        assert _validate(second, token_after, token_before) == 200
        assert project in second.openstack("project", "list", "-f", "value", "-c", "ID")
        assert second.url in second.openstack("endpoint", "list", "-f", "value", "-c", "URL")
    finally:
        assert stop_server(second) == 0
