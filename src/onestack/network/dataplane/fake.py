"""Drivers that touch nothing: for API tests and hosts that cannot run ``linux``."""

from __future__ import annotations

from onestack.network.dataplane.base import Driver
from onestack.network.dataplane.model import (
    DEVICE_OWNER_FLOATINGIP,
    ConvergeResult,
    DesiredState,
)


class FakeDriver(Driver):
    """Records the states it is given and reports every wired port active."""

    name = "fake"

    def __init__(self) -> None:
        self.state: DesiredState | None = None
        self.converges = 0
        self.torn_down = False

    async def converge(self, state: DesiredState) -> ConvergeResult:
        self.state = state
        self.converges += 1
        self.torn_down = False
        ports = {p.id for p in state.ports.values() if p.device_owner != DEVICE_OWNER_FLOATINGIP}
        for router in state.routers.values():
            ports.update(p.id for p in router.interfaces)
            if router.gateway_port is not None:
                ports.add(router.gateway_port.id)
        return ConvergeResult(active_ports=frozenset(ports))

    async def teardown(self) -> None:
        self.state = None
        self.torn_down = True

    def status(self) -> str:
        if self.state is None:
            return "data plane: fake (no kernel changes)"
        return (f"data plane: fake (no kernel changes): {len(self.state.networks)} networks, "
                f"{len(self.state.ports)} ports, {len(self.state.routers)} routers")


class OffDriver(FakeDriver):
    """What ``auto`` picks when this host cannot run the Linux data plane: the API
    works and ports go ACTIVE, but nothing carries packets."""

    name = "off"

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

    def status(self) -> str:
        return f"data plane: off ({self.reason}); networks exist in the API only"
