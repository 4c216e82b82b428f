"""The request body, checked as it streams into Swift.

S3 clients vouch for a body in several ways: ``x-amz-content-sha256`` (the hex
SHA-256 of the body, signed with the request), ``x-amz-checksum-*`` (in a
header, or in a trailer after an ``aws-chunked`` body) and, for
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``, a signature per chunk chained from the
request's own. ``Payload`` decodes ``aws-chunked`` and checks all of those
while the bytes pass through, without holding the body.

Nothing of a body that fails a check may be stored. Swift stores an object
only once it has read the whole body, so the last piece is held back until the
checks over everything before it pass; on a failure the stream raises
``BodyRejected`` instead of handing it over. The chain treats that like a
client that went away (the write is abandoned), and the S3 layer answers the
recorded error (``Payload.error``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from onestack.object_store.asgi import ClientDisconnect
from onestack.object_store.s3.errors import S3Error, invalid_request, not_implemented
from onestack.object_store.s3.signing import EMPTY_SHA256, Signed

MIN_CHUNK = 8192
_MAX_LINE = 4096


class BodyRejected(ClientDisconnect):
    """The body failed a check: the write must be abandoned."""

    def __init__(self, error: S3Error) -> None:
        super().__init__(error.code)
        self.error = error


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


_CHECKSUMS = {
    "x-amz-checksum-crc32": _Crc32,
    "x-amz-checksum-sha1": hashlib.sha1,
    "x-amz-checksum-sha256": hashlib.sha256,
}
_KNOWN_CHECKSUMS = {*_CHECKSUMS, "x-amz-checksum-crc32c", "x-amz-checksum-crc64nvme"}
_DIGEST_SIZES = {"x-amz-checksum-crc32": 4, "x-amz-checksum-sha1": 20,
                 "x-amz-checksum-sha256": 32}


@dataclass
class Checksum:
    """An ``x-amz-checksum-*`` to verify: ``expected`` is ``None`` until a
    trailer gives it."""

    name: str
    expected: str | None

    @property
    def algorithm(self) -> str:
        return self.name.removeprefix("x-amz-checksum-").upper()

    def hasher(self) -> Hasher:
        return _CHECKSUMS[self.name]()

    def valid(self, value: str) -> bool:
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            return False
        return len(raw) == _DIGEST_SIZES[self.name]


def checksum_of(headers: dict[str, str], trailer: str | None) -> Checksum | None:
    """The checksum a request declares (header or ``x-amz-trailer``), if any.

    Raises:
        S3Error: more than one, an unknown algorithm, a malformed value, one we
            cannot compute (``NotImplemented``), or an ``x-amz-sdk-checksum-algorithm``
            that names another.
    """
    given = {k: v for k, v in headers.items()
             if k.startswith("x-amz-checksum-") and k not in ("x-amz-checksum-algorithm",
                                                               "x-amz-checksum-type",
                                                               "x-amz-checksum-mode")}
    trailers = [t.strip().lower() for t in (trailer or "").split(",") if t.strip()]
    if any(k not in _KNOWN_CHECKSUMS for k in given):
        raise invalid_request("The algorithm type you specified in x-amz-checksum- header is "
                              "invalid.")
    if any(t not in _KNOWN_CHECKSUMS for t in trailers):
        raise invalid_request("The value specified in the x-amz-trailer header is not supported")
    if len(given) + len(trailers) > 1:
        raise invalid_request("Expecting a single x-amz-checksum- header")
    checksum = None
    if given:
        name, value = next(iter(given.items()))
        checksum = Checksum(name, value)
    elif trailers:
        checksum = Checksum(trailers[0], None)
    algo = headers.get("x-amz-sdk-checksum-algorithm")
    if algo and (checksum is None or algo.upper() != checksum.algorithm):
        raise invalid_request("Value for x-amz-sdk-checksum-algorithm header is invalid.")
    if checksum is None:
        return None
    if checksum.name not in _CHECKSUMS:
        raise not_implemented(f"The {checksum.name} algorithm is not supported.")
    if checksum.expected is not None and not checksum.valid(checksum.expected):
        raise invalid_request(f"Value for {checksum.name} header is invalid.")
    return checksum


@dataclass(frozen=True)
class ChunkSigner:
    """Checks the chained signatures of ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``."""

    signed: Signed
    key: bytes

    def sign_chunk(self, previous: str, chunk_sha256: str) -> str:
        text = (f"AWS4-HMAC-SHA256-PAYLOAD\n{self.signed.amz_date}\n{self.signed.scope}\n"
                f"{previous}\n{EMPTY_SHA256}\n{chunk_sha256}")
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def sign_trailer(self, previous: str, trailers: list[tuple[str, str]]) -> str:
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted(trailers)) or "\n"
        text = "\n".join(("AWS4-HMAC-SHA256-TRAILER", self.signed.amz_date, self.signed.scope,
                          previous, hashlib.sha256(canonical.encode()).hexdigest()))
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()


class Payload:
    """A request body as Swift should receive it: decoded and checked.

    ``length`` is the (decoded) size the client announced; ``sha256`` a hex
    digest to match; ``chunked`` says the body is ``aws-chunked``, whose chunks
    ``signer`` checks when they are signed and whose trailers may carry
    ``checksum``'s value (and, signed, ``trailer_signed``).
    """

    def __init__(self, source: AsyncIterable[bytes], *, length: int | None,
                 sha256: str | None = None, checksum: Checksum | None = None,
                 chunked: bool = False, signer: ChunkSigner | None = None,
                 trailer_signed: bool = False) -> None:
        self.source = source
        self.length = length
        self.sha256 = sha256.lower() if sha256 else None
        self.checksum = checksum
        self.chunked = chunked
        self.signer = signer
        self.trailer_signed = trailer_signed
        self.error: S3Error | None = None
        self.received = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._checked()

    async def read(self, limit: int) -> bytes:
        """The whole (small) body, for XML documents: more than ``limit`` bytes is
        ``MalformedXML``, a failed check its own error."""
        parts = []
        size = 0
        try:
            async for piece in self:
                size += len(piece)
                if size > limit:
                    raise S3Error("MalformedXML")
                parts.append(piece)
        except BodyRejected as exc:
            raise exc.error from None
        return b"".join(parts)

    def _fail(self, error: S3Error) -> BodyRejected:
        self.error = error
        return BodyRejected(error)

    async def _checked(self) -> AsyncIterator[bytes]:
        sha = hashlib.sha256() if self.sha256 else None
        summer = self.checksum.hasher() if self.checksum else None
        pieces = self._dechunk() if self.chunked else aiter(self.source)
        pending = b""
        try:
            async for piece in pieces:
                if not piece:
                    continue
                self.received += len(piece)
                if self.length is not None and self.received > self.length:
                    raise S3Error("IncompleteBody", "The request body is longer than its "
                                                    "announced length")
                if sha is not None:
                    sha.update(piece)
                if summer is not None:
                    summer.update(piece)
                if pending:
                    yield pending
                pending = piece
        except S3Error as exc:
            raise self._fail(exc) from None
        if self.length is not None and self.received != self.length:
            raise self._fail(S3Error("IncompleteBody", NumberBytesExpected=self.length,
                                     NumberBytesProvided=self.received))
        if sha is not None and sha.hexdigest() != self.sha256:
            raise self._fail(S3Error("XAmzContentSHA256Mismatch",
                                     ClientComputedContentSHA256=self.sha256,
                                     S3ComputedContentSHA256=sha.hexdigest()))
        if summer is not None and self.checksum is not None:
            self._check_sum(summer)
        if pending:
            yield pending

    def _check_sum(self, summer: Hasher) -> None:
        assert self.checksum is not None
        expected = self.checksum.expected
        if expected is None or not self.checksum.valid(expected):
            raise self._fail(invalid_request(
                f"Value for {self.checksum.name} trailing header is invalid."))
        if base64.b64decode(expected) != summer.digest():
            raise self._fail(S3Error(
                "BadDigest", f"The {self.checksum.algorithm} you specified did not match the "
                             f"calculated checksum."))

    # -- aws-chunked -------------------------------------------------------------------

    async def _dechunk(self) -> AsyncIterator[bytes]:
        reader = _Reader(aiter(self.source))
        previous = self.signer.signed.signature if self.signer else ""
        last_size: int | None = None
        while True:
            header = await reader.line()
            if header is None:
                raise S3Error("IncompleteBody", "The request body terminated unexpectedly")
            size, signature = self._chunk_header(header)
            if last_size is not None and last_size < MIN_CHUNK and size:
                raise S3Error("InvalidChunkSizeError", BadChunkSize=last_size)
            last_size = size
            digest = hashlib.sha256() if self.signer else None
            remaining = size
            while remaining:
                data = await reader.take(remaining)
                if not data:
                    raise S3Error("IncompleteBody", "The request body terminated unexpectedly")
                remaining -= len(data)
                if digest is not None:
                    digest.update(data)
                yield data
            if self.signer is not None and digest is not None:
                expected = self.signer.sign_chunk(previous, digest.hexdigest())
                if not hmac.compare_digest(expected, signature or ""):
                    raise self.signer.signed.mismatch()
                previous = expected
            if size == 0:
                break
            if await reader.exact(2) != b"\r\n":
                raise S3Error("IncompleteBody", "A chunk does not end with CRLF")
        await self._trailers(reader, previous)

    def _chunk_header(self, line: bytes) -> tuple[int, str | None]:
        size_hex, _, params = line.partition(b";")
        try:
            size = int(size_hex.strip(), 16)
        except ValueError:
            raise S3Error("IncompleteBody", "Invalid chunk header") from None
        if size < 0:
            raise S3Error("IncompleteBody", "Invalid chunk header")
        signature = None
        if self.signer is not None:
            name, _, value = params.decode("latin-1").partition("=")
            if name.strip() != "chunk-signature" or not value.strip():
                raise self.signer.signed.mismatch()
            signature = value.strip()
        return size, signature

    async def _trailers(self, reader: _Reader, previous: str) -> None:
        trailers: list[tuple[str, str]] = []
        signature = None
        while True:
            line = await reader.line()
            if line is None or line == b"":
                break
            name, sep, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if not sep:
                raise S3Error("MalformedTrailerError")
            if name == "x-amz-trailer-signature":
                signature = value.strip()
            elif self.checksum is not None and name == self.checksum.name:
                trailers.append((name, value.strip()))
            else:
                raise S3Error("MalformedTrailerError")
        if self.trailer_signed and self.signer is not None:
            expected = self.signer.sign_trailer(previous, trailers)
            if not hmac.compare_digest(expected, signature or ""):
                raise self.signer.signed.mismatch()
        if self.checksum is not None and self.checksum.expected is None:
            if not trailers:
                raise S3Error("MalformedTrailerError")
            self.checksum.expected = trailers[0][1]


class _Reader:
    """Lines and byte runs over an async byte stream."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self.source = source
        self.buf = b""
        self.eof = False

    async def _more(self) -> bool:
        if self.eof:
            return False
        try:
            self.buf += await anext(self.source)
        except StopAsyncIteration:
            self.eof = True
            return False
        return True

    async def line(self) -> bytes | None:
        """The next line without its CRLF; ``None`` at the end of the stream."""
        while b"\r\n" not in self.buf:
            if len(self.buf) > _MAX_LINE:
                raise S3Error("IncompleteBody", "A chunk header is too long")
            if not await self._more():
                if not self.buf:
                    return None
                line, self.buf = self.buf, b""
                return line
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    async def take(self, most: int) -> bytes:
        """Up to ``most`` bytes (at least one unless the stream ended)."""
        if not self.buf:
            await self._more()
        data, self.buf = self.buf[:most], self.buf[most:]
        return data

    async def exact(self, n: int) -> bytes:
        while len(self.buf) < n and await self._more():
            pass
        data, self.buf = self.buf[:n], self.buf[n:]
        return data
