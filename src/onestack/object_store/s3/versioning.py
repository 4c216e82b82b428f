"""Get/PutBucketVersioning: Swift's object versioning (``X-Versions-Enabled``)."""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement

from onestack.object_store.http import Response
from onestack.object_store.s3.context import S3Context, empty_response, xml_response
from onestack.object_store.s3.errors import S3Error, not_implemented
from onestack.object_store.s3.xmlutil import XMLError, parse, text

MAX_BODY = 10240


def _bucket_only(ctx: S3Context) -> str:
    if ctx.bucket is None or ctx.key is not None:
        raise S3Error("InvalidRequest", "A key must not be specified")
    return ctx.bucket


async def get_versioning(ctx: S3Context) -> Response:
    bucket = _bucket_only(ctx)
    head = await ctx.call("HEAD", bucket)
    await head.close()
    root = Element("VersioningConfiguration")
    enabled = head.headers.get("x-versions-enabled")
    if enabled is not None:
        SubElement(root, "Status").text = ("Enabled" if enabled.lower() == "true"
                                           else "Suspended")
    return xml_response(root)


async def put_versioning(ctx: S3Context) -> Response:
    bucket = _bucket_only(ctx)
    assert ctx.payload is not None
    if "object_versioning" not in ctx.st.capabilities:
        raise not_implemented("Object versioning is not enabled in this cloud.")
    try:
        status = text(parse(await ctx.payload.read(MAX_BODY), "VersioningConfiguration"),
                      "Status")
    except XMLError:
        raise S3Error("MalformedXML") from None
    if status not in ("Enabled", "Suspended"):
        raise S3Error("MalformedXML")
    resp = await ctx.call("POST", bucket,
                          headers={"X-Versions-Enabled": str(status == "Enabled").lower()})
    await resp.close()
    return empty_response(200)


OPERATIONS = {"GET": get_versioning, "PUT": put_versioning}
