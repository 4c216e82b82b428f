"""Version discovery documents, as every OpenStack API serves them at its root."""

from __future__ import annotations

from typing import Any


def version_doc(
    version_id: str,
    base_url: str,
    *,
    status: str = "CURRENT",
    updated: str = "2024-01-01T00:00:00Z",
    media_type: str,
    min_version: str | None = None,
    max_version: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One entry of a ``versions`` list (or the body of ``{"version": ...}``).

    ``base_url`` is the version's own URL, for example ``http://h:8780/identity/v3/``.
    ``min_version``/``max_version`` are the microversion range where the API has one.
    """
    doc: dict[str, Any] = {
        "id": version_id,
        "status": status,
        "updated": updated,
        "links": [{"rel": "self", "href": base_url}],
        "media-types": [{"base": "application/json", "type": media_type}],
    }
    if min_version is not None:
        doc["min_version"] = min_version
        doc["version"] = max_version or ""
    if extra:
        doc.update(extra)
    return doc
