"""Image members: the projects a ``shared`` image is shared with. The owner adds
and removes members; a member accepts or rejects (which decides whether the
image appears in its default list) and sees only its own membership."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest, Conflict, Forbidden, NotFound
from onestack.image import errors
from onestack.image.models import Image, ImageMember, utcnow
from onestack.image.service.images import is_admin
from onestack.image.state import ImageState

STATUSES = ("pending", "accepted", "rejected")


def require_shared(image: Image) -> None:
    if image.visibility != "shared":
        raise Forbidden("Only shared images have members.")


async def add(
    st: ImageState, session: AsyncSession, image: Image, member_id: Any
) -> ImageMember:
    """Share ``image`` with project ``member_id`` (status ``pending``).

    Raises:
        BadRequest: no member id.  Forbidden: the image is not shared.
        Conflict: already a member.  RequestEntityTooLarge: too many members.
    """
    if not isinstance(member_id, str) or not member_id or len(member_id) > 255:
        raise BadRequest("Member to be added not specified")
    require_shared(image)
    found = await session.scalar(
        select(ImageMember).where(ImageMember.image_id == image.id, ImageMember.member == member_id)
    )
    if found is not None:
        raise Conflict(f"Member {member_id} is duplicated for image {image.id}")
    count = await session.scalar(
        select(func.count()).select_from(ImageMember).where(ImageMember.image_id == image.id)
    ) or 0
    if count + 1 > st.conf.image_member_quota:
        raise errors.over_limit("image members", count + 1, st.conf.image_member_quota)
    now = utcnow()
    member = ImageMember(image_id=image.id, member=member_id, status="pending",
                         created_at=now, updated_at=now)
    session.add(member)
    await session.flush()
    return member


async def list_for(session: AsyncSession, ctx: RequestContext, image: Image) -> list[ImageMember]:
    """The memberships the caller may see: all for the owner (and admins), only
    its own for a member."""
    require_shared(image)
    stmt = select(ImageMember).where(ImageMember.image_id == image.id)
    if not is_admin(ctx) and image.owner != ctx.project_id:
        stmt = stmt.where(ImageMember.member == ctx.project_id)
    return list((await session.scalars(stmt.order_by(ImageMember.created_at, ImageMember.id))).all())


async def get(
    session: AsyncSession, ctx: RequestContext, image: Image, member_id: str
) -> ImageMember:
    """One membership, for the owner or that member.

    Raises:
        NotFound: no such membership, or the caller may not see it.
    """
    require_shared(image)
    if not is_admin(ctx) and image.owner != ctx.project_id and member_id != ctx.project_id:
        raise NotFound(f"Member {member_id} not found")
    member = await session.scalar(
        select(ImageMember).where(ImageMember.image_id == image.id, ImageMember.member == member_id)
    )
    if member is None:
        raise NotFound(f"Member {member_id} not found")
    return member


async def set_status(
    session: AsyncSession, ctx: RequestContext, image: Image, member_id: str, status: Any
) -> ImageMember:
    """The member's answer: ``pending``, ``accepted`` or ``rejected``.

    Raises:
        BadRequest: another status.  NotFound, Forbidden.
    """
    if status not in STATUSES:
        raise BadRequest(f"Invalid status: {status!r}; it must be one of {', '.join(STATUSES)}")
    member = await get(session, ctx, image, member_id)
    member.status = status
    member.updated_at = utcnow()
    await session.flush()
    return member


async def remove(session: AsyncSession, ctx: RequestContext, image: Image, member_id: str) -> None:
    member = await get(session, ctx, image, member_id)
    await session.delete(member)
    await session.flush()
