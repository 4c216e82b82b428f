"""Keystone-compatible Fernet tokens: real crypto, real files, no mocks."""

from __future__ import annotations

import base64
import os
import random
import stat
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgpack  # type: ignore[import-untyped, unused-ignore]
import pytest
from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken as FernetInvalidToken

from onestack.identity.fernet import (
    METHOD_BITS,
    InvalidToken,
    KeyRepository,
    KeysNotFound,
    TokenFormatter,
    TokenPayload,
    random_audit_id,
)

USER = uuid.uuid4().hex
PROJECT = uuid.uuid4().hex
DOMAIN = uuid.uuid4().hex
APP_CRED = uuid.uuid4().hex
EXPIRES = datetime(2031, 5, 17, 12, 34, 56, 789012, tzinfo=UTC)


def _payload(**kw: object) -> TokenPayload:
    base: dict[str, object] = {
        "user_id": USER,
        "methods": ["password"],
        "expires_at": EXPIRES,
        "audit_ids": [random_audit_id()],
    }
    base.update(kw)
    return TokenPayload(**base)  # type: ignore[arg-type]


@pytest.fixture
def repo(tmp_path: Path) -> KeyRepository:
    r = KeyRepository(tmp_path / "fernet-keys", max_active_keys=3)
    r.ensure()
    return r


@pytest.fixture
def fmt(repo: KeyRepository) -> TokenFormatter:
    return TokenFormatter(repo)


def _padded(token: str) -> bytes:
    return (token + "=" * (-len(token) % 4)).encode()


def _decoded(fmt: TokenFormatter, token: str) -> list[object]:
    """The raw msgpack payload of a token, to check the wire format itself."""
    plain = fmt._crypto.decrypt(_padded(token))
    data = msgpack.unpackb(plain)
    assert isinstance(data, list)
    return data


# --- round trips for every scope -------------------------------------------------

SCOPES: dict[str, dict[str, object]] = {
    "unscoped": {},
    "project": {"project_id": PROJECT},
    "domain": {"domain_id": DOMAIN},
    "default-domain": {"domain_id": "default"},
    "system": {"system": "all"},
    "app-cred": {
        "project_id": PROJECT,
        "app_cred_id": APP_CRED,
        "methods": ["application_credential"],
    },
}
VERSIONS = {
    "unscoped": 0,
    "project": 2,
    "domain": 1,
    "default-domain": 1,
    "system": 8,
    "app-cred": 9,
}


@pytest.mark.parametrize("scope", sorted(SCOPES))
def test_round_trip_each_scope(fmt: TokenFormatter, scope: str) -> None:
    payload = _payload(**SCOPES[scope])
    token = fmt.create(payload)
    assert fmt.validate(token) == payload
    assert _decoded(fmt, token)[0] == VERSIONS[scope]


def test_round_trip_with_parent_audit_id_and_non_uuid_ids(fmt: TokenFormatter) -> None:
    payload = _payload(
        user_id="ldap-user@example.org",
        project_id="not-a-uuid",
        methods=["token"],
        audit_ids=[random_audit_id(), random_audit_id()],
    )
    assert fmt.validate(fmt.create(payload)) == payload


def test_wire_format_matches_keystone(fmt: TokenFormatter) -> None:
    audit = random_audit_id()
    token = fmt.create(
        _payload(project_id=PROJECT, methods=["password", "token"], audit_ids=[audit])
    )
    version, user, methods, project, expires, audits = _decoded(fmt, token)
    assert version == 2
    assert user == [True, uuid.UUID(USER).bytes]
    assert methods == 2 | 4
    assert project == [True, uuid.UUID(PROJECT).bytes]
    assert isinstance(expires, float) and expires == (EXPIRES.timestamp())
    assert audits == [base64.urlsafe_b64decode(audit + "==")]
    # non-UUID ids are stored as-is; a domain id is bare, not a (flag, value) pair
    data = _decoded(fmt, fmt.create(_payload(user_id="admin", domain_id="default")))
    assert data[1] == [False, "admin"] and data[3] == "default"
    # A hyphenated UUID is not 32-hex: stored as text so it round-trips unchanged.
    hyphenated = str(uuid.uuid4())
    assert _decoded(fmt, fmt.create(_payload(user_id=hyphenated)))[1] == [False, hyphenated]


def test_expires_at_keeps_microseconds(fmt: TokenFormatter) -> None:
    rng = random.Random(1234)
    for _ in range(200):
        when = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(0, 20 * 365 * 86400), microseconds=rng.randrange(10**6)
        )
        got = fmt.validate(fmt.create(_payload(expires_at=when))).expires_at
        assert got == when and got.tzinfo is not None and got.utcoffset() == timedelta(0)


def test_expires_at_in_other_timezone_is_normalized(fmt: TokenFormatter) -> None:
    cet = timezone(timedelta(hours=1))
    got = fmt.validate(fmt.create(_payload(expires_at=EXPIRES.astimezone(cet)))).expires_at
    assert got == EXPIRES and got.utcoffset() == timedelta(0)


# --- methods bitmask ------------------------------------------------------------


def test_method_bits_are_keystones_defaults() -> None:
    assert METHOD_BITS == {
        "external": 1,
        "password": 2,
        "token": 4,
        "oauth1": 8,
        "mapped": 16,
        "application_credential": 32,
    }


@pytest.mark.parametrize("mask", range(1, 64))
def test_methods_bitmask_round_trip(fmt: TokenFormatter, mask: int) -> None:
    methods = [m for m, bit in METHOD_BITS.items() if mask & bit]
    token = fmt.create(_payload(methods=methods))
    assert _decoded(fmt, token)[2] == mask
    assert fmt.validate(token).methods == methods


def test_methods_are_normalized_and_unknown_rejected(fmt: TokenFormatter) -> None:
    token = fmt.create(_payload(methods=["token", "password", "token"]))
    assert fmt.validate(token).methods == ["password", "token"]
    with pytest.raises(ValueError):
        _payload(methods=["kerberos"])


# --- size -----------------------------------------------------------------------


def test_token_is_small_and_unpadded(fmt: TokenFormatter) -> None:
    payload = _payload(
        project_id=PROJECT,
        methods=["password", "token"],
        audit_ids=[random_audit_id(), random_audit_id()],
    )
    token = fmt.create(payload)
    assert len(token) < 255
    assert "=" not in token
    assert len(fmt.create(_payload(project_id=PROJECT))) < 200


# --- rejection --------------------------------------------------------------------


def test_garbage_truncated_and_other_key_tokens_are_invalid(
    fmt: TokenFormatter, tmp_path: Path
) -> None:
    token = fmt.create(_payload(project_id=PROJECT))
    other_repo = KeyRepository(tmp_path / "other")
    other_repo.ensure()
    foreign = TokenFormatter(other_repo).create(_payload(project_id=PROJECT))
    flipped = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    bad = [
        "",
        "garbage",
        "x" * 200,
        "é" * 50,
        token[:-1],
        token[:-10],
        token[:50],
        token + "AAAA",
        flipped,
        foreign,
        uuid.uuid4().hex,
    ]
    for candidate in bad:
        with pytest.raises(InvalidToken):
            fmt.validate(candidate)
    assert issubclass(InvalidToken, Exception)


def test_well_encrypted_but_unknown_payload_is_invalid(
    repo: KeyRepository, fmt: TokenFormatter
) -> None:
    primary = Fernet(repo.load()[0])
    good = _decoded(fmt, fmt.create(_payload(project_id=PROJECT)))
    wrong_version = [3, *good[1:]]  # trust-scoped: not supported here
    wrong_length = good[:-1]
    for plain in (
        b"\xc1",
        b"not msgpack at all",
        msgpack.packb({"a": 1}),
        msgpack.packb(wrong_version),
        msgpack.packb(wrong_length),
        msgpack.packb([0, [True, b"short"], 2, 1.0, []]),
        msgpack.packb([0, [False, "u"], 1 << 20, 1.0, [b"x" * 16]]),
        msgpack.packb([0, [False, "u"], 2, "soon", [b"x" * 16]]),
    ):
        token = primary.encrypt(plain).rstrip(b"=").decode()
        with pytest.raises(InvalidToken):
            fmt.validate(token)


def test_expired_and_old_tokens_still_validate(repo: KeyRepository, fmt: TokenFormatter) -> None:
    """No expiry check and no Fernet TTL: that is the caller's business."""
    past = datetime(2001, 1, 1, tzinfo=UTC)
    payload = _payload(expires_at=past)
    minted_long_ago = (
        Fernet(repo.load()[0])
        .encrypt_at_time(msgpack.packb(_decoded(fmt, fmt.create(payload))), 978307200)
        .rstrip(b"=")
        .decode()
    )
    assert fmt.validate(minted_long_ago) == payload
    assert TokenFormatter.creation_time(minted_long_ago) == past


def test_creation_time(fmt: TokenFormatter) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    token = fmt.create(_payload())
    issued = TokenFormatter.creation_time(token)
    assert before <= issued <= datetime.now(UTC)
    assert issued.tzinfo is not None
    with pytest.raises(InvalidToken):
        TokenFormatter.creation_time("abc")


def test_payload_validation() -> None:
    with pytest.raises(ValueError):
        _payload(project_id=PROJECT, domain_id=DOMAIN)
    with pytest.raises(ValueError):
        _payload(system="all", domain_id="default")
    with pytest.raises(ValueError):
        _payload(app_cred_id=APP_CRED)
    with pytest.raises(ValueError):
        _payload(expires_at=datetime(2031, 1, 1))
    with pytest.raises(ValueError):
        _payload(audit_ids=[])


def test_random_audit_id() -> None:
    ids = {random_audit_id() for _ in range(100)}
    assert len(ids) == 100
    for audit_id in ids:
        assert len(audit_id) == 22 and "=" not in audit_id
        assert len(base64.urlsafe_b64decode(audit_id + "==")) == 16


# --- key repository -------------------------------------------------------------


def _numbers(repo: KeyRepository) -> list[int]:
    return sorted(int(p.name) for p in repo.path.iterdir())


def test_ensure_creates_keys_with_modes_and_is_idempotent(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "a" / "keys")
    old_umask = os.umask(0o022)
    try:
        repo.ensure()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(repo.path.stat().st_mode) == 0o700
    assert _numbers(repo) == [0, 1]
    contents = {}
    for number in (0, 1):
        key_file = repo.path / str(number)
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        contents[number] = key_file.read_bytes()
        Fernet(contents[number])  # a valid Fernet key
    assert contents[0] != contents[1]
    repo.ensure()
    assert _numbers(repo) == [0, 1]
    assert {n: (repo.path / str(n)).read_bytes() for n in (0, 1)} == contents
    assert not [p for p in repo.path.iterdir() if not p.name.isdigit()]  # no temp files left


def test_load_order_primary_staged_then_secondaries_newest_first(repo: KeyRepository) -> None:
    repo.max_active_keys = 5
    for _ in range(3):
        repo.rotate()
    assert _numbers(repo) == [0, 1, 2, 3, 4]
    by_number = {n: (repo.path / str(n)).read_bytes() for n in range(5)}
    assert repo.load() == [by_number[n] for n in (4, 0, 3, 2, 1)]


def test_load_ignores_strays_and_empty_missing_dir(repo: KeyRepository, tmp_path: Path) -> None:
    (repo.path / "0.tmp").write_bytes(Fernet.generate_key())
    (repo.path / "README").write_text("not a key")
    (repo.path / "7").write_bytes(b"")
    assert len(repo.load()) == 2
    missing = KeyRepository(tmp_path / "nowhere")
    assert missing.load() == []
    with pytest.raises(KeysNotFound):
        TokenFormatter(missing)
    with pytest.raises(KeysNotFound):
        missing.rotate()


def test_rotate_promotes_staged_key_and_purges_oldest(repo: KeyRepository) -> None:
    staged = (repo.path / "0").read_bytes()
    assert repo.rotate() == 2
    assert (repo.path / "2").read_bytes() == staged
    assert (repo.path / "0").read_bytes() != staged
    assert _numbers(repo) == [0, 1, 2]
    assert repo.rotate() == 3
    assert _numbers(repo) == [0, 2, 3]  # max_active_keys=3: staged + two numbered
    assert repo.rotate() == 4
    assert _numbers(repo) == [0, 3, 4]
    for number in _numbers(repo):
        assert stat.S_IMODE((repo.path / str(number)).stat().st_mode) == 0o600


def test_tokens_survive_rotation_until_their_key_is_purged(
    repo: KeyRepository, fmt: TokenFormatter
) -> None:
    payload = _payload(project_id=PROJECT)
    token = fmt.create(payload)  # made with primary key 1
    for _ in range(repo.max_active_keys - 2):
        repo.rotate()
        fmt.reload()
        assert fmt.validate(token) == payload
    new_token = fmt.create(payload)
    repo.rotate()  # key 1 is now the oldest beyond max_active_keys: purged
    fmt.reload()
    with pytest.raises(InvalidToken):
        fmt.validate(token)
    assert fmt.validate(new_token) == payload
    # and after max_active_keys + 1 rotations in total it certainly stays dead
    for _ in range(2):
        repo.rotate()
    fmt.reload()
    with pytest.raises(InvalidToken):
        fmt.validate(token)


def test_token_from_staged_key_validates_before_promotion(
    repo: KeyRepository, tmp_path: Path
) -> None:
    """A node that already rotated mints with the old staged key; we still accept it."""
    fmt = TokenFormatter(repo)
    staged_only = KeyRepository(tmp_path / "rotated-node")
    staged_only.path.mkdir(mode=0o700)
    (staged_only.path / "1").write_bytes((repo.path / "0").read_bytes())
    token = TokenFormatter(staged_only).create(_payload())
    assert fmt.validate(token).user_id == USER


def test_formatter_uses_keys_loaded_at_init_until_reload(
    repo: KeyRepository, fmt: TokenFormatter
) -> None:
    old_primary = Fernet((repo.path / "1").read_bytes())
    repo.rotate()
    new_primary = Fernet((repo.path / "2").read_bytes())
    before_reload = _padded(fmt.create(_payload()))
    old_primary.decrypt(before_reload)  # still encrypting with the key loaded at init
    fmt.reload()
    after_reload = _padded(fmt.create(_payload()))
    new_primary.decrypt(after_reload)
    with pytest.raises(FernetInvalidToken):
        old_primary.decrypt(after_reload)
