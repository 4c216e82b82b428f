"""Everything the compute handlers share, built once when the service starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request

from onestack.core.auth import TokenValidator
from onestack.core.config import ComputeSettings, Settings
from onestack.core.db import Database
from onestack.core.policy import Enforcer


@dataclass
class ComputeState:
    settings: Settings
    db: Database
    enforcer: Enforcer
    validator: TokenValidator
    http: httpx.AsyncClient | None = None  # every service's public API (identity's here)
    identity_path: str = "/identity/v3"
    extras: dict[str, Any] = field(default_factory=dict)
    # set by app.build once the servers machinery exists
    driver: Any = None  # drivers.base.Driver
    tasks: Any = None  # core.tasks.TaskRunner over compute_tasks
    session: Any = None  # core.clients.identity.ServiceSession of the nova user
    host: str = ""  # this compute host's name (bindings, hypervisor_hostname)
    node_id: int | None = None  # this host's compute_nodes row

    @property
    def conf(self) -> ComputeSettings:
        return self.settings.compute


def get_state(request: Request) -> ComputeState:
    st: ComputeState = request.app.state.compute
    return st
