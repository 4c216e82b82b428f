"""Namespaces, links, addresses and routes: the kernel primitives of the Linux driver.

Everything here blocks (pyroute2's synchronous ``IPRoute``, syscalls, files); the
driver calls it from a worker thread. Work *inside* a namespace runs in a short-lived
thread that ``setns()`` into it (``run_in_netns``): a network namespace belongs to a
thread, not to the process, so the rest of the process and the thread pool stay in the
host's namespace, while whatever that thread opens (netlink sockets, ``/proc/sys/net``
files, listening sockets, the subprocesses it spawns) lives in the namespace.

Ownership: every link the driver creates carries the alias (IFLA_IFALIAS)
``onestack:<owner>``; a namespace is owned when its ``lo`` carries that alias. So what
belongs to which cloud is read from the kernel itself, and several clouds can share
one kernel without touching each other's objects.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pyroute2 import IPRoute  # type: ignore[import-untyped, unused-ignore]
from pyroute2 import netns as pr_netns
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped, unused-ignore]

T = TypeVar("T")

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
IFF_UP = 0x1
RTPROT_STATIC = 4  # routes the driver adds carry this protocol (``proto static``)
MAIN_TABLE = 254

_libc = ctypes.CDLL(None, use_errno=True)


def alias(owner: str) -> str:
    """The IFLA_IFALIAS that marks a link (or a namespace's ``lo``) as ``owner``'s."""
    return f"onestack:{owner}"


# --------------------------------------------------------------------------- namespaces


def ns_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def run_in_netns(name: str | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn`` in a fresh thread that has entered namespace ``name`` (the host's
    namespace when ``name`` is None: called directly). Blocks until it returns."""
    if name is None:
        return fn(*args, **kwargs)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            fd = os.open(ns_path(name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({name}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"netns:{name}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def list_namespaces() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def ns_identity(name: str) -> tuple[int, int] | None:
    """(device, inode) of the namespace mounted at ``name``, or None if there is none.

    A process is in that namespace when ``/proc/<pid>/ns/net`` has the same pair."""
    try:
        st = os.stat(ns_path(name))
        nsfs = os.stat("/proc/self/ns/net")
    except OSError:
        return None
    if st.st_dev != nsfs.st_dev:  # a plain file left behind, not a mounted namespace
        return None
    return (st.st_dev, st.st_ino)


def _lo_alias() -> str | None:
    with IPRoute() as ipr:
        link = ipr.get_links(ifname="lo")[0]
        value: str | None = link.get("IFLA_IFALIAS")
        return value


def namespace_owned(name: str, owner: str) -> bool:
    """Whether namespace ``name`` exists and its ``lo`` carries ``owner``'s alias."""
    if ns_identity(name) is None:
        return False
    try:
        return run_in_netns(name, _lo_alias) == alias(owner)
    except OSError:
        return False


def _init_namespace(tag: str, sysctls: dict[str, str]) -> None:
    with IPRoute() as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        ipr.link("set", index=lo, state="up", IFLA_IFALIAS=tag)
    for key, value in sysctls.items():
        try:
            write_sysctl(key, value)
        except FileNotFoundError:
            if ".ipv6." not in key:  # a host without IPv6 has no ipv6 keys: fine
                raise


def ensure_namespace(name: str, owner: str, sysctls: dict[str, str] | None = None) -> bool:
    """Create namespace ``name`` (``lo`` up, marked as ``owner``'s) unless it exists;
    apply ``sysctls`` (``net.ipv4.ip_forward``: "1") inside it. True if created.

    Raises:
        RuntimeError: the name is taken by a namespace another owner made.
    """
    created = False
    if ns_identity(name) is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(ns_path(name))  # a stale mount point (not a namespace)
        pr_netns.create(name)
        created = True
    elif not namespace_owned(name, owner):
        raise RuntimeError(f"namespace {name} exists and is not owned by {owner}")
    run_in_netns(name, _init_namespace, alias(owner), sysctls or {})
    return created


def delete_namespace(name: str) -> None:
    """Stop the processes still in namespace ``name`` (a process would keep it alive
    after its name is gone), then delete it."""
    ident = ns_identity(name)
    if ident is not None:
        kill_processes(ident)
    with contextlib.suppress(FileNotFoundError):
        pr_netns.remove(name)


def pids_in(ident: tuple[int, int]) -> list[int]:
    """Processes whose network namespace is ``ident`` (see ``ns_identity``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == ident:
            pids.append(int(entry))
    return pids


def kill_processes(ident: tuple[int, int], timeout: float = 2.0) -> None:
    """TERM, then KILL, every process in namespace ``ident``."""
    import signal
    import time

    pids = pids_in(ident)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        time.sleep(0.02)
        pids = pids_in(ident)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def write_sysctl(key: str, value: str) -> None:
    """Write ``net.ipv4.ip_forward``-style ``key`` in the calling thread's namespace."""
    path = "/proc/sys/" + key.replace(".", "/")
    with open(path) as f:
        if f.read().strip() == value:
            return
    with open(path, "w") as f:
        f.write(value)


# -------------------------------------------------------------------------------- links


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str | None
    alias: str | None
    master: int | None
    up: bool
    mtu: int
    address: str | None


def _to_link(msg: Any) -> Link:
    info = msg.get("IFLA_LINKINFO")
    return Link(
        index=msg["index"],
        name=msg.get("IFLA_IFNAME"),
        kind=info.get("IFLA_INFO_KIND") if info else None,
        alias=msg.get("IFLA_IFALIAS"),
        master=msg.get("IFLA_MASTER") or None,
        up=bool(msg["flags"] & IFF_UP),
        mtu=msg.get("IFLA_MTU"),
        address=msg.get("IFLA_ADDRESS"),
    )


def get_links(ipr: IPRoute) -> dict[str, Link]:
    return {link.name: link for link in map(_to_link, ipr.get_links())}


def get_link(ipr: IPRoute, name: str) -> Link | None:
    try:
        msgs = ipr.get_links(ifname=name)
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise
    return _to_link(msgs[0]) if msgs else None


def bridge_mac(name: str) -> str:
    """A stable, locally administered MAC for bridge ``name`` (so it does not follow
    the lowest MAC among its ports, which would invalidate neighbours' ARP caches)."""
    import hashlib

    digest = hashlib.sha256(name.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def ensure_bridge(ipr: IPRoute, name: str, tag: str, mtu: int | None, up: bool = True) -> Link:
    """Create bridge ``name`` marked with alias ``tag`` (if missing) and set it up.

    ``nf_call_iptables``/``ip6tables`` are set on the bridge itself, so bridged IP goes
    through the inet hooks (security groups) whatever the global sysctl says."""
    link = get_link(ipr, name)
    if link is None:
        ipr.link("add", ifname=name, kind="bridge", address=bridge_mac(name),
                 br_forward_delay=0, br_nf_call_iptables=1, br_nf_call_ip6tables=1)
        link = get_link(ipr, name)
        assert link is not None
        ipr.link("set", index=link.index, IFLA_IFALIAS=tag)
    elif link.kind != "bridge":
        raise RuntimeError(f"{name} exists and is not a bridge")
    changes: dict[str, Any] = {}
    if mtu and link.mtu != mtu:
        changes["mtu"] = mtu
    if link.up != up:
        changes["state"] = "up" if up else "down"
    if changes:
        ipr.link("set", index=link.index, **changes)
    return link


def ensure_veth(ipr: IPRoute, tap: str, *, bridge: int, ns: str, peer: str, mac: str,
                mtu: int | None, tag: str) -> bool:
    """A veth ``tap`` (host side, on ``bridge``) <-> ``peer`` (in ``ns``, with ``mac``).

    True if the pair was (re)created. An existing ``tap`` is kept when its peer is in
    ``ns`` under the right name; otherwise it is replaced.

    Raises:
        RuntimeError: ``tap`` exists and was not made by this owner.
    """
    link = get_link(ipr, tap)
    created = False
    if link is not None and link.alias != tag:
        raise RuntimeError(f"{tap} exists and is not owned by this cloud")
    if link is not None and not run_in_netns(ns, _has_link, peer):
        with contextlib.suppress(NetlinkError):  # may be going already, with an old namespace
            ipr.link("del", index=link.index)
        link = None
    if link is None:
        peer_spec: dict[str, Any] = {"ifname": peer, "net_ns_fd": ns, "address": mac}
        if mtu:
            peer_spec["mtu"] = mtu
        extra = {"mtu": mtu} if mtu else {}
        ipr.link("add", ifname=tap, kind="veth", peer=peer_spec, **extra)
        link = get_link(ipr, tap)
        assert link is not None
        ipr.link("set", index=link.index, IFLA_IFALIAS=tag)
        created = True
    changes: dict[str, Any] = {}
    if link.master != bridge:
        changes["master"] = bridge
    if mtu and link.mtu != mtu:
        changes["mtu"] = mtu
    if not link.up:
        changes["state"] = "up"
    if changes:
        ipr.link("set", index=link.index, **changes)
    return created


def ensure_vxlan(ipr: IPRoute, name: str, *, vni: int, local: str, bridge: int,
                 mtu: int | None, tag: str, port: int = 4789) -> Link:
    """A VXLAN device ``name`` (VNI ``vni`` from ``local``) on ``bridge``; a device
    of this owner with other settings is replaced.

    Raises:
        RuntimeError: ``name`` exists and was not made by this owner.
    """
    link = get_link(ipr, name)
    if link is not None and link.alias != tag:
        raise RuntimeError(f"{name} exists and is not owned by this cloud")
    if link is not None:
        data = ipr.get_links(link.index)[0].get("IFLA_LINKINFO").get("IFLA_INFO_DATA")
        if (data.get("IFLA_VXLAN_ID"), data.get("IFLA_VXLAN_LOCAL"),
                data.get("IFLA_VXLAN_PORT")) != (vni, local, port):
            ipr.link("del", index=link.index)
            link = None
    if link is None:
        ipr.link("add", ifname=name, kind="vxlan", vxlan_id=vni, vxlan_local=local,
                 vxlan_port=port, vxlan_learning=1)
        link = get_link(ipr, name)
        assert link is not None
        ipr.link("set", index=link.index, IFLA_IFALIAS=tag)
    changes: dict[str, Any] = {}
    if link.master != bridge:
        changes["master"] = bridge
    if mtu and link.mtu != mtu:
        changes["mtu"] = mtu
    if not link.up:
        changes["state"] = "up"
    if changes:
        ipr.link("set", index=link.index, **changes)
    return link


def sync_flood(ipr: IPRoute, index: int, peers: Iterable[str]) -> None:
    """Make the all-zero FDB entries of VXLAN device ``index`` (where broadcast and
    unknown destinations go: head-end replication) exactly ``peers``."""
    zero = "00:00:00:00:00:00"
    want = set(peers)
    have = {e.get("NDA_DST") for e in ipr.fdb("dump", ifindex=index)
            if e.get("ifindex") == index and e.get("NDA_LLADDR") == zero}
    for dst in have - want:
        with contextlib.suppress(NetlinkError):
            ipr.fdb("del", ifindex=index, lladdr=zero, dst=dst)
    for dst in sorted(want - have):
        ipr.fdb("append", ifindex=index, lladdr=zero, dst=dst)


def _has_link(name: str) -> bool:
    with IPRoute() as ipr:
        return get_link(ipr, name) is not None


def configure_inner(ipr: IPRoute, name: str, *, mac: str, mtu: int | None, tag: str,
                    addresses: Iterable[str]) -> None:
    """Set the namespace end of a veth: MAC, MTU, alias, up, exactly ``addresses``."""
    link = get_link(ipr, name)
    if link is None:
        raise RuntimeError(f"{name} is missing in its namespace")
    changes: dict[str, Any] = {}
    if (link.address or "").lower() != mac.lower():
        changes["address"] = mac
    if mtu and link.mtu != mtu:
        changes["mtu"] = mtu
    if link.alias != tag:
        changes["IFLA_IFALIAS"] = tag
    if not link.up:
        changes["state"] = "up"
    if changes:
        ipr.link("set", index=link.index, **changes)
    sync_addresses(ipr, link.index, addresses)


def delete_link(ipr: IPRoute, name: str) -> None:
    link = get_link(ipr, name)
    if link is not None:
        with contextlib.suppress(NetlinkError):
            ipr.link("del", index=link.index)


# ------------------------------------------------------------------- addresses and routes


def sync_addresses(ipr: IPRoute, index: int, wanted: Iterable[str]) -> None:
    """Make link ``index`` hold exactly the ``wanted`` interfaces ("10.0.0.2/24");
    IPv6 link-local addresses are the kernel's and are left alone."""
    want = {ipaddress.ip_interface(w) for w in wanted}
    have = set()
    for msg in ipr.get_addr(index=index):
        iface = ipaddress.ip_interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
        if iface.version == 6 and iface.ip.is_link_local:
            continue
        have.add(iface)
    for iface in have - want:
        ipr.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    for iface in sorted(want - have, key=str):
        kw: dict[str, Any] = {}
        if iface.version == 6:
            kw["IFA_FLAGS"] = 0x02  # IFA_F_NODAD: usable at once
        ipr.addr("add", index=index, address=str(iface.ip),
                 prefixlen=iface.network.prefixlen, **kw)


def sync_routes(ipr: IPRoute, wanted: dict[str, str]) -> list[str]:
    """Make the main table's ``proto static`` routes exactly ``wanted``
    (destination CIDR -> next hop); routes the kernel made are left alone.
    Returns the routes the kernel refused (as messages)."""
    want = {str(ipaddress.ip_network(d, strict=False)): gw for d, gw in wanted.items()}
    have: dict[str, str | None] = {}
    for family in (2, 10):
        for msg in ipr.get_routes(family=family, table=MAIN_TABLE):
            if msg.get("proto") != RTPROT_STATIC:
                continue
            dst = msg.get("RTA_DST") or ("0.0.0.0" if family == 2 else "::")
            key = str(ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False))
            have[key] = msg.get("RTA_GATEWAY")
    for dst, gw in have.items():
        if want.get(dst) != gw:
            with contextlib.suppress(NetlinkError):
                ipr.route("del", dst=dst, gateway=gw, table=MAIN_TABLE, proto=RTPROT_STATIC)
    failed = []
    for dst, gw in want.items():
        if have.get(dst) == gw:
            continue
        try:
            ipr.route("replace", dst=dst, gateway=gw, table=MAIN_TABLE, proto=RTPROT_STATIC)
        except NetlinkError as exc:
            failed.append(f"route {dst} via {gw}: {exc}")
    return failed
