"""Image errors and Glance's error responses.

Glance answers errors the way webob does: JSON ``{"message", "code", "title"}``
(``code`` being the status line, e.g. ``"404 Not Found"``) when the client
accepts JSON, else plain text with the status line, a blank line and the
message. Clients (glanceclient, openstacksdk) read either.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from onestack.core import errors
from onestack.core.http import JSONResponse, service_url


def render(request: Request, exc: errors.CloudError) -> Response:
    headers = dict(exc.headers)
    status_line = f"{exc.status_code} {exc.title}"
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", f'Keystone uri="{service_url(request)}"')
    if "application/json" in request.headers.get("accept", ""):
        body = {"message": exc.message, "code": status_line, "title": exc.title}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)
    text = f"{status_line}\n\n{exc.message}\n\n   "
    return Response(text, status_code=exc.status_code, headers=headers, media_type="text/plain")


def image_not_found(image_id: str) -> errors.NotFound:
    return errors.NotFound(f"No image found with ID {image_id}")


def forbidden(action: str) -> errors.Forbidden:
    return errors.Forbidden(f"You are not authorized to complete {action} action.")


def read_only(attr: str) -> errors.Forbidden:
    return errors.Forbidden(f"Attribute '{attr}' is read-only.")


def reserved(attr: str) -> errors.Forbidden:
    return errors.Forbidden(f"Attribute '{attr}' is reserved.")


def bad_transition(current: str, wanted: str) -> errors.Conflict:
    return errors.Conflict(f"Image status transition from {current} to {wanted} is not allowed")


def over_limit(what: str, attempted: int, maximum: int) -> errors.RequestEntityTooLarge:
    return errors.RequestEntityTooLarge(
        f"Maximum number of {what} exceeded. Attempted: {attempted}, Maximum: {maximum}"
    )
