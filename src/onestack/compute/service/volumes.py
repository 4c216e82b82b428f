"""Volumes as compute sees them: the block storage service's volumes, attached
to servers through ``/servers/{id}/os-volume_attachments``.

OneStack has no block storage service yet, so a cloud holds no volume and no
server has a volume attached: every attachment list is empty, and every request
naming a volume gets what Nova answers for a volume that does not exist, after
the checks Nova makes first (the server's lock and state for an attach). The
API's shape, its validation and its policies are in place for the day the block
storage service lands; then ``find_volume`` asks it and the attachments become
block device mappings.
"""

from __future__ import annotations

from typing import NoReturn

from onestack.compute.models import Instance
from onestack.compute.service import servers as svc
from onestack.compute.service.actions import (
    ACTIVE,
    PAUSED,
    RESIZED,
    SHELVED,
    SHELVED_OFFLOADED,
    STOPPED,
)
from onestack.core.errors import NotFound

# Nova's compute API allows an attach in these vm states (and no task under way)
ATTACH_VM_STATES = (ACTIVE, PAUSED, STOPPED, RESIZED, SHELVED, SHELVED_OFFLOADED)


def volume_not_found(volume_id: str) -> NotFound:
    return NotFound(f"Volume {volume_id} could not be found.")


def not_attached(server_id: str, volume_id: str) -> NotFound:
    return NotFound(f"Instance {server_id} is not attached to volume {volume_id}")


def no_mapping(volume_id: str) -> NotFound:
    return NotFound(f"No volume Block Device Mapping with id {volume_id}.")


def attachments(inst: Instance) -> list[dict[str, object]]:
    """The server's volume attachments: none, with no block storage service."""
    return []


async def find_volume(volume_id: str) -> NoReturn:
    """The volume ``volume_id`` as the block storage service shows it; with no
    block storage service there is none.

    Raises:
        NotFound.
    """
    raise volume_not_found(volume_id)


def check_attach(inst: Instance, caller: svc.Caller) -> None:
    """Nova's check_instance_lock and check_instance_state for attach_volume.

    Raises:
        Conflict.
    """
    if inst.locked and not caller.is_admin:
        raise svc.locked(inst)
    if inst.vm_state not in ATTACH_VM_STATES:
        raise svc.invalid_state("attach_volume", inst)
    if inst.task_state is not None:
        raise svc.invalid_state("attach_volume", inst, "task_state")
