"""Request bodies of ``/v3/roles``, after Keystone's role schema: ``name`` is
required on create, ``options`` only knows ``immutable``, and any other attribute
is kept (in ``extra``) and returned."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, StringConstraints

RoleName = Annotated[StrictStr, StringConstraints(min_length=1, max_length=255, pattern=r"\S")]
IdString = Annotated[
    StrictStr, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9-]+$")
]

# attributes a role has as columns; everything else a client sends goes to extra
ROLE_ATTRIBUTES = ("id", "name", "domain_id", "description", "options", "links")


class RoleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    immutable: StrictBool | None = None

    def given(self) -> dict[str, Any]:
        """The options the client named (``None`` means: remove the option)."""
        return {k: getattr(self, k) for k in self.model_fields_set}


class _RoleFields(BaseModel):
    model_config = ConfigDict(extra="allow")

    description: StrictStr | None = None
    domain_id: IdString | None = None
    options: RoleOptions = Field(default_factory=RoleOptions)

    def extra_attributes(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items() if k not in ROLE_ATTRIBUTES}


class RoleCreate(_RoleFields):
    name: RoleName


class RoleUpdate(_RoleFields):
    name: RoleName | None = None
    id: Any = None


class RoleCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: RoleCreate


class RoleUpdateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: RoleUpdate
