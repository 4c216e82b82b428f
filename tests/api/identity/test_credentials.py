"""Credentials (``/v3/credentials``), the OS-EC2 extension, ``/v3/ec2tokens`` and
``/v3/s3tokens``, and the AWS signature checks behind them (verified against
botocore's and keystoneclient's signers)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from botocore.auth import HmacV1Auth, S3SigV4Auth, SigV2Auth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as AwsCredentials
from sqlalchemy import select

from onestack.core.errors import Unauthorized
from onestack.identity.models import Credential, Project, User
from onestack.identity.service import credentials as svc
from tests.conftest import Cloud

SECRET = "s3cr3t-key"
HOST = "ec2.example:8788"


def _state(cloud: Cloud) -> Any:
    return cloud.app.state.runtime.extras["identity"]


async def _ids(cloud: Cloud) -> dict[str, str]:
    async with _state(cloud).read() as s:
        users = {u.name: u.id for u in await s.scalars(select(User))}
        projects = {p.name: p.id for p in await s.scalars(select(Project))}
    return {"admin": users["admin"], "demo": users["demo"],
            "admin_project": projects["admin"], "demo_project": projects["demo"]}


def _cred(user_id: str, project_id: str | None = None, type_: str = "cert",
          blob: str = "certificate-data", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user_id, "type": type_, "blob": blob, **extra}
    if project_id:
        body["project_id"] = project_id
    return {"credential": body}


# -- /v3/credentials -----------------------------------------------------------------


async def test_credential_crud(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    r = await cloud.post("/credentials", _cred(ids["demo"], ids["demo_project"], colour="blue"))
    assert r.status_code == 201, r.text
    cred = r.json()["credential"]
    assert cred["user_id"] == ids["demo"] and cred["project_id"] == ids["demo_project"]
    assert cred["type"] == "cert" and cred["blob"] == "certificate-data"
    assert cred["colour"] == "blue" and len(cred["id"]) == 32
    assert cred["links"]["self"].endswith(f"/identity/v3/credentials/{cred['id']}")

    r = await cloud.get(f"/credentials/{cred['id']}")
    assert r.json()["credential"] == cred
    r = await cloud.patch(f"/credentials/{cred['id']}", {"credential": {"blob": "new-data"}})
    assert r.status_code == 200
    assert r.json()["credential"]["blob"] == "new-data"
    assert r.json()["credential"]["colour"] == "blue"
    r = await cloud.get(f"/credentials/{cred['id']}")
    assert r.json()["credential"]["blob"] == "new-data"

    r = await cloud.get(f"/credentials?user_id={ids['demo']}")
    assert [c["id"] for c in r.json()["credentials"]] == [cred["id"]]
    assert (await cloud.get("/credentials?type=ec2")).json()["credentials"] == []
    assert (await cloud.get("/credentials?type=cert")).json()["credentials"][0]["id"] == cred["id"]

    assert (await cloud.delete(f"/credentials/{cred['id']}")).status_code == 204
    r = await cloud.get(f"/credentials/{cred['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Could not find credential: {cred['id']}."


async def test_blob_is_stored_encrypted(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    r = await cloud.post("/credentials", _cred(ids["demo"], blob="top secret"))
    cred_id = r.json()["credential"]["id"]
    st = _state(cloud)
    async with st.read() as s:
        row = await s.get(Credential, cred_id)
    assert "top secret" not in row.encrypted_blob
    assert row.key_hash == hashlib.sha1(st.credential_keys.load()[0]).hexdigest()
    assert svc.decrypt(st.credential_keys, row.encrypted_blob) == "top secret"


async def test_ec2_credential_via_credentials_api(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    blob = json.dumps({"access": "AKID1", "secret": "S1"})
    r = await cloud.post("/credentials", _cred(ids["demo"], ids["demo_project"], "ec2", blob))
    assert r.status_code == 201, r.text
    assert r.json()["credential"]["id"] == hashlib.sha256(b"AKID1").hexdigest()
    # the same access key again
    r = await cloud.post("/credentials", _cred(ids["demo"], ids["demo_project"], "ec2", blob))
    assert r.status_code == 409
    # it shows up in the OS-EC2 view as well
    r = await cloud.get(f"/users/{ids['demo']}/credentials/OS-EC2/AKID1")
    assert r.status_code == 200 and r.json()["credential"]["secret"] == "S1"


@pytest.mark.parametrize("body", [
    {"type": "ec2", "blob": '{"access": "a", "secret": "b"}'},            # no project_id
    {"type": "ec2", "blob": "not json", "project_id": "P"},
    {"type": "ec2", "blob": '{"secret": "b"}', "project_id": "P"},         # no access
    {"type": "ec2", "blob": "[]", "project_id": "P"},
    {"type": "cert"},                                                       # no blob
    {"blob": "x"},                                                          # no type
    {"type": "cert", "blob": {"an": "object"}},
])
async def test_credential_validation(cloud: Cloud, body: dict[str, Any]) -> None:
    ids = await _ids(cloud)
    body = {"user_id": ids["demo"], **{k: ids["demo_project"] if v == "P" else v
                                      for k, v in body.items()}}
    r = await cloud.post("/credentials", {"credential": body})
    assert r.status_code == 400, r.text


async def test_users_only_see_and_manage_their_own(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    mine = (await cloud.post("/credentials", _cred(ids["demo"]), token=cloud.demo_token))
    assert mine.status_code == 201, mine.text
    mine_id = mine.json()["credential"]["id"]
    theirs_id = (await cloud.post("/credentials", _cred(ids["admin"]))).json()["credential"]["id"]

    r = await cloud.get("/credentials", token=cloud.demo_token)
    assert [c["id"] for c in r.json()["credentials"]] == [mine_id]
    r = await cloud.get(f"/credentials?user_id={ids['admin']}", token=cloud.demo_token)
    assert r.json()["credentials"] == []
    assert {c["id"] for c in (await cloud.get("/credentials")).json()["credentials"]} == {
        mine_id, theirs_id}

    assert (await cloud.get(f"/credentials/{mine_id}", token=cloud.demo_token)).status_code == 200
    for r in (
        await cloud.get(f"/credentials/{theirs_id}", token=cloud.demo_token),
        await cloud.patch(f"/credentials/{theirs_id}", {"credential": {"blob": "x"}},
                          token=cloud.demo_token),
        await cloud.delete(f"/credentials/{theirs_id}", token=cloud.demo_token),
        await cloud.post("/credentials", _cred(ids["admin"]), token=cloud.demo_token),
        # handing one's credential to someone else
        await cloud.patch(f"/credentials/{mine_id}", {"credential": {"user_id": ids["admin"]}},
                          token=cloud.demo_token),
        # a credential that does not exist: not told apart from someone else's
        await cloud.get("/credentials/nope", token=cloud.demo_token),
    ):
        assert r.status_code == 403, r.text
    r = await cloud.patch(f"/credentials/{mine_id}", {"credential": {"blob": "y"}},
                          token=cloud.demo_token)
    assert r.status_code == 200
    assert (await cloud.delete(f"/credentials/{mine_id}", token=cloud.demo_token)).status_code == 204
    assert (await cloud.client.get("/identity/v3/credentials")).status_code == 401


async def test_credential_update_rules(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    cred = (await cloud.post("/credentials", _cred(ids["demo"]))).json()["credential"]
    r = await cloud.patch(f"/credentials/{cred['id']}", {"credential": {}})
    assert r.status_code == 400
    r = await cloud.patch(f"/credentials/{cred['id']}", {"credential": {"id": "other"}})
    assert r.status_code == 400
    # becoming an ec2 credential needs a project
    r = await cloud.patch(f"/credentials/{cred['id']}", {"credential": {"type": "ec2"}})
    assert r.status_code == 400
    assert (await cloud.patch("/credentials/nope", {"credential": {"blob": "x"}})).status_code == 404
    assert (await cloud.delete("/credentials/nope")).status_code == 404


# -- OS-EC2 ----------------------------------------------------------------------------


async def _ec2(cloud: Cloud, token: str | None = None) -> dict[str, Any]:
    ids = await _ids(cloud)
    r = await cloud.post(f"/users/{ids['demo']}/credentials/OS-EC2",
                         {"tenant_id": ids["demo_project"]}, token=token)
    assert r.status_code == 201, r.text
    return r.json()["credential"]  # type: ignore[no-any-return]


async def test_os_ec2_lifecycle(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    ec2 = await _ec2(cloud, token=cloud.demo_token)
    assert ec2["user_id"] == ids["demo"] and ec2["tenant_id"] == ids["demo_project"]
    assert len(ec2["access"]) == 32 and len(ec2["secret"]) == 32 and ec2["trust_id"] is None
    assert ec2["links"]["self"].endswith(
        f"/v3/users/{ids['demo']}/credentials/OS-EC2/{ec2['access']}")
    base = f"/users/{ids['demo']}/credentials/OS-EC2"
    r = await cloud.get(base, token=cloud.demo_token)
    assert [c["access"] for c in r.json()["credentials"]] == [ec2["access"]]
    r = await cloud.get(f"{base}/{ec2['access']}", token=cloud.demo_token)
    assert r.json()["credential"] == ec2
    # also a plain credential
    r = await cloud.get(f"/credentials/{hashlib.sha256(ec2['access'].encode()).hexdigest()}")
    assert r.json()["credential"]["type"] == "ec2"
    assert json.loads(r.json()["credential"]["blob"])["secret"] == ec2["secret"]
    assert (await cloud.delete(f"{base}/{ec2['access']}", token=cloud.demo_token)).status_code == 204
    assert (await cloud.get(f"{base}/{ec2['access']}")).status_code == 404
    assert (await cloud.get(base)).json()["credentials"] == []


async def test_os_ec2_errors_and_authorization(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    ec2 = await _ec2(cloud)
    admin_base = f"/users/{ids['admin']}/credentials/OS-EC2"
    r = await cloud.post(admin_base, {"tenant_id": "nope"})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Could not find project: nope."
    assert (await cloud.post(admin_base, {})).status_code == 400
    assert (await cloud.post("/users/nope/credentials/OS-EC2",
                             {"tenant_id": ids["demo_project"]})).status_code == 404
    assert (await cloud.get("/users/nope/credentials/OS-EC2")).status_code == 404
    assert (await cloud.get(f"{admin_base}/unknown")).status_code == 404
    # another user's key under one's own path is not found
    assert (await cloud.get(f"{admin_base}/{ec2['access']}")).status_code == 404
    for r in (
        await cloud.get(admin_base, token=cloud.demo_token),
        await cloud.post(admin_base, {"tenant_id": ids["demo_project"]}, token=cloud.demo_token),
    ):
        assert r.status_code == 403
    theirs = (await cloud.post(admin_base, {"tenant_id": ids["admin_project"]})).json()
    access = theirs["credential"]["access"]
    for r in (
        await cloud.get(f"{admin_base}/{access}", token=cloud.demo_token),
        await cloud.delete(f"{admin_base}/{access}", token=cloud.demo_token),
    ):
        assert r.status_code == 403


# -- signatures ---------------------------------------------------------------------


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _v2_request(access: str, secret: str, verb: str = "GET") -> dict[str, Any]:
    """An EC2 request signed by botocore's SigV2Auth, as an EC2 API forwards it."""
    params = {"Action": "DescribeInstances", "Version": "2016-11-15", "Filter.1.Name": "a b/c"}
    if verb == "GET":
        req = AWSRequest(method="GET", url=f"http://{HOST}/", params=params)
    else:
        req = AWSRequest(method="POST", url=f"http://{HOST}/", data=dict(params))
    SigV2Auth(AwsCredentials(access, secret)).add_auth(req)
    signed = dict(req.params if verb == "GET" else req.data)
    signature = signed.pop("Signature")
    return {"access": access, "signature": signature, "host": HOST, "verb": verb, "path": "/",
            "params": signed, "headers": {}}


def _v4_request(access: str, secret: str, verb: str = "GET") -> dict[str, Any]:
    """An EC2 request signed by botocore's SigV4Auth (Authorization header)."""
    params = {"Action": "DescribeInstances", "Version": "2016-11-15", "Filter.1.Value": "x~y z"}
    if verb == "GET":
        # encoded as AWS clients do (RFC 3986), which the canonical form expects
        query = urlencode(params, quote_via=quote, safe="-_.~")
        req = AWSRequest(method="GET", url=f"http://{HOST}/?{query}")
        body = b""
    else:
        body = urlencode(params).encode()
        req = AWSRequest(method="POST", url=f"http://{HOST}/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    SigV4Auth(AwsCredentials(access, secret), "ec2", "RegionOne").add_auth(req)
    headers = {k: v for k, v in req.headers.items()}
    headers["Host"] = HOST
    signature = headers["Authorization"].rsplit("Signature=", 1)[1]
    return {"access": access, "signature": signature, "host": HOST, "verb": verb, "path": "/",
            "params": params, "headers": headers, "body_hash": hashlib.sha256(body).hexdigest()}


def _v4_query_request(access: str, secret: str) -> dict[str, Any]:
    """A presigned (query string) v4 request."""
    req = AWSRequest(method="GET", url=f"http://{HOST}/?Action=DescribeRegions&Version=2016-11-15")
    SigV4QueryAuth(AwsCredentials(access, secret), "ec2", "RegionOne", expires=300).add_auth(req)
    query = req.url.split("?", 1)[1]
    params = dict(p.split("=", 1) for p in query.split("&"))
    from urllib.parse import unquote
    params = {unquote(k): unquote(v) for k, v in params.items()}
    signature = params.pop("X-Amz-Signature")
    return {"access": access, "signature": signature, "host": HOST, "verb": "GET", "path": "/",
            "params": params, "headers": {"Host": HOST}}


@pytest.mark.parametrize("make", [
    lambda a, s: _v2_request(a, s), lambda a, s: _v2_request(a, s, "POST"),
    lambda a, s: _v4_request(a, s), lambda a, s: _v4_request(a, s, "POST"),
    _v4_query_request,
])
def test_ec2_signatures_match_botocore(make: Any) -> None:
    creds = make("AKID", SECRET)
    assert svc.ec2_signature(SECRET, creds) == creds["signature"]
    svc.check_ec2_signature(SECRET, creds)
    with pytest.raises(Unauthorized):
        svc.check_ec2_signature("wrong", creds)


def test_ec2_signature_matches_keystoneclient() -> None:
    from keystoneclient.contrib.ec2.utils import Ec2Signer

    creds = _v4_request("AKID", SECRET)
    assert Ec2Signer(SECRET).generate(dict(creds)) == svc.ec2_signature(SECRET, creds)
    v2 = _v2_request("AKID", SECRET)
    assert Ec2Signer(SECRET).generate(json.loads(json.dumps(v2))) == svc.ec2_signature(SECRET, v2)


def test_ec2_signature_edge_cases() -> None:
    creds = _v2_request("AKID", SECRET)
    # signed without the port: accepted
    bare = dict(creds, signature=svc.ec2_signature(SECRET, creds, host="ec2.example"))
    svc.check_ec2_signature(SECRET, bare)
    with pytest.raises(Unauthorized, match="not supplied"):
        svc.check_ec2_signature(SECRET, dict(creds, signature=""))
    with pytest.raises(Unauthorized):
        svc.ec2_signature(SECRET, dict(creds, params={"SignatureVersion": "1"}))
    v4 = _v4_request("AKID", SECRET)
    v4["headers"] = dict(v4["headers"], **{"X-Amz-Date": "19990101T000000Z"})
    with pytest.raises(Unauthorized, match="date"):
        svc.ec2_signature(SECRET, v4)


def test_timestamps() -> None:
    now = datetime.now(UTC)
    svc.check_timestamp({"params": {"Timestamp": _now_iso()}})
    svc.check_timestamp({"headers": {"X-Amz-Date": now.strftime("%Y%m%dT%H%M%SZ")}})
    svc.check_timestamp({"params": {}})
    old = (now - timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    with pytest.raises(Unauthorized, match="expired"):
        svc.check_timestamp({"headers": {"X-Amz-Date": old}})
    with pytest.raises(Unauthorized, match="invalid"):
        svc.check_timestamp({"params": {"Timestamp": "yesterday"}})


def _s3_v4(access: str, secret: str) -> dict[str, Any]:
    auth = S3SigV4Auth(AwsCredentials(access, secret), "s3", "RegionOne")
    req = AWSRequest(method="GET", url="http://s3.example/bucket/key",
                     headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    req.context["timestamp"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    auth._modify_request_before_signing(req)
    string_to_sign = auth.string_to_sign(req, auth.canonical_request(req))
    return {"access": access, "token": base64.urlsafe_b64encode(string_to_sign.encode()).decode(),
            "signature": auth.signature(string_to_sign, req)}


def _s3_v2(access: str, secret: str) -> dict[str, Any]:
    auth = HmacV1Auth(AwsCredentials(access, secret))
    from urllib.parse import urlsplit
    headers = {"Date": "Mon, 01 Jan 2024 00:00:00 GMT"}
    split = urlsplit("http://s3.example/bucket/key")
    from botocore.awsrequest import HTTPHeaders
    hh = HTTPHeaders()
    for k, v in headers.items():
        hh[k] = v
    string_to_sign = auth.canonical_string("GET", split, hh)
    return {"access": access, "token": base64.urlsafe_b64encode(string_to_sign.encode()).decode(),
            "signature": auth.get_signature("GET", split, hh)}


@pytest.mark.parametrize("make", [_s3_v4, _s3_v2])
def test_s3_signatures_match_botocore(make: Any) -> None:
    creds = make("AKID", SECRET)
    svc.check_s3_signature(SECRET, creds)
    with pytest.raises(Unauthorized):
        svc.check_s3_signature("wrong", creds)


# -- /v3/ec2tokens and /v3/s3tokens -------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda a, s: _v2_request(a, s), lambda a, s: _v4_request(a, s, "POST"), _v4_query_request,
])
async def test_ec2tokens_issues_project_token(cloud: Cloud, make: Any) -> None:
    ids = await _ids(cloud)
    ec2 = await _ec2(cloud, token=cloud.demo_token)
    r = await cloud.post("/ec2tokens", {"credentials": make(ec2["access"], ec2["secret"])})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert token["methods"] == ["ec2credential"]
    assert token["project"]["id"] == ids["demo_project"]
    assert token["user"]["id"] == ids["demo"]
    assert {x["name"] for x in token["roles"]} == {"member", "reader"}
    assert token["catalog"]
    subject = r.headers["X-Subject-Token"]
    r = await cloud.client.get("/identity/v3/auth/tokens",
                               headers={"X-Auth-Token": cloud.admin_token, "X-Subject-Token": subject})
    assert r.status_code == 200
    assert r.json()["token"]["project"]["id"] == ids["demo_project"]
    # the token works as a token
    assert (await cloud.get(f"/users/{ids['demo']}/credentials/OS-EC2", token=subject)).status_code == 200


async def test_ec2tokens_failures(cloud: Cloud) -> None:
    ec2 = await _ec2(cloud)
    good = _v4_request(ec2["access"], ec2["secret"])
    r = await cloud.post("/ec2tokens", {"credentials": dict(good, signature="0" * 64)})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Invalid EC2 signature."
    r = await cloud.post("/ec2tokens", {"credentials": _v4_request("unknown", "x")})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "EC2 access key not found."
    r = await cloud.post("/ec2tokens", {"credentials": {"signature": "x"}})
    assert r.status_code == 401
    assert (await cloud.post("/ec2tokens", {})).status_code == 400
    # only EC2 front ends (admin or service) may ask
    r = await cloud.post("/ec2tokens", {"credentials": good}, token=cloud.demo_token)
    assert r.status_code == 403
    # a request signed too long ago
    old = dict(good, headers=dict(good["headers"]))
    old_creds = _v2_request(ec2["access"], ec2["secret"])
    old_creds["params"]["Timestamp"] = "2001-01-01T00:00:00Z"
    old_creds["signature"] = svc.ec2_signature(ec2["secret"], old_creds)
    r = await cloud.post("/ec2tokens", {"credentials": old_creds})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Credential is expired"
    assert old


async def test_ec2tokens_refused_without_role_on_project(cloud: Cloud) -> None:
    ids = await _ids(cloud)
    # an EC2 credential of demo on the admin project, where demo holds no role
    blob = json.dumps({"access": "AK-NOROLE", "secret": "S"})
    r = await cloud.post("/credentials", _cred(ids["demo"], ids["admin_project"], "ec2", blob))
    assert r.status_code == 201
    r = await cloud.post("/ec2tokens", {"credentials": _v4_request("AK-NOROLE", "S")})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "User not valid for project."


@pytest.mark.parametrize("make", [_s3_v4, _s3_v2])
async def test_s3tokens(cloud: Cloud, make: Any) -> None:
    ids = await _ids(cloud)
    ec2 = await _ec2(cloud)
    r = await cloud.post("/s3tokens", {"credentials": make(ec2["access"], ec2["secret"])})
    assert r.status_code == 200, r.text
    assert r.json()["token"]["project"]["id"] == ids["demo_project"]
    r = await cloud.post("/s3tokens", {"credentials": make(ec2["access"], "wrong")})
    assert r.status_code == 401


async def test_owner_gets_404_for_a_deleted_ec2_credential(cloud: Cloud) -> None:
    r = await cloud.client.get("/identity/v3/auth/tokens", headers={
        "X-Auth-Token": cloud.demo_token, "X-Subject-Token": cloud.demo_token})
    token = r.json()["token"]
    uid, pid = token["user"]["id"], token["project"]["id"]
    r = await cloud.post(f"/users/{uid}/credentials/OS-EC2", {"tenant_id": pid}, token=cloud.demo_token)
    assert r.status_code == 201, r.text
    access = r.json()["credential"]["access"]
    assert (await cloud.delete(f"/users/{uid}/credentials/OS-EC2/{access}", token=cloud.demo_token)).status_code == 204
    r = await cloud.get(f"/users/{uid}/credentials/OS-EC2/{access}", token=cloud.demo_token)
    assert r.status_code == 404
