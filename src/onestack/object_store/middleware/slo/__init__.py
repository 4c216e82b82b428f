"""Static large objects (Swift's ``slo`` middleware).

``PUT ?multipart-manifest=put`` with a JSON list of segments (``path`` with
optional ``etag``, ``size_bytes``, ``range``; or inline base64 ``data``) checks
every segment with a HEAD and stores the manifest: the JSON Swift stores (each
segment's ``name``, ``bytes``, ``hash``, ``content_type``, ``last_modified``,
``range``, ``sub_slo``), ``X-Static-Large-Object: True``, the large object's
ETag and size in system metadata, the total size as the Content-Type's
``swift_bytes`` parameter (listings show it; the container's bytes used count
only the manifest) and a listing ETag override, so that listings show the
manifest's MD5 with the SLO ETag (``slo_etag``) beside it (``put``, ``listing``).

A GET or HEAD of the manifest answers for the whole object: nested manifests,
segment ranges, client Range requests (several ranges too), If-* headers
against the SLO ETag, ``part-number``. ``?multipart-manifest=get`` returns the
stored JSON (``&format=raw``: the form a PUT takes) (``get``).
``DELETE ?multipart-manifest=delete`` deletes the segments and then the
manifest, answering as Swift's bulk delete does (``delete``).

``heartbeat=on`` is supported (202 at once, whitespace every
``yield_frequency`` seconds, the outcome in the body). Not supported:
``async=yes`` deletes (``allow_async_delete`` is false, so the segments are
deleted at once, as Swift does when it is off) and Swift's rate limiting of
small segments.
"""

from __future__ import annotations

from onestack.object_store.http import Handler, HTTPError, Request, Response
from onestack.object_store.middleware.slo import delete, get, listing, put
from onestack.object_store.middleware.slo.manifest import bad
from onestack.object_store.state import ObjectStoreState

YIELD_FREQUENCY = 10


class StaticLargeObject:
    """The middleware; the operations live in the modules of this package."""

    def __init__(self, app: Handler, st: ObjectStoreState) -> None:
        conf = st.settings.object_store
        self.app = app
        self.max_segments = conf.max_manifest_segments
        self.max_size = conf.max_manifest_size
        self.min_segment_size = conf.min_segment_size
        self.yield_frequency: float = YIELD_FREQUENCY

    async def __call__(self, req: Request) -> Response:
        try:
            return await self._dispatch(req)
        except HTTPError as exc:
            return exc.response

    async def _dispatch(self, req: Request) -> Response:
        if req.environ.get("swift.slo_override"):
            return await self.app(req)
        try:
            version, account, container, obj = req.split()
        except HTTPError:
            return await self.app(req)
        if container is None:
            return await self.app(req)
        if obj is None:
            if req.method == "GET":
                return await listing.listing(self.app, req)
            return await self.app(req)
        mode = req.query.get("multipart-manifest")
        if req.method == "PUT" and mode == "put":
            return await put.put(self, req)
        if req.method == "DELETE" and mode == "delete":
            return await delete.delete(self, req, (version, account), f"/{container}/{obj}")
        if req.method in ("GET", "HEAD"):
            return await get.get_or_head(self, req, (version, account))
        if "x-static-large-object" in req.headers:
            raise bad(400, "X-Static-Large-Object is a reserved header. To create a static "
                           "large object add query param multipart-manifest=put.", req.method)
        return await self.app(req)


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    conf = st.settings.object_store
    st.register("slo", max_manifest_segments=conf.max_manifest_segments,
                max_manifest_size=conf.max_manifest_size,
                min_segment_size=conf.min_segment_size, yield_frequency=YIELD_FREQUENCY,
                allow_async_delete=False)
    return StaticLargeObject(app, st)
