"""DeleteObjects (``POST /bucket?delete``): up to 1000 keys in one request, two
deletions at a time (Swift's ``multi_delete_concurrency``)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from xml.etree.ElementTree import Element, SubElement

from onestack.object_store.http import Response
from onestack.object_store.s3.context import S3Context, xml_response
from onestack.object_store.s3.errors import S3Error, invalid_request
from onestack.object_store.s3.obj import remove
from onestack.object_store.s3.xmlutil import XMLError, parse, text

log = logging.getLogger("onestack.object_store.s3")
CONCURRENCY = 2


def check_md5(ctx: S3Context, body: bytes, *, required: bool) -> None:
    """A document's Content-MD5 (S3 requires it, or a checksum, on some requests)."""
    given = ctx.req.headers.get("content-md5")
    if given is None:
        checksum = ctx.payload.checksum if ctx.payload is not None else None
        if required and checksum is None:
            raise invalid_request("Missing required header for this request: Content-MD5 OR "
                                  "x-amz-checksum-*")
        return
    if base64.b64encode(hashlib.md5(body).digest()).decode() != given.strip():
        raise S3Error("BadDigest", ExpectedDigest=given)


async def delete_objects(ctx: S3Context) -> Response:
    assert ctx.payload is not None and ctx.bucket is not None
    if ctx.key is not None:
        raise invalid_request("A key must not be specified")
    limit = ctx.conf.max_multi_delete_objects
    body = await ctx.payload.read(min(2 * limit * ctx.conf.max_object_name_length,
                                      10 * 1024 * 1024))
    if not body:
        raise S3Error("MissingRequestBodyError")
    check_md5(ctx, body, required=True)
    try:
        root = parse(body, "Delete")
    except XMLError:
        raise S3Error("MalformedXML") from None
    quiet = (text(root, "Quiet") or "").strip().lower() == "true"
    targets = []
    for elem in root.findall("Object"):
        key = text(elem, "Key")
        if not key:
            raise S3Error("UserKeyMustBeSpecified")
        targets.append((key, text(elem, "VersionId")))
    if len(targets) > limit:
        raise S3Error("MalformedXML")
    await ctx.require_bucket()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(key: str, version: str | None) -> S3Error | None:
        async with gate:
            return await _delete(ctx, key, version)

    results = await asyncio.gather(*(one(k, v) for k, v in targets))
    out = Element("DeleteResult")
    for (key, version), err in zip(targets, results, strict=True):
        if err is None and quiet:
            continue
        elem = SubElement(out, "Deleted" if err is None else "Error")
        SubElement(elem, "Key").text = key
        if version is not None:
            SubElement(elem, "VersionId").text = version
        if err is not None:
            SubElement(elem, "Code").text = err.code
            SubElement(elem, "Message").text = err.message
    return xml_response(out)


async def _delete(ctx: S3Context, key: str, version: str | None) -> S3Error | None:
    assert ctx.bucket is not None
    try:
        await remove(ctx, ctx.bucket, key, version)
        return None
    except S3Error as err:
        return err
    except Exception:
        log.exception("deleting %r in %r failed", key, ctx.bucket)
        return S3Error("InternalError")


OPERATIONS = {"POST": delete_objects}
