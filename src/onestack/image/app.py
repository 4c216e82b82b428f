"""The image service's ASGI app and its ``ServiceSpec``."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute

from onestack.core.app import build_service_app
from onestack.core.clients.identity import LimitsClient
from onestack.core.errors import ServiceUnavailable
from onestack.core.service import CatalogEntry, Runtime, ServiceSpec
from onestack.core.tasks import TaskRunner
from onestack.core.types import ASGIApp
from onestack.image import errors, policies
from onestack.image.api import data, images, imports, info, members, metadefs, schemas, versions
from onestack.image.models import Job
from onestack.image.service import data as data_svc
from onestack.image.service import imports as imports_svc
from onestack.image.state import ImageState
from onestack.image.stores.base import Store
from onestack.image.stores.filesystem import FilesystemStore

STAGING_STORE = "os_glance_staging_store"


def routes() -> list[BaseRoute]:
    return [
        *versions.routes,
        *info.routes,
        *images.routes,
        *data.routes,
        *members.routes,
        *imports.routes,
        *metadefs.routes,
        *schemas.routes,
    ]


def make_state(runtime: Runtime) -> ImageState:
    s = runtime.settings
    enforcer = runtime.enforcer(policies.DEFAULTS)
    if runtime.validator is None:
        raise ServiceUnavailable("the image service needs the identity service's token validator")
    stores: dict[str, Store] = {
        name: FilesystemStore(
            name, s.path("images" if name == "file" else f"images-{name}"),
            f"Images on the local filesystem ({name})",
        )
        for name in s.image.file_stores
    }
    if s.image.default_store not in stores:
        raise ValueError(f"image.default_store {s.image.default_store!r} is not among the "
                         f"stores {sorted(stores)}")
    staging_dir = s.path("image-staging")
    staging = FilesystemStore(STAGING_STORE, staging_dir, "Data staged for import")
    st = ImageState(
        settings=s, db=runtime.db, enforcer=enforcer, validator=runtime.validator,
        stores=stores, staging=staging, holder=data_svc.new_holder(),
    )
    st.extras["staging_location"] = lambda image_id: "file://" + str(staging_dir / image_id)
    st.jobs = TaskRunner(runtime.db, Job, {
        "import": lambda h: imports_svc.run(st, h),
        "delete_data": lambda h: imports_svc.delete_data_job(st, h),
        "task_import": lambda h: imports_svc.run_task_import(st, h),
    })
    return st


async def build(runtime: Runtime) -> ASGIApp:
    st = make_state(runtime)
    await data_svc.recover(st)
    if runtime.http is not None and "image" in runtime.service_users:
        st.limits = LimitsClient(runtime.service_session("image"))
    runtime.on_startup(st.jobs.start)
    runtime.on_shutdown(st.jobs.stop)
    runtime.extras["image"] = st
    app = build_service_app(routes(), errors.render)
    app.state.image = st
    return app


SERVICE = ServiceSpec(
    service_type="image",
    prefix="/image",
    migrations=Path(__file__).parent / "migrations" / "versions",
    catalog=(CatalogEntry("image", "glance"),),
    build=build,
)
