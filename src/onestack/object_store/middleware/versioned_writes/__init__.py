"""Object versioning, both of Swift's APIs in one pipeline stage (as Swift's
``versioned_writes`` filter): the legacy ``X-Versions-Location`` /
``X-History-Location`` layer (``legacy``) in front of the ``X-Versions-Enabled``
layer (``object_versioning``), which relies on the symlink layer below it."""

from __future__ import annotations

from onestack.object_store.http import Handler
from onestack.object_store.middleware.versioned_writes.legacy import (
    CLIENT_HISTORY_LOC,
    CLIENT_VERSIONS_LOC,
    VersionedWrites,
)
from onestack.object_store.middleware.versioned_writes.object_versioning import (
    ObjectVersioning,
)
from onestack.object_store.state import ObjectStoreState


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    st.register("versioned_writes", allowed_flags=[CLIENT_VERSIONS_LOC, CLIENT_HISTORY_LOC])
    st.register("object_versioning")
    return VersionedWrites(ObjectVersioning(app, st), st)
