"""The chat side of the demo simulation (``core.simulator.ChatPort``): customers' messages go
through the real dialog engine, agents work through the agent desk, due notices through the
dispatcher, and a simulated Telegram confirms every message queued for it, as the Bot API
would have at the time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from itertools import count
from typing import Any

from sqlalchemy import select

from bots.dialog.agents import Agent, AgentDesk
from bots.dialog.dispatcher import Dispatcher
from bots.dialog.engine import DialogEngine
from bots.dialog.i18n import Catalog
from bots.dialog.types import Inbound
from core import delivery
from core.adapters.tables import conversations
from core.bootstrap import Core
from knowledge_base import KnowledgeBase

TELEGRAM, WEB = "telegram", "web"


class EngineChat:
    def __init__(self, core: Core, kb: KnowledgeBase | None = None) -> None:
        self.core = core
        self.kb = kb or KnowledgeBase.load()
        self.engine = DialogEngine(core, self.kb, Catalog.load(),
                                   queued_channels=frozenset({TELEGRAM}))
        self.engine.history_channels.add(WEB)
        self.desk = AgentDesk(self.engine)
        self.dispatcher = Dispatcher(self.engine)
        self._ids = count(1)
        self._questions: dict[str, list[str]] = {}

    def questions(self, locale: str) -> Sequence[str]:
        if locale not in self._questions:
            self._questions[locale] = [q for article in self.kb.articles.values()
                                       for q in article.questions.get(locale, ())]
        return self._questions[locale]

    async def say(self, uow: Any, channel: str, chat_id: str, locale: str, *,
                  text: str | None = None, action: str | None = None) -> None:
        await self.engine.turn(uow, Inbound(channel, chat_id, f"sim-{next(self._ids)}",
                                            text=text, action=action, locale_hint=locale))

    async def waiting(self, uow: Any) -> dict[tuple[str, str], int]:
        c = conversations.c
        rows = await uow.conn.execute(select(c.id, c.channel, c.chat_id).where(c.mode == "queued"))
        return {(r.channel, r.chat_id): r.id for r in rows}

    async def agent_answers(self, uow: Any, conversation_id: int, agent_id: int,
                            agent_name: str, text: str, *, resolve: bool) -> None:
        agent = Agent(agent_id, agent_name)
        await self.desk.claim(uow, conversation_id, agent)
        uow.clock.advance(timedelta(seconds=40))  # typing
        await self.desk.say(uow, conversation_id, agent, text)
        if resolve:
            uow.clock.advance(timedelta(minutes=3))
            await self.desk.resolve(uow, conversation_id, agent)

    async def deliver(self) -> int:
        """Due notices to chats, then every queued Telegram message confirmed as sent."""
        sent = 0
        while True:
            async with self.core.uow() as uow:
                handed = (await self.dispatcher.run_once(uow)).total
                await uow.commit()
            if not handed:
                break
        lease = timedelta(seconds=self.core.settings.delivery.lease_seconds)
        while True:
            async with self.core.uow() as uow:
                claimed = await delivery.claim(uow, TELEGRAM, 1000, lease)
                await delivery.sent(uow, [(d.id, f"tg-{d.id}") for d in claimed])
                await uow.commit()
            sent += len(claimed)
            if not claimed:
                return sent

    async def close(self) -> None:
        await self.engine.close()
