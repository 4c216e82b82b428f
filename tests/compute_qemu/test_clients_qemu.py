"""The qemu driver end to end through the standard client: a real ``onestack up``
process (``compute_driver = "qemu"``, TCG, taps on the Linux data plane) and the
``openstack`` CLI as the demo project's member, as a user would.

The test image is uploaded with ``openstack image create``; a tenant network with
DHCP, a router with the external gateway, a key pair; ``server create --wait``
boots a real guest whose console (``console log show``) shows it booted, took its
fixed IP by DHCP through the bridge and read its metadata from the metadata
*service* (http://169.254.169.254 via the DHCP port: the route comes from DHCP's
classless static routes, the proxy in the DHCP namespace asks compute); a floating
IP answers ping from the host; then stop, start, reboot, resize + confirm, a
snapshot, a rebuild from that snapshot (which boots and answers again) and delete.

Needs root and the data plane's tools (tests/dataplane) and the QEMU tools (this
directory); skipped otherwise. The cloud has its own external bridge and subnet;
its guests are killed and its kernel objects purged at the end, none may be left.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.compute.drivers import testimage
from onestack.network.app import owner_id
from tests.clients.conftest import Server, free_port, start_server, teardown_dataplane
from tests.dataplane.conftest import REASON
from tests.dataplane.helpers import owned_objects

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(REASON is not None, reason=f"Linux data plane unavailable: {REASON}"),
]

MEMBER = "onestack"
M = testimage.MARKER
BOOT_TIMEOUT = 180.0  # TCG on a shared machine


def start_cloud(data_dir: Path) -> Server:
    """``onestack up`` with the qemu driver (TCG, taps) on the Linux data plane, with
    its own external bridge and subnet (no NAT to the uplink)."""
    return start_server(data_dir, free_port(), healthy_within=60, env={
        "ONESTACK_NETWORK__DATAPLANE": "linux",
        "ONESTACK_NETWORK__EXTERNAL_CIDR": f"172.28.{os.urandom(1)[0]}.0/24",
        "ONESTACK_COMPUTE__COMPUTE_DRIVER": "qemu",
        "ONESTACK_COMPUTE__QEMU_ACCEL": "tcg",
        "ONESTACK_COMPUTE__QEMU_NETWORK": "tap",
        "ONESTACK_COMPUTE__SHUTDOWN_TIMEOUT": "10",
    })


def kill_guests(data_dir: Path) -> None:
    for pidfile in (data_dir / "compute" / "instances").glob("*/qemu.pid"):
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, image: testimage.TestImage
          ) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("qemu-cloud") / "data"
    srv = None
    try:
        srv = start_cloud(data_dir)
        yield srv
    finally:
        kill_guests(data_dir)  # whatever the test did, no guest stays
        if srv is not None:
            srv.proc.send_signal(signal.SIGTERM)
            try:
                srv.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                srv.proc.kill()
                srv.proc.wait()
        kill_guests(data_dir)
        error = teardown_dataplane(data_dir)
        assert not error, error
        left = asyncio.run(owned_objects(owner_id(data_dir)))
        assert left == {"links": [], "namespaces": [], "tables": []}, left


def cli(cloud: Server, *args: str) -> str:
    return cloud.openstack(*args, cloud=MEMBER)


def show(cloud: Server, *args: str) -> Any:
    return json.loads(cli(cloud, *args, "-f", "json"))


def server_show(cloud: Server, name: str) -> Any:
    return show(cloud, "server", "show", name)


def wait_status(cloud: Server, name: str, status: str, timeout: float = 120) -> Any:
    """``server show`` once it is ``status`` with no task under way."""
    deadline = time.monotonic() + timeout
    while True:
        got = server_show(cloud, name)
        if got["status"] == status and not got.get("OS-EXT-STS:task_state"):
            return got
        assert got["status"] != "ERROR", got.get("fault")
        assert time.monotonic() < deadline, f"{name} stayed {got['status']}"
        time.sleep(0.5)


def wait_boot(cloud: Server, name: str, boots: int, timeout: float = BOOT_TIMEOUT) -> str:
    """Poll ``console log show`` until the log has ``boots`` boots and the last one
    reached the ready marker; that last boot's part of the log."""
    deadline = time.monotonic() + timeout
    while True:
        log = cli(cloud, "console", "log", "show", name)
        last = log.rsplit(testimage.BOOTED, 1)[-1]
        if log.count(testimage.BOOTED) == boots and testimage.READY in last:
            return last
        assert log.count(testimage.BOOTED) <= boots, log[-3000:]
        assert time.monotonic() < deadline, f"boot {boots} not ready:\n{log[-3000:]}"
        time.sleep(1)


def flavor_name(server: Any) -> str:
    """The flavor's name in ``server show`` (a dict from 2.47, else "name (id)")."""
    flavor = server["flavor"]
    return str(flavor["original_name"] if isinstance(flavor, dict) else flavor.split()[0])


def pings(address: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = subprocess.run(["busybox", "ping", "-c", "1", "-W", "1", address],
                              capture_output=True, check=False)
        if proc.returncode == 0:
            return True
    return False


def routed_network(cloud: Server, tag: str, cidr: str) -> dict[str, Any]:
    """With the CLI: a network with the subnet ``cidr`` behind a router to `public`
    (for floating IPs), and ICMP allowed into the default group (which lets nothing
    in from outside) for the pings; the network."""
    net = show(cloud, "network", "create", f"net-{tag}")
    sub = show(cloud, "subnet", "create", "--network", net["id"], "--subnet-range", cidr,
               f"sub-{tag}")
    router = show(cloud, "router", "create", f"r-{tag}")
    cli(cloud, "router", "set", "--external-gateway", "public", router["id"])
    cli(cloud, "router", "add", "subnet", router["id"], sub["id"])
    cli(cloud, "security", "group", "rule", "create", "--protocol", "icmp", "--ingress",
        "default")
    return net


def test_server_life_with_the_cli(cloud: Server, image: testimage.TestImage) -> None:
    tag = uuid.uuid4().hex[:6]
    img = show(cloud, "image", "create", "--file", str(image.disk), "--disk-format", "qcow2",
               "--container-format", "bare", f"testimage-{tag}")
    assert img["status"] == "active"
    net = routed_network(cloud, tag, "10.66.0.0/24")
    key = f"k-{tag}"
    assert "PRIVATE KEY" in cli(cloud, "keypair", "create", key)

    name = f"vm-{tag}"
    created = show(cloud, "server", "create", "--image", img["id"], "--flavor", "m1.nano",
                   "--network", net["id"], "--key-name", key, "--wait", name)
    assert created["status"] == "ACTIVE"
    sid = created["id"]
    got = server_show(cloud, name)
    assert got["OS-EXT-STS:power_state"] in ("Running", 1)
    (ip,) = got["addresses"][net["name"]]
    assert ip.startswith("10.66.0."), ip

    # booted, took its fixed IP from dnsmasq, read the metadata service
    boot = wait_boot(cloud, name, 1)
    assert f"{M} dhcp {ip}\n" in boot.replace("\r", ""), boot
    assert f"{M} metadata {sid} (service)" in boot, boot

    fip = show(cloud, "floating", "ip", "create", "public")["floating_ip_address"]
    cli(cloud, "server", "add", "floating", "ip", name, fip)
    assert pings(fip), f"{fip} (the guest's floating IP) does not answer"
    ports = show(cloud, "port", "list", "--server", sid)
    assert [p["Status"] for p in ports] == ["ACTIVE"]

    cli(cloud, "server", "stop", name)
    got = wait_status(cloud, name, "SHUTOFF")
    assert got["OS-EXT-STS:power_state"] in ("Shutdown", 4)
    assert not pings(fip, timeout=2)
    cli(cloud, "server", "start", name)
    wait_status(cloud, name, "ACTIVE")
    wait_boot(cloud, name, 2)
    cli(cloud, "server", "reboot", "--wait", name)
    wait_status(cloud, name, "ACTIVE")
    wait_boot(cloud, name, 3)  # a soft reboot: ACPI power-off, then a new boot

    cli(cloud, "server", "resize", "--flavor", "m1.micro", "--wait", name)
    got = wait_status(cloud, name, "VERIFY_RESIZE")
    assert flavor_name(got) == "m1.micro", got["flavor"]
    cli(cloud, "server", "resize", "confirm", name)
    got = wait_status(cloud, name, "ACTIVE")
    assert flavor_name(got) == "m1.micro", got["flavor"]
    boot = wait_boot(cloud, name, 4)
    assert f"{M} metadata {sid} (service)" in boot, boot

    snap = show(cloud, "server", "image", "create", "--name", f"snap-{tag}", "--wait", name)
    snap = show(cloud, "image", "show", snap["id"])
    assert snap["status"] == "active" and snap["disk_format"] == "qcow2", snap
    wait_status(cloud, name, "ACTIVE")

    # the snapshot boots: a rebuild from it is a new guest with the same port
    cli(cloud, "server", "rebuild", "--image", snap["id"], "--wait", name)
    got = wait_status(cloud, name, "ACTIVE")
    assert got["image"].startswith(f"snap-{tag}") or snap["id"] in str(got["image"]), got
    boot = wait_boot(cloud, name, 1)  # a rebuild makes the guest anew
    assert f"{M} dhcp {ip}\n" in boot.replace("\r", ""), boot
    assert f"{M} metadata {sid} (service)" in boot, boot
    assert pings(fip), f"{fip} does not answer after the rebuild"

    gdir = cloud.data_dir / "compute" / "instances" / sid
    assert (gdir / "qemu.pid").exists()
    cli(cloud, "server", "delete", "--wait", name)
    assert sid not in [s["ID"] for s in show(cloud, "server", "list")]
    assert not gdir.exists()
    assert show(cloud, "port", "list", "--device-id", sid) == []
    fips = show(cloud, "floating", "ip", "list", "--floating-ip-address", fip)
    assert [f["Port"] for f in fips] == [None]
    assert not pings(fip, timeout=2)
