"""The identity service's ASGI app and its ``ServiceSpec``."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Route

from onestack.core.app import build_service_app
from onestack.core.service import CatalogEntry, Runtime, ServiceSpec
from onestack.core.types import ASGIApp
from onestack.identity import errors, policies
from onestack.identity.api import (
    application_credentials,
    auth,
    credentials,
    domains,
    endpoints,
    grants,
    groups,
    limits,
    projects,
    regions,
    role_assignments,
    roles,
    services,
    users,
    versions,
)
from onestack.identity.api import (
    policies as policy_blobs,
)
from onestack.identity.fernet import KeyRepository, TokenFormatter
from onestack.identity.passwords import Hasher
from onestack.identity.service.tokens import TokenProvider
from onestack.identity.state import IdentityState

V3_MODULES = (
    auth,
    domains,
    projects,
    users,
    groups,
    roles,
    grants,
    role_assignments,
    regions,
    services,
    endpoints,
    credentials,
    application_credentials,
    limits,
    policy_blobs,
)


def v3_routes() -> list[BaseRoute]:
    out: list[BaseRoute] = []
    for module in V3_MODULES:
        for r in module.routes:
            assert isinstance(r, Route)
            out.append(Route("/v3" + r.path, r.endpoint, methods=r.methods, name=r.name))
    return out


def make_state(runtime: Runtime) -> IdentityState:
    s = runtime.settings
    enforcer = runtime.enforcer(policies.DEFAULTS)
    keys = KeyRepository(s.path("fernet-keys"), s.identity.max_active_keys)
    keys.ensure()
    cred_keys = KeyRepository(s.path("credential-keys"), s.identity.max_active_keys)
    cred_keys.ensure()
    st = IdentityState(
        settings=s,
        db=runtime.db,
        enforcer=enforcer,
        hasher=Hasher(
            time_cost=s.identity.password_time_cost,
            memory_cost_kib=s.identity.password_memory_cost_kib,
        ),
        keys=keys,
        formatter=TokenFormatter(keys),
        credential_keys=cred_keys,
    )
    st.tokens = TokenProvider(st)
    return st


async def build(runtime: Runtime) -> ASGIApp:
    st = make_state(runtime)
    runtime.extras["identity"] = st
    runtime.validator = st.tokens
    app = build_service_app([*versions.routes, *v3_routes()], errors.render)
    app.state.identity = st
    return app


SERVICE = ServiceSpec(
    service_type="identity",
    prefix="/identity",
    migrations=Path(__file__).parent / "migrations" / "versions",
    catalog=(CatalogEntry("identity", "keystone"),),
    build=build,
)
