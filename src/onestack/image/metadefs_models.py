"""Metadata definition tables (prefix ``image_metadef_``): namespaces and what
they hold (objects, property definitions, tags, resource type associations),
and the catalogue of resource types.

Children point at their namespace by an integer id with ``ON DELETE CASCADE``,
so that renaming a namespace touches one row and deleting it removes its
contents. Property definitions and object contents are JSON documents: they are
read and written whole, never queried inside."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from onestack.core.db import UTCDateTime as UTC
from onestack.image.models import Base, utcnow


class MetadefNamespace(Base):
    __tablename__ = "image_metadef_namespace"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(80))
    description: Mapped[str | None] = mapped_column(Text)
    visibility: Mapped[str] = mapped_column(String(32), default="private", index=True)
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str | None] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)


class MetadefResourceType(Base):
    """A kind of resource a namespace can apply to (``OS::Glance::Image`` ...).
    The well-known ones are ``protected``; others appear when a namespace is
    first associated with a new name."""

    __tablename__ = "image_metadef_resource_type"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)


class MetadefAssociation(Base):
    """A namespace applies to a resource type, its property names prefixed with
    ``prefix`` there (``hw_`` on images, ``hw:`` on flavors)."""

    __tablename__ = "image_metadef_association"

    namespace_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("image_metadef_namespace.id", ondelete="CASCADE"), primary_key=True
    )
    resource_type_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("image_metadef_resource_type.id"), primary_key=True, index=True
    )
    prefix: Mapped[str | None] = mapped_column(String(80))
    properties_target: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)


class MetadefObject(Base):
    __tablename__ = "image_metadef_object"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("image_metadef_namespace.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str | None] = mapped_column(Text)
    required: Mapped[list[str] | None] = mapped_column(JSON)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)


class MetadefProperty(Base):
    """A property definition: ``definition`` is its JSON-Schema-like document
    (title, type, enum, minimum ...) without the name."""

    __tablename__ = "image_metadef_property"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("image_metadef_namespace.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(80))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)


class MetadefTag(Base):
    __tablename__ = "image_metadef_tag"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("image_metadef_namespace.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
