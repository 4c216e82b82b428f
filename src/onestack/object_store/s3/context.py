"""One S3 request on its way through: who signed it, which bucket and key, and
the Swift requests it turns into.

``S3Context.swift`` sends a sub-request through the whole Swift chain (auth,
large objects, versioning ...) as the signer, at ``/v1/AUTH_<project>/...``;
``S3Context.call`` does the same and turns a Swift failure into the S3 error
Swift's s3api answers for it (``NoSuchBucket`` for a container 404, ``BadDigest``
for a 422 ...).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from xml.etree.ElementTree import Element, SubElement

from onestack.object_store.http import Body, Headers, Request, Response
from onestack.object_store.s3.errors import S3Error, invalid_argument, invalid_request
from onestack.object_store.s3.payload import Payload
from onestack.object_store.s3.s3token import Identity
from onestack.object_store.s3.signing import Signed
from onestack.object_store.s3.xmlutil import render
from onestack.object_store.state import ObjectStoreState

SOURCE = "S3"
SEGMENTS_SUFFIX = "+segments"
SYSMETA_ETAG = "X-Object-Sysmeta-S3api-Etag"
SYSMETA_UPLOAD_ID = "X-Object-Sysmeta-S3api-Upload-Id"
OVERRIDE_ETAG = "X-Object-Sysmeta-Container-Update-Override-Etag"
DELETE_MARKER_TYPE = "application/x-deleted;swift_versions_deleted=1"
MAX_32BIT = 2**31 - 1


@dataclass(frozen=True)
class S3Conf:
    """The S3 layer's settings (Swift's ``[filter:s3api]`` names)."""

    location: str
    allowable_clock_skew: float = 900.0
    max_bucket_listing: int = 1000
    max_parts_listing: int = 1000
    max_upload_part_num: int = 1000
    max_multi_delete_objects: int = 1000
    min_segment_size: int = 5 * 1024 * 1024
    secret_cache_duration: float = 60.0
    reseller_prefix: str = "AUTH_"
    max_object_name_length: int = 1024

    @classmethod
    def from_state(cls, st: ObjectStoreState) -> S3Conf:
        conf = st.settings.object_store
        return cls(
            location=conf.s3_location or st.settings.region,
            allowable_clock_skew=conf.s3_allowable_clock_skew,
            min_segment_size=conf.s3_min_segment_size,
            secret_cache_duration=conf.s3_secret_cache_duration,
            max_upload_part_num=int(conf.max_manifest_segments),
            reseller_prefix=conf.reseller_prefix,
            max_object_name_length=conf.max_object_name_length,
        )

    @property
    def regions(self) -> list[str]:
        """Regions a signature may name: ours, and the one SDKs default to."""
        return [self.location, "us-east-1"]


@dataclass
class S3Context:
    st: ObjectStoreState
    conf: S3Conf
    req: Request
    request_id: str
    bucket: str | None
    key: str | None
    signed: Signed | None = None
    identity: Identity | None = None
    payload: Payload | None = None

    # -- who and where --------------------------------------------------------------

    @property
    def account(self) -> str:
        if self.identity is None or self.identity.auth.project_id is None:
            raise S3Error("AccessDenied")
        return self.conf.reseller_prefix + self.identity.auth.project_id

    @property
    def owner(self) -> str:
        """The owner's ID and display name, as Swift's s3api names a Keystone user."""
        if self.identity is None:
            return ""
        auth = self.identity.auth
        return f"{auth.project_name or auth.project_id}:{auth.user_name or auth.user_id}"

    @property
    def resource(self) -> str:
        if self.bucket is None:
            return "/"
        return f"/{self.bucket}" + (f"/{self.key}" if self.key is not None else "")

    def param(self, name: str) -> str | None:
        return self.req.query.get(name)

    def has(self, name: str) -> bool:
        return name in self.req.query

    def path(self, bucket: str | None = None, key: str | None = None) -> str:
        out = f"/v1/{self.account}"
        if bucket is not None:
            out += f"/{bucket}"
            if key is not None:
                out += f"/{key}"
        return out

    # -- Swift sub-requests -----------------------------------------------------------

    async def swift(self, method: str, bucket: str | None = None, key: str | None = None, *,
                    query: Mapping[str, str] | None = None,
                    headers: Mapping[str, str] | Headers | None = None,
                    body: Body | None = None) -> Response:
        """The Swift chain's answer to ``method`` on the bucket/key, as the signer."""
        env: dict[str, Any] = {"swift.trans_id": self.request_id}
        if self.identity is not None:
            env["keystone.identity"] = self.identity.auth
        sub = self.req.sub(method, self.path(bucket, key), headers=headers, query=query,
                           body=body, source=SOURCE, environ=env)
        # the Swift API is mounted one level above S3 (``/object-store`` vs ``/object-store/s3``)
        sub.script_name = self.req.script_name.rsplit("/", 1)[0]
        assert self.st.app is not None
        return await self.st.app(sub)

    async def call(self, method: str, bucket: str | None = None, key: str | None = None, *,
                   query: Mapping[str, str] | None = None,
                   headers: Mapping[str, str] | Headers | None = None,
                   body: Body | None = None) -> Response:
        """``swift`` whose failures are raised as S3 errors; the response is open
        (the caller reads or closes it)."""
        resp = await self.swift(method, bucket, key, query=query, headers=headers, body=body)
        if resp.ok or (resp.status == 304 and method in ("GET", "HEAD")):
            return resp
        text = (await resp.read(64 * 1024)).decode("utf-8", "replace")
        if self.payload is not None and self.payload.error is not None:
            raise self.payload.error
        raise await self.translate(resp.status, text, method, bucket, key)

    async def translate(self, status: int, text: str, method: str, bucket: str | None,
                         key: str | None) -> S3Error:
        if status == 404 and bucket is not None:
            if key is None or method == "PUT":
                return S3Error("NoSuchBucket", BucketName=bucket)
            if method == "DELETE" or bucket.endswith(SEGMENTS_SUFFIX):
                return S3Error("NoSuchKey", Key=key)
            head = await self.swift("HEAD", bucket)
            await head.close()
            if head.ok:
                return S3Error("NoSuchKey", Key=key)
            return S3Error("NoSuchBucket", BucketName=bucket)
        simple = _SIMPLE.get(status)
        if simple is not None:
            return S3Error(simple)
        if status == 409 and key is None and method == "DELETE":
            return S3Error("BucketNotEmpty", BucketName=bucket)
        if status == 413:
            return S3Error("EntityTooLarge", text if "quota" in text.lower() else None)
        if status == 422:
            return S3Error("BadDigest", ExpectedDigest=self.req.headers.get("content-md5"))
        if status == 400:
            return invalid_request(text.strip() or "Invalid Request")
        if status in (408, 499):
            return S3Error("IncompleteBody", "Your socket connection to the server was not "
                                             "read from or written to within the timeout "
                                             "period.")
        return S3Error("InternalError", f"unexpected status code {status}")

    async def upload_body(self) -> tuple[Body, int | None]:
        """The checked body to send to Swift and its length (``None``: unknown, send
        chunked). An empty body is checked here: Swift never reads one."""
        assert self.payload is not None
        if self.payload.length == 0:
            return await self.payload.read(0), 0
        return self.payload, self.payload.length

    async def require_bucket(self) -> Response:
        """The bucket's HEAD, or ``NoSuchBucket``."""
        assert self.bucket is not None
        resp = await self.call("HEAD", self.bucket)
        await resp.close()
        return resp

    # -- parameters ---------------------------------------------------------------------

    def int_param(self, name: str, default: int, limit: int = MAX_32BIT) -> int:
        value = self.param(name)
        if value is None:
            return default
        try:
            n = int(value)
        except ValueError:
            raise invalid_argument(name, value, f"Provided {name} not an integer or within "
                                                f"integer range") from None
        if n < 0 or n > MAX_32BIT:
            raise invalid_argument(name, value, f"Argument {name} must be an integer between "
                                                f"0 and {MAX_32BIT}")
        return min(n, limit)

    def encoding_type(self) -> str | None:
        value = self.param("encoding-type")
        if value is not None and value != "url":
            raise invalid_argument("encoding-type", value,
                                   "Invalid Encoding Method specified in Request")
        return value


_SIMPLE = {
    401: "AccessDenied",
    403: "AccessDenied",
    411: "MissingContentLength",
    412: "PreconditionFailed",
    416: "InvalidRange",
    429: "SlowDown",
    498: "SlowDown",
    503: "ServiceUnavailable",
    507: "ServiceUnavailable",
}


# -- Swift -> S3 headers -------------------------------------------------------------------

_KEPT = frozenset((
    "accept-ranges", "content-length", "content-type", "content-range", "content-encoding",
    "content-disposition", "content-language", "last-modified", "x-robots-tag",
    "cache-control", "expires",
))


def s3_headers(swift: Headers) -> Headers:
    """The headers S3 shows for a Swift object response (Swift's s3api choice)."""
    out = Headers()
    for name, value in swift.items():
        lower = name.lower()
        if lower.startswith("x-object-meta-"):
            out["x-amz-meta-" + lower[len("x-object-meta-"):]] = value
        elif lower in _KEPT:
            out[name] = value
        elif lower == "x-object-version-id":
            out["x-amz-version-id"] = value
        elif lower == "x-parts-count":
            out["x-amz-mp-parts-count"] = value
        elif lower == "x-copied-from-version-id":
            out["x-amz-copy-source-version-id"] = value
        elif lower == "x-backend-content-type" and value == DELETE_MARKER_TYPE:
            out["x-amz-delete-marker"] = "true"
        elif lower == "x-delete-at":
            with contextlib.suppress(ValueError):
                out["x-amz-expiration"] = (f'expiry-date="{_http_date(int(value))}", '
                                           f'rule-id="swift-object-expiration"')
    etag = s3_etag(swift)
    if etag is not None:
        out["ETag"] = etag
    return out


def s3_etag(swift: Headers) -> str | None:
    """The quoted S3 ETag of a Swift object: a multipart upload's own (kept in
    sysmeta), else Swift's, with ``-N`` for other large objects."""
    override = swift.get(SYSMETA_ETAG)
    if override:
        return f'"{override}"'
    etag = swift.get("etag")
    if etag is None:
        return None
    etag = etag.strip('"')
    if (swift.get("x-static-large-object") or "").lower() == "true":
        etag += "-N"
    return f'"{etag}"'


def _http_date(seconds: int) -> str:
    return formatdate(seconds, usegmt=True)


def xml_time(last_modified: str) -> str:
    """A listing's ``last_modified`` (ISO, UTC) or an HTTP date as S3's XML time; as
    Swift's s3api, rounded up to the second like ``Last-Modified``."""
    try:
        when = datetime.fromisoformat(last_modified.rstrip("Z"))
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    except ValueError:
        try:
            when = parsedate_to_datetime(last_modified)
        except (TypeError, ValueError):
            when = datetime.now(UTC)
    seconds = math.ceil(when.timestamp())
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def listing_etag(item: Mapping[str, Any]) -> str:
    """The quoted S3 ETag of a container listing entry (``hash`` may carry
    ``; s3_etag=`` and ``; slo_etag=`` parameters, as Swift's listings do)."""
    if item.get("s3_etag"):
        return _quoted(str(item["s3_etag"]))
    value, params = parse_params(str(item.get("hash", "")))
    if "s3_etag" in params:
        return _quoted(params["s3_etag"])
    slo = item.get("slo_etag") or params.get("slo_etag")
    if slo:
        return _quoted(str(slo).strip('"') + "-N")
    return _quoted(value)


def _quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


def parse_params(value: str) -> tuple[str, dict[str, str]]:
    """``"v; a=1; b=2"`` -> ``("v", {"a": "1", "b": "2"})``."""
    head, *rest = value.split(";")
    params = {}
    for part in rest:
        k, _, v = part.strip().partition("=")
        if k:
            params[k.strip()] = v.strip()
    return head.strip(), params


def meta_to_swift(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``x-amz-meta-*`` request headers as Swift's ``X-Object-Meta-*``."""
    out = {}
    for name, value in headers:
        lower = name.lower()
        if lower.startswith("x-amz-meta-") and len(lower) > len("x-amz-meta-"):
            out["X-Object-Meta-" + name[len("x-amz-meta-"):]] = value
    return out


def md5_hex(value: str) -> str:
    """A Content-MD5 (base64) as hex; ``InvalidDigest`` unless it is 16 bytes."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidDigest", ContentMD5=value) from None
    if len(raw) != 16:
        raise S3Error("InvalidDigest", ContentMD5=value)
    return raw.hex()


# -- shared answers -----------------------------------------------------------------------


def xml_response(root: Element, status: int = 200, headers: Mapping[str, str] | None = None
                 ) -> Response:
    body = render(root)
    h = Headers({"Content-Type": "application/xml", **(headers or {})})
    h["Content-Length"] = str(len(body))
    return Response(status, h, body)


def empty_response(status: int = 200, headers: Mapping[str, str] | Headers | None = None
                   ) -> Response:
    h = Headers(headers) if not isinstance(headers, Headers) else headers
    h["Content-Length"] = "0"
    return Response(status, h, b"")


def owner_element(parent: Element, name: str, ctx: S3Context) -> Element:
    elem = SubElement(parent, name)
    SubElement(elem, "ID").text = ctx.owner
    SubElement(elem, "DisplayName").text = ctx.owner
    return elem


_IP = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def valid_bucket_name(name: str) -> bool:
    """S3's DNS-compatible bucket names (Swift's ``dns_compliant_bucket_names``)."""
    return (bool(_NAME.match(name)) and ".." not in name and ".-" not in name
            and "-." not in name and not _IP.match(name))
