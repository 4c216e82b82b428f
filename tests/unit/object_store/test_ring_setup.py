"""``onestack ring`` and how ``app.make_state`` takes the ring it writes: this host's
devices (by host:port) get directories and the daemons, the others are reached over
HTTP; the missing pieces of a copied ring stop the start with a clear message."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from objstore_cluster import body

from onestack import cli
from onestack.core import config
from onestack.core.db import Database
from onestack.core.service import Runtime
from onestack.object_store.app import make_state
from onestack.object_store.remote import RoutingBackend
from onestack.object_store.service.daemons import ObjectDaemons
from onestack.object_store.state import ObjectStoreState

HOST_A, HOST_B = 8780, 8781


def ring(data_dir: Path, *args: str) -> None:
    assert cli.main(["ring", *args, "--data-dir", str(data_dir)]) == 0


def two_host_ring(data_dir: Path) -> None:
    ring(data_dir, "create", "--part-power", "4", "--replicas", "3")
    devices = ((HOST_A, "a1"), (HOST_A, "a2"), (HOST_B, "b1"), (HOST_B, "b2"))
    for zone, (port, name) in enumerate(devices, 1):
        ring(data_dir, "add", "--host", "127.0.0.1", "--port", str(port), "--device", name,
             "--zone", str(zone))
    ring(data_dir, "rebalance")


def copy_ring(src: Path, dst: Path) -> None:
    """What an operator copies to another host."""
    (dst / "secrets").mkdir(parents=True)
    shutil.copy(src / "object.ring.json", dst)
    for name in ("object-hash-suffix", "object-cluster"):
        shutil.copy(src / "secrets" / name, dst / "secrets")


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., ObjectStoreState]]:
    runtimes: list[Runtime] = []

    def starter(data_dir: Path, port: int = HOST_A) -> ObjectStoreState:
        settings = config.load(data_dir, environ={}, port=port)
        runtime = Runtime(settings=settings, db=Database(settings.db_url))
        runtimes.append(runtime)
        return make_state(runtime)

    yield starter
    for runtime in runtimes:
        for hook in reversed(runtime.shutdown):
            await hook()
        await runtime.db.close()


def devices_made(data_dir: Path) -> list[str]:
    root = data_dir / "object-devices"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_ring_commands_write_the_builder_ring_and_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two_host_ring(tmp_path)
    assert "wrote" in capsys.readouterr().out
    ring(tmp_path, "show")
    shown = capsys.readouterr().out
    assert "object.ring.json is up to date" in shown
    assert "3 replicas, 4 devices" in shown and f"127.0.0.1:{HOST_B}/b2" in shown
    data = json.loads((tmp_path / "object.ring.json").read_text())
    assert [d["device"] for d in data["devices"]] == ["a1", "a2", "b1", "b2"]
    for name in ("object-hash-suffix", "object-cluster"):
        assert (tmp_path / "secrets" / name).stat().st_mode & 0o077 == 0
    ring(tmp_path, "set-weight", "--id", "3", "--weight", "0")
    ring(tmp_path, "show")
    assert "run `onestack ring rebalance`" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["add", "--host", "h", "--port", "1", "--device", "d"], "run `onestack ring create`"),
    (["rebalance"], "run `onestack ring create`"),
])
def test_ring_commands_need_a_builder(tmp_path: Path, args: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        cli.main(["ring", *args, "--data-dir", str(tmp_path)])


def test_ring_command_errors_are_one_line(tmp_path: Path) -> None:
    ring(tmp_path, "create", "--part-power", "4", "--replicas", "3")
    with pytest.raises(SystemExit, match="exists"):
        cli.main(["ring", "create", "--part-power", "4", "--data-dir", str(tmp_path)])
    ring(tmp_path, "add", "--host", "h", "--port", "1", "--device", "d")
    with pytest.raises(SystemExit, match="already in the ring"):
        cli.main(["ring", "add", "--host", "h", "--port", "1", "--device", "d",
                  "--data-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="3 replicas need at least"):
        cli.main(["ring", "rebalance", "--data-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="no device 7"):
        cli.main(["ring", "remove", "--id", "7", "--data-dir", str(tmp_path)])
    assert not (tmp_path / "object.ring.json").exists()


async def test_each_host_serves_only_its_devices(
    tmp_path: Path, start: Callable[..., ObjectStoreState]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    two_host_ring(a)
    copy_ring(a, b)
    st_a, st_b = start(a, HOST_A), start(b, HOST_B)
    assert devices_made(a) == ["a1", "a2"] and devices_made(b) == ["b1", "b2"]
    for st, names in ((st_a, ["a1", "a2"]), (st_b, ["b1", "b2"])):
        daemons = ObjectDaemons.for_state(st)
        assert daemons is not None and [d.device for d in daemons.devices] == names
    assert st_a.ring.get_nodes("AUTH_t", "c", "o") == st_b.ring.get_nodes("AUTH_t", "c", "o")


async def test_a_copied_ring_needs_its_secrets(
    tmp_path: Path, start: Callable[..., ObjectStoreState]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    two_host_ring(a)
    b.mkdir()
    shutil.copy(a / "object.ring.json", b)
    with pytest.raises(config.ConfigError, match="object-hash-suffix is missing"):
        start(b, HOST_B)
    (b / "secrets").mkdir()
    shutil.copy(a / "secrets" / "object-hash-suffix", b / "secrets")
    with pytest.raises(config.ConfigError, match="object-cluster is missing"):
        start(b, HOST_B)
    assert devices_made(b) == []


async def test_a_builder_without_ring_stops_the_start(
    tmp_path: Path, start: Callable[..., ObjectStoreState]
) -> None:
    ring(tmp_path, "create", "--part-power", "4")
    with pytest.raises(config.ConfigError, match="run `onestack ring rebalance`"):
        start(tmp_path)
    assert not (tmp_path / "object.ring.json").exists()


async def test_the_first_start_ring_follows_the_port(
    tmp_path: Path, start: Callable[..., ObjectStoreState]
) -> None:
    first = start(tmp_path, 8780)
    assert devices_made(tmp_path) == ["d1", "d2", "d3"]
    await first.writer.put("AUTH_t", "c", "o", body(b"kept"), {})
    again = start(tmp_path, 9999)  # restarted on another port: the same disks, locally
    backend = again.extras["backend"]
    assert isinstance(backend, RoutingBackend)
    assert backend.local_devices(again.ring.devices) == again.ring.devices
    async with await again.reader.open("AUTH_t", "c", "o") as replica:
        assert b"".join([c async for c in replica.iter()]) == b"kept"


async def test_an_operator_ring_replaces_the_first_start_ring(
    tmp_path: Path, start: Callable[..., ObjectStoreState]
) -> None:
    start(tmp_path, HOST_A)
    assert (tmp_path / "object.ring.auto").exists()
    suffix = (tmp_path / "secrets" / "object-hash-suffix").read_text()
    ring(tmp_path, "create", "--part-power", "4", "--force")
    ring(tmp_path, "add", "--host", "127.0.0.1", "--port", str(HOST_B), "--device", "b1")
    ring(tmp_path, "rebalance")
    assert not (tmp_path / "object.ring.auto").exists()
    assert (tmp_path / "secrets" / "object-hash-suffix").read_text() == suffix  # kept
    st = start(tmp_path, HOST_A)
    daemons = ObjectDaemons.for_state(st)
    assert daemons is not None and daemons.devices == []  # b1 is the other host's
