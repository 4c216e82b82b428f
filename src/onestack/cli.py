"""The ``onestack`` command: ``up`` runs the cloud, the rest are operator tools."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onestack.core import config as config_mod
from onestack.core import host, logs

if TYPE_CHECKING:
    from onestack.object_store.builder import RingBuilder

PID_FILE = "onestack.pid"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where all state lives (default: %(default)s)",
                   default=None)


def _settings(args: argparse.Namespace, **overrides: object) -> config_mod.Settings:
    try:
        return config_mod.load(args.data_dir, **overrides)
    except config_mod.ConfigError as exc:
        raise SystemExit(f"onestack: {exc}") from None


def cmd_up(args: argparse.Namespace) -> int:
    import uvicorn

    from onestack.server import asgi_app

    settings = _settings(args, port=args.port, host=args.host, database_url=args.database_url)
    logs.setup(settings.log_level)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    pid_path = settings.path(PID_FILE)
    pid_path.write_text(str(os.getpid()))
    clouds = settings.path("clouds.yaml")
    print(
        f"OneStack is starting on {settings.base_url} (data: {settings.data_dir}).\n"
        f"When /healthcheck answers, use it with:\n"
        f"  export OS_CLIENT_CONFIG_FILE={clouds}\n"
        f"  export OS_CLOUD=onestack        # or onestack-admin\n"
        f"  openstack token issue",
        flush=True,
    )
    class Server(uvicorn.Server):
        # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so the
        # process would die "by signal"; a stop we asked for is a clean exit (0).
        def handle_exit(self, sig: int, frame: object) -> None:
            super().handle_exit(sig, frame)  # type: ignore[arg-type]
            self._captured_signals.clear()

        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets)
            # The code and the long-lived state loaded so far leave the garbage
            # collector's generations: full collections over them cost 20-500 ms
            # and landed on every 5th-10th request of a large listing.
            import gc

            gc.freeze()

    server = Server(
        uvicorn.Config(
            asgi_app(settings),
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
    )
    try:
        server.run()
    finally:
        pid_path.unlink(missing_ok=True)
    return 0 if server.started else 1


def _local_url(settings: config_mod.Settings) -> str:
    """This host's own server (``base_url`` may be another host or a load balancer)."""
    return settings.model_copy(update={"public_url": None}).base_url


def _running(settings: config_mod.Settings) -> dict[str, object]:
    pid_path = settings.path(PID_FILE)
    info: dict[str, object] = {"running": False}
    if pid_path.exists():
        try:
            pid = int(pid_path.read_text())
            os.kill(pid, 0)
            info.update(running=True, pid=pid)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    if info["running"]:
        try:
            with urllib.request.urlopen(_local_url(settings) + "/healthcheck", timeout=2) as r:
                info["healthy"] = r.status == 200
            with urllib.request.urlopen(_local_url(settings) + "/", timeout=2) as r:
                info["services"] = json.load(r)["services"]
        except OSError as exc:
            info["healthy"] = False
            info["error"] = str(exc)
    return info


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    caps = host.probe()
    cloud = _running(settings)
    if args.json:
        print(json.dumps({"data_dir": str(settings.data_dir), "cloud": cloud,
                          "host": caps.as_dict()}, indent=2))
        return 0
    print(f"data dir:       {settings.data_dir}")
    print(f"url:            {settings.base_url}")
    if cloud["running"]:
        health = "healthy" if cloud.get("healthy") else f"not answering ({cloud.get('error')})"
        print(f"cloud:          running (pid {cloud['pid']}), {health}")
        for svc in cloud.get("services", []):  # type: ignore[attr-defined]
            extra = f"  ({svc['status']})" if svc.get("status") else ""
            print(f"  {svc['type']:<13} {svc['url']}{extra}")
    else:
        print("cloud:          not running")
    print(f"root:           {'yes' if caps.root else 'no'}")
    print(f"network netns:  {'yes' if caps.network_namespaces else 'no (data plane off)'}")
    print(f"qemu:           {caps.qemu or 'not installed'}")
    print(f"qemu-img:       {caps.qemu_img or 'not installed'}")
    print(f"/dev/kvm:       {'present (usability is probed by compute)' if caps.dev_kvm else 'absent'}")
    return 0


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    from onestack.identity.fernet import KeyRepository

    settings = _settings(args)
    name = "credential-keys" if args.credential else "fernet-keys"
    repo = KeyRepository(settings.path(name), settings.identity.max_active_keys)
    repo.ensure()
    primary = repo.rotate()
    print(f"rotated {settings.path(name)}: primary key is now {primary}")
    pid_path = settings.path(PID_FILE)
    if pid_path.exists() and not args.credential:
        print("the running cloud picks up the new keys by itself")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    settings = _settings(args)
    info = _running(settings)
    if not info["running"]:
        print("not running")
    else:
        pid = int(info["pid"])  # type: ignore[call-overload]
        os.kill(pid, signal.SIGTERM)
        print(f"sent SIGTERM to {pid}")
        if args.purge_network:  # the data plane goes only once the process is gone
            deadline = time.monotonic() + 30
            while _running(settings)["running"] and time.monotonic() < deadline:
                time.sleep(0.2)
    if args.purge_network and os.geteuid() == 0 and settings.path("network").exists():
        import asyncio

        from onestack.network.app import purge_dataplane

        asyncio.run(purge_dataplane(settings.data_dir))
        print("removed the network data plane")
    return 0


RING_FILE = "object.ring.json"
BUILDER_FILE = "object.builder.json"


def _ring_builder(settings: config_mod.Settings) -> RingBuilder:
    from onestack.object_store.builder import RingBuilder

    path = settings.path(BUILDER_FILE)
    if not path.exists():
        raise SystemExit(f"onestack: no {path}: run `onestack ring create` first")
    return RingBuilder.load(path)


def _ring_create(settings: config_mod.Settings, args: argparse.Namespace) -> str:
    from onestack.core.files import load_or_create_secret
    from onestack.object_store.builder import RingBuilder

    path = settings.path(BUILDER_FILE)
    if path.exists() and not args.force:
        raise SystemExit(f"onestack: {path} exists (--force replaces it: objects stored "
                         "under the old ring may then not be found)")
    builder = RingBuilder(args.part_power, args.replicas)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # every host must hold the same two secrets: made here, copied with the ring
    load_or_create_secret(settings.path("secrets", "object-hash-suffix"), 16)
    load_or_create_secret(settings.path(settings.object_store.cluster_secret_file))
    builder.save(path)
    replicas = args.replicas or "min(3, devices)"
    return f"created {path}: 2**{args.part_power} partitions, {replicas} replicas"


def _ring_change(settings: config_mod.Settings, args: argparse.Namespace) -> str:
    """``add``, ``remove`` and ``set-weight``: the builder changes, the ring at the
    next ``rebalance``."""
    builder = _ring_builder(settings)
    if args.ring_command == "add":
        dev = builder.add_device(host=args.host, port=args.port, device=args.device,
                                 zone=args.zone, weight=args.weight)
        done = f"added device {dev.id}: {dev.host}:{dev.port}/{dev.device} zone {dev.zone}"
    elif args.ring_command == "remove":
        builder.remove_device(args.id)
        done = f"device {args.id} leaves the ring at the next rebalance"
    else:
        builder.set_weight(args.id, args.weight)
        done = f"device {args.id} now weighs {args.weight}"
    builder.save(settings.path(BUILDER_FILE))
    return done + " (run `onestack ring rebalance` to write the ring)"


def _ring_rebalance(settings: config_mod.Settings, args: argparse.Namespace) -> str:
    from onestack.object_store.app import AUTO_RING_MARKER

    builder = _ring_builder(settings)
    result = builder.rebalance()
    builder.save(settings.path(BUILDER_FILE))
    ring_file = settings.path(RING_FILE)
    builder.get_ring().save(ring_file)  # the hash suffix is not in the file
    settings.path(AUTO_RING_MARKER).unlink(missing_ok=True)  # the operator's ring now
    return (f"wrote {ring_file} (version {builder.version}): {result.moved} replicas moved, "
            f"balance {result.balance}%\ncopy it to every host (with secrets/object-hash-suffix "
            f"and {settings.object_store.cluster_secret_file}) and restart them")


def _ring_show(settings: config_mod.Settings, args: argparse.Namespace) -> str:
    builder = _ring_builder(settings)
    parts = builder.parts_by_device()
    ring_file = settings.path(RING_FILE)
    state = f"{ring_file.name} is up to date"
    if _ring_pending(builder, ring_file):
        state = f"changes not in {ring_file.name} yet: run `onestack ring rebalance`"
    sizes = (f"2**{builder.part_power} = {builder.partition_count} partitions, "
             f"{builder.replica_count()} replicas, {len(builder.devices)} devices")
    lines = [
        f"{settings.path(BUILDER_FILE)}: version {builder.version} ({state})",
        sizes,
        f"{'id':>4} {'zone':>4} {'weight':>7} {'partitions':>10}  address/device",
    ]
    for d in builder.devices:
        lines.append(f"{d.id:>4} {d.zone:>4} {d.weight:>7g} {parts.get(d.id, 0):>10}  "
                     f"{d.host}:{d.port}/{d.device}")
    return "\n".join(lines)


def _ring_pending(builder: RingBuilder, ring_file: Path) -> bool:
    """Whether the builder holds changes the ring file does not have."""
    try:
        current = builder.get_ring().to_dict()
        written = json.loads(ring_file.read_bytes())
    except (OSError, ValueError):
        return True
    return bool(written != current)


def cmd_ring(args: argparse.Namespace) -> int:
    """The object storage ring: DATA_DIR/object.builder.json (kept on this host) and
    DATA_DIR/object.ring.json (copied to every host)."""
    settings = _settings(args)
    action = {"create": _ring_create, "add": _ring_change, "remove": _ring_change,
              "set-weight": _ring_change, "rebalance": _ring_rebalance, "show": _ring_show}
    try:
        print(action[args.ring_command](settings, args))
    except (ValueError, KeyError) as exc:
        message = f"no device {exc}" if isinstance(exc, KeyError) else str(exc)
        raise SystemExit(f"onestack: {message}") from None
    return 0


def _ring_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ring = sub.add_parser("ring", help="build the object storage ring (multi-host)",
                          description=cmd_ring.__doc__)
    ring.set_defaults(fn=cmd_ring)
    cmds = ring.add_subparsers(dest="ring_command", required=True)
    create = cmds.add_parser("create", help="start a new ring builder")
    create.add_argument("--part-power", type=int, required=True,
                        help="2**N partitions (about 100 per device at the largest size)")
    create.add_argument("--replicas", type=int, help="default: min(3, devices)")
    create.add_argument("--force", action="store_true", help="replace an existing builder")
    add = cmds.add_parser("add", help="add a device")
    add.add_argument("--host", required=True, help="the address of its host's `onestack up`")
    add.add_argument("--port", type=int, required=True, help="the port of its `onestack up`")
    add.add_argument("--device", required=True, help="directory under DATA_DIR/object-devices")
    add.add_argument("--zone", type=int, default=1)
    add.add_argument("--weight", type=float, default=1.0)
    remove = cmds.add_parser("remove", help="take a device out (at the next rebalance)")
    remove.add_argument("--id", type=int, required=True)
    weight = cmds.add_parser("set-weight", help="change a device's weight (0 drains it)")
    weight.add_argument("--id", type=int, required=True)
    weight.add_argument("--weight", type=float, required=True)
    cmds.add_parser("rebalance", help="place partitions and write object.ring.json")
    cmds.add_parser("show", help="the devices and their partitions")
    for command in cmds.choices.values():
        _common(command)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="onestack", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the all-in-one cloud in the foreground")
    _common(up)
    up.add_argument("--port", type=int, help=f"port of every API (default {config_mod.DEFAULT_PORT})")
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the data dir)")
    up.set_defaults(fn=cmd_up)
    st = sub.add_parser("status", help="what runs, and what this machine allows")
    _common(st)
    st.add_argument("--json", action="store_true")
    st.set_defaults(fn=cmd_status)
    down = sub.add_parser("down", help="stop the cloud started with `up` on this data dir")
    _common(down)
    down.add_argument("--purge-network", action="store_true",
                      help="also remove its network data plane (bridges, namespaces, "
                      "dnsmasq, nftables), which a stop leaves for running VMs")
    down.set_defaults(fn=cmd_down)
    rot = sub.add_parser("rotate-keys", help="rotate the token (Fernet) key repository")
    _common(rot)
    rot.add_argument("--credential", action="store_true",
                     help="rotate the credential encryption keys instead")
    rot.set_defaults(fn=cmd_rotate_keys)
    _ring_parser(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
