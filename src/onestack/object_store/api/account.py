"""``/v1/<account>``: what Swift's proxy and account server answer.

GET lists the containers (text, JSON or XML: ``format=`` or ``Accept``, as
Swift's ``listing_formats``), HEAD gives the usage, POST sets metadata, PUT and
DELETE are the reseller admin's (the auth layer decides). A missing account
reads as an empty one (account autocreate) and is created by its first write;
a deleted one answers 410 (and 403 ``Recently deleted`` to a PUT).

The listing helpers here are shared with the container controller.
"""

from __future__ import annotations

import json
import re
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from onestack.core import errors
from onestack.object_store.acl import format_account_acl, parse_account_acl
from onestack.object_store.api.common import authorize, config_true
from onestack.object_store.constraints import check_metadata
from onestack.object_store.http import Headers, HTTPError, Request, Response, error
from onestack.object_store.service.listings import STORAGE_POLICY, AccountInfo
from onestack.object_store.state import ObjectStoreState
from onestack.object_store.timestamp import Timestamp

METHODS = ("DELETE", "GET", "HEAD", "POST", "PUT")
ACCOUNT_ACL = "X-Account-Access-Control"

# -- header text ----------------------------------------------------------------------


def from_wire(text: str) -> str:
    """A header name or value as stored: headers arrive as latin-1 text of their
    bytes, which Swift reads as UTF-8."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def to_wire(text: str) -> str:
    """A stored header name or value as the latin-1 text of its UTF-8 bytes."""
    return text.encode("utf-8").decode("latin-1")


def stored_name(name: str) -> str:
    """The name a header is stored under: title-cased as Swift's WSGI layer gives it."""
    titled = name.title()
    try:
        titled.encode("latin-1")
    except UnicodeEncodeError:
        titled = name  # title-casing made a byte no byte (µ -> Μ): keep the bytes sent
    return from_wire(titled)


def metadata_updates(
    req: Request, kind: str, passthrough: tuple[str, ...] = (),
    removals: dict[str, str] | None = None,
) -> dict[str, str]:
    """The stored headers ``req`` sets (``""`` removes one): ``X-<kind>-Meta-*``
    and ``X-<kind>-Sysmeta-*``, ``passthrough`` names, and ``X-Remove-<kind>-Meta-*``
    or ``removals`` (``x-remove-...`` -> the header it removes). A header sent
    both ways is set, as in Swift's proxy."""
    removals = removals or {}
    remove_prefix = f"x-remove-{kind}-meta-"
    keep = (f"x-{kind}-meta-", f"x-{kind}-sysmeta-")
    removed: dict[str, str] = {}
    kept: dict[str, str] = {}
    for name, value in req.headers.items():
        low = name.lower()
        if low.startswith(remove_prefix):
            removed[stored_name(f"x-{kind}-meta-" + low[len(remove_prefix):])] = ""
        elif low in removals:
            removed[stored_name(removals[low])] = ""
        elif low in passthrough or low.startswith(keep):
            kept[stored_name(name)] = from_wire(value)
    return {**removed, **kept}


def metadata_headers(headers: Headers, metadata: dict[str, str]) -> None:
    """Add the stored headers (empty values are no headers)."""
    for key, value in metadata.items():
        if value:
            headers[to_wire(key)] = to_wire(value)


# -- listing format ------------------------------------------------------------------

FORMATS = {"plain": "text/plain", "json": "application/json", "xml": "application/xml"}
OFFERS = ("text/plain", "application/json", "application/xml", "text/xml")
_TOKEN = r'[^()<>@,;:\"/\[\]?={}\x00-\x20\x7f]+'
_EXTENSION = (r'(?:\s*;\s*(?:' + _TOKEN + r')\s*=\s*(?:' + _TOKEN
              + r'|"(?:[^"\\]|\\.)*"))')
_ACCEPT = re.compile(r'^\s*(' + _TOKEN + r')/(' + _TOKEN + r')(' + _EXTENSION + r'*?\s*)$')


def best_match(accept: str | None, offers: tuple[str, ...]) -> str | None:
    """The first of ``offers`` the best-rated media range of ``accept`` matches
    (swob's rules: by quality, then exact types before wildcards).

    Raises:
        ValueError: ``accept`` is malformed.
    """
    if not accept:
        return offers[0]
    ranges: list[tuple[str, float, bool]] = []
    for item in accept.split(","):
        match = _ACCEPT.match(item)
        if not match:
            raise ValueError("Invalid accept header")
        typ, sub, params = match.groups()
        quality, seen_q = 1.0, False
        for param in (p.strip() for p in params.split(";")):
            if not param:
                continue
            name, value = param.split("=")
            if name.strip() == "q":
                if seen_q:
                    raise ValueError('Multiple "q" params')
                seen_q, quality = True, float(value.strip())
        pattern = ("^" + (_TOKEN if typ == "*" else re.escape(typ)) + "/"
                   + (_TOKEN if sub == "*" else re.escape(sub)) + "$")
        ranges.append((pattern, quality, "*" not in (typ, sub)))
    ranges.sort(reverse=True, key=lambda r: (r[1], r[2]))
    for pattern, _, _ in ranges:
        for offer in offers:
            if re.match(pattern, offer):
                return offer
    return None


def listing_content_type(req: Request) -> str:
    """The listing's media type from ``format=`` or ``Accept``.

    Raises:
        HTTPError: 400 for a malformed Accept header, 406 when nothing matches.
    """
    fmt = req.query.get("format")
    accept = FORMATS.get(fmt.lower(), "text/plain") if fmt else req.headers.get("accept")
    try:
        found = best_match(accept, OFFERS)
    except ValueError:
        raise HTTPError(error(400, "Invalid Accept header", method=req.method)) from None
    if found is None:
        raise HTTPError(error(406, method=req.method))
    return found


def listing_query(req: Request, max_limit: int, *, with_path: bool = False) -> dict[str, Any]:
    """``Listings.list_*`` keyword arguments from the query.

    Raises:
        HTTPError: 412 ``Maximum limit is N`` for a larger ``limit``.
    """
    q = req.query
    limit = max_limit
    given = q.get("limit")
    if given and given.isascii() and given.isdigit():
        limit = int(given)
        if limit > max_limit:
            raise HTTPError(error(412, f"Maximum limit is {max_limit}", method=req.method))
    out: dict[str, Any] = {
        "prefix": q.get("prefix") or None, "delimiter": q.get("delimiter") or None,
        "marker": q.get("marker") or None, "end_marker": q.get("end_marker") or None,
        "limit": limit, "reverse": config_true(q.get("reverse")),
    }
    if with_path:
        out["path"] = q.get("path")
    return out


def _to_xml(root: Element) -> bytes:
    """The document with Swift's XML declaration (double quotes, its own line)."""
    body = tostring(root, encoding="UTF-8")
    if body.startswith(b"<?xml "):
        body = body.split(b"\n", 1)[1] if b"\n" in body else body.split(b"?>", 1)[1]
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _account_xml(entries: list[dict[str, Any]], name: str) -> bytes:
    root = Element("account", name=name)
    root.text = "\n"
    for entry in entries:
        if "subdir" in entry:
            item = SubElement(root, "subdir", name=entry["subdir"])
        else:
            item = SubElement(root, "container")
            for field in ("name", "count", "bytes", "last_modified", "storage_policy"):
                if field in entry:
                    SubElement(item, field).text = str(entry[field])
        item.tail = "\n"
    return _to_xml(root)


def _container_xml(entries: list[dict[str, Any]], name: str) -> bytes:
    root = Element("container", name=name)
    for entry in entries:
        if "subdir" in entry:
            item = SubElement(root, "subdir", name=entry["subdir"])
            SubElement(item, "name").text = entry["subdir"]
        else:
            item = SubElement(root, "object")
            for field in ("name", "hash", "bytes", "content_type", "last_modified"):
                SubElement(item, field).text = str(entry[field])
    return _to_xml(root)


def render_listing(entries: list[dict[str, Any]], content_type: str, root: str,
                   name: str) -> bytes:
    """A listing's body; ``root`` is ``account`` or ``container``."""
    if content_type.endswith("/xml"):
        return (_account_xml if root == "account" else _container_xml)(entries, name)
    if content_type.endswith("/json"):
        return json.dumps(entries).encode("ascii")
    return b"".join((e["name"] if "name" in e else e["subdir"]).encode() + b"\n"
                    for e in entries)


def listing_response(req: Request, headers: Headers, entries: list[dict[str, Any]],
                     content_type: str, root: str, name: str, *,
                     head_status: int = 204) -> Response:
    """A listing's GET or HEAD response: 200, or 204 when the body is empty."""
    headers["Content-Type"] = f"{content_type}; charset=utf-8"
    headers.setdefault("Accept-Ranges", "bytes")
    if "format" not in req.query:
        headers["Vary"] = "Accept"
    if req.method == "HEAD":
        headers["Content-Length"] = "0"
        return Response(head_status, headers, b"")
    body = render_listing(entries, content_type, root, name)
    headers["Content-Length"] = str(len(body))
    return Response(200 if body else 204, headers, body)


# -- responses ------------------------------------------------------------------------

_PAGES = {202: "<html><h1>Accepted</h1><p>The request is accepted for processing.</p></html>"}


def reply(status: int, method: str) -> Response:
    """A success without content as Swift's servers send it (HTML page type)."""
    body = _PAGES.get(status, "").encode()
    headers = Headers({"Content-Type": "text/html; charset=UTF-8",
                       "Content-Length": str(len(body))})
    return Response(status, headers, b"" if method == "HEAD" else body)


def refusal(exc: errors.CloudError, method: str) -> Response:
    """A ``Listings`` refusal as Swift words it (its text only where Swift has one)."""
    text = exc.message if exc.status_code in (400, 403) else None
    return error(exc.status_code, text, method=method)


# -- the account ---------------------------------------------------------------------


def account_headers(info: AccountInfo) -> Headers:
    h = Headers({
        "X-Account-Container-Count": str(info.container_count),
        "X-Account-Object-Count": str(info.object_count),
        "X-Account-Bytes-Used": str(info.bytes_used),
        "X-Timestamp": info.created_at.normal,
        "X-PUT-Timestamp": info.put_timestamp.normal,
    })
    if info.exists:
        policy = f"X-Account-Storage-Policy-{STORAGE_POLICY}"
        h[f"{policy}-Container-Count"] = str(info.container_count)
        h[f"{policy}-Object-Count"] = str(info.object_count)
        h[f"{policy}-Bytes-Used"] = str(info.bytes_used)
    metadata_headers(h, info.metadata)
    h["Accept-Ranges"] = "bytes"
    return h


async def handle(st: ObjectStoreState, req: Request, account: str) -> Response:
    handler = _HANDLERS.get(req.method)
    if handler is None:
        return error(405, headers={"Allow": ", ".join(METHODS)}, method=req.method)
    try:
        return await handler(st, req, account)
    except HTTPError as exc:
        return exc.response
    except errors.CloudError as exc:
        return refusal(exc, req.method)


async def _get_or_head(st: ObjectStoreState, req: Request, account: str) -> Response:
    content_type = listing_content_type(req)
    await authorize(req)
    query = None
    if req.method == "GET":
        query = listing_query(req, st.settings.object_store.account_listing_limit)
    info = await st.listings.account_info(account)
    if info.deleted:
        return error(410, method=req.method)
    entries = []
    if query is not None and info.exists:
        entries = await st.listings.list_containers(account, **query)
    # an account that does not exist yet is answered as Swift's fake listing,
    # whose HEAD has the status its GET would have
    head_status = 204
    if not info.exists and render_listing([], content_type, "account", account):
        head_status = 200
    return listing_response(req, account_headers(info), entries, content_type, "account",
                            account, head_status=head_status)


def _account_updates(st: ObjectStoreState, req: Request) -> dict[str, str]:
    """Checked metadata of a PUT or POST; the account ACL is stored normalised.

    Raises:
        HTTPError: 400 for metadata over the limits or an invalid account ACL.
    """
    check_metadata(req, "account", st.settings.object_store)
    updates = metadata_updates(req, "account")
    value = req.headers.get("x-account-access-control")
    if value is not None:
        try:
            acl = parse_account_acl(value)
        except ValueError as exc:
            raise HTTPError(error(400, f"X-Account-Access-Control invalid: {exc}\n\n"
                                       f"Input: {value}\n", method=req.method)) from None
        updates[ACCOUNT_ACL] = format_account_acl(acl)
    return updates


async def _post(st: ObjectStoreState, req: Request, account: str) -> Response:
    await authorize(req)
    updates = _account_updates(st, req)
    await st.listings.post_account(account, timestamp=Timestamp.now(), metadata=updates)
    return reply(204, req.method)


async def _put(st: ObjectStoreState, req: Request, account: str) -> Response:
    await authorize(req)
    updates = _account_updates(st, req)
    created = await st.listings.put_account(account, timestamp=Timestamp.now(),
                                            metadata=updates)
    return reply(201 if created else 202, req.method)


async def _delete(st: ObjectStoreState, req: Request, account: str) -> Response:
    await authorize(req)
    if req.query:
        return error(400, method=req.method)  # a typo'd middleware query, not a deletion
    await st.listings.delete_account(account, timestamp=Timestamp.now())
    return reply(204, req.method)


_HANDLERS = {"GET": _get_or_head, "HEAD": _get_or_head, "POST": _post, "PUT": _put,
             "DELETE": _delete}
