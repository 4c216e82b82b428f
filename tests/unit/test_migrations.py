"""Every service's migrations build exactly the schema of its models.

A fresh SQLite database upgraded to a service's head must match the service's
``Base.metadata`` as Alembic's autogenerate sees it: a migration that forgets a
column, an index or a table (or a model changed without a migration) shows up
here as a difference, before it shows up as an error on someone's database.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Connection, MetaData, String, inspect

from onestack.core import migrate
from onestack.core.db import Database
from onestack.core.service import ServiceSpec
from onestack.server import SERVICES


def package(spec: ServiceSpec) -> str:
    """The service's package (``onestack.<name>``), the parent of its migrations."""
    return "onestack." + spec.migrations.parent.parent.name


def target_metadata(spec: ServiceSpec) -> MetaData:
    """The service's models with every table registered: its app (which imports
    every model module, such as the image service's metadefs and the task tables)
    is imported before the metadata is read."""
    importlib.import_module(package(spec) + ".app")
    models = importlib.import_module(package(spec) + ".models")
    return models.Base.metadata  # type: ignore[no-any-return]


def differences(conn: Connection, metadata: MetaData) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                 "compare_server_default": False})
    return [d for d in compare_metadata(ctx, metadata)
            # Alembic's own table is not a model
            if not (d[0] == "remove_table" and d[1].name == "alembic_version")]


def test_every_service_is_checked() -> None:
    names = {package(spec) for spec in SERVICES}
    assert names == {"onestack.identity", "onestack.image", "onestack.object_store",
                     "onestack.network", "onestack.compute"}
    for spec in SERVICES:
        assert list(spec.migrations.glob("*.py")), spec.migrations


@pytest.mark.parametrize("spec", SERVICES, ids=[s.service_type for s in SERVICES])
async def test_head_matches_models(spec: ServiceSpec, tmp_path: Path) -> None:
    metadata = target_metadata(spec)
    assert metadata.tables, f"{package(spec)} has no tables"
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/fresh.db")
    try:
        await migrate.upgrade(db, [spec.migrations])
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            diff = await conn.run_sync(differences, metadata)
    finally:
        await db.engine.dispose()
    # the check is not vacuous: the migrations made the models' tables
    assert set(metadata.tables) <= tables
    assert diff == [], "\n".join(map(repr, diff))


async def test_a_forgotten_column_is_found(tmp_path: Path) -> None:
    """The comparison itself notices a column the migrations did not make."""
    spec = next(s for s in SERVICES if s.service_type == "compute")
    metadata = MetaData(naming_convention=target_metadata(spec).naming_convention)
    for table in target_metadata(spec).tables.values():
        table.to_metadata(metadata)
    metadata.tables["compute_flavors"].append_column(Column("forgotten", String(36)))
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/fresh.db")
    try:
        await migrate.upgrade(db, [spec.migrations])
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(differences, metadata)
    finally:
        await db.engine.dispose()
    assert [(d[0], d[3].name) for d in diff] == [("add_column", "forgotten")], diff
