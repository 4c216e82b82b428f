from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from onestack.core.errors import BadRequest, NotAcceptable
from onestack.core.microversion import APIVersion, VersionRange

NOVA = VersionRange("compute", APIVersion(2, 1), APIVersion(2, 96), "X-OpenStack-Nova-API-Version")


def h(**kw: str) -> Headers:
    return Headers({k.replace("_", "-"): v for k, v in kw.items()})


def test_no_header_is_the_minimum() -> None:
    assert NOVA.negotiate(h()) == APIVersion(2, 1)


def test_standard_and_legacy_headers_and_latest() -> None:
    assert NOVA.negotiate(h(OpenStack_API_Version="compute 2.53")) == APIVersion(2, 53)
    assert NOVA.negotiate(h(X_OpenStack_Nova_API_Version="2.10")) == APIVersion(2, 10)
    assert NOVA.negotiate(h(OpenStack_API_Version="compute latest")) == APIVersion(2, 96)
    # another service's entry in the same header is ignored
    assert NOVA.negotiate(h(OpenStack_API_Version="volume 3.50")) == APIVersion(2, 1)
    assert NOVA.negotiate(h(OpenStack_API_Version="volume 3.5, compute 2.7")) == APIVersion(2, 7)


def test_out_of_range_is_406_and_malformed_is_400() -> None:
    with pytest.raises(NotAcceptable, match="Minimum is 2.1 and maximum is 2.96"):
        NOVA.negotiate(h(OpenStack_API_Version="compute 2.97"))
    with pytest.raises(NotAcceptable):
        NOVA.negotiate(h(OpenStack_API_Version="compute 1.9"))
    for bad in ("compute 2", "compute two.one", "compute 2.01x"):
        with pytest.raises(BadRequest):
            NOVA.negotiate(h(OpenStack_API_Version=bad))


def test_ordering_is_numeric_and_response_headers() -> None:
    assert APIVersion(2, 10) > APIVersion(2, 9)
    assert APIVersion(2, 60).matches("2.1", "2.60") and not APIVersion(2, 61).matches("2.1", "2.60")
    hdrs = NOVA.response_headers(APIVersion(2, 5))
    assert hdrs["OpenStack-API-Version"] == "compute 2.5"
    assert "OpenStack-API-Version" in hdrs["Vary"]
