"""``/v1/<account>/<container>``: what Swift's proxy and container server answer.

GET lists the objects (``prefix``, ``delimiter``, ``marker``, ``end_marker``,
``limit``, ``reverse``, ``path``; text, JSON or XML), HEAD gives the usage and
metadata, PUT creates (201) or updates (202), POST sets metadata, DELETE
removes an empty container (409 otherwise). Reads are checked against the
container's read ACL; PUT, POST and DELETE are the account owner's (the write
ACL is for objects only). Versioning and sync headers and system metadata are
stored as given, for the middlewares that act on them.
"""

from __future__ import annotations

from urllib.parse import urlparse

from onestack.core import errors
from onestack.object_store.acl import clean_acl
from onestack.object_store.api.account import (
    listing_content_type,
    listing_query,
    listing_response,
    metadata_headers,
    metadata_updates,
    refusal,
    reply,
)
from onestack.object_store.api.common import CONTAINER_INFO, authorize, http_date
from onestack.object_store.constraints import check_container_name, check_metadata
from onestack.object_store.http import Headers, HTTPError, Request, Response, error
from onestack.object_store.service.listings import STORAGE_POLICY, ContainerInfo
from onestack.object_store.state import ObjectStoreState
from onestack.object_store.timestamp import Timestamp

METHODS = ("DELETE", "GET", "HEAD", "POST", "PUT")
# stored as sent, besides metadata and system metadata
PASSTHROUGH = (
    "x-container-read", "x-container-write", "x-container-sync-key", "x-container-sync-to",
    "x-versions-location", "x-history-location",
)
REMOVALS = {
    "x-remove-container-read": "x-container-read",
    "x-remove-container-write": "x-container-write",
    "x-remove-container-sync-key": "x-container-sync-key",
    "x-remove-container-sync-to": "x-container-sync-to",
    "x-remove-versions-location": "x-versions-location",
    "x-remove-history-location": "x-history-location",
}
# Swift's container server default (allowed_sync_hosts); no sync realms are set up
ALLOWED_SYNC_HOSTS = ("127.0.0.1",)


async def handle(st: ObjectStoreState, req: Request, account: str, container: str) -> Response:
    handler = _HANDLERS.get(req.method)
    if handler is None:
        return error(405, headers={"Allow": ", ".join(METHODS)}, method=req.method)
    try:
        return await handler(st, req, account, container)
    except HTTPError as exc:
        return exc.response
    except errors.CloudError as exc:
        return refusal(exc, req.method)


def container_headers(info: ContainerInfo) -> Headers:
    h = Headers({
        "X-Container-Object-Count": str(info.object_count),
        "X-Container-Bytes-Used": str(info.bytes_used),
        "X-Timestamp": info.created_at.normal,
        "X-PUT-Timestamp": info.put_timestamp.normal,
        "Last-Modified": http_date(float(info.put_timestamp)),
        "Accept-Ranges": "bytes",
        "X-Storage-Policy": STORAGE_POLICY,
    })
    metadata_headers(h, info.metadata)
    return h


async def _get_or_head(st: ObjectStoreState, req: Request, account: str,
                       container: str) -> Response:
    content_type = listing_content_type(req)
    query = None
    if req.method == "GET":
        query = listing_query(req, st.settings.object_store.container_listing_limit,
                              with_path=True)
    info = await st.listings.load_container(account, container)
    req.environ[CONTAINER_INFO] = info
    # the caller learns whether the container exists only if allowed to read it
    await authorize(req, info.read_acl if info is not None else None)
    if info is None:
        return error(404, method=req.method)
    entries = []
    if query is not None:
        entries = await st.listings.list_objects(account, container, **query)
    return listing_response(req, container_headers(info), entries, content_type, "container",
                            container)


def _clean_acls(req: Request) -> None:
    """Normalise the ACL headers (the auth layer's cleaner when it gives one).

    Raises:
        HTTPError: 400 with Swift's reason for an invalid ACL.
    """
    clean = req.environ.get("swift.clean_acl", clean_acl)
    for name in ("x-container-read", "x-container-write"):
        value = req.headers.get(name)
        if value is not None:
            try:
                req.headers[name] = clean(name, value)
            except ValueError as exc:
                raise HTTPError(error(400, str(exc), method=req.method)) from None


def sync_to_error(value: str) -> str | None:
    """Why an ``X-Container-Sync-To`` value is refused (Swift's ``validate_sync_to``)."""
    orig, value = value, value.rstrip("/")
    if not value:
        return None
    if value.startswith("//"):
        parts = value[2:].split("/")
        if len(parts) != 4:
            return f"Invalid X-Container-Sync-To format {orig!r}"
        return f"No realm key for {parts[0]!r}"
    url = urlparse(value)
    if url.scheme not in ("http", "https"):
        return (f"Invalid scheme {url.scheme!r} in X-Container-Sync-To, must be \"//\", "
                "\"http\", or \"https\".")
    if not url.path:
        return "Path required in X-Container-Sync-To"
    if url.params or url.query or url.fragment:
        return "Params, queries, and fragments not allowed in X-Container-Sync-To"
    if url.hostname not in ALLOWED_SYNC_HOSTS:
        return f"Invalid host {url.hostname!r} in X-Container-Sync-To"
    return None


def _check(st: ObjectStoreState, req: Request, *, create: bool = False,
           container: str = "") -> dict[str, str]:
    """The headers a PUT (``create``) or POST stores, checked in Swift's order.

    Raises:
        HTTPError: 400 for an invalid ACL, metadata over the limits, another storage
            policy, a name too long or a bad sync target.
    """
    _clean_acls(req)
    check_metadata(req, "container", st.settings.object_store)
    if create:
        policy = req.headers.get("x-storage-policy")
        if policy and policy.upper() != STORAGE_POLICY.upper():
            raise HTTPError(error(400, f"Invalid X-Storage-Policy '{policy}'",
                                  method=req.method))
        check_container_name(container, st.settings.object_store)
    sync_to = req.headers.get("x-container-sync-to")
    reason = sync_to_error(sync_to) if sync_to is not None else None
    if reason:
        raise HTTPError(error(400, reason, method=req.method))
    return metadata_updates(req, "container", PASSTHROUGH, REMOVALS)


async def _put(st: ObjectStoreState, req: Request, account: str, container: str) -> Response:
    await authorize(req)
    updates = _check(st, req, create=True, container=container)
    created = await st.listings.put_container(account, container, timestamp=Timestamp.now(),
                                              metadata=updates)
    return reply(201 if created else 202, req.method)


async def _post(st: ObjectStoreState, req: Request, account: str, container: str) -> Response:
    await authorize(req)
    updates = _check(st, req)
    await st.listings.post_container(account, container, timestamp=Timestamp.now(),
                                     metadata=updates)
    return reply(204, req.method)


async def _delete(st: ObjectStoreState, req: Request, account: str,
                  container: str) -> Response:
    await authorize(req)
    await st.listings.delete_container(account, container, timestamp=Timestamp.now())
    return reply(204, req.method)


_HANDLERS = {"GET": _get_or_head, "HEAD": _get_or_head, "POST": _post, "PUT": _put,
             "DELETE": _delete}
