"""DHCP (and local DNS) for one network: a dnsmasq in the network's ``qdhcp-`` namespace.

Files under ``<state_dir>/dhcp/<network_id>/``: ``host`` (MAC -> address, name),
``addn_hosts`` (names for DNS), ``opts`` (router, DNS servers, classless routes per
subnet), ``leases``, ``log``, ``pid``. Changes to ports and options only rewrite
these files and SIGHUP dnsmasq (it re-reads them); dnsmasq is restarted only when
its command line changes (subnets, MTU, interface) or it is gone.

dnsmasq daemonizes in its own session, so it outlives the process that started it;
the next driver adopts it when ``/proc/<pid>/cmdline`` is exactly the command line it
would run and ``/proc/<pid>/ns/net`` is the namespace (a namespace deleted and made
again is a different one: its old dnsmasq is killed, not adopted).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from onestack.network.dataplane import netns
from onestack.network.dataplane.model import (
    METADATA_IP,
    NetworkState,
    PortState,
    SubnetState,
)

LEASE_SECONDS = 86400


@dataclass(frozen=True)
class DhcpConfig:
    argv: tuple[str, ...]
    files: dict[str, str]  # file name -> content


def hostname(port: PortState, ip: str) -> str:
    if port.hostname:
        return port.hostname
    return "host-" + ip.replace(".", "-").replace(":", "-")


def build(network: NetworkState, dhcp_port: PortState, ports: list[PortState], *,
          directory: Path, interface: str, domain: str,
          as_root: bool) -> DhcpConfig | None:
    """dnsmasq's command line and files for ``network`` (None: no subnet with DHCP)."""
    subnets = {s.id: s for s in network.subnets}
    dhcp_ips = {f.subnet_id: f.ip_address for f in dhcp_port.fixed_ips}
    served = [s for s in network.subnets if s.enable_dhcp and s.id in dhcp_ips
              and (s.ip_version == 4 or s.ipv6_address_mode in ("dhcpv6-stateful",
                                                                 "dhcpv6-stateless"))]
    if not served:
        return None
    d = str(directory)
    argv = [
        "dnsmasq", "--no-hosts", "--no-resolv", "--conf-file=/dev/null",
        f"--pid-file={d}/pid", f"--dhcp-hostsfile={d}/host", f"--addn-hosts={d}/addn_hosts",
        f"--dhcp-optsfile={d}/opts", f"--dhcp-leasefile={d}/leases", f"--log-facility={d}/log",
        f"--interface={interface}", "--except-interface=lo", "--bind-dynamic",
        f"--domain={domain}", f"--local=/{domain}/", "--dhcp-authoritative",
        "--dhcp-lease-max=16777216",
        f"--dhcp-option-force=option:mtu,{network.mtu}",
    ]
    if as_root:
        argv.append("--user=root")
    for s in served:
        net = ipaddress.ip_network(s.cidr, strict=False)
        mask = str(net.netmask) if net.version == 4 else str(net.prefixlen)
        argv.append(f"--dhcp-range=set:{_tag(s)},{net.network_address},static,{mask},"
                    f"{LEASE_SECONDS}s")
    hosts, names = [], []
    served_ids = {s.id for s in served}
    for port in sorted(ports, key=lambda p: p.id):
        for fip in port.fixed_ips:
            name = hostname(port, fip.ip_address)
            names.append(f"{fip.ip_address}\t{name}.{domain}\t{name}")
            subnet = subnets.get(fip.subnet_id)
            if fip.subnet_id not in served_ids or subnet is None:
                continue
            addr = fip.ip_address if subnet.ip_version == 4 else f"[{fip.ip_address}]"
            hosts.append(f"{port.mac_address},{name},{addr}")
    opts = []
    for s in served:
        opts += _subnet_options(s, dhcp_ips[s.id])
    return DhcpConfig(argv=tuple(argv), files={
        "host": "\n".join(hosts) + "\n",
        "addn_hosts": "\n".join(names) + "\n",
        "opts": "\n".join(opts) + "\n",
    })


def _tag(subnet: SubnetState) -> str:
    return "subnet-" + subnet.id


def _subnet_options(s: SubnetState, dhcp_ip: str) -> list[str]:
    tag = "tag:" + _tag(s)
    dns = list(s.dns_nameservers) or [dhcp_ip]
    if s.ip_version == 6:
        return [f"{tag},option6:dns-server," + ",".join(f"[{a}]" for a in dns)]
    opts = [f"{tag},option:dns-server," + ",".join(dns)]
    # RFC 3442: a client that gets option 121 ignores the router option, so the
    # default route goes into the classless routes as well.
    routes = [(f"{METADATA_IP}/32", dhcp_ip)]
    routes += [(r.destination, r.nexthop) for r in s.host_routes
               if ipaddress.ip_network(r.destination, strict=False).version == 4]
    if s.gateway_ip:
        opts.append(f"{tag},option:router,{s.gateway_ip}")
        routes.append(("0.0.0.0/0", s.gateway_ip))
    else:
        opts.append(f"{tag},option:router")  # none: send no router
    flat = ",".join(f"{dst},{via}" for dst, via in routes)
    opts.append(f"{tag},option:classless-static-route,{flat}")
    opts.append(f"{tag},249,{flat}")  # the same for Microsoft clients
    return opts


def needs_root(directory: Path) -> bool:
    """dnsmasq drops to an unprivileged user and re-reads its files as that user on
    SIGHUP; if some directory above ``directory`` is closed to others it must stay root."""
    path = directory.resolve()
    for p in (path, *path.parents):
        try:
            mode = p.stat().st_mode
        except OSError:
            return True
        if not mode & stat.S_IXOTH:
            return True
    return False


# ------------------------------------------------------------------------- processes


def write_files(directory: Path, files: dict[str, str]) -> bool:
    """Write the files that changed (atomically); True if any did."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    changed = False
    for name, content in files.items():
        path = directory / name
        with contextlib.suppress(FileNotFoundError):
            if path.read_text() == content:
                continue
        tmp = directory / f".{name}.tmp"
        tmp.write_text(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        changed = True
    return changed


def read_pid(directory: Path) -> int | None:
    try:
        return int((directory / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    """Running, not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> tuple[str, ...]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return ()
    return tuple(raw.decode(errors="replace").split("\0")[:-1])


def in_namespace(pid: int, ns: str) -> bool:
    ident = netns.ns_identity(ns)
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return False
    return ident == (st.st_dev, st.st_ino)


def running(directory: Path, argv: tuple[str, ...] | None = None,
            ns: str | None = None) -> int | None:
    """The pid of the dnsmasq recorded in ``directory`` if it is alive (and, when
    given, runs exactly ``argv`` in namespace ``ns``)."""
    pid = read_pid(directory)
    if pid is None or not alive(pid):
        return None
    line = cmdline(pid)
    if not line or os.path.basename(line[0]) != "dnsmasq":
        return None
    if not any(a == f"--pid-file={directory}/pid" for a in line):
        return None  # a recycled pid: some other dnsmasq
    if argv is not None and line != argv:
        return None
    if ns is not None and not in_namespace(pid, ns):
        return None
    return pid


def stop(directory: Path, timeout: float = 3.0) -> None:
    """Stop the dnsmasq recorded in ``directory`` (TERM, then KILL)."""
    pid = running(directory)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        (directory / "pid").unlink()


def _spawn(argv: tuple[str, ...]) -> None:
    # Called inside the namespace's thread: the child inherits the thread's namespace.
    proc = subprocess.run(list(argv), check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, start_new_session=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"dnsmasq exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace').strip()[:500]}")


def ensure(directory: Path, ns: str, config: DhcpConfig) -> str:
    """Make a dnsmasq run ``config`` in namespace ``ns``; returns what was done
    ("kept", "reloaded", "started")."""
    changed = write_files(directory, config.files)
    pid = running(directory, config.argv, ns)
    if pid is not None:
        if changed:
            os.kill(pid, signal.SIGHUP)
            return "reloaded"
        return "kept"
    stop(directory)
    netns.run_in_netns(ns, _spawn, config.argv)
    return "started"
