"""Legacy object versioning: ``X-Versions-Location`` and ``X-History-Location``.

A container with either flag names an archive container. Before an object in
it is overwritten (PUT) its current version is copied to
``<archive>/<len(name) as 3 hex digits><name>/<timestamp>``. On DELETE:

- stack mode (``X-Versions-Location``) puts the newest archived version back in
  place of the deleted one and removes it from the archive;
- history mode (``X-History-Location``) archives the current version, adds a
  zero-byte delete marker next to it and deletes the object.

The flag is kept as container system metadata (``versions-location`` and
``versions-mode``) and shown under its client name. The archive is written
with the caller's right to write the versioned container checked first, not
its rights on the archive, as in Swift.
"""

from __future__ import annotations

from urllib.parse import unquote

from onestack.object_store.http import Handler, HTTPError, Request, Response, error
from onestack.object_store.middleware.versioned_writes.common import (
    DELETE_MARKER_CONTENT_TYPE,
    ContainerState,
    authorize_write,
    check_response,
    container_state,
    get_source,
    internal,
    listing,
    put_copy,
    source_timestamp,
)
from onestack.object_store.state import ObjectStoreState
from onestack.object_store.timestamp import Timestamp

SOURCE = "VW"
CLIENT_VERSIONS_LOC = "x-versions-location"
CLIENT_HISTORY_LOC = "x-history-location"
SYSMETA_VERSIONS_LOC = "X-Container-Sysmeta-Versions-Location"
SYSMETA_VERSIONS_MODE = "X-Container-Sysmeta-Versions-Mode"
_REMOVE = ("x-remove-versions-location", "x-remove-history-location")


def versions_prefix(obj: str) -> str:
    """``<3 hex digits of the name's UTF-8 length><name>/``: all archived versions."""
    return f"{len(obj.encode('utf-8')):03x}{obj}/"


def versions_name(obj: str, ts: Timestamp) -> str:
    return versions_prefix(obj) + ts.normal


def check_container_format(req: Request, name: str) -> str:
    """Raises: HTTPError: 412 for an empty container name, one with a slash or one
    in the reserved namespace."""
    if "\x00" in unquote(name):
        raise HTTPError(error(412, "Invalid UTF8 or contains NULL", method=req.method))
    if "/" in name:
        raise HTTPError(error(412, "Container name cannot contain slashes", method=req.method))
    if not name:
        raise HTTPError(error(412, "Container name cannot be empty", method=req.method))
    return name


def legacy_location(info: ContainerState) -> tuple[str | None, str]:
    """The archive container (decoded, without any path after it) and the mode."""
    location = info.sysmeta.get("versions-location")
    if not location:
        return None, "stack"
    return unquote(location).split("/")[0], info.sysmeta.get("versions-mode") or "stack"


class VersionedWrites:
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
            return await self.app(req)
        if obj is None:
            return await self.container_request(req)
        if req.method in ("PUT", "DELETE"):
            return await self.object_request(req, version, account, container, obj)
        return await self.app(req)

    # -- containers -------------------------------------------------------------------

    async def container_request(self, req: Request) -> Response:
        if req.method in ("PUT", "POST"):
            _translate_flags(req)
        resp = await self.app(req)
        location = resp.headers.get(SYSMETA_VERSIONS_LOC)
        if location:
            mode = resp.headers.get(SYSMETA_VERSIONS_MODE)
            name = "X-History-Location" if mode == "history" else "X-Versions-Location"
            resp.headers[name] = location
        return resp

    # -- objects ----------------------------------------------------------------------

    async def object_request(
        self, req: Request, version: str, account: str, container: str, obj: str
    ) -> Response:
        info = await container_state(self.st, account, container)
        archive, mode = legacy_location(info)
        if not archive:
            return await self.app(req)
        if req.method == "PUT":
            await self._copy_current(req, info, version, account, archive, obj)
            return await self.app(req)
        if mode == "history":
            return await self._delete_push(req, info, version, account, archive, obj)
        return await self._delete_pop(req, info, version, account, container, archive, obj)

    async def _copy_current(self, req: Request, info: ContainerState, version: str,
                            account: str, archive: str, obj: str) -> None:
        """Archive the object's current version, if there is one."""
        await authorize_write(req, info)
        current = await get_source(req, self.app, req.path, SOURCE, self.max_file_size)
        if current.status == 404:
            await current.close()
            return
        await check_response(req, current)
        name = versions_name(obj, source_timestamp(current))
        put = await put_copy(req, self.app, f"/{version}/{account}/{archive}/{name}",
                             current, SOURCE)
        await check_response(req, put)

    async def _delete_push(self, req: Request, info: ContainerState, version: str,
                           account: str, archive: str, obj: str) -> Response:
        """History mode: archive, mark the deletion in the archive, delete."""
        await self._copy_current(req, info, version, account, archive, obj)
        marker_path = f"/{version}/{account}/{archive}/{versions_name(obj, Timestamp.now())}"
        marker = internal(req, "PUT", marker_path, SOURCE, headers={
            "Content-Type": DELETE_MARKER_CONTENT_TYPE, "Content-Length": "0"}, body=b"")
        # the swift_* parameter says the marker is ours: clients cannot set one
        marker.environ["swift.content_type_overridden"] = True
        resp = await self.app(marker)
        await check_response(req, resp)
        await resp.close()
        return await self.app(req)

    async def _delete_pop(self, req: Request, info: ContainerState, version: str,
                          account: str, container: str, archive: str, obj: str) -> Response:
        """Stack mode: the newest archived version takes the deleted one's place."""
        versions = listing(req, self.app, account, archive, SOURCE,
                           {"prefix": versions_prefix(obj), "reverse": "on"})
        authed = False
        target = req
        async for previous in versions:
            if not authed:
                await authorize_write(req, info)
                authed = True
            name = previous["name"]
            if previous.get("content_type") == DELETE_MARKER_CONTENT_TYPE:
                head = await self.app(internal(req, "HEAD", req.path, SOURCE,
                                               headers={"X-Newest": "True"}))
                await head.close()
                if head.status != 404:
                    await check_response(req, head)
                    break  # an object is there: delete it, back to the marker's state
                async for older in versions:
                    if older.get("content_type") == DELETE_MARKER_CONTENT_TYPE:
                        break
                    restored = await self._restore(req, version, account, archive,
                                                   older["name"], container, obj)
                    if restored is None:
                        continue
                    resp = await self.app(internal(req, "DELETE", restored, SOURCE))
                    await resp.read()
                    if resp.status != 404:
                        await check_response(req, resp)
                    break
                target = internal(req, "DELETE", f"/{version}/{account}/{archive}/{name}",
                                  SOURCE)
            else:
                restored = await self._restore(req, version, account, archive, name,
                                               container, obj)
                if restored is None:
                    continue
                target = internal(req, "DELETE", restored, SOURCE)
            target.headers.pop("x-if-delete-at")
            break
        await versions.aclose()
        return await self.app(target)

    async def _restore(self, req: Request, version: str, account: str, archive: str,
                       name: str, container: str, obj: str) -> str | None:
        """Copy an archived version back over the object; its archive path, or
        ``None`` when it vanished meanwhile."""
        path = f"/{version}/{account}/{archive}/{name}"
        source = await get_source(req, self.app, path, SOURCE, self.max_file_size)
        if source.status == 404:
            await source.close()
            return None
        await check_response(req, source)
        put = await put_copy(req, self.app, f"/{version}/{account}/{container}/{obj}",
                             source, SOURCE)
        await check_response(req, put)
        return path


def _translate_flags(req: Request) -> None:
    """Turn the client's versioning flags into system metadata.

    Raises:
        HTTPError: 400 when both flags have a value, 412 for a bad container name.
    """
    h = req.headers
    if CLIENT_VERSIONS_LOC in h and CLIENT_HISTORY_LOC in h:
        if not h[CLIENT_HISTORY_LOC]:
            del h[CLIENT_HISTORY_LOC]  # defer to the versions location entirely
        elif h[CLIENT_VERSIONS_LOC]:
            raise HTTPError(error(400, f"Only one of {CLIENT_VERSIONS_LOC} or "
                                       f"{CLIENT_HISTORY_LOC} may be specified",
                                  method=req.method))
        else:
            del h[CLIENT_VERSIONS_LOC]
    value = h.pop(CLIENT_VERSIONS_LOC)
    mode = "stack"
    if value is None:
        value = h.pop(CLIENT_HISTORY_LOC)
        mode = "history"
    if value is not None:
        if not value:
            h["X-Remove-Versions-Location"] = "x"
        else:
            h[SYSMETA_VERSIONS_LOC] = check_container_format(req, value)
            h[SYSMETA_VERSIONS_MODE] = mode
            for name in _REMOVE:  # setting wins over removing in the same request
                h.pop(name)
    if any(h.get(name) for name in _REMOVE):
        h[SYSMETA_VERSIONS_LOC] = ""
        h[SYSMETA_VERSIONS_MODE] = ""
    for name in _REMOVE:
        h.pop(name)

