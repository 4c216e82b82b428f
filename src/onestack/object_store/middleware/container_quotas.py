"""Container quotas (Swift's ``container_quotas``): ``X-Container-Meta-Quota-Bytes``
and ``X-Container-Meta-Quota-Count`` cap a container's size and object count.

Whoever may set the container's metadata (its account's owner) sets the quotas;
a value that is not a whole number is refused (400) when set. An object PUT
(a copy is one too) that would take the container over a quota is refused with
413 ``Upload exceeds quota.`` before anything is stored; a caller who could not
have written to the container gets its 401 or 403 instead, so that the refusal
tells strangers nothing.

As in Swift, the check counts the upload as a new object and its length on top
of the current usage (an overwrite is not credited with the size it replaces).
Unlike Swift, an upload without a length (chunked) is counted as it streams and
stopped with the same 413 once it passes the byte quota; nothing of it is kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from onestack.object_store.api.common import ACL
from onestack.object_store.http import Authorize, Handler, HTTPError, Request, Response, error
from onestack.object_store.service.listings import ContainerInfo
from onestack.object_store.state import ObjectStoreState

EXCEEDED = "Upload exceeds quota."


def quota(meta: dict[str, str], name: str) -> int | None:
    """A quota set as a whole number (anything else was never valid: no quota)."""
    value = meta.get(name, "")
    return int(value) if value.isdigit() else None


def _has_quota(meta: dict[str, str]) -> bool:
    return quota(meta, "quota-bytes") is not None or quota(meta, "quota-count") is not None


def exceeded(body: str = EXCEEDED) -> HTTPError:
    return HTTPError(error(413, body))


async def capped(source: AsyncIterator[bytes], room: int,
                 body: str = EXCEEDED) -> AsyncIterator[bytes]:
    """``source``, raising the 413 once more than ``room`` bytes came through (the
    object PUT then discards what it wrote)."""
    seen = 0
    async for chunk in source:
        seen += len(chunk)
        if seen > room:
            raise exceeded(body)
        yield chunk


def _checked_settings(req: Request) -> Response | None:
    """Swift's check of the quotas a container PUT or POST sets."""
    for header, what in (("x-container-meta-quota-bytes", "bytes"),
                         ("x-container-meta-quota-count", "count")):
        value = req.headers.get(header)
        if value and not value.isdigit():
            return error(400, f"Invalid {what} quota.", method=req.method)
    return None


async def _refusal(req: Request, info: ContainerInfo) -> Response:
    """401/403 for a caller who may not write here at all, else the 413."""
    check: Authorize | None = req.environ.get("swift.authorize")
    if check is not None:
        req.environ[ACL] = info.write_acl
        denial = await check(req)
        if denial is not None:
            return denial
    return error(413, EXCEEDED, method=req.method)


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    st.register("container_quotas")

    async def container_quotas(req: Request) -> Response:
        try:
            _, account, container, obj = req.split()
            length = req.content_length
        except HTTPError:
            return await app(req)  # the proxy answers a bad request
        if container is None:
            return await app(req)
        if obj is None:
            if req.method in ("PUT", "POST"):
                refused = _checked_settings(req)
                if refused is not None:
                    return refused
            return await app(req)
        if req.method != "PUT":
            return await app(req)
        info = await st.listings.container_info(account, container, counts=False)
        if info is None or not _has_quota(info.meta):
            return await app(req)  # (the proxy answers 404)
        info = await st.listings.container_info(account, container)  # with exact counters
        if info is None:
            return await app(req)
        meta = info.meta
        max_bytes, max_count = quota(meta, "quota-bytes"), quota(meta, "quota-count")
        if max_bytes is not None and max_bytes < info.bytes_used + (length or 0):
            return await _refusal(req, info)
        if max_count is not None and max_count < info.object_count + 1:
            return await _refusal(req, info)
        if max_bytes is not None and length is None:
            req.body = capped(req.stream(), max_bytes - info.bytes_used)
        return await app(req)

    return container_quotas
