"""TempURL: signatures, expiry, prefixes, IP ranges, scopes and the headers a
temporary URL may set and see (against an in-memory Swift below it)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

import pytest
from mw_fakes import FakeSwift, Info, Listings, make_state

from onestack.object_store.http import Headers, Request, Response
from onestack.object_store.middleware import tempurl
from onestack.object_store.state import ObjectStoreState

ACCOUNT = "AUTH_t"
PATH = f"/v1/{ACCOUNT}/c/dir/o.txt"
KEY = "account-key"
CKEY = "container-key"


@pytest.fixture
def listings() -> Listings:
    lst = Listings()
    lst.accounts[ACCOUNT] = Info({"X-Account-Meta-Temp-Url-Key": KEY})
    lst.containers[(ACCOUNT, "c")] = Info({"X-Container-Meta-Temp-Url-Key-2": CKEY})
    return lst


@pytest.fixture
def st(tmp_path: Path, listings: Listings) -> ObjectStoreState:
    return make_state(tmp_path, listings)


@pytest.fixture
def store() -> FakeSwift:
    s = FakeSwift()
    s.put(PATH, b"hello", **{"X-Object-Meta-Secret": "s", "X-Object-Meta-Public-Color": "red",
                              "Content-Type": "text/plain"})
    s.put(f"/v1/{ACCOUNT}/c/other", b"other")
    return s


@pytest.fixture
def app(store: FakeSwift, st: ObjectStoreState) -> tempurl.TempURL:
    return tempurl.middleware(store, st)  # type: ignore[return-value]


def sign(method: str, path: str = PATH, key: str = KEY, expires: int | None = None,
         digest: str = "sha256", prefix: bool = False, ip: str | None = None) -> dict[str, str]:
    expires = int(time.time() + 60) if expires is None else expires
    body = f"{method}\n{expires}\n{'prefix:' if prefix else ''}{path}"
    if ip:
        body = f"ip={ip}\n" + body
    sig = hmac.new(key.encode(), body.encode(), digest).hexdigest()
    return {"temp_url_sig": sig, "temp_url_expires": str(expires)}


def request(method: str, query: dict[str, str], path: str = PATH, client: str = "10.0.0.1",
            **headers: str) -> Request:
    return Request(method, path, query=query, headers=Headers(headers), client=client)


async def test_get_with_a_valid_signature_reads_the_object(app: tempurl.TempURL,
                                                           store: FakeSwift) -> None:
    resp = await app(request("GET", sign("GET")))
    assert resp.status == 200
    assert await resp.read() == b"hello"
    seen = store.seen[-1]
    assert seen.environ["swift.authorize_override"] is True
    assert seen.environ["REMOTE_USER"] == ".wsgi.tempurl"
    assert resp.headers["Content-Disposition"] == (
        "attachment; filename=\"o.txt\"; filename*=UTF-8''o.txt")
    assert resp.headers["Expires"].endswith(" GMT")


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha512"])
async def test_every_allowed_digest_in_hex(app: tempurl.TempURL, digest: str) -> None:
    resp = await app(request("GET", sign("GET", digest=digest)))
    assert resp.status == 200


@pytest.mark.parametrize("urlsafe", [True, False])
async def test_base64_signatures_name_their_digest(app: tempurl.TempURL, urlsafe: bool) -> None:
    expires = int(time.time() + 60)
    raw = hmac.new(KEY.encode(), f"GET\n{expires}\n{PATH}".encode(), hashlib.sha512).digest()
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    sig = "sha512:" + encode(raw).decode().rstrip("=")
    resp = await app(request("GET", {"temp_url_sig": sig, "temp_url_expires": str(expires)}))
    assert resp.status == 200


async def test_iso8601_expiry(app: tempurl.TempURL) -> None:
    expires = int(time.time() + 120)
    q = sign("GET", expires=expires)
    q["temp_url_expires"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
    assert (await app(request("GET", q))).status == 200


async def _invalid(app: tempurl.TempURL, req: Request) -> None:
    resp = await app(req)
    assert resp.status == 401
    body = await resp.read()
    if req.method == "HEAD":
        assert body == b""
    else:
        assert body == b"401 Unauthorized: Temp URL invalid\n"
    assert resp.headers["WWW-Authenticate"] == 'Swift realm="unknown"'


async def test_expired_url_is_refused(app: tempurl.TempURL, store: FakeSwift) -> None:
    await _invalid(app, request("GET", sign("GET", expires=int(time.time() - 1))))
    assert store.seen == []


@pytest.mark.parametrize("tamper", ["sig", "path", "method", "expires", "key", "digest"])
async def test_tampered_urls_are_refused(app: tempurl.TempURL, tamper: str) -> None:
    q = sign("PUT" if tamper == "method" else "GET",
             key="wrong" if tamper == "key" else KEY)
    path = PATH
    if tamper == "sig":
        q["temp_url_sig"] = q["temp_url_sig"][:-1] + ("0" if q["temp_url_sig"][-1] != "0" else "1")
    elif tamper == "path":
        path = f"/v1/{ACCOUNT}/c/other"
    elif tamper == "expires":
        q["temp_url_expires"] = str(int(q["temp_url_expires"]) + 1)
    elif tamper == "digest":
        q["temp_url_sig"] = q["temp_url_sig"][:-2]
    await _invalid(app, request("GET", q, path))


async def test_missing_or_unreadable_parameters(app: tempurl.TempURL) -> None:
    q = sign("GET")
    await _invalid(app, request("GET", {"temp_url_sig": q["temp_url_sig"]}))
    await _invalid(app, request("GET", {"temp_url_expires": q["temp_url_expires"]}))
    await _invalid(app, request("GET", dict(q, temp_url_expires="soon")))
    await _invalid(app, request("GET", dict(q, temp_url_sig="sha256:!!!")))
    await _invalid(app, request("HEAD", dict(q, temp_url_sig="nothex")))


async def test_head_is_allowed_with_a_get_put_or_post_signature(app: tempurl.TempURL) -> None:
    for method in ("GET", "PUT", "POST", "HEAD"):
        resp = await app(request("HEAD", sign(method)))
        assert resp.status == 200, method
    await _invalid(app, request("HEAD", sign("DELETE")))


async def test_a_signature_is_for_its_method_only(app: tempurl.TempURL) -> None:
    await _invalid(app, request("PUT", sign("GET")))
    await _invalid(app, request("DELETE", sign("GET")))


async def test_put_and_delete(app: tempurl.TempURL, store: FakeSwift) -> None:
    path = f"/v1/{ACCOUNT}/c/new"
    req = request("PUT", sign("PUT", path), path)
    req.body = b"uploaded"
    assert (await app(req)).status == 201
    assert store.objects[path][1] == b"uploaded"
    assert (await app(request("DELETE", sign("DELETE", path), path))).status == 204
    assert path not in store.objects


async def test_a_url_needs_an_object_and_version_v1(app: tempurl.TempURL) -> None:
    await _invalid(app, request("GET", sign("GET", f"/v1/{ACCOUNT}/c"), f"/v1/{ACCOUNT}/c"))
    await _invalid(app, request("GET", sign("GET", f"/v1/{ACCOUNT}/c/"), f"/v1/{ACCOUNT}/c/"))
    p = f"/v1.0/{ACCOUNT}/c/dir/o.txt"
    await _invalid(app, request("GET", sign("GET", p), p))
    await _invalid(app, request("GET", sign("GET"), f"/v1/{ACCOUNT}//o"))


async def test_container_key_signs_too_and_limits_to_its_container(
        app: tempurl.TempURL, store: FakeSwift) -> None:
    resp = await app(request("GET", sign("GET", key=CKEY)))
    assert resp.status == 200
    check = store.seen[-1].environ["swift.authorize"]
    assert await check(Request("GET", f"/v1/{ACCOUNT}/c/x")) is None
    denied = await check(Request("GET", f"/v1/{ACCOUNT}/other/x"))
    assert denied is not None and denied.status == 401
    # an account key reaches the whole account, and no further
    resp = await app(request("GET", sign("GET")))
    check = store.seen[-1].environ["swift.authorize"]
    assert await check(Request("GET", f"/v1/{ACCOUNT}/other/x")) is None
    denied = await check(Request("GET", "/v1/AUTH_else/c/x"))
    assert denied is not None and denied.status == 401


async def test_no_keys_no_access(tmp_path: Path, store: FakeSwift) -> None:
    app = tempurl.middleware(store, make_state(tmp_path, Listings()))
    await _invalid(app, request("GET", sign("GET")))  # type: ignore[arg-type]


async def test_second_account_key_and_deleted_account(tmp_path: Path, store: FakeSwift) -> None:
    lst = Listings()
    lst.accounts[ACCOUNT] = Info({"x-account-meta-temp-url-key-2": "k2"})
    app = tempurl.middleware(store, make_state(tmp_path, lst))
    assert (await app(request("GET", sign("GET", key="k2")))).status == 200
    lst.accounts[ACCOUNT] = Info({"x-account-meta-temp-url-key-2": "k2"}, exists=False)
    await _invalid(app, request("GET", sign("GET", key="k2")))  # type: ignore[arg-type]


async def test_prefix_urls(app: tempurl.TempURL) -> None:
    q = sign("GET", f"/v1/{ACCOUNT}/c/dir/", prefix=True)
    q["temp_url_prefix"] = "dir/"
    assert (await app(request("GET", q))).status == 200
    await _invalid(app, request("GET", q, f"/v1/{ACCOUNT}/c/other"))
    q2 = dict(q, temp_url_prefix="di")
    await _invalid(app, request("GET", q2))


async def test_ip_ranges(app: tempurl.TempURL) -> None:
    q = sign("GET", ip="10.0.0.0/24")
    q["temp_url_ip_range"] = "10.0.0.0/24"
    assert (await app(request("GET", q, client="10.0.0.7"))).status == 200
    await _invalid(app, request("GET", q, client="10.0.1.7"))
    await _invalid(app, request("GET", q, client=""))
    # the range is signed: a wider one is a different signature
    await _invalid(app, request("GET", dict(q, temp_url_ip_range="10.0.0.0/8"), client="10.0.0.7"))
    bad = sign("GET", ip="10.0.0.1/24")
    bad["temp_url_ip_range"] = "10.0.0.1/24"  # host bits set: no network
    await _invalid(app, request("GET", bad, client="10.0.0.1"))


async def test_only_the_temp_url_parameters_go_on(app: tempurl.TempURL, store: FakeSwift) -> None:
    q = dict(sign("GET"), **{"multipart-manifest": "get", "symlink": "get", "filename": "a b.pdf"})
    resp = await app(request("GET", q))
    assert resp.status == 200
    assert set(store.seen[-1].query) == {"temp_url_sig", "temp_url_expires", "filename"}
    assert resp.headers["Content-Disposition"] == (
        "attachment; filename=\"a b.pdf\"; filename*=UTF-8''a%20b.pdf")


async def test_inline_disposition(app: tempurl.TempURL) -> None:
    resp = await app(request("GET", dict(sign("GET"), inline="")))
    assert resp.headers["Content-Disposition"] == "inline"
    resp = await app(request("GET", dict(sign("GET"), inline="", filename="x.txt")))
    assert resp.headers["Content-Disposition"] == (
        "inline; filename=\"x.txt\"; filename*=UTF-8''x.txt")


async def test_stored_disposition_is_kept_without_a_filename(app: tempurl.TempURL,
                                                             store: FakeSwift) -> None:
    store.put(f"/v1/{ACCOUNT}/c/d", b"x", **{"Content-Disposition": "attachment; filename=z"})
    path = f"/v1/{ACCOUNT}/c/d"
    resp = await app(request("GET", sign("GET", path), path))
    assert resp.headers["Content-Disposition"] == "attachment; filename=z"


async def test_private_metadata_and_owner_headers_are_hidden(tmp_path: Path,
                                                             st: ObjectStoreState) -> None:
    async def below(req: Request) -> Response:
        return Response(200, Headers({"X-Object-Meta-Secret": "s",
                                      "X-Object-Meta-Public-Color": "red",
                                      "X-Container-Read": ".r:*",
                                      "X-Account-Meta-Temp-Url-Key": KEY}), b"")

    resp = await tempurl.middleware(below, st)(request("GET", sign("GET")))
    assert resp.status == 200
    assert "X-Object-Meta-Secret" not in resp.headers
    assert resp.headers["X-Object-Meta-Public-Color"] == "red"
    assert "X-Container-Read" not in resp.headers
    assert "X-Account-Meta-Temp-Url-Key" not in resp.headers


async def test_incoming_headers_are_cleaned(app: tempurl.TempURL, store: FakeSwift) -> None:
    path = f"/v1/{ACCOUNT}/c/new"
    req = request("PUT", sign("PUT", path), path, **{"X-Timestamp": "1", "X-Open-Expired": "t",
                                                     "X-Container-Read": ".r:*",
                                                     "X-Object-Meta-Fine": "y"})
    assert (await app(req)).status == 201
    headers = store.seen[-1].headers
    assert "x-timestamp" not in headers and "x-open-expired" not in headers
    assert "x-container-read" not in headers
    assert headers["x-object-meta-fine"] == "y"


@pytest.mark.parametrize("header", ["X-Object-Manifest", "X-Symlink-Target"])
async def test_no_pointers_through_a_temp_url(app: tempurl.TempURL, store: FakeSwift,
                                              header: str) -> None:
    path = f"/v1/{ACCOUNT}/c/new"
    resp = await app(request("PUT", sign("PUT", path), path, **{header: "c/other"}))
    assert resp.status == 400
    assert await resp.read() == f"The header '{header}' is not allowed in this tempurl".encode()
    assert store.seen == []
    # a GET may carry it: it points at nothing
    assert (await app(request("GET", sign("GET"), **{header: "c/x"}))).status == 200


async def test_requests_without_temp_url_pass_untouched(app: tempurl.TempURL,
                                                        store: FakeSwift) -> None:
    resp = await app(request("GET", {"format": "json"}, **{"X-Timestamp": "1"}))
    assert resp.status == 200
    seen = store.seen[-1]
    assert "swift.authorize_override" not in seen.environ
    assert seen.query == {"format": "json"} and "x-timestamp" in seen.headers
    assert "Content-Disposition" not in resp.headers
    assert (await app(request("OPTIONS", {"temp_url_sig": "x"}))).status == 200


async def test_failed_reads_get_no_disposition(app: tempurl.TempURL) -> None:
    path = f"/v1/{ACCOUNT}/c/missing"
    resp = await app(request("GET", sign("GET", path), path))
    assert resp.status == 404
    assert "Content-Disposition" not in resp.headers


async def test_container_root_only_for_staticweb(tmp_path: Path, st: ObjectStoreState) -> None:
    generator: dict[str, str] = {}

    async def below(req: Request) -> Response:
        return Response(200, Headers(generator), b"<html/>")

    app = tempurl.middleware(below, st)
    root = f"/v1/{ACCOUNT}/c/"
    q = dict(sign("GET", root, prefix=True), temp_url_prefix="")
    await _invalid(app, request("GET", q, root))  # type: ignore[arg-type]
    generator["X-Backend-Content-Generator"] = "staticweb"
    resp = await app(request("GET", q, root))
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == "inline"


async def test_configured_digests_are_the_only_ones(store: FakeSwift,
                                                    st: ObjectStoreState) -> None:
    app = tempurl.TempURL(store, st, allowed_digests=("sha256", "sha512"))
    await _invalid(app, request("GET", sign("GET", digest="sha1")))
    assert (await app(request("GET", sign("GET")))).status == 200


def test_registered_in_info(app: tempurl.TempURL, st: ObjectStoreState) -> None:
    info = st.capabilities["tempurl"]
    assert info["methods"] == ["GET", "HEAD", "PUT", "POST", "DELETE"]
    assert info["allowed_digests"] == ["sha1", "sha256", "sha512"]
    assert info["deprecated_digests"] == ["sha1"]
    assert info["incoming_remove_headers"] == ["x-timestamp", "x-open-expired"]
    assert info["outgoing_remove_headers"] == ["x-object-meta-*"]
    assert info["outgoing_allow_headers"] == ["x-object-meta-public-*"]


def test_extract_digest() -> None:
    assert tempurl.extract_digest("a" * 40) == ("sha1", "a" * 40)
    assert tempurl.extract_digest("sha256:" + base64.b64encode(b"\x01\x02").decode()) == (
        "sha256", "0102")
    for bad in ("a" * 41, "zz" * 20, "sha1:***"):
        with pytest.raises(ValueError):
            tempurl.extract_digest(bad)


def test_get_hmac_puts_the_ip_range_first() -> None:
    mac = tempurl.get_hmac("GET", "/v1/a/c/o", 10, "k", "sha1", ip_range="1.2.3.4")
    assert mac == hmac.new(b"k", b"ip=1.2.3.4\nGET\n10\n/v1/a/c/o", "sha1").hexdigest()


async def test_signature_over_the_mounted_path(app: tempurl.TempURL) -> None:
    # clients that sign the catalog endpoint's path include the service's mount prefix
    q = sign("GET", "/object-store" + PATH)
    req = request("GET", q)
    await _invalid(app, req)
    req = request("GET", q)
    req.script_name = "/object-store"
    assert (await app(req)).status == 200
