"""What a service gives the process that runs it, and what it gets from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from onestack.core.auth import TokenValidator
from onestack.core.clients.identity import ServiceCredentials, ServiceSession
from onestack.core.config import Settings
from onestack.core.db import Database
from onestack.core.policy import Enforcer
from onestack.core.types import ASGIApp


@dataclass(frozen=True)
class CatalogEntry:
    """One catalog service this service publishes, at ``<base_url><prefix><path>``."""

    service_type: str
    name: str
    path: str = ""


Hook = Callable[[], Awaitable[None]]


@dataclass
class Runtime:
    """Shared resources of the process, handed to each service when it is built.

    ``http`` reaches every service's public API (in-process through
    ``httpx.ASGITransport`` in the all-in-one process, real HTTP across hosts): a
    service calls another as ``runtime.http.get("/identity/v3/limits", ...)``.
    ``service_users`` holds each service's own identity credentials (by service
    type). Both are set before any service is built, but the identity objects
    behind the credentials exist only once the cloud is bootstrapped, after every
    ``build``: a service authenticates lazily (``ServiceSession`` does), or in an
    ``on_startup`` hook, which runs after the bootstrap and before the first request.
    """

    settings: Settings
    db: Database
    validator: TokenValidator | None = None
    http: httpx.AsyncClient | None = None
    identity_path: str = "/identity/v3"
    service_users: dict[str, ServiceCredentials] = field(default_factory=dict)
    startup: list[Hook] = field(default_factory=list)
    shutdown: list[Hook] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    def enforcer(self, defaults: Mapping[str, str]) -> Enforcer:
        """The process's policy enforcer (one for every service, reading
        ``DATA_DIR/policy.yaml``) with ``defaults`` registered."""
        enforcer: Enforcer | None = self.extras.get("enforcer")
        if enforcer is None:
            enforcer = Enforcer(defaults, self.settings.path("policy.yaml"))
            self.extras["enforcer"] = enforcer
        else:
            enforcer.register(defaults)
        return enforcer

    def service_credentials(self, service_type: str) -> ServiceCredentials:
        """The service user of ``service_type`` (``image`` -> ``glance``).

        Raises:
            LookupError: the process made no service user for that type.
        """
        try:
            return self.service_users[service_type]
        except KeyError:
            raise LookupError(f"no service user for {service_type!r}") from None

    def service_session(self, service_type: str) -> ServiceSession:
        """A new identity session authenticated as the service user of
        ``service_type``, over ``http`` (build one per service and keep it: it
        caches the token)."""
        if self.http is None:
            raise RuntimeError("Runtime.http is not set")
        return ServiceSession.from_credentials(
            self.http, self.service_credentials(service_type), auth_path=self.identity_path
        )

    def on_startup(self, hook: Hook) -> None:
        """Run ``hook`` once the cloud is bootstrapped, before serving (for example
        ``TaskRunner.start``)."""
        self.startup.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        """Run ``hook`` when the process stops, before the database closes; hooks
        run in the reverse order of registration (for example ``TaskRunner.stop``)."""
        self.shutdown.append(hook)


@dataclass(frozen=True)
class ServiceSpec:
    """How to run a service: its URL prefix, migrations, catalog entries and app."""

    service_type: str
    prefix: str
    migrations: Path
    catalog: tuple[CatalogEntry, ...]
    build: Callable[[Runtime], Awaitable[ASGIApp]]
