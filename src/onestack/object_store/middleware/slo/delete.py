"""``DELETE ?multipart-manifest=delete``: the segments (and those of nested
manifests) and then the manifests, reported as Swift's bulk delete reports:
always 200, with the outcome (``Response Status``, counts, errors) in a text,
JSON or XML body, whitespace first while a long delete goes on."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from onestack.object_store.http import Headers, HTTPError, Request, Response, error
from onestack.object_store.middleware.dlo.segments import MANIFEST_ONLY
from onestack.object_store.middleware.slo.manifest import Segment, bad, is_slo, status_line
from onestack.object_store.middleware.slo.results import (
    ACCEPTABLE_FORMATS,
    best_match,
    keepalive,
    result_body,
)

if TYPE_CHECKING:
    from onestack.object_store.middleware.slo import StaticLargeObject

log = logging.getLogger("onestack.object_store.slo")

DELETE_CONCURRENCY = 2
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _text(resp: Response) -> str:
    """The body of an error raised here (always bytes)."""
    body = resp.body
    return bytes(body).decode("utf-8", "replace") if isinstance(body, bytes) else ""


async def delete(slo: StaticLargeObject, req: Request, where: tuple[str, str], name: str
                 ) -> Response:
    """The outcome as a plain body when the deletes take less than
    ``yield_frequency`` (clients such as Tempest want a Content-Length), else a
    body that sends whitespace until the outcome is known."""
    try:
        fmt = best_match(req.headers.get("accept"), ACCEPTABLE_FORMATS)
    except ValueError:
        fmt = None
    first = _XML_DECLARATION if fmt and fmt.endswith("/xml") else b" "

    task = asyncio.ensure_future(ManifestDelete(slo, req, where, fmt).run(name))
    headers = Headers({"Content-Type": fmt or "text/html; charset=UTF-8"})
    done, _ = await asyncio.wait({task}, timeout=slo.yield_frequency)
    if not done:
        return Response(200, headers, keepalive(task, slo.yield_frequency, first=first,
                                                at_once=True))
    body = task.result()
    headers["Content-Length"] = str(len(body))
    return Response(200, headers, body)


class ManifestDelete:
    """``DELETE ?multipart-manifest=delete``: the segments (and those of nested
    manifests), then the manifests, reported as Swift's bulk delete reports."""

    def __init__(self, slo: StaticLargeObject, req: Request, where: tuple[str, str],
                 fmt: str | None) -> None:
        self.slo = slo
        self.req = req
        self.vrs, self.account = where
        self.fmt = fmt
        self.fields: dict[str, Any] = {"Response Status": "200 OK", "Response Body": "",
                                       "Number Deleted": 0, "Number Not Found": 0}
        self.failed: list[list[str]] = []
        self.bad_gateway = False

    async def run(self, name: str) -> bytes:
        try:
            if self.fmt is None:
                self.fields["Response Status"] = status_line(406)
            else:
                await self._delete_all(name)
                self._conclude()
        except HTTPError as exc:
            self.fields["Response Status"] = status_line(exc.response.status)
            self.fields["Response Body"] = _text(exc.response)
        except Exception:
            log.exception("Error in SLO delete of %s", self.req.path)
            self.fields["Response Status"] = status_line(500)
        return result_body(self.fmt, self.fields, self.failed, "delete")

    def _conclude(self) -> None:
        if self.failed:
            self.fields["Response Status"] = status_line(502 if self.bad_gateway else 400)
        elif not (self.fields["Number Deleted"] or self.fields["Number Not Found"]):
            self.fields["Response Status"] = status_line(400)
            self.fields["Response Body"] = "Invalid bulk delete."

    async def _delete_all(self, name: str) -> None:
        running: set[asyncio.Task[tuple[str, int]]] = set()
        try:
            async for item in self._to_delete(name):
                problem = item.get("error")
                if problem is not None:
                    if problem["code"] == 404:
                        self.fields["Number Not Found"] += 1
                    else:
                        self.failed.append([quote(item["name"]), problem["message"]])
                    continue
                if len(running) >= DELETE_CONCURRENCY:
                    done, running = await asyncio.wait(running,
                                                       return_when=asyncio.FIRST_COMPLETED)
                    self._count(done)
                running.add(asyncio.ensure_future(self._delete_one(item)))
            if running:
                done, running = await asyncio.wait(running)
                self._count(done)
        finally:
            for task in running:
                task.cancel()

    def _count(self, done: set[asyncio.Task[tuple[str, int]]]) -> None:
        for task in done:
            name, status = task.result()
            if 200 <= status < 300:
                self.fields["Number Deleted"] += 1
            elif status == 404:
                self.fields["Number Not Found"] += 1
            else:
                self.bad_gateway |= status >= 500
                self.failed.append([quote(name), status_line(status)])

    async def _delete_one(self, item: Segment) -> tuple[str, int]:
        query = {"version-id": item["version_id"]} if "version_id" in item else {}
        sub = self.req.sub("DELETE", f"/{self.vrs}/{self.account}/{item['name'].lstrip('/')}",
                           query=query, source="SLO")
        resp = await self.slo.app(sub)
        await resp.close()
        return item["name"], resp.status

    async def _to_delete(self, name: str) -> AsyncIterator[Segment]:
        """Segments first, each manifest after its segments."""
        top: dict[str, Any] = {"sub_slo": True, "name": name}
        if "version-id" in self.req.query:
            top["version_id"] = self.req.query["version-id"]
        queue = [top]
        while queue:
            if len(queue) > self.slo.max_segments * 10:
                raise bad(400, "Too many buffered slo segments to delete.")
            item = queue.pop(0)
            if "data" in item:
                continue
            if item.get("sub_slo"):
                try:
                    queue.extend(await self._segments_of(item))
                except HTTPError as exc:
                    item["error"] = {"code": exc.response.status, "message":
                                     _text(exc.response)}
                item["sub_slo"] = False
                queue.append(item)
            else:
                yield item

    async def _segments_of(self, item: Segment) -> list[Segment]:
        query = dict(MANIFEST_ONLY)
        if "version_id" in item:
            query["version-id"] = item["version_id"]
        path = f"/{self.vrs}/{self.account}/{item['name'].lstrip('/')}"
        resp = await self.slo.app(self.req.sub("GET", path, query=query, source="SLO"))
        if resp.ok and is_slo(resp.headers):
            try:
                segments = json.loads(await resp.read())
            except ValueError:
                raise HTTPError(error(500, "Unable to load SLO manifest")) from None
            if not isinstance(segments, list):
                raise HTTPError(error(500, "Unable to load SLO manifest"))
            return segments
        await resp.close()
        if resp.ok:
            raise HTTPError(error(400, "Not an SLO manifest"))
        if resp.status == 404:
            raise HTTPError(error(404, "SLO manifest not found"))
        if resp.status == 401:
            raise HTTPError(error(401, "401 Unauthorized"))
        raise HTTPError(error(500, "Unable to load SLO manifest or segment."))
