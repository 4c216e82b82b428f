"""What ``onestack up`` sets up in the networking service on first start: the
external network (``public`` by default, as devstack names it), a flat network on
the host bridge with one subnet whose first address the host itself takes, so
that routers' gateways and floating IPs are reachable from the host."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from sqlalchemy import select

from onestack.network.models import Network, Segment, Subnet, new_id
from onestack.network.service import common
from onestack.network.state import NetworkState

log = logging.getLogger("onestack.network")

ADMIN_PROJECT = "admin"


async def admin_project_id(session: Any, http: Any, identity_path: str) -> str:
    """The id of the ``admin`` project, asked of the identity service."""
    r = await http.get(f"{identity_path}/projects", params={"name": ADMIN_PROJECT},
                       headers=await session.headers())
    r.raise_for_status()
    projects = r.json()["projects"]
    if not projects:
        raise LookupError("no admin project")
    return str(projects[0]["id"])


async def external_network(st: NetworkState, session: Any, http: Any,
                           identity_path: str) -> str | None:
    """Create the external network and its subnet unless a network of that name
    exists already; returns its id (None when none is configured)."""
    conf = st.conf
    name = conf.external_network
    if not name:
        return None
    async with st.db.read() as s:
        found = (await s.scalars(select(Network.id).where(Network.name == name))).first()
    if found is not None:
        return found
    cidr = ipaddress.ip_network(conf.external_cidr)
    hosts = cidr.hosts()
    gateway = str(next(hosts))
    first = str(next(hosts))
    last = str(cidr.broadcast_address - 1) if cidr.version == 4 else str(cidr[-2])
    project = await admin_project_id(session, http, identity_path)
    async with st.db.write() as s:
        net = Network(id=new_id(), project_id=project, name=name, external=True,
                      shared=False, mtu=conf.global_physnet_mtu, is_default=True)
        s.add(net)
        await s.flush()
        s.add(Segment(network_id=net.id, network_type="flat",
                      physical_network=conf.external_physical_network, segmentation_id=0))
        s.add(Subnet(id=new_id(), project_id=project, network_id=net.id,
                     name=f"{name}-subnet", ip_version=cidr.version, cidr=str(cidr),
                     gateway_ip=gateway, enable_dhcp=False,
                     allocation_pools=[{"start": first, "end": last}],
                     dns_nameservers=[], host_routes=[], service_types=[]))
        await common.dataplane_changed(st, s, "external network created")
    log.info("created the external network %s (%s) on %s", name, cidr, conf.external_bridge)
    return net.id
