"""Schema migrations (Alembic), run on both databases through the product's own engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

SCRIPT_LOCATION = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent: an up-to-date schema is left alone)."""

    def run(sync_conn: Any) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with engine.connect() as conn:
        await conn.run_sync(run)
        await conn.commit()


async def pending_revisions(engine: AsyncEngine) -> list[str]:
    """Revisions not yet applied (empty when the schema is current)."""
    script = ScriptDirectory.from_config(alembic_config())

    def current(sync_conn: Any) -> set[str]:
        return set(MigrationContext.configure(sync_conn).get_current_heads())

    async with engine.connect() as conn:
        heads = await conn.run_sync(current)
    if heads == set(script.get_heads()):
        return []
    return [rev.revision for rev in script.walk_revisions() if rev.revision not in heads]


def autogenerate(sync_conn: Any, message: str) -> None:  # pragma: no cover - developer tool
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.revision(cfg, message=message, autogenerate=True)
