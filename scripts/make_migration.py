"""Generate an Alembic revision for one service from its models (autogenerate).

    python scripts/make_migration.py identity "add foo"
    python scripts/make_migration.py identity initial --replace 0001

--replace REV rewrites an existing revision file in place (only for a revision that
has never been released, such as the first one while a service is being built).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import tempfile
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata  # noqa: F401  (import check)

from onestack.core import migrate
from onestack.core.db import Database


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("service")
    ap.add_argument("message")
    ap.add_argument("--replace", help="revision id to regenerate in place")
    args = ap.parse_args()
    pkg = importlib.import_module(f"onestack.{args.service}")
    models = importlib.import_module(f"onestack.{args.service}.models")
    versions = Path(pkg.__file__).parent / "migrations" / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    existing = sorted(versions.glob("*.py"))
    if args.replace:
        for f in existing:
            if f.name.startswith(args.replace):
                f.unlink()
        existing = sorted(versions.glob("*.py"))
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/gen.db")
        if existing:
            await migrate.upgrade(db, [versions])
        cfg = migrate.alembic_config([versions], db.url)

        def gen(conn):  # type: ignore[no-untyped-def]
            cfg.attributes["connection"] = conn
            cfg.attributes["target_metadata"] = models.Base.metadata
            # Revision ids are global across branches, so they carry the service's
            # name (identity's first revision predates this and stays "0001").
            rev = args.replace or f"{args.service}_{len(existing) + 1:04d}"
            command.revision(
                cfg,
                message=args.message,
                autogenerate=True,
                rev_id=rev,
                version_path=str(versions),
                branch_label=None if existing else args.service,
                head=f"{args.service}@head" if existing else "base",
            )

        async with db.engine.begin() as conn:
            await conn.run_sync(gen)
        await db.close()


asyncio.run(main())
