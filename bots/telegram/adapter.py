"""Telegram adapter: python-telegram-bot in front of the dialog engine. It only translates.

Inbound, one update at a time (many at once: the engine's turn desk batches them):

- text and commands (``/help@OurBot`` counts as ``/help``); ``/start <payload>`` carries a
  campaign or referral code (``docs/telegram.md`` documents the scheme);
- a button press (callback query): answered at once, then the keyboard is taken off the message
  it came from, so a finished step cannot be pressed again, and the answer comes as new messages;
- a shared contact: accepted as the phone number only if it is the sender's own;
- photos and documents (KYC and loan proofs), fetched with getFile.

Every update's ``update_id`` is the inbound's message id, recorded in the transaction of its
effects (``inbound_log``): a redelivered update (a webhook retry, polling again after a
restart) changes nothing and sends nothing. Replies are queued in that same transaction
(``core.delivery``) and sent by ``TelegramSender`` at Telegram's pace.

Updates come by long polling (our own loop: the next ``getUpdates`` confirms a batch only after
every update in it was committed, so a crash re-reads them instead of losing them) or by webhook
(the route is on the product's aiohttp server; a request without the secret token header is
refused; Telegram is answered 200 only after the update was committed, so a failure is retried
by Telegram). Several ``serve`` processes may share a webhook: the inbound log refuses the
second copy of an update, and deliveries are claimed with ``SKIP LOCKED`` on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import BotCommand, BotCommandScopeDefault, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bots.dialog.engine import DialogEngine
from bots.dialog.types import Inbound
from bots.telegram.request import AiohttpRequest
from bots.telegram.sender import CHANNEL, TelegramSender
from config.settings import Settings
from core.bootstrap import Core

log = logging.getLogger(__name__)
PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
COMMANDS = ("start", "help", "language", "cancel", "human", "notifications")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SEND_CONNECTIONS = 8  # Bot API connections; the sender keeps at most this many sends in flight


def file_url(api_url: str) -> str:
    """``https://api.telegram.org/bot`` -> ``https://api.telegram.org/file/bot`` (the same
    rule for a local Bot API server)."""
    base = api_url.rstrip("/")
    return f"{base[:-4]}/file/bot" if base.endswith("/bot") else f"{base}/file/bot"


class TelegramAdapter:
    def __init__(self, core: Core, engine: DialogEngine, settings: Settings | None = None,
                 *, poll_timeout: int = 10) -> None:
        self.core = core
        self.engine = engine
        self.settings = settings or core.settings
        if self.settings.telegram_token is None:
            raise ValueError("P2P_TELEGRAM_TOKEN is not set")
        token = self.settings.telegram_token.get_secret_value()
        api_url = self.settings.telegram_api_url
        self.app = (Application.builder().token(token).base_url(api_url)
                    .base_file_url(file_url(api_url)).updater(None).concurrent_updates(512)
                    .request(AiohttpRequest(connections=SEND_CONNECTIONS, pool_timeout=30.0))
                    .get_updates_request(AiohttpRequest(connections=1,
                                                        read_timeout=poll_timeout + 10))
                    .build())
        self.app.add_handler(MessageHandler(filters.CONTACT, self._on_contact))
        self.app.add_handler(MessageHandler(filters.PHOTO | filters.Document.ALL, self._on_file))
        self.app.add_handler(MessageHandler(filters.TEXT, self._on_text))
        self.app.add_handler(CallbackQueryHandler(self._on_button))
        self.app.add_error_handler(self._on_error)
        self.sender = TelegramSender(core.uow, self.app.bot, self.settings.delivery,
                                     in_flight=SEND_CONNECTIONS,
                                     lease_seconds=self.settings.notify.lease_seconds,
                                     marketing=self.settings.notify.marketing_in_flight)
        self.poll_timeout = poll_timeout
        self._failed: set[int] = set()
        self._side_calls: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        engine.queued_channels.add(CHANNEL)

    @property
    def mode(self) -> str:
        return self.settings.telegram_mode

    @property
    def webhook_path(self) -> str:
        return urlsplit(self.settings.telegram_webhook_url or "").path or "/telegram/webhook"

    # Life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.app.initialize()
        await self.app.start()
        await self.set_commands()
        bot = self.app.bot
        if self.mode == "webhook":
            secret = self.settings.telegram_webhook_secret
            await bot.set_webhook(self.settings.telegram_webhook_url or "",
                                  secret_token=secret.get_secret_value() if secret else None,
                                  allowed_updates=["message", "callback_query"])
        else:
            await bot.delete_webhook()
            self._poller = asyncio.create_task(self._poll_forever(), name="telegram-polling")
        self.sender.start()
        log.info("telegram bot @%s on in %s mode", bot.username, self.mode)

    async def stop(self) -> None:
        if self._side_calls:
            await asyncio.gather(*self._side_calls, return_exceptions=True)
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self.sender.stop()
        await self.app.stop()
        await self.app.shutdown()

    async def set_commands(self) -> None:
        """The command menu in each language (Telegram picks by the user's app language);
        the default scope without a language gets Chinese."""
        text = self.engine.catalog.text
        for language, locale in (("zh", "zh-CN"), ("en", "en"), ("", "zh-CN")):
            await self.app.bot.set_my_commands(
                [BotCommand(name, text(locale, f"command_{name}")) for name in COMMANDS],
                scope=BotCommandScopeDefault(), language_code=language or None)

    # Receiving ------------------------------------------------------------------------------

    async def process(self, update: Update) -> bool:
        """Handle one update through the handlers; False if handling failed (it is then not
        confirmed: Telegram redelivers it, or the poller reads it again)."""
        await self.app.process_update(update)
        failed = update.update_id in self._failed
        self._failed.discard(update.update_id)
        return not failed

    async def _poll_forever(self) -> None:
        offset: int | None = None
        bot = self.app.bot
        while True:
            try:
                updates = await bot.get_updates(offset=offset, timeout=self.poll_timeout,
                                                allowed_updates=["message", "callback_query"])
            except TelegramError as exc:
                log.warning("getUpdates failed (%s); retrying", exc)
                await asyncio.sleep(1)
                continue
            if not updates:
                continue
            done = await self._process_batch(updates)
            ok = [u.update_id for u in updates if done[u.update_id]]
            failed = [u.update_id for u in updates if not done[u.update_id]]
            if failed:  # read the batch again from the first failure; done ones are no-ops
                offset = min(failed)
                await asyncio.sleep(1)
            else:
                offset = max(ok) + 1

    async def _process_batch(self, updates: list[Update]) -> dict[int, bool]:
        """A ``getUpdates`` batch: chats side by side (the turn desk batches them), each chat's
        updates one after another in their order; after a failure the chat's later updates
        wait for the next read (they are not confirmed)."""
        by_chat: dict[object, list[Update]] = {}
        for update in updates:
            chat = update.effective_chat.id if update.effective_chat else update.update_id
            by_chat.setdefault(chat, []).append(update)
        done: dict[int, bool] = {u.update_id: False for u in updates}

        async def in_order(chat_updates: list[Update]) -> None:
            for update in chat_updates:
                done[update.update_id] = await self.process(update)
                if not done[update.update_id]:
                    return

        await asyncio.gather(*(in_order(chat) for chat in by_chat.values()))
        return done

    async def webhook(self, request: web.Request) -> web.Response:
        """POST from Telegram: refused without the right secret header; 200 once committed."""
        secret = self.settings.telegram_webhook_secret
        given = request.headers.get(SECRET_HEADER, "")
        if secret is None or not hmac.compare_digest(given.encode(),
                                                     secret.get_secret_value().encode()):
            log.warning("telegram webhook refused: wrong or missing secret token")
            return web.json_response({"ok": False, "error": "forbidden"}, status=403)
        try:
            update = Update.de_json(await request.json(), self.app.bot)
        except (ValueError, KeyError, TypeError):
            return web.json_response({"ok": False, "error": "not an update"}, status=400)
        if update is None:
            return web.json_response({"ok": False, "error": "not an update"}, status=400)
        if not await self.process(update):
            return web.json_response({"ok": False, "error": "try again"}, status=500)
        return web.json_response({"ok": True})

    # Handlers -------------------------------------------------------------------------------

    def _inbound(self, update: Update, **fields: Any) -> Inbound | None:
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None or chat.type != "private":
            return None  # groups and channels are not served
        return Inbound(channel=CHANNEL, chat_id=str(chat.id), message_id=str(update.update_id),
                       display_name=user.full_name, locale_hint=user.language_code, **fields)

    async def _turn(self, inbound: Inbound | None) -> None:
        if inbound is None:
            return
        await self.engine.handle(inbound)
        self.sender.poke()

    async def _on_text(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.text is None:
            return
        text = message.text.strip()
        payload = None
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            command = command.split("@", 1)[0].lower()
            if command == "/start" and rest.strip():
                found = PAYLOAD.fullmatch(rest.strip())
                payload = found.group(0) if found else None
            text = f"{command} {rest}".strip() if command != "/start" else command
        await self._turn(self._inbound(update, text=text, payload=payload))

    async def _on_contact(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.contact is None or update.effective_user is None:
            return
        contact = message.contact
        if contact.user_id == update.effective_user.id:
            # Telegram gives the number in international form, often without the "+"
            phone = contact.phone_number.strip()
            phone = phone if phone.startswith("+") else f"+{phone}"
            await self._turn(self._inbound(update, contact_phone=phone))
        else:
            await self._turn(self._inbound(update, action="contact:foreign"))

    async def _on_file(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        if message.photo:
            found, kind = await message.photo[-1].get_file(), "image/jpeg"  # the largest size
        elif message.document is not None:
            found = await message.document.get_file()
            kind = message.document.mime_type or "application/octet-stream"
        else:
            return
        data = bytes(await found.download_as_bytearray())
        await self._turn(self._inbound(update, attachment=data, attachment_type=kind,
                                       text=message.caption))

    async def _on_button(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        # Answering stops the button's spinner; taking the keyboard off the pressed message
        # keeps a finished step from being pressed again. Both are cosmetic, so they run beside
        # the turn instead of before it: a button press is not held up (nor, in webhook mode,
        # Telegram's request) behind the sends waiting for a connection.
        self._background(query.answer())
        await self._turn(self._inbound(update, action=query.data or ""))
        if query.message is not None:
            self._background(query.edit_message_reply_markup(reply_markup=None))

    def _background(self, call: Awaitable[object]) -> None:
        async def quietly() -> None:
            with contextlib.suppress(TelegramError):  # already answered, edited, or blocked
                await call

        task = asyncio.create_task(quietly())
        self._side_calls.add(task)
        task.add_done_callback(self._side_calls.discard)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if isinstance(update, Update):
            self._failed.add(update.update_id)
        log.error("telegram update %s failed", getattr(update, "update_id", "?"),
                  exc_info=context.error)
