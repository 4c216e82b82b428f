"""``/v2/images/{id}/file`` and ``/stage``: image data in and out, streamed."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from onestack.core.errors import BadRequest, NotFound, UnsupportedMediaType
from onestack.core.http import no_content
from onestack.image.api.common import context, state
from onestack.image.service import data as svc

STORE_HEADER = "x-image-meta-store"


def _length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("Content-Length must be an integer") from None
    if value < 0:
        raise BadRequest("Content-Length must not be negative")
    return value


def _check_type(request: Request) -> None:
    media = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
    if media not in ("application/octet-stream", ""):
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {media}: image data is application/octet-stream"
        )


async def upload(request: Request) -> Response:
    """``PUT /v2/images/{image_id}/file`` (204): the image becomes active."""
    _check_type(request)
    st = state(request)
    ctx = await context(request)
    await svc.upload(
        st, ctx, request.path_params["image_id"], request.stream(),
        length=_length(request), store_id=request.headers.get(STORE_HEADER),
        md5=svc.md5_from_header(request.headers.get("content-md5")),
    )
    return no_content()


async def stage(request: Request) -> Response:
    """``PUT /v2/images/{image_id}/stage`` (204): data kept for an import."""
    _check_type(request)
    st = state(request)
    ctx = await context(request)
    if "glance-direct" not in st.conf.import_methods:
        raise NotFound("The glance-direct import method is not enabled")
    await svc.stage(st, ctx, request.path_params["image_id"], request.stream(),
                    length=_length(request))
    return no_content()


async def download(request: Request) -> Response:
    """``GET /v2/images/{image_id}/file``: the data (200, or 206 for a range;
    204 when the image has no data yet)."""
    st = state(request)
    ctx = await context(request)
    dl = await svc.for_download(st, ctx, request.path_params["image_id"])
    image = dl.image
    if dl.store is None or dl.location is None or image.size is None:
        return no_content()
    size = image.size
    headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
    if image.checksum:
        headers["Content-MD5"] = image.checksum
    rng = svc.parse_range(request.headers.get("range"), size)
    status = 200
    first, length = 0, size
    if rng is not None:
        first, last = rng
        length = last - first + 1
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        headers.pop("Content-MD5", None)
    headers["Content-Length"] = str(length)
    body = dl.store.open(dl.location, offset=first, length=length)
    return StreamingResponse(body, status_code=status, headers=headers)


routes = [
    Route("/v2/images/{image_id}/file", upload, methods=["PUT"]),
    Route("/v2/images/{image_id}/file", download, methods=["GET"]),
    Route("/v2/images/{image_id}/stage", stage, methods=["PUT"]),
]
