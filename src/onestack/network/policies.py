"""The networking service's default policy (Neutron's secure-RBAC defaults in
spirit): project readers see their project's resources, project members change
them, admins do anything; some attributes are admin-only (provider segments,
``shared``, ``router:external``, port bindings).

A rule's target is the resource as the API renders it, plus
``network:project_id`` (the owner of the resource's network) for ports and
subnets, and ``network:shared``/``network:router:external`` for the network's
flags. ``<action>:<attribute>`` rules are checked when a request sets or reads that
attribute, as Neutron's attribute policies are.
"""

from __future__ import annotations

ADMIN = "role:admin"
OWNER_READER = "role:admin or (role:reader and project_id:%(project_id)s)"
OWNER_MEMBER = "role:admin or (role:member and project_id:%(project_id)s)"
NET_OWNER_MEMBER = (
    "role:admin or (role:member and project_id:%(network:project_id)s)"
)
# a network's reader: its owner, or anyone for a shared or external network
NET_READER = (
    "role:admin or (role:reader and project_id:%(project_id)s)"
    " or 'True':%(shared)s or 'True':%(router:external)s"
)

DEFAULTS: dict[str, str] = {
    "context_is_admin": ADMIN,
    "admin_only": ADMIN,
    # networks
    "create_network": OWNER_MEMBER,
    "create_network:shared": ADMIN,
    "create_network:router:external": ADMIN,
    "create_network:is_default": ADMIN,
    "create_network:provider:network_type": ADMIN,
    "create_network:provider:physical_network": ADMIN,
    "create_network:provider:segmentation_id": ADMIN,
    "create_network:segments": ADMIN,
    "get_network": NET_READER,
    "get_network:provider:network_type": ADMIN,
    "get_network:provider:physical_network": ADMIN,
    "get_network:provider:segmentation_id": ADMIN,
    "get_network:segments": ADMIN,
    "update_network": OWNER_MEMBER,
    "update_network:shared": ADMIN,
    "update_network:router:external": ADMIN,
    "update_network:is_default": ADMIN,
    "update_network:provider:network_type": ADMIN,
    "update_network:provider:physical_network": ADMIN,
    "update_network:provider:segmentation_id": ADMIN,
    "update_network:segments": ADMIN,
    "delete_network": OWNER_MEMBER,
    # subnets: made on a network its owner may change (or a shared one)
    "create_subnet": "role:admin or (role:member and (project_id:%(network:project_id)s"
                     " or 'True':%(network:shared)s))",
    "create_subnet:segment_id": ADMIN,
    "create_subnet:service_types": ADMIN,
    "get_subnet": "role:admin or (role:reader and (project_id:%(project_id)s or"
                  " project_id:%(network:project_id)s)) or 'True':%(network:shared)s"
                  " or 'True':%(network:router:external)s",
    "get_subnet:segment_id": ADMIN,
    "update_subnet": "role:admin or (role:member and (project_id:%(project_id)s or"
                     " project_id:%(network:project_id)s))",
    "update_subnet:service_types": ADMIN,
    "delete_subnet": "role:admin or (role:member and (project_id:%(project_id)s or"
                     " project_id:%(network:project_id)s))",
    # subnet pools
    "create_subnetpool": OWNER_MEMBER,
    "create_subnetpool:shared": ADMIN,
    "create_subnetpool:is_default": ADMIN,
    "get_subnetpool": "role:admin or (role:reader and project_id:%(project_id)s)"
                      " or 'True':%(shared)s",
    "update_subnetpool": OWNER_MEMBER,
    "update_subnetpool:is_default": ADMIN,
    "delete_subnetpool": OWNER_MEMBER,
    # ports
    "create_port": "role:admin or (role:member and (project_id:%(project_id)s"
                   " or project_id:%(network:project_id)s))",
    # a network:* device owner (router, DHCP) only on one's own network
    "create_port:device_owner": "'False':%(network_device)s or role:admin"
                                " or project_id:%(network:project_id)s",
    "create_port:mac_address": NET_OWNER_MEMBER,
    "create_port:fixed_ips:ip_address": NET_OWNER_MEMBER,
    "create_port:fixed_ips:subnet_id": "role:admin or project_id:%(network:project_id)s"
                                       " or 'True':%(network:shared)s",
    "create_port:port_security_enabled": NET_OWNER_MEMBER,
    "create_port:binding:host_id": ADMIN,
    "create_port:binding:profile": ADMIN,
    "create_port:binding:vnic_type": OWNER_MEMBER,
    "create_port:allowed_address_pairs": OWNER_MEMBER,
    "get_port": "role:admin or (role:reader and (project_id:%(project_id)s or"
                " project_id:%(network:project_id)s))",
    "get_port:binding:vif_type": ADMIN,
    "get_port:binding:vif_details": ADMIN,
    "get_port:binding:host_id": ADMIN,
    "get_port:binding:profile": ADMIN,
    "update_port": "role:admin or (role:member and (project_id:%(project_id)s or"
                   " project_id:%(network:project_id)s))",
    "update_port:device_owner": "'False':%(network_device)s or role:admin"
                                " or project_id:%(network:project_id)s",
    "update_port:mac_address": ADMIN,
    "update_port:fixed_ips:ip_address": NET_OWNER_MEMBER,
    "update_port:fixed_ips:subnet_id": "role:admin or project_id:%(network:project_id)s"
                                       " or 'True':%(network:shared)s",
    "update_port:port_security_enabled": NET_OWNER_MEMBER,
    "update_port:binding:host_id": ADMIN,
    "update_port:binding:profile": ADMIN,
    "update_port:allowed_address_pairs": OWNER_MEMBER,
    "delete_port": "role:admin or (role:member and (project_id:%(project_id)s or"
                   " project_id:%(network:project_id)s))",
    # routers
    "create_router": OWNER_MEMBER,
    "create_router:external_gateway_info": OWNER_MEMBER,
    "create_router:external_gateway_info:network_id": OWNER_MEMBER,
    "create_router:external_gateway_info:enable_snat": ADMIN,
    "create_router:external_gateway_info:external_fixed_ips": ADMIN,
    "create_router:distributed": ADMIN,
    "create_router:ha": ADMIN,
    "get_router": OWNER_READER,
    "get_router:distributed": ADMIN,
    "get_router:ha": ADMIN,
    "update_router": OWNER_MEMBER,
    "update_router:external_gateway_info": OWNER_MEMBER,
    "update_router:external_gateway_info:network_id": OWNER_MEMBER,
    "update_router:external_gateway_info:enable_snat": ADMIN,
    "update_router:external_gateway_info:external_fixed_ips": ADMIN,
    "update_router:distributed": ADMIN,
    "update_router:ha": ADMIN,
    "delete_router": OWNER_MEMBER,
    "add_router_interface": OWNER_MEMBER,
    "remove_router_interface": OWNER_MEMBER,
    # floating IPs
    "create_floatingip": OWNER_MEMBER,
    "create_floatingip:floating_ip_address": ADMIN,
    "get_floatingip": OWNER_READER,
    "update_floatingip": OWNER_MEMBER,
    "delete_floatingip": OWNER_MEMBER,
    # security groups
    "create_security_group": OWNER_MEMBER,
    "get_security_group": OWNER_READER + " or 'True':%(shared)s",
    "update_security_group": OWNER_MEMBER,
    "delete_security_group": OWNER_MEMBER,
    "create_security_group_rule": OWNER_MEMBER,
    "get_security_group_rule": "role:admin or (role:reader and (project_id:%(project_id)s or"
                               " project_id:%(security_group:project_id)s))",
    "delete_security_group_rule": OWNER_MEMBER,
    # quotas, agents, availability zones, IP availability
    "get_quota": OWNER_READER,
    "update_quota": ADMIN,
    "delete_quota": ADMIN,
    "get_agent": ADMIN,
    "update_agent": ADMIN,
    "delete_agent": ADMIN,
    "get_availability_zone": "role:reader or role:admin",
    "get_network_ip_availability": ADMIN,
    # tags: who may update the resource may tag it
}
