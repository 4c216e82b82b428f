"""AWS request signatures: what a request claims (access key, signature) and the
string it should have signed, for signature version 4 (``Authorization:
AWS4-HMAC-SHA256`` header or ``X-Amz-Credential`` presigned query) and version 2
(``Authorization: AWS`` header or ``AWSAccessKeyId`` presigned query).

The identity service checks the signature of the string to sign (it has the
secret); this module only builds that string, exactly as the client built it,
from the request as it arrived: the raw path, the raw query, every header value
as sent. It also refuses what must be refused before the signature matters:
malformed credentials, a wrong region, a date too far from now, an expired
presigned URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote, unquote_to_bytes

from onestack.object_store.s3.errors import S3Error, invalid_argument, invalid_request

V4_ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
SERVICE = "s3"

# query parameters that are part of the v2 canonical resource (AWS's list and the
# extras botocore signs)
V2_SUB_RESOURCES = frozenset((
    "accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete", "inventory",
    "lifecycle", "location", "logging", "metrics", "notification", "object-lock", "partNumber",
    "policy", "publicAccessBlock", "replication", "requestPayment", "restore", "select",
    "select-type", "storageClass", "tagging", "torrent", "uploadId", "uploads", "versionId",
    "versioning", "versions", "website",
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires",
))

# x-amz-* headers a v4 request may not carry unsigned (they change what is stored)
MUST_BE_SIGNED = ("x-amz-acl", "x-amz-copy", "x-amz-grant", "x-amz-meta")

STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING = frozenset((
    STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER,
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
))
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class RawRequest:
    """The parts of a request a signature covers, as they came off the wire."""

    method: str
    raw_path: bytes
    raw_query: bytes
    headers: Sequence[tuple[str, str]]  # every header, lower-case names, in order
    mount: bytes = b""  # where the S3 endpoint is mounted (``/object-store/s3``)

    def header(self, name: str) -> str | None:
        """All values of ``name`` joined with commas (as signers see them), or ``None``."""
        values = [v for k, v in self.headers if k == name]
        return ",".join(values) if values else None

    def query_pairs(self) -> list[tuple[str, str]]:
        """The decoded query parameters, repeated ones included, in order."""
        out = []
        for part in self.raw_query.decode("latin-1").split("&"):
            if not part:
                continue
            key, _, value = part.partition("=")
            # latin-1 both ways keeps the bytes exactly as sent, UTF-8 or not
            out.append((unquote(key, "latin-1"), unquote(value, "latin-1")))
        return out

    def param(self, name: str) -> str | None:
        found = None
        for key, value in self.query_pairs():
            if key == name:
                found = value
        return found


@dataclass(frozen=True)
class Signed:
    """What a signed request claims, and what it should have signed."""

    version: int
    access_key: str
    signature: str
    string_to_sign: bytes
    timestamp: datetime
    presigned: bool
    amz_date: str = ""
    scope: str = ""  # v4: date/region/s3/aws4_request
    canonical_request: bytes = b""
    payload_hash: str = ""  # v4: the x-amz-content-sha256 that was signed
    # v2: other strings a client may have signed (see ``_v2_resources``)
    alternatives: tuple[bytes, ...] = ()

    def candidates(self) -> list[bytes]:
        return [self.string_to_sign, *self.alternatives]

    def signing_key(self, secret: str) -> bytes:
        """The key that signs this request (v4: derived for its scope)."""
        if self.version == 2:
            return secret.encode()
        key = ("AWS4" + secret).encode()
        for part in self.scope.split("/"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return key

    def expected(self, secret: str) -> str:
        """The signature this request should carry, given the ``secret``."""
        return sign(self.version, self.signing_key(secret), self.string_to_sign)

    def matches(self, secret: str) -> bool:
        key = self.signing_key(secret)
        return any(hmac.compare_digest(sign(self.version, key, s).encode(),
                                       self.signature.encode()) for s in self.candidates())

    def mismatch(self) -> S3Error:
        """``SignatureDoesNotMatch`` with what AWS shows to help debug signing."""
        extra: dict[str, object] = {
            "AWSAccessKeyId": self.access_key,
            "StringToSign": self.string_to_sign.decode("utf-8", "replace"),
            "SignatureProvided": self.signature,
            "StringToSignBytes": " ".join(f"{b:02x}" for b in self.string_to_sign),
        }
        if self.version == 4:
            extra["CanonicalRequest"] = self.canonical_request.decode("utf-8", "replace")
            extra["CanonicalRequestBytes"] = " ".join(f"{b:02x}" for b in self.canonical_request)
        return S3Error("SignatureDoesNotMatch", **extra)


def sign(version: int, key: bytes, string_to_sign: bytes) -> str:
    """A signature: v4 hex HMAC-SHA256 with the derived key, v2 base64 HMAC-SHA1."""
    if version == 2:
        return base64.b64encode(hmac.new(key, string_to_sign, hashlib.sha1).digest()).decode()
    return hmac.new(key, string_to_sign, hashlib.sha256).hexdigest()


def is_v4(raw: RawRequest) -> bool:
    auth = raw.header("authorization") or ""
    return auth.startswith(V4_ALGORITHM + " ") or raw.param("X-Amz-Credential") is not None


def parse(raw: RawRequest, *, regions: Iterable[str], now: datetime, skew: float
          ) -> Signed | None:
    """What ``raw`` claims and should have signed; ``None`` for an anonymous request.

    Raises:
        S3Error: malformed authentication, a wrong region, a date off by more
            than ``skew`` seconds, an expired or not yet valid presigned URL.
    """
    auth = raw.header("authorization")
    if auth is not None and auth.startswith(V4_ALGORITHM + " "):
        return _v4(raw, _v4_header_params(auth), presigned=False, regions=regions, now=now,
                   skew=skew)
    if raw.param("X-Amz-Credential") is not None:
        return _v4(raw, _v4_query_params(raw), presigned=True, regions=regions, now=now,
                   skew=skew)
    if auth is not None:
        return _v2_header(raw, auth, now=now, skew=skew)
    if raw.param("AWSAccessKeyId") is not None:
        return _v2_query(raw, now=now)
    if raw.param("X-Amz-Algorithm") is not None or raw.param("Signature") is not None:
        raise S3Error("AccessDenied", "Query-string authentication requires the Signature, "
                                      "Expires and AWSAccessKeyId parameters")
    return None


# -- dates ---------------------------------------------------------------------------


def _amz_date(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise S3Error("AccessDenied", "AWS authentication requires a valid Date or "
                                      "x-amz-date header") from None


def _http_date(value: str) -> datetime:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None:
        raise S3Error("AccessDenied", "AWS authentication requires a valid Date or "
                                      "x-amz-date header")
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _check_skew(when: datetime, now: datetime, skew: float) -> None:
    if abs((when - now).total_seconds()) > skew:
        raise S3Error("RequestTimeTooSkewed",
                      RequestTime=when.strftime("%Y%m%dT%H%M%SZ"),
                      ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                      MaxAllowedSkewMilliseconds=int(skew * 1000))


# -- version 4 -----------------------------------------------------------------------


def _v4_header_params(auth: str) -> dict[str, str]:
    params = {}
    for part in auth[len(V4_ALGORITHM):].split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            params[key] = value
    for key in ("Credential", "SignedHeaders", "Signature"):
        if not params.get(key):
            raise S3Error("AuthorizationHeaderMalformed",
                          f"The authorization header is malformed; missing {key}.")
    return params


def _v4_query_params(raw: RawRequest) -> dict[str, str]:
    algorithm = raw.param("X-Amz-Algorithm")
    if algorithm != V4_ALGORITHM:
        raise invalid_argument("X-Amz-Algorithm", algorithm,
                               "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
    params = {}
    for key in ("Credential", "SignedHeaders", "Signature", "Date", "Expires"):
        value = raw.param("X-Amz-" + key)
        if not value:
            raise S3Error("AuthorizationQueryParametersError",
                          f"Query-string authentication version 4 requires the "
                          f"X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, "
                          f"X-Amz-SignedHeaders, and X-Amz-Expires parameters; "
                          f"X-Amz-{key} is missing.")
        params[key] = value
    return params


def _v4(raw: RawRequest, params: dict[str, str], *, presigned: bool, regions: Iterable[str],
        now: datetime, skew: float) -> Signed:
    malformed = "AuthorizationQueryParametersError" if presigned else "AuthorizationHeaderMalformed"
    cred = params["Credential"].split("/")
    if len(cred) != 5 or not cred[0]:
        raise S3Error(malformed, "The credential is malformed; expecting "
                                 "\"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
    access, date, region, service, terminal = cred
    allowed = list(regions)
    if region not in allowed and region.lower() not in (r.lower() for r in allowed):
        raise S3Error(malformed, f"The authorization header is malformed; the region "
                                 f"'{region}' is wrong; expecting '{allowed[0]}'",
                      Region=allowed[0])
    if service != SERVICE:
        raise S3Error(malformed, f"The credential is malformed; incorrect service "
                                 f"\"{service}\". This endpoint belongs to \"{SERVICE}\".")
    if terminal != "aws4_request":
        raise S3Error(malformed, f"The credential is malformed; incorrect terminal "
                                 f"\"{terminal}\". This endpoint uses \"aws4_request\".")
    if presigned:
        amz_date = params["Date"]
        when = _amz_date(amz_date)
        _check_expires(when, params["Expires"], now, skew)
    else:
        amz_date = raw.header("x-amz-date") or ""
        when = _amz_date(amz_date) if amz_date else _http_date(raw.header("date") or "")
        if not amz_date:
            amz_date = when.strftime("%Y%m%dT%H%M%SZ")
        _check_skew(when, now, skew)
    if amz_date[:8] != date:
        raise S3Error(malformed, f"Invalid credential date \"{date}\". This date is not the "
                                 f"same as X-Amz-Date: \"{amz_date[:8]}\".")
    payload = _payload_hash(raw, presigned)
    signed_headers = params["SignedHeaders"].split(";")
    canonical = _canonical_request(raw, signed_headers, payload)
    scope = f"{date}/{region}/{service}/{terminal}"
    to_sign = "\n".join((V4_ALGORITHM, amz_date, scope,
                         hashlib.sha256(canonical).hexdigest())).encode()
    return Signed(4, access, params["Signature"], to_sign, when, presigned, amz_date, scope,
                  canonical, payload)


def _check_expires(when: datetime, expires: str, now: datetime, skew: float) -> None:
    try:
        seconds = int(expires)
    except ValueError:
        raise S3Error("AuthorizationQueryParametersError",
                      "X-Amz-Expires should be a number") from None
    if seconds < 0:
        raise S3Error("AuthorizationQueryParametersError",
                      "X-Amz-Expires must be non-negative")
    if seconds > MAX_PRESIGN_EXPIRES:
        raise S3Error("AuthorizationQueryParametersError",
                      "X-Amz-Expires must be less than a week (in seconds); that is, the "
                      "given X-Amz-Expires must be less than 604800 seconds")
    if (when - now).total_seconds() > skew:
        raise S3Error("AccessDenied", "Request is not valid yet")
    if (now - when).total_seconds() > seconds:
        raise S3Error("AccessDenied", "Request has expired",
                      XAmzExpires=seconds, Expires=_iso(when.timestamp() + seconds),
                      ServerTime=_iso(now.timestamp()))


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _payload_hash(raw: RawRequest, presigned: bool) -> str:
    value = raw.header("x-amz-content-sha256")
    if value is None:
        if presigned:
            return UNSIGNED_PAYLOAD
        raise invalid_request("Missing required header for this request: x-amz-content-sha256")
    if value == UNSIGNED_PAYLOAD or value in STREAMING or _HEX64.fullmatch(value):
        return value
    raise invalid_argument("x-amz-content-sha256", value,
                           "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                           "STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
                           "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
                           "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.")


def canonical_uri(raw_path: bytes) -> str:
    """S3 signs its path URI-encoded once (no normalisation, slashes kept)."""
    return quote(unquote_to_bytes(raw_path), safe="-_.~/")


def canonical_query(raw: RawRequest) -> str:
    pairs = sorted(
        (quote(k, safe="-_.~", encoding="latin-1"), quote(v, safe="-_.~", encoding="latin-1"))
        for k, v in raw.query_pairs() if k != "X-Amz-Signature"
    )
    return "&".join(f"{k}={v}" for k, v in pairs)


def _canonical_request(raw: RawRequest, signed: list[str], payload: str) -> bytes:
    present = {k for k, _ in raw.headers}
    for name in present:
        if name.startswith(MUST_BE_SIGNED) and name not in signed:
            raise S3Error("AccessDenied", "There were headers present in the request which "
                                          "were not signed", HeadersNotSigned=name)
    lines = []
    for name in signed:
        values = [" ".join(v.strip().split()) for k, v in raw.headers if k == name]
        if not values:
            # the client signed a header that did not arrive: its signature cannot match
            lines.append(f"{name}:")
            continue
        lines.append(f"{name}:{','.join(values)}")
    return "\n".join((
        raw.method, canonical_uri(raw.raw_path), canonical_query(raw),
        "".join(line + "\n" for line in lines), ";".join(signed), payload,
    )).encode("latin-1")


# -- version 2 -----------------------------------------------------------------------


def _v2_header(raw: RawRequest, auth: str, *, now: datetime, skew: float) -> Signed:
    if not auth.startswith("AWS ") or ":" not in auth:
        raise S3Error("AccessDenied", "The Authorization header is not an AWS signature")
    access, _, signature = auth[4:].rpartition(":")
    amz_date = raw.header("x-amz-date")
    date = amz_date or raw.header("date")
    if not date:
        raise S3Error("AccessDenied", "AWS authentication requires a valid Date or "
                                      "x-amz-date header")
    when = _http_date(date)
    _check_skew(when, now, skew)
    date_line = "" if amz_date is not None else date
    first, *rest = [_v2_string(raw, date_line, r) for r in _v2_resources(raw)]
    return Signed(2, access.strip(), signature.strip(), first, when, False,
                  alternatives=tuple(rest))


def _v2_query(raw: RawRequest, *, now: datetime) -> Signed:
    access, signature, expires = (raw.param(k) for k in ("AWSAccessKeyId", "Signature",
                                                         "Expires"))
    if not (access and signature and expires):
        raise S3Error("AccessDenied", "Query-string authentication requires the Signature, "
                                      "Expires and AWSAccessKeyId parameters")
    try:
        until = float(expires)
    except ValueError:
        raise S3Error("AccessDenied", f"Invalid date (should be seconds since epoch): "
                                      f"{expires}") from None
    if now.timestamp() > until:
        raise S3Error("AccessDenied", "Request has expired", Expires=_iso(until),
                      ServerTime=_iso(now.timestamp()))
    when = datetime.fromtimestamp(until, UTC)
    first, *rest = [_v2_string(raw, expires, r) for r in _v2_resources(raw)]
    return Signed(2, access, signature, first, when, True, alternatives=tuple(rest))


def _v2_resources(raw: RawRequest) -> list[str]:
    """The canonical resources a v2 signer may have used, most likely first.

    AWS defines it as ``/bucket/key`` (``/bucket/`` for the bucket itself),
    which is what botocore signs whatever the endpoint's path; other clients
    sign the path they send, mount point included. Both are accepted.
    """
    path = raw.raw_path.decode("latin-1")
    mount = raw.mount.decode("latin-1")
    rel = path[len(mount):] if mount and path.startswith(mount) else path
    rel = rel or "/"
    bucket, _, key = rel[1:].partition("/")
    canonical = f"/{bucket}/{key}" if bucket else "/"
    out = [canonical]
    for alt in (rel, path):
        if alt not in out:
            out.append(alt)
    return out


def _v2_string(raw: RawRequest, date_line: str, resource: str) -> bytes:
    amz: dict[str, list[str]] = {}
    for name, value in raw.headers:
        if name.startswith("x-amz-"):
            amz.setdefault(name, []).append(value.strip())
    lines = [raw.method, (raw.header("content-md5") or "").strip(),
             (raw.header("content-type") or "").strip(), date_line]
    lines += [f"{k}:{','.join(v)}" for k, v in sorted(amz.items())]
    lines.append(resource + _v2_subresources(raw))
    return "\n".join(lines).encode("latin-1")


def _v2_subresources(raw: RawRequest) -> str:
    subs = []
    for part in raw.raw_query.decode("latin-1").split("&"):
        key, sep, value = part.partition("=")
        if key in V2_SUB_RESOURCES:
            subs.append((key, f"{key}={unquote(value, 'latin-1')}" if sep else key))
    subs.sort(key=lambda kv: kv[0])
    return "?" + "&".join(s for _, s in subs) if subs else ""
