"""Temporary URLs, form uploads and bulk operations through the whole cloud."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import tarfile
import time
from urllib.parse import parse_qs, quote, urlsplit

from tests.api.object_store.conftest import PREFIX, Account, Swift


def temp_url(acct: Account, path: str, key: str, method: str = "GET",
             expires: int | None = None, digest: str = "sha256") -> tuple[str, dict[str, str]]:
    """The URL (below the client's base) and the query of a temporary URL."""
    expires = int(time.time() + 300) if expires is None else expires
    swift_path = f"/v1/AUTH_{acct.project_id}{path}"
    sig = hmac.new(key.encode(), f"{method}\n{expires}\n{swift_path}".encode(),
                   digest).hexdigest()
    return PREFIX + quote(swift_path), {"temp_url_sig": sig, "temp_url_expires": str(expires)}


async def set_account_key(acct: Account, key: str) -> None:
    r = await acct.req("POST", headers={"X-Account-Meta-Temp-URL-Key": key})
    assert r.status_code == 204, r.text


def tar_bytes(files: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# -- TempURL ----------------------------------------------------------------------------


async def test_temp_url_get_by_an_anonymous_client(swift: Swift) -> None:
    a = swift.admin
    await set_account_key(a, "k1")
    await a.put_container("tu")
    await a.put_object("tu", "report 1.txt", b"quarterly", **{
        "X-Object-Meta-Private": "p", "X-Object-Meta-Public-Tag": "t"})
    client = swift.cloud.client
    # without a signature the object is private
    r = await client.get(f"{a.path}/tu/report%201.txt")
    assert r.status_code == 401
    url, query = temp_url(a, "/tu/report 1.txt", "k1")
    r = await client.get(url, params=query)
    assert r.status_code == 200, r.text
    assert r.content == b"quarterly"
    assert r.headers["Content-Disposition"] == (
        "attachment; filename=\"report 1.txt\"; filename*=UTF-8''report%201.txt")
    assert "X-Object-Meta-Private" not in r.headers
    assert r.headers["X-Object-Meta-Public-Tag"] == "t"
    assert r.headers["Expires"].endswith("GMT")
    r = await client.head(url, params=query)
    assert r.status_code == 200
    r = await client.get(url, params={**query, "inline": "", "filename": "r.txt"})
    assert r.headers["Content-Disposition"].startswith("inline; filename=\"r.txt\"")


async def test_temp_url_expired_and_tampered(swift: Swift) -> None:
    a = swift.admin
    await set_account_key(a, "k1")
    await a.put_container("tu")
    await a.put_object("tu", "o", b"x")
    client = swift.cloud.client
    url, query = temp_url(a, "/tu/o", "k1", expires=int(time.time() - 10))
    r = await client.get(url, params=query)
    assert r.status_code == 401
    assert r.text == "401 Unauthorized: Temp URL invalid\n"
    url, query = temp_url(a, "/tu/o", "k1")
    bad = dict(query, temp_url_sig=("0" if query["temp_url_sig"][0] != "0" else "1")
               + query["temp_url_sig"][1:])
    r = await client.get(url, params=bad)
    assert r.status_code == 401
    assert r.text == "401 Unauthorized: Temp URL invalid\n"
    r = await client.get(url, params=dict(query, temp_url_expires=str(int(time.time() + 999))))
    assert r.status_code == 401
    # a GET signature is no PUT signature
    r = await client.put(url, params=query, content=b"overwrite")
    assert r.status_code == 401
    r = await client.get(url, params=query)
    assert r.content == b"x"


async def test_temp_url_put_with_a_container_key(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("drop", **{"X-Container-Meta-Temp-URL-Key": "ck"})
    url, query = temp_url(a, "/drop/upload.bin", "ck", method="PUT", digest="sha512")
    client = swift.cloud.client
    r = await client.put(url, params=query, content=b"from a browser",
                         headers={"X-Object-Manifest": "drop/x"})
    assert r.status_code == 400
    assert r.text == "The header 'X-Object-Manifest' is not allowed in this tempurl"
    r = await client.put(url, params=query, content=b"from a browser")
    assert r.status_code == 201, r.text
    r = await a.req("GET", "/drop/upload.bin")
    assert r.content == b"from a browser"
    # the container key reaches no other container
    await a.put_container("other")
    url, query = temp_url(a, "/other/upload.bin", "ck", method="PUT")
    r = await client.put(url, params=query, content=b"no")
    assert r.status_code == 401


async def test_temp_url_keys_are_owner_only(swift: Swift) -> None:
    a = swift.admin
    await set_account_key(a, "k1")
    r = await a.req("HEAD")
    assert r.headers["X-Account-Meta-Temp-Url-Key"] == "k1"
    r = await swift.cloud.client.get(f"{PREFIX}/info")
    info = r.json()["tempurl"]
    assert info["allowed_digests"] == ["sha1", "sha256", "sha512"]
    assert set(info["methods"]) == {"GET", "HEAD", "PUT", "POST", "DELETE"}
    assert "formpost" in r.json()
    assert r.json()["bulk_delete"]["max_deletes_per_request"] == 10000
    assert r.json()["bulk_upload"]["max_containers_per_extraction"] == 10000


# -- FormPost ---------------------------------------------------------------------------


async def test_formpost_upload(swift: Swift) -> None:
    a = swift.admin
    await set_account_key(a, "fk")
    await a.put_container("forms")
    path = f"/v1/AUTH_{a.project_id}/forms/in/"
    redirect = "https://example.com/done"
    expires = int(time.time() + 300)
    sig = hmac.new(b"fk", f"{path}\n{redirect}\n1024\n2\n{expires}".encode(),
                   hashlib.sha256).hexdigest()
    fields = {"redirect": redirect, "max_file_size": "1024", "max_file_count": "2",
              "expires": str(expires), "signature": sig}
    files = {"file1": ("a.txt", b"alpha", "text/plain"),
             "file2": ("b.txt", b"beta", "text/x-beta")}
    r = await swift.cloud.client.post(PREFIX + path, data=fields, files=files)
    assert r.status_code == 303, r.text
    location = urlsplit(r.headers["Location"])
    assert location.netloc == "example.com"
    assert parse_qs(location.query, keep_blank_values=True) == {"status": ["201"],
                                                                "message": [""]}
    r = await a.req("GET", "/forms/in/a.txt")
    assert r.content == b"alpha" and r.headers["Content-Type"] == "text/plain"
    r = await a.req("GET", "/forms/in/b.txt")
    assert r.content == b"beta" and r.headers["Content-Type"] == "text/x-beta"
    # the same form past its size limit stores nothing
    files = {"file1": ("big.txt", b"x" * 2000, "text/plain")}
    r = await swift.cloud.client.post(PREFIX + path, data=fields, files=files)
    assert r.status_code == 400
    assert r.text == "FormPost: max_file_size exceeded"
    r = await a.req("HEAD", "/forms/in/big.txt")
    assert r.status_code == 404
    # and with a wrong signature nothing at all
    fields["signature"] = "0" * 64
    r = await swift.cloud.client.post(PREFIX + path, data=fields,
                                      files={"f": ("c.txt", b"c", "text/plain")})
    assert r.status_code == 401
    assert r.text == "FormPost: Invalid Signature"


async def test_tempest_style_form_and_url(swift: Swift) -> None:
    """Tempest signs the URL path of the catalog's endpoint (with our mount prefix),
    with sha1, and builds its form by hand."""
    a = swift.admin
    await set_account_key(a, "Meta")
    await a.put_container("tc")
    path = f"{a.path}/tc/ObjectTemp"
    expires = int(time.time() + 600)
    fields = {"redirect": "", "max_file_size": "104857600", "max_file_count": "10",
              "expires": str(expires)}
    fields["signature"] = hmac.new(
        b"Meta", f"{path}\n\n104857600\n10\n{expires}".encode(), hashlib.sha1).hexdigest()
    lines = []
    for key, value in fields.items():
        lines += ["----boundary--", f'Content-Disposition: form-data; name="{key}"', "", value]
    lines += ["----boundary--", 'Content-Disposition: form-data; name="file1"; filename="testfile"',
              "Content-Type: application/octet-stream", "",
              "hello world", "----boundary----", ""]
    body = "\r\n".join(lines).encode()
    r = await swift.cloud.client.post(path, content=body, headers={
        "Content-Type": "multipart/form-data; boundary=--boundary--"})
    assert r.status_code == 201, r.text
    assert r.text == "201 Created"
    sig = hmac.new(b"Meta", f"GET\n{expires}\n{path}testfile".encode(),
                   hashlib.sha1).hexdigest()
    r = await swift.cloud.client.get(f"{path}testfile?temp_url_sig={sig}"
                                     f"&temp_url_expires={expires}&inline")
    assert r.status_code == 200, r.text
    assert r.content == b"hello world"
    assert r.headers["Content-Disposition"] == "inline"


# -- bulk delete --------------------------------------------------------------------------


async def test_bulk_delete_many_objects_and_a_missing_one(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("bulk")
    names = [f"obj {i}" for i in range(25)]
    for name in names:
        await a.put_object("bulk", name, name.encode())
    body = "\n".join(quote(f"/bulk/{n}") for n in names + ["missing"]) + "\n/bulk\n"
    r = await a.req("POST", "", params={"bulk-delete": ""}, content=body.encode(),
                    headers={"Accept": "application/json", "Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    result = json.loads(r.content)
    assert result["Number Deleted"] == 26  # the objects and then their container
    assert result["Number Not Found"] == 1
    assert result["Response Status"] == "200 OK"
    assert result["Errors"] == []
    r = await a.req("HEAD", "/bulk")
    assert r.status_code == 404


async def test_bulk_delete_needs_the_right_to_delete(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("mine")
    await a.put_object("mine", "o")
    other = await swift.project_user()
    r = await swift.cloud.client.post(f"{a.path}", params={"bulk-delete": ""},
                                      content=b"/mine/o\n",
                                      headers={"X-Auth-Token": other.token or ""})
    assert r.status_code == 200
    assert "Response Status: 400 Bad Request" in r.text
    assert "/mine/o, 403 Forbidden" in r.text
    r = await a.req("HEAD", "/mine/o")
    assert r.status_code == 200


# -- extract archive ------------------------------------------------------------------------


async def test_extract_tar_and_tar_gz(swift: Swift) -> None:
    a = swift.admin
    data = tar_bytes({"arch1/a.txt": b"A", "arch1/d/b.txt": b"B" * 70000, "arch2/c": b"C"})
    r = await a.req("PUT", "", params={"extract-archive": "tar"}, content=data,
                    headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    result = json.loads(r.content)
    assert result["Number Files Created"] == 3, result
    assert result["Response Status"] == "201 Created"
    r = await a.req("GET", "/arch1/d/b.txt")
    assert r.content == b"B" * 70000
    r = await a.req("GET", "/arch2/c")
    assert r.content == b"C"
    # into a container, compressed
    await a.put_container("into")
    gz = tar_bytes({"x/1.txt": b"one", "2.txt": b"two"}, "w:gz")
    r = await a.req("PUT", "/into", params={"extract-archive": "tar.gz"}, content=gz)
    assert r.status_code == 200
    assert "Number Files Created: 2" in r.text and "201 Created" in r.text
    r = await a.req("GET", "/into", params={"format": "json"})
    assert sorted(o["name"] for o in r.json()) == ["2.txt", "x/1.txt"]


async def test_extract_bad_archive_is_a_clear_error(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("into")
    r = await a.req("PUT", "/into", params={"extract-archive": "tar.gz"},
                    content=b"certainly not gzip", headers={"Accept": "application/json"})
    assert r.status_code == 200
    result = json.loads(r.content)
    assert result["Response Status"] == "400 Bad Request"
    assert result["Response Body"] == "Invalid Tar File: not a gzip file"
    assert result["Number Files Created"] == 0
    r = await a.req("GET", "/into", params={"format": "json"})
    assert r.status_code in (200, 204)
    assert (r.json() if r.status_code == 200 else []) == []
    r = await a.req("PUT", "/into", params={"extract-archive": "zip"}, content=b"x")
    assert r.status_code == 400
    assert r.text == "Unsupported archive format"
