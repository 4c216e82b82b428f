"""Errors that services raise; each service renders them in its upstream envelope.

    CloudError                 500
    ├── BadRequest             400
    ├── Unauthorized           401
    ├── Forbidden              403
    ├── NotFound               404
    ├── MethodNotAllowed       405
    ├── NotAcceptable          406
    ├── Conflict               409
    ├── Gone                   410
    ├── RequestEntityTooLarge  413
    ├── UnsupportedMediaType   415
    ├── UnprocessableEntity    422
    ├── NotImplementedYet      501
    └── ServiceUnavailable     503

A service subclasses these with fixed messages (``UserNotFound(user_id)``) so that
call sites stay one word, and registers one renderer for ``CloudError`` that
writes the envelope its clients expect (Keystone's ``{"error": {...}}``, Nova's
``{"itemNotFound": {...}}`` ...).
"""

from __future__ import annotations

import http


class CloudError(Exception):
    """Base of every error that reaches a client as an HTTP response."""

    status_code = 500

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        self.message = message or self.title
        self.headers = headers or {}
        super().__init__(self.message)

    @property
    def title(self) -> str:
        return http.HTTPStatus(self.status_code).phrase


class BadRequest(CloudError):
    status_code = 400


class Unauthorized(CloudError):
    status_code = 401


class Forbidden(CloudError):
    status_code = 403


class NotFound(CloudError):
    status_code = 404


class MethodNotAllowed(CloudError):
    status_code = 405


class NotAcceptable(CloudError):
    status_code = 406


class Conflict(CloudError):
    status_code = 409


class Gone(CloudError):
    status_code = 410


class RequestEntityTooLarge(CloudError):
    status_code = 413


class UnsupportedMediaType(CloudError):
    status_code = 415


class UnprocessableEntity(CloudError):
    status_code = 422


class NotImplementedYet(CloudError):
    """A documented part of the upstream API that OneStack does not implement."""

    status_code = 501


class ServiceUnavailable(CloudError):
    status_code = 503
