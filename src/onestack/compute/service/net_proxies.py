"""Nova's deprecated network proxy APIs (security groups and their rules, floating
IPs and pools, networks), which Nova answers by calling Neutron: here the
networking API, over ``runtime.http``, with the caller's token (what the caller
may see and change is the networking service's decision) or, for the server's own
ports, the compute service user's. Neutron's errors become Nova's, as Nova's
neutron security group driver and network API translate them."""

from __future__ import annotations

import ipaddress
import uuid as uuidlib
from typing import Any

import httpx
from sqlalchemy import select

from onestack.compute.models import Instance
from onestack.compute.service import external
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest, CloudError, Conflict, Forbidden, NotFound

NET = external.NETWORK


def is_uuid(value: Any) -> bool:
    try:
        uuidlib.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def neutron_message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:300]
    err = body.get("NeutronError") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("message", ""))
    return r.text[:300]


def _neutron_type(r: httpx.Response) -> str:
    try:
        err = r.json().get("NeutronError", {})
    except (ValueError, AttributeError):
        return ""
    return str(err.get("type", "")) if isinstance(err, dict) else ""


def unexpected(r: httpx.Response, what: str) -> CloudError:
    return external.ExternalError(f"{what} failed: {r.status_code} {r.text[:300]}")


async def call(st: ComputeState, method: str, path: str, token: str | None, *,
               json: Any = None, params: Any = None) -> httpx.Response:
    """One networking API call, with the caller's token or (``token=None``) the
    compute service user's."""
    headers = ({"X-Auth-Token": token} if token is not None
               else await external.service_headers(st))
    return await external._client(st).request(method, f"{NET}{path}", headers=headers,
                                              json=json, params=params)


# -- security groups --------------------------------------------------------------------


def group_not_found(group_id: str) -> NotFound:
    return NotFound(f"Security group {group_id} not found.")


def validate_id(value: Any) -> str:
    """Raises: BadRequest (Nova with Neutron takes only UUIDs)."""
    if not is_uuid(value):
        raise BadRequest("Security group id should be uuid")
    return str(value)


def validate_property(value: Any, prop: str) -> str:
    """Nova's check of a group's name or description: a string of 1..255
    characters once stripped."""
    if not isinstance(value, str):
        raise BadRequest(f"Security group {prop} is not a string or unicode")
    length = len(value.strip())
    if length < 1:
        raise BadRequest(f"{prop} has {length} characters, less than 1.")
    if length > 255:
        raise BadRequest(f"{prop} has {length} characters, more than 255.")
    return value


def _rule_view(rule: dict[str, Any], names: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """A Neutron ingress rule as Nova shows it; ``None`` when its remote group has
    gone (Nova skips the rule then)."""
    proto = rule.get("protocol")
    lo, hi = rule.get("port_range_min"), rule.get("port_range_max")
    if proto and lo is None and hi is None:
        lo, hi = (1, 65535) if str(proto).upper() in ("TCP", "UDP") else (-1, -1)
    out: dict[str, Any] = {"id": rule["id"], "parent_group_id": rule["security_group_id"],
                           "ip_protocol": proto, "from_port": lo, "to_port": hi,
                           "group": {}, "ip_range": {}}
    remote = rule.get("remote_group_id")
    if remote:
        source = names.get(remote)
        if source is None:
            return None
        out["group"] = {"name": source.get("name"), "tenant_id": source.get("project_id")}
    else:
        out["ip_range"] = {"cidr": rule.get("remote_ip_prefix") or
                           ("::/0" if rule.get("ethertype") == "IPv6" else "0.0.0.0/0")}
    return out


def group_view(group: dict[str, Any], names: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rules = [_rule_view(r, names) for r in group.get("security_group_rules", [])
             if r.get("direction") == "ingress"]
    return {"id": group["id"], "name": group["name"], "description": group.get("description")
            or "", "tenant_id": group.get("project_id") or group.get("tenant_id") or "",
            "rules": [r for r in rules if r is not None]}


async def _remote_groups(st: ComputeState, token: str | None,
                         groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The groups the rules of ``groups`` refer to, by id."""
    known = {g["id"]: g for g in groups}
    for g in groups:
        for rule in g.get("security_group_rules", []):
            remote = rule.get("remote_group_id")
            if remote and remote not in known:
                r = await call(st, "GET", f"/security-groups/{remote}", token)
                if r.status_code == 200:
                    known[remote] = r.json()["security_group"]
    return known


async def views(st: ComputeState, token: str | None,
                groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = await _remote_groups(st, token, groups)
    return [group_view(g, names) for g in groups]


async def list_groups(st: ComputeState, token: str, project_id: str | None
                      ) -> list[dict[str, Any]]:
    """The project's groups (every project's with ``project_id=None``)."""
    params = {"project_id": project_id} if project_id else None
    r = await call(st, "GET", "/security-groups", token, params=params)
    if r.status_code != 200:
        raise unexpected(r, "listing security groups")
    return r.json()["security_groups"]  # type: ignore[no-any-return]


async def get_group(st: ComputeState, token: str | None, group_id: str) -> dict[str, Any]:
    """Raises: NotFound."""
    r = await call(st, "GET", f"/security-groups/{group_id}", token)
    if r.status_code == 404:
        raise group_not_found(group_id)
    if r.status_code != 200:
        raise unexpected(r, "reading a security group")
    return r.json()["security_group"]  # type: ignore[no-any-return]


def _write_error(r: httpx.Response, what: str) -> CloudError:
    """Neutron's refusal of a group or rule write as Nova's driver reports it."""
    msg = neutron_message(r)
    if r.status_code == 404:
        return NotFound(msg)
    if r.status_code == 400 or (r.status_code == 409 and "already exists" in msg):
        return BadRequest(msg)
    if r.status_code == 409:
        return Forbidden(msg) if "quota" in msg.lower() else BadRequest(msg)
    return unexpected(r, what)


async def create_group(st: ComputeState, token: str, name: str,
                       description: str) -> dict[str, Any]:
    r = await call(st, "POST", "/security-groups", token, json={
        "security_group": {"name": name, "description": description}})
    if r.status_code != 201:
        raise _write_error(r, "creating a security group")
    return r.json()["security_group"]  # type: ignore[no-any-return]


async def update_group(st: ComputeState, token: str, group_id: str, name: str,
                       description: str) -> dict[str, Any]:
    r = await call(st, "PUT", f"/security-groups/{group_id}", token, json={
        "security_group": {"name": name, "description": description}})
    if r.status_code == 404:
        raise group_not_found(group_id)
    if r.status_code != 200:
        raise _write_error(r, "updating a security group")
    return r.json()["security_group"]  # type: ignore[no-any-return]


async def delete_group(st: ComputeState, token: str, group_id: str) -> None:
    """Raises: NotFound; BadRequest (the default group, a group in use)."""
    r = await call(st, "DELETE", f"/security-groups/{group_id}", token)
    if r.status_code == 404:
        raise group_not_found(group_id)
    if r.status_code in (400, 409):
        raise BadRequest(neutron_message(r))
    if r.status_code != 204:
        raise unexpected(r, "deleting a security group")


# -- security group rules -----------------------------------------------------------------


def _port(value: Any, icmp: bool) -> int:
    try:
        if isinstance(value, (bool, float)):
            raise TypeError(value)
        return int(value)
    except (TypeError, ValueError):
        reason = ("Type and Code must be integers for ICMP protocol type" if icmp
                  else "To and From ports must be integers")
        raise BadRequest(f"Invalid input received: {reason}") from None


def new_rule(protocol: Any, from_port: Any, to_port: Any, cidr: Any,
             group_id: str | None) -> dict[str, Any]:
    """Nova's ingress rule from the legacy arguments: ``protocol``, ``from_port``,
    ``to_port``, and ``cidr`` (default everything) or ``group_id``.

    Raises:
        BadRequest: Nova's messages for a bad CIDR, protocol or port range, or too
        few arguments.
    """
    values: dict[str, Any] = {}
    if group_id is not None:
        values["group_id"] = group_id
        upper = str(protocol).upper() if protocol else ""
        if from_port is None and to_port is None:
            if upper == "ICMP":
                from_port = to_port = -1
            elif upper in ("TCP", "UDP"):
                from_port, to_port = 1, 65535
    else:
        if cidr:
            try:
                net = ipaddress.ip_network(str(cidr), strict=False)
            except ValueError:
                raise BadRequest(f"{cidr} is not a valid IP network.") from None
            address, _, prefix = str(cidr).partition("/")
            if prefix == "0" and address not in ("0.0.0.0", "::"):
                raise BadRequest(f"Bad prefix for network in cidr {cidr}")
            values["cidr"] = str(cidr) if "/" in str(cidr) else str(net)
        else:
            values["cidr"] = "0.0.0.0/0"
    if protocol and from_port is not None and to_port is not None:
        proto = str(protocol)
        upper = proto.upper()
        lo, hi = _port(from_port, upper == "ICMP"), _port(to_port, upper == "ICMP")
        if upper not in ("TCP", "UDP", "ICMP"):
            raise BadRequest(f"Invalid IP protocol {proto}.")
        if upper in ("TCP", "UDP") and lo > hi:
            raise BadRequest(f"Invalid port range {lo}:{hi}. Former value cannot be "
                             "greater than the later")
        if upper in ("TCP", "UDP") and (lo < 1 or hi > 65535):
            raise BadRequest(f"Invalid port range {lo}:{hi}. Valid {upper} ports should "
                             "be between 1-65535")
        if upper == "ICMP" and not (-1 <= lo <= 255 and -1 <= hi <= 255):
            raise BadRequest(f"Invalid port range {lo}:{hi}. For ICMP, the type:code "
                             "must be valid")
        values.update(protocol=proto, from_port=lo, to_port=hi)
    elif group_id is None:
        raise BadRequest("Not enough parameters to build a valid rule.")
    return values


def neutron_rule(parent_id: str, rule: dict[str, Any]) -> dict[str, Any]:
    """The Neutron rule for a Nova one: always ingress; IPv4 unless the CIDR is v6;
    -1 ports mean no range."""
    cidr = rule.get("cidr")
    ethertype = "IPv4"
    if cidr:
        ethertype = "IPv6" if ipaddress.ip_network(cidr, strict=False).version == 6 else "IPv4"
    body: dict[str, Any] = {"direction": "ingress", "ethertype": ethertype,
                            "security_group_id": parent_id,
                            "protocol": rule.get("protocol"),
                            "remote_ip_prefix": cidr, "remote_group_id": rule.get("group_id")}
    if rule.get("from_port", -1) != -1:
        body["port_range_min"] = rule["from_port"]
    if rule.get("to_port", -1) != -1:
        body["port_range_max"] = rule["to_port"]
    return body


async def create_rule(st: ComputeState, token: str, parent: dict[str, Any],
                      rule: dict[str, Any], source: dict[str, Any] | None) -> dict[str, Any]:
    """Raises: NotFound, BadRequest (a duplicate), Forbidden (over quota)."""
    r = await call(st, "POST", "/security-group-rules", token, json={
        "security_group_rule": neutron_rule(parent["id"], rule)})
    if r.status_code != 201:
        raise _write_error(r, "creating a security group rule")
    created = r.json()["security_group_rule"]
    names = {source["id"]: source} if source else {}
    view = _rule_view(created, names)
    assert view is not None
    return view


async def delete_rule(st: ComputeState, token: str, rule_id: str) -> None:
    """Raises: NotFound (the rule, or its group)."""
    missing = NotFound(f"Security group with rule {rule_id} not found.")
    r = await call(st, "GET", f"/security-group-rules/{rule_id}", token)
    if r.status_code == 404:
        raise missing
    if r.status_code != 200:
        raise unexpected(r, "reading a security group rule")
    await get_group(st, token, r.json()["security_group_rule"]["security_group_id"])
    r = await call(st, "DELETE", f"/security-group-rules/{rule_id}", token)
    if r.status_code == 404:
        raise missing
    if r.status_code in (400, 409):
        raise BadRequest(neutron_message(r))
    if r.status_code != 204:
        raise unexpected(r, "deleting a security group rule")


# -- a server's security groups -------------------------------------------------------------


async def find_group(st: ComputeState, token: str, project_id: str,
                     name: str) -> dict[str, Any]:
    """The caller's project's group named ``name``, else the group with that id.

    Raises:
        NotFound; Conflict (several groups of that name).
    """
    r = await call(st, "GET", "/security-groups", token,
                   params={"name": name, "project_id": project_id})
    if r.status_code != 200:
        raise unexpected(r, "listing security groups")
    groups = r.json()["security_groups"]
    if not groups and is_uuid(name):
        r = await call(st, "GET", "/security-groups", token, params={"id": name})
        groups = r.json()["security_groups"] if r.status_code == 200 else []
    if len(groups) > 1:
        raise Conflict(f"Multiple security_group matches found for name '{name}', use "
                       "an ID to be more specific.")
    if not groups:
        raise NotFound(f"Security group {name} is not found for project {project_id}")
    return groups[0]  # type: ignore[no-any-return]


async def _server_ports(st: ComputeState, inst: Instance) -> list[dict[str, Any]]:
    ports = await external.ports_of(st, inst.uuid)
    if not ports:
        raise NotFound(f"instance_id {inst.uuid} could not be found as device id on any "
                       "ports")
    return ports


async def _record_groups(st: ComputeState, inst_uuid: str, add: str | None,
                         remove: str | None) -> None:
    """The names in the instance's ``security_groups`` (what the server view shows)."""
    async with st.db.write() as s:
        inst = await s.scalar(select(Instance).where(Instance.uuid == inst_uuid)
                              .with_for_update())
        if inst is None:
            return
        names = [n for n in (inst.security_groups or []) if n != remove]
        if add is not None and add not in names:
            names.append(add)
        inst.security_groups = names


async def add_to_server(st: ComputeState, token: str, project_id: str, inst: Instance,
                        name: str) -> None:
    """Raises: NotFound (the group, or the server has no ports), Conflict, BadRequest
    (a port without port security)."""
    group = await find_group(st, token, project_id, name)
    group_id = group["id"]
    ports = await _server_ports(st, inst)
    for port in ports:
        if port.get("port_security_enabled") is False or not port.get("fixed_ips"):
            raise BadRequest("Unable to add security group to port: it has no port "
                             "security or no IP address.")
    for port in ports:
        groups = list(port.get("security_groups") or [])
        if group_id not in groups:
            await external.update_port(st, port["id"], {"security_groups": [*groups, group_id]})
    await _record_groups(st, inst.uuid, group["name"], None)


async def remove_from_server(st: ComputeState, token: str, project_id: str, inst: Instance,
                             name: str) -> None:
    """Raises: NotFound (the group, no ports, or not on any port), Conflict."""
    group = await find_group(st, token, project_id, name)
    group_id = group["id"]
    found = False
    for port in await _server_ports(st, inst):
        groups = list(port.get("security_groups") or [])
        if group_id not in groups:
            continue
        groups.remove(group_id)
        await external.update_port(st, port["id"], {"security_groups": groups})
        found = True
    if not found:
        raise NotFound(f"Security group {name} not associated with the instance {inst.uuid}")
    await _record_groups(st, inst.uuid, None, group["name"])


async def server_groups(st: ComputeState, inst: Instance) -> list[dict[str, Any]]:
    """The groups on the server's ports, as Nova shows them, sorted by project and
    name."""
    ids: list[str] = []
    for port in await external.ports_of(st, inst.uuid):
        ids += [g for g in port.get("security_groups") or [] if g not in ids]
    groups = []
    for group_id in ids:
        r = await call(st, "GET", f"/security-groups/{group_id}", None)
        if r.status_code == 200:
            groups.append(r.json()["security_group"])
    out = await views(st, None, groups)
    return sorted(out, key=lambda g: (g["tenant_id"], g["name"]))


# -- floating IPs -----------------------------------------------------------------------------


def fip_not_found(fip_id: str) -> NotFound:
    return NotFound(f"Floating IP not found for ID {fip_id}")


async def _network_names(st: ComputeState, token: str, ids: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for net_id in sorted(ids):
        r = await call(st, "GET", f"/networks/{net_id}", token)
        if r.status_code == 200:
            out[net_id] = r.json()["network"]["name"] or net_id
    return out


async def fip_views(st: ComputeState, token: str,
                    fips: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Floating IPs as Nova shows them: ``pool`` the external network's name,
    ``instance_id`` the device of the port they are on."""
    names = await _network_names(st, token, {f["floating_network_id"] for f in fips})
    out = []
    for f in fips:
        instance_id = None
        if f.get("port_id"):
            details = f.get("port_details")
            if details is None:
                port = await external.get_port(st, await external.service_headers(st),
                                               f["port_id"])
                details = port or {}
            instance_id = details.get("device_id") or None
        out.append({"id": f["id"], "ip": f["floating_ip_address"],
                    "pool": names.get(f["floating_network_id"], f["floating_network_id"]),
                    "fixed_ip": f.get("fixed_ip_address"), "instance_id": instance_id})
    return out


async def list_fips(st: ComputeState, token: str, project_id: str) -> list[dict[str, Any]]:
    r = await call(st, "GET", "/floatingips", token, params={"project_id": project_id})
    if r.status_code != 200:
        raise unexpected(r, "listing floating IPs")
    return await fip_views(st, token, r.json()["floatingips"])


async def get_fip(st: ComputeState, token: str, fip_id: str) -> dict[str, Any]:
    """The Neutron floating IP. Raises: NotFound."""
    if not is_uuid(fip_id):
        raise fip_not_found(fip_id)
    r = await call(st, "GET", f"/floatingips/{fip_id}", token)
    if r.status_code == 404:
        raise fip_not_found(fip_id)
    if r.status_code != 200:
        raise unexpected(r, "reading a floating IP")
    return r.json()["floatingip"]  # type: ignore[no-any-return]


async def pools(st: ComputeState, token: str) -> list[dict[str, Any]]:
    r = await call(st, "GET", "/networks", token, params={"router:external": "true"})
    if r.status_code != 200:
        raise unexpected(r, "listing external networks")
    return r.json()["networks"]  # type: ignore[no-any-return]


async def _pool_id(st: ComputeState, token: str, pool: str | None) -> str:
    """The external network named (or with the id) ``pool``; without a pool, the
    first external network. Raises: NotFound."""
    nets = await pools(st, token)
    if pool is not None:
        nets = [n for n in nets if n["id"] == pool] or [n for n in nets if n["name"] == pool]
        if len(nets) > 1:
            raise BadRequest(f"Multiple floating IP pools matches found for name '{pool}'")
    if not nets:
        raise NotFound("Floating IP pool not found.")
    return nets[0]["id"]  # type: ignore[no-any-return]


async def create_fip(st: ComputeState, token: str, pool: str | None) -> dict[str, Any]:
    """Raises: NotFound (no such pool, or no address left), Forbidden (quota),
    BadRequest."""
    net_id = await _pool_id(st, token, pool)
    r = await call(st, "POST", "/floatingips", token,
                   json={"floatingip": {"floating_network_id": net_id}})
    if r.status_code != 201:
        kind, msg = _neutron_type(r), neutron_message(r)
        if kind in ("IpAddressGenerationFailure", "ExternalIpAddressExhausted"):
            raise NotFound(f"No more floating IPs in pool {pool}." if pool
                           else "No more floating IPs available.")
        if kind == "OverQuota" or (r.status_code == 409 and "quota" in msg.lower()):
            raise Forbidden(f"IP allocation over quota in pool {pool}." if pool
                            else "IP allocation over quota.")
        if r.status_code == 404:
            raise NotFound("Floating IP pool not found.")
        if r.status_code == 400:
            raise BadRequest(msg)
        raise unexpected(r, "creating a floating IP")
    return (await fip_views(st, token, [r.json()["floatingip"]]))[0]


async def delete_fip(st: ComputeState, token: str, fip_id: str) -> None:
    """Raises: NotFound."""
    await get_fip(st, token, fip_id)
    r = await call(st, "DELETE", f"/floatingips/{fip_id}", token)
    if r.status_code == 404:
        raise fip_not_found(fip_id)
    if r.status_code != 204:
        raise unexpected(r, "deleting a floating IP")


async def _fip_by_address(st: ComputeState, token: str, address: str) -> dict[str, Any]:
    r = await call(st, "GET", "/floatingips", token, params={"floating_ip_address": address})
    if r.status_code != 200:
        raise unexpected(r, "listing floating IPs")
    fips = r.json()["floatingips"]
    if not fips:
        raise NotFound("floating IP not found")
    return fips[0]  # type: ignore[no-any-return]


async def associate(st: ComputeState, token: str, inst: Instance, address: str,
                    fixed_address: str | None) -> None:
    """Put the floating IP ``address`` on the server's port with ``fixed_address``
    (default its first IPv4 address).

    Raises:
        BadRequest (no ports or fixed IPs, an address not the server's, Neutron's
        refusal), NotFound (no such floating IP).
    """
    ports = await external.ports_of(st, inst.uuid)
    if not ports:
        raise BadRequest("Instance network is not ready yet")
    fixed = [(p["id"], ip["ip_address"]) for p in ports for ip in p.get("fixed_ips", [])]
    if not fixed:
        raise BadRequest("No fixed IPs associated to instance")
    if fixed_address is not None:
        match = [f for f in fixed if f[1] == fixed_address]
        if not match:
            raise BadRequest("Specified fixed address not assigned to instance")
    else:
        match = [f for f in fixed if ipaddress.ip_address(f[1]).version == 4]
        if not match:
            raise BadRequest(f"Unable to associate floating IP {address} to any fixed IPs "
                             f"for instance {inst.uuid}. Instance has no fixed IPv4 "
                             "addresses to associate.")
    port_id, fixed_ip = match[0]
    fip = await _fip_by_address(st, token, address)
    r = await call(st, "PUT", f"/floatingips/{fip['id']}", token, json={
        "floatingip": {"port_id": port_id, "fixed_ip_address": fixed_ip}})
    if r.status_code == 200:
        return
    if r.status_code == 409:
        raise BadRequest(neutron_message(r))
    raise BadRequest(f"Unable to associate floating IP {address} to fixed IP {fixed_ip} "
                     f"for instance {inst.uuid}. Error: {neutron_message(r)}")


async def disassociate(st: ComputeState, token: str, inst: Instance, address: str) -> None:
    """Raises: NotFound (no such floating IP), Conflict (not on this server)."""
    fip = await _fip_by_address(st, token, address)
    device = None
    if fip.get("port_id"):
        details = fip.get("port_details")
        if details is None:
            details = await external.get_port(st, await external.service_headers(st),
                                              fip["port_id"]) or {}
        device = details.get("device_id")
    if device != inst.uuid:
        raise Conflict(f"Floating IP {address} is not associated with instance {inst.uuid}.")
    r = await call(st, "PUT", f"/floatingips/{fip['id']}", token,
                   json={"floatingip": {"port_id": None}})
    if r.status_code != 200:
        raise unexpected(r, "disassociating a floating IP")


# -- networks -----------------------------------------------------------------------------------


async def list_networks(st: ComputeState, token: str) -> list[dict[str, Any]]:
    return await external.list_networks(st, token)


async def get_network(st: ComputeState, token: str, net_id: str) -> dict[str, Any]:
    """Raises: NotFound (Nova's terse message)."""
    net = await external.get_network(st, token, net_id)
    if net is None:
        raise NotFound("Network not found")
    return net
