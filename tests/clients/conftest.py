"""A real ``onestack up`` process (one per test session) for the real clients:
python-openstackclient, openstacksdk and keystoneauth1 with its clouds.yaml."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    data_dir: Path
    clouds_yaml: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def env(self, cloud: str = "onestack-admin") -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(OS_CLIENT_CONFIG_FILE=str(self.clouds_yaml), OS_CLOUD=cloud)
        return env

    def openstack(self, *args: str, cloud: str = "onestack-admin", check: bool = True) -> str:
        """Run the real ``openstack`` CLI and return its stdout."""
        exe = Path(sys.executable).with_name("openstack")
        proc = subprocess.run(
            [str(exe), *args], env=self.env(cloud), capture_output=True, text=True, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"openstack {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout if check else proc.stdout + proc.stderr


STARTED: set[Path] = set()  # data dirs of every server started, purged at the end


@pytest.fixture(scope="session", autouse=True)
def _purge_started_servers() -> Iterator[None]:
    """Whatever a test did with its servers, their kernel objects go at the end
    (a stopped server leaves its data plane up on purpose)."""
    yield
    for data_dir in sorted(STARTED):
        error = teardown_dataplane(data_dir)
        if error:
            print(f"data-plane teardown of {data_dir}: {error}", file=sys.stderr)


def start_server(data_dir: Path, port: int, env: dict[str, str] | None = None,
                 healthy_within: float = 30.0) -> Server:
    """Start ``onestack up`` with its own external bridge and subnet (a cloud already
    running on this host keeps br-ex and 172.24.4.0/24), without NAT to the uplink;
    ``env`` adds to (or overrides) its environment."""
    STARTED.add(data_dir)
    extra = env or {}
    log = data_dir.parent / f"onestack-{port}.log"
    exe = Path(sys.executable).with_name("onestack")
    env = {
        **os.environ,
        "ONESTACK_LOG_LEVEL": "warning",
        "ONESTACK_NETWORK__EXTERNAL_BRIDGE": "brx" + os.urandom(3).hex(),
        "ONESTACK_NETWORK__EXTERNAL_CIDR": f"172.30.{os.urandom(1)[0]}.0/24",
        "ONESTACK_NETWORK__EXTERNAL_MASQUERADE": "false",
        **extra,
    }
    # the fake compute driver unless the test chose one (the environment or its toml)
    toml = data_dir / "onestack.toml"
    if ("ONESTACK_COMPUTE__COMPUTE_DRIVER" not in env
            and not (toml.exists() and "compute_driver" in toml.read_text())):
        env["ONESTACK_COMPUTE__COMPUTE_DRIVER"] = "fake"
    proc = subprocess.Popen(
        [str(exe), "up", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + healthy_within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"onestack up exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/healthcheck", timeout=1) as r:
                if r.status == 200:
                    return Server(url, data_dir, data_dir / "clouds.yaml", proc, log)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"onestack up did not become healthy: {log.read_text()[-2000:]}")


def stop_server(server: Server) -> int:
    server.proc.send_signal(signal.SIGTERM)
    return server.proc.wait(timeout=20)


def teardown_dataplane(data_dir: Path) -> str:
    """Best effort: remove the kernel objects (bridges, namespaces, dnsmasq, nft
    tables) a stopped server of ``data_dir`` left (a server leaves them on stop so
    that VMs survive a restart). Returns what went wrong ("" if nothing)."""
    if os.geteuid() != 0 or not (data_dir / "network").exists():
        return ""
    exe = Path(sys.executable).with_name("onestack")
    proc = subprocess.run([str(exe), "down", "--data-dir", str(data_dir), "--purge-network"],
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.stderr.strip()[-2000:] if proc.returncode else ""


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("cloud") / "data"
    srv = start_server(data_dir, free_port())
    yield srv
    stop_server(srv)
    error = teardown_dataplane(data_dir)
    if error:
        print(f"data-plane teardown of {data_dir}: {error}", file=sys.stderr)
