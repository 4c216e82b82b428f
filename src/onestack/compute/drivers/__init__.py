"""Hypervisor drivers: ``base.Driver`` is the contract, ``make_driver`` picks one."""

from __future__ import annotations

from onestack.compute.drivers.base import Driver
from onestack.compute.drivers.fake import FakeDriver

DRIVERS = {"fake": FakeDriver}


def make_driver(name: str) -> Driver:
    """Raises: ValueError for a driver this build does not have."""
    try:
        return DRIVERS[name]()
    except KeyError:
        raise ValueError(f"unknown compute driver {name!r} (have: {', '.join(DRIVERS)})") from None
