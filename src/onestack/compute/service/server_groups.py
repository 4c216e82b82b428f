"""Server groups: create (within the ``server_groups`` quota), list, show, delete,
and membership: a server booted with the scheduler hint ``group`` joins the group
in the transaction that creates it (within ``server_group_members``), the
scheduler's group filters and weighers read the hosts of the other members
(``scheduler.py``), and a deleted server leaves its group.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.compute import errors
from onestack.compute.models import Instance, ServerGroup, ServerGroupMember
from onestack.compute.service import quotas
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest, Forbidden, NotFound

AFFINITY, ANTI_AFFINITY = "affinity", "anti-affinity"
SOFT_AFFINITY, SOFT_ANTI_AFFINITY = "soft-affinity", "soft-anti-affinity"
POLICIES = (ANTI_AFFINITY, AFFINITY, SOFT_ANTI_AFFINITY, SOFT_AFFINITY)
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                     r"[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def not_found(group_id: str) -> NotFound:
    return NotFound(f"Instance group {group_id} could not be found.")


@dataclass
class GroupView:
    group: ServerGroup
    members: list[str]


async def _members(s: AsyncSession, group_ids: list[int]) -> dict[int, list[str]]:
    """The non-deleted members of each group, oldest first."""
    m = ServerGroupMember
    rows = await s.execute(
        select(m.group_id, m.instance_uuid)
        .join(Instance, Instance.uuid == m.instance_uuid)
        .where(m.group_id.in_(group_ids), Instance.deleted.is_(False))
        .order_by(m.id))
    out: dict[int, list[str]] = {gid: [] for gid in group_ids}
    for gid, inst in rows:
        out[gid].append(inst)
    return out


async def create(st: ComputeState, project_id: str, user_id: str, name: str, policy: str,
                 rules: dict[str, Any]) -> GroupView:
    """Raises: Forbidden (Nova's message) over the ``server_groups`` quota of the
    project or, when the user has one of their own, the user's."""
    over = Forbidden("Quota exceeded, too many server groups.")
    await quotas.prefetch(st, project_id)  # the identity service's limits
    async with st.db.write() as s:
        for uid in (None, user_id):
            if uid is not None and not await quotas.has_user_limits(s, project_id, uid):
                continue
            limit = await quotas.effective_limit(s, st, project_id, uid, "server_groups")
            used = (await quotas.usage(s, project_id, uid))["server_groups"]
            if not quotas.within(used, 1, limit):
                raise over
        group = ServerGroup(uuid=str(uuidlib.uuid4()), name=name, project_id=project_id,
                            user_id=user_id, policy=policy, rules=rules)
        s.add(group)
        await s.flush()
        return GroupView(group, [])


async def list_groups(st: ComputeState, project_id: str | None) -> list[GroupView]:
    """A project's groups (every project's with None), oldest first."""
    q = select(ServerGroup).order_by(ServerGroup.id)
    if project_id is not None:
        q = q.where(ServerGroup.project_id == project_id)
    async with st.db.read() as s:
        groups = list(await s.scalars(q))
        members = await _members(s, [g.id for g in groups])
    return [GroupView(g, members[g.id]) for g in groups]


async def get(st: ComputeState, group_id: str) -> GroupView:
    """Raises: NotFound."""
    async with st.db.read() as s:
        group = await s.scalar(select(ServerGroup).where(ServerGroup.uuid == group_id))
        if group is None:
            raise not_found(group_id)
        return GroupView(group, (await _members(s, [group.id]))[group.id])


async def delete_group(st: ComputeState, group_id: str) -> None:
    """Raises: NotFound."""
    async with st.db.write() as s:
        group = await s.scalar(select(ServerGroup).where(ServerGroup.uuid == group_id))
        if group is None:
            raise not_found(group_id)
        await s.execute(delete(ServerGroupMember).where(ServerGroupMember.group_id == group.id))
        await s.delete(group)


# -- membership ------------------------------------------------------------------------

def hint_group_id(hints: dict[str, Any]) -> str | None:
    """The ``group`` scheduler hint (a uuid, or a list holding one), as Nova's schema.

    Raises:
        BadRequest.
    """
    value = hints.get("group")
    if value is None:
        return None
    ids = value if isinstance(value, list) else [value]
    if not ids or not all(isinstance(v, str) and UUID_RE.match(v) for v in ids):
        raise errors.invalid_field("os:scheduler_hints/group", value,
                                   f"{value!r} is not valid under any of the given schemas")
    return str(ids[0])


async def find_for_boot(st: ComputeState, group_id: str, project_id: str,
                        is_admin: bool) -> ServerGroup:
    """The group a new server asks for; another project's is not found (but for
    admins).

    Raises:
        BadRequest: Nova's "Instance group ... could not be found."
    """
    async with st.db.read() as s:
        group = await s.scalar(select(ServerGroup).where(ServerGroup.uuid == group_id))
    if group is None or (group.project_id != project_id and not is_admin):
        raise BadRequest(not_found(group_id).message)
    return group


async def add_members(s: AsyncSession, st: ComputeState, group_id: str, user_id: str,
                      instance_uuids: list[str]) -> None:
    """Put new servers in a group, in the caller's transaction (the one creating
    them), within the ``server_group_members`` quota: members of the group owned by
    the user, as Nova counts them.

    Raises:
        BadRequest: the group is gone; Forbidden: over the quota.
    """
    group = await s.scalar(select(ServerGroup).where(ServerGroup.uuid == group_id))
    if group is None:
        raise BadRequest(not_found(group_id).message)
    m = ServerGroupMember
    used = int(await s.scalar(
        select(func.count(m.id)).join(Instance, Instance.uuid == m.instance_uuid)
        .where(m.group_id == group.id, Instance.user_id == user_id,
               Instance.deleted.is_(False))) or 0)
    limit = await quotas.effective_limit(s, st, group.project_id, user_id,
                                         "server_group_members")
    if not quotas.within(used, len(instance_uuids), limit):
        raise Forbidden("Quota exceeded, too many servers in group")
    for inst in instance_uuids:
        s.add(ServerGroupMember(group_id=group.id, instance_uuid=inst))
    await s.flush()


async def remove_member(s: AsyncSession, instance_uuid: str) -> None:
    """A deleted server leaves its group (caller's transaction; no-op if none)."""
    await s.execute(delete(ServerGroupMember).where(
        ServerGroupMember.instance_uuid == instance_uuid))


async def groups_of(s: AsyncSession, instance_uuids: list[str]) -> dict[str, str]:
    """Server uuid -> the uuid of its group (2.71's ``server_groups``)."""
    rows = await s.execute(
        select(ServerGroupMember.instance_uuid, ServerGroup.uuid)
        .join(ServerGroup, ServerGroup.id == ServerGroupMember.group_id)
        .where(ServerGroupMember.instance_uuid.in_(instance_uuids)))
    return {inst: group for inst, group in rows}
