"""What every identity handler uses: authorization, links, list filters."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from onestack.core.auth import authenticate
from onestack.core.context import RequestContext
from onestack.core.http import service_url
from onestack.core.policy import PolicyNotAuthorized
from onestack.identity.errors import forbidden_action
from onestack.identity.state import IdentityState, get_state


async def authorize(
    request: Request, action: str, target: dict[str, Any] | None = None
) -> RequestContext:
    """Authenticate the caller and enforce ``action`` on ``target``.

    Raises:
        Unauthorized: no valid token.
        Forbidden: the policy refuses.
    """
    st = get_state(request)
    ctx = await authenticate(request, st.tokens)
    creds = ctx.policy_creds()
    try:
        st.enforcer.enforce(action, target or {}, creds)
    except PolicyNotAuthorized:
        raise forbidden_action(action) from None
    return ctx


def v3_url(request: Request, *parts: str) -> str:
    """Absolute URL under this service's ``/v3``."""
    return "/".join([v3_base(request), *parts])


def v3_base(request: Request) -> str:
    return service_url(request) + "/v3"


def self_link(request: Request, collection: str, ident: str) -> dict[str, str]:
    return {"self": v3_url(request, collection, ident)}


def collection_links(request: Request) -> dict[str, Any]:
    return {"self": str(request.url), "previous": None, "next": None}


def state(request: Request) -> IdentityState:
    return get_state(request)
