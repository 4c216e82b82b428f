"""A driver with no hypervisor: guests are entries in a dictionary, every
operation is instant. For API tests and for running the API without VMs.

Its guests live in this process only: after a restart, a guest the database
knows comes back running at its first use."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from onestack.compute.drivers.base import (
    PAUSED,
    RUNNING,
    SHUTDOWN,
    SUSPENDED,
    Driver,
    GuestInfo,
    InstanceSpec,
    Inventory,
    VncConsole,
)


@dataclass
class FakeGuest:
    spec: InstanceSpec
    power_state: int = RUNNING
    log: list[str] = field(default_factory=list)
    rescue_image: str | None = None  # the image a rescued guest boots
    old_spec: InstanceSpec | None = None  # kept by resize for a revert


class FakeDriver(Driver):
    name = "fake"
    snapshot_disk_format = "raw"
    PLACEHOLDER_DISK = b"\0" * 1024  # what a snapshot uploads

    def __init__(self, vcpus: int = 1000, memory_mb: int = 800_000, local_gb: int = 600_000):
        self.vcpus, self.memory_mb, self.local_gb = vcpus, memory_mb, local_gb
        self.guests: dict[str, FakeGuest] = {}

    async def inventory(self) -> Inventory:
        return Inventory(self.vcpus, self.memory_mb, self.local_gb, "fake")

    def _guest(self, uuid: str) -> FakeGuest:
        """The guest; one the process lost by restarting (the database says it
        exists) comes back running, as a real hypervisor's would."""
        guest = self.guests.get(uuid)
        if guest is None:
            guest = self.guests[uuid] = FakeGuest(InstanceSpec(uuid, uuid, 0, 0, 0))
        return guest

    async def spawn(self, spec: InstanceSpec) -> None:
        if spec.uuid in self.guests:
            return
        self.guests[spec.uuid] = FakeGuest(spec, log=[
            f"[    0.000000] Linux version 6.1.0-fake ({spec.name})",
            "[    0.100000] Booting the fake kernel",
            f"{spec.name} login: ",
        ])

    async def destroy(self, uuid: str) -> None:
        self.guests.pop(uuid, None)

    async def vnc_console(self, uuid: str) -> VncConsole:
        """Nova's fake driver's answer: a console on a host that does not exist
        (the proxy has nothing to connect to)."""
        self._guest(uuid)
        return VncConsole(host="fakevncconsole.com", port=6969)

    async def power_off(self, uuid: str) -> None:
        g = self._guest(uuid)
        g.power_state = SHUTDOWN
        g.log.append("[  100.000000] reboot: Power down")

    async def power_on(self, uuid: str) -> None:
        g = self._guest(uuid)
        g.power_state = RUNNING
        g.log.append("[    0.000000] Linux version 6.1.0-fake")

    async def reboot(self, uuid: str, hard: bool) -> None:
        g = self._guest(uuid)
        g.power_state = RUNNING
        g.log.append("[    0.000000] reboot: " + ("reset" if hard else "Restarting system"))

    async def pause(self, uuid: str) -> None:
        self._guest(uuid).power_state = PAUSED

    async def unpause(self, uuid: str) -> None:
        self._guest(uuid).power_state = RUNNING

    async def get_info(self, uuid: str) -> GuestInfo:
        return GuestInfo(self._guest(uuid).power_state)

    async def console_output(self, uuid: str) -> str:
        return "\n".join(self._guest(uuid).log) + "\n"

    async def suspend(self, uuid: str) -> None:
        self._guest(uuid).power_state = SUSPENDED

    async def resume(self, uuid: str) -> None:
        self._guest(uuid).power_state = RUNNING

    async def rescue(self, spec: InstanceSpec, rescue_image: dict[str, Any]) -> None:
        g = self._guest(spec.uuid)
        g.rescue_image, g.power_state = str(rescue_image.get("id")), RUNNING
        g.log.append(f"[    0.000000] rescue: booting image {g.rescue_image}")

    async def unrescue(self, uuid: str) -> None:
        g = self._guest(uuid)
        g.rescue_image, g.power_state = None, RUNNING

    async def resize(self, spec: InstanceSpec) -> None:
        g = self._guest(spec.uuid)
        if g.old_spec is None:
            g.old_spec = g.spec
        g.spec = replace(spec)

    async def confirm_resize(self, uuid: str) -> None:
        if uuid in self.guests:
            self.guests[uuid].old_spec = None

    async def revert_resize(self, spec: InstanceSpec) -> None:
        g = self._guest(spec.uuid)
        g.spec, g.old_spec, g.power_state = spec, None, RUNNING

    async def snapshot(self, uuid: str, dest: Path) -> None:
        self._guest(uuid)
        dest.write_bytes(self.PLACEHOLDER_DISK)

    async def attach_interface(self, spec: InstanceSpec, port: dict[str, Any]) -> None:
        g = self._guest(spec.uuid)
        pid = port.get("port_id") or port.get("id")
        if not any((p.get("port_id") or p.get("id")) == pid for p in g.spec.ports):
            g.spec = replace(g.spec, ports=(*g.spec.ports, dict(port)))

    async def detach_interface(self, uuid: str, port: dict[str, Any]) -> None:
        g = self._guest(uuid)
        pid = port.get("port_id") or port.get("id")
        g.spec = replace(g.spec, ports=tuple(p for p in g.spec.ports
                                             if (p.get("port_id") or p.get("id")) != pid))
