"""Database access: an async engine per process and the transaction helpers.

SQLite (WAL) under the data dir is the default; PostgreSQL (asyncpg) and MariaDB
(aiomysql) are selected by ``database_url``. SQLite allows one writer at a time,
so write transactions are serialised in-process by a lock rather than left to
fail with "database is locked" under concurrency; readers never wait (WAL).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored naive in UTC (SQLite and MariaDB keep no zone), read back
    timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None else None


def make_base() -> type[DeclarativeBase]:
    """A declarative base with its own MetaData: one per service, so each service
    owns its tables and its migration branch."""

    class Base(DeclarativeBase):
        metadata = MetaData(naming_convention=NAMING_CONVENTION)

    return Base


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # SQLAlchemy, not pysqlite, opens transactions (see _sqlite_begin)
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    """Open the transaction explicitly: pysqlite itself began one only before a
    data-changing statement, so a SAVEPOINT as a transaction's first write ran
    outside any transaction and its RELEASE committed it, even if the rest of
    the transaction then rolled back (SQLAlchemy's documented recipe)."""
    conn.exec_driver_sql("BEGIN")


class Database:
    """One engine and session factory; ``read()`` and ``write()`` open sessions."""

    def __init__(self, url: str, *, echo: bool = False):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite and ":memory:" in url:
            kwargs["poolclass"] = NullPool
        elif not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True, pool_recycle=3600)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for queries; nothing it does is committed."""
        async with self._sessions() as session:
            yield session

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed when the block ends without error
        and rolled back otherwise."""
        if self._write_lock is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._sessions() as session, session.begin():
            yield session

    async def close(self) -> None:
        await self.engine.dispose()
