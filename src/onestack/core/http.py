"""Small helpers for handlers: JSON in and out, validated with pydantic."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from onestack.core.errors import BadRequest

M = TypeVar("M", bound=BaseModel)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), default=str).encode()


def no_content(headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=204, headers=headers)


async def read_json(request: Request) -> Any:
    """The request body as JSON.

    Raises:
        BadRequest: the body is empty or not JSON.
    """
    body = await request.body()
    if not body:
        raise BadRequest("The request body is empty; it must be a JSON document.")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"Malformed JSON in request body: {exc}") from exc


def describe_validation_error(exc: ValidationError, root: str = "") -> str:
    """One message in the style of Keystone's jsonschema errors."""
    err = exc.errors()[0]
    loc = "/".join(str(p) for p in ((root,) if root else ()) + tuple(err["loc"]))
    kind = err["type"]
    if kind == "missing":
        return f"'{err['loc'][-1]}' is a required property" + (
            f" in '{loc.rsplit('/', 1)[0]}'" if "/" in loc else ""
        )
    if kind == "extra_forbidden":
        return f"Additional properties are not allowed ('{err['loc'][-1]}' was unexpected)"
    return f"Invalid input for field '{loc}': {err['msg']}"


def validate(model: type[M], data: Any, root: str = "") -> M:
    """``model`` validated from ``data``.

    Raises:
        BadRequest: with a message naming the first field that is wrong.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(describe_validation_error(exc, root)) from exc


def query_bool(value: str | None) -> bool | None:
    """A query flag as OpenStack reads it: present and not false/0/no/off is true."""
    if value is None:
        return None
    return value.strip().lower() not in ("false", "0", "no", "off", "f", "n")


def service_url(request: Request) -> str:
    """The URL of the service that serves ``request``, with its mount prefix (for
    example ``http://host:8780/identity``), as links in responses need it."""
    url = request.url
    return f"{url.scheme}://{url.netloc}{request.scope.get('root_path', '')}"
