"""Microversion negotiation (``OpenStack-API-Version``), for compute and block storage.

A request names a version with ``OpenStack-API-Version: <service-type> <X.Y>`` (or
``latest``), or with a service's legacy header such as
``X-OpenStack-Nova-API-Version``. No header means the minimum. A version outside
the service's range is answered 406; a malformed one 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from starlette.datastructures import Headers

from onestack.core.errors import BadRequest, NotAcceptable

_VERSION = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


@total_ordering
@dataclass(frozen=True)
class APIVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> APIVersion:
        m = _VERSION.match(text.strip())
        if not m:
            raise BadRequest(f"API version string {text} format is not valid.")
        return cls(int(m.group(1)), int(m.group(2)))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, APIVersion):
            return NotImplemented
        return (self.major, self.minor) < (other.major, other.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def matches(self, minimum: str, maximum: str | None = None) -> bool:
        """True if this version is in [minimum, maximum] (maximum open if None)."""
        if self < APIVersion.parse(minimum):
            return False
        return maximum is None or self <= APIVersion.parse(maximum)


@dataclass(frozen=True)
class VersionRange:
    service_type: str
    minimum: APIVersion
    maximum: APIVersion
    legacy_header: str | None = None

    def negotiate(self, headers: Headers) -> APIVersion:
        """The version a request asks for.

        Raises:
            BadRequest: the header is malformed.
            NotAcceptable: the version is outside this service's range.
        """
        requested = None
        for value in headers.getlist("openstack-api-version"):
            for part in value.split(","):
                words = part.split()
                if len(words) == 2 and words[0].lower() == self.service_type:
                    requested = words[1]
        if requested is None and self.legacy_header:
            requested = headers.get(self.legacy_header)
        if requested is None:
            return self.minimum
        if requested.strip().lower() == "latest":
            return self.maximum
        version = APIVersion.parse(requested)
        if not self.minimum <= version <= self.maximum:
            raise NotAcceptable(
                f"Version {version} is not supported by the API. Minimum is "
                f"{self.minimum} and maximum is {self.maximum}."
            )
        return version

    def response_headers(self, version: APIVersion) -> dict[str, str]:
        out = {
            "OpenStack-API-Version": f"{self.service_type} {version}",
            "Vary": "OpenStack-API-Version",
        }
        if self.legacy_header:
            out[self.legacy_header] = str(version)
            out["Vary"] += f", {self.legacy_header}"
        return out
