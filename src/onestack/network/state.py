"""Everything the networking handlers share, built once when the service starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from onestack.core.auth import TokenValidator
from onestack.core.config import NetworkSettings, Settings
from onestack.core.db import Database
from onestack.core.policy import Enforcer


@dataclass
class NetworkState:
    settings: Settings
    db: Database
    enforcer: Enforcer
    validator: TokenValidator
    host: str
    tasks: Any = None  # core.tasks.TaskRunner (the data-plane agent's work)
    agent: Any = None  # network.agent.Agent, when this process runs one
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def conf(self) -> NetworkSettings:
        return self.settings.network


def get_state(request: Request) -> NetworkState:
    st: NetworkState = request.app.state.network
    return st
