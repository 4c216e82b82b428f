"""Tests for tools/tempest_run.py: tempest.conf generation from clouds.yaml + catalog."""

from __future__ import annotations

import configparser
import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))

import tempest_run

CLOUDS_YAML = """
clouds:
  onestack:
    auth:
      auth_url: http://127.0.0.1:8780/identity/v3
      username: demo
      password: demo-secret
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
  onestack-admin:
    auth:
      auth_url: http://127.0.0.1:8780/identity/v3/
      username: admin
      password: admin-secret
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
"""


def _endpoint(service_type: str, path: str) -> dict[str, object]:
    url = f"http://127.0.0.1:8780/{path}"
    return {
        "type": service_type,
        "name": path,
        "id": path,
        "endpoints": [{"interface": "public", "region": "RegionOne", "url": url}],
    }


def _conf(catalog: list[dict[str, object]], tmp_path: Path) -> configparser.ConfigParser:
    conf = tempest_run.build_conf(yaml.safe_load(CLOUDS_YAML), catalog, tmp_path)
    # Round-trip through text, as tempest reads it from disk.
    text = io.StringIO()
    conf.write(text)
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(text.getvalue())
    return parsed


def test_auth_and_identity_come_from_admin_cloud(tmp_path: Path) -> None:
    conf = _conf([_endpoint("identity", "identity")], tmp_path)
    assert conf["auth"]["admin_username"] == "admin"
    assert conf["auth"]["admin_password"] == "admin-secret"
    assert conf["auth"]["admin_project_name"] == "admin"
    assert conf["auth"]["admin_domain_name"] == "Default"
    assert conf.getboolean("auth", "use_dynamic_credentials")
    assert conf["identity"]["uri_v3"] == "http://127.0.0.1:8780/identity/v3"
    assert conf["identity"]["auth_version"] == "v3"
    assert conf["identity"]["region"] == "RegionOne"
    assert conf["identity"]["default_domain_id"] == "default"
    assert conf.getboolean("identity", "disable_ssl_certificate_validation")
    assert not conf.getboolean("identity-feature-enabled", "api_v2")
    assert not conf.getboolean("identity-feature-enabled", "trust")
    assert conf["DEFAULT"]["log_dir"] == str(tmp_path / "logs")
    assert conf["oslo_concurrency"]["lock_path"] == str(tmp_path / "tempest_lock")


def test_identity_only_catalog_disables_every_other_service(tmp_path: Path) -> None:
    conf = _conf([_endpoint("identity", "identity")], tmp_path)
    for name in ("nova", "glance", "swift", "cinder", "neutron", "horizon", "heat"):
        assert not conf.getboolean("service_available", name), name


def test_services_in_catalog_switch_on(tmp_path: Path) -> None:
    catalog = [
        _endpoint("identity", "identity"),
        _endpoint("compute", "compute/v2.1"),
        _endpoint("image", "image"),
        _endpoint("volumev3", "volume/v3"),
        _endpoint("network", "networking"),
    ]
    conf = _conf(catalog, tmp_path)
    for name in ("nova", "glance", "cinder", "neutron"):
        assert conf.getboolean("service_available", name), name
    for name in ("swift", "heat", "horizon"):
        assert not conf.getboolean("service_available", name), name


def test_block_storage_alias_enables_cinder(tmp_path: Path) -> None:
    conf = _conf([_endpoint("block-storage", "volume/v3")], tmp_path)
    assert conf.getboolean("service_available", "cinder")


def test_write_workspace_inits_once_and_rewrites_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **_: object) -> None:
        calls.append(cmd)
        workdir = Path(cmd[-1])
        (workdir / "etc").mkdir(parents=True)
        (workdir / ".stestr.conf").write_text("[DEFAULT]\n")

    monkeypatch.setattr(subprocess, "run", fake_run)
    workdir = tmp_path / "ws"
    conf = tempest_run.build_conf(yaml.safe_load(CLOUDS_YAML), [], workdir)
    path = tempest_run.write_workspace(workdir, conf)
    tempest_run.write_workspace(workdir, conf)
    assert len(calls) == 1 and calls[0][1] == "init"
    assert "admin_password = admin-secret" in path.read_text()
