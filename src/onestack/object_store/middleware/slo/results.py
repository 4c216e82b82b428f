"""How SLO answers bulk-style: the Accept negotiation and the outcome bodies
of uploads and deletes (Swift's bulk middleware format), and the keep-alive
body that sends whitespace while the work goes on (``heartbeat=on``)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any
from xml.sax.saxutils import escape

ACCEPTABLE_FORMATS = ("text/plain", "application/json", "application/xml", "text/xml")
# swob's default texts, which Swift puts in heartbeat bodies
REASONS = {
    400: "Bad Request\nThe server could not comply with the request since it is either "
         "malformed or otherwise incorrect.",
    422: "Unprocessable Entity\nUnable to process the contained instructions",
    500: "Internal Error\nThe server has either erred or is incapable of performing the "
         "requested operation.",
}

_TOKEN = r"[^()<>@,;:\"/\[\]?={}\x00-\x20\x7f]+"
_ACCEPT_ITEM = re.compile(
    rf"^\s*({_TOKEN})/({_TOKEN})((?:\s*;\s*{_TOKEN}\s*=\s*(?:{_TOKEN}|\"(?:[^\"\\]|\\.)*\"))*)\s*$")


def best_match(accept: str | None, offers: Sequence[str]) -> str | None:
    """The offer the Accept header prefers (swob's rules: by quality, then exact
    types before wildcards, then the order of ``offers``).

    Raises:
        ValueError: a malformed Accept header.
    """
    if not accept:
        return offers[0] if offers else None
    prefs: list[tuple[float, bool, str]] = []
    for item in accept.split(","):
        m = _ACCEPT_ITEM.match(item)
        if m is None:
            raise ValueError("Invalid accept header")
        kind, sub, params = m.groups()
        quality = 1.0
        qs = [p.split("=", 1)[1].strip() for p in params.split(";")
              if p.strip() and p.split("=", 1)[0].strip() == "q"]
        if len(qs) > 1:
            raise ValueError('Multiple "q" params')
        if qs:
            quality = float(qs[0])
        pattern = ("[^/]+" if kind == "*" else re.escape(kind)) + "/" + (
            "[^/]+" if sub == "*" else re.escape(sub))
        prefs.append((quality, "*" not in (kind, sub), pattern))
    prefs.sort(key=lambda p: (p[0], p[1]), reverse=True)
    for _, _, pattern in prefs:
        for offer in offers:
            if re.fullmatch(pattern, offer):
                return offer
    return None


def result_body(fmt: str | None, fields: dict[str, Any], errors: list[list[str]],
                root: str) -> bytes:
    """The outcome of an SLO upload or delete in Swift's bulk format: plain text
    (``Key: value`` lines, ``Errors:``), JSON or XML (``root`` element)."""
    if fmt == "application/json":
        return json.dumps({**fields, "Errors": errors}).encode("ascii")
    if fmt and fmt.endswith("/xml"):
        out = [f"<{root}>\n"]
        for key in sorted(fields):
            tag = key.replace(" ", "_").lower()
            out.append(f"<{tag}>{escape(str(fields[key]))}</{tag}>\n")
        out.append("<errors>\n")
        out.extend(f"<object><name>{escape(n)}</name><status>{escape(s)}</status></object>\n"
                   for n, s in errors)
        out.append(f"</errors>\n</{root}>\n")
        return "".join(out).encode("utf-8")
    lines = [f"{key}: {fields[key]}\n" for key in sorted(fields)]
    lines.append("Errors:\n")
    lines.extend(f"{n}, {s}\n" for n, s in errors)
    return "".join(lines).encode("utf-8")


async def keepalive(task: asyncio.Future[bytes], every: float, *, first: bytes = b" ",
                    at_once: bool = False) -> AsyncIterator[bytes]:
    """A body that sends ``task``'s result once it is done, and whitespace every
    ``every`` seconds meanwhile so that clients and proxies keep waiting
    (``first`` is the first such chunk; ``at_once`` sends it immediately)."""
    separator = b""
    try:
        if at_once:
            yield first
            first, separator = b" ", b"\r\n\r\n"
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                break
            yield first
            first, separator = b" ", b"\r\n\r\n"
        yield separator + task.result()
    finally:
        if not task.done():
            task.cancel()
