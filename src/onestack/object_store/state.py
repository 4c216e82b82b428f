"""What the object storage service's layers share: ``ObjectStoreState``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from onestack.core.auth import TokenValidator
from onestack.core.config import Settings
from onestack.core.db import Database
from onestack.object_store.http import Handler
from onestack.object_store.replication import ObjectReader, ObjectWriter
from onestack.object_store.ring import Ring

if TYPE_CHECKING:
    from onestack.core.service import Runtime
    from onestack.object_store.service.listings import Listings


@dataclass
class ObjectStoreState:
    """The service's shared objects, built once by ``app.build``.

    ``app`` is the whole middleware chain (set once the chain is built): a
    middleware that must see what the layers before it add sends its sub-requests
    there; one that needs only the layers after it uses the handler it wraps.
    ``capabilities`` is ``GET /info``: each middleware registers its own section
    (``register``) when it is built, as Swift's ``register_swift_info`` does.
    """

    settings: Settings
    db: Database
    ring: Ring
    writer: ObjectWriter
    reader: ObjectReader
    listings: Listings
    validator: TokenValidator | None = None
    runtime: Runtime | None = None
    app: Handler | None = None
    capabilities: dict[str, dict[str, Any]] = field(default_factory=dict)
    admin_capabilities: dict[str, dict[str, Any]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def register(self, name: str, admin: bool = False, **info: Any) -> None:
        """Announce ``name`` (``slo``, ``tempurl`` ...) with ``info`` in ``GET /info``."""
        target = self.admin_capabilities if admin else self.capabilities
        target.setdefault(name, {}).update(info)
