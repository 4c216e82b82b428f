"""Identity tables. Names carry the ``identity_`` prefix; ids are uuid4 hex as
Keystone makes them, except the well-known domain ``default``.

Domains are projects with ``is_domain`` set, as in Keystone, so that domain and
project ids never collide and ``GET /v3/projects?is_domain=true`` lists domains.
A domain's own ``domain_id`` is the ``ROOT_DOMAIN`` sentinel, and a global role's
``domain_id`` is ``NULL_DOMAIN``, so that unique constraints over
``(domain_id, name)`` hold for them too (SQL treats NULLs as all different).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from onestack.core.db import UTCDateTime as UTC
from onestack.core.db import make_base

Base = make_base()

ROOT_DOMAIN = "<<keystone.domain.root>>"
NULL_DOMAIN = "<<null>>"
DEFAULT_DOMAIN = "default"


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Project(Base):
    __tablename__ = "identity_project"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64))
    domain_id: Mapped[str] = mapped_column(String(64), index=True)
    parent_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("identity_project.id"), index=True
    )
    is_domain: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ProjectTag(Base):
    __tablename__ = "identity_project_tag"

    project_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("identity_project.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)


class User(Base):
    __tablename__ = "identity_user"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    domain_id: Mapped[str] = mapped_column(String(64), ForeignKey("identity_project.id"))
    name: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    default_project_id: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    last_active_at: Mapped[datetime | None] = mapped_column(UTC)
    failed_auth_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_auth_at: Mapped[datetime | None] = mapped_column(UTC)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Password(Base):
    """Every password a user has had; the newest is the current one (history
    rules look at the older ones)."""

    __tablename__ = "identity_password"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("identity_user.id", ondelete="CASCADE"), index=True
    )
    hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTC)
    self_service: Mapped[bool] = mapped_column(Boolean, default=False)


class Group(Base):
    __tablename__ = "identity_group"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    domain_id: Mapped[str] = mapped_column(String(64), ForeignKey("identity_project.id"))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Membership(Base):
    __tablename__ = "identity_membership"

    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("identity_user.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("identity_group.id", ondelete="CASCADE"), primary_key=True
    )


class Role(Base):
    __tablename__ = "identity_role"
    __table_args__ = (UniqueConstraint("name", "domain_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(String(64), default=NULL_DOMAIN)
    description: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ImpliedRole(Base):
    __tablename__ = "identity_implied_role"

    prior_role_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("identity_role.id", ondelete="CASCADE"), primary_key=True
    )
    implied_role_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("identity_role.id", ondelete="CASCADE"), primary_key=True
    )


class Assignment(Base):
    """A role granted to an actor (user or group) on a target (project, domain or
    the system, whose target id is ``system``)."""

    __tablename__ = "identity_assignment"

    type: Mapped[str] = mapped_column(String(16), primary_key=True)  # see ASSIGNMENT_TYPES
    actor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    role_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("identity_role.id", ondelete="CASCADE"), primary_key=True
    )
    inherited: Mapped[bool] = mapped_column(Boolean, primary_key=True, default=False)


ASSIGNMENT_TYPES = (
    "UserProject",
    "GroupProject",
    "UserDomain",
    "GroupDomain",
    "UserSystem",
    "GroupSystem",
)


class Region(Base):
    __tablename__ = "identity_region"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    parent_region_id: Mapped[str | None] = mapped_column(String(255))
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Service(Base):
    __tablename__ = "identity_service"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # name, description ...


class Endpoint(Base):
    __tablename__ = "identity_endpoint"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("identity_service.id"), index=True
    )
    interface: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(Text)
    region_id: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Credential(Base):
    """A user's credential; ``blob`` is kept encrypted with the credential keys."""

    __tablename__ = "identity_credential"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[str | None] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(255))
    encrypted_blob: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(String(64))
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApplicationCredential(Base):
    __tablename__ = "identity_application_credential"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("identity_user.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str | None] = mapped_column(String(64))
    system: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(UTC)
    unrestricted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTC, default=utcnow)


class ApplicationCredentialRole(Base):
    __tablename__ = "identity_application_credential_role"

    application_credential_id: Mapped[str] = mapped_column(
        String(64),
        ForeignKey("identity_application_credential.id", ondelete="CASCADE"),
        primary_key=True,
    )
    role_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class AccessRule(Base):
    __tablename__ = "identity_access_rule"
    __table_args__ = (UniqueConstraint("user_id", "service", "path", "method"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("identity_user.id", ondelete="CASCADE"), index=True
    )
    service: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(16))


class ApplicationCredentialAccessRule(Base):
    __tablename__ = "identity_application_credential_access_rule"

    application_credential_id: Mapped[str] = mapped_column(
        String(64),
        ForeignKey("identity_application_credential.id", ondelete="CASCADE"),
        primary_key=True,
    )
    access_rule_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("identity_access_rule.id"), primary_key=True
    )


class RegisteredLimit(Base):
    __tablename__ = "identity_registered_limit"
    __table_args__ = (UniqueConstraint("service_id", "region_id", "resource_name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(String(64), ForeignKey("identity_service.id"))
    region_id: Mapped[str | None] = mapped_column(String(255))
    resource_name: Mapped[str] = mapped_column(String(255))
    default_limit: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)


class Limit(Base):
    __tablename__ = "identity_limit"
    __table_args__ = (
        UniqueConstraint("project_id", "domain_id", "service_id", "region_id", "resource_name"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    project_id: Mapped[str | None] = mapped_column(String(64), index=True)
    domain_id: Mapped[str | None] = mapped_column(String(64))
    service_id: Mapped[str] = mapped_column(String(64), ForeignKey("identity_service.id"))
    region_id: Mapped[str | None] = mapped_column(String(255))
    resource_name: Mapped[str] = mapped_column(String(255))
    resource_limit: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)


class RevocationEvent(Base):
    """Keystone's revocation events: a token is revoked if an event matches it and
    the token was issued before the event's ``issued_before``."""

    __tablename__ = "identity_revocation_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str | None] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64))
    domain_id: Mapped[str | None] = mapped_column(String(64))
    role_id: Mapped[str | None] = mapped_column(String(64))
    audit_id: Mapped[str | None] = mapped_column(String(32))
    audit_chain_id: Mapped[str | None] = mapped_column(String(32))
    issued_before: Mapped[datetime] = mapped_column(UTC)
    expires_at: Mapped[datetime | None] = mapped_column(UTC)
    revoked_at: Mapped[datetime] = mapped_column(UTC, default=utcnow, index=True)


class Policy(Base):
    """The deprecated ``/v3/policies`` blobs (stored, never enforced), kept because
    clients and Tempest still exercise the API."""

    __tablename__ = "identity_policy"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(255))
    blob: Mapped[str] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
