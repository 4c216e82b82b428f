"""Key pairs: per user, imported (an SSH public key or an X.509 certificate) or
generated (before 2.92), with Nova's fingerprints:

- SSH: the MD5 of the decoded key blob, as colon-separated hex pairs;
- X.509: the SHA-1 of the certificate, likewise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from onestack.compute import errors
from onestack.compute.models import KeyPair
from onestack.compute.service import quotas
from onestack.compute.state import ComputeState
from onestack.core.concurrency import run_blocking
from onestack.core.errors import Conflict, Forbidden

SSH = "ssh"
X509 = "x509"


def _colon_hex(digest: str) -> str:
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def ssh_fingerprint(public_key: str) -> str:
    """Raises: BadRequest (Nova's invalid key pair) unless an SSH public key."""
    try:
        serialization.load_ssh_public_key(public_key.encode())
        blob = base64.b64decode(public_key.split(" ")[1])
    except (ValueError, TypeError, IndexError, binascii.Error,
            UnsupportedAlgorithm):
        raise errors.invalid_keypair("failed to generate fingerprint") from None
    return _colon_hex(hashlib.md5(blob, usedforsecurity=False).hexdigest())


def x509_fingerprint(pem: str) -> str:
    """Raises: BadRequest unless a PEM X.509 certificate."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except (ValueError, TypeError, binascii.Error) as exc:
        raise errors.invalid_keypair(
            f"failed to generate X509 fingerprint. Error message: {exc}") from None
    return _colon_hex(cert.fingerprint(hashes.SHA1()).hex())


def fingerprint(public_key: str, key_type: str) -> str:
    return x509_fingerprint(public_key) if key_type == X509 else ssh_fingerprint(public_key)


def generate_ssh() -> tuple[str, str]:
    """A new RSA key: (private key in PEM, OpenSSH public key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public + " Generated-by-Nova"


def generate_x509(user_id: str) -> tuple[str, str]:
    """A new RSA key and a self-signed certificate for ``user_id`` (as Nova's WinRM
    certificates): (private key in PEM, certificate in PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return private, cert.public_bytes(serialization.Encoding.PEM).decode()


async def list_keypairs(st: ComputeState, user_id: str) -> list[KeyPair]:
    """The user's key pairs, by name."""
    async with st.db.read() as s:
        rows = await s.execute(select(KeyPair).where(KeyPair.user_id == user_id)
                               .order_by(KeyPair.name))
        return list(rows.scalars())


async def get_keypair(st: ComputeState, user_id: str, name: str) -> KeyPair:
    async with st.db.read() as s:
        kp = (await s.execute(select(KeyPair).where(
            KeyPair.user_id == user_id, KeyPair.name == name))).scalar_one_or_none()
    if kp is None:
        raise errors.keypair_not_found(name, user_id)
    return kp


async def create_keypair(st: ComputeState, user_id: str, name: str, key_type: str,
                         public_key: str | None,
                         project_id: str | None = None) -> tuple[KeyPair, str | None]:
    """Import ``public_key``, or generate a key pair when it is None; returns the
    key pair and the generated private key (None on import). The user's key pairs
    count against the ``key_pairs`` quota of the caller's project (``project_id``;
    the defaults without one), as Nova's.

    Raises:
        BadRequest: the public key is not valid for its type.
        Conflict: the user has a key pair of that name.
        Forbidden: the user has as many key pairs as the quota allows.
    """
    private_key = None
    if public_key is None:
        if key_type == X509:
            private_key, public_key = await run_blocking(generate_x509, user_id)
        else:
            private_key, public_key = await run_blocking(generate_ssh)
    assert public_key is not None
    fp = fingerprint(public_key, key_type)
    exists = Conflict(f"Key pair '{name}' already exists.")
    await quotas.prefetch(st, project_id)  # the identity service's limits
    async with st.db.write() as s:
        if (await s.execute(select(KeyPair.id).where(
                KeyPair.user_id == user_id, KeyPair.name == name))).first():
            raise exists
        limit = await quotas.effective_limit(s, st, project_id, user_id, "key_pairs")
        have = int(await s.scalar(select(func.count(KeyPair.id)).where(
            KeyPair.user_id == user_id)) or 0)
        if not quotas.within(have, 1, limit):
            raise Forbidden("Quota exceeded, too many key pairs.")
        kp = KeyPair(name=name, user_id=user_id, fingerprint=fp, public_key=public_key,
                     type=key_type)
        s.add(kp)
        try:
            await s.flush()
        except IntegrityError:
            raise exists from None
    return kp, private_key


async def delete_keypair(st: ComputeState, user_id: str, name: str) -> None:
    async with st.db.write() as s:
        result = await s.execute(delete(KeyPair).where(
            KeyPair.user_id == user_id, KeyPair.name == name))
        if not result.rowcount:  # type: ignore[attr-defined]
            raise errors.keypair_not_found(name, user_id)
