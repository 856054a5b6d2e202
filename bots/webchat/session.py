"""One open WebSocket of one chat session.

A session (a signed token, ``tokens.py``) is one chat with the bot; a customer may hold it open
in several tabs, each its own ``WebChatSession``. A socket

- reads frames, refuses what breaks the limits at once (too long, too fast) and queues the rest;
- takes its queue one turn at a time (``typing``, the engine's turn, the replies), so a chat's
  messages are answered in the order they were written;
- listens on the live bus: ``conversation:<id>`` for what the agent desk writes (an agent's
  message, "agent joined", the hand-back) and ``webchat:<chat id>`` for the turns its sibling
  tabs took, so every tab shows the same chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from bots.dialog.i18n import normalize_locale
from bots.dialog.types import Inbound, Reply
from bots.webchat.protocol import (
    ProtocolError,
    Said,
    live_frame,
    message_frame,
    parse_frame,
    reply_frames,
)
from core.live import Subscription

if TYPE_CHECKING:
    from bots.webchat.routes import WebChat

log = logging.getLogger(__name__)
CHANNEL = "web"
IDLE = {"type": "idle", "from": "bot"}  # after each turn: the typing indicator goes off


class WebChatSession:
    def __init__(self, chat: WebChat, ws: web.WebSocketResponse, chat_id: str,
                 locale_hint: str | None, payload: str | None) -> None:
        self.chat = chat
        self.ws = ws
        self.chat_id = chat_id
        self.locale_hint = locale_hint
        self.payload = payload  # first-touch attribution, sent until the conversation exists
        self.uid = uuid.uuid4().hex  # this socket, among its session's tabs
        self.conversation_id: int | None = None
        self.seen_up_to = 0  # the newest stored message sent with the history
        self.labels: dict[str, str] = {}  # button id -> label, to show a press as its label
        self.inbox: asyncio.Queue[Said | None] = asyncio.Queue()
        self._listening: list[tuple[Subscription, asyncio.Task[None]]] = []
        self._sending = asyncio.Lock()
        self._greeted = asyncio.Event()  # live messages wait until hello / history is sent

    @property
    def locale(self) -> str:
        return normalize_locale(self.locale_hint, self.chat.core.settings.locale)

    async def run(self, new_token: str | None) -> None:
        """Greet (a new session) or resume (its history), then serve until the socket closes."""
        self._listen(f"webchat:{self.chat_id}")
        try:
            await self._greet(new_token)
            worker = asyncio.create_task(self._work(), name=f"webchat-{self.uid}")
            try:
                async for frame in self.ws:
                    if frame.type == WSMsgType.TEXT:
                        await self._receive(frame.data)
                    elif frame.type == WSMsgType.BINARY:
                        await self.error("bad_request")
            finally:
                self.inbox.put_nowait(None)  # what was accepted is still answered (and stored)
                try:
                    await worker
                except asyncio.CancelledError:
                    worker.cancel()
                    raise
        finally:
            await self._stop_listening()

    async def _greet(self, new_token: str | None) -> None:
        if new_token is not None:
            await self.send({"type": "hello", "session": new_token})
            history: list[dict[str, Any]] = []
        else:
            history = await self._resume()
        if not history:  # nothing stored yet: the menu to start from (not stored itself)
            menu = reply_frames([self.chat.engine.menu(self.locale)], self.chat.core.clock.now())
            self._remember(menu[0])
            await self.send(menu[0])
        self._greeted.set()

    async def _resume(self) -> list[dict[str, Any]]:
        # Listen first, then read: a message written in between comes twice and is dropped
        # by its id (``seen_up_to``), rather than not at all.
        conversation = await self.chat.conversation_of(self.chat_id)
        history: list[dict[str, Any]] = []
        if conversation is not None:
            self._follow(conversation.id)
            history = await self.chat.history(conversation.id, conversation.locale)
        self.seen_up_to = max((m["id"] for m in history), default=0)
        for message in history:
            self._remember(message)
        await self.send({"type": "history", "messages": history})
        return history

    async def _receive(self, data: str) -> None:
        settings = self.chat.settings
        try:
            said = parse_frame(data, settings.max_message_chars)
        except ProtocolError as refused:
            await self.error(refused.code, **refused.params)
            return
        if said is None:
            return
        if not self.chat.rates.allow(self.chat_id):
            await self.error("slow_down")
            return
        self.inbox.put_nowait(said)

    async def _work(self) -> None:
        while (said := await self.inbox.get()) is not None:
            await self.send({"type": "typing", "from": "bot"})  # a turn begins
            inbound = Inbound(
                CHANNEL, self.chat_id, said.message_id(self.chat_id), text=said.text,
                action=said.action, locale_hint=self.locale_hint,
                payload=self.payload if self.conversation_id is None else None)
            try:
                replies = await self.chat.engine.handle(inbound)
            except Exception:
                log.exception("web chat turn failed")
                await self.error("unavailable")
            else:
                await self._answer(said, replies)
            await self.send(IDLE)  # the turn is over (an agent's chat gets no bot reply)

    async def _answer(self, said: Said, replies: list[Reply]) -> None:
        frames = reply_frames(replies, self.chat.core.clock.now())
        for frame in frames:
            await self.send(frame)
        try:
            if self.conversation_id is None:
                conversation = await self.chat.conversation_of(self.chat_id)
                if conversation is not None:
                    self._follow(conversation.id)
            await self._tell_siblings(said, frames)
        except Exception:  # the turn stands; other tabs catch up when they reconnect
            log.exception("web chat could not pass a turn on to live listeners")

    async def _tell_siblings(self, said: Said, frames: list[dict[str, Any]]) -> None:
        """The session's other tabs show this turn too (the user's words and the replies)."""
        text = said.text if said.text is not None else self.labels.get(said.action or "")
        mine = [] if text is None else [message_frame(
            "user", text, self.chat.core.clock.now(), client_id=said.client_id)]
        for frame in frames:
            self._remember(frame)
        await self.chat.core.live.publish(f"webchat:{self.chat_id}", {
            "origin": self.uid, "conversation": self.conversation_id,
            "messages": mine + frames})

    # The live bus ---------------------------------------------------------------------------

    def _follow(self, conversation_id: int) -> None:
        if self.conversation_id is None:
            self.conversation_id = conversation_id
            self._listen(f"conversation:{conversation_id}")

    def _listen(self, topic: str) -> None:
        subscription = self.chat.core.live.subscribe(topic)
        task = asyncio.create_task(self._pump(subscription), name=f"webchat-live-{topic}")
        self._listening.append((subscription, task))

    async def _pump(self, subscription: Subscription) -> None:
        await self._greeted.wait()
        async for topic, message in subscription:
            try:
                await self._on_live(topic, message)
            except Exception:  # one bad message never stops the socket's live updates
                log.exception("web chat could not forward a live message on %s", topic)

    async def _on_live(self, topic: str, message: dict[str, Any]) -> None:
        if topic.startswith("webchat:"):
            if message.get("origin") == self.uid:
                return
            if isinstance(message.get("conversation"), int):
                self._follow(message["conversation"])
            for frame in message.get("messages") or ():
                self._remember(frame)
                await self.send(frame)
            return
        if not isinstance(message.get("message"), dict):
            return  # a bare "look again" signal (for the agent console)
        frame = live_frame(message["message"])
        if frame is None or (isinstance(frame["id"], int) and frame["id"] <= self.seen_up_to):
            return
        self._remember(frame)
        await self.send(frame)

    async def _stop_listening(self) -> None:
        for subscription, task in self._listening:
            subscription.close()
            task.cancel()
        for _, task in self._listening:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._listening.clear()

    # Sending ----------------------------------------------------------------------------------

    def _remember(self, frame: dict[str, Any]) -> None:
        for button in frame.get("buttons") or ():
            self.labels[button["id"]] = button["label"]

    async def send(self, frame: dict[str, Any]) -> None:
        """Send a frame; a socket that closed meanwhile is not an error (the history has it)."""
        async with self._sending:
            if self.ws.closed:
                return
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await self.ws.send_json(frame)

    async def error(self, code: str, **params: Any) -> None:
        await self.send(self.chat.errors.frame(self.locale_hint, code, **params))
