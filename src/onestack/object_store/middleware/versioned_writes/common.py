"""What both versioning modes need: internal sub-requests, the container's
versioning settings, error mapping and the copy of one object onto another."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from onestack.object_store.api.common import authorize
from onestack.object_store.http import Body, Headers, HTTPError, Request, Response, error
from onestack.object_store.state import ObjectStoreState
from onestack.object_store.timestamp import Timestamp

DELETE_MARKER_CONTENT_TYPE = "application/x-deleted;swift_versions_deleted=1"


@dataclass
class ContainerState:
    """The part of a container's info the versioning layers use; ``sysmeta`` is
    keyed by the lower-case name after ``X-Container-Sysmeta-``."""

    exists: bool
    sysmeta: dict[str, str] = field(default_factory=dict)
    read_acl: str | None = None
    write_acl: str | None = None
    sync_to: str | None = None


async def container_state(st: ObjectStoreState, account: str, container: str) -> ContainerState:
    """The container's info straight from the listings (no sub-request)."""
    info = await st.listings.container_info(account, container, counts=False)
    if info is None:
        return ContainerState(False)
    sync_to = next((v for k, v in info.metadata.items() if k.lower() == "x-container-sync-to"),
                   None)
    return ContainerState(True, {k: v for k, v in info.sysmeta.items() if v != ""},
                          info.read_acl, info.write_acl, sync_to or None)


def internal(req: Request, method: str, path: str, source: str, *,
             headers: Mapping[str, str] | Headers | None = None,
             query: Mapping[str, str] | None = None, body: Body | None = None) -> Request:
    """A pre-authorized sub-request (Swift's make_pre_authed_request): the caller
    was authorized for the request that made this one necessary."""
    return req.sub(method, path, headers=headers, query=query, body=body, source=source,
                   environ={"swift.authorize": None})


async def authorize_write(req: Request, info: ContainerState) -> None:
    """Check that the caller may write the versioned container before touching it.

    Raises:
        HTTPError: the denial.
    """
    if req.environ.get("swift.authorize") is not None:
        await authorize(req, info.write_acl)


async def check_response(req: Request, resp: Response) -> None:
    """Raise the error a failed internal request means for the client: 412 for a
    client error (missing container, no rights), 503 when the data could not be
    versioned (legacy mode's rule).

    Raises:
        HTTPError: as described.
    """
    if resp.ok:
        return
    await resp.read()
    if 400 <= resp.status < 500:
        raise HTTPError(error(412, method=req.method))
    raise HTTPError(error(503, method=req.method))


async def get_source(req: Request, app: Any, path: str, source: str, max_size: int,
                     headers: Mapping[str, str] | None = None) -> Response:
    """GET of the object at ``path`` itself (a link is not followed), or a 413 when
    it is too big to copy."""
    h = {"X-Newest": "True", **(headers or {})}
    resp: Response = await app(internal(req, "GET", path, source, headers=h,
                                        query={"symlink": "get"}))
    if not resp.ok:
        return resp
    length = resp.headers.get("content-length")
    if length is None or int(length) > max_size:
        await resp.close()
        return error(413, method=req.method)
    return resp


async def put_copy(req: Request, app: Any, path: str, source_resp: Response, source: str,
                   headers: Mapping[str, str] | None = None) -> Response:
    """PUT ``source_resp`` (a ``get_source`` answer) at ``path`` with its headers
    but its timestamp; the PUT reads the body, the response is drained."""
    h = Headers({k: v for k, v in source_resp.headers.items() if k.lower() != "x-timestamp"})
    h.update(headers or {})
    put = internal(req, "PUT", path, source, headers=h, body=source_resp.body)
    slo_size = h.get("x-object-sysmeta-slo-size")
    if slo_size:
        h["Content-Type"] = (h.get("content-type") or "") + "; swift_bytes=" + slo_size
        put.environ["swift.content_type_overridden"] = True
    try:
        resp: Response = await app(put)
        await resp.read()
    finally:
        await source_resp.close()
    return resp


def source_timestamp(resp: Response) -> Timestamp:
    """When the version in ``resp`` was written (X-Timestamp, else Last-Modified)."""
    for name in ("x-backend-timestamp", "x-timestamp"):
        value = resp.headers.get(name)
        if value:
            try:
                return Timestamp.parse(value.split("_")[0])
            except ValueError:
                pass
    try:
        modified = parsedate_to_datetime(resp.headers.get("last-modified") or "")
    except (TypeError, ValueError):
        return Timestamp.now()
    return Timestamp.from_float(modified.timestamp())


async def listing(req: Request, app: Any, account: str, container: str, source: str,
                  params: Mapping[str, str], headers: Mapping[str, str] | None = None,
                  ) -> AsyncGenerator[dict[str, Any], None]:
    """The JSON listing of a container, page after page; nothing for a missing one.

    Raises:
        HTTPError: 412 for a client error, 500 when the listing fails otherwise.
    """
    marker = params.get("marker", "")
    while True:
        query = {**params, "marker": marker, "format": "json"}
        resp: Response = await app(internal(req, "GET", f"/v1/{account}/{container}", source,
                                            query=query, headers=headers))
        body = await resp.read()
        if resp.status == 404:
            return
        if not resp.ok:
            status = 412 if 400 <= resp.status < 500 else 500
            raise HTTPError(error(status, method=req.method))
        page = json.loads(body) if body else []
        if not page:
            return
        for item in page:
            yield item
        last = page[-1]
        marker = last.get("name", last.get("subdir", ""))
