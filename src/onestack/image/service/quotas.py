"""Image quotas from the identity service's unified limits, with Glance's
resource names:

- ``image_count_total``: images a project owns;
- ``image_count_uploading``: its images being uploaded, staged or imported;
- ``image_size_total``: MiB of image data it owns;
- ``image_stage_total``: MiB it has staged for import.

A resource with neither a project limit nor a registered default is unlimited.
Counting is done here, from this service's own tables; the limits come from
the identity service through ``core.clients.identity.LimitsClient``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import RequestEntityTooLarge
from onestack.image.models import Image
from onestack.image.state import ImageState

RESOURCES = ("image_size_total", "image_stage_total", "image_count_total", "image_count_uploading")
MiB = 1024 * 1024
IN_FLIGHT = ("saving", "uploading", "importing")


@dataclass(frozen=True)
class Usage:
    image_count_total: int
    image_count_uploading: int
    image_size_total: int  # bytes
    image_stage_total: int  # bytes

    def amount(self, resource: str) -> int:
        """Usage in the limit's unit (MiB for sizes, rounded up)."""
        value: int = getattr(self, resource)
        return -(-value // MiB) if resource in ("image_size_total", "image_stage_total") else value


async def usage(session: AsyncSession, project: str) -> Usage:
    total = await session.execute(
        select(func.count(), func.coalesce(func.sum(Image.size), 0)).where(Image.owner == project)
    )
    count, size = total.one()
    flight = await session.execute(
        select(func.count(), func.coalesce(func.sum(Image.staged_size), 0)).where(
            Image.owner == project, Image.status.in_(IN_FLIGHT)
        )
    )
    uploading, staged = flight.one()
    return Usage(int(count), int(uploading), int(size), int(staged))


async def limits(st: ImageState, project: str | None) -> dict[str, int | None]:
    if st.limits is None or project is None:
        return dict.fromkeys(RESOURCES)
    result: dict[str, int | None] = await st.limits.project_limits(
        project, "image", RESOURCES, st.settings.region
    )
    return result


def _over(project: str, resource: str, limit: int, current: int, delta: int) -> RequestEntityTooLarge:
    return RequestEntityTooLarge(
        f"Project {project} is over a limit for [Resource {resource} is over limit of {limit} "
        f"due to current usage {current} and delta {delta}]"
    )


@dataclass(frozen=True)
class Checked:
    """What ``enforce`` found: the limits, and the usage when any applied."""

    limits: dict[str, int | None]
    usage: Usage | None

    def remaining_bytes(self, resource: str) -> int | None:
        """How many more bytes fit under ``image_size_total`` or
        ``image_stage_total`` (``None``: no limit)."""
        limit = self.limits.get(resource)
        if limit is None or self.usage is None:
            return None
        current: int = getattr(self.usage, resource)
        return max(0, limit * MiB - current)


async def enforce(
    st: ImageState, session: AsyncSession, project: str | None, deltas: dict[str, int]
) -> Checked:
    """Refuse (413) when ``usage + delta`` passes a limit for any resource in
    ``deltas`` (sizes in MiB; a delta of 0 refuses only when already over).
    Returns what it checked, for callers that cap an upload.

    Raises:
        RequestEntityTooLarge: a limit would be exceeded.
    """
    lim = await limits(st, project)
    if project is None or all(lim.get(r) is None for r in deltas):
        return Checked(lim, None)
    used = await usage(session, project)
    for resource, delta in deltas.items():
        limit = lim.get(resource)
        if limit is None:
            continue
        current = used.amount(resource)
        if current + delta > limit:
            raise _over(project, resource, limit, current, delta)
    return Checked(lim, used)
