"""Object storage (OpenStack Swift API v1, later S3): the object data layer.

What exists so far is the storage foundation, as a library:

- ``ring``/``builder``: Swift-style consistent hashing of names onto
  ``2**part_power`` partitions and of partitions onto weighted devices in zones;
- ``diskfile``: one file per replica (data, JSON metadata trailer, checked
  footer; no extended attributes), atomic writes, tombstones, quarantine;
- ``backend``: the ``ObjectBackend`` contract and ``LocalBackend`` (devices
  as directories on this host);
- ``replication``: quorum ``ObjectWriter`` and newest-replica ``ObjectReader``;
- ``replicator``: the ``Replicator`` and ``Auditor`` background passes.

Account and container listings will live in the SQL database, not in Swift's
per-container SQLite files.

Limitations vs upstream Swift (the data layer): no erasure-coded policies, no
``.meta`` files (a POST will rewrite metadata by writing a new version), no
storage policies, no partition power increase, replication through the backend
API rather than rsync, no HTTP object server yet (remote devices need one).
"""

from onestack.object_store.backend import LocalBackend, ObjectBackend, ReplicaReader, ReplicaWriter
from onestack.object_store.builder import RebalanceResult, RingBuilder
from onestack.object_store.diskfile import DiskFileManager, FileInfo
from onestack.object_store.replication import ObjectReader, ObjectWriter, PutResult, quorum_size
from onestack.object_store.replicator import Auditor, AuditStats, ReplicationStats, Replicator
from onestack.object_store.ring import Device, Ring, hash_path
from onestack.object_store.timestamp import Timestamp

__all__ = [
    "AuditStats",
    "Auditor",
    "Device",
    "DiskFileManager",
    "FileInfo",
    "LocalBackend",
    "ObjectBackend",
    "ObjectReader",
    "ObjectWriter",
    "PutResult",
    "RebalanceResult",
    "ReplicaReader",
    "ReplicaWriter",
    "ReplicationStats",
    "Replicator",
    "Ring",
    "RingBuilder",
    "Timestamp",
    "hash_path",
    "quorum_size",
]
