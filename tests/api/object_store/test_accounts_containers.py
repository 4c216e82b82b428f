"""Swift accounts and containers through the whole cloud: statuses, headers,
listings (text, JSON, XML; prefix, delimiter, markers, limit, reverse, path),
metadata and its limits, ACLs, and what Swift answers to bad requests."""

from __future__ import annotations

import json
import re
import uuid
from xml.etree import ElementTree

import httpx
import pytest

from tests.api.object_store.conftest import Account, Swift

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
TS = re.compile(r"^\d{10}\.\d{5}$")


def cname() -> str:
    return "c-" + uuid.uuid4().hex[:8]


async def listing(a: Account, where: str = "", **params: str) -> list[str]:
    r = await a.req("GET", where, params={"format": "json", **params})
    assert r.status_code == 200, r.text
    return [e.get("name", "dir:" + e.get("subdir", "")) for e in r.json()]


# -- accounts --------------------------------------------------------------------------

async def test_new_account_reads_as_empty(swift: Swift) -> None:
    a = await swift.project_user()
    r = await a.req("HEAD")
    assert r.status_code == 204
    assert r.headers["X-Account-Container-Count"] == "0"
    assert r.headers["X-Account-Object-Count"] == "0"
    assert r.headers["X-Account-Bytes-Used"] == "0"
    assert TS.match(r.headers["X-Timestamp"]) and TS.match(r.headers["X-PUT-Timestamp"])
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Length"] == "0"
    assert "X-Account-Storage-Policy-Policy-0-Container-Count" not in r.headers
    r = await a.req("GET")
    assert (r.status_code, r.content) == (204, b"")
    r = await a.req("GET", params={"format": "json"})
    assert (r.status_code, r.json()) == (200, [])
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "Vary" not in r.headers
    r = await a.req("GET", params={"format": "xml"})
    assert r.status_code == 200
    assert r.text == (f'<?xml version="1.0" encoding="UTF-8"?>\n'
                      f'<account name="AUTH_{a.project_id}">\n</account>')
    # Swift's made-up listing of a missing account has its GET's status on HEAD too
    r = await a.req("HEAD", headers={"Accept": "application/json"})
    assert (r.status_code, r.headers["Vary"]) == (200, "Accept")


async def test_account_listing(swift: Swift) -> None:
    a = await swift.project_user()
    for name in ("b", "a", "a-1", "a-2", "c"):
        await a.put_container(name)
    await a.put_object("a", "o", b"12345")
    r = await a.req("GET")
    assert (r.status_code, r.text) == (200, "a\na-1\na-2\nb\nc\n")
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["Vary"] == "Accept"
    assert r.headers["X-Account-Container-Count"] == "5"
    assert r.headers["X-Account-Object-Count"] == "1"
    assert r.headers["X-Account-Bytes-Used"] == "5"
    assert r.headers["X-Account-Storage-Policy-Policy-0-Container-Count"] == "5"
    assert r.headers["X-Account-Storage-Policy-Policy-0-Object-Count"] == "1"
    assert r.headers["X-Account-Storage-Policy-Policy-0-Bytes-Used"] == "5"
    r = await a.req("GET", params={"format": "json", "limit": "1"})
    [entry] = r.json()
    assert entry.keys() == {"name", "count", "bytes", "last_modified", "storage_policy"}
    assert (entry["name"], entry["count"], entry["bytes"], entry["storage_policy"]) == (
        "a", 1, 5, "Policy-0")
    assert ISO.match(entry["last_modified"])
    assert await listing(a, delimiter="-") == ["a", "dir:a-", "b", "c"]
    assert await listing(a, prefix="a-") == ["a-1", "a-2"]
    assert await listing(a, marker="a-1", end_marker="c") == ["a-2", "b"]
    assert await listing(a, reverse="on", limit="2") == ["c", "b"]
    assert await listing(a, reverse="true", marker="b") == ["a-2", "a-1", "a"]
    r = await a.req("GET", params={"format": "xml", "limit": "1"})
    doc = ElementTree.fromstring(r.content)
    assert doc.tag == "account" and doc.get("name") == f"AUTH_{a.project_id}"
    [c] = doc.findall("container")
    assert [(e.tag, e.text) for e in c][:3] == [("name", "a"), ("count", "1"), ("bytes", "5")]
    r = await a.req("GET", params={"limit": "10001"})
    assert (r.status_code, r.text) == (412, "Maximum limit is 10000")


@pytest.mark.parametrize(("accept", "status", "content_type"), [
    ("application/json", 200, "application/json"),
    ("text/xml", 200, "text/xml"),
    ("application/xml;q=0.5, application/json;q=0.9", 200, "application/json"),
    ("*/*", 200, "text/plain"),
    ("image/png", 406, None),
    ("nonsense", 400, None),
])
async def test_listing_format_from_accept(swift: Swift, accept: str, status: int,
                                          content_type: str | None) -> None:
    a = swift.demo
    await a.put_container("fmt")
    r = await a.req("GET", headers={"Accept": accept})
    assert r.status_code == status, r.text
    if content_type:
        assert r.headers["Content-Type"] == f"{content_type}; charset=utf-8"
    elif status == 400:
        assert r.text == "Invalid Accept header"
    # format= wins over Accept
    r = await a.req("GET", params={"format": "json"}, headers={"Accept": accept})
    assert r.status_code == 200 and isinstance(r.json(), list)


async def test_account_metadata(swift: Swift) -> None:
    a = await swift.project_user()
    r = await a.req("POST", headers={"X-Account-Meta-Color": "blue",
                                     "X-Account-Meta-Size": "big"})
    assert (r.status_code, r.content) == (204, b"")
    r = await a.req("HEAD")
    assert (r.headers["X-Account-Meta-Color"], r.headers["X-Account-Meta-Size"]) == (
        "blue", "big")
    assert r.headers["X-Account-Storage-Policy-Policy-0-Container-Count"] == "0"  # now real
    r = await a.req("POST", headers={"X-Remove-Account-Meta-Color": "x",
                                     "X-Account-Meta-Size": ""})
    assert r.status_code == 204
    r = await a.req("HEAD")
    assert "X-Account-Meta-Color" not in r.headers and "X-Account-Meta-Size" not in r.headers
    # UTF-8 values go back as they came
    r = await a.req("POST", headers={"X-Account-Meta-Name": "caf\u00e9".encode()})  # type: ignore[dict-item]
    assert r.status_code == 204
    r = await a.req("GET")
    assert dict(r.headers.raw)[b"x-account-meta-name"] == "caf\u00e9".encode()


@pytest.mark.parametrize(("headers", "text"), [
    # (digits: Swift shows the name as its WSGI layer title-cases it)
    ({"X-Account-Meta-" + "1" * 129: "v"}, "Metadata name too long: x-account-meta-" + "1" * 129),
    ({"X-Account-Meta-1": "v" * 257}, "Metadata value longer than 256: x-account-meta-1"),
    ({f"X-Account-Meta-K{i}": "v" for i in range(91)}, "Too many metadata items; max 90"),
    ({f"X-Account-Meta-K{i}": "v" * 250 for i in range(17)},
     "Total metadata too large; max 4096"),
])
async def test_account_metadata_limits(swift: Swift, headers: dict[str, str],
                                       text: str) -> None:
    r = await swift.demo.req("POST", headers=headers)
    assert (r.status_code, r.text) == (400, text)


async def test_metadata_limits_apply_to_what_is_stored(swift: Swift) -> None:
    a = swift.demo
    c = cname()
    await a.put_container(c)
    for i in range(2):  # each request is within the limits, both together are not
        r = await a.req("POST", f"/{c}", headers={
            f"X-Container-Meta-K{i}-{j}": "v" * 250 for j in range(9)})
        expected = 204 if i == 0 else 400
        assert r.status_code == expected, r.text
    assert r.text == "Total metadata too large; max 4096"
    r = await a.req("HEAD", f"/{c}")
    assert "X-Container-Meta-K1-0" not in r.headers and "X-Container-Meta-K0-0" in r.headers


async def test_account_acl(swift: Swift) -> None:
    a = await swift.project_user()
    acl = {"read-only": ["x:y"], "admin": ["p:u"]}
    r = await a.req("POST", headers={"X-Account-Access-Control": json.dumps(acl)})
    assert r.status_code == 204, r.text
    r = await a.req("HEAD")
    assert r.headers["X-Account-Access-Control"] == '{"admin":["p:u"],"read-only":["x:y"]}'
    r = await a.req("POST", headers={"X-Account-Access-Control": "{not json"})
    assert r.status_code == 400
    assert r.text.startswith("X-Account-Access-Control invalid: ")
    assert r.text.endswith("\n\nInput: {not json\n")
    r = await a.req("POST", headers={"X-Account-Access-Control": '{"owner": ["x"]}'})
    assert r.status_code == 400
    r = await a.req("POST", headers={"X-Account-Access-Control": ""})
    assert r.status_code == 204
    assert "X-Account-Access-Control" not in (await a.req("HEAD")).headers


async def test_account_put_and_delete_by_reseller_admin(swift: Swift) -> None:
    reseller = await swift.project_user("ResellerAdmin")
    target = await swift.project_user()

    async def as_reseller(method: str, headers: dict[str, str] | None = None,
                          **params: str) -> httpx.Response:
        return await target.req(method, token=reseller.token, headers=headers, params=params)

    r = await as_reseller("PUT", {"X-Account-Meta-Quota": "1"})
    assert (r.status_code, r.content) == (201, b"")
    r = await as_reseller("PUT")
    assert r.status_code == 202 and "accepted for processing" in r.text
    r = await target.req("HEAD")
    assert r.headers["X-Account-Meta-Quota"] == "1"
    r = await target.req("DELETE")
    assert r.status_code == 403  # an owner does not delete its account
    r = await as_reseller("DELETE", x="1")
    assert r.status_code == 400  # a query string: meant for some middleware
    await target.put_container("left")
    r = await as_reseller("DELETE")
    assert r.status_code == 204
    assert (await target.req("HEAD")).status_code == 410
    assert (await target.req("GET")).status_code == 410
    assert (await target.req("HEAD", "/left")).status_code == 404
    assert (await target.req("PUT", "/new")).status_code == 404
    r = await as_reseller("PUT")
    assert (r.status_code, r.text) == (403, "Recently deleted")
    assert (await as_reseller("DELETE")).status_code == 404


# -- containers ------------------------------------------------------------------------

async def test_container_lifecycle(swift: Swift) -> None:
    a = swift.demo
    c = cname()
    r = await a.req("PUT", f"/{c}")
    assert (r.status_code, r.content) == (201, b"")
    assert r.headers["Content-Type"] == "text/html; charset=UTF-8"
    r = await a.req("PUT", f"/{c}")
    assert r.status_code == 202
    assert r.text == ("<html><h1>Accepted</h1><p>The request is accepted for processing."
                      "</p></html>")
    r = await a.req("HEAD", f"/{c}")
    assert r.status_code == 204
    assert (r.headers["X-Container-Object-Count"], r.headers["X-Container-Bytes-Used"]) == (
        "0", "0")
    assert r.headers["X-Storage-Policy"] == "Policy-0"
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["Accept-Ranges"] == "bytes"
    assert TS.match(r.headers["X-Timestamp"])
    assert r.headers["X-PUT-Timestamp"] >= r.headers["X-Timestamp"]
    assert r.headers["Last-Modified"].endswith(" GMT")
    r = await a.req("GET", f"/{c}")
    assert (r.status_code, r.content) == (204, b"")
    r = await a.req("GET", f"/{c}", params={"format": "xml"})
    assert (r.status_code, r.text) == (
        200, f'<?xml version="1.0" encoding="UTF-8"?>\n<container name="{c}" />')
    await a.put_object(c, "o1", b"hello")
    r = await a.req("DELETE", f"/{c}")
    assert r.status_code == 409
    assert "There was a conflict" in r.text
    r = await a.req("HEAD", f"/{c}")
    assert (r.headers["X-Container-Object-Count"], r.headers["X-Container-Bytes-Used"]) == (
        "1", "5")
    assert (await a.req("DELETE", f"/{c}/o1")).status_code == 204
    r = await a.req("DELETE", f"/{c}")
    assert (r.status_code, r.content) == (204, b"")
    for method in ("HEAD", "GET", "POST", "DELETE"):
        r = await a.req(method, f"/{c}")
        assert r.status_code == 404, method


async def test_object_listing(swift: Swift) -> None:
    a = swift.demo
    c = cname()
    await a.put_container(c)
    names = ["a", "a/", "a/b", "a/b/c", "a/c", "b", "b/x", "c-d", "c-e/f"]
    for n in names:
        await a.put_object(c, n, n.encode(), **{"Content-Type": "text/plain"})
    r = await a.req("GET", f"/{c}")
    assert (r.status_code, r.text) == (200, "".join(n + "\n" for n in names))
    r = await a.req("GET", f"/{c}", params={"format": "json", "limit": "1"})
    [entry] = r.json()
    assert list(entry) == ["bytes", "hash", "name", "content_type", "last_modified"]
    assert entry["bytes"] == 1 and entry["hash"] == "0cc175b9c0f1b6a831c399e269772661"
    assert entry["content_type"] == "text/plain" and ISO.match(entry["last_modified"])
    p = f"/{c}"
    assert await listing(a, p, delimiter="/") == ["a", "dir:a/", "b", "dir:b/", "c-d",
                                                  "dir:c-e/"]
    assert await listing(a, p, delimiter="/", reverse="1") == [
        "dir:c-e/", "c-d", "dir:b/", "b", "dir:a/", "a"]
    assert await listing(a, p, prefix="a/", delimiter="/") == ["a/", "a/b", "dir:a/b/", "a/c"]
    assert await listing(a, p, path="a") == ["a/b", "a/c"]
    assert await listing(a, p, delimiter="/", marker="a/") == ["b", "dir:b/", "c-d",
                                                               "dir:c-e/"]
    assert await listing(a, p, marker="a/c", end_marker="c-e") == ["b", "b/x", "c-d"]
    assert await listing(a, p, limit="2", reverse="yes") == ["c-e/f", "c-d"]
    assert await listing(a, p, limit="0") == []
    r = await a.req("GET", p, params={"delimiter": "/"})
    assert r.text == "a\na/\nb\nb/\nc-d\nc-e/\n"
    r = await a.req("GET", p, params={"format": "xml", "delimiter": "/", "prefix": "a/"})
    doc = ElementTree.fromstring(r.content)
    assert [(e.tag, e.get("name"), e.findtext("name")) for e in doc] == [
        ("object", None, "a/"), ("object", None, "a/b"), ("subdir", "a/b/", "a/b/"),
        ("object", None, "a/c")]
    r = await a.req("GET", p, params={"limit": "10001"})
    assert (r.status_code, r.text) == (412, "Maximum limit is 10000")
    r = await a.req("GET", p, params={"limit": "abc", "format": "json"})
    assert len(r.json()) == len(names)  # not a number: the default limit


async def test_names_are_utf8_and_sorted_by_bytes(swift: Swift) -> None:
    a = swift.demo
    c = "caf\u00e9-" + uuid.uuid4().hex[:6]
    await a.put_container(c)
    names = ["\U0001f600", "\u00e9", "Z", "a", "A", "<&>"]
    for n in names:
        await a.put_object(c, n)
    r = await a.req("GET", f"/{c}")
    assert r.text.splitlines() == sorted(names, key=lambda n: n.encode())
    r = await a.req("GET", f"/{c}", params={"format": "json"})
    assert '"\\u00e9"' in r.text  # JSON listings are ASCII, as Swift's
    r = await a.req("GET", f"/{c}", params={"format": "xml", "prefix": "<"})
    assert "<name>&lt;&amp;&gt;</name>" in r.text
    assert f'<container name="{c}">' in r.text
    assert c in (await a.req("GET")).text.splitlines()


async def test_container_metadata_and_stored_headers(swift: Swift) -> None:
    a = swift.demo
    c = cname()
    r = await a.req("PUT", f"/{c}", headers={
        "X-Container-Meta-Color": "blue", "X-Container-Meta-Gone": "soon",
        "X-Versions-Location": "versions", "X-Container-Read": ".referrer : *, p:u",
        "X-Container-Write": "p1:u1 ,, p2:*",
    })
    assert r.status_code == 201
    r = await a.req("POST", f"/{c}", headers={"X-Remove-Container-Meta-Gone": "1",
                                              "X-Container-Meta-Size": "9"})
    assert (r.status_code, r.content) == (204, b"")
    r = await a.req("HEAD", f"/{c}")
    assert r.headers["X-Container-Meta-Color"] == "blue"
    assert r.headers["X-Container-Meta-Size"] == "9"
    assert "X-Container-Meta-Gone" not in r.headers
    assert r.headers["X-Versions-Location"] == "versions"
    assert r.headers["X-Container-Read"] == ".r:*,p:u"
    assert r.headers["X-Container-Write"] == "p1:u1,p2:*"
    r = await a.req("POST", f"/{c}", headers={"X-Remove-Versions-Location": "x",
                                              "X-History-Location": "hist",
                                              "X-Remove-Container-Write": "x"})
    assert r.status_code == 204
    r = await a.req("GET", f"/{c}")
    assert r.headers["X-History-Location"] == "hist"
    assert "X-Versions-Location" not in r.headers and "X-Container-Write" not in r.headers


@pytest.mark.parametrize(("headers", "text"), [
    ({"X-Container-Write": ".r:*"}, "Referrers not allowed in write ACL: '.r:*'"),
    ({"X-Container-Read": ".r:"},
     "No host/domain value after referrer designation in ACL: '.r:'"),
    ({"X-Container-Read": ".x:y"}, "Unknown designator '.x' in ACL: '.x:y'"),
    ({"X-Container-Meta-" + "1" * 129: "v"},
     "Metadata name too long: x-container-meta-" + "1" * 129),
    ({"X-Storage-Policy": "gold"}, "Invalid X-Storage-Policy 'gold'"),
    ({"X-Container-Sync-To": "ftp://h/v1/a/c"},
     "Invalid scheme 'ftp' in X-Container-Sync-To, must be \"//\", \"http\", or \"https\"."),
    ({"X-Container-Sync-To": "http://example.com/v1/a/c"},
     "Invalid host 'example.com' in X-Container-Sync-To"),
    ({"X-Container-Sync-To": "//realm/cluster"},
     "Invalid X-Container-Sync-To format '//realm/cluster'"),
])
async def test_container_put_refusals(swift: Swift, headers: dict[str, str], text: str) -> None:
    a = swift.demo
    c = cname()
    r = await a.req("PUT", f"/{c}", headers=headers)
    assert (r.status_code, r.text) == (400, text)
    assert (await a.req("HEAD", f"/{c}")).status_code == 404  # nothing half-made


async def test_container_names(swift: Swift) -> None:
    a = swift.demo
    r = await a.req("PUT", "/" + "c" * 257)
    assert (r.status_code, r.text) == (400, "Container name length of 257 longer than 256")
    r = await a.req("PUT", "/" + "\u00e9" * 129)  # 258 bytes
    assert (r.status_code, r.text) == (400, "Container name length of 258 longer than 256")
    assert (await a.req("PUT", "/" + "c" * 256)).status_code == 201
    r = await a.req("PUT", "/x", headers={"X-Storage-Policy": "policy-0"})
    assert r.status_code in (201, 202)
    r = await swift.cloud.client.put(a.path + "/bad%FFname",
                                     headers={"X-Auth-Token": a.token or ""})
    assert r.status_code == 412


async def test_reads_follow_the_read_acl(swift: Swift) -> None:
    owner = swift.demo
    other = await swift.project_user()
    c = cname()
    await owner.put_container(c)
    await owner.put_object(c, "o")
    assert (await other.req("GET", "", token=other.token)).status_code == 204
    r = await owner.req("GET", f"/{c}", token=other.token)
    assert r.status_code == 403
    r = await owner.req("GET", f"/{c}", token=None)
    assert r.status_code == 401
    r = await owner.req("HEAD", f"/{cname()}", token=other.token)
    assert r.status_code == 403  # no peeking at which containers exist
    r = await owner.req("POST", f"/{c}", headers={"X-Container-Read": ".r:*"})
    assert r.status_code == 204
    r = await owner.req("GET", f"/{c}", token=None)
    assert r.status_code == 401  # a referrer may read objects, not list
    r = await owner.req("POST", f"/{c}", headers={"X-Container-Read": ".r:*,.rlistings"})
    r = await owner.req("GET", f"/{c}", token=None)
    assert (r.status_code, r.text) == (200, "o\n")
    assert "X-Container-Read" not in r.headers  # only owners see ACLs
    r = await owner.req("POST", f"/{c}", token=other.token,
                        headers={"X-Container-Meta-X": "y"})
    assert r.status_code == 403
    r = await owner.req("POST", f"/{c}", headers={"X-Container-Write": f"{other.project_id}:*"})
    assert r.status_code == 204
    # the write ACL is for objects: the container itself stays the owner's
    assert (await owner.req("DELETE", f"/{c}", token=other.token)).status_code == 403
    assert (await owner.req("PUT", f"/{c}", token=other.token)).status_code == 403
