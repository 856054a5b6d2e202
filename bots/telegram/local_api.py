"""A local Telegram Bot API server, for tests and for trying the bots without Telegram.

``LocalBotApi`` is an aiohttp server that speaks enough of the Bot API
(https://core.telegram.org/bots/api) for python-telegram-bot v22 to run against it unmodified::

    async with LocalBotApi(tokens=["123456:TEST"]) as server:
        bot = telegram.Bot("123456:TEST", base_url=f"{server.url}/bot",
                           base_file_url=f"{server.url}/file/bot")
        server.inject_message(42, "/start")        # a user writes to the bot
        replies = await server.wait_for(42, 1)      # what the bot answered

The test hooks play the users' side: they inject messages, button presses, contacts and files,
read what the bot sent, make calls fail and keep a log of every call. They are methods of the
server and, for another process or a web view, JSON routes: ``POST /_test/<hook>`` with the
keyword arguments as a JSON object (bytes as base64 in ``data_base64``) or ``GET`` with them in
the query string; the answer is ``{"ok": true, "result": ...}``.

Faithful to Telegram:
- the ``{"ok": ...}`` envelopes, status codes and descriptions of errors: 401 for an unknown
  token, 404 for an unknown method or a malformed token, 409 for getUpdates while a webhook is
  set, 429 with ``parameters.retry_after``, 403 when the user blocked the bot, 400 for a missing
  text, an edit that changes nothing, callback_data over 64 bytes, an invalid command, a stale
  callback query or a bad file id;
- parameters as a query string, JSON, form or multipart, nested objects as JSON strings (PTB
  sends every value as a form field: strings as they are, everything else JSON-encoded);
- getUpdates: an update is confirmed by a later call with a higher offset, a negative offset
  keeps only the last updates, ``timeout`` long-polls, ``limit`` caps the batch;
- webhooks: each update is POSTed in order with ``X-Telegram-Bot-Api-Secret-Token``; a non-2xx
  answer or a connection error is retried with backoff and given up after a few attempts;
- editMessageText or editMessageReplyMarkup without ``reply_markup`` removes the inline keyboard;
- ``parse_mode=HTML`` is checked for supported, balanced tags ("can't parse entities").

Simplified:
- one message-id counter per chat, shared by users and the bot; dates are wall-clock seconds;
- no entities are computed for ``parse_mode`` (the stored text has HTML tags stripped, Markdown
  is stored as sent and not checked); ``allowed_updates`` is recorded, not applied;
- webhooks go out one at a time over plain http to any port (``max_connections`` is ignored);
- file ids are shared by all bots of one server; photo sizes are not decoded (0 x 0); a URL
  given as a file is recorded, not fetched;
- ``block``, ``fail_next`` and the chats are per server, not per bot; methods not listed in
  ``LocalBotApi._METHODS`` answer 404, as unknown methods do on Telegram.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from typing import Any, ClassVar, Self

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

JSON = dict[str, Any]
ChatId = int | str

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
DEFAULT_RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0)
TOKEN_PATTERN = re.compile(r"(\d+):[A-Za-z0-9_-]+")
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]+)?")
_BOT_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# PTB posts strings unquoted; these must not be JSON-decoded ("123" stays a text, not a number).
_STRING_PARAMS = frozenset({
    "text", "caption", "parse_mode", "callback_query_id", "url", "secret_token", "language_code",
    "file_id", "inline_message_id", "action", "photo", "document", "thumbnail", "ip_address",
    "business_connection_id", "message_effect_id", "description", "short_description", "name",
})
_BUTTON_ACTIONS = frozenset({
    "callback_data", "url", "login_url", "web_app", "switch_inline_query", "copy_text",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "callback_game", "pay",
})
_CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
})
_HTML_TAGS = frozenset({
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code",
    "pre", "blockquote", "tg-emoji",
})


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def response(self) -> web.Response:
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return web.json_response(body, status=self.status)


def _bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


def _copy(value: JSON) -> JSON:
    """A deep copy, so that later edits do not rewrite updates already handed out."""
    return json.loads(json.dumps(value))


@dataclass
class ApiCall:
    """One Bot API call as the server saw it; ``at`` is ``time.monotonic()``."""

    at: float
    bot_id: int
    method: str
    params: JSON
    chat_id: ChatId | None
    status: int = 200
    error: str | None = None


@dataclass
class WebhookDelivery:
    """One attempt to POST an update to a webhook; ``status`` is None on a connection error."""

    at: float
    bot_id: int
    update_id: int
    url: str
    attempt: int
    status: int | None
    error: str | None = None


@dataclass
class _Failure:
    method: str
    status: int
    retry_after: int
    chat_id: ChatId | None
    times: int
    description: str | None

    def error(self) -> ApiError:
        if self.status == 429:
            return ApiError(429, self.description or f"Too Many Requests: retry after "
                            f"{self.retry_after}", retry_after=self.retry_after)
        default = {400: "Bad Request: simulated failure", 401: "Unauthorized",
                   403: "Forbidden: bot was blocked by the user"}
        return ApiError(self.status, self.description or default.get(
            self.status, "Internal Server Error" if self.status >= 500 else "Simulated failure"))


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    mime_type: str | None = None
    file_name: str | None = None

    def as_file(self) -> JSON:
        return {"file_id": self.file_id, "file_unique_id": self.file_unique_id,
                "file_size": len(self.data), "file_path": self.file_path}


@dataclass
class _Upload:
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class _Record:
    """A message in a chat; for the bot's own ones, what ``sent()`` shows."""

    message: JSON
    from_bot: bool
    method: str
    reply_markup: JSON | None = None
    parse_mode: str | None = None
    source_text: str | None = None
    edits: list[JSON] = field(default_factory=list)
    deleted: bool = False

    def content(self) -> tuple[Any, Any, JSON | None]:
        return self.message.get("text"), self.message.get("caption"), self.reply_markup

    def view(self) -> JSON:
        return {**_copy(self.message), "reply_markup": self.reply_markup,
                "method": self.method, "parse_mode": self.parse_mode,
                "source_text": self.source_text, "edits": list(self.edits),
                "deleted": self.deleted}


@dataclass
class _Chat:
    info: JSON
    messages: dict[int, _Record] = field(default_factory=dict)
    last_message_id: int = 0

    def next_message_id(self) -> int:
        self.last_message_id += 1
        return self.last_message_id


@dataclass
class _Queued:
    update: JSON
    requeued: bool = False
    returned: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


@dataclass
class _Bot:
    token: str
    id: int
    queue: list[_Queued] = field(default_factory=list)
    history: dict[int, JSON] = field(default_factory=dict)
    last_update_id: int = 0
    chats: dict[ChatId, _Chat] = field(default_factory=dict)
    commands: dict[tuple[str, str], list[JSON]] = field(default_factory=dict)
    callbacks: dict[str, JSON] = field(default_factory=dict)
    webhook_url: str | None = None
    webhook_secret: str | None = None
    allowed_updates: list[str] | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    deliverer: asyncio.Task[None] | None = None

    @property
    def user(self) -> JSON:
        return {"id": self.id, "is_bot": True, "first_name": "Local Test Bot",
                "username": f"local{self.id}_bot"}

    def chat(self, chat_id: ChatId) -> _Chat:
        if isinstance(chat_id, str) and not chat_id.lstrip("-").isdigit():
            raise _bad_request("chat not found")  # @usernames of channels are not modelled
        chat_id = int(chat_id)
        if chat_id not in self.chats:
            info: JSON = ({"id": chat_id, "type": "private", "first_name": "Test"} if chat_id > 0
                          else {"id": chat_id, "type": "group", "title": "Test group"})
            self.chats[chat_id] = _Chat(info)
        return self.chats[chat_id]

    def enqueue(self, update: JSON) -> JSON:
        self.last_update_id += 1
        update = {"update_id": self.last_update_id, **update}
        self.history[self.last_update_id] = update
        self.queue.append(_Queued(update))
        return update

    def requeue(self, update_id: int) -> None:
        if update_id not in self.history:
            raise LookupError(f"no update {update_id} was ever made")
        self.queue.append(_Queued(self.history[update_id], requeued=True))
        self.queue.sort(key=lambda queued: queued.update_id)  # PTB's next offset must cover it

    def confirm(self, offset: int) -> None:
        if offset < 0:
            del self.queue[:offset]
        elif offset > 0:
            self.queue = [queued for queued in self.queue if queued.update_id >= offset
                          or (queued.requeued and not queued.returned)]


class _Params:
    """The parameters of one call, with the Bot API's way of complaining about them."""

    def __init__(self, values: JSON, uploads: dict[str, _Upload]) -> None:
        self.values = values
        self.uploads = uploads

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if value is None else value

    def required(self, name: str, missing: str | None = None) -> Any:
        value = self.values.get(name)
        if value is None or value == "":
            raise _bad_request(missing or f"parameter \"{name}\" is required")
        return value

    def int(self, name: str, default: int = 0) -> int:
        try:
            return int(self.get(name, default))
        except (TypeError, ValueError):
            raise _bad_request(f"parameter \"{name}\" must be a number") from None

    def markup(self) -> JSON | None:
        markup = self.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard", []):
            for button in row:
                _check_button(button)
        return markup


def _check_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise _bad_request("can't parse inline keyboard button: Field \"text\" must be a String")
    if not _BUTTON_ACTIONS & button.keys():
        raise _bad_request("can't parse inline keyboard button: Text buttons are unallowed in "
                           "the inline keyboard")
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_LIMIT:
        raise _bad_request("BUTTON_DATA_INVALID")


class _HtmlText(HTMLParser):
    """Telegram's HTML subset: supported tags, properly nested; collects the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HTML_TAGS or (tag == "span" and ("class", "tg-spoiler") not in attrs):
            raise _bad_request(f"can't parse entities: Unsupported start tag \"{tag}\"")
        self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise _bad_request(f"can't parse entities: Unsupported start tag \"{tag}\"")

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            raise _bad_request(f"can't parse entities: Unmatched end tag \"{tag}\"")
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _render(text: str, parse_mode: str | None) -> str:
    """The text the user sees: HTML checked and stripped; other modes as sent."""
    if not parse_mode or parse_mode.lower() != "html":
        return text
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise _bad_request("can't parse entities: Can't find end tag corresponding to start tag "
                           f"\"{parser.open[-1]}\"")
    return "".join(parser.parts)


def _form_value(name: str, raw: str) -> Any:
    if name in _STRING_PARAMS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


async def _read_params(request: web.Request) -> tuple[JSON, dict[str, _Upload]]:
    values: JSON = {name: _form_value(name, raw) for name, raw in request.query.items()}
    uploads: dict[str, _Upload] = {}
    if not request.can_read_body:
        return values, uploads
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise _bad_request("can't parse JSON object") from None
        if not isinstance(body, dict):
            raise _bad_request("can't parse JSON object")
        return {**values, **body}, uploads
    for name, value in (await request.post()).items():
        if isinstance(value, web.FileField):
            uploads[name] = _Upload(value.filename, value.content_type, value.file.read())
        else:
            values[name] = _form_value(name, str(value))
    return values, uploads


def _loggable(values: JSON, uploads: dict[str, _Upload]) -> JSON:
    files = {name: f"<{upload.filename} ({len(upload.data)} bytes)>"
             for name, upload in uploads.items()}
    return {**values, **files}


def _user(user_id: int, first_name: str, last_name: str | None, username: str | None,
          language_code: str | None) -> JSON:
    user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
    extra = {"last_name": last_name, "username": username, "language_code": language_code}
    return user | {key: value for key, value in extra.items() if value is not None}


class LocalBotApi:
    """The server; see the module docstring. Use ``async with`` or ``start()``/``stop()``."""

    def __init__(self, tokens: Sequence[str], *, host: str = "127.0.0.1", port: int = 0,
                 webhook_retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
                 webhook_timeout: float = 5.0, first_update_id: int = 0) -> None:
        """``first_update_id``: update ids continue from there (Telegram's never go back, so a
        server restarted with a product that remembers ids should start above the old ones)."""
        if not tokens:
            raise ValueError("LocalBotApi needs at least one bot token")
        self._bots: dict[str, _Bot] = {}
        for token in tokens:
            match = TOKEN_PATTERN.fullmatch(token)
            if not match:
                raise ValueError(f"not a bot token (<digits>:<secret>): {token!r}")
            self._bots[token] = _Bot(token, int(match.group(1)), last_update_id=first_update_id)
        self.host, self.port = host, port
        self._retry_delays = tuple(webhook_retry_delays)
        self._webhook_timeout = webhook_timeout
        self.calls: list[ApiCall] = []
        self.answered_callbacks: list[JSON] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._failures: list[_Failure] = []
        self._blocked: set[str] = set()
        self._files: dict[str, _StoredFile] = {}
        self._activity = asyncio.Event()
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._methods: dict[str, Callable[[_Bot, _Params], Awaitable[Any]]] = {
            name.lower(): getattr(self, f"_{handler}") for name, handler in self._METHODS.items()}

    _METHODS: ClassVar[dict[str, str]] = {
        "getMe": "get_me", "getUpdates": "get_updates", "setWebhook": "set_webhook",
        "deleteWebhook": "delete_webhook", "getWebhookInfo": "get_webhook_info",
        "sendMessage": "send_message", "sendPhoto": "send_photo", "sendDocument": "send_document",
        "editMessageText": "edit_message_text", "editMessageCaption": "edit_message_caption",
        "editMessageReplyMarkup": "edit_message_reply_markup", "deleteMessage": "delete_message",
        "answerCallbackQuery": "answer_callback_query", "setMyCommands": "set_my_commands",
        "getMyCommands": "get_my_commands", "deleteMyCommands": "delete_my_commands",
        "sendChatAction": "send_chat_action", "getFile": "get_file", "close": "true",
        "logOut": "true",
    }
    _TEST_HOOKS: ClassVar[frozenset[str]] = frozenset({
        "inject_message", "inject_callback", "inject_contact", "inject_photo", "inject_document",
        "inject_update", "sent", "wait_for", "wait_for_call", "calls_to", "fail_next", "block",
        "unblock", "requeue", "redeliver", "commands", "answered", "deliveries",
    })

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base address, e.g. ``http://127.0.0.1:43121``."""
        if self._runner is None:
            raise RuntimeError("the server is not started")
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_route("*", "/_test/{hook}", self._handle_test_hook)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        log.info("local Bot API listening on %s", self.url)

    async def stop(self) -> None:
        self._closing = True
        self._notify()  # ends the long polls
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- test hooks: the users' side ------------------------------------------------------

    def inject_message(self, chat_id: int, text: str, *, user_id: int | None = None,
                       first_name: str = "Test", last_name: str | None = None,
                       username: str | None = None, language_code: str | None = "zh-hans",
                       reply_to_message_id: int | None = None, token: str | None = None) -> JSON:
        """A user writes ``text``; a leading /command gets its ``bot_command`` entity."""
        content: JSON = {"text": text}
        command = _COMMAND.match(text)
        if command:
            content["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": len(command.group(0))}]
        if reply_to_message_id is not None:
            replied = self._bot(token).chat(chat_id).messages.get(reply_to_message_id)
            if replied is None:
                raise LookupError(f"no message {reply_to_message_id} in chat {chat_id}")
            content["reply_to_message"] = _copy(replied.message)
        sender = _user(user_id or self._default_user(chat_id), first_name, last_name, username,
                       language_code)
        return self._inject_user_message(token, chat_id, sender, content)

    def inject_contact(self, chat_id: int, phone_number: str, *, user_id: int | None = None,
                       with_user_id: bool = True, first_name: str = "Test",
                       last_name: str | None = None, language_code: str | None = "zh-hans",
                       token: str | None = None) -> JSON:
        """The user shares a contact: their own by default, another user's with ``user_id``,
        or an address-book card without a Telegram account with ``with_user_id=False``."""
        sender = _user(self._default_user(chat_id), first_name, last_name, None, language_code)
        contact: JSON = {"phone_number": phone_number, "first_name": first_name}
        if with_user_id:
            contact["user_id"] = user_id or sender["id"]
        return self._inject_user_message(token, chat_id, sender, {"contact": contact})

    def inject_photo(self, chat_id: int, data: bytes, caption: str | None = None, *,
                     user_id: int | None = None, first_name: str = "Test",
                     language_code: str | None = "zh-hans", token: str | None = None) -> JSON:
        """The user sends a photo; getFile and the file route give ``data`` back."""
        stored = self._store_file("photo", data, mime_type="image/jpeg")
        content: JSON = {"photo": [self._photo_size(stored)]}
        if caption is not None:
            content["caption"] = caption
        sender = _user(user_id or self._default_user(chat_id), first_name, None, None,
                       language_code)
        return self._inject_user_message(token, chat_id, sender, content)

    def inject_document(self, chat_id: int, data: bytes, file_name: str,
                        mime_type: str = "application/octet-stream", caption: str | None = None,
                        *, user_id: int | None = None, first_name: str = "Test",
                        language_code: str | None = "zh-hans", token: str | None = None) -> JSON:
        """The user sends a file; getFile and the file route give ``data`` back."""
        stored = self._store_file("document", data, mime_type=mime_type, file_name=file_name)
        content: JSON = {"document": self._document(stored)}
        if caption is not None:
            content["caption"] = caption
        sender = _user(user_id or self._default_user(chat_id), first_name, None, None,
                       language_code)
        return self._inject_user_message(token, chat_id, sender, content)

    def inject_callback(self, chat_id: int, message_id: int, data: str, *,
                        user_id: int | None = None, first_name: str = "Test",
                        language_code: str | None = "zh-hans", strict: bool = True,
                        token: str | None = None) -> JSON:
        """The user presses a button of a message the bot sent. With ``strict`` (the default)
        ``data`` must be the callback_data of a button the message has now; pass
        ``strict=False`` to forge a stale or tampered press."""
        bot = self._bot(token)
        record = bot.chat(chat_id).messages.get(message_id)
        if record is None or not record.from_bot or record.deleted:
            raise LookupError(f"the bot has no message {message_id} in chat {chat_id}")
        buttons = [button.get("callback_data") for row in
                   (record.reply_markup or {}).get("inline_keyboard", []) for button in row]
        if strict and data not in buttons:
            raise LookupError(f"message {message_id} has no button {data!r}; it has {buttons}")
        query_id = f"{bot.id}{bot.last_update_id + 1:010d}"
        query = {"id": query_id, "chat_instance": str(chat_id), "data": data,
                 "from": _user(user_id or self._default_user(chat_id), first_name, None, None,
                               language_code),
                 "message": _copy(record.message)}
        bot.callbacks[query_id] = query
        return self._deliver(bot, {"callback_query": query})

    def inject_update(self, update: JSON, *, token: str | None = None) -> JSON:
        """Any other update (``edited_message``, ``my_chat_member``...); gets an update_id."""
        return self._deliver(self._bot(token), {k: v for k, v in update.items()
                                                if k != "update_id"})

    def requeue(self, update_id: int, *, token: str | None = None) -> None:
        """Hand an update out again: to getUpdates (even if confirmed) or to the webhook."""
        self._bot(token).requeue(update_id)
        self._notify()

    redeliver = requeue

    def sent(self, chat_id: int, *, token: str | None = None) -> list[JSON]:
        """What the bot sent to a chat, oldest first: each is the message as it is now (edits
        applied) plus ``reply_markup`` (any kind), ``method``, ``parse_mode``,
        ``source_text`` (before HTML was stripped), ``edits`` and ``deleted``."""
        chat = self._bot(token).chats.get(chat_id)
        if chat is None:
            return []
        return [record.view() for record in chat.messages.values() if record.from_bot]

    async def wait_for(self, chat_id: int, count: int = 1,
                       timeout: float = 5.0,  # noqa: ASYNC109 - a test helper's own deadline
                       *, token: str | None = None) -> list[JSON]:
        """Wait until the bot sent at least ``count`` messages to the chat; return them all."""
        try:
            await self._wait_until(lambda: len(self.sent(chat_id, token=token)) >= count,
                                   timeout)
        except TimeoutError:
            got = [message.get("text") or message.get("caption")
                   for message in self.sent(chat_id, token=token)]
            raise TimeoutError(f"chat {chat_id}: wanted {count} messages in {timeout}s, got "
                               f"{len(got)}: {got}") from None
        return self.sent(chat_id, token=token)

    async def wait_for_call(self, method: str, count: int = 1,
                            timeout: float = 5.0,  # noqa: ASYNC109 - as wait_for
                            *, chat_id: ChatId | None = None) -> list[ApiCall]:
        """Wait until ``method`` was called at least ``count`` times (for the chat, if given)."""
        try:
            await self._wait_until(lambda: len(self.calls_to(method, chat_id)) >= count, timeout)
        except TimeoutError:
            raise TimeoutError(f"{method} was called {len(self.calls_to(method, chat_id))} "
                               f"times in {timeout}s, wanted {count}") from None
        return self.calls_to(method, chat_id)

    def calls_to(self, method: str | None = None, chat_id: ChatId | None = None) -> list[ApiCall]:
        """The call log, filtered by method (case-insensitive) and chat."""
        return [call for call in self.calls
                if (method is None or call.method.lower() == method.lower())
                and (chat_id is None or str(call.chat_id) == str(chat_id))]

    def fail_next(self, method: str, *, status: int = 429, retry_after: int = 1,
                  chat_id: ChatId | None = None, times: int = 1,
                  description: str | None = None) -> None:
        """The next ``times`` calls of ``method`` (to ``chat_id`` only, if given) fail with
        ``status``: 429 carries ``parameters.retry_after``, 403 says the bot was blocked."""
        self._failures.append(_Failure(method.lower(), status, retry_after, chat_id, times,
                                       description))

    def block(self, chat_id: ChatId) -> None:
        """The user blocks the bot: every send or edit to the chat is a 403 until unblocked."""
        self._blocked.add(str(chat_id))

    def unblock(self, chat_id: ChatId) -> None:
        self._blocked.discard(str(chat_id))

    def commands(self, scope: JSON | None = None, language_code: str = "", *,
                 token: str | None = None) -> list[JSON]:
        """The commands set for exactly this scope and language (as getMyCommands answers)."""
        return list(self._bot(token).commands.get(_scope_key(scope, language_code), []))

    # -- helpers of the hooks --------------------------------------------------------------

    def _bot(self, token: str | None) -> _Bot:
        if token is None:
            return next(iter(self._bots.values()))
        return self._bots[token]

    @staticmethod
    def _default_user(chat_id: int) -> int:
        if chat_id < 0:
            raise ValueError(f"chat {chat_id} is a group: say which user_id writes")
        return chat_id

    def _inject_user_message(self, token: str | None, chat_id: int, sender: JSON,
                             content: JSON) -> JSON:
        bot = self._bot(token)
        chat = bot.chat(chat_id)
        if chat.info["type"] == "private":
            chat.info = {"id": chat_id, "type": "private", "first_name": sender["first_name"]}
        message = {"message_id": chat.next_message_id(), "from": sender, "chat": chat.info,
                   "date": int(time.time()), **content}
        chat.messages[message["message_id"]] = _Record(message, from_bot=False, method="")
        return self._deliver(bot, {"message": message})

    def _deliver(self, bot: _Bot, update: JSON) -> JSON:
        update = bot.enqueue(update)
        self._notify()
        return update

    def _notify(self) -> None:
        """Wake everything waiting for news (long polls, webhook delivery, ``wait_for``)."""
        self._activity.set()
        self._activity = asyncio.Event()

    async def _wait_until(self, ready: Callable[[], bool], seconds: float) -> None:
        async with asyncio.timeout(seconds):
            while not ready():
                await self._activity.wait()

    def _store_file(self, kind: str, data: bytes, *, mime_type: str | None = None,
                    file_name: str | None = None) -> _StoredFile:
        number = len(self._files) + 1
        suffix = {"photo": ".jpg"}.get(kind, f"_{file_name}" if file_name else "")
        stored = _StoredFile(f"local-{kind}-{number}", f"u{number:06d}",
                             f"{kind}s/file_{number}{suffix}", data, mime_type, file_name)
        self._files[stored.file_id] = stored
        return stored

    @staticmethod
    def _photo_size(stored: _StoredFile) -> JSON:
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "width": 0, "height": 0, "file_size": len(stored.data)}

    @staticmethod
    def _document(stored: _StoredFile) -> JSON:
        document = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                    "file_name": stored.file_name, "mime_type": stored.mime_type,
                    "file_size": len(stored.data)}
        return {key: value for key, value in document.items() if value is not None}

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle_method(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        if not TOKEN_PATTERN.fullmatch(token):
            return ApiError(404, "Not Found").response()
        bot = self._bots.get(token)
        if bot is None:
            return ApiError(401, "Unauthorized").response()
        try:
            values, uploads = await _read_params(request)
        except ApiError as error:
            return error.response()
        call = ApiCall(time.monotonic(), bot.id, method, _loggable(values, uploads),
                       values.get("chat_id"))
        self.calls.append(call)
        try:
            handler = self._methods.get(method.lower())
            if handler is None:
                log.warning("local Bot API: method %s is not implemented", method)
                raise ApiError(404, "Not Found")
            self._check_failures(method, call.chat_id)
            result = await handler(bot, _Params(values, uploads))
        except ApiError as error:
            call.status, call.error = error.status, error.description
            return error.response()
        finally:
            self._notify()
        return web.json_response({"ok": True, "result": result})

    def _check_failures(self, method: str, chat_id: ChatId | None) -> None:
        for failure in self._failures:
            if failure.method == method.lower() and (
                    failure.chat_id is None or str(failure.chat_id) == str(chat_id)):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                raise failure.error()
        reaches_user = method.lower().startswith(("send", "edit", "copy", "forward"))
        if reaches_user and str(chat_id) in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    async def _handle_file(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        if token not in self._bots:
            status = 401 if TOKEN_PATTERN.fullmatch(token) else 404
            return ApiError(status, "Unauthorized" if status == 401 else "Not Found").response()
        path = request.match_info["path"]
        for stored in self._files.values():
            if stored.file_path == path:
                return web.Response(body=stored.data,
                                    content_type=stored.mime_type or "application/octet-stream")
        return ApiError(404, "Not Found").response()

    async def _handle_test_hook(self, request: web.Request) -> web.Response:
        name = request.match_info["hook"]
        if name not in self._TEST_HOOKS:
            return web.json_response({"ok": False, "description": f"no test hook {name}"},
                                     status=404)
        kwargs: JSON = {key: _form_value(key, value) for key, value in request.query.items()}
        if request.can_read_body:
            kwargs.update(await request.json())
        if "data_base64" in kwargs:
            kwargs["data"] = base64.b64decode(kwargs.pop("data_base64"))
        hook = {"answered": self._answered, "deliveries": self._deliveries}.get(name)
        try:
            result = (hook or getattr(self, name))(**kwargs)
            if asyncio.iscoroutine(result):
                result = await result
        except TimeoutError as error:
            return web.json_response({"ok": False, "description": str(error)}, status=408)
        except (TypeError, ValueError, LookupError) as error:
            return web.json_response({"ok": False, "description": str(error)}, status=400)
        if isinstance(result, list):
            result = [asdict(item) if isinstance(item, ApiCall) else item for item in result]
        return web.json_response({"ok": True, "result": result})

    def _answered(self) -> list[JSON]:
        return self.answered_callbacks

    def _deliveries(self) -> list[JSON]:
        return [asdict(delivery) for delivery in self.webhook_deliveries]

    # -- Bot API methods -------------------------------------------------------------------

    async def _true(self, bot: _Bot, params: _Params) -> bool:
        return True

    async def _get_me(self, bot: _Bot, params: _Params) -> JSON:
        return {**bot.user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False, "can_connect_to_business": False,
                "has_main_web_app": False}

    async def _get_updates(self, bot: _Bot, params: _Params) -> list[JSON]:
        if bot.webhook_url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        if params.get("allowed_updates") is not None:
            bot.allowed_updates = params.get("allowed_updates")
        limit = min(max(params.int("limit", 100), 1), 100)
        bot.confirm(params.int("offset"))
        loop = asyncio.get_running_loop()
        try:
            timeout = max(float(params.get("timeout", 0)), 0.0)
        except (TypeError, ValueError):
            raise _bad_request('parameter "timeout" must be a number') from None
        deadline = loop.time() + timeout
        while not bot.queue and not self._closing and not bot.webhook_url:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._activity.wait()
            if loop.time() >= deadline:
                break
        batch = [] if bot.webhook_url else bot.queue[:limit]
        for queued in batch:
            queued.returned = True
        return [queued.update for queued in batch]

    async def _set_webhook(self, bot: _Bot, params: _Params) -> bool:
        url = str(params.get("url", ""))
        if not url:
            return await self._delete_webhook(bot, params)
        if not url.startswith(("http://", "https://")):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(str(secret)):
            raise _bad_request("secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            bot.queue.clear()
        bot.webhook_url, bot.webhook_secret = url, secret
        if params.get("allowed_updates") is not None:
            bot.allowed_updates = params.get("allowed_updates")
        if bot.deliverer is None or bot.deliverer.done():
            bot.deliverer = asyncio.create_task(self._run_webhook(bot))
            self._tasks.add(bot.deliverer)
            bot.deliverer.add_done_callback(self._tasks.discard)
        return True

    async def _delete_webhook(self, bot: _Bot, params: _Params) -> bool:
        if params.get("drop_pending_updates"):
            bot.queue.clear()
        bot.webhook_url = bot.webhook_secret = None
        if bot.deliverer is not None:
            bot.deliverer.cancel()  # not awaited: the caller may be the webhook receiver itself
            bot.deliverer = None
        return True

    async def _get_webhook_info(self, bot: _Bot, params: _Params) -> JSON:
        info: JSON = {"url": bot.webhook_url or "", "has_custom_certificate": False,
                      "pending_update_count": len(bot.queue)}
        if bot.webhook_url:
            info["max_connections"] = 40
        if bot.last_error_date is not None:
            info |= {"last_error_date": bot.last_error_date,
                     "last_error_message": bot.last_error_message}
        if bot.allowed_updates is not None:
            info["allowed_updates"] = bot.allowed_updates
        return info

    async def _run_webhook(self, bot: _Bot) -> None:
        """Deliver the queue in order; retry one update with backoff, then give it up."""
        attempt = 0
        while bot.webhook_url and not self._closing:
            if not bot.queue:
                await self._activity.wait()
                continue
            queued = bot.queue[0]
            attempt += 1
            status, error = await self._post_update(bot, queued.update)
            self.webhook_deliveries.append(WebhookDelivery(
                time.monotonic(), bot.id, queued.update_id, bot.webhook_url, attempt, status,
                error))
            if error is None or attempt > len(self._retry_delays):
                if error is not None:
                    log.warning("webhook gave up update %d: %s", queued.update_id, error)
                with contextlib.suppress(ValueError):
                    bot.queue.remove(queued)
                attempt = 0
                self._notify()
                continue
            bot.last_error_date, bot.last_error_message = int(time.time()), error
            await asyncio.sleep(self._retry_delays[attempt - 1])

    async def _post_update(self, bot: _Bot, update: JSON) -> tuple[int | None, str | None]:
        assert self._session is not None and bot.webhook_url is not None
        headers = ({"X-Telegram-Bot-Api-Secret-Token": bot.webhook_secret}
                   if bot.webhook_secret else {})
        try:
            async with self._session.post(
                    bot.webhook_url, json=update, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self._webhook_timeout)) as response:
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, f"Connection failed: {exc!r}"
        if 200 <= response.status < 300:
            return response.status, None
        return response.status, f"Wrong response from the webhook: {response.status} " \
                                f"{response.reason}"

    async def _send_message(self, bot: _Bot, params: _Params) -> JSON:
        text = str(params.required("text", "message text is empty"))
        if not text.strip():
            raise _bad_request("message text is empty")
        shown = _render(text, params.get("parse_mode"))
        if len(shown) > TEXT_LIMIT:
            raise _bad_request("message is too long")
        return self._bot_message(bot, params, "sendMessage", {"text": shown}, source_text=text)

    async def _send_photo(self, bot: _Bot, params: _Params) -> JSON:
        stored = self._input_file(params, "photo", "image/jpeg")
        return self._bot_message(bot, params, "sendPhoto",
                                 {"photo": [self._photo_size(stored)], **self._caption(params)})

    async def _send_document(self, bot: _Bot, params: _Params) -> JSON:
        stored = self._input_file(params, "document", None)
        return self._bot_message(bot, params, "sendDocument",
                                 {"document": self._document(stored), **self._caption(params)})

    async def _send_chat_action(self, bot: _Bot, params: _Params) -> bool:
        bot.chat(params.required("chat_id", "chat_id is empty"))
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    def _caption(self, params: _Params) -> JSON:
        caption = params.get("caption")
        if caption is None:
            return {}
        shown = _render(str(caption), params.get("parse_mode"))
        if len(shown) > CAPTION_LIMIT:
            raise _bad_request("message caption is too long")
        return {"caption": shown}

    def _input_file(self, params: _Params, name: str, mime_type: str | None) -> _StoredFile:
        """An upload (multipart part, also via ``attach://``), a known file_id, or a URL."""
        value = params.get(name)
        upload = params.uploads.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            upload = params.uploads.get(value.removeprefix("attach://"))
        if upload is not None:
            return self._store_file(name, upload.data, file_name=upload.filename,
                                    mime_type=upload.content_type or mime_type)
        if isinstance(value, str) and value in self._files:
            return self._files[value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return self._store_file(name, b"", file_name=value.rsplit("/", 1)[-1],
                                    mime_type=mime_type)
        raise _bad_request("wrong file identifier/HTTP URL specified")

    def _bot_message(self, bot: _Bot, params: _Params, method: str, content: JSON, *,
                     source_text: str | None = None) -> JSON:
        chat = bot.chat(params.required("chat_id", "chat_id is empty"))
        markup = params.markup()
        message: JSON = {"message_id": 0, "from": bot.user, "chat": chat.info,
                         "date": int(time.time()), **content}
        reply_to = (params.get("reply_parameters") or {}).get("message_id") \
            or params.get("reply_to_message_id")
        if reply_to:
            replied = chat.messages.get(int(reply_to))
            if replied is not None:
                message["reply_to_message"] = _copy(replied.message)
            elif not (params.get("reply_parameters") or {}).get(
                    "allow_sending_without_reply", params.get("allow_sending_without_reply")):
                raise _bad_request("message to be replied not found")
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup  # Telegram echoes inline keyboards only
        message["message_id"] = chat.next_message_id()
        chat.messages[message["message_id"]] = _Record(
            message, from_bot=True, method=method, reply_markup=markup,
            parse_mode=params.get("parse_mode"), source_text=source_text)
        return message

    def _editable(self, bot: _Bot, params: _Params) -> _Record:
        if params.get("inline_message_id") is not None:
            raise _bad_request("inline messages are not supported by the local Bot API")
        chat = bot.chat(params.required("chat_id", "chat_id is empty"))
        record = chat.messages.get(params.int("message_id"))
        if record is None or record.deleted:
            raise _bad_request("message to edit not found")
        if not record.from_bot:
            raise _bad_request("message can't be edited")
        return record

    def _edit(self, record: _Record, method: str, content: JSON, markup: JSON | None, *,
              source_text: str | None = None, parse_mode: str | None = None) -> JSON:
        before = record.content()
        after_message = {**record.message, **content}
        if (after_message.get("text"), after_message.get("caption"), markup) == before:
            raise _bad_request("message is not modified: specified new message content and "
                               "reply markup are exactly the same as a current content and "
                               "reply markup of the message")
        record.message.update(content)
        record.message["edit_date"] = int(time.time())
        record.message.pop("reply_markup", None)
        if markup and "inline_keyboard" in markup:
            record.message["reply_markup"] = markup
        record.reply_markup = markup
        if source_text is not None:
            record.source_text, record.parse_mode = source_text, parse_mode
        record.edits.append({"method": method, "at": time.monotonic(), **content,
                             "reply_markup": markup})
        return record.message

    async def _edit_message_text(self, bot: _Bot, params: _Params) -> JSON:
        record = self._editable(bot, params)
        if "text" not in record.message:
            raise _bad_request("there is no text in the message to edit")
        text = str(params.required("text", "message text is empty"))
        shown = _render(text, params.get("parse_mode"))
        if len(shown) > TEXT_LIMIT:
            raise _bad_request("MESSAGE_TOO_LONG")
        return self._edit(record, "editMessageText", {"text": shown}, params.markup(),
                          source_text=text, parse_mode=params.get("parse_mode"))

    async def _edit_message_caption(self, bot: _Bot, params: _Params) -> JSON:
        record = self._editable(bot, params)
        if "text" in record.message:
            raise _bad_request("there is no caption in the message to edit")
        return self._edit(record, "editMessageCaption", self._caption(params) or
                          {"caption": ""}, params.markup())

    async def _edit_message_reply_markup(self, bot: _Bot, params: _Params) -> JSON:
        record = self._editable(bot, params)
        return self._edit(record, "editMessageReplyMarkup", {}, params.markup())

    async def _delete_message(self, bot: _Bot, params: _Params) -> bool:
        chat = bot.chat(params.required("chat_id", "chat_id is empty"))
        record = chat.messages.get(params.int("message_id"))
        if record is None or record.deleted:
            raise _bad_request("message to delete not found")
        record.deleted = True
        return True

    async def _answer_callback_query(self, bot: _Bot, params: _Params) -> bool:
        query_id = str(params.required("callback_query_id"))
        query = bot.callbacks.pop(query_id, None)
        if query is None:
            raise _bad_request("query is too old and response timeout expired or query ID is "
                               "invalid")
        message = query.get("message") or {}
        self.answered_callbacks.append({
            "callback_query_id": query_id, "data": query.get("data"),
            "chat_id": message.get("chat", {}).get("id"),
            "message_id": message.get("message_id"), "text": params.get("text"),
            "show_alert": bool(params.get("show_alert", False)), "url": params.get("url"),
            "cache_time": params.int("cache_time"), "at": time.monotonic()})
        return True

    async def _set_my_commands(self, bot: _Bot, params: _Params) -> bool:
        commands = params.required("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _BOT_COMMAND.fullmatch(
                    str(command.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = _scope_key(params.get("scope"), params.get("language_code", ""))
        bot.commands[key] = [{"command": c["command"], "description": c["description"]}
                             for c in commands]
        return True

    async def _get_my_commands(self, bot: _Bot, params: _Params) -> list[JSON]:
        key = _scope_key(params.get("scope"), params.get("language_code", ""))
        return list(bot.commands.get(key, []))

    async def _delete_my_commands(self, bot: _Bot, params: _Params) -> bool:
        key = _scope_key(params.get("scope"), params.get("language_code", ""))
        bot.commands.pop(key, None)
        return True

    async def _get_file(self, bot: _Bot, params: _Params) -> JSON:
        stored = self._files.get(str(params.required("file_id")))
        if stored is None:
            raise _bad_request("invalid file_id")
        return stored.as_file()


def _scope_key(scope: JSON | None, language_code: str) -> tuple[str, str]:
    return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code or ""


async def serve(host: str = "127.0.0.1", port: int = 8081,
                tokens: Sequence[str] = ("123456:LOCAL-TEST-TOKEN",)) -> None:
    """Run the server until cancelled (for ``run.py`` or by hand)."""
    async with LocalBotApi(tokens, host=host, port=port) as server:
        log.info("point the bot at base_url=%s/bot base_file_url=%s/file/bot; test hooks under "
                 "%s/_test/", server.url, server.url, server.url)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bots.telegram.local_api --token 123:abc --port 8081``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", action="append", dest="tokens",
                        help="a bot token to accept (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.tokens or ("123456:LOCAL-TEST-TOKEN",)))


if __name__ == "__main__":
    main()
