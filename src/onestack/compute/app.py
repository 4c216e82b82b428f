"""The compute service's ASGI app and its ``ServiceSpec``.

The app is the service's router (``ServiceApp``, errors in Nova's envelope)
inside the microversion middleware, which answers for everything below
``/v2.1``."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

from onestack.compute import errors, policies
from onestack.compute.api import (
    aggregates,
    common,
    extras,
    flavors,
    hosts,
    images,
    keypairs,
    metadata,
    misc,
    net_proxies,
    quotas,
    server_groups,
    server_meta,
    servers,
    versions,
)
from onestack.compute.drivers import make_driver
from onestack.compute.drivers.fake import FakeDriver
from onestack.compute.drivers.qemu import QemuDriver, http_image_fetcher
from onestack.compute.models import Task
from onestack.compute.service import actions as actions_svc
from onestack.compute.service import external, scheduler
from onestack.compute.service import flavors as flavors_svc
from onestack.compute.service import hosts as hosts_svc
from onestack.compute.service import servers as servers_svc
from onestack.compute.state import ComputeState
from onestack.core.app import build_service_app
from onestack.core.errors import ServiceUnavailable
from onestack.core.service import CatalogEntry, Runtime, ServiceSpec
from onestack.core.tasks import TaskHandle, TaskRunner
from onestack.core.types import ASGIApp

log = logging.getLogger("onestack.compute")


def routes() -> list[BaseRoute]:
    return [*versions.routes, *flavors.routes, *keypairs.routes, *misc.routes,
            *servers.routes, *server_meta.routes, *hosts.routes, *metadata.routes,
            *server_groups.routes, *quotas.routes, *net_proxies.routes,
            *images.routes, *extras.routes, *aggregates.routes]


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


def driver_for(runtime: Runtime, st: ComputeState) -> Any:
    """``[compute] compute_driver``: ``qemu`` (guests under DATA_DIR/compute/instances,
    images fetched from the image service as the compute service user) or ``fake``
    (its host's size from ``fake_vcpus``/``fake_memory_mb``/``fake_disk_gb``)."""
    conf = runtime.settings.compute
    if conf.compute_driver == "qemu":
        if runtime.http is None:
            raise ServiceUnavailable("the qemu driver needs the image service's API")

        async def headers() -> dict[str, str]:
            return await external.service_headers(st)

        return QemuDriver(
            runtime.settings.path("compute", "instances"),
            image_fetcher=http_image_fetcher(runtime.http, headers),
            accel=conf.qemu_accel, network=conf.qemu_network,
            config_drive=conf.config_drive, shutdown_timeout=conf.shutdown_timeout,
            cache_dir=runtime.settings.path("compute", "testimage"))
    driver = make_driver(conf.compute_driver)
    if isinstance(driver, FakeDriver):
        driver.vcpus = conf.fake_vcpus
        driver.memory_mb = conf.fake_memory_mb
        driver.local_gb = conf.fake_disk_gb
    return driver


def start_servers(runtime: Runtime, st: ComputeState) -> None:
    """The driver, this host's compute node and the durable task runner."""
    st.host = compute_host(runtime)
    st.driver = driver_for(runtime, st)

    def bound(fn: Any) -> Any:
        async def handler(handle: TaskHandle) -> Any:
            return await fn(st, handle)
        return handler

    st.tasks = TaskRunner(runtime.db, Task, {
        servers_svc.BUILD: bound(servers_svc.handle_build),
        servers_svc.DELETE: bound(servers_svc.handle_delete),
        servers_svc.ACTION: bound(servers_svc.handle_action),
        actions_svc.OP: bound(actions_svc.handle),
    }, concurrency=8, poll_interval=2.0, max_attempts=3, retry_delay=0.5)

    async def startup() -> None:
        if "compute" in runtime.service_users:
            st.session = runtime.service_session("compute")
        await st.driver.start()
        st.node_id = await scheduler.register_node(st, await st.driver.inventory())
        await hosts_svc.register_services(st)
        failed = await servers_svc.fail_orphaned_builds(st)
        if failed:
            log.warning("%d servers whose build failed for good are now ERROR", failed)
        await st.tasks.start()
        if isinstance(st.driver, QemuDriver):  # KVM or TCG, for `onestack status`
            probe[0] = asyncio.create_task(st.driver.accelerator(), name="kvm-probe")

    async def shutdown() -> None:
        if probe[0] is not None:
            probe[0].cancel()
            await asyncio.wait([probe[0]])
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
        return f"driver: {getattr(driver, 'name', type(driver).__name__)}"

    probe: list[asyncio.Task[str] | None] = [None]
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
