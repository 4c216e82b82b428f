"""Server-side copy, symlinks and both versioning APIs through the whole cloud."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import quote

import pytest

from onestack.core import config
from tests.api.object_store.conftest import Account, Swift

MARKER = "application/x-deleted;swift_versions_deleted=1"


@pytest.fixture
def object_store_conf() -> dict[str, int]:
    """Object storage settings of a test (parametrize to change them)."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None,
             object_store_conf: dict[str, int]) -> config.Settings:
    return config.load(
        tmp_path / "data", environ={}, database_url=database_url, port=8780, access_log=False,
        identity={"password_time_cost": 1, "password_memory_cost_kib": 1024},
        object_store=object_store_conf,
        compute={"compute_driver": "fake"},  # no guests
        network={"dataplane": "fake"},  # no kernel objects
    )


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def listing(acct: Account, container: str, **params: str) -> list[dict]:
    r = await acct.req("GET", f"/{container}", params={"format": "json", **params})
    assert r.status_code in (200, 204), r.text
    return r.json() if r.status_code == 200 else []


# -- copy -------------------------------------------------------------------------------


async def test_put_with_copy_from_keeps_data_and_metadata(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("src")
    await a.put_container("dst")
    await a.put_object("src", "o 1", b"hello copy", **{
        "X-Object-Meta-Color": "blue", "Content-Type": "text/x-one",
        "Content-Disposition": "inline"})
    r = await a.req("PUT", "/dst/copy", headers={
        "X-Copy-From": quote("/src/o 1"), "Content-Length": "0",
        "X-Object-Meta-Size": "big"})
    assert r.status_code == 201, r.text
    assert r.headers["X-Copied-From"] == "src/o%201"
    assert r.headers["X-Copied-From-Account"] == f"AUTH_{a.project_id}"
    assert r.headers["X-Copied-From-Last-Modified"]
    assert r.headers["X-Object-Meta-Color"] == "blue"
    assert r.headers["Etag"] == md5(b"hello copy")
    r = await a.req("GET", "/dst/copy")
    assert r.content == b"hello copy"
    assert r.headers["Content-Type"] == "text/x-one"
    assert r.headers["X-Object-Meta-Color"] == "blue"
    assert r.headers["X-Object-Meta-Size"] == "big"
    assert r.headers["Content-Disposition"] == "inline"


async def test_copy_method_overrides_content_type_and_fresh_metadata(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("c")
    await a.put_object("c", "o", b"data", **{"X-Object-Meta-Old": "1",
                                             "Content-Type": "text/plain"})
    r = await a.req("COPY", "/c/o", headers={"Destination": "c/o2",
                                             "Content-Type": "application/x-new",
                                             "X-Object-Meta-New": "2"})
    assert r.status_code == 201, r.text
    r = await a.req("HEAD", "/c/o2")
    assert r.headers["Content-Type"] == "application/x-new"
    assert (r.headers["X-Object-Meta-Old"], r.headers["X-Object-Meta-New"]) == ("1", "2")
    r = await a.req("COPY", "/c/o", headers={"Destination": "/c/o3",
                                             "X-Fresh-Metadata": "true",
                                             "X-Object-Meta-New": "3"})
    assert r.status_code == 201, r.text
    r = await a.req("HEAD", "/c/o3")
    assert "X-Object-Meta-Old" not in r.headers
    assert r.headers["X-Object-Meta-New"] == "3"
    assert r.headers["Content-Type"] == "text/plain"
    # a copy onto itself is how metadata is replaced without a POST
    r = await a.req("COPY", "/c/o", headers={"Destination": "c/o",
                                             "X-Object-Meta-Old": "changed"})
    assert r.status_code == 201
    r = await a.req("GET", "/c/o")
    assert (r.content, r.headers["X-Object-Meta-Old"]) == (b"data", "changed")


async def test_copy_errors(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("c")
    await a.put_object("c", "o", b"data")
    r = await a.req("COPY", "/c/o")
    assert (r.status_code, r.text) == (412, "Destination header required")
    for bad in ("nocontainer", "/c", "c/", "/"):
        r = await a.req("COPY", "/c/o", headers={"Destination": bad})
        assert (r.status_code, r.text) == (
            412, "Destination header must be of the form <container name>/<object name>"), bad
        r = await a.req("PUT", "/c/x", headers={"X-Copy-From": bad, "Content-Length": "0"})
        assert (r.status_code, r.text) == (
            412, "X-Copy-From header must be of the form <container name>/<object name>"), bad
    r = await a.req("COPY", "/c/o", headers={"Destination": "c/x",
                                             "Destination-Account": "a/b"})
    assert (r.status_code, r.text) == (412, "Account name cannot contain slashes")
    r = await a.req("PUT", "/c/x", content=b"body", headers={"X-Copy-From": "c/o"})
    assert (r.status_code, r.text) == (400, "Copy requests require a zero byte body")
    r = await a.req("PUT", "/c/x", headers={"X-Copy-From": "c/missing", "Content-Length": "0"})
    assert r.status_code == 404
    r = await a.req("COPY", "/c/o", headers={"Destination": "nocont/x"})
    assert r.status_code == 404
    r = await a.req("HEAD", "/c/x")
    assert r.status_code == 404  # nothing half-written by any of these


async def test_copy_reads_source_with_the_callers_rights(swift: Swift) -> None:
    a = swift.admin
    other = await swift.project_user("member")
    await a.put_container("private")
    await a.put_object("private", "secret", b"secret")
    await other.put_container("mine")
    # the source is in another account: reading it needs a read ACL
    r = await other.req("PUT", "/mine/stolen", headers={
        "X-Copy-From": "private/secret", "X-Copy-From-Account": f"AUTH_{a.project_id}",
        "Content-Length": "0"})
    assert r.status_code == 403
    r = await other.req("HEAD", "/mine/stolen")
    assert r.status_code == 404
    await a.req("POST", "/private", headers={"X-Container-Read": f"{other.project_id}:*"})
    r = await other.req("PUT", "/mine/copied", headers={
        "X-Copy-From": "private/secret", "X-Copy-From-Account": f"AUTH_{a.project_id}",
        "Content-Length": "0"})
    assert r.status_code == 201, r.text
    assert r.headers["X-Copied-From-Account"] == f"AUTH_{a.project_id}"
    # and writing the destination needs write rights there
    r = await other.req("COPY", "/mine/copied", headers={
        "Destination": "private/back", "Destination-Account": f"AUTH_{a.project_id}"})
    assert r.status_code == 403
    await a.req("POST", "/private", headers={"X-Container-Write": f"{other.project_id}:*"})
    r = await other.req("COPY", "/mine/copied", headers={
        "Destination": "private/back", "Destination-Account": f"AUTH_{a.project_id}"})
    assert r.status_code == 201, r.text
    assert (await a.req("GET", "/private/back")).content == b"secret"


async def test_copy_of_a_range_and_of_a_dynamic_large_object(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("c")
    await a.put_object("c", "seg/1", b"abc")
    await a.put_object("c", "seg/2", b"def")
    await a.put_object("c", "dlo", b"", **{"X-Object-Manifest": "c/seg/"})
    r = await a.req("PUT", "/c/whole", headers={"X-Copy-From": "c/dlo", "Content-Length": "0"})
    assert r.status_code == 201, r.text
    r = await a.req("GET", "/c/whole")
    assert r.content == b"abcdef"
    assert "X-Object-Manifest" not in r.headers
    r = await a.req("COPY", "/c/dlo", params={"multipart-manifest": "get"},
                    headers={"Destination": "c/manifest"})
    assert r.status_code == 201, r.text
    r = await a.req("GET", "/c/manifest")
    assert r.headers["X-Object-Manifest"] == "c/seg/"
    assert r.content == b"abcdef"
    r = await a.req("PUT", "/c/part", headers={"X-Copy-From": "c/seg/2", "Range": "bytes=1-",
                                               "Content-Length": "0"})
    assert r.status_code == 201, r.text
    assert (await a.req("GET", "/c/part")).content == b"ef"


async def test_copy_of_a_static_large_object(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("c")
    await a.put_object("c", "s1", b"a" * 1024)
    await a.put_object("c", "s2", b"b" * 10)
    manifest = [{"path": "c/s1"}, {"path": "c/s2"}]
    r = await a.req("PUT", "/c/slo", params={"multipart-manifest": "put"},
                    content=json.dumps(manifest).encode())
    assert r.status_code == 201, r.text
    r = await a.req("COPY", "/c/slo", headers={"Destination": "c/flat"})
    assert r.status_code == 201, r.text
    r = await a.req("GET", "/c/flat")
    assert (r.content, "X-Static-Large-Object" in r.headers) == (b"a" * 1024 + b"b" * 10, False)
    r = await a.req("COPY", "/c/slo", params={"multipart-manifest": "get"},
                    headers={"Destination": "c/slo2"})
    assert r.status_code == 201, r.text
    r = await a.req("GET", "/c/slo2")
    assert (r.headers["X-Static-Large-Object"], len(r.content)) == ("True", 1034)
    r = await a.req("GET", "/c/slo2", params={"multipart-manifest": "get"})
    assert [s["name"] for s in r.json()] == ["/c/s1", "/c/s2"]


@pytest.mark.parametrize("object_store_conf", [{"max_file_size": 8}])
async def test_copy_over_max_file_size_is_refused(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("c")
    await a.put_object("c", "seg/1", b"12345")
    await a.put_object("c", "seg/2", b"67890")
    await a.put_object("c", "dlo", b"", **{"X-Object-Manifest": "c/seg/"})
    assert (await a.req("GET", "/c/dlo")).content == b"1234567890"
    r = await a.req("COPY", "/c/dlo", headers={"Destination": "c/big"})
    assert r.status_code == 413
    assert (await a.req("HEAD", "/c/big")).status_code == 404


async def test_copy_heartbeat(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("c")
    await a.put_object("c", "o", b"beat")
    r = await a.req("COPY", "/c/o", params={"heartbeat": "on"},
                    headers={"Destination": "c/o2", "Accept": "application/json"})
    assert r.status_code == 202
    result = json.loads(r.content)
    assert result["Response Status"] == "201 Created"
    assert result["X-Copied-From"] == "c/o"
    assert result["Errors"] == []
    assert (await a.req("GET", "/c/o2")).content == b"beat"


# -- symlinks ---------------------------------------------------------------------------


async def test_symlink_get_head_and_the_link_itself(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("c")
    await a.put_container("t")
    await a.put_object("t", "target", b"target data", **{"Content-Type": "text/x-t"})
    r = await a.req("PUT", "/c/link", headers={"X-Symlink-Target": "t/target",
                                               "Content-Length": "0"})
    assert r.status_code == 201, r.text
    r = await a.req("GET", "/c/link")
    assert r.status_code == 200
    assert r.content == b"target data"
    assert r.headers["Content-Type"] == "text/x-t"
    assert r.headers["Content-Location"] == f"/v1/AUTH_{a.project_id}/t/target"
    r = await a.req("HEAD", "/c/link")
    assert r.headers["Content-Length"] == str(len(b"target data"))
    r = await a.req("GET", "/c/link", params={"symlink": "get"})
    assert r.content == b""
    assert r.headers["X-Symlink-Target"] == "t/target"
    assert "X-Symlink-Target-Account" not in r.headers  # only when given
    assert r.headers["Content-Type"] == "application/symlink"
    assert not any(k.lower().startswith("x-object-sysmeta") for k in r.headers)
    r = await a.req("GET", "/c/link", headers={"Range": "bytes=0-5"})
    assert (r.status_code, r.content) == (206, b"target")
    # conditions apply to the target, not to the empty link
    r = await a.req("GET", "/c/link", headers={"If-Match": md5(b"target data")})
    assert (r.status_code, r.content) == (200, b"target data")
    r = await a.req("GET", "/c/link", headers={"If-Match": "bogus"})
    assert r.status_code == 412
    assert r.headers["Content-Location"] == f"/v1/AUTH_{a.project_id}/t/target"
    items = {i["name"]: i for i in await listing(a, "c")}
    assert items["link"]["symlink_path"] == f"/v1/AUTH_{a.project_id}/t/target"
    assert items["link"]["hash"] == md5(b"")
    assert items["link"]["bytes"] == 0
    r = await a.req("GET", "/c", params={"format": "xml"})
    assert "symlink_target" not in r.text
    # a link to a missing object answers 404, saying where it looked
    await a.req("DELETE", "/t/target")
    r = await a.req("GET", "/c/link")
    assert r.status_code == 404
    assert r.headers["Content-Location"] == f"/v1/AUTH_{a.project_id}/t/target"
    r = await a.req("DELETE", "/c/link")
    assert r.status_code == 204


async def test_symlink_errors_and_loops(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("c")
    await a.put_object("c", "o", b"data")
    r = await a.req("PUT", "/c/l", content=b"x", headers={"X-Symlink-Target": "c/o"})
    assert (r.status_code, r.text) == (400, "Symlink requests require a zero byte body")
    for bad in ("/c/o", "c", "c/"):
        r = await a.req("PUT", "/c/l", headers={"X-Symlink-Target": bad, "Content-Length": "0"})
        assert (r.status_code, r.text) == (
            412, "X-Symlink-Target header must be of the form <container name>/<object name>")
    r = await a.req("PUT", "/c/l", headers={"X-Symlink-Target": "c/l", "Content-Length": "0"})
    assert (r.status_code, r.text) == (400, "Symlink cannot target itself")
    r = await a.req("POST", "/c/o", headers={"X-Symlink-Target": "c/x"})
    assert (r.status_code, r.text) == (400, "A PUT request is required to set a symlink target")
    # l1 -> l2 -> l3 -> o: three links in a row are more than symloop_max (2)
    for name, target in (("l3", "c/o"), ("l2", "c/l3"), ("l1", "c/l2")):
        r = await a.req("PUT", f"/c/{name}", headers={"X-Symlink-Target": target,
                                                      "Content-Length": "0"})
        assert r.status_code == 201
    assert (await a.req("GET", "/c/l2")).content == b"data"
    r = await a.req("GET", "/c/l1")
    assert (r.status_code, r.text) == (
        409, "Too many levels of symbolic links, maximum allowed is 2")
    r = await swift.cloud.client.get("/object-store/info")
    assert r.json()["symlink"] == {"symloop_max": 2, "static_links": True}


async def test_post_to_a_symlink_redirects(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("c")
    await a.put_object("c", "o", b"data")
    await a.req("PUT", "/c/l", headers={"X-Symlink-Target": "c/o", "Content-Length": "0"})
    r = await a.req("POST", "/c/l", headers={"X-Object-Meta-A": "b"})
    assert r.status_code == 307
    assert r.headers["Location"] == f"/v1/AUTH_{a.project_id}/c/o"
    assert not any(k.lower().startswith("x-object-sysmeta") for k in r.headers)
    # the metadata went to the link (the storage cannot know better), not the target
    r = await a.req("HEAD", "/c/l", params={"symlink": "get"})
    assert r.headers["X-Object-Meta-A"] == "b"
    assert "X-Object-Meta-A" not in (await a.req("HEAD", "/c/o")).headers
    # object versioning follows the redirect to the current version
    await a.put_container("v", **{"X-Versions-Enabled": "true"})
    await a.put_object("v", "o", b"versioned")
    r = await a.req("POST", "/v/o", headers={"X-Object-Meta-Color": "red"})
    assert r.status_code == 202, r.text
    r = await a.req("GET", "/v/o")
    assert (r.content, r.headers["X-Object-Meta-Color"]) == (b"versioned", "red")


async def test_static_symlink(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("c")
    await a.put_object("c", "o", b"static", **{"Content-Type": "text/x-s"})
    r = await a.req("PUT", "/c/l", headers={"X-Symlink-Target": "c/missing",
                                            "X-Symlink-Target-Etag": md5(b"static"),
                                            "Content-Length": "0"})
    assert (r.status_code, r.text) == (409, "X-Symlink-Target does not exist")
    r = await a.req("PUT", "/c/l", headers={"X-Symlink-Target": "c/o",
                                            "X-Symlink-Target-Etag": "0" * 32,
                                            "Content-Length": "0"})
    assert r.status_code == 409
    assert r.text == (f"Object Etag '{md5(b'static')}' does not match "
                      f"X-Symlink-Target-Etag header '{'0' * 32}'")
    r = await a.req("PUT", "/c/l", headers={"X-Symlink-Target": "c/o",
                                            "X-Symlink-Target-Etag": f'"{md5(b"static")}"',
                                            "Content-Length": "0"})
    assert r.status_code == 201, r.text
    r = await a.req("HEAD", "/c/l", params={"symlink": "get"})
    assert r.headers["Content-Type"] == "text/x-s"  # the target's, when not given
    assert r.headers["X-Symlink-Target-Etag"] == md5(b"static")
    assert r.headers["X-Symlink-Target-Bytes"] == "6"
    items = {i["name"]: i for i in await listing(a, "c")}
    assert items["l"]["symlink_etag"] == md5(b"static")
    assert items["l"]["symlink_bytes"] == 6
    assert (await a.req("GET", "/c/l")).content == b"static"
    await a.put_object("c", "o", b"changed")
    r = await a.req("GET", "/c/l")
    assert r.status_code == 409


async def test_symlink_target_is_read_with_the_callers_rights(swift: Swift) -> None:
    a = swift.admin
    other = await swift.project_user("member")
    await a.put_container("private")
    await a.put_object("private", "secret", b"secret")
    await other.put_container("mine")
    r = await other.req("PUT", "/mine/l", headers={
        "X-Symlink-Target": "private/secret",
        "X-Symlink-Target-Account": f"AUTH_{a.project_id}", "Content-Length": "0"})
    assert r.status_code == 201, r.text
    r = await other.req("GET", "/mine/l")
    assert r.status_code == 403
    await a.req("POST", "/private", headers={"X-Container-Read": f"{other.project_id}:*"})
    r = await other.req("GET", "/mine/l")
    assert (r.status_code, r.content) == (200, b"secret")


async def test_copy_of_a_symlink(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("c")
    await a.put_object("c", "o", b"data")
    await a.req("PUT", "/c/l", headers={"X-Symlink-Target": "c/o", "Content-Length": "0"})
    r = await a.req("COPY", "/c/l", headers={"Destination": "c/data-copy"})
    assert r.status_code == 201, r.text
    r = await a.req("GET", "/c/data-copy", params={"symlink": "get"})
    assert (r.content, "X-Symlink-Target" in r.headers) == (b"data", False)
    r = await a.req("COPY", "/c/l", params={"symlink": "get"},
                    headers={"Destination": "c/link-copy"})
    assert r.status_code == 201, r.text
    r = await a.req("GET", "/c/link-copy", params={"symlink": "get"})
    assert r.headers["X-Symlink-Target"] == "c/o"
    assert (await a.req("GET", "/c/link-copy")).content == b"data"


# -- legacy versioning ------------------------------------------------------------------


async def test_versions_location_stack_mode(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("archive")
    await a.put_container("c", **{"X-Versions-Location": "archive"})
    r = await a.req("HEAD", "/c")
    assert r.headers["X-Versions-Location"] == "archive"
    assert not any(k.lower().startswith("x-container-sysmeta") for k in r.headers)
    for data in (b"v1", b"v2", b"v3"):
        await a.put_object("c", "obj", data, **{"X-Object-Meta-V": data.decode()})
    names = [i["name"] for i in await listing(a, "archive")]
    assert len(names) == 2
    assert all(n.startswith("003obj/") for n in names)
    assert (await a.req("GET", f"/archive/{names[0]}")).content == b"v1"
    r = await a.req("GET", "/c/obj")
    assert r.content == b"v3"
    r = await a.req("DELETE", "/c/obj")
    assert r.status_code == 204
    r = await a.req("GET", "/c/obj")
    assert (r.content, r.headers["X-Object-Meta-V"]) == (b"v2", "v2")
    assert len(await listing(a, "archive")) == 1
    await a.req("DELETE", "/c/obj")
    assert (await a.req("GET", "/c/obj")).content == b"v1"
    await a.req("DELETE", "/c/obj")
    assert (await a.req("GET", "/c/obj")).status_code == 404
    assert await listing(a, "archive") == []
    r = await a.req("POST", "/c", headers={"X-Remove-Versions-Location": "x"})
    assert r.status_code == 204
    assert "X-Versions-Location" not in (await a.req("HEAD", "/c")).headers
    r = await swift.cloud.client.get("/object-store/info")
    assert r.json()["versioned_writes"]["allowed_flags"] == [
        "x-versions-location", "x-history-location"]


async def test_history_location_mode(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("history")
    await a.put_container("c", **{"X-History-Location": "history"})
    assert (await a.req("HEAD", "/c")).headers["X-History-Location"] == "history"
    await a.put_object("c", "obj", b"one")
    await a.put_object("c", "obj", b"two")
    r = await a.req("DELETE", "/c/obj")
    assert r.status_code == 204
    assert (await a.req("GET", "/c/obj")).status_code == 404
    items = await listing(a, "history")
    assert [i["content_type"] for i in items][-1] == MARKER
    assert [i["bytes"] for i in items] == [3, 3, 0]
    contents = [(await a.req("GET", f"/history/{i['name']}")).content for i in items[:2]]
    assert contents == [b"one", b"two"]
    # a restore is a copy back from the archive
    r = await a.req("COPY", f"/history/{quote(items[1]['name'])}",
                    headers={"Destination": "c/obj"})
    assert r.status_code == 201, r.text
    assert (await a.req("GET", "/c/obj")).content == b"two"
    assert len(await listing(a, "history")) == 3
    r = await a.req("PUT", "/c", headers={"X-Versions-Location": "a",
                                          "X-History-Location": "b"})
    assert (r.status_code, r.text) == (
        400, "Only one of x-versions-location or x-history-location may be specified")
    r = await a.req("POST", "/c", headers={"X-Versions-Location": "a/b"})
    assert (r.status_code, r.text) == (412, "Container name cannot contain slashes")


async def test_legacy_versioning_needs_write_access(swift: Swift) -> None:
    a = swift.admin
    reader = await swift.project_user("member")
    await a.put_container("archive")
    await a.put_container("c", **{"X-Versions-Location": "archive",
                                  "X-Container-Read": f"{reader.project_id}:*"})
    await a.put_object("c", "o", b"v1")
    as_reader = Account(swift, a.project_id, reader.token)
    r = await as_reader.req("PUT", "/c/o", content=b"v2")
    assert r.status_code == 403
    assert await listing(a, "archive") == []
    r = await as_reader.req("POST", "/c", headers={"X-Versions-Location": "other"})
    assert r.status_code == 403
    assert (await a.req("HEAD", "/c")).headers["X-Versions-Location"] == "archive"


# -- object versioning ------------------------------------------------------------------


async def test_object_versioning(swift: Swift) -> None:
    a = swift.admin
    r = await a.req("PUT", "/c", headers={"X-Versions-Enabled": "true"})
    assert r.status_code == 201, r.text
    assert (await a.req("HEAD", "/c")).headers["X-Versions-Enabled"] == "True"
    r1 = await a.put_object("c", "o", b"first")
    v1 = r1.headers["X-Object-Version-Id"]
    assert r1.headers["Etag"] == md5(b"first")
    r2 = await a.put_object("c", "o", b"second!")
    v2 = r2.headers["X-Object-Version-Id"]
    assert v1 < v2
    r = await a.req("GET", "/c/o")
    assert (r.content, r.headers["X-Object-Version-Id"]) == (b"second!", v2)
    r = await a.req("GET", "/c/o", params={"version-id": v1})
    assert (r.status_code, r.content, r.headers["X-Object-Version-Id"]) == (200, b"first", v1)
    r = await a.req("HEAD", "/c/o", params={"symlink": "get"})
    assert r.headers["X-Symlink-Target"] == f"c/o?version-id={v2}"
    assert r.headers["X-Object-Version-Id"] == v2
    items = await listing(a, "c")
    assert [(i["name"], i["bytes"], i["hash"]) for i in items] == [("o", 7, md5(b"second!"))]
    versions = await listing(a, "c", versions="")
    assert [(i["name"], i["version_id"], i["is_latest"]) for i in versions] == [
        ("o", v2, True), ("o", v1, False)]
    r = await a.req("GET", "", params={"format": "json"})
    assert [(c["name"], c["bytes"]) for c in r.json()] == [("c", 12)]
    assert (await a.req("GET", "")).text == "c\n"  # the versions container is hidden
    assert (await a.req("HEAD", "/c")).headers["X-Container-Bytes-Used"] == "12"
    await a.put_container("other")
    r = await a.req("COPY", "/c/o", params={"version-id": v1},
                    headers={"Destination": "other/restored"})
    assert r.status_code == 201, r.text
    assert r.headers["X-Copied-From-Version-Id"] == v1
    assert (await a.req("GET", "/other/restored")).content == b"first"
    for value in (quote("\x00versions\x00c/o"), quote("c/\x00o")):
        r = await a.req("PUT", "/c/x", headers={"X-Copy-From": value, "Content-Length": "0"})
        assert (r.status_code, r.text) == (412, "Invalid UTF8 or contains NULL")
        r = await a.req("PUT", "/c/x", headers={"X-Symlink-Target": value,
                                                "Content-Length": "0"})
        assert (r.status_code, r.text) == (412, "Invalid UTF8 or contains NULL")
    r = await a.req("DELETE", "/c/o")
    assert r.status_code == 204
    marker = r.headers["X-Object-Version-Id"]
    assert (await a.req("GET", "/c/o")).status_code == 404
    r = await a.req("HEAD", "/c/o", params={"version-id": marker})
    assert r.status_code == 404
    versions = await listing(a, "c", versions="")
    assert [(i["version_id"], i["is_latest"], i["content_type"] == MARKER)
            for i in versions] == [(marker, True, True), (v2, False, False), (v1, False, False)]
    r = await a.req("DELETE", "/c")
    assert (r.status_code, r.text) == (409, "Delete all versions before deleting container.")
    for v in (marker, v2, v1):
        r = await a.req("DELETE", "/c/o", params={"version-id": v})
        assert r.status_code == 204, r.text
        assert r.headers["X-Object-Version-Id"] == v
    assert await listing(a, "c", versions="") == []
    r = await a.req("DELETE", "/c")
    assert r.status_code == 204, r.text


async def test_object_versioning_restore_and_errors(swift: Swift) -> None:
    a = swift.admin
    await a.put_container("c", **{"X-Versions-Enabled": "true"})
    v1 = (await a.put_object("c", "o", b"one")).headers["X-Object-Version-Id"]
    await a.put_object("c", "o", b"two")
    r = await a.req("PUT", "/c/o", params={"version-id": v1}, headers={"Content-Length": "0"})
    assert r.status_code == 201, r.text
    assert (await a.req("GET", "/c/o")).content == b"one"
    await a.put_object("c", "doc.txt", b"typed by its name")
    r = await a.req("GET", "/c/doc.txt")
    assert r.headers["Content-Type"] == "text/plain"
    r = await a.req("GET", "/c/o", params={"version-id": "nonsense"})
    assert (r.status_code, r.text) == (400, "Invalid version parameter")
    r = await a.req("POST", "/c/o", params={"version-id": v1})
    assert (r.status_code, r.text) == (400, "POST to a specific version is not allowed")
    await a.put_container("legacy", **{"X-Versions-Location": "archive"})
    r = await a.req("POST", "/legacy", headers={"X-Versions-Enabled": "true"})
    assert r.status_code == 400
    await a.put_container("plain")
    await a.put_object("plain", "o", b"x")
    r = await a.req("GET", "/plain/o", params={"version-id": v1})
    assert r.status_code == 400
    r = await a.req("GET", "/plain/o", params={"version-id": "null"})
    assert (r.status_code, r.headers["X-Object-Version-Id"]) == (200, "null")
    # suspended: new writes are not versioned, the old versions stay
    r = await a.req("POST", "/c", headers={"X-Versions-Enabled": "false"})
    assert r.status_code == 204
    await a.put_object("c", "o", b"unversioned")
    r = await a.req("GET", "/c/o")
    assert (r.content, r.headers["X-Object-Version-Id"]) == (b"unversioned", "null")
    assert (await a.req("GET", "/c/o", params={"version-id": v1})).content == b"one"
