"""The composition root: builds the engine, units of work, clock and services from settings.

Nothing here runs at import. Tests call ``bootstrap`` with their own settings and clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import ConfigError, Settings
from core.adapters import migrate as migrations
from core.adapters.batching import GroupCommitter
from core.adapters.db import create_engine
from core.adapters.uow import UnitOfWorkFactory
from core.domain.clock import Clock, SystemClock
from core.domain.money import Currency
from core.ledger import Ledger

log = logging.getLogger(__name__)


@dataclass
class Core:
    """Everything the adapters (bots, console, dashboards, CLI) need from the domain."""

    settings: Settings
    engine: AsyncEngine
    clock: Clock
    currency: Currency
    uow: UnitOfWorkFactory
    batcher: GroupCommitter
    ledger: Ledger

    async def close(self) -> None:
        await self.batcher.close()
        await self.engine.dispose()


def currency_of(settings: Settings) -> Currency:
    return Currency(settings.money.currency, settings.money.scale, settings.rounding_mode)


async def bootstrap(settings: Settings, *, clock: Clock | None = None,
                    migrate: bool | None = None) -> Core:
    """Build the core. ``migrate=None`` migrates the embedded SQLite by itself and only checks
    PostgreSQL (where several servers share one schema and an operator runs ``migrate``)."""
    engine = create_engine(
        settings.db_url, pool_size=settings.database.pool_size,
        busy_timeout_ms=settings.database.sqlite_busy_timeout_ms, echo=settings.database.echo,
    )
    try:
        if migrate is None:
            migrate = settings.is_sqlite
        if migrate:
            await migrations.upgrade(engine)
        else:
            pending = await migrations.pending_revisions(engine)
            if pending:
                raise ConfigError(
                    f"P2P_DATABASE_URL: schema is behind by {len(pending)} migration(s); "
                    "run `python run.py migrate`"
                )
    except BaseException:
        await engine.dispose()
        raise
    clock = clock or SystemClock(settings.tz)
    currency = currency_of(settings)
    uow = UnitOfWorkFactory(engine, clock)
    core = Core(
        settings=settings, engine=engine, clock=clock, currency=currency, uow=uow,
        batcher=GroupCommitter(uow, max_batch=settings.batching.max_batch,
                               max_delay=settings.batching.max_delay_ms / 1000),
        ledger=Ledger(currency, chunk=settings.batching.post_many_chunk),
    )
    async with uow() as work:
        await core.ledger.ensure_platform_accounts(work)
        await work.commit()
    return core
