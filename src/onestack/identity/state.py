"""Everything the identity handlers share, built once when the service starts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from onestack.core.config import Settings
from onestack.core.db import Database
from onestack.core.policy import Enforcer
from onestack.identity.fernet import KeyRepository, TokenFormatter
from onestack.identity.passwords import Hasher

if TYPE_CHECKING:
    from onestack.identity.service.tokens import TokenProvider


@dataclass
class IdentityState:
    settings: Settings
    db: Database
    enforcer: Enforcer
    hasher: Hasher
    keys: KeyRepository
    formatter: TokenFormatter
    credential_keys: KeyRepository
    tokens: TokenProvider = field(init=False)
    # Bumped after every committed write: caches (validated tokens, the catalog)
    # compare it, so no write path has to remember which caches it affects.
    generation: int = 0

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction; on commit, identity's in-process caches are dropped."""
        try:
            async with self.db.write() as session:
                yield session
        finally:
            # also after a failure: a partial effect is impossible (rolled back),
            # but bumping is cheap and keeps the rule simple
            self.generation += 1

    def read(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        return self.db.read()


def get_state(request: Request) -> IdentityState:
    state: IdentityState = request.app.state.identity
    return state
