"""Compute errors in Nova's fault envelope.

Nova answers every error as ``{"<faultName>": {"code": <status>, "message": ...}}``
where the name follows the status (``badRequest``, ``itemNotFound``,
``conflictingRequest`` ...) and any status Nova has no name for, 406 and 500
among them, is a ``computeFault``. A fault on a request with a valid
microversion carries the version headers like any other response (the
microversion middleware adds them).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from onestack.core import errors
from onestack.core.http import JSONResponse

FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}


def render(request: Request, exc: errors.CloudError) -> Response:
    name = FAULT_NAMES.get(exc.status_code, "computeFault")
    fault: dict[str, object] = {"code": exc.status_code, "message": exc.message}
    headers = dict(exc.headers)
    if exc.status_code in (413, 429) and "Retry-After" in headers:
        fault["retryAfter"] = headers["Retry-After"]
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Keystone uri='/identity'")
    return JSONResponse({name: fault}, status_code=exc.status_code, headers=headers)


# -- the errors more than one handler raises ---------------------------------------


def policy_refused(action: str) -> errors.Forbidden:
    return errors.Forbidden(f"Policy doesn't allow {action} to be performed.")


def invalid_field(name: str, value: object, reason: str) -> errors.BadRequest:
    """Nova's message for a request body that fails its JSON schema."""
    return errors.BadRequest(
        f"Invalid input for field/attribute {name}. Value: {value}. {reason}")


def invalid_query(name: str, value: object, reason: str) -> errors.BadRequest:
    return errors.BadRequest(
        f"Invalid input for query parameters {name}. Value: {value}. {reason}")


def flavor_not_found(flavor_id: str) -> errors.NotFound:
    return errors.NotFound(f"Flavor {flavor_id} could not be found.")


def keypair_not_found(name: str, user_id: str) -> errors.NotFound:
    return errors.NotFound(f"Keypair {name} not found for user {user_id}")


def invalid_keypair(reason: str) -> errors.BadRequest:
    return errors.BadRequest(f"Keypair data is invalid: {reason}")
