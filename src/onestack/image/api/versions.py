"""Version discovery: ``GET /`` and ``GET /versions`` list Image API v2.0 to
v2.16 (the newest is CURRENT, as Glance reports them)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.http import JSONResponse, service_url

NEWEST = 16


def _versions(request: Request) -> list[dict[str, Any]]:
    href = service_url(request) + "/v2/"
    out = []
    for minor in range(NEWEST, -1, -1):
        out.append({
            "id": f"v2.{minor}",
            "status": "CURRENT" if minor == NEWEST else "SUPPORTED",
            "links": [{"rel": "self", "href": href}],
        })
    return out


async def root(request: Request) -> Response:
    return JSONResponse({"versions": _versions(request)}, status_code=300)


async def versions(request: Request) -> Response:
    return JSONResponse({"versions": _versions(request)})


routes = [
    Route("/", root, methods=["GET"]),
    Route("/versions", versions, methods=["GET"]),
]
