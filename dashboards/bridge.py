"""From Dash callbacks to the analytics queries: one read-only unit of work on the server's loop.

Dash is a WSGI (Flask) application; ``aiohttp_wsgi`` runs each of its requests in a worker
thread. The analytics queries are coroutines on the core's engine, which belongs to the event
loop the server runs on, so a callback hands its query to that loop
(``asyncio.run_coroutine_threadsafe``) and waits for the answer. The loop is attached when the
server starts and detached when it stops (``dashboards/mount.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date
from typing import TypeVar

from config.settings import Settings
from core.adapters.uow import UnitOfWork
from core.bootstrap import Core

T = TypeVar("T")
Query = Callable[[UnitOfWork], Awaitable[T]]
TIMEOUT_SECONDS = 60.0


class NotServing(RuntimeError):
    """The dashboards were asked for figures while the server is not running."""


class Bridge:
    """Runs analytics queries for worker threads on the event loop that owns the database."""

    def __init__(self, core: Core, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.core = core
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def settings(self) -> Settings:
        return self.core.settings

    def today(self) -> date:
        """Today in business time (the injected clock)."""
        return self.core.clock.today()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def detach(self) -> None:
        self._loop = None

    def read(self, query: Query[T]) -> T:
        """``query(uow)`` in a read-only unit of work on the server's loop, from another thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise NotServing("the dashboards' server is not running")
        if _running_loop() is loop:
            raise RuntimeError("Bridge.read blocks: call it from a worker thread, not the loop")
        future = asyncio.run_coroutine_threadsafe(self._read(query), loop)
        try:
            return future.result(self.timeout)
        except TimeoutError:
            future.cancel()
            raise

    async def _read(self, query: Query[T]) -> T:
        async with self.core.uow(read_only=True) as uow:
            return await query(uow)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
