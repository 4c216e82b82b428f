"""The image a new cloud offers for its first boot, as devstack uploads CirrOS:
with the qemu driver, compute builds the test image (``drivers/testimage.py``:
this machine's kernel and busybox, nothing downloaded) and uploads it to the image
service as a public image named ``[compute] starter_image``, once. It boots under
TCG in a few seconds, takes its address by DHCP, reads its metadata and prints
markers on its console."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from onestack.compute.drivers import testimage
from onestack.compute.service import external
from onestack.compute.state import ComputeState

log = logging.getLogger(__name__)

CHUNK = 1 << 20


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk


async def ensure(st: ComputeState, name: str, cache_dir: Path) -> str | None:
    """The id of the public image ``name``, uploading the test image first if the
    image service has no active one of that name; ``None`` when the test image
    cannot be built here (no kernel or busybox: the reason is logged)."""
    client = external._client(st)
    headers = await external.service_headers(st)
    r = await client.get(f"{external.IMAGE}/images", params={"name": name},
                         headers=headers)
    for img in external._check(r, "listing images")["images"]:
        if img["status"] == "active":
            return str(img["id"])
        if img["status"] in ("queued", "saving"):  # an upload a crash cut short
            await client.delete(f"{external.IMAGE}/images/{img['id']}", headers=headers)
    try:
        image = await asyncio.to_thread(testimage.build, cache_dir)
    except testimage.BuildError as exc:
        log.warning("no starter image %r: %s", name, exc)
        return None
    r = await client.post(f"{external.IMAGE}/images", headers=headers, json={
        "name": name, "disk_format": "qcow2", "container_format": "bare",
        "visibility": "public", "os_distro": "busybox", "os_type": "linux",
        "description": "OneStack's test image: Debian's kernel and busybox; boots in "
                       "seconds, DHCP, metadata, console markers"})
    img_id = str(external._check(r, "creating the starter image")["id"])
    try:
        r = await client.put(f"{external.IMAGE}/images/{img_id}/file",
                             content=_chunks(image.disk),
                             headers={**headers, "Content-Type": "application/octet-stream"})
        external._check(r, "uploading the starter image")
    except BaseException:
        await client.delete(f"{external.IMAGE}/images/{img_id}", headers=headers)
        raise
    log.info("uploaded the starter image %r (%s)", name, img_id)
    return img_id
