"""Password hashing with Argon2id (a memory-hard KDF), verified in a worker thread.

Verifying costs tens of milliseconds by design, which would make password
authentication the bottleneck of every token request. A successful check is
therefore remembered for a few minutes as an HMAC, under a key that lives only in
this process's memory, of (stored hash, password): a repeat of the same
password for the same stored hash skips the KDF; anything else (another password,
a changed password, a restart) pays it in full.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from onestack.core.concurrency import run_blocking

_MEMO_TTL = 300.0
_MEMO_SIZE = 10000


class Hasher:
    def __init__(self, *, time_cost: int = 2, memory_cost_kib: int = 19456):
        self._ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=1)
        self._key = secrets.token_bytes(32)
        self._memo: dict[bytes, float] = {}

    async def hash(self, password: str) -> str:
        return await run_blocking(self._ph.hash, password)

    def _memo_key(self, stored: str, password: str) -> bytes:
        return hmac.new(self._key, f"{stored}\0{password}".encode(), hashlib.sha256).digest()

    async def verify(self, stored: str, password: str) -> bool:
        """True if ``password`` matches ``stored``; never raises for a bad hash."""
        key = self._memo_key(stored, password)
        seen = self._memo.get(key)
        if seen is not None and time.monotonic() - seen < _MEMO_TTL:
            return True
        try:
            await run_blocking(self._ph.verify, stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = time.monotonic()
        return True

    async def dummy_verify(self) -> None:
        """Spend the time of one verification, so that an unknown user takes as
        long to refuse as a wrong password (no user enumeration by timing)."""
        await run_blocking(self._ph.hash, "x")
