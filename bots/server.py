"""The HTTP entrypoint: one aiohttp application that each adapter mounts its routes on.

``create_app(core)`` is the app factory (tests drive it through ``aiohttp_client``); the core's
resources are closed in the cleanup context when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import text

from core.bootstrap import Core
from core.domain.errors import InvalidCallback

log = logging.getLogger(__name__)
CORE = web.AppKey("core", Core)


def create_app(core: Core, *, close_core: bool = True, background: bool = True,
               chat: bool = True) -> web.Application:
    app = web.Application(client_max_size=6 * 1024 * 1024)
    app[CORE] = core
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/callbacks/custody", custody_callback)
    if chat:
        from bots.console.notices import setup_notices
        from bots.console.review import setup_review
        from bots.console.routes import setup_console
        from bots.web.auth import setup_auth
        from bots.webchat.routes import setup_webchat
        from dashboards.mount import setup_dashboards

        channels = ChatChannels(core)
        app[CHANNELS] = channels
        if channels.telegram is not None and channels.telegram.mode == "webhook":
            app.router.add_post(channels.telegram.webhook_path, channels.telegram.webhook)
        if core.settings.secret_key is not None:  # staff pages sign their cookies
            setup_auth(app, core)
            setup_console(app, core, channels.engine)
            setup_review(app, core)
            setup_notices(app, core)
            setup_dashboards(app, core)
            setup_webchat(app, core, channels.engine)
        else:
            log.warning("no secret key: the web chat, the console and staff pages are off")

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        log.info("P2P Desk serving on the %s database", core.engine.dialect.name)
        yield
        if close_core:
            await core.close()

    app.cleanup_ctx.append(lifecycle)
    if chat:
        app.cleanup_ctx.append(app[CHANNELS].run)
    if background:
        app.cleanup_ctx.append(background_work)
    return app


class ChatChannels:
    """The dialog engine and the chat channels over it (Telegram when a token is set), and the
    dispatcher that turns due outbox notices into chat messages."""

    def __init__(self, core: Core) -> None:
        from bots.dialog.engine import DialogEngine
        from bots.dialog.i18n import Catalog
        from knowledge_base import KnowledgeBase

        self.core = core
        self.engine = DialogEngine(core, KnowledgeBase.load(), Catalog.load())
        self.telegram: Any = None
        if core.settings.telegram_token is not None:
            from bots.telegram.adapter import TelegramAdapter

            self.telegram = TelegramAdapter(core, self.engine)
        else:
            log.info("Telegram is off: set P2P_TELEGRAM_TOKEN to turn the bot on")

    async def run(self, _app: web.Application) -> AsyncIterator[None]:
        if self.telegram is not None:
            await self.telegram.start()
        dispatch = asyncio.create_task(self._dispatch_forever(), name="notice-dispatcher")
        yield
        dispatch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dispatch
        if self.telegram is not None:
            await self.telegram.stop()
        await self.engine.close()

    async def _dispatch_forever(self) -> None:
        """Dispatcher passes while there is work, a poll when idle. On PostgreSQL every process
        dispatches (``SKIP LOCKED`` shares the outbox); on SQLite the lease holder does."""
        from bots.dialog.dispatcher import Dispatcher
        from core import leases

        core = self.core
        settings = core.settings.notify
        dispatcher = Dispatcher(self.engine)
        holder = leases.holder_id()
        ttl = timedelta(seconds=settings.lease_seconds)
        held = False
        try:
            while True:
                handled = 0
                try:
                    if core.settings.is_sqlite:
                        async with core.uow() as uow:
                            held = await leases.acquire(uow, "notice-dispatcher", holder, ttl)
                            await uow.commit()
                    if held or not core.settings.is_sqlite:
                        async with core.uow() as uow:
                            done = await dispatcher.run_once(uow)
                            await uow.commit()
                        handled = done.total
                        if done.handed and self.telegram is not None:
                            self.telegram.sender.poke()
                except Exception:
                    log.exception("dispatching notices failed; retrying")
                if handled < settings.batch:
                    await asyncio.sleep(settings.poll_seconds)
        finally:
            if held:
                with contextlib.suppress(Exception):
                    async with core.uow() as uow:
                        await leases.release(uow, "notice-dispatcher", holder)
                        await uow.commit()


CHANNELS = web.AppKey("channels", ChatChannels)


async def background_work(app: web.Application) -> AsyncIterator[None]:
    """Work that runs beside the server: identity checks waiting for the provider."""
    core = app[CORE]

    async def identity_checks() -> None:
        while True:
            try:
                await core.kyc.process_pending(core.uow)
            except Exception:
                log.exception("identity check pass failed; retrying")
            await asyncio.sleep(core.settings.kyc.check_interval_seconds)

    async def stale_orders() -> None:
        while True:
            try:
                await core.wallet.reopen_stale(core.uow)
            except Exception:
                log.exception("re-sending stale payment orders failed; retrying")
            await asyncio.sleep(60)

    tasks = [asyncio.create_task(identity_checks(), name="identity-checks"),
             asyncio.create_task(stale_orders(), name="stale-orders"),
             asyncio.create_task(Scheduler(core).run(), name="scheduler")]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Scheduler:
    """Time-driven work in ``serve``, on the injected clock and in the business time zone:

    - the daily job at ``servicing.daily_job_time``, catching up every day missed while the
      server was down (each day runs once: ``job_runs``); its reminders and collections notices
      are written for ``servicing.reminder_hour`` and the dispatcher sends them then;
    - broadcasts whose send time came, and any a crash interrupted (resumed where they
      stopped);
    - broadcast conversions, every ``CONVERSIONS_EVERY``;
    - today's loan-book rollup, rebuilt every ``BOOK_EVERY`` when a repayment, disbursement or
      write-off made it stale (until then the stock dashboards read the raw tables: the same
      figures, slower).
    """

    CONVERSIONS_EVERY = timedelta(hours=1)
    BOOK_EVERY = timedelta(minutes=10)

    def __init__(self, core: Core) -> None:
        self.core = core
        self.at = time.fromisoformat(core.settings.servicing.daily_job_time)
        self.conversions_at: datetime | None = None
        self.book_at: datetime | None = None

    async def tick(self) -> dict[str, Any]:
        """Do what is due now; what was done, for logs and tests."""
        core = self.core
        did: dict[str, Any] = {}
        now = core.clock.local()
        target = now.date() if now.time() >= self.at else now.date() - timedelta(days=1)
        try:
            days = await core.daily.catch_up(target)
            if days:
                did["days"] = days
                log.info("daily job ran for %s", ", ".join(d.isoformat() for d in days))
        except Exception:
            log.exception("daily job failed; it will be retried")
        try:
            async with core.uow() as uow:
                due = await core.broadcasts.due(uow)
                await uow.commit()
            for broadcast_id in due:
                written = await core.broadcasts.resume(core.uow, broadcast_id)
                did.setdefault("broadcasts", []).append(broadcast_id)
                log.info("broadcast %s: %s notices written", broadcast_id, written)
        except Exception:
            log.exception("sending broadcasts failed; retrying")
        if self.conversions_at is None or core.clock.now() >= self.conversions_at:
            try:
                async with core.uow() as uow:
                    did["conversions"] = await core.broadcasts.attribute_conversions(uow)
                    await uow.commit()
                self.conversions_at = core.clock.now() + self.CONVERSIONS_EVERY
            except Exception:
                log.exception("attributing broadcast conversions failed; retrying")
        if self.book_at is None or core.clock.now() >= self.book_at:
            try:
                did["book"] = await self._refresh_book()
                self.book_at = core.clock.now() + self.BOOK_EVERY
            except Exception:
                log.exception("rebuilding today's loan-book rollup failed; retrying")
        return did

    async def _refresh_book(self) -> int:
        """Rows written for today's book (0 when it is current or there is no loan yet)."""
        from core.analytics import rollups

        core = self.core
        today = core.clock.today()
        async with core.uow() as uow:
            if today in await rollups.built(uow, [today]) or not await rollups.has_loans(uow):
                return 0
            written = await rollups.build_book(uow, [today], core.settings, core.currency)
            await uow.commit()
        return written

    def seconds_to_next(self) -> float:
        """Until the next daily run, at most a minute (broadcasts are checked every minute)."""
        now = self.core.clock.local()
        next_run = datetime.combine(now.date() + timedelta(days=1 if now.time() >= self.at
                                                           else 0), self.at, self.core.clock.tz)
        return min(60.0, max(1.0, (next_run - now).total_seconds()))

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.seconds_to_next())


async def custody_callback(request: web.Request) -> web.Response:
    """The custody bank posts ``{"payload": {...}, "signature": "..."}`` here."""
    core = request.app[CORE]
    try:
        body = await request.json()
        outcome = await core.deliver_bank_callback(body["payload"], body["signature"])
    except (ValueError, KeyError, TypeError, InvalidCallback) as exc:
        log.warning("refused a custody callback: %s", exc)
        return web.json_response({"ok": False, "error": "invalid_callback"}, status=400)
    return web.json_response({"ok": True, "outcome": outcome})


async def healthz(request: web.Request) -> web.Response:
    """Liveness and readiness: 200 when the database answers, 503 when it does not."""
    core = request.app[CORE]
    try:
        async with core.uow(read_only=True) as uow:
            await uow.conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"
        log.warning("health check failed: %s", exc)
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    return web.json_response({"status": "ok", "database": core.engine.dialect.name})
