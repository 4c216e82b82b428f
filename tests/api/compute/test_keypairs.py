"""Key pairs: import (SSH, X.509), generation before 2.92, fingerprints, names,
duplicates, other users, pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.api.compute.conftest import Compute, fault

# a known vector: this key's MD5 fingerprint, as Nova computes it
KEY = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDx8nkQv/zgGgB4rMYmIf+6A4l6Rr+o/6lHBQdW5aYd44bd8J"
       "ttDCE/F/pNRr0lRE+PiqSPO8nDPHw0010JeMH9gYgnnFlyY3/OcJ02RhIPyyxYpv9FhY+2YiUkpwFOcLImyrxE"
       "sYXpD/0d3ac30bNH6Sw9JD9UZHYcpSxsIbECHw== Generated-by-Nova")
KEY_FP = "1e:2c:9b:56:79:4b:45:77:f9:ca:7a:98:2c:b0:d5:3c"


def new_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


def new_cert() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    fp = cert.fingerprint(hashes.SHA1()).hex()
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return pem, ":".join(fp[i:i + 2] for i in range(0, len(fp), 2))


async def create(nova: Compute, token: str | None = None, version: str | None = "2.2",
                 **kp: Any) -> Any:
    return await nova.req("POST", "/os-keypairs", token, version=version, json={"keypair": kp})


async def listed(nova: Compute, token: str | None = None, query: str = "") -> list[str]:
    r = await nova.req("GET", "/os-keypairs" + query, token, version="2.35")
    assert r.status_code == 200, r.text
    return [k["keypair"]["name"] for k in r.json()["keypairs"]]


async def test_import_ssh_key(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    r = await create(nova, demo, name="mykey", public_key=KEY)
    assert r.status_code == 201, r.text
    kp = r.json()["keypair"]
    assert kp["fingerprint"] == KEY_FP and kp["type"] == "ssh" and kp["public_key"] == KEY
    assert kp["user_id"] == await nova.user_id(demo)
    assert "private_key" not in kp
    r = await nova.req("GET", "/os-keypairs/mykey", demo, version="2.2")
    shown = r.json()["keypair"]
    assert shown["fingerprint"] == KEY_FP and shown["deleted"] is False
    assert {"id", "created_at", "updated_at", "deleted_at", "user_id", "type"} <= set(shown)
    datetime.fromisoformat(shown["created_at"])
    r = await nova.req("GET", "/os-keypairs", demo)
    assert r.json() == {"keypairs": [{"keypair": {
        "name": "mykey", "public_key": KEY, "fingerprint": KEY_FP}}]}


async def test_status_codes_and_fields_at_2_1(nova: Compute) -> None:
    r = await create(nova, name="old", public_key=KEY, version=None)
    assert r.status_code == 200 and "type" not in r.json()["keypair"]
    r = await nova.req("GET", "/os-keypairs/old")
    assert "type" not in r.json()["keypair"]
    # type is unknown at 2.1
    r = await create(nova, name="old2", public_key=KEY, type="ssh", version=None)
    fault(r, "badRequest", 400)
    assert (await nova.req("DELETE", "/os-keypairs/old")).status_code == 202


async def test_generate_before_2_92(nova: Compute) -> None:
    r = await create(nova, name="gen", version="2.91")
    assert r.status_code == 201, r.text
    kp = r.json()["keypair"]
    assert kp["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert kp["public_key"].startswith("ssh-rsa ")
    # the fingerprint is the MD5 of the public key blob, and the private key matches it
    private = serialization.load_pem_private_key(kp["private_key"].encode(), None)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    assert kp["public_key"].split()[:2] == public.split()[:2]
    import base64
    import hashlib
    digest = hashlib.md5(base64.b64decode(public.split()[1])).hexdigest()
    assert kp["fingerprint"] == ":".join(digest[i:i + 2] for i in range(0, 32, 2))
    # from 2.92 a public key is required
    fault(await create(nova, name="gen2", version="2.92"), "badRequest", 400)
    assert "gen2" not in await listed(nova)


async def test_x509(nova: Compute) -> None:
    pem, fp = new_cert()
    r = await create(nova, name="cert", type="x509", public_key=pem)
    assert r.status_code == 201, r.text
    assert r.json()["keypair"]["fingerprint"] == fp and r.json()["keypair"]["type"] == "x509"
    r = await create(nova, name="gencert", type="x509", version="2.10")
    assert r.status_code == 201, r.text
    kp = r.json()["keypair"]
    assert "BEGIN CERTIFICATE" in kp["public_key"] and "PRIVATE KEY" in kp["private_key"]
    fault(await create(nova, name="badcert", type="x509", public_key=KEY), "badRequest", 400)
    fault(await create(nova, name="badtype", type="pgp", public_key=KEY), "badRequest", 400)


@pytest.mark.parametrize("public_key", [
    "", "ssh-rsa", "ssh-rsa not-base64!", "hello world", "ssh-rsa AAAA", 5,
])
async def test_bad_public_keys(nova: Compute, public_key: Any) -> None:
    r = await create(nova, name="bad", public_key=public_key)
    fault(r, "badRequest", 400)
    assert "bad" not in await listed(nova)


@pytest.mark.parametrize(("name", "version"), [
    ("", "2.2"), ("x" * 256, "2.2"), (" lead", "2.2"), ("trail ", "2.2"), ("a/b", "2.2"),
    ("a@b", "2.91"), ("a.b", "2.91"), ("é", "2.92"), ("a!b", "2.92"), (5, "2.2"),
])
async def test_bad_names(nova: Compute, name: Any, version: str) -> None:
    r = await create(nova, name=name, public_key=KEY, version=version)
    fault(r, "badRequest", 400)
    assert await listed(nova) == []


async def test_names_allowed_from_2_92(nova: Compute) -> None:
    r = await create(nova, name="me@host.example", public_key=KEY, version="2.92")
    assert r.status_code == 201, r.text
    assert "private_key" not in r.json()["keypair"]
    r = await create(nova, name="with space_and-dash", public_key=new_key())
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("body", [
    {}, {"keypair": {}}, {"keypair": {"name": "a", "extra": 1}}, {"keypair": "x"},
])
async def test_bad_bodies(nova: Compute, body: Any) -> None:
    fault(await nova.req("POST", "/os-keypairs", json=body), "badRequest", 400)


async def test_duplicates_per_user(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    assert (await create(nova, demo, name="k", public_key=KEY)).status_code == 201
    r = await create(nova, demo, name="k", public_key=new_key())
    assert "already exists" in fault(r, "conflictingRequest", 409)
    r = await nova.req("GET", "/os-keypairs/k", demo, version="2.2")
    assert r.json()["keypair"]["fingerprint"] == KEY_FP  # the first one stays
    # another user may use the same name
    assert (await create(nova, name="k", public_key=new_key())).status_code == 201


async def test_users_see_only_their_own(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    _, other_user, other = await nova.project_user()
    assert (await create(nova, other, name="theirs", public_key=KEY)).status_code == 201
    assert await listed(nova, demo) == []
    fault(await nova.req("GET", "/os-keypairs/theirs", demo), "itemNotFound", 404)
    fault(await nova.req("DELETE", "/os-keypairs/theirs", demo), "itemNotFound", 404)
    # naming another user (2.10) is for admins only
    q = f"?user_id={other_user}"
    r = await nova.req("GET", "/os-keypairs" + q, demo, version="2.10")
    assert "os-keypairs:index" in fault(r, "forbidden", 403)
    r = await create(nova, demo, version="2.10", name="planted", public_key=new_key(),
                     user_id=other_user)
    fault(r, "forbidden", 403)
    assert await listed(nova, other) == ["theirs"]
    # an admin may act for them
    assert await listed(nova, query=q) == ["theirs"]
    r = await nova.req("GET", "/os-keypairs/theirs" + q, version="2.10")
    assert r.status_code == 200 and r.json()["keypair"]["user_id"] == other_user
    r = await create(nova, version="2.10", name="given", public_key=new_key(),
                     user_id=other_user)
    assert r.status_code == 201 and r.json()["keypair"]["user_id"] == other_user
    assert (await nova.req("DELETE", "/os-keypairs/theirs" + q, version="2.10")).status_code == 204
    assert await listed(nova, other) == ["given"]
    # before 2.10 user_id is ignored: the admin sees their own (none)
    r = await nova.req("GET", "/os-keypairs" + q, version="2.9")
    assert r.json()["keypairs"] == []


async def test_pagination_from_2_35(nova: Compute) -> None:
    for name in ("c", "a", "d", "b"):
        assert (await create(nova, name=name, public_key=new_key())).status_code == 201
    r = await nova.req("GET", "/os-keypairs?limit=2", version="2.35")
    body = r.json()
    assert [k["keypair"]["name"] for k in body["keypairs"]] == ["a", "b"]
    [link] = body["keypairs_links"]
    assert link["href"] == "http://onestack.test/compute/v2.1/os-keypairs?limit=2&marker=b"
    assert await listed(nova, query="?limit=2&marker=b") == ["c", "d"]
    assert await listed(nova, query="?marker=d") == []
    fault(await nova.req("GET", "/os-keypairs?marker=zz", version="2.35"), "badRequest", 400)
    fault(await nova.req("GET", "/os-keypairs?limit=-2", version="2.35"), "badRequest", 400)
    # before 2.35 there is no paging
    r = await nova.req("GET", "/os-keypairs?limit=1", version="2.34")
    assert len(r.json()["keypairs"]) == 4 and "keypairs_links" not in r.json()
    fault(await nova.req("GET", "/os-keypairs?bogus=1", version="2.75"), "badRequest", 400)


async def test_delete(nova: Compute) -> None:
    assert (await create(nova, name="d", public_key=KEY)).status_code == 201
    assert (await nova.req("DELETE", "/os-keypairs/d", version="2.2")).status_code == 204
    fault(await nova.req("GET", "/os-keypairs/d"), "itemNotFound", 404)
    r = await nova.req("DELETE", "/os-keypairs/d")
    assert "Keypair d not found for user" in fault(r, "itemNotFound", 404)
