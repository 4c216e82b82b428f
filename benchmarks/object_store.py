"""Object storage throughput against a running OneStack (Swift API), each figure
beside its ceiling measured in the same run.

    python benchmarks/object_store.py --start          # starts its own cloud
    python benchmarks/object_store.py --data-dir DIR --url URL

- Small objects: 4 KiB GET and PUT with 16 concurrent connections (wrk), against
  the ceiling of a trivial endpoint of the same server stack (``/healthcheck``,
  loaded the same way). Every PUT has a new name and is written to all replicas
  (3 by default), each fsynced, and listed in the container.
- Large objects: a 64 MiB PUT and GET (raw socket client from
  image_transfer.py), against the raw disk: copying the same file to a new file
  on the data dir's filesystem plus fsync (write) and reading a stored file
  (read); with the server's peak RSS growth over each transfer. Two more
  ceilings put the same work on the disk: three such copies at once (the PUT
  writes three fsynced replicas, and the default ring's devices share one
  disk), and a read from the disk itself (the replicas and the ceiling's file
  evicted from the page cache first, with ``posix_fadvise(DONTNEED)``) beside a
  GET made after the same eviction.
- Listing: ``GET ?format=json`` of a 10,000-object container (p50 of 5), beside
  the same request on an empty container.

Targets (issue 4): small GET >= 0.5 of the ceiling, small PUT >= 0.3, large
objects >= 0.6 of raw disk, flat memory while streaming. MB is 10^6 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from clients.conftest import (  # noqa: E402
    free_port,
    start_server,
    stop_server,
    teardown_dataplane,
)
from identity_tokens import wrk  # noqa: E402
from image_transfer import (  # noqa: E402
    MiB,
    Watch,
    copy_fsync,
    http_get_discard,
    http_put_file,
    issue_token,
    make_source,
    rate,
    read_file,
    timed,
)

PUT_LUA = """
local body = string.rep("x", 4096)
local n = 0
local tag = tostring(math.random(1, 1000000000))
request = function()
  n = n + 1
  return wrk.format("PUT", "{path}/o-" .. tag .. "-" .. n,
                    {{["X-Auth-Token"] = "{token}", ["Content-Type"] = "text/plain"}}, body)
end
"""


def wrk_put(base: str, path: str, token: str, *, seconds: int, conns: int) -> dict[str, float]:
    """Like ``wrk`` but every request PUTs 4 KiB to a new name."""
    import re

    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(PUT_LUA.format(path=path, token=token))
        script = f.name
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script,
                          base], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "errors": float(non2xx.group(1)) if non2xx else 0.0}


async def fill(url: str, token: str, n: int, conns: int = 16) -> None:
    """PUT ``n`` small objects with ``conns`` concurrent clients."""
    names = iter(range(n))
    async with httpx.AsyncClient(headers={"X-Auth-Token": token}, timeout=60) as client:
        async def worker() -> None:
            for i in names:
                r = await client.put(f"{url}/obj-{i:06d}", content=b"x")
                r.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(conns)))


def copy3_fsync(src: Path, dst: Path) -> None:
    """Three copy+fsyncs of ``src`` at once (``dst`` + ``.0/.1/.2``), in three threads."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        for f in [pool.submit(copy_fsync, src, dst.with_name(f"{dst.name}.{i}"))
                  for i in range(3)]:
            f.result()


def evict(*paths: Path) -> None:
    """Drop the files' pages from the page cache (they are clean: fsynced)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def replica_files(data_dir: Path, size: int) -> list[Path]:
    """The stored replicas of the large object (the only data files that big)."""
    return [p for p in (data_dir / "object-devices").glob("*/objects/*/*/*/*.data")
            if p.stat().st_size >= size]


def list_p50(url: str, token: str, repeat: int = 5) -> tuple[float, int]:
    times, count = [], 0
    with httpx.Client(headers={"X-Auth-Token": token}, timeout=60) as client:
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = client.get(url, params={"format": "json", "limit": "10000"})
            times.append(time.perf_counter() - t0)
            r.raise_for_status()
            count = len(r.json())
    return statistics.median(times) * 1000, count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", action="store_true", help="start a cloud in a temp dir")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--url", default="http://127.0.0.1:8780")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--large", type=int, default=64, help="large object size in MiB")
    ap.add_argument("--objects", type=int, default=10_000, help="objects in the listed container")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (scripts/bench installs it)", file=sys.stderr)
        return 2
    server = None
    if args.start:
        tmp = Path(tempfile.mkdtemp(prefix="onestack-bench-"))
        server = start_server(tmp / "data", free_port())
        url, data_dir = server.url, tmp / "data"
    else:
        url, data_dir = args.url, args.data_dir or Path.home() / ".local/share/onestack"
    work = Path(tempfile.mkdtemp(prefix="objbench-", dir=data_dir))
    try:
        token = issue_token(url, data_dir / "clouds.yaml")
        r = httpx.get(url + "/identity/v3/auth/tokens",
                      headers={"X-Auth-Token": token, "X-Subject-Token": token})
        project = r.json()["token"]["project"]["id"]
        account = f"/object-store/v1/AUTH_{project}"
        h = {"X-Auth-Token": token}
        for c in ("small", "large", "listed", "empty"):
            httpx.put(f"{url}{account}/{c}", headers=h).raise_for_status()
        httpx.put(f"{url}{account}/small/4k", headers=h, content=b"y" * 4096).raise_for_status()
        kw = {"seconds": args.seconds, "conns": args.connections}

        ceiling = wrk(url + "/healthcheck", **kw)
        get = wrk(f"{url}{account}/small/4k", headers=h, **kw)
        put = wrk_put(url, f"{account}/small", token, **kw)
        ceiling2 = wrk(url + "/healthcheck", **kw)
        ceil = (ceiling["rps"] + ceiling2["rps"]) / 2

        size = args.large * MiB
        src = work / "src.bin"
        make_source(src, size)
        read_file(src)
        disk_w1 = timed(lambda: copy_fsync(src, work / "c1"))
        disk_w3a = timed(lambda: copy3_fsync(src, work / "c3a"))
        pid = server.proc.pid if server else None
        watch_put = Watch(pid) if pid else None
        t0 = time.perf_counter()
        if watch_put:
            with watch_put.over():
                status, body = http_put_file(f"{url}{account}/large/big", src, h)
        else:
            status, body = http_put_file(f"{url}{account}/large/big", src, h)
        t_put = time.perf_counter() - t0
        assert status == 201, (status, body)
        disk_w2 = timed(lambda: copy_fsync(src, work / "c2"))
        disk_w3b = timed(lambda: copy3_fsync(src, work / "c3b"))
        disk_r1 = timed(lambda: read_file(work / "c1"))
        watch_get = Watch(pid) if pid else None
        t0 = time.perf_counter()
        if watch_get:
            with watch_get.over():
                got = http_get_discard(f"{url}{account}/large/big", h)
        else:
            got = http_get_discard(f"{url}{account}/large/big", h)
        t_get = time.perf_counter() - t0
        assert got.status == 200 and got.size == size, (got.status, got.size)
        disk_r2 = timed(lambda: read_file(work / "c2"))
        disk_w = rate(size, (disk_w1 + disk_w2) / 2)
        disk_r = rate(size, (disk_r1 + disk_r2) / 2)
        disk_w3 = rate(size, (disk_w3a + disk_w3b) / 2)
        # from the disk itself: the replicas, then the ceiling's files, evicted first
        evict(*work.glob("c[12]"))
        cold_r1 = timed(lambda: read_file(work / "c1"))
        replicas = replica_files(data_dir, size)
        evict(*replicas)
        t0 = time.perf_counter()
        got = http_get_discard(f"{url}{account}/large/big", h)
        t_cold = time.perf_counter() - t0
        assert got.status == 200 and got.size == size, (got.status, got.size)
        cold_r2 = timed(lambda: read_file(work / "c2"))
        disk_cold = rate(size, (cold_r1 + cold_r2) / 2)

        asyncio.run(fill(f"{url}{account}/listed", token, args.objects))
        listed_ms, count = list_p50(f"{url}{account}/listed", token)
        empty_ms, _ = list_p50(f"{url}{account}/empty", token)
        assert count == args.objects, count
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if server:
            stop_server(server)
            teardown_dataplane(server.data_dir)  # a stop leaves it for VMs

    print(f"{'small objects (4 KiB, ' + str(args.connections) + ' conns)':<40}"
          f"{'req/s':>10}{'non-2xx':>10}{'ratio':>8}")
    print(f"{'ceiling /healthcheck (mean of 2)':<40}{ceil:>10.0f}{0:>10}{1:>8.2f}")
    print(f"{'GET':<40}{get['rps']:>10.0f}{get['errors']:>10.0f}{get['rps'] / ceil:>8.2f}")
    print(f"{'PUT (new name each)':<40}{put['rps']:>10.0f}{put['errors']:>10.0f}"
          f"{put['rps'] / ceil:>8.2f}")
    print()
    print(f"{'large objects (' + str(args.large) + ' MiB)':<40}{'MB/s':>10}{'ceiling':>10}"
          f"{'ratio':>8}{'RSS+ MiB':>10}")
    put_mb, get_mb = rate(size, t_put), rate(size, t_get)
    rss_put = watch_put.growth / MiB if watch_put else float("nan")
    rss_get = watch_get.growth / MiB if watch_get else float("nan")
    print(f"{'PUT vs copy+fsync':<40}{put_mb:>10.0f}{disk_w:>10.0f}{put_mb / disk_w:>8.2f}"
          f"{rss_put:>10.1f}")
    print(f"{'GET vs file read':<40}{get_mb:>10.0f}{disk_r:>10.0f}{get_mb / disk_r:>8.2f}"
          f"{rss_get:>10.1f}")
    cold_mb = rate(size, t_cold)
    print(f"{'PUT vs 3 copies+fsync at once':<40}{put_mb:>10.0f}{disk_w3:>10.0f}"
          f"{put_mb / disk_w3:>8.2f}   (the bytes the 3 replicas write)")
    print(f"{'GET vs file read, both from disk':<40}{cold_mb:>10.0f}{disk_cold:>10.0f}"
          f"{cold_mb / disk_cold:>8.2f}   ({len(replicas)} replicas evicted)")
    print()
    print(f"listing {count} objects (JSON, p50 of 5): {listed_ms:.1f} ms "
          f"(empty container: {empty_ms:.1f} ms)")
    print(f"targets: GET/ceiling >= 0.50 ({get['rps'] / ceil:.2f}), "
          f"PUT/ceiling >= 0.30 ({put['rps'] / ceil:.2f}), "
          f"large >= 0.60 ({put_mb / disk_w:.2f}, {get_mb / disk_r:.2f}; with the same "
          f"work on the disk: {put_mb / disk_w3:.2f}, {cold_mb / disk_cold:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
