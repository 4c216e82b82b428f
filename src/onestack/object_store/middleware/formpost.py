"""Browser uploads: an HTML form POSTed as ``multipart/form-data`` becomes one object
PUT per file, below the form's path.

The form is signed with a Temp-URL key of the account or the container (HMAC of
``path\\nredirect\\nmax_file_size\\nmax_file_count\\nexpires``); the fields before
the files say where to go afterwards (``redirect``), the limits, and
``x_delete_at``/``x_delete_after``. Files are streamed into their PUT as they
arrive and never held whole; fields after the files are not seen, as in Swift
(they would need the whole body first). The answer is a 303 to ``redirect`` with
the status and message in its query, or the status as plain text.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from onestack.object_store.http import (
    Handler,
    Headers,
    HTTPError,
    Request,
    Response,
    error,
    reason,
)
from onestack.object_store.middleware.tempurl import (
    ALLOWED_DIGESTS,
    DEPRECATED_DIGESTS,
    extract_digest,
    signed_paths,
    temp_url_keys,
)
from onestack.object_store.state import ObjectStoreState

READ_CHUNK_SIZE = 65536
MAX_VALUE_LENGTH = 4096
# a header line of a part longer than this is cut: headers are small, and a
# client must not make us buffer an unbounded line
MAX_HEADER_LINE = 8192
_ATTRIBUTES = re.compile(r'(\w+)=(".*?"|[^";]+)(; ?|$)')
# headers a PUT made for the form keeps from the form's request
_KEPT_HEADERS = ("user-agent", "origin", "access-control-request-method", "referer")


class FormInvalid(Exception):
    """A 400: the form is malformed."""


class FormUnauthorized(Exception):
    """A 401: the form's signature does not hold."""


class MimeInvalid(Exception):
    """The body does not start with the boundary."""


class FileTooLarge(Exception):
    """A file went past ``max_file_size`` while it was being stored."""


def parse_disposition(header: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="f"; filename="a.txt"`` -> ``("form-data", {...})``."""
    attrs: dict[str, str] = {}
    rest = ""
    if ";" in header:
        header, rest = (x.strip() for x in header.split(";", 1))
    while (m := _ATTRIBUTES.match(rest)) is not None and m.group(0):
        rest = rest[len(m.group(0)):]
        attrs[m.group(1)] = m.group(2).strip('"')
    return header, attrs


class _Input:
    """The request body as a buffer the parser reads ahead into."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self.stream = stream
        self.buf = bytearray()
        self.eof = False

    async def fill(self, size: int) -> None:
        """Read until ``size`` bytes are buffered or the body ends."""
        while len(self.buf) < size and not self.eof:
            try:
                chunk = await anext(self.stream)
            except StopAsyncIteration:
                self.eof = True
                return
            self.buf += chunk


class Part:
    """One part of the form: its body up to the next boundary."""

    def __init__(self, inp: _Input, delimiter: bytes) -> None:
        self.inp = inp
        self.delimiter = delimiter
        self.done = False
        self.last = False  # no part follows this one

    def _found(self, pos: int) -> bytes:
        buf = self.inp.buf
        data = bytes(buf[:pos])
        rest = bytes(buf[pos + len(self.delimiter):])
        self.last = rest.startswith(b"--")
        self.inp.buf = bytearray(rest[2:])
        self.done = True
        return data

    async def read(self, size: int = READ_CHUNK_SIZE) -> bytes:
        """Up to ``size`` bytes of the part; ``b""`` at its end."""
        if self.done:
            return b""
        # the delimiter plus what follows it (-- or CRLF) must be in the buffer
        await self.inp.fill(size + len(self.delimiter) + 2)
        buf = self.inp.buf
        pos = buf.find(self.delimiter)
        if 0 <= pos <= size:
            if pos + len(self.delimiter) + 2 > len(buf):
                await self.inp.fill(pos + len(self.delimiter) + 2)
            return self._found(pos)
        if pos < 0 and self.inp.eof and len(buf) <= size:
            self.done = self.last = True  # the body ended without a closing boundary
            data = bytes(buf)
            self.inp.buf = bytearray()
            return data
        data = bytes(buf[:size])
        del buf[:size]
        return data

    async def readline(self) -> bytes:
        """One line (with its CRLF), cut at the part's end or ``MAX_HEADER_LINE``."""
        if self.done:
            return b""
        inp = self.inp
        horizon = MAX_HEADER_LINE + len(self.delimiter) + 2
        while b"\r\n" not in inp.buf and not inp.eof and len(inp.buf) < horizon:
            await inp.fill(len(inp.buf) + 1)
        end = inp.buf.find(b"\r\n")
        pos = inp.buf.find(self.delimiter)
        if end >= 0 and end != pos:
            size = end + 2
        else:  # the part ends before any line break (the delimiter starts with one)
            size = pos if pos >= 0 else MAX_HEADER_LINE
        return await self.read(min(size, MAX_HEADER_LINE))

    async def headers(self) -> Headers:
        """The part's headers (the body is what remains to ``read``)."""
        out = Headers()
        last = ""
        while True:
            raw = await self.readline()
            if raw in (b"\r\n", b"\n", b""):
                return out
            try:
                line = raw.decode()
            except UnicodeDecodeError:
                line = raw.decode("latin-1")
            if line[:1] in (" ", "\t") and last:
                out[last] = out[last] + " " + line.strip()
                continue
            name, sep, value = line.partition(":")
            if sep:
                last = name.strip()
                out[last] = value.strip()

    async def drain(self) -> None:
        while await self.read():
            pass


async def iter_parts(stream: AsyncIterator[bytes], boundary: bytes) -> AsyncIterator[Part]:
    """The parts of a ``multipart/form-data`` body, each to be read before the next.

    Raises:
        MimeInvalid: the body does not begin with the boundary.
    """
    inp = _Input(stream)
    start = b"--" + boundary
    line = b"\r\n"
    while line == b"\r\n":
        line = await _first_line(inp, len(start) + 2)
    if line.strip() != start:
        raise MimeInvalid(f"invalid starting boundary: wanted {start!r}, got {line!r}")
    delimiter = b"\r\n" + start
    while True:
        part = Part(inp, delimiter)
        yield part
        if not part.done:
            await part.drain()
        if part.last:
            return


async def _first_line(inp: _Input, limit: int) -> bytes:
    await inp.fill(limit)
    end = inp.buf.find(b"\n", 0, limit)
    size = end + 1 if end >= 0 else min(limit, len(inp.buf))
    line = bytes(inp.buf[:size])
    del inp.buf[:size]
    return line


_DELETE_FIELDS = {
    "x_delete_at": "x_delete_at not an integer: Unix timestamp required.",
    "x_delete_after": "x_delete_after not an integer: Number of seconds required.",
}


def _status(code: int) -> str:
    return f"{code} {reason(code)}"


def _int(attributes: Mapping[str, str], name: str, message: str) -> int:
    try:
        return int(attributes.get(name) or 0)
    except ValueError:
        raise FormInvalid(message) from None


class FormPost:
    def __init__(self, app: Handler, st: ObjectStoreState,
                 allowed_digests: tuple[str, ...] = ALLOWED_DIGESTS) -> None:
        self.app = app
        self.st = st
        self.allowed_digests = allowed_digests

    async def __call__(self, req: Request) -> Response:
        if req.method != "POST":
            return await self.app(req)
        ctype, attrs = parse_disposition(req.headers.get("content-type") or "")
        if ctype != "multipart/form-data" or "boundary" not in attrs:
            return await self.app(req)
        try:
            return await self._translate(req, attrs["boundary"].encode("utf-8"))
        except MimeInvalid:
            return _plain(400, "FormPost: invalid starting boundary")
        except (FormInvalid, FileTooLarge) as exc:
            return _plain(400, f"FormPost: {exc}")
        except FormUnauthorized as exc:
            return error(401, f"FormPost: {str(exc).title()}",
                         {"Content-Type": "text/html; charset=UTF-8",
                          "WWW-Authenticate": 'Swift realm="unknown"'})

    async def _keys(self, req: Request) -> list[str]:
        """The Temp-URL keys that may sign a form for this path (a container, or a
        prefix in one); none for any other path."""
        parts = req.path.split("/", 4)
        if (len(parts) < 4 or parts[0] or parts[1] not in ("v1", "v1.0")
                or not parts[2] or not parts[3]):
            return []
        return [k for k, _ in await temp_url_keys(self.st, parts[2], parts[3])]

    async def _translate(self, req: Request, boundary: bytes) -> Response:
        keys = await self._keys(req)
        form = _Form()
        async with aclosing(iter_parts(req.stream(), boundary)) as parts:
            async for part in parts:
                if not await self._part(req, part, keys, form):
                    break
        if not form.status:
            form.status, form.message = 400, "no files to process"
        return _answer(form, form.attributes.get("redirect"))

    async def _part(self, req: Request, part: Part, keys: list[str], form: _Form) -> bool:
        """Take in one part of the form: a field, or a file to store; whether to go on."""
        hdrs = await part.headers()
        disp, attrs = parse_disposition(hdrs.get("content-disposition", ""))
        if not (disp == "form-data" and attrs.get("filename")):
            value = await _field(part)
            if "name" in attrs:
                form.attributes[attrs["name"].lower()] = value
            return True
        form.count += 1
        attributes = form.attributes
        if form.count > _int(attributes, "max_file_count", "max_file_count not an integer"):
            form.status, form.message = 400, "max file count exceeded"
            return False
        fields = dict(attributes, filename=attrs["filename"] or "filename")
        if "content-type" not in attributes and "content-type" in hdrs:
            fields["content-type"] = hdrs["content-type"] or "application/octet-stream"
        if "content-encoding" not in attributes and "content-encoding" in hdrs:
            fields["content-encoding"] = hdrs["content-encoding"]
        form.sub, form.sub_body = await self._upload(req, fields, part, keys)
        form.status = form.sub.status
        return form.sub.ok

    def _check(self, req: Request, fields: Mapping[str, str], keys: list[str]) -> None:
        """Refuse a form whose limits, expiry or signature do not hold (in Swift's order).

        Raises:
            FormInvalid, FormUnauthorized: what is wrong.
        """
        if not keys:
            raise FormUnauthorized("invalid signature")
        _int(fields, "max_file_size", "max_file_size not an integer")
        for name, message in _DELETE_FIELDS.items():
            if name in fields:
                try:
                    int(fields[name])
                except ValueError:
                    raise FormInvalid(message) from None
        if _int(fields, "expires", "expired not an integer") < time.time():
            raise FormUnauthorized("form expired")
        try:
            algo, signature = extract_digest(fields.get("signature", ""))
        except ValueError:
            raise FormUnauthorized("invalid signature") from None
        if algo not in self.allowed_digests:
            raise FormUnauthorized("invalid signature")
        rest = [fields.get("redirect") or "", fields.get("max_file_size") or "0",
                fields.get("max_file_count") or "0", fields.get("expires") or "0"]
        for path in signed_paths(req, req.path):
            message = "\n".join([path, *rest]).encode()
            for key in keys:
                mac = hmac.new(key.encode(), message, algo).hexdigest()
                if hmac.compare_digest(mac.encode(), signature.encode()):
                    return
        raise FormUnauthorized("invalid signature")

    async def _upload(self, req: Request, fields: Mapping[str, str], part: Part,
                      keys: list[str]) -> tuple[Response, bytes]:
        """PUT one file of the form; its response and body (read: it is small)."""
        self._check(req, fields, keys)
        limit = _int(fields, "max_file_size", "")
        headers = Headers({"Transfer-Encoding": "chunked"})
        for name in _KEPT_HEADERS:
            if name in req.headers:
                headers[name] = req.headers[name]
        if "x_delete_at" in fields:
            headers["X-Delete-At"] = str(int(fields["x_delete_at"]))
        if "x_delete_after" in fields:
            headers["X-Delete-After"] = str(int(fields["x_delete_after"]))
        if "content-type" in fields:
            headers["Content-Type"] = fields["content-type"] or "application/octet-stream"
        if "content-encoding" in fields:
            headers["Content-Encoding"] = fields["content-encoding"]
        path = req.path
        if not path.endswith("/") and path.count("/") < 4:
            path += "/"
        body = _Capped(part, limit)
        sub = req.sub("PUT", path + fields["filename"], headers=headers, body=body.stream(),
                      source="FP", environ=_PRE_AUTHED)
        try:
            resp = await self.app(sub)
        except HTTPError as exc:
            resp = exc.response
        data = await resp.read()
        if body.exceeded:
            raise FileTooLarge("max_file_size exceeded")
        if resp.ok:
            await part.drain()
        return resp, data


async def _allow(req: Request) -> Response | None:
    return None


# the PUTs of a form are authorized by its signature, not by who sends it
_PRE_AUTHED: dict[str, Any] = {
    "swift.authorize": _allow,
    "swift.authorize_override": True,
    "REMOTE_USER": ".wsgi.pre_authed",
}


class _Capped:
    """A file's bytes, refused past ``limit`` (``max_file_size``)."""

    def __init__(self, part: Part, limit: int) -> None:
        self.part = part
        self.limit = limit
        self.size = 0
        self.exceeded = False

    async def stream(self) -> AsyncIterator[bytes]:
        while chunk := await self.part.read():
            self.size += len(chunk)
            if self.size > self.limit:
                self.exceeded = True
                raise FileTooLarge("max_file_size exceeded")
            yield chunk


async def _field(part: Part) -> str:
    """A field's value: its first ``MAX_VALUE_LENGTH`` bytes (the rest is read and
    dropped), without trailing CR, LF or dashes as Swift strips them."""
    data = bytearray()
    while len(data) < MAX_VALUE_LENGTH:
        chunk = await part.read(MAX_VALUE_LENGTH - len(data))
        if not chunk:
            break
        data += chunk
    await part.drain()
    return data.decode("utf-8", "replace").rstrip("\r\n-")


@dataclass
class _Form:
    """What the parts of a form have told so far."""

    attributes: dict[str, str] = field(default_factory=dict)
    count: int = 0
    status: int = 0
    message: str = ""
    sub: Response | None = None
    sub_body: bytes = b""


def _plain(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
    body = text.encode()
    h = Headers(headers or [])
    h["Content-Type"] = "text/plain"
    h["Content-Length"] = str(len(body))
    return Response(status, h, body)


def _answer(form: _Form, redirect: str | None) -> Response:
    """The reply to the form: a redirect when it asked for one, else the status."""
    status, message, sub_body = form.status, form.message, form.sub_body
    cors = [(k, v) for k, v in (form.sub.headers.items() if form.sub else [])
            if k.lower().startswith("access-control")]
    if not redirect:
        text = _status(status)
        if message:
            text += "\r\nFormPost: " + message.title()
        resp = _plain(status, text, cors)
        if not 200 <= status < 300 and sub_body:
            resp.body = sub_body
            resp.headers["Content-Length"] = str(len(sub_body))
        return resp
    location = redirect + ("&" if "?" in redirect else "?")
    location += f"status={quote(str(status))}&message={quote(message)}"
    body = (f'<html><body><p><a href="{location}">Click to continue...</a></p>'
            "</body></html>").encode()
    h = Headers(cors)
    h["Location"] = location
    h["Content-Length"] = str(len(body))
    return Response(303, h, body)


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    st.register("formpost", allowed_digests=sorted(ALLOWED_DIGESTS),
                deprecated_digests=sorted(DEPRECATED_DIGESTS))
    return FormPost(app, st)
