"""Managing the catalog: regions, services and endpoints, with Keystone's rules.

- A region's id is chosen by the client or generated; its parent must exist and
  the hierarchy may not loop. A region whose subtree holds endpoints cannot be
  deleted (403); otherwise its child regions go with it.
- Deleting a service deletes its endpoints.
- An endpoint's service and region must exist (400). The legacy ``region``
  attribute names a region that is created on the fly when missing.

Every write goes through ``IdentityState.write()``, whose commit bumps the
generation that the token provider's catalog cache compares, so tokens issued
afterwards carry the new catalog.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import BadRequest, Conflict, Forbidden
from onestack.identity.errors import conflict, not_found
from onestack.identity.filters import string_matches
from onestack.identity.models import Endpoint, Limit, Region, RegisteredLimit, Service

REGION_ATTRS = ("id", "description", "parent_region_id", "links")
SERVICE_ATTRS = ("id", "type", "enabled", "links")
ENDPOINT_ATTRS = ("id", "interface", "service_id", "url", "region_id", "region", "enabled",
                  "links", "legacy_endpoint_id")
# set on endpoints an operator created or re-pointed, so that bootstrap leaves them
MANAGED_KEY = "managed_by_onestack"
# Keystone's utils.check_endpoint_url: the substitutions an endpoint URL may use
URL_SUBSTITUTIONS = ("tenant_id", "project_id", "user_id", "public_bind_host",
                     "admin_bind_host", "compute_host", "admin_port", "public_port",
                     "public_endpoint", "admin_endpoint")


def validation_error(attribute: str, target: str) -> BadRequest:
    """Keystone's ``ValidationError`` for a missing or dangling attribute."""
    return BadRequest(
        f"Expecting to find {attribute} in {target}. The server could not comply with the "
        "request since it is either malformed or otherwise incorrect. The client is "
        "assumed to be in error."
    )


def extra_of(data: Mapping[str, Any], known: Iterable[str]) -> dict[str, Any]:
    skip = set(known)
    return {k: v for k, v in data.items() if k not in skip}


# -- list filters --------------------------------------------------------------


def apply_filters(
    items: list[dict[str, Any]], params: Iterable[tuple[str, str]], keys: Iterable[str]
) -> list[dict[str, Any]]:
    """Keystone's list filters over rendered resources: ``key=value`` for an exact
    match, ``key__contains`` / ``__startswith`` / ``__endswith`` (``__i...`` for
    case-insensitive) for the inexact ones; unknown keys are ignored."""
    allowed = set(keys)
    for key, wanted in params:
        base, _, comparator = key.partition("__")
        if base not in allowed:
            continue
        comparator = comparator or "equals"
        items = [i for i in items if string_matches(i.get(base), comparator, wanted)]
    return items


# -- regions -------------------------------------------------------------------


async def get_region(session: AsyncSession, region_id: str) -> Region:
    region = await session.get(Region, region_id)
    if region is None:
        raise not_found("region", region_id)
    return region


async def _check_parent(session: AsyncSession, region_id: str, parent_id: str | None) -> None:
    """The parent exists (404) and following parents from it never reaches
    ``region_id`` (400)."""
    seen: set[str] = set()
    current = parent_id
    while current is not None and current not in seen:
        if current == region_id:
            raise BadRequest(
                f"The specified parent region {parent_id} would create a circular "
                "region hierarchy."
            )
        seen.add(current)
        current = (await get_region(session, current)).parent_region_id


async def create_region(session: AsyncSession, data: dict[str, Any]) -> Region:
    region_id = data.get("id") or uuid.uuid4().hex
    if await session.get(Region, region_id) is not None:
        raise conflict("region", f"Duplicate ID, {region_id}.")
    parent = data.get("parent_region_id")
    if parent is not None:
        await get_region(session, parent)
    region = Region(
        id=region_id,
        description=data.get("description") or "",
        parent_region_id=parent,
        extra=extra_of(data, REGION_ATTRS),
    )
    session.add(region)
    await session.flush()
    return region


async def update_region(session: AsyncSession, region_id: str, data: dict[str, Any]) -> Region:
    if data.get("id") is not None and data["id"] != region_id:
        raise BadRequest("Cannot change ID")
    region = await get_region(session, region_id)
    if "parent_region_id" in data:
        await _check_parent(session, region_id, data["parent_region_id"])
        region.parent_region_id = data["parent_region_id"]
    if "description" in data:
        region.description = data["description"] or ""
    extra = extra_of(data, REGION_ATTRS)
    if extra:
        region.extra = {**region.extra, **extra}
    await session.flush()
    return region


async def _subtree(session: AsyncSession, root: str) -> list[str]:
    """``root`` and every region below it (a loop left by old data is cut)."""
    out, frontier = [root], [root]
    while frontier:
        children = await session.scalars(
            select(Region.id).where(Region.parent_region_id.in_(frontier))
        )
        frontier = [c for c in children if c not in out]
        out.extend(frontier)
    return out


async def delete_region(session: AsyncSession, region_id: str) -> None:
    await get_region(session, region_id)
    ids = await _subtree(session, region_id)
    if await session.scalar(select(func.count()).where(Endpoint.region_id.in_(ids))):
        raise Forbidden(
            f"Unable to delete region {region_id} because it or its child regions have "
            "associated endpoints."
        )
    used = await session.scalar(
        select(func.count()).where(RegisteredLimit.region_id.in_(ids))
    ) or await session.scalar(select(func.count()).where(Limit.region_id.in_(ids)))
    if used:
        raise Conflict(
            f"Unable to delete region {region_id} because it or its child regions have "
            "registered limits."
        )
    for rid in reversed(ids):
        region = await session.get(Region, rid)
        if region is not None:
            await session.delete(region)
    await session.flush()


# -- services ------------------------------------------------------------------


async def get_service(session: AsyncSession, service_id: str) -> Service:
    service = await session.get(Service, service_id)
    if service is None:
        raise not_found("service", service_id)
    return service


async def create_service(session: AsyncSession, data: dict[str, Any]) -> Service:
    extra = extra_of(data, SERVICE_ATTRS)
    extra.setdefault("name", "")
    service = Service(
        id=uuid.uuid4().hex,
        type=data["type"],
        enabled=True if data.get("enabled") is None else bool(data["enabled"]),
        extra=extra,
    )
    session.add(service)
    await session.flush()
    return service


async def update_service(session: AsyncSession, service_id: str, data: dict[str, Any]) -> Service:
    if data.get("id") is not None and data["id"] != service_id:
        raise BadRequest("Cannot change ID")
    service = await get_service(session, service_id)
    if data.get("type") is not None:
        service.type = data["type"]
    if data.get("enabled") is not None:
        service.enabled = bool(data["enabled"])
    extra = extra_of(data, SERVICE_ATTRS)
    if extra:
        service.extra = {**service.extra, **extra}
    await session.flush()
    return service


async def delete_service(session: AsyncSession, service_id: str) -> None:
    service = await get_service(session, service_id)
    used = await session.scalar(
        select(func.count()).where(RegisteredLimit.service_id == service_id)
    ) or await session.scalar(select(func.count()).where(Limit.service_id == service_id))
    if used:
        raise Conflict(
            f"Unable to delete service {service_id} because it has registered limits."
        )
    for ep in await session.scalars(select(Endpoint).where(Endpoint.service_id == service_id)):
        await session.delete(ep)
    await session.flush()
    await session.delete(service)
    await session.flush()


# -- endpoints -----------------------------------------------------------------


def check_url(url: str) -> None:
    """Only whitelisted ``$(name)s`` substitutions may appear (Keystone)."""
    try:
        url.replace("$(", "%(") % dict.fromkeys(URL_SUBSTITUTIONS, "")
    except (KeyError, TypeError, ValueError):
        raise BadRequest(f"Invalid URL: {url}.") from None


async def _resolve_region(session: AsyncSession, data: dict[str, Any]) -> None:
    """``region_id`` must exist; a legacy ``region`` alone is created if missing."""
    if data.get("region_id") is None and data.get("region") is not None:
        data["region_id"] = data["region"]
        if await session.get(Region, data["region_id"]) is None:
            await create_region(session, {"id": data["region_id"]})
    elif data.get("region_id") is not None and await session.get(Region, data["region_id"]) is None:
        raise validation_error("endpoint region_id", "region table")
    data.pop("region", None)


async def get_endpoint(session: AsyncSession, endpoint_id: str) -> Endpoint:
    ep = await session.get(Endpoint, endpoint_id)
    if ep is None:
        raise not_found("endpoint", endpoint_id)
    return ep


async def create_endpoint(session: AsyncSession, data: dict[str, Any]) -> Endpoint:
    check_url(data["url"])
    await _resolve_region(session, data)
    if await session.get(Service, data["service_id"]) is None:
        raise validation_error("endpoint service_id", "service table")
    extra = extra_of(data, ENDPOINT_ATTRS)
    extra[MANAGED_KEY] = False
    ep = Endpoint(
        id=uuid.uuid4().hex,
        service_id=data["service_id"],
        interface=data["interface"],
        url=data["url"],
        region_id=data.get("region_id"),
        enabled=True if data.get("enabled") is None else bool(data["enabled"]),
        extra=extra,
    )
    session.add(ep)
    await session.flush()
    return ep


async def update_endpoint(
    session: AsyncSession, endpoint_id: str, data: dict[str, Any]
) -> Endpoint:
    if data.get("id") is not None and data["id"] != endpoint_id:
        raise BadRequest("Cannot change ID")
    ep = await get_endpoint(session, endpoint_id)
    if "region_id" in data or "region" in data:
        await _resolve_region(session, data)
        ep.region_id = data.get("region_id")
    if data.get("service_id") is not None:
        if await session.get(Service, data["service_id"]) is None:
            raise validation_error("endpoint service_id", "service table")
        ep.service_id = data["service_id"]
    if data.get("url") is not None:
        check_url(data["url"])
        ep.url = data["url"]
    if data.get("interface") is not None:
        ep.interface = data["interface"]
    if data.get("enabled") is not None:
        ep.enabled = bool(data["enabled"])
    extra = {**ep.extra, **extra_of(data, ENDPOINT_ATTRS)}
    if data.get("url") is not None:
        extra[MANAGED_KEY] = False  # an operator's URL is never re-pointed by bootstrap
    ep.extra = extra
    await session.flush()
    return ep


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> None:
    await session.delete(await get_endpoint(session, endpoint_id))
    await session.flush()
