"""Errors of the object data layer.

    CloudError (core)
    ├── ObjectNotFound (NotFound)             404  no replica holds the object
    │   └── ObjectDeleted                     404  the newest replica is a tombstone
    ├── EtagMismatch (UnprocessableEntity)    422  data does not hash to the expected ETag
    ├── SizeMismatch (BadRequest)             400  body shorter or longer than announced
    ├── QuorumNotMet (ServiceUnavailable)     503  too few replicas committed
    └── DeviceUnavailable                     507  a device is unmounted, missing or failing
    DiskFileCorrupt (Exception)                    a file failed its checks; quarantined, never
                                                   shown to a client as such

The API layer (a later task) renders the ``CloudError`` ones; ``DiskFileCorrupt``
stays inside the data layer, which turns it into "missing" after quarantining.
"""

from __future__ import annotations

from onestack.core import errors
from onestack.object_store.timestamp import Timestamp


class ObjectNotFound(errors.NotFound):
    """No replica of the object exists (or every one that did failed its checks)."""

    def __init__(self, message: str = "The resource could not be found.") -> None:
        super().__init__(message)


class ObjectDeleted(ObjectNotFound):
    """The newest replica is a tombstone written at ``timestamp``."""

    def __init__(self, timestamp: Timestamp) -> None:
        super().__init__()
        self.timestamp = timestamp


class EtagMismatch(errors.UnprocessableEntity):
    """The data's MD5 differs from the ETag the client sent (or a replica computed)."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"ETag mismatch: expected {expected}, got {actual}")
        self.expected, self.actual = expected, actual


class SizeMismatch(errors.BadRequest):
    """The body held a different number of bytes than announced."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"Body size mismatch: expected {expected} bytes, got {actual}")


class QuorumNotMet(errors.ServiceUnavailable):
    """Fewer than a quorum of replicas committed the write."""

    def __init__(self, committed: int, needed: int) -> None:
        super().__init__(f"Only {committed} of the {needed} replicas needed committed the write")
        self.committed, self.needed = committed, needed


class DeviceUnavailable(errors.CloudError):
    """A device cannot serve: not mounted, not a directory, or failing I/O (Swift's 507)."""

    status_code = 507

    def __init__(self, device: str, reason: str = "unavailable") -> None:
        super().__init__(f"Device {device} {reason}")
        self.device = device


class DiskFileCorrupt(Exception):
    """A file on disk failed its checks (footer, trailer checksum, sizes, MD5)."""
