"""First start: the default domain, roles, admin and demo users, region, catalog,
and the ``service`` project with one user per service (``glance``, ``nova`` ...).

Idempotent: every later start runs it again, creating what is missing and
re-pointing the catalog's endpoints at the current URL (the port may change);
nothing that an operator changed is overwritten, and no password is reset, except
a service user's: the services authenticate with the passwords in
``DATA_DIR/secrets/service-users``, so that file is the source of truth for them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.service import CatalogEntry
from onestack.identity.models import (
    DEFAULT_DOMAIN,
    NULL_DOMAIN,
    ROOT_DOMAIN,
    Assignment,
    Endpoint,
    ImpliedRole,
    Password,
    Project,
    Region,
    Role,
    Service,
    User,
)
from onestack.identity.state import IdentityState

INTERFACES = ("public", "internal", "admin")
ADMIN_PROJECT = "admin"
DEMO_PROJECT = "demo"
ADMIN_USER = "admin"
DEMO_USER = "demo"
SERVICE_PROJECT = "service"
# what devstack grants a service user on the service project: "service" for the
# service-to-service policies, "admin" to read any project's limits
SERVICE_USER_ROLES = ("service", "admin")
# admin implies manager implies member implies reader, as keystone-manage
# bootstrap makes them since 2024.2; the older admin -> member rule it deletes
# (admin still implies member, through manager)
ROLES = ("admin", "manager", "member", "reader", "service")
IMPLIES = (("admin", "manager"), ("manager", "member"), ("member", "reader"))
REPLACED_IMPLIES: tuple[tuple[str, str], ...] = (("admin", "member"),)


@dataclass(frozen=True)
class Credentials:
    admin_password: str
    demo_password: str


def load_or_create_credentials(path: Path) -> Credentials:
    """Passwords kept in ``DATA_DIR/secrets/passwords`` (mode 0600), generated once."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        values = dict(
            line.split("=", 1) for line in path.read_text().splitlines() if "=" in line
        )
        return Credentials(values["admin"], values["demo"])
    creds = Credentials(secrets.token_urlsafe(18), secrets.token_urlsafe(18))
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(f"admin={creds.admin_password}\ndemo={creds.demo_password}\n")
    tmp.replace(path)
    return creds


def _read_secrets(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _write_secrets(path: Path, values: Mapping[str, str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    tmp.touch(mode=0o600)
    tmp.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    tmp.replace(path)


def load_or_create_service_passwords(path: Path, usernames: Iterable[str]) -> dict[str, str]:
    """Service users' passwords, kept in ``DATA_DIR/secrets/service-users`` (mode
    0600, ``name=password`` lines); a name not in the file yet gets a generated
    password. Returns every requested name's password."""
    usernames = list(usernames)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    values = _read_secrets(path) if path.exists() else {}
    missing = [name for name in usernames if name not in values]
    for name in missing:
        values[name] = secrets.token_urlsafe(24)
    if missing or not path.exists():
        _write_secrets(path, values)
    return {name: values[name] for name in usernames}


async def _get_or_add(session: AsyncSession, obj: object, **where: object) -> object:
    model = type(obj)
    found = await session.scalar(select(model).filter_by(**where))
    if found is None:
        session.add(obj)
        await session.flush()
        return obj
    return found


async def _user(
    st: IdentityState, session: AsyncSession, name: str, password: str, project_id: str
) -> User:
    user = await session.scalar(
        select(User).where(User.domain_id == DEFAULT_DOMAIN, User.name == name)
    )
    if user is None:
        user = User(name=name, domain_id=DEFAULT_DOMAIN, default_project_id=project_id)
        session.add(user)
        await session.flush()
        session.add(Password(user_id=user.id, hash=await st.hasher.hash(password)))
    return user


async def _grant(session: AsyncSession, kind: str, actor: str, target: str, role: str) -> None:
    await _get_or_add(
        session,
        Assignment(type=kind, actor_id=actor, target_id=target, role_id=role, inherited=False),
        type=kind, actor_id=actor, target_id=target, role_id=role, inherited=False,
    )


async def _service_user(
    st: IdentityState, session: AsyncSession, name: str, password: str, project_id: str
) -> User:
    """A service user whose current password is ``password`` (reset if it is not)."""
    user = await _user(st, session, name, password, project_id)
    current = await session.scalar(
        select(Password.hash).where(Password.user_id == user.id)
        .order_by(Password.id.desc()).limit(1)
    )
    if current is None or not await st.hasher.verify(current, password):
        session.add(Password(user_id=user.id, hash=await st.hasher.hash(password)))
    return user


async def bootstrap(
    st: IdentityState,
    creds: Credentials,
    catalog: list[tuple[str, CatalogEntry]],
    service_users: Mapping[str, str] | None = None,
) -> None:
    """Make sure the cloud's fixed identity objects exist. ``catalog`` pairs each
    entry with its URL; ``service_users`` maps each service user's name to its
    password (``load_or_create_service_passwords``)."""
    region = st.settings.region
    async with st.write() as session:
        await _get_or_add(
            session,
            Project(
                id=DEFAULT_DOMAIN, name="Default", domain_id=ROOT_DOMAIN, is_domain=True,
                description="The default domain", extra={},
            ),
            id=DEFAULT_DOMAIN,
        )
        roles: dict[str, Role] = {}
        for name in ROLES:
            roles[name] = await _get_or_add(  # type: ignore[assignment]
                session, Role(name=name, domain_id=NULL_DOMAIN), name=name, domain_id=NULL_DOMAIN
            )
        # a cloud bootstrapped before the manager role gets it now, and loses the
        # admin -> member rule then (once: an operator may add it back)
        had_manager = await session.scalar(select(ImpliedRole).filter_by(
            prior_role_id=roles["admin"].id, implied_role_id=roles["manager"].id))
        for prior, implied in IMPLIES:
            await _get_or_add(
                session,
                ImpliedRole(prior_role_id=roles[prior].id, implied_role_id=roles[implied].id),
                prior_role_id=roles[prior].id, implied_role_id=roles[implied].id,
            )
        for prior, implied in () if had_manager else REPLACED_IMPLIES:
            old = await session.scalar(select(ImpliedRole).filter_by(
                prior_role_id=roles[prior].id, implied_role_id=roles[implied].id))
            if old is not None:
                await session.delete(old)
        projects: dict[str, Project] = {}
        for name, desc in ((ADMIN_PROJECT, "Bootstrap project for the cloud's administrators"),
                           (DEMO_PROJECT, "A project for a first user"),
                           (SERVICE_PROJECT, "The services' own users")):
            projects[name] = await _get_or_add(  # type: ignore[assignment]
                session,
                Project(name=name, domain_id=DEFAULT_DOMAIN, parent_id=DEFAULT_DOMAIN,
                        description=desc, extra={}),
                name=name, domain_id=DEFAULT_DOMAIN,
            )
        admin = await _user(st, session, ADMIN_USER, creds.admin_password, projects[ADMIN_PROJECT].id)
        demo = await _user(st, session, DEMO_USER, creds.demo_password, projects[DEMO_PROJECT].id)
        await _grant(session, "UserProject", admin.id, projects[ADMIN_PROJECT].id, roles["admin"].id)
        await _grant(session, "UserSystem", admin.id, "system", roles["admin"].id)
        await _grant(session, "UserProject", demo.id, projects[DEMO_PROJECT].id, roles["member"].id)
        service_project = projects[SERVICE_PROJECT].id
        for name, password in (service_users or {}).items():
            user = await _service_user(st, session, name, password, service_project)
            for role in SERVICE_USER_ROLES:
                await _grant(session, "UserProject", user.id, service_project, roles[role].id)
        await _get_or_add(session, Region(id=region, description=""), id=region)
        for url, entry in catalog:
            svc = await session.scalar(select(Service).where(Service.type == entry.service_type))
            if svc is None:
                svc = Service(type=entry.service_type, extra={"name": entry.name})
                session.add(svc)
                await session.flush()
            for interface in INTERFACES:
                ep = await session.scalar(
                    select(Endpoint).where(
                        Endpoint.service_id == svc.id,
                        Endpoint.interface == interface,
                        Endpoint.region_id == region,
                    )
                )
                if ep is None:
                    session.add(Endpoint(service_id=svc.id, interface=interface, url=url,
                                         region_id=region, extra={}))
                elif ep.extra.get("managed_by_onestack", True) and ep.url != url:
                    ep.url = url
