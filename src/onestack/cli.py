"""The ``onestack`` command: ``up`` runs the cloud, the rest are operator tools."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import urllib.request
from collections.abc import Sequence

from onestack.core import config as config_mod
from onestack.core import host, logs

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
            with urllib.request.urlopen(settings.base_url + "/healthcheck", timeout=2) as r:
                info["healthy"] = r.status == 200
            with urllib.request.urlopen(settings.base_url + "/", timeout=2) as r:
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
            print(f"  {svc['type']:<13} {svc['url']}")
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
        return 0
    os.kill(int(info["pid"]), signal.SIGTERM)  # type: ignore[call-overload]
    print(f"sent SIGTERM to {info['pid']}")
    return 0


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
    down.set_defaults(fn=cmd_down)
    rot = sub.add_parser("rotate-keys", help="rotate the token (Fernet) key repository")
    _common(rot)
    rot.add_argument("--credential", action="store_true",
                     help="rotate the credential encryption keys instead")
    rot.set_defaults(fn=cmd_rotate_keys)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
