"""Shared fixtures: a whole OneStack in-process (the ASGI app, real database,
real tokens) and an httpx client wired to it with ASGITransport.

``ONESTACK_TEST_DATABASE_URL`` points the suite at PostgreSQL or MariaDB (a fresh
database per test is created under that server and dropped afterwards); without
it each test gets SQLite in its own temporary data dir.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from onestack.core import config, migrate
from onestack.core.app import RequestIdMiddleware
from onestack.core.db import Database
from onestack.identity import bootstrap
from onestack.server import SERVICES, create_app

BASE = "http://onestack.test"


@dataclass
class Cloud:
    """A running in-process cloud and a client for it."""

    client: httpx.AsyncClient
    settings: config.Settings
    creds: bootstrap.Credentials
    app: Any
    admin_token: str = ""
    demo_token: str = ""

    @property
    def identity(self) -> str:
        return "/identity/v3"

    async def token(
        self,
        user: str,
        password: str,
        *,
        project: str | None = None,
        domain: str | None = None,
        system: bool = False,
        user_domain: str = "default",
    ) -> httpx.Response:
        auth: dict[str, Any] = {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "domain": {"id": user_domain}, "password": password}
                },
            }
        }
        if project:
            auth["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
        elif domain:
            auth["scope"] = {"domain": {"id": domain}}
        elif system:
            auth["scope"] = {"system": {"all": True}}
        return await self.client.post(f"{self.identity}/auth/tokens", json={"auth": auth})

    async def new_project_user(self, role: str = "member") -> tuple[str, str, str]:
        """A new project with a new user holding ``role`` on it (made if missing):
        (project id, user id, project-scoped token)."""
        name = "p-" + uuid.uuid4().hex[:8]
        r = await self.post("/projects", {"project": {"name": name, "domain_id": "default"}})
        assert r.status_code == 201, r.text
        project = r.json()["project"]["id"]
        r = await self.post("/users", {"user": {"name": name, "password": "secret-pass-1",
                                                "domain_id": "default"}})
        assert r.status_code == 201, r.text
        user = r.json()["user"]["id"]
        roles = (await self.get(f"/roles?name={role}")).json()["roles"]
        if not roles:
            r = await self.post("/roles", {"role": {"name": role}})
            assert r.status_code == 201, r.text
            roles = [r.json()["role"]]
        r = await self.put(f"/projects/{project}/users/{user}/roles/{roles[0]['id']}")
        assert r.status_code == 204, r.text
        r = await self.token(name, "secret-pass-1", project=name)
        assert r.status_code == 201, r.text
        return project, user, r.headers["X-Subject-Token"]

    def as_(self, token: str) -> dict[str, str]:
        return {"X-Auth-Token": token}

    async def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return await self.client.get(self.identity + path, headers=self.as_(token or self.admin_token), **kw)

    async def post(self, path: str, body: Any, token: str | None = None, **kw: Any) -> httpx.Response:
        return await self.client.post(self.identity + path, json=body, headers=self.as_(token or self.admin_token), **kw)

    async def patch(self, path: str, body: Any, token: str | None = None) -> httpx.Response:
        return await self.client.patch(self.identity + path, json=body, headers=self.as_(token or self.admin_token))

    async def put(self, path: str, body: Any = None, token: str | None = None) -> httpx.Response:
        kw: dict[str, Any] = {"json": body} if body is not None else {}
        return await self.client.put(self.identity + path, headers=self.as_(token or self.admin_token), **kw)

    async def delete(self, path: str, token: str | None = None) -> httpx.Response:
        return await self.client.delete(self.identity + path, headers=self.as_(token or self.admin_token))

    async def head(self, path: str, token: str | None = None) -> httpx.Response:
        return await self.client.head(self.identity + path, headers=self.as_(token or self.admin_token))


# -- schemas made once per test process ------------------------------------------------
# Every cloud's lifespan brings the database to every service's head; doing it
# from nothing cost each test a second or more (Alembic and a few hundred DDL
# statements). A test's empty database is instead a copy of one migrated once:
# a file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL, and on MariaDB
# (which has no templates) the migrated database's CREATE TABLE statements replayed
# and its rows copied (0.3 s instead of 2.7). The lifespan still runs the
# migrations and finds them at head.

_TEMPLATES: dict[str, str] = {}
_TEMPLATE_DIR = Path(tempfile.mkdtemp(prefix="onestack-schema-"))


async def _migrated(url: str) -> None:
    db = Database(url)
    try:
        await migrate.upgrade(db, [spec.migrations for spec in SERVICES])
    finally:
        await db.engine.dispose()


async def sqlite_template() -> Path:
    """An SQLite file at every service's head (made once per process)."""
    path = _TEMPLATE_DIR / "onestack.db"
    if "sqlite" not in _TEMPLATES:
        await _migrated(f"sqlite+aiosqlite:///{path}")
        with sqlite3.connect(path) as conn:  # everything in the main file, no WAL
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")
        _TEMPLATES["sqlite"] = str(path)
    return path


async def seed_schema(settings: config.Settings) -> None:
    """Give a new SQLite data dir the migrated template's copy."""
    if settings.database_url is not None:
        return
    target = settings.data_dir / "onestack.db"
    if target.exists():
        return
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(await sqlite_template(), target)


def _stale(templates: Any) -> list[str]:
    """Templates of test processes that died before their finalizer (and this
    process's own name, from an earlier process with the same pid)."""
    stale = []
    for name in templates:
        pid = str(name).rsplit("_", 1)[-1]
        if not pid.isdigit() or not Path(f"/proc/{pid}").exists() or int(pid) == os.getpid():
            stale.append(str(name))
    return stale


async def _postgres_template(admin: Any, url: str) -> str:
    """A PostgreSQL database at every service's head to copy (made once per process)."""
    name = _TEMPLATES.get("postgresql")
    if name is None:
        name = f"onestack_tmpl_{os.getpid()}"
        async with admin.connect() as conn:
            rows = await conn.execute(sa.text(
                "SELECT datname FROM pg_database WHERE datname LIKE 'onestack_tmpl_%'"))
            for old in _stale(rows.scalars().all()):
                await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {old} WITH (FORCE)"))
            await conn.execute(sa.text(f"CREATE DATABASE {name}"))
        await _migrated(url.rsplit("/", 1)[0] + "/" + name)
        _TEMPLATES["postgresql"] = name
        _TEMPLATES["postgresql_admin_url"] = url
    return name


@dataclass
class _MariaDBSchema:
    """The migrated schema as statements: each table's CREATE TABLE (as SHOW CREATE
    TABLE gives it, without the database's name) and the tables with rows."""

    template: str
    tables: list[str]
    filled: list[str]


_MARIADB: dict[str, _MariaDBSchema] = {}


async def _mariadb_schema(admin: Any, url: str) -> _MariaDBSchema:
    """Migrate a template database once per process and read its schema back."""
    schema = _MARIADB.get(url)
    if schema is None:
        name = f"onestack_tmpl_{os.getpid()}"
        async with admin.connect() as conn:
            rows = await conn.execute(sa.text("SHOW DATABASES LIKE 'onestack\\_tmpl\\_%'"))
            for old in _stale(rows.scalars().all()):
                await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {old}"))
            await conn.execute(sa.text(f"CREATE DATABASE {name}"))
        try:
            await _migrated(url.rsplit("/", 1)[0] + "/" + name)
            async with admin.connect() as conn:
                names = (await conn.execute(sa.text(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = :db AND table_type = 'BASE TABLE'"), {"db": name}
                )).scalars().all()
                tables, filled = [], []
                for table in names:
                    row = (await conn.execute(sa.text(f"SHOW CREATE TABLE {name}.`{table}`"))).one()
                    tables.append(str(row[1]))
                    if (await conn.execute(sa.text(
                            f"SELECT EXISTS (SELECT 1 FROM {name}.`{table}`)"))).scalar():
                        filled.append(str(table))
        except BaseException:
            async with admin.connect() as conn:
                await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            raise
        schema = _MARIADB[url] = _MariaDBSchema(name, tables, filled)
    return schema


async def _mariadb_copy(conn: Any, schema: _MariaDBSchema, name: str) -> None:
    """Make database ``name`` a copy of the template (foreign keys unchecked while
    the tables come in any order)."""
    await conn.execute(sa.text(f"CREATE DATABASE {name}"))
    await conn.execute(sa.text(f"USE {name}"))
    await conn.execute(sa.text("SET foreign_key_checks = 0"))
    try:
        for ddl in schema.tables:
            await conn.exec_driver_sql(ddl)
        for table in schema.filled:
            await conn.execute(sa.text(
                f"INSERT INTO {name}.`{table}` SELECT * FROM {schema.template}.`{table}`"))
    finally:
        await conn.execute(sa.text("SET foreign_key_checks = 1"))


@pytest.fixture(scope="session", autouse=True)
def _drop_templates() -> Any:
    yield
    shutil.rmtree(_TEMPLATE_DIR, ignore_errors=True)
    name, url = _TEMPLATES.get("postgresql"), _TEMPLATES.get("postgresql_admin_url")
    drops = [(url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")] if name and url else []
    drops += [(u, f"DROP DATABASE IF EXISTS {m.template}") for u, m in _MARIADB.items()]
    if drops:
        import asyncio

        async def drop() -> None:
            for admin_url, statement in drops:
                admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
                async with admin.connect() as conn:
                    await conn.execute(sa.text(statement))
                await admin.dispose()

        asyncio.run(drop())


async def _server_database(url: str) -> AsyncIterator[str]:
    """A fresh database on the server of ``url``, already at every service's head;
    dropped afterwards."""
    name = f"onestack_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        if admin.dialect.name == "postgresql":
            template = await _postgres_template(admin, url)
            await conn.execute(sa.text(f"CREATE DATABASE {name} TEMPLATE {template}"))
        else:
            await _mariadb_copy(conn, await _mariadb_schema(admin, url), name)
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        async with admin.connect() as conn:
            if admin.dialect.name == "postgresql":
                await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        await admin.dispose()


@pytest.fixture
async def database_url() -> AsyncIterator[str | None]:
    url = os.environ.get("ONESTACK_TEST_DATABASE_URL")
    if not url:
        yield None
        return
    async for db in _server_database(url):
        yield db


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> config.Settings:
    return config.load(
        tmp_path / "data",
        environ={},
        database_url=database_url,
        port=8780,
        access_log=False,
        # cheaper hashing for tests; the algorithm is the same
        identity={"password_time_cost": 1, "password_memory_cost_kib": 1024},
        # API tests never touch the kernel; tests/dataplane does
        network={"dataplane": "fake"},
        # nor boot guests; tests/compute_qemu does
        compute={"compute_driver": "fake"},
    )


@pytest.fixture
async def cloud(settings: config.Settings) -> AsyncIterator[Cloud]:
    # "auto" means the Linux data plane here (root), whose bridges and nft tables
    # outlive the test: a test that wants the kernel says so and purges it
    assert settings.network.dataplane in ("fake", "linux"), (
        "a test's settings must choose network.dataplane: fake, or linux and purge it")
    async with running_cloud(settings) as c:
        yield c


@contextlib.asynccontextmanager
async def running_cloud(settings: config.Settings) -> AsyncIterator[Cloud]:
    """One life of the whole cloud on the settings' data directory, in process:
    its schema, its lifespan, a client and the admin's and demo's tokens. A test
    may run several lives one after the other on the same directory."""
    await seed_schema(settings)
    root = create_app(settings)
    app = RequestIdMiddleware(root, access_log=False)
    async with root.router.lifespan_context(root):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            creds = bootstrap.load_or_create_credentials(settings.path("secrets", "passwords"))
            c = Cloud(client=client, settings=settings, creds=creds, app=root)
            r = await c.token("admin", creds.admin_password, project="admin")
            assert r.status_code == 201, r.text
            c.admin_token = r.headers["X-Subject-Token"]
            r = await c.token("demo", creds.demo_password, project="demo")
            assert r.status_code == 201, r.text
            c.demo_token = r.headers["X-Subject-Token"]
            yield c


# -- hangs --------------------------------------------------------------------------
# A test still running after ONESTACK_TEST_WATCHDOG seconds (default 120) prints
# every thread's stack and every asyncio task's stack to stderr, so a hang in CI
# says where it is; pytest-timeout (pyproject) then fails the test and the run
# goes on.

WATCHDOG = float(os.environ.get("ONESTACK_TEST_WATCHDOG", "120"))


def _dump_stacks(nodeid: str, config: pytest.Config) -> None:
    # pytest captures fds 1 and 2 while a test runs: print around the capture
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        _print_stacks(nodeid)
        return
    with capman.global_and_fixture_disabled():
        _print_stacks(nodeid)


def _print_stacks(nodeid: str) -> None:
    import asyncio
    import faulthandler
    import sys

    err = sys.__stderr__
    if err is None:
        return
    print(f"\n=== {nodeid} still running after {WATCHDOG:.0f}s: thread stacks ===",
          file=err, flush=True)
    faulthandler.dump_traceback(file=err, all_threads=True)
    print("=== asyncio tasks ===", file=err, flush=True)
    for task in list(asyncio.tasks._all_tasks):  # type: ignore[attr-defined]
        if task.done():
            continue
        print(f"--- {task!r}", file=err)
        try:
            task.print_stack(limit=30, file=err)
        except Exception as exc:  # noqa: BLE001 (racing the loop's thread: diagnostics only)
            print(f"(stack unavailable: {exc})", file=err)
    err.flush()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    import threading

    timer = threading.Timer(WATCHDOG, _dump_stacks, args=(item.nodeid, item.config))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
