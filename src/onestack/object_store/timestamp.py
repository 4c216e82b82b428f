"""Swift's ``X-Timestamp``: seconds since the epoch with five decimals.

The normal form is 16 characters, zero padded (``1700000000.12345``), so file
names sort in time order; we still compare parsed values, never strings. Values
are kept as integer ticks of 10 microseconds so that equality is exact.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

TICKS_PER_SECOND = 100_000
_PATTERN = re.compile(r"^(\d{1,10})(?:\.(\d{1,5}))?$")


@dataclass(frozen=True, order=True)
class Timestamp:
    """A point in time as Swift names object versions; ``str()`` gives the normal form."""

    ticks: int

    @classmethod
    def now(cls) -> Timestamp:
        return cls(time.time_ns() // (1_000_000_000 // TICKS_PER_SECOND))

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        """Read ``1700000000.12345`` (fewer decimals, or none, are accepted).

        Raises:
            ValueError: ``text`` is not a timestamp.
        """
        match = _PATTERN.match(text)
        if not match:
            raise ValueError(f"not a timestamp: {text!r}")
        seconds, fraction = match.group(1), (match.group(2) or "").ljust(5, "0")
        return cls(int(seconds) * TICKS_PER_SECOND + int(fraction))

    @classmethod
    def from_float(cls, seconds: float) -> Timestamp:
        return cls(round(seconds * TICKS_PER_SECOND))

    @property
    def normal(self) -> str:
        seconds, fraction = divmod(self.ticks, TICKS_PER_SECOND)
        return f"{seconds:010d}.{fraction:05d}"

    def __float__(self) -> float:
        return self.ticks / TICKS_PER_SECOND

    def __str__(self) -> str:
        return self.normal
