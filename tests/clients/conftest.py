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


def start_server(data_dir: Path, port: int) -> Server:
    log = data_dir.parent / f"onestack-{port}.log"
    exe = Path(sys.executable).with_name("onestack")
    proc = subprocess.Popen(
        [str(exe), "up", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "ONESTACK_LOG_LEVEL": "warning"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
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


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("cloud") / "data"
    srv = start_server(data_dir, free_port())
    yield srv
    stop_server(srv)
