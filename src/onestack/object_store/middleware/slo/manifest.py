"""The two forms of an SLO manifest: the JSON list a client PUTs (checked here
for form) and the JSON Swift stores (read back to serve the large object)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from typing import Any

from onestack.object_store.api.common import config_true
from onestack.object_store.http import Headers, HTTPError, error, reason
from onestack.object_store.middleware.dlo.segments import parse_range, ranges_for_length

log = logging.getLogger("onestack.object_store.slo")

SYSMETA_SLO_ETAG = "X-Object-Sysmeta-Slo-Etag"
SYSMETA_SLO_SIZE = "X-Object-Sysmeta-Slo-Size"
OVERRIDE_ETAG = "X-Object-Sysmeta-Container-Update-Override-Etag"
_HTML = {"Content-Type": "text/html; charset=UTF-8"}
# one segment of a manifest, in either form
Segment = dict[str, Any]


def status_line(status: int) -> str:
    return f"{status} {reason(status)}"


def bad(status: int, text: str, method: str = "GET") -> HTTPError:
    """Swift's refusals with a body keep swob's HTML content type."""
    return HTTPError(error(status, text, headers=_HTML, method=method))


def is_slo(headers: Headers) -> bool:
    return config_true(headers.get("x-static-large-object"))


# -- the manifest a client PUTs -----------------------------------------------------------


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError("not a string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(str(exc)) from None


def _check_path_segment(i: int, seg: Segment, count: int, req_path: str, vrs: str,
                        account: str) -> str | None:
    """The problem with an object-backed segment, or ``None``; normalizes
    ``size_bytes`` to an int and ``range`` to parsed specs."""
    if not isinstance(seg["path"], str):
        return f'Index {i}: "path" must be a string'
    if not (seg.get("etag") is None or isinstance(seg["etag"], str)):
        return f'Index {i}: "etag" must be a string or null (if provided)'
    if "/" not in seg["path"].strip("/"):
        return (f"Index {i}: path does not refer to an object. Path must be of the form "
                "/container/object.")
    size = seg.get("size_bytes")
    if size is not None:
        try:
            size = seg["size_bytes"] = int(size)
        except (TypeError, ValueError):
            return f"Index {i}: invalid size_bytes"
        if size < 1 and i != count - 1:
            return f"Index {i}: too small; each segment must be at least 1 byte."
    if req_path == f"/{vrs}/{account}/{seg['path'].lstrip('/')}":
        return f"Index {i}: manifest must not include itself as a segment"
    if seg.get("range"):
        specs = parse_range(f"bytes={seg['range']}") if isinstance(seg["range"], str) else None
        if specs is None:
            return f"Index {i}: invalid range"
        if len(specs) > 1:
            return f"Index {i}: multiple ranges (only one allowed)"
        if size is not None and len(ranges_for_length(specs, size)) != 1:
            return f"Index {i}: unsatisfiable range"
        seg["range"] = specs
    return None


def _check_segment(i: int, seg: Any, count: int, req_path: str, vrs: str,
                   account: str) -> str | None:
    if not isinstance(seg, dict):
        return f"Index {i}: not a JSON object"
    kind = "data" if "data" in seg else "path" if "path" in seg else None
    if kind is None:
        return f"Index {i}: expected keys to include one of 'data' or 'path'"
    allowed = {"data"} if kind == "data" else {"path", "range", "etag", "size_bytes"}
    extra = sorted(k for k in seg if k not in allowed)
    if extra:
        return f"Index {i}: extraneous keys {', '.join(json.dumps(k) for k in extra)}"
    if kind == "path":
        return _check_path_segment(i, seg, count, req_path, vrs, account)
    try:
        data = _b64(seg["data"])
    except (TypeError, ValueError):
        return f"Index {i}: data must be valid base64"
    if not data:
        return f"Index {i}: too small; each segment must be at least 1 byte."
    seg["data"] = base64.b64encode(data).decode("ascii")
    return None


def parse_manifest(body: bytes, req_path: str) -> list[Segment]:
    """The segments of a manifest PUT, checked for form (not yet against the
    objects they name).

    Raises:
        HTTPError: 400 with Swift's text, one ``Index N: ...`` line per bad segment.
    """
    try:
        segments = json.loads(body)
    except ValueError:
        raise bad(400, "Manifest must be valid JSON.\n") from None
    if not isinstance(segments, list):
        raise bad(400, "Manifest must be a list.\n")
    vrs, account = req_path.split("/")[1:3]
    problems = [p for i, seg in enumerate(segments)
                if (p := _check_segment(i, seg, len(segments), req_path, vrs, account))]
    if segments and all(isinstance(s, dict) and "data" in s for s in segments):
        problems.append("Inline data segments require at least one object-backed segment.")
    if problems:
        raise HTTPError(error(400, "".join(p + "\n" for p in problems),
                              headers={"Content-Type": "text/plain"}))
    return segments


# -- the manifest as stored ---------------------------------------------------------------


def annotate(segments: list[Segment]) -> list[Segment]:
    """Stored segments with ``segment_length`` (and inline data decoded)."""
    for seg in segments:
        if "data" in seg:
            seg["raw_data"] = base64.b64decode(seg.pop("data"))
            seg["segment_length"] = len(seg["raw_data"])
            continue
        if config_true(seg.get("sub_slo")) and "swift_bytes=" in seg.get("content_type", ""):
            ctype, _, size = seg["content_type"].rpartition(";swift_bytes=")
            seg["content_type"], seg["bytes"] = ctype, int(size)
        if seg.get("range"):
            start, end = (int(x) for x in seg["range"].split("-"))
            seg["segment_length"] = end - start + 1
        else:
            seg["segment_length"] = int(seg["bytes"])
    return segments


def parse_stored(data: bytes) -> list[Segment]:
    try:
        segments = json.loads(data)
        return annotate(segments)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.error("Unable to load SLO manifest: %s", exc)
        raise HTTPError(error(500, "Unable to load SLO manifest")) from None


def etag_and_size(segments: list[Segment]) -> tuple[str, int]:
    """The SLO ETag (MD5 of the segments' ETags, ranges and inline data) and size."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    for seg in segments:
        size += seg["segment_length"]
        if "raw_data" in seg:
            part = hashlib.md5(seg["raw_data"], usedforsecurity=False).hexdigest()
        elif seg.get("range"):
            part = f"{seg['hash']}:{seg['range']};"
        else:
            part = seg["hash"]
        digest.update(part.encode("ascii"))
    return digest.hexdigest(), size


def raw_manifest(data: bytes) -> bytes:
    """The stored manifest in the form a manifest PUT takes (``format=raw``)."""
    try:
        segments = json.loads(data)
    except ValueError:
        raise HTTPError(error(500, "Unable to load SLO manifest")) from None
    if not isinstance(segments, list):
        raise HTTPError(error(500, "Unable to load SLO manifest"))
    for seg in segments:
        if "data" in seg:
            continue
        seg.pop("content_type", None)
        seg.pop("last_modified", None)
        seg.pop("sub_slo", None)
        seg["path"] = seg.pop("name", None)
        seg["size_bytes"] = seg.pop("bytes", None)
        seg["etag"] = seg.pop("hash", None)
    return json.dumps(segments, sort_keys=True).encode("utf-8")
