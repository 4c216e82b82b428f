"""Static and dynamic large objects through the whole cloud (Swift API over HTTP,
real tokens, the SQL listings and the object storage)."""

from __future__ import annotations

import hashlib
import json

import httpx

from tests.api.object_store.conftest import Account, Swift

SEGMENTS = {"s1": b"a" * 1000, "s2": b"b" * 1500, "s3": b"c" * 700}
WHOLE = b"".join(SEGMENTS.values())


def md5(data: bytes | str) -> str:
    return hashlib.md5(data.encode() if isinstance(data, str) else data).hexdigest()


SLO_ETAG = md5("".join(md5(d) for d in SEGMENTS.values()))


async def upload_segments(acct: Account, container: str = "segs") -> list[dict]:
    await acct.put_container(container)
    await acct.put_container("c")
    for name, data in SEGMENTS.items():
        await acct.put_object(container, name, data)
    return [{"path": f"/{container}/{name}", "etag": md5(data), "size_bytes": len(data)}
            for name, data in SEGMENTS.items()]


async def put_manifest(acct: Account, manifest: list[dict], path: str = "/c/big",
                       **headers: str) -> httpx.Response:
    return await acct.req("PUT", path, params={"multipart-manifest": "put"},
                          content=json.dumps(manifest).encode(), headers=headers)


async def listing(acct: Account, container: str) -> dict[str, dict]:
    r = await acct.req("GET", f"/{container}", params={"format": "json"})
    assert r.status_code in (200, 204), r.text
    return {item["name"]: item for item in (r.json() if r.status_code == 200 else [])}


async def test_slo_upload_read_and_list(swift: Swift) -> None:
    acct = swift.demo
    r = await put_manifest(acct, await upload_segments(acct))
    assert r.status_code == 201, r.text
    assert r.headers["Etag"] == f'"{SLO_ETAG}"'

    r = await acct.req("GET", "/c/big")
    assert r.status_code == 200
    assert r.content == WHOLE
    assert r.headers["Etag"] == f'"{SLO_ETAG}"'
    assert r.headers["Content-Length"] == str(len(WHOLE))
    assert r.headers["X-Static-Large-Object"] == "True"
    assert not any(k.lower().startswith("x-object-sysmeta") for k in r.headers)

    r = await acct.req("HEAD", "/c/big")
    assert (r.status_code, r.headers["Content-Length"]) == (200, str(len(WHOLE)))

    manifest = await acct.req("GET", "/c/big", params={"multipart-manifest": "get"})
    assert [s["name"] for s in manifest.json()] == ["/segs/s1", "/segs/s2", "/segs/s3"]
    item = (await listing(acct, "c"))["big"]
    assert item["bytes"] == len(WHOLE)
    assert item["hash"] == manifest.headers["Etag"]
    assert item["slo_etag"] == f'"{SLO_ETAG}"'

    r = await acct.req("GET", "/c", params={"format": "xml"})
    assert f"<hash>{manifest.headers['Etag']}</hash>" in r.text
    assert "slo_etag" not in r.text

    # the container's bytes used count the manifest, not the segments again
    r = await acct.req("HEAD", "/c")
    assert r.headers["X-Container-Bytes-Used"] == manifest.headers["Content-Length"]

    r = await acct.req("POST", "/c/big", headers={"X-Object-Meta-Color": "blue",
                                                  "Content-Type": "text/plain"})
    assert r.status_code == 202
    r = await acct.req("GET", "/c/big")
    assert (r.content, r.headers["Content-Type"]) == (WHOLE, "text/plain")
    assert r.headers["X-Object-Meta-Color"] == "blue"
    item = (await listing(acct, "c"))["big"]
    assert (item["bytes"], item["slo_etag"]) == (len(WHOLE), f'"{SLO_ETAG}"')

    info = (await swift.cloud.client.get("/object-store/info")).json()
    assert info["slo"]["max_manifest_segments"] == 1000
    assert "dlo" in info


async def test_slo_ranges_and_conditions(swift: Swift) -> None:
    acct = swift.demo
    await put_manifest(acct, await upload_segments(acct))
    r = await acct.req("GET", "/c/big", headers={"Range": "bytes=900-2600"})
    assert r.status_code == 206
    assert r.content == WHOLE[900:2601]
    assert r.headers["Content-Range"] == f"bytes 900-2600/{len(WHOLE)}"
    r = await acct.req("GET", "/c/big", headers={"Range": "bytes=-100"})
    assert r.content == WHOLE[-100:]
    r = await acct.req("GET", "/c/big", headers={"Range": "bytes=0-9,2495-2504"})
    assert r.status_code == 206
    assert r.headers["Content-Type"].startswith("multipart/byteranges;boundary=")
    assert WHOLE[0:10] in r.content and WHOLE[2495:2505] in r.content
    r = await acct.req("GET", "/c/big", headers={"Range": f"bytes={len(WHOLE)}-"})
    assert r.status_code == 416
    r = await acct.req("GET", "/c/big", headers={"If-None-Match": f'"{SLO_ETAG}"'})
    assert r.status_code == 304
    r = await acct.req("GET", "/c/big", headers={"If-Match": f'"{SLO_ETAG}"'})
    assert (r.status_code, r.content) == (200, WHOLE)
    r = await acct.req("GET", "/c/big", headers={"If-Match": '"other"'})
    assert r.status_code == 412


async def test_bad_manifests_leave_nothing(swift: Swift) -> None:
    acct = swift.demo
    segs = await upload_segments(acct)
    bad = [dict(segs[0], etag="0" * 32), dict(segs[1], size_bytes=1), {"path": "/segs/gone"}]
    r = await put_manifest(acct, bad)
    assert r.status_code == 400
    assert r.text == ("Errors:\n/segs/s1, Etag Mismatch\n/segs/s2, Size Mismatch\n"
                      "/segs/gone, 404 Not Found\n")
    r = await acct.req("PUT", "/c/big", params={"multipart-manifest": "put"}, content=b"[1")
    assert (r.status_code, r.text) == (400, "Manifest must be valid JSON.\n")
    r = await put_manifest(acct, [{"path": "/segs/s1", "bogus": 1}])
    assert (r.status_code, r.text) == (400, 'Index 0: extraneous keys "bogus"\n')
    assert (await acct.req("HEAD", "/c/big")).status_code == 404
    assert "big" not in await listing(acct, "c")


async def test_segment_checks_are_the_callers_own_requests(swift: Swift) -> None:
    """A caller who may write the manifest's container but not read the segments'
    cannot make a manifest of them."""
    owner, other = swift.demo, await swift.project_user("member")
    await upload_segments(owner)
    await owner.put_container("c", **{"X-Container-Write": f"{other.project_id}:*"})
    manifest = json.dumps([{"path": "/segs/s1"}]).encode()
    r = await owner.req("PUT", "/c/m", token=other.token, content=manifest,
                        params={"multipart-manifest": "put"})
    assert (r.status_code, r.text) == (400, "Errors:\n/segs/s1, 403 Forbidden\n")
    await owner.put_container("segs", **{"X-Container-Read": f"{other.project_id}:*"})
    r = await owner.req("PUT", "/c/m", token=other.token, content=manifest,
                        params={"multipart-manifest": "put"})
    assert r.status_code == 201, r.text
    r = await owner.req("GET", "/c/m")
    assert r.content == SEGMENTS["s1"]


async def test_slo_delete_with_segments(swift: Swift) -> None:
    acct = swift.demo
    await put_manifest(acct, await upload_segments(acct))
    r = await acct.req("DELETE", "/c/big", params={"multipart-manifest": "delete"},
                       headers={"Accept": "application/json"})
    assert r.status_code == 200
    assert r.json() == {"Response Status": "200 OK", "Response Body": "",
                        "Number Deleted": 4, "Number Not Found": 0, "Errors": []}
    assert await listing(acct, "segs") == {}
    assert "big" not in await listing(acct, "c")


async def test_missing_segment_ends_the_response(swift: Swift) -> None:
    acct = swift.demo
    await put_manifest(acct, await upload_segments(acct))
    assert (await acct.req("DELETE", "/segs/s2")).status_code == 204
    async with swift.cloud.client.stream(
            "GET", acct.path + "/c/big", headers={"X-Auth-Token": acct.token or ""}) as r:
        assert r.status_code == 200
        body = b"".join([chunk async for chunk in r.aiter_raw()])
    assert body == SEGMENTS["s1"]
    assert int(r.headers["Content-Length"]) == len(WHOLE)
    assert (await acct.req("DELETE", "/segs/s1")).status_code == 204
    assert (await acct.req("GET", "/c/big")).status_code == 409


async def test_copy_of_a_manifest(swift: Swift) -> None:
    acct = swift.demo
    await put_manifest(acct, await upload_segments(acct))
    r = await acct.req("PUT", "/c/whole", headers={"X-Copy-From": "c/big"})
    assert r.status_code == 201, r.text
    r = await acct.req("GET", "/c/whole")
    assert (r.content, r.headers.get("X-Static-Large-Object")) == (WHOLE, None)
    r = await acct.req("PUT", "/c/again", params={"multipart-manifest": "get"},
                       headers={"X-Copy-From": "c/big"})
    assert r.status_code == 201, r.text
    r = await acct.req("GET", "/c/again")
    assert (r.content, r.headers["X-Static-Large-Object"]) == (WHOLE, "True")


async def test_dlo_read(swift: Swift) -> None:
    acct = swift.demo
    await upload_segments(acct)
    await acct.put_object("c", "dlo", b"", **{"X-Object-Manifest": "segs/s"})
    r = await acct.req("GET", "/c/dlo")
    assert r.content == WHOLE
    assert r.headers["Etag"] == f'"{SLO_ETAG}"'  # the same MD5 of the segments' ETags
    r = await acct.req("GET", "/c/dlo", headers={"Range": "bytes=999-1000"})
    assert (r.status_code, r.content) == (206, WHOLE[999:1001])
    r = await acct.req("GET", "/c/dlo", params={"multipart-manifest": "get"})
    assert (r.content, r.headers["X-Object-Manifest"]) == (b"", "segs/s")
    r = await acct.req("PUT", "/c/bad", headers={"X-Object-Manifest": "nope"}, content=b"")
    assert (r.status_code, r.text) == (400,
                                       "X-Object-Manifest must be in the format container/prefix")
