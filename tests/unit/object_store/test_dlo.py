"""The ``dlo`` middleware over the real object controller: an ``X-Object-Manifest``
object reads as the objects under its prefix, as Swift's dynamic large objects."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from lo_chain import Chain, build, md5
from objstore_cluster import Cluster

from onestack.object_store.http import Headers, Request, Response
from onestack.object_store.middleware.dlo.segments import (
    Piece,
    SegmentedBody,
    parse_range,
    ranges_for_length,
)

PARTS = [b"one-", b"two--", b"three", b"4", b"five!"]
WHOLE = b"".join(PARTS)
ETAG = md5("".join(md5(p) for p in PARTS))


async def upload(lo: Chain, manifest: str = "segs/big/") -> None:
    for i, part in enumerate(PARTS):
        await lo.put(f"/segs/big/{i:08d}", part)
    await lo.put("/segs/other", b"not a segment")
    await lo.put("/c/big", b"", X_Object_Manifest=manifest)


@pytest.fixture
def lo(cluster: Cluster, tmp_path: Path) -> Chain:
    return build(cluster, tmp_path / "data")


@pytest.fixture(params=[False, True], ids=["backend-helps", "plain-backend"])
def lo_any(cluster: Cluster, tmp_path: Path, request: pytest.FixtureRequest) -> Chain:
    return build(cluster, tmp_path / "data", plain_backend=request.param)


async def test_get_and_head_concatenate_the_prefix(lo: Chain) -> None:
    await upload(lo)
    resp, body = await lo.get("/c/big")
    assert (resp.status, body) == (200, WHOLE)
    assert resp.headers["Etag"] == f'"{ETAG}"'
    assert resp.headers["Content-Length"] == str(len(WHOLE))
    assert resp.headers["X-Object-Manifest"] == "segs/big/"
    head = await lo.req("HEAD", "/c/big")
    assert (head.status, head.body, head.headers["Etag"]) == (200, b"", f'"{ETAG}"')
    assert head.headers["Content-Length"] == str(len(WHOLE))


async def test_quoted_manifest_as_swiftclient_writes_it(lo: Chain) -> None:
    for i, part in enumerate(PARTS):
        await lo.put(f"/segs/a b/{i:08d}", part)
    await lo.put("/c/spaced", b"", X_Object_Manifest="segs/a%20b/")
    _, body = await lo.get("/c/spaced")
    assert body == WHOLE


async def test_manifest_get_returns_the_manifest_object(lo: Chain) -> None:
    await upload(lo)
    resp, body = await lo.get("/c/big", query={"multipart-manifest": "get"})
    assert (resp.status, body) == (200, b"")
    assert resp.headers["Etag"] == md5(b"")


async def test_one_range_is_served_several_are_ignored(lo_any: Chain) -> None:
    lo = lo_any
    await upload(lo)
    resp, body = await lo.get("/c/big", Range="bytes=2-10")
    assert (resp.status, body) == (206, WHOLE[2:11])
    assert resp.headers["Content-Range"] == f"bytes 2-10/{len(WHOLE)}"
    resp, body = await lo.get("/c/big", Range="bytes=-6")
    assert (resp.status, body) == (206, WHOLE[-6:])
    resp, body = await lo.get("/c/big", Range="bytes=0-1,4-5")
    assert (resp.status, body) == (200, WHOLE)
    resp, _ = await lo.get("/c/big", Range="bytes=100-")
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(WHOLE)}"


async def test_conditions_use_the_dlo_etag(lo_any: Chain) -> None:
    lo = lo_any
    await upload(lo)
    resp, body = await lo.get("/c/big", If_None_Match=f'"{ETAG}"')
    assert (resp.status, body) == (304, b"")
    resp, _ = await lo.get("/c/big", If_Match=ETAG)
    assert resp.status == 200
    resp, _ = await lo.get("/c/big", If_Match=md5(b""))
    assert resp.status == 412


async def test_listing_pages_beyond_the_first(cluster: Cluster, tmp_path: Path) -> None:
    lo = build(cluster, tmp_path / "data", container_listing_limit=2)
    await upload(lo)
    resp, body = await lo.get("/c/big")
    assert (resp.status, body) == (200, WHOLE)
    assert "Content-Length" not in resp.headers  # only one page's worth is known
    resp, body = await lo.get("/c/big", Range="bytes=1-3")
    assert (resp.status, body) == (206, WHOLE[1:4])
    assert lo.st.capabilities["dlo"] == {"max_segments": 2}


async def test_bad_manifest_header_and_missing_container(lo: Chain) -> None:
    for value in ("nocontainer", "c/", "/c/p", "c/p?x", "c//p"):
        resp = await lo.req("PUT", "/c/m", b"", X_Object_Manifest=value,
                            Content_Type="text/plain")
        assert (resp.status, resp.body) == (
            400, b"X-Object-Manifest must be in the format container/prefix"), value
    await lo.put("/c/m", b"", X_Object_Manifest="nowhere/p")
    resp = await lo.req("GET", "/c/m")
    assert resp.status == 404


async def test_changed_segment_cuts_the_body(lo: Chain) -> None:
    await upload(lo)
    await lo.put("/segs/big/00000001", b"TWO--" * 3)  # bigger than the listing said
    lo.listings.listed("AUTH_t", "segs")["big/00000001"].size = len(PARTS[1])
    resp, body = await lo.get("/c/big")
    assert resp.status == 200
    assert len(body) == len(WHOLE)  # never more than announced
    assert body != WHOLE

    assert (await lo.req("DELETE", "/segs/big/00000000")).status == 204
    row = lo.listings.rows[("AUTH_t", "segs", "big/00000000")]
    row.deleted, row.size = False, len(PARTS[0])  # a listing that lags behind
    resp, _ = await lo.get("/c/big")
    assert resp.status == 409


async def test_shrunk_segment_ends_the_body_short(lo: Chain,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    await upload(lo)
    await lo.put("/segs/big/00000004", b"5")
    lo.listings.listed("AUTH_t", "segs")["big/00000004"].size = len(PARTS[4])
    _, body = await lo.get("/c/big")
    assert body == WHOLE[:-len(PARTS[4])] + b"5"
    assert "Expected another 4 bytes" in caplog.text


async def test_segment_bytes_are_checked_against_their_etag(
        caplog: pytest.LogCaptureFixture) -> None:
    """A segment whose bytes do not match its ETag is reported (the response is
    then cut: nothing after it is sent)."""
    async def app(req: Request) -> Response:
        data = b"evil" if req.path.endswith("/one") else b"more"
        return Response(200, Headers({"Etag": md5(b"good"), "Content-Length": "4"}), data)

    async def pieces() -> AsyncGenerator[Piece, None]:
        yield Piece(path="/v1/AUTH_t/c/one")
        yield Piece(path="/v1/AUTH_t/c/two")

    body = SegmentedBody(app, Request("GET", "/v1/AUTH_t/c/m"), pieces(), name="m",
                         source="DLO", length=8)
    await body.prime()
    assert b"".join([chunk async for chunk in body.chunks()]) == b"evil"
    assert f"headers had {md5(b'good')}, but object MD5 was actually {md5(b'evil')}" \
        in caplog.text


def test_range_parsing_follows_swob() -> None:
    assert parse_range("bytes=1-2,-3, 4-") == [(1, 2), (None, 3), (4, None)]
    for bad in ("bytes=5-3", "bytes=-", "bytes=4", "bytes=a-b", "items=1-2", "", None):
        assert parse_range(bad) is None
    assert ranges_for_length([(None, 3)], 10) == [(7, 10)]
    assert ranges_for_length([(None, 30)], 10) == [(0, 10)]
    assert ranges_for_length([(10, None)], 10) == []
    assert ranges_for_length([(0, 1)] * 51, 10) == []
    assert ranges_for_length([(0, 5), (1, 6), (2, 7), (3, 8)], 10) == []
