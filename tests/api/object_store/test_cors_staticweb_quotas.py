"""CORS, static web sites and container and account quotas through the whole cloud."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from tests.api.object_store.conftest import Account, Swift

EXCEEDED = "Upload exceeds quota."


async def usage(a: Account, container: str) -> tuple[str, str]:
    r = await a.req("HEAD", f"/{container}")
    assert r.status_code == 204, r.text
    return r.headers["X-Container-Object-Count"], r.headers["X-Container-Bytes-Used"]


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


# -- container quotas ----------------------------------------------------------------


async def test_container_quotas_refuse_uploads_that_exceed_them(swift: Swift) -> None:
    a = await swift.project_user()
    await a.put_container("q", **{"X-Container-Meta-Quota-Bytes": "10",
                                  "X-Container-Meta-Quota-Count": "3"})
    await a.put_object("q", "ten", b"0123456789")
    r = await a.req("PUT", "/q/one-more", content=b"x")
    assert (r.status_code, r.text) == (413, EXCEEDED)
    assert (await a.req("HEAD", "/q/one-more")).status_code == 404
    assert await usage(a, "q") == ("1", "10")
    # an upload without a length is stopped as it passes the quota
    r = await a.req("PUT", "/q/chunked", content=chunks(b"abc", b"defgh"))
    assert (r.status_code, r.text) == (413, EXCEEDED)
    assert (await a.req("HEAD", "/q/chunked")).status_code == 404
    # the count quota: two empty objects fit, the fourth object does not
    r = await a.req("POST", "/q", headers={"X-Container-Meta-Quota-Bytes": ""})
    assert r.status_code == 204
    await a.put_object("q", "e1", b"")
    await a.put_object("q", "e2", b"")
    r = await a.req("PUT", "/q/e3", content=b"")
    assert (r.status_code, r.text) == (413, EXCEEDED)
    assert await usage(a, "q") == ("3", "10")


async def test_a_copy_into_a_full_container_is_refused(swift: Swift) -> None:
    a = await swift.project_user()
    await a.put_container("src")
    await a.put_object("src", "big", b"x" * 20)
    await a.put_container("small", **{"X-Container-Meta-Quota-Bytes": "15"})
    r = await a.req("PUT", "/small/copy", headers={"X-Copy-From": "/src/big"})
    assert (r.status_code, r.text) == (413, EXCEEDED)
    r = await a.req("COPY", "/src/big", headers={"Destination": "/small/copy"})
    assert (r.status_code, r.text) == (413, EXCEEDED)
    assert await usage(a, "small") == ("0", "0")


@pytest.mark.parametrize(("header", "text"), [
    ("X-Container-Meta-Quota-Bytes", "Invalid bytes quota."),
    ("X-Container-Meta-Quota-Count", "Invalid count quota."),
])
async def test_container_quota_values_must_be_whole_numbers(swift: Swift, header: str,
                                                           text: str) -> None:
    a = swift.demo
    for value in ("-1", "1.5", "ten"):
        r = await a.req("PUT", "/badquota", headers={header: value})
        assert (r.status_code, r.text) == (400, text)
    assert (await a.req("HEAD", "/badquota")).status_code == 404
    await a.put_container("badquota")
    r = await a.req("POST", "/badquota", headers={header: "x"})
    assert (r.status_code, r.text) == (400, text)
    assert header not in (await a.req("HEAD", "/badquota")).headers


async def test_only_the_owner_sets_container_quotas_and_strangers_see_no_quota(
        swift: Swift) -> None:
    a = await swift.project_user()
    other = await swift.project_user()
    await a.put_container("shared", **{"X-Container-Write": f"{other.project_id}:*",
                                       "X-Container-Meta-Quota-Count": "0"})
    as_other = Account(swift, a.project_id, other.token)
    r = await as_other.req("POST", "/shared", headers={"X-Container-Meta-Quota-Count": "9"})
    assert r.status_code == 403
    # a writer allowed by the ACL meets the quota; anonymous callers meet auth first
    r = await as_other.req("PUT", "/shared/o", content=b"x")
    assert (r.status_code, r.text) == (413, EXCEEDED)
    r = await a.req("PUT", "/shared/o", token=None, content=b"x")
    assert r.status_code == 401
    assert "quota" not in r.text


# -- account quotas ------------------------------------------------------------------


async def test_account_quotas_are_set_by_a_reseller_admin_only(swift: Swift) -> None:
    member = await swift.project_user()
    reseller = await swift.project_user("ResellerAdmin")
    as_reseller = Account(swift, member.project_id, reseller.token)
    for headers in ({"X-Account-Meta-Quota-Bytes": "100"}, {"X-Account-Quota-Bytes": "1"},
                    {"X-Account-Meta-Quota-Bytes": ""}, {"X-Account-Quota-Count": "5"},
                    {"X-Remove-Account-Meta-Quota-Bytes": "x"},
                    {"X-Account-Quota-Bytes-Policy-Policy-0": "5"}):
        r = await member.req("POST", headers=headers)
        assert r.status_code == 403, headers
    r = await as_reseller.req("POST", headers={"X-Account-Quota-Bytes": "lots"})
    assert r.status_code == 400
    r = await as_reseller.req("POST", headers={"X-Account-Meta-Quota-Bytes": "12",
                                               "X-Account-Quota-Count": "7"})
    assert r.status_code == 204, r.text
    r = await member.req("HEAD")
    assert r.headers["X-Account-Meta-Quota-Bytes"] == "12"
    assert r.headers["X-Account-Quota-Bytes"] == "12"
    assert r.headers["X-Account-Quota-Count"] == "7"
    assert not [h for h in r.headers if h.lower().startswith("x-account-sysmeta-")]
    # the member still cannot change them, nor remove them
    r = await member.req("POST", headers={"X-Account-Meta-Quota-Bytes": "1000"})
    assert r.status_code == 403
    assert (await member.req("HEAD")).headers["X-Account-Quota-Bytes"] == "12"


async def test_uploads_over_the_account_quota_store_nothing(swift: Swift) -> None:
    member = await swift.project_user()
    reseller = await swift.project_user("ResellerAdmin")
    as_reseller = Account(swift, member.project_id, reseller.token)
    r = await as_reseller.req("POST", headers={"X-Account-Meta-Quota-Bytes": "10"})
    assert r.status_code == 204
    await member.put_container("c1")
    await member.put_container("c2")
    await member.put_object("c1", "six", b"123456")
    r = await member.req("PUT", "/c2/five", content=b"12345")
    assert (r.status_code, r.text) == (413, EXCEEDED)
    r = await member.req("PUT", "/c2/chunked", content=chunks(b"12", b"345"))
    assert (r.status_code, r.text) == (413, EXCEEDED)
    r = await member.req("HEAD")
    assert (r.headers["X-Account-Object-Count"], r.headers["X-Account-Bytes-Used"]) == (
        "1", "6")
    assert (await member.req("HEAD", "/c2/five")).status_code == 404
    # a stranger is refused by auth, not by the quota
    r = await member.req("PUT", "/c2/five", token=None, content=b"12345")
    assert r.status_code == 401
    # the reseller admin is not held by the quota
    r = await as_reseller.req("PUT", "/c2/five", content=b"12345")
    assert r.status_code == 201
    # removed (as Tempest does), uploads go through; a count quota of 0 stops them
    r = await as_reseller.req("POST", headers={"X-Remove-Account-Meta-Quota-Bytes": "x",
                                               "X-Account-Quota-Count": "0"})
    assert r.status_code == 204
    r = await member.req("HEAD")
    assert "X-Account-Quota-Bytes" not in r.headers
    assert "X-Account-Meta-Quota-Bytes" not in r.headers
    r = await member.req("PUT", "/c2/more", content=b"1")
    assert (r.status_code, r.text) == (413, EXCEEDED)
    r = await as_reseller.req("POST", headers={"X-Account-Quota-Count": ""})
    assert r.status_code == 204
    await member.put_object("c2", "more", b"1")


async def test_policy_quota(swift: Swift) -> None:
    member = await swift.project_user()
    reseller = await swift.project_user("ResellerAdmin")
    as_reseller = Account(swift, member.project_id, reseller.token)
    r = await as_reseller.req("POST", headers={"X-Account-Quota-Bytes-Policy-Policy-0": "3"})
    assert r.status_code == 204
    r = await member.req("HEAD")
    assert r.headers["X-Account-Quota-Bytes-Policy-Policy-0"] == "3"
    await member.put_container("p")
    r = await member.req("PUT", "/p/o", content=b"1234")
    assert (r.status_code, r.text) == (413, "Upload exceeds policy quota.")
    await member.put_object("p", "o", b"123")


# -- CORS ------------------------------------------------------------------------------

ORIGIN = "http://app.example"


async def cors_container(a: Account, name: str, origin: str = ORIGIN) -> None:
    await a.put_container(name, **{
        "X-Container-Meta-Access-Control-Allow-Origin": f"http://other.example {origin}",
        "X-Container-Meta-Access-Control-Max-Age": "600",
        "X-Container-Meta-Access-Control-Expose-Headers": "X-Object-Meta-Color x-custom"})


async def test_cors_preflight_allowed_without_a_token(swift: Swift) -> None:
    a = swift.demo
    await cors_container(a, "web")
    r = await a.req("OPTIONS", "/web/page.html", token=None, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "x-auth-token, content-type"})
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert r.headers["Access-Control-Max-Age"] == "600"
    methods = {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "COPY"} == methods
    assert r.headers["Access-Control-Allow-Headers"] == "x-auth-token, content-type"
    assert r.headers["Vary"] == "Origin, Access-Control-Request-Headers"
    assert r.content == b""
    # the container's own preflight
    r = await a.req("OPTIONS", "/web", token=None, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert r.status_code == 200
    assert "COPY" not in r.headers["Access-Control-Allow-Methods"]
    # without Origin it is no preflight: just the methods
    r = await a.req("OPTIONS", "/web/page.html", token=None)
    assert r.status_code == 200
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "PUT" in r.headers["Allow"]
    # accounts have no CORS settings: their OPTIONS answers any origin with methods
    r = await a.req("OPTIONS", token=None, headers={"Origin": "http://evil.example",
                                                     "Access-Control-Request-Method": "GET"})
    assert r.status_code == 200
    assert r.headers["Allow"] == "GET, HEAD, POST, OPTIONS"


@pytest.mark.parametrize(("path", "origin", "method"), [
    ("/web/o", "http://evil.example", "GET"),  # origin not allowed
    ("/web/o", ORIGIN, "PATCH"),  # no such method
    ("/web/o", ORIGIN, None),  # no method asked for
    ("/nowhere/o", ORIGIN, "GET"),  # no container, no CORS settings
])
async def test_cors_preflight_refused(swift: Swift, path: str, origin: str,
                                      method: str | None) -> None:
    a = swift.demo
    await cors_container(a, "web")
    headers = {"Origin": origin}
    if method:
        headers["Access-Control-Request-Method"] = method
    r = await a.req("OPTIONS", path, token=None, headers=headers)
    assert r.status_code == 401
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "GET" in r.headers["Allow"]


async def test_cors_headers_on_actual_requests(swift: Swift) -> None:
    a = swift.demo
    await cors_container(a, "web")
    await a.put_object("web", "o", b"hello", **{"X-Object-Meta-Color": "red",
                                                "X-Object-Meta-Size": "s"})
    r = await a.req("GET", "/web/o", headers={"Origin": ORIGIN})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert r.headers["Vary"] == "Origin"
    exposed = [h.strip() for h in r.headers["Access-Control-Expose-Headers"].split(",")]
    for name in ("etag", "content-type", "x-trans-id", "x-openstack-request-id", "x-timestamp",
                 "last-modified", "x-object-meta-color", "x-object-meta-size", "x-custom"):
        assert name in exposed
    assert len(exposed) == len(set(exposed))
    # container requests too; errors as well (a browser must read them)
    r = await a.req("HEAD", "/web", headers={"Origin": ORIGIN})
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "x-container-meta-access-control-max-age" in r.headers[
        "Access-Control-Expose-Headers"]
    r = await a.req("GET", "/web/missing", headers={"Origin": ORIGIN})
    assert r.status_code == 404 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
    # strict mode: an origin the container does not allow gets nothing
    r = await a.req("GET", "/web/o", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "Access-Control-Expose-Headers" not in r.headers
    # no Origin, no CORS; nor on the account
    r = await a.req("GET", "/web/o")
    assert "Access-Control-Allow-Origin" not in r.headers
    r = await a.req("GET", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in r.headers


async def test_cors_any_origin_and_info(swift: Swift) -> None:
    a = swift.demo
    await a.put_container("open", **{"X-Container-Meta-Access-Control-Allow-Origin": "*"})
    await a.put_object("open", "o", b"x")
    r = await a.req("GET", "/open/o", headers={"Origin": "http://any.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in r.headers
    r = await a.req("OPTIONS", "/open/o", token=None, headers={
        "Origin": "http://any.example", "Access-Control-Request-Method": "DELETE"})
    assert (r.status_code, r.headers["Access-Control-Allow-Origin"]) == (200, "*")
    assert "Access-Control-Max-Age" not in r.headers
    r = await swift.cloud.client.get("/object-store/info",
                                     headers={"Origin": "http://any.example"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "http://any.example"
    assert r.headers["Access-Control-Expose-Headers"] == "x-trans-id"
    info = r.json()
    assert info["swift"]["strict_cors_mode"] is True
    assert {"staticweb", "container_quotas", "account_quotas"} <= info.keys()


# -- static web sites ------------------------------------------------------------------


async def website(a: Account, name: str = "site", **meta: str) -> str:
    """A public web site; its anonymous base URL path below the account."""
    headers = {"X-Container-Read": ".r:*,.rlistings", "X-Container-Meta-Web-Index": "index.html",
               "X-Container-Meta-Web-Listings": "true", "X-Container-Meta-Web-Error": "error.html",
               "X-Container-Meta-Web-Listings-CSS": "listings.css"}
    headers.update(meta)
    await a.put_container(name, **headers)
    files = {"index.html": b"<h1>home</h1>", "404error.html": b"<h1>no such page</h1>",
             "blog/index.html": b"<h1>blog</h1>", "docs/a.txt": b"aaa",
             "docs/b b.txt": b"b" * 3000, "docs/sub/c.txt": b"c", "listings.css": b"h1 {}"}
    for path, data in files.items():
        ctype = "text/html" if path.endswith(".html") else "text/plain"
        await a.put_object(name, path, data, **{"Content-Type": ctype})
    await a.put_object(name, "empty", b"", **{"Content-Type": "application/directory"})
    await a.put_object(name, "empty/x.txt", b"x", **{"Content-Type": "text/plain"})
    return f"/{name}"


async def test_static_web_site_index_redirects_and_error_page(swift: Swift) -> None:
    a = swift.demo
    base = await website(a)
    anon = {"token": None}
    r = await a.req("GET", base, **anon)
    assert r.status_code == 301
    assert r.headers["Location"] == f"http://onestack.test{a.path}{base}/"
    r = await a.req("GET", base + "/", **anon)
    assert (r.status_code, r.content) == (200, b"<h1>home</h1>")
    assert r.headers["Content-Type"] == "text/html"
    r = await a.req("HEAD", base + "/", **anon)
    assert (r.status_code, r.headers["Content-Length"]) == (200, "13")
    r = await a.req("GET", base + "/blog", **anon)
    blog = f"http://onestack.test{a.path}{base}/blog/"
    assert (r.status_code, r.headers["Location"]) == (301, blog)
    r = await a.req("GET", base + "/blog/", **anon)
    assert (r.status_code, r.content) == (200, b"<h1>blog</h1>")
    # a directory without an index is redirected too, then listed
    r = await a.req("GET", base + "/docs", **anon)
    assert r.status_code == 301 and r.headers["Location"].endswith(f"{base}/docs/")
    # objects are served as they are
    r = await a.req("GET", base + "/docs/a.txt", **anon)
    assert (r.status_code, r.content) == (200, b"aaa")
    # what does not exist answers 404 with the site's error page
    for path in ("/nothing.html", "/nothing/", "/docs/nothing/"):
        r = await a.req("GET", base + path, **anon)
        assert (r.status_code, r.content) == (404, b"<h1>no such page</h1>"), path
    # a directory marker reads as a directory
    r = await a.req("GET", base + "/empty", **anon)
    assert r.status_code == 301 and r.headers["Location"].endswith(f"{base}/empty/")


async def test_static_web_listings(swift: Swift) -> None:
    a = swift.demo
    base = await website(a)
    r = await a.req("GET", base + "/docs/", token=None)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/html; charset=UTF-8"
    page = r.text
    label = f"/v1/AUTH_{a.project_id}{base}/docs/"
    assert f"<title>Listing of {label}</title>" in page
    assert f'<h1 id="title">Listing of {label}</h1>' in page
    assert '<link rel="stylesheet" type="text/css" href="../listings.css" />' in page
    assert '<a href="../">../</a>' in page
    assert '<a href="./sub/">sub/</a>' in page
    assert '<a href="./a%2Etxt">a.txt</a>' in page
    assert '<a href="./b%20b%2Etxt">b b.txt</a>' in page
    assert re.search(r'<tr class="item type-text type-plain">\s*<td class="colname">'
                     r'<a href="./b%20b%2Etxt">b b.txt</a></td>\s*<td class="colsize">3Ki</td>'
                     r'\s*<td class="coldate">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td>', page)
    # the label replaces the account path; the root has no parent link
    await a.req("POST", base, headers={"X-Container-Meta-Web-Index": "",
                                       "X-Container-Meta-Web-Listings-Label": "example.com"})
    r = await a.req("GET", base + "/", token=None)
    assert r.status_code == 200
    assert "<title>Listing of example.com/</title>" in r.text
    assert 'href="listings.css"' in r.text and 'href="../"' not in r.text
    assert '<a href="./docs/">docs/</a>' in r.text
    # listings off: a directory without its index is a 404 that says why
    await a.req("POST", base, headers={"X-Container-Meta-Web-Listings": "",
                                       "X-Container-Meta-Web-Error": "",
                                       "X-Container-Meta-Web-Index": "index.html"})
    r = await a.req("GET", base + "/docs/", token=None)
    assert r.status_code == 404
    assert "Web Listing Disabled" in r.text and "<b>index.html</b>" in r.text
    assert r.headers["Content-Type"] == "text/html; charset=UTF-8"
    # and with neither index nor listings the site is only its objects
    await a.req("POST", base, headers={"X-Container-Meta-Web-Index": ""})
    r = await a.req("GET", base + "/docs/", token=None)
    assert r.status_code == 404 and "Web Listing Disabled" not in r.text
    r = await a.req("GET", base + "/", token=None)
    assert (r.status_code, r.text.splitlines()[:2]) == (200, ["404error.html", "blog/index.html"])


async def test_static_web_is_for_anonymous_callers_and_web_mode(swift: Swift) -> None:
    a = swift.demo
    base = await website(a)
    r = await a.req("GET", base + "/")
    assert r.status_code == 200
    assert "index.html" in r.text.splitlines()  # the ordinary listing
    r = await a.req("GET", base + "/", headers={"X-Web-Mode": "true"})
    assert (r.status_code, r.content) == (200, b"<h1>home</h1>")
    # a site nobody may read: the 401 comes with the error page when it can be read
    await a.put_container("private", **{"X-Container-Meta-Web-Index": "index.html",
                                         "X-Container-Meta-Web-Error": ".html"})
    await a.put_object("private", "index.html", b"secret")
    r = await a.req("GET", "/private/", token=None)
    assert r.status_code == 401
    assert b"secret" not in r.content
    r = await a.req("GET", "/private/index.html", token=None)
    assert r.status_code == 401
    # objects only (.r:* without .rlistings): no index for the container itself
    await a.put_container("objonly", **{"X-Container-Read": ".r:*",
                                        "X-Container-Meta-Web-Index": "index.html"})
    await a.put_object("objonly", "index.html", b"home")
    await a.put_object("objonly", "dir/index.html", b"dir home")
    assert (await a.req("GET", "/objonly/", token=None)).status_code == 401
    r = await a.req("GET", "/objonly/dir/", token=None)
    assert (r.status_code, r.content) == (200, b"dir home")
    # without web settings the container answers as ever
    await a.put_container("plain", **{"X-Container-Read": ".r:*,.rlistings"})
    await a.put_object("plain", "o", b"x")
    r = await a.req("GET", "/plain", token=None)
    assert (r.status_code, r.text) == (200, "o\n")
