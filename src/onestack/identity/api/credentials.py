"""``/v3/credentials``, the OS-EC2 extension under ``/v3/users/{user_id}``, and
``/v3/ec2tokens`` / ``/v3/s3tokens`` (a token for a request signed with an EC2
credential). Users see and manage only their own credentials unless admin; a
token issued with an application credential only reaches credentials of its
own project."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.auth import authenticate
from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest, Unauthorized
from onestack.core.http import JSONResponse, no_content, read_json, validate
from onestack.core.policy import PolicyNotAuthorized
from onestack.identity.api.common import authorize, collection_links, state, v3_url
from onestack.identity.errors import conflict, forbidden_action, not_found
from onestack.identity.models import Credential, Project, User
from onestack.identity.schemas.credentials import (
    CREDENTIAL_ATTRS,
    CredentialCreateBody,
    CredentialUpdateBody,
    Ec2CreateBody,
)
from onestack.identity.service import credentials as creds
from onestack.identity.service.app_creds import ensure_unrestricted
from onestack.identity.service.catalog_admin import apply_filters, extra_of

SUBJECT_HEADER = "X-Subject-Token"


def render(request: Request, c: Credential, blob: str) -> dict[str, Any]:
    out: dict[str, Any] = dict(c.extra)
    out.update(id=c.id, user_id=c.user_id, project_id=c.project_id, type=c.type, blob=blob,
               links={"self": v3_url(request, "credentials", c.id)})
    return out


def _target(c: Credential | dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(c, Credential):
        c = {"id": c.id, "user_id": c.user_id, "project_id": c.project_id, "type": c.type}
    return {"target": {"credential": c or {}}}


def _check_delegation(ctx: RequestContext, project_id: str | None) -> None:
    """A token from an application credential reaches only its project's credentials."""
    if ctx.auth is not None and ctx.auth.app_cred_id and project_id != ctx.auth.project_id:
        raise forbidden_action(
            "Credential project does not match the project scope of the delegated token"
        )


def _allowed(request: Request, ctx: RequestContext, action: str, target: dict[str, Any]) -> bool:
    try:
        state(request).enforcer.enforce(action, target, ctx.policy_creds())
    except PolicyNotAuthorized:
        return False
    return True


# -- /v3/credentials ---------------------------------------------------------------


async def list_credentials(request: Request) -> Response:
    """``GET /v3/credentials`` (filters: user_id, type): only those the caller may read."""
    st = state(request)
    ctx = await authenticate(request, st.tokens)
    # a project or domain caller lists (at most) their own: the policy sees them as owner
    owner = None if ctx.is_system else {"target": {"credential": {"user_id": ctx.user_id}}}
    ctx = await authorize(request, "identity:list_credentials", owner)
    async with st.read() as session:
        rows = (await session.scalars(select(Credential).order_by(Credential.id))).all()
        visible = [
            c for c in rows
            if _allowed(request, ctx, "identity:get_credential", _target(c))
            and not (ctx.auth and ctx.auth.app_cred_id and c.project_id != ctx.project_id)
        ]
        items = [render(request, c, creds.blob_of(st.credential_keys, c)) for c in visible]
    items = apply_filters(items, request.query_params.multi_items(), ("user_id", "type"))
    return JSONResponse({"credentials": items, "links": collection_links(request)})


async def create_credential(request: Request) -> Response:
    """``POST /v3/credentials``: an ``ec2`` credential's id is the SHA-256 of its
    access key."""
    st = state(request)
    data = validate(CredentialCreateBody, await read_json(request)).credential.given()
    ctx = await authorize(request, "identity:create_credential", _target(data))
    _check_delegation(ctx, data.get("project_id"))
    blob = data["blob"]
    async with st.write() as session:
        if data["type"] == creds.EC2:
            await ensure_unrestricted(session, ctx.auth, "credentials")
            parsed = creds.ec2_blob(blob)
            cred_id = creds.access_key_id(str(parsed["access"]))
            if ctx.auth is not None and ctx.auth.app_cred_id:
                parsed["app_cred_id"] = ctx.auth.app_cred_id
                blob = json.dumps(parsed)
        else:
            cred_id = uuid.uuid4().hex
        if await session.get(Credential, cred_id) is not None:
            raise conflict("credential", "Duplicate entry")
        cred = Credential(id=cred_id, user_id=data["user_id"], project_id=data.get("project_id"),
                          type=data["type"], extra=extra_of(data, CREDENTIAL_ATTRS))
        creds.set_blob(st.credential_keys, cred, blob)
        session.add(cred)
        try:
            await session.flush()
        except IntegrityError:
            raise conflict("credential", "Duplicate entry") from None
        body = {"credential": render(request, cred, blob)}
    return JSONResponse(body, status_code=201)


async def _load(request: Request, action: str) -> tuple[RequestContext, Credential | None]:
    """The caller, authorised for ``action`` on the credential in the path (which
    may not exist: then only a caller allowed on any credential learns that)."""
    cred_id = request.path_params["credential_id"]
    async with state(request).read() as session:
        cred = await session.get(Credential, cred_id)
    ctx = await authorize(request, action, _target(cred))
    if cred is None:
        raise not_found("credential", cred_id)
    _check_delegation(ctx, cred.project_id)
    return ctx, cred


async def get_credential(request: Request) -> Response:
    """``GET /v3/credentials/{credential_id}``."""
    st = state(request)
    _, cred = await _load(request, "identity:get_credential")
    assert cred is not None
    return JSONResponse(
        {"credential": render(request, cred, creds.blob_of(st.credential_keys, cred))}
    )


async def update_credential(request: Request) -> Response:
    """``PATCH /v3/credentials/{credential_id}``: the owner may not hand the
    credential to another user, nor change the scope kept in an EC2 blob."""
    st = state(request)
    _, cred = await _load(request, "identity:update_credential")
    assert cred is not None
    data = validate(CredentialUpdateBody, await read_json(request)).credential.given()
    if not data:
        raise BadRequest("Invalid input for field 'credential': {} does not have enough properties")
    if data.get("id") is not None and data["id"] != cred.id:
        raise BadRequest("Cannot change ID")
    old_blob = creds.blob_of(st.credential_keys, cred)
    new_type = data.get("type") or cred.type
    if new_type == creds.EC2:
        if not (data.get("project_id") or cred.project_id):
            raise BadRequest("Expecting to find project_id in credential. The server "
                                   "could not comply with the request since it is either "
                                   "malformed or otherwise incorrect. The client is assumed "
                                   "to be in error.")
        if "blob" in data and cred.type == creds.EC2:
            new, old = creds.ec2_blob(data["blob"]), json.loads(old_blob)
            for key in ("trust_id", "app_cred_id", "access_token_id", "access_id"):
                if old.get(key) != new.get(key):
                    raise BadRequest(f"{key} can not be updated for credential")
    merged = {"id": cred.id, "user_id": cred.user_id, "project_id": cred.project_id,
              "type": cred.type, **{k: v for k, v in data.items() if k != "blob"}}
    await authorize(request, "identity:update_credential", _target(merged))
    async with st.write() as session:
        row = await creds.get_credential(session, cred.id)
        for attr in ("user_id", "project_id", "type"):
            if attr in data:
                setattr(row, attr, data[attr])
        if "blob" in data:
            creds.set_blob(st.credential_keys, row, data["blob"])
        if extra := extra_of(data, CREDENTIAL_ATTRS):
            row.extra = {**row.extra, **extra}
        await session.flush()
        body = {"credential": render(request, row, data.get("blob", old_blob))}
    return JSONResponse(body)


async def delete_credential(request: Request) -> Response:
    """``DELETE /v3/credentials/{credential_id}``."""
    _, cred = await _load(request, "identity:delete_credential")
    assert cred is not None
    async with state(request).write() as session:
        await session.delete(await creds.get_credential(session, cred.id))
    return no_content()


# -- /v3/users/{user_id}/credentials/OS-EC2 ------------------------------------------


def _ec2(request: Request, user_id: str, project_id: str | None, blob: dict[str, Any]
         ) -> dict[str, Any]:
    access = blob.get("access")
    return {
        "user_id": user_id, "tenant_id": project_id, "access": access,
        "secret": blob.get("secret"), "trust_id": blob.get("trust_id"),
        "links": {"self": v3_url(request, "users", user_id, "credentials", "OS-EC2", str(access))},
    }


async def _user_exists(request: Request, user_id: str) -> None:
    async with state(request).read() as session:
        if await session.get(User, user_id) is None:
            raise not_found("user", user_id)


async def ec2_list(request: Request) -> Response:
    """``GET /v3/users/{user_id}/credentials/OS-EC2``."""
    st = state(request)
    user_id = request.path_params["user_id"]
    ctx = await authorize(request, "identity:ec2_list_credentials",
                          {"user_id": user_id, "target": {"user_id": user_id}})
    await _user_exists(request, user_id)
    async with st.read() as session:
        rows = await session.scalars(
            select(Credential).where(Credential.user_id == user_id, Credential.type == creds.EC2)
            .order_by(Credential.id)
        )
        items = [
            _ec2(request, user_id, c.project_id, json.loads(creds.blob_of(st.credential_keys, c)))
            for c in rows
            if not (ctx.auth and ctx.auth.app_cred_id and c.project_id != ctx.project_id)
        ]
    return JSONResponse({"credentials": items, "links": collection_links(request)})


async def ec2_create(request: Request) -> Response:
    """``POST /v3/users/{user_id}/credentials/OS-EC2`` ({"tenant_id": ...}): a
    generated access key and secret for the project."""
    st = state(request)
    user_id = request.path_params["user_id"]
    ctx = await authorize(request, "identity:ec2_create_credential",
                          {"user_id": user_id, "target": {"user_id": user_id,
                                                          "credential": {"user_id": user_id}}})
    project_id = validate(Ec2CreateBody, await read_json(request)).tenant_id
    async with st.write() as session:
        await ensure_unrestricted(session, ctx.auth, "credentials")
        if await session.get(User, user_id) is None:
            raise not_found("user", user_id)
        project = await session.get(Project, project_id)
        if project is None or project.is_domain:
            raise not_found("project", project_id)
        _check_delegation(ctx, project_id)
        blob: dict[str, Any] = {"access": uuid.uuid4().hex, "secret": uuid.uuid4().hex,
                                "trust_id": None}
        if ctx.auth is not None and ctx.auth.app_cred_id:
            blob["app_cred_id"] = ctx.auth.app_cred_id
        cred = Credential(id=creds.access_key_id(blob["access"]), user_id=user_id,
                          project_id=project_id, type=creds.EC2, extra={})
        creds.set_blob(st.credential_keys, cred, json.dumps(blob))
        session.add(cred)
        await session.flush()
    return JSONResponse({"credential": _ec2(request, user_id, project_id, blob)}, status_code=201)


async def _ec2_one(request: Request, action: str) -> tuple[Credential, dict[str, Any]]:
    st = state(request)
    user_id = request.path_params["user_id"]
    cred_id = creds.access_key_id(request.path_params["access"])
    async with st.read() as session:
        cred = await session.get(Credential, cred_id)
    if cred is None:
        # the owner (or an admin) learns that it is gone; others are refused
        await authorize(request, action, {"target": {"credential": {"user_id": user_id}}})
        raise not_found("credential", cred_id)
    ctx = await authorize(request, action, _target(cred))
    await _user_exists(request, user_id)
    if cred.type != creds.EC2:
        raise Unauthorized("EC2 access key not found.")
    if cred.user_id != user_id:
        raise not_found("credential", cred_id)
    _check_delegation(ctx, cred.project_id)
    return cred, json.loads(creds.blob_of(st.credential_keys, cred))


async def ec2_get(request: Request) -> Response:
    """``GET /v3/users/{user_id}/credentials/OS-EC2/{access}``."""
    cred, blob = await _ec2_one(request, "identity:ec2_get_credential")
    return JSONResponse({"credential": _ec2(request, cred.user_id, cred.project_id, blob)})


async def ec2_delete(request: Request) -> Response:
    """``DELETE /v3/users/{user_id}/credentials/OS-EC2/{access}``."""
    cred, _ = await _ec2_one(request, "identity:ec2_delete_credential")
    async with state(request).write() as session:
        await session.delete(await creds.get_credential(session, cred.id))
    return no_content()


# -- /v3/ec2tokens and /v3/s3tokens -------------------------------------------------


async def _signed_token(request: Request, action: str, *, s3: bool) -> tuple[str, dict[str, Any]]:
    await authorize(request, action)
    body = await read_json(request)
    if not isinstance(body, dict) or not body:
        raise BadRequest("request must include a request body")
    signed = body.get("credentials") or body.get("credential") or body.get("ec2Credentials") or {}
    st = state(request)
    payload = await creds.ec2_authenticate(st, signed, s3=s3)
    data = await st.tokens.issue(payload)
    out = data.body(await st.tokens.catalog())
    out["token"]["methods"] = ["ec2credential"]
    return data.token, out


async def ec2tokens(request: Request) -> Response:
    """``POST /v3/ec2tokens``: a project-scoped token for a request signed (AWS
    signature v2 or v4) with an EC2 credential; for EC2 front ends (admin or
    service callers)."""
    token, body = await _signed_token(request, "identity:ec2tokens_validate", s3=False)
    return JSONResponse(body, headers={SUBJECT_HEADER: token})


async def s3tokens(request: Request) -> Response:
    """``POST /v3/s3tokens``: the same for an S3 front end, which sends the string
    to sign (``token``, base64) and the ``signature``."""
    _, body = await _signed_token(request, "identity:s3tokens_validate", s3=True)
    return JSONResponse(body)


routes = [
    Route("/credentials", list_credentials, methods=["GET"]),
    Route("/credentials", create_credential, methods=["POST"]),
    Route("/credentials/{credential_id}", get_credential, methods=["GET"]),
    Route("/credentials/{credential_id}", update_credential, methods=["PATCH"]),
    Route("/credentials/{credential_id}", delete_credential, methods=["DELETE"]),
    Route("/users/{user_id}/credentials/OS-EC2", ec2_list, methods=["GET"]),
    Route("/users/{user_id}/credentials/OS-EC2", ec2_create, methods=["POST"]),
    Route("/users/{user_id}/credentials/OS-EC2/{access}", ec2_get, methods=["GET"]),
    Route("/users/{user_id}/credentials/OS-EC2/{access}", ec2_delete, methods=["DELETE"]),
    Route("/ec2tokens", ec2tokens, methods=["POST"]),
    Route("/s3tokens", s3tokens, methods=["POST"]),
]
