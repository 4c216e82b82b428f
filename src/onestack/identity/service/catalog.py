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
