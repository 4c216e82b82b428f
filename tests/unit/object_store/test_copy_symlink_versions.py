"""The copy, symlink and versioning middlewares' own rules (the whole behaviour is
tested through the cloud in tests/api/object_store/test_copy_symlink_versions.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mw_fakes import FakeSwift, make_state

from onestack.object_store.http import Headers, HTTPError, Request
from onestack.object_store.middleware import copy, symlink
from onestack.object_store.middleware.versioned_writes import legacy
from onestack.object_store.middleware.versioned_writes import object_versioning as ov
from onestack.object_store.timestamp import Timestamp


def request(method: str, path: str, **headers: str) -> Request:
    return Request(method, path, headers=Headers(headers))


@pytest.mark.parametrize(("value", "expected"), [
    ("c/o", ("c", "o")),
    ("/c/o", ("c", "o")),
    ("c/o/deeper/", ("c", "o/deeper/")),
    ("c%2Fx/o%20y", ("c", "x/o y")),
])
def test_path_header(value: str, expected: tuple[str, str]) -> None:
    req = request("PUT", "/v1/a/c/o", **{"X-Copy-From": value})
    assert copy.check_path_header(req, "x-copy-from", "bad") == expected


@pytest.mark.parametrize("value", ["", "c", "/c", "c/", "/c/", "//o", "/"])
def test_bad_path_header(value: str) -> None:
    req = request("PUT", "/v1/a/c/o", **{"X-Copy-From": value})
    with pytest.raises(HTTPError) as err:
        copy.check_path_header(req, "x-copy-from", "bad form")
    assert (err.value.response.status, err.value.response.body) == (412, b"bad form")


def test_prefers_json() -> None:
    assert copy._prefers_json("application/json")
    assert copy._prefers_json("text/plain;q=0.5, application/json")
    assert not copy._prefers_json("")
    assert not copy._prefers_json("*/*")
    assert not copy._prefers_json("application/json;q=0.1, text/*")


async def test_copy_streams_source_into_put(tmp_path: Path) -> None:
    below = FakeSwift()
    below.put("/v1/a/c/o", b"payload", **{"X-Object-Meta-A": "1", "Content-Type": "text/x"})
    app = copy.middleware(below, make_state(tmp_path))
    resp = await app(request("COPY", "/v1/a/c/o", Destination="c/o2"))
    assert resp.status == 201
    get, put = below.seen
    assert (get.method, get.path, get.headers["X-Newest"]) == ("GET", "/v1/a/c/o", "true")
    assert (put.method, put.path) == ("PUT", "/v1/a/c/o2")
    assert put.headers["Content-Length"] == "7"
    assert put.headers["X-Object-Meta-A"] == "1"
    assert put.environ["swift.source"] == "SSC"
    assert "X-Copy-From" not in put.headers and "Destination" not in put.headers
    assert below.objects["/v1/a/c/o2"][1] == b"payload"
    assert resp.headers["X-Copied-From"] == "c/o"


async def test_copy_heartbeat_sends_spaces_until_done(tmp_path: Path) -> None:
    below = FakeSwift()
    below.put("/v1/a/c/o", b"payload")
    st = make_state(tmp_path)
    st.extras["copy_yield_frequency"] = 0.01
    app = copy.middleware(below, st)
    below.delay = 0.05
    req = request("PUT", "/v1/a/c/o2", **{"X-Copy-From": "c/o", "Content-Length": "0"})
    req.query["heartbeat"] = "on"
    resp = await app(req)
    assert resp.status == 202
    chunks = [c async for c in resp.body]  # type: ignore[union-attr]
    assert len(chunks) > 2 and all(c == b" " for c in chunks[:-1])
    text = chunks[-1].decode()
    assert "Response Status: 201 Created\n" in text
    assert "X-Copied-From: c/o\n" in text
    assert text.endswith("Errors:\n")


def test_symlink_listing_item() -> None:
    item = {"name": "l", "hash": "d41d8cd98f00b204e9800998ecf8427e; symlink_target=c/o%20x; "
            "symlink_target_etag=abc; symlink_target_bytes=12; slo_etag=xyz", "bytes": 0}
    out = symlink.listing_item(dict(item), "v1", "AUTH_a")
    assert out == {"name": "l", "bytes": 0, "symlink_path": "/v1/AUTH_a/c/o%20x",
                   "hash": "d41d8cd98f00b204e9800998ecf8427e; slo_etag=xyz",
                   "symlink_etag": "abc", "symlink_bytes": 12}
    other = symlink.listing_item({"hash": "e; symlink_target=c/o; symlink_target_account=B"},
                                 "v1", "A")
    assert other["symlink_path"] == "/v1/B/c/o"
    assert symlink.listing_item({"subdir": "x/"}, "v1", "A") == {"subdir": "x/"}


def test_version_names_sort_newest_first() -> None:
    old, new = Timestamp.parse("1700000000.00001"), Timestamp.parse("1700000000.00002")
    names = [ov.versions_object_name("o", t.normal) for t in (old, new)]
    assert sorted(names) == names[::-1]
    assert ov.parse_versions_object_name(names[0]) == ("o", old.normal)
    assert ov.parse_versions_object_name("plain") == ("plain", None)
    assert ov.versions_container_name("c") == "\x00versions\x00c"
    with pytest.raises(ValueError):
        ov.reserved_name("a\x00b")


def test_legacy_names() -> None:
    assert legacy.versions_prefix("obj") == "003obj/"
    assert legacy.versions_prefix("é" * 10) == "014" + "é" * 10 + "/"  # UTF-8 bytes
    ts = Timestamp.parse("1700000000.5")
    assert legacy.versions_name("o", ts) == "001o/1700000000.50000"


@pytest.mark.parametrize(("headers", "expected"), [
    ({"X-Versions-Location": "v"},
     {"X-Container-Sysmeta-Versions-Location": "v",
      "X-Container-Sysmeta-Versions-Mode": "stack"}),
    ({"X-History-Location": "h", "X-Remove-Versions-Location": "x"},
     {"X-Container-Sysmeta-Versions-Location": "h",
      "X-Container-Sysmeta-Versions-Mode": "history"}),
    ({"X-Versions-Location": "v", "X-History-Location": ""},
     {"X-Container-Sysmeta-Versions-Location": "v",
      "X-Container-Sysmeta-Versions-Mode": "stack"}),
    ({"X-Versions-Location": ""},
     {"X-Container-Sysmeta-Versions-Location": "", "X-Container-Sysmeta-Versions-Mode": ""}),
    ({"X-Remove-History-Location": "1"},
     {"X-Container-Sysmeta-Versions-Location": "", "X-Container-Sysmeta-Versions-Mode": ""}),
    ({"X-Container-Meta-A": "b"}, {"X-Container-Meta-A": "b"}),
])
def test_legacy_flags_become_sysmeta(headers: dict[str, str], expected: dict[str, str]) -> None:
    req = request("POST", "/v1/a/c", **headers)
    legacy._translate_flags(req)
    assert dict(req.headers.items()) == expected


def test_legacy_flags_both_set() -> None:
    req = request("PUT", "/v1/a/c", **{"X-Versions-Location": "a", "X-History-Location": "b"})
    with pytest.raises(HTTPError) as err:
        legacy._translate_flags(req)
    assert err.value.response.status == 400


def test_versions_listing_json_roundtrip() -> None:
    # what a listing of the versions container holds maps back to user names
    name = ov.versions_object_name("dir/o", "1700000000.12345")
    entry = json.loads(json.dumps({"name": name}))
    assert ov.parse_versions_object_name(entry["name"]) == ("dir/o", "1700000000.12345")
