"""Agents (the rows the data-plane agent keeps, with its heartbeat), availability
zones, and networks' IP availability."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import CloudError
from onestack.network import errors
from onestack.network.models import Agent, IPAllocation, Network, Subnet
from onestack.network.service.common import AGENT_DOWN_TIME

ZONE = "nova"
AVAILABILITY_ZONES = (
    {"name": ZONE, "resource": "network", "state": "available"},
    {"name": ZONE, "resource": "router", "state": "available"},
)


# -- agents -----------------------------------------------------------------------------


def agent_not_found(agent_id: str) -> CloudError:
    return errors.not_found("AgentNotFound", f"Agent {agent_id} could not be found.")


def _time(t: datetime | None) -> str | None:
    """Neutron shows agents' times as ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return None if t is None else t.strftime("%Y-%m-%d %H:%M:%S")


def render_agent(agent: Agent, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    beat = agent.heartbeat_timestamp
    return {
        "id": agent.id,
        "agent_type": agent.agent_type,
        "binary": agent.binary,
        "topic": agent.topic,
        "host": agent.host,
        "admin_state_up": agent.admin_state_up,
        "alive": beat is not None and now - beat <= AGENT_DOWN_TIME,
        "created_at": _time(agent.created_at),
        "started_at": _time(agent.started_at),
        "heartbeat_timestamp": _time(beat),
        "description": agent.description or None,
        "configurations": dict(agent.configurations or {}),
        "availability_zone": agent.availability_zone,
        "resources_synced": None,
    }


async def list_agents(session: AsyncSession, filters: dict[str, list[str]]
                      ) -> list[dict[str, Any]]:
    q = select(Agent)
    for key in ("id", "agent_type", "host", "binary", "topic"):
        if key in filters:
            q = q.where(getattr(Agent, key).in_(filters[key]))
    now = datetime.now(UTC)
    return [render_agent(a, now) for a in (await session.scalars(q)).all()]


async def get_agent(session: AsyncSession, agent_id: str) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise agent_not_found(agent_id)
    return agent


def update_agent(agent: Agent, values: dict[str, Any]) -> None:
    if "admin_state_up" in values:
        agent.admin_state_up = values["admin_state_up"]
    if "description" in values:
        agent.description = values["description"] or ""


# -- IP availability --------------------------------------------------------------------


def _pool_size(pool: dict[str, str]) -> int:
    return int(ipaddress.ip_address(pool["end"])) - int(ipaddress.ip_address(pool["start"])) + 1


def subnet_total(subnet: Subnet) -> int:
    """Addresses in the allocation pools (the whole CIDR when there are none, as
    Neutron counts it)."""
    pools = subnet.allocation_pools or []
    if not pools:
        return ipaddress.ip_network(subnet.cidr, strict=False).num_addresses
    return sum(_pool_size(p) for p in pools)


async def ip_availabilities(session: AsyncSession, filters: dict[str, list[str]]
                            ) -> list[dict[str, Any]]:
    """Per network: its subnets' total and used addresses (``ip_version`` keeps
    only subnets of that version, and networks that have one)."""
    q = select(Network)
    if "network_id" in filters:
        q = q.where(Network.id.in_(filters["network_id"]))
    if "network_name" in filters:
        q = q.where(Network.name.in_(filters["network_name"]))
    for key in ("project_id", "tenant_id"):
        if key in filters:
            q = q.where(Network.project_id.in_(filters[key]))
    nets = list((await session.scalars(q)).all())
    ids = [n.id for n in nets]
    subnets: dict[str, list[Subnet]] = defaultdict(list)
    used: dict[str, int] = {}
    versions = set(filters.get("ip_version", []))
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        for sub in (await session.scalars(select(Subnet).where(Subnet.network_id.in_(part)))):
            if not versions or str(sub.ip_version) in versions:
                subnets[sub.network_id].append(sub)
        for sid, count in await session.execute(
            select(IPAllocation.subnet_id, func.count()).where(
                IPAllocation.network_id.in_(part)).group_by(IPAllocation.subnet_id)
        ):
            used[sid] = int(count)
    out = []
    for net in nets:
        if versions and not subnets[net.id]:
            continue
        per_subnet: list[dict[str, Any]] = [{
            "subnet_id": sub.id,
            "subnet_name": sub.name,
            "cidr": sub.cidr,
            "ip_version": sub.ip_version,
            "total_ips": subnet_total(sub),
            "used_ips": used.get(sub.id, 0),
        } for sub in sorted(subnets[net.id], key=lambda x: (x.created_at, x.id))]
        out.append({
            "network_id": net.id,
            "network_name": net.name,
            "project_id": net.project_id,
            "tenant_id": net.project_id,
            "total_ips": sum(s["total_ips"] for s in per_subnet),
            "used_ips": sum(s["used_ips"] for s in per_subnet),
            "subnet_ip_availability": per_subnet,
        })
    return out
