"""The real ``openstack`` CLI against ``onestack up``: regions, services,
endpoints, credentials, EC2 credentials, application credentials (and logging
in with one), registered limits and limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import Server

pytestmark = pytest.mark.slow


def _json(server: Server, *args: str, cloud: str = "onestack-admin") -> Any:
    return json.loads(server.openstack(*args, "-f", "json", cloud=cloud))


def test_regions_services_endpoints(server: Server) -> None:
    region = f"R-{uuid.uuid4().hex[:8]}"
    stype = f"svc-{uuid.uuid4().hex[:8]}"
    r = _json(server, "region", "create", "--description", "a region", region)
    assert r["region"] == region and r["description"] == "a region"
    server.openstack("region", "set", "--description", "changed", region)
    assert _json(server, "region", "show", region)["description"] == "changed"
    assert region in {x["Region"] for x in _json(server, "region", "list")}

    svc = _json(server, "service", "create", "--name", "thing", "--description", "d", stype)
    assert svc["type"] == stype and svc["enabled"] is True
    server.openstack("service", "set", "--name", "thing2", svc["id"])
    assert _json(server, "service", "show", svc["id"])["name"] == "thing2"
    ep = _json(server, "endpoint", "create", "--region", region, svc["id"], "public",
               "http://thing.example/v1")
    assert ep["region"] == region and ep["url"] == "http://thing.example/v1"
    server.openstack("endpoint", "set", "--url", "http://moved.example/v1", ep["id"])
    assert _json(server, "endpoint", "show", ep["id"])["url"] == "http://moved.example/v1"
    listed = _json(server, "endpoint", "list", "--service", svc["id"])
    assert [x["ID"] for x in listed] == [ep["id"]]
    # the new endpoint is in the catalog of a new token
    catalog = _json(server, "catalog", "list")
    assert any(c["Type"] == stype for c in catalog)

    out = server.openstack("region", "delete", region, check=False)
    assert "associated endpoints" in out
    server.openstack("endpoint", "delete", ep["id"])
    server.openstack("service", "delete", svc["id"])
    server.openstack("region", "delete", region)
    assert region not in {x["Region"] for x in _json(server, "region", "list")}


def test_credentials_and_ec2(server: Server) -> None:
    cred = _json(server, "credential", "create", "--type", "cert", "demo", "blob-1")
    assert cred["blob"] == "blob-1"
    server.openstack("credential", "set", "--type", "cert", "--data", "blob-2", "--user", "demo",
                     cred["id"])
    assert _json(server, "credential", "show", cred["id"])["blob"] == "blob-2"
    assert cred["id"] in {x["ID"] for x in _json(server, "credential", "list")}
    # the owner sees it; the demo user sees nothing of admin's
    assert cred["id"] in {x["ID"] for x in _json(server, "credential", "list", cloud="onestack")}
    server.openstack("credential", "delete", cred["id"])

    ec2 = _json(server, "ec2", "credentials", "create", cloud="onestack")
    assert len(ec2["access"]) == 32 and len(ec2["secret"]) == 32
    listed = _json(server, "ec2", "credentials", "list", cloud="onestack")
    assert ec2["access"] in {x["Access"] for x in listed}
    shown = _json(server, "ec2", "credentials", "show", ec2["access"], cloud="onestack")
    assert shown["secret"] == ec2["secret"]
    server.openstack("ec2", "credentials", "delete", ec2["access"], cloud="onestack")
    listed = _json(server, "ec2", "credentials", "list", cloud="onestack")
    assert ec2["access"] not in {x["Access"] for x in listed}


def _as_app_cred(server: Server, ac: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_TYPE="v3applicationcredential",
               OS_AUTH_URL=server.url + "/identity/v3",
               OS_APPLICATION_CREDENTIAL_ID=ac["ID"],
               OS_APPLICATION_CREDENTIAL_SECRET=ac["Secret"],
               OS_IDENTITY_API_VERSION="3")
    exe = Path(sys.executable).with_name("openstack")
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_application_credentials(server: Server) -> None:
    name = f"ac-{uuid.uuid4().hex[:8]}"
    ac = _json(server, "application", "credential", "create", "--role", "reader",
               "--description", "for tests", name, cloud="onestack")
    assert ac["Name"] == name and ac["Secret"]
    assert [r["name"] for r in ac["Roles"]] == ["reader"]
    assert name in {x["Name"] for x in _json(server, "application", "credential", "list",
                                              cloud="onestack")}
    assert _json(server, "application", "credential", "show", name,
                 cloud="onestack")["ID"] == ac["ID"]

    token = _as_app_cred(server, ac, "token", "issue", "-f", "json")
    assert token.returncode == 0, token.stderr
    assert json.loads(token.stdout)["project_id"] == ac["Project ID"]
    # a restricted application credential cannot make another
    child = _as_app_cred(server, ac, "application", "credential", "create", name + "-child")
    assert child.returncode != 0 and "403" in child.stderr

    server.openstack("application", "credential", "delete", name, cloud="onestack")
    assert _as_app_cred(server, ac, "token", "issue").returncode != 0


def test_limits(server: Server) -> None:
    resource = f"res-{uuid.uuid4().hex[:8]}"
    reg = _json(server, "registered", "limit", "create", "--service", "identity",
                "--default-limit", "10", "--region", "RegionOne", resource)
    assert reg["default_limit"] == 10 and reg["region_id"] == "RegionOne"
    server.openstack("registered", "limit", "set", "--default-limit", "12", reg["id"])
    assert _json(server, "registered", "limit", "show", reg["id"])["default_limit"] == 12
    listed = _json(server, "registered", "limit", "list", "--resource-name", resource)
    assert [x["ID"] for x in listed] == [reg["id"]]

    lim = _json(server, "limit", "create", "--project", "demo", "--service", "identity",
                "--resource-limit", "20", "--region", "RegionOne", resource)
    assert lim["resource_limit"] == 20
    server.openstack("limit", "set", "--resource-limit", "25", lim["id"])
    assert _json(server, "limit", "show", lim["id"])["resource_limit"] == 25
    assert lim["id"] in {x["ID"] for x in _json(server, "limit", "list", cloud="onestack")}
    assert lim["id"] in {x["ID"] for x in _json(server, "limit", "list",
                                                "--resource-name", resource)}
    server.openstack("limit", "delete", lim["id"])
    server.openstack("registered", "limit", "delete", reg["id"])
    assert _json(server, "registered", "limit", "list", "--resource-name", resource) == []
