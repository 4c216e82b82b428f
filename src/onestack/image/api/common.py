"""What every image handler uses: authentication, policy, state."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from onestack.core.auth import authenticate
from onestack.core.context import RequestContext
from onestack.image import errors
from onestack.image.state import ImageState, get_state


async def context(request: Request) -> RequestContext:
    """The caller's context, with its token validated.

    Raises:
        Unauthorized: no valid token.
    """
    return await authenticate(request, get_state(request).validator)


async def authorize(request: Request, action: str, target: dict[str, Any] | None = None) -> RequestContext:
    """Authenticate and enforce ``action`` (e.g. ``image:add_image``) on ``target``.

    Raises:
        Unauthorized, Forbidden.
    """
    ctx = await context(request)
    check(request, ctx, action, target or {})
    return ctx


def check(request: Request, ctx: RequestContext, action: str, target: dict[str, Any]) -> None:
    """Enforce ``action`` for an already authenticated caller.

    Raises:
        Forbidden: the policy refuses.
    """
    if not get_state(request).enforcer.check(action, target, ctx.policy_creds()):
        raise errors.forbidden(action.split(":", 1)[1])


def state(request: Request) -> ImageState:
    return get_state(request)
