"""``/images`` and ``/images/{id}/metadata``: Nova's image proxy.

Nova deprecated the proxy (``/images`` answers 404 from 2.36, the metadata
calls from 2.39) but still serves it, and Tempest's compute tests use it at
2.1. Every call goes to the image service's API with the caller's own token,
so what a user sees and may change is exactly what the image service lets
them; the answer is translated into Nova's view (``status`` in capitals,
``minDisk``/``minRam``, the custom properties as ``metadata``, a ``server``
link for a snapshot).

Listing filters (``name``, ``status``, ``type``, ``server``, ``changes-since``,
``minRam``, ``minDisk``) and paging are applied here over the caller's full
image list, as Nova's view of them does not map one to one onto the image
API's filters (``status`` is Nova's, ``type`` is the ``image_type`` property)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute.api import common as c
from onestack.compute.service import quotas as quotas_svc
from onestack.compute.service.external import ExternalError
from onestack.compute.service.servers import IMAGE_KEYS
from onestack.core.errors import BadRequest, CloudError, Forbidden, NotFound, ServiceUnavailable
from onestack.core.http import JSONResponse, read_json

IMAGE_API = "/image/v2"
PROXY_MAX = "2.35"  # /images answers 404 from 2.36
META_PROXY_MAX = "2.38"  # /images/{id}/metadata from 2.39
# Glance's fields that are not custom properties (Nova's image attributes)
CORE_KEYS = IMAGE_KEYS | {"disk_format", "container_format"}
STATUS = {"active": "ACTIVE", "queued": "SAVING", "saving": "SAVING",
          "uploading": "SAVING", "importing": "SAVING", "deleted": "DELETED",
          "pending_delete": "DELETED", "killed": "ERROR"}
PROGRESS = {"queued": 25, "saving": 50, "active": 100}
PATCH_TYPE = "application/openstack-images-v2.1-json-patch"


def image_not_found() -> NotFound:
    return NotFound("Image not found.")


# -- the image service ---------------------------------------------------------------------

def _client(request: Request) -> httpx.AsyncClient:
    http = c.state(request).http
    if http is None:
        raise ServiceUnavailable("the compute service cannot reach the image service")
    return http


def _headers(request: Request) -> dict[str, str]:
    return {"X-Auth-Token": request.headers.get("x-auth-token", "")}


def _failed(r: httpx.Response, what: str) -> CloudError:
    """The image service's refusal as Nova answers it."""
    if r.status_code == 404:
        return image_not_found()
    if r.status_code == 403:
        return Forbidden(f"You are not allowed to {what}.")
    if r.status_code in (400, 409, 413):
        try:
            detail = r.json().get("message") or r.text
        except ValueError:
            detail = r.text
        return BadRequest(f"Invalid image metadata: {detail}"[:500])
    return ExternalError(f"The image service failed to {what}: {r.status_code}")


async def _get_image(request: Request, image_id: str) -> dict[str, Any]:
    """Raises: NotFound (not there, or not visible to the caller)."""
    r = await _client(request).get(f"{IMAGE_API}/images/{image_id}",
                                   headers=_headers(request))
    if r.status_code != 200:
        raise _failed(r, "read the image")
    image: dict[str, Any] = r.json()
    return image


async def _all_images(request: Request) -> list[dict[str, Any]]:
    """Every image the caller sees, following the image API's ``next`` links."""
    images: list[dict[str, Any]] = []
    url: str | None = f"{IMAGE_API}/images?limit=1000"
    while url is not None:
        r = await _client(request).get(url, headers=_headers(request))
        if r.status_code != 200:
            raise _failed(r, "list images")
        body = r.json()
        images.extend(body["images"])
        nxt = body.get("next")
        url = f"/image{nxt}" if nxt and body["images"] else None
    return images


def properties(image: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in image.items() if k not in CORE_KEYS}


async def _set_properties(request: Request, image: dict[str, Any],
                          wanted: dict[str, Any]) -> dict[str, Any]:
    """Make the image's custom properties exactly ``wanted`` (one JSON patch);
    the updated image."""
    old = properties(image)
    ops: list[dict[str, Any]] = [{"op": "remove", "path": f"/{k}"}
                                 for k in sorted(old) if k not in wanted]
    for k, v in wanted.items():
        if k not in old:
            ops.append({"op": "add", "path": f"/{k}", "value": v})
        elif old[k] != v:
            ops.append({"op": "replace", "path": f"/{k}", "value": v})
    if not ops:
        return image
    r = await _client(request).patch(
        f"{IMAGE_API}/images/{image['id']}", json=ops,
        headers={**_headers(request), "Content-Type": PATCH_TYPE})
    if r.status_code != 200:
        raise _failed(r, "update the image's metadata")
    updated: dict[str, Any] = r.json()
    return updated


# -- Nova's view ------------------------------------------------------------------------------

def _links(request: Request, image_id: str) -> list[dict[str, str]]:
    """self and bookmark, and the image service's own address (``alternate``)."""
    root = f"{request.url.scheme}://{request.url.netloc}"
    return [*c.resource_links(request, "images", image_id),
            {"rel": "alternate", "type": "application/vnd.openstack.image",
             "href": f"{root}/image/images/{image_id}"}]


def _time(raw: str | None) -> str | None:
    """Glance's ISO time as Nova shows it (seconds, ``Z``)."""
    if not raw:
        return None
    t = _parse_iso(raw)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else raw


def _parse_iso(raw: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def brief(request: Request, image: dict[str, Any]) -> dict[str, Any]:
    return {"id": image["id"], "name": image.get("name"),
            "links": _links(request, image["id"])}


def detail(request: Request, image: dict[str, Any]) -> dict[str, Any]:
    glance_status = image.get("status") or ""
    props = properties(image)
    out: dict[str, Any] = {
        **brief(request, image),
        "minRam": int(image.get("min_ram") or 0), "minDisk": int(image.get("min_disk") or 0),
        "metadata": props, "created": _time(image.get("created_at")),
        "updated": _time(image.get("updated_at")),
        "status": STATUS.get(glance_status, "UNKNOWN"),
        "progress": PROGRESS.get(glance_status, 0),
        "OS-EXT-IMG-SIZE:size": image.get("size"),
    }
    server = props.get("instance_uuid")
    if server:
        out["server"] = {"id": server,
                         "links": c.resource_links(request, "servers", str(server))}
    return out


# -- /images ------------------------------------------------------------------------------------

def _proxy(request: Request, newest: str = PROXY_MAX) -> None:
    """Raises: NotFound past the proxy's last microversion."""
    if c.supports(request, _next(newest)):
        raise NotFound("The resource could not be found.")


def _next(v: str) -> str:
    major, minor = v.split(".")
    return f"{major}.{int(minor) + 1}"


def _filtered(request: Request, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    q = request.query_params
    out = images
    if "name" in q:
        out = [i for i in out if i.get("name") == q["name"]]
    if "status" in q:
        want = q["status"].upper()
        out = [i for i in out if STATUS.get(i.get("status") or "", "UNKNOWN") == want]
    if "type" in q:
        out = [i for i in out if i.get("image_type") == q["type"]]
    if "server" in q:
        server = q["server"].rstrip("/").rsplit("/", 1)[-1]
        out = [i for i in out if i.get("instance_uuid") == server]
    if "changes-since" in q:
        since = _parse_iso(q["changes-since"])
        if since is None:
            raise BadRequest(f"Invalid filter field: changes-since. "
                             f"Value: {q['changes-since']}")
        out = [i for i in out if (t := _parse_iso(i.get("updated_at") or "")) is not None
               and t >= since]
    for param, key in (("minRam", "min_ram"), ("minDisk", "min_disk")):
        if param in q:
            try:
                least = int(q[param])
            except ValueError:
                raise BadRequest(f"Invalid filter field: {param}. Value: {q[param]}") from None
            out = [i for i in out if int(i.get(key) or 0) >= least]
    return out


async def _list(request: Request, full: bool) -> Response:
    _proxy(request)
    await c.context(request)
    images = _filtered(request, await _all_images(request))
    limit, marker = c.limit_and_marker(request)
    page = c.paginate(images, lambda i: i["id"], limit, marker,
                      BadRequest(f"marker [{marker}] not found"))
    body: dict[str, Any] = {"images": [detail(request, i) if full else brief(request, i)
                                       for i in page]}
    links = c.collection_links(request, page, "images/detail" if full else "images", "id")
    if links:
        body["images_links"] = links
    return JSONResponse(body)


async def index(request: Request) -> Response:
    return await _list(request, False)


async def index_detail(request: Request) -> Response:
    return await _list(request, True)


async def show(request: Request) -> Response:
    _proxy(request)
    await c.context(request)
    image = await _get_image(request, request.path_params["image_id"])
    return JSONResponse({"image": detail(request, image)})


async def delete(request: Request) -> Response:
    _proxy(request)
    await c.context(request)
    r = await _client(request).delete(f"{IMAGE_API}/images/{request.path_params['image_id']}",
                                      headers=_headers(request))
    if r.status_code != 204:
        raise _failed(r, "delete the image")
    return Response(status_code=204)


# -- /images/{id}/metadata ------------------------------------------------------------------

async def _check_quota(request: Request, items: dict[str, Any]) -> None:
    """Raises: Forbidden past the caller's project's ``metadata_items`` quota."""
    st = c.state(request)
    project = (await c.context(request)).project_id
    await quotas_svc.prefetch(st, project)
    async with st.db.read() as s:
        allowed = await quotas_svc.effective_limit(s, st, project, None, "metadata_items")
    if allowed >= 0 and len(items) > allowed:
        raise Forbidden("Image metadata limit exceeded")


async def _meta_body(request: Request, root: str) -> Any:
    body = await read_json(request)
    return c.expect_object(body, root, (root,), (root,))[root]


async def _meta_allowed(request: Request) -> None:
    """Raises: NotFound past 2.38; Unauthorized."""
    _proxy(request, META_PROXY_MAX)
    await c.context(request)


async def _meta_image(request: Request) -> dict[str, Any]:
    await _meta_allowed(request)
    return await _get_image(request, request.path_params["image_id"])


async def meta_index(request: Request) -> Response:
    image = await _meta_image(request)
    return JSONResponse({"metadata": properties(image)})


async def meta_show(request: Request) -> Response:
    image = await _meta_image(request)
    key = request.path_params["key"]
    props = properties(image)
    if key not in props:
        raise NotFound("The resource could not be found.")
    return JSONResponse({"meta": {key: props[key]}})


async def meta_create(request: Request) -> Response:
    """POST: merge the items into the properties; all of them."""
    await _meta_allowed(request)
    items = c.check_metadata(await _meta_body(request, "metadata"))
    image = await _get_image(request, request.path_params["image_id"])
    wanted = {**properties(image), **items}
    await _check_quota(request, wanted)
    updated = await _set_properties(request, image, wanted)
    return JSONResponse({"metadata": properties(updated)})


async def meta_update_all(request: Request) -> Response:
    """PUT: the properties become the given items."""
    await _meta_allowed(request)
    items = c.check_metadata(await _meta_body(request, "metadata"))
    image = await _get_image(request, request.path_params["image_id"])
    await _check_quota(request, items)
    await _set_properties(request, image, items)
    return JSONResponse({"metadata": items})


async def meta_update(request: Request) -> Response:
    await _meta_allowed(request)
    key = request.path_params["key"]
    meta = c.check_metadata(await _meta_body(request, "meta"), "meta", exactly_one=True)
    if key not in meta:
        raise BadRequest("Request body and URI mismatch")
    image = await _get_image(request, request.path_params["image_id"])
    wanted = {**properties(image), **meta}
    await _check_quota(request, wanted)
    await _set_properties(request, image, wanted)
    return JSONResponse({"meta": meta})


async def meta_delete(request: Request) -> Response:
    image = await _meta_image(request)
    key = request.path_params["key"]
    props = properties(image)
    if key not in props:
        raise NotFound("Invalid metadata key")
    del props[key]
    await _set_properties(request, image, props)
    return Response(status_code=204)


P = c.API_PREFIX + "/images"
routes = [
    Route(P, index, methods=["GET"]),
    Route(f"{P}/detail", index_detail, methods=["GET"]),
    Route(f"{P}/{{image_id}}", show, methods=["GET"]),
    Route(f"{P}/{{image_id}}", delete, methods=["DELETE"]),
    Route(f"{P}/{{image_id}}/metadata", meta_index, methods=["GET"]),
    Route(f"{P}/{{image_id}}/metadata", meta_create, methods=["POST"]),
    Route(f"{P}/{{image_id}}/metadata", meta_update_all, methods=["PUT"]),
    Route(f"{P}/{{image_id}}/metadata/{{key}}", meta_show, methods=["GET"]),
    Route(f"{P}/{{image_id}}/metadata/{{key}}", meta_update, methods=["PUT"]),
    Route(f"{P}/{{image_id}}/metadata/{{key}}", meta_delete, methods=["DELETE"]),
]
