"""Wire format of users and groups: request bodies after Keystone's identity
schema, and the response shape (passwords are never shown).

Attributes beyond the documented ones (``email`` ...) are kept in ``extra`` and
returned. User ``options`` accept Keystone's documented option names only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictStr,
    StringConstraints,
    field_validator,
)
from starlette.requests import Request

from onestack.core.errors import BadRequest
from onestack.identity.api.common import v3_url
from onestack.identity.models import Group, User
from onestack.identity.schemas.resources import IdString, normalize_key

IdentityName = Annotated[StrictStr, StringConstraints(min_length=1, max_length=255, pattern=r"\S")]

USER_RESERVED = frozenset({
    "id", "name", "domain_id", "default_project_id", "description", "enabled", "password",
    "options", "federated", "links", "password_expires_at",
})
GROUP_RESERVED = frozenset({"id", "name", "domain_id", "description", "links"})
MFA_RULES_MESSAGE = (
    "Invalid data type, must be a list of lists comprised of strings. Sub-lists may not "
    "be duplicated. Strings in sub-lists may not be duplicated."
)


class UserOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ignore_change_password_upon_first_use: StrictBool | None = None
    ignore_password_expiry: StrictBool | None = None
    ignore_lockout_failure_attempts: StrictBool | None = None
    lock_password: StrictBool | None = None
    ignore_user_inactivity: StrictBool | None = None
    multi_factor_auth_rules: list[list[StrictStr]] | None = None
    multi_factor_auth_enabled: StrictBool | None = None

    @field_validator("multi_factor_auth_rules")
    @classmethod
    def _rules(cls, value: list[list[str]] | None) -> list[list[str]] | None:
        for i, rule in enumerate(value or []):
            if not rule or rule in (value or [])[:i] or len(set(rule)) != len(rule):
                raise ValueError(MFA_RULES_MESSAGE)
        return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")
    reserved: ClassVar[frozenset[str]] = GROUP_RESERVED

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if isinstance(value, BaseModel):
                value = {k: getattr(value, k) for k in value.model_fields_set}
            out[name] = value
        return out

    def extra(self) -> dict[str, Any]:
        items = (self.model_extra or {}).items()
        return {normalize_key(k): v for k, v in items if normalize_key(k) not in self.reserved}


class _UserFields(_Body):
    reserved: ClassVar[frozenset[str]] = USER_RESERVED

    default_project_id: StrictStr | None = None
    description: StrictStr | None = None
    enabled: StrictBool = True
    password: StrictStr | None = None
    options: UserOptions | None = None
    federated: list[Any] | None = None


class UserCreate(_UserFields):
    name: IdentityName
    domain_id: IdString | None = None


class UserUpdate(_UserFields):
    name: IdentityName | None = None
    domain_id: StrictStr | None = None
    id: Any = None


class GroupCreate(_Body):
    name: IdentityName
    domain_id: IdString | None = None
    description: StrictStr | None = None


class GroupUpdate(_Body):
    name: IdentityName | None = None
    domain_id: StrictStr | None = None
    description: StrictStr | None = None
    id: Any = None


class UserCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: UserCreate


class UserUpdateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: UserUpdate


class GroupCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group: GroupCreate


class GroupUpdateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group: GroupUpdate


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    original_password: StrictStr
    password: StrictStr


class PasswordChangeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user: PasswordChange


def timestamp(value: datetime | None) -> str | None:
    """Keystone's format for ``password_expires_at``."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def user_view(request: Request, u: User, expires: datetime | None) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in (u.extra or {}).items() if k not in USER_RESERVED}
    out.update(
        id=u.id, name=u.name, domain_id=u.domain_id, enabled=u.enabled,
        password_expires_at=timestamp(expires), options=dict(u.options or {}),
        links={"self": v3_url(request, "users", u.id)},
    )
    if u.default_project_id:
        out["default_project_id"] = u.default_project_id
    if u.description is not None:
        out["description"] = u.description
    return out


def group_view(request: Request, g: Group, *, membership: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in (g.extra or {}).items() if k not in GROUP_RESERVED}
    out.update(
        id=g.id, name=g.name, domain_id=g.domain_id, description=g.description or "",
        links={"self": v3_url(request, "groups", g.id)},
    )
    if membership:
        out["membership_expires_at"] = None
    return out


_OPERATORS = {
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b, "eq": lambda a, b: a == b, "neq": lambda a, b: a != b,
}


def expiry_filter(raw: str) -> Any:
    """Keystone's ``password_expires_at={op}:{timestamp}`` as a predicate."""
    op, stamp = raw.split(":", 1) if ":" in raw[2:4] else ("eq", raw)
    if op not in _OPERATORS:
        raise BadRequest(f"The given operator {op} is not valid.")
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        raise BadRequest("Timestamp not in expected format.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    compare = _OPERATORS[op]
    return lambda expires: expires is not None and compare(expires, when)
