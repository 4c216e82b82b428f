"""The S3 API with real boto3 clients against the in-process cloud.

boto3 runs in a worker thread; a ``before-send`` hook hands each request it
signed, unchanged, to the ASGI app on the test's event loop (through httpx) and
the answer back to botocore, so every byte botocore signs is what the server
sees. With an ``https`` endpoint botocore switches, as against AWS, to
``aws-chunked`` bodies with a CRC32 trailer (``STREAMING-UNSIGNED-PAYLOAD-TRAILER``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from onestack.object_store.s3.payload import ChunkSigner
from onestack.object_store.s3.signing import RawRequest, parse
from tests.api.object_store.conftest import Account, Swift

T = TypeVar("T")
S3_PATH = "/object-store/s3"
REGION = "RegionOne"
MIB = 1024 * 1024
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


class _Raw(io.BytesIO):
    """A response body as botocore reads it (``stream()`` and ``read()``)."""

    def stream(self, amt: int = 65536, decode_content: bool = False) -> Any:
        while chunk := self.read(amt):
            yield chunk


class _Signer(S3SigV4Auth):
    """botocore's S3 SigV4 signer, with the ``x-amz-content-sha256`` a test chooses."""

    def __init__(self, credentials: Credentials, payload_hash: str | None) -> None:
        super().__init__(credentials, "s3", REGION)
        self.payload_hash = payload_hash

    def payload(self, request: Any) -> str:
        return self.payload_hash or str(super().payload(request))


class S3:
    """boto3 clients of one account's EC2 credential, wired into the app."""

    def __init__(self, swift: Swift, account: Account, access: str, secret: str) -> None:
        self.swift, self.account, self.access, self.secret = swift, account, access, secret
        self.http = swift.cloud.client
        self.loop = asyncio.get_running_loop()

    def client(self, *, scheme: str = "http", secret: str | None = None,
               access: str | None = None, **config: Any) -> Any:
        endpoint = f"{scheme}://onestack.test{S3_PATH}"
        client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name=REGION,
            aws_access_key_id=access or self.access, aws_secret_access_key=secret or self.secret,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                          **config))
        client.meta.events.register("before-send.s3", self._send)
        return client

    def _send(self, request: Any, **_: Any) -> AWSResponse:
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        headers = {k: (v.decode() if isinstance(v, bytes) else v)
                   for k, v in request.headers.items()
                   if k.lower() not in ("expect", "transfer-encoding", "content-length")}
        fut = asyncio.run_coroutine_threadsafe(
            self.http.request(request.method, request.url, headers=headers,
                              content=body or b""), self.loop)
        resp = fut.result(timeout=120)
        return AWSResponse(request.url, resp.status_code, dict(resp.headers),
                           _Raw(resp.content))

    async def run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kw)

    async def error(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> tuple[str, int]:
        """The S3 error code and status of a call that must fail."""
        with pytest.raises(ClientError) as err:
            await self.run(fn, *args, **kw)
        r = err.value.response
        return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]

    async def signed(self, method: str, path: str, *, body: bytes = b"",
                     headers: dict[str, str] | None = None, payload_hash: str | None = None,
                     send_body: bytes | None = None) -> httpx.Response:
        """A request signed by botocore's SigV4 signer, sent as is (``send_body``
        replaces the body after signing)."""
        url = f"http://onestack.test{S3_PATH}{path}"
        h = dict(headers or {})
        req = AWSRequest(method, url, data=body, headers=h)
        req.context["payload_signing_enabled"] = True
        _Signer(Credentials(self.access, self.secret), payload_hash).add_auth(req)
        out = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in req.headers.items()}
        return await self.http.request(method, url, headers=out,
                                       content=body if send_body is None else send_body)


@pytest.fixture
async def s3(swift: Swift) -> S3:
    access, secret = await swift.ec2_credentials(swift.demo)
    return S3(swift, swift.demo, access, secret)


def bucket_name() -> str:
    return "b-" + uuid.uuid4().hex[:12]


async def new_bucket(s3: S3, client: Any) -> str:
    name = bucket_name()
    await s3.run(client.create_bucket, Bucket=name)
    return name


# -- buckets ---------------------------------------------------------------------------


async def test_bucket_lifecycle(s3: S3) -> None:
    c = s3.client()
    name = bucket_name()
    r = await s3.run(c.create_bucket, Bucket=name,
                     CreateBucketConfiguration={"LocationConstraint": REGION})
    assert r["Location"] == "/" + name
    assert await s3.error(c.create_bucket, Bucket=name) == ("BucketAlreadyOwnedByYou", 409)
    head = await s3.run(c.head_bucket, Bucket=name)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == REGION
    names = [b["Name"] for b in (await s3.run(c.list_buckets))["Buckets"]]
    assert name in names
    loc = await s3.run(c.get_bucket_location, Bucket=name)
    assert loc["LocationConstraint"] == REGION
    # the bucket is the project's Swift container
    r = await s3.account.req("HEAD", f"/{name}")
    assert r.status_code == 204
    await s3.run(c.put_object, Bucket=name, Key="k", Body=b"x")
    assert await s3.error(c.delete_bucket, Bucket=name) == ("BucketNotEmpty", 409)
    await s3.run(c.delete_object, Bucket=name, Key="k")
    await s3.run(c.delete_bucket, Bucket=name)
    assert await s3.error(c.head_bucket, Bucket=name) == ("404", 404)
    assert await s3.error(c.list_objects, Bucket=name) == ("NoSuchBucket", 404)
    assert await s3.error(c.delete_bucket, Bucket=name) == ("NoSuchBucket", 404)


async def test_bucket_name_and_location_checks(s3: S3) -> None:
    c = s3.client()
    r = await s3.signed("PUT", "/Bad_Name")
    assert r.status_code == 400 and b"<Code>InvalidBucketName</Code>" in r.content
    assert await s3.error(c.create_bucket, Bucket=bucket_name(), CreateBucketConfiguration={
        "LocationConstraint": "eu-west-3"}) == ("InvalidLocationConstraint", 400)


async def test_other_projects_do_not_see_buckets(s3: S3) -> None:
    c = s3.client()
    name = await new_bucket(s3, c)
    other = await s3.swift.project_user()
    access, secret = await s3.swift.ec2_credentials(other)
    c2 = S3(s3.swift, other, access, secret).client()
    assert name not in [b["Name"] for b in (await s3.run(c2.list_buckets))["Buckets"]]
    # the same name is a different bucket in the other project's account
    assert await s3.error(c2.head_bucket, Bucket=name) == ("404", 404)


# -- objects ---------------------------------------------------------------------------


async def test_object_roundtrip(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    data = b"hello, object storage" * 100
    md5 = hashlib.md5(data).hexdigest()
    put = await s3.run(c.put_object, Bucket=b, Key="dir/the key", Body=data,
                       ContentType="text/plain", Metadata={"colour": "blue", "under_score": "1"},
                       ContentMD5=base64.b64encode(bytes.fromhex(md5)).decode(),
                       ContentDisposition="attachment", CacheControl="no-cache")
    assert put["ETag"] == f'"{md5}"'
    got = await s3.run(c.get_object, Bucket=b, Key="dir/the key")
    assert got["Body"].read() == data
    assert got["ETag"] == f'"{md5}"' and got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"colour": "blue", "under_score": "1"}
    assert got["ContentDisposition"] == "attachment" and got["CacheControl"] == "no-cache"
    head = await s3.run(c.head_object, Bucket=b, Key="dir/the key")
    assert head["ContentLength"] == len(data) and head["Metadata"]["colour"] == "blue"
    # the same object through the Swift API
    r = await s3.account.req("GET", f"/{b}/dir/the key")
    assert r.content == data and r.headers["x-object-meta-colour"] == "blue"
    await s3.run(c.delete_object, Bucket=b, Key="dir/the key")
    assert await s3.error(c.get_object, Bucket=b, Key="dir/the key") == ("NoSuchKey", 404)
    assert await s3.error(c.head_object, Bucket=b, Key="dir/the key") == ("404", 404)
    # deleting what is not there is no error; a missing bucket is
    await s3.run(c.delete_object, Bucket=b, Key="never")
    assert await s3.error(c.get_object, Bucket=bucket_name(), Key="k") == ("NoSuchBucket", 404)


async def test_default_content_type(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    r = await s3.signed("PUT", f"/{b}/k.html", body=b"<p>",
                        payload_hash=hashlib.sha256(b"<p>").hexdigest())
    assert r.status_code == 200, r.text
    head = await s3.run(c.head_object, Bucket=b, Key="k.html")
    assert head["ContentType"] == "binary/octet-stream"


async def test_ranges_conditionals_and_overrides(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    data = bytes(range(256)) * 4
    etag = (await s3.run(c.put_object, Bucket=b, Key="k", Body=data))["ETag"]
    part = await s3.run(c.get_object, Bucket=b, Key="k", Range="bytes=10-19")
    assert part["Body"].read() == data[10:20]
    assert part["ContentRange"] == f"bytes 10-19/{len(data)}"
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    tail = await s3.run(c.get_object, Bucket=b, Key="k", Range="bytes=-5")
    assert tail["Body"].read() == data[-5:]
    whole = await s3.run(c.get_object, Bucket=b, Key="k", PartNumber=1)
    assert whole["Body"].read() == data and whole["ContentRange"] == f"bytes 0-1023/{len(data)}"
    head = await s3.run(c.head_object, Bucket=b, Key="k", Range="bytes=0-9")
    assert head["ContentLength"] == 10 and head["ContentRange"] == f"bytes 0-9/{len(data)}"
    assert await s3.error(c.get_object, Bucket=b, Key="k", Range="bytes=5000-6000") == (
        "InvalidRange", 416)
    assert await s3.error(c.get_object, Bucket=b, Key="k", IfNoneMatch=etag) == ("304", 304)
    assert await s3.error(c.get_object, Bucket=b, Key="k", IfMatch='"0000"') == (
        "PreconditionFailed", 412)
    future = datetime.now(UTC) + timedelta(days=1)
    assert await s3.error(c.get_object, Bucket=b, Key="k", IfModifiedSince=future) == (
        "304", 304)
    ok = await s3.run(c.get_object, Bucket=b, Key="k", IfMatch=etag,
                      ResponseContentType="application/x-test",
                      ResponseContentDisposition="inline; filename=x")
    assert ok["ContentType"] == "application/x-test"
    assert ok["ContentDisposition"] == "inline; filename=x"
    assert ok["Body"].read() == data


async def test_copy_object(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    b2 = await new_bucket(s3, c)
    await s3.run(c.put_object, Bucket=b, Key="src", Body=b"payload", ContentType="text/x-a",
                 Metadata={"a": "1"})
    r = await s3.run(c.copy_object, Bucket=b2, Key="dst", CopySource={"Bucket": b, "Key": "src"})
    assert r["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"payload").hexdigest()}"'
    got = await s3.run(c.get_object, Bucket=b2, Key="dst")
    assert got["Body"].read() == b"payload"
    assert got["Metadata"] == {"a": "1"} and got["ContentType"] == "text/x-a"
    await s3.run(c.copy_object, Bucket=b, Key="src", CopySource=f"{b}/src",
                 MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="text/x-b")
    got = await s3.run(c.head_object, Bucket=b, Key="src")
    assert got["Metadata"] == {"b": "2"} and got["ContentType"] == "text/x-b"
    assert await s3.error(c.copy_object, Bucket=b, Key="src", CopySource=f"{b}/src") == (
        "InvalidRequest", 400)
    assert await s3.error(c.copy_object, Bucket=b, Key="x", CopySource=f"{b}/missing") == (
        "NoSuchKey", 404)
    assert await s3.error(c.copy_object, Bucket=b, Key="x", CopySource=f"{b}/src",
                          CopySourceIfMatch='"nope"') == ("PreconditionFailed", 412)


async def test_delete_objects(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    for k in ("a", "b", "c/d"):
        await s3.run(c.put_object, Bucket=b, Key=k, Body=k.encode())
    r = await s3.run(c.delete_objects, Bucket=b, Delete={
        "Objects": [{"Key": "a"}, {"Key": "c/d"}, {"Key": "missing"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["a", "c/d", "missing"]
    assert "Errors" not in r
    r = await s3.run(c.delete_objects, Bucket=b, Delete={"Objects": [{"Key": "b"}],
                                                         "Quiet": True})
    assert "Deleted" not in r
    assert (await s3.run(c.list_objects_v2, Bucket=b))["KeyCount"] == 0
    body = b"<Delete><Object><Key>x</Key></Object></Delete>"
    r = await s3.signed("POST", f"/{b}?delete", body=body,
                        payload_hash=hashlib.sha256(body).hexdigest())
    assert r.status_code == 400 and b"Content-MD5" in r.content  # S3 requires a digest
    r = await s3.signed("POST", f"/{b}?delete", body=b"<Delete><Object>", payload_hash=hashlib
                        .sha256(b"<Delete><Object>").hexdigest(),
                        headers={"Content-MD5": base64.b64encode(
                            hashlib.md5(b"<Delete><Object>").digest()).decode()})
    assert r.status_code == 400 and b"<Code>MalformedXML</Code>" in r.content


# -- listings --------------------------------------------------------------------------


async def test_list_objects_v1_and_v2(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    keys = ["a", "b/1", "b/2", "c", "d/x/y", "e"]
    for k in keys:
        await s3.run(c.put_object, Bucket=b, Key=k, Body=b"1234")
    r = await s3.run(c.list_objects, Bucket=b)
    assert [o["Key"] for o in r["Contents"]] == keys and not r["IsTruncated"]
    assert r["Contents"][0]["Size"] == 4 and r["Contents"][0]["Owner"]["ID"]
    assert r["Contents"][0]["ETag"] == f'"{hashlib.md5(b"1234").hexdigest()}"'
    r = await s3.run(c.list_objects, Bucket=b, Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["a", "c", "e"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["b/", "d/"]
    r = await s3.run(c.list_objects, Bucket=b, Prefix="b/", MaxKeys=1)
    assert [o["Key"] for o in r["Contents"]] == ["b/1"] and r["IsTruncated"]
    r = await s3.run(c.list_objects, Bucket=b, Marker="b/2", Delimiter="/", MaxKeys=2)
    assert [o["Key"] for o in r.get("Contents", [])] == ["c"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["d/"]
    assert r["IsTruncated"] and r["NextMarker"] == "d/"
    # v2: continuation tokens walk the whole bucket
    seen: list[str] = []
    kw: dict[str, Any] = {"Bucket": b, "MaxKeys": 4}
    while True:
        r = await s3.run(c.list_objects_v2, **kw)
        assert r["KeyCount"] == len(r.get("Contents", []))
        assert "Owner" not in r["Contents"][0]
        seen += [o["Key"] for o in r["Contents"]]
        if not r["IsTruncated"]:
            break
        kw["ContinuationToken"] = r["NextContinuationToken"]
    assert seen == keys
    r = await s3.run(c.list_objects_v2, Bucket=b, StartAfter="c", FetchOwner=True)
    assert [o["Key"] for o in r["Contents"]] == ["d/x/y", "e"] and r["Contents"][0]["Owner"]
    r = await s3.run(c.list_objects_v2, Bucket=b, Delimiter="/", Prefix="d/")
    assert r["KeyCount"] == 1 and r["CommonPrefixes"] == [{"Prefix": "d/x/"}]
    assert await s3.error(c.list_objects_v2, Bucket=b, ContinuationToken="!!!") == (
        "InvalidArgument", 400)


# -- multipart uploads -------------------------------------------------------------------


async def test_multipart_upload(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    part1, part2 = b"a" * (5 * MIB), b"b" * 1000
    up = await s3.run(c.create_multipart_upload, Bucket=b, Key="big", ContentType="text/x-big",
                      Metadata={"m": "v"})
    uid = up["UploadId"]
    uploads = await s3.run(c.list_multipart_uploads, Bucket=b)
    assert [(u["Key"], u["UploadId"]) for u in uploads["Uploads"]] == [("big", uid)]
    e1 = (await s3.run(c.upload_part, Bucket=b, Key="big", UploadId=uid, PartNumber=1,
                       Body=part1))["ETag"]
    e2 = (await s3.run(c.upload_part, Bucket=b, Key="big", UploadId=uid, PartNumber=2,
                       Body=part2))["ETag"]
    assert e1 == f'"{hashlib.md5(part1).hexdigest()}"'
    parts = await s3.run(c.list_parts, Bucket=b, Key="big", UploadId=uid)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts["Parts"]] == [
        (1, e1, len(part1)), (2, e2, len(part2))]
    # the object does not exist before completion
    assert await s3.error(c.head_object, Bucket=b, Key="big") == ("404", 404)
    assert await s3.error(c.complete_multipart_upload, Bucket=b, Key="big", UploadId=uid,
                          MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2},
                                                     {"PartNumber": 1, "ETag": e1}]}) == (
        "InvalidPartOrder", 400)
    assert await s3.error(c.complete_multipart_upload, Bucket=b, Key="big", UploadId=uid,
                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e2},
                                                     {"PartNumber": 2, "ETag": e2}]}) == (
        "InvalidPart", 400)
    done = await s3.run(c.complete_multipart_upload, Bucket=b, Key="big", UploadId=uid,
                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                   {"PartNumber": 2, "ETag": e2}]})
    want = hashlib.md5(bytes.fromhex(e1.strip('"')) + bytes.fromhex(e2.strip('"'))).hexdigest()
    assert done["ETag"] == f'"{want}-2"'
    got = await s3.run(c.get_object, Bucket=b, Key="big")
    assert got["Body"].read() == part1 + part2
    assert got["ETag"] == f'"{want}-2"' and got["ContentType"] == "text/x-big"
    assert got["Metadata"] == {"m": "v"}
    ranged = await s3.run(c.get_object, Bucket=b, Key="big", Range=f"bytes={5 * MIB - 2}-")
    assert ranged["Body"].read() == b"aa" + part2
    second = await s3.run(c.get_object, Bucket=b, Key="big", PartNumber=2)
    assert second["Body"].read() == part2 and second["PartsCount"] == 2
    first = await s3.run(c.head_object, Bucket=b, Key="big", PartNumber=1)
    assert first["ContentLength"] == len(part1)
    assert await s3.error(c.head_object, Bucket=b, Key="big", PartNumber=3) == ("416", 416)
    listing = await s3.run(c.list_objects_v2, Bucket=b)
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listing["Contents"]] == [
        ("big", len(part1) + len(part2), f'"{want}-2"')]
    assert (await s3.run(c.list_multipart_uploads, Bucket=b)).get("Uploads", []) == []
    assert b + "+segments" not in [x["Name"] for x in (await s3.run(c.list_buckets))["Buckets"]]
    # deleting the object deletes its parts
    await s3.run(c.delete_object, Bucket=b, Key="big")
    r = await s3.account.req("GET", f"/{b}+segments", params={"format": "json"})
    assert r.status_code in (200, 204) and (r.status_code == 204 or r.json() == [])
    await s3.run(c.delete_bucket, Bucket=b)


async def test_multipart_conditionals(s3: S3) -> None:
    """If-Match and If-None-Match of a multipart object test its S3 ETag."""
    c = s3.client()
    b = await new_bucket(s3, c)
    uid = (await s3.run(c.create_multipart_upload, Bucket=b, Key="k"))["UploadId"]
    e = (await s3.run(c.upload_part, Bucket=b, Key="k", UploadId=uid, PartNumber=1,
                      Body=b"data"))["ETag"]
    etag = (await s3.run(c.complete_multipart_upload, Bucket=b, Key="k", UploadId=uid,
                         MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]}))["ETag"]
    assert (await s3.run(c.head_object, Bucket=b, Key="k", IfMatch=etag))["ETag"] == etag
    assert await s3.error(c.get_object, Bucket=b, Key="k", IfNoneMatch=etag) == ("304", 304)
    assert await s3.error(c.get_object, Bucket=b, Key="k", IfMatch='"abc-1"') == (
        "PreconditionFailed", 412)


async def test_multipart_abort_and_errors(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    uid = (await s3.run(c.create_multipart_upload, Bucket=b, Key="k"))["UploadId"]
    e1 = (await s3.run(c.upload_part, Bucket=b, Key="k", UploadId=uid, PartNumber=1,
                       Body=b"small"))["ETag"]
    e2 = (await s3.run(c.upload_part, Bucket=b, Key="k", UploadId=uid, PartNumber=2,
                       Body=b"tail"))["ETag"]
    assert await s3.error(c.complete_multipart_upload, Bucket=b, Key="k", UploadId=uid,
                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                     {"PartNumber": 2, "ETag": e2}]}) == (
        "EntityTooSmall", 400)
    await s3.run(c.abort_multipart_upload, Bucket=b, Key="k", UploadId=uid)
    assert await s3.error(c.list_parts, Bucket=b, Key="k", UploadId=uid) == ("NoSuchUpload", 404)
    assert await s3.error(c.upload_part, Bucket=b, Key="k", UploadId=uid, PartNumber=1,
                          Body=b"x") == ("NoSuchUpload", 404)
    assert await s3.error(c.abort_multipart_upload, Bucket=b, Key="k", UploadId=uid) == (
        "NoSuchUpload", 404)
    r = await s3.account.req("GET", f"/{b}+segments", params={"format": "json"})
    assert r.status_code == 204 or r.json() == []
    # a single small part is a whole object
    uid = (await s3.run(c.create_multipart_upload, Bucket=b, Key="one"))["UploadId"]
    e = (await s3.run(c.upload_part, Bucket=b, Key="one", UploadId=uid, PartNumber=1,
                      Body=b"only"))["ETag"]
    await s3.run(c.complete_multipart_upload, Bucket=b, Key="one", UploadId=uid,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})
    assert (await s3.run(c.get_object, Bucket=b, Key="one"))["Body"].read() == b"only"
    assert await s3.error(c.upload_part, Bucket=b, Key="k", UploadId="x", PartNumber=0,
                          Body=b"x") == ("InvalidArgument", 400)


async def test_multipart_listings(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    ids = {}
    for key in ("a/x", "a/y", "b", "c"):
        ids[key] = (await s3.run(c.create_multipart_upload, Bucket=b, Key=key))["UploadId"]
    r = await s3.run(c.list_multipart_uploads, Bucket=b, Delimiter="/")
    assert [u["Key"] for u in r["Uploads"]] == ["b", "c"]
    assert r["CommonPrefixes"] == [{"Prefix": "a/"}]
    r = await s3.run(c.list_multipart_uploads, Bucket=b, KeyMarker="a/y")
    assert [u["Key"] for u in r["Uploads"]] == ["b", "c"]
    r = await s3.run(c.list_multipart_uploads, Bucket=b, Prefix="a/", MaxUploads=1)
    assert [u["Key"] for u in r["Uploads"]] == ["a/x"] and r["IsTruncated"]
    assert r["NextKeyMarker"] == "a/x" and r["NextUploadIdMarker"] == ids["a/x"]
    for n in (1, 2, 3):
        await s3.run(c.upload_part, Bucket=b, Key="b", UploadId=ids["b"], PartNumber=n,
                     Body=b"p%d" % n)
    r = await s3.run(c.list_parts, Bucket=b, Key="b", UploadId=ids["b"], MaxParts=2)
    assert [p["PartNumber"] for p in r["Parts"]] == [1, 2] and r["IsTruncated"]
    assert r["NextPartNumberMarker"] == 2
    r = await s3.run(c.list_parts, Bucket=b, Key="b", UploadId=ids["b"], PartNumberMarker=2)
    assert [p["PartNumber"] for p in r["Parts"]] == [3] and not r["IsTruncated"]
    # deleting the bucket takes the unfinished uploads with it
    await s3.run(c.delete_bucket, Bucket=b)
    assert (await s3.account.req("HEAD", f"/{b}+segments")).status_code == 404


async def test_upload_part_copy(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    src = bytes(range(256)) * (6 * MIB // 256)
    await s3.run(c.put_object, Bucket=b, Key="src", Body=src)
    uid = (await s3.run(c.create_multipart_upload, Bucket=b, Key="dst"))["UploadId"]
    p1 = await s3.run(c.upload_part_copy, Bucket=b, Key="dst", UploadId=uid, PartNumber=1,
                      CopySource={"Bucket": b, "Key": "src"},
                      CopySourceRange=f"bytes=0-{5 * MIB - 1}")
    p2 = await s3.run(c.upload_part_copy, Bucket=b, Key="dst", UploadId=uid, PartNumber=2,
                      CopySource={"Bucket": b, "Key": "src"},
                      CopySourceRange=f"bytes={5 * MIB}-{len(src) - 1}")
    e1, e2 = p1["CopyPartResult"]["ETag"], p2["CopyPartResult"]["ETag"]
    assert e1 == f'"{hashlib.md5(src[:5 * MIB]).hexdigest()}"'
    await s3.run(c.complete_multipart_upload, Bucket=b, Key="dst", UploadId=uid,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                            {"PartNumber": 2, "ETag": e2}]})
    assert (await s3.run(c.get_object, Bucket=b, Key="dst"))["Body"].read() == src


# -- authentication ------------------------------------------------------------------------


async def test_bad_signature_and_unknown_key(s3: S3) -> None:
    bad = s3.client(secret="not-the-secret")
    code, status = await s3.error(bad.list_buckets)
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    unknown = s3.client(access="no-such-access-key")
    assert await s3.error(unknown.list_buckets) == ("InvalidAccessKeyId", 403)
    # the good secret still works after failures (nothing cached wrongly)
    assert "Buckets" in await s3.run(s3.client().list_buckets)
    # and a wrong secret fails even once the right one is cached
    assert await s3.error(bad.list_buckets) == ("SignatureDoesNotMatch", 403)


async def test_sigv2(s3: S3) -> None:
    c = s3.client(signature_version="s3")
    b = await new_bucket(s3, c)
    await s3.run(c.put_object, Bucket=b, Key="k v", Body=b"v2 data", Metadata={"x": "y"})
    got = await s3.run(c.get_object, Bucket=b, Key="k v")
    assert got["Body"].read() == b"v2 data" and got["Metadata"] == {"x": "y"}
    bad = s3.client(signature_version="s3", secret="wrong")
    assert await s3.error(bad.get_object, Bucket=b, Key="k v") == ("SignatureDoesNotMatch", 403)
    url = await s3.run(c.generate_presigned_url, "get_object", Params={"Bucket": b, "Key": "k v"},
                       ExpiresIn=60)
    r = await s3.http.get(url)
    assert r.status_code == 200 and r.content == b"v2 data"


async def test_presigned_urls(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    await s3.run(c.put_object, Bucket=b, Key="doc.txt", Body=b"shared")
    url = await s3.run(c.generate_presigned_url, "get_object",
                       Params={"Bucket": b, "Key": "doc.txt"}, ExpiresIn=60)
    r = await s3.http.get(url)
    assert r.status_code == 200 and r.content == b"shared"
    r = await s3.http.get(url.replace("doc.txt", "other.txt"))
    assert r.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in r.content
    put = await s3.run(c.generate_presigned_url, "put_object",
                       Params={"Bucket": b, "Key": "up.txt"}, ExpiresIn=60)
    r = await s3.http.put(put, content=b"uploaded")
    assert r.status_code == 200, r.text
    assert (await s3.run(c.get_object, Bucket=b, Key="up.txt"))["Body"].read() == b"uploaded"
    expired = await s3.run(c.generate_presigned_url, "get_object",
                           Params={"Bucket": b, "Key": "doc.txt"}, ExpiresIn=1)
    await asyncio.sleep(2.1)
    r = await s3.http.get(expired)
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content
    assert b"Request has expired" in r.content


async def test_anonymous_and_skewed_requests(s3: S3) -> None:
    b = await new_bucket(s3, s3.client())
    r = await s3.http.get(f"{S3_PATH}/{b}")
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content
    url = f"http://onestack.test{S3_PATH}/{b}"
    req = AWSRequest("GET", url)
    S3SigV4Auth(Credentials(s3.access, s3.secret), "s3", REGION).add_auth(req)
    headers = dict(req.headers.items())
    old = datetime.now(UTC) - timedelta(hours=1)
    headers["X-Amz-Date"] = old.strftime("%Y%m%dT%H%M%SZ")
    r = await s3.http.get(url, headers=headers)
    assert r.status_code == 403 and b"<Code>RequestTimeTooSkewed</Code>" in r.content
    assert r.headers["x-amz-request-id"] and b"<RequestId>" in r.content


# -- checked bodies --------------------------------------------------------------------------


async def test_body_hash_mismatch_stores_nothing(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    signed_body, sent = b"the body that was signed", b"a different body, same size!"[:24]
    r = await s3.signed("PUT", f"/{b}/k", body=signed_body,
                        payload_hash=hashlib.sha256(signed_body).hexdigest(), send_body=sent)
    assert r.status_code == 400, r.text
    assert b"<Code>XAmzContentSHA256Mismatch</Code>" in r.content
    assert await s3.error(c.head_object, Bucket=b, Key="k") == ("404", 404)
    assert (await s3.account.req("HEAD", f"/{b}/k")).status_code == 404
    # an object that was there stays as it was
    await s3.run(c.put_object, Bucket=b, Key="k", Body=b"original")
    r = await s3.signed("PUT", f"/{b}/k", body=signed_body,
                        payload_hash=hashlib.sha256(signed_body).hexdigest(), send_body=sent)
    assert r.status_code == 400
    assert (await s3.run(c.get_object, Bucket=b, Key="k"))["Body"].read() == b"original"
    # also an empty body that claims otherwise
    r = await s3.signed("PUT", f"/{b}/empty", payload_hash=hashlib.sha256(b"x").hexdigest())
    assert r.status_code == 400 and b"XAmzContentSHA256Mismatch" in r.content
    assert (await s3.account.req("HEAD", f"/{b}/empty")).status_code == 404


async def test_content_md5_and_checksum_mismatch_store_nothing(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    assert await s3.error(c.put_object, Bucket=b, Key="k", Body=b"data", ContentMD5=wrong) == (
        "BadDigest", 400)
    assert (await s3.account.req("HEAD", f"/{b}/k")).status_code == 404
    assert await s3.error(c.put_object, Bucket=b, Key="k", Body=b"data",
                          ContentMD5="bm90IGFuIG1kNQ==") == ("InvalidDigest", 400)
    crc = base64.b64encode(zlib.crc32(b"other").to_bytes(4, "big")).decode()
    body = b"data"
    r = await s3.signed("PUT", f"/{b}/k", body=body, payload_hash=hashlib.sha256(body).hexdigest(),
                        headers={"x-amz-checksum-crc32": crc})
    assert r.status_code == 400 and b"<Code>BadDigest</Code>" in r.content
    assert (await s3.account.req("HEAD", f"/{b}/k")).status_code == 404


async def test_aws_chunked_with_crc32_trailer(s3: S3) -> None:
    """botocore over https: aws-chunked bodies, unsigned payload, CRC32 trailer."""
    c = s3.client(scheme="https")
    b = await new_bucket(s3, c)
    data = bytes(range(256)) * 5000
    seen: list[str] = []

    def record(request: Any, **_: Any) -> None:
        value = request.headers.get("x-amz-content-sha256", "")
        seen.append(value.decode() if isinstance(value, bytes) else value)

    # registered first, so it runs before the hook that sends the request
    c.meta.events.register_first("before-send.s3.PutObject", record)
    await s3.run(c.put_object, Bucket=b, Key="k", Body=data)
    assert seen == ["STREAMING-UNSIGNED-PAYLOAD-TRAILER"]
    assert (await s3.run(c.get_object, Bucket=b, Key="k"))["Body"].read() == data
    head = await s3.run(c.head_object, Bucket=b, Key="k")
    assert head["ContentLength"] == len(data)
    assert "ContentEncoding" not in head  # aws-chunked is not the object's encoding
    # a trailer that does not match: nothing stored
    chunked = (b"%x\r\n" % len(data)) + data + b"\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    r = await s3.signed("PUT", f"/{b}/bad", body=chunked,
                        payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                        headers={"Content-Encoding": "aws-chunked",
                                 "x-amz-trailer": "x-amz-checksum-crc32",
                                 "x-amz-decoded-content-length": str(len(data))})
    assert r.status_code == 400 and b"<Code>BadDigest</Code>" in r.content
    assert (await s3.account.req("HEAD", f"/{b}/bad")).status_code == 404


def _signed_chunks(signer: ChunkSigner, data: bytes, size: int, seed: str,
                   corrupt: int | None = None, trailer: str | None = None) -> bytes:
    """``data`` as ``aws-chunked`` with chained chunk signatures (chunk ``corrupt``
    gets a wrong one) and, given ``trailer`` (a CRC32 value), a signed trailer."""
    out, prev = [], seed
    pieces = [data[i:i + size] for i in range(0, len(data), size)] + [b""]
    for n, piece in enumerate(pieces):
        sig = signer.sign_chunk(prev, hashlib.sha256(piece).hexdigest())
        prev = sig
        if n == corrupt:
            sig = "0" * 64
        out.append(b"%x;chunk-signature=%s\r\n%s" % (len(piece), sig.encode(), piece))
        if piece or trailer is None:
            out.append(b"\r\n")
    if trailer is not None:
        tsig = signer.sign_trailer(prev, [("x-amz-checksum-crc32", trailer)])
        out.append(f"x-amz-checksum-crc32:{trailer}\r\nx-amz-trailer-signature:{tsig}\r\n"
                   f"\r\n".encode())
    return b"".join(out)


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


async def test_signed_aws_chunked_upload(s3: S3) -> None:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER): every chunk signed, in a chain,
    and the trailer too; a wrong signature or checksum stores nothing."""
    c = s3.client()
    b = await new_bucket(s3, c)
    data = bytes(range(256)) * 1000
    cases = [("good", None, None, 200), ("bad-chunk", 1, None, 403),
             ("trailer", None, _crc32(data), 200), ("bad-crc", None, _crc32(b"x"), 400)]
    for key, corrupt, trailer, status in cases:
        url = f"http://onestack.test{S3_PATH}/{b}/{key}"
        mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
        headers = {"Content-Encoding": "aws-chunked",
                   "x-amz-decoded-content-length": str(len(data))}
        if trailer:
            headers["x-amz-trailer"] = "x-amz-checksum-crc32"
        req = AWSRequest("PUT", url, headers=headers)
        _Signer(Credentials(s3.access, s3.secret), mode).add_auth(req)
        sent = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in req.headers.items()}
        raw = RawRequest("PUT", f"{S3_PATH}/{b}/{key}".encode(), b"",
                         [(k.lower(), v) for k, v in sent.items()] + [("host", "onestack.test")])
        signed = parse(raw, regions=[REGION], now=datetime.now(UTC), skew=900)
        assert signed is not None and signed.matches(s3.secret)
        signer = ChunkSigner(signed, signed.signing_key(s3.secret))
        body = _signed_chunks(signer, data, 65536, signed.signature, corrupt, trailer)
        r = await s3.http.put(url, headers=sent, content=body)
        assert r.status_code == status, (key, r.text)
        if status == 200:
            assert (await s3.run(c.get_object, Bucket=b, Key=key))["Body"].read() == data
        else:
            code = b"SignatureDoesNotMatch" if status == 403 else b"BadDigest"
            assert b"<Code>" + code + b"</Code>" in r.content
            assert (await s3.account.req("HEAD", f"/{b}/{key}")).status_code == 404


# -- ACLs, versioning, unsupported ------------------------------------------------------------


async def test_bucket_acls(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    await s3.run(c.put_object, Bucket=b, Key="k", Body=b"public data")
    acl = await s3.run(c.get_bucket_acl, Bucket=b)
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    assert acl["Grants"][0]["Grantee"]["Type"] == "CanonicalUser"
    assert (await s3.account.req("GET", f"/{b}/k", token=None)).status_code == 401
    await s3.run(c.put_bucket_acl, Bucket=b, ACL="public-read")
    acl = await s3.run(c.get_bucket_acl, Bucket=b)
    assert [(g["Grantee"].get("URI"), g["Permission"]) for g in acl["Grants"]][1:] == [
        (ALL_USERS, "READ")]
    r = await s3.account.req("GET", f"/{b}/k", token=None)
    assert r.status_code == 200 and r.content == b"public data"
    obj_acl = await s3.run(c.get_object_acl, Bucket=b, Key="k")
    assert [g["Permission"] for g in obj_acl["Grants"]] == ["FULL_CONTROL", "READ"]
    await s3.run(c.put_object_acl, Bucket=b, Key="k", ACL="public-read")  # what it has
    assert await s3.error(c.put_object_acl, Bucket=b, Key="k", ACL="private") == (
        "NotImplemented", 501)
    assert await s3.error(c.get_object_acl, Bucket=b, Key="nope") == ("NoSuchKey", 404)
    # back to private with an ACL document: the owner's grant only
    await s3.run(c.put_bucket_acl, Bucket=b, AccessControlPolicy={
        "Owner": acl["Owner"], "Grants": [acl["Grants"][0]]})
    assert (await s3.account.req("GET", f"/{b}/k", token=None)).status_code == 401
    assert await s3.error(c.put_bucket_acl, Bucket=b, ACL="log-delivery-write") == (
        "NotImplemented", 501)
    # public-read-write: anyone reads, any authenticated user writes (Swift has no
    # anonymous writes)
    other = await s3.swift.project_user()
    await s3.run(c.put_bucket_acl, Bucket=b, ACL="public-read-write")
    acl = await s3.run(c.get_bucket_acl, Bucket=b)
    assert [(g["Grantee"].get("URI"), g["Permission"]) for g in acl["Grants"]][1:] == [
        (ALL_USERS, "READ"), (AUTHENTICATED_USERS, "WRITE")]
    r = await s3.account.req("PUT", f"/{b}/from-other", token=other.token, content=b"x")
    assert r.status_code == 201
    assert (await s3.account.req("PUT", f"/{b}/anon", token=None, content=b"x")).status_code \
        == 401
    await s3.run(c.put_bucket_acl, Bucket=b, ACL="authenticated-read")
    r = await s3.account.req("GET", f"/{b}/k", token=other.token)
    assert r.status_code == 200
    assert (await s3.account.req("GET", f"/{b}/k", token=None)).status_code == 401
    # the ACL belongs to the bucket's owner: other projects address their own account
    access, secret = await s3.swift.ec2_credentials(other)
    c2 = S3(s3.swift, other, access, secret).client()
    assert await s3.error(c2.put_bucket_acl, Bucket=b, ACL="public-read") == (
        "NoSuchBucket", 404)


async def test_bucket_versioning(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    assert "Status" not in await s3.run(c.get_bucket_versioning, Bucket=b)
    info = (await s3.swift.cloud.client.get("/object-store/info")).json()
    if "object_versioning" not in info:
        assert await s3.error(c.put_bucket_versioning, Bucket=b, VersioningConfiguration={
            "Status": "Enabled"}) == ("NotImplemented", 501)
        return
    await s3.run(c.put_bucket_versioning, Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    assert (await s3.run(c.get_bucket_versioning, Bucket=b))["Status"] == "Enabled"
    v1 = (await s3.run(c.put_object, Bucket=b, Key="k", Body=b"one"))["VersionId"]
    v2 = (await s3.run(c.put_object, Bucket=b, Key="k", Body=b"two"))["VersionId"]
    assert v1 != v2
    old = await s3.run(c.get_object, Bucket=b, Key="k", VersionId=v1)
    assert old["Body"].read() == b"one"
    versions = await s3.run(c.list_object_versions, Bucket=b)
    assert sorted(v["VersionId"] for v in versions["Versions"]) == sorted([v1, v2])
    # a delete leaves a marker; the versions stay readable
    gone = await s3.run(c.delete_object, Bucket=b, Key="k")
    assert gone["DeleteMarker"] is True and gone["VersionId"] not in (v1, v2)
    assert await s3.error(c.get_object, Bucket=b, Key="k") == ("NoSuchKey", 404)
    versions = await s3.run(c.list_object_versions, Bucket=b)
    assert [m["VersionId"] for m in versions["DeleteMarkers"]] == [gone["VersionId"]]
    assert versions["DeleteMarkers"][0]["IsLatest"] is True
    assert (await s3.run(c.get_object, Bucket=b, Key="k", VersionId=v2))["Body"].read() == b"two"
    await s3.run(c.delete_object, Bucket=b, Key="k", VersionId=v1)
    versions = await s3.run(c.list_object_versions, Bucket=b)
    assert [v["VersionId"] for v in versions["Versions"]] == [v2]
    await s3.run(c.put_bucket_versioning, Bucket=b,
                 VersioningConfiguration={"Status": "Suspended"})
    assert (await s3.run(c.get_bucket_versioning, Bucket=b))["Status"] == "Suspended"


async def test_unsupported_operations(s3: S3) -> None:
    c = s3.client()
    b = await new_bucket(s3, c)
    assert await s3.error(c.get_bucket_policy, Bucket=b) == ("NotImplemented", 501)
    assert await s3.error(c.put_bucket_tagging, Bucket=b, Tagging={"TagSet": []}) == (
        "NotImplemented", 501)
    r = await s3.signed("POST", f"/{b}/k")
    assert r.status_code == 501 and b"<Code>NotImplemented</Code>" in r.content
    r = await s3.signed("PATCH", f"/{b}")
    assert r.status_code == 405 and b"<Code>MethodNotAllowed</Code>" in r.content
