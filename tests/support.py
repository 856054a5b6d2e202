"""Helpers shared by the tests (database set-up, building the core)."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from config.settings import Settings
from core.adapters import migrate
from core.adapters.db import create_engine
from core.adapters.tables import metadata
from core.bootstrap import Core, bootstrap
from core.domain.clock import Clock

DATA_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"


@dataclass
class TestDatabase:
    url: str
    folder: Path | None = None
    admin_url: str | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    async def migrate_template(self) -> None:
        engine = create_engine(self.url)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    async def fresh(self, tmp_path: Path) -> str:
        if self.is_sqlite:
            source = Path(make_url(self.url).database or "")
            target = tmp_path / "p2p.db"
            shutil.copyfile(source, target)
            return f"sqlite+aiosqlite:///{target}"
        await truncate_all(self.url)
        return self.url


async def truncate_all(url: str) -> None:
    engine = create_engine(url)
    try:
        names = ", ".join(t.name for t in metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


async def pg_create_database(admin_url: str) -> TestDatabase:
    name = f"p2p_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    db = TestDatabase(url=url, admin_url=admin_url)
    await db.migrate_template()
    return db


async def pg_drop_database(db: TestDatabase) -> None:
    parsed = make_url(db.url)
    engine = create_engine(db.admin_url or db.url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    finally:
        await engine.dispose()


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    """Test settings: fixed keys; the sandbox bank settles only when a test tells it to."""
    overrides.setdefault("sandbox", {"bank_auto_settle": False, "bank_delay_seconds": 0})
    return Settings(database_url=database_url, data_dir=data_dir, secret_key=SECRET_KEY,
                    data_key=DATA_KEY, **overrides)


async def make_core(database_url: str, clock: Clock, data_dir: Path, **overrides: object) -> Core:
    return await bootstrap(make_settings(database_url, data_dir, **overrides), clock=clock,
                           migrate=False)
