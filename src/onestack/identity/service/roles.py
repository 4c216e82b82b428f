"""Roles and implied roles (role inference rules), as Keystone's role manager.

A role is global (``domain_id`` is the ``NULL_DOMAIN`` sentinel) or specific to
a domain. The ``immutable`` option protects a role from updates and deletion
until it is cleared. Deleting a role deletes its assignments, its inference
rules and, as Keystone does, the application credentials of users who held it
on a project. Cycles of inference rules are allowed (Keystone does not refuse
them; expanding them stops at roles already seen).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onestack.core.errors import BadRequest, Forbidden, NotFound
from onestack.identity.errors import conflict, not_found
from onestack.identity.filters import string_matches
from onestack.identity.models import (
    NULL_DOMAIN,
    ApplicationCredential,
    Assignment,
    ImpliedRole,
    Project,
    Role,
    new_id,
)
from onestack.identity.schemas.roles import RoleCreate, RoleUpdate

# Keystone's [assignment] prohibited_implied_role default
PROHIBITED_IMPLIED_ROLES = ("admin",)
STRING_FILTERS = ("contains", "icontains", "startswith", "istartswith", "endswith", "iendswith")


def is_domain_role(role: Role) -> bool:
    return role.domain_id != NULL_DOMAIN


def is_immutable(role: Role) -> bool:
    return bool((role.options or {}).get("immutable"))


async def get_role(session: AsyncSession, role_id: str) -> Role:
    """The role, or ``NotFound`` as Keystone words it."""
    role = await session.get(Role, role_id)
    if role is None:
        raise not_found("role", role_id)
    return role


async def find_role(session: AsyncSession, role_id: str) -> Role | None:
    return await session.get(Role, role_id)


async def list_roles(
    session: AsyncSession, *, domain_id: str | None, filters: dict[str, str]
) -> list[Role]:
    """Global roles, or a domain's roles when ``domain_id`` is given; ``filters``
    maps ``name`` or ``name__<op>`` (Keystone's string comparators) to values."""
    q = select(Role).where(Role.domain_id == (domain_id or NULL_DOMAIN))
    if "name" in filters:
        q = q.where(Role.name == filters["name"])
    roles = list(await session.scalars(q.order_by(Role.name, Role.id)))
    for op in STRING_FILTERS:
        if (wanted := filters.get(f"name__{op}")) is not None:
            roles = [r for r in roles if string_matches(r.name, op, wanted)]
    return roles


async def _check_name_free(
    session: AsyncSession, name: str, domain_id: str, exclude: str | None = None
) -> None:
    q = select(Role.id).where(Role.name == name, Role.domain_id == domain_id)
    if exclude:
        q = q.where(Role.id != exclude)
    if await session.scalar(q) is not None:
        raise _duplicate(name, domain_id)


def _duplicate(name: str, domain_id: str) -> Exception:
    detail = f"Duplicate entry found with name {name}"
    if domain_id != NULL_DOMAIN:
        detail += f" at domain ID {domain_id}"
    return conflict("role", detail)


async def _flush(session: AsyncSession, name: str, domain_id: str) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise _duplicate(name, domain_id) from None


async def create_role(session: AsyncSession, data: RoleCreate) -> Role:
    """A new role.

    Raises:
        NotFound: ``domain_id`` names no domain.
        Conflict: the name is taken in that domain (or among global roles).
    """
    domain_id = data.domain_id or NULL_DOMAIN
    if data.domain_id:
        domain = await session.get(Project, data.domain_id)
        if domain is None or not domain.is_domain:
            raise not_found("domain", data.domain_id)
    await _check_name_free(session, data.name, domain_id)
    options = {k: v for k, v in data.options.given().items() if v is not None}
    extra = {k.replace(":", "_").replace("-", "_"): v for k, v in data.extra_attributes().items()}
    role = Role(
        id=new_id(),
        name=data.name,
        domain_id=domain_id,
        description=data.description,
        options=options,
        extra=extra,
    )
    session.add(role)
    await _flush(session, data.name, domain_id)
    return role


async def update_role(session: AsyncSession, role: Role, data: RoleUpdate) -> Role:
    """Apply a PATCH to ``role``.

    Raises:
        BadRequest: an empty update, a changed id or domain_id, a null name.
        Forbidden: the role is immutable and the update is not only clearing that.
        Conflict: the new name is taken.
    """
    given = data.model_fields_set | set(data.model_extra or {})
    if not given:
        raise BadRequest("Invalid input for field 'role': {} does not have enough properties")
    if "id" in given and data.id is not None and data.id != role.id:
        raise BadRequest("Cannot change ID")
    if "name" in given and data.name is None:
        raise BadRequest("Invalid input for field 'role/name': None is not of type 'string'")
    if is_immutable(role):
        opts = data.options.given() if "options" in given else {}
        if len(given) > 1 or "immutable" not in opts or opts["immutable"] not in (False, None):
            raise Forbidden(
                f"Unable to update immutable role resource: `{role.id}. "
                'Set resource option "immutable" to false first.'
            )
    if "domain_id" in given and (data.domain_id or NULL_DOMAIN) != role.domain_id:
        raise BadRequest("Update of `domain_id` is not allowed.")
    if data.name is not None and data.name != role.name:
        await _check_name_free(session, data.name, role.domain_id, exclude=role.id)
        role.name = data.name
    if "description" in given:
        role.description = data.description
    if "options" in given:
        options = dict(role.options or {})
        for key, value in data.options.given().items():
            if value is None:
                options.pop(key, None)
            else:
                options[key] = value
        role.options = options
    extra = data.extra_attributes()
    if extra:
        role.extra = {**(role.extra or {}), **extra}
    await _flush(session, role.name, role.domain_id)
    return role


async def delete_role(session: AsyncSession, role: Role) -> None:
    """Delete ``role`` with its assignments and inference rules.

    Raises:
        Forbidden: the role is immutable.
    """
    if is_immutable(role):
        raise Forbidden(
            f"Unable to delete immutable role resource: `{role.id}. "
            'Set resource option "immutable" to false first.'
        )
    holders = await session.execute(
        select(Assignment.actor_id, Assignment.target_id).where(
            Assignment.role_id == role.id, Assignment.type == "UserProject"
        )
    )
    for user_id, project_id in holders.all():
        await session.execute(
            delete(ApplicationCredential).where(
                ApplicationCredential.user_id == user_id,
                ApplicationCredential.project_id == project_id,
            )
        )
    await session.execute(delete(Assignment).where(Assignment.role_id == role.id))
    await session.execute(
        delete(ImpliedRole).where(
            (ImpliedRole.prior_role_id == role.id) | (ImpliedRole.implied_role_id == role.id)
        )
    )
    await session.delete(role)


# -- implied roles ------------------------------------------------------------


@dataclass(frozen=True)
class Inference:
    prior: Role
    implies: list[Role]


async def _pair(session: AsyncSession, prior_id: str, implied_id: str) -> tuple[Role, Role]:
    return await get_role(session, prior_id), await get_role(session, implied_id)


async def _rule(session: AsyncSession, prior_id: str, implied_id: str) -> ImpliedRole | None:
    return await session.get(ImpliedRole, (prior_id, implied_id))


async def create_implied_role(session: AsyncSession, prior_id: str, implied_id: str) -> Inference:
    """Make ``prior`` imply ``implied``.

    Raises:
        NotFound: a role is missing.
        Forbidden: ``implied`` may not be implied (``admin``, or a domain-specific
            role implied by a global one).
        Conflict: the rule exists.
    """
    prior, implied = await _pair(session, prior_id, implied_id)
    if implied.name in PROHIBITED_IMPLIED_ROLES or (
        not is_domain_role(prior) and is_domain_role(implied)
    ):
        raise Forbidden(f"{implied.id} cannot be an implied roles.")
    if await _rule(session, prior.id, implied.id) is not None:
        raise conflict("implied_role", "Duplicate entry")
    session.add(ImpliedRole(prior_role_id=prior.id, implied_role_id=implied.id))
    try:
        await session.flush()
    except IntegrityError:
        raise conflict("implied_role", "Duplicate entry") from None
    return Inference(prior, [implied])


async def get_implied_role(session: AsyncSession, prior_id: str, implied_id: str) -> Inference:
    """The rule ``prior`` implies ``implied``.

    Raises:
        NotFound: a role is missing, or ``prior`` does not imply ``implied``.
    """
    prior, implied = await _pair(session, prior_id, implied_id)
    if await _rule(session, prior.id, implied.id) is None:
        raise NotFound(f"{prior.id} does not imply {implied.id}.")
    return Inference(prior, [implied])


async def delete_implied_role(session: AsyncSession, prior_id: str, implied_id: str) -> None:
    rule = await _rule(session, prior_id, implied_id)
    if rule is None:
        await _pair(session, prior_id, implied_id)
        raise NotFound(f"{prior_id} does not imply {implied_id}.")
    await session.delete(rule)


async def list_implied_roles(session: AsyncSession, prior_id: str) -> Inference:
    """What ``prior`` implies directly."""
    prior = await get_role(session, prior_id)
    implied = await session.scalars(
        select(Role)
        .join(ImpliedRole, ImpliedRole.implied_role_id == Role.id)
        .where(ImpliedRole.prior_role_id == prior.id)
        .order_by(Role.name, Role.id)
    )
    return Inference(prior, list(implied))


async def list_inferences(session: AsyncSession) -> list[Inference]:
    """Every rule, grouped by prior role."""
    rules = list(await session.scalars(select(ImpliedRole)))
    ids = {r.prior_role_id for r in rules} | {r.implied_role_id for r in rules}
    roles: dict[str, Role] = (
        {r.id: r for r in await session.scalars(select(Role).where(Role.id.in_(ids)))}
        if ids
        else {}
    )
    grouped: dict[str, list[Role]] = {}
    for rule in rules:
        grouped.setdefault(rule.prior_role_id, []).append(roles[rule.implied_role_id])
    out = [
        Inference(roles[pid], sorted(implied, key=lambda r: (r.name, r.id)))
        for pid, implied in grouped.items()
    ]
    return sorted(out, key=lambda i: (i.prior.name, i.prior.id))


def role_dict(role: Role) -> dict[str, Any]:
    """A role's attributes as Keystone shows them (without links)."""
    out: dict[str, Any] = dict(role.extra or {})
    out.update(
        id=role.id,
        name=role.name,
        domain_id=role.domain_id if is_domain_role(role) else None,
        description=role.description,
        options=dict(role.options or {}),
    )
    return out
