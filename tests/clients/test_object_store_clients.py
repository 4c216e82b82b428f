"""Object storage through real clients against ``onestack up``: the ``swift``
CLI (python-swiftclient), ``openstack container/object``, openstacksdk's
object_store, boto3 against the S3 endpoint, and a client that really
disconnects in the middle of an upload."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openstack
import pytest
import yaml

from tests.clients.conftest import Server

pytestmark = pytest.mark.slow


def connect(server: Server, cloud: str = "onestack-admin") -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(config_files=[str(server.clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud))


def swift_cli(server: Server, *args: str, cwd: Path | None = None, check: bool = True,
              user: tuple[str, str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``swift`` CLI (v3 auth) as the admin cloud's user or as
    ``user`` = (username, password, project name)."""
    auth = yaml.safe_load(server.clouds_yaml.read_text())["clouds"]["onestack-admin"]["auth"]
    name, password, project = user or (auth["username"], auth["password"], auth["project_name"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    env.update(OS_AUTH_URL=auth["auth_url"], OS_USERNAME=name, OS_PASSWORD=password,
               OS_PROJECT_NAME=project, OS_USER_DOMAIN_NAME="Default",
               OS_PROJECT_DOMAIN_NAME="Default", OS_IDENTITY_API_VERSION="3",
               OS_AUTH_VERSION="3")
    exe = Path(sys.executable).with_name("swift")
    proc = subprocess.run([str(exe), *args], check=False, env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"swift {' '.join(args)} failed ({proc.returncode}): "
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def stat_fields(out: str) -> dict[str, str]:
    """``swift stat``'s ``Name: value`` lines (right-aligned names) as a dict."""
    fields: dict[str, str] = {}
    for line in out.splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    return fields


def storage_url(server: Server) -> str:
    """The storage URL ``swift auth`` prints (from the catalog's object-store endpoint)."""
    out = swift_cli(server, "auth").stdout
    urls = [line.split("=", 1)[1] for line in out.splitlines() if "OS_STORAGE_URL=" in line]
    assert len(urls) == 1, out
    return urls[0].strip()


@pytest.fixture
def fresh_user(server: Server) -> Iterator[tuple[str, str, str, str]]:
    """A new project with a ``member`` user, so that its account starts empty:
    (username, password, project name, project id)."""
    conn = connect(server)
    name = f"os-{uuid.uuid4().hex[:8]}"
    project = conn.identity.create_project(name=name, domain_id="default")
    user = conn.identity.create_user(name=name, password="pw-" + name,
                                     default_project_id=project.id, domain_id="default")
    conn.identity.assign_project_role_to_user(project, user, conn.identity.find_role("member"))
    try:
        yield name, "pw-" + name, name, project.id
    finally:
        conn.identity.delete_user(user)
        conn.identity.delete_project(project)


def test_swift_cli_upload_list_stat_download_delete(server: Server, tmp_path: Path) -> None:
    c = f"cli-{uuid.uuid4().hex[:8]}"
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "a.txt").write_bytes(b"hello swift\n")
    (tmp_path / "up" / "sub").mkdir()
    data = os.urandom(300_000)
    (tmp_path / "up" / "sub" / "b.bin").write_bytes(data)
    swift_cli(server, "upload", c, "a.txt", "sub/b.bin", cwd=tmp_path / "up")
    listing = swift_cli(server, "list", c).stdout.split()
    assert listing == ["a.txt", "sub/b.bin"]
    assert swift_cli(server, "list", c, "--prefix", "sub/").stdout.split() == ["sub/b.bin"]
    stat = swift_cli(server, "stat", c).stdout
    assert "Objects: 2" in stat
    swift_cli(server, "post", c, "-m", "color:blue")
    assert "Meta Color: blue" in swift_cli(server, "stat", c).stdout
    swift_cli(server, "post", c, "a.txt", "-m", "kind:greeting")
    assert "Meta Kind: greeting" in swift_cli(server, "stat", c, "a.txt").stdout
    swift_cli(server, "copy", c, "a.txt", "--destination", f"/{c}/copied.txt")
    (tmp_path / "down").mkdir()
    swift_cli(server, "download", c, cwd=tmp_path / "down")
    assert (tmp_path / "down" / "sub" / "b.bin").read_bytes() == data
    assert (tmp_path / "down" / "copied.txt").read_bytes() == b"hello swift\n"
    swift_cli(server, "delete", c)
    assert c not in swift_cli(server, "list").stdout.split()


@pytest.mark.parametrize("slo", [False, True], ids=["dlo", "slo"])
def test_swift_cli_segmented_upload(server: Server, tmp_path: Path, slo: bool) -> None:
    c = f"seg-{uuid.uuid4().hex[:8]}"
    data = os.urandom(2_500_000)
    (tmp_path / "big.bin").write_bytes(data)
    # swiftclient makes an SLO by default when /info lists slo (--use-slo is deprecated)
    args = ["upload", c, "big.bin", "--segment-size", "1000000", "--use-slo" if slo else "--use-dlo"]
    swift_cli(server, *args, cwd=tmp_path)
    stat = swift_cli(server, "stat", c, "big.bin").stdout
    assert "Content Length: 2500000" in stat
    assert ("Manifest:" in stat) != slo  # DLO shows its X-Object-Manifest
    out = tmp_path / "out.bin"
    swift_cli(server, "download", c, "big.bin", "-o", str(out))
    assert hashlib.md5(out.read_bytes()).digest() == hashlib.md5(data).digest()
    swift_cli(server, "delete", c, "big.bin")
    # the segments went with the manifest
    listing = swift_cli(server, "list", c + "_segments", check=False).stdout.split()
    assert listing == []


def test_openstack_cli_container_and_object(server: Server, tmp_path: Path) -> None:
    c = f"osc-{uuid.uuid4().hex[:8]}"
    made = json.loads(server.openstack("container", "create", c, "-f", "json"))
    assert made[0]["container"] == c
    f = tmp_path / "note.txt"
    f.write_bytes(b"from openstackclient")
    server.openstack("object", "create", c, str(f), "--name", "note.txt")
    objs = json.loads(server.openstack("object", "list", c, "-f", "json"))
    assert [o["Name"] for o in objs] == ["note.txt"]
    shown = json.loads(server.openstack("object", "show", c, "note.txt", "-f", "json"))
    assert shown["content-length"] == "20"
    server.openstack("object", "set", c, "note.txt", "--property", "k=v")
    shown = json.loads(server.openstack("object", "show", c, "note.txt", "-f", "json"))
    assert shown["properties"] == {"k": "v"}  # -f json renders the dict itself
    out = tmp_path / "out.txt"
    server.openstack("object", "save", c, "note.txt", "--file", str(out))
    assert out.read_bytes() == b"from openstackclient"
    stats = json.loads(server.openstack("container", "show", c, "-f", "json"))
    assert stats["object_count"] == "1"
    server.openstack("object", "delete", c, "note.txt")
    server.openstack("container", "delete", c)
    names = [x["Name"] for x in json.loads(server.openstack("container", "list", "-f", "json"))]
    assert c not in names


def test_sdk_object_store(server: Server) -> None:
    conn = connect(server)
    c = f"sdk-{uuid.uuid4().hex[:8]}"
    conn.object_store.create_container(name=c)
    conn.object_store.upload_object(container=c, name="x/y.txt", data=b"sdk data",
                                    metadata={"owner": "me"})
    obj = conn.object_store.get_object_metadata("x/y.txt", container=c)
    assert obj.metadata["owner"] == "me"
    assert conn.object_store.download_object("x/y.txt", container=c) == b"sdk data"
    names = [o.name for o in conn.object_store.objects(c)]
    assert names == ["x/y.txt"]
    conn.object_store.delete_object("x/y.txt", container=c)
    conn.object_store.delete_container(c)
    assert c not in [x.name for x in conn.object_store.containers()]


def test_disconnect_mid_upload_leaves_nothing(server: Server) -> None:
    conn = connect(server)
    c = f"cut-{uuid.uuid4().hex[:8]}"
    conn.object_store.create_container(name=c)
    endpoint = conn.object_store.get_endpoint()
    token = conn.auth_token
    url = urlsplit(endpoint)
    sock = socket.create_connection((url.hostname, url.port))
    head = (f"PUT {url.path}/{c}/partial HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"X-Auth-Token: {token}\r\nContent-Length: 10000000\r\n\r\n")
    sock.sendall(head.encode() + os.urandom(3_000_000))
    time.sleep(0.5)
    sock.close()
    time.sleep(1.0)
    names = [o.name for o in conn.object_store.objects(c)]
    assert names == []
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.object_store.get_object_metadata("partial", container=c)
    conn.object_store.delete_container(c)


def test_boto3_put_get_list_multipart_presign(server: Server, s3: Any) -> None:
    import httpx

    conn = connect(server)
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello s3", Metadata={"a": "b"})
    got = s3.get_object(Bucket=bucket, Key="hello.txt")
    assert got["Body"].read() == b"hello s3"
    assert got["Metadata"] == {"a": "b"}
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["hello.txt"]
    mp = s3.create_multipart_upload(Bucket=bucket, Key="big")
    part1 = os.urandom(5 * 1024 * 1024)
    part2 = os.urandom(1000)
    etags = [s3.upload_part(Bucket=bucket, Key="big", UploadId=mp["UploadId"], PartNumber=i + 1,
                            Body=p)["ETag"] for i, p in enumerate((part1, part2))]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=mp["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(etags)]})
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == part1 + part2
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "hello.txt"},
                                    ExpiresIn=60)
    assert httpx.get(url).content == b"hello s3"
    # the same objects through Swift
    assert conn.object_store.download_object("hello.txt", container=bucket) == b"hello s3"


def test_swift_cli_account_stat_and_listing_formats(
    server: Server, tmp_path: Path, fresh_user: tuple[str, str, str, str]
) -> None:
    name, password, project, project_id = fresh_user
    me = (name, password, project)
    # a new project's account answers before anything was put in it (autocreate)
    empty = stat_fields(swift_cli(server, "stat", user=me).stdout)
    assert (empty["Account"], empty["Containers"], empty["Objects"], empty["Bytes"]) == (
        f"AUTH_{project_id}", "0", "0", "0")
    (tmp_path / "a.txt").write_bytes(b"hello")
    (tmp_path / "b.bin").write_bytes(os.urandom(3000))
    swift_cli(server, "upload", "one", "a.txt", "b.bin", cwd=tmp_path, user=me)
    swift_cli(server, "upload", "two", "a.txt", cwd=tmp_path, user=me)
    swift_cli(server, "post", "-m", "Color:blue", user=me)
    out = swift_cli(server, "stat", user=me).stdout
    fields = stat_fields(out)
    assert (fields["Containers"], fields["Objects"], fields["Bytes"]) == ("2", "3", "3010")
    assert fields["Meta Color"] == "blue"
    # the per-policy counts: one policy, holding everything
    per_policy = {k: v for k, v in fields.items() if " in policy " in k}
    assert sorted(k.split(" in policy ")[0] for k in per_policy) == [
        "Bytes", "Containers", "Objects"], out
    assert sorted(per_policy.values()) == ["2", "3", "3010"], out
    for header in ("X-Timestamp", "X-Put-Timestamp", "Content-Type", "X-Trans-Id"):
        assert header in fields, out
    assert fields["Content-Type"].startswith("text/plain"), out
    # ls -lh style: count, size, date, time, policy, name; then the totals
    rows = [line.split() for line in swift_cli(server, "list", "--lh", user=me).stdout.splitlines()]
    assert [(r[0], r[1], r[-1]) for r in rows[:-1]] == [("2", "2.9K", "one"), ("1", "5", "two")]
    assert rows[-1] == ["3", "2.9K"]
    rows = [line.split() for line in
            swift_cli(server, "list", "--lh", "one", user=me).stdout.splitlines()]
    assert [(r[0], r[-2], r[-1]) for r in rows[:-1]] == [
        ("5", "text/plain", "a.txt"), ("2.9K", "application/octet-stream", "b.bin")]
    listing = json.loads(swift_cli(server, "list", "--json", "one", user=me).stdout)
    assert [(o["name"], o["bytes"], o["hash"]) for o in listing] == [
        ("a.txt", 5, hashlib.md5(b"hello").hexdigest()),
        ("b.bin", 3000, hashlib.md5((tmp_path / "b.bin").read_bytes()).hexdigest())]
    containers = json.loads(swift_cli(server, "list", "--json", user=me).stdout)
    assert [(c["name"], c["count"], c["bytes"]) for c in containers] == [
        ("one", 2, 3005), ("two", 1, 5)]
    # the same account through openstackclient
    as_me = ("--os-username", name, "--os-password", password, "--os-project-name", project)
    server.openstack(*as_me, "object", "store", "account", "set", "--property", "Shape=round",
                     cloud="onestack")
    shown = json.loads(server.openstack(*as_me, "object", "store", "account", "show", "-f",
                                        "json", cloud="onestack"))
    assert (shown["Account"], shown["Containers"], shown["Objects"], shown["Bytes"]) == (
        f"AUTH_{project_id}", "2", "3", "3010")
    assert shown["properties"] == {"color": "blue", "shape": "round"}
    swift_cli(server, "delete", "--all", user=me)


def test_swift_cli_public_container_read_by_anyone(server: Server, tmp_path: Path) -> None:
    import httpx

    c = f"pub-{uuid.uuid4().hex[:8]}"
    (tmp_path / "page.html").write_bytes(b"<p>public</p>")
    swift_cli(server, "upload", c, "page.html", cwd=tmp_path)
    url = f"{storage_url(server)}/{c}"
    assert httpx.get(f"{url}/page.html").status_code == 401  # private by default
    swift_cli(server, "post", "-r", ".r:*", c)
    assert stat_fields(swift_cli(server, "stat", c).stdout)["Read ACL"] == ".r:*"
    got = httpx.get(f"{url}/page.html")
    assert (got.status_code, got.content) == (200, b"<p>public</p>")
    assert got.headers["content-type"] == "text/html"
    assert httpx.head(f"{url}/page.html").headers["content-length"] == "13"
    # .r:* alone does not open the listing, nor writing
    assert httpx.get(url).status_code == 401
    assert httpx.put(f"{url}/new.txt", content=b"x").status_code == 401
    swift_cli(server, "post", "-r", ".r:*,.rlistings", c)
    # the owner still sees the ACL (it owns the account; the public listing
    # does not make it a stranger)
    assert stat_fields(swift_cli(server, "stat", c).stdout)["Read ACL"] == ".r:*,.rlistings"
    listed = httpx.get(url, params={"format": "json"})
    assert [o["name"] for o in listed.json()] == ["page.html"]
    swift_cli(server, "post", "-r", "", c)
    assert httpx.get(f"{url}/page.html").status_code == 401
    swift_cli(server, "delete", c)


def test_swift_cli_tempurl_works_with_plain_http(server: Server, tmp_path: Path) -> None:
    import httpx

    c = f"tmp-{uuid.uuid4().hex[:8]}"
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 pretend")
    swift_cli(server, "upload", c, "report.pdf", cwd=tmp_path)
    key = uuid.uuid4().hex
    swift_cli(server, "post", "-m", f"Temp-URL-Key:{key}")
    try:
        url = storage_url(server)
        path = urlsplit(url).path
        # Swift signs the path from /v1 on: the mount point is not part of it
        v1_path = path[path.index("/v1/"):]
        signed = swift_cli(server, "tempurl", "GET", "60", f"{v1_path}/{c}/report.pdf",
                           key).stdout.strip()
        assert signed.startswith(f"{v1_path}/{c}/report.pdf?temp_url_sig=")
        full = url[: len(url) - len(v1_path)] + signed
        got = httpx.get(full)
        assert (got.status_code, got.content) == (200, b"%PDF-1.4 pretend")
        assert got.headers["content-disposition"].startswith('attachment; filename="report.pdf"')
        assert httpx.head(full).status_code == 200  # a GET URL also allows HEAD
        assert httpx.put(full, content=b"x").status_code == 401  # but not PUT
        other = swift_cli(server, "tempurl", "GET", "60", f"{v1_path}/{c}/report.pdf",
                          "not-the-key").stdout.strip()
        assert httpx.get(url[: len(url) - len(v1_path)] + other).status_code == 401
        put = swift_cli(server, "tempurl", "PUT", "60", f"{v1_path}/{c}/upload.txt",
                        key).stdout.strip()
        assert httpx.put(url[: len(url) - len(v1_path)] + put,
                         content=b"via tempurl").status_code == 201
        assert swift_cli(server, "list", c).stdout.split() == ["report.pdf", "upload.txt"]
    finally:
        swift_cli(server, "post", "-m", "Temp-URL-Key:")
        swift_cli(server, "delete", c)


def test_swift_cli_tempurl_from_storage_url(server: Server) -> None:
    import httpx

    conn = connect(server)
    c = f"tmp-{uuid.uuid4().hex[:8]}"
    conn.object_store.create_container(name=c)
    conn.object_store.upload_object(container=c, name="a.txt", data=b"abc")
    key = uuid.uuid4().hex
    swift_cli(server, "post", "-m", f"Temp-URL-Key:{key}")
    try:
        url = f"{conn.object_store.get_endpoint()}/{c}/a.txt"
        signed = swift_cli(server, "tempurl", "GET", "60", url, key).stdout.strip()
        got = httpx.get(signed)
        assert got.content == b"abc", (signed, got.status_code)
    finally:
        swift_cli(server, "post", "-m", "Temp-URL-Key:")
        conn.object_store.delete_object("a.txt", container=c)
        conn.object_store.delete_container(c)


def test_sdk_create_object_from_file_and_stream(server: Server, tmp_path: Path) -> None:
    conn = connect(server)
    c = f"sdkf-{uuid.uuid4().hex[:8]}"
    conn.object_store.create_container(name=c)
    data = os.urandom(3_000_000)
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    conn.object_store.create_object(c, "whole.bin", filename=str(src), metadata={"k": "v"})
    head = conn.object_store.get_object_metadata("whole.bin", container=c)
    assert (head.content_length, head.etag) == (3_000_000, hashlib.md5(data).hexdigest())
    assert head.metadata["k"] == "v"
    assert head.metadata["x-sdk-md5"] == hashlib.md5(data).hexdigest()
    chunks = list(conn.object_store.stream_object("whole.bin", container=c, chunk_size=65536))
    assert len(chunks) > 1 and max(map(len, chunks)) <= 65536
    assert b"".join(chunks) == data
    # above segment_size the SDK uploads segments and an SLO manifest (it reads /info)
    conn.object_store.create_object(c, "big.bin", filename=str(src), segment_size=1_100_000)
    head = conn.object_store.get_object_metadata("big.bin", container=c)
    assert head.is_static_large_object and head.content_length == 3_000_000
    assert [o.name for o in conn.object_store.objects(c)] == [
        "big.bin", "big.bin/000000", "big.bin/000001", "big.bin/000002", "whole.bin"]
    streamed = conn.object_store.stream_object("big.bin", container=c, chunk_size=65536)
    assert hashlib.md5(b"".join(streamed)).digest() == hashlib.md5(data).digest()
    for o in list(conn.object_store.objects(c)):
        conn.object_store.delete_object(o, container=c)
    conn.object_store.delete_container(c)


@pytest.fixture(scope="module")
def ec2_cred(server: Server) -> dict[str, str]:
    """EC2 credentials of the admin user on its project (what boto3 signs with)."""
    import httpx

    conn = connect(server)
    r = httpx.post(f"{server.url}/identity/v3/users/{conn.current_user_id}/credentials/OS-EC2",
                   json={"tenant_id": conn.current_project_id},
                   headers={"X-Auth-Token": conn.auth_token})
    assert r.status_code == 201, r.text
    return {"access": r.json()["credential"]["access"],
            "secret": r.json()["credential"]["secret"]}


def s3_client(server: Server, access: str, secret: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=f"{server.url}/object-store/s3", region_name="RegionOne",
        aws_access_key_id=access, aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


@pytest.fixture
def s3(server: Server, ec2_cred: dict[str, str]) -> Any:
    return s3_client(server, ec2_cred["access"], ec2_cred["secret"])


def test_boto3_list_objects_v1_with_delimiter(s3: Any) -> None:
    bucket = f"v1-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for key in ("a/1", "a/2", "b/1", "c", "d/e/f"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    got = s3.list_objects(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in got["Contents"]] == ["c"]
    assert [p["Prefix"] for p in got["CommonPrefixes"]] == ["a/", "b/", "d/"]
    assert got["IsTruncated"] is False and got["Contents"][0]["Size"] == 1
    # pages of two: a prefix counts as one key, NextMarker is given with a delimiter
    page = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert page["IsTruncated"] is True and page["NextMarker"] == "b/"
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/", "b/"]
    assert "Contents" not in page
    page = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2, Marker=page["NextMarker"])
    assert page["IsTruncated"] is False
    assert [o["Key"] for o in page["Contents"]] == ["c"]
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["d/"]
    got = s3.list_objects(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in got["Contents"]] == ["a/1", "a/2"] and "CommonPrefixes" not in got
    got = s3.list_objects(Bucket=bucket, Prefix="d/", Delimiter="/")
    assert [p["Prefix"] for p in got["CommonPrefixes"]] == ["d/e/"]
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": k} for k in ("a/1", "a/2", "b/1", "c", "d/e/f")]})
    s3.delete_bucket(Bucket=bucket)


def test_boto3_copy_object_and_delete_objects(server: Server, s3: Any) -> None:
    bucket = f"cp-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me", Metadata={"m": "1"},
                  ContentType="text/x-src")
    copied = s3.copy_object(Bucket=bucket, Key="same", CopySource={"Bucket": bucket, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"copy me").hexdigest()}"'
    head = s3.head_object(Bucket=bucket, Key="same")
    assert (head["Metadata"], head["ContentType"]) == ({"m": "1"}, "text/x-src")
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource=f"{bucket}/src",
                   MetadataDirective="REPLACE", Metadata={"n": "2"}, ContentType="text/plain")
    head = s3.head_object(Bucket=bucket, Key="replaced")
    assert (head["Metadata"], head["ContentType"]) == ({"n": "2"}, "text/plain")
    assert s3.get_object(Bucket=bucket, Key="replaced")["Body"].read() == b"copy me"
    # the copy is a Swift object like any other
    conn = connect(server)
    assert conn.object_store.download_object("same", container=bucket) == b"copy me"
    # a missing key counts as deleted; Quiet mode reports only errors
    gone = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "same"}, {"Key": "no-such-key"}]})
    assert sorted(d["Key"] for d in gone["Deleted"]) == ["no-such-key", "same"]
    assert "Errors" not in gone
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "src"}],
                                                     "Quiet": True})
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]] == ["replaced"]
    s3.delete_object(Bucket=bucket, Key="replaced")
    s3.delete_bucket(Bucket=bucket)


def test_boto3_bad_signature_is_refused(server: Server, s3: Any,
                                        ec2_cred: dict[str, str]) -> None:
    from botocore.exceptions import ClientError

    bucket = f"sig-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    wrong = s3_client(server, ec2_cred["access"], "not-the-secret")
    with pytest.raises(ClientError) as err:
        wrong.put_object(Bucket=bucket, Key="k", Body=b"never stored")
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    unknown = s3_client(server, "no-such-access-key", ec2_cred["secret"])
    with pytest.raises(ClientError) as err:
        unknown.list_objects(Bucket=bucket)
    assert err.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    s3.delete_bucket(Bucket=bucket)
