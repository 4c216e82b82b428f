"""Multipart uploads, as Swift's s3api keeps them.

An upload lives in the bucket's ``<bucket>+segments`` container: an empty
marker object ``<key>/<upload id>`` (it carries the metadata and content type
given at creation) and one object per part, ``<key>/<upload id>/<part number>``.
Completing writes a static large object manifest at ``<bucket>/<key>`` that
lists the parts as its segments (``?multipart-manifest=put``, checked by the
SLO layer), with the S3 ETag (the MD5 of the parts' MD5s, ``-<count>``) in
system metadata, then removes the marker. Aborting removes the marker and the
parts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from typing import Any
from urllib.parse import quote
from xml.etree.ElementTree import Element, SubElement

from onestack.object_store.http import Headers, Response
from onestack.object_store.s3.context import (
    OVERRIDE_ETAG,
    SEGMENTS_SUFFIX,
    SYSMETA_ETAG,
    SYSMETA_UPLOAD_ID,
    S3Context,
    empty_response,
    md5_hex,
    owner_element,
    xml_response,
    xml_time,
)
from onestack.object_store.s3.errors import (
    S3Error,
    invalid_argument,
    invalid_request,
    not_implemented,
)
from onestack.object_store.s3.multi_delete import check_md5
from onestack.object_store.s3.obj import check_source, copy_source, object_headers
from onestack.object_store.s3.xmlutil import XMLError, parse, text

HAS_CONTENT_TYPE = "X-Object-Sysmeta-S3api-Has-Content-Type"
CONTENT_TYPE = "X-Object-Sysmeta-S3api-Content-Type"
MAX_COMPLETE_BODY = 2048 * 1024
MAX_UPLOADS = 1000
_PART = re.compile(r".*/[0-9]+$")
_HEX32 = re.compile(r"[0-9a-f]{32}")
# what the marker keeps for the completed object besides user metadata
_CARRIED = ("content-encoding", "content-language", "content-disposition", "expires",
            "cache-control")


def _segments(ctx: S3Context) -> str:
    assert ctx.bucket is not None
    return ctx.bucket + SEGMENTS_SUFFIX


def _key(ctx: S3Context) -> str:
    if ctx.key is None:
        raise invalid_request("A key must be specified")
    return ctx.key


def _upload_id(ctx: S3Context) -> str:
    value = ctx.param("uploadId")
    if not value:
        raise S3Error("NoSuchUpload", UploadId=value or "")
    return value


async def upload_info(ctx: S3Context, upload_id: str) -> tuple[Headers, bool]:
    """The upload's marker headers and ``True``; for an upload already completed,
    the object's headers and ``False``; else ``NoSuchUpload``."""
    key = _key(ctx)
    resp = await ctx.swift("HEAD", _segments(ctx), f"{key}/{upload_id}")
    await resp.close()
    if resp.ok:
        return resp.headers, True
    if resp.status not in (404, 401, 403):
        raise await ctx.translate(resp.status, "", "HEAD", _segments(ctx), key)
    done = await ctx.swift("HEAD", ctx.bucket, key)
    await done.close()
    if done.ok and done.headers.get(SYSMETA_UPLOAD_ID) == upload_id:
        return done.headers, False
    if resp.status in (401, 403):
        raise S3Error("AccessDenied")
    raise S3Error("NoSuchUpload", UploadId=upload_id)


# -- CreateMultipartUpload -------------------------------------------------------------


async def create_upload(ctx: S3Context) -> Response:
    assert ctx.bucket is not None
    key = _key(ctx)
    if len(key.encode()) > ctx.conf.max_object_name_length:
        raise S3Error("KeyTooLongError", MaxSizeAllowed=ctx.conf.max_object_name_length)
    bucket_head = await ctx.require_bucket()
    await _ensure_segments(ctx, bucket_head.headers)
    upload_id = base64.urlsafe_b64encode(str(uuid.uuid4()).encode()).decode()
    headers = object_headers(ctx)
    given_type = ctx.req.headers.get("content-type")
    headers.pop("content-type", None)
    headers[HAS_CONTENT_TYPE] = "yes" if given_type else "no"
    if given_type:
        headers[CONTENT_TYPE] = given_type
    headers.update({"Content-Type": "application/directory", "Content-Length": "0"})
    resp = await ctx.call("PUT", _segments(ctx), f"{key}/{upload_id}", headers=headers,
                          body=b"")
    await resp.close()
    root = Element("InitiateMultipartUploadResult")
    SubElement(root, "Bucket").text = ctx.bucket
    SubElement(root, "Key").text = key
    SubElement(root, "UploadId").text = upload_id
    return xml_response(root)


async def _ensure_segments(ctx: S3Context, bucket: Headers) -> None:
    """The ``+segments`` container, made with the bucket's ACLs when missing."""
    head = await ctx.swift("HEAD", _segments(ctx))
    await head.close()
    if head.ok:
        return
    headers = {name: bucket[name] for name in ("x-container-read", "x-container-write")
               if bucket.get(name)}
    resp = await ctx.call("PUT", _segments(ctx), headers=headers)
    await resp.close()


# -- UploadPart / UploadPartCopy ---------------------------------------------------------


def _part_number(ctx: S3Context) -> int:
    value = ctx.param("partNumber") or ""
    limit = ctx.conf.max_upload_part_num
    if not value.isdigit() or not 1 <= int(value) <= limit:
        raise invalid_argument("partNumber", value, f"Part number must be an integer between "
                                                    f"1 and {limit}, inclusive")
    return int(value)


async def upload_part(ctx: S3Context) -> Response:
    key = _key(ctx)
    if "uploadId" not in ctx.req.query:
        raise invalid_argument("ResourceType", "partNumber", "Unexpected query string parameter")
    number = _part_number(ctx)
    upload_id = _upload_id(ctx)
    await ctx.require_bucket()
    await upload_info(ctx, upload_id)
    name = f"{key}/{upload_id}/{number}"
    if "x-amz-copy-source" in ctx.req.headers:
        return await _copy_part(ctx, name)
    headers: dict[str, str] = {"Content-Type": "application/octet-stream"}
    md5 = ctx.req.headers.get("content-md5")
    if md5:
        headers["ETag"] = md5_hex(md5.strip())
    body, length = await ctx.upload_body()
    if length is None:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(length)
    resp = await ctx.call("PUT", _segments(ctx), name, headers=headers, body=body)
    await resp.close()
    out = {"ETag": f'"{resp.headers.get("etag", "").strip(chr(34))}"'}
    checksum = ctx.payload.checksum if ctx.payload is not None else None
    if checksum is not None and checksum.expected:
        out[checksum.name] = checksum.expected
    return empty_response(200, out)


def _copy_range(value: str, size: int) -> str:
    """``x-amz-copy-source-range`` (one ``bytes=first-last`` within the source)."""
    m = re.fullmatch(r"bytes=(\d+)-(\d+)", value.strip())
    if not m or int(m.group(1)) > int(m.group(2)):
        raise invalid_argument("x-amz-copy-source-range", value,
                               "The x-amz-copy-source-range value must be of the form "
                               "bytes=first-last where first and last are the zero-based "
                               "offsets of the first and last bytes to copy")
    if int(m.group(2)) >= size:
        raise invalid_argument("x-amz-copy-source-range", value,
                               f"Range specified is not valid for source object of size: "
                               f"{size}")
    return value.strip()


async def _copy_part(ctx: S3Context, name: str) -> Response:
    bucket, key, version = copy_source(ctx)
    source = await check_source(ctx, bucket, key, version)
    headers = {"X-Copy-From": quote(f"/{bucket}/{key}"), "Content-Length": "0",
               # a part is data only: the source's S3 and large-object state stays behind
               SYSMETA_ETAG: "", SYSMETA_UPLOAD_ID: "", "X-Object-Sysmeta-Slo-Etag": "",
               "X-Object-Sysmeta-Slo-Size": "", OVERRIDE_ETAG: ""}
    rng = ctx.req.headers.get("x-amz-copy-source-range")
    if rng:
        headers["Range"] = _copy_range(rng, int(source.get("content-length") or 0))
    query = {"version-id": version} if version else None
    resp = await ctx.call("PUT", _segments(ctx), name, headers=headers, query=query)
    await resp.close()
    root = Element("CopyPartResult")
    SubElement(root, "LastModified").text = xml_time(resp.headers.get("last-modified") or "")
    SubElement(root, "ETag").text = f'"{resp.headers.get("etag", "").strip(chr(34))}"'
    return xml_response(root)


# -- ListParts ----------------------------------------------------------------------------


async def _parts(ctx: S3Context, upload_id: str) -> dict[int, dict[str, Any]]:
    """Every uploaded part of the upload, by number."""
    prefix = f"{_key(ctx)}/{upload_id}/"
    out: dict[int, dict[str, Any]] = {}
    marker = ""
    while True:
        resp = await ctx.swift("GET", _segments(ctx), query={
            "format": "json", "prefix": prefix, "delimiter": "/", "marker": marker})
        if resp.status == 404:
            await resp.close()
            return out
        if not resp.ok:
            await resp.close()
            raise await ctx.translate(resp.status, "", "GET", _segments(ctx), None)
        items = json.loads(await resp.read() or b"[]")
        if not items:
            return out
        for item in items:
            tail = str(item.get("name", "")).rsplit("/", 1)[-1]
            if tail.isdigit():
                out[int(tail)] = item
        marker = str(items[-1].get("name") or items[-1].get("subdir"))


async def list_parts(ctx: S3Context) -> Response:
    assert ctx.bucket is not None
    key = _key(ctx)
    upload_id = _upload_id(ctx)
    encoding = ctx.encoding_type()
    await ctx.require_bucket()
    await upload_info(ctx, upload_id)
    max_parts = ctx.int_param("max-parts", ctx.conf.max_parts_listing, ctx.conf.max_parts_listing)
    marker = ctx.int_param("part-number-marker", 0)
    parts = sorted((n, item) for n, item in (await _parts(ctx, upload_id)).items() if n > marker)
    truncated = len(parts) > max_parts
    parts = parts[:max_parts]
    root = Element("ListPartsResult")
    SubElement(root, "Bucket").text = ctx.bucket
    SubElement(root, "Key").text = quote(key) if encoding == "url" else key
    SubElement(root, "UploadId").text = upload_id
    owner_element(root, "Initiator", ctx)
    owner_element(root, "Owner", ctx)
    SubElement(root, "StorageClass").text = "STANDARD"
    SubElement(root, "PartNumberMarker").text = str(marker)
    SubElement(root, "NextPartNumberMarker").text = str(parts[-1][0] if parts else 0)
    SubElement(root, "MaxParts").text = str(max_parts)
    if encoding:
        SubElement(root, "EncodingType").text = encoding
    SubElement(root, "IsTruncated").text = "true" if truncated else "false"
    for number, item in parts:
        part = SubElement(root, "Part")
        SubElement(part, "PartNumber").text = str(number)
        SubElement(part, "LastModified").text = xml_time(item["last_modified"])
        SubElement(part, "ETag").text = f'"{item["hash"]}"'
        SubElement(part, "Size").text = str(item["bytes"])
    return xml_response(root)


# -- AbortMultipartUpload ------------------------------------------------------------------


async def abort_upload(ctx: S3Context) -> Response:
    key = _key(ctx)
    upload_id = _upload_id(ctx)
    await ctx.require_bucket()
    _, is_marker = await upload_info(ctx, upload_id)
    if not is_marker:
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    resp = await ctx.swift("DELETE", _segments(ctx), f"{key}/{upload_id}")
    await resp.close()
    if resp.status == 404:
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    if not resp.ok:
        raise await ctx.translate(resp.status, "", "DELETE", _segments(ctx), key)
    for number in sorted(await _parts(ctx, upload_id)):
        d = await ctx.swift("DELETE", _segments(ctx), f"{key}/{upload_id}/{number}")
        await d.close()
    return empty_response(204)


# -- CompleteMultipartUpload ----------------------------------------------------------------


def _requested_parts(body: bytes, upload_id: str) -> list[tuple[int, str]]:
    """The ``(number, etag)`` pairs of the completion document, in ascending order."""
    try:
        root = parse(body, "CompleteMultipartUpload")
    except XMLError:
        raise S3Error("MalformedXML") from None
    out: list[tuple[int, str]] = []
    for elem in root.findall("Part"):
        number, etag = text(elem, "PartNumber"), text(elem, "ETag")
        if number is None or not number.strip().isdigit() or etag is None:
            raise S3Error("MalformedXML")
        n = int(number)
        if out and n <= out[-1][0]:
            raise S3Error("InvalidPartOrder", UploadId=upload_id)
        etag = etag.strip().strip('"').lower()
        if not _HEX32.fullmatch(etag):
            raise S3Error("InvalidPart", UploadId=upload_id, PartNumber=n, ETag=etag)
        out.append((n, etag))
    if not out:
        raise S3Error("MalformedXML")
    return out


def _completed_headers(marker: Headers) -> dict[str, str]:
    """The manifest's headers, from what the marker kept at creation."""
    out = {}
    for name, value in marker.items():
        lower = name.lower()
        if lower.startswith("x-object-meta-") or lower in _CARRIED:
            out[name] = value
    if (marker.get(HAS_CONTENT_TYPE) or "") == "yes":
        out["Content-Type"] = marker.get(CONTENT_TYPE) or ""
    elif HAS_CONTENT_TYPE not in marker:
        out["Content-Type"] = marker.get("content-type") or ""
    if not out.get("Content-Type"):
        out.pop("Content-Type", None)
    return out


async def complete_upload(ctx: S3Context) -> Response:
    assert ctx.bucket is not None and ctx.payload is not None
    key = _key(ctx)
    upload_id = _upload_id(ctx)
    h = ctx.req.headers
    if h.get("if-none-match", "*") != "*" or any(
            n in h for n in ("if-match", "if-modified-since", "if-unmodified-since")):
        raise not_implemented("Conditional uploads are not supported.")
    await ctx.require_bucket()
    info, is_marker = await upload_info(ctx, upload_id)
    body = await ctx.payload.read(MAX_COMPLETE_BODY)
    if not body.strip():
        raise invalid_request("You must specify at least one part")
    check_md5(ctx, body, required=False)
    requested = _requested_parts(body, upload_id)
    s3_etag = hashlib.md5(b"".join(bytes.fromhex(e) for _, e in requested)).hexdigest()
    s3_etag += f"-{len(requested)}"
    if not is_marker:
        if info.get(SYSMETA_ETAG) == s3_etag:  # a retried completion: already done
            return _complete_result(ctx, key, s3_etag, {})
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    manifest = _manifest(ctx, requested, await _parts(ctx, upload_id), upload_id)
    headers = _completed_headers(info)
    headers.update({SYSMETA_ETAG: s3_etag, SYSMETA_UPLOAD_ID: upload_id,
                    # SLO puts its own ETag before this, the listing shows S3's
                    OVERRIDE_ETAG: f"; s3_etag={s3_etag}", "Accept": "application/json"})
    data = json.dumps(manifest).encode()
    headers["Content-Length"] = str(len(data))
    resp = await ctx.swift("PUT", ctx.bucket, key, query={"multipart-manifest": "put"},
                           headers=headers, body=data)
    text_body = (await resp.read()).decode("utf-8", "replace")
    if resp.status == 400:
        raise _manifest_error(text_body, upload_id)
    if not resp.ok:
        raise await ctx.translate(resp.status, text_body, "PUT", ctx.bucket, key)
    extra = {}
    if "x-object-version-id" in resp.headers:
        extra["x-amz-version-id"] = resp.headers["x-object-version-id"]
    done = await ctx.swift("DELETE", _segments(ctx), f"{key}/{upload_id}")
    await done.close()
    return _complete_result(ctx, key, s3_etag, extra)


def _manifest(ctx: S3Context, requested: list[tuple[int, str]],
              uploaded: dict[int, dict[str, Any]], upload_id: str) -> list[dict[str, Any]]:
    """The SLO manifest of the requested parts, checked against what was uploaded."""
    key = _key(ctx)
    out = []
    for i, (number, etag) in enumerate(requested):
        part = uploaded.get(number)
        if part is None or str(part.get("hash", "")).strip('"') != etag:
            raise S3Error("InvalidPart", UploadId=upload_id, PartNumber=number, ETag=etag)
        size = int(part["bytes"])
        if i < len(requested) - 1 and size < ctx.conf.min_segment_size:
            raise S3Error("EntityTooSmall", ProposedSize=size,
                          MinSizeAllowed=ctx.conf.min_segment_size, PartNumber=number,
                          ETag=etag)
        out.append({"path": f"/{_segments(ctx)}/{key}/{upload_id}/{number}", "etag": etag,
                    "size_bytes": size})
    return out


def _manifest_error(body: str, upload_id: str) -> S3Error:
    """The SLO layer refused the manifest: a part changed or went away meanwhile."""
    if "Etag Mismatch" in body or "404" in body or "Size Mismatch" in body:
        return S3Error("InvalidPart", UploadId=upload_id)
    if "too small" in body.lower():
        return S3Error("EntityTooSmall")
    return invalid_request(body.strip() or "The manifest was refused")


def _complete_result(ctx: S3Context, key: str, s3_etag: str, headers: dict[str, str]
                     ) -> Response:
    assert ctx.bucket is not None
    root = Element("CompleteMultipartUploadResult")
    location = (f"{ctx.req.scheme}://{ctx.req.host}{ctx.req.script_name}/"
                f"{quote(ctx.bucket)}/{quote(key)}")
    SubElement(root, "Location").text = location
    SubElement(root, "Bucket").text = ctx.bucket
    SubElement(root, "Key").text = key
    SubElement(root, "ETag").text = f'"{s3_etag}"'
    return xml_response(root, headers=headers)


# -- ListMultipartUploads -------------------------------------------------------------------


async def list_uploads(ctx: S3Context) -> Response:
    assert ctx.bucket is not None
    if ctx.key is not None:
        raise invalid_request("Key is not expected for the GET method ?uploads subresource")
    encoding = ctx.encoding_type()
    key_marker = ctx.param("key-marker") or ""
    id_marker = ctx.param("upload-id-marker") or ""
    prefix = ctx.param("prefix") or ""
    delimiter = ctx.param("delimiter")
    max_uploads = ctx.int_param("max-uploads", MAX_UPLOADS, MAX_UPLOADS)
    await ctx.require_bucket()
    marker = f"{key_marker}/{id_marker}" if key_marker and id_marker else (
        f"{key_marker}/~" if key_marker else "")
    uploads, prefixes = await _uploads(ctx, marker, prefix, delimiter, max_uploads + 1)
    truncated = len(uploads) + len(prefixes) > max_uploads
    uploads = uploads[:max_uploads]
    root = Element("ListMultipartUploadsResult")
    SubElement(root, "Bucket").text = ctx.bucket
    SubElement(root, "KeyMarker").text = key_marker
    SubElement(root, "UploadIdMarker").text = id_marker
    SubElement(root, "NextKeyMarker").text = uploads[-1]["key"] if uploads else ""
    SubElement(root, "NextUploadIdMarker").text = uploads[-1]["id"] if uploads else ""
    if delimiter is not None:
        SubElement(root, "Delimiter").text = delimiter
    if ctx.has("prefix"):
        SubElement(root, "Prefix").text = prefix
    SubElement(root, "MaxUploads").text = str(max_uploads)
    if encoding:
        SubElement(root, "EncodingType").text = encoding
    SubElement(root, "IsTruncated").text = "true" if truncated else "false"
    for upload in uploads:
        elem = SubElement(root, "Upload")
        SubElement(elem, "Key").text = quote(upload["key"]) if encoding else upload["key"]
        SubElement(elem, "UploadId").text = upload["id"]
        owner_element(elem, "Initiator", ctx)
        owner_element(elem, "Owner", ctx)
        SubElement(elem, "StorageClass").text = "STANDARD"
        SubElement(elem, "Initiated").text = xml_time(upload["last_modified"])
    for p in prefixes:
        SubElement(SubElement(root, "CommonPrefixes"), "Prefix").text = p
    return xml_response(root)


async def _uploads(ctx: S3Context, marker: str, prefix: str, delimiter: str | None,
                   wanted: int) -> tuple[list[dict[str, str]], list[str]]:
    """Up to ``wanted`` uploads (and common prefixes) after ``marker``."""
    uploads: list[dict[str, str]] = []
    prefixes: list[str] = []
    query = {"format": "json", "marker": marker}
    if prefix:
        query["prefix"] = prefix
    while len(uploads) + len(prefixes) < wanted:
        resp = await ctx.swift("GET", _segments(ctx), query=query)
        if resp.status == 404:
            await resp.close()
            break
        if not resp.ok:
            await resp.close()
            raise await ctx.translate(resp.status, "", "GET", _segments(ctx), None)
        items = json.loads(await resp.read() or b"[]")
        if not items:
            break
        for item in items:
            name = str(item.get("name", ""))
            if not name or _PART.match(name) or "/" not in name:
                continue
            key, _, upload_id = name.rpartition("/")
            if delimiter:
                end = key.find(delimiter, len(prefix))
                if end >= 0:
                    common = key[:end + len(delimiter)]
                    if common not in prefixes:
                        prefixes.append(common)
                    continue
            uploads.append({"key": key, "id": upload_id,
                            "last_modified": item["last_modified"]})
        query["marker"] = str(items[-1]["name"])
    return uploads, prefixes


UPLOADS = {"POST": create_upload, "GET": list_uploads}
UPLOAD = {"GET": list_parts, "DELETE": abort_upload, "POST": complete_upload}
PART = {"PUT": upload_part}
