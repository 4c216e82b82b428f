"""Identity errors and Keystone's error envelope:
``{"error": {"code": 404, "title": "Not Found", "message": "..."}}``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from onestack.core import errors
from onestack.core.http import JSONResponse, service_url


def render(request: Request, exc: errors.CloudError) -> Response:
    headers = dict(exc.headers)
    if exc.status_code == 401:
        base = service_url(request)
        headers.setdefault("WWW-Authenticate", f'Keystone uri="{base}"')
    body = {"error": {"code": exc.status_code, "title": exc.title, "message": exc.message}}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


class AuthFailed(errors.Unauthorized):
    """One message for every authentication failure, so that it does not tell which
    part (user, password, domain, project) was wrong."""

    def __init__(self) -> None:
        super().__init__("The request you have made requires authentication.")


class TokenNotFound(errors.NotFound):
    def __init__(self) -> None:
        super().__init__("Could not find token.")


def not_found(kind: str, ident: str) -> errors.NotFound:
    """Keystone's ``Could not find <kind>: <id>.``"""
    return errors.NotFound(f"Could not find {kind}: {ident}.")


def conflict(kind: str, detail: str) -> errors.Conflict:
    """Keystone's ``Conflict occurred attempting to store <kind> - <detail>.``"""
    return errors.Conflict(f"Conflict occurred attempting to store {kind} - {detail}.")


def forbidden_action(action: str) -> errors.Forbidden:
    return errors.Forbidden(
        f"You are not authorized to perform the requested action: {action}."
    )
