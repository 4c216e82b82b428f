"""Version discovery: ``GET /`` (300, all versions) and ``GET /v3``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.http import JSONResponse, service_url
from onestack.core.versions import version_doc

VERSION = "v3.14"
UPDATED = "2020-04-07T00:00:00Z"
MEDIA_TYPE = "application/vnd.openstack.identity-v3+json"


def _v3(request: Request) -> dict[str, object]:
    base = service_url(request) + "/v3/"
    return version_doc(VERSION, base, status="stable", updated=UPDATED, media_type=MEDIA_TYPE)


async def list_versions(request: Request) -> Response:
    return JSONResponse({"versions": {"values": [_v3(request)]}}, status_code=300)


async def show_v3(request: Request) -> Response:
    return JSONResponse({"version": _v3(request)})


routes = [
    Route("/", list_versions, methods=["GET"]),
    Route("/v3", show_v3, methods=["GET"]),
    Route("/v3/", show_v3, methods=["GET"]),
]
