"""Networks and their provider segments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.context import RequestContext
from onestack.network import errors
from onestack.network.api.common import standard
from onestack.network.models import (
    FloatingIP,
    IPAllocation,
    Network,
    Port,
    Segment,
    Subnet,
    new_id,
)
from onestack.network.service import common, floatingips, security_groups
from onestack.network.state import NetworkState

VXLAN_OVERHEAD = 50
NETWORK_TYPES = ("flat", "vlan", "vxlan", "local")
DHCP_OWNER = "network:dhcp"


def _ranges(spec: str, lo: int, hi: int) -> list[tuple[int, int]]:
    out = []
    for part in spec.split(","):
        if ":" in part:
            a, b = part.split(":", 1)
            out.append((max(lo, int(a)), min(hi, int(b))))
    return out or [(lo, hi)]


def render(net: Network, seg: Segment | None, subnets: list[str], tags: list[str]) -> dict[str, Any]:
    return {
        "id": net.id,
        "name": net.name,
        **standard(net, tags),
        "admin_state_up": net.admin_state_up,
        "status": net.status,
        "subnets": sorted(subnets),
        "shared": net.shared,
        "router:external": net.external,
        "is_default": net.is_default,
        "mtu": net.mtu,
        "port_security_enabled": net.port_security_enabled,
        "availability_zone_hints": list(net.availability_zone_hints or []),
        "availability_zones": ["nova"],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "l2_adjacency": True,
        "dns_domain": net.dns_domain,
        "provider:network_type": seg.network_type if seg else None,
        "provider:physical_network": (seg.physical_network or None) if seg else None,
        "provider:segmentation_id": (seg.segmentation_id or None) if seg else None,
    }


async def render_many(session: AsyncSession, nets: list[Network]) -> list[dict[str, Any]]:
    ids = [n.id for n in nets]
    segs: dict[str, Segment] = {}
    subnets: dict[str, list[str]] = {i: [] for i in ids}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        for seg in (await session.scalars(select(Segment).where(Segment.network_id.in_(part)))):
            segs[seg.network_id] = seg
        for nid, sid in await session.execute(
            select(Subnet.network_id, Subnet.id).where(Subnet.network_id.in_(part))
        ):
            subnets[nid].append(sid)
    tags = await common.tags_of(session, ids)
    return [render(n, segs.get(n.id), subnets[n.id], tags.get(n.id, [])) for n in nets]


async def get_row(session: AsyncSession, net_id: str) -> Network:
    net = await session.get(Network, net_id)
    if net is None:
        raise errors.network_not_found(net_id)
    return net


async def show(session: AsyncSession, net_id: str) -> dict[str, Any]:
    return (await render_many(session, [await get_row(session, net_id)]))[0]


async def list_visible(session: AsyncSession, ctx: RequestContext, admin: bool,
                       filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Networks the caller may see (its project's, shared and external ones; all
    for an admin), with cheap SQL pre-filters on ids and projects."""
    q = select(Network)
    if not admin:
        q = q.where(or_(Network.project_id == (ctx.project_id or ""),
                        Network.shared.is_(True), Network.external.is_(True)))
    if "id" in filters:
        q = q.where(Network.id.in_(filters["id"]))
    for key in ("project_id", "tenant_id"):
        if key in filters:
            q = q.where(Network.project_id.in_(filters[key]))
    return await render_many(session, list((await session.scalars(q)).all()))


async def _allocate_segment(st: NetworkState, session: AsyncSession, net_id: str,
                            network_type: str) -> Segment:
    """A free segmentation id of ``network_type`` for a project network."""
    spec, hi = ((st.conf.vni_ranges, 2**24 - 1) if network_type == "vxlan"
                else (st.conf.vlan_ranges, 4094))
    ranges = _ranges(spec, 1, hi)
    physnet = "" if network_type == "vxlan" else (st.conf.physical_networks or [""])[0]

    async def make() -> Segment:
        used = set((await session.scalars(
            select(Segment.segmentation_id).where(Segment.network_type == network_type)
        )).all())
        for lo, top in ranges:
            # the lowest free id (a concurrent taker makes insert_unique try again)
            for seg_id in range(lo, min(top, lo + len(used) + 1) + 1):
                if seg_id not in used:
                    return Segment(network_id=net_id, network_type=network_type,
                                   physical_network=physnet, segmentation_id=seg_id)
        raise errors.conflict("NoNetworkAvailable",
                              "Unable to create the network. No tenant network is available "
                              "for allocation.")

    row: Segment = await common.insert_unique(session, make)
    return row


async def _provider_segment(st: NetworkState, session: AsyncSession, net_id: str,
                            item: dict[str, Any]) -> Segment:
    ntype = item.get("provider:network_type")
    physnet = item.get("provider:physical_network")
    seg_id = item.get("provider:segmentation_id")
    if ntype is None:
        if physnet is not None or seg_id is not None:
            raise errors.invalid_input("provider:network_type required")
        ntype = st.conf.tenant_network_type
        return await _allocate_segment(st, session, net_id, ntype)
    if ntype not in NETWORK_TYPES:
        raise errors.invalid_input(f"network_type value '{ntype}' not supported")
    if ntype in ("flat", "vlan"):
        if not physnet:
            raise errors.invalid_input(f"physical_network required for {ntype} provider network")
        if physnet not in st.conf.physical_networks:
            raise errors.invalid_input(f"physical_network '{physnet}' unknown for {ntype} "
                                       "provider network")
    elif physnet:
        raise errors.invalid_input(f"physical_network not allowed for {ntype} provider network")
    if ntype in ("flat", "local"):
        if seg_id is not None:
            raise errors.invalid_input(f"segmentation_id specified for {ntype} network")
        seg_id = 0
    elif seg_id is None:
        return await _allocate_segment(st, session, net_id, ntype)
    else:
        top = 4094 if ntype == "vlan" else 2**24 - 1
        if not 1 <= seg_id <= top:
            raise errors.invalid_input(f"segmentation_id out of range (1 through {top})")
    if ntype == "flat":
        taken = await session.scalar(select(func.count()).select_from(Segment).where(
            Segment.network_type == "flat", Segment.physical_network == physnet))
        if taken:
            raise errors.conflict("FlatNetworkInUse",
                                  f"Unable to create the flat network. Physical network "
                                  f"{physnet} is in use.")
    seg = Segment(network_id=net_id, network_type=ntype, physical_network=physnet or "",
                  segmentation_id=seg_id)
    try:
        async with session.begin_nested():
            session.add(seg)
    except IntegrityError:
        if ntype == "vlan":
            raise errors.conflict("VlanIdInUse", f"Unable to create the network. The VLAN "
                                  f"{seg_id} on physical network {physnet} is in use.") from None
        raise errors.conflict("TunnelIdInUse", f"Unable to create the network. The tunnel ID "
                              f"{seg_id} is in use.") from None
    return seg


async def create(st: NetworkState, session: AsyncSession, item: dict[str, Any]) -> str:
    await common.check_quota(st, session, item["project_id"], "network", Network)
    # as Neutron, a project's first network brings its default security group
    if item["project_id"]:
        await security_groups.ensure_default(st, session, item["project_id"])
    net = Network(
        id=new_id(), project_id=item["project_id"], name=item["name"],
        description=item["description"], admin_state_up=item["admin_state_up"],
        shared=item["shared"], external=item["router:external"],
        is_default=item.get("is_default") or False,
        port_security_enabled=item["port_security_enabled"],
        availability_zone_hints=item["availability_zone_hints"] or [],
        dns_domain=item.get("dns_domain") or "",
        mtu=st.conf.global_physnet_mtu,
    )
    session.add(net)
    await session.flush()
    seg = await _provider_segment(st, session, net.id, item)
    natural = st.conf.global_physnet_mtu - (VXLAN_OVERHEAD if seg.network_type == "vxlan" else 0)
    mtu = item.get("mtu")
    if mtu is not None and mtu > natural:
        raise errors.invalid_input(f"Requested MTU is too big, maximum is {natural}")
    net.mtu = mtu if mtu is not None else natural
    if net.mtu < 68:
        raise errors.invalid_input("Invalid MTU: it must be at least 68")
    await common.dataplane_changed(st, session, "network created")
    return net.id


UPDATABLE = ("name", "description", "admin_state_up", "shared", "port_security_enabled",
             "mtu", "dns_domain")


async def update(st: NetworkState, session: AsyncSession, net: Network,
                 values: dict[str, Any]) -> None:
    if "router:external" in values:
        values["external"] = values.pop("router:external")
        if net.external and not values["external"]:
            in_use = await session.scalar(select(func.count()).select_from(Port).where(
                Port.network_id == net.id, Port.device_owner == "network:router_gateway"))
            if in_use:
                raise errors.conflict("NetworkInUse", f"Unable to complete operation on network "
                                      f"{net.id}. There are one or more ports still in use on "
                                      "the network.")
    if values.get("shared") is False and net.shared:
        foreign = await session.scalar(select(func.count()).select_from(Port).where(
            Port.network_id == net.id, Port.project_id != net.project_id,
            Port.device_owner != DHCP_OWNER))
        if foreign:
            raise errors.conflict("InvalidSharedSetting",
                                  f"Unable to reconfigure sharing settings for network "
                                  f"{net.id}. Multiple tenants are using it.")
    if "mtu" in values and values["mtu"] is not None:
        seg = await session.get(Segment, net.id)
        natural = st.conf.global_physnet_mtu - (
            VXLAN_OVERHEAD if seg and seg.network_type == "vxlan" else 0)
        if values["mtu"] > natural:
            raise errors.invalid_input(f"Requested MTU is too big, maximum is {natural}")
    if "provider:network_type" in values or "provider:physical_network" in values \
            or "provider:segmentation_id" in values:
        raise errors.invalid_input("Plugin does not support updating provider attributes")
    if "is_default" in values:
        if values["is_default"] and not (values.get("external", net.external)):
            raise errors.invalid_input("Only external networks can be the default")
    changed = common.apply(net, values, UPDATABLE + ("external", "is_default"))
    if changed:
        await common.dataplane_changed(st, session, "network updated")


async def delete(st: NetworkState, session: AsyncSession, net: Network) -> None:
    """Delete ``net`` with its subnets and DHCP ports.

    Raises:
        Conflict (NetworkInUse): it has other ports.
    """
    # as Neutron, an external network's floating IPs go with it
    for fip in (await session.scalars(select(FloatingIP).where(
            FloatingIP.floating_network_id == net.id))).all():
        await floatingips.delete(st, session, fip)
    busy = await session.scalar(select(func.count()).select_from(Port).where(
        Port.network_id == net.id, Port.device_owner != DHCP_OWNER))
    if busy:
        raise errors.conflict(
            "NetworkInUse",
            f"Unable to complete operation on network {net.id}. There are one or more "
            "ports still in use on the network.",
        )
    ports = (await session.scalars(select(Port.id).where(Port.network_id == net.id))).all()
    if ports:
        await session.execute(sql_delete(IPAllocation).where(IPAllocation.port_id.in_(ports)))
        await session.execute(sql_delete(Port).where(Port.id.in_(ports)))
    subnets = (await session.scalars(select(Subnet.id).where(Subnet.network_id == net.id))).all()
    for sid in subnets:
        await common.delete_tags(session, sid)
    await session.execute(sql_delete(Subnet).where(Subnet.network_id == net.id))
    await session.execute(sql_delete(Segment).where(Segment.network_id == net.id))
    await common.delete_tags(session, net.id)
    await session.delete(net)
    await common.dataplane_changed(st, session, "network deleted")
