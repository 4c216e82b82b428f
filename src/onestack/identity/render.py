"""How identity resources look on the wire (shared by several handlers)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from onestack.identity.api.common import v3_url
from onestack.identity.models import ROOT_DOMAIN, Project


def project(request: Request, p: Project, tags: list[str] | None = None) -> dict[str, Any]:
    """A project, or a domain when ``p.is_domain`` (as ``GET /v3/projects`` shows
    domains: with ``is_domain`` true and ``domain_id`` null)."""
    out: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "domain_id": None if p.domain_id == ROOT_DOMAIN else p.domain_id,
        "description": p.description or "",
        "enabled": p.enabled,
        "parent_id": p.parent_id,
        "is_domain": p.is_domain,
        "tags": sorted(tags or []),
        "options": p.extra.get("options", {}),
        "links": {"self": v3_url(request, "projects", p.id)},
    }
    out.update({k: v for k, v in p.extra.items() if k != "options"})
    return out


def domain(request: Request, p: Project, tags: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "description": p.description or "",
        "enabled": p.enabled,
        "tags": sorted(tags or []),
        "options": p.extra.get("options", {}),
        "links": {"self": v3_url(request, "domains", p.id)},
    }
    out.update({k: v for k, v in p.extra.items() if k != "options"})
    return out
