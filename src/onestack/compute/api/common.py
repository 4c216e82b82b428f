"""What every compute handler uses: microversions, authentication and policy,
Nova's input checks (its JSON schemas, written as small functions), links and
pagination."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import Headers
from starlette.requests import Request

from onestack.compute import errors
from onestack.compute.models import Instance
from onestack.compute.service import servers as servers_svc
from onestack.compute.state import ComputeState, get_state
from onestack.core.auth import authenticate
from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest, CloudError
from onestack.core.http import read_json, service_url
from onestack.core.microversion import APIVersion, VersionRange
from onestack.core.types import ASGIApp, Message, Receive, Scope, Send

# 2.100 is the newest microversion of Nova 2025.1 (Epoxy) and 2025.2 (Flamingo)
VERSIONS = VersionRange(
    "compute", APIVersion(2, 1), APIVersion(2, 100),
    legacy_header="X-OpenStack-Nova-API-Version",
)
API_PREFIX = "/v2.1"
SCOPE_KEY = "onestack.microversion"
MAX_INT = 0x7FFFFFFF


# -- microversions ------------------------------------------------------------------


class Microversions:
    """Negotiates the microversion of every request below ``/v2.1`` and puts
    ``OpenStack-API-Version``, ``X-OpenStack-Nova-API-Version`` and ``Vary`` on
    its response, errors included. A malformed version is answered 400 and one
    outside the range 406, without version headers (as Nova does: the request
    has no version then)."""

    def __init__(self, app: ASGIApp, render: Any) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _below_api(scope):
            await self.app(scope, receive, send)
            return
        try:
            version = negotiate(Headers(scope=scope))
        except CloudError as exc:
            await self.render(Request(scope), exc)(scope, receive, send)
            return
        scope[SCOPE_KEY] = version
        extra = [(k.lower().encode(), v.encode())
                 for k, v in VERSIONS.response_headers(version).items()]

        async def send_versioned(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_versioned)


def _below_api(scope: Scope) -> bool:
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return bool(path == API_PREFIX or path.startswith(API_PREFIX + "/"))


def negotiate(headers: Headers) -> APIVersion:
    try:
        return VERSIONS.negotiate(headers)
    except BadRequest:
        raw = headers.get("openstack-api-version") or headers.get(VERSIONS.legacy_header or "")
        words = (raw or "").split()
        value = words[-1] if words else (raw or "")
        raise BadRequest(f"API Version String {value} is of invalid format. Must be of "
                         "format MajorNum.MinorNum.") from None


def version(request: Request) -> APIVersion:
    v: APIVersion = request.scope.get(SCOPE_KEY, VERSIONS.minimum)
    return v


def supports(request: Request, minimum: str) -> bool:
    """True if the request's microversion is at least ``minimum``.

    Handlers ask this many times per request (a listing about a dozen times per
    server), so ``minimum`` is parsed once per process and compared as a tuple."""
    v: APIVersion = request.scope.get(SCOPE_KEY, VERSIONS.minimum)
    return (v.major, v.minor) >= _parsed(minimum)


@functools.lru_cache(maxsize=512)
def _parsed(minimum: str) -> tuple[int, int]:
    """Raises: BadRequest (a malformed version in the code, never the caller's)."""
    v = APIVersion.parse(minimum)
    return v.major, v.minor


# -- context and policy -------------------------------------------------------------


def state(request: Request) -> ComputeState:
    return get_state(request)


async def context(request: Request) -> RequestContext:
    return await authenticate(request, get_state(request).validator)


async def authorized_server(request: Request, action: str,
                            ctx: RequestContext | None = None
                            ) -> tuple[RequestContext, Instance]:
    """The server of the path, if the caller may ``action`` on it (another
    project's server is a 404 unless the policy lets them see it)."""
    ctx = ctx or await context(request)
    inst = await servers_svc.get(get_state(request), request.path_params["server_id"])
    if not allowed(request, ctx, action, {"project_id": inst.project_id,
                                          "user_id": inst.user_id}):
        if ctx.project_id != inst.project_id and not is_admin(request, ctx):
            raise servers_svc.not_found(inst.uuid)
        raise errors.policy_refused(action)
    return ctx, inst


def allowed(request: Request, ctx: RequestContext, action: str,
            target: Mapping[str, Any] | None = None) -> bool:
    """Whether the policy allows ``action``; the target defaults to the caller's own
    project and user, as Nova's ``context.can`` does."""
    if target is None:
        target = {"project_id": ctx.project_id, "user_id": ctx.user_id}
    return get_state(request).enforcer.check(action, target, ctx.policy_creds())


def enforce(request: Request, ctx: RequestContext, action: str,
            target: Mapping[str, Any] | None = None) -> None:
    """Raises: Forbidden (Nova's message) when the policy refuses."""
    if not allowed(request, ctx, action, target):
        raise errors.policy_refused(action)


async def authorize(request: Request, action: str,
                    target: Mapping[str, Any] | None = None) -> RequestContext:
    ctx = await context(request)
    enforce(request, ctx, action, target)
    return ctx


def is_admin(request: Request, ctx: RequestContext) -> bool:
    return allowed(request, ctx, "context_is_admin", {})


# -- request bodies, checked as Nova's JSON schemas check them -----------------------


async def body_object(request: Request, root: str, allowed_keys: Iterable[str],
                      required: Sequence[str] = ()) -> dict[str, Any]:
    """``body[root]``, an object with only ``allowed_keys`` and all of ``required``.

    Raises:
        BadRequest: the body is not JSON, or has not that shape.
    """
    body = await read_json(request)
    return member_object(body, root, allowed_keys, required)


def member_object(body: Any, root: str, allowed_keys: Iterable[str],
                  required: Sequence[str] = ()) -> dict[str, Any]:
    obj = expect_object(body, root, [root])
    if root not in obj:
        raise BadRequest(f"'{root}' is a required property")
    return expect_object(obj[root], root, allowed_keys, required, path=root)


def expect_object(value: Any, name: str, allowed_keys: Iterable[str],
                  required: Sequence[str] = (), *, path: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        if path:
            raise errors.invalid_field(path, value, f"{value!r} is not of type 'object'")
        raise BadRequest(f"{value!r} is not of type 'object'")
    extra = sorted(set(value) - set(allowed_keys))
    if extra:
        listed = ", ".join(repr(k) for k in extra)
        verb = "was" if len(extra) == 1 else "were"
        reason = f"Additional properties are not allowed ({listed} {verb} unexpected)"
        raise errors.invalid_field(path, value, reason) if path else BadRequest(reason)
    for key in required:
        if key not in value:
            reason = f"'{key}' is a required property"
            raise errors.invalid_field(path, value, reason) if path else BadRequest(reason)
    return value


def _printable(ch: str) -> bool:
    """Nova's notion: anything but control/format/unassigned characters and
    line or paragraph separators."""
    cat = unicodedata.category(ch)
    return not (cat[0] == "C" or (cat[0] == "Z" and cat != "Zs"))


def is_valid_name(value: str) -> bool:
    """Printable, and neither starting nor ending with whitespace (Nova's ``name``
    format)."""
    if not all(_printable(ch) for ch in value):
        return False
    return not (value[0].isspace() or value[-1].isspace()
                or unicodedata.category(value[0]) == "Zs"
                or unicodedata.category(value[-1]) == "Zs")


def check_name(value: Any, field: str = "name", max_length: int = 255) -> str:
    if not isinstance(value, str):
        raise errors.invalid_field(field, value, f"{value!r} is not of type 'string'")
    if len(value) < 1:
        raise errors.invalid_field(field, value, f"{value!r} is too short")
    if len(value) > max_length:
        raise errors.invalid_field(field, value, f"{value!r} is too long")
    if not is_valid_name(value):
        raise errors.invalid_field(
            field, value, "An invalid 'name' value was provided. The name must be: "
            "printable characters. Can not start or end with whitespace.")
    return value


def check_string(value: Any, field: str, *, min_length: int = 0, max_length: int = 255,
                 nullable: bool = False, pattern: str | None = None) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        kind = "['string', 'null']" if nullable else "'string'"
        raise errors.invalid_field(field, value, f"{value!r} is not of type {kind}")
    if len(value) < min_length:
        raise errors.invalid_field(field, value, f"{value!r} is too short")
    if len(value) > max_length:
        raise errors.invalid_field(field, value, f"{value!r} is too long")
    if pattern is not None and not re.search(pattern, value):
        raise errors.invalid_field(field, value, f"{value!r} does not match {pattern!r}")
    return value


def check_description(value: Any, field: str = "description",
                      max_length: int = 65535) -> str | None:
    """Nullable, any printable characters (whitespace included)."""
    text = check_string(value, field, max_length=max_length, nullable=True)
    if text is not None and not all(_printable(ch) or ch.isspace() for ch in text):
        raise errors.invalid_field(field, value, f"{value!r} does not match the "
                                   "allowed characters (printable characters)")
    return text


_DIGITS = re.compile(r"^[0-9]+$")
_DIGITS_OR_EMPTY = re.compile(r"^[0-9]*$")
METADATA_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")


def check_date_time(raw: str, name: str) -> datetime:
    """A query parameter's ISO 8601 time (``changes-since`` ...); UTC if it has no
    zone."""
    try:
        t = datetime.fromisoformat(raw)
    except ValueError:
        raise errors.invalid_query(name, raw, f"{raw!r} is not a 'date-time'") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def check_int(value: Any, field: str, minimum: int, maximum: int = MAX_INT) -> int:
    """An integer, or a string of digits (Nova's ``flavor_param_*`` types)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise errors.invalid_field(field, value,
                                   f"{value!r} is not of type 'integer', 'string'")
    if isinstance(value, str):
        if not _DIGITS.match(value):
            raise errors.invalid_field(field, value, f"{value!r} does not match '^[0-9]+$'")
        number = int(value)
    else:
        number = value
    if number < minimum:
        raise errors.invalid_field(field, value, f"{value} is less than the minimum of {minimum}")
    if number > maximum:
        raise errors.invalid_field(field, value,
                                   f"{value} is greater than the maximum of {maximum}")
    return number


TRUE_STRINGS = ("True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes")
FALSE_STRINGS = ("False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no")


def check_bool(value: Any, field: str) -> bool:
    """Nova's ``boolean`` type: a JSON boolean or one of its spellings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in TRUE_STRINGS:
        return True
    if isinstance(value, str) and value in FALSE_STRINGS:
        return False
    raise errors.invalid_field(field, value, f"{value!r} is not one of "
                               f"{[True, *TRUE_STRINGS, False, *FALSE_STRINGS]!r}")


def check_metadata(value: Any, field: str = "metadata", *, exactly_one: bool = False) -> dict[str, str]:
    """Nova's metadata schema: keys ``[a-zA-Z0-9-_:. ]{1,255}``, string values of at
    most 255 characters (``meta``: exactly one item).

    Raises:
        BadRequest.
    """
    if not isinstance(value, dict):
        raise errors.invalid_field(field, value, f"{value!r} is not of type 'object'")
    bad = sorted(k for k in value if not METADATA_KEY.match(k))
    if bad:
        listed = ", ".join(repr(k) for k in bad)
        verb = "was" if len(bad) == 1 else "were"
        raise errors.invalid_field(field, value, "Additional properties are not allowed "
                                   f"({listed} {verb} unexpected)")
    for k, v in value.items():
        if not isinstance(v, str):
            raise errors.invalid_field(f"{field}/{k}", v, f"{v!r} is not of type 'string'")
        if len(v) > 255:
            raise errors.invalid_field(f"{field}/{k}", v, f"{v!r} is too long")
    if exactly_one and len(value) < 1:
        raise errors.invalid_field(field, value, f"{value!r} does not have enough properties")
    if exactly_one and len(value) > 1:
        raise errors.invalid_field(field, value, f"{value!r} has too many properties")
    return dict(value)


# -- query strings -------------------------------------------------------------------


def check_query(request: Request, allowed_keys: Iterable[str], strict_from: str = "2.75") -> None:
    """From ``strict_from`` on, a query parameter the API does not know is a 400
    (before, it is ignored), as Nova's query schemas do."""
    if not supports(request, strict_from):
        return
    extra = sorted(set(request.query_params) - set(allowed_keys))
    if extra:
        listed = ", ".join(repr(k) for k in extra)
        verb = "was" if len(extra) == 1 else "were"
        raise BadRequest(f"Additional properties are not allowed ({listed} {verb} unexpected)")


def query_one(request: Request, name: str) -> str | None:
    """The first value of a query parameter (Nova reads the first of several)."""
    values = request.query_params.getlist(name)
    return values[0] if values else None


def non_negative_query(request: Request, name: str) -> int | None:
    """A query parameter Nova's schema types as a non-negative integer (digits,
    ``""`` meaning 0); None when absent.

    Raises:
        BadRequest: anything but digits.
    """
    raw = query_one(request, name)
    if raw is None:
        return None
    if not _DIGITS_OR_EMPTY.match(raw):
        raise errors.invalid_query(name, raw, f"{raw!r} does not match '^[0-9]*$'")
    return int(raw) if raw else 0


def limit_and_marker(request: Request) -> tuple[int, str | None]:
    """``limit`` (absent: the configured maximum, larger: capped to it; 0 is an
    empty page, as Nova's ``min(max_limit, limit)``) and ``marker``.

    Raises:
        BadRequest: limit is not a non-negative integer.
    """
    max_limit = get_state(request).conf.max_limit
    raw = query_one(request, "limit")
    limit = max_limit
    if raw is not None:
        if not re.match(r"^[0-9]+$", raw):
            raise errors.invalid_query("limit", raw, f"{raw!r} does not match '^[0-9]*$'")
        limit = min(int(raw), max_limit)
    return limit, query_one(request, "marker")


def paginate(items: list[Any], key: Any, limit: int, marker: str | None,
             marker_error: CloudError) -> list[Any]:
    """The page of ``items`` (already sorted) after the one whose ``key(item)`` is
    ``marker``, at most ``limit`` long.

    Raises:
        ``marker_error``: no item has that key.
    """
    start = 0
    if marker is not None:
        for i, item in enumerate(items):
            if key(item) == marker:
                start = i + 1
                break
        else:
            raise marker_error
    return items[start:start + limit]


def collection_links(request: Request, page: list[dict[str, Any]], collection: str,
                     id_key: str) -> list[dict[str, str]]:
    """Nova's ``next`` link: when the page is as long as the requested (or maximum)
    limit, the same query with ``marker`` set to the page's last item."""
    max_limit = get_state(request).conf.max_limit
    raw = query_one(request, "limit")
    wanted = min(int(raw), max_limit) if raw is not None else max_limit
    if not wanted or wanted != len(page):
        return []
    params = {k: v for k, v in sorted(request.query_params.items())}
    params["marker"] = str(page[-1][id_key])
    href = f"{service_url(request)}{API_PREFIX}/{collection}?{urlencode(params)}"
    return [{"rel": "next", "href": href}]


def resource_links(request: Request, collection: str, ident: str) -> list[dict[str, str]]:
    """``self`` (with the version) and ``bookmark`` (without) links of a resource."""
    base = service_url(request)
    return [
        {"rel": "self", "href": f"{base}{API_PREFIX}/{collection}/{ident}"},
        {"rel": "bookmark", "href": f"{base}/{collection}/{ident}"},
    ]
