"""Object versioning (``X-Versions-Enabled``), Swift's newer versioning mode.

A container with versioning enabled gets a hidden companion container,
``<RESERVED>versions<RESERVED><container>``, that holds every version of its
objects under ``<RESERVED><name><RESERVED><inverted timestamp>`` (newest first
in a listing). The object the client sees in the container is a static
symlink to its current version, made by the symlink layer below; a DELETE
writes a delete marker version and removes the link. Names starting with the
reserved character cannot be used by clients: only sub-requests carrying
``X-Backend-Allow-Reserved-Names`` (which the gatekeeper strips from the outside)
reach them, and listings hide them.

The API: ``X-Object-Version-Id`` on writes and reads, ``?version-id=<id>`` for
GET, HEAD and DELETE (and PUT, to make a version current again) of one
version, ``?versions`` for the JSON listing of all versions with ``version_id``
and ``is_latest``. Settings are container system metadata:
``versions-enabled`` and ``versions-container``.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

from onestack.object_store.api.account import best_match
from onestack.object_store.api.common import authorize, config_true
from onestack.object_store.http import (
    Handler,
    Headers,
    HTTPError,
    Request,
    Response,
    error,
)
from onestack.object_store.middleware.copy import RESERVED
from onestack.object_store.middleware.symlink import (
    ALLOW_RESERVED_NAMES,
    SYMLOOP_EXTEND,
    SYS_TARGET_BYTES,
    SYS_TARGET_ETAG,
    parse_header_params,
    rewrite_listing,
)
from onestack.object_store.middleware.versioned_writes.common import (
    DELETE_MARKER_CONTENT_TYPE,
    ContainerState,
    authorize_write,
    container_state,
    get_source,
    internal,
    put_copy,
    source_timestamp,
)
from onestack.object_store.state import ObjectStoreState
from onestack.object_store.timestamp import Timestamp

SOURCE = "OV"
CLIENT_VERSIONS_ENABLED = "x-versions-enabled"
SYSMETA_VERSIONS_ENABLED = "X-Container-Sysmeta-Versions-Enabled"
SYSMETA_VERSIONS_CONT = "X-Container-Sysmeta-Versions-Container"
SYSMETA_VERSIONS_SYMLINK = "X-Object-Sysmeta-Versions-Symlink"
ALLOW_RESERVED = {"X-Backend-Allow-Reserved-Names": "true"}
MAX_TICKS = 999_999_999_999_999  # 9999999999.99999, the latest timestamp
NO_VERSIONS_CONTAINER = ("The versions container does not exist. You may want to re-enable "
                         "object versioning.")


# -- names ----------------------------------------------------------------------------


def reserved_name(*parts: str) -> str:
    if any(RESERVED in p for p in parts):
        raise ValueError("Invalid reserved part in components")
    return RESERVED + RESERVED.join(parts)


def split_reserved_name(name: str) -> list[str]:
    if not name.startswith(RESERVED):
        raise ValueError("Invalid reserved name")
    return name.split(RESERVED)[1:]


def versions_container_name(container: str) -> str:
    return reserved_name("versions", container)


def versions_object_prefix(obj: str) -> str:
    return reserved_name(obj, "")


def invert(version_id: str) -> str:
    """The inverted timestamp that makes newer versions sort first (and back)."""
    return Timestamp(MAX_TICKS - Timestamp.parse(version_id).ticks).normal


def versions_object_name(obj: str, version_id: str) -> str:
    return reserved_name(obj, invert(version_id))


def parse_versions_object_name(name: str) -> tuple[str, str | None]:
    """``(object name, version id)``; ``(name, None)`` for a name that is no version."""
    try:
        obj, inverted = split_reserved_name(name)
        return obj, invert(inverted)
    except ValueError:
        return name, None


def validate_version(version: str, method: str, allow_null: bool = True) -> None:
    """Raises: HTTPError: 400 for a version id that is no timestamp."""
    if version == "null" and allow_null:
        return
    try:
        Timestamp.parse(version)
    except ValueError:
        raise HTTPError(error(400, "Invalid version parameter", method=method)) from None


def _split4(path: str) -> tuple[str, str, str] | None:
    """``(account, container, object)`` of ``/v1/a/c/o``."""
    parts = path.split("/", 4)
    if len(parts) != 5 or parts[0] or not all(parts[1:]):
        return None
    return parts[2], parts[3], parts[4]


# -- objects --------------------------------------------------------------------------


class ObjectContext:
    """One request to an object of a container that is (or was) versioned."""

    def __init__(self, mw: ObjectVersioning, req: Request, version: str, account: str,
                 container: str, obj: str, info: ContainerState) -> None:
        self.app = mw.app
        self.max_file_size = mw.max_file_size
        self.req = req
        self.version, self.account, self.container, self.obj = version, account, container, obj
        self.info = info
        location = info.sysmeta.get("versions-container", "")
        self.versions_cont = unquote(location).split("/")[0] if location else ""
        self.enabled = config_true(info.sysmeta.get("versions-enabled"))

    def versions_path(self, name: str) -> str:
        return f"/{self.version}/{self.account}/{self.versions_cont}/{name}"

    async def handle(self) -> Response:
        version_id = self.req.query.get("version-id")
        if version_id:
            return await self.with_version_id(version_id)
        if not self.versions_cont:
            return await self.app(self.req)
        method = self.req.method
        if method == "PUT":
            return await self.put()
        if method == "POST":
            return await self.post()
        if method == "DELETE":
            return await self.delete()
        return await self.get_head()

    # -- without version-id -----------------------------------------------------------

    async def put(self) -> Response:
        req = self.req
        if not self.enabled:
            return await self.app(req)
        if RESERVED in unquote(req.headers.get("x-symlink-target") or ""):
            # the data goes below with leave to use reserved names: not the client's
            return error(412, "Invalid UTF8 or contains NULL", method=req.method)
        await self._copy_current()
        version_id = Timestamp.now().normal
        put_resp, name, size, content_type = await self._put_version(version_id)
        etag = (put_resp.headers.get("etag") or "").strip('"')
        return await self._put_link(name, etag, size, content_type)

    async def _copy_current(self) -> None:
        """A current object that is no link to a version (written while versioning
        was off) becomes a version of its own before it is replaced."""
        req = self.req
        await authorize_write(req, self.info)
        current = await get_source(req, self.app, req.path, SOURCE, self.max_file_size)
        if current.status == 404:
            await current.close()
            return
        await _check(req, current)
        if current.headers.get(SYSMETA_VERSIONS_SYMLINK) == "true":
            await current.close()
            return
        version_id = source_timestamp(current).normal
        name = versions_object_name(self.obj, version_id)
        resp = await put_copy(req, self.app, self.versions_path(name), current, SOURCE,
                              headers=ALLOW_RESERVED)
        if resp.status == 404:
            raise HTTPError(error(500, NO_VERSIONS_CONTAINER, method=req.method))
        await _check(req, resp)

    async def _put_version(self, version_id: str) -> tuple[Response, str, str, str]:
        """Write the client's data as the new version."""
        req = self.req
        name = versions_object_name(self.obj, version_id)
        headers = Headers({k: v for k, v in req.headers.items()
                           if k.lower() not in ("x-delete-at", "x-delete-after")})
        headers.update(ALLOW_RESERVED)
        headers["X-Timestamp"] = version_id
        if config_true(headers.pop("x-detect-content-type")) or not headers.get("content-type"):
            # the version's own name says nothing about its type: the object's does
            headers["Content-Type"] = (mimetypes.guess_type(self.obj)[0]
                                       or "application/octet-stream")
        counter = _Counter(req.stream())
        put = internal(req, "PUT", self.versions_path(name), SOURCE, headers=headers,
                       query={k: v for k, v in req.query.items() if k == "multipart-manifest"},
                       body=counter)
        if "swift.content_type_overridden" in req.environ:
            put.environ["swift.content_type_overridden"] = req.environ.pop(
                "swift.content_type_overridden")
        req.body = b""
        resp = await self.app(put)
        await resp.read()
        if resp.status == 404:
            raise HTTPError(error(500, NO_VERSIONS_CONTAINER, method=req.method))
        await _check(req, resp)
        size = put.headers.get("x-object-sysmeta-slo-size") or str(counter.size)
        content_type = (put.headers.get("content-type") or "").split(";")[0].strip()
        return resp, name, size, content_type

    async def _put_link(self, name: str, etag: str, size: str, content_type: str) -> Response:
        """Make the object a static link to the version ``name``."""
        req = self.req
        h = req.headers
        for header in ("etag", "x-if-delete-at", "x-symlink-target-account",
                       "x-object-manifest", "x-static-large-object",
                       "x-object-sysmeta-slo-etag", "x-object-sysmeta-slo-size",
                       "transfer-encoding", "x-timestamp"):
            h.pop(header)
        h[SYS_TARGET_ETAG.title()] = etag
        h[SYS_TARGET_BYTES.title()] = str(size)
        h["Content-Type"] = content_type
        h["X-Symlink-Target"] = quote(f"{self.versions_cont}/{name}")
        h[SYSMETA_VERSIONS_SYMLINK] = "true"
        h[SYMLOOP_EXTEND.title()] = "true"
        h[ALLOW_RESERVED_NAMES.title()] = "true"
        h.update(ALLOW_RESERVED)
        h["Content-Length"] = "0"
        link = req.sub("PUT", req.path, headers=h, body=b"", source=SOURCE)
        resp = await self.app(link)
        resp.headers["ETag"] = etag
        resp.headers["X-Object-Version-Id"] = parse_versions_object_name(name)[1] or "null"
        return resp

    async def delete(self) -> Response:
        req = self.req
        if not self.enabled:
            return await self.app(req)
        await self._copy_current()
        version_id = Timestamp.now().normal
        name = versions_object_name(self.obj, version_id)
        marker = internal(req, "PUT", self.versions_path(name), SOURCE, body=b"", headers={
            "Content-Type": DELETE_MARKER_CONTENT_TYPE, "Content-Length": "0",
            "X-Timestamp": version_id, **ALLOW_RESERVED})
        marker.environ["swift.content_type_overridden"] = True
        resp = await self.app(marker)
        await _check(req, resp)
        await resp.close()
        resp = await self.app(req)
        if resp.ok or resp.status == 404:
            resp.headers["X-Object-Version-Id"] = version_id
            resp.headers["X-Backend-Content-Type"] = DELETE_MARKER_CONTENT_TYPE
        return resp

    async def post(self) -> Response:
        """A POST to the link of the current version updates that version."""
        req = self.req
        headers = Headers({k: v for k, v in req.headers.items()
                           if k.lower() not in ("x-delete-at", "x-delete-after")})
        headers.update(ALLOW_RESERVED)
        resp = await self.app(req)
        if resp.status != 307 or not config_true(resp.headers.get(SYSMETA_VERSIONS_SYMLINK)):
            return resp
        location = _split4(unquote(resp.headers.get("location") or ""))
        if location is None or location[:2] != (self.account, self.versions_cont):
            return resp
        await resp.close()
        path = f"/{self.version}/{location[0]}/{location[1]}/{location[2]}"
        return await self.app(internal(req, "POST", path, SOURCE, headers=headers, body=b""))

    async def get_head(self) -> Response:
        resp = await self.app(self.req)
        resp.headers["X-Object-Version-Id"] = "null"
        loc = _split4(unquote(resp.headers.get("content-location") or ""))
        if loc and loc[:2] == (self.account, self.versions_cont):
            version_id = parse_versions_object_name(loc[2])[1]
            if version_id is not None:
                resp.headers["X-Object-Version-Id"] = version_id
                resp.headers["Content-Location"] = (
                    quote(f"/{self.version}/{self.account}/{self.container}/{self.obj}")
                    + f"?version-id={version_id}")
        target = unquote(resp.headers.get("x-symlink-target") or "")
        cont, _, version_obj = target.partition("/")
        if target and version_obj and cont == self.versions_cont:
            version_id = parse_versions_object_name(version_obj)[1]
            if version_id is not None:
                resp.headers["X-Object-Version-Id"] = version_id
                resp.headers["X-Symlink-Target"] = (
                    quote(f"{self.container}/{self.obj}") + f"?version-id={version_id}")
        return resp

    # -- with version-id --------------------------------------------------------------

    async def with_version_id(self, version_id: str) -> Response:
        req = self.req
        if req.method == "POST":
            return error(400, "POST to a specific version is not allowed", method=req.method)
        if not self.versions_cont and version_id != "null":
            return error(400, "version-aware operations require that the container is "
                              "versioned", method=req.method)
        validate_version(version_id, req.method)
        if req.method == "OPTIONS":
            return await self.app(req)
        if req.method == "DELETE":
            return await self.delete_version(version_id)
        if req.method == "PUT":
            return await self.put_version_id(version_id)
        if version_id == "null":
            return await self.get_head_null()
        return await self.get_head_version(version_id)

    async def _current_link(self) -> tuple[bool, str | None]:
        """Whether the object is gone, and the version its link points at."""
        req = self.req
        resp = await self.app(internal(req, "HEAD", req.path, SOURCE, query={"symlink": "get"},
                                       headers={"X-Newest": "True"}))
        await resp.close()
        if resp.status == 404:
            return True, None
        await _check(req, resp)
        if resp.headers.get(SYSMETA_VERSIONS_SYMLINK) == "true":
            return False, resp.headers.get("x-symlink-target")
        return False, None

    async def delete_version(self, version_id: str) -> Response:
        req = self.req
        req.query.pop("version-id", None)
        if version_id == "null":
            return await self.app(req)  # the unversioned object in the container itself
        _, link = await self._current_link()
        name = versions_object_name(self.obj, version_id)
        is_current = link is not None and unquote(link) == f"{self.versions_cont}/{name}"
        if not is_current:
            current_id = "null"
            if link:
                current_id = parse_versions_object_name(unquote(link).split("/", 1)[1])[1] \
                    or "null"
        else:
            # the current version: the link goes first, then its data
            link_resp = await self.app(req)
            await _check(req, link_resp)
            await link_resp.close()
            current_id = "null"
        target = req.sub("DELETE", self.versions_path(name), headers=req.headers,
                         source=SOURCE)
        target.headers.update(ALLOW_RESERVED)
        target.environ.pop("swift.source", None)
        resp = await self.app(target)
        resp.headers["X-Object-Version-Id"] = version_id
        resp.headers["X-Object-Current-Version-Id"] = current_id
        return resp

    async def put_version_id(self, version_id: str) -> Response:
        """Make an older version the current one again (a new link to it)."""
        req = self.req
        validate_version(version_id, req.method, allow_null=False)
        length = req.content_length
        if length is None and "transfer-encoding" not in req.headers:
            return error(411, "Missing Content-Length header.", method=req.method)
        if length or (length is None and await _has_body(req)):
            return error(400, "PUT version-id requests require a zero byte body",
                         method=req.method)
        name = versions_object_name(self.obj, version_id)
        head = await self.app(internal(req, "HEAD", self.versions_path(name), SOURCE,
                                       query={"symlink": "get"}, headers=ALLOW_RESERVED))
        await head.close()
        if head.status == 404:
            if self.info.exists and self.versions_cont:
                return error(404, "The specified version does not exist", method=req.method)
            return error(500, NO_VERSIONS_CONTAINER, method=req.method)
        await _check(req, head)
        req.query.pop("version-id", None)
        return await self._put_link(name, (head.headers.get("etag") or "").strip('"'),
                                    head.headers.get("content-length") or "0",
                                    head.headers.get("content-type") or "")

    async def get_head_version(self, version_id: str) -> Response:
        req = self.req
        target = req.sub(req.method, self.versions_path(versions_object_name(
            self.obj, version_id)), headers=req.headers,
            query={k: v for k, v in req.query.items() if k != "version-id"}, source=SOURCE)
        target.headers.update(ALLOW_RESERVED)
        target.environ.pop("swift.source", None)
        resp = await self.app(target)
        if resp.ok:
            resp.headers["X-Object-Version-Id"] = version_id
        content_type = resp.headers.get("x-backend-content-type",
                                        (resp.headers.get("content-type") or ""))
        if content_type == DELETE_MARKER_CONTENT_TYPE:
            await resp.close()
            return error(404, headers={"X-Object-Version-Id": version_id,
                                       "Content-Type": DELETE_MARKER_CONTENT_TYPE},
                         method=req.method)
        return resp

    async def get_head_null(self) -> Response:
        req = self.req
        req.query.pop("version-id", None)
        resp = await self.app(req)
        if resp.ok:
            if RESERVED + "versions" in unquote(resp.headers.get("content-location") or ""):
                await resp.close()
                return error(404, method=req.method)  # the current one has a real id
            resp.headers["X-Object-Version-Id"] = "null"
        return resp


class _Counter:
    """A body that counts what passes (a chunked upload has no length to trust)."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self.source = source
        self.size = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self.source:
            self.size += len(chunk)
            yield chunk


async def _has_body(req: Request) -> bool:
    async for chunk in req.stream():
        if chunk:
            return True
    return False


async def _check(req: Request, resp: Response) -> None:
    """Pass a failed internal request on as the client's error: a 404 (missing
    container) as 412, other client errors as they are, server errors as 503.

    Raises:
        HTTPError: as described.
    """
    if resp.ok:
        return
    body = await resp.read()
    if 400 <= resp.status < 500:
        if resp.status == 404:
            raise HTTPError(error(412, method=req.method))
        raise HTTPError(Response(resp.status, resp.headers.copy(), body))
    raise HTTPError(error(503, method=req.method))


# -- containers -----------------------------------------------------------------------


class ContainerContext:
    def __init__(self, mw: ObjectVersioning, req: Request, version: str, account: str,
                 container: str) -> None:
        self.mw = mw
        self.app = mw.app
        self.st = mw.st
        self.req = req
        self.version, self.account, self.container = version, account, container

    def path(self, container: str) -> str:
        return f"/{self.version}/{self.account}/{container}"

    async def enable(self) -> Response:
        """``X-Versions-Enabled`` on a PUT or POST: the flag, and the versions
        container the first time it is turned on."""
        req = self.req
        info = await container_state(self.st, self.account, self.container)
        if info.sysmeta.get("versions-location"):
            return error(400, "Cannot enable object versioning on a container that is "
                              "already using the legacy versioned writes feature.",
                         method=req.method)
        if info.sync_to:
            return error(400, "Cannot enable object versioning on a container configured "
                              "as source of container syncing.", method=req.method)
        enabled = config_true(req.headers[CLIENT_VERSIONS_ENABLED])
        req.headers[SYSMETA_VERSIONS_ENABLED] = str(enabled)
        created = None
        if enabled:
            await self._authorize()
            created = versions_container_name(self.container)
            resp = await self.app(internal(req, "PUT", self.path(created), SOURCE,
                                           headers=ALLOW_RESERVED))
            await resp.read()
            if not resp.ok and resp.status != 409:
                return error(500, "Error enabling object versioning", method=req.method)
            req.headers[SYSMETA_VERSIONS_CONT] = quote(created)
        resp = await self.app(req)
        if not resp.ok and created and not info.sysmeta.get("versions-container"):
            # nothing refers to it: the client may try again later
            gone = await self.app(internal(req, "DELETE", self.path(created), SOURCE,
                                           headers=ALLOW_RESERVED))
            await gone.read()
        _show_enabled(resp)
        return resp

    async def _authorize(self) -> None:
        """Only whoever may change the container may make its versions container."""
        if self.req.environ.get("swift.authorize") is not None:
            await authorize(self.req, None)

    async def delete(self) -> Response:
        """A container goes with its versions container, once that one is empty."""
        req = self.req
        info = await container_state(self.st, self.account, self.container)
        location = unquote(info.sysmeta.get("versions-container", ""))
        if location:
            await self._authorize()
            versions = await self.st.listings.container_info(self.account, location)
            if versions is not None and versions.object_count > 0:
                return error(409, "Delete all versions before deleting container.",
                             method=req.method)
            own = await self.st.listings.container_info(self.account, self.container)
            if versions is not None and (own is None or own.object_count == 0):
                resp = await self.app(internal(req, "DELETE", self.path(location), SOURCE,
                                               headers=ALLOW_RESERVED))
                await resp.read()
                if not resp.ok and resp.status != 404:
                    return error(500, "Error deleting versioned container",
                                 method=req.method)
        return await self.app(req)

    async def handle(self) -> Response:
        """Other container requests: the flag shown, the versions' bytes counted,
        the listing's links to versions shown as the versions they are."""
        req = self.req
        if req.method != "GET":
            resp = await self.app(req)
        else:
            if "versions" in req.query:
                try:
                    json_ok = best_match(req.headers.get("accept"), ("application/json",))
                except ValueError:
                    json_ok = None
                if json_ok is None:
                    return error(406, method=req.method)
                req.query["format"] = "json"  # whatever else was asked
            resp = await rewrite_listing(self.app, req, self._listing)
        _show_enabled(resp)
        location = unquote(resp.headers.get(SYSMETA_VERSIONS_CONT) or "")
        if location:
            await self._add_bytes(resp, location)
        return resp

    def _location(self, resp: Response) -> str:
        """The versions container; for a container never versioned, the one it would
        have (its versions may still be listed, as Swift errs on that side)."""
        location = unquote(resp.headers.get(SYSMETA_VERSIONS_CONT) or "")
        if not location and not self.container.startswith(RESERVED):
            location = versions_container_name(self.container)
        return location

    async def _listing(self, listing: list[dict[str, Any]],
                       resp: Response) -> list[dict[str, Any]]:
        location = self._location(resp)
        for item in listing:
            self._show_version(item, location)
        if "versions" in self.req.query:
            return await self._list_versions(location, listing)
        return listing

    async def _add_bytes(self, resp: Response, location: str) -> None:
        used = resp.headers.get("x-container-bytes-used")
        if used is None:
            return
        info = await self.st.listings.container_info(self.account, location)
        if info is not None:
            resp.headers["X-Container-Bytes-Used"] = str(int(used) + info.bytes_used)

    def _show_version(self, item: dict[str, Any], location: str) -> None:
        if not all(k in item for k in ("symlink_path", "symlink_etag", "symlink_bytes")):
            return
        target = _split4(unquote(item["symlink_path"]))
        if target is None or target[1] != location:
            return
        _, params = parse_header_params(item["hash"])
        item["bytes"] = int(item.pop("symlink_bytes"))
        item["version_symlink"] = True
        item["hash"] = item.pop("symlink_etag") + "".join(
            f"; {k}={v}" for k, v in params.items())
        name, version_id = parse_versions_object_name(target[2])
        if version_id is not None and "versions" not in self.req.query:
            item["symlink_path"] = (quote(f"/{self.version}/{target[0]}/{self.container}/"
                                          f"{name}") + f"?version-id={version_id}")

    async def _list_versions(self, location: str,
                             primary: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The ``?versions`` listing: the container's unversioned objects and every
        version in the versions container, merged in name order."""
        req = self.req
        params = dict(req.query)
        if "marker" in params:
            marker = params["marker"]
            vmarker = params.pop("version_marker", None)
            if vmarker is None:
                params["marker"] = versions_object_prefix(marker) + ":"  # past all versions
            elif vmarker == "null":
                params["marker"] = versions_object_prefix(marker)
            else:
                validate_version(vmarker, req.method)
                params["marker"] = versions_object_name(marker, vmarker)
        elif "version_marker" in params:
            raise HTTPError(error(400, "version_marker param requires marker",
                                  method=req.method))
        delimiter = params.get("delimiter", "")
        if set(delimiter) & set("0123456789." + RESERVED):
            raise HTTPError(error(400, "invalid delimiter param", method=req.method))
        unversioned, subdirs, current = [], set(), {}
        latest: set[str] = set()
        for item in primary:
            if "name" not in item:
                subdirs.add(item["subdir"])
            elif item.get("version_symlink"):
                current[unquote(item["symlink_path"])] = item
            else:
                unversioned.append(dict(item, version_id="null", is_latest=True))
                latest.add(item["name"])
        if "prefix" in params:
            params["prefix"] = reserved_name(params["prefix"])
        versions = await self._versions_page(location, params)
        listed = []
        for item in versions:
            if "name" not in item:
                subdirs.add(split_reserved_name(item["subdir"])[0])
                continue
            name, version_id = parse_versions_object_name(item["name"])
            if version_id is None:
                continue
            path = f"/v1/{self.account}/{location}/{item['name']}"
            if path in current:
                item["is_latest"] = True
                latest.add(name)
                del current[path]
            elif item.get("content_type") == DELETE_MARKER_CONTENT_TYPE and name not in latest:
                item["is_latest"] = True
                latest.add(name)
            else:
                item["is_latest"] = False
            item["name"], item["version_id"] = name, version_id
            listed.append(item)
        broken = []
        for item in current.values():
            linked = unquote(item["symlink_path"]).split("/", 4)[-1]
            name, version_id = parse_versions_object_name(linked)
            if version_id is None:
                continue
            broken.append({"name": name, "is_latest": name not in latest,
                           "version_id": version_id, "content_type": item["content_type"],
                           "bytes": item["bytes"], "hash": item["hash"],
                           "last_modified": item["last_modified"]})
            latest.add(name)
        merged = unversioned + listed + [{"subdir": s} for s in subdirs] + broken
        merged.sort(key=lambda i: i.get("subdir", i.get("name", "")),
                    reverse=config_true(params.get("reverse")))
        limit = _limit(req, self.st.settings.object_store.container_listing_limit)
        return merged[:limit]

    async def _versions_page(self, location: str, params: dict[str, str]) -> list[Any]:
        if await self.st.listings.container_info(self.account, location) is None:
            return []
        query = {k: params.get(k, "") for k in ("prefix", "marker", "limit", "delimiter",
                                                  "reverse")}
        query["format"] = "json"
        resp = await self.app(internal(self.req, "GET", self.path(location), SOURCE,
                                       query=query, headers=ALLOW_RESERVED))
        body = await resp.read()
        if resp.status == 404:
            return []
        if not resp.ok:
            raise HTTPError(Response(resp.status, resp.headers, body))
        try:
            page = json.loads(body)
        except ValueError:
            return []
        return page if isinstance(page, list) else []


def _show_enabled(resp: Response) -> None:
    value = resp.headers.get(SYSMETA_VERSIONS_ENABLED)
    if value is not None:
        resp.headers["X-Versions-Enabled"] = value


def _limit(req: Request, default: int) -> int:
    try:
        limit = int(req.query.get("limit", default))
    except ValueError:
        return default
    return max(0, min(limit, default))


# -- accounts -------------------------------------------------------------------------


async def account_listing(mw: ObjectVersioning, req: Request, account: str) -> Response:
    """An account listing without the versions containers (names in the reserved
    namespace are internal), each versioned container's bytes counting its
    versions, and orphaned versions containers shown under their parent's name."""
    if req.method != "GET" or config_true(req.headers.get("x-backend-allow-reserved-names")):
        return await mw.app(req)

    async def merge(listing: list[dict[str, Any]], _: Response) -> list[dict[str, Any]]:
        shown = [i for i in listing if not i.get("name", i.get("subdir", "")).startswith(
            RESERVED)]
        versions = await _versions_containers(mw, req, account)
        for item in shown:
            extra = versions.pop(item.get("name", ""), None)
            if extra is not None:
                item["bytes"] = int(item.get("bytes", 0)) + int(extra.get("bytes", 0))
        for name, item in versions.items():
            shown.append(dict(item, name=name, count=0))  # parent gone: left to clean up
        shown.sort(key=lambda i: i.get("name", i.get("subdir", "")),
                   reverse=config_true(req.query.get("reverse")))
        return shown[:_limit(req, mw.st.settings.object_store.account_listing_limit)]

    return await rewrite_listing(mw.app, req, merge)


async def _versions_containers(mw: ObjectVersioning, req: Request,
                               account: str) -> dict[str, dict[str, Any]]:
    """The account's versions containers in the listing's range, by parent name."""
    q = req.query
    bounds: dict[str, str | None] = {}
    for key in ("marker", "end_marker"):
        value = q.get(key)
        bounds[key] = versions_container_name(value) if value and RESERVED not in value \
            else None
    prefix = q.get("prefix", "")
    found = await mw.st.listings.list_containers(
        account, prefix=versions_container_name(prefix if RESERVED not in prefix else ""),
        marker=bounds["marker"], end_marker=bounds["end_marker"],
        limit=mw.st.settings.object_store.account_listing_limit)
    out = {}
    for item in found:
        if "name" in item:
            parts = split_reserved_name(item["name"])
            if len(parts) == 2 and parts[0] == "versions":
                out[parts[1]] = item
    return out


class ObjectVersioning:
    def __init__(self, app: Handler, st: ObjectStoreState) -> None:
        self.app = app
        self.st = st
        self.max_file_size = st.settings.object_store.max_file_size

    async def __call__(self, req: Request) -> Response:
        try:
            version, account, container, obj = req.split()
        except HTTPError:
            return await self.app(req)
        if container is None:
            return await account_listing(self, req, account)
        if obj is None:
            ctx = ContainerContext(self, req, version, account, container)
            if req.method in ("PUT", "POST") and CLIENT_VERSIONS_ENABLED in req.headers:
                return await ctx.enable()
            if req.method == "DELETE":
                return await ctx.delete()
            return await ctx.handle()
        info = await container_state(self.st, account, container)
        return await ObjectContext(self, req, version, account, container, obj, info).handle()
