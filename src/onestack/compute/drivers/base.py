"""The contract between the compute service and a hypervisor.

Every method is async and **idempotent**: the durable tasks that call them run at
least once, so a method may be called again for a step that already happened
(``spawn`` of a guest that runs, ``destroy`` of one that is gone) and must then
succeed without doing it twice. Methods take an ``InstanceSpec`` (everything a
driver needs, no database rows) and identify guests by the instance's uuid, so a
driver keeps no state the database does not also have; a QEMU driver finds its
guest again after a restart from its files and process.

Power states are Nova's numbers (``power_state`` in the API).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

NOSTATE = 0
RUNNING = 1
PAUSED = 3
SHUTDOWN = 4
CRASHED = 6
SUSPENDED = 7


class DriverError(Exception):
    """A hypervisor operation failed; the message is shown in the server's fault."""


class GuestNotFound(DriverError):
    """No guest exists for that instance."""


@dataclass(frozen=True)
class Inventory:
    vcpus: int
    memory_mb: int
    local_gb: int
    hypervisor_type: str


@dataclass(frozen=True)
class InstanceSpec:
    uuid: str
    name: str  # the hypervisor's name for the guest (instance-0000000a)
    vcpus: int
    memory_mb: int
    root_gb: int
    ephemeral_gb: int = 0
    image: dict[str, Any] = field(default_factory=dict)
    user_data: str | None = None
    key_data: str | None = None
    ports: tuple[dict[str, Any], ...] = ()  # id, mac_address, fixed_ips, network_id
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GuestInfo:
    power_state: int


class Driver(abc.ABC):
    """A hypervisor on this host."""

    name: str = "base"

    async def start(self) -> None:
        """Prepare the host (connect, find running guests)."""

    async def stop(self) -> None:
        """Release what ``start`` took; guests keep running."""

    @abc.abstractmethod
    async def inventory(self) -> Inventory:
        """What this host offers before allocation ratios."""

    @abc.abstractmethod
    async def spawn(self, spec: InstanceSpec) -> None:
        """Create and start the guest; a guest that exists already is left running."""

    @abc.abstractmethod
    async def destroy(self, uuid: str) -> None:
        """Stop the guest and remove its disks; nothing to do if it is gone."""

    @abc.abstractmethod
    async def power_off(self, uuid: str) -> None:
        """Stop the guest (it keeps its disks). Raises: GuestNotFound."""

    @abc.abstractmethod
    async def power_on(self, uuid: str) -> None:
        """Start a stopped guest. Raises: GuestNotFound."""

    @abc.abstractmethod
    async def reboot(self, uuid: str, hard: bool) -> None:
        """Restart the guest (soft: ask it; hard: reset). Raises: GuestNotFound."""

    @abc.abstractmethod
    async def pause(self, uuid: str) -> None:
        """Freeze the guest in memory. Raises: GuestNotFound."""

    @abc.abstractmethod
    async def unpause(self, uuid: str) -> None:
        """Raises: GuestNotFound."""

    @abc.abstractmethod
    async def get_info(self, uuid: str) -> GuestInfo:
        """The guest's power state. Raises: GuestNotFound."""

    @abc.abstractmethod
    async def console_output(self, uuid: str) -> str:
        """The guest's serial console log so far. Raises: GuestNotFound."""
