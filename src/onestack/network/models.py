"""Networking tables (prefix ``network_``).

Ids are uuid4 strings. Every API resource carries Neutron's standard attributes
(``revision_number``, ``created_at``, ``updated_at``, ``description``) and can be
tagged (``network_tags``, keyed by resource id). Uniqueness that must hold under
concurrency is a database constraint, never a read-then-write check:

- an address is allocated once per subnet (``network_ip_allocations`` primary key);
- a MAC address once per network (``uq`` on ports);
- a segmentation id once per network type (``network_segments``);
- one default security group per project (``network_default_security_groups``).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from onestack.core.db import UTCDateTime as UTC
from onestack.core.db import make_base
from onestack.core.tasks import task_table

Base = make_base()


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class StandardAttrs:
    """Neutron's standard attributes, on every resource table."""

    description: Mapped[str] = mapped_column(String(255), default="")
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)


class Network(StandardAttrs, Base):
    __tablename__ = "network_networks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    dns_domain: Mapped[str] = mapped_column(String(255), default="")
    availability_zone_hints: Mapped[list[str]] = mapped_column(JSON, default=list)


class Segment(Base):
    """A network's provider segment; ``segmentation_id`` unique per type (NULL for
    flat and local, where the physical network is what must be unique for flat)."""

    __tablename__ = "network_segments"
    __table_args__ = (
        UniqueConstraint("network_type", "physical_network", "segmentation_id"),
    )

    network_id: Mapped[str] = mapped_column(
        ForeignKey("network_networks.id", ondelete="CASCADE"), primary_key=True
    )
    network_type: Mapped[str] = mapped_column(String(16))
    # '' rather than NULL, so that the unique constraint holds on every database
    physical_network: Mapped[str] = mapped_column(String(64), default="")
    segmentation_id: Mapped[int] = mapped_column(Integer, default=0)


class SubnetPool(StandardAttrs, Base):
    __tablename__ = "network_subnetpools"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    prefixes: Mapped[list[str]] = mapped_column(JSON, default=list)
    default_prefixlen: Mapped[int] = mapped_column(Integer)
    min_prefixlen: Mapped[int] = mapped_column(Integer)
    max_prefixlen: Mapped[int] = mapped_column(Integer)
    default_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    address_scope_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Subnet(StandardAttrs, Base):
    __tablename__ = "network_subnets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("network_networks.id"), index=True
    )
    name: Mapped[str] = mapped_column(String(255), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    cidr: Mapped[str] = mapped_column(String(64))
    gateway_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    ipv6_ra_mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ipv6_address_mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    subnetpool_id: Mapped[str | None] = mapped_column(
        ForeignKey("network_subnetpools.id"), nullable=True, index=True
    )
    # [{"start": ip, "end": ip}, ...]
    allocation_pools: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    dns_nameservers: Mapped[list[str]] = mapped_column(JSON, default=list)
    # [{"destination": cidr, "nexthop": ip}, ...]
    host_routes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    service_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    dns_publish_fixed_ip: Mapped[bool] = mapped_column(Boolean, default=False)


class Port(StandardAttrs, Base):
    __tablename__ = "network_ports"
    __table_args__ = (
        UniqueConstraint("network_id", "mac_address"),
        Index("ix_network_ports_device_id", "device_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("network_networks.id"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    mac_address: Mapped[str] = mapped_column(String(32))
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    device_id: Mapped[str] = mapped_column(String(255), default="")
    device_owner: Mapped[str] = mapped_column(String(255), default="")
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # [{"ip_address": ip-or-cidr, "mac_address": mac}, ...]
    allowed_address_pairs: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # [{"opt_name", "opt_value", "ip_version"}, ...]
    extra_dhcp_opts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    dns_name: Mapped[str] = mapped_column(String(255), default="")
    binding_host_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    binding_vnic_type: Mapped[str] = mapped_column(String(32), default="normal")
    binding_vif_type: Mapped[str] = mapped_column(String(32), default="unbound")
    binding_vif_details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    binding_profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    propagate_uplink_status: Mapped[bool] = mapped_column(Boolean, default=False)


class IPAllocation(Base):
    """One fixed IP of a port; an address exists once per subnet."""

    __tablename__ = "network_ip_allocations"
    __table_args__ = (Index("ix_network_ip_allocations_port_id", "port_id"),)

    subnet_id: Mapped[str] = mapped_column(
        ForeignKey("network_subnets.id"), primary_key=True
    )
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    network_id: Mapped[str] = mapped_column(String(36), index=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("network_ports.id", ondelete="CASCADE"))


class PortSecurityGroup(Base):
    __tablename__ = "network_port_security_groups"

    port_id: Mapped[str] = mapped_column(
        ForeignKey("network_ports.id", ondelete="CASCADE"), primary_key=True
    )
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("network_security_groups.id"), primary_key=True, index=True
    )


class Router(StandardAttrs, Base):
    __tablename__ = "network_routers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    gw_port_id: Mapped[str | None] = mapped_column(
        ForeignKey("network_ports.id"), nullable=True
    )
    external_network_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    enable_snat: Mapped[bool] = mapped_column(Boolean, default=True)
    distributed: Mapped[bool] = mapped_column(Boolean, default=False)
    ha: Mapped[bool] = mapped_column(Boolean, default=False)
    # [{"destination": cidr, "nexthop": ip}, ...]
    routes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    availability_zone_hints: Mapped[list[str]] = mapped_column(JSON, default=list)


class FloatingIP(StandardAttrs, Base):
    __tablename__ = "network_floating_ips"
    __table_args__ = (
        UniqueConstraint("floating_network_id", "floating_ip_address"),
        # one floating IP per fixed address of a port
        UniqueConstraint("fixed_port_id", "fixed_ip_address"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    floating_network_id: Mapped[str] = mapped_column(ForeignKey("network_networks.id"))
    floating_ip_address: Mapped[str] = mapped_column(String(64))
    floating_port_id: Mapped[str] = mapped_column(
        ForeignKey("network_ports.id", ondelete="CASCADE")
    )
    fixed_port_id: Mapped[str | None] = mapped_column(
        ForeignKey("network_ports.id"), nullable=True, index=True
    )
    fixed_ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    router_id: Mapped[str | None] = mapped_column(
        ForeignKey("network_routers.id"), nullable=True, index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    dns_name: Mapped[str] = mapped_column(String(255), default="")
    dns_domain: Mapped[str] = mapped_column(String(255), default="")


class SecurityGroup(StandardAttrs, Base):
    __tablename__ = "network_security_groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    stateful: Mapped[bool] = mapped_column(Boolean, default=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)


class DefaultSecurityGroup(Base):
    """The default group of each project: the primary key makes a second one,
    created concurrently, fail."""

    __tablename__ = "network_default_security_groups"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("network_security_groups.id", ondelete="CASCADE")
    )


class SecurityGroupRule(StandardAttrs, Base):
    __tablename__ = "network_security_group_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("network_security_groups.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(String(8))
    ethertype: Mapped[str] = mapped_column(String(8), default="IPv4")
    protocol: Mapped[str | None] = mapped_column(String(40), nullable=True)
    port_range_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    port_range_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    remote_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("network_security_groups.id", ondelete="CASCADE"), nullable=True
    )
    remote_address_group_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # the rule's identity for Neutron's duplicate check (SecurityGroupRuleExists)
    fingerprint: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("security_group_id", "fingerprint"),)


class Tag(Base):
    __tablename__ = "network_tags"

    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(32))


class Quota(Base):
    __tablename__ = "network_quotas"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    limit: Mapped[int] = mapped_column(Integer)


class Agent(Base):
    """A data-plane agent's heartbeat (``GET /v2.0/agents``)."""

    __tablename__ = "network_agents"
    __table_args__ = (UniqueConstraint("agent_type", "host"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    agent_type: Mapped[str] = mapped_column(String(64))
    binary: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    configurations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    started_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    heartbeat_timestamp: Mapped[datetime] = mapped_column(UTC, default=utcnow)


Task = task_table(Base, "network_")
