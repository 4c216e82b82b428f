"""The object controller (``api/object.py``) over a real three-device ring: Swift's
statuses, headers and bodies, and nothing stored when a request fails."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from pathlib import Path

import pytest
from objstore_api import MemoryListings, TrackingReader, call, chunks, make_state
from objstore_cluster import Cluster

from onestack.object_store.api import object as object_api
from onestack.object_store.asgi import ClientDisconnect, asgi
from onestack.object_store.errors import ObjectDeleted, ObjectNotFound
from onestack.object_store.http import Request, Response, error
from onestack.object_store.state import ObjectStoreState

DATA = b"0123456789abcdefghijklmnopqrstuvwxyz"
ETAG = hashlib.md5(DATA).hexdigest()


@pytest.fixture
def st(cluster: Cluster, tmp_path: Path) -> ObjectStoreState:
    return make_state(cluster, tmp_path / "data")


def listings(st: ObjectStoreState) -> MemoryListings:
    assert isinstance(st.listings, MemoryListings)
    return st.listings


def stored_files(cluster: Cluster) -> list[str]:
    return sorted(f for _, _, files in os.walk(cluster.root) for f in files)


async def put(st: ObjectStoreState, obj: str = "o", data: bytes = DATA, **headers: str) -> Response:
    resp = await call(st, "PUT", obj, headers=headers, body=data)
    assert resp.status == 201, (resp.status, resp.body)
    return resp


async def text(resp: Response) -> str:
    return (await resp.read()).decode()


# -- PUT ------------------------------------------------------------------------------


async def test_put_then_get_returns_data_and_swift_headers(st: ObjectStoreState) -> None:
    resp = await put(st, "o.txt", **{
        "X-Object-Meta-Color": "blue", "X-Object-Sysmeta-Internal": "yes",
        "Content-Disposition": "attachment", "Content-Encoding": "identity",
        "X-Object-Manifest": "c/seg", "Cache-Control": "no-cache", "X-Unknown": "dropped",
    })
    assert resp.headers["ETag"] == ETAG
    assert resp.headers["Content-Length"] == "0"
    assert resp.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert resp.headers["Last-Modified"].endswith("GMT")

    got = await call(st, "GET", "o.txt")
    assert got.status == 200
    assert not isinstance(got.body, bytes)  # streamed, not buffered
    assert await got.read() == DATA
    h = got.headers
    assert h["Content-Type"] == "text/plain"  # guessed from the name
    assert h["ETag"] == ETAG
    assert h["Content-Length"] == str(len(DATA))
    assert h["Accept-Ranges"] == "bytes"
    assert h["X-Object-Meta-Color"] == "blue"
    assert h["X-Object-Sysmeta-Internal"] == "yes"
    assert h["Content-Disposition"] == "attachment"
    assert h["Content-Encoding"] == "identity"
    assert h["X-Object-Manifest"] == "c/seg"
    assert h["Cache-Control"] == "no-cache"
    assert "X-Unknown" not in h
    assert h["Last-Modified"] == resp.headers["Last-Modified"]
    assert float(h["X-Timestamp"]) <= time.time()

    row = listings(st).listed()["o.txt"]
    assert (row.size, row.etag, row.content_type) == (len(DATA), ETAG, "text/plain")


async def test_head_has_headers_and_no_body(st: ObjectStoreState) -> None:
    await put(st)
    resp = await call(st, "HEAD")
    assert resp.status == 200
    assert resp.body == b""
    assert resp.headers["Content-Length"] == str(len(DATA))
    assert st.reader.opened == st.reader.closed  # type: ignore[attr-defined]


async def test_put_chunked_without_content_length(st: ObjectStoreState) -> None:
    resp = await call(st, "PUT", headers={"Transfer-Encoding": "chunked"},
                      body=chunks(b"abc", b"def"))
    assert resp.status == 201
    assert await (await call(st, "GET")).read() == b"abcdef"


async def test_put_without_length_is_411(st: ObjectStoreState, cluster: Cluster) -> None:
    resp = await call(st, "PUT", body=chunks(b"abc"))
    assert resp.status == 411
    assert await text(resp) == "Missing Content-Length header."
    assert stored_files(cluster) == []


@pytest.mark.parametrize(("coding", "status", "body"), [
    ("gzip", 400, "Invalid Transfer-Encoding header value"),
    ("gzip, chunked", 501, ("Unsupported Transfer-Coding header value specified in "
                            "Transfer-Encoding header")),
])
async def test_put_bad_transfer_encoding(
    st: ObjectStoreState, coding: str, status: int, body: str
) -> None:
    resp = await call(st, "PUT", headers={"Transfer-Encoding": coding}, body=chunks(b"x"))
    assert (resp.status, await text(resp)) == (status, body)


async def test_put_larger_than_max_file_size_is_413(
    cluster: Cluster, tmp_path: Path
) -> None:
    st = make_state(cluster, tmp_path / "d", max_file_size=10)
    resp = await call(st, "PUT", headers={"Content-Length": "11"}, body=b"x" * 11)
    assert resp.status == 413
    assert await text(resp) == "Your request is too large."
    # a chunked upload has no length to check first: it is cut off on the way
    resp = await call(st, "PUT", headers={"Transfer-Encoding": "chunked"},
                      body=chunks(b"x" * 6, b"y" * 6))
    assert resp.status == 413
    assert stored_files(cluster) == []
    assert (await call(st, "PUT", body=b"x" * 10)).status == 201


async def test_put_name_too_long(st: ObjectStoreState, cluster: Cluster) -> None:
    name = "é" * 513  # 1026 bytes, 513 characters: the limit counts bytes
    resp = await call(st, "PUT", name, body=b"x")
    assert resp.status == 400
    assert await text(resp) == "Object name length of 1026 longer than 1024"
    assert (await call(st, "PUT", "a" * 1024, body=b"x")).status == 201


@pytest.mark.parametrize(("headers", "body"), [
    ({"X-Object-Meta-": "v"}, "Metadata name cannot be empty"),
    ({"X-Object-Meta-" + "n" * 129: "v"}, "Metadata name too long: x-object-meta-N" + "n" * 128),
    ({"X-Object-Meta-N": "v" * 257}, "Metadata value longer than 256: x-object-meta-N"),
    ({f"X-Object-Meta-K{i}": "v" for i in range(91)}, "Too many metadata items; max 90"),
    ({f"X-Object-Meta-K{i}": "v" * 250 for i in range(17)}, "Total metadata too large; max 4096"),
    ({"X-Anything": "v" * 8193}, "Header value too long: X-Anything"),
])
async def test_put_bad_metadata(
    st: ObjectStoreState, cluster: Cluster, headers: dict[str, str], body: str
) -> None:
    resp = await call(st, "PUT", headers=headers, body=DATA)
    assert resp.status == 400
    assert resp.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert await text(resp) == body
    assert stored_files(cluster) == []
    assert listings(st).listed() == {}


@pytest.mark.parametrize(("headers", "body"), [
    ({"X-Delete-At": "soon"}, "Non-integer X-Delete-At"),
    ({"X-Delete-At": "1.5"}, "Non-integer X-Delete-At"),
    ({"X-Delete-At": "1000"}, "X-Delete-At in past"),
    ({"X-Delete-After": "ten"}, "Non-integer X-Delete-After"),
    ({"X-Delete-After": "0"}, "X-Delete-After in past"),
    ({"X-Delete-After": "-5"}, "X-Delete-After in past"),
])
async def test_put_bad_expiry(st: ObjectStoreState, headers: dict[str, str], body: str) -> None:
    resp = await call(st, "PUT", headers=headers, body=DATA)
    assert (resp.status, await text(resp)) == (400, body)


async def test_put_delete_after_becomes_delete_at(st: ObjectStoreState) -> None:
    before = int(time.time())
    await put(st, **{"X-Delete-After": "100"})
    head = await call(st, "HEAD")
    delete_at = int(head.headers["X-Delete-At"])
    assert before + 100 <= delete_at <= int(time.time()) + 100
    assert len(head.headers["X-Delete-At"]) == 10
    assert "X-Delete-After" not in head.headers
    assert listings(st).listed()["o"].delete_at == delete_at


async def test_put_content_type_given_guessed_or_detected(st: ObjectStoreState) -> None:
    await put(st, "a.json", **{"Content-Type": "application/x-mine"})
    await put(st, "b.json")
    await put(st, "c.json", **{"Content-Type": "text/plain", "X-Detect-Content-Type": "true"})
    await put(st, "noext")
    types = {o: (await call(st, "HEAD", o)).headers["Content-Type"]
             for o in ("a.json", "b.json", "c.json", "noext")}
    assert types == {"a.json": "application/x-mine", "b.json": "application/json",
                     "c.json": "application/json", "noext": "application/octet-stream"}


async def test_put_swift_parameter_in_content_type_is_400(st: ObjectStoreState) -> None:
    resp = await call(st, "PUT", headers={"Content-Type": "text/plain;swift_bytes=5"}, body=DATA)
    assert resp.status == 400
    assert await text(resp) == "Invalid Content-Type, swift_* is not a valid parameter name."


async def test_put_etag_mismatch_is_422_and_stores_nothing(
    st: ObjectStoreState, cluster: Cluster
) -> None:
    resp = await call(st, "PUT", headers={"ETag": "0" * 32}, body=DATA)
    assert resp.status == 422
    assert "Unprocessable Entity" in await text(resp)
    assert stored_files(cluster) == []
    assert listings(st).listed() == {}
    assert (await call(st, "PUT", headers={"ETag": f'"{ETAG}"'}, body=DATA)).status == 201


async def test_put_if_none_match(st: ObjectStoreState) -> None:
    assert (await call(st, "PUT", headers={"If-None-Match": "*"}, body=DATA)).status == 201
    resp = await call(st, "PUT", headers={"If-None-Match": "*"}, body=b"other")
    assert resp.status == 412
    assert "Precondition Failed" in await text(resp)
    assert await (await call(st, "GET")).read() == DATA
    resp = await call(st, "PUT", headers={"If-None-Match": ETAG}, body=b"other")
    assert (resp.status, await text(resp)) == (400, "If-None-Match only supports *")
    # a deleted object no longer exists
    assert (await call(st, "DELETE")).status == 204
    assert (await call(st, "PUT", headers={"If-None-Match": "*"}, body=DATA)).status == 201


async def test_put_client_disconnect_leaves_nothing(
    st: ObjectStoreState, cluster: Cluster
) -> None:
    body = chunks(b"a" * 100_000, b"b" * 100_000, error=ClientDisconnect())
    resp = await call(st, "PUT", headers={"Content-Length": "1000000"}, body=body)
    assert resp.status == 499
    assert stored_files(cluster) == []
    assert listings(st).listed() == {}
    assert (await call(st, "GET")).status == 404


async def test_put_client_disconnect_keeps_the_previous_version(
    st: ObjectStoreState, cluster: Cluster
) -> None:
    await put(st)
    files = stored_files(cluster)
    body = chunks(b"new data", error=ClientDisconnect())
    resp = await call(st, "PUT", headers={"Transfer-Encoding": "chunked"}, body=body)
    assert resp.status == 499
    assert stored_files(cluster) == files
    assert await (await call(st, "GET")).read() == DATA


async def test_put_short_body_is_499_long_body_is_400(
    st: ObjectStoreState, cluster: Cluster
) -> None:
    resp = await call(st, "PUT", headers={"Content-Length": "10"}, body=chunks(b"12345"))
    assert resp.status == 499
    resp = await call(st, "PUT", headers={"Content-Length": "3"}, body=chunks(b"12345"))
    assert resp.status == 400
    assert stored_files(cluster) == []


async def test_put_bad_or_old_x_timestamp(st: ObjectStoreState) -> None:
    resp = await call(st, "PUT", headers={"X-Timestamp": "yesterday"}, body=DATA)
    assert resp.status == 400
    assert await text(resp) == \
        "X-Timestamp should be a UNIX timestamp float value; was 'yesterday'"
    await put(st)
    resp = await call(st, "PUT", headers={"X-Timestamp": "1000000000.00000"}, body=b"old")
    assert resp.status == 202
    assert await (await call(st, "GET")).read() == DATA


async def test_put_listing_overrides_from_middlewares(st: ObjectStoreState) -> None:
    await put(st, **{
        "Content-Type": "application/json",
        "X-Object-Sysmeta-Container-Update-Override-Etag": "slo-etag",
        "X-Object-Sysmeta-Container-Update-Override-Size": "12345",
        "X-Object-Sysmeta-Container-Update-Override-Content-Type": "text/x-link",
    })
    row = listings(st).listed()["o"]
    assert (row.etag, row.size, row.content_type) == ("slo-etag", 12345, "text/x-link")
    head = await call(st, "HEAD")
    assert head.headers["ETag"] == ETAG  # the object's own ETag
    assert head.headers["X-Object-Sysmeta-Container-Update-Override-Etag"] == "slo-etag"


async def test_quorum_not_met_is_503_and_stores_nothing(
    st: ObjectStoreState, cluster: Cluster
) -> None:
    for device in cluster.ring.devices[:2]:
        cluster.break_device(device)
    resp = await call(st, "PUT", body=DATA)
    assert resp.status == 503
    assert [f for f in stored_files(cluster) if f != "sda" and f != "sdb"] == []
    assert listings(st).listed() == {}


# -- container and authorization --------------------------------------------------------


def deny(status: int) -> Callable[[Request], Awaitable[Response | None]]:
    async def check(req: Request) -> Response | None:
        return error(status)
    return check


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "POST", "DELETE"])
async def test_missing_container(st: ObjectStoreState, method: str) -> None:
    resp = await call(st, method, container="nope", body=DATA if method == "PUT" else None)
    assert resp.status == 404
    # auth answers first: a caller who may not know gets 401, not 404
    resp = await call(st, method, container="nope", environ={"swift.authorize": deny(401)},
                      body=DATA if method == "PUT" else None)
    assert resp.status == 401


async def test_authorize_sees_the_container_acl(st: ObjectStoreState) -> None:
    listings(st).add_container("AUTH_t", "acl", read_acl=".r:*", write_acl="AUTH_x")
    seen: list[str | None] = []

    async def check(req: Request) -> Response | None:
        seen.append(req.environ["swift.acl"])
        return None

    env = {"swift.authorize": check}
    assert (await call(st, "PUT", container="acl", body=DATA, environ=env)).status == 201
    assert (await call(st, "GET", container="acl", environ=env)).status == 200
    assert (await call(st, "POST", container="acl", environ=env)).status == 202
    assert seen == ["AUTH_x", ".r:*", "AUTH_x"]
    resp = await call(st, "GET", container="acl", environ={"swift.authorize": deny(403)})
    assert resp.status == 403


# -- GET: ranges ----------------------------------------------------------------------


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-4", 0, 5),
    ("bytes=10-", 10, len(DATA)),
    ("bytes=-6", len(DATA) - 6, len(DATA)),
    ("bytes=30-1000", 30, len(DATA)),
    ("bytes=-1000", 0, len(DATA)),
    ("Bytes = 3-3", 3, 4),
])
async def test_single_range(st: ObjectStoreState, header: str, start: int, end: int) -> None:
    await put(st)
    resp = await call(st, "GET", headers={"Range": header})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert resp.headers["Content-Length"] == str(end - start)
    assert await resp.read() == DATA[start:end]


async def test_multiple_ranges_are_multipart(st: ObjectStoreState) -> None:
    await put(st, **{"Content-Type": "text/plain"})
    resp = await call(st, "GET", headers={"Range": "bytes=0-2,10-12,-3"})
    assert resp.status == 206
    ctype = resp.headers["Content-Type"]
    assert ctype.startswith("multipart/byteranges;boundary=")
    boundary = ctype.split("=", 1)[1].encode()
    body = await resp.read()
    assert int(resp.headers["Content-Length"]) == len(body)
    size = len(DATA)
    expected = b"".join(
        b"--" + boundary + b"\r\nContent-Type: text/plain\r\nContent-Range: bytes "
        + f"{s}-{e - 1}/{size}".encode() + b"\r\n\r\n" + DATA[s:e] + b"\r\n"
        for s, e in ((0, 3), (10, 13), (size - 3, size))
    ) + b"--" + boundary + b"--"
    assert body == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=36-40", "bytes=-0"])
async def test_unsatisfiable_range_is_416(st: ObjectStoreState, header: str) -> None:
    await put(st)
    resp = await call(st, "GET", headers={"Range": header})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(DATA)}"
    assert "Requested Range Not Satisfiable" in await text(resp)
    assert st.reader.opened == st.reader.closed  # type: ignore[attr-defined]


@pytest.mark.parametrize("header", [
    "bytes=5-3", "bytes=a-b", "items=0-1", "bytes=4", "bytes=-", "bytes=0-1,5-3", "",
])
async def test_invalid_range_is_ignored(st: ObjectStoreState, header: str) -> None:
    await put(st)
    resp = await call(st, "GET", headers={"Range": header})
    assert resp.status == 200
    assert await resp.read() == DATA


async def test_abusive_ranges_are_416(st: ObjectStoreState) -> None:
    await put(st)
    assert (await call(st, "GET", headers={"Range": "bytes=0-10,1-11,2-12"})).status == 416
    # as in swob, equal ranges do not count as overlapping
    resp = await call(st, "GET", headers={"Range": "bytes=0-10,0-10,0-10"})
    assert resp.status == 206
    await resp.close()
    many = "bytes=" + ",".join(f"{i}-{i}" for i in range(36)) + ",0-0" * 20
    assert (await call(st, "GET", headers={"Range": many})).status == 416


async def test_suffix_range_of_empty_object_is_200(st: ObjectStoreState) -> None:
    await put(st, data=b"")
    resp = await call(st, "GET", headers={"Range": "bytes=-5"})
    assert resp.status == 200
    assert await resp.read() == b""
    assert (await call(st, "GET", headers={"Range": "bytes=0-"})).status == 416


async def test_head_ignores_range(st: ObjectStoreState) -> None:
    await put(st)
    resp = await call(st, "HEAD", headers={"Range": "bytes=0-1"})
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(DATA))


# -- GET: conditionals ----------------------------------------------------------------


def http_date(offset: float) -> str:
    return formatdate(time.time() + offset, usegmt=True)


@pytest.mark.parametrize(("headers", "status"), [
    ({"If-Match": ETAG}, 200),
    ({"If-Match": f'"{ETAG}"'}, 200),
    ({"If-Match": f'"x", "{ETAG}"'}, 200),
    ({"If-Match": "*"}, 200),
    ({"If-Match": "nope"}, 412),
    ({"If-None-Match": ETAG}, 304),
    ({"If-None-Match": "*"}, 304),
    ({"If-None-Match": "nope"}, 200),
    ({"If-Modified-Since": "@@invalid@@"}, 200),
    ({"If-Modified-Since": http_date(3600)}, 304),
    ({"If-Modified-Since": http_date(-3600)}, 200),
    ({"If-Unmodified-Since": http_date(-3600)}, 412),
    ({"If-Unmodified-Since": http_date(3600)}, 200),
    # swob's precedence: If-None-Match before If-Match, ETags before dates
    ({"If-None-Match": ETAG, "If-Match": "nope"}, 304),
    ({"If-Match": "nope", "If-Modified-Since": http_date(3600)}, 412),
    ({"If-None-Match": "nope", "If-Modified-Since": http_date(3600)}, 304),
])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_conditional_requests(
    st: ObjectStoreState, method: str, headers: dict[str, str], status: int
) -> None:
    await put(st)
    resp = await call(st, method, headers=headers)
    assert resp.status == status
    body = await resp.read()
    if status != 200:
        assert body == b""
        assert resp.headers["Content-Length"] == "0"
        assert resp.headers["ETag"] == ETAG
    elif method == "GET":
        assert body == DATA
    assert st.reader.opened == st.reader.closed  # type: ignore[attr-defined]


async def test_if_modified_since_equal_to_last_modified_is_304(st: ObjectStoreState) -> None:
    last_modified = (await put(st)).headers["Last-Modified"]
    resp = await call(st, "GET", headers={"If-Modified-Since": last_modified})
    assert resp.status == 304
    resp = await call(st, "GET", headers={"If-Unmodified-Since": last_modified})
    assert resp.status == 200
    await resp.close()


async def test_missing_object_with_if_match_star_is_412(st: ObjectStoreState) -> None:
    assert (await call(st, "GET", headers={"If-Match": "*"})).status == 412
    assert (await call(st, "GET", headers={"If-Match": "abc"})).status == 404
    assert (await call(st, "GET")).status == 404


async def test_etag_is_at_and_ignore_range_for_middlewares(st: ObjectStoreState) -> None:
    await put(st, **{"X-Object-Sysmeta-Slo-Etag": "whole"})
    resp = await call(st, "GET", headers={
        "If-None-Match": "whole", "X-Backend-Etag-Is-At": "X-Object-Sysmeta-Missing, "
                                                          "x-object-sysmeta-slo-etag"})
    assert resp.status == 304
    resp = await call(st, "GET", headers={
        "Range": "bytes=0-1",
        "X-Backend-Ignore-Range-If-Metadata-Present": "X-Object-Sysmeta-Slo-Etag"})
    assert resp.status == 200
    assert await resp.read() == DATA


# -- GET: streaming and closing ---------------------------------------------------------


async def test_closing_an_unread_response_closes_the_replica(st: ObjectStoreState) -> None:
    data = os.urandom(3 * 1024 * 1024)
    await put(st, data=data)
    reader = st.reader
    assert isinstance(reader, TrackingReader)
    for headers in ({}, {"Range": "bytes=5-"}, {"Range": "bytes=0-1,5-6"}):
        resp = await call(st, "GET", headers=headers)
        assert reader.opened == reader.closed + 1
        await resp.close()
        assert reader.opened == reader.closed
    # half read, then closed
    resp = await call(st, "GET")
    assert not isinstance(resp.body, bytes)
    first = await anext(aiter(resp.body))
    assert first == data[: len(first)]
    await resp.close()
    assert reader.opened == reader.closed


async def test_large_object_round_trip(st: ObjectStoreState) -> None:
    data = os.urandom(9 * 1024 * 1024 + 7)
    await put(st, data=data)
    resp = await call(st, "GET")
    assert hashlib.md5(await resp.read()).hexdigest() == hashlib.md5(data).hexdigest()
    resp = await call(st, "GET", headers={"Range": "bytes=5000000-5000009"})
    assert await resp.read() == data[5000000:5000010]


# -- expiry ---------------------------------------------------------------------------


async def put_expired(st: ObjectStoreState, obj: str = "o") -> None:
    """An object whose X-Delete-At has passed (written with an X-Timestamp before it,
    as container sync may)."""
    now = time.time()
    await put(st, obj, **{"X-Timestamp": f"{now - 100:.5f}", "X-Delete-At": str(int(now) - 50)})


async def test_expired_object_reads_as_404(st: ObjectStoreState) -> None:
    await put_expired(st)
    assert (await call(st, "GET")).status == 404
    assert (await call(st, "HEAD")).status == 404
    assert (await call(st, "POST", headers={"X-Object-Meta-A": "b"})).status == 404
    assert (await call(st, "DELETE")).status == 404
    # the DELETE still placed a tombstone
    with pytest.raises(ObjectDeleted):
        await st.reader.open("AUTH_t", "c", "o")
    assert st.reader.opened == st.reader.closed  # type: ignore[attr-defined]


async def test_internal_callers_may_open_expired(st: ObjectStoreState) -> None:
    await put_expired(st)
    resp = await call(st, "GET", headers={"X-Backend-Open-Expired": "true"})
    assert resp.status == 200
    assert await resp.read() == DATA


async def test_put_if_none_match_over_expired_object(st: ObjectStoreState) -> None:
    await put_expired(st)
    assert (await call(st, "PUT", headers={"If-None-Match": "*"}, body=DATA)).status == 201


# -- POST -----------------------------------------------------------------------------


async def test_post_replaces_metadata_and_keeps_data(st: ObjectStoreState) -> None:
    await put(st, **{
        "Content-Type": "text/plain", "X-Object-Meta-Old": "1", "X-Object-Meta-Keep": "1",
        "X-Object-Sysmeta-Color": "blue", "X-Object-Transient-Sysmeta-Shape": "circle",
        "Content-Disposition": "inline", "X-Delete-After": "1000",
    })
    put_time = float((await call(st, "HEAD")).headers["X-Timestamp"])
    resp = await call(st, "POST", headers={
        "X-Object-Meta-Keep": "2", "X-Object-Meta-New": "3", "Content-Type": "text/x-new",
        "X-Object-Sysmeta-Color": "red", "Content-Encoding": "gzip",
        "X-Static-Large-Object": "True",
    })
    assert resp.status == 202
    assert resp.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert await text(resp) == ("<html><h1>Accepted</h1><p>The request is accepted for "
                                "processing.</p></html>")
    got = await call(st, "GET")
    assert await got.read() == DATA
    h = got.headers
    assert h["ETag"] == ETAG
    assert h["Content-Type"] == "text/x-new"
    assert (h.get("X-Object-Meta-Old"), h["X-Object-Meta-Keep"], h["X-Object-Meta-New"]) == \
        (None, "2", "3")
    assert h["X-Object-Sysmeta-Color"] == "blue"  # system metadata stays with the data
    assert "X-Object-Transient-Sysmeta-Shape" not in h
    assert "Content-Disposition" not in h  # allowed headers are replaced wholesale
    assert "X-Delete-At" not in h  # ... so a POST without X-Delete-At ends the expiry
    assert "X-Static-Large-Object" not in h
    assert h["Content-Encoding"] == "gzip"
    assert float(h["X-Timestamp"]) > put_time  # a new version
    row = listings(st).listed()["o"]
    assert (row.content_type, row.etag, row.size, row.delete_at) == \
        ("text/x-new", ETAG, len(DATA), None)


async def test_post_sets_expiry(st: ObjectStoreState) -> None:
    await put(st)
    resp = await call(st, "POST", headers={"X-Delete-After": "60"})
    assert resp.status == 202
    delete_at = int((await call(st, "HEAD")).headers["X-Delete-At"])
    assert abs(delete_at - (time.time() + 60)) < 5
    assert listings(st).listed()["o"].delete_at == delete_at
    # without Content-Type the old one stays
    assert (await call(st, "HEAD")).headers["Content-Type"] == "application/octet-stream"


async def test_post_keeps_one_version_on_disk(st: ObjectStoreState, cluster: Cluster) -> None:
    await put(st)
    before = stored_files(cluster)
    assert (await call(st, "POST", headers={"X-Object-Meta-A": "1"})).status == 202
    after = stored_files(cluster)
    assert len(after) == len(before) and after != before


@pytest.mark.parametrize(("headers", "body"), [
    ({"X-Object-Meta-": "x"}, "Metadata name cannot be empty"),
    ({"X-Delete-At": "abc"}, "Non-integer X-Delete-At"),
    ({"X-Delete-After": "0"}, "X-Delete-After in past"),
])
async def test_post_bad_headers_are_400_before_404(
    st: ObjectStoreState, headers: dict[str, str], body: str
) -> None:
    for obj in ("missing", "o"):
        if obj == "o":
            await put(st)
        resp = await call(st, "POST", obj, headers=headers)
        assert (resp.status, await text(resp)) == (400, body)


async def test_post_missing_object_is_404(st: ObjectStoreState) -> None:
    assert (await call(st, "POST", headers={"X-Object-Meta-A": "1"})).status == 404
    await put(st)
    assert (await call(st, "DELETE")).status == 204
    assert (await call(st, "POST", headers={"X-Object-Meta-A": "1"})).status == 404


# -- DELETE ---------------------------------------------------------------------------


async def test_delete(st: ObjectStoreState, cluster: Cluster) -> None:
    await put(st)
    resp = await call(st, "DELETE")
    assert resp.status == 204
    assert resp.body == b""
    assert (await call(st, "GET")).status == 404
    assert listings(st).listed() == {}
    resp = await call(st, "DELETE")
    assert resp.status == 404
    assert "Not Found" in await text(resp)


async def test_delete_never_written_object_is_404(st: ObjectStoreState) -> None:
    assert (await call(st, "DELETE", "never")).status == 404


async def test_delete_if_delete_at(st: ObjectStoreState) -> None:
    await put(st, **{"X-Delete-At": str(int(time.time()) + 1000)})
    delete_at = (await call(st, "HEAD")).headers["X-Delete-At"]
    resp = await call(st, "DELETE", headers={"X-If-Delete-At": "12345"})
    assert (resp.status, await text(resp)) == (412, "X-If-Delete-At and X-Delete-At do not match")
    resp = await call(st, "DELETE", headers={"X-If-Delete-At": "soon"})
    assert (resp.status, await text(resp)) == (400, "Bad X-If-Delete-At header value")
    assert (await call(st, "HEAD")).status == 200
    assert (await call(st, "DELETE", headers={"X-If-Delete-At": delete_at})).status == 204
    assert (await call(st, "HEAD")).status == 404
    assert (await call(st, "DELETE", "never", headers={"X-If-Delete-At": delete_at})).status \
        == 404
    with pytest.raises(ObjectNotFound):
        await st.reader.open("AUTH_t", "c", "never")  # no tombstone for a conditional miss


async def test_unknown_method_is_405(st: ObjectStoreState) -> None:
    resp = await call(st, "PATCH")
    assert resp.status == 405


# -- through ASGI -------------------------------------------------------------------------


async def asgi_call(
    st: ObjectStoreState, method: str, headers: list[tuple[bytes, bytes]],
    messages: list[dict[str, object]],
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One raw ASGI request to the object handler; ``messages`` are what the client sends."""

    async def handler(req: Request) -> Response:
        _version, account, container, obj = req.split()
        assert container is not None and obj is not None
        return await object_api.handle(st, req, account, container, obj)

    app = asgi(handler)
    incoming = list(messages)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/v1/AUTH_t/c/o",
             "raw_path": b"/v1/AUTH_t/c/o", "query_string": b"", "headers": headers}
    await app(scope, receive, send)  # type: ignore[arg-type]
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])  # type: ignore[misc]
    return start["status"], dict(start["headers"]), body  # type: ignore[arg-type, return-value]


async def test_asgi_disconnect_mid_upload_stores_nothing(
    st: ObjectStoreState, cluster: Cluster
) -> None:
    status, _, _ = await asgi_call(st, "PUT", [(b"content-length", b"100")], [
        {"type": "http.request", "body": b"x" * 40, "more_body": True},
        {"type": "http.disconnect"},
    ])
    assert status == 499
    assert stored_files(cluster) == []
    assert listings(st).listed() == {}


async def test_asgi_put_get_head(st: ObjectStoreState) -> None:
    status, headers, _ = await asgi_call(st, "PUT", [(b"transfer-encoding", b"chunked")], [
        {"type": "http.request", "body": DATA[:10], "more_body": True},
        {"type": "http.request", "body": DATA[10:], "more_body": False},
    ])
    assert (status, headers[b"etag"]) == (201, ETAG.encode())
    status, headers, body = await asgi_call(st, "GET", [(b"range", b"bytes=1-2")], [])
    assert (status, body, headers[b"content-length"]) == (206, DATA[1:3], b"2")
    status, headers, body = await asgi_call(st, "HEAD", [], [])
    assert (status, body, headers[b"content-length"]) == (200, b"", str(len(DATA)).encode())
    assert st.reader.opened == st.reader.closed  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_reads_take_one_replica_unless_x_newest(
    st: ObjectStoreState, cluster: Cluster, method: str
) -> None:
    """Swift's proxy: a GET or HEAD is answered by the first primary that has the
    object; ``X-Newest: true`` asks them all for the newest."""
    stale = cluster.primaries("o")[0]
    await put(st, "o", b"v1")
    cluster.break_device(stale)
    await put(st, "o", b"v2")
    cluster.repair_device(stale)
    one = await call(st, method, "o")
    assert one.headers["ETag"] == hashlib.md5(b"v1").hexdigest()
    newest = await call(st, method, "o", headers={"X-Newest": "true"})
    assert newest.headers["ETag"] == hashlib.md5(b"v2").hexdigest()
    if method == "GET":
        assert (await one.read(), await newest.read()) == (b"v1", b"v2")
    await one.close()
    await newest.close()
    assert isinstance(st.reader, TrackingReader) and st.reader.opened == st.reader.closed
