"""The S3 API, as Swift's s3api middleware serves it, over the Swift chain.

A request below the S3 endpoint (path-style: ``/``, ``/bucket``, ``/bucket/key``)
is authenticated (``signing`` rebuilds the string to sign, ``s3token`` asks the
identity service who signed it), its body is wrapped in a checking ``Payload``,
and the operation it names (method, bucket or key, sub-resource in the query)
turns into Swift requests through ``st.app`` as the signer: the keystoneauth
layer takes the identity as given, and everything else (ACLs, large objects,
versioning, quotas) applies as to any Swift request. Failures answer in S3's XML.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import quote

from onestack.object_store.api.common import new_trans_id
from onestack.object_store.asgi import ClientDisconnect
from onestack.object_store.http import Handler, Request, Response
from onestack.object_store.s3 import acl, bucket, multi_delete, multipart, obj, service, versioning
from onestack.object_store.s3.context import S3Conf, S3Context, md5_hex, valid_bucket_name
from onestack.object_store.s3.errors import S3Error, invalid_argument, not_implemented
from onestack.object_store.s3.payload import (
    BodyRejected,
    Checksum,
    ChunkSigner,
    Payload,
    checksum_of,
)
from onestack.object_store.s3.s3token import S3TokenAuth
from onestack.object_store.s3.signing import (
    STREAMING,
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    RawRequest,
    parse,
)
from onestack.object_store.state import ObjectStoreState

log = logging.getLogger("onestack.object_store.s3")

Operation = Callable[[S3Context], Awaitable[Response]]

# sub-resources S3 has and this service does not
UNSUPPORTED = frozenset((
    "accelerate", "analytics", "cors", "encryption", "intelligent-tiering", "inventory",
    "lifecycle", "logging", "metrics", "notification", "object-lock", "ownershipControls",
    "policy", "policyStatus", "publicAccessBlock", "replication", "requestPayment", "restore",
    "select", "tagging", "torrent", "website", "legal-hold", "retention", "attributes",
))


def handler(st: ObjectStoreState) -> Handler:
    """The S3 API's handler (requests whose path is below the S3 endpoint)."""
    conf = S3Conf.from_state(st)
    tokens = S3TokenAuth(st, ttl=conf.secret_cache_duration)
    st.register("s3api", max_bucket_listing=conf.max_bucket_listing,
                max_parts_listing=conf.max_parts_listing,
                max_upload_part_num=conf.max_upload_part_num,
                max_multi_delete_objects=conf.max_multi_delete_objects,
                allow_multipart_uploads=True, min_segment_size=conf.min_segment_size,
                s3_acl=False)

    async def s3(req: Request) -> Response:
        request_id = new_trans_id()
        bucket_name, key = split(req.path)
        ctx = S3Context(st, conf, req, request_id, bucket_name, key)
        try:
            await authenticate(ctx, tokens)
            resp = await route(ctx)(ctx)
        except S3Error as err:
            resp = err.response(request_id, ctx.resource, head=req.method == "HEAD")
        except BodyRejected as exc:
            resp = exc.error.response(request_id, ctx.resource, head=req.method == "HEAD")
        except ClientDisconnect:
            raise
        except Exception:
            log.exception("S3 %s %s failed (%s)", req.method, req.path, request_id)
            resp = S3Error("InternalError").response(request_id, ctx.resource,
                                                     head=req.method == "HEAD")
        resp.headers["x-amz-request-id"] = request_id
        resp.headers["x-amz-id-2"] = request_id
        resp.headers["X-Trans-Id"] = request_id
        resp.headers["X-Openstack-Request-Id"] = request_id
        return resp

    return s3


# -- the target -----------------------------------------------------------------------


def split(path: str) -> tuple[str | None, str | None]:
    """``/bucket/key`` -> ``("bucket", "key")``; the key keeps its slashes."""
    rest = path.removeprefix("/")
    if not rest:
        return None, None
    name, sep, key = rest.partition("/")
    return name, (key if sep and key else None)


# -- authentication and the body --------------------------------------------------------


def raw_request(req: Request) -> RawRequest:
    scope = req.environ.get("onestack.scope") or {}
    raw_path = scope.get("raw_path")
    if raw_path is None:
        raw_path = quote(req.script_name + req.path).encode()
    raw_path = raw_path.split(b"?", 1)[0]
    query = scope.get("query_string", b"")
    headers = [(k.decode("latin-1").lower(), v.decode("latin-1"))
               for k, v in scope.get("headers", [])]
    if not headers:
        headers = [(k.lower(), v) for k, v in req.headers.items()]
    return RawRequest(req.method, raw_path, query, headers, req.script_name.encode())


async def authenticate(ctx: S3Context, tokens: S3TokenAuth) -> None:
    """Who signed the request (S3 here has no anonymous access: without a
    signature there is no account to address) and its checked body."""
    if ctx.bucket is not None and not valid_bucket_name(ctx.bucket):
        raise S3Error("InvalidBucketName", BucketName=ctx.bucket)
    raw = raw_request(ctx.req)
    signed = parse(raw, regions=ctx.conf.regions, now=datetime.now(UTC),
                   skew=ctx.conf.allowable_clock_skew)
    if signed is None:
        raise S3Error("AccessDenied", "Anonymous access is not supported; sign the request")
    ctx.signed = signed
    check_headers(ctx)
    ctx.identity = await tokens.authenticate(signed)
    if ctx.req.method in ("PUT", "POST"):
        ctx.payload = make_payload(ctx, raw)


def check_headers(ctx: S3Context) -> None:
    """Refuse what S3 refuses (or this service cannot do) before any work."""
    h = ctx.req.headers
    length = h.get("content-length")
    if length is not None and (not length.isdigit()):
        raise invalid_argument("Content-Length", length)
    if ctx.req.method == "PUT" and (
            any(n in h for n in ("if-match", "if-modified-since", "if-unmodified-since"))
            or h.get("if-none-match", "*") != "*"):
        raise not_implemented("Conditional object PUTs are not supported.")
    directive = h.get("x-amz-metadata-directive")
    if directive is not None and directive not in ("COPY", "REPLACE"):
        raise invalid_argument("x-amz-metadata-directive", directive,
                               "Unknown metadata directive.")
    storage = h.get("x-amz-storage-class")
    if storage is not None and storage != "STANDARD":
        raise S3Error("InvalidStorageClass", StorageClassRequested=storage)
    if "x-amz-mfa" in h:
        raise not_implemented("MFA Delete is not supported.")
    if "x-amz-server-side-encryption" in h or "x-amz-server-side-encryption-customer-algorithm" in h:
        raise not_implemented("Server-side encryption is not supported.")
    if "x-amz-website-redirect-location" in h:
        raise not_implemented("Website redirection is not supported.")
    if "x-amz-tagging" in h:
        raise not_implemented("Object tagging is not supported.")
    md5 = h.get("content-md5")
    if md5 is not None:
        md5_hex(md5.strip())


def make_payload(ctx: S3Context, raw: RawRequest) -> Payload:
    """The checked body of a PUT or POST."""
    signed, h = ctx.signed, ctx.req.headers
    assert signed is not None and ctx.identity is not None
    sha = signed.payload_hash if signed.version == 4 else h.get("x-amz-content-sha256")
    checksum = checksum_of({k: v for k, v in raw.headers}, h.get("x-amz-trailer"))
    if ctx.req.method == "POST" and not ctx.has("delete"):
        checksum = None  # as S3: CompleteMultipartUpload's body is not checksummed
    if sha in STREAMING:
        return _streaming(ctx, sha, checksum)
    if h.get("x-amz-trailer"):
        raise S3Error("MalformedTrailerError")
    length = ctx.req.content_length
    digest = sha if sha and sha != "UNSIGNED-PAYLOAD" else None
    return Payload(ctx.req.stream(), length=length, sha256=digest, checksum=checksum)


def _streaming(ctx: S3Context, sha: str, checksum: Checksum | None) -> Payload:
    signed, h = ctx.signed, ctx.req.headers
    assert signed is not None and ctx.identity is not None
    if sha.startswith("STREAMING-AWS4-ECDSA"):
        raise not_implemented(f"Don't know how to validate {sha} streams")
    if signed.version != 4 or signed.presigned:
        raise S3Error("XAmzContentSHA256Mismatch", ClientComputedContentSHA256=sha)
    decoded = h.get("x-amz-decoded-content-length")
    if decoded is None or not decoded.isdigit():
        raise S3Error("MissingContentLength")
    signer = None
    if sha in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER):
        if ctx.identity.secret is None:
            raise not_implemented("Transferring payloads in multiple chunks using aws-chunked "
                                  "is not supported.")
        signer = ChunkSigner(signed, signed.signing_key(ctx.identity.secret))
    if sha == STREAMING_UNSIGNED_TRAILER and signer is None and not h.get("x-amz-trailer"):
        raise S3Error("MalformedTrailerError")
    return Payload(ctx.req.stream(), length=int(decoded), chunked=True, signer=signer,
                   checksum=checksum, trailer_signed=sha == STREAMING_SIGNED_TRAILER)


# -- which operation ----------------------------------------------------------------------


def route(ctx: S3Context) -> Operation:
    """The operation a request names (Swift's s3api controller choice)."""
    method, q = ctx.req.method, ctx.req.query
    unsupported = UNSUPPORTED & set(q)
    if unsupported:
        raise not_implemented(f"The {min(unsupported)} sub-resource is not implemented.")
    if ctx.bucket is None:
        return _pick(service.OPERATIONS, method, "SERVICE")
    if "acl" in q:
        return _pick(acl.OPERATIONS, method, "ACL")
    if "delete" in q:
        return _pick(multi_delete.OPERATIONS, method, "MULTI_OBJECT_DELETE")
    if "location" in q:
        return _pick(bucket.LOCATION, method, "LOCATION")
    if "versioning" in q:
        return _pick(versioning.OPERATIONS, method, "VERSIONING")
    if "partNumber" in q and method == "PUT":
        return _pick(multipart.PART, method, "PART")
    if "uploadId" in q:
        return _pick(multipart.UPLOAD, method, "UPLOAD")
    if "uploads" in q:
        return _pick(multipart.UPLOADS, method, "UPLOADS")
    if ctx.key is not None:
        return _pick(obj.OPERATIONS, method, "OBJECT")
    return _pick(bucket.OPERATIONS, method, "BUCKET")


def _pick(table: dict[str, Operation], method: str, resource: str) -> Operation:
    op = table.get(method)
    if op is None:
        raise S3Error("MethodNotAllowed", Method=method, ResourceType=resource)
    return op
