"""Unified limits (Keystone's flat model): a registered limit is a service's
default for a resource (optionally per region); a limit overrides it for one
project or domain. A limit needs a matching registered limit, and a registered
limit that limits depend on can be neither changed nor deleted.

Services read quotas with ``effective_limit``.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import Forbidden, NotFound
from onestack.identity.errors import conflict
from onestack.identity.models import Limit, Project, Region, RegisteredLimit, Service
from onestack.identity.service.catalog_admin import validation_error

MODEL = {
    "name": "flat",
    "description": "Limit enforcement and validation does not take project hierarchy into "
    "consideration.",
}


def _region_is(column: Any, region_id: str | None) -> Any:
    return column.is_(None) if region_id is None else column == region_id


async def _check_refs(session: AsyncSession, data: dict[str, Any], target: str) -> None:
    """Keystone's 400s for a service, region, project or domain that does not exist;
    a project that is a domain makes a domain limit."""
    if data.get("service_id") is not None and await session.get(Service, data["service_id"]) is None:
        raise validation_error("service_id", target)
    if data.get("region_id") is not None and await session.get(Region, data["region_id"]) is None:
        raise validation_error("region_id", target)
    if data.get("project_id") is not None:
        project = await session.get(Project, data["project_id"])
        if project is None:
            raise validation_error("project_id", target)
        if project.is_domain:
            data["domain_id"] = data.pop("project_id")
    if data.get("domain_id") is not None:
        domain = await session.get(Project, data["domain_id"])
        if domain is None or not domain.is_domain:
            raise validation_error("domain_id", target)


async def _registered(
    session: AsyncSession, service_id: str, region_id: str | None, resource_name: str
) -> RegisteredLimit | None:
    return await session.scalar(
        select(RegisteredLimit).where(
            RegisteredLimit.service_id == service_id,
            _region_is(RegisteredLimit.region_id, region_id),
            RegisteredLimit.resource_name == resource_name,
        )
    )


async def _dependants(session: AsyncSession, rl: RegisteredLimit) -> bool:
    found = await session.scalar(
        select(Limit.id).where(
            Limit.service_id == rl.service_id,
            _region_is(Limit.region_id, rl.region_id),
            Limit.resource_name == rl.resource_name,
        ).limit(1)
    )
    return found is not None


def _in_use(rl_id: str) -> Forbidden:
    return Forbidden(
        f"Unable to update or delete registered limit {rl_id} because there are project "
        "limits associated with it."
    )


async def get_registered_limit(session: AsyncSession, rl_id: str) -> RegisteredLimit:
    rl = await session.get(RegisteredLimit, rl_id)
    if rl is None:
        raise NotFound(f"Could not find registered limit for {rl_id}.")
    return rl


async def create_registered_limits(
    session: AsyncSession, items: list[dict[str, Any]]
) -> list[RegisteredLimit]:
    for data in items:
        await _check_refs(session, data, "registered_limit")
    out = []
    for data in items:
        if await _registered(session, data["service_id"], data.get("region_id"),
                             data["resource_name"]):
            raise conflict("registered_limit", "Duplicate entry")
        rl = RegisteredLimit(id=uuid.uuid4().hex, **data)
        session.add(rl)
        await session.flush()  # the next item of the batch sees this one
        out.append(rl)
    return out


async def update_registered_limit(
    session: AsyncSession, rl_id: str, data: dict[str, Any]
) -> RegisteredLimit:
    rl = await get_registered_limit(session, rl_id)
    await _check_refs(session, data, "registered_limit")
    if await _dependants(session, rl):
        raise _in_use(rl_id)
    key = {"service_id": rl.service_id, "region_id": rl.region_id,
           "resource_name": rl.resource_name}
    new_key = {**key, **{k: v for k, v in data.items() if k in key}}
    if new_key != key:
        other = await _registered(session, new_key["service_id"], new_key["region_id"],
                                  new_key["resource_name"])
        if other is not None and other.id != rl.id:
            raise conflict("registered_limit", "Duplicate entry")
    for attr, value in data.items():
        if attr in ("service_id", "resource_name", "default_limit") and value is None:
            continue
        setattr(rl, attr, value)
    try:
        await session.flush()
    except IntegrityError:
        raise conflict("registered_limit", "Duplicate entry") from None
    return rl


async def delete_registered_limit(session: AsyncSession, rl_id: str) -> None:
    rl = await get_registered_limit(session, rl_id)
    if await _dependants(session, rl):
        raise _in_use(rl_id)
    await session.delete(rl)
    await session.flush()


async def get_limit(session: AsyncSession, limit_id: str) -> Limit:
    limit = await session.get(Limit, limit_id)
    if limit is None:
        raise NotFound(f"Could not find limit for {limit_id}.")
    return limit


async def create_limits(session: AsyncSession, items: list[dict[str, Any]]) -> list[Limit]:
    for data in items:
        await _check_refs(session, data, "limit")
    out = []
    for data in items:
        region_id = data.get("region_id")
        if await _registered(session, data["service_id"], region_id, data["resource_name"]) is None:
            raise Forbidden("Unable to create a limit that has no corresponding registered limit.")
        owner = (Limit.project_id == data["project_id"] if data.get("project_id")
                 else Limit.domain_id == data["domain_id"])
        duplicate = await session.scalar(
            select(Limit.id).where(
                owner, Limit.service_id == data["service_id"],
                _region_is(Limit.region_id, region_id),
                Limit.resource_name == data["resource_name"],
            )
        )
        if duplicate is not None:
            raise conflict("limit", "Duplicate entry")
        limit = Limit(id=uuid.uuid4().hex, **data)
        session.add(limit)
        await session.flush()
        out.append(limit)
    return out


async def update_limit(session: AsyncSession, limit_id: str, data: dict[str, Any]) -> Limit:
    limit = await get_limit(session, limit_id)
    if data.get("resource_limit") is not None:
        limit.resource_limit = data["resource_limit"]
    if "description" in data:
        limit.description = data["description"]
    await session.flush()
    return limit


async def effective_limit(
    session: AsyncSession,
    service_id_or_type: str,
    resource_name: str,
    project_id: str,
    region_id: str | None = None,
) -> int | None:
    """The limit on ``resource_name`` for a project: its own limit if it has one,
    else the registered default; ``None`` when nothing is registered (the caller
    decides what that means), ``-1`` for unlimited.

    ``service_id_or_type`` is a service id or a service type (``compute``); a
    limit or registered limit for ``region_id`` wins over a region-less one.
    """
    services = [service_id_or_type] if await session.get(Service, service_id_or_type) else list(
        await session.scalars(select(Service.id).where(Service.type == service_id_or_type))
    )
    if not services:
        return None
    regions = [region_id, None] if region_id is not None else [None]
    for region in regions:
        value = await session.scalar(
            select(Limit.resource_limit).where(
                Limit.service_id.in_(services), Limit.project_id == project_id,
                Limit.resource_name == resource_name, _region_is(Limit.region_id, region),
            ).limit(1)
        )
        if value is not None:
            return int(value)
    for region in regions:
        value = await session.scalar(
            select(RegisteredLimit.default_limit).where(
                RegisteredLimit.service_id.in_(services),
                RegisteredLimit.resource_name == resource_name,
                _region_is(RegisteredLimit.region_id, region),
            ).limit(1)
        )
        if value is not None:
            return int(value)
    return None
