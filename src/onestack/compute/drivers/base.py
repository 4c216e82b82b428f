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
from pathlib import Path
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
    # the config drive's files (path inside it -> content) as the compute service
    # renders them (service/metadata.py); None: the guest gets no config drive
    # from the service (a driver may still make one from the spec alone)
    config_drive_files: dict[str, bytes] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class GuestInfo:
    power_state: int


@dataclass(frozen=True)
class VncConsole:
    """Where a guest's VNC server is (Nova's ``ConsoleVNC``): ``host``/``port`` and
    ``internal_access_path`` as the console auth tokens show them; ``socket`` the
    unix socket the console proxy connects to (None: nothing to connect to)."""

    host: str
    port: int
    internal_access_path: str | None = None
    socket: str | None = None


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

    async def vnc_console(self, uuid: str) -> VncConsole:
        """The guest's VNC server (api/consoles.py). Raises: GuestNotFound,
        NotImplementedError (a driver without consoles: Nova's 501)."""
        raise NotImplementedError

    # -- the actions beyond power (service/actions.py) -------------------------------
    #
    # Each may be called again after a crash part-way: it must then finish the
    # job (or find it done) rather than fail or do it twice.

    snapshot_disk_format: str = "qcow2"
    """The disk format ``snapshot`` writes (the image record says it)."""

    @abc.abstractmethod
    async def suspend(self, uuid: str) -> None:
        """Stop the guest's execution so that ``resume`` continues it.
        Raises: GuestNotFound."""

    @abc.abstractmethod
    async def resume(self, uuid: str) -> None:
        """Raises: GuestNotFound."""

    @abc.abstractmethod
    async def rescue(self, spec: InstanceSpec, rescue_image: dict[str, Any]) -> None:
        """Restart the guest booting ``rescue_image`` (a dict from the image API),
        its own root disk attached as a second disk. Raises: GuestNotFound."""

    @abc.abstractmethod
    async def unrescue(self, uuid: str) -> None:
        """Leave rescue: the guest boots its own disk again, running.
        Raises: GuestNotFound."""

    @abc.abstractmethod
    async def resize(self, spec: InstanceSpec) -> None:
        """Give the guest the new flavor of ``spec`` (memory, vcpus, a larger root
        disk), keeping what ``revert_resize`` needs; a running guest is restarted,
        a stopped one stays stopped. Raises: GuestNotFound."""

    @abc.abstractmethod
    async def confirm_resize(self, uuid: str) -> None:
        """Drop what ``resize`` kept for a revert; nothing to do if it is gone."""

    @abc.abstractmethod
    async def revert_resize(self, spec: InstanceSpec) -> None:
        """Put back the guest as it was before ``resize`` (``spec`` has the old
        flavor); the guest runs afterwards. Raises: GuestNotFound."""

    async def rebuild(self, spec: InstanceSpec) -> None:
        """Replace the guest's disks with a fresh copy of ``spec.image`` and start
        it: the guest is destroyed and spawned again."""
        await self.destroy(spec.uuid)
        await self.spawn(spec)

    @abc.abstractmethod
    async def snapshot(self, uuid: str, dest: Path) -> None:
        """Write the guest's root disk, as a standalone image in
        ``snapshot_disk_format``, to ``dest``. Raises: GuestNotFound."""

    # -- the base-image cache (a driver with local disks) ----------------------------

    has_image_cache: bool = False
    """Whether the driver keeps images on this host: the compute service then
    starts ``cache_image`` as soon as a build is scheduled here, and runs
    ``prune_base_images`` every ``[compute] image_cache_manager_interval``."""

    async def cache_image(self, image: dict[str, Any]) -> None:
        """Have ``image`` (a dict from the image API) in the cache, fetching it if
        it is not there: what ``spawn`` would do first. Raises: DriverError."""

    async def prune_base_images(self, min_age: float = 86400.0,
                                now: float | None = None) -> list[Path]:
        """Remove the cached images no guest uses that were last used at least
        ``min_age`` seconds before ``now``; the files removed."""
        return []

    # -- interfaces (service/interfaces.py) ------------------------------------------

    async def attach_interface(self, spec: InstanceSpec, port: dict[str, Any]) -> None:
        """Plug a NIC for ``port`` (a ``network_info`` entry: ``port_id``,
        ``mac_address`` ...) into the guest: hot-plugged into a running or paused
        guest, and kept for its next start (a stopped guest only gets it then).
        A NIC already there is left alone. Raises: GuestNotFound, DriverError."""
        raise DriverError(f"the {self.name} driver cannot attach interfaces")

    async def detach_interface(self, uuid: str, port: dict[str, Any]) -> None:
        """Take the NIC of ``port`` out of the guest, now and for its next start;
        nothing to do if it is not there. Raises: DriverError (the guest did not
        let it go)."""
        raise DriverError(f"the {self.name} driver cannot detach interfaces")
