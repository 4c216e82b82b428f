"""Nova's quotas: limits per project and per user in a project, quota classes
(``default`` sets every project's defaults), and what is counted against them.

The project limits and defaults of the resources that have a unified-limit name
(``UNIFIED``: instances, cores, ram, metadata items, key pairs, server groups
and their members) live in the identity service, as with Nova's
UnifiedLimitsDriver: the compute service's registered limits are the defaults,
a project's limits override them. os-quota-sets and the ``default`` quota class
read and write them there (``UnifiedLimits``, as the compute service user);
compute registers the missing ones at startup from ``[compute] quota_*``. A
resource whose registered limit has gone is unlimited, except ``servers``,
which is then 0 (Nova's ``require`` strategy for its default resource list).
Per-user limits, other quota classes and the quotas without a unified-limit
name (injected files, the networking proxies) stay in ``compute_quotas`` and
``compute_quota_classes``.

A limit resolves as Nova's drivers do: a user's own row, else the project's
limit, else the default (the registered limit, or for the others the
``default`` class's row, else ``[compute] quota_*``; the deprecated networking
quotas keep Nova's old defaults). ``-1`` is unlimited. Counted resources:
instances, cores and ram (non-deleted servers), server groups; key pairs are
counted per user when one is created, group members per group when a server
joins, and both show ``in_use`` 0 as in Nova. When the identity service cannot
be asked, quota reads and checks fail with a 503 rather than guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.compute.models import Instance, Quota, QuotaClass, ServerGroup, utcnow
from onestack.compute.service import external
from onestack.compute.state import ComputeState
from onestack.core.errors import BadRequest, ServiceUnavailable

log = logging.getLogger("onestack.compute.quotas")

DEFAULT_CLASS = "default"
# Nova's quota resources, in its order
RESOURCES = (
    "cores", "fixed_ips", "floating_ips", "injected_file_content_bytes",
    "injected_file_path_bytes", "injected_files", "instances", "key_pairs",
    "metadata_items", "ram", "security_group_rules", "security_groups",
    "server_group_members", "server_groups",
)
# what microversions hide (os-quota-sets from 2.36 and 2.57)
NETWORK_QUOTAS = ("fixed_ips", "floating_ips", "security_group_rules", "security_groups")
INJECTED_QUOTAS = ("injected_files", "injected_file_content_bytes", "injected_file_path_bytes")
# counted in the usage views (the others show in_use 0, as Nova)
COUNTED = ("instances", "cores", "ram", "server_groups")
# Nova's quota names -> its unified limit resource names (service type compute)
UNIFIED = {
    "instances": "servers", "cores": "class:VCPU", "ram": "class:MEMORY_MB",
    "metadata_items": "server_metadata_items", "key_pairs": "server_key_pairs",
    "server_groups": "server_groups", "server_group_members": "server_group_members",
}
NOVA_NAME = {v: k for k, v in UNIFIED.items()}
# a resource with no registered limit: unlimited, except these (Nova's default
# unified_limits_resource_list, with its "require" strategy)
REQUIRED = ("instances",)
# A request reads the limits it needs from the identity service (``prefetch``)
# before it opens a database session, reusing an answer at most FRESH seconds
# old; what it then reads in its sessions comes from that cache (an answer up to
# STALE seconds old), so no session waits on the identity service, which needs
# the database too.
FRESH = 2.0
STALE = 120.0
RETRY_EVERY = 5.0  # seconds between tries to register the limits at startup


def config_defaults(st: ComputeState) -> dict[str, int]:
    conf = st.conf
    return {
        "cores": conf.quota_cores, "instances": conf.quota_instances, "ram": conf.quota_ram,
        "key_pairs": conf.quota_key_pairs, "metadata_items": conf.quota_metadata_items,
        "injected_files": conf.quota_injected_files,
        "injected_file_content_bytes": conf.quota_injected_file_content_bytes,
        "injected_file_path_bytes": 255,
        "server_groups": conf.quota_server_groups,
        "server_group_members": conf.quota_server_group_members,
        # nova-network's quotas, still reported before 2.36 with Nova's defaults
        "fixed_ips": -1, "floating_ips": 10, "security_groups": 10, "security_group_rules": 20,
    }


# -- the identity service's unified limits ------------------------------------------

@dataclass(frozen=True)
class Entry:
    """A registered limit or a project limit as compute uses it."""

    id: str
    value: int


class UnifiedLimits:
    """The compute service's registered limits and projects' limits in the identity
    service, read and written as the compute service user (an admin there). Reads
    are cached (see ``FRESH`` and ``STALE``: quota checks sit on every create),
    shared by concurrent callers, and forgotten when compute writes.

    Every method raises ``ServiceUnavailable`` (503) when the identity service
    cannot be reached or answers unexpectedly: quotas are never guessed.
    """

    def __init__(self, st: ComputeState):
        self.st = st
        self._service_id: str | None = None
        self._cache: dict[str, tuple[float, dict[str, Entry]]] = {}
        self._flights: dict[str, asyncio.Future[dict[str, Entry]]] = {}
        self._generation = 0

    # -- HTTP ---------------------------------------------------------------------

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    json: Any = None, ok: tuple[int, ...] = (200,)) -> httpx.Response:
        """One identity API call with the service token (renewed once after a 401).

        Raises:
            ServiceUnavailable: no answer, or a status not in ``ok`` (404 is left to
                callers that list it).
        """
        if self.st.http is None:
            raise ServiceUnavailable("The compute service cannot reach the identity "
                                     "service for its quota limits.")
        url = self.st.identity_path.rstrip("/") + path
        for retry in (False, True):
            headers = await external.service_headers(self.st)
            try:
                r = await self.st.http.request(method, url, params=params, json=json,
                                               headers=headers)
            except httpx.HTTPError as exc:
                raise ServiceUnavailable("The identity service cannot be reached for the "
                                         "quota limits.") from exc
            if r.status_code == 401 and not retry and self.st.session is not None:
                self.st.session.invalidate()
                continue
            if r.status_code not in ok:
                raise ServiceUnavailable(f"The identity service answered {r.status_code} to "
                                         f"{method} {path} for the quota limits.")
            return r
        raise AssertionError("unreachable")

    async def service_id(self) -> str:
        if self._service_id is None:
            r = await self._call("GET", "/services", params={"type": "compute"})
            found = [x["id"] for x in r.json().get("services", [])]
            if not found:
                raise ServiceUnavailable("The identity service has no compute service to "
                                         "hold the quota limits.")
            self._service_id = min(found)
        return self._service_id

    def _pick(self, items: list[dict[str, Any]], field: str) -> dict[str, Entry]:
        """Nova name -> the entry that applies: one for this region over one for no
        region over any other."""
        region = self.st.settings.region
        rank = {region: 0, None: 1}
        best: dict[str, tuple[int, Entry]] = {}
        for item in items:
            name = NOVA_NAME.get(item.get("resource_name", ""))
            if name is None or item.get(field) is None:
                continue
            r = rank.get(item.get("region_id"), 2)
            if name not in best or r < best[name][0]:
                best[name] = (r, Entry(item["id"], int(item[field])))
        return {k: v for k, (_, v) in best.items()}

    async def _cached(self, key: str, max_age: float, path: str, params: dict[str, str],
                      collection: str, field: str) -> dict[str, Entry]:
        """The cached answer if younger than ``max_age``, else one GET (shared by
        the concurrent callers that miss)."""
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < max_age:
            return hit[1]
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._fetch(key, path, params, collection, field))
            self._flights[key] = flight
            flight.add_done_callback(lambda f: f.cancelled() or f.exception())
        return await asyncio.shield(flight)

    async def _fetch(self, key: str, path: str, params: dict[str, str], collection: str,
                     field: str) -> dict[str, Entry]:
        generation, started = self._generation, time.monotonic()
        try:
            r = await self._call("GET", path, params=params)
        finally:
            if self._generation == generation:
                self._flights.pop(key, None)
        value = self._pick(r.json().get(collection, []), field)
        if self._generation == generation:  # nothing was written meanwhile
            if len(self._cache) > 5000:
                self._cache.clear()
            self._cache[key] = (started, value)
        return value

    # -- reads --------------------------------------------------------------------

    async def registered(self, max_age: float = FRESH) -> dict[str, Entry]:
        """Nova name -> the compute service's registered limit for it."""
        sid = await self.service_id()
        return await self._cached("", max_age, "/registered_limits", {"service_id": sid},
                                  "registered_limits", "default_limit")

    async def project(self, project_id: str, max_age: float = FRESH) -> dict[str, Entry]:
        """Nova name -> the project's own limit for it."""
        sid = await self.service_id()
        return await self._cached("p:" + project_id, max_age, "/limits",
                                  {"service_id": sid, "project_id": project_id},
                                  "limits", "resource_limit")

    async def defaults(self, max_age: float = FRESH) -> dict[str, int]:
        """The registered limits, with Nova's values for what has none."""
        reg = await self.registered(max_age)
        return {k: reg[k].value if k in reg else (0 if k in REQUIRED else -1)
                for k in UNIFIED}

    def forget(self, project_id: str | None = None) -> None:
        """Drop what was read (and what is being read): one project's limits, or
        everything."""
        self._generation += 1
        self._flights.clear()
        if project_id is None:
            self._cache.clear()
        else:
            self._cache.pop("p:" + project_id, None)

    # -- writes -------------------------------------------------------------------

    async def ensure(self, defaults: dict[str, int]) -> list[str]:
        """Register what the compute service has no registered limit for, with
        ``defaults``; the Nova names registered."""
        self.forget()
        reg = await self.registered()
        sid = await self.service_id()
        missing = [k for k in UNIFIED if k not in reg]
        if missing:
            await self._call("POST", "/registered_limits", ok=(201,), json={
                "registered_limits": [{"service_id": sid, "resource_name": UNIFIED[k],
                                       "default_limit": defaults[k]} for k in missing]})
            self.forget()
        return missing

    async def set_defaults(self, values: dict[str, int]) -> None:
        """Change the registered limits (``values`` by Nova name). Keystone refuses
        to change a registered limit that projects' limits depend on: those are
        taken away for the change and put back after it."""
        values = {k: v for k, v in values.items() if k in UNIFIED}
        if not values:
            return
        self.forget()
        reg = await self.registered()
        sid = await self.service_id()
        new = [k for k in values if k not in reg]
        try:
            if new:
                await self._call("POST", "/registered_limits", ok=(201,), json={
                    "registered_limits": [{"service_id": sid, "resource_name": UNIFIED[k],
                                           "default_limit": values[k]} for k in new]})
            for k, value in values.items():
                if k in reg and reg[k].value != value:
                    await self._set_registered(sid, reg[k].id, k, value)
        finally:
            self.forget()

    async def _set_registered(self, sid: str, rl_id: str, name: str, value: int) -> None:
        body = {"registered_limit": {"default_limit": value}}
        r = await self._call("PATCH", f"/registered_limits/{rl_id}", json=body,
                             ok=(200, 403))
        if r.status_code == 200:
            return
        # projects' limits depend on it: lift them out, change it, put them back
        r = await self._call("GET", "/limits", params={"service_id": sid,
                                                       "resource_name": UNIFIED[name]})
        held = r.json().get("limits", [])
        for item in held:
            await self._call("DELETE", f"/limits/{item['id']}", ok=(204, 404))
        try:
            await self._call("PATCH", f"/registered_limits/{rl_id}", json=body)
        finally:
            keep = ("project_id", "domain_id", "service_id", "region_id",
                    "resource_name", "resource_limit", "description")
            for item in held:  # one by one: a project deleted meanwhile loses only its own
                r = await self._call("POST", "/limits", ok=(201, 400, 409), json={"limits": [
                    {k: item[k] for k in keep if item.get(k) is not None}]})
                if r.status_code != 201:
                    log.warning("could not put back the limit %s (%s)", item, r.text[:200])

    async def set_project(self, project_id: str, values: dict[str, int]) -> None:
        """Create or change a project's limits (``values`` by Nova name)."""
        values = {k: v for k, v in values.items() if k in UNIFIED}
        if not values:
            return
        self.forget(project_id)
        own = await self.project(project_id)
        sid = await self.service_id()
        reg = await self.registered()
        try:
            if any(k not in reg for k in values if k not in own):
                await self.ensure(config_defaults(self.st))
            new = [k for k in values if k not in own]
            if new:
                await self._call("POST", "/limits", ok=(201,), json={"limits": [
                    {"project_id": project_id, "service_id": sid,
                     "resource_name": UNIFIED[k], "resource_limit": values[k]} for k in new]})
            for k, value in values.items():
                if k in own and own[k].value != value:
                    await self._call("PATCH", f"/limits/{own[k].id}",
                                     json={"limit": {"resource_limit": value}})
        finally:
            self.forget(project_id)

    async def drop_project(self, project_id: str) -> None:
        """Remove a project's limits (back to the registered limits)."""
        self.forget(project_id)
        try:
            for entry in (await self.project(project_id)).values():
                await self._call("DELETE", f"/limits/{entry.id}", ok=(204, 404))
        finally:
            self.forget(project_id)


def unified(st: ComputeState) -> UnifiedLimits:
    """The compute service's ``UnifiedLimits`` (one per service)."""
    ul: UnifiedLimits | None = st.extras.get("unified_limits")
    if ul is None:
        ul = st.extras["unified_limits"] = UnifiedLimits(st)
    return ul


async def prefetch(st: ComputeState, project_id: str | None = None) -> None:
    """Read the defaults (and ``project_id``'s limits) from the identity service
    unless read less than ``FRESH`` seconds ago: call it before opening the
    database sessions whose quota reads need them.

    Raises:
        ServiceUnavailable: the identity service cannot be asked.
    """
    ul = unified(st)
    await ul.registered()
    if project_id:
        await ul.project(project_id)


async def register_limits(st: ComputeState) -> None:
    """At startup: register the compute service's missing registered limits (from
    the ``default`` class rows over ``[compute] quota_*``) and move any project
    limits of these resources still in ``compute_quotas`` to the identity service.
    If the identity service does not answer yet, keep trying in the background."""
    try:
        await _register(st)
        return
    except ServiceUnavailable as exc:
        log.warning("cannot register the compute quota limits yet (%s); retrying", exc)

    async def retry() -> None:
        while True:
            await asyncio.sleep(RETRY_EVERY)
            try:
                await _register(st)
                return
            except ServiceUnavailable as exc:
                log.warning("cannot register the compute quota limits yet (%s)", exc)

    st.extras["unified_limits_task"] = asyncio.create_task(retry(), name="quota-limits")


async def stop_registering(st: ComputeState) -> None:
    task: asyncio.Task[None] | None = st.extras.pop("unified_limits_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _register(st: ComputeState) -> None:
    async with st.db.read() as s:
        rows = await s.execute(select(QuotaClass.resource, QuotaClass.hard_limit).where(
            QuotaClass.class_name == DEFAULT_CLASS, QuotaClass.resource.in_(UNIFIED)))
        defaults = config_defaults(st) | {r: v for r, v in rows}
        legacy = list(await s.execute(select(Quota.project_id, Quota.resource,
                                             Quota.hard_limit).where(
            Quota.user_id == "", Quota.resource.in_(UNIFIED))))
    ul = unified(st)
    added = await ul.ensure(defaults)
    if added:
        log.info("registered the compute quota limits %s",
                 ", ".join(UNIFIED[k] for k in added))
    by_project: dict[str, dict[str, int]] = {}
    for project_id, resource, limit in legacy:
        by_project.setdefault(project_id, {})[resource] = limit
    moved = []
    for project_id, values in by_project.items():
        try:
            own = await ul.project(project_id)
            await ul.set_project(project_id,
                                 {k: v for k, v in values.items() if k not in own})
            moved.append(project_id)
        except ServiceUnavailable as exc:  # a project the identity service lost
            log.warning("project %s keeps its old compute quotas (%s)", project_id, exc)
    async with st.db.write() as s:
        await s.execute(delete(QuotaClass).where(QuotaClass.class_name == DEFAULT_CLASS,
                                                 QuotaClass.resource.in_(UNIFIED)))
        if moved:
            await s.execute(delete(Quota).where(Quota.user_id == "",
                                                Quota.project_id.in_(moved),
                                                Quota.resource.in_(UNIFIED)))


async def class_limits(s: AsyncSession, st: ComputeState,
                       class_name: str = DEFAULT_CLASS) -> dict[str, int]:
    """A quota class's limits: its rows over the defaults (the registered limits,
    and ``default``'s rows over the settings for the others)."""
    out = config_defaults(st)
    names = [DEFAULT_CLASS] if class_name == DEFAULT_CLASS else [DEFAULT_CLASS, class_name]
    rows = list(await s.execute(select(QuotaClass.class_name, QuotaClass.resource,
                                       QuotaClass.hard_limit)
                                .where(QuotaClass.class_name.in_(names))))
    for name, resource, limit in rows:
        if name == DEFAULT_CLASS and resource in out and resource not in UNIFIED:
            out[resource] = limit
    out.update(await unified(st).defaults(STALE))
    for name, resource, limit in rows:  # another class over default
        if name != DEFAULT_CLASS and resource in out:
            out[resource] = limit
    return out


async def _rows(s: AsyncSession, project_id: str, user_id: str) -> dict[str, int]:
    rows = await s.execute(select(Quota.resource, Quota.hard_limit).where(
        Quota.project_id == project_id, Quota.user_id == user_id))
    return {r: v for r, v in rows}


async def project_limits(s: AsyncSession, st: ComputeState, project_id: str) -> dict[str, int]:
    """The project's limits: its own (limits in the identity service for the
    unified resources, rows for the others), else the defaults."""
    out = await class_limits(s, st)
    out.update({k: v for k, v in (await _rows(s, project_id, "")).items()
                if k in out and k not in UNIFIED})
    own = await unified(st).project(project_id, STALE)
    out.update({k: e.value for k, e in own.items()})
    return out


async def user_limits(s: AsyncSession, st: ComputeState, project_id: str,
                      user_id: str) -> dict[str, int]:
    """A user's limits in a project: the user's rows, else the project's limits."""
    out = await project_limits(s, st, project_id)
    out.update({k: v for k, v in (await _rows(s, project_id, user_id)).items() if k in out})
    return out


async def has_user_limits(s: AsyncSession, project_id: str, user_id: str) -> bool:
    return bool(await _rows(s, project_id, user_id))


async def usage(s: AsyncSession, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """What is counted against the project's (or one of its users') quota."""
    i, g = Instance, ServerGroup
    q = select(func.count(i.id), func.coalesce(func.sum(i.vcpus), 0),
               func.coalesce(func.sum(i.memory_mb), 0)).where(
        i.project_id == project_id, i.deleted.is_(False))
    gq = select(func.count(g.id)).where(g.project_id == project_id)
    if user_id is not None:
        q = q.where(i.user_id == user_id)
        gq = gq.where(g.user_id == user_id)
    row = (await s.execute(q)).one()
    groups = int(await s.scalar(gq) or 0)
    out = dict.fromkeys(RESOURCES, 0)
    out.update({"instances": int(row[0]), "cores": int(row[1]), "ram": int(row[2]),
                "server_groups": groups})
    return out


async def server_checks(s: AsyncSession, st: ComputeState, project_id: str,
                        user_id: str) -> list[tuple[dict[str, int], dict[str, int]]]:
    """The (used, allowed) pairs a new server must fit in: the project's, and the
    user's when the user has limits of their own (Nova checks both)."""
    checks = [(await usage(s, project_id), await project_limits(s, st, project_id))]
    if await has_user_limits(s, project_id, user_id):
        checks.append((await usage(s, project_id, user_id),
                       await user_limits(s, st, project_id, user_id)))
    return checks


def within(used: int, delta: int, limit: int) -> bool:
    return limit < 0 or used + delta <= limit


async def effective_limit(s: AsyncSession, st: ComputeState, project_id: str | None,
                          user_id: str | None, resource: str) -> int:
    """The limit that applies to a user in a project (the defaults without one)."""
    if project_id is None:
        return (await class_limits(s, st))[resource]
    if user_id is None:
        return (await project_limits(s, st, project_id))[resource]
    return (await user_limits(s, st, project_id, user_id))[resource]


# -- the API's views and changes -----------------------------------------------------

@dataclass
class Detail:
    limit: int
    in_use: int
    reserved: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"in_use": self.in_use, "limit": self.limit, "reserved": self.reserved}


async def get(st: ComputeState, project_id: str, user_id: str | None = None) -> dict[str, int]:
    await prefetch(st, project_id)
    async with st.db.read() as s:
        if user_id:
            return await user_limits(s, st, project_id, user_id)
        return await project_limits(s, st, project_id)


async def detail(st: ComputeState, project_id: str,
                 user_id: str | None = None) -> dict[str, Detail]:
    await prefetch(st, project_id)
    async with st.db.read() as s:
        if user_id:
            limits = await user_limits(s, st, project_id, user_id)
        else:
            limits = await project_limits(s, st, project_id)
        used = await usage(s, project_id, user_id or None)
    return {k: Detail(limits[k], used[k] if k in COUNTED else 0) for k in RESOURCES}


async def defaults(st: ComputeState) -> dict[str, int]:
    await prefetch(st)
    async with st.db.read() as s:
        return await class_limits(s, st)


def _inf(v: int) -> float:
    return float("inf") if v == -1 else v


async def _settable(s: AsyncSession, st: ComputeState, project_id: str,
                    user_id: str | None) -> dict[str, tuple[int, int]]:
    """(minimum, maximum) per resource, as Nova's ``get_settable_quotas``: a project's
    limit cannot go below what it uses nor below what its users' own limits add up
    to; a user's cannot go below what the user uses nor above what the project has
    left for its users (plus the user's current limit)."""
    project = await project_limits(s, st, project_id)
    rows = await s.execute(select(Quota.user_id, Quota.resource, Quota.hard_limit).where(
        Quota.project_id == project_id, Quota.user_id != ""))
    users_sum: dict[str, int] = {}
    own: dict[str, int] = {}
    for uid, resource, limit in rows:
        if limit > 0:
            users_sum[resource] = users_sum.get(resource, 0) + limit
        if uid == user_id:
            own[resource] = limit
    used = await usage(s, project_id, user_id)
    out: dict[str, tuple[int, int]] = {}
    for k in RESOURCES:
        in_use = used[k] if k in COUNTED else 0
        if user_id is None:
            out[k] = (max(users_sum.get(k, 0), in_use), -1)
            continue
        if project[k] == -1:
            out[k] = (in_use, -1)
            continue
        mine = own.get(k, 0)
        remains = project[k] - users_sum.get(k, 0) + max(mine, 0)
        out[k] = (in_use, max(remains, 0))
    return out


async def update(st: ComputeState, project_id: str, user_id: str | None,
                 values: dict[str, int], force: bool) -> dict[str, int]:
    """Set limits (all checked before any is written); the limits after. A
    project's limits on the unified resources go to the identity service, the
    rest (and a user's) to ``compute_quotas``.

    Raises:
        BadRequest: a limit below what is used (or its users' limits), or above
            what the project leaves a user, unless ``force``.
        ServiceUnavailable: the identity service cannot be asked.
    """
    uid = user_id or ""
    # read the limits before the write transaction: the identity service's
    # answers must not be awaited while the database's writer is held
    ul = unified(st)
    ul.forget(project_id)
    await prefetch(st, project_id)
    if not force:
        async with st.db.read() as s:
            settable = await _settable(s, st, project_id, user_id)
        for key, value in values.items():
            minimum, maximum = settable[key]
            if _inf(value) < _inf(minimum):
                raise BadRequest(f"Quota limit {value} for {key} must be greater than "
                                 f"or equal to already used and reserved {minimum}.")
            if _inf(value) > _inf(maximum):
                raise BadRequest(f"Quota limit {value} for {key} must be less than "
                                 f"or equal to {maximum}.")
    remote = {k: v for k, v in values.items() if k in UNIFIED and not user_id}
    local = {k: v for k, v in values.items() if k not in remote}
    await ul.set_project(project_id, remote)
    await prefetch(st, project_id)
    async with st.db.write() as s:
        existing = {q.resource: q for q in await s.scalars(select(Quota).where(
            Quota.project_id == project_id, Quota.user_id == uid))}
        for key, value in local.items():
            row = existing.get(key)
            if row is None:
                s.add(Quota(project_id=project_id, user_id=uid, resource=key,
                            hard_limit=value))
            else:
                row.hard_limit, row.updated_at = value, utcnow()
        await s.flush()
        if user_id:
            return await user_limits(s, st, project_id, user_id)
        return await project_limits(s, st, project_id)


async def revert(st: ComputeState, project_id: str, user_id: str | None) -> None:
    """Drop a user's limits, or a project's and all its users' (back to defaults;
    the project's limits in the identity service too)."""
    if not user_id:
        await unified(st).drop_project(project_id)
    async with st.db.write() as s:
        q = delete(Quota).where(Quota.project_id == project_id)
        if user_id:
            q = q.where(Quota.user_id == user_id)
        await s.execute(q)


async def update_class(st: ComputeState, class_name: str,
                       values: dict[str, int]) -> dict[str, int]:
    """Set a quota class's limits; the ``default`` class's on the unified
    resources are the registered limits in the identity service."""
    ul = unified(st)
    remote = {k: v for k, v in values.items()
              if k in UNIFIED and class_name == DEFAULT_CLASS}
    local = {k: v for k, v in values.items() if k not in remote}
    await ul.set_defaults(remote)
    await prefetch(st)
    async with st.db.write() as s:
        existing = {q.resource: q for q in await s.scalars(select(QuotaClass).where(
            QuotaClass.class_name == class_name))}
        for key, value in local.items():
            row = existing.get(key)
            if row is None:
                s.add(QuotaClass(class_name=class_name, resource=key, hard_limit=value))
            else:
                row.hard_limit, row.updated_at = value, utcnow()
        await s.flush()
        return await class_limits(s, st, class_name)


def visible(values: dict[str, Any], hidden: tuple[str, ...]) -> dict[str, Any]:
    """Nova's resources in its order, without what the microversion hides."""
    return {k: values[k] for k in RESOURCES if k in values and k not in hidden}
