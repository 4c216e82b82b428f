"""The middleware chain of the Swift API, outermost first.

The order is Swift's recommended ``proxy-server.conf`` pipeline (minus what we do
not have): the gatekeeper strips system metadata from the outside world, bulk,
TempURL and FormPost turn their requests into ordinary ones before auth sees
them, auth decides who the caller is, and the large-object, versioning and
symlink layers sit right above the proxy so that everything above sees whole
objects.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from onestack.object_store.http import Handler
from onestack.object_store.state import ObjectStoreState

# module names under onestack.object_store.middleware; each has
# ``def middleware(app: Handler, st: ObjectStoreState) -> Handler``
PIPELINE = (
    "catch_errors",
    "gatekeeper",
    "cors",
    "bulk",
    "tempurl",
    "formpost",
    "keystoneauth",
    "staticweb",
    "copy",
    "container_quotas",
    "account_quotas",
    "slo",
    "dlo",
    "versioned_writes",
    "symlink",
)

Factory = Callable[[Handler, ObjectStoreState], Handler]


def _factory(name: str) -> Factory:
    module: Any = importlib.import_module(f"onestack.object_store.middleware.{name}")
    factory: Factory = module.middleware
    return factory


def build(proxy: Handler, st: ObjectStoreState, names: tuple[str, ...] = PIPELINE) -> Handler:
    """The chain over ``proxy``; it is also stored as ``st.app``."""
    app = proxy
    for name in reversed(names):
        app = _factory(name)(app, st)
    st.app = app
    return app
