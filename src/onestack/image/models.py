"""Image tables (prefix ``image_``). Ids are uuid4 strings with dashes, as Glance
makes them. Custom properties, tags, members and locations have their own tables
so that list filters (``?os_distro=debian``, ``?tag=x``, ``?member_status=``)
are SQL conditions rather than scans."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
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
from sqlalchemy.orm import Mapped, mapped_column, relationship

from onestack.core.db import UTCDateTime as UTC
from onestack.core.db import make_base
from onestack.core.tasks import task_table

Base = make_base()


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Image(Base):
    __tablename__ = "image_image"
    __table_args__ = (
        Index("ix_image_image_owner_status", "owner", "status"),
        Index("ix_image_image_visibility", "visibility"),
        Index("ix_image_image_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(30), default="queued")
    visibility: Mapped[str] = mapped_column(String(20), default="shared")
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    os_hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(BigInteger)
    virtual_size: Mapped[int | None] = mapped_column(BigInteger)
    checksum: Mapped[str | None] = mapped_column(String(32))
    os_hash_algo: Mapped[str | None] = mapped_column(String(64))
    os_hash_value: Mapped[str | None] = mapped_column(String(128))
    min_disk: Mapped[int] = mapped_column(Integer, default=0)
    min_ram: Mapped[int] = mapped_column(Integer, default=0)
    disk_format: Mapped[str | None] = mapped_column(String(32))
    container_format: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    # Who holds the data path (an upload or an import): "<host>:<pid>:<uuid>"; a
    # restart resets the images its own host left half-uploaded.
    data_holder: Mapped[str | None] = mapped_column(String(255))
    staged_size: Mapped[int | None] = mapped_column(BigInteger)

    properties: Mapped[list[ImageProperty]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", passive_deletes=True
    )
    tags: Mapped[list[ImageTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", passive_deletes=True
    )
    locations: Mapped[list[ImageLocation]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", passive_deletes=True,
        order_by="ImageLocation.position",
    )


class ImageProperty(Base):
    __tablename__ = "image_property"
    __table_args__ = (Index("ix_image_property_name", "name"),)

    image_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("image_image.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ImageTag(Base):
    __tablename__ = "image_tag"
    __table_args__ = (Index("ix_image_tag_value", "value"),)

    image_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("image_image.id", ondelete="CASCADE"), primary_key=True
    )
    value: Mapped[str] = mapped_column(String(255), primary_key=True)


class ImageLocation(Base):
    """Where an image's data is: one row per store holding a copy."""

    __tablename__ = "image_location"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("image_image.id", ondelete="CASCADE"), index=True
    )
    store: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)


class ImageMember(Base):
    __tablename__ = "image_member"
    __table_args__ = (UniqueConstraint("image_id", "member"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("image_image.id", ondelete="CASCADE"), index=True
    )
    member: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)


class Task(Base):
    """Glance's task resource (``/v2/tasks``): what a client sees of an import.
    The work itself runs as a durable job (``core.tasks``)."""

    __tablename__ = "image_task"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(30), default="pending")
    owner: Mapped[str | None] = mapped_column(String(255), index=True)
    input: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text, default="")
    image_id: Mapped[str | None] = mapped_column(String(36), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(UTC)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)


# Durable background jobs (imports, data deletion): ``image_job_tasks``.
Job = task_table(Base, "image_job_")

from onestack.image import metadefs_models  # noqa: F401,E402  (metadefs tables, for migrations)
