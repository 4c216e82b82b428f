"""Core machinery seen through HTTP: the token validator other services use,
error rendering, request ids, pagination links."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.app import RequestIdMiddleware, build_service_app
from onestack.core.auth import authenticate
from onestack.core.clients.identity import IdentityTokenValidator
from onestack.core.errors import CloudError, Conflict, Unauthorized
from onestack.core.http import JSONResponse
from onestack.core.pagination import next_link, page_params
from tests.conftest import Cloud


def _render(request: Request, exc: CloudError) -> Response:
    return JSONResponse({"fault": {"code": exc.status_code, "message": exc.message}},
                        status_code=exc.status_code)


def _service(validator: object) -> object:
    async def whoami(request: Request) -> Response:
        ctx = await authenticate(request, validator)  # type: ignore[arg-type]
        return JSONResponse({"user": ctx.auth.user_name, "project": ctx.auth.project_name,  # type: ignore[union-attr]
                             "roles": sorted(ctx.roles)})

    async def boom(request: Request) -> Response:
        raise RuntimeError("bug")

    async def conflict(request: Request) -> Response:
        raise Conflict("it is taken")

    async def items(request: Request) -> Response:
        page = page_params(request, default_limit=2)
        data = [{"id": str(i)} for i in range(10)]
        if page.marker:
            data = data[int(page.marker) + 1:]
        data = data[: page.limit]
        return JSONResponse({"items": data, "links": next_link(request, data, page)})

    return RequestIdMiddleware(build_service_app(
        [Route("/whoami", whoami), Route("/boom", boom), Route("/conflict", conflict),
         Route("/items", items)], _render), access_log=False)


async def test_http_validator_authenticates_another_service(cloud: Cloud) -> None:
    # the identity API reached over an httpx transport, as a service on another host would
    validator = IdentityTokenValidator(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=cloud.client._transport.app),  # type: ignore[attr-defined]
                          base_url="http://onestack.test/identity"),
        service_token=cloud.admin_token,
    )
    svc = httpx.AsyncClient(transport=httpx.ASGITransport(app=_service(validator)), base_url="http://svc")
    r = await svc.get("/whoami", headers={"X-Auth-Token": cloud.demo_token})
    assert r.status_code == 200
    assert r.json() == {"user": "demo", "project": "demo", "roles": ["member", "reader"]}
    assert r.headers["x-openstack-request-id"].startswith("req-")
    r = await svc.get("/whoami", headers={"X-Auth-Token": "nonsense"})
    assert r.status_code == 401 and r.json()["fault"]["code"] == 401
    assert (await svc.get("/whoami")).status_code == 401


async def test_in_process_validator_and_error_rendering(cloud: Cloud) -> None:
    validator = cloud.app.state.runtime.validator
    svc = httpx.AsyncClient(transport=httpx.ASGITransport(app=_service(validator)), base_url="http://svc")
    r = await svc.get("/whoami", headers={"X-Auth-Token": cloud.admin_token})
    assert r.json()["roles"] == ["admin", "manager", "member", "reader"]
    r = await svc.get("/boom")
    assert r.status_code == 500 and "unexpected" in r.json()["fault"]["message"]
    r = await svc.get("/conflict")
    assert r.status_code == 409 and r.json()["fault"]["message"] == "it is taken"
    r = await svc.get("/nothing")
    assert r.status_code == 404 and r.json()["fault"]["code"] == 404
    r = await svc.post("/whoami")
    assert r.status_code == 405


async def test_pagination_links_walk_everything() -> None:
    svc = httpx.AsyncClient(transport=httpx.ASGITransport(app=_service(None)), base_url="http://svc")
    seen, url = [], "/items?limit=3"
    while url:
        body = (await svc.get(url)).json()
        seen += [i["id"] for i in body["items"]]
        url = body["links"][0]["href"].replace("http://svc", "") if body["links"] else ""
    assert seen == [str(i) for i in range(10)]
    assert (await svc.get("/items?limit=-1")).status_code == 400


@pytest.mark.parametrize("token", ["", "x" * 300])
async def test_unauthorized_is_raised_for_missing_or_bad_tokens(cloud: Cloud, token: str) -> None:
    validator = cloud.app.state.runtime.validator
    with pytest.raises(Unauthorized):
        await validator.validate(token)
