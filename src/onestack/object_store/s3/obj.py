"""Objects: GetObject, HeadObject, PutObject, CopyObject and DeleteObject."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl, quote, unquote
from xml.etree.ElementTree import Element, SubElement

from onestack.object_store.http import Headers, Response
from onestack.object_store.s3.context import (
    DELETE_MARKER_TYPE,
    SYSMETA_ETAG,
    SYSMETA_UPLOAD_ID,
    S3Context,
    empty_response,
    md5_hex,
    meta_to_swift,
    s3_etag,
    s3_headers,
    xml_response,
    xml_time,
)
from onestack.object_store.s3.errors import S3Error, invalid_argument, invalid_request

log = logging.getLogger("onestack.object_store.s3")

# request headers an object keeps (Swift's allowed headers, and the content type)
STORED = ("content-type", "content-encoding", "content-disposition", "content-language",
          "cache-control", "expires", "x-robots-tag")
RESPONSE_OVERRIDES = ("content-type", "content-language", "expires", "cache-control",
                      "content-disposition", "content-encoding")
CONDITIONALS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")


# -- GET / HEAD -------------------------------------------------------------------------


def _version_query(ctx: S3Context) -> dict[str, str]:
    version = ctx.param("versionId")
    return {} if version is None else {"version-id": version}


def _read_headers(ctx: S3Context) -> dict[str, str]:
    h = ctx.req.headers
    out = {name: h[name] for name in (*CONDITIONALS, "range") if name in h}
    if any(name in out for name in ("if-match", "if-none-match")):
        # conditions on a multipart upload's ETag test the one S3 gave it
        out["X-Backend-Etag-Is-At"] = SYSMETA_ETAG
    return out


async def get_object(ctx: S3Context) -> Response:
    assert ctx.bucket is not None and ctx.key is not None
    query = _version_query(ctx)
    part = _part_number(ctx)
    if part is not None:
        query["part-number"] = str(part)
    resp = await ctx.call(ctx.req.method, ctx.bucket, ctx.key, query=query,
                          headers=_read_headers(ctx))
    headers = s3_headers(resp.headers)
    for name in RESPONSE_OVERRIDES:
        value = ctx.param("response-" + name)
        if value is not None:
            headers[name] = value
    if resp.status == 304:
        await resp.close()
        headers.pop("content-length")
        return Response(304, headers, b"")
    status = resp.status
    if part is not None and "x-amz-mp-parts-count" not in headers:
        status = _whole_object_as_part(part, headers)
    if ctx.req.method == "HEAD":
        await resp.close()
        return _head_range(ctx, Response(status, headers, b""))
    return Response(status, headers, resp.body, on_close=[resp.close])


def _part_number(ctx: S3Context) -> int | None:
    value = ctx.param("partNumber")
    if value is None:
        return None
    if "range" in ctx.req.headers:
        raise invalid_request("Cannot specify both Range header and partNumber query parameter")
    if not value.isdigit() or not 1 <= int(value) <= ctx.conf.max_upload_part_num:
        raise invalid_argument("partNumber", value, f"Part number must be an integer between 1 "
                                                    f"and {ctx.conf.max_upload_part_num}, "
                                                    f"inclusive")
    return int(value)


def _whole_object_as_part(part: int, headers: Headers) -> int:
    """An object not uploaded in parts is one part: part 1 is all of it."""
    if part != 1:
        raise S3Error("InvalidPartNumber")
    size = int(headers.get("content-length") or 0)
    headers["Content-Range"] = f"bytes 0-{max(size - 1, 0)}/{size}"
    return 206


def _head_range(ctx: S3Context, resp: Response) -> Response:
    """Swift ignores Range on HEAD; S3 answers a single range with 206 and its size."""
    value = ctx.req.headers.get("range")
    if not value or resp.status != 200 or not value.startswith("bytes="):
        return resp
    spec = value[len("bytes="):]
    if "," in spec:
        return resp
    size = int(resp.headers.get("content-length") or 0)
    first, _, last = spec.partition("-")
    try:
        if first:
            start, end = int(first), (int(last) if last else size - 1)
        else:
            start, end = max(size - int(last), 0), size - 1
    except ValueError:
        return resp
    if start >= size or end < start:
        raise S3Error("InvalidRange", ActualObjectSize=size, RangeRequested=value)
    end = min(end, size - 1)
    resp.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    resp.headers["Content-Length"] = str(end - start + 1)
    resp.status = 206
    return resp


# -- PUT ----------------------------------------------------------------------------------


def object_headers(ctx: S3Context) -> dict[str, str]:
    """What a PUT stores: content headers and user metadata, in Swift's names."""
    h = ctx.req.headers
    out = {name: h[name] for name in STORED if name in h}
    encoding = [e.strip() for e in out.get("content-encoding", "").split(",")
                if e.strip() and e.strip() != "aws-chunked"]
    out.pop("content-encoding", None)
    if encoding:
        out["Content-Encoding"] = ", ".join(encoding)
    out.setdefault("content-type", "binary/octet-stream")
    out.update(meta_to_swift(h.items()))
    return out


async def put_object(ctx: S3Context) -> Response:
    assert ctx.bucket is not None and ctx.key is not None
    if len(ctx.key.encode()) > ctx.conf.max_object_name_length:
        raise S3Error("KeyTooLongError", MaxSizeAllowed=ctx.conf.max_object_name_length)
    if "x-amz-copy-source" in ctx.req.headers:
        return await copy_object(ctx)
    headers = object_headers(ctx)
    if "if-none-match" in ctx.req.headers:
        headers["If-None-Match"] = ctx.req.headers["if-none-match"]
    md5 = ctx.req.headers.get("content-md5")
    if md5:
        headers["ETag"] = md5_hex(md5.strip())
    body, length = await ctx.upload_body()
    if length is None:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(length)
    resp = await ctx.call("PUT", ctx.bucket, ctx.key, headers=headers, body=body)
    await resp.close()
    out = {"ETag": s3_etag(resp.headers) or ""}
    if "x-object-version-id" in resp.headers:
        out["x-amz-version-id"] = resp.headers["x-object-version-id"]
    checksum = ctx.payload.checksum if ctx.payload is not None else None
    if checksum is not None and checksum.expected:
        out[checksum.name] = checksum.expected
    return empty_response(200, out)


# -- CopyObject ---------------------------------------------------------------------------


def copy_source(ctx: S3Context) -> tuple[str, str, str | None]:
    """``(bucket, key, version)`` of ``x-amz-copy-source`` (``bucket/key[?versionId=]``)."""
    value = ctx.req.headers.get("x-amz-copy-source") or ""
    path, _, qs = value.partition("?")
    version = None
    if qs:
        params = parse_qsl(qs, keep_blank_values=True)
        if len(params) != 1 or params[0][0] != "versionId":
            raise invalid_argument("x-amz-copy-source", value,
                                   "Unsupported copy source parameter.")
        version = params[0][1]
    path = unquote(path).lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise invalid_argument("x-amz-copy-source", value,
                               "Copy Source must mention the source bucket and key: "
                               "sourcebucket/sourcekey")
    return bucket, key, version


async def check_source(ctx: S3Context, bucket: str, key: str, version: str | None) -> Headers:
    """The source's headers after its ``x-amz-copy-source-if-*`` conditions."""
    h = ctx.req.headers
    headers = {name[len("x-amz-copy-source-"):]: value
               for name, value in h.with_prefix("x-amz-copy-source-if-")}
    if headers:
        headers["X-Backend-Etag-Is-At"] = SYSMETA_ETAG
    query = {"version-id": version} if version else None
    resp = await ctx.call("HEAD", bucket, key, headers=headers, query=query)
    await resp.close()
    if resp.status == 304:
        raise S3Error("PreconditionFailed")
    return resp.headers


async def copy_object(ctx: S3Context) -> Response:
    assert ctx.bucket is not None and ctx.key is not None
    if "x-amz-copy-source-range" in ctx.req.headers:
        raise invalid_argument("x-amz-copy-source-range",
                               ctx.req.headers["x-amz-copy-source-range"], "Illegal copy header")
    if "range" in ctx.req.headers:
        raise invalid_argument("Range", ctx.req.headers["range"], "RANGE is not supported in Copy!")
    bucket, key, version = copy_source(ctx)
    replace = ctx.req.headers.get("x-amz-metadata-directive", "COPY") == "REPLACE"
    if (bucket, key) == (ctx.bucket, ctx.key) and not replace and version is None:
        raise invalid_request("This copy request is illegal because it is trying to copy an "
                              "object to itself without changing the object's metadata, "
                              "storage class, website redirect location or encryption "
                              "attributes.")
    await check_source(ctx, bucket, key, version)
    headers = object_headers(ctx) if replace else {}
    if replace:
        headers["X-Fresh-Metadata"] = "true"
    # the copy is a new object: an upload's ETag and id stay with the source
    headers.update({SYSMETA_ETAG: "", SYSMETA_UPLOAD_ID: "", "Content-Length": "0",
                    "X-Copy-From": quote(f"/{bucket}/{key}")})
    query = {"version-id": version} if version else None
    resp = await ctx.call("PUT", ctx.bucket, ctx.key, headers=headers, query=query)
    await resp.close()
    root = Element("CopyObjectResult")
    SubElement(root, "LastModified").text = xml_time(resp.headers.get("last-modified") or "")
    SubElement(root, "ETag").text = s3_etag(resp.headers)
    extra = {}
    if "x-copied-from-version-id" in resp.headers:
        extra["x-amz-copy-source-version-id"] = resp.headers["x-copied-from-version-id"]
    if "x-object-version-id" in resp.headers:
        extra["x-amz-version-id"] = resp.headers["x-object-version-id"]
    return xml_response(root, headers=extra)


# -- DELETE -------------------------------------------------------------------------------


async def manifest_delete_query(ctx: S3Context, bucket: str, key: str,
                                version: str | None) -> dict[str, str]:
    """``multipart-manifest=delete`` for a multipart upload's object, so that its
    segments go with it (Swift's s3api asks with a HEAD first)."""
    query = {"symlink": "get"}
    if version is not None:
        query["version-id"] = version
    head = await ctx.swift("HEAD", bucket, key, query=query)
    await head.close()
    out: dict[str, str] = {}
    if head.ok and (head.headers.get("x-static-large-object") or "").lower() == "true":
        out["multipart-manifest"] = "delete"
    if version is not None:
        out.update({"version-id": version, "symlink": "get"})
    return out


async def remove(ctx: S3Context, bucket: str, key: str, version: str | None
                 ) -> dict[str, str]:
    """Delete a key (a missing one is no error) and its segments; the S3 headers
    of the outcome (version id, delete marker)."""
    query = await manifest_delete_query(ctx, bucket, key, version)
    resp = await ctx.swift("DELETE", bucket, key, query=query,
                           headers={"Accept": "application/json"})
    body = await resp.read()
    if not resp.ok and resp.status != 404:
        raise await ctx.translate(resp.status, "", "DELETE", bucket, key)
    if resp.status == 404:
        await ctx.require_bucket()  # only a missing bucket is an error
    if query.get("multipart-manifest") and resp.status == 200:
        _check_bulk_delete(body)
    out = {}
    if "x-object-version-id" in resp.headers:
        out["x-amz-version-id"] = resp.headers["x-object-version-id"]
    if resp.headers.get("x-backend-content-type") == DELETE_MARKER_TYPE:
        out["x-amz-delete-marker"] = "true"
    return out


def _check_bulk_delete(body: bytes) -> None:
    """The outcome of deleting a large object and its segments (a bulk-delete report)."""
    try:
        report = json.loads(body or b"{}")
    except ValueError:
        return
    if isinstance(report, dict) and report.get("Errors"):
        log.warning("segments left behind: %s", report["Errors"])
        raise S3Error("InternalError", "The object's parts could not all be deleted.")


async def delete_object(ctx: S3Context) -> Response:
    assert ctx.bucket is not None and ctx.key is not None
    return empty_response(204, await remove(ctx, ctx.bucket, ctx.key, ctx.param("versionId")))


async def not_supported(ctx: S3Context) -> Response:
    raise S3Error("NotImplemented")


OPERATIONS = {"GET": get_object, "HEAD": get_object, "PUT": put_object,
              "DELETE": delete_object, "POST": not_supported}
