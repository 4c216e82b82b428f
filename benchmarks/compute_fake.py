"""Compute service (Nova API v2.1) at scale on the ``fake`` driver, against a running
OneStack, beside ceilings measured in the same run.

    python benchmarks/compute_fake.py --start         # starts its own cloud
    python benchmarks/compute_fake.py --data-dir DIR --url URL   # quotas must allow it

- Creation: 1,000 servers (``--servers``; m1.nano, no network, one image) POSTed by
  32 concurrent clients (``--connections``) as admin -> servers/s until every one is
  ACTIVE (polled with ``GET /servers?status=BUILD``), and servers/s accepted (202).
- Listing: ``GET /servers/detail`` over those servers (default page size, 1000),
  p50 and p95 of 30 sequential requests (``--samples``) at the base version (2.1)
  and at 2.100, beside ceilings on the same server stack: ``GET /flavors/42``
  (token, policy, one row), ``GET /servers/detail`` of a project without servers,
  ``/healthcheck``; and ``json.dumps`` of the same body in this process (the
  serialisation floor). Target: p50 under 100 ms.
- With ``--start`` (or ``--pid`` of the server), the server's CPU per request
  (user + system time of its process over the samples, from /proc): steadier than
  wall time on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from clients.conftest import free_port, start_server, stop_server, teardown_dataplane

V21 = "/compute/v2.1"


def issue(url: str, clouds: Path, cloud: str) -> str:
    """A project-scoped token of ``cloud`` in clouds.yaml."""
    a = yaml.safe_load(clouds.read_text())["clouds"][cloud]["auth"]
    r = httpx.post(url + "/identity/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": a["username"], "domain": {"name": a["user_domain_name"]},
            "password": a["password"]}}},
        "scope": {"project": {"name": a["project_name"],
                              "domain": {"name": a["project_domain_name"]}}},
    }})
    r.raise_for_status()
    return r.headers["x-subject-token"]


def image(url: str, token: str) -> str:
    h = {"X-Auth-Token": token}
    r = httpx.post(url + "/image/v2/images", headers=h, json={
        "name": "bench", "disk_format": "raw", "container_format": "bare",
        "visibility": "public"})
    r.raise_for_status()
    img = r.json()["id"]
    r = httpx.put(f"{url}/image/v2/images/{img}/file", content=b"x" * 4096,
                  headers={**h, "Content-Type": "application/octet-stream"})
    r.raise_for_status()
    return str(img)


async def create(url: str, token: str, img: str, n: int, conns: int) -> dict[str, float]:
    """POST ``n`` servers with ``conns`` clients; time to all accepted and to all ACTIVE."""
    h = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.37"}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    failures: list[str] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            r = await client.post(V21 + "/servers", headers=h, json={"server": {
                "name": f"bench-{i}", "imageRef": img, "flavorRef": "42",
                "networks": "none"}})
            if r.status_code != 202:
                failures.append(r.text)

    start = time.monotonic()
    clients = [httpx.AsyncClient(base_url=url, timeout=120) for _ in range(conns)]
    try:
        await asyncio.gather(*(worker(c) for c in clients))
        accepted = time.monotonic() - start
        if failures:
            raise SystemExit(f"{len(failures)} POSTs failed, e.g. {failures[0]}")
        c = clients[0]
        while True:
            r = await c.get(V21 + "/servers", headers=h, params={"status": "BUILD"})
            r.raise_for_status()
            if not r.json()["servers"]:
                break
            await asyncio.sleep(0.25)
        settled = time.monotonic() - start
        r = await c.get(V21 + "/servers", headers=h, params={"status": "ACTIVE"})
        active = len(r.json()["servers"])
    finally:
        for c in clients:
            await c.aclose()
    if active < n:
        raise SystemExit(f"only {active} of {n} servers are ACTIVE")
    return {"accepted_s": accepted, "active_s": settled, "accepted_per_s": n / accepted,
            "active_per_s": n / settled}


def cpu_seconds(pid: int | None) -> float:
    """User plus system CPU time of process ``pid`` (all its threads) so far; 0.0
    without a pid."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latencies(client: httpx.Client, path: str, headers: dict[str, str],
              samples: int, pid: int | None = None) -> tuple[float, float, httpx.Response, float]:
    """p50 and p95 (ms) of ``samples`` sequential GETs, after one warm-up, and the
    server's CPU per request (ms; 0 without its pid)."""
    r = client.get(path, headers=headers)
    r.raise_for_status()
    times = []
    cpu = cpu_seconds(pid)
    for _ in range(samples):
        t = time.perf_counter()
        r = client.get(path, headers=headers)
        times.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    cpu = (cpu_seconds(pid) - cpu) / samples * 1000
    times.sort()
    return statistics.median(times), times[max(0, round(0.95 * len(times)) - 1)], r, cpu


def listing(url: str, admin: str, member: str, n: int, samples: int,
            pid: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=120) as c:
        for version in ("2.1", "2.100"):
            h = {"X-Auth-Token": admin, "OpenStack-API-Version": f"compute {version}"}
            p50, p95, r, cpu = latencies(c, V21 + "/servers/detail", h, samples, pid)
            servers = r.json()["servers"]
            if len(servers) < n:
                raise SystemExit(f"GET /servers/detail gave {len(servers)} servers, not {n}")
            t = time.perf_counter()
            for _ in range(5):
                json.dumps(r.json())
            dumps = (time.perf_counter() - t) / 5 * 1000
            out[version] = {"p50": p50, "p95": p95, "bytes": len(r.content),
                            "count": len(servers), "dumps_ms": dumps, "cpu_ms": cpu}
        h = {"X-Auth-Token": admin}
        out["flavor"] = latencies(c, V21 + "/flavors/42", h, samples)[:2]
        out["empty"] = latencies(c, V21 + "/servers/detail", {"X-Auth-Token": member},
                                 samples)[:2]
        out["health"] = latencies(c, "/healthcheck", {}, samples)[:2]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", action="store_true", help="start a cloud in a temp dir")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--url", default="http://127.0.0.1:8780")
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--pid", type=int, help="the server's process id (--start knows it)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-compute-"))
    server, pid = None, args.pid
    if args.start:
        n = str(args.servers)
        os.environ.update({  # the fake driver, room for every server in the admin project
            "ONESTACK_COMPUTE__COMPUTE_DRIVER": "fake",
            "ONESTACK_COMPUTE__QUOTA_INSTANCES": n, "ONESTACK_COMPUTE__QUOTA_CORES": n,
            "ONESTACK_COMPUTE__QUOTA_RAM": str(128 * args.servers)})
        server = start_server(tmp / "data", free_port())
        url, data_dir, pid = server.url, tmp / "data", server.proc.pid
    else:
        url, data_dir = args.url, args.data_dir or Path.home() / ".local/share/onestack"
    try:
        clouds = data_dir / "clouds.yaml"
        admin, member = issue(url, clouds, "onestack-admin"), issue(url, clouds, "onestack")
        img = image(url, admin)
        made = asyncio.run(create(url, admin, img, args.servers, args.connections))
        print(f"create {args.servers} servers, {args.connections} clients: accepted in "
              f"{made['accepted_s']:.1f} s ({made['accepted_per_s']:.1f}/s), all ACTIVE in "
              f"{made['active_s']:.1f} s ({made['active_per_s']:.1f} servers/s)")
        got = listing(url, admin, member, args.servers, args.samples, pid)
        for version in ("2.1", "2.100"):
            v = got[version]
            verdict = "meets" if v["p50"] < 100 else "MISSES"
            print(f"GET /servers/detail ({v['count']} servers, {v['bytes'] / 1e6:.2f} MB, "
                  f"compute {version}): p50 {v['p50']:.1f} ms, p95 {v['p95']:.1f} ms "
                  f"({verdict} the 100 ms target); json.dumps of the body "
                  f"{v['dumps_ms']:.1f} ms"
                  + (f"; server CPU {v['cpu_ms']:.1f} ms per listing" if pid else ""))
        for key, what in (("flavor", "GET /flavors/42"),
                          ("empty", "GET /servers/detail, no servers"),
                          ("health", "GET /healthcheck")):
            p50, p95 = got[key][:2]
            print(f"ceiling {what}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        base = got["2.1"]["p50"]
        print(f"ratios (ceiling p50 / listing p50): flavor {got['flavor'][0] / base:.3f}, "
              f"empty listing {got['empty'][0] / base:.3f}, "
              f"json.dumps {got['2.1']['dumps_ms'] / base:.3f}")
        return 0 if base < 100 else 1
    finally:
        if server is not None:
            stop_server(server)
            error = teardown_dataplane(tmp / "data")
            if error:
                print(f"data-plane teardown: {error}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
