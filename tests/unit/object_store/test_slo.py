"""The ``slo`` middleware over the real object controller: manifests PUT, read,
listed and deleted as Swift's static large objects are."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from lo_chain import Chain, build, md5
from objstore_cluster import Cluster

from onestack.object_store.middleware.slo import StaticLargeObject
from onestack.object_store.middleware.slo.results import best_match

A, B, C = b"aaaaa", b"bbbbbbb", b"ccc"


@pytest.fixture
def lo(cluster: Cluster, tmp_path: Path) -> Chain:
    return build(cluster, tmp_path / "data")


@pytest.fixture(params=[False, True], ids=["backend-helps", "plain-backend"])
def lo_any(cluster: Cluster, tmp_path: Path, request: pytest.FixtureRequest) -> Chain:
    """Either object layer: the answers must not depend on its help."""
    return build(cluster, tmp_path / "data", plain_backend=request.param)


async def segments(lo: Chain) -> list[dict]:
    for name, data in (("a", A), ("b", B), ("c", C)):
        await lo.put(f"/segs/{name}", data)
    return [{"path": f"/segs/{n}", "etag": md5(d), "size_bytes": len(d)}
            for n, d in (("a", A), ("b", B), ("c", C))]


async def put_manifest(lo: Chain, manifest: list[dict], path: str = "/c/m", **headers: str):
    body = json.dumps(manifest).encode()
    return await lo.req("PUT", path, body, query={"multipart-manifest": "put"}, **headers)


def slo_etag(*parts: str) -> str:
    return md5("".join(parts))


# -- PUT --------------------------------------------------------------------------------


async def test_manifest_put_then_get_is_the_concatenation(lo: Chain) -> None:
    resp = await put_manifest(lo, await segments(lo))
    etag = slo_etag(md5(A), md5(B), md5(C))
    assert resp.status == 201
    assert resp.headers["Etag"] == f'"{etag}"'

    resp, body = await lo.get("/c/m")
    assert resp.status == 200
    assert body == A + B + C
    assert resp.headers["Content-Length"] == str(len(A + B + C))
    assert resp.headers["Etag"] == f'"{etag}"'
    assert resp.headers["X-Static-Large-Object"] == "True"
    assert "swift_bytes" not in resp.headers["Content-Type"]

    head = await lo.req("HEAD", "/c/m")
    assert (head.status, head.body) == (200, b"")
    assert head.headers["Content-Length"] == str(len(A + B + C))
    assert head.headers["Etag"] == f'"{etag}"'


async def test_listing_shows_total_size_and_slo_etag(lo: Chain) -> None:
    await put_manifest(lo, await segments(lo))
    row = lo.listings.listed()["m"]
    manifest = await lo.req("GET", "/c/m", query={"multipart-manifest": "get"})
    manifest_md5 = manifest.headers["Etag"]
    etag = slo_etag(md5(A), md5(B), md5(C))
    # the container counts the manifest's own bytes; the listing shows the total
    assert row.size == int(manifest.headers["Content-Length"])
    assert row.content_type == f"application/octet-stream;swift_bytes={len(A + B + C)}"
    assert row.etag == f"{manifest_md5}; slo_etag={etag}"

    resp, body = await lo.get("/c", query={"format": "json"})
    item = next(i for i in json.loads(body) if i["name"] == "m")
    assert item["hash"] == manifest_md5
    assert item["slo_etag"] == f'"{etag}"'
    assert item["bytes"] == len(A + B + C)
    assert resp.headers["Content-Length"] == str(len(body))


async def test_stored_manifest_is_swifts_form(lo: Chain) -> None:
    await put_manifest(lo, await segments(lo))
    resp, body = await lo.get("/c/m", query={"multipart-manifest": "get"})
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    stored = json.loads(body)
    assert [s["name"] for s in stored] == ["/segs/a", "/segs/b", "/segs/c"]
    assert stored[0]["hash"] == md5(A) and stored[0]["bytes"] == len(A)
    assert stored[0]["content_type"] == "application/octet-stream"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", stored[0]["last_modified"])

    resp, raw = await lo.get("/c/m", query={"multipart-manifest": "get", "format": "raw"})
    assert json.loads(raw) == [{"etag": md5(d), "path": f"/segs/{n}", "size_bytes": len(d)}
                               for n, d in (("a", A), ("b", B), ("c", C))]
    assert resp.headers["Etag"] == md5(raw)
    # the raw form is what a PUT takes: a copy of the manifest
    again = await lo.req("PUT", "/c/m2", raw, query={"multipart-manifest": "put"})
    assert again.status == 201
    assert again.headers["Etag"] == f'"{slo_etag(md5(A), md5(B), md5(C))}"'


async def test_bad_json_and_bad_segments_store_nothing(lo: Chain) -> None:
    resp = await lo.req("PUT", "/c/m", b"{nope", query={"multipart-manifest": "put"})
    assert (resp.status, resp.body) == (400, b"Manifest must be valid JSON.\n")
    resp = await lo.req("PUT", "/c/m", b'{"a": 1}', query={"multipart-manifest": "put"})
    assert (resp.status, resp.body) == (400, b"Manifest must be a list.\n")
    resp = await put_manifest(lo, [
        {"path": "/segs/a", "junk": 1}, {"path": "noslash"}, 5, {"etag": "x"},
        {"path": "/segs/a", "range": "5-1"}, {"data": "!!"},
        {"path": "/segs/a", "size_bytes": 0}, {"path": "/c/m"},
        {"path": "/segs/a", "range": "0-1,3-4"}, {"path": "/segs/a", "size_bytes": "x"},
    ])
    assert resp.status == 400
    assert resp.body.decode().splitlines() == [
        'Index 0: extraneous keys "junk"',
        ("Index 1: path does not refer to an object. Path must be of the form "
         "/container/object."),
        "Index 2: not a JSON object",
        "Index 3: expected keys to include one of 'data' or 'path'",
        "Index 4: invalid range",
        "Index 5: data must be valid base64",
        "Index 6: too small; each segment must be at least 1 byte.",
        "Index 7: manifest must not include itself as a segment",
        "Index 8: multiple ranges (only one allowed)",
        "Index 9: invalid size_bytes",
    ]
    resp = await put_manifest(lo, [{"data": base64.b64encode(b"x").decode()}])
    assert resp.body == b"Inline data segments require at least one object-backed segment.\n"
    assert (await lo.req("HEAD", "/c/m")).status == 404


async def test_segment_mismatches_are_listed_and_nothing_is_stored(lo: Chain) -> None:
    segs = await segments(lo)
    segs[0]["etag"] = "0" * 32
    segs[1]["size_bytes"] = 99
    segs[2]["path"] = "/segs/missing thing"
    resp = await put_manifest(lo, segs)
    assert resp.status == 400
    assert resp.headers["Content-Type"] == "text/plain"
    assert resp.body.decode() == ("Errors:\n/segs/a, Etag Mismatch\n/segs/b, Size Mismatch\n"
                                  "/segs/missing%20thing, 404 Not Found\n")
    resp = await put_manifest(lo, segs, Accept="application/json")
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(resp.body) == {"Errors": [["/segs/a", "Etag Mismatch"],
                                                ["/segs/b", "Size Mismatch"],
                                                ["/segs/missing%20thing", "404 Not Found"]]}
    assert (await lo.req("HEAD", "/c/m")).status == 404
    assert "m" not in lo.listings.listed()


async def test_empty_segment_only_last(lo: Chain) -> None:
    await lo.put("/segs/empty", b"")
    segs = await segments(lo)
    resp = await put_manifest(lo, [{"path": "/segs/empty"}, *segs])
    assert resp.body == b"Errors:\n/segs/empty, Too small; each segment must be at least 1 byte.\n"
    resp = await put_manifest(lo, [*segs, {"path": "/segs/empty"}])
    assert resp.status == 201


async def test_limits(cluster: Cluster, tmp_path: Path) -> None:
    lo = build(cluster, tmp_path / "data", max_manifest_segments=2, max_manifest_size=300)
    segs = await segments(lo)
    resp = await put_manifest(lo, segs)
    assert (resp.status, resp.body) == (413, b"Number of object-backed segments must be <= 2")
    resp = await put_manifest(lo, segs * 3)
    assert (resp.status, resp.body) == (413, b"Manifest File > 300 bytes")
    resp = await lo.req("PUT", "/c/m", None, query={"multipart-manifest": "put"})
    assert resp.status == 411
    assert lo.st.capabilities["slo"] == {
        "max_manifest_segments": 2, "max_manifest_size": 300, "min_segment_size": 1,
        "yield_frequency": 10, "allow_async_delete": False}


async def test_client_etag_must_match(lo: Chain) -> None:
    segs = await segments(lo)
    assert (await put_manifest(lo, segs, Etag="f" * 32)).status == 422
    assert (await lo.req("HEAD", "/c/m")).status == 404
    etag = slo_etag(md5(A), md5(B), md5(C))
    assert (await put_manifest(lo, segs, Etag=f'"{etag}"')).status == 201


async def test_ranges_and_inline_data(lo: Chain) -> None:
    await segments(lo)
    data = base64.b64encode(b"--").decode()
    resp = await put_manifest(lo, [{"path": "/segs/b", "range": "2-4"}, {"data": data},
                                   {"path": "/segs/a", "range": "-2"},
                                   {"path": "/segs/c", "range": "0-"}])
    assert resp.status == 201
    expect = slo_etag(f"{md5(B)}:2-4;", md5(b"--"), f"{md5(A)}:3-4;", md5(C))
    assert resp.headers["Etag"] == f'"{expect}"'
    resp, body = await lo.get("/c/m")
    assert body == B[2:5] + b"--" + A[3:] + C
    stored = json.loads((await lo.get("/c/m", query={"multipart-manifest": "get"}))[1])
    assert stored[1] == {"data": data}
    assert "range" not in stored[3]  # the whole object is no range
    resp = await put_manifest(lo, [{"path": "/segs/c", "range": "5-9"}], path="/c/n")
    assert resp.body == b"Errors:\n/segs/c, Unsatisfiable Range\n"


async def test_nested_manifests(lo: Chain) -> None:
    await put_manifest(lo, await segments(lo), path="/segs/inner")
    inner = (await lo.req("HEAD", "/segs/inner")).headers
    await lo.put("/segs/d", b"dd")
    resp = await put_manifest(lo, [
        {"path": "/segs/d"},
        {"path": "/segs/inner", "etag": inner["Etag"].strip('"'),
         "size_bytes": int(inner["Content-Length"])},
        {"path": "/segs/inner", "range": "4-6"},
    ])
    assert resp.status == 201
    whole = A + B + C
    _, body = await lo.get("/c/m")
    assert body == b"dd" + whole + whole[4:7]
    stored = json.loads((await lo.get("/c/m", query={"multipart-manifest": "get"}))[1])
    assert stored[1]["sub_slo"] is True
    assert stored[1]["bytes"] == len(whole)
    resp, body = await lo.get("/c/m", Range="bytes=3-8")
    assert (resp.status, body) == (206, (b"dd" + whole)[3:9])


async def test_range_requests(lo_any: Chain) -> None:
    lo = lo_any
    await put_manifest(lo, await segments(lo))
    whole = A + B + C
    resp, body = await lo.get("/c/m", Range="bytes=3-9")
    assert (resp.status, body) == (206, whole[3:10])
    assert resp.headers["Content-Range"] == f"bytes 3-9/{len(whole)}"
    assert resp.headers["Content-Length"] == "7"
    resp, body = await lo.get("/c/m", Range="bytes=-4")
    assert body == whole[-4:]
    resp, body = await lo.get("/c/m", Range="bytes=99-")
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(whole)}"
    resp, body = await lo.get("/c/m", Range="bytes=0-1,6-12")
    assert resp.status == 206
    ctype = resp.headers["Content-Type"]
    boundary = ctype.split("boundary=")[1]
    assert ctype.startswith("multipart/byteranges;")
    assert len(body) == int(resp.headers["Content-Length"])
    parts = body.split(f"--{boundary}".encode())
    assert parts[0] == b"" and parts[-1] == b"--"
    assert parts[1].endswith(b"\r\n\r\n" + whole[0:2] + b"\r\n")
    assert b"Content-Range: bytes 6-12/15" in parts[2]
    assert parts[2].endswith(whole[6:13] + b"\r\n")
    head = await lo.req("HEAD", "/c/m", Range="bytes=1-2")
    assert (head.status, head.headers["Content-Length"]) == (200, str(len(whole)))


async def test_conditional_requests_use_the_slo_etag(lo_any: Chain) -> None:
    lo = lo_any
    await put_manifest(lo, await segments(lo))
    etag = slo_etag(md5(A), md5(B), md5(C))
    resp, _ = await lo.get("/c/m", If_Match=f'"{etag}"')
    assert resp.status == 200
    resp, body = await lo.get("/c/m", If_Match='"nope"')
    assert (resp.status, body) == (412, b"")
    resp, body = await lo.get("/c/m", If_None_Match=f'"{etag}"')
    assert (resp.status, body) == (304, b"")
    assert resp.headers["Etag"] == f'"{etag}"'
    head = await lo.req("HEAD", "/c/m", If_None_Match=etag)
    assert head.status == 304


async def test_unmet_conditions_read_no_segments(lo: Chain) -> None:
    await put_manifest(lo, await segments(lo))
    etag = slo_etag(md5(A), md5(B), md5(C))
    lo.calls.clear()
    resp, _ = await lo.get("/c/m", If_None_Match=f'"{etag}"')
    assert resp.status == 304
    # the manifest's own answer, then its headers once more: no body, no segment
    assert [c[:2] for c in lo.calls] == [("GET", "/v1/AUTH_t/c/m"), ("HEAD", "/v1/AUTH_t/c/m")]


async def test_part_number(lo: Chain) -> None:
    await put_manifest(lo, await segments(lo))
    resp, body = await lo.get("/c/m", query={"part-number": "2"})
    assert (resp.status, body) == (206, B)
    assert resp.headers["Content-Range"] == f"bytes 5-11/{len(A + B + C)}"
    assert resp.headers["X-Parts-Count"] == "3"
    head = await lo.req("HEAD", "/c/m", query={"part-number": "3"})
    assert (head.status, head.headers["Content-Length"]) == (206, str(len(C)))
    resp, body = await lo.get("/c/m", query={"part-number": "4"})
    assert (resp.status, body) == (416, b"The requested part number is not satisfiable")
    resp, body = await lo.get("/c/m", query={"part-number": "x"})
    assert (resp.status, body) == (400, b"Part number must be an integer greater than 0")


async def test_missing_first_segment_is_409_later_ones_cut_the_body(lo: Chain) -> None:
    await put_manifest(lo, await segments(lo))
    assert (await lo.req("DELETE", "/segs/b")).status == 204
    resp, body = await lo.get("/c/m")
    assert resp.status == 200
    assert body == A  # the response ends where the missing segment starts
    assert int(resp.headers["Content-Length"]) > len(body)

    await lo.put("/segs/a", b"AAAAA")  # same size, other content: no longer the segment
    resp, body = await lo.get("/c/m")
    assert (resp.status, body) == (409, resp.body)
    assert b"Conflict" in body


async def test_reserved_header(lo: Chain) -> None:
    resp = await lo.req("PUT", "/c/o", b"x", X_Static_Large_Object="True",
                        Content_Type="text/plain")
    assert resp.status == 400
    assert resp.body.startswith(b"X-Static-Large-Object is a reserved header.")
    assert (await lo.req("POST", "/c/o", X_Static_Large_Object="True")).status == 400


async def test_heartbeat_reports_the_outcome_in_the_body(lo: Chain) -> None:
    segs = await segments(lo)
    resp = await lo.req("PUT", "/c/hb", json.dumps(segs).encode(),
                        query={"multipart-manifest": "put", "heartbeat": "on"},
                        Accept="application/json")
    assert resp.status == 202
    body = await resp.read()
    assert body.startswith(b" \r\n\r\n")
    outcome = json.loads(body)
    assert outcome["Response Status"] == "201 Created"
    assert outcome["Etag"] == f'"{slo_etag(md5(A), md5(B), md5(C))}"'
    assert outcome["Errors"] == []

    segs[0]["etag"] = "bad"
    resp = await lo.req("PUT", "/c/hb2", json.dumps(segs).encode(),
                        query={"multipart-manifest": "put", "heartbeat": "on"})
    text = (await resp.read()).decode()
    assert "Response Status: 400 Bad Request\n" in text
    assert text.endswith("Errors:\n/segs/a, Etag Mismatch\n")
    assert (await lo.req("HEAD", "/c/hb2")).status == 404


async def test_delete_with_segments(lo: Chain) -> None:
    await put_manifest(lo, await segments(lo))
    resp = await lo.req("DELETE", "/c/m", query={"multipart-manifest": "delete"})
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(resp.body))  # done in time: no stream
    body = (await resp.read()).decode()
    assert body == ("Number Deleted: 4\nNumber Not Found: 0\nResponse Body: \n"
                    "Response Status: 200 OK\nErrors:\n")
    for path in ("/c/m", "/segs/a", "/segs/b", "/segs/c"):
        assert (await lo.req("HEAD", path)).status == 404


async def test_delete_nested_json_and_errors(lo: Chain) -> None:
    await put_manifest(lo, await segments(lo), path="/segs/inner")
    await lo.put("/segs/d", b"dd")
    await put_manifest(lo, [{"path": "/segs/inner"}, {"path": "/segs/d"}])
    resp = await lo.req("DELETE", "/c/m", query={"multipart-manifest": "delete"},
                        Accept="application/json")
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(await resp.read()) == {
        "Response Status": "200 OK", "Response Body": "", "Number Deleted": 6,
        "Number Not Found": 0, "Errors": []}
    assert lo.listings.listed("AUTH_t", "segs") == {}

    await lo.put("/c/plain", b"x")
    resp = await lo.req("DELETE", "/c/plain", query={"multipart-manifest": "delete"})
    body = (await resp.read()).decode()
    assert "Response Status: 400 Bad Request\n" in body
    assert body.endswith("Errors:\n/c/plain, Not an SLO manifest\n")
    assert (await lo.req("HEAD", "/c/plain")).status == 200

    resp = await lo.req("DELETE", "/c/none", query={"multipart-manifest": "delete"},
                        Accept="application/xml")
    body = (await resp.read()).decode()
    assert body.startswith("<delete>\n<number_deleted>0</number_deleted>\n"
                           "<number_not_found>1</number_not_found>\n")


async def test_slow_delete_sends_whitespace_first(lo: Chain) -> None:
    await put_manifest(lo, await segments(lo))
    assert isinstance(lo.app, StaticLargeObject)
    lo.app.yield_frequency = 0  # any delete takes longer than that
    resp = await lo.req("DELETE", "/c/m", query={"multipart-manifest": "delete"},
                        Accept="text/xml")
    assert "Content-Length" not in resp.headers
    body = await resp.read()
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    assert b"\r\n\r\n<delete>\n<number_deleted>4</number_deleted>\n" in body
    assert body.endswith(b"<response_status>200 OK</response_status>\n<errors>\n</errors>\n"
                         b"</delete>\n")


def test_best_match_follows_swob() -> None:
    offers = ("text/plain", "application/json", "application/xml", "text/xml")
    assert best_match(None, offers) == "text/plain"
    assert best_match("application/json", offers) == "application/json"
    assert best_match("*/*;q=0.5, text/xml", offers) == "text/xml"
    assert best_match("text/*", offers) == "text/plain"
    assert best_match("image/png", offers) is None
    with pytest.raises(ValueError):
        best_match("garbage", offers)
