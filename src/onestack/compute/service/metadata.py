"""The metadata a guest reads: Nova's OpenStack documents
(``/openstack/<version>/meta_data.json``, ``user_data``, ``network_data.json``,
``vendor_data.json``, ``vendor_data2.json``) and the EC2-style tree
(``/<version>/meta-data/...``, ``/<version>/user-data``).

The same :class:`InstanceMetadata` serves the metadata API (``lookup``, one path
at a time, printed as Nova prints it) and renders the files of a config drive
(``config_drive_files``), so a driver can build the ISO from them.

Requests reach the API through the networking service's metadata proxy, which
names the instance in ``X-Instance-ID`` and signs it with the shared secret
(``DATA_DIR/secrets/metadata-proxy``): ``X-Instance-ID-Signature`` is the hex
HMAC-SHA256 of the instance id (:func:`signature`, as Neutron's proxy does).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
import posixpath
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from onestack.compute.models import Instance
from onestack.compute.service import external
from onestack.compute.state import ComputeState

# Nova's OpenStack metadata versions (FOLSOM .. VICTORIA) and the EC2 ones
OPENSTACK_VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30",
                      "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14")
GRIZZLY, HAVANA, LIBERTY = "2013-04-04", "2013-10-17", "2015-10-15"
NEWTON_ONE, NEWTON_TWO, VICTORIA = "2016-06-30", "2016-10-06", "2020-10-14"
EC2_VERSIONS = ("1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
                "2008-02-01", "2008-09-01", "2009-04-04")
DHCP_DOMAIN = "novalocal"  # Nova's [api] dhcp_domain default
# the guest's (encrypted) password, in the server's system_metadata: the guest
# POSTs it to /openstack/<version>/password once (from GRIZZLY), GET reads it,
# os-server-password shows and clears it
PASSWORD_KEY = "password"
PASSWORD_NAME = "password"
PASSWORD_MAX_SIZE = 256  # bytes, Nova's limit
JSON = "application/json"
TEXT = "text/plain"


class MetadataNotFound(Exception):
    """No such metadata path (the API answers 404)."""


class PasswordAlreadySet(Exception):
    """A password is stored already (the API answers 409)."""


class PasswordRejected(Exception):
    """Not a password this service stores: more than ``PASSWORD_MAX_SIZE`` bytes
    or not UTF-8 text (the API answers 400 with the message)."""


# -- the server's network, read from the networking API ----------------------------------

@dataclass
class NetworkView:
    """The server's ports (in the order it got them) and what they sit on."""

    ports: list[dict[str, Any]] = field(default_factory=list)
    subnets: dict[str, dict[str, Any]] = field(default_factory=dict)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    floating_ips: dict[str, list[str]] = field(default_factory=dict)  # port id -> addresses
    dhcp_servers: dict[str, str] = field(default_factory=dict)  # subnet id -> DHCP port's ip


async def network_view(st: ComputeState, inst: Instance) -> NetworkView:
    """Read the server's ports, their networks, subnets, DHCP ports and floating
    IPs with the compute service user's token."""
    ports = await external.ports_of(st, inst.uuid)
    order = {i["port_id"]: n for n, i in enumerate(inst.network_info or [])}
    ports.sort(key=lambda p: (order.get(p["id"], len(order)), p["id"]))
    view = NetworkView(ports=ports)
    for net_id in dict.fromkeys(p["network_id"] for p in ports):
        net = await external.service_get(st, f"/networks/{net_id}")
        if net is not None:
            view.networks[net_id] = net["network"]
        subnets = await external.service_get(st, "/subnets", {"network_id": net_id})
        for sub in (subnets or {}).get("subnets", []):
            view.subnets[sub["id"]] = sub
        dhcp = await external.service_get(st, "/ports", {"network_id": net_id,
                                                         "device_owner": "network:dhcp"})
        for port in (dhcp or {}).get("ports", []):
            for ip in port.get("fixed_ips", []):
                view.dhcp_servers.setdefault(ip["subnet_id"], ip["ip_address"])
    for port in ports:
        fips = await external.service_get(st, "/floatingips", {"port_id": port["id"]})
        addrs = [f["floating_ip_address"] for f in (fips or {}).get("floatingips", [])]
        if addrs:
            view.floating_ips[port["id"]] = addrs
    return view


# -- the documents -----------------------------------------------------------------------

def ec2_print(data: Any) -> str:
    """Nova's ``ec2_md_print``: a directory lists its keys (sub-directories with a
    ``/``, or their ``_name``), a list its lines; anything else as text."""
    if isinstance(data, dict):
        lines = []
        for key in sorted(data):
            if key == "_name":
                continue
            value = data[key]
            if isinstance(value, dict):
                lines.append(str(value["_name"]) if "_name" in value else key + "/")
            else:
                lines.append(key)
        return "\n".join(lines)
    if isinstance(data, list):
        return "\n".join(str(x) for x in data)
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return str(data)


class InstanceMetadata:
    """Everything a guest may read about one server."""

    def __init__(self, inst: Instance, net: NetworkView | None = None, *,
                 availability_zone: str = "nova") -> None:
        self.inst = inst
        self.net = net or NetworkView()
        self.availability_zone = inst.availability_zone or availability_zone

    # -- pieces

    @property
    def user_data(self) -> bytes | None:
        raw = self.inst.user_data
        if raw is None:
            return None
        try:
            return base64.b64decode(raw)
        except (binascii.Error, ValueError):
            return raw.encode()

    @property
    def hostname(self) -> str:
        return f"{self.inst.hostname}.{DHCP_DOMAIN}" if DHCP_DOMAIN else self.inst.hostname

    def _ips(self, version: int) -> list[str]:
        return [ip["ip_address"] for p in self.net.ports for ip in p.get("fixed_ips", [])
                if ipaddress.ip_address(ip["ip_address"]).version == version]

    def floating_ips(self) -> list[str]:
        return [a for p in self.net.ports for a in self.net.floating_ips.get(p["id"], [])]

    # -- OpenStack

    def meta_data(self, version: str = "latest") -> dict[str, Any]:
        """``meta_data.json`` of ``version`` (Nova's fields for that version)."""
        version = OPENSTACK_VERSIONS[-1] if version == "latest" else version
        inst = self.inst
        md: dict[str, Any] = {"uuid": inst.uuid}
        if inst.metadata_:
            md["meta"] = dict(inst.metadata_)  # only when there is some, as Nova
        md.update({"hostname": self.hostname, "name": inst.display_name,
                   "launch_index": inst.launch_index,
                   "availability_zone": self.availability_zone})
        if inst.key_name and inst.key_data:
            md["public_keys"] = {inst.key_name: inst.key_data}
            if version >= LIBERTY:
                md["keys"] = [{"name": inst.key_name, "type": "ssh", "data": inst.key_data}]
        if version >= GRIZZLY:
            md["random_seed"] = base64.b64encode(os.urandom(512)).decode()
        if version >= LIBERTY:
            md["project_id"] = inst.project_id
        if version >= NEWTON_ONE:
            md["devices"] = []  # no tagged devices yet
        if version >= VICTORIA:
            md["dedicated_cpus"] = []
        return md

    def network_data(self) -> dict[str, Any]:
        """``network_data.json``: links (one per port), networks (one per fixed IP:
        ``ipv4_dhcp`` where the subnet has a DHCP port, else static with the
        address, netmask, routes and DNS), and the DNS services."""
        if not self.net.ports:
            return {}
        links: list[dict[str, Any]] = []
        networks: list[dict[str, Any]] = []
        services: list[dict[str, str]] = []
        for port in self.net.ports:
            link_id = "tap" + port["id"][:11]
            net = self.net.networks.get(port["network_id"], {})
            links.append({"id": link_id, "vif_id": port["id"],
                          "type": port.get("binding:vif_type") or "unbound",
                          "mtu": net.get("mtu"),
                          "ethernet_mac_address": port.get("mac_address")})
            for ip in port.get("fixed_ips", []):
                sub = self.net.subnets.get(ip["subnet_id"], {})
                networks.append(self._network_entry(len(networks), link_id, port, ip, sub))
                for ns in sub.get("dns_nameservers") or []:
                    entry = {"type": "dns", "address": ns}
                    if entry not in services:
                        services.append(entry)
        return {"links": links, "networks": networks, "services": services}

    def _network_entry(self, num: int, link_id: str, port: dict[str, Any],
                       ip: dict[str, Any], sub: dict[str, Any]) -> dict[str, Any]:
        version = ipaddress.ip_address(ip["ip_address"]).version
        entry: dict[str, Any] = {"id": f"network{num}", "link": link_id,
                                 "network_id": port["network_id"]}
        if version == 4 and ip["subnet_id"] in self.net.dhcp_servers:
            entry["type"] = "ipv4_dhcp"
            return entry
        mode = sub.get("ipv6_address_mode")
        entry["type"] = f"ipv6_{mode}" if version == 6 and mode else f"ipv{version}"
        cidr = ipaddress.ip_network(sub["cidr"]) if sub.get("cidr") else None
        entry["ip_address"] = ip["ip_address"]
        entry["netmask"] = str(cidr.netmask) if cidr is not None else None
        routes = []
        if sub.get("gateway_ip"):
            anyaddr = "0.0.0.0" if version == 4 else "::"
            routes.append({"network": anyaddr, "netmask": anyaddr,
                           "gateway": sub["gateway_ip"]})
        for route in sub.get("host_routes") or []:
            dest = ipaddress.ip_network(route["destination"], strict=False)
            routes.append({"network": str(dest.network_address), "netmask": str(dest.netmask),
                           "gateway": route["nexthop"]})
        entry["routes"] = routes
        entry["services"] = [{"type": "dns", "address": ns}
                             for ns in sub.get("dns_nameservers") or []]
        return entry

    def _openstack_listing(self, version: str) -> list[str]:
        out = ["meta_data.json"]
        if self.user_data is not None:
            out.append("user_data")
        if version >= GRIZZLY:
            out.append(PASSWORD_NAME)
        if version >= HAVANA:
            out.append("vendor_data.json")
        if version >= LIBERTY:
            out.append("network_data.json")
        if version >= NEWTON_TWO:
            out.append("vendor_data2.json")
        return out

    @property
    def password(self) -> str:
        return str((self.inst.system_metadata or {}).get(PASSWORD_KEY) or "")

    def openstack_item(self, version: str, name: str | None) -> tuple[Any, str]:
        """(document, content type) of ``/openstack/<version>/<name>``.

        Raises:
            MetadataNotFound.
        """
        resolved = OPENSTACK_VERSIONS[-1] if version == "latest" else version
        if resolved not in OPENSTACK_VERSIONS:
            raise MetadataNotFound(version)
        if name is None:
            return self._openstack_listing(resolved), TEXT
        if name not in self._openstack_listing(resolved):
            raise MetadataNotFound(name)
        if name == "meta_data.json":
            return self.meta_data(resolved), JSON
        if name == "user_data":
            return self.user_data, TEXT
        if name == "network_data.json":
            return self.network_data(), JSON
        if name == PASSWORD_NAME:
            return self.password.encode(), TEXT
        return {}, JSON  # vendor_data.json, vendor_data2.json: no vendor data providers

    # -- EC2

    def ec2_ids(self) -> tuple[str, str]:
        """(instance id, image id) in EC2's form: ``i-%08x`` of the server's row id,
        ``ami-%08x`` from the image's uuid (there is no EC2 id mapping table)."""
        image = self.inst.image_ref.replace("-", "")
        try:
            ami = int(image[:8], 16)
        except ValueError:
            ami = int(hashlib.sha256(image.encode()).hexdigest()[:8], 16)
        return f"i-{self.inst.id:08x}", f"ami-{ami:08x}"

    def ec2_tree(self, version: str = "latest") -> dict[str, Any]:
        """Nova's ``get_ec2_metadata``: ``{"meta-data": {...}, "user-data": ...}``."""
        version = EC2_VERSIONS[-1] if version == "latest" else version
        inst = self.inst
        instance_id, ami_id = self.ec2_ids()
        fixed = self._ips(4)
        floating = self.floating_ips()
        md: dict[str, Any] = {
            "ami-id": ami_id, "ami-launch-index": inst.launch_index,
            "ami-manifest-path": "FIXME", "instance-id": instance_id,
            "hostname": self.hostname, "local-ipv4": fixed[0] if fixed else "",
            "reservation-id": inst.reservation_id,
            "security-groups": list(inst.security_groups or []),
        }
        if inst.key_name and inst.key_data:
            md["public-keys"] = {"0": {"_name": f"0={inst.key_name}",
                                       "openssh-key": inst.key_data}}
        if version >= "2007-01-19":
            md["local-hostname"] = self.hostname
            md["public-hostname"] = self.hostname
            md["public-ipv4"] = floating[0] if floating else ""
        if version >= "2007-08-29":
            md["instance-type"] = inst.flavor.get("name", "")
        if version >= "2007-12-15":
            mappings = {"ami": "vda", "root": "/dev/vda"}
            if inst.ephemeral_gb:
                mappings["ephemeral0"] = "/dev/vdb"
            md["block-device-mapping"] = mappings
        if version >= "2008-02-01":
            md["placement"] = {"availability-zone": self.availability_zone}
        if version >= "2008-09-01":
            md["instance-action"] = "none"
        data: dict[str, Any] = {"meta-data": md}
        if self.user_data is not None:
            data["user-data"] = self.user_data
        return data

    # -- one path, as the API serves it

    def lookup(self, path: str) -> tuple[bytes, str]:
        """The body and content type of a metadata path, printed as Nova prints it:
        ``/`` lists the EC2 versions, ``/openstack`` the OpenStack ones, a path
        not under ``/openstack`` or ``/ec2`` is an EC2 path.

        Raises:
            MetadataNotFound.
        """
        path = posixpath.normpath("/" + path.lstrip("/"))
        tokens = [t for t in path.split("/") if t]
        if not tokens or tokens[0] not in ("ec2", "openstack"):
            tokens = ["ec2", *tokens]
        if len(tokens) == 1:
            versions = OPENSTACK_VERSIONS if tokens[0] == "openstack" else EC2_VERSIONS
            return "\n".join([*versions, "latest"]).encode(), TEXT
        if tokens[0] == "openstack":
            if len(tokens) > 3:
                raise MetadataNotFound(path)
            doc, ctype = self.openstack_item(tokens[1], tokens[2] if len(tokens) > 2 else None)
        else:
            version = EC2_VERSIONS[-1] if tokens[1] == "latest" else tokens[1]
            if version not in EC2_VERSIONS:
                raise MetadataNotFound(path)
            doc, ctype = self.ec2_tree(version), TEXT
            for token in tokens[2:]:
                if not isinstance(doc, dict) or token not in doc:
                    raise MetadataNotFound(path)
                doc = doc[token]
        if ctype == JSON:
            return json.dumps(doc).encode(), JSON
        if isinstance(doc, bytes):
            return doc, TEXT
        return ec2_print(doc).encode(), TEXT

    # -- config drive

    def config_drive_files(self) -> dict[str, bytes]:
        """The files of a config drive (path inside the ISO -> content), as Nova
        writes them: every OpenStack version and ``latest``, every EC2 version
        and ``latest``."""
        files: dict[str, bytes] = {}
        for version in (*OPENSTACK_VERSIONS, "latest"):
            resolved = OPENSTACK_VERSIONS[-1] if version == "latest" else version
            for name in self._openstack_listing(resolved):
                if name == PASSWORD_NAME:  # set by the guest through the API only
                    continue
                doc, ctype = self.openstack_item(version, name)
                files[f"openstack/{version}/{name}"] = (
                    json.dumps(doc).encode() if ctype == JSON else doc)
        for version in (*EC2_VERSIONS, "latest"):
            tree = self.ec2_tree(version)
            keys = tree["meta-data"].get("public-keys", {}).get("0", {})
            keys.pop("_name", None)  # a listing detail, not in the file
            files[f"ec2/{version}/meta-data.json"] = json.dumps(tree["meta-data"]).encode()
            if "user-data" in tree:
                files[f"ec2/{version}/user-data"] = tree["user-data"]
        return files


def is_password_path(path: str) -> bool:
    """Whether ``path`` is ``/openstack/<version>/password`` of a version that
    has it (``2013-04-04`` on, and ``latest``): where a guest may POST."""
    tokens = [t for t in posixpath.normpath("/" + path.lstrip("/")).split("/") if t]
    if len(tokens) != 3 or tokens[0] != "openstack" or tokens[2] != PASSWORD_NAME:
        return False
    version = OPENSTACK_VERSIONS[-1] if tokens[1] == "latest" else tokens[1]
    return version in OPENSTACK_VERSIONS and version >= GRIZZLY


async def set_password(st: ComputeState, instance_uuid: str, body: bytes) -> None:
    """Store the password a guest posts, once, as Nova's metadata service does
    (a set password is checked first, then the size).

    Raises:
        MetadataNotFound; PasswordAlreadySet; PasswordRejected.
    """
    async with st.db.write() as s:
        row = await s.scalar(select(Instance).where(Instance.uuid == instance_uuid)
                             .with_for_update())
        if row is None:
            raise MetadataNotFound(instance_uuid)
        current = dict(row.system_metadata or {})
        if current.get(PASSWORD_KEY):
            raise PasswordAlreadySet(instance_uuid)
        if len(body) > PASSWORD_MAX_SIZE:
            raise PasswordRejected("Request is too large.")
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise PasswordRejected("The password is not UTF-8 text.") from None
        current[PASSWORD_KEY] = text
        row.system_metadata = current


def needs_network(path: str) -> bool:
    """Whether serving ``path`` needs the server's ports (network_data.json and the
    EC2 meta-data tree); listings and the other documents do not."""
    tokens = [t for t in path.split("/") if t]
    if tokens and tokens[0] == "openstack":
        return "network_data.json" in tokens
    if tokens and tokens[0] == "ec2":
        tokens = tokens[1:]
    return len(tokens) >= 2 and tokens[1] == "meta-data"


async def for_instance(st: ComputeState, inst: Instance) -> InstanceMetadata:
    """The metadata of a server, its network read from the networking API."""
    net = await network_view(st, inst) if inst.network_info else NetworkView()
    return InstanceMetadata(inst, net, availability_zone=st.conf.default_availability_zone)
