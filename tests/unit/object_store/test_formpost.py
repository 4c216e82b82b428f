"""FormPost: signed browser forms become streamed object PUTs (against an in-memory
Swift below the middleware)."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

import pytest
from mw_fakes import FakeSwift, Info, Listings, Source, make_state, stream

from onestack.object_store.http import Headers, Request, Response, read_all
from onestack.object_store.middleware import formpost
from onestack.object_store.state import ObjectStoreState

ACCOUNT = "AUTH_t"
CONTAINER = f"/v1/{ACCOUNT}/c"
KEY = "secret"
BOUNDARY = "----WebKitFormBoundaryAbC123"


@pytest.fixture
def st(tmp_path: Path) -> ObjectStoreState:
    lst = Listings()
    lst.accounts[ACCOUNT] = Info({"X-Account-Meta-Temp-Url-Key": KEY})
    lst.containers[(ACCOUNT, "c")] = Info({"X-Container-Meta-Temp-Url-Key": "ckey"})
    return make_state(tmp_path, lst)


@pytest.fixture
def store() -> FakeSwift:
    s = FakeSwift()
    s.containers.add(CONTAINER)
    return s


@pytest.fixture
def app(store: FakeSwift, st: ObjectStoreState) -> formpost.FormPost:
    return formpost.middleware(store, st)  # type: ignore[return-value]


def signature(path: str, redirect: str, size: int, count: int, expires: int,
              key: str = KEY, digest: str = "sha256") -> str:
    body = f"{path}\n{redirect}\n{size}\n{count}\n{expires}"
    return hmac.new(key.encode(), body.encode(), digest).hexdigest()


def form(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes, str | None]]) -> bytes:
    out = b""
    for name, value in fields:
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                f"{value}\r\n").encode()
    for name, filename, data, ctype in files:
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                f"filename=\"{filename}\"\r\n").encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def signed_fields(path: str = CONTAINER + "/up/", redirect: str = "", size: int = 1 << 20,
                  count: int = 5, expires: int | None = None, key: str = KEY,
                  digest: str = "sha256") -> list[tuple[str, str]]:
    expires = int(time.time() + 60) if expires is None else expires
    fields = [("max_file_size", str(size)), ("max_file_count", str(count)),
              ("expires", str(expires)),
              ("signature", signature(path, redirect, size, count, expires, key, digest))]
    if redirect:
        fields.insert(0, ("redirect", redirect))
    return fields


def post(body: bytes | Source, path: str = CONTAINER + "/up/",
         sizes: tuple[int, ...] = (7, 1, 4096, 3)) -> Request:
    content = body if isinstance(body, Source) else stream(body, sizes)
    return Request("POST", path, headers=Headers({
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}), body=content)


async def text(resp: Response) -> str:
    return (await resp.read()).decode()


async def test_upload_with_redirect(app: formpost.FormPost, store: FakeSwift) -> None:
    body = form(signed_fields(redirect="https://example.com/done?x=1"),
                [("f1", "a.txt", b"first file\r\n--not a boundary", "text/plain"),
                 ("f2", "b.bin", b"\x00" * 5000, None)])
    resp = await app(post(body))
    assert resp.status == 303
    assert resp.headers["Location"] == "https://example.com/done?x=1&status=201&message="
    assert b"Click to continue" in await resp.read()
    assert store.objects[CONTAINER + "/up/a.txt"][1] == b"first file\r\n--not a boundary"
    assert store.objects[CONTAINER + "/up/a.txt"][0]["content-type"] == "text/plain"
    assert store.objects[CONTAINER + "/up/b.bin"][1] == b"\x00" * 5000
    puts = [s for s in store.seen if s.method == "PUT"]
    assert all(s.environ["swift.source"] == "FP" and s.environ["swift.authorize_override"]
               and s.headers["transfer-encoding"] == "chunked" and not s.query for s in puts)


async def test_upload_without_redirect_answers_in_text(app: formpost.FormPost,
                                                       store: FakeSwift) -> None:
    resp = await app(post(form(signed_fields(), [("f", "x", b"data", None)])))
    assert resp.status == 201
    assert resp.headers["Content-Type"] == "text/plain"
    assert await text(resp) == "201 Created"


@pytest.mark.parametrize("sizes", [(1,), (2, 3), (65536,), (39, 40, 41)])
async def test_any_chunking_of_the_body(app: formpost.FormPost, store: FakeSwift,
                                        sizes: tuple[int, ...]) -> None:
    data = bytes(range(256)) * 40 + b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n"
    resp = await app(post(form(signed_fields(), [("f", "x", data, None)]), sizes=sizes))
    assert resp.status == 201, await text(resp)
    assert store.objects[CONTAINER + "/up/x"][1] == data


async def test_container_path_and_container_key(app: formpost.FormPost,
                                                store: FakeSwift) -> None:
    fields = signed_fields(path=CONTAINER, key="ckey", digest="sha512")
    resp = await app(post(form(fields, [("f", "y.txt", b"y", None)]), path=CONTAINER))
    assert resp.status == 201, await text(resp)
    assert CONTAINER + "/y.txt" in store.objects


async def test_files_are_streamed_not_buffered(app: formpost.FormPost, store: FakeSwift) -> None:
    big = b"z" * (2 * 1024 * 1024)
    source = Source(form(signed_fields(size=len(big)), [("f", "big", big, None)]), 4096)
    taken_at_first_chunk: list[int] = []

    async def below(req: Request) -> Response:
        async for _ in req.stream():
            taken_at_first_chunk.append(source.taken)
            break
        await read_all(req.body)
        return Response(201)

    app.app = below
    resp = await app(post(source))
    assert resp.status == 201
    # the PUT had its first bytes when a small part of the body had arrived
    assert taken_at_first_chunk[0] < 256 * 1024


async def test_expired_form(app: formpost.FormPost, store: FakeSwift) -> None:
    fields = signed_fields(expires=int(time.time() - 1))
    resp = await app(post(form(fields, [("f", "x", b"data", None)])))
    assert resp.status == 401
    assert await text(resp) == "FormPost: Form Expired"
    assert store.objects == {}


@pytest.mark.parametrize("change", ["signature", "path", "max_file_size", "key"])
async def test_bad_signatures(app: formpost.FormPost, store: FakeSwift, change: str) -> None:
    fields = dict(signed_fields(key="other" if change == "key" else KEY))
    if change == "signature":
        fields["signature"] = "0" * 64
    elif change == "max_file_size":
        fields["max_file_size"] = "999999"
    path = CONTAINER + ("/elsewhere/" if change == "path" else "/up/")
    resp = await app(post(form(list(fields.items()), [("f", "x", b"data", None)]), path=path))
    assert resp.status == 401
    assert await text(resp) == "FormPost: Invalid Signature"
    assert store.objects == {}


async def test_no_keys_outside_a_container(app: formpost.FormPost) -> None:
    resp = await app(post(form(signed_fields(f"/v1/{ACCOUNT}"), [("f", "x", b"d", None)]),
                          path=f"/v1/{ACCOUNT}"))
    assert resp.status == 401


async def test_max_file_size_exceeded_stores_nothing(app: formpost.FormPost,
                                                     store: FakeSwift) -> None:
    resp = await app(post(form(signed_fields(size=10), [("f", "x", b"x" * 11, None)])))
    assert resp.status == 400
    assert await text(resp) == "FormPost: max_file_size exceeded"
    assert store.objects == {}


async def test_max_file_size_exceeded_when_the_layer_below_swallows_it(
        app: formpost.FormPost) -> None:
    async def below(req: Request) -> Response:
        try:
            await read_all(req.body)
        except formpost.FileTooLarge:
            return Response(499)
        return Response(201)

    app.app = below
    resp = await app(post(form(signed_fields(size=10), [("f", "x", b"x" * 11, None)])))
    assert resp.status == 400
    assert await text(resp) == "FormPost: max_file_size exceeded"


async def test_max_file_count(app: formpost.FormPost, store: FakeSwift) -> None:
    files = [("f1", "one", b"1", None), ("f2", "two", b"2", None)]
    resp = await app(post(form(signed_fields(count=1), files)))
    assert resp.status == 400
    assert await text(resp) == "400 Bad Request\r\nFormPost: Max File Count Exceeded"
    assert set(store.objects) == {CONTAINER + "/up/one"}


async def test_redirect_carries_the_failure(app: formpost.FormPost) -> None:
    files = [("f1", "one", b"1", None), ("f2", "two", b"2", None)]
    resp = await app(post(form(signed_fields(count=1, redirect="http://x/y"), files)))
    assert resp.status == 303
    assert resp.headers["Location"] == (
        "http://x/y?status=400&message=max%20file%20count%20exceeded")


async def test_no_files(app: formpost.FormPost) -> None:
    resp = await app(post(form(signed_fields(), [])))
    assert resp.status == 400
    assert await text(resp) == "400 Bad Request\r\nFormPost: No Files To Process"


async def test_invalid_starting_boundary(app: formpost.FormPost) -> None:
    resp = await app(post(b"--nope\r\n\r\ndata"))
    assert resp.status == 400
    assert await text(resp) == "FormPost: invalid starting boundary"


async def test_delete_fields_and_their_errors(app: formpost.FormPost, store: FakeSwift) -> None:
    fields = signed_fields() + [("x_delete_after", "3600")]
    resp = await app(post(form(fields, [("f", "x", b"d", None)])))
    assert resp.status == 201
    assert store.seen[-1].headers["X-Delete-After"] == "3600"
    fields = signed_fields() + [("x_delete_at", "soon")]
    resp = await app(post(form(fields, [("f", "x", b"d", None)])))
    assert resp.status == 400
    assert await text(resp) == "FormPost: x_delete_at not an integer: Unix timestamp required."


async def test_form_wide_content_type_wins(app: formpost.FormPost, store: FakeSwift) -> None:
    fields = signed_fields() + [("content-type", "text/html")]
    resp = await app(post(form(fields, [("f", "x", b"<p>", "text/plain")])))
    assert resp.status == 201
    assert store.seen[-1].headers["Content-Type"] == "text/html"


async def test_failed_put_reports_its_status_and_body(app: formpost.FormPost,
                                                      store: FakeSwift) -> None:
    store.containers.clear()
    resp = await app(post(form(signed_fields(), [("f", "x", b"d", None)])))
    assert resp.status == 404
    assert b"Not Found" in await resp.read()


async def test_fields_after_a_file_do_not_reach_its_put(app: formpost.FormPost,
                                                        store: FakeSwift) -> None:
    body = form(signed_fields(), [("f", "x", b"d", None)])
    extra = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"x_delete_after\"\r\n"
             "\r\n60\r\n").encode()
    body = body.replace(f"--{BOUNDARY}--".encode(), extra + f"--{BOUNDARY}--".encode())
    resp = await app(post(body))
    assert resp.status == 201
    assert "x-delete-after" not in store.seen[-1].headers


async def test_other_posts_pass_through(app: formpost.FormPost, store: FakeSwift) -> None:
    req = Request("POST", CONTAINER + "/o", headers=Headers({"Content-Type": "text/plain"}))
    await app(req)
    assert store.seen[-1].path == CONTAINER + "/o"
    req = Request("POST", CONTAINER + "/o",
                  headers=Headers({"Content-Type": "multipart/form-data"}))
    await app(req)
    assert len(store.seen) == 2


def test_parse_disposition() -> None:
    assert formpost.parse_disposition('form-data; name="f"; filename="a b.txt"') == (
        "form-data", {"name": "f", "filename": "a b.txt"})
    assert formpost.parse_disposition("multipart/form-data; boundary=xyz") == (
        "multipart/form-data", {"boundary": "xyz"})
    assert formpost.parse_disposition("text/plain") == ("text/plain", {})


async def test_iter_parts_reads_headers_and_bodies() -> None:
    body = (b"\r\n--b\r\nA: 1\r\nB: two\r\n\r\nfirst\r\n--b\r\n\r\nsecond\r\n--b--\r\n")
    got = []
    async for part in formpost.iter_parts(stream(body, (1,)), b"b"):
        headers = await part.headers()
        data = b""
        while chunk := await part.read(2):
            data += chunk
        got.append((dict(headers.items()), data))
    assert got == [({"A": "1", "B": "two"}, b"first"), ({}, b"second")]


def test_registered_in_info(app: formpost.FormPost, st: ObjectStoreState) -> None:
    assert st.capabilities["formpost"] == {"allowed_digests": ["sha1", "sha256", "sha512"],
                                           "deprecated_digests": ["sha1"]}


def test_signature_helper_matches_swift_doc() -> None:
    # the form's HMAC is over path, redirect, size, count and expiry, newline-joined
    mac = signature("/v1/a/c/p", "", 1, 2, 3, "k", "sha1")
    assert mac == hmac.new(b"k", b"/v1/a/c/p\n\n1\n2\n3", hashlib.sha1).hexdigest()


async def test_signature_over_the_mounted_path(app: formpost.FormPost, store: FakeSwift) -> None:
    fields = signed_fields(path="/object-store" + CONTAINER + "/up/")
    req = post(form(fields, [("f", "x", b"d", None)]))
    req.script_name = "/object-store"
    resp = await app(req)
    assert resp.status == 201, await text(resp)
    resp = await app(post(form(fields, [("f", "x", b"d", None)])))
    assert resp.status == 401
