"""Request bodies of ``/v3/registered_limits`` and ``/v3/limits``, after Keystone's
unified limit schemas (no attributes beyond the documented ones)."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

Name = Annotated[StrictStr, StringConstraints(min_length=1, max_length=255, pattern=r"\S")]
RegionId = Annotated[StrictStr, StringConstraints(min_length=1, max_length=255)]
ProjectId = Annotated[
    StrictStr, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9-]+$")
]
Description = Annotated[StrictStr, StringConstraints(max_length=255)]
# -1 means unlimited; the upper bound is what a signed 32-bit column holds
LimitValue = Annotated[StrictInt, Field(ge=-1, le=0x7FFFFFFF)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisteredLimitIn(_Strict):
    service_id: StrictStr
    region_id: RegionId | None = None
    resource_name: Name
    default_limit: LimitValue
    description: Description | None = None


class RegisteredLimitsCreateBody(_Strict):
    registered_limits: Annotated[list[RegisteredLimitIn], Field(min_length=1)]


class RegisteredLimitUpdate(_Strict):
    service_id: StrictStr | None = None
    region_id: RegionId | None = None
    resource_name: Name | None = None
    default_limit: LimitValue | None = None
    description: Description | None = None


class RegisteredLimitUpdateBody(_Strict):
    registered_limit: RegisteredLimitUpdate


class LimitIn(_Strict):
    project_id: ProjectId | None = None
    domain_id: ProjectId | None = None
    service_id: StrictStr
    region_id: RegionId | None = None
    resource_name: Name
    resource_limit: LimitValue
    description: Description | None = None

    @model_validator(mode="after")
    def _one_target(self) -> LimitIn:
        if ("project_id" in self.model_fields_set) == ("domain_id" in self.model_fields_set):
            raise ValueError("a limit names exactly one of project_id and domain_id")
        return self


class LimitsCreateBody(_Strict):
    limits: Annotated[list[LimitIn], Field(min_length=1)]


class LimitUpdate(_Strict):
    resource_limit: LimitValue | None = None
    description: Description | None = None


class LimitUpdateBody(_Strict):
    limit: LimitUpdate
