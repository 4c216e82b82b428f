"""Nova's quotas: limits per project and per user in a project (``compute_quotas``),
quota classes (``compute_quota_classes``, ``default`` sets every project's
defaults), and what is counted against them.

A limit resolves as Nova's database driver does: a user's own row, else the
project's row, else the ``default`` class's row, else ``[compute] quota_*``
(the deprecated networking quotas keep Nova's old defaults). ``-1`` is unlimited.
Counted resources: instances, cores and ram (non-deleted servers), server groups;
key pairs are counted per user when one is created, group members per group when
a server joins, and both show ``in_use`` 0 as in Nova.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.compute.models import Instance, Quota, QuotaClass, ServerGroup, utcnow
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest

DEFAULT_CLASS = "default"
# Nova's quota resources, in its order
RESOURCES = (
    "cores", "fixed_ips", "floating_ips", "injected_file_content_bytes",
    "injected_file_path_bytes", "injected_files", "instances", "key_pairs",
    "metadata_items", "ram", "security_group_rules", "security_groups",
    "server_group_members", "server_groups",
)
# what microversions hide (os-quota-sets from 2.36 and 2.57)
NETWORK_QUOTAS = ("fixed_ips", "floating_ips", "security_group_rules", "security_groups")
INJECTED_QUOTAS = ("injected_files", "injected_file_content_bytes", "injected_file_path_bytes")
# counted in the usage views (the others show in_use 0, as Nova)
COUNTED = ("instances", "cores", "ram", "server_groups")


def config_defaults(st: ComputeState) -> dict[str, int]:
    conf = st.conf
    return {
        "cores": conf.quota_cores, "instances": conf.quota_instances, "ram": conf.quota_ram,
        "key_pairs": conf.quota_key_pairs, "metadata_items": conf.quota_metadata_items,
        "injected_files": conf.quota_injected_files,
        "injected_file_content_bytes": conf.quota_injected_file_content_bytes,
        "injected_file_path_bytes": 255,
        "server_groups": conf.quota_server_groups,
        "server_group_members": conf.quota_server_group_members,
        # nova-network's quotas, still reported before 2.36 with Nova's defaults
        "fixed_ips": -1, "floating_ips": 10, "security_groups": 10, "security_group_rules": 20,
    }


async def class_limits(s: AsyncSession, st: ComputeState,
                       class_name: str = DEFAULT_CLASS) -> dict[str, int]:
    """A quota class's limits: its rows over the defaults (``default``'s rows over
    the settings)."""
    out = config_defaults(st)
    names = [DEFAULT_CLASS] if class_name == DEFAULT_CLASS else [DEFAULT_CLASS, class_name]
    rows = await s.execute(select(QuotaClass.class_name, QuotaClass.resource,
                                  QuotaClass.hard_limit)
                           .where(QuotaClass.class_name.in_(names)))
    ordered = sorted(rows, key=lambda r: r[0] != DEFAULT_CLASS)  # the class over default
    for _, resource, limit in ordered:
        if resource in out:
            out[resource] = limit
    return out


async def _rows(s: AsyncSession, project_id: str, user_id: str) -> dict[str, int]:
    rows = await s.execute(select(Quota.resource, Quota.hard_limit).where(
        Quota.project_id == project_id, Quota.user_id == user_id))
    return {r: v for r, v in rows}


async def project_limits(s: AsyncSession, st: ComputeState, project_id: str) -> dict[str, int]:
    """The project's limits: its own rows, else the defaults."""
    out = await class_limits(s, st)
    out.update({k: v for k, v in (await _rows(s, project_id, "")).items() if k in out})
    return out


async def user_limits(s: AsyncSession, st: ComputeState, project_id: str,
                      user_id: str) -> dict[str, int]:
    """A user's limits in a project: the user's rows, else the project's limits."""
    out = await project_limits(s, st, project_id)
    out.update({k: v for k, v in (await _rows(s, project_id, user_id)).items() if k in out})
    return out


async def has_user_limits(s: AsyncSession, project_id: str, user_id: str) -> bool:
    return bool(await _rows(s, project_id, user_id))


async def usage(s: AsyncSession, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """What is counted against the project's (or one of its users') quota."""
    i, g = Instance, ServerGroup
    q = select(func.count(i.id), func.coalesce(func.sum(i.vcpus), 0),
               func.coalesce(func.sum(i.memory_mb), 0)).where(
        i.project_id == project_id, i.deleted.is_(False))
    gq = select(func.count(g.id)).where(g.project_id == project_id)
    if user_id is not None:
        q = q.where(i.user_id == user_id)
        gq = gq.where(g.user_id == user_id)
    row = (await s.execute(q)).one()
    groups = int(await s.scalar(gq) or 0)
    out = dict.fromkeys(RESOURCES, 0)
    out.update({"instances": int(row[0]), "cores": int(row[1]), "ram": int(row[2]),
                "server_groups": groups})
    return out


async def server_checks(s: AsyncSession, st: ComputeState, project_id: str,
                        user_id: str) -> list[tuple[dict[str, int], dict[str, int]]]:
    """The (used, allowed) pairs a new server must fit in: the project's, and the
    user's when the user has limits of their own (Nova checks both)."""
    checks = [(await usage(s, project_id), await project_limits(s, st, project_id))]
    if await has_user_limits(s, project_id, user_id):
        checks.append((await usage(s, project_id, user_id),
                       await user_limits(s, st, project_id, user_id)))
    return checks


def within(used: int, delta: int, limit: int) -> bool:
    return limit < 0 or used + delta <= limit


async def effective_limit(s: AsyncSession, st: ComputeState, project_id: str | None,
                          user_id: str | None, resource: str) -> int:
    """The limit that applies to a user in a project (the defaults without one)."""
    if project_id is None:
        return (await class_limits(s, st))[resource]
    if user_id is None:
        return (await project_limits(s, st, project_id))[resource]
    return (await user_limits(s, st, project_id, user_id))[resource]


# -- the API's views and changes -----------------------------------------------------

@dataclass
class Detail:
    limit: int
    in_use: int
    reserved: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"in_use": self.in_use, "limit": self.limit, "reserved": self.reserved}


async def get(st: ComputeState, project_id: str, user_id: str | None = None) -> dict[str, int]:
    async with st.db.read() as s:
        if user_id:
            return await user_limits(s, st, project_id, user_id)
        return await project_limits(s, st, project_id)


async def detail(st: ComputeState, project_id: str,
                 user_id: str | None = None) -> dict[str, Detail]:
    async with st.db.read() as s:
        if user_id:
            limits = await user_limits(s, st, project_id, user_id)
        else:
            limits = await project_limits(s, st, project_id)
        used = await usage(s, project_id, user_id or None)
    return {k: Detail(limits[k], used[k] if k in COUNTED else 0) for k in RESOURCES}


async def defaults(st: ComputeState) -> dict[str, int]:
    async with st.db.read() as s:
        return await class_limits(s, st)


def _inf(v: int) -> float:
    return float("inf") if v == -1 else v


async def _settable(s: AsyncSession, st: ComputeState, project_id: str,
                    user_id: str | None) -> dict[str, tuple[int, int]]:
    """(minimum, maximum) per resource, as Nova's ``get_settable_quotas``: a project's
    limit cannot go below what it uses nor below what its users' own limits add up
    to; a user's cannot go below what the user uses nor above what the project has
    left for its users (plus the user's current limit)."""
    project = await project_limits(s, st, project_id)
    rows = await s.execute(select(Quota.user_id, Quota.resource, Quota.hard_limit).where(
        Quota.project_id == project_id, Quota.user_id != ""))
    users_sum: dict[str, int] = {}
    own: dict[str, int] = {}
    for uid, resource, limit in rows:
        if limit > 0:
            users_sum[resource] = users_sum.get(resource, 0) + limit
        if uid == user_id:
            own[resource] = limit
    used = await usage(s, project_id, user_id)
    out: dict[str, tuple[int, int]] = {}
    for k in RESOURCES:
        in_use = used[k] if k in COUNTED else 0
        if user_id is None:
            out[k] = (max(users_sum.get(k, 0), in_use), -1)
            continue
        if project[k] == -1:
            out[k] = (in_use, -1)
            continue
        mine = own.get(k, 0)
        remains = project[k] - users_sum.get(k, 0) + max(mine, 0)
        out[k] = (in_use, max(remains, 0))
    return out


async def update(st: ComputeState, project_id: str, user_id: str | None,
                 values: dict[str, int], force: bool) -> dict[str, int]:
    """Set limits (all checked before any is written); the limits after.

    Raises:
        BadRequest: a limit below what is used (or its users' limits), or above
            what the project leaves a user, unless ``force``.
    """
    uid = user_id or ""
    async with st.db.write() as s:
        if not force:
            settable = await _settable(s, st, project_id, user_id)
            for key, value in values.items():
                minimum, maximum = settable[key]
                if _inf(value) < _inf(minimum):
                    raise BadRequest(f"Quota limit {value} for {key} must be greater than "
                                     f"or equal to already used and reserved {minimum}.")
                if _inf(value) > _inf(maximum):
                    raise BadRequest(f"Quota limit {value} for {key} must be less than "
                                     f"or equal to {maximum}.")
        existing = {q.resource: q for q in await s.scalars(select(Quota).where(
            Quota.project_id == project_id, Quota.user_id == uid))}
        for key, value in values.items():
            row = existing.get(key)
            if row is None:
                s.add(Quota(project_id=project_id, user_id=uid, resource=key,
                            hard_limit=value))
            else:
                row.hard_limit, row.updated_at = value, utcnow()
        await s.flush()
        if user_id:
            return await user_limits(s, st, project_id, user_id)
        return await project_limits(s, st, project_id)


async def revert(st: ComputeState, project_id: str, user_id: str | None) -> None:
    """Drop a user's limits, or a project's and all its users' (back to defaults)."""
    async with st.db.write() as s:
        q = delete(Quota).where(Quota.project_id == project_id)
        if user_id:
            q = q.where(Quota.user_id == user_id)
        await s.execute(q)


async def update_class(st: ComputeState, class_name: str,
                       values: dict[str, int]) -> dict[str, int]:
    async with st.db.write() as s:
        existing = {q.resource: q for q in await s.scalars(select(QuotaClass).where(
            QuotaClass.class_name == class_name))}
        for key, value in values.items():
            row = existing.get(key)
            if row is None:
                s.add(QuotaClass(class_name=class_name, resource=key, hard_limit=value))
            else:
                row.hard_limit, row.updated_at = value, utcnow()
        await s.flush()
        return await class_limits(s, st, class_name)


def visible(values: dict[str, Any], hidden: tuple[str, ...]) -> dict[str, Any]:
    """Nova's resources in its order, without what the microversion hides."""
    return {k: values[k] for k in RESOURCES if k in values and k not in hidden}
