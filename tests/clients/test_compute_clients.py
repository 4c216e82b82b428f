"""The compute service through real clients against ``onestack up`` (the session's
one server process, the default ``fake`` compute driver): ``openstack server
create --wait`` on a tenant network with a key pair, list/show, stop, start,
reboot, the console log and ``delete --wait``; the same life through
openstacksdk's compute proxy; and the CLI's exit status and Nova's message when
the request is wrong. As the demo project's member ("onestack"), as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openstack
import pytest

from tests.clients.conftest import Server

pytestmark = pytest.mark.slow

ADMIN = "onestack-admin"
MEMBER = "onestack"


def show(server: Server, *args: str, cloud: str = MEMBER) -> Any:
    """Run a CLI command with ``-f json`` and return what it printed, parsed."""
    return json.loads(server.openstack(*args, "-f", "json", cloud=cloud))


def fails(server: Server, *args: str, cloud: str = MEMBER) -> str:
    """Run a CLI command that must fail: asserts a non-zero exit status and
    returns its stderr."""
    exe = Path(sys.executable).with_name("openstack")
    proc = subprocess.run([str(exe), *args], env=server.env(cloud), capture_output=True,
                          check=False, text=True, timeout=120)
    assert proc.returncode != 0, f"openstack {' '.join(args)} succeeded: {proc.stdout}"
    return proc.stderr


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def connect(server: Server, cloud: str = MEMBER) -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(config_files=[str(server.clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud))


def wait_status(server: Server, name: str, status: str, timeout: float = 30) -> Any:
    """Poll ``server show`` until its status is ``status`` and no task is under way."""
    deadline = time.monotonic() + timeout
    while True:
        got = show(server, "server", "show", name)
        if got["status"] == status and not got.get("OS-EXT-STS:task_state"):
            return got
        assert time.monotonic() < deadline, f"{name} stayed {got['status']}"
        time.sleep(0.2)


@dataclass
class Setup:
    image: str
    network: str
    network_name: str
    cidr: str
    key: str


@pytest.fixture(scope="module")
def setup(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A tiny image, a network with a subnet and a key pair of the member's."""
    disk = tmp_path_factory.mktemp("img") / "tiny.raw"
    disk.write_bytes(b"\0" * 65536)
    image = show(server, "image", "create", "--file", str(disk), "--disk-format", "raw",
                 "--container-format", "bare", unique("tiny"))
    assert image["status"] == "active"
    net = show(server, "network", "create", unique("vmnet"))
    cidr = "10.77.0.0/24"
    show(server, "subnet", "create", "--network", net["id"], "--subnet-range", cidr,
         unique("vmsub"))
    key = unique("k")
    private = server.openstack("keypair", "create", key, cloud=MEMBER)
    assert "PRIVATE KEY" in private
    yield Setup(image["id"], net["id"], net["name"], cidr, key)
    server.openstack("keypair", "delete", key, cloud=MEMBER, check=False)
    server.openstack("network", "delete", net["id"], cloud=MEMBER, check=False)
    server.openstack("image", "delete", image["id"], cloud=MEMBER, check=False)


def test_fake_driver_runs_the_host(server: Server) -> None:
    hyps = show(server, "hypervisor", "list", "--long", cloud=ADMIN)
    assert hyps and {h["Hypervisor Type"] for h in hyps} == {"fake"}


# OpenStackClient 10 sends every image boot as block_device_mapping_v2 (one entry:
# the image, boot_index 0, destination "local") as well as imageRef.


def check_active_on_network(server: Server, setup: Setup, name: str) -> Any:
    """``server show`` of an ACTIVE server with one fixed address on the network
    (from its subnet, on the one port compute made); the server."""
    got = show(server, "server", "show", name)
    assert got["status"] == "ACTIVE" and got["key_name"] == setup.key
    assert got["OS-EXT-STS:power_state"] in ("Running", 1)
    addresses = got["addresses"]
    assert list(addresses) == [setup.network_name], addresses
    (ip,) = addresses[setup.network_name]
    assert ip.startswith("10.77.0."), ip
    ports = show(server, "port", "list", "--server", got["id"])
    assert [p["Fixed IP Addresses"][0]["ip_address"] for p in ports] == [ip]
    return got


def test_cli_server_create_wait(server: Server, setup: Setup) -> None:
    name = unique("vm")
    created = show(server, "server", "create", "--image", setup.image, "--flavor", "m1.tiny",
                   "--network", setup.network, "--key-name", setup.key, "--wait", name)
    assert created["status"] == "ACTIVE" and created["name"] == name
    got = check_active_on_network(server, setup, name)
    assert got["id"] == created["id"]
    server.openstack("server", "delete", "--wait", name, cloud=MEMBER)


def test_cli_server_lifecycle(server: Server, setup: Setup,
                              request: pytest.FixtureRequest) -> None:
    """Everything after the create through the CLI (the server is made with the
    SDK, which posts no block_device_mapping_v2; see test_cli_server_create_wait)."""
    conn = connect(server)
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    name = unique("vm")
    srv = conn.compute.create_server(name=name, image_id=setup.image, flavor_id=flavor.id,
                                     key_name=setup.key, networks=[{"uuid": setup.network}])
    # the other client tests share this cloud: whatever fails below, the server
    # must not stay (its port would hold the default security group)
    request.addfinalizer(lambda: conn.compute.delete_server(srv.id, ignore_missing=True))
    conn.compute.wait_for_server(srv, status="ACTIVE", wait=60)
    got = check_active_on_network(server, setup, name)
    created = got
    assert got["flavor"].startswith("m1.tiny") if isinstance(got["flavor"], str) else (
        got["flavor"]["original_name"] == "m1.tiny")
    (ip,) = got["addresses"][setup.network_name]

    listed = show(server, "server", "list")
    assert [s["Status"] for s in listed if s["ID"] == created["id"]] == ["ACTIVE"]
    assert [s["Networks"] for s in listed if s["ID"] == created["id"]] == [
        {setup.network_name: [ip]}]

    server.openstack("server", "stop", name, cloud=MEMBER)
    got = wait_status(server, name, "SHUTOFF")
    assert got["OS-EXT-STS:power_state"] in ("Shutdown", 4)
    server.openstack("server", "start", name, cloud=MEMBER)
    wait_status(server, name, "ACTIVE")
    server.openstack("server", "reboot", "--wait", name, cloud=MEMBER)
    got = wait_status(server, name, "ACTIVE")
    actions = show(server, "server", "event", "list", name)
    assert {a["Action"] for a in actions} >= {"create", "stop", "start", "reboot"}

    console = server.openstack("console", "log", "show", name, cloud=MEMBER)
    assert "Linux version" in console, console
    # Nova's tail counts the pieces between newlines; the log ends with one, so
    # the last two pieces are the last line and ""
    last = server.openstack("console", "log", "show", "--lines", "2", name, cloud=MEMBER)
    assert last.strip() == console.strip().splitlines()[-1], last

    server.openstack("server", "delete", "--wait", name, cloud=MEMBER)
    assert created["id"] not in [s["ID"] for s in show(server, "server", "list")]
    err = fails(server, "server", "show", created["id"])
    assert "No Server found" in err or "could not be found" in err
    # its port went with it
    assert show(server, "port", "list", "--device-id", created["id"]) == []


def test_sdk_create_wait_delete(server: Server, setup: Setup) -> None:
    conn = connect(server)
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    srv = conn.compute.create_server(name=unique("sdk"), image_id=setup.image,
                                     flavor_id=flavor.id, key_name=setup.key,
                                     networks=[{"uuid": setup.network}])
    srv = conn.compute.wait_for_server(srv, status="ACTIVE", wait=60)
    assert srv.status == "ACTIVE" and srv.key_name == setup.key
    (addr,) = srv.addresses[setup.network_name]
    assert addr["addr"].startswith("10.77.0.") and addr["version"] == 4
    assert srv.id in [s.id for s in conn.compute.servers()]
    conn.compute.delete_server(srv)
    conn.compute.wait_for_delete(srv, wait=60)
    assert conn.compute.find_server(srv.id) is None

    # a flavorRef Nova does not know: the server's 400 and message, nothing made
    with pytest.raises(openstack.exceptions.BadRequestException) as err:
        conn.compute.create_server(name=unique("bad"), image_id=setup.image,
                                   flavor_id="no-such-flavor",
                                   networks=[{"uuid": setup.network}])
    assert "Invalid flavorRef provided." in str(err.value)
    assert [s for s in conn.compute.servers() if s.name.startswith("bad-")] == []


def test_cli_unknown_flavor_is_a_clean_error(server: Server, setup: Setup) -> None:
    before = show(server, "server", "list")
    name = unique("noflavor")
    args = ("server", "create", "--image", setup.image, "--flavor", "no-such", "--network",
            setup.network, "--wait", name)
    err = fails(server, *args)
    # a clean error: one line, no traceback
    assert err.strip() == "No Flavor found for no-such", err
    # the CLI looks the flavor up before it posts: Nova's 404 and message for it
    # are in the --debug trace, and nothing was posted
    trace = fails(server, "--debug", *args)
    bodies = [json.loads(line.split("RESP BODY: ", 1)[1]) for line in trace.splitlines()
              if "RESP BODY: " in line and "itemNotFound" in line]
    assert bodies[:1] == [{"itemNotFound": {
        "code": 404, "message": "Flavor no-such could not be found."}}], trace[-3000:]
    requests = [line for line in trace.splitlines() if line.startswith("REQ: curl")]
    assert any("-X GET" in r and "/flavors/no-such" in r for r in requests), requests
    assert not [r for r in requests if "-X POST" in r and "/servers" in r]
    assert show(server, "server", "list") == before


def test_cli_compute_quotas_are_unified_limits(server: Server) -> None:
    """``openstack quota set`` writes the project's unified limits in the identity
    service (``openstack limit list``); one changed there shows in ``quota show``."""
    project = show(server, "project", "create", unique("qp"), cloud=ADMIN)["id"]
    try:
        server.openstack("quota", "set", "--instances", "7", "--cores", "9", project,
                         cloud=ADMIN)
        limits = {x["Resource Name"]: x for x in show(server, "limit", "list", "--project",
                                                       project, cloud=ADMIN)}
        assert {k: v["Resource Limit"] for k, v in limits.items()} == {
            "servers": 7, "class:VCPU": 9}
        server.openstack("limit", "set", "--resource-limit", "3", limits["servers"]["ID"],
                         cloud=ADMIN)
        time.sleep(2.5)  # compute reuses what identity said for 2 s
        quota = {q["Resource"]: q["Limit"]
                 for q in show(server, "quota", "show", "--compute", project, cloud=ADMIN)}
        assert (quota["instances"], quota["cores"]) == (3, 9)
    finally:
        server.openstack("project", "delete", project, cloud=ADMIN, check=False)
