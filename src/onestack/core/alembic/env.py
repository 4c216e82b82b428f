"""Alembic environment: the connection is handed in by onestack.core.migrate."""

from typing import Any

from alembic import context
from sqlalchemy.types import TypeDecorator


def render_item(kind: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migrations must not import models (models change, migrations don't):
    # render a TypeDecorator as the plain type it stores.
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl.__class__.__name__}()"
    return False


attrs = context.config.attributes
connection = attrs["connection"]
context.configure(
    connection=connection,
    target_metadata=attrs.get("target_metadata"),
    render_item=render_item,
    render_as_batch=connection.dialect.name == "sqlite",
    version_table=attrs.get("version_table", "alembic_version"),
)
with context.begin_transaction():
    context.run_migrations()
