"""Everything the identity handlers share, built once when the service starts."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from onestack.core.config import Settings
from onestack.core.db import Database
from onestack.core.policy import Enforcer
from onestack.identity.fernet import KeyRepository, TokenFormatter
from onestack.identity.passwords import Hasher

if TYPE_CHECKING:
    from onestack.identity.service.tokens import TokenProvider


class GenerationCache:
    """A read-through cache of identity look-ups, valid while no write has been
    committed in this process (``IdentityState.generation``) and for at most
    ``ttl`` seconds, which bounds staleness when another host makes the write."""

    def __init__(self, st: IdentityState, *, ttl: float = 30.0, size: int = 10000):
        self.st = st
        self.ttl = ttl
        self.size = size
        self._items: dict[Hashable, tuple[int, float, Any]] = {}

    def get(self, key: Hashable) -> Any:
        hit = self._items.get(key)
        if hit is None:
            return None
        generation, stored, value = hit
        if generation != self.st.generation or time.monotonic() - stored > self.ttl:
            del self._items[key]
            return None
        return value

    def put(self, key: Hashable, value: Any) -> None:
        if len(self._items) >= self.size:
            self._items.clear()
        self._items[key] = (self.st.generation, time.monotonic(), value)


class LazySession:
    """A read session opened on first use, so that a request answered from the
    caches never touches the database."""

    def __init__(self, db: Database):
        self._db = db
        self._cm: contextlib.AbstractAsyncContextManager[AsyncSession] | None = None
        self._session: AsyncSession | None = None

    async def __call__(self) -> AsyncSession:
        if self._session is None:
            self._cm = self._db.read()
            self._session = await self._cm.__aenter__()
        return self._session

    async def __aenter__(self) -> LazySession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(None, None, None)


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
    lookups: GenerationCache = field(init=False)
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

    def __post_init__(self) -> None:
        self.lookups = GenerationCache(self)

    def lazy_read(self) -> LazySession:
        return LazySession(self.db)

    def read(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        return self.db.read()


def get_state(request: Request) -> IdentityState:
    state: IdentityState = request.app.state.identity
    return state
