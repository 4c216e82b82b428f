"""Bulk delete and archive extraction (against an in-memory Swift below the
middleware): counts, errors, formats, limits and streaming."""

from __future__ import annotations

import asyncio
import io
import json
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from mw_fakes import FakeSwift, Source, make_state, stream

from onestack.object_store.asgi import ClientDisconnect
from onestack.object_store.http import Headers, Request, Response
from onestack.object_store.middleware import bulk
from onestack.object_store.state import ObjectStoreState

ACCOUNT = "/v1/AUTH_t"


@pytest.fixture
def st(tmp_path: Path) -> ObjectStoreState:
    return make_state(tmp_path)


@pytest.fixture
def store() -> FakeSwift:
    return FakeSwift()


@pytest.fixture
def app(store: FakeSwift, st: ObjectStoreState) -> bulk.Bulk:
    return bulk.middleware(store, st)  # type: ignore[return-value]


def delete_request(names: list[str], accept: str | None = None, path: str = ACCOUNT,
                   **headers: str) -> Request:
    data = "\n".join(names).encode()
    h = Headers({"Content-Length": str(len(data)), "Content-Type": "text/plain",
                 "X-Auth-Token": "tok"})
    if accept:
        h["Accept"] = accept
    h.update(headers)
    return Request("POST", path, query={"bulk-delete": ""}, headers=h, body=stream(data))


def archive(files: dict[str, bytes], mode: str = "w", pax: dict[str, dict[str, str]] | None = None,
            dirs: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if pax and name in pax:
                info.pax_headers = pax[name]
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def extract_request(data: bytes | Source, kind: str = "tar", path: str = ACCOUNT,
                    accept: str | None = None, **headers: str) -> Request:
    size = len(data.data) if isinstance(data, Source) else len(data)
    h = Headers({"Content-Length": str(size), "X-Auth-Token": "tok"})
    if accept:
        h["Accept"] = accept
    h.update(headers)
    body = data if isinstance(data, Source) else stream(data)
    return Request("PUT", path, query={"extract-archive": kind}, headers=h, body=body)


def parse_text(body: bytes) -> dict[str, str]:
    out = {}
    for line in body.decode().strip().splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            out[k] = v
    return out


async def run(app: bulk.Bulk, req: Request) -> tuple[Response, bytes]:
    resp = await app(req)
    return resp, await resp.read()


# -- bulk delete ------------------------------------------------------------------------

async def test_bulk_delete_counts_deleted_and_missing(app: bulk.Bulk, store: FakeSwift) -> None:
    for i in range(30):
        store.put(f"{ACCOUNT}/c/o{i}")
    store.put(f"{ACCOUNT}/c/sp%ce \u00e9")
    names = [f"/c/o{i}" for i in range(30)] + ["c/sp%25ce%20%C3%A9", "/c/missing", "/c"]
    resp, body = await run(app, delete_request(names, "application/json"))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    result = json.loads(body)
    assert result == {"Number Deleted": 32, "Number Not Found": 1, "Response Status": "200 OK",
                      "Response Body": "", "Errors": []}
    assert store.objects == {} and store.containers == set()
    deletes = [s for s in store.seen if s.method == "DELETE"]
    assert deletes[-1].path == f"{ACCOUNT}/c"  # the container after its objects
    assert all(s.headers["X-Auth-Token"] == "tok" and s.environ["swift.source"] == "BD"
               for s in deletes)


async def test_bulk_delete_text_is_the_default(app: bulk.Bulk, store: FakeSwift) -> None:
    store.put(f"{ACCOUNT}/c/o")
    resp, body = await run(app, delete_request(["/c/o"]))
    assert resp.headers["Content-Type"] == "text/plain"
    assert body.decode().strip() == ("Number Deleted: 1\nNumber Not Found: 0\n"
                                     "Response Body: \nResponse Status: 200 OK\nErrors:")


async def test_bulk_delete_errors_in_xml(app: bulk.Bulk, store: FakeSwift) -> None:
    store.put(f"{ACCOUNT}/c/o")
    store.put(f"{ACCOUNT}/d/o")
    store.fail[("DELETE", f"{ACCOUNT}/d/o")] = 503
    resp, body = await run(app, delete_request(["/c/o", "/d/o", "/d"], "text/xml"))
    assert resp.headers["Content-Type"] == "text/xml"
    root = ElementTree.fromstring(body)
    assert root.tag == "delete"
    assert root.findtext("number_deleted") == "1"
    assert root.findtext("response_status") == "502 Bad Gateway"
    errors = [(o.findtext("name"), o.findtext("status")) for o in root.iter("object")]
    assert errors == [("/d/o", "503 Service Unavailable"), ("/d", "409 Conflict")]


async def test_bulk_delete_with_nothing_to_delete(app: bulk.Bulk) -> None:
    _, body = await run(app, delete_request([""]))
    result = parse_text(body)
    assert result["Response Status"] == "400 Bad Request"
    assert result["Response Body"] == "Invalid bulk delete."


async def test_bulk_delete_limit(store: FakeSwift, st: ObjectStoreState) -> None:
    app = bulk.Bulk(store, st, max_deletes_per_request=3)
    _, body = await run(app, delete_request(["/c/1", "/c/2", "/c/3", "/c/4"]))
    result = parse_text(body)
    assert result["Response Status"] == "413 Request Entity Too Large"
    assert result["Response Body"] == "Maximum Bulk Deletes: 3 per request"
    assert store.seen == []


async def test_bulk_delete_stops_after_too_many_failures(store: FakeSwift,
                                                         st: ObjectStoreState) -> None:
    app = bulk.Bulk(store, st, max_failed_deletes=2, delete_concurrency=1)
    for i in range(5):
        store.put(f"{ACCOUNT}/c/o{i}")
        store.fail[("DELETE", f"{ACCOUNT}/c/o{i}")] = 500
    _, body = await run(app, delete_request([f"/c/o{i}" for i in range(5)]))
    result = parse_text(body)
    assert result["Response Status"] == "400 Bad Request"
    assert result["Response Body"] == "Max delete failures exceeded"
    assert len([s for s in store.seen if s.method == "DELETE"]) == 2


async def test_bulk_delete_refusals(app: bulk.Bulk, store: FakeSwift) -> None:
    _, body = await run(app, delete_request(["/c/o"], **{"Content-Type": "application/json"}))
    assert parse_text(body)["Response Status"] == "406 Not Acceptable"
    req = delete_request(["/c/o"])
    del req.headers["content-length"]
    _, body = await run(app, req)
    assert parse_text(body)["Response Status"] == "411 Length Required"
    resp, body = await run(app, delete_request(["/c/o"], accept="image/png"))
    assert resp.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert parse_text(body)["Response Status"] == "406 Not Acceptable"
    _, body = await run(app, delete_request(["/c/" + "x" * 5000]))
    assert parse_text(body)["Response Status"] == "400 Bad Request"
    assert parse_text(body)["Response Body"] == "Invalid File Name"
    assert store.seen == []


async def test_bulk_delete_bad_utf8_is_a_412(app: bulk.Bulk) -> None:
    _, body = await run(app, delete_request(["/c/%FF"]))
    assert "/c/%FF, 412 Precondition Failed" in body.decode()


async def test_heartbeat_while_working(store: FakeSwift, st: ObjectStoreState) -> None:
    app = bulk.Bulk(store, st, yield_frequency=0.01)
    store.put(f"{ACCOUNT}/c/o")
    store.delay = 0.05
    resp = await app(delete_request(["/c/o"], "application/json"))
    chunks = [c async for c in resp.body]  # type: ignore[union-attr]
    assert chunks[0] == b" "
    assert chunks[-1].startswith(b"\r\n\r\n{")
    assert json.loads(b"".join(chunks))["Number Deleted"] == 1


async def test_closing_the_reply_stops_the_work(store: FakeSwift, st: ObjectStoreState) -> None:
    app = bulk.Bulk(store, st, yield_frequency=0.01, delete_concurrency=1)
    for i in range(50):
        store.put(f"{ACCOUNT}/c/o{i}")
    store.delay = 0.02
    resp = await app(delete_request([f"/c/o{i}" for i in range(50)]))
    body = resp.body
    assert await anext(body) == b" "  # type: ignore[call-overload]
    await resp.close()
    seen = len(store.seen)
    await asyncio.sleep(0.1)
    assert len(store.seen) == seen < 50


async def test_other_requests_pass_through(app: bulk.Bulk, store: FakeSwift) -> None:
    store.put(f"{ACCOUNT}/c/o")
    resp = await app(Request("DELETE", f"{ACCOUNT}/c/o"))
    assert resp.status == 204
    resp = await app(Request("PUT", f"{ACCOUNT}/c", query={"extract-archive": "zip"}))
    assert resp.status == 400
    assert await resp.read() == b"Unsupported archive format"


# -- extract archive ----------------------------------------------------------------------

@pytest.mark.parametrize("kind,mode", [("tar", "w"), ("tar.gz", "w:gz"), ("tar.bz2", "w:bz2"),
                                       (".TAR.GZ", "w:gz")])
async def test_extract_into_the_account(app: bulk.Bulk, store: FakeSwift, kind: str,
                                        mode: str) -> None:
    data = archive({"c1/a.txt": b"a", "./c1/sub/b.txt": b"b" * 100_000, "c2/c": b"",
                    "top-level": b"ignored"}, mode, dirs=("c1", "c1/sub"))
    resp, body = await run(app, extract_request(data, kind, accept="application/json"))
    assert resp.status == 200
    result = json.loads(body)
    assert result == {"Number Files Created": 3, "Response Status": "201 Created",
                      "Response Body": "", "Errors": []}
    assert store.objects[f"{ACCOUNT}/c1/a.txt"][1] == b"a"
    assert store.objects[f"{ACCOUNT}/c1/sub/b.txt"][1] == b"b" * 100_000
    assert store.objects[f"{ACCOUNT}/c2/c"][1] == b""
    assert store.containers == {f"{ACCOUNT}/c1", f"{ACCOUNT}/c2"}
    heads = [s for s in store.seen if s.method == "HEAD"]
    assert [h.path for h in heads] == [f"{ACCOUNT}/c1", f"{ACCOUNT}/c2"]


async def test_extract_into_a_container_prefix_with_metadata(app: bulk.Bulk,
                                                             store: FakeSwift) -> None:
    store.containers.add(f"{ACCOUNT}/cont")
    pax = {"a.txt": {"SCHILY.xattr.user.mime_type": "text/x-thing",
                     "LIBARCHIVE.xattr.user.meta.lunch": "caf\u00e9",
                     "SCHILY.xattr.user.stuff": "ignored"}}
    data = archive({"a.txt": b"A"}, pax=pax)
    extra = {"X-Object-Meta-Src": "tar", "X-Delete-After": "60", "X-Object-Meta-": "nameless"}
    _, body = await run(app, extract_request(data, path=f"{ACCOUNT}/cont/pre/", **extra))
    assert parse_text(body)["Number Files Created"] == "1"
    assert store.objects[f"{ACCOUNT}/cont/pre/a.txt"][1] == b"A"
    put = [s for s in store.seen if s.method == "PUT"][-1]
    assert put.headers["Content-Type"] == "text/x-thing"
    assert put.headers["X-Object-Meta-lunch"] == "caf\u00e9".encode().decode("latin-1")
    assert put.headers["X-Object-Meta-Src"] == "tar"
    assert put.headers["X-Delete-After"] == "60"
    assert put.headers["Content-Length"] == "1"
    assert "X-Object-Meta-" not in put.headers and "x-object-meta-stuff" not in put.headers
    assert put.environ["swift.source"] == "EA"


async def test_bad_archives(app: bulk.Bulk, store: FakeSwift) -> None:
    _, body = await run(app, extract_request(b"this is not a tar file" * 100))
    result = parse_text(body)
    assert result["Response Status"] == "400 Bad Request"
    assert result["Response Body"].startswith("Invalid Tar File: ")
    _, body = await run(app, extract_request(b"not gzip", "tar.gz"))
    assert parse_text(body)["Response Body"] == "Invalid Tar File: not a gzip file"
    _, body = await run(app, extract_request(archive({}), "tar"))
    assert parse_text(body)["Response Body"] == "Invalid Tar File: No Valid Files"
    assert store.objects == {}


async def test_truncated_archive(app: bulk.Bulk, store: FakeSwift) -> None:
    data = archive({"c/a": b"a" * 10, "c/b": b"b" * 100_000})
    _, body = await run(app, extract_request(data[:20_000]))
    result = parse_text(body)
    assert result["Response Status"] == "400 Bad Request"
    assert result["Response Body"] == "Invalid Tar File: unexpected end of data"
    assert f"{ACCOUNT}/c/b" not in store.objects


async def test_extract_failures_are_listed(app: bulk.Bulk, store: FakeSwift) -> None:
    store.fail[("PUT", f"{ACCOUNT}/c/bad")] = 503
    data = archive({"c/good": b"1", "c/bad": b"2"})
    _, body = await run(app, extract_request(data, accept="application/json"))
    result = json.loads(body)
    assert result["Number Files Created"] == 1
    assert result["Response Status"] == "502 Bad Gateway"
    assert result["Errors"] == [["c/bad", "503 Service Unavailable"]]


async def test_extract_container_limit(store: FakeSwift, st: ObjectStoreState) -> None:
    app = bulk.Bulk(store, st, max_containers_per_extraction=1)
    _, body = await run(app, extract_request(archive({"a/1": b"", "b/1": b""})))
    result = parse_text(body)
    assert result["Response Status"] == "400 Bad Request"
    assert result["Response Body"] == "More than 1 containers to create from tar."


async def test_extract_unauthorized_container_ends_it(app: bulk.Bulk, store: FakeSwift) -> None:
    store.fail[("HEAD", f"{ACCOUNT}/a")] = 401
    _, body = await run(app, extract_request(archive({"a/1": b"", "b/1": b""})))
    assert parse_text(body)["Response Status"] == "401 Unauthorized"
    assert store.objects == {}


async def test_extract_needs_a_length(app: bulk.Bulk) -> None:
    req = extract_request(archive({"a/1": b""}))
    del req.headers["content-length"]
    _, body = await run(app, req)
    assert parse_text(body)["Response Status"] == "411 Length Required"
    req = extract_request(archive({"a/1": b""}), **{"Transfer-Encoding": "chunked"})
    del req.headers["content-length"]
    _, body = await run(app, req)
    assert parse_text(body)["Response Status"] == "201 Created"


async def test_extract_streams_the_archive(app: bulk.Bulk, store: FakeSwift) -> None:
    big = os.urandom(4 * bulk.READ_AHEAD)  # incompressible: the archive is as big
    source = Source(archive({"c/first": b"1", "c/big": big}, "w:gz"), 8192)
    taken_at_first_put: list[int] = []

    async def below(req: Request) -> Response:
        if req.method == "PUT" and req.path.endswith("/first"):
            taken_at_first_put.append(source.taken)
        if req.method == "PUT" and req.path.count("/") > 3:
            size = sum([len(c) async for c in req.stream()])
            assert size == int(req.headers["content-length"])
            return Response(201)
        return await store(req)

    app.app = below
    _, body = await run(app, extract_request(source, "tar.gz"))
    assert parse_text(body)["Number Files Created"] == "2"
    # no more than the read-ahead was taken from the body before the first file went on
    assert taken_at_first_put[0] <= bulk.READ_AHEAD + 65536 < len(source.data)


def test_best_match() -> None:
    opts = bulk.ACCEPTABLE_FORMATS
    assert bulk.best_match(None, opts) == "text/plain"
    assert bulk.best_match("application/json", opts) == "application/json"
    assert bulk.best_match("*/*", opts) == "text/plain"
    assert bulk.best_match("text/*;q=0.5, application/xml", opts) == "application/xml"
    assert bulk.best_match("application/*;q=0.9, text/xml", opts) == "text/xml"
    assert bulk.best_match("image/png", opts) is None
    with pytest.raises(ValueError):
        bulk.best_match("garbage", opts)
    with pytest.raises(ValueError):
        bulk.best_match("text/plain;q=1;q=2", opts)


def test_registered_in_info(app: bulk.Bulk, st: ObjectStoreState) -> None:
    assert st.capabilities["bulk_delete"] == {"max_deletes_per_request": 10000,
                                              "max_failed_deletes": 1000}
    assert st.capabilities["bulk_upload"] == {"max_containers_per_extraction": 10000,
                                              "max_failed_extractions": 1000}


async def test_pile_runs_at_most_width_at_once() -> None:
    running = peak = 0

    async def job(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        return n

    got = [n async for n in bulk.pile(job, range(20), 3)]
    assert sorted(got) == list(range(20)) and peak == 3



async def test_client_gone_mid_archive(app: bulk.Bulk, store: FakeSwift,
                                       caplog: pytest.LogCaptureFixture) -> None:
    data = archive({"c/a": b"a" * 3_000_000, "c/b": b"b"})

    async def vanishing() -> AsyncIterator[bytes]:
        yield data[:1_000_000]
        raise ClientDisconnect()

    req = extract_request(data)
    req.body = vanishing()
    _, body = await run(app, req)
    assert parse_text(body)["Response Status"] == "499 Client Disconnect"
    assert f"{ACCOUNT}/c/b" not in store.objects
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
