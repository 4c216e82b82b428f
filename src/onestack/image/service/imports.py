"""Interoperable image import: ``POST /v2/images/{id}/import``.

Methods:

- ``glance-direct``: the data was staged with ``PUT /stage``;
- ``web-download``: the service fetches a URL that the configuration allows
  (scheme and host lists; nothing is allowed until an operator lists hosts);
- ``copy-image``: an active image's data is copied to more stores (admins).

The request is checked and recorded in one transaction: a Glance task
(``/v2/tasks/{id}``, what clients see), the image's state (``importing`` and
the reserved ``os_glance_*`` properties Glance keeps during an import) and a
durable job that does the work. The job runs in the background and survives a
restart: each finished step (download, conversion, each store) is recorded, so
a resumed job does only what is left. Steps:

1. source: the staged file, the downloaded file, or an existing copy;
2. for glance-direct and web-download, the disk format is checked (and
   converted with qemu-img when ``image.convert_to_format`` is set);
3. the data is written to each target store, hashed on the way;
4. the image becomes active with every location that succeeded; with
   ``all_stores_must_succeed`` (the default) any failure undoes the import and
   the image returns to ``queued``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest, Conflict
from onestack.core.tasks import TaskHandle
from onestack.image import errors, formats
from onestack.image.models import Image, ImageLocation, ImageProperty, Task, utcnow
from onestack.image.service import data as data_svc
from onestack.image.service import images as images_svc
from onestack.image.service import quotas
from onestack.image.state import ImageState
from onestack.image.stores.base import StoredData

log = logging.getLogger("onestack.image.import")

TASK_TTL = timedelta(hours=48)
P_TASK = "os_glance_import_task"
P_TO = "os_glance_importing_to_stores"
P_FAILED = "os_glance_failed_import"


class ImportFailed(Exception):
    """A failure that retrying cannot fix (bad data, a refused URL ...)."""


def _set_prop(image: Image, name: str, value: str | None) -> None:
    for p in image.properties:
        if p.name == name:
            if value is None:
                image.properties.remove(p)
            else:
                p.value = value
            return
    if value is not None:
        image.properties.append(ImageProperty(name=name, value=value))


def _get_prop(image: Image, name: str) -> str | None:
    return next((p.value for p in image.properties if p.name == name), None)


def check_uri(st: ImageState, uri: Any) -> str:
    """``uri`` if web-download may fetch it.

    Raises:
        BadRequest: missing, malformed, or not allowed by the configuration.
    """
    if not isinstance(uri, str) or not uri:
        raise BadRequest("Import method web-download requires a 'uri' in 'method'.")
    parts = urlsplit(uri)
    if parts.scheme not in st.conf.web_download_allowed_schemes or not parts.hostname or \
            parts.hostname not in st.conf.web_download_allowed_hosts:
        raise BadRequest(f"URI for web-download does not pass filtering: {uri}")
    return uri


def _target_stores(st: ImageState, body: dict[str, Any], header_store: str | None) -> list[str]:
    stores = body.get("stores")
    all_stores = body.get("all_stores", False)
    if not isinstance(all_stores, bool):
        raise BadRequest("'all_stores' must be a boolean")
    if stores is not None and all_stores:
        raise BadRequest("All_stores parameter can't be used with x-image-meta-store header or "
                         "stores parameter")
    if all_stores:
        return list(st.stores)
    if stores is None:
        return [header_store] if header_store else [st.conf.default_store]
    if not isinstance(stores, list) or not stores or not all(isinstance(s, str) for s in stores):
        raise BadRequest("'stores' must be a non-empty list of store identifiers")
    for s in stores:
        if s not in st.stores:
            raise BadRequest(f"Store for identifier {s} not found")
    return list(dict.fromkeys(stores))


async def start(
    st: ImageState, ctx: RequestContext, image_id: str, body: Any, header_store: str | None
) -> str:
    """Check and record an import request; returns the Glance task id.

    Raises:
        BadRequest, NotFound, Forbidden, Conflict, RequestEntityTooLarge.
    """
    if not isinstance(body, dict) or not isinstance(body.get("method"), dict):
        raise BadRequest("Import request requires a 'method' object")
    method = body["method"].get("name")
    if method not in ("glance-direct", "web-download", "copy-image"):
        raise BadRequest(f"Unknown import method name '{method}'.")
    if method not in st.conf.import_methods:
        raise BadRequest(f"Import method {method} is not enabled in this cloud")
    must_succeed = body.get("all_stores_must_succeed", True)
    if not isinstance(must_succeed, bool):
        raise BadRequest("'all_stores_must_succeed' must be a boolean")
    uri = check_uri(st, body["method"].get("uri")) if method == "web-download" else None
    if header_store is not None and header_store not in st.stores:
        raise BadRequest(f"Store for identifier {header_store} not found")
    targets = _target_stores(st, body, header_store)
    async with st.db.write() as session:
        seen = await images_svc.get_visible(session, ctx, image_id)
        image = seen.image
        rule = "image:copy_image" if method == "copy-image" else "image:import_image"
        if not st.enforcer.check(rule, seen.target(ctx), ctx.policy_creds()):
            raise errors.forbidden(rule.split(":")[1])
        await _check_state(session, image, method)
        if method == "copy-image":
            have = {loc.store for loc in image.locations}
            targets = [t for t in targets if t not in have]
        else:
            await quotas.enforce(st, session, image.owner, {"image_size_total": 0})
            if image.disk_format is None or image.container_format is None:
                raise BadRequest("Properties disk_format, container_format must be set prior to "
                                 "importing data.")
        now = utcnow()
        task = Task(
            type="api_image_import", status="pending", owner=image.owner,
            input={"image_id": image.id, "import_req": body, "backend": targets},
            message="", image_id=image.id, request_id=ctx.request_id, user_id=ctx.user_id,
            created_at=now, updated_at=now,
        )
        session.add(task)
        await session.flush()
        if method != "copy-image":
            image.status = "importing"
        _set_prop(image, P_TASK, task.id)
        _set_prop(image, P_TO, ",".join(targets))
        _set_prop(image, P_FAILED, "")
        image.updated_at = now
        await st.jobs.submit(session, "import", {
            "task_id": task.id, "image_id": image.id, "method": method, "uri": uri,
            "stores": targets, "all_must_succeed": must_succeed,
        })
        return task.id


async def _check_state(session: AsyncSession, image: Image, method: str) -> None:
    running = _get_prop(image, P_TASK)
    if running:
        task = await session.get(Task, running)
        if task is not None and task.status in ("pending", "processing"):
            raise Conflict(f"Image {image.id} has an import in progress (task {running})")
    if method == "glance-direct":
        if image.status != "uploading" or image.staged_size is None:
            raise Conflict("Image needs to be staged before 'glance-direct' method can be used")
    elif method == "web-download":
        if image.status != "queued":
            raise Conflict(f"Image {image.id} is {image.status}: web-download needs a queued image")
    elif image.status != "active":
        raise Conflict(f"Image {image.id} is {image.status}: copy-image needs an active image")


# -- the durable job -----------------------------------------------------------


async def _task_status(st: ImageState, task_id: str, status: str, message: str = "",
                       result: dict[str, Any] | None = None) -> None:
    async with st.db.write() as session:
        task = await session.get(Task, task_id)
        if task is None:
            return
        task.status = status
        task.message = message
        task.updated_at = utcnow()
        if result is not None:
            task.result = result
        if status in ("success", "failure"):
            task.expires_at = utcnow() + TASK_TTL


def _staged_path(st: ImageState, image_id: str) -> Path:
    loc = data_svc.staging_location(st, image_id)
    path = st.staging.local_path(loc)
    assert path is not None, "the staging store keeps local files"
    return path


async def _download(st: ImageState, image_id: str, uri: str, max_size: int) -> StoredData:
    async def body() -> AsyncIterator[bytes]:
        async with httpx.AsyncClient(follow_redirects=False, timeout=60.0) as client:
            async with client.stream("GET", uri) as resp:
                if resp.status_code != 200:
                    raise ImportFailed(f"web-download of {uri} answered HTTP {resp.status_code}")
                async for chunk in resp.aiter_bytes():
                    yield chunk

    try:
        return await st.staging.add(image_id, body(), max_size=max_size,
                                    hash_algo=st.conf.hashing_algorithm)
    except httpx.HTTPError as exc:
        raise ImportFailed(f"web-download of {uri} failed: {exc}") from exc


async def run(st: ImageState, h: TaskHandle) -> dict[str, Any]:
    """The ``import`` job."""
    p = h.payload
    task_id, image_id, method = p["task_id"], p["image_id"], p["method"]
    await _task_status(st, task_id, "processing")
    try:
        result = await _run_steps(st, h)
    except ImportFailed as exc:
        await _fail(st, p, str(exc))
        return {"failed": str(exc)}
    except Exception as exc:
        if h.attempt >= st.jobs.max_attempts:
            await _fail(st, p, f"{type(exc).__name__}: {exc}")
            return {"failed": str(exc)}
        raise
    await _task_status(st, task_id, "success", result={"image_id": image_id, **result})
    log.info("image %s imported with %s", image_id, method)
    return result


async def _run_steps(st: ImageState, h: TaskHandle) -> dict[str, Any]:
    p = h.payload
    image_id, method = p["image_id"], p["method"]
    async with st.db.read() as session:
        image = await session.get(Image, image_id)
        if image is None:
            raise ImportFailed(f"Image {image_id} was deleted during the import")
        disk_format = image.disk_format
        source = next(((loc.store, loc.url) for loc in image.locations), None)
    # 1. source
    if method == "web-download" and not h.result.get("downloaded"):
        await _download(st, image_id, p["uri"], st.conf.image_size_cap)
        await h.progress(downloaded=True)
    virtual_size = h.result.get("virtual_size")
    if method == "copy-image":
        if source is None:
            raise ImportFailed(f"Image {image_id} has no data to copy")
        src_store, src_url = st.stores[source[0]], source[1]
    else:
        src_store = st.staging
        src_url = data_svc.staging_location(st, image_id)
        path = _staged_path(st, image_id)
        # 2. conversion and format check
        target = st.conf.convert_to_format
        if target and disk_format != target and not h.result.get("converted"):
            tmp = path.with_name(path.name + ".converted")
            try:
                await formats.convert(path, tmp, disk_format or "raw", target)
                tmp.replace(path)
            except formats.FormatError as exc:
                raise ImportFailed(str(exc)) from exc
            disk_format = target
            await h.progress(converted=True, disk_format=target)
        disk_format = h.result.get("disk_format", disk_format)
        if "virtual_size" not in h.result:
            try:
                virtual_size = await formats.check(path, disk_format or "raw",
                                                   match=st.conf.require_format_match)
                if (disk_format or "raw") in data_svc.RAW_LIKE:
                    virtual_size = path.stat().st_size
            except formats.FormatError as exc:
                raise ImportFailed(str(exc)) from exc
            await h.progress(virtual_size=virtual_size)
    # 3. each store
    done: dict[str, dict[str, Any]] = dict(h.result.get("done", {}))
    failed: list[str] = list(h.result.get("failed_stores", []))
    for store_id in p["stores"]:
        if store_id in done or store_id in failed:
            continue
        store = st.stores[store_id]
        try:
            stored = await store.add(
                image_id, src_store.open(src_url), max_size=st.conf.image_size_cap,
                hash_algo=st.conf.hashing_algorithm,
            )
        except Exception as exc:  # noqa: BLE001 - recorded per store
            log.warning("image %s: import to store %s failed: %s", image_id, store_id, exc)
            failed.append(store_id)
            await h.progress(failed_stores=failed)
            if p["all_must_succeed"]:
                raise ImportFailed(f"Import to store {store_id} failed: {exc}") from exc
            continue
        done[store_id] = {"url": stored.location, "size": stored.size, "checksum": stored.checksum,
                          "hash_algo": stored.hash_algo, "hash_value": stored.hash_value}
        await h.progress(done=done)
        await _store_done(st, image_id, store_id, done[store_id], method)
    if not done and method != "copy-image":
        raise ImportFailed("Import failed for every store")
    # 4. finish
    await _finish(st, image_id, method, disk_format, virtual_size, failed)
    if method != "copy-image":
        await st.staging.delete(data_svc.staging_location(st, image_id))
    return {"stores": sorted(done), "failed_stores": failed}


async def _store_done(st: ImageState, image_id: str, store_id: str, info: dict[str, Any],
                      method: str) -> None:
    """Record one store's copy (so that a copy is visible as soon as it exists)."""
    async with st.db.write() as session:
        image = await session.get(Image, image_id)
        if image is None:
            await st.stores[store_id].delete(info["url"])
            raise ImportFailed(f"Image {image_id} was deleted during the import")
        if not any(loc.store == store_id for loc in image.locations):
            image.locations.append(ImageLocation(
                store=store_id, url=info["url"], meta={"store": store_id},
                position=len(image.locations)))
        pending = [s for s in (_get_prop(image, P_TO) or "").split(",") if s and s != store_id]
        _set_prop(image, P_TO, ",".join(pending))
        if image.status == "importing":
            image.size = info["size"]
            image.checksum = info["checksum"]
            image.os_hash_algo = info["hash_algo"]
            image.os_hash_value = info["hash_value"]
        image.updated_at = utcnow()


async def _finish(st: ImageState, image_id: str, method: str, disk_format: str | None,
                  virtual_size: int | None, failed: list[str]) -> None:
    async with st.db.write() as session:
        image = await session.get(Image, image_id)
        if image is None:
            raise ImportFailed(f"Image {image_id} was deleted during the import")
        if method != "copy-image":
            image.status = "active"
            image.disk_format = disk_format
            if virtual_size is not None:
                image.virtual_size = virtual_size
            image.staged_size = None
        _set_prop(image, P_TASK, None)
        _set_prop(image, P_TO, "")
        _set_prop(image, P_FAILED, ",".join(failed))
        image.updated_at = utcnow()


async def _fail(st: ImageState, p: dict[str, Any], message: str) -> None:
    """Undo a failed import: data written to the targets is removed, the image
    returns to ``queued`` (or stays active for copy-image) and the task fails."""
    image_id = p["image_id"]
    removed: list[tuple[str, str]] = []
    async with st.db.write() as session:
        image = await session.get(Image, image_id)
        if image is not None:
            if p["method"] != "copy-image" and p["all_must_succeed"]:
                removed = [(loc.store, loc.url) for loc in image.locations]
                image.locations = []
                image.status = "queued"
                image.size = image.checksum = image.os_hash_algo = image.os_hash_value = None
                image.staged_size = None
            _set_prop(image, P_TASK, None)
            _set_prop(image, P_TO, "")
            _set_prop(image, P_FAILED, ",".join(p["stores"]))
            image.updated_at = utcnow()
    await data_svc.delete_data(st, removed)
    if p["method"] != "copy-image":
        await st.staging.delete(data_svc.staging_location(st, image_id))
    await _task_status(st, p["task_id"], "failure", message)
    log.warning("image %s: import failed: %s", image_id, message)


async def delete_data_job(st: ImageState, h: TaskHandle) -> None:
    """The ``delete_data`` job: remove the data of a deleted image."""
    await data_svc.delete_data(st, [tuple(x) for x in h.payload["data"]])  # type: ignore[misc]


# -- the legacy tasks API (POST /v2/tasks, type "import") ------------------------


async def create_task(st: ImageState, ctx: RequestContext, body: Any) -> Task:
    """``POST /v2/tasks``: an ``import`` task that creates an image and
    web-downloads its data; the outcome is in the task (``success`` or
    ``failure`` with a message).

    Raises:
        BadRequest: not an import task, or its input is incomplete.
    """
    if not isinstance(body, dict) or body.get("type") != "import":
        raise BadRequest("Invalid type value: the only task type is 'import'")
    inp = body.get("input")
    if not isinstance(inp, dict):
        raise BadRequest("Invalid input: 'input' must be an object")
    for key in ("import_from", "import_from_format", "image_properties"):
        if key not in inp:
            raise BadRequest(f"Input does not contain '{key}' field")
    if not isinstance(inp["image_properties"], dict):
        raise BadRequest("Invalid input: 'image_properties' must be an object")
    async with st.db.write() as session:
        now = utcnow()
        task = Task(type="import", status="pending", owner=ctx.project_id, input=inp,
                    message="", request_id=ctx.request_id, user_id=ctx.user_id,
                    created_at=now, updated_at=now)
        session.add(task)
        await session.flush()
        await st.jobs.submit(session, "task_import", {
            "task_id": task.id, "owner": ctx.project_id, "roles": list(ctx.roles),
        })
    return task


async def run_task_import(st: ImageState, h: TaskHandle) -> None:
    """The ``task_import`` job: check the URL, create the image, then hand the
    download to the ``import`` job under the same task."""
    task_id = h.payload["task_id"]
    async with st.db.write() as session:
        task = await session.get(Task, task_id)
        if task is None or task.status != "pending":
            return
        inp = task.input
        try:
            uri = check_uri(st, inp["import_from"])
        except BadRequest as exc:
            task.status, task.message = "failure", exc.message
            task.updated_at = utcnow()
            task.expires_at = utcnow() + TASK_TTL
            return
        props = dict(inp["image_properties"])
        props.setdefault("disk_format", inp["import_from_format"])
        props.setdefault("container_format", "bare")
        image = Image(owner=h.payload["owner"], status="importing",
                      name=props.pop("name", None),
                      visibility=props.pop("visibility", "shared"),
                      disk_format=props.pop("disk_format"),
                      container_format=props.pop("container_format"),
                      properties=[ImageProperty(name=str(k), value=str(v)) for k, v in props.items()],
                      tags=[], locations=[])
        session.add(image)
        await session.flush()
        task.image_id = image.id
        task.status = "processing"
        task.result = {"image_id": image.id}
        _set_prop(image, P_TASK, task.id)
        await st.jobs.submit(session, "import", {
            "task_id": task.id, "image_id": image.id, "method": "web-download", "uri": uri,
            "stores": [st.conf.default_store], "all_must_succeed": True,
        })


async def tasks_of(session: AsyncSession, image_id: str) -> list[Task]:
    rows = await session.scalars(
        select(Task).where(Task.image_id == image_id).order_by(Task.created_at)
    )
    return list(rows.all())
