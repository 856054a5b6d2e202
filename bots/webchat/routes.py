"""The web chat's HTTP routes: the page, the embeddable widget, the WebSocket and uploads.

``setup_webchat(app, core, engine)`` mounts them on the product's aiohttp app:

- ``GET /`` the chat page (``?embed=1`` inside the widget's frame, ``?lang=en|zh-CN``);
- ``GET /widget.js`` one script tag puts the chat on any page (a button opening a frame of /);
- ``GET /webchat/static/<file>`` the page's script, styles and UI strings (no inline script);
- ``GET /ws/chat`` the chat itself (``session.py``; the protocol is in docs/webchat.md);
- ``POST /webchat/upload`` a file (a KYC proof) for the session's chat.

This module only translates: turns go to the dialog engine, messages come from its replies and
the live bus. The limits (``guard.py``) and tokens (``tokens.py``) are per process.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, WSCloseCode, hdrs, web
from sqlalchemy import select

from bots.dialog.engine import DialogEngine
from bots.dialog.types import Inbound
from bots.webchat.guard import ConnectionsPerIp, SessionRates, origin_allowed, own_origin
from bots.webchat.protocol import (
    CLIENT_ID,
    ErrorTexts,
    attribution,
    history_frames,
    locale_hint,
    reply_frames,
)
from bots.webchat.session import CHANNEL, WebChatSession
from bots.webchat.tokens import SessionTokens
from core.adapters.tables import chat_messages, conversations
from core.bootstrap import Core

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
FILES = {  # what /webchat/static serves (nothing else in the folder is reachable)
    "chat.js": "text/javascript", "strings.js": "text/javascript", "chat.css": "text/css",
    "widget.js": "text/javascript", "chat.html": "text/html", "favicon.svg": "image/svg+xml"}
HISTORY = 200  # messages sent on resume
FORM_SLACK = 64 * 1024  # an upload's multipart envelope around the file itself
HEARTBEAT = 30.0  # seconds; keeps proxies from closing a quiet socket


class WebChat:
    """The web chat of one server process: its open sockets, limits, tokens and the engine."""

    def __init__(self, core: Core, engine: DialogEngine) -> None:
        if core.settings.secret_key is None:
            raise ValueError("the web chat signs its sessions with settings.secret_key; set it")
        self.core = core
        self.engine = engine
        self.settings = core.settings.webchat
        self.tokens = SessionTokens(core.settings.secret_key.get_secret_value(),
                                    timedelta(days=self.settings.session_days))
        self.rates = SessionRates(self.settings.messages_per_second)
        self.connections = ConnectionsPerIp(self.settings.connections_per_ip)
        self.errors = ErrorTexts.load(core.settings.locale)
        self.files = {name: (STATIC / name).read_bytes() for name in FILES}
        self.sockets: set[WebChatSession] = set()

    # Page, widget, static files ---------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        """The chat page (also the widget's frame, with ``?embed=1``)."""
        socket_origin = "ws" + own_origin(request).removeprefix("http")  # ws:// or wss://
        return self._file("chat.html", {
            "Content-Security-Policy": f"default-src 'self'; connect-src 'self' {socket_origin}; "
                                       "base-uri 'none'; form-action 'self'",
            "Referrer-Policy": "no-referrer"})

    async def widget(self, request: web.Request) -> web.Response:
        """The one script another site includes to show the chat."""
        return self._file("widget.js")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in FILES:
            raise web.HTTPNotFound()
        return self._file(name)

    def _file(self, name: str, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(body=self.files[name], content_type=FILES[name], charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff",
                                     "Cache-Control": "no-cache", **(headers or {})})

    # The WebSocket ----------------------------------------------------------------------------

    async def socket(self, request: web.Request) -> web.StreamResponse:
        """``GET /ws/chat[?session=TOKEN][&lang=..][&utm_source=..&utm_campaign=..|&ref=..]``"""
        if not origin_allowed(request, self.settings.allowed_origins):
            log.warning("web chat refused a handshake from origin %r",
                        request.headers.get("Origin"))
            return web.Response(status=403, text="origin not allowed")
        ip = request.remote or "unknown"
        if not self.connections.acquire(ip):
            return web.Response(status=429, text="too many connections",
                                headers={"Retry-After": "10"})
        try:
            ws = web.WebSocketResponse(heartbeat=HEARTBEAT,
                                       max_msg_size=self.settings.max_message_chars * 6 + 4096)
            await ws.prepare(request)
            now = self.core.clock.now()
            chat_id = self.tokens.chat_of(request.query.get("session"), now)
            new_token = None
            if chat_id is None:  # first visit, or a token that is forged or too old
                chat_id = self.tokens.new_chat_id()
                new_token = self.tokens.issue(chat_id, now)
            session = WebChatSession(
                self, ws, chat_id,
                locale_hint(request.query.get("lang"), request.headers.get("Accept-Language")),
                attribution(request.query))
            self.sockets.add(session)
            try:
                await session.run(new_token)
            finally:
                self.sockets.discard(session)
        finally:
            self.connections.release(ip)
        return ws

    async def shutdown(self, _app: web.Application) -> None:
        """Close every open socket as "going away": browsers reconnect to another server."""
        for session in list(self.sockets):
            await session.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    # Upload -----------------------------------------------------------------------------------

    async def upload(self, request: web.Request) -> web.Response:
        """``POST /webchat/upload``, multipart: ``session`` (the token), ``file``, optional
        ``id`` (client message id) and ``lang``. Answers ``{"messages": [...]}``."""
        hint = locale_hint(request.query.get("lang"), request.headers.get("Accept-Language"))
        limit = self.core.settings.kyc.document_max_bytes
        too_large = {"limit_mb": round(limit / 1024 / 1024, 1)}
        if (request.content_length or 0) > limit + FORM_SLACK:
            return self._refuse(413, hint, "file_too_large", **too_large)
        try:
            form = await _read_form(request, limit)
        except _TooLarge:
            return self._refuse(413, hint, "file_too_large", **too_large)
        except (ValueError, AssertionError, KeyError):  # not multipart, or malformed
            return self._refuse(400, hint, "bad_request")
        hint = locale_hint(form.get("lang"), None) or hint
        chat_id = self.tokens.chat_of(form.get("session"), self.core.clock.now())
        if chat_id is None:
            return self._refuse(401, hint, "session_invalid")
        if not form.get("file"):
            return self._refuse(400, hint, "no_file")
        if not self.rates.allow(chat_id):
            return self._refuse(429, hint, "slow_down")
        client_id = form.get("id")
        message_id = (f"{chat_id}:{client_id}" if client_id and CLIENT_ID.fullmatch(client_id)
                      else uuid.uuid4().hex)
        try:
            replies = await self.engine.handle(Inbound(
                CHANNEL, chat_id, message_id, attachment=form["file"],
                attachment_type=form.get("file_type"), locale_hint=hint))
        except Exception:
            log.exception("web chat upload failed")
            return self._refuse(503, hint, "unavailable")
        return web.json_response({"messages": reply_frames(replies, self.core.clock.now())})

    def _refuse(self, status: int, hint: str | None, code: str, **params: Any) -> web.Response:
        return web.json_response(self.errors.frame(hint, code, **params), status=status)

    # Reading the session's own conversation ---------------------------------------------------

    async def conversation_of(self, chat_id: str) -> Any:
        """The web conversation (id, locale) of this chat id, the only one its session may see;
        None before its first turn."""
        c = conversations.c
        async with self.core.uow(read_only=True) as uow:
            return (await uow.conn.execute(select(c.id, c.locale).where(
                c.channel == CHANNEL, c.chat_id == chat_id))).first()

    async def history(self, conversation_id: int, locale: str) -> list[dict[str, Any]]:
        """The conversation's last ``HISTORY`` messages, oldest first."""
        m = chat_messages.c
        async with self.core.uow(read_only=True) as uow:
            rows = (await uow.conn.execute(
                select(m.id, m.sender, m.author, m.text, m.buttons, m.at)
                .where(m.conversation_id == conversation_id)
                .order_by(m.id.desc()).limit(HISTORY))).all()
        return history_frames(reversed(rows), self.engine.menu(locale).buttons)


class _TooLarge(Exception):
    pass


async def _read_form(request: web.Request, limit: int) -> dict[str, Any]:
    """The upload's fields, reading at most ``limit`` bytes of the file (then ``_TooLarge``)."""
    form: dict[str, Any] = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ValueError("nested multipart")
        if part.name == "file":
            form["file"] = await _read_part(part, limit)
            kind = part.headers.get(hdrs.CONTENT_TYPE) or "application/octet-stream"
            form["file_type"] = kind.split(";")[0].strip().lower()
        elif part.name in ("session", "id", "lang"):
            form[part.name] = (await _read_part(part, 1024)).decode("utf-8", "replace").strip()
        else:
            await part.release()
    return form


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise _TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


WEBCHAT = web.AppKey("webchat", WebChat)


def setup_webchat(app: web.Application, core: Core, engine: DialogEngine) -> None:
    """Mount the web chat on ``app``; its sockets are closed (1001) when the server stops."""
    chat = WebChat(core, engine)
    engine.history_channels.add(CHANNEL)  # notices reach web users through their history
    app[WEBCHAT] = chat
    app.router.add_get("/", chat.page)
    app.router.add_get("/widget.js", chat.widget)
    app.router.add_get("/webchat/static/{name}", chat.static)
    app.router.add_get("/ws/chat", chat.socket)
    app.router.add_post("/webchat/upload", chat.upload)
    app.on_shutdown.append(chat.shutdown)
