"""Wire format of domains and projects: request bodies (after Keystone's
resource schema), list queries with Keystone's filters, and collection bodies.

Attributes a client sends beyond the documented ones are kept (``extra``) and
returned, as Keystone does; ``options`` only knows ``immutable``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    StringConstraints,
    field_validator,
)
from sqlalchemy import Select
from starlette.requests import Request

from onestack.core.errors import BadRequest
from onestack.core.http import query_bool
from onestack.identity.filters import COMPARATORS, string_matches

T = TypeVar("T")

ProjectName = Annotated[StrictStr, StringConstraints(min_length=1, max_length=64, pattern=r"\S")]
IdString = Annotated[
    StrictStr, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9-]+$")
]
Tag = Annotated[StrictStr, StringConstraints(min_length=1, max_length=255, pattern=r"^[^,/]*$")]
MAX_TAGS = 80

# what a project or domain has besides extra; a client's copy of these is never
# stored in extra
RESERVED = frozenset({
    "id", "name", "domain_id", "parent_id", "is_domain", "enabled", "description",
    "tags", "options", "links", "parents", "subtree", "explicit_domain_id",
})


def normalize_key(key: str) -> str:
    """Keystone stores ``a:b`` and ``a-b`` attribute names as ``a_b``."""
    return key.replace(":", "_").replace("-", "_")


def check_tags(tags: list[str] | None) -> list[str] | None:
    if tags is not None and len(set(tags)) != len(tags):
        raise ValueError("tags must be unique")
    return tags


class ProjectOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    immutable: StrictBool | None = None


class _Fields(BaseModel):
    model_config = ConfigDict(extra="allow")

    description: StrictStr | None = None
    enabled: StrictBool = True
    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS)
    options: ProjectOptions | None = None

    _check_tags = field_validator("tags")(check_tags)

    def fields(self) -> dict[str, Any]:
        """The documented attributes the client named."""
        out: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if isinstance(value, BaseModel):
                value = {k: getattr(value, k) for k in value.model_fields_set}
            out[name] = value
        return out

    def extra(self) -> dict[str, Any]:
        """Undocumented attributes, stored in ``extra``."""
        items = (self.model_extra or {}).items()
        return {normalize_key(k): v for k, v in items if normalize_key(k) not in RESERVED}


class ProjectCreate(_Fields):
    name: ProjectName
    domain_id: IdString | None = None
    parent_id: IdString | None = None
    is_domain: StrictBool = False


class ProjectUpdate(_Fields):
    name: ProjectName | None = None
    domain_id: StrictStr | None = None
    parent_id: StrictStr | None = None
    is_domain: StrictBool | None = None
    id: Any = None


class DomainCreate(_Fields):
    name: ProjectName
    description: Annotated[StrictStr, StringConstraints(max_length=255)] | None = None
    explicit_domain_id: IdString | None = None

    @field_validator("explicit_domain_id")
    @classmethod
    def _uuid_hex(cls, value: str | None) -> str | None:
        # as Keystone: an explicit id must look like one it would generate
        if value is not None and (len(value) != 32 or value.strip("0123456789abcdef")):
            raise BadRequest("Domain ID does not conform to required UUID format.")
        return value


class DomainUpdate(_Fields):
    name: ProjectName | None = None
    description: Annotated[StrictStr, StringConstraints(max_length=255)] | None = None
    id: Any = None


class ProjectCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: ProjectCreate


class ProjectUpdateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: ProjectUpdate


class DomainCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    domain: DomainCreate


class DomainUpdateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    domain: DomainUpdate


class TagsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: list[Tag] = Field(max_length=MAX_TAGS)

    _check_tags = field_validator("tags")(check_tags)


def merge_options(extra: dict[str, Any], options: dict[str, Any] | None) -> dict[str, Any]:
    """``extra`` with ``options`` merged in: a null option is removed."""
    out = dict(extra)
    if options is None:
        return out
    current = dict(out.get("options") or {})
    for key, value in options.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    out["options"] = current
    return out


def require_some(body: Any, root: str) -> None:
    """Keystone refuses an update that names no attribute."""
    if isinstance(body, dict) and isinstance(body.get(root), dict) and not body[root]:
        raise BadRequest(f"Invalid input for field '{root}': {{}} does not have enough properties")


def check_tag(tag: str) -> str:
    """A single tag from a URL, validated as a body's tags are."""
    if not tag or len(tag) > 255 or "," in tag or "/" in tag:
        raise BadRequest(
            f"Invalid input for field 'tag': {tag!r} must be 1 to 255 characters "
            "without ',' or '/'"
        )
    return tag


# -- list queries ------------------------------------------------------------------


def _tag_values(raw: str | None) -> list[str] | None:
    return None if raw is None else [t for t in raw.split(",") if t]


def tag_filter(params: dict[str, str]) -> Any:
    """A predicate over a project's tag list for Keystone's ``tags``,
    ``tags-any``, ``not-tags`` and ``not-tags-any`` queries (comma-separated)."""
    all_of = _tag_values(params.get("tags"))
    any_of = _tag_values(params.get("tags-any"))
    not_all = _tag_values(params.get("not-tags"))
    not_any = _tag_values(params.get("not-tags-any"))

    def keep(tags: list[str]) -> bool:
        have = set(tags)
        if all_of is not None and not set(all_of) <= have:
            return False
        if any_of is not None and not have & set(any_of):
            return False
        if not_all is not None and set(not_all) <= have:
            return False
        return not (not_any is not None and have & set(not_any))

    return keep


@dataclass
class ListQuery:
    """A list request's query: exact filters, Keystone's inexact ones
    (``name__contains``, ``name__istartswith`` ...), ``marker`` and ``limit``."""

    items: list[tuple[str, str]]

    @classmethod
    def of(cls, request: Request) -> ListQuery:
        return cls(list(request.query_params.multi_items()))

    def get(self, name: str) -> str | None:
        values = [v for k, v in self.items if k == name]
        return values[-1] if values else None

    def flag(self, name: str) -> bool | None:
        return query_bool(self.get(name))

    def apply(
        self, stmt: Select[Any], model: Any, exact: Sequence[str], flags: Sequence[str] = ()
    ) -> Select[Any]:
        """``stmt`` narrowed by the exact string and boolean filters."""
        for key, value in self.items:
            if key in exact:
                stmt = stmt.where(getattr(model, key) == value)
            elif key in flags:
                stmt = stmt.where(getattr(model, key).is_(bool(query_bool(value))))
        return stmt

    def matches(self, obj: Any, names: Sequence[str]) -> bool:
        """Whether ``obj`` passes the inexact filters on ``names``."""
        for key, needle in self.items:
            base, _, comparator = key.partition("__")
            if not comparator or base not in names:
                continue
            if comparator.removeprefix("i") not in COMPARATORS:
                continue
            if not string_matches(getattr(obj, base, None), comparator, needle):
                return False
        return True

    def page(
        self, found: list[T], list_limit: int | None, key: Callable[[T], str]
    ) -> tuple[list[T], bool]:
        """One page: after ``marker`` (by id) and at most ``limit`` (or the
        configured list limit); true when more were left out."""
        marker, raw = self.get("marker"), self.get("limit")
        limit = list_limit
        if raw is not None:
            try:
                limit = int(raw)
            except ValueError:
                raise BadRequest(f"Invalid input for field 'limit': {raw!r}") from None
            if limit < 0:
                raise BadRequest("Invalid input for field 'limit': must not be negative")
            limit = min(limit, list_limit) if list_limit else limit
        if marker is not None or raw is not None:
            found = sorted(found, key=key)
            if marker is not None:
                found = [x for x in found if key(x) > marker]
        if limit is not None and len(found) > limit:
            return found[:limit], True
        return found, False


def collection(
    request: Request, name: str, members: list[dict[str, Any]], truncated: bool
) -> dict[str, Any]:
    """``{name: [...], "links": {...}}``, with Keystone's ``truncated`` and a
    ``next`` link when a page was cut short."""
    links: dict[str, Any] = {"self": str(request.url), "previous": None, "next": None}
    body: dict[str, Any] = {name: members, "links": links}
    if truncated:
        body["truncated"] = True
        if members:
            args = [(k, v) for k, v in request.query_params.multi_items() if k != "marker"]
            args.append(("marker", members[-1]["id"]))
            links["next"] = f"{request.url.replace(query='')}?{urlencode(args)}"
    return body
