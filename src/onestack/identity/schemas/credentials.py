"""Request bodies of ``/v3/credentials``, the OS-EC2 extension and application
credentials, after Keystone's credential and application credential schemas."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictStr,
    StringConstraints,
    model_validator,
)

Name = Annotated[StrictStr, StringConstraints(min_length=1, max_length=255, pattern=r"\S")]
IdString = Annotated[
    StrictStr, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9-]+$")
]
Method = Literal["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"]

CREDENTIAL_ATTRS = ("id", "user_id", "project_id", "type", "blob", "links")


class _CredentialFields(BaseModel):
    model_config = ConfigDict(extra="allow")

    def given(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.model_fields_set}
        out.update(self.model_extra or {})
        return out


class CredentialCreate(_CredentialFields):
    id: StrictStr | None = None
    blob: StrictStr
    type: StrictStr
    user_id: StrictStr
    project_id: StrictStr | None = None

    @model_validator(mode="after")
    def _ec2_needs_project(self) -> CredentialCreate:
        if self.type == "ec2" and "project_id" not in self.model_fields_set:
            raise ValueError("'project_id' is a required property for an ec2 credential")
        return self


class CredentialUpdate(_CredentialFields):
    id: StrictStr | None = None
    blob: StrictStr | None = None
    type: StrictStr | None = None
    user_id: StrictStr | None = None
    project_id: StrictStr | None = None


class CredentialCreateBody(BaseModel):
    credential: CredentialCreate


class CredentialUpdateBody(BaseModel):
    credential: CredentialUpdate


class Ec2CreateBody(BaseModel):
    """``POST /v3/users/{user_id}/credentials/OS-EC2``."""

    tenant_id: StrictStr


class AccessRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: IdString | None = None
    path: Annotated[StrictStr, StringConstraints(max_length=225, pattern=r"^/")] | None = None
    service: IdString | None = None
    method: Method | None = None


class RoleRef(BaseModel):
    """A role by id or by name (exactly one of them)."""

    model_config = ConfigDict(extra="forbid")

    id: IdString | None = None
    name: Name | None = None

    @model_validator(mode="after")
    def _one(self) -> RoleRef:
        if len(self.model_fields_set) != 1:
            raise ValueError("a role is named by exactly one of 'id' or 'name'")
        return self


class AppCredCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StrictStr | None = None
    name: Name
    secret: StrictStr | None = None
    description: StrictStr | None = None
    expires_at: StrictStr | None = None
    project_id: StrictStr | None = None
    roles: list[RoleRef] | None = None
    access_rules: list[AccessRuleIn] | None = None
    unrestricted: StrictBool | None = None
    system: StrictStr | None = None


class AppCredCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    application_credential: AppCredCreate
