"""``/v2.0/ports``."""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest
from onestack.core.http import no_content
from onestack.network import errors
from onestack.network.api import common as c
from onestack.network.api.subnets import (
    Reason,
    checked,
    ip_address,
    one_of,
    subnet_cidr,
    visible_network,
)
from onestack.network.models import Network, Port
from onestack.network.service import floatingips as fip_svc
from onestack.network.service import ports as svc
from onestack.network.service import subnets as subnets_svc

VNIC_TYPES = ("normal", "direct", "macvtap", "baremetal", "direct-physical",
              "virtio-forwarder", "smart-nic", "vdpa", "accelerator-direct",
              "accelerator-direct-physical", "remote-managed")
MAX_ALLOWED_ADDRESS_PAIRS = 10
BLANK_DHCP_OPTS = ("router", "classless-static-route")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


# -- validators -------------------------------------------------------------------------


def mac_address(value: Any) -> str:
    """A MAC in any of netaddr's usual spellings, as ``xx:xx:xx:xx:xx:xx``."""
    bad = Reason(f"'{value}' is not a valid MAC address")
    if not isinstance(value, str):
        raise bad
    v = value.strip()
    if v != value:
        raise bad
    if re.match(r"^([0-9a-fA-F]{1,2}[:-]){5}[0-9a-fA-F]{1,2}$", v):
        octets = [int(o, 16) for o in re.split("[:-]", v)]
    elif re.match(r"^[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}$", v) or (
            len(v) == 12 and _HEX.match(v)):
        h = v.replace(".", "")
        octets = [int(h[i:i + 2], 16) for i in range(0, 12, 2)]
    else:
        raise bad
    if octets in ([0] * 6, [255] * 6):
        raise bad
    return ":".join(f"{o:02x}" for o in octets)


def _uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise Reason(f"'{value}' is not a valid UUID")
    try:
        uuid.UUID(value)
    except ValueError:
        raise Reason(f"'{value}' is not a valid UUID") from None
    return value


def fixed_ips(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise Reason(f"Invalid data format for fixed IP: '{value}'")
    out: list[dict[str, str]] = []
    seen: list[str] = []
    for entry in value:
        if not isinstance(entry, dict):
            raise Reason(f"Invalid data format for fixed IP: '{entry}'")
        item: dict[str, str] = {}
        if "ip_address" in entry:
            if entry["ip_address"] in seen:
                raise Reason(f"Duplicate IP address '{entry['ip_address']}'")
            item["ip_address"] = ip_address(entry["ip_address"])
            seen.append(entry["ip_address"])
        if "subnet_id" in entry:
            item["subnet_id"] = _uuid(entry["subnet_id"])
        out.append(item)
    return out


def uuid_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise Reason(f"'{value}' is not a list")
    return [_uuid(v) for v in value]


def address_pairs(value: Any) -> list[dict[str, str]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadRequest("Allowed address pairs must be a list.")
    if len(value) > MAX_ALLOWED_ADDRESS_PAIRS:
        raise errors.bad_request("AllowedAddressPairExhausted",
                                 "The number of allowed address pair exceeds the maximum "
                                 f"{MAX_ALLOWED_ADDRESS_PAIRS}.")
    out: list[dict[str, str]] = []
    seen: set[tuple[str | None, str]] = set()
    for pair in value:
        if not isinstance(pair, dict):
            raise BadRequest(f"Invalid input for allowed_address_pairs. Reason: '{pair}' is "
                             "not a dictionary.")
        pair_out: dict[str, str] = {}
        if "mac_address" in pair:
            try:
                pair_out["mac_address"] = mac_address(pair["mac_address"])
            except Reason as exc:
                raise BadRequest(str(exc)) from None
        if "ip_address" not in pair:
            raise errors.invalid_input("AllowedAddressPair must contain ip_address")
        key = (pair.get("mac_address"), pair["ip_address"])
        if key in seen:
            raise errors.invalid_input(
                f"Request contains duplicate address pair: mac_address {key[0]} "
                f"ip_address {key[1]}")
        seen.add(key)
        extra = set(pair) - {"mac_address", "ip_address"}
        if extra:
            raise BadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(extra))}'")
        ip = pair["ip_address"]
        try:
            if isinstance(ip, str) and "/" in ip:
                subnet_cidr(ip)
            else:
                ip_address(ip)
        except Reason as exc:
            raise BadRequest(str(exc)) from None
        pair_out["ip_address"] = ip
        out.append({"ip_address": pair_out["ip_address"],
                    **({"mac_address": pair_out["mac_address"]}
                       if "mac_address" in pair_out else {})})
    return out


def _oneline(value: Any, max_len: int, blank_ok: bool) -> None:
    if not isinstance(value, str):
        raise Reason(f"'{value}' is not a valid string")
    if len(value) > max_len:
        raise Reason(f"'{value}' exceeds maximum length of {max_len}")
    if "\n" in value or "\r" in value:
        raise Reason(f"'{value}' is not a valid one-line string")
    if not blank_ok and not value.strip():
        raise Reason(f"'{value}' Blank strings are not permitted")


def dhcp_opts(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise Reason(f"'{value}' is not a list")
    out = []
    for opt in value:
        if not isinstance(opt, dict) or "opt_name" not in opt or "opt_value" not in opt \
                or set(opt) - {"opt_name", "opt_value", "ip_version"}:
            raise errors.invalid_input(f"No valid key specs matched for: {opt}")
        name, val = opt["opt_name"], opt["opt_value"]
        try:
            _oneline(name, 64, False)
            if val is not None:
                _oneline(val, 255, name in BLANK_DHCP_OPTS)
            version = int(opt.get("ip_version", 4))
            if version not in (4, 6):
                raise Reason(f"{version} is not in [4, 6]")
        except (Reason, TypeError, ValueError):
            raise errors.invalid_input(f"No valid key specs matched for: {opt}") from None
        out.append({"opt_name": name, "opt_value": val, "ip_version": version})
    return out


def dns_name(value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise Reason(f"'{value}' is not a valid string")
    try:
        trimmed = value.removesuffix(".")
        if len(trimmed) > 255:
            raise ValueError(f"'{trimmed}' exceeds the 255 character FQDN limit")
        labels = trimmed.split(".")
        for label in labels:
            if not label:
                raise ValueError("Encountered an empty component")
            if label.startswith("-") or label.endswith("-"):
                raise ValueError(f"Name '{label}' must not start or end with a hyphen")
            if not _LABEL.match(label):
                raise ValueError(f"Name '{label}' must be 1-63 characters long, each of "
                                 "which can only be alphanumeric or a hyphen")
        if len(labels) > 1 and labels[-1].isdigit():
            raise ValueError(f"TLD '{labels[-1]}' must not be all numeric")
    except ValueError as exc:
        raise Reason(f"'{value}' not a valid PQDN or FQDN. Reason: {exc}") from None
    return value.lower()


def profile(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Reason(f"'{value}' is not a dictionary")
    return value


RESOURCE = c.Resource(
    member="port",
    collection="ports",
    attrs=c.attrs(
        name=c.Attr(allow_post=True, allow_put=True, default="", convert=c.string(255)),
        network_id=c.Attr(allow_post=True, default=c.MISSING, convert=c.uuid_str),
        admin_state_up=c.Attr(allow_post=True, allow_put=True, default=True, convert=c.to_bool),
        mac_address=c.Attr(allow_post=True, allow_put=True, default=None,
                           convert=checked("mac_address", mac_address)),
        fixed_ips=c.Attr(allow_post=True, allow_put=True, default=None,
                         convert=checked("fixed_ips", fixed_ips), is_filter=False,
                         sortable=False),
        device_id=c.Attr(allow_post=True, allow_put=True, default="", convert=c.string(255)),
        device_owner=c.Attr(allow_post=True, allow_put=True, default="",
                            convert=c.string(255)),
        status=c.Attr(),
        security_groups=c.Attr(allow_post=True, allow_put=True, default=None,
                               convert=checked("security_groups", uuid_list), sortable=False),
        port_security_enabled=c.Attr(allow_post=True, allow_put=True, default=None,
                                     convert=c.to_bool),
        allowed_address_pairs=c.Attr(allow_post=True, allow_put=True, default=None,
                                     convert=address_pairs, is_filter=False,
                                     sortable=False),
        extra_dhcp_opts=c.Attr(allow_post=True, allow_put=True, default=None,
                               convert=checked("extra_dhcp_opts", dhcp_opts),
                               is_filter=False, sortable=False),
        dns_name=c.Attr(allow_post=True, allow_put=True, default="",
                        convert=checked("dns_name", dns_name)),
        dns_assignment=c.Attr(is_filter=False, sortable=False),
        propagate_uplink_status=c.Attr(allow_post=True, allow_put=True, default=False,
                                       convert=c.to_bool),
        ip_allocation=c.Attr(),
        resource_request=c.Attr(is_filter=False, sortable=False),
        **{
            "binding:host_id": c.Attr(allow_post=True, allow_put=True, default="",
                                      convert=c.string(255)),
            "binding:vnic_type": c.Attr(allow_post=True, allow_put=True, default="normal",
                                        convert=checked("binding:vnic_type",
                                                        one_of(VNIC_TYPES))),
            "binding:profile": c.Attr(allow_post=True, allow_put=True, default=None,
                                      convert=checked("binding:profile", profile),
                                      is_filter=False, sortable=False),
            "binding:vif_type": c.Attr(),
            "binding:vif_details": c.Attr(is_filter=False, sortable=False),
        },
    ),
    extra_filters=frozenset({"fixed_ips"}),
)


def target(item: dict[str, Any], net: Network | None) -> dict[str, Any]:
    owner = item.get("device_owner") or ""
    return {**item, **subnets_svc.network_target(net),
            "network_device": str(owner.startswith("network:"))}


def attributes(item: dict[str, Any], names: list[str]) -> list[str]:
    """The attributes whose ``<action>:<attr>`` rules apply, ``fixed_ips``'s
    sub-attributes included (as Neutron builds them)."""
    out = list(names)
    if "fixed_ips" in out:
        entries = item.get("fixed_ips") or []
        if any("ip_address" in e for e in entries):
            out.append("fixed_ips:ip_address")
        if any("subnet_id" in e for e in entries):
            out.append("fixed_ips:subnet_id")
    return out


def hide(request: Request, ctx: RequestContext, item: dict[str, Any],
         net: Network | None) -> dict[str, Any]:
    return c.hide_attributes(request, ctx, RESOURCE, item, target(item, net))


async def list_ports(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    filters = c.filters(request, RESOURCE)
    async with st.db.read() as s:
        rows = await svc.list_visible(s, ctx, c.is_admin(request, ctx), filters)
        nets = await subnets_svc.networks_of(s, {r.network_id for r in rows})
        items = await svc.render_ports(s, rows, st.conf.dns_domain)
    out = []
    for i in items:
        net = nets.get(i["network_id"])
        if c.visible(request, ctx, RESOURCE, i, target(i, net)):
            out.append(hide(request, ctx, i, net))
    return c.list_response(request, RESOURCE, out)


async def create_port(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    members, bulk = await c.parse_create(request, RESOURCE, ctx)
    admin = c.is_admin(request, ctx)
    async with st.db.write() as s:
        made: list[tuple[Port, Network]] = []
        for m in members:
            net = await visible_network(request, ctx, s, m["network_id"])
            c.enforce(request, ctx, "create_port", target(m, net),
                      attributes(m, c.explicit(RESOURCE, m)))
            made.append((await svc.create_port(st, s, m, admin=admin), net))
        rendered = await svc.render_ports(s, [p for p, _ in made], st.conf.dns_domain)
    out = [hide(request, ctx, i, net) for i, (_, net) in zip(rendered, made, strict=True)]
    return c.created(RESOURCE, out, bulk)


async def _visible_row(request: Request, ctx: RequestContext, s: Any,
                       port_id: str) -> tuple[Port, dict[str, Any], Network | None]:
    st = c.state(request)
    row = await svc.get_row(s, port_id)
    item = (await svc.render_ports(s, [row], st.conf.dns_domain))[0]
    net = (await subnets_svc.networks_of(s, {row.network_id})).get(row.network_id)
    if not c.visible(request, ctx, RESOURCE, item, target(item, net)):
        raise errors.port_not_found(port_id)
    return row, item, net


async def show_port(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    async with st.db.read() as s:
        _, item, net = await _visible_row(request, ctx, s, request.path_params["port_id"])
    return c.show_response(request, RESOURCE, hide(request, ctx, item, net))


async def update_port(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    values = await c.parse_update(request, RESOURCE)
    port_id = request.path_params["port_id"]
    async with st.db.write() as s:
        row, item, net = await _visible_row(request, ctx, s, port_id)
        c.check_if_match(request, row.revision_number)
        c.enforce(request, ctx, "update_port", target({**item, **values}, net),
                  attributes(values, list(values)))
        await svc.update_port(st, s, row, values, admin=c.is_admin(request, ctx))
        await s.flush()
        out = await svc.show_port(s, port_id, st.conf.dns_domain)
    return c.show_response(request, RESOURCE, hide(request, ctx, out, net))


async def delete_port(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    port_id = request.path_params["port_id"]
    async with st.db.write() as s:
        row, item, net = await _visible_row(request, ctx, s, port_id)
        c.check_if_match(request, row.revision_number)
        c.enforce(request, ctx, "delete_port", target(item, net))
        await svc.check_deletable(s, row)
        server = row.device_id if (row.device_owner or "").startswith(
            fip_svc.COMPUTE_OWNER_PREFIX) else ""
        await svc.delete_port(st, s, row)
    if server:  # a server's port: compute takes the interface out
        fip_svc.notify_compute(st, [(server, port_id)], "network-vif-deleted")
    return no_content()


routes = [
    Route("/v2.0/ports", list_ports, methods=["GET"]),
    Route("/v2.0/ports", create_port, methods=["POST"]),
    Route("/v2.0/ports/{port_id}", show_port, methods=["GET"]),
    Route("/v2.0/ports/{port_id}", update_port, methods=["PUT"]),
    Route("/v2.0/ports/{port_id}", delete_port, methods=["DELETE"]),
]
