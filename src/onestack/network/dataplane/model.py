"""The desired state of one host's data plane, as the agent hands it to a driver.

The network service builds a ``DesiredState`` from its database (what the API
says should exist on this host); a driver (``linux``: the kernel; ``fake``: a
record of calls) makes the host match it, idempotently, and removes what it owns
and the state no longer names. Everything here is plain, frozen data: a driver
never reads the database.

Kernel names follow Neutron's Linux bridge agent, so an operator who knows
Neutron finds the same things (``names`` below).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEVICE_OWNER_DHCP = "network:dhcp"
DEVICE_OWNER_ROUTER_INTF = "network:router_interface"
DEVICE_OWNER_ROUTER_GW = "network:router_gateway"
DEVICE_OWNER_FLOATINGIP = "network:floatingip"
DEVICE_OWNER_COMPUTE_PREFIX = "compute:"

METADATA_IP = "169.254.169.254"


class names:  # noqa: N801 - a namespace of naming rules
    """Kernel object names (interface names are at most 15 bytes)."""

    @staticmethod
    def bridge(network_id: str) -> str:
        return "brq" + network_id[:11]

    @staticmethod
    def tap(port_id: str) -> str:
        """The host end of a port: a VM's tap, or the bridge end of a veth."""
        return "tap" + port_id[:11]

    @staticmethod
    def dhcp_ns(network_id: str) -> str:
        return "qdhcp-" + network_id

    @staticmethod
    def dhcp_dev(port_id: str) -> str:
        return "ns-" + port_id[:11]

    @staticmethod
    def router_ns(router_id: str) -> str:
        return "qrouter-" + router_id

    @staticmethod
    def router_intf_dev(port_id: str) -> str:
        return "qr-" + port_id[:11]

    @staticmethod
    def router_gw_dev(port_id: str) -> str:
        return "qg-" + port_id[:11]


@dataclass(frozen=True)
class FixedIP:
    subnet_id: str
    ip_address: str


@dataclass(frozen=True)
class HostRoute:
    destination: str
    nexthop: str


@dataclass(frozen=True)
class SubnetState:
    id: str
    network_id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    enable_dhcp: bool
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[HostRoute, ...] = ()
    ipv6_address_mode: str | None = None
    ipv6_ra_mode: str | None = None


@dataclass(frozen=True)
class NetworkState:
    id: str
    mtu: int
    network_type: str  # flat | vlan | vxlan | local
    physical_network: str | None
    segmentation_id: int | None
    admin_state_up: bool
    external: bool
    subnets: tuple[SubnetState, ...] = ()


@dataclass(frozen=True)
class AddressPair:
    ip_address: str  # an address or a CIDR
    mac_address: str


@dataclass(frozen=True)
class PortState:
    id: str
    network_id: str
    mac_address: str
    fixed_ips: tuple[FixedIP, ...]
    device_owner: str
    device_id: str
    admin_state_up: bool = True
    port_security_enabled: bool = True
    security_group_ids: tuple[str, ...] = ()
    allowed_address_pairs: tuple[AddressPair, ...] = ()
    hostname: str | None = None  # the DHCP host name (dns_name, else host-<ip>)
    project_id: str = ""


@dataclass(frozen=True)
class FloatingIPState:
    id: str
    floating_ip_address: str
    fixed_ip_address: str


@dataclass(frozen=True)
class RouterState:
    id: str
    admin_state_up: bool
    gateway_port: PortState | None  # on an external network
    enable_snat: bool
    interfaces: tuple[PortState, ...]  # device_owner network:router_interface
    routes: tuple[HostRoute, ...] = ()
    floating_ips: tuple[FloatingIPState, ...] = ()


@dataclass(frozen=True)
class SecurityGroupRuleState:
    id: str
    direction: str  # ingress | egress
    ethertype: str  # IPv4 | IPv6
    protocol: str | None  # None (any), a name (tcp, udp, icmp, icmpv6 ...) or a number as text
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None


@dataclass(frozen=True)
class SecurityGroupState:
    id: str
    stateful: bool
    rules: tuple[SecurityGroupRuleState, ...]


@dataclass(frozen=True)
class ExternalBridge:
    """A physical network mapped to a host bridge (``public`` -> ``br-ex``).

    ``host_cidr`` is an address the host itself takes on the bridge (e.g.
    172.24.4.1/24), so that floating IPs are reachable from the host;
    ``masquerade`` NATs that CIDR out of the host's other interfaces."""

    physical_network: str
    bridge: str
    host_cidr: str | None = None
    masquerade: bool = False


@dataclass(frozen=True)
class DesiredState:
    """Everything that should exist on one host.

    ``ports`` holds every port the host must wire: DHCP and router ports of the
    networks and routers it serves, and VM ports bound to it (``binding:host_id``).
    ``group_members`` maps a security group to the addresses of its members' ports
    (for rules with ``remote_group_id``). ``local_ip``/``tunnel_peers``: VXLAN
    networks get a ``vxlan-<segmentation id>`` device on their bridge that floods
    to every peer (learning the rest). ``remote_ports``: the other ports of the
    networks whose DHCP server is here (bound to other hosts, or to none), which
    DHCP answers too but this host does not wire.
    """

    host: str
    networks: dict[str, NetworkState] = field(default_factory=dict)
    ports: dict[str, PortState] = field(default_factory=dict)
    routers: dict[str, RouterState] = field(default_factory=dict)
    security_groups: dict[str, SecurityGroupState] = field(default_factory=dict)
    group_members: dict[str, tuple[str, ...]] = field(default_factory=dict)
    external_bridges: tuple[ExternalBridge, ...] = ()
    dns_domain: str = "openstacklocal"
    # VXLAN between hosts: this host's tunnel address and the other hosts'. Without
    # ``local_ip`` a vxlan network is a bridge local to this host.
    local_ip: str | None = None
    tunnel_peers: tuple[str, ...] = ()
    remote_ports: dict[str, PortState] = field(default_factory=dict)


@dataclass(frozen=True)
class ConvergeResult:
    """What a driver reports after a pass: the ports that are wired and up (their
    status becomes ACTIVE), and problems it could not fix (logged, retried)."""

    active_ports: frozenset[str] = frozenset()
    errors: tuple[str, ...] = ()
