"""The metadata API at ``/compute/metadata/<path>`` (Nova's metadata service behind
Neutron's metadata proxy). No token: the networking service's proxy names the
instance in ``X-Instance-ID`` and signs it (``X-Instance-ID-Signature``) with the
secret both services share; ``X-Tenant-ID`` must be the instance's project.
Answers are plain text or JSON, as Nova's; errors are plain text too (a guest's
tools read them, not an API client). GET reads; a POST is taken only by
``/openstack/<version>/password`` (2013-04-04 on, and latest), where a guest
stores its encrypted password once."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.compute.api import common as c
from onestack.compute.service import metadata as svc
from onestack.compute.service import servers as servers_svc
from onestack.compute.state import ComputeState
from onestack.core.auth import METADATA_SECRET, instance_signature_ok
from onestack.core.concurrency import run_blocking
from onestack.core.errors import NotFound
from onestack.core.files import load_or_create_secret

SECRET_KEY = "metadata_secret"


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status_code=status, media_type="text/plain")


def load_secret(st: ComputeState) -> bytes:
    """The proxy's secret (created if neither service has yet), kept in the state."""
    secret = load_or_create_secret(st.settings.path(*METADATA_SECRET)).encode()
    st.extras[SECRET_KEY] = secret
    return secret


async def _signed(st: ComputeState, instance_id: str, given: str) -> bool:
    known = st.extras.get(SECRET_KEY)
    secret = known if isinstance(known, bytes) else await run_blocking(load_secret, st)
    if instance_signature_ok(secret, instance_id, given):
        return True
    # the networking service may have created the secret after this process read it
    fresh = await run_blocking(load_secret, st)
    return fresh != secret and instance_signature_ok(fresh, instance_id, given)


async def handle(request: Request) -> Response:
    st = c.state(request)
    instance_id = request.headers.get("x-instance-id")
    tenant_id = request.headers.get("x-tenant-id")
    given = request.headers.get("x-instance-id-signature", "")
    if not instance_id:
        return _text(400, "X-Instance-ID header is missing from request.")
    if not tenant_id:
        return _text(400, "X-Tenant-ID header is missing from request.")
    if not given or not await _signed(st, instance_id, given):
        return _text(403, "Invalid proxy request signature.")
    try:
        inst = await servers_svc.get(st, instance_id)
    except NotFound:
        return _text(404, "The resource could not be found.")
    if inst.project_id != tenant_id:
        return _text(404, "The resource could not be found.")
    path = request.path_params.get("path", "")
    if request.method == "POST":
        return await _post(request, st, inst.uuid, path)
    if svc.needs_network(path):
        md = await svc.for_instance(st, inst)
    else:
        md = svc.InstanceMetadata(inst, availability_zone=st.conf.default_availability_zone)
    try:
        body, ctype = md.lookup(path)
    except svc.MetadataNotFound:
        return _text(404, "The resource could not be found.")
    return Response(body, media_type=ctype)


async def _post(request: Request, st: ComputeState, instance_uuid: str,
                path: str) -> Response:
    """A guest stores its (encrypted) password: only ``/openstack/<version>/password``
    takes a POST (400 too large, 409 once one is set, as Nova's)."""
    if not svc.is_password_path(path):
        return _text(405, "The method POST is not allowed for this resource.")
    body = b""
    async for chunk in request.stream():  # no further than past the limit
        body += chunk
        if len(body) > svc.PASSWORD_MAX_SIZE:
            break
    try:
        await svc.set_password(st, instance_uuid, body)
    except svc.PasswordAlreadySet:
        return _text(409, "There was a conflict when trying to complete your request.")
    except svc.PasswordRejected as exc:
        return _text(400, str(exc))
    except svc.MetadataNotFound:
        return _text(404, "The resource could not be found.")
    return Response(b"", status_code=200, media_type=svc.TEXT)


routes = [
    Route("/metadata", handle, methods=["GET"]),
    Route("/metadata/{path:path}", handle, methods=["GET", "POST"]),
]
