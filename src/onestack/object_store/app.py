"""The object storage service's ASGI app and its ``ServiceSpec``.

One mount serves both APIs over the same data: Swift's at ``/v1/...`` and
``/info``, S3's below ``/s3`` (path-style addressing).
"""

from __future__ import annotations

import logging
from pathlib import Path

from onestack.core.config import ConfigError, Settings
from onestack.core.files import load_or_create_secret
from onestack.core.service import CatalogEntry, Runtime, ServiceSpec
from onestack.core.types import ASGIApp, Receive, Scope, Send
from onestack.object_store import constraints, pipeline
from onestack.object_store.api.proxy import proxy
from onestack.object_store.asgi import asgi
from onestack.object_store.backend import LocalBackend, ObjectBackend
from onestack.object_store.builder import RingBuilder
from onestack.object_store.objectserver import build_object_server
from onestack.object_store.remote import HttpBackend, RoutingBackend
from onestack.object_store.replication import ObjectReader, ObjectWriter
from onestack.object_store.ring import Ring
from onestack.object_store.s3.handler import handler as s3_handler
from onestack.object_store.service.daemons import ObjectDaemons
from onestack.object_store.service.expirer import Expirer
from onestack.object_store.service.listings import Listings
from onestack.object_store.state import ObjectStoreState

log = logging.getLogger("onestack.object_store")

SERVICE_PREFIX = "/object-store"
S3_PREFIX = "/s3"
# the object servers of a multi-host ring reach each other's devices here
OBJECT_SERVER_PREFIX = "/object-server"
# present when the ring is the one made on first start (see load_ring)
AUTO_RING_MARKER = "object.ring.auto"


def load_ring(runtime: Runtime) -> Ring:
    """The ring in ``DATA_DIR/object.ring.json`` (built with ``onestack ring`` and
    copied to every host, with the hash suffix and the cluster secret).

    Without one, the first start makes a single-host ring over ``[object_store]
    devices`` and marks it (``AUTO_RING_MARKER``) as this host's own whatever its
    address, so that starting again on another port keeps the same disks.

    Raises:
        ConfigError: a builder waits for ``onestack ring rebalance``, or an operator's
            ring has no hash suffix here (a new one would place every object elsewhere).
    """
    s = runtime.settings
    conf = s.object_store
    ring_file = s.path("object.ring.json")
    suffix_file = s.path("secrets", "object-hash-suffix")
    if ring_file.exists():
        if not suffix_file.exists():
            raise ConfigError(f"{suffix_file} is missing: copy it (and the cluster secret) "
                              "from the host where the ring was built")
        return Ring.load(ring_file, hash_suffix=load_or_create_secret(suffix_file, 16).encode())
    builder_file, marker = s.path("object.builder.json"), s.path(AUTO_RING_MARKER)
    if builder_file.exists() and not marker.exists():
        raise ConfigError(f"{builder_file} has no ring yet: run `onestack ring rebalance`")
    suffix = load_or_create_secret(suffix_file, 16).encode()
    builder = RingBuilder(conf.part_power, conf.replicas)
    for i, name in enumerate(conf.devices):
        builder.add_device(host=s.host, port=s.port, device=name, zone=i + 1)
    builder.rebalance()
    s.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    marker.touch()
    builder.save(builder_file)
    ring = builder.get_ring(hash_suffix=suffix)
    ring.save(ring_file)
    return ring


def local_backend(settings: Settings, ring: Ring) -> tuple[RoutingBackend, str]:
    """This host's devices from disk, the others through their hosts' object servers,
    and the cluster secret they share.

    A device is this host's when its host:port in the ring is ``settings.host`` and
    ``settings.port`` (every device of the automatic single-host ring is). Only
    those get a directory under ``DATA_DIR/object-devices``.

    Raises:
        ConfigError: an operator's ring but no cluster secret here (a new one would
            make every other host refuse this one).
    """
    auto = settings.path(AUTO_RING_MARKER).exists()
    addresses = [(settings.host, settings.port)]
    if auto:
        addresses += [(d.host, d.port) for d in ring.devices]
    secret_file = settings.path(settings.object_store.cluster_secret_file)
    if not auto and not secret_file.exists():
        raise ConfigError(f"{secret_file} is missing: copy it (and the hash suffix) from "
                          "the host where the ring was built")
    secret = load_or_create_secret(secret_file)
    remote = HttpBackend(secret, path_prefix=SERVICE_PREFIX + OBJECT_SERVER_PREFIX)
    backend = RoutingBackend(LocalBackend(settings.path("object-devices")), remote, addresses)
    mine = backend.local_devices(ring.devices)
    for device in mine:
        (backend.local.root / device.device).mkdir(parents=True, exist_ok=True)
    log.info("object ring v%d: %d devices, %d on this host (%s:%d)", ring.version,
             len(ring.devices), len(mine), settings.host, settings.port)
    if settings.host in ("0.0.0.0", "::", "") and len(mine) < len(ring.devices):
        log.warning("host %r is a wildcard: no ring device can be this host's; set host "
                    "to the address the ring gives this host's devices", settings.host)
    return backend, secret


def make_state(runtime: Runtime, backend: ObjectBackend | None = None) -> ObjectStoreState:
    s = runtime.settings
    ring = load_ring(runtime)
    if backend is None:
        routing, secret = local_backend(s, ring)
        runtime.extras["object_server"] = build_object_server(routing.local, secret)
        runtime.on_shutdown(routing.aclose)
        backend = routing
    st = ObjectStoreState(
        settings=s, db=runtime.db, ring=ring,
        writer=ObjectWriter(ring, backend), reader=ObjectReader(ring, backend),
        listings=Listings(runtime.db, s), validator=runtime.validator, runtime=runtime,
    )
    st.extras["backend"] = backend
    st.register("swift", **constraints.swift_info(s))
    return st


def make_app(st: ObjectStoreState, object_server: ASGIApp | None = None) -> ASGIApp:
    swift = asgi(pipeline.build(proxy(st), st))
    below = [(S3_PREFIX, asgi(s3_handler(st))), (OBJECT_SERVER_PREFIX, object_server)]
    mounts = [(prefix, sub) for prefix, sub in below if sub is not None]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            root = scope.get("root_path", "")
            path = scope["path"].removeprefix(root)
            for prefix, sub in mounts:
                if path == prefix or path.startswith(prefix + "/"):
                    await sub(dict(scope, root_path=root + prefix), receive, send)
                    return
        await swift(scope, receive, send)

    return app


async def ensure_reseller_admin_role(st: ObjectStoreState) -> None:
    """Create the reseller admin role in the identity service if it is missing
    (as devstack's Swift setup does), so that it can be granted."""
    runtime = st.runtime
    if runtime is None or runtime.http is None or "object-store" not in runtime.service_users:
        return
    session = runtime.service_session("object-store")
    name = st.settings.object_store.reseller_admin_role
    path = runtime.identity_path + "/roles"
    r = await runtime.http.get(path, params={"name": name}, headers=await session.headers())
    r.raise_for_status()
    if not r.json()["roles"]:
        r = await runtime.http.post(path, json={"role": {"name": name}},
                                    headers=await session.headers())
        if r.status_code != 409:
            r.raise_for_status()


async def build(runtime: Runtime) -> ASGIApp:
    st = make_state(runtime)
    runtime.extras["object_store"] = st
    runtime.on_startup(lambda: ensure_reseller_admin_role(st))
    expirer = Expirer(st)
    runtime.on_startup(expirer.start)
    runtime.on_shutdown(expirer.stop)
    daemons = ObjectDaemons.for_state(st)
    if daemons is not None:
        runtime.on_startup(daemons.start)
        runtime.on_shutdown(daemons.stop)
    return make_app(st, runtime.extras.get("object_server"))


SERVICE = ServiceSpec(
    service_type="object-store",
    prefix=SERVICE_PREFIX,
    migrations=Path(__file__).parent / "migrations" / "versions",
    catalog=(
        CatalogEntry("object-store", "swift", "/v1/AUTH_%(project_id)s"),
        CatalogEntry("s3", "s3", S3_PREFIX),
    ),
    build=build,
)
