"""Networking service (Neutron API v2.0) throughput and the time until a new port's
VM gets its first DHCP answer, against a running OneStack, each beside a ceiling
measured in the same run.

    python benchmarks/network.py --start          # starts its own cloud (as root)
    python benchmarks/network.py --data-dir DIR --url URL

- Port creation: 1,000 ports (``--ports``) on one network with a /20 subnet, POSTed
  by 16 concurrent clients (``--connections``; one httpx connection each) as a member
  of the demo project -> ports/s; ceiling: ``GET /healthcheck`` of the same server
  with 16 wrk connections (mean of one run before and one after).
- Listing: ``GET /v2.0/ports?network_id=X`` of those ports (p50 of 5), beside the
  same request on a network without ports and beside ``json.dumps`` of the same
  body in this process (the serialisation floor).
- DHCP: from the moment a port's POST returns (bound to this host, with the MAC of a
  namespace "VM" made before the POST) to the first DHCPOFFER the VM receives, p50
  over 5 ports; ceiling: dnsmasq alone, in its own namespace behind its own bridge,
  from adding a host entry (the files the driver writes, then SIGHUP) to the offer.
  The VM's veth is made before the POST under a temporary name; when the POST
  returns, its host end is renamed to the port's tap and brought up (a netlink
  call, inside the measured time), as compute plugs a VIF. The client is a raw
  socket sending a DHCPDISCOVER every 2 ms until an offer arrives (busybox udhcpc
  waits whole seconds between tries), for both figures.

Needs root and the Linux data plane for the DHCP part (skipped otherwise), and wrk
(Debian package, installed by scripts/bench) for the ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import ipaddress
import json
import os
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from identity_tokens import wrk

from clients.conftest import free_port, start_server, stop_server, teardown_dataplane

NET = "/network/v2.0"


# -- API helpers ---------------------------------------------------------------------------


def issue(url: str, clouds: Path, cloud: str) -> tuple[str, str]:
    """A token of ``cloud`` in clouds.yaml, and its project id."""
    a = yaml.safe_load(clouds.read_text())["clouds"][cloud]["auth"]
    r = httpx.post(url + "/identity/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": a["username"], "domain": {"name": a["user_domain_name"]},
            "password": a["password"]}}},
        "scope": {"project": {"name": a["project_name"],
                              "domain": {"name": a["project_domain_name"]}}},
    }})
    r.raise_for_status()
    return r.headers["x-subject-token"], r.json()["token"]["project"]["id"]


def call(url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    r = httpx.request(method, url + NET + path, headers={"X-Auth-Token": token}, json=body,
                      timeout=60)
    if r.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
    return r.json() if r.content else None


def p50(values: list[float]) -> float:
    return statistics.median(values)


# -- (1) port creation -----------------------------------------------------------------------


async def create_ports(url: str, token: str, network_id: str, n: int,
                       conns: int) -> tuple[float, list[float], list[str]]:
    """POST ``n`` ports with ``conns`` concurrent clients; (seconds, latencies, ids)."""
    todo = iter(range(n))
    latencies: list[float] = []
    ids: list[str] = []
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    async with httpx.AsyncClient(base_url=url + NET, headers={"X-Auth-Token": token},
                                 timeout=120, limits=limits) as client:
        async def worker() -> None:
            for i in todo:
                t0 = time.perf_counter()
                r = await client.post("/ports", json={"port": {
                    "network_id": network_id, "name": f"bench-{i}"}})
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 201:
                    raise RuntimeError(f"POST /ports: {r.status_code} {r.text[:500]}")
                ids.append(r.json()["port"]["id"])

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conns)))
        return time.perf_counter() - t0, latencies, ids


async def client_healthcheck(url: str, n: int, conns: int) -> float:
    """This client's own rate on /healthcheck (to show it is not the bottleneck)."""
    todo = iter(range(n))
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def worker() -> None:
            for _ in todo:
                (await client.get(url + "/healthcheck")).raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conns)))
        return n / (time.perf_counter() - t0)


async def delete_all(url: str, token: str, kind: str, ids: list[str], conns: int) -> None:
    todo = iter(ids)
    async with httpx.AsyncClient(base_url=url + NET, headers={"X-Auth-Token": token},
                                 timeout=120) as client:
        async def worker() -> None:
            for i in todo:
                await client.delete(f"/{kind}/{i}")

        await asyncio.gather(*(worker() for _ in range(conns)))


# -- (2) listing -----------------------------------------------------------------------------


def list_p50(url: str, token: str, network_id: str,
             repeat: int = 5) -> tuple[float, dict[str, Any], int]:
    """p50 in ms of listing a network's ports; the last body and its size."""
    times: list[float] = []
    body: dict[str, Any] = {}
    size = 0
    with httpx.Client(headers={"X-Auth-Token": token}, timeout=120) as client:
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = client.get(url + NET + "/ports", params={"network_id": network_id})
            times.append(time.perf_counter() - t0)
            r.raise_for_status()
            size = len(r.content)
            body = r.json()
    return p50(times) * 1000, body, size


def dumps_p50(body: dict[str, Any], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        json.dumps(body)
        times.append(time.perf_counter() - t0)
    return p50(times) * 1000


# -- (3) DHCP: a raw-socket client in a namespace ---------------------------------------------


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def quiet(*argv: str) -> None:
    subprocess.run(argv, check=False, capture_output=True)


def random_mac() -> str:
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in os.urandom(3))


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def discover(mac: bytes, xid: int) -> bytes:
    """An Ethernet frame with a broadcast DHCPDISCOVER from ``mac``."""
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
                        bytes(4), bytes(4), bytes(4), bytes(4), mac + bytes(10),
                        bytes(64), bytes(128))
    bootp += bytes([0x63, 0x82, 0x53, 0x63, 53, 1, 1, 255])
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes(4), b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"\xff" * 6 + mac + b"\x08\x00" + ip + udp


def offered(frame: bytes, xid: int) -> str | None:
    """The address a DHCPOFFER for ``xid`` in ``frame`` offers (None: not one)."""
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    udp = 14 + ihl
    if struct.unpack("!H", frame[udp + 2:udp + 4])[0] != 68:
        return None
    bootp = frame[udp + 8:]
    if bootp[0] != 2 or struct.unpack("!I", bootp[4:8])[0] != xid:
        return None
    opts, i = bootp[240:], 0
    while i < len(opts) and opts[i] != 255:
        if opts[i] == 0:
            i += 1
            continue
        if opts[i] == 53 and opts[i + 2] == 2:
            return socket.inet_ntoa(bootp[16:20])
        i += 2 + opts[i + 1]
    return None


def packet_socket(ns: str, ifname: str = "eth0") -> socket.socket:
    """An AF_PACKET socket on ``ifname`` of namespace ``ns`` (a socket stays in the
    namespace it was made in)."""
    from onestack.network.dataplane.netns import run_in_netns

    def make() -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        s.bind((ifname, 0))
        s.setblocking(False)
        return s

    return run_in_netns(ns, make)


def wait_offer(sock: socket.socket, mac: str, timeout: float,
               interval: float = 0.002) -> str | None:
    """Send DHCPDISCOVERs every ``interval`` s until an offer comes (its address) or
    ``timeout`` s pass (None)."""
    xid = int.from_bytes(os.urandom(4), "big")
    frame = discover(bytes.fromhex(mac.replace(":", "")), xid)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        sock.send(frame)
        until = time.perf_counter() + interval
        while (left := until - time.perf_counter()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                address = offered(data, xid)
                if address is not None:
                    return address
    return None


class Vm:
    """A namespace whose ``eth0`` has ``mac``; the host end of its veth is made with
    a temporary name, down, until ``plug`` names it after the port and brings it up."""

    def __init__(self, mac: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.mac = mac
        self.ns = "vmb-" + tag
        self.tmp = "vbt" + tag
        self.tap = self.tmp
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.tmp, "type", "veth", "peer", "name", "eth0", "netns",
           self.ns)
        sh("ip", "-n", self.ns, "link", "set", "eth0", "address", mac, "up")
        self.sock = packet_socket(self.ns)

    def plug(self, ipr: Any, tap: str) -> None:
        index = ipr.link_lookup(ifname=self.tmp)[0]
        ipr.link("set", index=index, ifname=tap, state="up")
        self.tap = tap

    def delete(self) -> None:
        self.sock.close()
        quiet("ip", "link", "del", self.tap)
        quiet("ip", "netns", "del", self.ns)


def onestack_dhcp(url: str, token: str, host: str, samples: int, cidr: str,
                  state_dir: Path) -> tuple[list[float], list[float], float, list[Vm], list[str]]:
    """Port POST returned -> first offer, ``samples`` times on a new network (after one
    warm-up port that waits for its DHCP server); (ms each, ms until dnsmasq's host file
    was written (the agent's part), warm-up s, VMs, port ids)."""
    from pyroute2 import IPRoute

    net = call(url, token, "POST", "/networks", {"network": {"name": "bench-dhcp"}})["network"]
    call(url, token, "POST", "/subnets", {"subnet": {
        "network_id": net["id"], "cidr": cidr, "ip_version": 4, "name": "bench-dhcp"}})
    vms: list[Vm] = []
    ids: list[str] = []
    times: list[float] = []
    written: list[float] = []
    warm = 0.0
    hosts = state_dir / "dhcp" / net["id"] / "host"
    with IPRoute() as ipr:
        for i in range(samples + 1):
            vm = Vm(random_mac())
            vms.append(vm)
            t_post = time.perf_counter()
            port = call(url, token, "POST", "/ports", {"port": {
                "network_id": net["id"], "mac_address": vm.mac, "name": f"bench-vm-{i}",
                "device_owner": "compute:nova", "device_id": str(uuid.uuid4()),
                "binding:host_id": host}})["port"]
            t0, wall0 = time.perf_counter(), time.time()
            ids.append(port["id"])
            vm.plug(ipr, "tap" + port["id"][:11])
            address = wait_offer(vm.sock, vm.mac, timeout=60 if i == 0 else 20)
            t1 = time.perf_counter()
            if address is None:
                raise RuntimeError(f"no DHCP offer for port {port['id']} ({vm.mac})")
            if address != port["fixed_ips"][0]["ip_address"]:
                raise RuntimeError(f"offered {address}, the API gave "
                                   f"{port['fixed_ips'][0]['ip_address']}")
            if i == 0:
                warm = t1 - t_post
            else:
                times.append((t1 - t0) * 1000)
                with contextlib.suppress(OSError):
                    written.append((hosts.stat().st_mtime - wall0) * 1000)
    return times, written, warm, vms, ids


def dnsmasq_alone(samples: int, workdir: Path) -> list[float]:
    """dnsmasq in its own namespace behind its own bridge, configured as the driver
    configures it: ms from adding a host (files + SIGHUP) to the offer, each sample."""
    from onestack.network.dataplane import dnsmasq
    from onestack.network.dataplane.model import FixedIP, NetworkState, PortState, SubnetState

    tag = uuid.uuid4().hex[:6]
    third = int.from_bytes(os.urandom(1), "big")
    cidr = ipaddress.ip_network(f"10.252.{third}.0/24")
    server_ns, client_ns, bridge = "dnsb-" + tag, "dnsc-" + tag, "brb" + tag
    directory = workdir / "dnsmasq"
    sub = SubnetState(id=str(uuid.uuid4()), network_id="bench", cidr=str(cidr), ip_version=4,
                      gateway_ip=str(cidr.network_address + 1), enable_dhcp=True)
    network = NetworkState(id="bench", mtu=1500, network_type="local", physical_network=None,
                           segmentation_id=None, admin_state_up=True, external=False,
                           subnets=(sub,))
    dhcp_ip = str(cidr.network_address + 2)
    dhcp_port = PortState(id="dhcp", network_id="bench", mac_address=random_mac(),
                          fixed_ips=(FixedIP(sub.id, dhcp_ip),), device_owner="network:dhcp",
                          device_id="dhcp")
    ports: list[PortState] = [dhcp_port]
    times: list[float] = []
    sock = None
    try:
        sh("ip", "link", "add", bridge, "type", "bridge")
        sh("ip", "link", "set", bridge, "up")
        for ns, end in ((server_ns, "vbs" + tag), (client_ns, "vbc" + tag)):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", end, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", end, "master", bridge, "up")
        sh("ip", "-n", server_ns, "link", "set", "eth0", "address", dhcp_port.mac_address, "up")
        sh("ip", "-n", server_ns, "addr", "add", f"{dhcp_ip}/{cidr.prefixlen}", "dev", "eth0")
        sh("ip", "-n", server_ns, "link", "set", "lo", "up")

        def config() -> dnsmasq.DhcpConfig:
            built = dnsmasq.build(network, dhcp_port, ports, directory=directory,
                                  interface="eth0", domain="openstacklocal",
                                  as_root=dnsmasq.needs_root(directory))
            assert built is not None
            return built

        assert dnsmasq.ensure(directory, server_ns, config()) == "started"
        sh("ip", "-n", client_ns, "link", "set", "eth0", "up")
        sock = packet_socket(client_ns)
        for i in range(samples + 1):  # the first one waits for dnsmasq to listen
            mac = random_mac()  # a new client each time (frames from and for this MAC)
            ip = str(cidr.network_address + 10 + i)
            ports.append(PortState(id=str(uuid.uuid4()), network_id="bench", mac_address=mac,
                                   fixed_ips=(FixedIP(sub.id, ip),), device_owner="compute:nova",
                                   device_id="vm"))
            t0 = time.perf_counter()
            assert dnsmasq.ensure(directory, server_ns, config()) == "reloaded"
            address = wait_offer(sock, mac, timeout=20)
            t1 = time.perf_counter()
            if address != ip:
                raise RuntimeError(f"dnsmasq offered {address}, expected {ip}")
            if i:
                times.append((t1 - t0) * 1000)
    finally:
        if sock is not None:
            sock.close()
        dnsmasq.stop(directory)
        for ns in (server_ns, client_ns):
            quiet("ip", "netns", "del", ns)
        for link in ("vbs" + tag, "vbc" + tag, bridge):
            quiet("ip", "link", "del", link)
    return times


def leftovers(data_dir: Path) -> list[str]:
    """Kernel objects still marked as the cloud of ``data_dir``'s (links, namespaces,
    nft tables), after its teardown: there should be none."""
    owner = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    mark = f"onestack:{owner}"
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=False).stdout
    found = [line.split(":")[1].strip() for line in links.splitlines() if mark in line]
    for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                             check=False).stdout.split():
        if ns.startswith(("qdhcp-", "qrouter-")):
            lo = subprocess.run(["ip", "-n", ns, "-o", "link", "show", "lo"],
                                capture_output=True, text=True, check=False).stdout
            if mark in lo:
                found.append("netns " + ns)
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                            check=False).stdout
    found += [t.strip() for t in tables.splitlines() if t.endswith(f"onestack-{owner}")]
    return found


# -- the run -----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", action="store_true", help="start a cloud in a temp dir")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--url", default="http://127.0.0.1:8780")
    ap.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--ports", type=int, default=1000, help="ports created and listed")
    ap.add_argument("--dhcp-samples", type=int, default=5)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (scripts/bench installs it)", file=sys.stderr)
        return 2
    server = None
    tmp = Path(tempfile.mkdtemp(prefix="onestack-netbench-"))
    if args.start:
        server = start_server(tmp / "data", free_port())
        url, data_dir = server.url, tmp / "data"
    else:
        url, data_dir = args.url, args.data_dir or Path.home() / ".local/share/onestack"
    clouds = data_dir / "clouds.yaml"
    conns = args.connections
    vms: list[Vm] = []
    made: dict[str, list[str]] = {"ports": [], "networks": []}
    admin, _ = issue(url, clouds, "onestack-admin")
    member, project = issue(url, clouds, "onestack")
    quota_before = call(url, admin, "GET", f"/quotas/{project}")["quota"]["port"]
    dhcp: list[float] = []
    dhcp_alone: list[float] = []
    written: list[float] = []
    warm = float("nan")
    dhcp_note = ""
    try:
        call(url, admin, "PUT", f"/quotas/{project}", {"quota": {"port": -1}})
        net = call(url, member, "POST", "/networks", {"network": {"name": "bench-ports"}})
        made["networks"].append(net["network"]["id"])
        net_id = net["network"]["id"]
        call(url, member, "POST", "/subnets", {"subnet": {
            "network_id": net_id, "cidr": "10.200.0.0/20", "ip_version": 4,
            "name": "bench-ports"}})
        empty = call(url, member, "POST", "/networks", {"network": {"name": "bench-empty"}})
        made["networks"].append(empty["network"]["id"])

        # (1) creation, between two runs of the ceiling
        kw = {"seconds": args.seconds, "conns": conns}
        ceiling1 = wrk(url + "/healthcheck", **kw)
        seconds, latencies, ids = asyncio.run(create_ports(url, member, net_id, args.ports,
                                                           conns))
        made["ports"] += ids
        ceiling2 = wrk(url + "/healthcheck", **kw)
        ceil = (ceiling1["rps"] + ceiling2["rps"]) / 2
        client_rate = asyncio.run(client_healthcheck(url, 5000, conns))
        port_rate = args.ports / seconds

        # (2) listing
        list_ms, body, size = list_p50(url, member, net_id)
        listed = len(body["ports"])
        empty_ms, _, _ = list_p50(url, member, empty["network"]["id"])
        dumps_ms = dumps_p50(body)

        # (3) DHCP
        agents = call(url, admin, "GET", "/agents?agent_type=DHCP agent")["agents"]
        status = agents[0]["configurations"].get("driver", "") if agents else ""
        if os.geteuid() != 0:
            dhcp_note = "skipped: not root"
        elif "linux" not in status:
            dhcp_note = f"skipped: the cloud has no Linux data plane ({status})"
        else:
            host = agents[0]["host"]
            third = int.from_bytes(os.urandom(1), "big")
            dhcp, written, warm, vms, vm_ports = onestack_dhcp(
                url, admin, host, args.dhcp_samples, f"10.201.{third}.0/24",
                data_dir / "network")
            made["ports"] += vm_ports
            made["networks"] += [p["id"] for p in call(
                url, admin, "GET", "/networks?name=bench-dhcp")["networks"]]
            dhcp_alone = dnsmasq_alone(args.dhcp_samples, tmp)
    finally:
        for vm in vms:
            vm.delete()
        if server:
            stop_server(server)
            error = teardown_dataplane(data_dir)
            if error:
                print(f"data-plane teardown: {error}", file=sys.stderr)
            if os.geteuid() == 0 and (left := leftovers(data_dir)):
                print(f"left on the host after teardown: {left}", file=sys.stderr)
        else:
            asyncio.run(delete_all(url, admin, "ports", made["ports"], conns))
            for n in made["networks"]:
                httpx.delete(f"{url}{NET}/networks/{n}", headers={"X-Auth-Token": admin})
            call(url, admin, "PUT", f"/quotas/{project}", {"quota": {"port": quota_before}})
        shutil.rmtree(tmp, ignore_errors=True)

    lat = sorted(latencies)
    print(f"{'port creation (' + str(conns) + ' clients)':<44}{'req/s':>10}{'ratio':>8}")
    print(f"{'ceiling GET /healthcheck (wrk, mean of 2)':<44}{ceil:>10.0f}{1:>8.2f}")
    print(f"{'POST /v2.0/ports (' + str(args.ports) + ' on a /20)':<44}{port_rate:>10.1f}"
          f"{port_rate / ceil:>8.3f}")
    print(f"  POST latency p50 {p50(lat) * 1000:.1f} ms, p99 "
          f"{lat[int(len(lat) * 0.99) - 1] * 1000:.1f} ms; this client alone on "
          f"/healthcheck: {client_rate:.0f} req/s")
    print()
    print(f"{'listing ports of a network (p50 of 5)':<44}{'ms':>10}{'ratio':>8}")
    print(f"{'GET ?network_id= (' + str(listed) + ' ports, ' + f'{size / 1e6:.2f} MB)':<44}"
          f"{list_ms:>10.1f}{1:>8.2f}")
    print(f"{'same, a network without ports':<44}{empty_ms:>10.1f}{empty_ms / list_ms:>8.3f}")
    print(f"{'json.dumps of the same body (in-process)':<44}{dumps_ms:>10.1f}"
          f"{dumps_ms / list_ms:>8.3f}")
    print()
    if dhcp:
        print(f"{'first DHCP offer (p50 of ' + str(len(dhcp)) + ')':<44}{'ms':>10}{'ratio':>8}")
        print(f"{'ceiling: dnsmasq alone (host + SIGHUP)':<44}{p50(dhcp_alone):>10.1f}"
              f"{1:>8.2f}")
        print(f"{'OneStack: port POST returned -> offer':<44}{p50(dhcp):>10.1f}"
              f"{p50(dhcp_alone) / p50(dhcp):>8.3f}")
        print(f"  each: {', '.join(f'{t:.0f}' for t in dhcp)} ms (dnsmasq alone: "
              f"{', '.join(f'{t:.1f}' for t in dhcp_alone)} ms); warm-up port on the new "
              f"network (POST -> offer): {warm:.2f} s")
        if written:
            print(f"  dnsmasq's host file written (the agent's pass) after the POST returned: "
                  f"p50 {p50(written):.0f} ms")
    else:
        print(f"first DHCP offer: {dhcp_note}")
    print("ratios: creation = ports/s / ceiling req/s; listing and DHCP = the faster "
          "figure's time / the slower's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
