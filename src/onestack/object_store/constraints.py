"""Swift's request constraints (``swift.conf`` ``[swift-constraints]``).

The limits come from ``ObjectStoreSettings``; the checks answer with Swift's
status and plain-text body, because clients (and Tempest) compare both. Each
check raises ``HTTPError`` with the refusal, as ``authorize`` does, rather than
returning it as Swift's functions do.
"""

from __future__ import annotations

import time
from typing import Any

from onestack.core.config import ObjectStoreSettings, Settings
from onestack.object_store.http import HTTPError, Request, error

SWIFT_VERSION = "2.34.0"
# Swift accepts both spellings of API version 1 in the path.
VALID_API_VERSIONS = ("v1", "v1.0")
# The only storage policy (see the package doc: no storage policies).
DEFAULT_POLICY = {"name": "Policy-0", "aliases": "Policy-0", "default": True}
_DEFAULTS = ObjectStoreSettings.model_validate({})


Limits = ObjectStoreSettings | Settings | None


def _limits(settings: Limits) -> ObjectStoreSettings:
    """The constraints of ``settings`` (the whole settings or their object store part)."""
    if settings is None:
        return _DEFAULTS
    return settings.object_store if isinstance(settings, Settings) else settings


def _bad(body: str) -> HTTPError:
    return HTTPError(error(400, body))


def check_metadata(
    req: Request, target: str, settings: Limits = None
) -> None:
    """Refuse the ``X-<target>-Meta-*`` headers of ``req`` that break Swift's limits.

    ``target`` is ``account``, ``container`` or ``object``. Any header longer
    than ``max_header_size`` is refused too, as Swift does, whatever its name.

    Raises:
        HTTPError: 400 with Swift's text for the first header that breaks a limit.
    """
    limits = _limits(settings)
    prefix = f"x-{target.lower()}-meta-"
    count = size = 0
    for name, value in req.headers.items():
        if len(value) > limits.max_header_size:
            raise _bad(f"Header value too long: {_titled(name)[:limits.max_meta_name_length]}")
        if not name.lower().startswith(prefix):
            continue
        key = name[len(prefix):]
        if not key:
            raise _bad("Metadata name cannot be empty")
        if target in ("account", "container") and not (_utf8(key) and _utf8(value)):
            raise _bad("Metadata must be valid UTF-8")
        count += 1
        size += _bytes(key) + _bytes(value)
        if _bytes(key) > limits.max_meta_name_length:
            raise _bad(f"Metadata name too long: {prefix}{_titled(key)}")
        if _bytes(value) > limits.max_meta_value_length:
            raise _bad(f"Metadata value longer than {limits.max_meta_value_length}: "
                       f"{prefix}{_titled(key)}")
        if count > limits.max_meta_count:
            raise _bad(f"Too many metadata items; max {limits.max_meta_count}")
        if size > limits.max_meta_overall_size:
            raise _bad(f"Total metadata too large; max {limits.max_meta_overall_size}")


def _titled(name: str) -> str:
    """A header name as Swift's WSGI layer spells it (``color-x`` -> ``Color-X``): the
    server lower-cases names, Swift's messages show them titled."""
    return "-".join(p[:1].upper() + p[1:] for p in name.split("-"))


def _bytes(text: str) -> int:
    """The length Swift sees: headers arrive as latin-1 text of the raw bytes."""
    try:
        return len(text.encode("latin-1"))
    except UnicodeEncodeError:
        return len(text.encode("utf-8"))


def _utf8(text: str) -> bool:
    """Whether the raw bytes behind a header (latin-1 text) are UTF-8 without NUL."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        return "\x00" not in text
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in raw


def _name_length(name: str) -> int:
    return len(name.encode("utf-8"))


def check_object_name(name: str, settings: Limits = None) -> None:
    """Raises: HTTPError: 400 when the name is longer than ``max_object_name_length`` bytes."""
    limit = _limits(settings).max_object_name_length
    if _name_length(name) > limit:
        raise _bad(f"Object name length of {_name_length(name)} longer than {limit}")


def check_container_name(name: str, settings: Limits = None) -> None:
    """Raises: HTTPError: 400 when the name is longer than ``max_container_name_length``."""
    limit = _limits(settings).max_container_name_length
    if _name_length(name) > limit:
        raise _bad(f"Container name length of {_name_length(name)} longer than {limit}")


def check_account_name(name: str, settings: Limits = None) -> None:
    """Raises: HTTPError: 400 when the name is longer than ``max_account_name_length``."""
    limit = _limits(settings).max_account_name_length
    if _name_length(name) > limit:
        raise _bad(f"Account name length of {_name_length(name)} longer than {limit}")


def message_length(req: Request) -> int | None:
    """The body's announced length: ``None`` for a chunked body.

    Raises:
        HTTPError: 501 for a list of transfer codings, 400 for one that is not
            ``chunked`` or for a bad Content-Length (as swob's ``message_length``).
    """
    coding = req.headers.get("transfer-encoding")
    if coding:
        codings = coding.split(",")
        if len(codings) > 1:
            raise HTTPError(error(501, "Unsupported Transfer-Coding header value specified "
                                       "in Transfer-Encoding header"))
        if codings[-1].strip().lower() != "chunked":
            raise _bad("Invalid Transfer-Encoding header value")
        return None
    return req.content_length


def check_delete_headers(req: Request, now: float | None = None) -> None:
    """Check X-Delete-At / X-Delete-After; the latter becomes an X-Delete-At in ``req``.

    Raises:
        HTTPError: 400 ``Non-integer X-Delete-After``, ``X-Delete-After in past``,
            ``Non-integer X-Delete-At`` or ``X-Delete-At in past``.
    """
    now = time.time() if now is None else now
    after = req.headers.pop("x-delete-after")
    if after is not None:
        try:
            seconds = int(after)
        except ValueError:
            raise _bad("Non-integer X-Delete-After") from None
        delete_at = normalize_delete_at(now + seconds)
        if int(delete_at) <= now:
            raise _bad("X-Delete-After in past")
        req.headers["X-Delete-At"] = delete_at
    value = req.headers.get("x-delete-at")
    if value is not None:
        try:
            delete_at = normalize_delete_at(int(value))
        except ValueError:
            raise _bad("Non-integer X-Delete-At") from None
        if int(delete_at) <= now:
            raise _bad("X-Delete-At in past")
        req.headers["X-Delete-At"] = delete_at


def normalize_delete_at(seconds: float) -> str:
    """Swift's delete-at form: whole seconds, zero padded to ten digits, clamped."""
    return f"{int(min(max(0.0, float(seconds)), 9999999999)):010d}"


def check_content_type(req: Request) -> None:
    """Raises: HTTPError: 400 for a non UTF-8 Content-Type or a ``swift_*`` parameter
    (those are Swift's own, e.g. ``swift_bytes`` of large objects)."""
    content_type = req.headers.get("content-type") or ""
    if not _utf8(content_type):
        raise _bad("Invalid Content-Type")
    if req.environ.get("swift.content_type_overridden"):
        return
    for param in content_type.split(";")[1:]:
        if param.strip().lower().startswith("swift_"):
            raise _bad("Invalid Content-Type, swift_* is not a valid parameter name.")


def check_object_creation(
    req: Request, name: str, settings: Limits = None,
    *, now: float | None = None,
) -> None:
    """Swift's checks of an object PUT, in Swift's order: length (413, 411), name,
    Content-Type, expiry headers, metadata. X-Delete-After becomes X-Delete-At.

    Raises:
        HTTPError: the first check that fails.
    """
    limits = _limits(settings)
    length = message_length(req)
    if length is not None and length > limits.max_file_size:
        raise HTTPError(error(413, "Your request is too large."))
    coding = req.headers.get("transfer-encoding") or ""
    if length is None and coding.strip().lower() != "chunked":
        raise HTTPError(error(411, "Missing Content-Length header."))
    check_object_name(name, limits)
    if "content-type" not in req.headers:
        raise _bad("No content type")
    check_delete_headers(req, now)
    check_content_type(req)
    check_metadata(req, "object", limits)


def swift_info(settings: Limits = None) -> dict[str, Any]:
    """The ``swift`` section of ``GET /info``: the limits clients must respect."""
    limits = _limits(settings)
    return {
        "version": SWIFT_VERSION,
        "strict_cors_mode": True,
        "policies": [dict(DEFAULT_POLICY)],
        "allow_account_management": True,
        "account_autocreate": True,
        "max_file_size": limits.max_file_size,
        "max_meta_name_length": limits.max_meta_name_length,
        "max_meta_value_length": limits.max_meta_value_length,
        "max_meta_count": limits.max_meta_count,
        "max_meta_overall_size": limits.max_meta_overall_size,
        "max_header_size": limits.max_header_size,
        "max_object_name_length": limits.max_object_name_length,
        "container_listing_limit": limits.container_listing_limit,
        "account_listing_limit": limits.account_listing_limit,
        "max_account_name_length": limits.max_account_name_length,
        "max_container_name_length": limits.max_container_name_length,
        "extra_header_count": limits.extra_header_count,
        "valid_api_versions": list(VALID_API_VERSIONS),
    }
