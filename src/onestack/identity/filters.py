"""Keystone's string comparators for list filters: ``name__contains``,
``__startswith``, ``__endswith``, ``__equals``, each with an ``i`` prefix for the
case-insensitive form (``name__icontains``)."""

from __future__ import annotations

from typing import Any

COMPARATORS = ("contains", "startswith", "endswith", "equals")


def string_matches(value: Any, comparator: str, wanted: str) -> bool:
    """Whether ``value`` passes ``comparator`` against ``wanted``. A missing value
    never passes; an unknown comparator filters nothing, as in Keystone; a
    boolean only compares equal to true/false spelled as a query would."""
    if isinstance(value, bool):
        return comparator == "equals" and value == (wanted.lower() in ("true", "1", "yes"))
    if value is None:
        return False
    text = str(value)
    if comparator.startswith("i"):
        text, wanted, comparator = text.lower(), wanted.lower(), comparator[1:]
    if comparator in ("equals", "exact"):
        return text == wanted
    if comparator == "contains":
        return wanted in text
    if comparator == "startswith":
        return text.startswith(wanted)
    if comparator == "endswith":
        return text.endswith(wanted)
    return True
