"""Floating IPs: an address on an external network (held by a
``network:floatingip`` port) and, when associated, the fixed IPv4 address of a
port behind a router whose gateway is on that network."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterable
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import CloudError
from onestack.network import errors
from onestack.network.api.common import standard
from onestack.network.models import (
    FloatingIP,
    IPAllocation,
    Port,
    Router,
    Subnet,
    new_id,
)
from onestack.network.service import common
from onestack.network.service import ports as port_svc
from onestack.network.service import routers as rsvc
from onestack.network.service.routers import Caller
from onestack.network.state import NetworkState

log = logging.getLogger("onestack.network")

# where the compute API takes Nova's server external events (all-in-one prefix)
COMPUTE_EVENTS = "/compute/v2.1/os-server-external-events"
COMPUTE_OWNER_PREFIX = "compute:"

def bad_fip(msg: str) -> CloudError:
    return errors.bad_request("BadRequest", f"Bad floatingip request: {msg}.")


def fip_not_found(fip_id: str) -> CloudError:
    return errors.not_found("FloatingIPNotFound", f"Floating IP {fip_id} could not be found")


def port_details(port: Port | None) -> dict[str, Any] | None:
    if port is None:
        return None
    return {"name": port.name, "network_id": port.network_id, "mac_address": port.mac_address,
            "admin_state_up": port.admin_state_up, "status": port.status,
            "device_id": port.device_id, "device_owner": port.device_owner}


def render(f: FloatingIP, port: Port | None, tags: list[str]) -> dict[str, Any]:
    return {
        "id": f.id,
        **standard(f, tags),
        "floating_ip_address": f.floating_ip_address,
        "floating_network_id": f.floating_network_id,
        "router_id": f.router_id,
        "port_id": f.fixed_port_id,
        "fixed_ip_address": f.fixed_ip_address,
        "status": f.status,
        "port_details": port_details(port),
    }


async def render_many(s: AsyncSession, fips: list[FloatingIP]) -> list[dict[str, Any]]:
    port_ids = list({f.fixed_port_id for f in fips if f.fixed_port_id})
    ports: dict[str, Port] = {}
    for chunk in range(0, len(port_ids), 500):
        for p in (await s.scalars(select(Port).where(
                Port.id.in_(port_ids[chunk:chunk + 500])))).all():
            ports[p.id] = p
    tags = await common.tags_of(s, [f.id for f in fips])
    return [render(f, ports.get(f.fixed_port_id or ""), tags.get(f.id, [])) for f in fips]


async def get_row(s: AsyncSession, fip_id: str, lock: bool = False) -> FloatingIP:
    f = await s.get(FloatingIP, fip_id, with_for_update=lock or None)
    if f is None:
        raise fip_not_found(fip_id)
    return f


async def show(s: AsyncSession, fip_id: str) -> dict[str, Any]:
    return (await render_many(s, [await get_row(s, fip_id)]))[0]


async def list_visible(s: AsyncSession, project_id: str, admin: bool,
                       filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    q = select(FloatingIP)
    if not admin:
        q = q.where(FloatingIP.project_id == project_id)
    if "id" in filters:
        q = q.where(FloatingIP.id.in_(filters["id"]))
    for key in ("project_id", "tenant_id"):
        if key in filters:
            q = q.where(FloatingIP.project_id.in_(filters[key]))
    if "floating_network_id" in filters:
        q = q.where(FloatingIP.floating_network_id.in_(filters["floating_network_id"]))
    if "port_id" in filters:
        q = q.where(FloatingIP.fixed_port_id.in_(filters["port_id"]))
    return await render_many(s, list((await s.scalars(q)).all()))


# -- association -----------------------------------------------------------------------


async def router_for(s: AsyncSession, port: Port, subnet: Subnet, ext_net_id: str) -> str:
    """The router joining ``subnet`` (an interface on the port's network) to
    ``ext_net_id`` (its gateway); the one at the subnet's gateway address first.

    Raises:
        NotFound (ExternalGatewayForFloatingIPNotFound).
    """
    rows = (await s.execute(
        select(Router.id, IPAllocation.ip_address)
        .join(Port, Port.device_id == Router.id)
        .join(IPAllocation, IPAllocation.port_id == Port.id)
        .where(Port.device_owner == rsvc.ROUTER_INTF, Port.network_id == port.network_id,
               IPAllocation.subnet_id == subnet.id,
               Router.external_network_id == ext_net_id, Router.gw_port_id.is_not(None))
        .order_by(Router.created_at, Router.id)
    )).all()
    for router_id, ip in rows:
        if ip == subnet.gateway_ip:
            return str(router_id)
    if rows:
        return str(rows[0][0])
    raise errors.not_found(
        "ExternalGatewayForFloatingIPNotFound",
        f"External network {ext_net_id} is not reachable from subnet {subnet.id}.  "
        f"Therefore, cannot associate Port {port.id} with a Floating IP.")


async def _association(s: AsyncSession, fip: FloatingIP, port_id: str,
                       fixed_ip: str | None, caller: Caller) -> tuple[str, str, str]:
    """(port id, fixed address, router id) for associating ``fip`` with a port.

    Raises:
        NotFound (PortNotFound, ExternalGatewayForFloatingIPNotFound);
        BadRequest (another project's port, a DHCP port, no or several IPv4
        addresses, an address not on the port); Conflict
        (FloatingIPPortAlreadyAssociated).
    """
    port = await rsvc.visible_port(s, port_id, caller)
    if port.project_id != fip.project_id and not caller.admin:
        raise bad_fip(f"Cannot process floating IP association with Port {port.id}, since "
                      "that port is owned by a different project")
    if port.device_owner == rsvc.DHCP_OWNER:
        raise bad_fip(f"Port {port.id} is unable to be assigned a floating IP")
    allocs = (await rsvc.allocations(s, [port.id]))[port.id]
    if fixed_ip:
        if ipaddress.ip_address(fixed_ip).version != 4:
            raise bad_fip(f"Cannot process floating IP association with {fixed_ip}, since "
                          "that is not an IPv4 address")
        mine = [a for a in allocs if a.ip_address == fixed_ip]
        if not mine:
            raise bad_fip(f"Port {port.id} does not have fixed ip {fixed_ip}")
        alloc = mine[0]
    else:
        v4 = [a for a in allocs if ipaddress.ip_address(a.ip_address).version == 4]
        if not v4:
            raise bad_fip(f"Cannot add floating IP to port {port.id} that has no fixed IPv4 "
                          "addresses")
        if len(v4) > 1:
            raise bad_fip(f"Port {port.id} has multiple fixed IPv4 addresses.  Must provide "
                          "a specific IPv4 address when assigning a floating IP")
        alloc = v4[0]
    subnet = await s.get(Subnet, alloc.subnet_id)
    if subnet is None:
        raise errors.subnet_not_found(alloc.subnet_id)
    router_id = await router_for(s, port, subnet, fip.floating_network_id)
    if port.id != fip.fixed_port_id:
        taken = (await s.scalars(select(FloatingIP).where(
            FloatingIP.fixed_port_id == port.id,
            FloatingIP.fixed_ip_address == alloc.ip_address,
            FloatingIP.id != fip.id))).first()
        if taken is not None:
            raise _already(fip, port.id, alloc.ip_address)
    return port.id, alloc.ip_address, router_id


def _already(fip: FloatingIP, port_id: str, fixed_ip: str) -> CloudError:
    return errors.conflict(
        "FloatingIPPortAlreadyAssociated",
        f"Cannot associate floating IP {fip.floating_ip_address} ({fip.id}) with port "
        f"{port_id} using fixed IP {fixed_ip}, as that fixed IP already has a floating IP on "
        f"external network {fip.floating_network_id}.")


async def _set_association(s: AsyncSession, fip: FloatingIP,
                           assoc: tuple[str, str, str] | None) -> None:
    """Write the association (None: none) under the database's one-floating-IP-
    per-fixed-address constraint."""
    port_id, fixed_ip, router_id = assoc if assoc else (None, None, None)
    fip.fixed_port_id = port_id
    fip.fixed_ip_address = fixed_ip
    fip.router_id = router_id
    fip.status = "ACTIVE" if port_id else "DOWN"
    try:
        async with s.begin_nested():
            await s.flush()
    except IntegrityError:
        raise _already(fip, port_id or "", fixed_ip or "") from None


# -- CRUD ------------------------------------------------------------------------------


async def create(st: NetworkState, s: AsyncSession, item: dict[str, Any],
                 caller: Caller) -> str:
    """A floating IP: a port on the external network holds its address.

    Raises:
        NotFound (NetworkNotFound ...); BadRequest (not an external network, no
        IPv4 subnet, fixed_ip_address without port_id, address exhausted ...);
        Conflict (OverQuota, the address is taken ...).
    """
    await common.check_quota(st, s, item["project_id"], "floatingip", FloatingIP)
    net_id = item["floating_network_id"]
    net = await rsvc.visible_network(s, net_id, caller)
    if not net.external:
        raise bad_fip(f"Network {net_id} is not a valid external network")
    v4 = (await s.scalars(select(Subnet.id).where(
        Subnet.network_id == net_id, Subnet.ip_version == 4))).first()
    if v4 is None:
        raise bad_fip(f"Network {net_id} does not contain any IPv4 subnet")
    if item.get("fixed_ip_address") and not item.get("port_id"):
        raise bad_fip("fixed_ip_address cannot be specified without a port_id")
    fip_id = new_id()
    port_item: dict[str, Any] = {
        "project_id": "", "network_id": net_id, "name": "", "admin_state_up": True,
        "device_id": fip_id, "device_owner": rsvc.FLOATINGIP_OWNER,
    }
    fixed: dict[str, str] = {}
    if item.get("subnet_id"):
        fixed["subnet_id"] = item["subnet_id"]
    if item.get("floating_ip_address"):
        fixed["ip_address"] = item["floating_ip_address"]
    if fixed:
        port_item["fixed_ips"] = [fixed]
    port = await port_svc.create_port(st, s, port_item)
    v4_ips = [a for a in (await rsvc.allocations(s, [port.id]))[port.id]
              if ipaddress.ip_address(a.ip_address).version == 4]
    if not v4_ips:
        raise errors.bad_request("ExternalIpAddressExhausted",
                                 f"Unable to find any IP address on external network "
                                 f"{net_id}.")
    fip = FloatingIP(
        id=fip_id, project_id=item["project_id"], floating_network_id=net_id,
        floating_ip_address=v4_ips[0].ip_address, floating_port_id=port.id,
        description=item.get("description") or "", status="DOWN",
    )
    assoc = None
    if item.get("port_id"):
        assoc = await _association(s, fip, item["port_id"], item.get("fixed_ip_address"),
                                   caller)
    s.add(fip)
    await _set_association(s, fip, assoc)
    await common.dataplane_changed(st, s, "floating IP created")
    return fip.id


async def update(st: NetworkState, s: AsyncSession, fip: FloatingIP, values: dict[str, Any],
                 caller: Caller) -> None:
    """Associate (``port_id``, optionally ``fixed_ip_address``), disassociate
    (``port_id`` null) or describe.

    Raises:
        as ``_association``; BadRequest (fixed_ip_address without port_id).
    """
    if values.get("fixed_ip_address") and not values.get("port_id"):
        raise bad_fip("fixed_ip_address cannot be specified without a port_id")
    before = (fip.fixed_port_id, fip.fixed_ip_address, fip.router_id)
    if "port_id" in values:
        assoc = None
        if values["port_id"]:
            assoc = await _association(s, fip, values["port_id"],
                                       values.get("fixed_ip_address"), caller)
        await _set_association(s, fip, assoc)
    moved = before != (fip.fixed_port_id, fip.fixed_ip_address, fip.router_id)
    if not common.apply(fip, values, ("description",)) and moved:
        common.touch(fip)
    if moved:
        await common.dataplane_changed(st, s, "floating IP updated")


async def delete(st: NetworkState, s: AsyncSession, fip: FloatingIP) -> None:
    port = await s.get(Port, fip.floating_port_id)
    await common.delete_tags(s, fip.id)
    await s.delete(fip)
    await s.flush()
    if port is not None:
        await port_svc.delete_port(st, s, port)
    await common.dataplane_changed(st, s, "floating IP deleted")


# -- telling compute (Neutron's nova notifier) ------------------------------------------


def compute_ports(*items: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(server id, port id) of the compute-owned ports that rendered floating
    IPs (``render``) are associated with, without repeats."""
    out: list[tuple[str, str]] = []
    for item in items:
        if not item or not item.get("port_id"):
            continue
        details = item.get("port_details") or {}
        if not str(details.get("device_owner") or "").startswith(COMPUTE_OWNER_PREFIX):
            continue
        if not details.get("device_id"):
            continue
        pair = (str(details["device_id"]), str(item["port_id"]))
        if pair not in out:
            out.append(pair)
    return out


def moved(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return ((before.get("port_id"), before.get("fixed_ip_address"))
            != (after.get("port_id"), after.get("fixed_ip_address")))


def notify_compute(st: NetworkState, changed: Iterable[tuple[str, str]],
                   event: str = "network-changed") -> None:
    """Send compute an event per (server, port), as Neutron's nova notifier does:
    ``network-changed`` when the port's floating IPs changed (compute refreshes
    the server's addresses), ``network-vif-deleted`` when the port was deleted
    (compute takes the interface out of the server). Call after the transaction
    committed; the event is sent in the background: it never fails nor delays
    the caller, failures are logged, and a cloud without compute (no service
    user, 404) is skipped quietly."""
    events = [{"name": event, "server_uuid": server, "tag": port} for server, port in changed]
    http, session = st.extras.get("http"), st.extras.get("session")
    if not events or http is None or session is None:
        return
    tasks: set[asyncio.Task[None]] = st.extras.setdefault("notify_tasks", set())
    task = asyncio.create_task(_send_events(http, session, events), name=f"{event}-events")
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _send_events(http: Any, session: Any, events: list[dict[str, Any]]) -> None:
    try:
        r = await http.post(COMPUTE_EVENTS, json={"events": events},
                            headers=await session.headers(), timeout=30.0)
    except (CloudError, httpx.HTTPError) as exc:
        log.warning("could not send %d %s events to compute: %s",
                    len(events), events[0]["name"], exc)
        return
    if r.status_code == 404:  # no compute API here, or servers it does not know
        log.debug("compute took none of the %s events: %s", events[0]["name"], r.text[:300])
    elif r.status_code >= 400:
        log.warning("compute refused %s events: %s %s", events[0]["name"], r.status_code,
                    r.text[:300])
