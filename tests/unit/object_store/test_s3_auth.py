"""S3 signatures: the string to sign our S3 layer rebuilds from a request must be
the one the client signed. Requests are signed by botocore's own signers (and
by the AWS documentation's published examples), then taken apart as the server
sees them off the wire."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

from onestack.object_store.s3 import signing
from onestack.object_store.s3.errors import S3Error
from onestack.object_store.s3.payload import (
    BodyRejected,
    Checksum,
    ChunkSigner,
    Payload,
    checksum_of,
)

ACCESS, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDS = Credentials(ACCESS, SECRET)
ENDPOINT = "http://cloud.test:8780/object-store/s3"
REGION = "RegionOne"


def raw_of(req: AWSRequest, mount: bytes = b"") -> signing.RawRequest:
    """The request as the server receives it: raw path and query, headers as sent."""
    prepared = req.prepare()
    url = urlsplit(prepared.url)
    headers = [(k.lower(), v.decode() if isinstance(v, bytes) else v)
               for k, v in prepared.headers.items()]
    if not any(k == "host" for k, _ in headers):
        headers.append(("host", url.netloc))
    return signing.RawRequest(prepared.method, url.path.encode(), url.query.encode(), headers,
                              mount)


def parse(raw: signing.RawRequest, now: datetime | None = None) -> signing.Signed:
    signed = signing.parse(raw, regions=[REGION, "us-east-1"], now=now or datetime.now(UTC),
                           skew=900)
    assert signed is not None
    return signed


def signed_by_header(req: AWSRequest) -> str:
    auth = req.headers["Authorization"]
    return auth.rsplit("Signature=", 1)[-1] if auth.startswith("AWS4") else auth.rsplit(":", 1)[1]


def v4_request(method: str, path: str, *, query: str = "", body: bytes = b"",
               headers: dict[str, str] | None = None) -> AWSRequest:
    req = AWSRequest(method, ENDPOINT + path + (f"?{query}" if query else ""), data=body,
                     headers=dict(headers or {}))
    req.context["payload_signing_enabled"] = True
    S3SigV4Auth(CREDS, "s3", REGION).add_auth(req)
    return req


@pytest.mark.parametrize("path,query", [
    ("/", ""),
    ("/bucket", "list-type=2&prefix=a%2Fb&delimiter=%2F&max-keys=3"),
    ("/bucket/dir/a%20key%2Bwith%21odd%28chars%29", ""),
    ("/bucket/caf%C3%A9/%E2%9C%93", "uploadId=abc%3D%3D&partNumber=2"),
    ("/bucket", "acl"),
    ("/bucket/key", "response-content-type=text%2Fplain%3B%20charset%3Dutf-8&versionId=v1"),
])
def test_v4_header_matches_botocore(path: str, query: str) -> None:
    req = v4_request("GET", path, query=query)
    signed = parse(raw_of(req))
    assert (signed.version, signed.access_key, signed.presigned) == (4, ACCESS, False)
    assert signed.signature == signed_by_header(req)
    assert signed.expected(SECRET) == signed.signature
    assert signed.matches(SECRET) and not signed.matches(SECRET + "x")


def test_v4_put_with_payload_hash_and_meta() -> None:
    body = b"hello world"
    req = v4_request("PUT", "/bucket/obj", body=body, headers={
        "Content-Type": "text/plain", "x-amz-meta-Colour": "  deep   blue ",
        "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
    })
    signed = parse(raw_of(req))
    assert signed.payload_hash == hashlib.sha256(body).hexdigest()
    assert signed.matches(SECRET)


def test_v4_a_changed_request_no_longer_matches() -> None:
    raw = raw_of(v4_request("GET", "/bucket/key"))
    tampered = signing.RawRequest("DELETE", raw.raw_path, raw.raw_query, raw.headers)
    assert not parse(tampered).matches(SECRET)
    moved = signing.RawRequest("GET", b"/object-store/s3/bucket/other", raw.raw_query,
                               raw.headers)
    assert not parse(moved).matches(SECRET)


def test_v4_unsigned_meta_header_is_refused() -> None:
    raw = raw_of(v4_request("PUT", "/bucket/key"))
    extra = signing.RawRequest(raw.method, raw.raw_path, raw.raw_query,
                               [*raw.headers, ("x-amz-meta-evil", "1")])
    with pytest.raises(S3Error) as err:
        parse(extra)
    assert err.value.code == "AccessDenied"


def test_v4_requires_content_sha256() -> None:
    raw = raw_of(v4_request("GET", "/bucket"))
    stripped = signing.RawRequest(raw.method, raw.raw_path, raw.raw_query,
                                  [h for h in raw.headers if h[0] != "x-amz-content-sha256"])
    with pytest.raises(S3Error) as err:
        parse(stripped)
    assert err.value.code == "InvalidRequest"


def test_v4_clock_skew() -> None:
    raw = raw_of(v4_request("GET", "/bucket"))
    with pytest.raises(S3Error) as err:
        parse(raw, now=datetime.now(UTC) + timedelta(minutes=20))
    assert (err.value.code, err.value.status) == ("RequestTimeTooSkewed", 403)
    parse(raw, now=datetime.now(UTC) + timedelta(minutes=10))


def test_v4_wrong_region_names_the_right_one() -> None:
    req = AWSRequest("GET", ENDPOINT + "/bucket")
    S3SigV4Auth(CREDS, "s3", "eu-west-3").add_auth(req)
    with pytest.raises(S3Error) as err:
        parse(raw_of(req))
    assert err.value.code == "AuthorizationHeaderMalformed"
    assert err.value.fields["Region"] == REGION


def test_v4_malformed_authorization() -> None:
    raw = signing.RawRequest("GET", b"/object-store/s3/", b"", [
        ("host", "cloud.test"), ("authorization", "AWS4-HMAC-SHA256 Credential=AK/2020"),
        ("x-amz-date", datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")),
        ("x-amz-content-sha256", signing.EMPTY_SHA256)])
    with pytest.raises(S3Error) as err:
        parse(raw)
    assert (err.value.code, err.value.status) == ("AuthorizationHeaderMalformed", 400)


def presigned_v4(path: str, expires: int = 60, query: str = "") -> AWSRequest:
    req = AWSRequest("GET", ENDPOINT + path + (f"?{query}" if query else ""))
    S3SigV4QueryAuth(CREDS, "s3", REGION, expires=expires).add_auth(req)
    return req


def test_v4_presigned_matches_botocore() -> None:
    req = presigned_v4("/bucket/some%20key", query="response-content-disposition=attachment")
    raw = raw_of(req)
    signed = parse(raw)
    assert signed.presigned and signed.payload_hash == signing.UNSIGNED_PAYLOAD
    assert signed.signature == raw.param("X-Amz-Signature")
    assert signed.matches(SECRET)


def test_v4_presigned_expiry() -> None:
    raw = raw_of(presigned_v4("/bucket/key", expires=60))
    parse(raw, now=datetime.now(UTC) + timedelta(seconds=30))
    with pytest.raises(S3Error) as err:
        parse(raw, now=datetime.now(UTC) + timedelta(seconds=120))
    assert (err.value.code, err.value.status, err.value.message) == (
        "AccessDenied", 403, "Request has expired")


def test_v4_presigned_too_long() -> None:
    raw = raw_of(presigned_v4("/bucket/key", expires=8 * 24 * 3600))
    with pytest.raises(S3Error) as err:
        parse(raw)
    assert err.value.code == "AuthorizationQueryParametersError"


@pytest.mark.parametrize("path,query,headers", [
    ("/bucket/key", "", {"Content-Type": "text/plain", "x-amz-meta-a": "1",
                         "x-amz-acl": "public-read"}),
    ("/bucket", "acl", {}),
    ("/bucket/k%20y", "uploadId=X%3D&partNumber=3", {"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}),
    ("/bucket/key", "response-content-type=text%2Fhtml&versionId=3", {}),
    ("/", "", {}),
])
def test_v2_header_matches_botocore(path: str, query: str, headers: dict[str, str]) -> None:
    req = AWSRequest("PUT", ENDPOINT + path + (f"?{query}" if query else ""), headers=headers)
    HmacV1Auth(CREDS).add_auth(req)
    signed = parse(raw_of(req))
    assert (signed.version, signed.access_key) == (2, ACCESS)
    assert signed.signature == signed_by_header(req)
    assert signed.matches(SECRET)


@pytest.mark.parametrize("path,auth_path", [
    ("/bucket", "/bucket/"), ("/bucket/k%20y", "/bucket/k%20y"), ("/", None),
    ("/bucket", None), ("/bucket/a/b", None),
])
def test_v2_canonical_resource_below_a_mount(path: str, auth_path: str | None) -> None:
    """A boto3 client signs ``/bucket/`` or ``/bucket/key`` (its ``auth_path``),
    whatever the endpoint's path; other clients sign the path they send."""
    req = AWSRequest("GET", ENDPOINT + path + "?acl")
    req.auth_path = auth_path
    HmacV1Auth(CREDS).add_auth(req)
    assert parse(raw_of(req, b"/object-store/s3")).matches(SECRET)
    other = AWSRequest("GET", ENDPOINT + "/elsewhere?acl")
    other.auth_path = "/elsewhere/"
    HmacV1Auth(CREDS).add_auth(other)
    moved = raw_of(other, b"/object-store/s3")
    raw = raw_of(req, b"/object-store/s3")
    forged = signing.RawRequest(raw.method, raw.raw_path, raw.raw_query, moved.headers, raw.mount)
    assert not parse(forged).matches(SECRET)


def test_v2_presigned_matches_botocore_and_expires() -> None:
    req = AWSRequest("GET", ENDPOINT + "/bucket/the%20key")
    HmacV1QueryAuth(CREDS, expires=60).add_auth(req)
    raw = raw_of(req)
    signed = parse(raw)
    assert signed.presigned and signed.matches(SECRET)
    with pytest.raises(S3Error) as err:
        parse(raw, now=datetime.now(UTC) + timedelta(seconds=120))
    assert err.value.message == "Request has expired"


def test_v2_date_skew() -> None:
    req = AWSRequest("GET", ENDPOINT + "/bucket")
    HmacV1Auth(CREDS).add_auth(req)
    with pytest.raises(S3Error) as err:
        parse(raw_of(req), now=datetime.now(UTC) - timedelta(hours=1))
    assert err.value.code == "RequestTimeTooSkewed"


def test_anonymous() -> None:
    raw = signing.RawRequest("GET", b"/object-store/s3/bucket", b"", [("host", "x")])
    assert signing.parse(raw, regions=[REGION], now=datetime.now(UTC), skew=900) is None


def test_mismatch_error_shows_string_to_sign() -> None:
    signed = parse(raw_of(v4_request("GET", "/bucket")))
    err = signed.mismatch()
    assert (err.code, err.status) == ("SignatureDoesNotMatch", 403)
    assert err.fields["StringToSign"] == signed.string_to_sign.decode()
    body = err.response("tx1", "/bucket").body
    assert b"<Code>SignatureDoesNotMatch</Code>" in body and b"<RequestId>tx1</RequestId>" in body


# -- the AWS documentation's chunked upload example ----------------------------------

DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_DATE = datetime(2013, 5, 24, tzinfo=UTC)
DOC_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
DOC_CHUNKS = ("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
              "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
              "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9")


def doc_request() -> signing.RawRequest:
    auth = (f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
            f"aws4_request,SignedHeaders=content-encoding;content-length;host;"
            f"x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"
            f"Signature={DOC_SEED}")
    return signing.RawRequest("PUT", b"/examplebucket/chunkObject.txt", b"", [
        ("host", "s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("authorization", auth),
        ("x-amz-content-sha256", signing.STREAMING_SIGNED), ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"), ("content-length", "66824"),
    ])


def doc_body(signatures: tuple[str, str, str] = DOC_CHUNKS) -> bytes:
    data = b"a" * 66560
    return (f"10000;chunk-signature={signatures[0]}\r\n".encode() + data[:65536] + b"\r\n"
            + f"400;chunk-signature={signatures[1]}\r\n".encode() + data[65536:] + b"\r\n"
            + f"0;chunk-signature={signatures[2]}\r\n\r\n".encode())


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def drain(payload: Payload) -> bytes:
    return b"".join([piece async for piece in payload])


def doc_payload(body: bytes, piece: int = 4096) -> Payload:
    signed = signing.parse(doc_request(), regions=["us-east-1"], now=DOC_DATE, skew=900)
    assert signed is not None
    assert signed.signature == DOC_SEED and signed.matches(DOC_SECRET)
    return Payload(pieces(body, piece), length=66560, chunked=True,
                   signer=ChunkSigner(signed, signed.signing_key(DOC_SECRET)))


@pytest.mark.parametrize("piece", [1, 7, 4096, 70000])
def test_doc_chunked_upload_decodes(piece: int) -> None:
    assert asyncio.run(drain(doc_payload(doc_body(), piece))) == b"a" * 66560


def test_doc_chunked_upload_bad_chunk_signature_withholds_the_end() -> None:
    bad = (DOC_CHUNKS[0], "0" * 64, DOC_CHUNKS[2])
    payload = doc_payload(doc_body(bad))
    got = []

    async def run() -> None:
        async for piece in payload:
            got.append(piece)

    with pytest.raises(BodyRejected):
        asyncio.run(run())
    assert payload.error is not None and payload.error.code == "SignatureDoesNotMatch"
    assert sum(map(len, got)) < 66560


def test_doc_trailer_signature() -> None:
    # the AWS example with a signed trailer (x-amz-checksum-crc32c)
    signed = signing.Signed(4, "AKIAIOSFODNN7EXAMPLE", "", b"", DOC_DATE, False,
                            "20130524T000000Z", "20130524/us-east-1/s3/aws4_request")
    signer = ChunkSigner(signed, signed.signing_key(DOC_SECRET))
    prev = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
    for size, want in ((65536, "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2"),
                       (1024, "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7"),
                       (0, "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992")):
        prev = signer.sign_chunk(prev, hashlib.sha256(b"a" * size).hexdigest())
        assert prev == want
    assert signer.sign_trailer(prev, [("x-amz-checksum-crc32c", "sOO8/Q==")]) == \
        "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"


# -- unsigned trailers (botocore's aws-chunked) and plain bodies ----------------------


def botocore_chunked(data: bytes) -> bytes:
    return AwsChunkedWrapper(io.BytesIO(data), checksum_cls=Crc32Checksum,
                             checksum_name="x-amz-checksum-crc32", chunk_size=10000).read()


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_unsigned_trailer_checksum() -> None:
    data = bytes(range(256)) * 200
    body = botocore_chunked(data)
    ok = Payload(pieces(body, 3000), length=len(data), chunked=True,
                 checksum=Checksum("x-amz-checksum-crc32", None))
    assert asyncio.run(drain(ok)) == data
    corrupt = body.replace(b"x-amz-checksum-crc32:", b"x-amz-checksum-crc32:AAAA")
    bad = Payload(pieces(corrupt, 3000), length=len(data), chunked=True,
                  checksum=Checksum("x-amz-checksum-crc32", None))
    with pytest.raises(BodyRejected):
        asyncio.run(drain(bad))
    assert bad.error is not None and bad.error.code in ("BadDigest", "InvalidRequest")


def test_sha256_mismatch_holds_back_the_last_piece() -> None:
    data = b"x" * 10000
    got: list[bytes] = []
    payload = Payload(pieces(data, 1000), length=len(data),
                      sha256=hashlib.sha256(b"other").hexdigest())

    async def run() -> None:
        async for piece in payload:
            got.append(piece)

    with pytest.raises(BodyRejected):
        asyncio.run(run())
    assert payload.error is not None and payload.error.code == "XAmzContentSHA256Mismatch"
    assert sum(map(len, got)) == 9000
    good = Payload(pieces(data, 1000), length=len(data), sha256=hashlib.sha256(data).hexdigest(),
                   checksum=Checksum("x-amz-checksum-crc32", crc32_b64(data)))
    assert asyncio.run(drain(good)) == data


def test_short_body_is_incomplete() -> None:
    payload = Payload(pieces(b"abc", 1), length=5)
    with pytest.raises(BodyRejected):
        asyncio.run(drain(payload))
    assert payload.error is not None and payload.error.code == "IncompleteBody"


def test_checksum_headers() -> None:
    assert checksum_of({}, None) is None
    c = checksum_of({"x-amz-checksum-crc32": crc32_b64(b"a"),
                     "x-amz-sdk-checksum-algorithm": "CRC32"}, None)
    assert c is not None and c.name == "x-amz-checksum-crc32"
    t = checksum_of({}, "x-amz-checksum-sha256")
    assert t is not None and t.expected is None
    for headers, trailer, code in (
        ({"x-amz-checksum-crc32": "!!"}, None, "InvalidRequest"),
        ({"x-amz-checksum-md4": "AAAA"}, None, "InvalidRequest"),
        ({"x-amz-checksum-crc32c": "AAAAAA=="}, None, "NotImplemented"),
        ({"x-amz-checksum-crc32": crc32_b64(b"a")}, "x-amz-checksum-sha1", "InvalidRequest"),
        ({"x-amz-sdk-checksum-algorithm": "SHA1"}, None, "InvalidRequest"),
    ):
        with pytest.raises(S3Error) as err:
            checksum_of(headers, trailer)
        assert err.value.code == code
