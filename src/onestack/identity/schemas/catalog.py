"""Request bodies of ``/v3/regions``, ``/v3/services``, ``/v3/endpoints`` and the
deprecated ``/v3/policies``, after Keystone's catalog and policy schemas: unknown
attributes are allowed (Keystone keeps them in ``extra`` and returns them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, StringConstraints

RegionId = Annotated[StrictStr, StringConstraints(min_length=1, max_length=255)]
Description = Annotated[StrictStr, StringConstraints(max_length=255)]
ServiceText = Annotated[StrictStr, StringConstraints(min_length=1, max_length=255)]
Url = Annotated[StrictStr, StringConstraints(max_length=225, pattern=r"^[a-zA-Z0-9+.-]+:.+")]
Interface = Literal["admin", "internal", "public"]


class _Open(BaseModel):
    """A resource body that keeps unknown attributes (``model_extra``)."""

    model_config = ConfigDict(extra="allow")

    def given(self) -> dict[str, Any]:
        """Every attribute the client sent, known or not."""
        out = {k: getattr(self, k) for k in self.model_fields_set}
        out.update(self.model_extra or {})
        return out


class RegionCreate(_Open):
    # an empty id means "generate one", as in Keystone
    id: Annotated[StrictStr, StringConstraints(max_length=255)] | None = None
    description: Description | None = None
    parent_region_id: RegionId | None = None


class RegionUpdate(_Open):
    id: RegionId | None = None
    description: Description | None = None
    parent_region_id: RegionId | None = None


class ServiceCreate(_Open):
    type: ServiceText
    name: ServiceText | None = None
    enabled: StrictBool | None = None


class ServiceUpdate(_Open):
    type: ServiceText | None = None
    name: ServiceText | None = None
    enabled: StrictBool | None = None


class EndpointCreate(_Open):
    id: StrictStr | None = None
    interface: Interface
    service_id: StrictStr
    url: Url
    region_id: StrictStr | None = None
    region: StrictStr | None = None
    enabled: StrictBool | None = None
    description: StrictStr | None = None
    name: StrictStr | None = None


class EndpointUpdate(_Open):
    interface: Interface | None = None
    service_id: StrictStr | None = None
    url: Url | None = None
    region_id: StrictStr | None = None
    region: StrictStr | None = None
    enabled: StrictBool | None = None
    description: StrictStr | None = None
    name: StrictStr | None = None


class PolicyCreate(_Open):
    type: Annotated[StrictStr, StringConstraints(max_length=255)]
    blob: StrictStr


class PolicyUpdate(_Open):
    type: Annotated[StrictStr, StringConstraints(max_length=255)] | None = None
    blob: StrictStr | None = None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegionCreateBody(_Body):
    region: RegionCreate


class RegionUpdateBody(_Body):
    region: RegionUpdate


class ServiceCreateBody(_Body):
    service: ServiceCreate


class ServiceUpdateBody(_Body):
    service: ServiceUpdate


class EndpointCreateBody(_Body):
    endpoint: EndpointCreate


class EndpointUpdateBody(_Body):
    endpoint: EndpointUpdate


class PolicyCreateBody(_Body):
    policy: PolicyCreate


class PolicyUpdateBody(_Body):
    policy: PolicyUpdate
