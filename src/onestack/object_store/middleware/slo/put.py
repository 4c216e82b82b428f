"""``PUT ?multipart-manifest=put``: every segment checked with a HEAD (through
SLO itself, so that a nested manifest shows its whole size and ETag), then the
manifest stored in Swift's form with the large object's ETag and size."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import mimetypes
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from onestack.object_store.api.common import config_true
from onestack.object_store.http import Headers, Request, Response, TooLarge, error, read_all
from onestack.object_store.middleware.dlo.segments import Spec, normalize_etag, ranges_for_length
from onestack.object_store.middleware.slo.manifest import (
    OVERRIDE_ETAG,
    SYSMETA_SLO_ETAG,
    SYSMETA_SLO_SIZE,
    Segment,
    bad,
    is_slo,
    parse_manifest,
    status_line,
)
from onestack.object_store.middleware.slo.results import (
    ACCEPTABLE_FORMATS,
    REASONS,
    best_match,
    keepalive,
    result_body,
)

if TYPE_CHECKING:
    from onestack.object_store.middleware.slo import StaticLargeObject

log = logging.getLogger("onestack.object_store.slo")

# a middleware before SLO (S3's multipart upload) may check the stored form too
MANIFEST_HOOK = "swift.callback.slo_manifest_hook"
HEAD_CONCURRENCY = 2


async def put(slo: StaticLargeObject, req: Request) -> Response:
    """The manifest PUT; refusals of the request itself raise ``HTTPError``."""
    if req.headers.get("x-copy-from"):
        raise bad(405, "Multipart Manifest PUTs cannot be COPY requests")
    length = req.content_length
    if length is None and (req.headers.get("transfer-encoding") or "").lower() != "chunked":
        return error(411)
    too_large = bad(413, f"Manifest File > {slo.max_size} bytes")
    if length is not None and length > slo.max_size:
        raise too_large
    try:
        body = await read_all(req.body, slo.max_size)
    except TooLarge:
        raise too_large from None
    segments = parse_manifest(body, req.path)
    if sum(1 for s in segments if "path" in s) > slo.max_segments:
        raise bad(413, f"Number of object-backed segments must be <= {slo.max_segments}")
    try:
        fmt = best_match(req.headers.get("accept"), ACCEPTABLE_FORMATS) or "text/plain"
    except ValueError:
        fmt = "text/plain"
    job = ManifestPut(slo, req, segments)
    if config_true(req.query.get("heartbeat")):
        task = asyncio.ensure_future(job.outcome(fmt))
        return Response(202, Headers({"Content-Type": fmt}),
                        keepalive(task, slo.yield_frequency, at_once=True))
    status, resp = await job.run()
    if status == 400:
        return error(400, result_body(fmt, {}, job.problems, "upload").decode(),
                     headers={"Content-Type": fmt})
    if status == 422:
        return error(422)
    assert resp is not None
    return resp


def _last_modified(value: str | None) -> str:
    try:
        when = parsedate_to_datetime(value) if value else datetime.now(UTC)
    except (TypeError, ValueError):
        when = datetime.now(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")


def slo_etag(stored: list[Segment]) -> str:
    """The large object's ETag: the MD5 of its segments' ETags (``etag:range;`` for
    a ranged segment, the data's MD5 for inline data)."""
    digest = hashlib.md5(usedforsecurity=False)
    for seg in stored:
        if "data" in seg:
            raw = base64.b64decode(seg["data"])
            part = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        elif seg.get("range"):
            part = f"{seg['hash']}:{seg['range']};"
        else:
            part = seg["hash"]
        digest.update(part.encode("ascii"))
    return digest.hexdigest()


class ManifestPut:
    """One manifest PUT once its JSON is well formed."""

    def __init__(self, slo: StaticLargeObject, req: Request, segments: list[Segment]) -> None:
        self.slo = slo
        self.req = req
        self.segments = segments
        self.vrs, self.account = req.path.split("/")[1:3]
        self.problems: list[list[str]] = []

    async def run(self) -> tuple[int, Response | None]:
        """``(400, None)`` for bad segments, ``(422, None)`` for a wrong client ETag,
        else the status and response of storing the manifest."""
        stored, total = await self._check_all()
        hook = self.req.environ.get(MANIFEST_HOOK)
        if hook is not None and not self.problems:
            more = hook(stored)
            if asyncio.iscoroutine(more):
                more = await more
            self.problems.extend(more or [])
        if self.problems:
            return 400, None
        etag = slo_etag(stored)
        client_etag = normalize_etag(self.req.headers.get("etag"))
        if client_etag and client_etag != etag:
            return 422, None
        resp = await self._store(stored, etag, total)
        return resp.status, resp

    async def outcome(self, fmt: str) -> bytes:
        """The end of a heartbeat body: what the response would have said."""
        try:
            status, resp = await self.run()
        except Exception:
            log.exception("SLO manifest PUT of %s failed", self.req.path)
            status, resp = 500, None
        fields: dict[str, Any] = {"Response Status": status_line(status)}
        if resp is None:
            fields["Response Body"] = REASONS[status]
            return result_body(fmt, fields, self.problems, "upload")
        if resp.ok:
            fields["Etag"] = resp.headers.get("etag")
            fields["Last Modified"] = resp.headers.get("last-modified")
        fields["Response Body"] = (await resp.read()).decode("utf-8", "replace")
        return result_body(fmt, fields, [], "upload")

    async def _check_all(self) -> tuple[list[Segment], int]:
        """The stored form of each segment and the total size, checking each
        distinct path once."""
        stored: list[Segment] = [{}] * len(self.segments)
        total = 0
        by_path: dict[str, list[int]] = {}
        for i, seg in enumerate(self.segments):
            if "data" in seg:
                stored[i] = seg
                total += len(base64.b64decode(seg["data"]))
            else:
                by_path.setdefault(seg["path"], []).append(i)
        gate = asyncio.Semaphore(HEAD_CONCURRENCY)

        async def head(path: str) -> tuple[str, Response]:
            async with gate:
                sub = self.req.sub("HEAD", f"/{self.vrs}/{self.account}/{path.lstrip('/')}",
                                   source="SLO")
                resp = await self.slo(sub)
                await resp.close()
                return path, resp

        for path, resp in await asyncio.gather(*(head(p) for p in by_path)):
            for i in by_path[path]:
                length, data = self._check(self.segments[i], resp, i == len(self.segments) - 1)
                if data is not None:
                    stored[i] = data
                total += length
        return stored, total

    def _check(self, seg: Segment, resp: Response, last: bool) -> tuple[int, Segment | None]:
        """The segment's length in the large object and its stored form; what does
        not match goes to ``problems``."""
        name = quote(seg["path"])
        if not resp.ok:
            self.problems.append([name, status_line(resp.status)])
            return 0, None
        size = int(resp.headers.get("content-length") or 0)
        length, rng = size, None
        specs: list[Spec] | None = seg.get("range")
        if specs:
            ranges = ranges_for_length(specs, size)
            if not ranges:
                self.problems.append([name, "Unsatisfiable Range"])
            elif ranges != [(0, size)]:
                rng = f"{ranges[0][0]}-{ranges[0][1] - 1}"
                length = ranges[0][1] - ranges[0][0]
        minimum = self.slo.min_segment_size
        if length < minimum and not last:
            unit = "byte" if minimum == 1 else "bytes"
            self.problems.append(
                [name, f"Too small; each segment must be at least {minimum} {unit}."])
        if seg.get("size_bytes") is not None and seg["size_bytes"] != size:
            self.problems.append([name, "Size Mismatch"])
        etag = (resp.headers.get("etag") or "").replace('"', "")
        if seg.get("etag") is not None and seg["etag"] != etag:
            self.problems.append([name, "Etag Mismatch"])
        data: dict[str, Any] = {
            "name": "/" + seg["path"].lstrip("/"),
            "bytes": size,
            "hash": etag,
            "content_type": (resp.headers.get("content-type") or "").split(";")[0],
            "last_modified": _last_modified(resp.headers.get("last-modified")),
        }
        if rng:
            data["range"] = rng
        if is_slo(resp.headers):
            data["sub_slo"] = True
        return length, data

    async def _store(self, stored: list[Segment], etag: str, total: int) -> Response:
        req = self.req
        body = json.dumps(stored).encode("utf-8")
        json_md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
        h = req.headers
        h[SYSMETA_SLO_ETAG] = etag
        h[SYSMETA_SLO_SIZE] = str(total)
        h["X-Static-Large-Object"] = "True"
        h["Etag"] = json_md5
        # keep what a middleware before us (S3's s3_etag) put in the listing etag
        value, sep, params = (h.get(OVERRIDE_ETAG) or "").partition(";")
        h[OVERRIDE_ETAG] = f"{(value or json_md5) + sep + params}; slo_etag={etag}"
        ctype = h.get("content-type") or mimetypes.guess_type(req.path)[0] \
            or "application/octet-stream"
        # listings show the total; the container's bytes used count only the manifest
        h["Content-Type"] = f"{ctype};swift_bytes={total}"
        req.environ["swift.content_type_overridden"] = True
        h.pop("transfer-encoding")
        h["Content-Length"] = str(len(body))
        req.body = body
        resp = await self.slo.app(req)
        if resp.ok:
            resp.headers["Etag"] = f'"{etag}"'
        return resp
