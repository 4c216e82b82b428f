"""Swift's container ACLs (v1 strings) and account ACLs (v2 JSON).

A container ACL is a comma-separated list: referrer items ``.r:<host>``
(``.r:*`` anyone, ``.r:.example.com`` a domain, ``.r:-host`` a denial, applied
in order), ``.rlistings`` (referrers may also list), and identities
``<project>:<user>`` (ids, names or ``*``) or role names. Account ACLs are a
JSON object of ``admin``, ``read-write`` and ``read-only`` lists of identities.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, urlparse

REFERRER_DESIGNATORS = (".r", ".ref", ".referer", ".referrer")
ACCOUNT_ACL_KEYS = ("admin", "read-write", "read-only")


def clean_acl(name: str, value: str) -> str:
    """``value`` normalised (``.referrer : *`` -> ``.r:*``).

    Raises:
        ValueError: an empty referrer, a referrer in a write ACL, or an unknown
            ``.designator`` (the message is Swift's, shown to the client).
    """
    name = name.lower()
    values = []
    for raw in value.split(","):
        raw = raw.strip()
        if not raw:
            continue
        if ":" not in raw:
            values.append(raw)
            continue
        first, second = (v.strip() for v in raw.split(":", 1))
        if not first or not first.startswith("."):
            values.append(raw)
            continue
        if first not in REFERRER_DESIGNATORS:
            raise ValueError(f"Unknown designator {first!r} in ACL: {raw!r}")
        if "write" in name:
            raise ValueError(f"Referrers not allowed in write ACL: {raw!r}")
        negate = second.startswith("-")
        if negate:
            second = second[1:].strip()
        if second and second != "*" and second.startswith("*"):
            second = second[1:].strip()
        if not second or second == ".":
            raise ValueError(f"No host/domain value after referrer designation in ACL: {raw!r}")
        values.append(".r:" + ("-" if negate else "") + second)
    return ",".join(values)


def parse_acl(acl: str | None) -> tuple[list[str], list[str]]:
    """``(referrers, groups)`` of a v1 ACL string."""
    referrers: list[str] = []
    groups: list[str] = []
    for value in (acl or "").split(","):
        if not value:
            continue
        if value.startswith(".r:"):
            referrers.append(value[3:])
        else:
            groups.append(unquote(value))
    return referrers, groups


def referrer_allowed(referrer: str | None, referrers: list[str]) -> bool:
    """Whether the ``Referer`` header's host passes the referrer items, in order."""
    allow = False
    host = urlparse(referrer or "").hostname or "unknown"
    for item in referrers:
        if item.startswith("-"):
            item = item[1:]
            if item == host or (item.startswith(".") and host.endswith(item)):
                allow = False
        elif item == "*" or item == host or (item.startswith(".") and host.endswith(item)):
            allow = True
    return allow


def parse_account_acl(data: str | None) -> dict[str, list[str]] | None:
    """The account ACL (``None`` when unset or empty).

    Raises:
        ValueError: not a JSON object of known keys holding lists of strings.
    """
    if not data:
        return None
    try:
        acl: Any = json.loads(data)
    except ValueError:
        raise ValueError("Syntax error in input (Invalid JSON)") from None
    if not isinstance(acl, dict):
        raise ValueError("Syntax error in input (Not a JSON object)")  # noqa: TRY004
    for key, members in acl.items():
        if key not in ACCOUNT_ACL_KEYS:
            raise ValueError(f"Key {key!r} not recognized")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ValueError(f"Value for key {key!r} must be a list of strings")
    out = {k: list(acl.get(k, [])) for k in ACCOUNT_ACL_KEYS}
    return out if any(out.values()) else None


def format_account_acl(acl: dict[str, list[str]] | None) -> str:
    """The account ACL as Swift stores and returns it (compact JSON, sorted keys)."""
    if not acl:
        return ""
    return json.dumps({k: v for k, v in sorted(acl.items()) if v}, separators=(",", ":"))
