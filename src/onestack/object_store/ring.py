"""The ring: which devices hold an object, as Swift places it.

An object's name hashes (MD5 of ``<prefix>/account/container/object<suffix>``,
the prefix and suffix being a per-cluster secret so clients cannot aim names at
one partition) to one of ``2**part_power`` partitions: the hash's top
``part_power`` bits. The ring maps each (replica, partition) to a device; the
mapping is computed offline by ``builder.RingBuilder`` and shipped to every host
as one file, so every host places every object the same way without talking to
the others. Handoffs are the other devices in an order that is fixed for a
partition (devices in zones and hosts the primaries do not use come first), so
every host looks for a missing replica in the same places.

The file is JSON: the devices and, per replica, the partition->device table as
base64 little-endian integers (a 2**20-partition ring stays a few MB).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import sys
import tempfile
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MAX_PART_POWER = 32


@dataclass(frozen=True)
class Device:
    """One disk of the cluster: ``device`` is its directory under the host's devices root."""

    id: int
    host: str
    port: int
    device: str
    weight: float = 1.0
    zone: int = 1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Device:
        return cls(
            id=int(data["id"]),
            host=str(data["host"]),
            port=int(data["port"]),
            device=str(data["device"]),
            weight=float(data.get("weight", 1.0)),
            zone=int(data.get("zone", 1)),
        )


def hash_path(
    account: str,
    container: str | None = None,
    obj: str | None = None,
    *,
    prefix: bytes = b"",
    suffix: bytes = b"",
) -> str:
    """The hex MD5 naming an account, container or object on disk and in the ring."""
    if obj is not None and container is None:
        raise ValueError("an object needs a container")
    parts = [account] + [p for p in (container, obj) if p is not None]
    path = ("/" + "/".join(parts)).encode()
    return hashlib.md5(prefix + path + suffix, usedforsecurity=False).hexdigest()


class Ring:
    """An immutable placement table; see the module doc.

    ``assignments[r][p]`` is the id of the device holding replica ``r`` of
    partition ``p``; ``devices[id]`` is that device (``None`` for ids of removed
    devices, which are never reused while a partition still points at them).
    """

    def __init__(
        self,
        part_power: int,
        devices: Sequence[Device | None],
        assignments: Sequence[Sequence[int]],
        *,
        hash_prefix: bytes = b"",
        hash_suffix: bytes = b"",
        version: int = 0,
    ) -> None:
        if not 0 <= part_power <= MAX_PART_POWER:
            raise ValueError(f"part_power must be within 0..{MAX_PART_POWER}")
        self.part_power = part_power
        self.version = version
        self.hash_prefix, self.hash_suffix = hash_prefix, hash_suffix
        self._devices = list(devices)
        self._assignments = [array("I", row) for row in assignments]
        parts = 1 << part_power
        for row in self._assignments:
            if len(row) != parts:
                raise ValueError("every replica needs one device per partition")
            for dev_id in set(row):
                if dev_id >= len(self._devices) or self._devices[dev_id] is None:
                    raise ValueError(f"partition assigned to unknown device {dev_id}")

    @property
    def partition_count(self) -> int:
        return 1 << self.part_power

    @property
    def replica_count(self) -> int:
        return len(self._assignments)

    @property
    def devices(self) -> list[Device]:
        return [d for d in self._devices if d is not None]

    def device(self, dev_id: int) -> Device:
        found = self._devices[dev_id] if 0 <= dev_id < len(self._devices) else None
        if found is None:
            raise KeyError(dev_id)
        return found

    def object_hash(self, account: str, container: str, obj: str) -> str:
        return hash_path(account, container, obj, prefix=self.hash_prefix, suffix=self.hash_suffix)

    def partition_of_hash(self, name_hash: str) -> int:
        """The partition of a hex name hash: its top ``part_power`` bits."""
        return int(name_hash[:8], 16) >> (32 - self.part_power)

    def partition(self, account: str, container: str | None = None, obj: str | None = None) -> int:
        hexdigest = hash_path(
            account, container, obj, prefix=self.hash_prefix, suffix=self.hash_suffix
        )
        return self.partition_of_hash(hexdigest)

    def nodes(self, partition: int) -> list[Device]:
        """The primary devices of ``partition``, in replica order."""
        out = []
        for row in self._assignments:
            dev = self._devices[row[partition]]
            assert dev is not None
            out.append(dev)
        return out

    def get_nodes(self, account: str, container: str, obj: str) -> tuple[int, list[Device]]:
        partition = self.partition(account, container, obj)
        return partition, self.nodes(partition)

    def handoffs(self, partition: int) -> list[Device]:
        """Every non-primary device, best first: other zones, then other hosts, then
        the rest; zero-weight (draining) devices last; ties broken by a hash of
        (partition, device id) so that handoff load spreads over devices."""
        primaries = self.nodes(partition)
        ids = {d.id for d in primaries}
        zones = {d.zone for d in primaries}
        hosts = {(d.host, d.port) for d in primaries}

        def rank(d: Device) -> tuple[bool, bool, bool, bytes]:
            spread = hashlib.md5(f"{partition}/{d.id}".encode(), usedforsecurity=False).digest()
            return (d.weight <= 0, d.zone in zones, (d.host, d.port) in hosts, spread)

        return sorted((d for d in self.devices if d.id not in ids), key=rank)

    # -- serialization -------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        width = 2 if len(self._devices) <= 0xFFFF else 4
        return {
            "format": FORMAT_VERSION,
            "version": self.version,
            "part_power": self.part_power,
            "devices": [None if d is None else asdict(d) for d in self._devices],
            "id_width": width,
            "assignments": [_pack(row, width) for row in self._assignments],
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, hash_prefix: bytes = b"", hash_suffix: bytes = b""
    ) -> Ring:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported ring format {data.get('format')!r}")
        devices = [None if d is None else Device.from_dict(d) for d in data["devices"]]
        width = int(data["id_width"])
        rows = [_unpack(text, width) for text in data["assignments"]]
        return cls(
            int(data["part_power"]),
            devices,
            rows,
            hash_prefix=hash_prefix,
            hash_suffix=hash_suffix,
            version=int(data.get("version", 0)),
        )

    def save(self, path: Path) -> None:
        """Write the ring file atomically (readers see the old or the new ring, whole)."""
        write_atomically(path, json.dumps(self.to_dict(), separators=(",", ":")).encode())

    @classmethod
    def load(cls, path: Path, *, hash_prefix: bytes = b"", hash_suffix: bytes = b"") -> Ring:
        data = json.loads(Path(path).read_bytes())
        return cls.from_dict(data, hash_prefix=hash_prefix, hash_suffix=hash_suffix)


def _pack(row: array[int], width: int) -> str:
    packed = array("H" if width == 2 else "I", row)
    if packed.itemsize != width:  # 'I' is 4 bytes on every platform we run on; be sure
        raise ValueError("unsupported platform integer size")
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def _unpack(text: str, width: int) -> array[int]:
    packed = array("H" if width == 2 else "I")
    packed.frombytes(base64.b64decode(text))
    if sys.byteorder == "big":
        packed.byteswap()
    return array("I", packed)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync the directory."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
