"""Unit of work: one database transaction that commits only when told to.

``async with uow_factory() as uow: ...; await uow.commit()`` - leaving the block without
``commit()`` (or through an exception) rolls everything back. On SQLite, writers in this process
queue on an asyncio lock instead of spinning on SQLite's busy handler; other processes still meet
the busy timeout. Read-only units of work skip the lock and open a plain (deferred) transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from core.adapters.db import READ_ONLY, is_sqlite
from core.domain.clock import Clock

log = logging.getLogger(__name__)
T = TypeVar("T")


class UnitOfWork:
    """A transaction plus what the services need beside it (the clock)."""

    def __init__(self, factory: UnitOfWorkFactory, *, read_only: bool = False,
                 lock_held: bool = False) -> None:
        self._factory = factory
        self.read_only = read_only
        self._lock_held = lock_held  # an independent write inside our own writer lock
        self.clock: Clock = factory.clock
        self._conn: AsyncConnection | None = None
        self._locked = False
        self.committed = False
        self.after_commit: list[Callable[[], Awaitable[Any]]] = []
        self.independent: list[Callable[[UnitOfWork], Awaitable[Any]]] = []

    @property
    def conn(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._conn

    @property
    def factory(self) -> UnitOfWorkFactory:
        """For work that must run in transactions of its own once this one has ended."""
        return self._factory

    @property
    def dialect(self) -> str:
        return self._factory.engine.dialect.name

    async def __aenter__(self) -> UnitOfWork:
        lock = self._factory.write_lock
        if lock is not None and not self.read_only and not self._lock_held:
            await lock.acquire()
            self._locked = True
        conn = None
        try:
            conn = await self._factory.engine.connect()
            if self.read_only:
                conn = await conn.execution_options(**{READ_ONLY: True})
            await conn.begin()
        except BaseException:
            # cancelled (a server stopping) or failed half-way: the connection goes back to
            # the pool, not to the garbage collector
            try:
                if conn is not None:
                    await conn.close()
            finally:
                self._release()
            raise
        self._conn = conn
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                try:
                    if conn.in_transaction():
                        await conn.rollback()
                finally:
                    await conn.close()
            # Before the writer lock goes: a caller queued behind us must see these writes.
            await self._run_independent()
        finally:
            self._release()
        if self.committed and exc_type is None:
            await self._run_after_commit()

    def record_independently(self, write: Callable[[UnitOfWork], Awaitable[Any]]) -> None:
        """Schedule a write that must stand whether this transaction commits or not (a fraud
        flag, a failed code attempt): it runs in its own transaction when this one ends, before
        this unit of work gives up SQLite's writer lock. Writes must be idempotent (set values,
        insert-or-ignore): a batch that is retried may schedule them again."""
        self.independent.append(write)

    async def _run_independent(self) -> None:
        writes, self.independent = self.independent, []
        for write in writes:
            try:
                async with UnitOfWork(self._factory, lock_held=self._locked) as uow:
                    await write(uow)
                    await uow.commit()
            except Exception:
                log.exception("independent write failed")

    async def autonomous(self, write: Callable[[UnitOfWork], Awaitable[T]],
                         replay: Callable[[UnitOfWork, T], Awaitable[Any]]) -> T:
        """Run ``write`` now so that it stands whatever becomes of this transaction.

        On PostgreSQL it runs on a separate connection and commits at once, so concurrent
        callers see it immediately. On SQLite this unit of work holds the only writer lock (no
        one else can read-then-write meanwhile), so ``write`` runs inside it and
        ``replay(uow, result)`` - an idempotent form of the same write - is recorded to run
        before the lock is released, in case this transaction rolls back."""
        if self.dialect == "sqlite":
            result = await write(self)
            self.record_independently(lambda uow: replay(uow, result))
            return result
        async with self._factory.side_engine.connect() as conn:
            await conn.begin()
            other = UnitOfWork(self._factory)
            other._conn = conn
            result = await write(other)
            await conn.commit()
        return result

    async def _run_after_commit(self) -> None:
        """Work that must not happen unless the transaction committed (an SMS, a bank call).
        It runs after the writer lock is released; a failure is logged, never raised, because
        the business change already stands."""
        hooks, self.after_commit = self.after_commit, []
        for hook in hooks:
            try:
                await hook()
            except Exception:
                log.exception("after-commit work failed")

    def _release(self) -> None:
        if self._locked:
            self._locked = False
            assert self._factory.write_lock is not None
            self._factory.write_lock.release()

    async def commit(self) -> None:
        await self.conn.commit()
        self.committed = True

    async def rollback(self) -> None:
        await self.conn.rollback()

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """Undo only what the block wrote if it raises; the outer transaction goes on."""
        nested = await self.conn.begin_nested()
        hooks = len(self.after_commit)
        try:
            yield
        except BaseException:
            await nested.rollback()
            del self.after_commit[hooks:]  # what the block undid has nothing to follow up
            raise
        else:
            await nested.commit()


class UnitOfWorkFactory:
    """Builds units of work on one engine; built once in ``core.bootstrap``."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self.write_lock: asyncio.Lock | None = asyncio.Lock() if is_sqlite(engine) else None
        self._side: AsyncEngine | None = None

    @property
    def side_engine(self) -> AsyncEngine:
        """Connections for autonomous writes, outside the main pool: a unit of work that holds
        a pooled connection must never wait for a second one from the same pool."""
        if self._side is None:
            self._side = create_async_engine(self.engine.url, poolclass=NullPool)
        return self._side

    async def dispose(self) -> None:
        if self._side is not None:
            await self._side.dispose()

    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(self, read_only=read_only)
