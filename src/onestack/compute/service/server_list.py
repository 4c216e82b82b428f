"""Listing servers (``GET /servers`` and ``GET /servers/detail``): the filters,
sort keys and pages, read as plain ``Listed`` rows rather than ORM objects.

Reading one server (``get``) stays in ``servers``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.compute.models import Instance
from onestack.compute.service.servers import DELETED, STATUS_FILTER
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest

SORT_KEYS = {
    "access_ip_v4": Instance.access_ip_v4, "access_ip_v6": Instance.access_ip_v6,
    "availability_zone": Instance.availability_zone, "config_drive": Instance.config_drive,
    "created_at": Instance.created_at, "display_description": Instance.display_description,
    "display_name": Instance.display_name, "host": Instance.host,
    "hostname": Instance.hostname, "image_ref": Instance.image_ref,
    "instance_type_id": Instance.instance_type_id, "key_name": Instance.key_name,
    "launch_index": Instance.launch_index, "launched_at": Instance.launched_at,
    "locked": Instance.locked, "locked_by": Instance.locked_by, "node": Instance.node,
    "power_state": Instance.power_state, "progress": Instance.id,
    "project_id": Instance.project_id, "ramdisk_id": Instance.id,
    "kernel_id": Instance.id, "root_device_name": Instance.id,
    "task_state": Instance.task_state, "terminated_at": Instance.terminated_at,
    "updated_at": Instance.updated_at, "user_id": Instance.user_id,
    "uuid": Instance.uuid, "vm_state": Instance.vm_state,
}
ADMIN_SORT_KEYS = frozenset({"host", "node"})


@dataclass
class ListFilters:
    project_id: str | None  # None: every project (all_tenants)
    name: str | None = None
    status: str | None = None
    image: str | None = None
    flavor: str | None = None
    host: str | None = None
    changes_since: datetime | None = None
    changes_before: datetime | None = None
    deleted: bool = False
    user_id: str | None = None
    locked: bool | None = None
    tags: list[str] = field(default_factory=list)  # all of them
    tags_any: list[str] = field(default_factory=list)  # at least one
    not_tags: list[str] = field(default_factory=list)  # not all of them
    not_tags_any: list[str] = field(default_factory=list)  # none of them
    ip: str | None = None  # a regular expression a fixed IPv4 address matches
    ip6: str | None = None  # ... an IPv6 address
    sort: list[tuple[str, str]] = field(default_factory=lambda: [("created_at", "desc")])


class Listed:
    """A server as a listing reads it: only the columns the views show, as plain
    attributes (no ORM identity map or attribute instrumentation, which cost more
    than the query for a thousand rows), and each JSON column decoded once per
    distinct value (a fleet shares its flavor and image snapshots, and most
    servers have the same empty tags, hints or ports), so values may be shared
    between servers: read-only. Whatever the views (``api/server_views.py``'s
    ``full``) read must be declared here: it is what the listing selects."""

    id: int
    uuid: str
    project_id: str
    user_id: str
    display_name: str
    display_description: str | None
    hostname: str
    reservation_id: str
    launch_index: int
    image_ref: str
    image: dict[str, Any]
    flavor: dict[str, Any]
    key_name: str | None
    user_data: str | None
    config_drive: str
    metadata_: dict[str, str]
    tags: list[str]
    security_groups: list[str]
    network_info: list[dict[str, Any]]
    scheduler_hints: dict[str, Any]
    availability_zone: str | None
    requested_availability_zone: str | None
    disk_config: str
    access_ip_v4: str | None
    access_ip_v6: str | None
    host: str | None
    node: str | None
    vm_state: str
    task_state: str | None
    power_state: int
    locked: bool
    locked_reason: str | None
    fault: dict[str, Any] | None
    launched_at: datetime | None
    terminated_at: datetime | None
    created_at: datetime
    updated_at: datetime | None

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


# What the list views read (``GET /servers/detail``, and ``GET /servers``)
_LISTED = tuple(Listed.__annotations__)
_BRIEF = ("id", "uuid", "display_name")
_JSON_KEYS = frozenset(k for k in _LISTED
                       if isinstance(getattr(Instance, k).type, sa.JSON))


def _columns(keys: tuple[str, ...], raw_json: bool) -> list[Any]:
    """``keys``' columns labelled with their attribute names; ``raw_json``: JSON
    ones as their stored text (decoded by ``_listed``)."""
    out = []
    for key in keys:
        col = getattr(Instance, key)
        raw = raw_json and key in _JSON_KEYS
        out.append((sa.type_coerce(col, sa.Text) if raw else col).label(key))
    return out


# (brief, raw JSON) -> columns. asyncpg decodes json columns itself (SQLAlchemy
# registers its codec), whatever the expression's type: there the text is never seen
_COLUMNS = {(brief, raw): _columns(_BRIEF if brief else _LISTED, raw)
            for brief in (False, True) for raw in (False, True)}
_UNSET = object()


async def _listed(s: AsyncSession, q: sa.Select[Any]) -> list[Listed]:
    result = await s.execute(q)
    keys = tuple(result.keys())
    json_keys = [k for k in keys if k in _JSON_KEYS]
    decoded: dict[str, Any] = {}
    out = []
    for row in result:
        values = dict(zip(keys, row))
        for k in json_keys:
            raw = values[k]
            if isinstance(raw, str):
                value = decoded.get(raw, _UNSET)
                if value is _UNSET:
                    value = decoded[raw] = json.loads(raw)
                values[k] = value
        out.append(Listed(values))
    return out


def _conditions(f: ListFilters) -> list[Any] | None:
    """The filters the database applies (None: nothing can match)."""
    i = Instance
    where: list[Any] = []
    if f.project_id is not None:
        where.append(i.project_id == f.project_id)
    if f.changes_since is None and not f.deleted:
        where.append(i.deleted.is_(False))
    elif f.deleted:
        where.append(i.deleted.is_(True))
    if f.changes_since is not None:
        where.append(i.updated_at >= f.changes_since)
    if f.changes_before is not None:
        where.append(i.updated_at <= f.changes_before)
    if f.status is not None:
        wanted = STATUS_FILTER.get(f.status.upper())
        if wanted is None:
            return None
        where.append(i.vm_state == wanted[0])
        if wanted[0] == DELETED:
            where.append(i.deleted.is_(True))
        if wanted[1] is not None:
            where.append(i.task_state.in_(wanted[1]))
    for value, col in ((f.image, i.image_ref), (f.flavor, i.instance_type_id),
                       (f.host, i.host), (f.user_id, i.user_id)):
        if value is not None:
            where.append(col == value)
    if f.locked is not None:
        where.append(i.locked.is_(f.locked))
    return where


def _order(f: ListFilters) -> list[Any]:
    """``f.sort``, then ``id`` in the first key's direction (ties never reorder
    between pages)."""
    order: list[Any] = [SORT_KEYS[key].desc() if d == "desc" else SORT_KEYS[key].asc()
                        for key, d in f.sort]
    first_dir = f.sort[0][1] if f.sort else "desc"
    order.append(Instance.id.desc() if first_dir == "desc" else Instance.id.asc())
    return order


def marker_not_found(marker: str) -> BadRequest:
    return BadRequest(f"marker [{marker}] not found")


async def list_servers(st: ComputeState, f: ListFilters, limit: int | None = None,
                       marker: str | None = None, *, brief: bool = False) -> list[Listed]:
    """Matching servers, sorted (``id`` breaks ties, in the first key's direction):
    the page after the one whose uuid is ``marker``, at most ``limit`` long.
    ``brief``: only id, uuid and name are read (``GET /servers``).

    The database filters, sorts and cuts the page. The name (a regular
    expression) and tag filters are Python's, and a marker's place is known only
    among the matching rows (Nova's marker is one of the listed servers): then a
    first query reads just the keys of the matching rows in order, and the page
    is loaded by id.

    Raises:
        BadRequest: no matching server has the uuid ``marker``.
    """
    i = Instance
    where = _conditions(f)
    if where is None:
        if marker is not None:
            raise marker_not_found(marker)
        return []
    tags = bool(f.tags or f.tags_any or f.not_tags or f.not_tags_any)
    ips = f.ip is not None or f.ip6 is not None
    async with st.db.read() as s:
        columns = _COLUMNS[brief, s.get_bind().dialect.name != "postgresql"]
        if marker is None and f.name is None and not tags and not ips:
            q = select(*columns).where(*where).order_by(*_order(f))
            return await _listed(s, q if limit is None else q.limit(limit))
        cols = [i.id, i.uuid, i.display_name, *([i.tags] if tags else []),
                *([i.network_info] if ips else [])]
        keys = list(await s.execute(select(*cols).where(*where).order_by(*_order(f))))
        if f.name is not None:
            try:
                pattern = re.compile(f.name)
            except re.error:
                keys = []
            else:
                keys = [k for k in keys if pattern.search(k.display_name)]
        if tags:
            keys = [k for k in keys if _tags_match(set(k.tags or []), f)]
        if ips:
            patterns = _ip_patterns(f)
            keys = [k for k in keys if _ips_match(k.network_info or [], *patterns)]
        start = 0
        if marker is not None:
            start = next((n + 1 for n, k in enumerate(keys) if k.uuid == marker), -1)
            if start < 0:
                raise marker_not_found(marker)
        ids = [k.id for k in keys[start:None if limit is None else start + limit]]
        if not ids:
            return []
        rows = await _listed(s, select(*columns).where(i.id.in_(ids), *where))
    by_id = {r.id: r for r in rows}
    return [by_id[n] for n in ids if n in by_id]


def _ip_patterns(f: ListFilters) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """The ``ip`` and ``ip6`` filters compiled; an invalid expression matches
    nothing (a pattern that never matches)."""
    def compile_(expr: str | None) -> re.Pattern[str] | None:
        if expr is None:
            return None
        try:
            return re.compile(expr)
        except re.error:
            return re.compile(r"(?!)")
    return compile_(f.ip), compile_(f.ip6)


def _ips_match(network_info: list[dict[str, Any]], v4: re.Pattern[str] | None,
               v6: re.Pattern[str] | None) -> bool:
    """Nova's ``ip``/``ip6`` filters: a regular expression that matches (from its
    start) one of the server's fixed addresses of that IP version."""
    for port in network_info:
        for ip in port.get("fixed_ips", []):
            addr = ip.get("ip_address") or ""
            pattern = v6 if ":" in addr else v4
            if pattern is not None and pattern.match(addr):
                return True
    return False


def _tags_match(tags: set[str], f: ListFilters) -> bool:
    """Nova's tag filters: ``tags`` all present, ``tags-any`` one present,
    ``not-tags`` not all present, ``not-tags-any`` none present."""
    if f.tags and not set(f.tags) <= tags:
        return False
    if f.tags_any and not set(f.tags_any) & tags:
        return False
    if f.not_tags and set(f.not_tags) <= tags:
        return False
    return not (f.not_tags_any and set(f.not_tags_any) & tags)
