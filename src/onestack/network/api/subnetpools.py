"""``/v2.0/subnetpools``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.context import RequestContext
from onestack.core.http import no_content
from onestack.network import errors
from onestack.network.api import common as c
from onestack.network.api.subnets import (
    Reason,
    checked,
    non_negative_or_none,
    subnet_cidr,
)
from onestack.network.models import SubnetPool
from onestack.network.service import subnetpools as svc


def not_empty_name(value: Any) -> str:
    if not isinstance(value, str):
        raise Reason(f"'{value}' is not a valid string")
    if len(value) > 255:
        raise Reason(f"'{value}' exceeds maximum length of 255")
    if not value.strip():
        raise Reason(f"'{value}' Blank strings are not permitted")
    return value


def prefixes(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise Reason(f"'{value}' is not a list")
    dup = [p for i, p in enumerate(value) if p in value[:i]]
    if dup:
        raise Reason(f"Duplicate items in the list: '{', '.join(map(str, dup))}'")
    return [subnet_cidr(p) for p in value]


RESOURCE = c.Resource(
    member="subnetpool",
    collection="subnetpools",
    attrs=c.attrs(
        name=c.Attr(allow_post=True, allow_put=True, default=c.MISSING,
                    convert=checked("name", not_empty_name)),
        prefixes=c.Attr(allow_post=True, allow_put=True, default=c.MISSING,
                        convert=checked("prefixes", prefixes), is_filter=False,
                        sortable=False),
        default_quota=c.Attr(allow_post=True, allow_put=True, default=None,
                             convert=checked("default_quota", non_negative_or_none)),
        ip_version=c.Attr(),
        default_prefixlen=c.Attr(allow_post=True, allow_put=True, default=None,
                                 convert=checked("default_prefixlen", non_negative_or_none)),
        min_prefixlen=c.Attr(allow_post=True, allow_put=True, default=None,
                             convert=checked("min_prefixlen", non_negative_or_none)),
        max_prefixlen=c.Attr(allow_post=True, allow_put=True, default=None,
                             convert=checked("max_prefixlen", non_negative_or_none)),
        is_default=c.Attr(allow_post=True, allow_put=True, default=False, convert=c.to_bool),
        shared=c.Attr(allow_post=True, default=False, convert=c.to_bool),
        address_scope_id=c.Attr(allow_post=True, allow_put=True, default=None,
                                convert=c.uuid_or_none),
    ),
)


def target(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "shared": str(item.get("shared")),
            "is_default": str(item.get("is_default"))}


def hide(request: Request, ctx: RequestContext, item: dict[str, Any]) -> dict[str, Any]:
    return c.hide_attributes(request, ctx, RESOURCE, item, target(item))


async def list_subnetpools(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    filters = c.filters(request, RESOURCE)
    async with st.db.read() as s:
        items = await svc.list_visible(s, ctx, c.is_admin(request, ctx), filters)
    items = [hide(request, ctx, i) for i in items
             if c.visible(request, ctx, RESOURCE, i, target(i))]
    return c.list_response(request, RESOURCE, items)


async def create_subnetpool(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    members, bulk = await c.parse_create(request, RESOURCE, ctx)
    for m in members:
        c.enforce(request, ctx, "create_subnetpool", target(m), c.explicit(RESOURCE, m))
    async with st.db.write() as s:
        ids = [await svc.create(st, s, m) for m in members]
        await s.flush()
        out = [await svc.show(s, i) for i in ids]
    return c.created(RESOURCE, [hide(request, ctx, i) for i in out], bulk)


async def _visible_row(request: Request, ctx: RequestContext, s: Any,
                       pool_id: str) -> tuple[SubnetPool, dict[str, Any]]:
    row = await svc.get_row(s, pool_id)
    item = await svc.show(s, pool_id)
    if not c.visible(request, ctx, RESOURCE, item, target(item)):
        raise errors.subnetpool_not_found(pool_id)
    return row, item


async def show_subnetpool(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    async with st.db.read() as s:
        _, item = await _visible_row(request, ctx, s, request.path_params["subnetpool_id"])
    return c.show_response(request, RESOURCE, hide(request, ctx, item))


async def update_subnetpool(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    values = await c.parse_update(request, RESOURCE)
    pool_id = request.path_params["subnetpool_id"]
    async with st.db.write() as s:
        row, item = await _visible_row(request, ctx, s, pool_id)
        c.check_if_match(request, row.revision_number)
        c.enforce(request, ctx, "update_subnetpool", target({**item, **values}), values)
        await svc.update(st, s, row, values)
        await s.flush()
        out = await svc.show(s, pool_id)
    return c.show_response(request, RESOURCE, hide(request, ctx, out))


async def delete_subnetpool(request: Request) -> Response:
    ctx = await c.context(request)
    st = c.state(request)
    pool_id = request.path_params["subnetpool_id"]
    async with st.db.write() as s:
        row, item = await _visible_row(request, ctx, s, pool_id)
        c.check_if_match(request, row.revision_number)
        c.enforce(request, ctx, "delete_subnetpool", target(item))
        await svc.delete(st, s, row)
    return no_content()


routes = [
    Route("/v2.0/subnetpools", list_subnetpools, methods=["GET"]),
    Route("/v2.0/subnetpools", create_subnetpool, methods=["POST"]),
    Route("/v2.0/subnetpools/{subnetpool_id}", show_subnetpool, methods=["GET"]),
    Route("/v2.0/subnetpools/{subnetpool_id}", update_subnetpool, methods=["PUT"]),
    Route("/v2.0/subnetpools/{subnetpool_id}", delete_subnetpool, methods=["DELETE"]),
]
