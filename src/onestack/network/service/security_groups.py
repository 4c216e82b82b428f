"""Security groups and their rules, as Neutron keeps them.

Every project has one ``default`` group (``network_default_security_groups``),
made on first need with Neutron's default rules: egress for IPv4 and IPv6 to
anywhere, ingress for IPv4 and IPv6 from members of the group itself. Other
groups start with the two egress rules. A rule's identity for the duplicate
check is its ``fingerprint``, a hash of the normalised rule, unique per group in
the database, so two concurrent requests cannot both add the same rule.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.context import RequestContext
from onestack.core.errors import CloudError
from onestack.network import errors
from onestack.network.api.common import standard, timestamp
from onestack.network.models import (
    DefaultSecurityGroup,
    PortSecurityGroup,
    SecurityGroup,
    SecurityGroupRule,
    new_id,
)
from onestack.network.service import common
from onestack.network.state import NetworkState

DEFAULT_NAME = "default"
DEFAULT_DESCRIPTION = "Default security group"

# Neutron's protocol names and numbers (neutron_lib.constants.IP_PROTOCOL_MAP)
PROTOCOLS: dict[str, int] = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1,
    "igmp": 2, "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58,
    "icmpv6": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89,
    "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}
# number -> name, the legacy 'icmpv6' left out (as Neutron's map does)
PROTOCOL_NAMES: dict[str, str] = {str(n): p for p, n in PROTOCOLS.items() if p != "icmpv6"}
ANY_PROTOCOL = (None, "any")
SUPPORTED_PROTOCOLS: tuple[str | None, ...] = (*ANY_PROTOCOL, *PROTOCOLS)
# dccp, sctp, tcp, udp, udplite: the protocols with ports
PORT_PROTOCOLS = frozenset({33, 132, 6, 17, 136})
ICMP_NUMBERS = frozenset({1, 58})
IPV6_ONLY_PROTOCOLS = frozenset({
    "ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts",
    "ipv6-route", "41", "44", "58", "59", "60", "43",
})
ETHERTYPES = ("IPv4", "IPv6")
ANY_PREFIXES = ("0.0.0.0/0", "::/0", None)


# -- errors ---------------------------------------------------------------------------


def not_found(sg_id: str) -> CloudError:
    return errors.security_group_not_found(sg_id)


def rule_not_found(rule_id: str) -> CloudError:
    return errors.not_found("SecurityGroupRuleNotFound",
                            f"Security group rule {rule_id} does not exist")


def default_exists() -> CloudError:
    return errors.conflict("SecurityGroupDefaultAlreadyExists",
                           "Default security group already exists.")


def in_use(sg_id: str) -> CloudError:
    return errors.conflict("SecurityGroupInUse", f"Security Group {sg_id} in use.")


# -- converters (the attribute map's, raising Neutron's types) ----------------------------


def convert_protocol(value: Any) -> str | None:
    """A protocol name (lower-cased) or a number 0-255 as a string; None for any."""
    if value in ANY_PROTOCOL:
        return None
    bad = errors.bad_request(
        "SecurityGroupRuleInvalidProtocol",
        f"Security group rule protocol {value} not supported. Only protocol values "
        f"{SUPPORTED_PROTOCOLS} and integer representations [0 to 255] are supported.",
    )
    if isinstance(value, bool):
        raise bad
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(value)
        if 0 <= number <= 255:
            return str(number)
        raise bad
    if isinstance(value, str) and value.lower() in PROTOCOLS:
        return value.lower()
    raise bad


def convert_port(value: Any) -> int | None:
    """A port (or ICMP type/code) 0-65535."""
    if value is None:
        return None
    port = -1
    if not isinstance(value, (bool, float)):
        try:
            port = int(value)
        except (TypeError, ValueError):
            port = -1
    if not 0 <= port <= 65535:
        raise errors.bad_request("SecurityGroupInvalidPortValue",
                                 f"Invalid value for port {value}")
    return port


def convert_ethertype(value: Any) -> str:
    if isinstance(value, str):
        for e in ETHERTYPES:
            if e.lower() == value.lower():
                return e
    raise errors.bad_request(
        "SecurityGroupRuleInvalidEtherType",
        f"Security group rule for ethertype '{value}' not supported. Allowed values are "
        f"{list(ETHERTYPES)}.",
    )


def convert_prefix(value: Any) -> str | None:
    """An address or network with its mask (``10.0.0.1`` -> ``10.0.0.1/32``); host
    bits are kept, as Neutron keeps them (``normalized_cidr`` drops them)."""
    if not value:
        return None
    bad = errors.bad_request("InvalidCIDR", f"Invalid CIDR {value} given as IP prefix.")
    if not isinstance(value, str):
        raise bad
    try:
        return str(ipaddress.ip_interface(value.strip()))
    except ValueError:
        raise bad from None


def normalized_cidr(prefix: str | None) -> str | None:
    return None if not prefix else str(ipaddress.ip_interface(prefix).network)


# -- rendering --------------------------------------------------------------------------


def render_rule(rule: SecurityGroupRule, default_ids: set[str]) -> dict[str, Any]:
    return {
        "id": rule.id,
        "security_group_id": rule.security_group_id,
        "direction": rule.direction,
        "ethertype": rule.ethertype,
        "protocol": rule.protocol,
        "port_range_min": rule.port_range_min,
        "port_range_max": rule.port_range_max,
        "remote_ip_prefix": rule.remote_ip_prefix,
        "normalized_cidr": normalized_cidr(rule.remote_ip_prefix),
        "remote_group_id": rule.remote_group_id,
        "belongs_to_default_sg": rule.security_group_id in default_ids,
        "project_id": rule.project_id,
        "tenant_id": rule.project_id,
        "description": rule.description,
        "revision_number": rule.revision_number,
        "created_at": timestamp(rule.created_at),
        "updated_at": timestamp(rule.updated_at),
    }


def render_group(sg: SecurityGroup, rules: list[dict[str, Any]], tags: list[str]
                 ) -> dict[str, Any]:
    return {
        "id": sg.id,
        "name": sg.name,
        **standard(sg, tags),
        "stateful": sg.stateful,
        "shared": False,
        "security_group_rules": rules,
    }


async def _default_ids(session: AsyncSession, sg_ids: Iterable[str]) -> set[str]:
    ids = list(set(sg_ids))
    out: set[str] = set()
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        out.update((await session.scalars(select(DefaultSecurityGroup.security_group_id).where(
            DefaultSecurityGroup.security_group_id.in_(part)))).all())
    return out


async def render_rules(session: AsyncSession, rules: list[SecurityGroupRule]
                       ) -> list[dict[str, Any]]:
    defaults = await _default_ids(session, (r.security_group_id for r in rules))
    return [render_rule(r, defaults) for r in rules]


async def render_groups(session: AsyncSession, groups: list[SecurityGroup]
                        ) -> list[dict[str, Any]]:
    ids = [g.id for g in groups]
    rules: dict[str, list[SecurityGroupRule]] = defaultdict(list)
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        for r in (await session.scalars(select(SecurityGroupRule).where(
                SecurityGroupRule.security_group_id.in_(part)))).all():
            rules[r.security_group_id].append(r)
    defaults = await _default_ids(session, ids)
    tags = await common.tags_of(session, ids)
    out = []
    for g in groups:
        rendered = [render_rule(r, defaults) for r in
                    sorted(rules[g.id], key=lambda r: (r.created_at, r.id))]
        out.append(render_group(g, rendered, tags.get(g.id, [])))
    return out


# -- the default group ------------------------------------------------------------------


def _rule(project_id: str, sg_id: str, direction: str, ethertype: str,
          remote_group_id: str | None = None) -> SecurityGroupRule:
    values: dict[str, Any] = {
        "security_group_id": sg_id, "direction": direction, "ethertype": ethertype,
        "protocol": None, "port_range_min": None, "port_range_max": None,
        "remote_ip_prefix": None, "remote_group_id": remote_group_id,
    }
    return SecurityGroupRule(id=new_id(), project_id=project_id, description="",
                             fingerprint=fingerprint(values), **values)


def _template_rules(project_id: str, sg_id: str, default: bool) -> list[SecurityGroupRule]:
    rules = [_rule(project_id, sg_id, "egress", e) for e in ETHERTYPES]
    if default:
        rules += [_rule(project_id, sg_id, "ingress", e, sg_id) for e in ETHERTYPES]
    return rules


async def default_id(session: AsyncSession, project_id: str, *, lock: bool = False
                     ) -> str | None:
    """The id of ``project_id``'s default group, if it has one (``lock``: a locking
    read, which sees rows committed after this transaction began on MariaDB)."""
    q = select(DefaultSecurityGroup.security_group_id).where(
        DefaultSecurityGroup.project_id == project_id)
    if lock:
        q = q.with_for_update()
    found: str | None = await session.scalar(q)
    return found


async def ensure_default(st: NetworkState, session: AsyncSession, project_id: str) -> str:
    """The id of ``project_id``'s default group, made with Neutron's default rules
    if missing. A concurrent maker loses on the primary key of
    ``network_default_security_groups`` (in a savepoint) and takes the winner's."""
    found = await default_id(session, project_id)
    if found is not None:
        return found
    sg_id = new_id()
    try:
        async with session.begin_nested():
            session.add(SecurityGroup(id=sg_id, project_id=project_id, name=DEFAULT_NAME,
                                      description=DEFAULT_DESCRIPTION, stateful=True))
            await session.flush()
            session.add(DefaultSecurityGroup(project_id=project_id, security_group_id=sg_id))
            await session.flush()
            session.add_all(_template_rules(project_id, sg_id, default=True))
            await session.flush()
    except IntegrityError:
        found = await default_id(session, project_id, lock=True)
        if found is None:
            raise
        return found
    return sg_id


# -- groups -----------------------------------------------------------------------------


async def get_row(session: AsyncSession, sg_id: str) -> SecurityGroup:
    sg = await session.get(SecurityGroup, sg_id)
    if sg is None:
        raise not_found(sg_id)
    return sg


async def show(session: AsyncSession, sg_id: str) -> dict[str, Any]:
    return (await render_groups(session, [await get_row(session, sg_id)]))[0]


async def list_visible(session: AsyncSession, ctx: RequestContext, admin: bool,
                       filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Groups the caller may see (its project's; all for an admin), with SQL
    pre-filters on ids, names and projects."""
    q = select(SecurityGroup)
    if not admin:
        q = q.where(SecurityGroup.project_id == (ctx.project_id or ""))
    if "id" in filters:
        q = q.where(SecurityGroup.id.in_(filters["id"]))
    if "name" in filters:
        q = q.where(SecurityGroup.name.in_(filters["name"]))
    for key in ("project_id", "tenant_id"):
        if key in filters:
            q = q.where(SecurityGroup.project_id.in_(filters[key]))
    return await render_groups(session, list((await session.scalars(q)).all()))


async def create(st: NetworkState, session: AsyncSession, item: dict[str, Any]) -> str:
    """A new group with the two egress rules (after the project's default group)."""
    project_id = item["project_id"]
    await ensure_default(st, session, project_id)
    await common.check_quota(st, session, project_id, "security_group", SecurityGroup)
    sg = SecurityGroup(id=new_id(), project_id=project_id, name=item["name"],
                       description=item["description"], stateful=item["stateful"])
    session.add(sg)
    await session.flush()
    session.add_all(_template_rules(project_id, sg.id, default=False))
    await session.flush()
    return sg.id


async def groups_for_port(session: AsyncSession, sg_ids: list[str], project_id: str,
                          admin: bool) -> list[str]:
    """``sg_ids`` checked for a port of ``project_id``: each exists and is the
    project's (any for an admin); stateful and stateless ones do not mix.

    Raises:
        NotFound (SecurityGroupNotFound, naming the missing ones);
        Conflict (SecurityGroupConflict).
    """
    wanted = list(dict.fromkeys(sg_ids))
    if not wanted:
        return []
    rows = {g.id: g for g in (await session.scalars(
        select(SecurityGroup).where(SecurityGroup.id.in_(wanted)))).all()}
    missing = [i for i in wanted
               if i not in rows or (not admin and project_id and rows[i].project_id != project_id)]
    if missing:
        raise not_found(", ".join(missing))
    if len({rows[i].stateful for i in wanted}) > 1:
        raise errors.conflict("SecurityGroupConflict",
                              "Error Cannot apply both stateful and stateless security groups "
                              "on the same port at the same time while attempting the "
                              "operation.")
    return wanted


async def _bound(session: AsyncSession, sg_id: str) -> bool:
    count = await session.scalar(select(func.count()).select_from(PortSecurityGroup).where(
        PortSecurityGroup.security_group_id == sg_id))
    return bool(count)


async def is_default(session: AsyncSession, sg: SecurityGroup) -> bool:
    return await default_id(session, sg.project_id) == sg.id


async def update(st: NetworkState, session: AsyncSession, sg: SecurityGroup,
                 values: dict[str, Any]) -> None:
    """Change name, description or stateful.

    Raises:
        Conflict: renaming the default group (SecurityGroupCannotUpdateDefault);
        changing ``stateful`` of a group ports use (SecurityGroupInUse).
    """
    if "name" in values and (sg.name == DEFAULT_NAME or await is_default(session, sg)):
        raise errors.conflict("SecurityGroupCannotUpdateDefault",
                              "Updating default security group not allowed.")
    stateful_changed = "stateful" in values and values["stateful"] != sg.stateful
    if stateful_changed and await _bound(session, sg.id):
        raise in_use(sg.id)
    common.apply(sg, values, ("name", "description", "stateful"))
    if stateful_changed:
        await common.dataplane_changed(st, session, "security group updated")


async def delete(st: NetworkState, session: AsyncSession, sg: SecurityGroup,
                 admin: bool) -> None:
    """Delete ``sg``, its rules and the rules of other groups that name it as
    their remote group.

    Raises:
        Conflict: ports use it (SecurityGroupInUse); the default group, by a
        non-admin (SecurityGroupCannotRemoveDefault).
    """
    if await _bound(session, sg.id):
        raise in_use(sg.id)
    if sg.name == DEFAULT_NAME and not admin:
        raise errors.conflict("SecurityGroupCannotRemoveDefault",
                              "Insufficient rights for removing default security group.")
    # the groups whose rules point at this one change too
    referring = set((await session.scalars(select(SecurityGroupRule.security_group_id).where(
        SecurityGroupRule.remote_group_id == sg.id,
        SecurityGroupRule.security_group_id != sg.id))).all())
    await session.execute(sql_delete(SecurityGroupRule).where(or_(
        SecurityGroupRule.security_group_id == sg.id,
        SecurityGroupRule.remote_group_id == sg.id)))
    for other_id in referring:
        other = await session.get(SecurityGroup, other_id)
        if other is not None:
            common.touch(other)
    await session.execute(sql_delete(DefaultSecurityGroup).where(
        DefaultSecurityGroup.security_group_id == sg.id))
    await common.delete_tags(session, sg.id)
    await session.delete(sg)
    await common.dataplane_changed(st, session, "security group deleted")


# -- rules ------------------------------------------------------------------------------


def _proto_name_and_number(protocol: str | None) -> str:
    if protocol is None:
        return "+"
    if protocol in PROTOCOLS:
        name = "ipv6-icmp" if protocol == "icmpv6" else protocol
        return f"{name}/{PROTOCOLS[protocol]}"
    if protocol in PROTOCOL_NAMES:
        return f"{PROTOCOL_NAMES[protocol]}/{protocol}"
    return f"{protocol}/{protocol}"


def fingerprint(rule: dict[str, Any]) -> str:
    """The identity of a (normalised) rule within its group, as Neutron compares
    rules: ``tcp`` and ``6`` are one protocol, a prefix of everything is none."""
    prefix = rule.get("remote_ip_prefix")
    parts = [
        rule["direction"], rule["ethertype"],
        str(rule.get("port_range_max")), str(rule.get("port_range_min")),
        _proto_name_and_number(rule.get("protocol")),
        str(rule.get("remote_group_id")), str(rule.get("remote_address_group_id")),
        "+" if prefix in ANY_PREFIXES else prefix,
    ]
    return hashlib.sha256("_".join(parts).encode()).hexdigest()


def _proto_number(protocol: str | None) -> int | None:
    if protocol is None:
        return None
    if protocol in PROTOCOLS:
        return PROTOCOLS[protocol]
    return int(protocol)


def normalize_rule(rule: dict[str, Any]) -> None:
    """Neutron's canonical form and checks of one rule, in place.

    Raises:
        BadRequest: Neutron's InvalidInput family (port range, ICMP values, ethertype
        conflicts, several remotes).
    """
    protocol = rule.get("protocol")
    if rule["ethertype"] == "IPv6":
        if protocol in ("icmp", "icmpv6"):
            rule["protocol"] = protocol = "ipv6-icmp"
        elif protocol == "1":
            rule["protocol"] = protocol = "58"
    pmin, pmax = rule.get("port_range_min"), rule.get("port_range_max")
    if pmin == 1 and pmax == 65535:
        rule["port_range_min"] = rule["port_range_max"] = pmin = pmax = None
    if pmin is not None or pmax is not None:
        if not protocol:
            raise errors.bad_request("SecurityGroupProtocolRequiredWithPorts",
                                     "Must also specify protocol if port range is given.")
        number = _proto_number(protocol)
        if number in PORT_PROTOCOLS:
            if pmin == 0 or pmax == 0:
                raise errors.bad_request("SecurityGroupInvalidPortValue",
                                         "Invalid value for port 0")
            if pmin is None or pmax is None or pmin > pmax:
                raise errors.bad_request("SecurityGroupInvalidPortRange",
                                         "For TCP/UDP protocols, port_range_min must be "
                                         "<= port_range_max")
        elif number in ICMP_NUMBERS:
            for attr, name, value in (("port_range_min", "type", pmin),
                                      ("port_range_max", "code", pmax)):
                if value is not None and not 0 <= value <= 255:
                    raise errors.bad_request(
                        "SecurityGroupInvalidIcmpValue",
                        f"Invalid value for ICMP {name} ({attr}) {value}. It must be 0 to 255.")
            if pmin is None and pmax is not None:
                raise errors.bad_request(
                    "SecurityGroupMissingIcmpType",
                    f"ICMP code (port-range-max) {pmax} is provided but ICMP type "
                    "(port-range-min) is missing.")
        else:
            raise errors.bad_request(
                "SecurityGroupInvalidProtocolForPort",
                f"Ports cannot be specified for protocol {number}. Ports are only supported "
                "for DCCP, SCTP, TCP, UDP, UDPLITE.")
    prefix = rule.get("remote_ip_prefix")
    if prefix:
        version = ipaddress.ip_interface(prefix).version
        if rule["ethertype"] != f"IPv{version}":
            raise errors.bad_request(
                "SecurityGroupRuleParameterConflict",
                f"Conflicting value ethertype {rule['ethertype']} for CIDR {prefix}")
    if protocol in IPV6_ONLY_PROTOCOLS and rule["ethertype"] == "IPv4":
        raise errors.bad_request(
            "SecurityGroupEthertypeConflictWithProtocol",
            f"Invalid ethertype {rule['ethertype']} for protocol {protocol}.")
    if prefix and rule.get("remote_group_id"):
        raise errors.bad_request(
            "SecurityGroupMultipleRemoteEntites",
            "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id "
            "may be provided.")


async def group_for(session: AsyncSession, sg_id: str, project_id: str, admin: bool
                    ) -> SecurityGroup:
    """``sg_id`` as ``project_id`` may use it in a rule (its own; any for an admin).

    Raises:
        NotFound (SecurityGroupNotFound).
    """
    sg = await session.get(SecurityGroup, sg_id)
    if sg is None or (not admin and sg.project_id != project_id):
        raise not_found(sg_id)
    return sg


async def create_rules(st: NetworkState, session: AsyncSession, items: list[dict[str, Any]],
                       admin: bool) -> list[str]:
    """Add ``items`` (converted rules, one group and one project when several).

    Raises:
        BadRequest: invalid rules; several groups or projects in one request.
        NotFound: the group or a remote group.
        Conflict: a duplicate in the request (DuplicateSecurityGroupRuleInPost) or
        of an existing rule (SecurityGroupRuleExists); OverQuota.
    """
    if len({i["security_group_id"] for i in items}) > 1:
        raise errors.bad_request("SecurityGroupNotSingleGroupRules",
                                 "Only allowed to update rules for one security profile "
                                 "at a time")
    if len({i["project_id"] for i in items}) > 1:
        raise errors.bad_request("SecurityGroupRulesNotSingleProject",
                                 "Multiple project_ids in bulk security group rule create "
                                 "not allowed")
    for item in items:
        normalize_rule(item)
        if item.get("remote_group_id"):
            await group_for(session, item["remote_group_id"], item["project_id"], admin)
    sg = await group_for(session, items[0]["security_group_id"], items[0]["project_id"], admin)
    prints: dict[str, dict[str, Any]] = {}
    for item in items:
        fp = fingerprint(item)
        if fp in prints:
            raise errors.conflict("DuplicateSecurityGroupRuleInPost",
                                  "Duplicate Security Group Rule in POST.")
        prints[fp] = item
    existing = (await session.execute(select(SecurityGroupRule.id).where(
        SecurityGroupRule.security_group_id == sg.id,
        SecurityGroupRule.fingerprint.in_(list(prints))))).scalars().first()
    if existing:
        raise _exists(existing)
    await common.check_quota(st, session, items[0]["project_id"], "security_group_rule",
                             SecurityGroupRule, adding=len(items))
    ids = []
    for fp, item in prints.items():
        row = SecurityGroupRule(
            id=new_id(), project_id=item["project_id"], security_group_id=sg.id,
            direction=item["direction"], ethertype=item["ethertype"],
            protocol=item.get("protocol"), port_range_min=item.get("port_range_min"),
            port_range_max=item.get("port_range_max"),
            remote_ip_prefix=item.get("remote_ip_prefix"),
            remote_group_id=item.get("remote_group_id"),
            description=item.get("description") or "", fingerprint=fp,
        )
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # a concurrent request added the same rule first
            other = await session.scalar(select(SecurityGroupRule.id).where(
                SecurityGroupRule.security_group_id == sg.id,
                SecurityGroupRule.fingerprint == fp).with_for_update())
            if other is None:
                raise
            raise _exists(other) from None
        ids.append(row.id)
    common.touch(sg)
    await common.dataplane_changed(st, session, "security group rules created")
    return ids


def _exists(rule_id: str) -> CloudError:
    return errors.conflict("SecurityGroupRuleExists",
                           f"Security group rule already exists. Rule id is {rule_id}.")


async def get_rule(session: AsyncSession, rule_id: str) -> SecurityGroupRule:
    rule = await session.get(SecurityGroupRule, rule_id)
    if rule is None:
        raise rule_not_found(rule_id)
    return rule


async def show_rule(session: AsyncSession, rule_id: str) -> dict[str, Any]:
    return (await render_rules(session, [await get_rule(session, rule_id)]))[0]


async def group_projects(session: AsyncSession, sg_ids: Iterable[str]) -> dict[str, str]:
    """The owner of each group in ``sg_ids`` (for rules' policy targets)."""
    ids = list(set(sg_ids))
    out: dict[str, str] = {}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        for sid, pid in await session.execute(select(SecurityGroup.id, SecurityGroup.project_id)
                                              .where(SecurityGroup.id.in_(part))):
            out[sid] = pid
    return out


async def list_rules(session: AsyncSession, ctx: RequestContext, admin: bool,
                     filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Rules the caller may see: its own and those of its groups (all for an admin)."""
    q = select(SecurityGroupRule)
    if not admin:
        mine = select(SecurityGroup.id).where(SecurityGroup.project_id == (ctx.project_id or ""))
        q = q.where(or_(SecurityGroupRule.project_id == (ctx.project_id or ""),
                        SecurityGroupRule.security_group_id.in_(mine)))
    if "id" in filters:
        q = q.where(SecurityGroupRule.id.in_(filters["id"]))
    if "security_group_id" in filters:
        q = q.where(SecurityGroupRule.security_group_id.in_(filters["security_group_id"]))
    for key in ("project_id", "tenant_id"):
        if key in filters:
            q = q.where(SecurityGroupRule.project_id.in_(filters[key]))
    return await render_rules(session, list((await session.scalars(q)).all()))


async def delete_rule(st: NetworkState, session: AsyncSession, rule: SecurityGroupRule) -> None:
    sg = await session.get(SecurityGroup, rule.security_group_id)
    await session.delete(rule)
    if sg is not None:
        common.touch(sg)
    await common.dataplane_changed(st, session, "security group rule deleted")
