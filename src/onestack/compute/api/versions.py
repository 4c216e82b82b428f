"""Version discovery: ``GET /`` lists v2.0 (deprecated, no microversions) and
v2.1 (current, 2.1 up to the newest microversion); ``GET /v2.1/`` shows v2.1."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute.api import common as c
from onestack.core.http import JSONResponse, service_url

DOCS = "http://docs.openstack.org/"


def v20(request: Request) -> dict[str, Any]:
    return {
        "id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "",
        "updated": "2025-07-04T12:00:00Z",
        "links": [{"rel": "self", "href": service_url(request) + "/v2/"}],
    }


def v21(request: Request, *, full: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "v2.1", "status": "CURRENT",
        "version": str(c.VERSIONS.maximum), "min_version": str(c.VERSIONS.minimum),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": service_url(request) + c.API_PREFIX + "/"}],
    }
    if full:
        doc["links"].append({"rel": "describedby", "type": "text/html", "href": DOCS})
        doc["media-types"] = [{"base": "application/json",
                               "type": "application/vnd.openstack.compute+json;version=2.1"}]
    return doc


async def root(request: Request) -> Response:
    return JSONResponse({"versions": [v20(request), v21(request)]})


async def version(request: Request) -> Response:
    return JSONResponse({"version": v21(request, full=True)})


async def version_20(request: Request) -> Response:
    """The v2.0 document its self link points to (there is no v2.0 API behind
    it: clients use v2.1, which v2.0 requests are in Nova too)."""
    doc = v20(request)
    doc["links"].append({"rel": "describedby", "type": "text/html", "href": DOCS})
    doc["media-types"] = [{"base": "application/json",
                           "type": "application/vnd.openstack.compute+json;version=2"}]
    return JSONResponse({"version": doc})


routes = [
    Route("/", root, methods=["GET"]),
    Route(c.API_PREFIX, version, methods=["GET"]),
    Route(c.API_PREFIX + "/", version, methods=["GET"]),
    Route("/v2", version_20, methods=["GET"]),
    Route("/v2/", version_20, methods=["GET"]),
]
