"""``/v3/projects``: projects and their hierarchy, project tags, and
``/v3/users/{user_id}/projects``.

Tokens scoped to a project that is disabled or deleted stop validating on their
own (token validation looks at the project), so nothing here revokes them.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.auth import authenticate
from onestack.core.context import RequestContext
from onestack.core.errors import BadRequest
from onestack.core.http import JSONResponse, no_content, read_json, validate
from onestack.identity import render
from onestack.identity.api.common import authorize, state, v3_url
from onestack.identity.api.domains import token_domain
from onestack.identity.errors import not_found
from onestack.identity.models import Project, User
from onestack.identity.schemas.resources import (
    MAX_TAGS,
    ListQuery,
    ProjectCreateBody,
    ProjectUpdateBody,
    TagsBody,
    check_tag,
    collection,
    require_some,
)
from onestack.identity.service import resources as svc
from onestack.identity.service import users as identity
from onestack.identity.service.resources import ProjectSpec


def _target(p: Project | None) -> dict[str, Any]:
    if p is None:
        return {}
    domain_id = None if p.is_domain else p.domain_id
    return {"target": {"project": {"id": p.id, "name": p.name, "domain_id": domain_id}}}


async def _authorized(request: Request, action: str) -> tuple[Project, RequestContext]:
    """Enforce ``action`` on the project in the path, then require it to exist
    (a refused caller learns nothing about existence)."""
    project_id = request.path_params["project_id"]
    async with state(request).read() as session:
        p = await svc.find_project(session, project_id)
    ctx = await authorize(request, action, _target(p))
    if p is None:
        raise not_found("project", project_id)
    return p, ctx


def _flag(request: Request, name: str) -> bool:
    """Keystone's reading of ``?parents_as_list``: present and not ``0``."""
    return request.query_params.get(name, "0") != "0"


async def _hierarchy(request: Request, p: Project, out: dict[str, Any], caller: str | None) -> None:
    as_list, as_ids = _flag(request, "parents_as_list"), _flag(request, "parents_as_ids")
    sub_list, sub_ids = _flag(request, "subtree_as_list"), _flag(request, "subtree_as_ids")
    if as_list and as_ids:
        raise BadRequest("Cannot use parents_as_list and parents_as_ids query params at the same time.")
    if sub_list and sub_ids:
        raise BadRequest("Cannot use subtree_as_list and subtree_as_ids query params at the same time.")
    if not (as_list or as_ids or sub_list or sub_ids):
        return
    async with state(request).read() as session:
        parents = await svc.lineage(session, p)
        below = await svc.subtree(session, p)
        # the lists show only projects the caller has a role on, as in Keystone
        mine = {x.id for x in await identity.user_projects(session, caller)} if caller else set()
        tags = await svc.tags_of(session, [x.id for x in parents + below])
    if as_list:
        out["parents"] = [{"project": render.project(request, x, tags[x.id])}
                          for x in parents if x.id in mine]
    elif as_ids:
        nested: dict[str, Any] | None = None
        for x in reversed(parents):
            nested = {x.id: nested}
        out["parents"] = nested
    if sub_list:
        out["subtree"] = [{"project": render.project(request, x, tags[x.id])}
                          for x in below if x.id in mine]
    elif sub_ids:
        children: dict[str | None, list[str]] = {}
        for x in below:
            children.setdefault(x.parent_id, []).append(x.id)

        def tree(pid: str) -> dict[str, Any] | None:
            kids = children.get(pid)
            return {k: tree(k) for k in kids} if kids else None

        out["subtree"] = tree(p.id)


async def _show(request: Request, project_id: str, status: int = 200) -> Response:
    async with state(request).read() as session:
        p = await svc.get_project(session, project_id)
        tags = await svc.tags_of(session, [p.id])
    return JSONResponse({"project": render.project(request, p, tags[p.id])}, status_code=status)


async def list_projects(request: Request) -> Response:
    """``GET /v3/projects`` (filters: name, domain_id, enabled, parent_id,
    is_domain, tags, tags-any, not-tags, not-tags-any)."""
    st = state(request)
    scoped = token_domain(await authenticate(request, st.tokens))
    await authorize(request, "identity:list_projects",
                    {"target": {"domain_id": scoped}} if scoped else None)
    q = ListQuery.of(request)
    if scoped is not None:
        q.items.append(("domain_id", scoped))
    async with st.read() as session:
        found, tags = await svc.list_projects(session, q, dict(request.query_params))
    found, truncated = q.page(found, st.settings.identity.list_limit, lambda p: p.id)
    members = [render.project(request, p, tags[p.id]) for p in found]
    return JSONResponse(collection(request, "projects", members, truncated))


async def create_project(request: Request) -> Response:
    """``POST /v3/projects`` (``is_domain: true`` creates a domain)."""
    body = await read_json(request)
    raw = body.get("project") if isinstance(body, dict) else None
    ctx = await authorize(request, "identity:create_project",
                          {"target": {"project": raw if isinstance(raw, dict) else {}}})
    data = validate(ProjectCreateBody, body).project
    default_domain = token_domain(ctx) or "default"
    async with state(request).write() as session:
        p = await svc.create_project(session, ProjectSpec(data.fields(), data.extra()), default_domain)
    return await _show(request, p.id, 201)


async def get_project(request: Request) -> Response:
    """``GET /v3/projects/{project_id}`` (``?parents_as_list``, ``?subtree_as_list``,
    ``?parents_as_ids``, ``?subtree_as_ids``)."""
    p, ctx = await _authorized(request, "identity:get_project")
    async with state(request).read() as session:
        tags = await svc.tags_of(session, [p.id])
    out = render.project(request, p, tags[p.id])
    await _hierarchy(request, p, out, ctx.user_id)
    return JSONResponse({"project": out})


async def update_project(request: Request) -> Response:
    """``PATCH /v3/projects/{project_id}``."""
    p, _ = await _authorized(request, "identity:update_project")
    body = await read_json(request)
    require_some(body, "project")
    data = validate(ProjectUpdateBody, body).project
    async with state(request).write() as session:
        p = await svc.get_project(session, p.id)
        await svc.update_project(session, p, ProjectSpec(data.fields(), data.extra()))
    return await _show(request, p.id)


async def delete_project(request: Request) -> Response:
    """``DELETE /v3/projects/{project_id}``: a leaf project (or a disabled domain)."""
    p, _ = await _authorized(request, "identity:delete_project")
    async with state(request).write() as session:
        await svc.delete_project(session, await svc.get_project(session, p.id))
    return no_content()


# -- tags -------------------------------------------------------------------------


def _tags_body(request: Request, tags: list[str]) -> dict[str, Any]:
    return {"tags": sorted(tags), "links": {"self": str(request.url)}}


async def _tags(request: Request, p: Project) -> list[str]:
    async with state(request).read() as session:
        return (await svc.tags_of(session, [p.id]))[p.id]


async def _replace_tags(request: Request, p: Project, tags: list[str]) -> None:
    async with state(request).write() as session:
        p = await svc.get_project(session, p.id)
        await svc.update_project(session, p, ProjectSpec({"tags": tags}))


async def list_tags(request: Request) -> Response:
    """``GET /v3/projects/{project_id}/tags``."""
    p, _ = await _authorized(request, "identity:list_project_tags")
    return JSONResponse(_tags_body(request, await _tags(request, p)))


async def replace_tags(request: Request) -> Response:
    """``PUT /v3/projects/{project_id}/tags``: the project's tags become these."""
    p, _ = await _authorized(request, "identity:update_project_tags")
    tags = validate(TagsBody, await read_json(request)).tags
    await _replace_tags(request, p, tags)
    return JSONResponse(_tags_body(request, await _tags(request, p)))


async def delete_tags(request: Request) -> Response:
    """``DELETE /v3/projects/{project_id}/tags``: remove every tag."""
    p, _ = await _authorized(request, "identity:delete_project_tags")
    await _replace_tags(request, p, [])
    return no_content()


async def check_tag_exists(request: Request) -> Response:
    """``GET /v3/projects/{project_id}/tags/{tag}``: 204 if the project has it."""
    p, _ = await _authorized(request, "identity:get_project_tag")
    tag = request.path_params["tag"]
    if tag not in await _tags(request, p):
        raise not_found("project tag", tag)
    return no_content()


async def add_tag(request: Request) -> Response:
    """``PUT /v3/projects/{project_id}/tags/{tag}``: 201 with its location."""
    p, _ = await _authorized(request, "identity:create_project_tag")
    tag = check_tag(request.path_params["tag"].strip())
    tags = await _tags(request, p)
    if tag not in tags:
        if len(tags) >= MAX_TAGS:
            raise BadRequest(f"Invalid input for field 'tags': a project has at most {MAX_TAGS} tags")
        await _replace_tags(request, p, [*tags, tag])
    return Response(status_code=201, headers={"Location": v3_url(request, "projects", p.id, "tags", tag)})


async def delete_tag(request: Request) -> Response:
    """``DELETE /v3/projects/{project_id}/tags/{tag}``."""
    p, _ = await _authorized(request, "identity:delete_project_tag")
    tag = request.path_params["tag"]
    tags = await _tags(request, p)
    if tag not in tags:
        raise not_found("project tag", tag)
    await _replace_tags(request, p, [t for t in tags if t != tag])
    return no_content()


# -- a user's projects --------------------------------------------------------------


async def user_projects(request: Request) -> Response:
    """``GET /v3/users/{user_id}/projects``: the projects the user has a role on
    (filters: name, domain_id, enabled)."""
    st = state(request)
    user_id = request.path_params["user_id"]
    async with st.read() as session:
        user = await session.get(User, user_id)
    target = {"target": {"user": {"id": user.id, "domain_id": user.domain_id}}} if user else {}
    await authorize(request, "identity:list_user_projects", target)
    q = ListQuery.of(request)
    async with st.read() as session:
        await identity.get_user(session, user_id)
        found = await identity.user_projects(session, user_id)
        tags = await svc.tags_of(session, [p.id for p in found])
    found = [p for p in found if _passes(p, q)]
    found, truncated = q.page(found, st.settings.identity.list_limit, lambda p: p.id)
    members = [render.project(request, p, tags[p.id]) for p in found]
    return JSONResponse(collection(request, "projects", members, truncated))


def _passes(p: Project, q: ListQuery) -> bool:
    for key in ("name", "domain_id"):
        value = q.get(key)
        if value is not None and getattr(p, key) != value:
            return False
    enabled = q.flag("enabled")
    return (enabled is None or p.enabled == enabled) and q.matches(p, ("name",))


routes = [
    Route("/projects", list_projects, methods=["GET"]),
    Route("/projects", create_project, methods=["POST"]),
    Route("/projects/{project_id}", get_project, methods=["GET"]),
    Route("/projects/{project_id}", update_project, methods=["PATCH"]),
    Route("/projects/{project_id}", delete_project, methods=["DELETE"]),
    Route("/projects/{project_id}/tags", list_tags, methods=["GET"]),
    Route("/projects/{project_id}/tags", replace_tags, methods=["PUT"]),
    Route("/projects/{project_id}/tags", delete_tags, methods=["DELETE"]),
    Route("/projects/{project_id}/tags/{tag}", check_tag_exists, methods=["GET"]),
    Route("/projects/{project_id}/tags/{tag}", add_tag, methods=["PUT"]),
    Route("/projects/{project_id}/tags/{tag}", delete_tag, methods=["DELETE"]),
    Route("/users/{user_id}/projects", user_projects, methods=["GET"]),
]
