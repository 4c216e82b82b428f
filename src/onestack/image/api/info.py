"""``/v2/info``: import methods, stores and the caller's quota usage."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.http import JSONResponse
from onestack.image.api.common import authorize, context, state
from onestack.image.service import quotas


async def import_methods(request: Request) -> Response:
    """``GET /v2/info/import``."""
    st = state(request)
    await context(request)
    return JSONResponse({"import-methods": {
        "description": "Import methods available.",
        "type": "array",
        "value": list(st.conf.import_methods),
    }})


async def stores(request: Request) -> Response:
    """``GET /v2/info/stores``."""
    st = state(request)
    await context(request)
    out: list[dict[str, Any]] = []
    for store_id, store in st.stores.items():
        item: dict[str, Any] = {"id": store_id, "description": store.description}
        if store_id == st.conf.default_store:
            item["default"] = True
        out.append(item)
    return JSONResponse({"stores": out})


async def stores_detail(request: Request) -> Response:
    """``GET /v2/info/stores/detail`` (admins): each store's type and properties."""
    st = state(request)
    await authorize(request, "image:stores_info_detail")
    out: list[dict[str, Any]] = []
    for store_id, store in st.stores.items():
        item: dict[str, Any] = {
            "id": store_id, "description": store.description,
            "type": getattr(store, "kind", "file"),
            "properties": getattr(store, "properties", lambda: {})(),
        }
        if store_id == st.conf.default_store:
            item["default"] = True
        out.append(item)
    return JSONResponse({"stores": out})


async def usage(request: Request) -> Response:
    """``GET /v2/info/usage``: the caller's project's quota limits and usage."""
    st = state(request)
    ctx = await authorize(request, "image:get_usage")
    project = ctx.project_id
    lim = await quotas.limits(st, project)
    async with st.db.read() as session:
        used = await quotas.usage(session, project) if project else None
    body = {
        r: {"limit": -1 if lim.get(r) is None else lim[r],
            "usage": used.amount(r) if used else 0}
        for r in quotas.RESOURCES
    }
    return JSONResponse({"usage": body})


routes = [
    Route("/v2/info/import", import_methods, methods=["GET"]),
    Route("/v2/info/stores", stores, methods=["GET"]),
    Route("/v2/info/stores/detail", stores_detail, methods=["GET"]),
    Route("/v2/info/usage", usage, methods=["GET"]),
]
