"""Schema migrations: Alembic with one version branch per service.

Each service keeps its versions in ``<service>/migrations/versions`` with a
``branch_labels = ("<service>",)`` on its first revision; ``upgrade`` applies the
heads of every branch it is given. The Alembic environment is built in code, so
no alembic.ini has to be found at run time.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from onestack.core.db import Database

ENV_DIR = Path(__file__).parent / "alembic"


def alembic_config(version_dirs: Iterable[Path], url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ENV_DIR))
    cfg.set_main_option("version_locations", " ".join(str(p) for p in version_dirs))
    cfg.set_main_option("path_separator", "space")
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def _upgrade(connection: Connection, cfg: Config) -> None:
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "heads")


async def upgrade(db: Database, version_dirs: Iterable[Path]) -> None:
    """Bring every given branch to its head."""
    cfg = alembic_config(version_dirs, db.url)
    async with db.engine.begin() as conn:
        await conn.run_sync(_upgrade, cfg)
