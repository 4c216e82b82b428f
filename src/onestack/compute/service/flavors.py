"""Flavors, their extra specs and access lists.

Who sees a flavor: everyone a public one; a private one only admins and the
projects on its access list. Lists for non-admins show public flavors and the
private ones their project may use (and never disabled ones); admins choose with
``is_public`` (true: public and their project's, false: private only, none: all).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import delete, false, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.compute import errors
from onestack.compute.models import Flavor, FlavorExtraSpec, FlavorProject, Marker, utcnow
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest, Conflict, NotFound

log = logging.getLogger("onestack.compute")

# devstack's flavors (ids "1".."5", 42 and 84 as devstack and Tempest use them):
# (id, name, ram MB, disk GB, vcpus)
DEFAULT_FLAVORS = (
    ("1", "m1.tiny", 512, 1, 1),
    ("2", "m1.small", 2048, 20, 1),
    ("3", "m1.medium", 4096, 40, 2),
    ("4", "m1.large", 8192, 80, 4),
    ("5", "m1.xlarge", 16384, 160, 8),
    ("42", "m1.nano", 128, 1, 1),
    ("84", "m1.micro", 192, 1, 1),
)

SORT_KEYS = (
    "created_at", "description", "disabled", "ephemeral_gb", "flavorid", "id",
    "is_public", "memory_mb", "name", "root_gb", "rxtx_factor", "swap",
    "updated_at", "vcpu_weight", "vcpus",
)


@dataclass
class FlavorView:
    """A flavor with its extra specs (loaded when the caller may see them)."""

    flavor: Flavor
    extra_specs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Viewer:
    """Who asks: their project and whether they are an admin."""

    project_id: str | None
    is_admin: bool


def _accessible(project_id: str | None) -> Any:
    return Flavor.id.in_(
        select(FlavorProject.flavor_id).where(FlavorProject.project_id == (project_id or ""))
    )


async def ensure_default_flavors(st: ComputeState) -> None:
    """Create the default flavors once per cloud (a marker row remembers it)."""
    if not st.conf.default_flavors:
        return
    async with st.db.write() as s:
        if await s.get(Marker, "default_flavors") is not None:
            return
        taken = {(r.flavorid, r.name) for r in (await s.execute(select(Flavor))).scalars()}
        ids = {t[0] for t in taken}
        names = {t[1] for t in taken}
        for fid, name, ram, disk, vcpus in DEFAULT_FLAVORS:
            if fid in ids or name in names:
                continue
            s.add(Flavor(flavorid=fid, name=name, memory_mb=ram, root_gb=disk, vcpus=vcpus,
                         ephemeral_gb=0, swap=0, rxtx_factor=1.0, is_public=True,
                         disabled=False))
        s.add(Marker(name="default_flavors"))


async def _extra_specs(s: AsyncSession, flavor_ids: list[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {i: {} for i in flavor_ids}
    if not flavor_ids:
        return out
    rows = await s.execute(select(FlavorExtraSpec).where(FlavorExtraSpec.flavor_id.in_(flavor_ids))
                           .order_by(FlavorExtraSpec.key))
    for spec in rows.scalars():
        out[spec.flavor_id][spec.key] = spec.value
    return out


async def list_flavors(
    st: ComputeState, viewer: Viewer, *, is_public: bool | None, min_ram: int | None,
    min_disk: int | None, sort_key: str, sort_dir: str, with_specs: bool,
) -> list[FlavorView]:
    """Every flavor the viewer may list with these filters, sorted by ``sort_key``
    then the internal id (in ``sort_dir``)."""
    q = select(Flavor)
    if not viewer.is_admin:
        q = q.where(Flavor.disabled == false(),
                    or_(Flavor.is_public == true(), _accessible(viewer.project_id)))
    elif is_public is True:
        q = q.where(or_(Flavor.is_public == true(), _accessible(viewer.project_id)))
    elif is_public is False:
        q = q.where(Flavor.is_public == false())
    if min_ram is not None:
        q = q.where(Flavor.memory_mb >= min_ram)
    if min_disk is not None:
        q = q.where(Flavor.root_gb >= min_disk)
    column = getattr(Flavor, sort_key)
    if sort_dir == "desc":
        q = q.order_by(column.desc(), Flavor.id.desc())
    else:
        q = q.order_by(column.asc(), Flavor.id.asc())
    async with st.db.read() as s:
        flavors = list((await s.execute(q)).scalars())
        specs = await _extra_specs(s, [f.id for f in flavors]) if with_specs else {}
    return [FlavorView(f, specs.get(f.id, {})) for f in flavors]


async def _find(s: AsyncSession, flavorid: str, viewer: Viewer) -> Flavor:
    q = select(Flavor).where(Flavor.flavorid == flavorid)
    if not viewer.is_admin:
        q = q.where(or_(Flavor.is_public == true(), _accessible(viewer.project_id)))
    flavor = (await s.execute(q)).scalar_one_or_none()
    if flavor is None:
        raise errors.flavor_not_found(flavorid)
    return flavor


async def get_flavor(st: ComputeState, flavorid: str, viewer: Viewer, *,
                     with_specs: bool = False) -> FlavorView:
    """Raises: NotFound (also for a private flavor the viewer may not use)."""
    async with st.db.read() as s:
        flavor = await _find(s, flavorid, viewer)
        specs = (await _extra_specs(s, [flavor.id]))[flavor.id] if with_specs else {}
    return FlavorView(flavor, specs)


async def create_flavor(st: ComputeState, values: dict[str, Any]) -> FlavorView:
    """Create a flavor; ``values`` are checked already (``flavorid`` may be None:
    a UUID is generated).

    Raises:
        Conflict: the name or the id is taken.
    """
    flavorid = values.pop("flavorid", None) or str(uuid.uuid4())
    name = values["name"].strip()
    async with st.db.write() as s:
        if (await s.execute(select(Flavor.id).where(Flavor.name == name))).first():
            raise Conflict(f"Flavor with name {name} already exists.")
        if (await s.execute(select(Flavor.id).where(Flavor.flavorid == flavorid))).first():
            raise Conflict(f"Flavor with ID {flavorid} already exists.")
        flavor = Flavor(**{**values, "name": name, "flavorid": flavorid, "disabled": False})
        s.add(flavor)
        try:
            await s.flush()
        except IntegrityError:  # a concurrent create on another host won the race
            raise Conflict(f"Flavor with name {name} or ID {flavorid} already exists.") from None
    return FlavorView(flavor, {})


async def update_description(st: ComputeState, flavorid: str, description: str | None,
                             viewer: Viewer, *, with_specs: bool) -> FlavorView:
    async with st.db.write() as s:
        flavor = await _find(s, flavorid, viewer)
        flavor.description = description
        flavor.updated_at = utcnow()
        specs = (await _extra_specs(s, [flavor.id]))[flavor.id] if with_specs else {}
    return FlavorView(flavor, specs)


async def delete_flavor(st: ComputeState, flavorid: str) -> None:
    """Delete a flavor with its extra specs and access list (hard delete).

    Raises:
        NotFound.
    """
    async with st.db.write() as s:
        row = (await s.execute(select(Flavor.id).where(Flavor.flavorid == flavorid))).first()
        if row is None:
            raise errors.flavor_not_found(flavorid)
        # explicit rather than relying on ON DELETE CASCADE being enforced
        await s.execute(delete(FlavorExtraSpec).where(FlavorExtraSpec.flavor_id == row[0]))
        await s.execute(delete(FlavorProject).where(FlavorProject.flavor_id == row[0]))
        await s.execute(delete(Flavor).where(Flavor.id == row[0]))


# -- extra specs ---------------------------------------------------------------------


async def get_extra_specs(st: ComputeState, flavorid: str, viewer: Viewer) -> dict[str, str]:
    return (await get_flavor(st, flavorid, viewer, with_specs=True)).extra_specs


async def set_extra_specs(st: ComputeState, flavorid: str, specs: dict[str, str],
                          viewer: Viewer) -> None:
    """Add or replace the given keys (the others stay)."""
    async with st.db.write() as s:
        flavor = await _find(s, flavorid, viewer)
        rows = await s.execute(select(FlavorExtraSpec).where(
            FlavorExtraSpec.flavor_id == flavor.id, FlavorExtraSpec.key.in_(list(specs))))
        existing = {r.key: r for r in rows.scalars()}
        for key, value in specs.items():
            if key in existing:
                existing[key].value = value
            else:
                s.add(FlavorExtraSpec(flavor_id=flavor.id, key=key, value=value))
        flavor.updated_at = utcnow()
        try:
            await s.flush()
        except IntegrityError:
            raise Conflict(f"Flavor {flavorid} extra specs could not be updated or "
                           "created after trying again.") from None


def spec_not_found(flavorid: str, key: str) -> NotFound:
    return NotFound(f"Flavor {flavorid} has no extra specs with key {key}.")


async def delete_extra_spec(st: ComputeState, flavorid: str, key: str, viewer: Viewer) -> None:
    async with st.db.write() as s:
        flavor = await _find(s, flavorid, viewer)
        result = await s.execute(delete(FlavorExtraSpec).where(
            FlavorExtraSpec.flavor_id == flavor.id, FlavorExtraSpec.key == key))
        if not result.rowcount:  # type: ignore[attr-defined]
            raise spec_not_found(flavorid, key)


# -- access lists --------------------------------------------------------------------


def access_list(flavor: Flavor, projects: list[str]) -> dict[str, Any]:
    return {"flavor_access": [{"flavor_id": flavor.flavorid, "tenant_id": p} for p in projects]}


async def _projects(s: AsyncSession, flavor: Flavor) -> list[str]:
    rows = await s.execute(select(FlavorProject.project_id)
                           .where(FlavorProject.flavor_id == flavor.id)
                           .order_by(FlavorProject.id))
    return list(rows.scalars())


async def list_access(st: ComputeState, flavorid: str, viewer: Viewer) -> dict[str, Any]:
    async with st.db.read() as s:
        flavor = await _find(s, flavorid, viewer)
        if flavor.is_public:
            raise NotFound("Access list not available for public flavors.")
        return access_list(flavor, await _projects(s, flavor))


async def verify_project(st: ComputeState, token: str, project_id: str) -> None:
    """Ask the identity service whether the project exists, with the caller's token
    as Nova does; only a definite 404 refuses (no answer or a 403 is no proof).

    Raises:
        BadRequest: the identity service does not know the project.
    """
    if st.http is None:
        return
    try:
        r = await st.http.get(f"{st.identity_path}/projects/{project_id}",
                              headers={"X-Auth-Token": token})
    except httpx.HTTPError:  # the check is best effort, as in Nova
        log.warning("could not verify project %s with the identity service", project_id)
        return
    if r.status_code == 404:
        raise BadRequest(f"Project ID {project_id} is not a valid project.")


async def add_access(st: ComputeState, flavorid: str, project_id: str, viewer: Viewer, *,
                     refuse_public: bool) -> dict[str, Any]:
    async with st.db.write() as s:
        flavor = await _find(s, flavorid, viewer)
        if refuse_public and flavor.is_public:
            raise Conflict("Can not add access to a public flavor.")
        exists = (await s.execute(select(FlavorProject.id).where(
            FlavorProject.flavor_id == flavor.id, FlavorProject.project_id == project_id))).first()
        message = (f"Flavor access already exists for flavor {flavorid} and project "
                   f"{project_id} combination.")
        if exists:
            raise Conflict(message)
        s.add(FlavorProject(flavor_id=flavor.id, project_id=project_id))
        try:
            await s.flush()
        except IntegrityError:
            raise Conflict(message) from None
        return access_list(flavor, await _projects(s, flavor))


async def remove_access(st: ComputeState, flavorid: str, project_id: str,
                        viewer: Viewer) -> dict[str, Any]:
    async with st.db.write() as s:
        flavor = await _find(s, flavorid, viewer)
        result = await s.execute(delete(FlavorProject).where(
            FlavorProject.flavor_id == flavor.id, FlavorProject.project_id == project_id))
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"Flavor access not found for {flavorid} / {project_id} "
                           "combination.")
        return access_list(flavor, await _projects(s, flavor))
