"""What a service gives the process that runs it, and what it gets from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onestack.core.auth import TokenValidator
from onestack.core.config import Settings
from onestack.core.db import Database
from onestack.core.types import ASGIApp


@dataclass(frozen=True)
class CatalogEntry:
    """One catalog service this service publishes, at ``<base_url><prefix><path>``."""

    service_type: str
    name: str
    path: str = ""


@dataclass
class Runtime:
    """Shared resources of the process, handed to each service when it is built."""

    settings: Settings
    db: Database
    validator: TokenValidator | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceSpec:
    """How to run a service: its URL prefix, migrations, catalog entries and app."""

    service_type: str
    prefix: str
    migrations: Path
    catalog: tuple[CatalogEntry, ...]
    build: Callable[[Runtime], Awaitable[ASGIApp]]
