"""Object storage (OpenStack Swift API v1, later S3): the object data layer.

What exists so far is the storage foundation, as a library:

- ``ring``/``builder``: Swift-style consistent hashing of names onto
  ``2**part_power`` partitions and of partitions onto weighted devices in zones;
- ``diskfile``: one file per replica (data, JSON metadata trailer, checked
  footer; no extended attributes), atomic writes, tombstones, quarantine;
- ``backend``: the ``ObjectBackend`` contract and ``LocalBackend`` (devices
  as directories on this host);
- ``replication``: quorum ``ObjectWriter`` and newest-replica ``ObjectReader``;
- ``replicator``: the ``Replicator`` and ``Auditor`` background passes;
- ``objectserver``: the object server, an ASGI app serving one host's devices
  (a ``LocalBackend``) to the other hosts, behind a shared cluster secret;
- ``remote``: ``HttpBackend`` (devices on other hosts, through their object
  servers) and ``RoutingBackend`` (this host's devices locally, the rest over
  HTTP), so the ring spans hosts.

Account and container listings will live in the SQL database, not in Swift's
per-container SQLite files.

Limitations vs upstream Swift (the data layer): no erasure-coded policies, no
``.meta`` files (a POST will rewrite metadata by writing a new version), no
storage policies, no partition power increase, replication through the backend
API (object by object over the object servers' HTTP) rather than rsync or ssync.
The servers authenticate each other with one shared secret sent in a header
(Swift relies on a private network instead): run them on a private network or
behind TLS.
"""

from onestack.object_store.backend import LocalBackend, ObjectBackend, ReplicaReader, ReplicaWriter
from onestack.object_store.builder import RebalanceResult, RingBuilder
from onestack.object_store.diskfile import DiskFileManager, FileInfo
from onestack.object_store.objectserver import build_object_server
from onestack.object_store.remote import HttpBackend, RoutingBackend
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
    "HttpBackend",
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
    "RoutingBackend",
    "Timestamp",
    "build_object_server",
    "hash_path",
    "quorum_size",
]
