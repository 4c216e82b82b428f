"""Images, members and tasks as Glance's API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from onestack.image.models import Image, ImageMember, Task
from onestack.image.state import ImageState


def ts(value: datetime | None) -> str | None:
    """Glance's timestamps: ``2024-05-01T12:00:00Z`` (seconds, UTC)."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def image(st: ImageState, img: Image) -> dict[str, Any]:
    out: dict[str, Any] = {p.name: p.value for p in img.properties}
    out.update(
        id=img.id,
        name=img.name,
        status=img.status,
        visibility=img.visibility,
        protected=img.protected,
        os_hidden=img.os_hidden,
        checksum=img.checksum,
        os_hash_algo=img.os_hash_algo,
        os_hash_value=img.os_hash_value,
        owner=img.owner,
        size=img.size,
        virtual_size=img.virtual_size,
        min_ram=img.min_ram,
        min_disk=img.min_disk,
        disk_format=img.disk_format,
        container_format=img.container_format,
        created_at=ts(img.created_at),
        updated_at=ts(img.updated_at),
        tags=sorted(t.value for t in img.tags),
        self=f"/v2/images/{img.id}",
        file=f"/v2/images/{img.id}/file",
        schema="/v2/schemas/image",
    )
    if img.locations:
        # sorted, as clients (Tempest's import waiters) compare the whole string
        out["stores"] = ",".join(sorted({loc.store for loc in img.locations}))
        if st.conf.show_image_direct_url:
            out["direct_url"] = img.locations[0].url
    return out


def member(m: ImageMember) -> dict[str, Any]:
    return {
        "created_at": ts(m.created_at),
        "updated_at": ts(m.updated_at),
        "image_id": m.image_id,
        "member_id": m.member,
        "status": m.status,
        "schema": "/v2/schemas/member",
    }


def task(t: Task, *, detail: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": t.id,
        "type": t.type,
        "status": t.status,
        "owner": t.owner,
        "expires_at": ts(t.expires_at),
        "created_at": ts(t.created_at),
        "updated_at": ts(t.updated_at),
        "self": f"/v2/tasks/{t.id}",
        "schema": "/v2/schemas/task",
    }
    if detail:
        out.update(
            input=t.input, result=t.result, message=t.message, image_id=t.image_id,
            request_id=t.request_id, user_id=t.user_id,
        )
    return out
