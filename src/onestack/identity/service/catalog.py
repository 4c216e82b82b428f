"""The service catalog as tokens and ``/v3/auth/catalog`` present it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.identity.models import Endpoint, Service


async def build_catalog(session: AsyncSession) -> list[dict[str, Any]]:
    services = (await session.scalars(select(Service).where(Service.enabled.is_(True)))).all()
    endpoints = (await session.scalars(select(Endpoint).where(Endpoint.enabled.is_(True)))).all()
    by_service: dict[str, list[dict[str, Any]]] = {}
    for ep in endpoints:
        by_service.setdefault(ep.service_id, []).append(
            {
                "id": ep.id,
                "interface": ep.interface,
                "region": ep.region_id,
                "region_id": ep.region_id,
                "url": ep.url,
            }
        )
    return [
        {
            "endpoints": by_service.get(s.id, []),
            "id": s.id,
            "type": s.type,
            "name": s.extra.get("name", ""),
        }
        for s in services
    ]


def _needs_substitution(catalog: list[dict[str, Any]]) -> bool:
    return any("(" in ep["url"] for s in catalog for ep in s["endpoints"])


def for_scope(
    catalog: list[dict[str, Any]], *, project_id: str | None, user_id: str | None
) -> list[dict[str, Any]]:
    """``catalog`` with Keystone's URL substitutions made for one token:
    ``%(project_id)s`` / ``$(project_id)s`` (and ``tenant_id``, ``user_id``).
    An endpoint whose URL names a value the token does not have (a project id
    in a domain-scoped token) is left out, as Keystone leaves it out."""
    if not _needs_substitution(catalog):
        return catalog
    values = {"project_id": project_id, "tenant_id": project_id, "user_id": user_id}
    known = {k: v for k, v in values.items() if v is not None}
    out = []
    for service in catalog:
        endpoints = []
        for ep in service["endpoints"]:
            try:
                url = ep["url"].replace("$(", "%(") % known
            except (KeyError, ValueError, TypeError):
                continue
            endpoints.append({**ep, "url": url})
        out.append({**service, "endpoints": endpoints})
    return out
