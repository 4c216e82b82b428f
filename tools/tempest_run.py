"""Run OpenStack's conformance suite, Tempest, against a running OneStack.

Usage (through the ``scripts/tempest`` wrapper)::

    scripts/tempest [--data-dir DIR] [--url URL] [--start] [--workdir DIR] REGEX
                    [--exclude-list FILE] [-- extra tempest run args]

Steps: install Tempest into ``.venv-tempest`` (once), optionally start ``onestack up``
on a free port, write a Tempest workspace whose ``tempest.conf`` is derived from the
cloud's ``clouds.yaml`` and service catalog, run ``tempest run`` with tempest's exit
code, and finish with a single ``N passed, N failed, N skipped`` line.
"""

from __future__ import annotations

import argparse
import configparser
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
TEMPEST_VERSION = "47.0.0"
VENV = REPO / ".venv-tempest"
BIN = VENV / "bin"

# Catalog service type -> [service_available] option(s) of tempest and its plugins.
# Options no installed plugin registers are ignored by oslo.config, so listing them is
# harmless; a service OneStack adds to its catalog switches its tests on automatically.
SERVICE_OPTIONS: dict[str, tuple[str, ...]] = {
    "compute": ("nova",),
    "image": ("glance",),
    "object-store": ("swift",),
    "volumev3": ("cinder",),
    "block-storage": ("cinder",),
    "volume": ("cinder",),
    "network": ("neutron",),
    "orchestration": ("heat",),
    "metering": ("ceilometer",),
    "metric": ("gnocchi",),
    "alarming": ("aodh",),
    "dns": ("designate",),
    "load-balancer": ("load_balancer",),
    "key-manager": ("barbican",),
    "baremetal": ("ironic",),
    "sharev2": ("manila",),
    "container-infra": ("magnum",),
    "database": ("trove",),
    "messaging": ("zaqar",),
    "workflowv2": ("mistral",),
}
ALWAYS_OFF = ("horizon",)  # no catalog entry; OneStack ships no dashboard


def ensure_tempest() -> None:
    """Create ``.venv-tempest`` with the pinned Tempest unless it is already there."""
    marker = VENV / ".onestack-tempest-version"
    if (BIN / "tempest").exists() and marker.exists() and marker.read_text() == TEMPEST_VERSION:
        return
    print(f"installing tempest {TEMPEST_VERSION} into {VENV} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    out = subprocess.run(
        [str(BIN / "pip"), "install", "-qq", "--disable-pip-version-check",
         f"tempest=={TEMPEST_VERSION}"],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        sys.exit(f"pip install tempest failed:\n{out.stdout}{out.stderr}")
    marker.write_text(TEMPEST_VERSION)


def admin_cloud(clouds: dict[str, Any]) -> dict[str, Any]:
    """The ``onestack-admin`` entry of a parsed clouds.yaml."""
    try:
        cloud: dict[str, Any] = clouds["clouds"]["onestack-admin"]
    except KeyError:
        sys.exit("clouds.yaml has no 'onestack-admin' cloud")
    return cloud


def fetch_catalog(cloud: dict[str, Any]) -> list[dict[str, Any]]:
    """Authenticate as the admin cloud (POST /v3/auth/tokens) and return the catalog."""
    auth = cloud["auth"]
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "password": auth["password"],
            "domain": {"name": auth.get("user_domain_name", "Default")}}}},
        "scope": {"project": {"name": auth["project_name"],
                              "domain": {"name": auth.get("project_domain_name", "Default")}}},
    }}
    req = urllib.request.Request(
        auth["auth_url"].rstrip("/") + "/auth/tokens", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        catalog: list[dict[str, Any]] = json.load(resp)["token"].get("catalog", [])
    return catalog


def build_conf(clouds: dict[str, Any], catalog: list[dict[str, Any]],
               workdir: Path) -> configparser.ConfigParser:
    """Derive tempest.conf from a parsed clouds.yaml and a v3 token's service catalog."""
    cloud = admin_cloud(clouds)
    auth = cloud["auth"]
    auth_url = auth["auth_url"].rstrip("/")
    user_domain = auth.get("user_domain_name", "Default")
    project_domain = auth.get("project_domain_name", "Default")
    types = {entry.get("type") for entry in catalog}
    available = {name: False for opts in SERVICE_OPTIONS.values() for name in opts}
    available.update({name: False for name in ALWAYS_OFF})
    for service_type, names in SERVICE_OPTIONS.items():
        for name in names:
            available[name] = available[name] or service_type in types
    conf = configparser.ConfigParser(interpolation=None)
    conf.optionxform = str  # type: ignore[assignment,method-assign]
    conf.read_dict({
        "DEFAULT": {"log_dir": str(workdir / "logs"), "log_file": "tempest.log"},
        "oslo_concurrency": {"lock_path": str(workdir / "tempest_lock")},
        "auth": {
            "use_dynamic_credentials": "true",
            "create_isolated_networks": "false",
            "admin_username": auth["username"],
            "admin_password": auth["password"],
            "admin_project_name": auth["project_name"],
            "admin_domain_name": user_domain,
            "admin_user_domain_name": user_domain,
            "admin_project_domain_name": project_domain,
            "default_credentials_domain_name": project_domain,
        },
        "identity": {
            "uri_v3": auth_url,
            "auth_version": "v3",
            "region": cloud.get("region_name", "RegionOne"),
            "v3_endpoint_type": "public",
            "default_domain_id": "default",
            "admin_role": "admin",
            "disable_ssl_certificate_validation": "true",
        },
        # trust/OAuth1/federation are unsupported; options that newer tempest
        # dropped (application_credentials, project_tags, ...) are on by default.
        "identity-feature-enabled": {
            "api_v2": "false",
            "trust": "false",
            "security_compliance": "false",
            "domain_specific_drivers": "false",
            "immutable_user_source": "false",
        },
        "validation": {"run_validation": "false"},
        "service_available": {k: str(v).lower() for k, v in sorted(available.items())},
    })
    return conf


def write_workspace(workdir: Path, conf: configparser.ConfigParser) -> Path:
    """``tempest init`` the workspace once, then (re)write its etc/tempest.conf."""
    if not (workdir / ".stestr.conf").exists():
        if workdir.exists() and not any(workdir.iterdir()):
            workdir.rmdir()
        with tempfile.TemporaryDirectory() as tmp:  # keep ~/.tempest/workspace.yaml clean
            subprocess.run([str(BIN / "tempest"), "init", "--workspace-path",
                            f"{tmp}/workspace.yaml", str(workdir)],
                           check=True, stdout=subprocess.DEVNULL)
    path = workdir / "etc" / "tempest.conf"
    with path.open("w") as fh:
        conf.write(fh)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + "/healthcheck", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.25)
    return False


def start_onestack(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start ``onestack up`` in the background, logging to DATA_DIR/onestack.log."""
    exe = REPO / ".venv" / "bin" / "onestack"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "onestack"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    log = (data_dir / "onestack.log").open("wb")
    return subprocess.Popen([*cmd, "up", "--data-dir", str(data_dir), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summarize(workdir: Path) -> tuple[int, int, int]:
    """Count passed/failed/skipped in stestr's last run (``stestr last --subunit``)."""
    last = subprocess.run([str(BIN / "stestr"), "last", "--subunit"], cwd=workdir,
                          capture_output=True)
    rows = subprocess.run([str(BIN / "subunit2csv")], input=last.stdout,
                          capture_output=True).stdout.decode()
    # testtools outcomes: success, failure, error, skip, xfail (expected failure).
    kind = {"success": 0, "xfail": 0, "failure": 1, "error": 1, "skip": 2}
    counts = [0, 0, 0]
    for row in csv.DictReader(io.StringIO(rows)):
        if row["status"] in kind:
            counts[kind[row["status"]]] += 1
    return counts[0], counts[1], counts[2]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    parser = argparse.ArgumentParser(prog="scripts/tempest", description=__doc__.split("\n")[0])
    parser.add_argument("regex", help="tempest test regex, e.g. tempest.api.identity")
    parser.add_argument("--data-dir", type=Path, default=Path(xdg) / "onestack",
                        help="OneStack data dir holding clouds.yaml (default: %(default)s)")
    parser.add_argument("--url", default="http://127.0.0.1:8780", help="OneStack base URL")
    parser.add_argument("--start", action="store_true",
                        help="start `onestack up` in a temp data dir on a free port")
    parser.add_argument("--workdir", type=Path, default=REPO / ".tempest",
                        help="tempest workspace (default: %(default)s)")
    parser.add_argument("--exclude-list", type=Path, help="file of regexes to exclude")
    args = parser.parse_args(argv)

    ensure_tempest()
    proc: subprocess.Popen[bytes] | None = None
    tmp: str | None = None
    try:
        if args.start:
            tmp = tempfile.mkdtemp(prefix="onestack-tempest-")
            args.data_dir, port = Path(tmp), free_port()
            args.url = f"http://127.0.0.1:{port}"
            proc = start_onestack(args.data_dir, port)
            print(f"started onestack (pid {proc.pid}) at {args.url}, data dir {tmp}", flush=True)
        if not wait_healthy(args.url, proc, 60 if args.start else 5):
            log = args.data_dir / "onestack.log"
            if proc is not None and log.exists():
                sys.stderr.write(log.read_text(errors="replace")[-4000:])
            sys.exit(f"OneStack is not healthy at {args.url}/healthcheck")
        clouds = yaml.safe_load((args.data_dir / "clouds.yaml").read_text())
        catalog = fetch_catalog(admin_cloud(clouds))
        workdir = args.workdir.resolve()
        conf_path = write_workspace(workdir, build_conf(clouds, catalog, workdir))
        print(f"catalog: {', '.join(sorted({str(s.get('type')) for s in catalog}))}; "
              f"config: {conf_path}", flush=True)
        stream = workdir / ".stestr" / "next-stream"
        before = stream.read_text() if stream.exists() else None
        cmd = [str(BIN / "tempest"), "run", "--config-file", str(conf_path),
               "--regex", args.regex, "--concurrency", "2"]
        if args.exclude_list:
            cmd += ["--exclude-list", str(args.exclude_list.resolve())]
        code = subprocess.run([*cmd, *extra], cwd=workdir).returncode
        ran = stream.exists() and stream.read_text() != before
        passed, failed, skipped = summarize(workdir) if ran else (0, 0, 0)
        print(f"{passed} passed, {failed} failed, {skipped} skipped", flush=True)
        return code
    finally:
        if proc is not None:
            stop(proc)
        if tmp is not None:  # keep the server log next to tempest's
            log = Path(tmp) / "onestack.log"
            if log.exists() and (args.workdir / "logs").is_dir():
                shutil.copy(log, args.workdir / "logs" / "onestack.log")
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
