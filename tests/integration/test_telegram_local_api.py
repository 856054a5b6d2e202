"""python-telegram-bot v22, unmodified, against the local Bot API server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    RetryAfter,
)
from telegram.ext import (
    Application,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bots.telegram.local_api import LocalBotApi

TOKEN = "123456:LOCAL-TEST-TOKEN"
CHAT = 4242


@pytest.fixture
async def server() -> AsyncIterator[LocalBotApi]:
    async with LocalBotApi(tokens=[TOKEN], webhook_retry_delays=(0.01, 0.02, 0.05)) as server:
        yield server


@pytest.fixture
async def bot(server: LocalBotApi) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=f"{server.url}/bot",
                   base_file_url=f"{server.url}/file/bot") as bot:
        yield bot


@contextlib.asynccontextmanager
async def polling(server: LocalBotApi, *handlers: BaseHandler[Any, Any, Any]
                  ) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    app = (Application.builder().token(TOKEN).base_url(f"{server.url}/bot")
           .base_file_url(f"{server.url}/file/bot").build())
    app.add_handlers(handlers)
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


@contextlib.asynccontextmanager
async def webhook_receiver(statuses: list[int]) -> AsyncIterator[tuple[str, asyncio.Queue[Any]]]:
    """A webhook endpoint answering ``statuses`` in turn (then 200); yields (url, inbox)."""
    inbox: asyncio.Queue[tuple[str | None, dict[str, Any]]] = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        await inbox.put((request.headers.get("X-Telegram-Bot-Api-Secret-Token"),
                         await request.json()))
        return web.Response(status=statuses.pop(0) if statuses else 200)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", inbox
    finally:
        await runner.cleanup()


async def test_get_me_describes_the_bot_of_the_token(bot: Bot) -> None:
    me = await bot.get_me()

    assert (me.id, me.is_bot, me.username) == (123456, True, "local123456_bot")


async def test_an_unknown_token_or_method_is_refused_like_telegram(
        server: LocalBotApi, bot: Bot) -> None:
    with pytest.raises(InvalidToken, match="rejected by the server"):
        async with Bot("999:WRONG", base_url=f"{server.url}/bot"):
            pass
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendTelepathy")


async def test_a_polling_application_echoes_an_injected_message(server: LocalBotApi) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(f"hello {context.args}")

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await update.message.reply_text(update.message.text.upper())

    async with polling(server, CommandHandler("start", start),
                       MessageHandler(filters.TEXT & ~filters.COMMAND, echo)):
        server.inject_message(CHAT, "/start now")
        ping = server.inject_message(CHAT, "ping")
        assert [m["text"] for m in await server.wait_for(CHAT, 2)] == ["hello ['now']", "PING"]

        server.requeue(ping["update_id"])  # a redelivered update is handled again
        assert (await server.wait_for(CHAT, 3))[2]["text"] == "PING"


async def test_a_button_press_is_answered_and_edits_the_message(
        server: LocalBotApi, bot: Bot) -> None:
    async def menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        keyboard = [[InlineKeyboardButton("Lend", callback_data="lend"),
                     InlineKeyboardButton("Borrow", callback_data="borrow")]]
        await update.message.reply_text("Pick one", reply_markup=InlineKeyboardMarkup(keyboard))

    async def picked(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer(f"ok {query.data}")
        await query.edit_message_text(f"You picked {query.data}")

    async with polling(server, CommandHandler("menu", menu), CallbackQueryHandler(picked)):
        server.inject_message(CHAT, "/menu")
        [shown] = await server.wait_for(CHAT, 1)
        assert shown["reply_markup"]["inline_keyboard"][0][1]["callback_data"] == "borrow"
        server.inject_callback(CHAT, shown["message_id"], "borrow")
        await server.wait_for_call("editMessageText", chat_id=CHAT)

    [edited] = server.sent(CHAT)
    assert edited["text"] == "You picked borrow"
    assert edited["reply_markup"] is None  # an edit without reply_markup drops the keyboard
    assert [edit["text"] for edit in edited["edits"]] == ["You picked borrow"]
    [answer] = server.answered_callbacks
    assert (answer["data"], answer["text"]) == ("borrow", "ok borrow")
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("You picked borrow", CHAT, edited["message_id"])
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(answer["callback_query_id"])
    with pytest.raises(LookupError):
        server.inject_callback(CHAT, edited["message_id"], "lend")  # the button is gone


async def test_get_updates_confirms_by_offset_and_long_polls(
        server: LocalBotApi, bot: Bot) -> None:
    server.inject_contact(CHAT, "+8613800000000")
    server.inject_contact(CHAT, "+8613900000000", user_id=777)

    own, other = await bot.get_updates()
    assert own.message and own.message.contact and own.message.contact.user_id == CHAT
    assert other.message and other.message.contact and other.message.contact.user_id == 777
    assert other.message.from_user and other.message.from_user.id == CHAT
    assert await bot.get_updates(offset=other.update_id + 1) == ()

    waiting = asyncio.create_task(bot.get_updates(offset=other.update_id + 1, timeout=5))
    await asyncio.sleep(0.05)
    server.inject_message(CHAT, "late")
    [late] = await asyncio.wait_for(waiting, 2)
    assert late.message and late.message.text == "late"


async def test_an_injected_photo_downloads_as_the_same_bytes(
        server: LocalBotApi, bot: Bot) -> None:
    photo = bytes(range(256)) * 8
    update = server.inject_photo(CHAT, photo, caption="my id card")

    file = await bot.get_file(update["message"]["photo"][-1]["file_id"])

    assert bytes(await file.download_as_bytearray()) == photo


async def test_a_sent_document_is_stored_and_downloadable(
        server: LocalBotApi, bot: Bot) -> None:
    contract = b"%PDF-1.4 loan contract"
    message = await bot.send_document(CHAT, document=contract, filename="contract.pdf",
                                      caption="Your contract")

    [sent] = server.sent(CHAT)
    assert (sent["document"]["file_name"], sent["caption"]) == ("contract.pdf", "Your contract")
    assert message.document is not None
    file = await bot.get_file(message.document.file_id)
    assert bytes(await file.download_as_bytearray()) == contract


async def test_a_429_raises_retry_after_for_that_chat_only(
        server: LocalBotApi, bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # else PTB 22 warns, an error in this suite
    server.fail_next("sendMessage", retry_after=7, chat_id=CHAT)

    await bot.send_message(CHAT + 1, "another chat keeps flowing")
    with pytest.raises(RetryAfter) as raised:
        await bot.send_message(CHAT, "hi")
    await bot.send_message(CHAT, "after the wait")

    assert raised.value.retry_after == timedelta(seconds=7)
    assert [(c.chat_id, c.status) for c in server.calls_to("sendMessage")] == [
        (CHAT + 1, 200), (CHAT, 429), (CHAT, 200)]


async def test_a_blocked_user_raises_forbidden(server: LocalBotApi, bot: Bot) -> None:
    server.block(CHAT)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "hi")
    server.unblock(CHAT)
    await bot.send_message(CHAT, "hi again")

    server.fail_next("sendChatAction", status=403)
    with pytest.raises(Forbidden):
        await bot.send_chat_action(CHAT, ChatAction.TYPING)
    assert [m["text"] for m in server.sent(CHAT)] == ["hi again"]


async def test_html_is_checked_and_stripped_like_telegram(server: LocalBotApi, bot: Bot) -> None:
    await bot.send_message(CHAT, "<b>Due</b> &lt;today&gt;", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can.t parse entities"):
        await bot.send_message(CHAT, "<b>Due", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(CHAT, "x", reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton("long", callback_data="x" * 65)]]))

    [sent] = server.sent(CHAT)
    assert (sent["text"], sent["source_text"]) == ("Due <today>", "<b>Due</b> &lt;today&gt;")


async def test_bot_commands_are_kept_per_scope_and_language(bot: Bot) -> None:
    private = BotCommandScopeAllPrivateChats()
    await bot.set_my_commands([BotCommand("start", "开始")], scope=private, language_code="zh")
    await bot.set_my_commands([BotCommand("start", "Start")], scope=private, language_code="en")

    english = await bot.get_my_commands(scope=private, language_code="en")
    assert [c.description for c in english] == ["Start"]
    assert await bot.get_my_commands() == ()
    await bot.delete_my_commands(scope=private, language_code="en")
    assert await bot.get_my_commands(scope=private, language_code="en") == ()
    with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Start", "capitals are refused")])


async def test_a_webhook_gets_updates_with_the_secret_and_again_after_a_500(
        server: LocalBotApi, bot: Bot) -> None:
    async with webhook_receiver([500]) as (url, inbox):
        assert await bot.set_webhook(url, secret_token="s3cret")
        with pytest.raises(Conflict):
            await bot.get_updates()

        update = server.inject_message(CHAT, "hello")
        first = await asyncio.wait_for(inbox.get(), 2)
        again = await asyncio.wait_for(inbox.get(), 2)
        assert first == again == ("s3cret", update)
        assert [d.status for d in server.webhook_deliveries] == [500, 200]
        info = await bot.get_webhook_info()
        assert info.url == url and "500" in (info.last_error_message or "")

        server.redeliver(update["update_id"])
        assert await asyncio.wait_for(inbox.get(), 2) == ("s3cret", update)
        assert await bot.delete_webhook()

    server.inject_message(CHAT, "polling again")
    [polled] = await bot.get_updates()
    assert polled.message and polled.message.text == "polling again"


async def test_the_hooks_are_also_json_routes(server: LocalBotApi, bot: Bot) -> None:
    async with aiohttp.ClientSession(base_url=server.url) as http:
        async with http.post("/_test/inject_message",
                             json={"chat_id": CHAT, "text": "/start"}) as response:
            injected = (await response.json())["result"]
        [update] = await bot.get_updates()
        await bot.send_message(CHAT, "welcome")
        async with http.get("/_test/sent", params={"chat_id": CHAT}) as response:
            sent = (await response.json())["result"]
        async with http.get("/_test/calls_to", params={"method": "sendMessage"}) as response:
            calls = (await response.json())["result"]

    assert update.update_id == injected["update_id"]
    assert update.message and update.message.entities[0].type == "bot_command"
    assert [m["text"] for m in sent] == ["welcome"]
    assert calls[0]["params"] == {"chat_id": CHAT, "text": "welcome"}
