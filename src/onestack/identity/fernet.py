"""Keystone-compatible Fernet tokens and the key repository behind them.

Why Fernet: a token is an authenticated, encrypted blob that carries
everything needed to validate it, so nothing is persisted per token; any
node holding the key repository can validate a token minted by any other.

Token = ``Fernet(msgpack(payload)).rstrip("=")``.  The payload is a *flat*
msgpack array ``[version, *fields]`` (Keystone builds ``(version,) +
payload``), one layout per scope::

    0 unscoped          [0, user, methods, expires, audit_ids]
    1 domain-scoped     [1, user, methods, domain, expires, audit_ids]
    2 project-scoped    [2, user, methods, project, expires, audit_ids]
    8 system-scoped     [8, user, methods, system, expires, audit_ids]
    9 app-credential    [9, user, methods, project, expires, audit_ids, app_cred]

* ``user``, ``project``, ``app_cred`` are Keystone's ``(is_stored_as_bytes,
  value)`` pairs: a 32-char lowercase UUID hex id travels as its 16 raw bytes
  (``True``), anything else as the string itself (``False``).
* ``domain`` is bare: 16 raw bytes for a UUID hex id, else the string (e.g.
  ``"default"``); msgpack's bin/str distinction tells them apart.
* ``methods`` is a bitmask (:data:`METHOD_BITS`), ``expires`` a float Unix
  timestamp (microsecond precision survives a float64 round trip; note that
  Keystone itself zeroes microseconds before packing), ``audit_ids`` the raw
  16 bytes behind each urlsafe-base64 audit id.  So a project-scoped token
  is 183 characters (204 with a parent audit id), well under 255.

The issue time is not in the payload: it is the Fernet timestamp
(:meth:`TokenFormatter.creation_time`).  Fernet's TTL is never used; expiry
is the caller's check because ``allow_expired`` validation exists.

Keys live in a directory as ``keystone-manage fernet_setup`` lays it out:
``0`` is staged (the next primary), the highest number is the primary (the
one that encrypts), everything in between is a secondary (decrypts only).
Staging means a rotation can be run on one node and synced to the others
without any node seeing a token made by a key it has never heard of.
"""

from __future__ import annotations

import base64
import os
import secrets
import struct
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped, unused-ignore]
from cryptography.fernet import Fernet, MultiFernet
from cryptography.fernet import InvalidToken as _FernetInvalidToken

__all__ = [
    "METHOD_BITS",
    "InvalidToken",
    "KeyRepository",
    "KeysNotFound",
    "TokenFormatter",
    "TokenPayload",
    "random_audit_id",
]

#: Keystone's default ``[auth] methods`` order; method *i* is bit ``1 << i``.
_METHODS = ["external", "password", "token", "oauth1", "mapped", "application_credential"]
METHOD_BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(_METHODS)}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNSCOPED, _DOMAIN, _PROJECT, _SYSTEM, _APP_CRED = 0, 1, 2, 8, 9


class InvalidToken(Exception):
    """The string is not a token made by the keys of this repository."""


class KeysNotFound(RuntimeError):
    """The key repository holds no usable keys."""


def random_audit_id() -> str:
    """A fresh audit id: urlsafe base64, unpadded, of 16 random bytes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")


class KeyRepository:
    """A directory of Fernet keys named 0..N as keystone-manage fernet_setup makes them:
    0 is the staged key, the highest number is the primary, the others are secondary."""

    def __init__(self, path: str | os.PathLike[str], max_active_keys: int = 3) -> None:
        if max_active_keys < 2:
            raise ValueError("max_active_keys must be at least 2 (staged + primary)")
        self.path = Path(path)
        self.max_active_keys = max_active_keys

    def _key_files(self) -> dict[int, Path]:
        """Non-empty files whose name is a non-negative integer (others ignored)."""
        if not self.path.is_dir():
            return {}
        found: dict[int, Path] = {}
        for entry in self.path.iterdir():
            name = entry.name
            if name.isascii() and name.isdigit() and entry.is_file() and entry.stat().st_size:
                found[int(name)] = entry
        return found

    def _write_key(self, number: int) -> None:
        """Write a new random key as file ``number``: temp file, fsync, rename."""
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{number}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:  # mkstemp already made it 0600
                f.write(Fernet.generate_key())
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path / str(number))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._fsync_dir()

    def _fsync_dir(self) -> None:  # makes the renames themselves durable
        dfd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def ensure(self) -> None:
        """Create the directory (mode 0700) with keys 0 and 1 if it has no keys; idempotent.
        Key files mode 0600, written atomically (temp file + fsync + rename)."""
        if not self.path.is_dir():
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.path, 0o700)  # mkdir's mode is filtered by the umask
        if self._key_files():
            return
        self._write_key(0)
        self.rotate()  # as fernet_setup does: 0 becomes primary 1, new staged 0

    def rotate(self) -> int:
        """Keystone's rotation: staged key 0 becomes the new primary (next number), a new
        staged key 0 is written, and the oldest secondary keys are removed so at most
        max_active_keys remain. Returns the new primary's number."""
        files = self._key_files()
        if 0 not in files:
            raise KeysNotFound(f"no staged key 0 in {self.path}; call ensure() first")
        new_primary = max(files) + 1
        os.replace(files.pop(0), self.path / str(new_primary))
        files[new_primary] = self.path / str(new_primary)
        self._write_key(0)  # also fsyncs the directory, covering the rename above
        # Staged key 0 plus (max_active_keys - 1) numbered keys, newest kept.
        for number in sorted(files, reverse=True)[self.max_active_keys - 1 :]:
            files[number].unlink()
        self._fsync_dir()
        return new_primary

    def load(self) -> list[bytes]:
        """Keys ordered primary first, then staged (0), then secondaries newest first
        — the order MultiFernet needs."""
        files = self._key_files()
        order = sorted(files, reverse=True)
        if len(order) > 1 and order[-1] == 0:
            order.insert(1, order.pop())
        return [files[n].read_bytes().strip() for n in order]


@dataclass(frozen=True)
class TokenPayload:
    """What a token says; exactly one or none of project/domain/system scope.

    ``methods`` travels as a bitmask, so a validated token lists them once
    each, in :data:`METHOD_BITS` order."""

    user_id: str
    methods: list[str]
    expires_at: datetime  # timezone-aware UTC
    audit_ids: list[str]  # [own] or [own, parent chain's]
    project_id: str | None = None
    domain_id: str | None = None
    system: str | None = None  # "all" for system scope
    app_cred_id: str | None = None  # implies project_id

    def __post_init__(self) -> None:
        scopes = [s for s in (self.project_id, self.domain_id, self.system) if s is not None]
        if len(scopes) > 1:
            raise ValueError("at most one of project_id, domain_id, system may be set")
        if self.app_cred_id is not None and self.project_id is None:
            raise ValueError("app_cred_id requires project_id")
        if self.expires_at.tzinfo is None or self.expires_at.utcoffset() is None:
            raise ValueError("expires_at must be timezone-aware")
        if not 1 <= len(self.audit_ids) <= 2:
            raise ValueError("audit_ids must hold one or two ids")
        unknown = set(self.methods) - METHOD_BITS.keys()
        if unknown:
            raise ValueError(f"unknown auth methods: {sorted(unknown)}")

    @property
    def version(self) -> int:
        if self.app_cred_id is not None:
            return _APP_CRED
        if self.project_id is not None:
            return _PROJECT
        if self.domain_id is not None:
            return _DOMAIN
        return _SYSTEM if self.system is not None else _UNSCOPED


def _is_uuid_hex(value: str) -> bool:
    """True only for ids Keystone's decoder turns back into the same string."""
    try:
        return uuid.UUID(hex=value).hex == value
    except ValueError:
        return False


def _pack_id(value: str) -> tuple[bool, bytes | str]:
    return (True, uuid.UUID(hex=value).bytes) if _is_uuid_hex(value) else (False, value)


def _unpack_id(packed: Any) -> str:
    stored_as_bytes, value = packed
    if stored_as_bytes:
        return uuid.UUID(bytes=value).hex
    return value.decode() if isinstance(value, bytes) else _as_str(value)


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _audit_bytes(audit_id: str) -> bytes:
    raw = base64.urlsafe_b64decode(audit_id + "=" * (-len(audit_id) % 4))
    if _audit_str(raw) != audit_id:
        raise ValueError(f"not an unpadded urlsafe base64 audit id: {audit_id!r}")
    return raw


def _audit_str(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _methods_to_int(methods: list[str]) -> int:
    return sum({METHOD_BITS[m] for m in methods})


def _int_to_methods(mask: int) -> list[str]:
    if isinstance(mask, bool) or not isinstance(mask, int) or not 0 <= mask < 1 << len(_METHODS):
        raise ValueError(f"bad methods bitmask: {mask!r}")
    return [name for name, bit in METHOD_BITS.items() if mask & bit]


def _assemble(p: TokenPayload) -> list[Any]:
    scope: list[Any] = []
    if p.project_id is not None:
        scope = [_pack_id(p.project_id)]
    elif p.domain_id is not None:
        d = p.domain_id
        scope = [uuid.UUID(hex=d).bytes if _is_uuid_hex(d) else d]
    elif p.system is not None:
        scope = [p.system]
    extra = [] if p.app_cred_id is None else [_pack_id(p.app_cred_id)]
    expires = (p.expires_at - _EPOCH).total_seconds()
    audits = [_audit_bytes(a) for a in p.audit_ids]
    user, methods = _pack_id(p.user_id), _methods_to_int(p.methods)
    return [p.version, user, methods, *scope, expires, audits, *extra]


def _disassemble(data: Any) -> TokenPayload:
    if not isinstance(data, list) or not data:
        raise TypeError("payload is not a non-empty array")
    version, fields = data[0], data[1:]
    sizes = {_UNSCOPED: 4, _DOMAIN: 5, _PROJECT: 5, _SYSTEM: 5, _APP_CRED: 6}
    if sizes.get(version) != len(fields):
        raise ValueError(f"unknown payload version {version!r} or wrong length")
    scope: dict[str, str] = {}
    if version in (_PROJECT, _APP_CRED):
        scope["project_id"] = _unpack_id(fields[2])
    elif version == _DOMAIN:
        d = fields[2]
        scope["domain_id"] = uuid.UUID(bytes=d).hex if isinstance(d, bytes) else _as_str(d)
    elif version == _SYSTEM:
        scope["system"] = _as_str(fields[2])
    if version == _APP_CRED:
        scope["app_cred_id"] = _unpack_id(fields[5])
    expires, audits = fields[2:4] if version == _UNSCOPED else fields[3:5]
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        raise TypeError("expires_at is not a number")
    if not isinstance(audits, list) or not all(isinstance(a, bytes) for a in audits):
        raise TypeError("audit ids are not a list of bytes")
    return TokenPayload(
        user_id=_unpack_id(fields[0]),
        methods=_int_to_methods(fields[1]),
        expires_at=_EPOCH + timedelta(seconds=expires),
        audit_ids=[_audit_str(a) for a in audits],
        **scope,
    )


def _restore_padding(token: str) -> bytes:
    return (token + "=" * (-len(token) % 4)).encode("ascii")


class TokenFormatter:
    """Turns :class:`TokenPayload` into token strings and back."""

    def __init__(self, repo: KeyRepository) -> None:
        self.repo = repo
        self._crypto: MultiFernet
        self.reload()

    def reload(self) -> None:
        """Re-read the key repository (after a rotation or a key sync)."""
        keys = self.repo.load()
        if not keys:
            raise KeysNotFound(f"no Fernet keys in {self.repo.path}")
        self._crypto = MultiFernet([Fernet(k) for k in keys])

    def create(self, payload: TokenPayload) -> str:
        """The token string: Fernet token with base64 '=' padding stripped, as Keystone does."""
        packed: bytes = msgpack.packb(_assemble(payload), use_bin_type=True)
        return self._crypto.encrypt(packed).rstrip(b"=").decode("ascii")

    def validate(self, token: str) -> TokenPayload:
        """Decrypt and decode; raises InvalidToken for anything these keys did not make.
        Expiry is NOT checked here (callers do, because allow_expired exists)."""
        try:
            plain = self._crypto.decrypt(_restore_padding(token))  # ttl=None: no TTL
        except (_FernetInvalidToken, UnicodeError, TypeError) as exc:
            raise InvalidToken("Could not recognize Fernet token") from exc
        try:
            return _disassemble(msgpack.unpackb(plain, raw=False))
        except (ValueError, TypeError, IndexError, OverflowError, msgpack.UnpackException) as exc:
            raise InvalidToken(f"Malformed Fernet token payload: {exc}") from exc

    @staticmethod
    def creation_time(token: str) -> datetime:
        """issued_at (UTC, whole seconds) from the Fernet timestamp.  Does not
        authenticate the token: call :meth:`validate` first."""
        try:
            raw = base64.urlsafe_b64decode(_restore_padding(token))
            (stamp,) = struct.unpack(">Q", raw[1:9])
            return datetime.fromtimestamp(stamp, UTC)
        except (struct.error, ValueError, TypeError, OverflowError, OSError) as exc:
            raise InvalidToken("Could not read the Fernet timestamp") from exc
