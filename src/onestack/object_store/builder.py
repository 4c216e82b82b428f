"""Building and rebalancing rings.

How partitions are placed (our own scheme, with Swift's goals):

1. **Targets.** Each device should hold a share of the ``partitions * replicas``
   slots proportional to its weight. Two caps come first: a device holds at most
   one replica of a partition (so at most ``partitions`` slots), and a zone holds
   at most ``ceil(replicas / zones)`` replicas of a partition, so that losing a
   zone loses as few replicas as the layout allows. Shares above a cap are
   water-filled onto the others, then rounded to integers (largest remainder).
2. **Gather.** Slots on removed devices must move. Devices above their target
   give up their surplus, preferring partitions where their zone holds more than
   one replica; a partition gives up at most one replica per rebalance (unless
   its device was removed), so two replicas never move at once and the data
   stays readable while replication catches up.
3. **Place.** Each free slot goes to the device that most wants partitions,
   among those not holding the partition, in the zone holding fewest of its
   replicas (devices below target always win over devices at target).

Nothing else moves, so adding a device moves about its target, removing one
moves what it held, and rebalancing an unchanged ring moves nothing.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from onestack.object_store.ring import Device, Ring, write_atomically

DEFAULT_REPLICAS = 3
_FREE = -1


@dataclass(frozen=True)
class RebalanceResult:
    """``moved``: slots whose device changed; ``balance``: worst device's distance from
    its weight's share, in percent (0 is perfect; zone caps can make it non-zero)."""

    moved: int
    balance: float


class RingBuilder:
    """Mutable ring state: devices and the (replica, partition) -> device table."""

    def __init__(self, part_power: int, replicas: int | None = None) -> None:
        """``replicas=None`` means ``min(3, devices with weight)``, revisited at each rebalance."""
        if not 0 <= part_power <= 24:  # 2**24 partitions is already more than any cluster needs
            raise ValueError("part_power must be within 0..24")
        if replicas is not None and replicas < 1:
            raise ValueError("replicas must be at least 1")
        self.part_power = part_power
        self.replicas_setting = replicas
        self.version = 0
        self._devices: list[Device | None] = []
        self._removed: set[int] = set()
        self._rows: list[list[int]] = []

    @property
    def partition_count(self) -> int:
        return 1 << self.part_power

    @property
    def devices(self) -> list[Device]:
        return [d for d in self._devices if d is not None and d.id not in self._removed]

    def add_device(
        self, *, host: str, port: int, device: str, weight: float = 1.0, zone: int = 1
    ) -> Device:
        if weight < 0:
            raise ValueError("weight must not be negative")
        if any((d.host, d.port, d.device) == (host, port, device) for d in self.devices):
            raise ValueError(f"device {host}:{port}/{device} is already in the ring")
        dev = Device(len(self._devices), host, port, device, float(weight), zone)
        self._devices.append(dev)
        return dev

    def remove_device(self, dev_id: int) -> None:
        """Take a device out at the next rebalance (its partitions move elsewhere)."""
        self._device(dev_id)
        self._removed.add(dev_id)

    def set_weight(self, dev_id: int, weight: float) -> None:
        """Change a weight; 0 drains the device gradually, one replica per partition per
        rebalance."""
        if weight < 0:
            raise ValueError("weight must not be negative")
        dev = self._device(dev_id)
        self._devices[dev_id] = Device(dev.id, dev.host, dev.port, dev.device, weight, dev.zone)

    def replica_count(self) -> int:
        if self.replicas_setting is not None:
            return self.replicas_setting
        return min(DEFAULT_REPLICAS, sum(1 for d in self.devices if d.weight > 0))

    def rebalance(self) -> RebalanceResult:
        """Recompute targets and move as few slots as possible (see the module doc).

        Raises:
            ValueError: fewer devices with weight than replicas.
        """
        before = [list(row) for row in self._rows]
        for dev_id in self._removed:
            self._devices[dev_id] = None
        self._removed.clear()
        replicas = self.replica_count()
        active = [d for d in self.devices if d.weight > 0]
        if len(active) < replicas or replicas == 0:
            raise ValueError(f"{replicas} replicas need at least as many devices with weight")
        self._resize(replicas)
        targets = _targets(active, self.partition_count, replicas)
        placer = _Placer(self._rows, {d.id: d for d in active}, targets, replicas)
        placer.gather()
        placer.place()
        self.version += 1
        moved = sum(
            1
            for r, row in enumerate(self._rows)
            if r < len(before)
            for p, dev_id in enumerate(row)
            if before[r][p] != dev_id
        )
        return RebalanceResult(moved=moved, balance=self._balance(active))

    def get_ring(self, *, hash_prefix: bytes = b"", hash_suffix: bytes = b"") -> Ring:
        """The ring to ship to every host.

        Raises:
            ValueError: a device was added or removed since the last rebalance.
        """
        if self._removed or not self._rows or any(_FREE in row for row in self._rows):
            raise ValueError("the ring has pending changes: rebalance first")
        return Ring(
            self.part_power,
            self._devices,
            self._rows,
            hash_prefix=hash_prefix,
            hash_suffix=hash_suffix,
            version=self.version,
        )

    def save(self, path: Path) -> None:
        """Persist the builder: the ring file plus the replica setting and pending removals."""
        data: dict[str, Any] = {
            "part_power": self.part_power,
            "version": self.version,
            "replicas_setting": self.replicas_setting,
            "devices": [None if d is None else asdict(d) for d in self._devices],
            "removed": sorted(self._removed),
            "rows": self._rows,
        }
        write_atomically(path, json.dumps(data, separators=(",", ":")).encode())

    @classmethod
    def load(cls, path: Path) -> RingBuilder:
        data = json.loads(Path(path).read_bytes())
        builder = cls(int(data["part_power"]), data["replicas_setting"])
        builder.version = int(data["version"])
        builder._devices = [None if d is None else Device.from_dict(d) for d in data["devices"]]
        builder._removed = set(data["removed"])
        builder._rows = [list(row) for row in data["rows"]]
        return builder

    def parts_by_device(self) -> dict[int, int]:
        """How many slots each device holds now."""
        counts: dict[int, int] = defaultdict(int)
        for row in self._rows:
            for dev_id in row:
                if dev_id != _FREE:
                    counts[dev_id] += 1
        return dict(counts)

    def _device(self, dev_id: int) -> Device:
        dev = self._devices[dev_id] if 0 <= dev_id < len(self._devices) else None
        if dev is None or dev_id in self._removed:
            raise KeyError(dev_id)
        return dev

    def _resize(self, replicas: int) -> None:
        del self._rows[replicas:]
        while len(self._rows) < replicas:
            self._rows.append([_FREE] * self.partition_count)
        known = {d.id for d in self.devices if d.weight > 0}
        for row in self._rows:  # slots of removed devices are free again
            for p, dev_id in enumerate(row):
                if dev_id != _FREE and dev_id not in known and self._devices[dev_id] is None:
                    row[p] = _FREE

    def _balance(self, active: list[Device]) -> float:
        counts = self.parts_by_device()
        total_weight = sum(d.weight for d in active)
        slots = self.partition_count * len(self._rows)
        worst = 0.0
        for d in active:
            ideal = slots * d.weight / total_weight
            worst = max(worst, abs(counts.get(d.id, 0) - ideal) * 100 / ideal)
        return round(worst, 2)


def _water_fill(
    weights: dict[int, float], caps: dict[int, float], total: float
) -> dict[int, float]:
    """Split ``total`` by weight, never above a cap; what a capped key cannot take goes to
    the others."""
    shares: dict[int, float] = {}
    open_keys = set(weights)
    remaining = total
    while open_keys:
        weight = sum(weights[k] for k in open_keys)
        capped = {k for k in open_keys if remaining * weights[k] / weight >= caps[k]}
        if not capped:
            for k in open_keys:
                shares[k] = remaining * weights[k] / weight
            break
        for k in capped:
            shares[k] = caps[k]
            remaining -= caps[k]
        open_keys -= capped
    return shares


def _round(shares: dict[int, float], total: int) -> dict[int, int]:
    """Integers summing to ``total``, each the floor or ceiling of its share."""
    out = {k: math.floor(v + 1e-9) for k, v in shares.items()}
    rest = total - sum(out.values())
    by_remainder = sorted(shares, key=lambda k: (-(shares[k] - out[k]), k))
    for k in by_remainder[:rest]:
        out[k] += 1
    return out


def _targets(active: list[Device], parts: int, replicas: int) -> dict[int, int]:
    """Slots each device should hold: weight shares under the device and zone caps."""
    zones: dict[int, list[Device]] = defaultdict(list)
    for d in active:
        zones[d.zone].append(d)
    per_zone = math.ceil(replicas / len(zones))
    zone_caps = {z: float(parts * min(per_zone, len(ds))) for z, ds in zones.items()}
    if sum(zone_caps.values()) < parts * replicas:
        raise ValueError("the zones cannot hold every replica")
    zone_weights = {z: sum(d.weight for d in ds) for z, ds in zones.items()}
    zone_slots = _round(_water_fill(zone_weights, zone_caps, parts * replicas), parts * replicas)
    targets: dict[int, int] = {}
    for z, ds in zones.items():
        weights = {d.id: d.weight for d in ds}
        caps = {d.id: float(parts) for d in ds}
        targets.update(_round(_water_fill(weights, caps, zone_slots[z]), zone_slots[z]))
    return targets


def _spread(partition: int, dev_id: int) -> bytes:
    """A fixed pseudo-random order, so which partitions move is deterministic yet spread."""
    return hashlib.md5(f"{partition}:{dev_id}".encode(), usedforsecurity=False).digest()[:4]


class _Placer:
    """The gather and place steps over ``rows`` (changed in place)."""

    def __init__(
        self,
        rows: list[list[int]],
        devices: dict[int, Device],
        targets: dict[int, int],
        replicas: int,
    ) -> None:
        self.rows, self.devices, self.replicas = rows, devices, replicas
        self.parts = len(rows[0])
        self.wanted = dict(targets)
        self.zone_wanted: dict[int, int] = defaultdict(int)
        for dev_id, target in targets.items():
            self.zone_wanted[devices[dev_id].zone] += target
        self.touched: set[int] = set()
        for row in rows:
            for p, dev_id in enumerate(row):
                if dev_id == _FREE:
                    self.touched.add(p)
                elif dev_id not in devices:  # weight 0 now: treat like any surplus
                    continue
                else:
                    self.wanted[dev_id] -= 1
                    self.zone_wanted[devices[dev_id].zone] -= 1

    def zone_counts(self, p: int) -> dict[int, int]:
        counts: dict[int, int] = defaultdict(int)
        for row in self.rows:
            if row[p] != _FREE and row[p] in self.devices:
                counts[self.devices[row[p]].zone] += 1
        return counts

    def gather(self) -> None:
        held: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for r, row in enumerate(self.rows):
            for p, dev_id in enumerate(row):
                if dev_id != _FREE:
                    held[dev_id].append((r, p))
        for dev_id, slots in sorted(held.items()):
            dev = self.devices.get(dev_id)
            surplus = len(slots) if dev is None else -self.wanted[dev_id]
            if surplus <= 0:
                continue

            for r, p in sorted(slots, key=lambda slot: self._priority(slot[1], dev_id)):
                if surplus == 0:
                    break
                if p in self.touched:
                    continue
                self.rows[r][p] = _FREE
                self.touched.add(p)
                surplus -= 1
                if dev is not None:
                    self.wanted[dev_id] += 1
                    self.zone_wanted[dev.zone] += 1

    def _priority(self, p: int, dev_id: int) -> tuple[bool, bytes]:
        """Which of a device's partitions to give up first: those where its zone is crowded."""
        dev = self.devices.get(dev_id)
        crowded = dev is not None and self.zone_counts(p)[dev.zone] > 1
        return (not crowded, _spread(p, dev_id))

    def place(self) -> None:
        zones: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for dev_id, dev in self.devices.items():
            zones[dev.zone].append((-self.wanted[dev_id], dev_id))
        for heap in zones.values():
            heapq.heapify(heap)
        for p in sorted(self.touched):
            for row in self.rows:
                if row[p] == _FREE:
                    row[p] = self._choose(p, zones)

    def _choose(self, p: int, zones: dict[int, list[tuple[int, int]]]) -> int:
        holding = {row[p] for row in self.rows}
        counts = self.zone_counts(p)
        best: tuple[tuple[bool, int, int, int], int] | None = None
        for zone, heap in zones.items():
            dev_id = self._top(heap, holding)
            if dev_id is None:
                continue
            key = (
                self.wanted[dev_id] <= 0,
                counts[zone],
                -self.zone_wanted[zone],
                -self.wanted[dev_id],
            )
            if best is None or key < best[0]:
                best = (key, dev_id)
        if best is None:
            raise ValueError(f"no device can take another replica of partition {p}")
        dev_id = best[1]
        zone = self.devices[dev_id].zone
        self.wanted[dev_id] -= 1
        self.zone_wanted[zone] -= 1
        heapq.heappush(zones[zone], (-self.wanted[dev_id], dev_id))
        return dev_id

    def _top(self, heap: list[tuple[int, int]], holding: set[int]) -> int | None:
        """The zone's most wanting device not in ``holding``; drops stale heap entries."""
        aside: list[tuple[int, int]] = []
        found = None
        while heap:
            neg, dev_id = heap[0]
            if -neg != self.wanted[dev_id]:
                heapq.heappop(heap)  # stale: a fresher entry was pushed
                continue
            if dev_id in holding:
                aside.append(heapq.heappop(heap))
                continue
            found = dev_id
            break
        for entry in aside:
            heapq.heappush(heap, entry)
        return found
