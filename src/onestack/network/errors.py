"""Networking errors in Neutron's envelope.

Neutron answers every error as ``{"NeutronError": {"type", "message", "detail"}}``
where ``type`` names the exception (``NetworkNotFound``, ``IpAddressInUse`` ...);
clients (openstacksdk, neutronclient) and Tempest read ``type``. An error raised
here carries its type; a plain ``core.errors`` exception gets webob's generic
one (``HTTPBadRequest`` ...), which is what Neutron's API layer uses for
validation failures.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from onestack.core import errors
from onestack.core.http import JSONResponse

GENERIC_TYPES = {
    400: "HTTPBadRequest",
    401: "HTTPUnauthorized",
    403: "HTTPForbidden",
    404: "HTTPNotFound",
    405: "HTTPMethodNotAllowed",
    406: "HTTPNotAcceptable",
    409: "HTTPConflict",
    412: "HTTPPreconditionFailed",
    413: "HTTPRequestEntityTooLarge",
    415: "HTTPUnsupportedMediaType",
    500: "HTTPInternalServerError",
    501: "HTTPNotImplemented",
    503: "HTTPServiceUnavailable",
}


class PreconditionFailed(errors.CloudError):
    status_code = 412


def render(request: Request, exc: errors.CloudError) -> Response:
    kind = getattr(exc, "neutron_type", None) or GENERIC_TYPES.get(exc.status_code, "HTTPError")
    body = {"NeutronError": {"type": kind, "message": exc.message, "detail": ""}}
    headers = dict(exc.headers)
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Keystone uri='/identity'")
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def _typed(base: type[errors.CloudError], kind: str, message: str) -> errors.CloudError:
    exc = base(message)
    exc.neutron_type = kind  # type: ignore[attr-defined]
    return exc


def not_found(kind: str, message: str) -> errors.CloudError:
    """``<Resource>NotFound`` (404)."""
    return _typed(errors.NotFound, kind, message)


def conflict(kind: str, message: str) -> errors.CloudError:
    return _typed(errors.Conflict, kind, message)


def bad_request(kind: str, message: str) -> errors.CloudError:
    return _typed(errors.BadRequest, kind, message)


def forbidden(kind: str, message: str) -> errors.CloudError:
    return _typed(errors.Forbidden, kind, message)


# -- the errors more than one resource raises --------------------------------------


def network_not_found(net_id: str) -> errors.CloudError:
    return not_found("NetworkNotFound", f"Network {net_id} could not be found.")


def subnet_not_found(subnet_id: str) -> errors.CloudError:
    return not_found("SubnetNotFound", f"Subnet {subnet_id} could not be found.")


def port_not_found(port_id: str) -> errors.CloudError:
    return not_found("PortNotFound", f"Port {port_id} could not be found.")


def router_not_found(router_id: str) -> errors.CloudError:
    return not_found("RouterNotFound", f"Router {router_id} could not be found")


def security_group_not_found(sg_id: str) -> errors.CloudError:
    return not_found("SecurityGroupNotFound", f"Security group {sg_id} does not exist")


def subnetpool_not_found(pool_id: str) -> errors.CloudError:
    return not_found("SubnetPoolNotFound", f"Subnet pool {pool_id} could not be found.")


def policy_not_authorized(action: str) -> errors.CloudError:
    return forbidden("PolicyNotAuthorized",
                     f"rule:{action} is disallowed by policy")


def invalid_input(message: str) -> errors.CloudError:
    return bad_request("InvalidInput", f"Invalid input for operation: {message}.")


def over_quota(resource: str) -> errors.CloudError:
    return conflict("OverQuota", f"Quota exceeded for resources: ['{resource}'].")


def revision_mismatch(current: int, wanted: str) -> errors.CloudError:
    return _typed(PreconditionFailed, "RevisionNumberConstraintFailed",
                  f"Constrained to {wanted}, but current revision is {current}")
