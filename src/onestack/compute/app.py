"""The compute service's ASGI app and its ``ServiceSpec``.

The app is the service's router (``ServiceApp``, errors in Nova's envelope)
inside the microversion middleware, which answers for everything below
``/v2.1``."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any, Literal

from starlette.routing import BaseRoute

from onestack.compute import errors, policies
from onestack.compute.api import (
    aggregates,
    common,
    consoles,
    extras,
    flavors,
    hosts,
    images,
    interfaces,
    keypairs,
    metadata,
    migrations,
    misc,
    net_proxies,
    quotas,
    server_groups,
    server_meta,
    servers,
    versions,
    volume_attachments,
)
from onestack.compute.drivers.fake import FakeDriver
from onestack.compute.drivers.qemu import QEMU, QemuDriver, http_image_fetcher
from onestack.compute.models import Task
from onestack.compute.service import actions as actions_svc
from onestack.compute.service import build_takeover as takeover_svc
from onestack.compute.service import external, scheduler, starter_image
from onestack.compute.service import flavors as flavors_svc
from onestack.compute.service import hosts as hosts_svc
from onestack.compute.service import interfaces as interfaces_svc
from onestack.compute.service import quotas as quotas_svc
from onestack.compute.service import servers as servers_svc
from onestack.compute.state import ComputeState
from onestack.core.app import build_service_app
from onestack.core.config import Settings
from onestack.core.errors import ServiceUnavailable
from onestack.core.service import CatalogEntry, Runtime, ServiceSpec
from onestack.core.tasks import TaskHandle, TaskRunner
from onestack.core.types import ASGIApp

log = logging.getLogger("onestack.compute")
KIND_MAX = 64  # compute_tasks.kind's length


def routes() -> list[BaseRoute]:
    return [*versions.routes, *flavors.routes, *keypairs.routes, *misc.routes,
            *servers.routes, *server_meta.routes, *hosts.routes, *metadata.routes,
            *server_groups.routes, *quotas.routes, *net_proxies.routes,
            *images.routes, *extras.routes, *aggregates.routes, *consoles.routes,
            *interfaces.routes, *migrations.routes, *volume_attachments.routes]


def make_state(runtime: Runtime) -> ComputeState:
    if runtime.validator is None:
        raise ServiceUnavailable("the compute service needs the identity service's "
                                 "token validator")
    return ComputeState(
        settings=runtime.settings, db=runtime.db,
        enforcer=runtime.enforcer(policies.DEFAULTS), validator=runtime.validator,
        http=runtime.http, identity_path=runtime.identity_path,
    )


def compute_host(runtime: Runtime) -> str:
    """This host's name: ``[compute] host``, else the networking service's (ports
    are bound to it), else the machine's."""
    return (runtime.settings.compute.host or runtime.settings.network.host
            or socket.gethostname())


def resolve_driver(settings: Settings) -> tuple[str, str]:
    """``[compute] compute_driver`` made concrete, and why: ``auto`` is ``qemu`` when
    QEMU and qemu-img are installed (``scripts/apt-packages.txt`` installs them), else
    ``fake``."""
    name = settings.compute.compute_driver
    if name != "auto":
        return name, "configured"
    missing = [tool for tool in (QEMU, "qemu-img") if shutil.which(tool) is None]
    if missing:
        return "fake", f"auto: {' and '.join(missing)} not installed"
    return "qemu", "auto"


def qemu_network(settings: Settings) -> Literal["tap", "user"]:
    """``[compute] qemu_network`` made concrete: taps need the Linux data plane (and
    root to make them); otherwise QEMU's user-mode networking."""
    name = settings.compute.qemu_network
    if name != "auto":
        return name
    if settings.network.dataplane == "fake" or os.geteuid() != 0:
        return "user"
    return "tap"


def driver_for(runtime: Runtime, st: ComputeState) -> Any:
    """``[compute] compute_driver``: ``qemu`` (guests under DATA_DIR/compute/instances,
    images fetched from the image service as the compute service user) or ``fake``
    (its host's size from ``fake_vcpus``/``fake_memory_mb``/``fake_disk_gb``)."""
    conf = runtime.settings.compute
    if resolve_driver(runtime.settings)[0] == "qemu":
        if runtime.http is None:
            raise ServiceUnavailable("the qemu driver needs the image service's API")

        async def headers() -> dict[str, str]:
            return await external.service_headers(st)

        return QemuDriver(
            runtime.settings.path("compute", "instances"),
            image_fetcher=http_image_fetcher(runtime.http, headers),
            accel=conf.qemu_accel, network=qemu_network(runtime.settings),
            config_drive=conf.config_drive, shutdown_timeout=conf.shutdown_timeout,
            cache_dir=runtime.settings.path("compute", "testimage"))
    driver = FakeDriver()
    driver.vcpus = conf.fake_vcpus
    driver.memory_mb = conf.fake_memory_mb
    driver.local_gb = conf.fake_disk_gb
    return driver


def start_servers(runtime: Runtime, st: ComputeState) -> None:
    """The driver, this host's compute node and the durable task runner."""
    st.host = compute_host(runtime)
    if len(servers_svc.routed(servers_svc.DRIVER_CALL, st.host)) > KIND_MAX:
        raise ValueError(f"[compute] host {st.host!r} is too long: at most "
                         f"{KIND_MAX - len(servers_svc.DRIVER_CALL) - 1} characters "
                         "(it names this host's task kinds)")
    st.driver = driver_for(runtime, st)

    def bound(fn: Any) -> Any:
        async def handler(handle: TaskHandle) -> Any:
            return await fn(st, handle)
        return handler

    handlers = {
        servers_svc.BUILD: bound(servers_svc.handle_build),
        servers_svc.DELETE: bound(servers_svc.handle_delete),
        servers_svc.ACTION: bound(servers_svc.handle_action),
        actions_svc.OP: bound(actions_svc.handle),
        interfaces_svc.KIND: bound(interfaces_svc.handle),
    }
    # each kind unrouted (a server on no host yet: any host's runner) and routed to
    # this host (``build@<host>``: the work on this host's guests, see servers.routed)
    st.tasks = TaskRunner(runtime.db, Task, {
        **handlers,
        **{servers_svc.routed(kind, st.host): fn for kind, fn in handlers.items()},
        servers_svc.routed(servers_svc.DRIVER_CALL, st.host):
            bound(servers_svc.handle_driver_call),
        servers_svc.routed(servers_svc.REAP, st.host): bound(servers_svc.handle_reap),
    }, concurrency=8, poll_interval=1.0, max_attempts=3, retry_delay=0.5)

    async def startup() -> None:
        if "compute" in runtime.service_users:
            st.session = runtime.service_session("compute")
            await quotas_svc.register_limits(st)
        await st.driver.start()
        st.node_id = await scheduler.register_node(st, await st.driver.inventory())
        await hosts_svc.register_services(st)
        background.append(asyncio.create_task(hosts_svc.report_state(st),
                                              name="compute-heartbeat"))
        failed = await servers_svc.fail_orphaned_builds(st)
        if failed:
            log.warning("%d servers whose build failed for good are now ERROR", failed)
        if st.conf.resume_guests_state_on_host_boot:
            resumed = await servers_svc.resume_guests_state(st)
            if resumed:
                log.info("started %d guests that ran before the host restarted", resumed)
        await st.tasks.start()
        background.append(asyncio.create_task(take_over_builds(), name="build-takeover"))
        if st.driver.has_image_cache and st.conf.image_cache_manager_interval >= 0:
            background.append(asyncio.create_task(prune_image_cache(),
                                                  name="image-cache-manager"))
        if isinstance(st.driver, QemuDriver):  # KVM or TCG, for `onestack status`
            probe[0] = asyncio.create_task(st.driver.accelerator(), name="kvm-probe")
            name = runtime.settings.compute.starter_image
            if name and st.session is not None:
                background.append(asyncio.create_task(upload_starter(name),
                                                      name="starter-image"))

    async def take_over_builds() -> None:
        """Every ``report_interval`` seconds, reschedule the builds handed to a host
        that is down before it started them (``build_takeover.take_over_builds``)."""
        while True:
            await asyncio.sleep(st.conf.report_interval)
            try:
                taken = await takeover_svc.take_over_builds(st)
            except Exception:
                log.exception("taking over the builds of hosts that are down failed")
            else:
                if taken:
                    log.warning("rescheduled %d builds of hosts that are down", taken)

    async def prune_image_cache() -> None:
        """Nova's image cache manager: every ``image_cache_manager_interval`` seconds
        (0: 60) remove the base images no guest of this host has used for
        ``remove_unused_original_minimum_age_seconds``; a failed run is logged."""
        while True:
            await asyncio.sleep(st.conf.image_cache_manager_interval or 60)
            try:
                removed = await st.driver.prune_base_images(
                    st.conf.remove_unused_original_minimum_age_seconds)
            except Exception:
                log.exception("pruning the base-image cache failed")
            else:
                if removed:
                    log.info("image cache: removed %d unused base images", len(removed))

    async def upload_starter(name: str) -> None:
        try:
            await starter_image.ensure(st, name, runtime.settings.path("compute", "testimage"))
        except Exception:
            log.exception("uploading the starter image %r failed", name)

    async def shutdown() -> None:
        await quotas_svc.stop_registering(st)
        for task in [t for t in (probe[0], *background) if t is not None]:
            task.cancel()
            await asyncio.wait([task])
        await st.driver.stop()

    def status() -> str:
        driver = st.driver
        if isinstance(driver, QemuDriver):
            task = probe[0]
            accel = (driver.accel_setting if driver.accel_setting != "auto"
                     else task.result() if task is not None and task.done()
                     and not task.cancelled() and task.exception() is None
                     else "being probed")
            return f"driver: qemu (accelerator: {accel}, network: {driver.network})"
        why = resolve_driver(runtime.settings)[1]
        return (f"driver: {getattr(driver, 'name', type(driver).__name__)}"
                + (f" ({why})" if why.startswith("auto:") else ""))

    probe: list[asyncio.Task[str] | None] = [None]
    background: list[asyncio.Task[None]] = []  # heartbeat, take-overs, image cache, ...
    runtime.extras.setdefault("status", {})["compute"] = status
    runtime.on_startup(startup)
    runtime.on_shutdown(shutdown)
    runtime.on_shutdown(st.tasks.stop)


async def build(runtime: Runtime) -> ASGIApp:
    st = make_state(runtime)
    await flavors_svc.ensure_default_flavors(st)
    start_servers(runtime, st)
    metadata.load_secret(st)
    runtime.extras["compute"] = st
    app = build_service_app(routes(), errors.render)
    app.state.compute = st
    return ComputeRequestId(common.Microversions(app, errors.render))


class ComputeRequestId:
    """Nova answers with its request id twice: ``x-openstack-request-id`` (set
    at the root for every service) and ``x-compute-request-id``, which clients
    and Tempest read."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        rid = (scope.get("state") or {}).get("request_id")  # the root's RequestIdMiddleware

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start" and rid:
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-compute-request-id" for k, _ in headers):
                    headers.append((b"x-compute-request-id", rid.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


SERVICE = ServiceSpec(
    service_type="compute",
    prefix="/compute",
    migrations=Path(__file__).parent / "migrations" / "versions",
    # clients find the versioned endpoint in the catalog, as devstack registers it
    catalog=(CatalogEntry("compute", "nova", "/v2.1"),),
    build=build,
)
