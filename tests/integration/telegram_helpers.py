"""Telegram end to end in tests: python-telegram-bot and the product against the local Bot API
server (``bots.telegram.local_api``), users played through the server's test hooks."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from bots.dialog.engine import DialogEngine
from bots.dialog.i18n import Catalog
from bots.telegram.adapter import TelegramAdapter
from bots.telegram.local_api import LocalBotApi
from core.adapters.tables import deliveries, inbound_log
from core.bootstrap import Core
from knowledge_base import KnowledgeBase
from tests.support import make_settings

TOKEN = "424242:TEST-token_for-P2P"
SECRET = "s3cret-Webhook_token"
_users = itertools.count(7_000_001)
_KB: KnowledgeBase | None = None


def knowledge_base() -> KnowledgeBase:
    global _KB
    if _KB is None:
        _KB = KnowledgeBase.load()
    return _KB


class Telegram:
    """The local server, the adapter and the engine, for one test."""

    def __init__(self, server: LocalBotApi, core: Core, engine: DialogEngine,
                 adapter: TelegramAdapter) -> None:
        self.server, self.core, self.engine, self.adapter = server, core, engine, adapter

    def user(self, locale: str = "zh-CN", name: str = "Test") -> TgUser:
        return TgUser(self, next(_users), "zh-hans" if locale == "zh-CN" else "en", locale,
                      name)

    async def settled(self, chat_id: int, update_id: int, within: float = 10.0) -> None:
        """Wait until the update was committed and every message queued for the chat sent."""
        deadline = time.monotonic() + within
        while True:
            async with self.core.uow(read_only=True) as uow:
                seen = (await uow.conn.execute(select(func.count()).select_from(inbound_log)
                        .where(inbound_log.c.channel == "telegram",
                               inbound_log.c.message_id == str(update_id)))).scalar_one()
                waiting = (await uow.conn.execute(select(func.count()).select_from(deliveries)
                           .where(deliveries.c.chat_id == str(chat_id),
                                  deliveries.c.status.in_(("pending", "sending"))))
                           ).scalar_one()
            if seen and not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"update {update_id}: committed={bool(seen)}, "
                                   f"{waiting} message(s) still waiting for chat {chat_id}")
            await asyncio.sleep(0.01)

    async def idle(self, within: float = 10.0) -> None:
        """Wait until nothing is waiting to be sent to any chat."""
        deadline = time.monotonic() + within
        while True:
            async with self.core.uow(read_only=True) as uow:
                waiting = (await uow.conn.execute(select(func.count()).select_from(deliveries)
                           .where(deliveries.c.status.in_(("pending", "sending"))))
                           ).scalar_one()
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{waiting} message(s) still waiting")
            await asyncio.sleep(0.01)


class TgUser:
    """One Telegram user in a private chat with the bot."""

    def __init__(self, tg: Telegram, user_id: int, language_code: str, locale: str,
                 name: str) -> None:
        self.tg, self.id, self.language_code, self.locale, self.name = (
            tg, user_id, language_code, locale, name)
        self.read = 0

    @property
    def chat(self) -> str:
        return str(self.id)

    async def _after(self, update: dict[str, Any]) -> list[dict[str, Any]]:
        await self.tg.settled(self.id, update["update_id"])
        return self.new()

    def new(self) -> list[dict[str, Any]]:
        """Messages the bot sent since the last look."""
        sent = self.tg.server.sent(self.id)
        fresh, self.read = sent[self.read:], len(sent)
        return fresh

    async def say(self, text: str) -> list[dict[str, Any]]:
        return await self._after(self.tg.server.inject_message(
            self.id, text, first_name=self.name, language_code=self.language_code))

    async def tap(self, action: str) -> list[dict[str, Any]]:
        """Press the button ``action`` on the latest bot message that shows it."""
        for message in reversed(self.tg.server.sent(self.id)):
            if action in actions(message):
                return await self._after(self.tg.server.inject_callback(
                    self.id, message["message_id"], action, first_name=self.name,
                    language_code=self.language_code))
        raise AssertionError(f"no message in chat {self.id} offers {action!r}")

    async def share_contact(self, phone: str, *, own: bool = True) -> list[dict[str, Any]]:
        return await self._after(self.tg.server.inject_contact(
            self.id, phone, user_id=None if own else self.id + 1, first_name=self.name,
            language_code=self.language_code))

    async def send_photo(self, data: bytes) -> list[dict[str, Any]]:
        return await self._after(self.tg.server.inject_photo(
            self.id, data, first_name=self.name, language_code=self.language_code))

    def t(self, key: str, **params: Any) -> str:
        return self.tg.engine.catalog.text(self.locale, key, **params)


def actions(message: dict[str, Any]) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [b.get("callback_data") for row in markup.get("inline_keyboard", []) for b in row]


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"] for m in messages]


@asynccontextmanager
async def telegram(core: Core, tmp_path: Path, *, mode: str = "polling",
                   delivery: dict[str, Any] | None = None,
                   server: LocalBotApi | None = None,
                   engine: DialogEngine | None = None) -> AsyncIterator[Telegram]:
    """The local Bot API server and the bot against it, on the test's database. In webhook mode
    the product's aiohttp app (with the webhook route) listens on a free port. ``engine``: the
    bot joins an engine that is already serving (the product's own, in browser tests)."""
    own = server is None
    server = server or LocalBotApi(tokens=[TOKEN])
    if own:
        await server.start()
    pace = {"per_chat_interval_ms": 0, "per_second": 10_000, "backoff_ms": 10}
    pace.update(delivery or {})
    runner = None
    webhook: dict[str, Any] = {}
    if mode == "webhook":
        runner = web.AppRunner(web.Application())
        site_port = _free_port()
        webhook = {"telegram_mode": "webhook", "telegram_webhook_secret": SECRET,
                   "telegram_webhook_url": f"http://127.0.0.1:{site_port}/telegram/webhook"}
    settings = make_settings(core.settings.db_url, tmp_path, telegram_token=TOKEN,
                             telegram_api_url=f"{server.url}/bot", delivery=pace, **webhook)
    own_engine = engine is None
    engine = engine or DialogEngine(core, knowledge_base(), Catalog.load())
    adapter = TelegramAdapter(core, engine, settings, poll_timeout=1)
    if runner is not None:
        app = web.Application()
        app.router.add_post(adapter.webhook_path, adapter.webhook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", site_port).start()
    await adapter.start()
    try:
        yield Telegram(server, core, engine, adapter)
    finally:
        await adapter.stop()
        if own_engine:
            await engine.close()
        if runner is not None:
            await runner.cleanup()
        if own:
            await server.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
