"""The agent side of a conversation: take it over from the bot, write to the customer, hand it
back. The agent console (and, until it exists, tests and scripts) call these in a unit of work.

While an agent holds a conversation (mode ``human``) the bot stays quiet and the customer's
messages are only stored for the agent to read. Every message the customer sees is stored in
``chat_messages``; for channels that send from the deliveries queue (Telegram) it is queued in
the same transaction, so it reaches the chat after the commit even if the process restarts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from bots.dialog.engine import DialogEngine
from bots.dialog.types import Reply
from core import delivery
from core.adapters.tables import chat_messages, conversations
from core.adapters.uow import UnitOfWork
from core.domain.errors import DomainError


class ConversationNotFound(DomainError):
    code = "conversation_not_found"


class NotWithAgent(DomainError):
    """The conversation is not held by an agent (take it over first)."""

    code = "conversation_not_with_agent"


class AgentDesk:
    def __init__(self, engine: DialogEngine) -> None:
        self.engine = engine
        self.catalog = engine.catalog

    async def waiting(self, uow: UnitOfWork, limit: int = 50) -> list[Any]:
        """Conversations queued for a human: complaints and anger first, then oldest first."""
        c = conversations.c
        return list((await uow.conn.execute(
            select(conversations).where(c.mode == "queued")
            .order_by(c.priority.desc(), c.queued_at, c.id).limit(limit))).all())

    async def take(self, uow: UnitOfWork, conversation_id: int, agent: str) -> None:
        """An agent takes the conversation over; the customer is told who joined."""
        row = await self._row(uow, conversation_id)
        await uow.conn.execute(update(conversations).where(conversations.c.id == row.id)
                               .values(mode="human", updated_at=uow.clock.now()))
        await self._send(uow, row, Reply(
            self.catalog.text(row.locale, "agent_joined", agent=agent), sender="system"))

    async def say(self, uow: UnitOfWork, conversation_id: int, agent: str, text: str) -> None:
        """The agent writes to the customer."""
        row = await self._row(uow, conversation_id)
        if row.mode != "human":
            raise NotWithAgent("take the conversation over first", conversation=conversation_id)
        await self._send(uow, row, Reply(text.strip()[:4000], sender="agent"), kind="agent",
                         agent=agent)

    async def hand_back(self, uow: UnitOfWork, conversation_id: int) -> None:
        """Back to the bot: the queue entry and any half-done step are cleared."""
        row = await self._row(uow, conversation_id)
        await uow.conn.execute(update(conversations).where(conversations.c.id == row.id).values(
            mode="bot", flow=None, step=None, data=None, misses=0, priority=0,
            handover_reason=None, queued_at=None, updated_at=uow.clock.now()))
        menu = self.engine.menu(row.locale)
        await self._send(uow, row, Reply(self.catalog.text(row.locale, "agent_left"),
                                         menu.buttons, sender="system"))

    async def _row(self, uow: UnitOfWork, conversation_id: int) -> Any:
        row = (await uow.conn.execute(select(conversations).where(
            conversations.c.id == conversation_id))).first()
        if row is None:
            raise ConversationNotFound("no such conversation", conversation=conversation_id)
        return row

    async def _send(self, uow: UnitOfWork, row: Any, reply: Reply, kind: str = "notice",
                    agent: str | None = None) -> None:
        buttons = [{"id": b.action, "label": b.label} for b in reply.buttons] or None
        now = uow.clock.now()
        result = await uow.conn.execute(chat_messages.insert().values(
            conversation_id=row.id, sender=reply.sender, text=reply.text, buttons=buttons,
            at=now))
        if row.channel in self.engine.queued_channels:
            await delivery.add_many(uow, [{"channel": row.channel, "chat_id": row.chat_id,
                                           "text": reply.text, "buttons": buttons,
                                           "kind": kind}])
        message = {"id": int(result.inserted_primary_key[0]), "from": reply.sender,
                   "name": agent, "text": reply.text, "buttons": buttons or [],
                   "at": now.isoformat()}
        live = self.engine.core.live

        async def tell() -> None:  # live channels (web chat) and the console look again
            await live.publish(f"conversation:{row.id}", {"message": message})
            await live.publish("queue")

        uow.after_commit.append(tell)
