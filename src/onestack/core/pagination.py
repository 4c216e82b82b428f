"""Marker/limit pagination with ``links``, as the OpenStack APIs do it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from onestack.core.errors import BadRequest


@dataclass(frozen=True)
class Page:
    marker: str | None
    limit: int


def page_params(request: Request, *, default_limit: int = 1000, max_limit: int = 1000) -> Page:
    """``marker`` and ``limit`` from the query.

    Raises:
        BadRequest: limit is not a non-negative integer.
    """
    raw = request.query_params.get("limit")
    limit = default_limit
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise BadRequest(f"limit must be an integer, not {raw!r}") from None
        if limit < 0:
            raise BadRequest("limit must be a non-negative integer")
    return Page(marker=request.query_params.get("marker") or None, limit=min(limit, max_limit))


def next_link(request: Request, items: list[dict[str, Any]], page: Page, *, key: str = "id") -> list[dict[str, str]]:
    """``[{"rel": "next", "href": ...}]`` when the page is full, else ``[]``."""
    if not items or len(items) < page.limit:
        return []
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "marker"]
    params.append(("marker", str(items[-1][key])))
    return [{"rel": "next", "href": f"{request.url.replace(query='')}?{urlencode(params)}"}]
