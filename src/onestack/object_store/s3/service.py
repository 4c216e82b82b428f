"""``GET /``: ListBuckets, the containers of the signer's account whose names
are valid bucket names (``<bucket>+segments`` and other Swift-only names are
not buckets)."""

from __future__ import annotations

import json
from typing import Any
from xml.etree.ElementTree import Element, SubElement

from onestack.object_store.http import Response
from onestack.object_store.s3.context import (
    S3Context,
    owner_element,
    valid_bucket_name,
    xml_response,
    xml_time,
)
from onestack.object_store.s3.errors import S3Error

# a creation date for containers whose listing gives none (as Swift's s3api)
_EPOCH = "2009-02-03T16:45:09.000Z"
_PAGE = 10000


async def containers(ctx: S3Context, **query: str) -> list[dict[str, Any]]:
    """Every container of the account (all pages); none for an account not made yet."""
    out: list[dict[str, Any]] = []
    marker = ""
    while True:
        resp = await ctx.swift("GET", query={"format": "json", "marker": marker,
                                             "limit": str(_PAGE), **query})
        if resp.status == 404:
            await resp.close()
            return out
        if not resp.ok:
            await resp.close()
            raise S3Error("AccessDenied" if resp.status in (401, 403) else "InternalError")
        page = json.loads(await resp.read() or b"[]")
        out.extend(page)
        if len(page) < _PAGE:
            return out
        marker = page[-1]["name"]


async def list_buckets(ctx: S3Context) -> Response:
    root = Element("ListAllMyBucketsResult")
    owner_element(root, "Owner", ctx)
    buckets = SubElement(root, "Buckets")
    for c in await containers(ctx):
        if not valid_bucket_name(c["name"]):
            continue
        b = SubElement(buckets, "Bucket")
        SubElement(b, "Name").text = c["name"]
        created = c.get("last_modified")
        SubElement(b, "CreationDate").text = xml_time(created) if created else _EPOCH
    return xml_response(root)


OPERATIONS = {"GET": list_buckets}
