"""The networking service's ASGI app and its ``ServiceSpec``."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from pathlib import Path

from starlette.routing import BaseRoute

from onestack.core.app import build_service_app
from onestack.core.auth import METADATA_SECRET
from onestack.core.errors import ServiceUnavailable
from onestack.core.files import load_or_create_secret
from onestack.core.service import CatalogEntry, Runtime, ServiceSpec
from onestack.core.tasks import TaskRunner
from onestack.core.types import ASGIApp
from onestack.network import agent as agent_mod
from onestack.network import bootstrap, errors, policies
from onestack.network.api import (
    floatingips,
    misc,
    networks,
    ports,
    quotas,
    routers,
    security_groups,
    subnetpools,
    subnets,
    tags,
    versions,
)
from onestack.network.dataplane import base as dataplane
from onestack.network.dataplane.base import Driver
from onestack.network.models import Task
from onestack.network.state import NetworkState

log = logging.getLogger("onestack.network")

# where compute serves Nova's metadata API to the metadata proxy
METADATA_PATH = "/compute/metadata"


def routes() -> list[BaseRoute]:
    return [
        *versions.routes,
        *networks.routes,
        *subnets.routes,
        *subnetpools.routes,
        *ports.routes,
        *routers.routes,
        *floatingips.routes,
        *security_groups.routes,
        *quotas.routes,
        *misc.routes,
        *tags.routes,
    ]


def make_state(runtime: Runtime) -> NetworkState:
    s = runtime.settings
    if runtime.validator is None:
        raise ServiceUnavailable("the networking service needs the identity service's "
                                 "token validator")
    return NetworkState(
        settings=s, db=runtime.db, enforcer=runtime.enforcer(policies.DEFAULTS),
        validator=runtime.validator, host=s.network.host or socket.gethostname(),
    )


def make_driver(runtime: Runtime, st: NetworkState) -> tuple[Driver, bool]:
    """The data-plane driver this process uses, and whether it wires DHCP (then
    the agent keeps DHCP ports)."""
    s = runtime.settings
    owner = owner_id(s.data_dir)
    secret = load_or_create_secret(s.path(*METADATA_SECRET)).encode()
    metadata = agent_mod.metadata_handler(st, runtime.http, secret, METADATA_PATH)
    state_dir = s.path("network")
    state_dir.mkdir(parents=True, exist_ok=True)
    driver = dataplane.make_driver(s.network.dataplane, owner=owner, state_dir=state_dir, metadata=metadata)
    return driver, getattr(driver, "name", "") == "linux"


def owner_id(data_dir: Path) -> str:
    """The mark on every kernel object of the cloud in ``data_dir``, so clouds
    sharing a host (tests, several data dirs) never remove each other's."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]


async def purge_dataplane(data_dir: Path) -> None:
    """Remove every kernel object of the (stopped) cloud in ``data_dir``: bridges,
    namespaces, dnsmasq, nft tables. A stopping cloud leaves them on purpose, so
    that VMs keep their network across a restart."""

    async def no_metadata(*_: object) -> tuple[int, dict[str, str], bytes]:
        return 404, {}, b""

    driver = dataplane.make_driver("linux", owner=owner_id(data_dir),
                                   state_dir=data_dir / "network", metadata=no_metadata)
    await driver.teardown()


async def build(runtime: Runtime) -> ASGIApp:
    st = make_state(runtime)
    driver, wires_dhcp = make_driver(runtime, st)
    agent = agent_mod.Agent(st, driver, wires_dhcp=wires_dhcp)
    st.agent = agent
    st.tasks = TaskRunner(runtime.db, Task, {
        agent_mod.converge_kind(st.host): agent.handle_task,
    }, concurrency=1, poll_interval=5.0, max_attempts=5)
    st.extras["http"] = runtime.http
    if runtime.http is not None and "network" in runtime.service_users:
        # the service user's session: floating IP changes are told to compute with it
        st.extras["session"] = runtime.service_session("network")

    async def startup() -> None:
        if runtime.http is not None and "network" in runtime.service_users:
            try:
                await bootstrap.external_network(
                    st, runtime.service_session("network"), runtime.http, runtime.identity_path)
            except Exception:
                log.exception("could not create the external network")
        await st.tasks.start()
        try:
            await agent.start()
        except Exception:
            log.exception("the data-plane agent's first pass failed")

    async def shutdown() -> None:
        await agent.stop()
        notifying = list(st.extras.get("notify_tasks", ()))
        for task in notifying:
            task.cancel()
        await asyncio.gather(*notifying, return_exceptions=True)

    runtime.on_startup(startup)
    runtime.on_shutdown(st.tasks.stop)
    runtime.on_shutdown(shutdown)
    runtime.extras["network"] = st
    runtime.extras.setdefault("status", {})["network"] = driver.status
    app = build_service_app(routes(), errors.render)
    app.state.network = st
    return app


SERVICE = ServiceSpec(
    service_type="network",
    prefix="/network",
    migrations=Path(__file__).parent / "migrations" / "versions",
    catalog=(CatalogEntry("network", "neutron"),),
    build=build,
)
