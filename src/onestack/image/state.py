"""Everything the image handlers share, built once when the service starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from onestack.core.auth import TokenValidator
from onestack.core.config import ImageSettings, Settings
from onestack.core.db import Database
from onestack.core.policy import Enforcer

if TYPE_CHECKING:
    from onestack.image.stores.base import Store


@dataclass
class ImageState:
    settings: Settings
    db: Database
    enforcer: Enforcer
    validator: TokenValidator
    stores: dict[str, Store]
    staging: Store
    holder: str
    limits: Any = None  # core.clients.identity.LimitsClient, when the identity service is reachable
    jobs: Any = None  # core.tasks.TaskRunner
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def conf(self) -> ImageSettings:
        return self.settings.image

    @property
    def default_store(self) -> Store:
        return self.stores[self.conf.default_store]


def get_state(request: Request) -> ImageState:
    st: ImageState = request.app.state.image
    return st
