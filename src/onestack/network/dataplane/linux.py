"""The Linux data plane: bridges, veths, namespaces, dnsmasq and nftables.

Kernel layout (names from ``model.names``, as Neutron's Linux bridge agent):

    host namespace
      brq<net11>          one bridge per network (a flat network on a physical network
                          of ``external_bridges`` uses that bridge, e.g. br-ex, instead)
      tap<port11>         a VM's tap (made by compute) or the host end of a veth,
                          attached to its network's bridge
      nft: bridge + inet tables ``onestack-<owner>`` (security groups, see ``nft``)
    qdhcp-<net>           ns-<port11> (DHCP port MAC and IPs, 169.254.169.254/32),
                          dnsmasq, and the metadata listener of this process
    qrouter-<router>      qr-<port11> per interface, qg-<port11> on the external
                          network (gateway IPs and floating IPs /32), ip_forward=1,
                          nft table ``onestack-<owner>``: floating IP DNAT/SNAT, SNAT

``converge`` does its kernel work in one worker thread (``wiring.Pass``), then starts or
stops metadata listeners on the event loop. Every object it makes carries the
owner's mark (see ``netns``), and clean-up only looks at marked objects.

A VM's tap appears after its port was bound here (QEMU makes it when it starts), so
``watch_links`` listens to the kernel's link notifications and tells the agent when
a ``tap*`` link this driver did not make appears (the host ends of its own veths
carry its mark); the agent then converges at once instead of at its next periodic
pass.

VXLAN between hosts: given ``state.local_ip``, a vxlan network's bridge also holds
``vxlan-<VNI>`` (UDP 4789 from that address), flooding to every ``tunnel_peers``
address and learning the rest (no l2population yet).

Not done yet: VLAN/flat networks on a physical network without an external bridge
are bridges local to this host; IPv6 router advertisements (SLAAC) are not sent;
metadata is served in DHCP namespaces only (a VM needs DHCP's route to reach it);
conntrack entries are not flushed when a security group rule is removed
(established connections survive until they end).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped, unused-ignore]
from pyroute2.netlink.rtnl import RTMGRP_LINK  # type: ignore[import-untyped, unused-ignore]
from pyroute2.netlink.rtnl.marshal import (  # type: ignore[import-untyped, unused-ignore]
    MarshalRtnl,
)

from onestack.core.concurrency import run_blocking
from onestack.network.dataplane import netns as kernel
from onestack.network.dataplane import nft
from onestack.network.dataplane.base import Driver, MetadataHandler
from onestack.network.dataplane.metadata import MetadataServer
from onestack.network.dataplane.model import ConvergeResult, DesiredState
from onestack.network.dataplane.wiring import NS_PREFIXES, Pass

log = logging.getLogger(__name__)

TAP_PREFIX = "tap"
WATCH_SETTLE = 0.2  # seconds a new tap waits: bursts give one call, our veths get tagged
WATCH_RETRY = 1.0  # after the netlink socket failed (e.g. ENOBUFS: events were lost)
WATCH_STOP_TIMEOUT = 5.0


def _drain(sock: socket.socket, marshal: Any) -> list[Any]:
    """Every netlink message waiting on non-blocking ``sock``, parsed.

    Raises:
        OSError: the socket failed (ENOBUFS: the kernel dropped events).
    """
    out: list[Any] = []
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return out
        out.extend(marshal.parse(data))


@dataclass
class Outcome:
    """What a kernel pass found and did."""

    active: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    dhcp: dict[str, str] = field(default_factory=dict)  # network -> namespace (metadata)
    counts: dict[str, int] = field(default_factory=dict)


class LinuxDriver(Driver):
    """The kernel data plane of one cloud (``owner``) on this host."""

    name = "linux"

    def __init__(self, *, owner: str, state_dir: Path, metadata: MetadataHandler) -> None:
        self.owner = owner
        self.tag = kernel.alias(owner)
        self.state_dir = Path(state_dir)
        self._metadata = metadata
        self._lock = asyncio.Lock()
        self._servers: dict[str, MetadataServer] = {}
        self._applied: dict[tuple[str | None, str, str], str | None] = {}
        self._summary = "not converged yet"
        self._watcher: asyncio.Task[None] | None = None

    async def converge(self, state: DesiredState) -> ConvergeResult:
        async with self._lock:
            outcome = await run_blocking(self._kernel_pass, state)
            await self._sync_metadata(outcome)
            for error in outcome.errors:
                log.warning("data plane (%s): %s", self.owner, error)
            c = outcome.counts
            self._summary = (f"{c.get('networks', 0)} networks, {c.get('dhcp', 0)} DHCP "
                             f"servers, {c.get('routers', 0)} routers, {len(outcome.active)} "
                             f"active ports, {len(outcome.errors)} errors")
            return ConvergeResult(active_ports=frozenset(outcome.active),
                                  errors=tuple(outcome.errors))

    async def teardown(self) -> None:
        await self._stop_watching()
        async with self._lock:
            await self._close_servers()
            outcome = await run_blocking(self._kernel_pass, DesiredState(host=""))
            await run_blocking(self._sweep)
            self._summary = "torn down"
            if outcome.errors:
                raise RuntimeError("; ".join(outcome.errors))

    async def close(self) -> None:
        await self._stop_watching()
        async with self._lock:
            await self._close_servers()

    def status(self) -> str:
        line = f"data plane: linux (owner {self.owner}): {self._summary}"
        if not os.path.exists("/proc/sys/net/bridge"):
            line += " (no br_netfilter: security groups not enforced)"
        return line

    # ------------------------------------------------------------------ link watcher

    def watch_links(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on this event loop) shortly after links named ``tap*``
        appear that this driver did not make (a VM's tap); a burst of them gives one
        call. The watcher runs until ``close`` (or ``teardown``)."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(callback),
                                                name=f"dataplane-links-{self.owner}")

    async def _stop_watching(self) -> None:
        task, self._watcher = self._watcher, None
        if task is None:
            return
        task.cancel()
        # asyncio.wait neither raises the task's cancellation nor swallows ours
        await asyncio.wait({task}, timeout=WATCH_STOP_TIMEOUT)
        if not task.done():
            log.warning("data plane (%s): the link watcher did not stop", self.owner)

    async def _watch(self, callback: Callable[[], None]) -> None:
        delay = WATCH_RETRY
        while True:
            listening: list[bool] = []
            try:
                await self._watch_socket(callback, listening)
            except Exception as exc:  # noqa: BLE001 - logged; the watcher starts over
                log.warning("data plane (%s): link watcher: %s", self.owner, exc)
            if listening:  # events may have been lost: a pass finds what they were about
                callback()
                delay = WATCH_RETRY
            else:  # could not even listen: try again, less and less often
                delay = min(delay * 2, WATCH_RETRY * 60)
            await asyncio.sleep(delay)

    async def _watch_socket(self, callback: Callable[[], None], listening: list[bool]) -> None:
        loop = asyncio.get_running_loop()
        seen: set[int] = set()  # untagged taps already reported (by ifindex)
        pending: set[int] = set()  # new taps waiting for WATCH_SETTLE
        flush: asyncio.TimerHandle | None = None

        def fire() -> None:
            nonlocal flush
            flush = None
            if pending:
                pending.clear()
                callback()

        # a plain netlink socket read with add_reader: pyroute2's AsyncIPRoute needs
        # a datagram endpoint of family AF_NETLINK, which uvloop (`onestack up`) refuses
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        readable = asyncio.Event()
        reading = False
        try:
            sock.bind((0, RTMGRP_LINK))  # link events only
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), readable.set)
            reading = True
            listening.append(True)
            marshal = MarshalRtnl()
            while True:
                await readable.wait()
                readable.clear()
                for msg in _drain(sock, marshal):
                    event = msg.get("event")
                    if event not in ("RTM_NEWLINK", "RTM_DELLINK"):
                        continue
                    name, index = msg.get("IFLA_IFNAME") or "", msg.get("index")
                    if not name.startswith(TAP_PREFIX) or index is None:
                        continue
                    if event == "RTM_DELLINK":
                        seen.discard(index)
                        pending.discard(index)
                    elif msg.get("IFLA_IFALIAS") == self.tag:
                        # the host end of one of our veths: made by a pass, not a VM
                        pending.discard(index)
                        seen.add(index)
                    elif index not in seen:
                        seen.add(index)
                        pending.add(index)
                        if flush is None:
                            flush = loop.call_later(WATCH_SETTLE, fire)
        finally:
            if flush is not None:
                flush.cancel()
            if reading:
                loop.remove_reader(sock.fileno())
            sock.close()

    # ---------------------------------------------------------------------- metadata

    async def _close_servers(self) -> None:
        for server in self._servers.values():
            await server.close()
        self._servers.clear()

    async def _sync_metadata(self, outcome: Outcome) -> None:
        for net_id, server in list(self._servers.items()):
            if outcome.dhcp.get(net_id) != server.ns or not server.current():
                await server.close()
                del self._servers[net_id]
        for net_id, ns in outcome.dhcp.items():
            if net_id in self._servers:
                continue
            server = MetadataServer(net_id, ns, self._metadata)
            try:
                await server.start()
            except OSError as exc:
                outcome.errors.append(f"metadata for network {net_id}: {exc}")
                continue
            self._servers[net_id] = server

    # ----------------------------------------------------------------- kernel pass

    def _kernel_pass(self, state: DesiredState) -> Outcome:
        outcome = Outcome()
        with IPRoute() as ipr:
            Pass(self, ipr, state, outcome).run()
        return outcome

    def _sweep(self) -> None:
        """After a pass with an empty state: anything of this owner still left
        (a namespace whose name the pass did not recognise)."""
        for name in kernel.list_namespaces():
            if name.startswith(NS_PREFIXES) and kernel.namespace_owned(name, self.owner):
                kernel.delete_namespace(name)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.state_dir / "dhcp")

    def apply_tables(self, ns: str | None, tables: dict[tuple[str, str], str | None],
                     force: bool = False) -> None:
        """Make the nft tables of namespace ``ns`` (None: the host) what ``tables``
        says ((family, name) -> ruleset, None to remove); skips unchanged tables."""
        def work() -> None:
            present = nft.list_tables()
            script = ""
            for (family, name), body in tables.items():
                key = (ns, family, name)
                exists = (family, name) in present
                if body is None:
                    if exists:
                        script += f"delete table {family} {name}\n"
                elif force or not exists or self._applied.get(key) != body:
                    script += nft.replace_script(family, name, body)
            if script:
                nft.run_nft(script)

        kernel.run_in_netns(ns, work)
        for (family, name), body in tables.items():
            self._applied[(ns, family, name)] = body

    def forget_tables(self, ns: str) -> None:
        for key in [k for k in self._applied if k[0] == ns]:
            del self._applied[key]

    # --------------------------------------------------------------- state files

    def dhcp_dir(self, network_id: str) -> Path:
        return self.state_dir / "dhcp" / network_id

    def load_record(self, name: str) -> dict[str, Any]:
        try:
            data = json.loads((self.state_dir / name).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_record(self, name: str, data: dict[str, Any]) -> None:
        if data == self.load_record(name):
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, path)
