"""Credentials: blobs kept encrypted, EC2 credentials, and AWS signatures.

Blobs are encrypted with the credential key repository (``DATA_DIR/credential-keys``)
through ``MultiFernet``: the primary key encrypts, every key decrypts, and
``key_hash`` (SHA-1 of the primary key, as Keystone keeps it) tells which key
a blob was written with. An EC2 credential's blob is JSON with ``access`` and
``secret``; its id is the SHA-256 of the access key, so ``/v3/ec2tokens`` finds
it from the access key alone.

The signature checks are pure functions (``ec2_signature``, ``s3_signature``):
AWS signature version 2 and 4 over the request parts an EC2 or S3 front end
forwards, as Keystone's ``/v3/ec2tokens`` and ``/v3/s3tokens`` receive them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import BadRequest, CloudError, NotFound, Unauthorized
from onestack.identity.errors import not_found
from onestack.identity.fernet import KeyRepository, TokenPayload
from onestack.identity.models import ApplicationCredential, Credential, Project, User
from onestack.identity.service import effective
from onestack.identity.state import IdentityState

# how long a signed request stays usable (Keystone's [credential] auth_ttl)
AUTH_TTL = timedelta(minutes=15)
EC2 = "ec2"
V4_ALGORITHM = "AWS4-HMAC-SHA256"


# -- encryption ----------------------------------------------------------------


def encrypt(keys: KeyRepository, text: str) -> tuple[str, str]:
    """``(encrypted blob, key hash)`` for ``text``."""
    raw = keys.load()
    token = MultiFernet([Fernet(k) for k in raw]).encrypt(text.encode())
    return token.decode(), hashlib.sha1(raw[0]).hexdigest()


def decrypt(keys: KeyRepository, blob: str) -> str:
    try:
        return MultiFernet([Fernet(k) for k in keys.load()]).decrypt(blob.encode()).decode()
    except InvalidToken:
        raise CloudError("Credential could not be decrypted: its key is gone.") from None


def access_key_id(access: str) -> str:
    """The id of the EC2 credential with this access key (Keystone's hash)."""
    return hashlib.sha256(access.encode()).hexdigest()


def ec2_blob(blob: str) -> dict[str, Any]:
    """An EC2 blob as an object, or Keystone's 400s."""
    try:
        data = json.loads(blob)
    except ValueError:
        raise BadRequest("Invalid blob in credential") from None
    if not data or not isinstance(data, dict):
        raise BadRequest("Expecting to find blob in credential. The server could not comply "
                         "with the request since it is either malformed or otherwise "
                         "incorrect. The client is assumed to be in error.")
    if data.get("access") is None:
        raise BadRequest("Expecting to find access in credential. The server could not "
                         "comply with the request since it is either malformed or otherwise "
                         "incorrect. The client is assumed to be in error.")
    return data


async def get_credential(session: AsyncSession, credential_id: str) -> Credential:
    cred = await session.get(Credential, credential_id)
    if cred is None:
        raise not_found("credential", credential_id)
    return cred


def set_blob(keys: KeyRepository, cred: Credential, blob: str) -> None:
    cred.encrypted_blob, cred.key_hash = encrypt(keys, blob)


def blob_of(keys: KeyRepository, cred: Credential) -> str:
    return decrypt(keys, cred.encrypted_blob)


# -- AWS signatures (pure) -------------------------------------------------------


def _canonical_query(params: Mapping[str, Any]) -> str:
    pairs = sorted((str(k), str(v)) for k, v in params.items())
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)


def _hmac(key: bytes, msg: str | bytes, digest: Any = hashlib.sha256) -> bytes:
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, digest).digest()


def _v4_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def _signature_v2(secret: str, params: dict[str, Any], verb: str, host: str, path: str) -> str:
    params = {k: v for k, v in params.items() if k != "Signature"}
    digest = hashlib.sha1 if params.get("SignatureMethod") == "HmacSHA1" else hashlib.sha256
    to_sign = f"{verb}\n{host}\n{path}\n{_canonical_query(params)}"
    return base64.b64encode(_hmac(secret.encode(), to_sign, digest)).decode()


def _signature_v4(secret: str, creds: Mapping[str, Any]) -> str:
    headers = {str(k).lower().strip(): str(v) for k, v in (creds.get("headers") or {}).items()}
    params = {k: v for k, v in (creds.get("params") or {}).items() if k != "X-Amz-Signature"}
    auth = headers.get("authorization", "")

    def auth_param(name: str) -> str:
        if auth:
            m = re.search(rf"{name}=([^,\s]*)", auth)
            return m.group(1) if m else ""
        return str(params.get(f"X-Amz-{name}", ""))

    signed = auth_param("SignedHeaders")
    canonical_headers = "".join(
        f"{h}:{' '.join(headers[h].split())}\n" for h in signed.split(";") if h in headers
    )
    verb = str(creds.get("verb", "GET")).upper()
    # EC2 sends POST parameters in the body, which the payload hash covers
    query = "" if verb == "POST" else _canonical_query(params)
    body_hash = (creds.get("body_hash") or headers.get("x-amz-content-sha256")
                 or hashlib.sha256(b"").hexdigest())
    request = "\n".join((verb, str(creds.get("path", "/")), query, canonical_headers, signed,
                         str(body_hash)))
    scope_parts = auth_param("Credential").split("/")
    if len(scope_parts) != 5 or scope_parts[4] != "aws4_request":
        raise Unauthorized("Invalid EC2 signature.")
    date = headers.get("x-amz-date") or str(params.get("X-Amz-Date", ""))
    if not date.startswith(scope_parts[1]):
        raise Unauthorized("Request date mismatch error")
    to_sign = "\n".join((V4_ALGORITHM, date, "/".join(scope_parts[1:]),
                         hashlib.sha256(request.encode()).hexdigest()))
    key = _v4_key(secret, *scope_parts[1:4])
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _is_v4(creds: Mapping[str, Any]) -> bool:
    headers = {str(k).lower(): str(v) for k, v in (creds.get("headers") or {}).items()}
    if headers.get("authorization", "").startswith(V4_ALGORITHM):
        return True
    return (creds.get("params") or {}).get("X-Amz-Algorithm") == V4_ALGORITHM


def ec2_signature(secret: str, creds: Mapping[str, Any], host: str | None = None) -> str:
    """The signature an EC2 request (as ``/v3/ec2tokens`` receives it: ``verb``,
    ``host``, ``path``, ``params``, ``headers``, ``body_hash``) should carry.

    Raises:
        Unauthorized: the request uses a signature version other than 2 or 4.
    """
    params = dict(creds.get("params") or {})
    if params.get("SignatureVersion") == "2":
        return _signature_v2(secret, params, str(creds.get("verb", "GET")),
                             host if host is not None else str(creds.get("host", "")),
                             str(creds.get("path", "/")))
    if _is_v4(creds):
        return _signature_v4(secret, creds)
    raise Unauthorized("Invalid EC2 signature.")


def check_ec2_signature(secret: str, creds: Mapping[str, Any]) -> None:
    """Raises ``Unauthorized`` unless ``creds["signature"]`` is right. Some clients
    sign without the port of the host, so that is tried too."""
    given = creds.get("signature")
    if not given:
        raise Unauthorized("EC2 signature not supplied.")
    if hmac.compare_digest(str(given), ec2_signature(secret, creds)):
        return
    host = str(creds.get("host", ""))
    if ":" in host:
        bare = urlsplit("//" + host).hostname or ""
        if hmac.compare_digest(str(given), ec2_signature(secret, creds, host=bare)):
            return
    raise Unauthorized("Invalid EC2 signature.")


def s3_signature(secret: str, string_to_sign: bytes) -> str:
    """The signature of an S3 request's string to sign: v4 when it starts with
    ``AWS4``, else v2 (base64 HMAC-SHA1)."""
    if not string_to_sign.startswith(b"AWS4"):
        return base64.b64encode(_hmac(secret.encode(), string_to_sign, hashlib.sha1)).decode()
    parts = string_to_sign.split(b"\n")
    if len(parts) != 4 or parts[0] != V4_ALGORITHM.encode():
        raise Unauthorized("Invalid EC2 signature.")
    scope = parts[2].split(b"/")
    if len(scope) != 4 or scope[3] != b"aws4_request" or scope[2] not in (b"s3", b"iam", b"sts"):
        raise Unauthorized("Invalid EC2 signature.")
    key = _v4_key(secret, *(s.decode() for s in scope[:3]))
    return hmac.new(key, string_to_sign, hashlib.sha256).hexdigest()


def check_s3_signature(secret: str, creds: Mapping[str, Any]) -> None:
    """``creds``: ``token`` (the base64 string to sign) and ``signature``."""
    try:
        string_to_sign = base64.urlsafe_b64decode(str(creds.get("token", "")))
    except ValueError:
        raise Unauthorized("Credential signature mismatch") from None
    if not hmac.compare_digest(str(creds.get("signature", "")), s3_signature(secret, string_to_sign)):
        raise Unauthorized("Credential signature mismatch")


def check_timestamp(creds: Mapping[str, Any], now: datetime | None = None) -> None:
    """A signed request whose timestamp is older than ``AUTH_TTL`` is refused."""
    params = creds.get("params") or {}
    headers = {str(k).lower(): v for k, v in (creds.get("headers") or {}).items()}
    stamp = params.get("Timestamp") or headers.get("x-amz-date") or params.get("X-Amz-Date")
    if not stamp:
        return
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError as exc:
        raise Unauthorized(f"Credential timestamp is invalid: {exc}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if (now or datetime.now(UTC)) > when + AUTH_TTL:
        raise Unauthorized("Credential is expired")


# -- authenticating with an EC2 credential --------------------------------------------


async def ec2_authenticate(st: IdentityState, creds: Any, *, s3: bool = False) -> TokenPayload:
    """The payload of a token for the owner of the EC2 credential that signed
    ``creds``, scoped to the credential's project (or its application credential).

    Raises:
        Unauthorized: bad or missing signature, expired request, disabled user or
            project, or no role on the project.
        NotFound: no EC2 credential has this access key.
    """
    if not isinstance(creds, dict) or "access" not in creds:
        raise Unauthorized("EC2 Signature not supplied")
    async with st.read() as session:
        cred = await session.get(Credential, access_key_id(str(creds["access"])))
        if cred is None or cred.type != EC2:
            raise NotFound("EC2 access key not found.")
        blob = json.loads(blob_of(st.credential_keys, cred))
        secret = str(blob.get("secret", ""))
        if s3:
            check_s3_signature(secret, creds)
        else:
            check_ec2_signature(secret, creds)
        user = await session.get(User, cred.user_id)
        project = await session.get(Project, cred.project_id or "")
        if user is None or project is None:
            raise Unauthorized("The request you have made requires authentication.")
        domain = await session.get(Project, user.domain_id)
        pdomain = await session.get(Project, project.domain_id)
        if not (user.enabled and project.enabled and not project.is_domain
                and domain is not None and domain.enabled
                and pdomain is not None and pdomain.enabled):
            raise Unauthorized("The request you have made requires authentication.")
        check_timestamp(creds)
        app_cred_id = blob.get("app_cred_id")
        if app_cred_id:
            ac = await session.get(ApplicationCredential, str(app_cred_id))
            if ac is None:
                raise Unauthorized("The request you have made requires authentication.")
            if ac.project_id != project.id:
                raise Unauthorized("EC2 credential project does not match the application "
                                   "credential project.")
        elif not await effective.direct_role_ids(session, user.id, project=project):
            raise Unauthorized("User not valid for project.")
    # "ec2credential" is not a Fernet method bit (nor in Keystone's defaults):
    # the token carries no method, and the response names it
    return st.tokens.new_payload(user.id, [], st.tokens.expiry(), project_id=project.id,
                                 app_cred_id=str(app_cred_id) if app_cred_id else None)
