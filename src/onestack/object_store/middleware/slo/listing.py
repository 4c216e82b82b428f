"""Container listings show a manifest's SLO ETag as its own ``slo_etag`` key.

The manifest PUT stores ``<manifest md5>; slo_etag=<etag>`` as the listing's
ETag (other parameters, such as S3's ``s3_etag``, stay in ``hash``)."""

from __future__ import annotations

import json
import re

from onestack.object_store.http import Handler, Request, Response

_LISTING_TYPES = ("application/json", "application/xml", "text/xml")


async def listing(app: Handler, req: Request) -> Response:
    resp = await app(req)
    ctype = (resp.headers.get("content-type") or "").split(";")[0].strip()
    if resp.status != 200 or ctype not in _LISTING_TYPES:
        return resp
    data = await resp.read()
    if b"slo_etag=" in data:
        data = _split_json(data) if ctype == "application/json" else _strip_xml(data)
        resp.headers["Content-Length"] = str(len(data))
        resp.body = data
    return resp


def _split_hash(value: str) -> tuple[str, str | None]:
    etag, *params = [p.strip() for p in value.split(";")]
    slo_etag = None
    kept = []
    for p in params:
        key, _, val = p.partition("=")
        if key.strip().lower() == "slo_etag":
            slo_etag = val.strip()
        elif p:
            kept.append(f"; {key.strip()}={val.strip()}")
    return etag + "".join(kept), slo_etag


def _split_json(data: bytes) -> bytes:
    try:
        listing = json.loads(data)
    except ValueError:
        return data
    for item in listing:
        if isinstance(item, dict) and isinstance(item.get("hash"), str):
            item["hash"], slo_etag = _split_hash(item["hash"])
            if slo_etag is not None:
                item["slo_etag"] = f'"{slo_etag}"'
    return json.dumps(listing).encode("ascii")


_XML_HASH = re.compile(rb"<hash>([^<]*)</hash>")


def _strip_xml(data: bytes) -> bytes:
    def fix(m: re.Match[bytes]) -> bytes:
        value, _ = _split_hash(m.group(1).decode("utf-8"))
        return b"<hash>" + value.encode("utf-8") + b"</hash>"

    return _XML_HASH.sub(fix, data)
