"""The all-in-one process: every service mounted on one port behind its prefix.

This module (with ``cli``) is the only place that imports every service; the
services themselves never import each other.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from onestack.compute.app import SERVICE as COMPUTE
from onestack.core import config as config_mod
from onestack.core import migrate
from onestack.core.app import RequestIdMiddleware
from onestack.core.clients.identity import ServiceCredentials
from onestack.core.config import Settings
from onestack.core.db import Database
from onestack.core.http import JSONResponse
from onestack.core.service import CatalogEntry, Runtime, ServiceSpec
from onestack.identity import bootstrap
from onestack.identity.app import SERVICE as IDENTITY
from onestack.image.app import SERVICE as IMAGE
from onestack.network.app import SERVICE as NETWORK
from onestack.object_store.app import SERVICE as OBJECT_STORE

SERVICES: tuple[ServiceSpec, ...] = (IDENTITY, IMAGE, OBJECT_STORE, NETWORK, COMPUTE)

log = logging.getLogger("onestack.server")


class _Lazy:
    """An ASGI app filled in by the lifespan (mounts need an app up front)."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.app is None:
            await Response("starting", status_code=503)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def catalog_urls(settings: Settings) -> list[tuple[str, CatalogEntry]]:
    return [
        (settings.base_url + spec.prefix + entry.path, entry)
        for spec in SERVICES
        for entry in spec.catalog
    ]


def service_user_names() -> dict[str, str]:
    """Each service's identity user by service type, named after the upstream
    project as in its catalog entry (``image`` -> ``glance``); none for identity."""
    names = {}
    for spec in SERVICES:
        if spec.service_type == IDENTITY.service_type or not spec.catalog:
            continue
        own = [e.name for e in spec.catalog if e.service_type == spec.service_type]
        names[spec.service_type] = (own or [spec.catalog[0].name])[0]
    return names


def clouds_yaml(settings: Settings, creds: bootstrap.Credentials) -> dict[str, Any]:
    def cloud(user: str, password: str, project: str) -> dict[str, Any]:
        return {
            "auth": {
                "auth_url": settings.base_url + IDENTITY.prefix + "/v3",
                "username": user,
                "password": password,
                "project_name": project,
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": settings.region,
            "identity_api_version": 3,
            "interface": "public",
        }

    return {
        "clouds": {
            "onestack": cloud(bootstrap.DEMO_USER, creds.demo_password, bootstrap.DEMO_PROJECT),
            "onestack-admin": cloud(
                bootstrap.ADMIN_USER, creds.admin_password, bootstrap.ADMIN_PROJECT
            ),
        }
    }


def write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


def prepare_data_dir(settings: Settings) -> None:
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config_mod.write_template(settings.data_dir)


def create_app(settings: Settings) -> Starlette:
    """The root ASGI app; services are built and the cloud bootstrapped in its
    lifespan, so ``/healthcheck`` answers 200 as soon as the server accepts."""
    mounts = {spec.service_type: _Lazy() for spec in SERVICES}
    state: dict[str, Any] = {"ready": False}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        prepare_data_dir(settings)
        db = Database(settings.db_url)
        # services call each other's public API through runtime.http: in this
        # process it goes straight to the root app (which runs no lifespan again)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.base_url)
        runtime = Runtime(
            settings=settings, db=db, http=http, identity_path=IDENTITY.prefix + "/v3"
        )
        try:
            await migrate.upgrade(db, [spec.migrations for spec in SERVICES])
            # service users: credentials known before the builds, users created by
            # the bootstrap after them (services authenticate lazily or on startup)
            users = service_user_names()
            passwords = bootstrap.load_or_create_service_passwords(
                settings.path("secrets", "service-users"), users.values()
            )
            runtime.service_users = {
                stype: ServiceCredentials(name, passwords[name], bootstrap.SERVICE_PROJECT)
                for stype, name in users.items()
            }
            for spec in SERVICES:
                mounts[spec.service_type].app = await spec.build(runtime)
            creds = bootstrap.load_or_create_credentials(settings.path("secrets", "passwords"))
            await bootstrap.bootstrap(
                runtime.extras["identity"], creds, catalog_urls(settings), passwords
            )
            write_private(
                settings.path("clouds.yaml"),
                yaml.safe_dump(clouds_yaml(settings, creds), sort_keys=False),
            )
            for hook in runtime.startup:
                await hook()
            app.state.runtime = runtime
            state["ready"] = True
            yield
        finally:
            state["ready"] = False
            for hook in reversed(runtime.shutdown):
                try:
                    await hook()
                except Exception:
                    log.exception("a shutdown hook failed")
            await http.aclose()
            await db.close()

    async def healthcheck(request: Request) -> Response:
        if not state["ready"]:
            return Response("starting", status_code=503, media_type="text/plain")
        return Response("OK", media_type="text/plain")

    async def root(request: Request) -> Response:
        base = settings.base_url
        runtime = getattr(app_state, "runtime", None)
        status = runtime.extras.get("status", {}) if runtime is not None else {}
        return JSONResponse(
            {
                "services": [
                    {"type": s.service_type, "url": base + s.prefix,
                     **({"status": status[s.service_type]()}
                        if s.service_type in status else {})}
                    for s in SERVICES
                ]
            }
        )

    routes = [
        Route("/healthcheck", healthcheck, methods=["GET", "HEAD"]),
        Route("/", root, methods=["GET"]),
        *(Mount(spec.prefix, app=mounts[spec.service_type]) for spec in SERVICES),
    ]
    root_app = Starlette(routes=routes, lifespan=lifespan)
    app_state = root_app.state
    return root_app


def asgi_app(settings: Settings) -> Any:
    """The app as served: the root app inside the request-id middleware."""
    return RequestIdMiddleware(create_app(settings), access_log=settings.access_log)
