"""Per-project quotas (Neutron's DbQuotaDriver): a row per project and resource
that differs from the configured default; usage is the count of the project's
rows of the resource's table, as ``common.check_quota`` counts it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import BadRequest
from onestack.network import errors
from onestack.network.models import (
    FloatingIP,
    Network,
    Port,
    Quota,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
    SubnetPool,
)
from onestack.network.service.common import QUOTA_RESOURCES
from onestack.network.state import NetworkState

MODELS: dict[str, Any] = {
    "network": Network,
    "subnet": Subnet,
    "port": Port,
    "router": Router,
    "floatingip": FloatingIP,
    "security_group": SecurityGroup,
    "security_group_rule": SecurityGroupRule,
    "subnetpool": SubnetPool,
}
UNLIMITED = -1
MAX_LIMIT = 2**31 - 1


def defaults(st: NetworkState) -> dict[str, int]:
    return {r: int(getattr(st.conf, f"quota_{r}", st.conf.default_quota))
            for r in QUOTA_RESOURCES}


async def project_quotas(st: NetworkState, session: AsyncSession, project_id: str
                         ) -> dict[str, int]:
    out = defaults(st)
    for row in (await session.scalars(select(Quota).where(Quota.project_id == project_id))):
        if row.resource in out:
            out[row.resource] = row.limit
    return out


async def all_quotas(st: NetworkState, session: AsyncSession) -> list[dict[str, Any]]:
    """The quotas of every project that has one set."""
    base = defaults(st)
    rows: dict[str, dict[str, Any]] = defaultdict(dict)
    for row in (await session.scalars(select(Quota).order_by(Quota.project_id))):
        rows[row.project_id][row.resource] = row.limit
    out = []
    for project_id, limits in rows.items():
        q: dict[str, Any] = {**base, **{k: v for k, v in limits.items() if k in base}}
        out.append({**q, "project_id": project_id, "tenant_id": project_id})
    return out


async def usage(session: AsyncSession, project_id: str, resource: str) -> int:
    model = MODELS[resource]
    used = await session.scalar(
        select(func.count()).select_from(model).where(model.project_id == project_id))
    return int(used or 0)


async def details(st: NetworkState, session: AsyncSession, project_id: str
                  ) -> dict[str, dict[str, int]]:
    limits = await project_quotas(st, session, project_id)
    return {r: {"limit": limits[r], "used": await usage(session, project_id, r), "reserved": 0}
            for r in QUOTA_RESOURCES}


def convert_limits(body: Any) -> tuple[dict[str, int], bool]:
    """The limits of a PUT body's ``quota`` and its ``force`` flag.

    Raises:
        BadRequest: not an object; an unknown resource; a limit that is not an
        integer in [-1, 2**31-1].
    """
    if not isinstance(body, dict) or not isinstance(body.get("quota"), dict):
        raise BadRequest("Unable to find 'quota' in request body")
    values = dict(body["quota"])
    force = values.pop("force", None) is True
    values.pop("check_limit", None)
    unknown = sorted(k for k in values if k not in QUOTA_RESOURCES)
    if unknown:
        raise BadRequest("Unrecognized attribute(s) " + ", ".join(f"'{k}'" for k in unknown))
    out: dict[str, int] = {}
    for name, value in values.items():
        if isinstance(value, bool):
            raise errors.invalid_input(f"'{value}' is not an integer")
        try:
            limit = int(value)
        except (TypeError, ValueError):
            raise errors.invalid_input(f"'{value}' is not an integer") from None
        if limit < UNLIMITED:
            raise BadRequest(f"Invalid input for {name}. Reason: '{limit}' is too small - "
                             f"must be at least '{UNLIMITED}'.")
        if limit > MAX_LIMIT:
            raise BadRequest(f"Invalid input for {name}. Reason: '{limit}' is too large - "
                             f"must be no larger than '{MAX_LIMIT}'.")
        out[name] = limit
    return out, force


async def update(st: NetworkState, session: AsyncSession, project_id: str,
                 limits: dict[str, int], force: bool) -> None:
    """Set ``limits``; unless ``force``, none may go below what the project uses.

    Raises:
        BadRequest: a limit below the usage.
    """
    if not force:
        for resource, limit in limits.items():
            if limit == UNLIMITED:
                continue
            used = await usage(session, project_id, resource)
            if used > limit:
                raise BadRequest(f"Quota limit {limit} for {resource} must be greater than or "
                                 f"equal to already used {used}")
    for resource, limit in limits.items():
        row = await session.get(Quota, (project_id, resource))
        if row is not None:
            row.limit = limit
            continue
        try:
            async with session.begin_nested():
                session.add(Quota(project_id=project_id, resource=resource, limit=limit))
        except IntegrityError:  # set concurrently: this request's value wins
            await session.execute(sa_update(Quota).where(
                Quota.project_id == project_id, Quota.resource == resource).values(limit=limit))


async def reset(session: AsyncSession, project_id: str) -> None:
    """Back to the defaults.

    Raises:
        NotFound (TenantQuotaNotFound): the project has no quota set.
    """
    result = await session.execute(sql_delete(Quota).where(Quota.project_id == project_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise errors.not_found("TenantQuotaNotFound",
                               f"Quota for project {project_id} could not be found.")
