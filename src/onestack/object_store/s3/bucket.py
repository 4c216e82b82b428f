"""Buckets (Swift containers): HeadBucket, CreateBucket, DeleteBucket,
ListObjects (v1 and v2), ListObjectVersions and GetBucketLocation."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import quote
from xml.etree.ElementTree import Element, SubElement

from onestack.object_store.http import Response
from onestack.object_store.s3 import acl
from onestack.object_store.s3.context import (
    DELETE_MARKER_TYPE,
    SEGMENTS_SUFFIX,
    S3Context,
    empty_response,
    listing_etag,
    owner_element,
    xml_response,
    xml_time,
)
from onestack.object_store.s3.errors import S3Error, invalid_argument, not_implemented
from onestack.object_store.s3.xmlutil import XMLError, parse, text

MAX_CREATE_BODY = 10240


async def head_bucket(ctx: S3Context) -> Response:
    await ctx.require_bucket()
    return empty_response(200, {"x-amz-bucket-region": ctx.conf.location})


async def get_location(ctx: S3Context) -> Response:
    await ctx.require_bucket()
    root = Element("LocationConstraint")
    if ctx.conf.location != "us-east-1":
        root.text = ctx.conf.location  # AWS leaves us-east-1 empty
    return xml_response(root)


# -- CreateBucket / DeleteBucket ---------------------------------------------------------


async def create_bucket(ctx: S3Context) -> Response:
    assert ctx.bucket is not None and ctx.payload is not None
    body = await ctx.payload.read(MAX_CREATE_BODY)
    if body.strip():
        try:
            location = text(parse(body, "CreateBucketConfiguration"), "LocationConstraint")
        except XMLError:
            raise S3Error("MalformedXML") from None
        if location and location.lower() not in (r.lower() for r in ctx.conf.regions):
            raise S3Error("InvalidLocationConstraint", LocationConstraint=location)
    if (ctx.req.headers.get("x-amz-bucket-object-lock-enabled") or "").lower() == "true":
        raise not_implemented("Object Lock is not supported.")
    headers = acl.canned_headers(ctx.req.headers.get("x-amz-acl"))
    resp = await ctx.call("PUT", ctx.bucket, headers=headers)
    await resp.close()
    if resp.status == 202:
        # Swift's answer for a container that exists: the account is the signer's own
        raise S3Error("BucketAlreadyOwnedByYou", BucketName=ctx.bucket)
    return empty_response(200, {"Location": "/" + ctx.bucket})


async def delete_bucket(ctx: S3Context) -> Response:
    assert ctx.bucket is not None
    head = await ctx.require_bucket()
    if int(head.headers.get("x-container-object-count") or 0) > 0:
        raise S3Error("BucketNotEmpty", BucketName=ctx.bucket)
    await _delete_segments(ctx)
    resp = await ctx.call("DELETE", ctx.bucket)
    await resp.close()
    return empty_response(204)


async def _delete_segments(ctx: S3Context) -> None:
    """The bucket's ``+segments`` container goes first (uploads never completed)."""
    assert ctx.bucket is not None
    segments = ctx.bucket + SEGMENTS_SUFFIX
    while True:
        resp = await ctx.swift("GET", segments, query={"format": "json"})
        if resp.status == 404:
            await resp.close()
            return
        if not resp.ok:
            await resp.close()
            raise S3Error("ServiceUnavailable")
        items = json.loads(await resp.read() or b"[]")
        if not items:
            break
        for item in items:
            d = await ctx.swift("DELETE", segments, item["name"])
            await d.close()
            if not d.ok and d.status != 404:
                raise S3Error("ServiceUnavailable")
    d = await ctx.swift("DELETE", segments)
    await d.close()
    if not d.ok and d.status != 404:
        raise S3Error("ServiceUnavailable")


# -- listings ---------------------------------------------------------------------------


class _Listing:
    """One listing request's options, as S3 names them and as Swift wants them."""

    def __init__(self, ctx: S3Context) -> None:
        self.ctx = ctx
        self.max_keys = ctx.int_param("max-keys", ctx.conf.max_bucket_listing)
        self.limit = min(self.max_keys, ctx.conf.max_bucket_listing)
        self.encoding = ctx.encoding_type()
        self.prefix = ctx.param("prefix")
        self.delimiter = ctx.param("delimiter")
        self.query: dict[str, str] = {"format": "json", "limit": str(self.limit + 1)}
        if self.prefix:
            self.query["prefix"] = self.prefix
        if self.delimiter:
            self.query["delimiter"] = self.delimiter

    def enc(self, value: str | None) -> str | None:
        return quote(value, safe="/") if value and self.encoding == "url" else value

    async def fetch(self) -> tuple[list[dict[str, Any]], bool]:
        assert self.ctx.bucket is not None
        resp = await self.ctx.call("GET", self.ctx.bucket, query=self.query)
        items = json.loads(await resp.read() or b"[]") if resp.status != 204 else []
        truncated = self.limit > 0 and len(items) > self.limit
        return items[:self.limit], truncated

    def head(self, root: Element) -> None:
        assert self.ctx.bucket is not None
        SubElement(root, "Name").text = self.ctx.bucket
        SubElement(root, "Prefix").text = self.enc(self.prefix)

    def tail(self, root: Element, truncated: bool) -> None:
        SubElement(root, "MaxKeys").text = str(self.max_keys)
        if self.delimiter:
            SubElement(root, "Delimiter").text = self.enc(self.delimiter)
        if self.encoding:
            SubElement(root, "EncodingType").text = self.encoding
        SubElement(root, "IsTruncated").text = "true" if truncated else "false"

    def prefixes(self, root: Element, items: list[dict[str, Any]]) -> None:
        for item in items:
            if "subdir" in item:
                SubElement(SubElement(root, "CommonPrefixes"), "Prefix").text = \
                    self.enc(item["subdir"])

    def contents(self, parent: Element, item: dict[str, Any], owner: bool) -> None:
        SubElement(parent, "Key").text = self.enc(item["name"])
        SubElement(parent, "LastModified").text = xml_time(item["last_modified"])
        SubElement(parent, "ETag").text = listing_etag(item)
        SubElement(parent, "Size").text = str(item["bytes"])
        if owner:
            owner_element(parent, "Owner", self.ctx)
        SubElement(parent, "StorageClass").text = "STANDARD"


def _last_name(item: dict[str, Any]) -> str:
    return str(item.get("name") or item.get("subdir"))


async def list_objects(ctx: S3Context) -> Response:
    if ctx.has("versions"):
        return await list_versions(ctx)
    list_type = ctx.param("list-type") or "1"
    if list_type not in ("1", "2"):
        raise invalid_argument("list-type", list_type, "Invalid List Type specified in Request")
    return await (_list_v2(ctx) if list_type == "2" else _list_v1(ctx))


async def _list_v1(ctx: S3Context) -> Response:
    listing = _Listing(ctx)
    marker = ctx.param("marker")
    if marker:
        listing.query["marker"] = marker
    items, truncated = await listing.fetch()
    root = Element("ListBucketResult")
    listing.head(root)
    SubElement(root, "Marker").text = listing.enc(marker or "")
    if truncated and items:
        SubElement(root, "NextMarker").text = listing.enc(_last_name(items[-1]))
    listing.tail(root, truncated)
    for item in items:
        if "subdir" not in item:
            listing.contents(SubElement(root, "Contents"), item, owner=True)
    listing.prefixes(root, items)
    return xml_response(root)


async def _list_v2(ctx: S3Context) -> Response:
    listing = _Listing(ctx)
    start_after = ctx.param("start-after")
    token = ctx.param("continuation-token")
    if start_after:
        listing.query["marker"] = start_after
    if token is not None:
        try:
            listing.query["marker"] = base64.b64decode(token, validate=True).decode()
        except (binascii.Error, ValueError):
            raise invalid_argument("continuation-token", token,
                                   "The continuation token provided is incorrect") from None
    fetch_owner = (ctx.param("fetch-owner") or "").lower() == "true"
    items, truncated = await listing.fetch()
    root = Element("ListBucketResult")
    listing.head(root)
    if token is not None:
        SubElement(root, "ContinuationToken").text = token
    if truncated and items:
        SubElement(root, "NextContinuationToken").text = base64.b64encode(
            _last_name(items[-1]).encode()).decode()
    if start_after is not None:
        SubElement(root, "StartAfter").text = listing.enc(start_after)
    SubElement(root, "KeyCount").text = str(len(items))
    listing.tail(root, truncated)
    for item in items:
        if "subdir" not in item:
            listing.contents(SubElement(root, "Contents"), item, owner=fetch_owner)
    listing.prefixes(root, items)
    return xml_response(root)


async def list_versions(ctx: S3Context) -> Response:
    listing = _Listing(ctx)
    listing.query["versions"] = ""
    key_marker = ctx.param("key-marker")
    version_marker = ctx.param("version-id-marker")
    if key_marker:
        listing.query["marker"] = key_marker
        if version_marker:
            listing.query["version_marker"] = version_marker
    elif version_marker:
        raise invalid_argument("version-id-marker", version_marker,
                               "A version-id marker cannot be specified without a key marker.")
    items, truncated = await listing.fetch()
    root = Element("ListVersionsResult")
    listing.head(root)
    SubElement(root, "KeyMarker").text = listing.enc(key_marker or "")
    SubElement(root, "VersionIdMarker").text = version_marker or ""
    if truncated and items:
        SubElement(root, "NextKeyMarker").text = listing.enc(_last_name(items[-1]))
        SubElement(root, "NextVersionIdMarker").text = items[-1].get("version_id") or "null"
    listing.tail(root, truncated)
    for item in items:
        if "subdir" in item:
            continue
        marker = item.get("content_type") == DELETE_MARKER_TYPE
        elem = SubElement(root, "DeleteMarker" if marker else "Version")
        SubElement(elem, "Key").text = listing.enc(item["name"])
        SubElement(elem, "VersionId").text = item.get("version_id") or "null"
        SubElement(elem, "IsLatest").text = "true" if item.get("is_latest", True) else "false"
        SubElement(elem, "LastModified").text = xml_time(item["last_modified"])
        if not marker:
            SubElement(elem, "ETag").text = listing_etag(item)
            SubElement(elem, "Size").text = str(item["bytes"])
        owner_element(elem, "Owner", ctx)
        if not marker:
            SubElement(elem, "StorageClass").text = "STANDARD"
    listing.prefixes(root, items)
    return xml_response(root)


async def not_supported(ctx: S3Context) -> Response:
    raise not_implemented()


OPERATIONS = {"HEAD": head_bucket, "GET": list_objects, "PUT": create_bucket,
              "DELETE": delete_bucket, "POST": not_supported}
LOCATION = {"GET": get_location}
