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
        from bots.console.review import setup_review
        from bots.console.routes import setup_console
        from bots.web.auth import setup_auth
        from bots.webchat.routes import setup_webchat

        channels = ChatChannels(core)
        app[CHANNELS] = channels
        if channels.telegram is not None and channels.telegram.mode == "webhook":
            app.router.add_post(channels.telegram.webhook_path, channels.telegram.webhook)
        if core.settings.secret_key is not None:  # staff pages sign their cookies
            setup_auth(app, core)
            setup_console(app, core, channels.engine)
            setup_review(app, core)
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
    relay that turns due outbox notices into chat messages."""

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
        relay = asyncio.create_task(self._relay_forever(), name="notice-relay")
        yield
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        if self.telegram is not None:
            await self.telegram.stop()
        await self.engine.close()

    async def _relay_forever(self) -> None:
        from bots.dialog.relay import relay_notices

        while True:
            try:
                async with self.core.uow() as uow:
                    queued = await relay_notices(self.engine, uow)
                    await uow.commit()
                if queued and self.telegram is not None:
                    self.telegram.sender.poke()
            except Exception:
                log.exception("relaying notices failed; retrying")
                queued = 0
            if not queued:
                await asyncio.sleep(1.0)


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
             asyncio.create_task(daily_scheduler(core), name="daily-job")]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def daily_scheduler(core: Core) -> None:
    """Run the business day at the configured local time; after downtime, catch up the days
    missed (each day is idempotent, so a day already done is skipped)."""
    at = time.fromisoformat(core.settings.servicing.daily_job_time)
    while True:
        now = core.clock.local()
        today = now.date()
        target = today if now.time() >= at else today - timedelta(days=1)
        try:
            done = await core.daily.catch_up(target)
            if done:
                log.info("daily job ran for %s", ", ".join(d.isoformat() for d in done))
        except Exception:
            log.exception("daily job failed; it will be retried")
        next_run = datetime.combine(today + timedelta(days=1 if now.time() >= at else 0), at,
                                    core.clock.tz)
        await asyncio.sleep(min(3600.0, max(1.0, (next_run - core.clock.local()).total_seconds())))


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
