"""Migration records (Nova's ``migrations`` table) and their listing, and the
cold migration (the ``migrate`` server action).

A resize records one (``migration_type`` ``resize``): OneStack resizes in place,
so source and destination compute and node are the server's own host. The
resize task moves its ``status`` as Nova's compute manager does: ``migrating``
when the claim has moved to the new flavor, ``post-migrating`` once the driver
has resized the guest, ``finished`` when the server waits in VERIFY_RESIZE;
then ``confirmed`` or ``reverted``. A resize that finds no room, or whose task
fails for good, leaves ``error``. There is no live migration, so no record is
ever an in-progress live migration.

A cold migration is, as in Nova, a resize that keeps the flavor (its record's
``migration_type`` is ``migration``, Nova's rule: same flavor id). OneStack
cannot carry a guest to another host yet, so it migrates only where Nova's
driver would migrate to the same host: the fake driver (Nova's declares
``supports_migrate_to_same_host``) runs the resize task in place, with the
statuses above and confirm/revert; with QEMU (Nova's libvirt refuses the same
host) there is no valid host, and, as Nova's conductor does, the attempt leaves
an ``error`` record, a fault and a ``migrate`` action whose
``conductor_migrate_server`` event failed.
"""

from __future__ import annotations

import uuid as uuid_mod
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.compute.drivers.fake import FakeDriver
from onestack.compute.models import (
    ComputeNode,
    Flavor,
    Instance,
    Migration,
    utcnow,
)
from onestack.compute.service import servers as servers_svc
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest

RESIZE = "resize"
MIGRATION = "migration"  # a cold migration (same flavor)
# a record in one of these is over: a later status change leaves it alone
DONE = ("confirmed", "reverted", "error", "failed", "completed", "cancelled")


async def _flavor_id(s: AsyncSession, flavor: dict[str, Any] | None) -> int | None:
    """The flavor's row id (Nova's ``instance_type_id``); None once it is deleted."""
    if not flavor:
        return None
    found: int | None = await s.scalar(
        select(Flavor.id).where(Flavor.flavorid == flavor.get("flavorid")))
    return found


def migration_type(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """Nova's rule: the same flavor id is a cold migration, another a resize."""
    return MIGRATION if old and old.get("flavorid") == new.get("flavorid") else RESIZE


async def record_resize(s: AsyncSession, inst: Instance, old: dict[str, Any] | None,
                        new: dict[str, Any], status: str) -> Migration:
    """In the caller's transaction, a resize's record from ``old`` to ``new`` (a
    cold migration's when they are the same flavor)."""
    now = utcnow()
    row = Migration(
        uuid=str(uuid_mod.uuid4()), instance_uuid=inst.uuid, user_id=inst.user_id,
        project_id=inst.project_id, source_compute=inst.host, dest_compute=inst.host,
        source_node=inst.node, dest_node=inst.node, dest_host=None,
        old_instance_type_id=await _flavor_id(s, old),
        new_instance_type_id=await _flavor_id(s, new), status=status,
        migration_type=migration_type(old, new), hidden=False, created_at=now,
        updated_at=now)
    s.add(row)
    await s.flush()
    return row


async def set_status(s: AsyncSession, instance_uuid: str, status: str,
                     only_from: Iterable[str] | None = None) -> bool:
    """In the caller's transaction, move the server's newest unfinished record to
    ``status`` (only from one of ``only_from`` when given); False if there is none."""
    m = Migration
    query = select(m.id).where(m.instance_uuid == instance_uuid, m.status.not_in(DONE))
    if only_from is not None:
        query = query.where(m.status.in_(tuple(only_from)))
    ident = await s.scalar(query.order_by(m.id.desc()).limit(1))
    if ident is None:
        return False
    await s.execute(update(m).where(m.id == ident).values(status=status, updated_at=utcnow()))
    return True


@dataclass
class Filters:
    """The listing's filters, as Nova's ``migration_get_all_by_filters`` reads them."""

    host: str | None = None  # source or destination compute
    source_compute: str | None = None
    status: str | None = None
    instance_uuid: str | None = None
    migration_type: str | None = None
    hidden: bool | None = None
    user_id: str | None = None
    project_id: str | None = None
    changes_since: datetime | None = None
    changes_before: datetime | None = None


class MarkerNotFound(BadRequest):
    def __init__(self, marker: str) -> None:
        super().__init__(f"Marker {marker} could not be found.")


async def list_migrations(st: ComputeState, f: Filters, *, sorted_: bool = False,
                          limit: int | None = None, marker: str | None = None
                          ) -> list[Migration]:
    """The records ``f`` selects; ``sorted_``: newest first (``created_at``, then
    ``id``, both descending) and paged after the record whose uuid is ``marker``.

    Raises:
        MarkerNotFound.
    """
    m = Migration
    q = select(m)
    if f.host is not None:
        q = q.where(or_(m.source_compute == f.host, m.dest_compute == f.host))
    if f.source_compute is not None:
        q = q.where(m.source_compute == f.source_compute)
    if f.status is not None:
        q = q.where(m.status == f.status)
    if f.instance_uuid is not None:
        q = q.where(m.instance_uuid == f.instance_uuid)
    if f.migration_type is not None:
        q = q.where(m.migration_type == f.migration_type)
    if f.hidden is not None:
        q = q.where(m.hidden.is_(f.hidden))
    if f.user_id is not None:
        q = q.where(m.user_id == f.user_id)
    if f.project_id is not None:
        q = q.where(m.project_id == f.project_id)
    if f.changes_since is not None:
        q = q.where(m.updated_at >= f.changes_since)
    if f.changes_before is not None:
        q = q.where(m.updated_at <= f.changes_before)
    async with st.db.read() as s:
        if sorted_ and marker is not None:
            ref = await s.scalar(select(m).where(m.uuid == marker))
            if ref is None:
                raise MarkerNotFound(marker)
            q = q.where(or_(m.created_at < ref.created_at,
                            (m.created_at == ref.created_at) & (m.id < ref.id)))
        if sorted_:
            q = q.order_by(m.created_at.desc(), m.id.desc())
        else:
            q = q.order_by(m.id)
        if limit is not None:
            q = q.limit(limit)
        return list((await s.scalars(q)).all())


# -- cold migration (the ``migrate`` action) ----------------------------------------------

MIGRATE_EVENT = "conductor_migrate_server"


def migrates_in_place(st: ComputeState) -> bool:
    """Whether this cloud's driver may "migrate" a guest to its own host: Nova's
    fake driver may (``supports_migrate_to_same_host``), libvirt (QEMU here) may not."""
    return isinstance(st.driver, FakeDriver)


def no_valid_host(reason: str) -> BadRequest:
    return BadRequest(f"No valid host was found. {reason}")


async def cold_migrate(st: ComputeState, server_id: str, caller: Any,
                       host: str | None = None) -> None:
    """Nova's ``migrate``: check the server (states, lock) and the requested
    ``host`` (2.56), then start the migration, or record why none can start.

    Raises:
        NotFound; Conflict (locked, wrong state, a task under way; Nova's
        messages for ``migrate``); BadRequest: the requested host is unknown or
        the server's own (Nova's messages), or no host can take the server
        (after recording the failed attempt, as Nova's conductor does).
    """
    from onestack.compute.service import actions  # which imports this module

    async with st.db.read() as s:
        inst = await servers_svc._load(s, server_id)
        known = host is None or await s.scalar(
            select(ComputeNode.id).where(ComputeNode.host == host).limit(1)) is not None
    op = actions.OPS["resize"]
    actions._check_state(inst, replace(op, name="migrate"), caller)
    if host is not None:
        if host == inst.host:
            raise BadRequest("The target host can't be the same one.")
        if not known:
            raise BadRequest(f"Compute host {host} could not be found.")
    if host is None and migrates_in_place(st):
        await actions._begin(st, server_id, caller, "resize", action="migrate",
                             payload={"new_flavor": inst.flavor},
                             sysmeta={"old_vm_state": inst.vm_state})
        return
    where = f"the requested host {host}" if host else "another host"
    reason = (f"No valid host found for cold migrate: moving server {inst.uuid} from "
              f"{inst.host} to {where} is not supported yet (one host's guests cannot be "
              "carried to another).")
    await record_failed_migration(st, inst, caller, reason)
    raise no_valid_host(reason)


async def record_failed_migration(st: ComputeState, inst: Instance, caller: Any,
                                  reason: str) -> None:
    """What Nova's conductor leaves of a cold migration that found no host: the
    record in ``error``, the instance's fault, and the ``migrate`` action with
    its ``conductor_migrate_server`` event in error."""
    async with st.db.write() as s:
        row = await s.scalar(select(Instance).where(Instance.uuid == inst.uuid))
        if row is None:
            return
        now = utcnow()
        flavor_id = await _flavor_id(s, row.flavor)
        s.add(Migration(
            uuid=str(uuid_mod.uuid4()), instance_uuid=row.uuid,
            user_id=caller.user_id or row.user_id,  # the initiator, as Nova's conductor
            project_id=caller.project_id or row.project_id,
            source_compute=row.host, dest_compute=None,
            source_node=row.node, dest_node=None, dest_host=None,
            old_instance_type_id=flavor_id, new_instance_type_id=flavor_id,
            status="error", migration_type=MIGRATION, hidden=False, created_at=now,
            updated_at=now))
        row.fault = servers_svc._fault(500, f"No valid host was found. {reason}")
        action = await servers_svc._start_action(s, row, "migrate", caller)
        await servers_svc._event_finish(s, action.id, MIGRATE_EVENT, "Error",
                                        traceback=f"NoValidHost: {reason}")
