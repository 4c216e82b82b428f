"""A server's metadata (``/servers/{id}/metadata``) and tags (``/servers/{id}/tags``).

Both live on the instance row (JSON columns). Changes follow Nova's checks:
metadata may change only while the server is active, paused, suspended or
stopped with no task under way, and not while it is locked (unless by an
admin), within the ``metadata_items`` quota; tags may change in those states
too (Nova's tag states, shelved included), at most 50 per server.
"""

from __future__ import annotations

from sqlalchemy import select

from onestack.compute.models import Instance, utcnow
from onestack.compute.service import quotas
from onestack.compute.service import servers as srv
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest, Conflict, Forbidden, NotFound

METADATA_STATES = (srv.ACTIVE, srv.PAUSED, "suspended", srv.STOPPED)
TAG_STATES = (srv.ACTIVE, srv.PAUSED, "suspended", srv.STOPPED, "shelved",
              "shelved_offloaded")
MAX_TAGS = 50


def _conflict(action: str, inst: Instance, attr: str, value: str | None) -> Conflict:
    return Conflict(f"Cannot '{action}' instance {inst.uuid} while it is in {attr} {value}")


async def _load(st: ComputeState, server_id: str) -> Instance:
    async with st.db.read() as s:
        inst = await s.scalar(select(Instance).where(Instance.uuid == server_id,
                                                     Instance.deleted.is_(False)))
    if inst is None:
        raise srv.not_found(server_id)
    found: Instance = inst
    return found


# -- metadata ------------------------------------------------------------------------------

def item_not_found() -> NotFound:
    return NotFound("Metadata item was not found")


async def get_metadata(st: ComputeState, server_id: str) -> dict[str, str]:
    return dict((await _load(st, server_id)).metadata_ or {})


async def change_metadata(st: ComputeState, server_id: str, *, is_admin: bool,
                          action: str, update: dict[str, str] | None = None,
                          replace: bool = False, delete_key: str | None = None) -> dict[str, str]:
    """Merge ``update`` (or replace everything with it), or delete one key, in one
    transaction; the metadata afterwards.

    Raises:
        NotFound (server, or the key to delete); Conflict: locked (non-admins) or
        in a state that forbids it; Forbidden: over the metadata_items quota.
    """
    if delete_key is None:  # the identity service's limits, before the transaction
        async with st.db.read() as s:
            owner = await s.scalar(select(Instance.project_id).where(
                Instance.uuid == server_id))
        if owner is not None:
            await quotas.prefetch(st, owner)
    async with st.db.write() as s:
        inst = await s.scalar(select(Instance).where(Instance.uuid == server_id,
                                                     Instance.deleted.is_(False)))
        if inst is None:
            raise srv.not_found(server_id)
        if inst.locked and not is_admin:
            raise srv.locked(inst)
        if inst.vm_state not in METADATA_STATES:
            raise _conflict(action, inst, "vm_state", inst.vm_state)
        if inst.task_state is not None:
            raise _conflict(action, inst, "task_state", inst.task_state)
        current = dict(inst.metadata_ or {})
        if delete_key is not None:
            if delete_key not in current:
                raise item_not_found()
            del current[delete_key]
        else:
            current = dict(update or {}) if replace else {**current, **(update or {})}
            allowed = (await quotas.project_limits(s, st, inst.project_id))["metadata_items"]
            if 0 <= allowed < len(current):
                raise Forbidden(f"Maximum number of metadata items exceeds {allowed}")
        inst.metadata_ = current
        inst.updated_at = utcnow()
    return current


# -- tags ----------------------------------------------------------------------------------

async def get_tags(st: ComputeState, server_id: str) -> list[str]:
    return list((await _load(st, server_id)).tags or [])


async def change_tags(st: ComputeState, server_id: str, action: str, *,
                      replace: list[str] | None = None, add: str | None = None,
                      remove: str | None = None, clear: bool = False) -> tuple[list[str], bool]:
    """Replace, add one, remove one or clear the server's tags in one transaction;
    (the tags afterwards, whether anything changed).

    Raises:
        NotFound (server, or the tag to remove); Conflict: a state that forbids
        it; BadRequest: more than 50 tags.
    """
    async with st.db.write() as s:
        inst = await s.scalar(select(Instance).where(Instance.uuid == server_id,
                                                     Instance.deleted.is_(False)))
        if inst is None:
            raise srv.not_found(server_id)
        if inst.vm_state not in TAG_STATES:
            raise _conflict(action, inst, "vm_state", inst.vm_state)
        tags = list(inst.tags or [])
        before = list(tags)
        if replace is not None:
            tags = list(dict.fromkeys(replace))
        elif add is not None:
            if add not in tags:
                if len(tags) >= MAX_TAGS:
                    raise BadRequest(f"The number of tags exceeded the per-server limit "
                                     f"{MAX_TAGS}")
                tags.append(add)
        elif remove is not None:
            if remove not in tags:
                raise NotFound(f"Instance {server_id} has no tag '{remove}'")
            tags.remove(remove)
        elif clear:
            tags = []
        changed = tags != before
        inst.tags = tags
        if changed:
            inst.updated_at = utcnow()
    return tags, changed
