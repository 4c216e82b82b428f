"""Account, container and object records of the object storage service (prefix
``objstore_``); the objects' data lives in the ring, not here.

Swift lists names in the order of their UTF-8 bytes, and its middlewares use
names holding NUL (``\x00versions\x00...``, Swift's reserved names), so names
are stored in a type that holds any UTF-8 text and compares by its bytes on each
database: ``BYTEA`` on PostgreSQL (whose text cannot hold NUL; ``COLLATE "C"``
would otherwise do), ``VARBINARY`` on MariaDB/MySQL (whose text collations
ignore case), plain text on SQLite (which compares text with ``memcmp``).
Timestamps are Swift's normal form (``1700000000.12345``): fixed width, so they
also compare correctly as strings. Metadata is the stored headers
(``X-Container-Meta-Color`` -> value) as a JSON object.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from onestack.core.db import make_base

Base = make_base()

ZERO = "0000000000.00000"  # Swift's Timestamp.zero(): "never"
# Twice Swift's name limits (bytes), as Swift allows for reserved names (a
# versions container or version's name wraps the name it is for).
ACCOUNT_NAME_BYTES = 512
CONTAINER_NAME_BYTES = 512
OBJECT_NAME_BYTES = 2048


class _VarbinaryText(mysql.VARBINARY):
    """``VARBINARY`` bound as text: MariaDB stores and compares the text's bytes in
    the connection's character set (utf8mb4) when the other side is binary, and
    aiomysql cannot bind ``bytes`` with PyMySQL 1.2."""

    def bind_processor(self, dialect: Dialect) -> None:
        return None


class Name(TypeDecorator[str]):
    """A name that sorts and compares by its UTF-8 bytes on every database."""

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.BYTEA())
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(_VarbinaryText(self.length))
        return dialect.type_descriptor(String(self.length))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, str) and dialect.name == "postgresql":
            return value.encode("utf-8")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8")
        return value


class Account(Base):
    """A Swift account (``AUTH_<project>``). Created on first write (account
    autocreate); a deleted one stays, marked, as Swift keeps its database."""

    __tablename__ = "objstore_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Name(ACCOUNT_NAME_BYTES), unique=True)
    created_at: Mapped[str] = mapped_column(String(16))
    put_timestamp: Mapped[str] = mapped_column(String(16))
    delete_timestamp: Mapped[str] = mapped_column(String(16), default=ZERO)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    meta: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)


class Container(Base):
    """A container; ``object_count``/``bytes_used`` change in the same transaction
    as the object rows, by increments (``n = n + d``)."""

    __tablename__ = "objstore_container"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("objstore_account.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(Name(CONTAINER_NAME_BYTES))
    created_at: Mapped[str] = mapped_column(String(16))
    put_timestamp: Mapped[str] = mapped_column(String(16))
    meta: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    object_count: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_used: Mapped[int] = mapped_column(BigInteger, default=0)


class Object(Base):
    """The newest known version of an object name: live, or a tombstone
    (``deleted``) kept so that an older PUT finishing late cannot bring back
    what a newer DELETE removed."""

    __tablename__ = "objstore_object"
    __table_args__ = (Index("ix_objstore_object_delete_at", "delete_at"),)

    container_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("objstore_container.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(Name(OBJECT_NAME_BYTES), primary_key=True)
    timestamp: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    content_type: Mapped[str] = mapped_column(Text, default="")
    etag: Mapped[str] = mapped_column(Text, default="")
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    delete_at: Mapped[int | None] = mapped_column(BigInteger)
