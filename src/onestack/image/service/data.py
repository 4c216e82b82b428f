"""Image data: upload (``PUT /file``), staging (``PUT /stage``) and download.

An upload is three steps, so that no database transaction stays open while
data streams:

1. claim: in one transaction the image moves ``queued -> saving`` (or
   ``uploading`` when staging), marked with this process's ``holder`` id;
2. stream: the store writes the body atomically while hashing it (md5 and the
   configured ``os_hash_algo``), capped by ``image_size_cap`` and the quota;
3. finish: the image becomes ``active`` with its size, checksums, virtual size
   and location, but only if it is still the claim we made (it may have been
   deleted meanwhile: then the data is removed and the client gets 410).

Any failure in step 2 or 3 (a client that disconnects, a size or format error)
removes what was written and puts the image back to ``queued``. A process
that dies in step 2 leaves its claim behind: ``recover`` resets those claims
when the service starts again.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass

from sqlalchemy import update

from onestack.core.context import RequestContext
from onestack.core.errors import (
    BadRequest,
    CloudError,
    Forbidden,
    Gone,
    RequestEntityTooLarge,
)
from onestack.image import errors, formats
from onestack.image.models import Image, ImageLocation, utcnow
from onestack.image.service import images as svc
from onestack.image.service import quotas
from onestack.image.state import ImageState
from onestack.image.stores.base import SizeLimitExceeded, SizeMismatch, Store, StoredData

log = logging.getLogger("onestack.image")

# Formats whose virtual size is the data's size (qemu-img rounds these up to
# whole sectors, Glance does not).
RAW_LIKE = ("raw", "iso")


def new_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def host_of(holder: str | None) -> str | None:
    return holder.split(":", 1)[0] if holder else None


@dataclass(frozen=True)
class Claim:
    image_id: str
    owner: str | None
    disk_format: str | None
    previous: str
    status: str
    max_size: int | None


async def claim(
    st: ImageState, ctx: RequestContext, image_id: str, *, staging: bool, action: str
) -> Claim:
    """Step 1: move the image to ``saving``/``uploading`` for this process.

    Raises:
        NotFound, Forbidden, Conflict (not ``queued``), BadRequest (formats not
        set), RequestEntityTooLarge (quota).
    """
    wanted = "uploading" if staging else "saving"
    async with st.db.write() as session:
        seen = await svc.get_visible(session, ctx, image_id)
        image = seen.image
        if not st.enforcer.check(action, seen.target(ctx), ctx.policy_creds()):
            raise errors.forbidden(action.split(":")[1])
        if image.status != "queued":
            raise errors.bad_transition(image.status, wanted)
        if not staging and (image.disk_format is None or image.container_format is None):
            raise BadRequest(
                "Properties disk_format, container_format must be set prior to saving data."
            )
        resource = "image_stage_total" if staging else "image_size_total"
        checked = await quotas.enforce(
            st, session, image.owner, {"image_count_uploading": 1, resource: 0}
        )
        remaining = checked.remaining_bytes(resource)
        max_size = st.conf.image_size_cap if remaining is None else min(
            st.conf.image_size_cap, remaining)
        image.status = wanted
        image.data_holder = st.holder
        image.updated_at = utcnow()
        return Claim(image.id, image.owner, image.disk_format, "queued", wanted, max_size)


async def release(st: ImageState, c: Claim, *, to: str = "queued") -> None:
    """Give a claim back (the image returns to ``queued``) if it is still ours."""
    async with st.db.write() as session:
        await session.execute(
            update(Image)
            .where(Image.id == c.image_id, Image.status == c.status, Image.data_holder == st.holder)
            .values(status=to, data_holder=None, staged_size=None, updated_at=utcnow())
        )


def _store_error(exc: Exception, c: Claim, st: ImageState) -> CloudError:
    if isinstance(exc, SizeLimitExceeded):
        if c.max_size is not None and c.max_size < st.conf.image_size_cap:
            return RequestEntityTooLarge(
                f"Denying attempt to upload image because it exceeds the quota: the remaining "
                f"quota is {c.max_size} bytes."
            )
        return RequestEntityTooLarge(
            f"Image exceeds the storage quota: image_size_cap is {st.conf.image_size_cap} bytes."
        )
    if isinstance(exc, SizeMismatch):
        return BadRequest(f"Image data size does not match the declared size: {exc}")
    if isinstance(exc, formats.FormatError):
        return BadRequest(str(exc))
    if isinstance(exc, CloudError):
        return exc
    return BadRequest(f"Error in the image data upload: {exc}")


class ChecksumMismatch(BadRequest):
    def __init__(self, sent: str, computed: str) -> None:
        super().__init__(f"Checksum verification failed: the request's Content-MD5 is {sent}, "
                         f"the data's md5 is {computed}.")


def md5_from_header(value: str | None) -> str | None:
    """The md5 a ``Content-MD5`` header gives, as hex (it may be hex or base64).

    Raises:
        BadRequest: neither.
    """
    if value is None:
        return None
    value = value.strip()
    if len(value) == 32 and all(ch in "0123456789abcdefABCDEF" for ch in value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 16:
        raise BadRequest("Content-MD5 must be an md5 digest, in hex or base64")
    return raw.hex()


async def _write(
    st: ImageState, store: Store, c: Claim, chunks: AsyncIterable[bytes], expected: int | None,
    md5: str | None = None,
) -> tuple[StoredData, int | None]:
    stored = await store.add(c.image_id, chunks, expected_size=expected, max_size=c.max_size,
                             hash_algo=st.conf.hashing_algorithm)
    try:
        if md5 is not None and md5 != stored.checksum:
            raise ChecksumMismatch(md5, stored.checksum)
        virtual_size = None
        path = store.local_path(stored.location)
        if path is not None and c.disk_format is not None:
            virtual_size = await formats.check(path, c.disk_format,
                                               match=st.conf.require_format_match)
            if c.disk_format in RAW_LIKE:
                virtual_size = stored.size  # qemu rounds a raw file up to whole sectors
    except BaseException:
        await store.delete(stored.location)
        raise
    return stored, virtual_size


async def upload(
    st: ImageState, ctx: RequestContext, image_id: str, chunks: AsyncIterable[bytes],
    *, length: int | None, store_id: str | None, md5: str | None = None,
) -> None:
    """``PUT /v2/images/{id}/file``: store the body and make the image active;
    with ``md5`` (the request's ``Content-MD5``) the data must match it.

    Raises:
        NotFound, Forbidden, Conflict, BadRequest, RequestEntityTooLarge, Gone.
    """
    store = pick_store(st, store_id)
    c = await claim(st, ctx, image_id, staging=False, action="image:upload_image")
    try:
        stored, virtual_size = await _write(st, store, c, chunks, length, md5)
    except BaseException as exc:
        await release(st, c)
        if isinstance(exc, Exception):
            raise _store_error(exc, c, st) from exc
        raise
    try:
        await activate(st, c, store, stored, virtual_size)
    except BaseException:
        await store.delete(stored.location)
        await release(st, c)
        raise


async def activate(
    st: ImageState, c: Claim, store: Store, stored: StoredData, virtual_size: int | None,
    *, status_from: str | None = None,
) -> None:
    """Step 3: the image becomes ``active`` with its data, if still claimed.

    Raises:
        Gone: the image was deleted (or its claim taken away) meanwhile.
    """
    async with st.db.write() as session:
        image = await session.get(Image, c.image_id)
        if image is None or image.status != (status_from or c.status) or image.data_holder != st.holder:
            raise Gone(f"Image {c.image_id} could not be found after upload. "
                       "The image may have been deleted during the upload.")
        image.status = "active"
        image.size = stored.size
        image.virtual_size = virtual_size if virtual_size is not None else image.virtual_size
        image.checksum = stored.checksum
        image.os_hash_algo = stored.hash_algo
        image.os_hash_value = stored.hash_value
        image.data_holder = None
        image.staged_size = None
        image.updated_at = utcnow()
        image.locations.append(
            ImageLocation(store=store.id, url=stored.location, meta={"store": store.id},
                          position=len(image.locations))
        )


async def stage(
    st: ImageState, ctx: RequestContext, image_id: str, chunks: AsyncIterable[bytes],
    *, length: int | None,
) -> None:
    """``PUT /v2/images/{id}/stage``: keep the body in the staging area for an
    import (``glance-direct``); the image is ``uploading`` afterwards."""
    c = await claim(st, ctx, image_id, staging=True, action="image:upload_image")
    try:
        stored = await st.staging.add(image_id, chunks, expected_size=length,
                                      max_size=c.max_size, hash_algo=st.conf.hashing_algorithm)
    except BaseException as exc:
        await release(st, c)
        if isinstance(exc, Exception):
            raise _store_error(exc, c, st) from exc
        raise
    async with st.db.write() as session:
        image = await session.get(Image, image_id)
        if image is None or image.status != "uploading" or image.data_holder != st.holder:
            await st.staging.delete(stored.location)
            raise Gone(f"Image {image_id} could not be found after upload.")
        image.staged_size = stored.size
        image.data_holder = None
        image.updated_at = utcnow()


def pick_store(st: ImageState, store_id: str | None) -> Store:
    """The store named by ``X-Image-Meta-Store`` (or the default).

    Raises:
        BadRequest: no such store.
    """
    if store_id is None:
        return st.default_store
    store = st.stores.get(store_id)
    if store is None:
        raise BadRequest(f"Store for identifier {store_id} not found")
    return store


# -- download ------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    image: Image
    store: Store | None
    location: str | None


async def for_download(st: ImageState, ctx: RequestContext, image_id: str) -> Download:
    """The image and where to read its data (``store`` is ``None`` when it has none).

    Raises:
        NotFound, Forbidden (policy, or deactivated for a non-admin).
    """
    async with st.db.read() as session:
        seen = await svc.get_visible(session, ctx, image_id)
    image = seen.image
    if not st.enforcer.check("image:download_image", seen.target(ctx), ctx.policy_creds()):
        raise errors.forbidden("download_image")
    if image.status == "deactivated" and not svc.is_admin(ctx):
        raise Forbidden("The requested image has been deactivated. Image data download is "
                        "prohibited.")
    for loc in image.locations:
        store = st.stores.get(loc.store)
        if store is not None:
            return Download(image, store, loc.url)
    return Download(image, None, None)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` of a single ``bytes=`` range, ``None`` for no range.

    Raises:
        RangeNotSatisfiable: a range that does not fit the data.
        BadRequest: several ranges.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or not spec:
        raise RangeNotSatisfiable(size)
    if "," in spec:
        raise BadRequest("Multiple ranges are not supported for image downloads")
    first_s, _, last_s = spec.strip().partition("-")
    try:
        if first_s == "":
            n = int(last_s)
            if n <= 0:
                raise RangeNotSatisfiable(size)
            first, last = max(0, size - n), size - 1
        else:
            first = int(first_s)
            last = int(last_s) if last_s else size - 1
    except ValueError:
        raise RangeNotSatisfiable(size) from None
    last = min(last, size - 1)
    if first > last or first >= size:
        raise RangeNotSatisfiable(size)
    return first, last


class RangeNotSatisfiable(CloudError):
    status_code = 416

    def __init__(self, size: int) -> None:
        super().__init__("Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})


# -- recovery and cleanup --------------------------------------------------------


async def recover(st: ImageState) -> int:
    """Reset uploads this host left half-done when it stopped (``saving`` or an
    unfinished ``uploading`` claim back to ``queued``). Returns how many."""
    host = host_of(st.holder)
    async with st.db.write() as session:
        rows = (await session.execute(
            Image.__table__.select().where(
                Image.status.in_(("saving", "uploading")), Image.data_holder.is_not(None)
            )
        )).all()
        mine = [r.id for r in rows if host_of(r.data_holder) == host and r.data_holder != st.holder]
        if mine:
            await session.execute(
                update(Image).where(Image.id.in_(mine)).values(
                    status="queued", data_holder=None, staged_size=None, updated_at=utcnow()
                )
            )
    for image_id in mine:
        log.warning("image %s: upload interrupted by a restart; back to queued", image_id)
        await st.staging.delete(staging_location(st, image_id))
    for store in [*st.stores.values(), st.staging]:
        remove_partial = getattr(store, "remove_partial", None)
        if remove_partial is not None:  # temporary files of uploads cut off by a crash
            await remove_partial(older_than=0 if mine else 3600.0)
    return len(mine)


def staging_location(st: ImageState, image_id: str) -> str:
    return st.extras["staging_location"](image_id)  # type: ignore[no-any-return]


async def delete_data(st: ImageState, data: list[tuple[str, str]]) -> None:
    """Remove stored data (after the records are gone); missing data is fine."""
    for store_id, url in data:
        store = st.stores.get(store_id)
        if store is None:
            continue
        try:
            await store.delete(url)
        except Exception:  # noqa: BLE001 - a leftover file must not fail a delete
            log.exception("could not delete image data at %s", url)

