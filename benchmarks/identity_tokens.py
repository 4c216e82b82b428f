"""Token issue and validation throughput against a running OneStack, each beside
the ceiling: a trivial endpoint (``/healthcheck``) of the same server stack,
loaded the same way in the same run. Prints requests/s, p50/p99 and the ratios.

    python benchmarks/identity_tokens.py --start            # starts its own cloud
    python benchmarks/identity_tokens.py --data-dir DIR     # a cloud already running

Targets (issue 2): validation >= 50% of the ceiling, issue >= 25%; and a warm
start reaches /healthcheck 200 in under 3 s (measured with --start).
Load comes from wrk (Debian package `wrk`, installed by scripts/bench).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from clients.conftest import (  # noqa: E402
    free_port,
    start_server,
    stop_server,
    teardown_dataplane,
)

LUA = """
wrk.method = "{method}"
wrk.body = {body}
{headers}
"""


def wrk(url: str, *, seconds: int, conns: int, method: str = "GET", body: str | None = None,
        headers: dict[str, str] | None = None) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        hdrs = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
        f.write(LUA.format(method=method, body=json.dumps(body) if body else "nil", headers=hdrs))
        script = f.name
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script, url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99"),
            "errors": float(non2xx.group(1)) if non2xx else 0.0}


def auth_body(cloud: dict) -> str:  # type: ignore[type-arg]
    a = cloud["auth"]
    return json.dumps({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": a["username"], "domain": {"name": a["user_domain_name"]},
            "password": a["password"]}}},
        "scope": {"project": {"name": a["project_name"], "domain": {"name": a["project_domain_name"]}}},
    }})


def issue(url: str, body: str) -> str:
    req = urllib.request.Request(url + "/identity/v3/auth/tokens", data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return str(r.headers["X-Subject-Token"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", action="store_true", help="start a cloud in a temp dir")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--url", default="http://127.0.0.1:8780")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (scripts/bench installs it)", file=sys.stderr)
        return 2
    server = None
    if args.start:
        tmp = Path(tempfile.mkdtemp(prefix="onestack-bench-"))
        port = free_port()
        server = start_server(tmp / "data", port)
        stop_server(server)  # the second start is the warm one
        teardown_dataplane(server.data_dir)  # a stop leaves it for VMs
        t0 = time.monotonic()
        server = start_server(tmp / "data", port)
        warm = time.monotonic() - t0
        url, clouds = server.url, server.clouds_yaml
    else:
        url, warm = args.url, float("nan")
        clouds = (args.data_dir or Path.home() / ".local/share/onestack") / "clouds.yaml"
    try:
        cloud = yaml.safe_load(clouds.read_text())["clouds"]["onestack"]
        body = auth_body(cloud)
        token = issue(url, body)
        kw = {"seconds": args.seconds, "conns": args.connections}
        ceiling = wrk(url + "/healthcheck", **kw)
        validate = wrk(url + "/identity/v3/auth/tokens?nocatalog", headers={
            "X-Auth-Token": token, "X-Subject-Token": token}, **kw)
        issued = wrk(url + "/identity/v3/auth/tokens?nocatalog", method="POST", body=body,
                     headers={"Content-Type": "application/json"}, **kw)
    finally:
        if server:
            stop_server(server)
            teardown_dataplane(server.data_dir)  # a stop leaves it for VMs
    print(f"{'':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}{'ratio':>8}")
    for name, r in (("ceiling /healthcheck", ceiling), ("token validate", validate),
                    ("token issue", issued)):
        print(f"{name:<22}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}"
              f"{r['errors']:>10.0f}{r['rps'] / ceiling['rps']:>8.2f}")
    print(f"validate/ceiling = {validate['rps'] / ceiling['rps']:.2f} (target >= 0.50)")
    print(f"issue/ceiling    = {issued['rps'] / ceiling['rps']:.2f} (target >= 0.25)")
    if args.start:
        print(f"warm start to /healthcheck 200: {warm:.2f} s (target < 3 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
