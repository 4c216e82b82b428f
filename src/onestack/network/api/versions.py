"""Version discovery (``/``, ``/v2.0``) and ``/v2.0/extensions``: exactly the
extensions this service implements (Tempest and clients decide what to test
and what to offer from this list)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.http import JSONResponse, service_url
from onestack.network import errors
from onestack.network.api import common as c

UPDATED = "2026-11-21T00:00:00-00:00"

# alias -> (name, description)
EXTENSIONS: dict[str, tuple[str, str]] = {
    "agent": ("agent", "The agent management extension."),
    "allowed-address-pairs": ("Allowed Address Pairs", "Provides allowed address pairs"),
    "availability_zone": ("Availability Zone", "The availability zone extension."),
    "binding": ("Port Binding", "Expose port bindings of a virtual port to external "
                "application"),
    "default-subnetpools": ("Default Subnetpools", "Provides ability to mark and use a "
                            "subnetpool as the default."),
    "empty-string-filtering": ("Empty String Filtering Extension", "Allow filtering by "
                               "attributes with empty string value"),
    "external-net": ("Neutron external network", "Adds external network attribute to "
                     "network resource."),
    "ext-gw-mode": ("Neutron L3 Configurable external gateway mode", "Extension of the "
                    "router abstraction for specifying whether SNAT should occur on the "
                    "external gateway"),
    "extra_dhcp_opt": ("Neutron Extra DHCP options", "Extra options configuration for DHCP."),
    "extraroute": ("Neutron Extra Route", "Extra routes configuration for L3 router"),
    "extraroute-atomic": ("Atomically add/remove extra routes", "Edit extra routes of a "
                          "router on server side by atomically adding/removing extra routes"),
    "fip-port-details": ("Floating IP Port Details Extension", "Add port_details attribute "
                         "to Floating IP resource"),
    "filter-validation": ("Filter parameters validation", "Provides validation on filter "
                          "parameters."),
    "net-mtu": ("Network MTU", "Provides MTU attribute for a network resource."),
    "net-mtu-writable": ("Network MTU (writable)", "Provides a writable MTU attribute for "
                         "a network resource."),
    "network-ip-availability": ("Network IP Availability", "Provides IP availability data "
                                "for each network and subnet."),
    "network_availability_zone": ("Network Availability Zone", "Availability zone support "
                                  "for network."),
    "pagination": ("Pagination support", "Extension that indicates that pagination is "
                   "enabled."),
    "port-security": ("Port Security", "Provides port security"),
    "project-id": ("project_id field enabled", "Extension that indicates that project_id "
                   "field is enabled."),
    "provider": ("Provider Network", "Expose mapping of virtual networks to physical "
                 "networks"),
    "quotas": ("Quota management support", "Expose functions for quotas management per "
               "project"),
    "quota_details": ("Quota details management support", "Expose functions for quotas "
                      "usage statistics per project"),
    "quota-check-limit": ("Quota engine limit check", "Support for checking the resource "
                          "usage before applying a new quota limit"),
    "quota-check-limit-default": ("Quota engine limit check by default", "By default, the "
                                  "Neutron quota engine checks the resource usage before "
                                  "applying a new quota limit"),
    "security-groups-normalized-cidr": ("Normalized CIDR field for security group rules",
                                        "Add new field with normalized remote_ip_prefix cidr "
                                        "in SG rule"),
    "security-groups-rules-belongs-to-default-sg": (
        "Security group rule belongs to the project's default security group",
        "Flag to determine if the security group rule belongs to the project's default "
        "security group"),
    "revision-if-match": ("If-Match constraints based on revision_number", "Extension "
                          "indicating that If-Match based on revision_number is supported."),
    "router": ("Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 "
               "Neutron networks and access to external networks via a NAT gateway."),
    "router_availability_zone": ("Router Availability Zone", "Availability zone support for "
                                 "router."),
    "security-group": ("security-group", "The security groups extension."),
    "sorting": ("Sorting support", "Extension that indicates that sorting is enabled."),
    "standard-attr-description": ("standard-attr-description", "Extension to add "
                                  "descriptions to standard attributes"),
    "standard-attr-revisions": ("Resource revision numbers", "This extension will display "
                                "the revision number of neutron resources."),
    "standard-attr-tag": ("Tag support for resources with standard attribute: subnet, "
                          "trunk, network_segment_range, router, network, policy, "
                          "subnetpool, port, security_group, floatingip",
                          "Enables to set tag on resources with standard attribute."),
    "standard-attr-timestamp": ("Resource timestamps", "Adds created_at and updated_at "
                                "fields to all Neutron resources that have Neutron "
                                "standard attributes."),
    "stateful-security-group": ("Stateful security group", "Indicates if the security "
                                "group is stateful or not"),
    "ip-substring-filtering": ("IP address substring filtering", "Provides IP address "
                               "substring filtering when listing ports"),
    "ip_allocation": ("IP Allocation", "IP allocation extension."),
    "subnet-external-network": ("Subnet belongs to an external network", "Informs if the "
                                "subnet belongs to an external network"),
    "subnet-service-types": ("Subnet service types", "Provides ability to set the subnet "
                             "service_types field"),
    "uplink-status-propagation": ("Uplink status propagation extension", "Provides ability "
                                  "to propagate port uplink status."),
    "subnet_allocation": ("Subnet Allocation", "Enables allocation of subnets from a "
                          "subnet pool"),
}


def _ext(alias: str) -> dict[str, object]:
    name, description = EXTENSIONS[alias]
    return {"alias": alias, "name": name, "description": description, "updated": UPDATED,
            "links": []}


async def versions(request: Request) -> Response:
    url = service_url(request)
    return JSONResponse({"versions": [{
        "id": "v2.0", "status": "CURRENT",
        "links": [{"rel": "self", "href": url + "/v2.0/"}],
    }]})


RESOURCES = ("subnet", "subnetpool", "network", "port", "router", "floatingip",
             "security_group", "security_group_rule", "quota", "agent",
             "availability_zone", "network_ip_availability", "extension")


async def v2(request: Request) -> Response:
    url = service_url(request) + "/v2.0"
    plural = {"subnetpool": "subnetpools", "network_ip_availability": "network-ip-availabilities",
              "security_group": "security-groups", "security_group_rule": "security-group-rules",
              "availability_zone": "availability_zones"}
    out = []
    for r in RESOURCES:
        coll = plural.get(r, r + "s")
        out.append({"name": r, "collection": coll.replace("-", "_"),
                    "links": [{"rel": "self", "href": f"{url}/{coll}"}]})
    return JSONResponse({"resources": out})


async def list_extensions(request: Request) -> Response:
    await c.context(request)
    return JSONResponse({"extensions": [_ext(a) for a in sorted(EXTENSIONS)]})


async def show_extension(request: Request) -> Response:
    await c.context(request)
    alias = request.path_params["alias"]
    if alias not in EXTENSIONS:
        raise errors.not_found("ExtensionNotFound", f"Extension with alias {alias} does not "
                               "exist")
    return JSONResponse({"extension": _ext(alias)})


routes = [
    Route("/", versions, methods=["GET"]),
    Route("/v2.0", v2, methods=["GET"]),
    Route("/v2.0/", v2, methods=["GET"]),
    Route("/v2.0/extensions", list_extensions, methods=["GET"]),
    Route("/v2.0/extensions/{alias}", show_extension, methods=["GET"]),
]
