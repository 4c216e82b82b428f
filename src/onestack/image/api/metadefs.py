"""``/v2/metadefs``: metadata definition namespaces with their objects,
properties, tags and resource type associations, and the resource types.

Policy follows Glance: a refusal on a namespace the caller may not even read
is a 404 (as if it did not exist), otherwise a 403."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.context import RequestContext
from onestack.core.errors import NotFound
from onestack.core.http import JSONResponse, no_content, read_json
from onestack.image import errors
from onestack.image.api.common import context, state
from onestack.image.metadefs_models import (
    MetadefAssociation,
    MetadefNamespace,
    MetadefObject,
    MetadefProperty,
    MetadefResourceType,
    MetadefTag,
)
from onestack.image.render import ts
from onestack.image.service import metadefs as svc

GET_NS = "image:get_metadef_namespace"
NS_SCHEMA = "/v2/schemas/metadefs/namespace"
OBJECT_SCHEMA = "/v2/schemas/metadefs/object"

# -- documents --------------------------------------------------------------------


def _compact(doc: dict[str, Any]) -> dict[str, Any]:
    """Glance leaves out attributes that have no value."""
    return {k: v for k, v in doc.items() if v is not None}


def namespace_doc(ns: MetadefNamespace) -> dict[str, Any]:
    return _compact({
        "namespace": ns.namespace,
        "display_name": ns.display_name,
        "description": ns.description,
        "visibility": ns.visibility,
        "protected": ns.protected,
        "owner": ns.owner,
        "created_at": ts(ns.created_at),
        "updated_at": ts(ns.updated_at),
        "self": f"/v2/metadefs/namespaces/{ns.namespace}",
        "schema": NS_SCHEMA,
    })


def association_doc(assoc: MetadefAssociation, name: str) -> dict[str, Any]:
    return _compact({
        "name": name,
        "prefix": assoc.prefix,
        "properties_target": assoc.properties_target,
        "created_at": ts(assoc.created_at),
        "updated_at": ts(assoc.updated_at),
    })


def resource_type_doc(rt: MetadefResourceType) -> dict[str, Any]:
    return {"name": rt.name, "created_at": ts(rt.created_at), "updated_at": ts(rt.updated_at)}


def object_doc(ns: MetadefNamespace, obj: MetadefObject, prefix: str | None = None) -> dict[str, Any]:
    props = obj.properties
    required = obj.required
    if prefix:
        props = None if props is None else {prefix + k: v for k, v in props.items()}
        required = None if required is None else [prefix + r for r in required]
    return _compact({
        "name": obj.name,
        "description": obj.description,
        "required": required,
        "properties": props,
        "created_at": ts(obj.created_at),
        "updated_at": ts(obj.updated_at),
        "self": f"/v2/metadefs/namespaces/{ns.namespace}/objects/{obj.name}",
        "schema": OBJECT_SCHEMA,
    })


def property_doc(prop: MetadefProperty) -> dict[str, Any]:
    return {"name": prop.name, **prop.definition}


def tag_doc(tag: MetadefTag) -> dict[str, Any]:
    return {"name": tag.name, "created_at": ts(tag.created_at), "updated_at": ts(tag.updated_at)}


async def namespace_detail(
    session: AsyncSession, ns: MetadefNamespace, resource_type: str | None = None
) -> dict[str, Any]:
    """The namespace with its contents; with ``resource_type``, property names
    carry that association's prefix."""
    doc = namespace_doc(ns)
    assocs = (await svc.associations(session, [ns.id]))[ns.id]
    prefix = next((a.prefix for a, name in assocs if name == resource_type), None)
    if assocs:
        doc["resource_type_associations"] = [association_doc(a, n) for a, n in assocs]
    props = await svc.list_properties(session, ns)
    if props:
        doc["properties"] = {(prefix or "") + p.name: p.definition for p in props}
    objects = await svc.list_objects(session, ns)
    if objects:
        doc["objects"] = [object_doc(ns, o, prefix) for o in objects]
    tags = await svc.list_tags(session, ns)
    if tags:
        doc["tags"] = [{"name": t.name} for t in tags]
    return doc


# -- policy -----------------------------------------------------------------------


def _allowed(request: Request, ctx: RequestContext, rule: str, target: dict[str, Any]) -> bool:
    return state(request).enforcer.check(rule, target, ctx.policy_creds())


def _check(request: Request, ctx: RequestContext, rule: str) -> None:
    """A rule about no namespace in particular (lists, creation).

    Raises:
        Forbidden.
    """
    if not _allowed(request, ctx, rule, {"project_id": ctx.project_id}):
        raise errors.forbidden(rule.split(":", 1)[1])


def _check_ns(request: Request, ctx: RequestContext, rule: str, ns: MetadefNamespace) -> None:
    """A rule about namespace ``ns``.

    Raises:
        NotFound: refused, and the caller may not read the namespace.
        Forbidden: refused otherwise.
    """
    target = svc.target(ns)
    if _allowed(request, ctx, rule, target):
        return
    if rule == GET_NS or not _allowed(request, ctx, GET_NS, target):
        raise svc.namespace_not_found(ns.namespace)
    raise errors.forbidden(rule.split(":", 1)[1])


async def _namespace(
    request: Request, session: AsyncSession, *rules: str
) -> tuple[RequestContext, MetadefNamespace]:
    """The caller and the namespace of the path, after checking ``rules`` on it.

    Raises:
        Unauthorized, NotFound, Forbidden.
    """
    ctx = await context(request)
    ns = await svc.get_namespace(session, ctx, request.path_params["namespace"])
    for rule in rules:
        _check_ns(request, ctx, rule, ns)
    return ctx, ns


def _query(request: Request, sort_keys: tuple[str, ...], default_limit: int | None) -> svc.ListQuery:
    conf = state(request).conf
    return svc.list_query(request.query_params.multi_items(), sort_keys,
                          default_limit=default_limit, max_limit=conf.api_limit_max)


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "t", "true", "on", "y", "yes")


# -- namespaces -------------------------------------------------------------------


async def list_namespaces(request: Request) -> Response:
    """``GET /v2/metadefs/namespaces`` (``visibility``, ``resource_types``,
    ``limit``, ``marker``, ``sort_key``, ``sort_dir``)."""
    st = state(request)
    ctx = await context(request)
    _check(request, ctx, "image:get_metadef_namespaces")
    _check(request, ctx, "image:list_metadef_resource_types")
    q = _query(request, svc.NAMESPACE_SORT_KEYS, st.conf.limit_param_default)
    async with st.db.read() as session:
        rows = [ns for ns in await svc.list_namespaces(session, ctx, q)
                if _allowed(request, ctx, GET_NS, svc.target(ns))]
        assocs = await svc.associations(session, [ns.id for ns in rows])
        items = []
        for ns in rows:
            doc = namespace_doc(ns)
            if assocs[ns.id]:
                doc["resource_type_associations"] = [association_doc(a, n) for a, n in assocs[ns.id]]
            items.append(doc)
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "marker"]
    first = "/v2/metadefs/namespaces"
    body: dict[str, Any] = {
        "namespaces": items,
        "first": f"{first}?{urlencode(params)}" if params else first,
        "schema": "/v2/schemas/metadefs/namespaces",
    }
    if items and q.limit and len(items) == q.limit:
        body["next"] = f"{first}?{urlencode([*params, ('marker', items[-1]['namespace'])])}"
    return JSONResponse(body)


async def create_namespace(request: Request) -> Response:
    """``POST /v2/metadefs/namespaces`` (201), possibly with resource type
    associations, properties, objects and tags inline."""
    st = state(request)
    ctx = await context(request)
    body = svc.parse(svc.NamespaceIn, await read_json(request), svc.NAMESPACE_READ_ONLY)
    _check(request, ctx, "image:add_metadef_namespace")
    for present, rule in ((body.resource_type_associations, "add_metadef_resource_type_association"),
                          (body.objects, "add_metadef_object"),
                          (body.properties, "add_metadef_property"),
                          (body.tags, "add_metadef_tag")):
        if present:
            _check(request, ctx, f"image:{rule}")
    async with st.db.write() as session:
        ns = await svc.create_namespace(session, ctx, body)
        out = await namespace_detail(session, ns)
    return JSONResponse(out, status_code=201, headers={"Location": out["self"]})


async def show_namespace(request: Request) -> Response:
    """``GET /v2/metadefs/namespaces/{namespace}`` with its contents
    (``?resource_type=`` prefixes property names as that association says)."""
    st = state(request)
    async with st.db.read() as session:
        _, ns = await _namespace(
            request, session, GET_NS, "image:list_metadef_resource_types",
            "image:get_metadef_objects", "image:get_metadef_properties", "image:get_metadef_tags",
        )
        out = await namespace_detail(session, ns, request.query_params.get("resource_type"))
    return JSONResponse(out)


async def update_namespace(request: Request) -> Response:
    """``PUT /v2/metadefs/namespaces/{namespace}``: replaces its attributes."""
    st = state(request)
    body = svc.parse(svc.NamespaceIn, await read_json(request), svc.NAMESPACE_READ_ONLY)
    async with st.db.write() as session:
        ctx, ns = await _namespace(request, session, "image:modify_metadef_namespace")
        ns = await svc.update_namespace(session, ctx, ns, body)
        out = namespace_doc(ns)
    return JSONResponse(out)


async def delete_namespace(request: Request) -> Response:
    """``DELETE /v2/metadefs/namespaces/{namespace}`` (403 if protected)."""
    st = state(request)
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:delete_metadef_namespace")
        await svc.delete_namespace(session, ns)
    return no_content()


# -- resource types ---------------------------------------------------------------


async def list_resource_types(request: Request) -> Response:
    """``GET /v2/metadefs/resource_types``: every known resource type."""
    st = state(request)
    ctx = await context(request)
    _check(request, ctx, "image:list_metadef_resource_types")
    await svc.seed_resource_types(st.db)
    async with st.db.read() as session:
        out = [resource_type_doc(rt) for rt in await svc.list_resource_types(session)]
    return JSONResponse({"resource_types": out})


async def list_associations(request: Request) -> Response:
    """``GET /v2/metadefs/namespaces/{namespace}/resource_types``."""
    st = state(request)
    async with st.db.read() as session:
        ctx, ns = await _namespace(request, session, "image:list_metadef_resource_types")
        assocs = (await svc.associations(session, [ns.id]))[ns.id]
        visible = _allowed(request, ctx, "image:get_metadef_resource_type", svc.target(ns))
        out = [association_doc(a, n) for a, n in assocs] if visible else []
    return JSONResponse({"resource_type_associations": out})


async def create_association(request: Request) -> Response:
    """``POST /v2/metadefs/namespaces/{namespace}/resource_types``
    ``{"name", "prefix", "properties_target"}`` (201)."""
    st = state(request)
    body = svc.parse(svc.AssociationIn, await read_json(request))
    await svc.seed_resource_types(st.db)
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:add_metadef_resource_type_association")
        assoc, name = await svc.associate(session, ns, body)
        out = association_doc(assoc, name)
    return JSONResponse(out, status_code=201)


async def delete_association(request: Request) -> Response:
    """``DELETE /v2/metadefs/namespaces/{namespace}/resource_types/{name}``."""
    st = state(request)
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:remove_metadef_resource_type_association")
        await svc.dissociate(session, ns, request.path_params["name"])
    return no_content()


# -- objects ----------------------------------------------------------------------


async def list_objects(request: Request) -> Response:
    """``GET /v2/metadefs/namespaces/{namespace}/objects``."""
    st = state(request)
    q = _query(request, svc.OBJECT_SORT_KEYS, None)
    async with st.db.read() as session:
        _, ns = await _namespace(request, session, "image:get_metadef_objects",
                                 "image:get_metadef_object")
        out = [object_doc(ns, o) for o in await svc.list_objects(session, ns, q)]
    return JSONResponse({"objects": out, "schema": "/v2/schemas/metadefs/objects"})


async def create_object(request: Request) -> Response:
    """``POST /v2/metadefs/namespaces/{namespace}/objects`` (201)."""
    st = state(request)
    body = svc.parse(svc.ObjectIn, await read_json(request), svc.OBJECT_READ_ONLY)
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:add_metadef_object")
        obj = await svc.create_object(session, ns, body)
        out = object_doc(ns, obj)
    return JSONResponse(out, status_code=201)


async def show_object(request: Request) -> Response:
    """``GET /v2/metadefs/namespaces/{namespace}/objects/{name}``."""
    st = state(request)
    async with st.db.read() as session:
        _, ns = await _namespace(request, session, "image:get_metadef_object")
        out = object_doc(ns, await svc.get_object(session, ns, request.path_params["name"]))
    return JSONResponse(out)


async def update_object(request: Request) -> Response:
    """``PUT /v2/metadefs/namespaces/{namespace}/objects/{name}``: replaces it."""
    st = state(request)
    body = svc.parse(svc.ObjectIn, await read_json(request), svc.OBJECT_READ_ONLY)
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:modify_metadef_object")
        obj = await svc.update_object(session, ns, request.path_params["name"], body)
        out = object_doc(ns, obj)
    return JSONResponse(out)


async def delete_object(request: Request) -> Response:
    """``DELETE /v2/metadefs/namespaces/{namespace}/objects/{name}``."""
    st = state(request)
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:delete_metadef_object")
        await svc.delete_object(session, ns, request.path_params["name"])
    return no_content()


async def delete_objects(request: Request) -> Response:
    """``DELETE /v2/metadefs/namespaces/{namespace}/objects``: all of them."""
    st = state(request)
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:delete_metadef_namespace")
        await svc.delete_all(session, ns, MetadefObject, "Its objects")
    return no_content()


# -- properties -------------------------------------------------------------------


async def list_properties(request: Request) -> Response:
    """``GET /v2/metadefs/namespaces/{namespace}/properties``: a dict by name."""
    st = state(request)
    async with st.db.read() as session:
        _, ns = await _namespace(request, session, "image:get_metadef_properties")
        out = {p.name: p.definition for p in await svc.list_properties(session, ns)}
    return JSONResponse({"properties": out})


async def create_property(request: Request) -> Response:
    """``POST /v2/metadefs/namespaces/{namespace}/properties`` (201)."""
    st = state(request)
    body = svc.parse(svc.PropertyIn, await read_json(request))
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:add_metadef_property")
        prop = await svc.create_property(session, ns, body)
        out = property_doc(prop)
    return JSONResponse(out, status_code=201)


async def show_property(request: Request) -> Response:
    """``GET /v2/metadefs/namespaces/{namespace}/properties/{name}``; with
    ``?resource_type=``, ``name`` carries that association's prefix."""
    st = state(request)
    name = request.path_params["name"]
    resource_type = request.query_params.get("resource_type")
    async with st.db.read() as session:
        ctx, ns = await _namespace(request, session, "image:get_metadef_property")
        if resource_type:
            _check_ns(request, ctx, "image:get_metadef_resource_type", ns)
            prefix = await svc.prefix_for(session, ns, resource_type)
            if not prefix or not name.startswith(prefix):
                raise NotFound(f"Property {name} does not start with the prefix "
                                   f"'{prefix or ''}' of resource type {resource_type}.")
            name = name[len(prefix):]
        out = property_doc(await svc.get_property(session, ns, name))
    return JSONResponse(out)


async def update_property(request: Request) -> Response:
    """``PUT /v2/metadefs/namespaces/{namespace}/properties/{name}``: replaces
    the definition (``name`` in the body renames it)."""
    st = state(request)
    body = svc.parse(svc.PropertyIn, await read_json(request))
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:modify_metadef_property")
        prop = await svc.update_property(session, ns, request.path_params["name"], body)
        out = property_doc(prop)
    return JSONResponse(out)


async def delete_property(request: Request) -> Response:
    """``DELETE /v2/metadefs/namespaces/{namespace}/properties/{name}``."""
    st = state(request)
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:remove_metadef_property")
        await svc.delete_property(session, ns, request.path_params["name"])
    return no_content()


async def delete_properties(request: Request) -> Response:
    """``DELETE /v2/metadefs/namespaces/{namespace}/properties``: all of them."""
    st = state(request)
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:delete_metadef_namespace")
        await svc.delete_all(session, ns, MetadefProperty, "Its properties")
    return no_content()


# -- tags -------------------------------------------------------------------------


async def list_tags(request: Request) -> Response:
    """``GET /v2/metadefs/namespaces/{namespace}/tags``."""
    st = state(request)
    q = _query(request, svc.TAG_SORT_KEYS, None)
    async with st.db.read() as session:
        _, ns = await _namespace(request, session, "image:get_metadef_tags")
        out = [{"name": t.name} for t in await svc.list_tags(session, ns, q)]
    return JSONResponse({"tags": out})


async def create_tags(request: Request) -> Response:
    """``POST /v2/metadefs/namespaces/{namespace}/tags`` ``{"tags": [{"name"}]}``
    (201): replaces the tags, or adds to them with ``X-Openstack-Append: true``."""
    st = state(request)
    body = svc.parse(svc.TagsIn, await read_json(request))
    append = _true(request.headers.get("x-openstack-append"))
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:add_metadef_tags")
        tags = await svc.create_tags(session, ns, body.tags or [], append=append)
        out = [{"name": t.name} for t in tags]
    return JSONResponse({"tags": out}, status_code=201)


async def delete_tags(request: Request) -> Response:
    """``DELETE /v2/metadefs/namespaces/{namespace}/tags``: all of them."""
    st = state(request)
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:delete_metadef_namespace",
                                 "image:delete_metadef_tags")
        await svc.delete_all(session, ns, MetadefTag, "Its tags")
    return no_content()


async def create_tag(request: Request) -> Response:
    """``POST /v2/metadefs/namespaces/{namespace}/tags/{name}`` (201, no body)."""
    st = state(request)
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:add_metadef_tag")
        out = tag_doc(await svc.create_tag(session, ns, request.path_params["name"]))
    return JSONResponse(out, status_code=201)


async def show_tag(request: Request) -> Response:
    """``GET /v2/metadefs/namespaces/{namespace}/tags/{name}``."""
    st = state(request)
    async with st.db.read() as session:
        _, ns = await _namespace(request, session, "image:get_metadef_tag")
        out = tag_doc(await svc.get_tag(session, ns, request.path_params["name"]))
    return JSONResponse(out)


async def update_tag(request: Request) -> Response:
    """``PUT /v2/metadefs/namespaces/{namespace}/tags/{name}`` ``{"name"}``: renames it."""
    st = state(request)
    body = svc.parse(svc.TagIn, await read_json(request))
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:modify_metadef_tag")
        out = tag_doc(await svc.rename_tag(session, ns, request.path_params["name"], body))
    return JSONResponse(out)


async def delete_tag(request: Request) -> Response:
    """``DELETE /v2/metadefs/namespaces/{namespace}/tags/{name}``."""
    st = state(request)
    async with st.db.write() as session:
        _, ns = await _namespace(request, session, "image:delete_metadef_tag")
        await svc.delete_tag(session, ns, request.path_params["name"])
    return no_content()


_NS = "/v2/metadefs/namespaces/{namespace}"

routes = [
    Route("/v2/metadefs/resource_types", list_resource_types, methods=["GET"]),
    Route("/v2/metadefs/namespaces", list_namespaces, methods=["GET"]),
    Route("/v2/metadefs/namespaces", create_namespace, methods=["POST"]),
    Route(_NS, show_namespace, methods=["GET"]),
    Route(_NS, update_namespace, methods=["PUT"]),
    Route(_NS, delete_namespace, methods=["DELETE"]),
    Route(_NS + "/resource_types", list_associations, methods=["GET"]),
    Route(_NS + "/resource_types", create_association, methods=["POST"]),
    Route(_NS + "/resource_types/{name}", delete_association, methods=["DELETE"]),
    Route(_NS + "/objects", list_objects, methods=["GET"]),
    Route(_NS + "/objects", create_object, methods=["POST"]),
    Route(_NS + "/objects", delete_objects, methods=["DELETE"]),
    Route(_NS + "/objects/{name}", show_object, methods=["GET"]),
    Route(_NS + "/objects/{name}", update_object, methods=["PUT"]),
    Route(_NS + "/objects/{name}", delete_object, methods=["DELETE"]),
    Route(_NS + "/properties", list_properties, methods=["GET"]),
    Route(_NS + "/properties", create_property, methods=["POST"]),
    Route(_NS + "/properties", delete_properties, methods=["DELETE"]),
    Route(_NS + "/properties/{name}", show_property, methods=["GET"]),
    Route(_NS + "/properties/{name}", update_property, methods=["PUT"]),
    Route(_NS + "/properties/{name}", delete_property, methods=["DELETE"]),
    Route(_NS + "/tags", list_tags, methods=["GET"]),
    Route(_NS + "/tags", create_tags, methods=["POST"]),
    Route(_NS + "/tags", delete_tags, methods=["DELETE"]),
    Route(_NS + "/tags/{name}", show_tag, methods=["GET"]),
    Route(_NS + "/tags/{name}", create_tag, methods=["POST"]),
    Route(_NS + "/tags/{name}", update_tag, methods=["PUT"]),
    Route(_NS + "/tags/{name}", delete_tag, methods=["DELETE"]),
]
