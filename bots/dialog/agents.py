"""The agent side of a conversation: the queue, claiming, writing, notes, the customer's context,
transfers, resolving with a rating, snoozing, handing back to the bot. The agent console calls
these in a unit of work (tests and scripts too).

While an agent holds a conversation (mode ``human``) the bot stays quiet and the customer's
messages are only stored for the agent to read. Every message the customer sees is stored in
``chat_messages``; for channels that send from the deliveries queue (Telegram) it is queued in
the same transaction, so it reaches the chat after the commit even if the process restarts; the
live bus carries it to the web chat and the console after the commit.

The queue: complaints and anger first, then VIP customers (tier by the amount they have
invested, ``support.vip_invested``), then the longest waiting; snoozed conversations wait until
their time. Claiming is one conditional UPDATE, so of two agents claiming at the same instant
exactly one wins; an agent at capacity (``support.capacity`` or their own) cannot claim more.
Every staff action is in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select, update

from bots.dialog.engine import DialogEngine
from bots.dialog.types import Button, Reply
from core import delivery
from core.adapters.tables import (
    audit_log,
    bids,
    channel_identities,
    chat_messages,
    conversation_notes,
    conversations,
    identities,
    servicing_tasks,
    staff,
    users,
)
from core.adapters.uow import UnitOfWork
from core.domain.errors import DomainError
from core.domain.identity import mask_name
from core.services import audit

RATINGS = (1, 2, 3, 4, 5)
REVEALABLE = ("phone", "name", "id_number")


class ConversationNotFound(DomainError):
    code = "conversation_not_found"


class NotWithAgent(DomainError):
    """The conversation is not held by this agent (claim it first)."""

    code = "conversation_not_with_agent"


class AlreadyClaimed(DomainError):
    """Another agent claimed it first, or it is no longer waiting."""

    code = "conversation_already_claimed"


class AtCapacity(DomainError):
    code = "agent_at_capacity"


class RevealRefused(DomainError):
    """A masked field is shown only with one of the configured reasons."""

    code = "reveal_refused"


@dataclass(frozen=True, slots=True)
class Waiting:
    """A conversation in the queue, as the console lists it (nothing unmasked)."""

    conversation_id: int
    channel: str
    locale: str
    customer: str  # masked verified name, else masked phone, else the chat's display name
    reason: str | None  # asked | bot_miss | complaint | collections
    priority: int
    tier: int  # 0 regular, 1.. VIP tiers
    waiting_seconds: int


@dataclass(frozen=True, slots=True)
class Agent:
    """Who acts: a staff member's id and the name customers see."""

    id: int
    display_name: str


class AgentDesk:
    def __init__(self, engine: DialogEngine) -> None:
        self.engine = engine
        self.catalog = engine.catalog
        self.settings = engine.core.settings.support

    # The queue ------------------------------------------------------------------------------

    async def waiting(self, uow: UnitOfWork, limit: int = 50) -> list[Waiting]:
        """The queue in the order agents should take it."""
        c, ci = conversations.c, channel_identities.c
        now = uow.clock.now()
        rows = (await uow.conn.execute(
            select(conversations, ci.display_name.label("chat_name"),
                   ci.user_id.label("customer_id"))
            .select_from(conversations.outerjoin(
                channel_identities, (ci.channel == c.channel) & (ci.external_id == c.chat_id)))
            .where(c.mode == "queued",
                   or_(c.snoozed_until.is_(None), c.snoozed_until <= now)))).all()
        customers = {r.customer_id for r in rows if r.customer_id is not None}
        tiers = await self._tiers(uow, customers)
        names = await self._names(uow, customers)
        found = [Waiting(
            r.id, r.channel, r.locale,
            names.get(r.customer_id) or (mask_name(r.chat_name) if r.chat_name else "—"),
            r.handover_reason, r.priority, tiers.get(r.customer_id, 0),
            int((now - (r.snoozed_until or r.queued_at or r.updated_at)).total_seconds()))
            for r in rows]
        found.sort(key=lambda w: (-w.priority, -w.tier, -w.waiting_seconds, w.conversation_id))
        return found[:limit]

    async def _tiers(self, uow: UnitOfWork, user_ids: set[int]) -> dict[int, int]:
        """VIP tier by the amount invested and not yet repaid (frozen and active bids)."""
        if not user_ids:
            return {}
        b = bids.c
        rows = (await uow.conn.execute(
            select(b.investor_id, b.amount, b.principal_repaid)
            .where(b.investor_id.in_(user_ids), b.status.in_(("active", "frozen"))))).all()
        totals: dict[int, Decimal] = {}
        for row in rows:
            totals[row.investor_id] = (totals.get(row.investor_id, Decimal(0))
                                       + Decimal(row.amount) - Decimal(row.principal_repaid))
        thresholds = sorted(self.settings.vip_invested)
        return {user: sum(1 for t in thresholds if total >= t) for user, total in totals.items()}

    async def _names(self, uow: UnitOfWork, user_ids: set[int]) -> dict[int, str]:
        """Masked verified names, else masked phones."""
        if not user_ids:
            return {}
        i, u = identities.c, users.c
        names = {r.user_id: r.name_masked for r in (await uow.conn.execute(
            select(i.user_id, i.name_masked).where(
                i.user_id.in_(user_ids), i.status == "verified"))).all()}
        for r in (await uow.conn.execute(select(u.id, u.phone_masked).where(
                u.id.in_(user_ids)))).all():
            if r.phone_masked:
                names.setdefault(r.id, r.phone_masked)
        return names

    # Taking part ----------------------------------------------------------------------------

    async def claim(self, uow: UnitOfWork, conversation_id: int, agent: Agent) -> None:
        """The agent takes a waiting conversation; of two simultaneous claims exactly one wins."""
        row = await self._row(uow, conversation_id)
        await self._check_capacity(uow, agent.id)
        c = conversations.c
        now = uow.clock.now()
        result = await uow.conn.execute(update(conversations).where(
            c.id == row.id, c.mode == "queued").values(
            mode="human", agent_id=agent.id, claimed_at=now, snoozed_until=None,
            resolved_at=None, rating=None, updated_at=now))
        if result.rowcount != 1:
            raise AlreadyClaimed("someone else took it", conversation=conversation_id)
        await audit.record(uow, "conversation_claimed", "conversation", row.id,
                           actor_kind="staff", actor_id=agent.id)
        await self._send(uow, row, Reply(
            self.catalog.text(row.locale, "agent_joined", agent=agent.display_name),
            sender="system"))

    async def take(self, uow: UnitOfWork, conversation_id: int, agent: str) -> None:
        """Take a conversation over whatever its state (scripts and tests without staff)."""
        row = await self._row(uow, conversation_id)
        await uow.conn.execute(update(conversations).where(conversations.c.id == row.id)
                               .values(mode="human", updated_at=uow.clock.now()))
        await self._send(uow, row, Reply(
            self.catalog.text(row.locale, "agent_joined", agent=agent), sender="system"))

    async def say(self, uow: UnitOfWork, conversation_id: int, agent: str | Agent,
                  text: str) -> None:
        """The agent writes to the customer (only the agent holding it, when someone does)."""
        row = await self._row(uow, conversation_id)
        holder = agent.id if isinstance(agent, Agent) else None
        if row.mode != "human" or (holder is not None and row.agent_id not in (None, holder)):
            raise NotWithAgent("claim the conversation first", conversation=conversation_id)
        name = agent.display_name if isinstance(agent, Agent) else agent
        await self._send(uow, row, Reply(text.strip()[:4000], sender="agent"), kind="agent",
                         agent=name)
        if holder is not None:
            await audit.record(uow, "conversation_replied", "conversation", row.id,
                               actor_kind="staff", actor_id=holder)

    async def note(self, uow: UnitOfWork, conversation_id: int, agent: Agent, text: str) -> None:
        """A private note on the conversation: kept for colleagues, never sent."""
        row = await self._row(uow, conversation_id)
        await uow.conn.execute(conversation_notes.insert().values(
            conversation_id=row.id, staff_id=agent.id, text=text.strip()[:4000],
            at=uow.clock.now()))
        self._tell(uow, row.id)

    async def transfer(self, uow: UnitOfWork, conversation_id: int, agent: Agent,
                       to: Agent) -> None:
        """Hand the conversation to another agent (within their capacity)."""
        row = await self._held(uow, conversation_id, agent)
        await self._check_capacity(uow, to.id)
        await uow.conn.execute(update(conversations).where(conversations.c.id == row.id)
                               .values(agent_id=to.id, claimed_at=uow.clock.now()))
        await audit.record(uow, "conversation_transferred", "conversation", row.id,
                           actor_kind="staff", actor_id=agent.id, details={"to": to.id})
        await self._send(uow, row, Reply(
            self.catalog.text(row.locale, "agent_joined", agent=to.display_name),
            sender="system"))

    async def resolve(self, uow: UnitOfWork, conversation_id: int, agent: Agent) -> None:
        """Done: back to the bot, and the customer is asked to rate the help (1-5 buttons)."""
        row = await self._held(uow, conversation_id, agent)
        now = uow.clock.now()
        await uow.conn.execute(update(conversations).where(conversations.c.id == row.id).values(
            mode="bot", flow=None, step=None, data=None, misses=0, priority=0,
            handover_reason=None, queued_at=None, resolved_at=now, rating=None,
            updated_at=now))
        await audit.record(uow, "conversation_resolved", "conversation", row.id,
                           actor_kind="staff", actor_id=agent.id)
        stars = tuple(Button(f"rate:{n}", "★" * n) for n in RATINGS)
        await self._send(uow, row, Reply(self.catalog.text(row.locale, "rate_ask"), stars,
                                         sender="system"))

    async def snooze(self, uow: UnitOfWork, conversation_id: int, agent: Agent,
                     until: datetime) -> None:
        """Back in the queue, hidden until ``until`` (waiting for the customer, say)."""
        row = await self._held(uow, conversation_id, agent)
        await uow.conn.execute(update(conversations).where(conversations.c.id == row.id).values(
            mode="queued", agent_id=None, claimed_at=None, snoozed_until=until,
            queued_at=row.queued_at or uow.clock.now()))
        await audit.record(uow, "conversation_snoozed", "conversation", row.id,
                           actor_kind="staff", actor_id=agent.id,
                           details={"until": until.isoformat()})
        self._tell(uow, row.id)

    async def hand_back(self, uow: UnitOfWork, conversation_id: int,
                        agent: Agent | None = None) -> None:
        """Back to the bot: the queue entry and any half-done step are cleared."""
        row = await (self._held(uow, conversation_id, agent) if agent is not None
                     else self._row(uow, conversation_id))
        await uow.conn.execute(update(conversations).where(conversations.c.id == row.id).values(
            mode="bot", flow=None, step=None, data=None, misses=0, priority=0,
            handover_reason=None, queued_at=None, agent_id=None, snoozed_until=None,
            updated_at=uow.clock.now()))
        if agent is not None:
            await audit.record(uow, "conversation_handed_back", "conversation", row.id,
                               actor_kind="staff", actor_id=agent.id)
        menu = self.engine.menu(row.locale)
        await self._send(uow, row, Reply(self.catalog.text(row.locale, "agent_left"),
                                         menu.buttons, sender="system"))

    # What the agent sees --------------------------------------------------------------------

    async def history(self, uow: UnitOfWork, conversation_id: int, limit: int = 200
                      ) -> list[Any]:
        """The conversation's messages, the bot's turns included, oldest first."""
        m = chat_messages.c
        rows = (await uow.conn.execute(select(chat_messages).where(
            m.conversation_id == conversation_id).order_by(m.id.desc()).limit(limit))).all()
        return list(reversed(rows))

    async def notes(self, uow: UnitOfWork, conversation_id: int) -> list[Any]:
        n = conversation_notes.c
        return list((await uow.conn.execute(
            select(n.id, n.text, n.at, staff.c.display_name).select_from(
                conversation_notes.join(staff, staff.c.id == n.staff_id))
            .where(n.conversation_id == conversation_id).order_by(n.id))).all())

    async def customer(self, uow: UnitOfWork, conversation_id: int) -> int | None:
        """The customer's user id, if the chat belongs to a registered account."""
        row = await self._row(uow, conversation_id)
        ci = channel_identities.c
        return (await uow.conn.execute(select(ci.user_id).where(
            ci.channel == row.channel, ci.external_id == row.chat_id))).scalar_one_or_none()

    async def context(self, uow: UnitOfWork, conversation_id: int) -> dict[str, Any]:
        """The customer beside the chat, masked: KYC, phone, card, balances, investments,
        loans with the next due date and days overdue, open collections, past conversations."""
        core = self.engine.core
        row = await self._row(uow, conversation_id)
        user_id = await self.customer(uow, conversation_id)
        context: dict[str, Any] = {"conversation_id": row.id, "channel": row.channel,
                                   "locale": row.locale, "registered": user_id is not None,
                                   "mode": row.mode, "reason": row.handover_reason}
        if user_id is None:
            return context
        account = (await uow.conn.execute(select(users).where(users.c.id == user_id))).one()
        kyc = await core.kyc.state(uow, user_id)
        card = await core.cards.active_card(uow, user_id)
        wallet = await core.wallet.summary(uow, user_id)
        invested = await core.views.investor(uow, user_id, upcoming_days=31)
        loans = await core.views.borrower(uow, user_id)
        t = servicing_tasks.c
        tasks = (await uow.conn.execute(
            select(t.id, t.loan_id, t.stage, t.promise_date, t.promise_status).where(
                t.borrower_id == user_id, t.kind == "collections", t.status == "open"))).all()
        a = audit_log.c  # a chat is one conversation; each time an agent resolved it counts
        past = (await uow.conn.execute(select(func.count()).where(
            a.subject_kind == "conversation", a.subject_id == str(row.id),
            a.action == "conversation_resolved"))).scalar_one()
        context.update({
            "user_id": user_id, "phone": account.phone_masked,
            "roles": [r for r, on in (("investor", account.is_investor),
                                      ("borrower", account.is_borrower)) if on],
            "kyc": {"status": kyc.status, "name": kyc.name_masked, "id": kyc.id_masked},
            "card": card.label(core.bins, row.locale) if card is not None else None,
            "wallet": {"available": wallet.available.amount, "frozen": wallet.frozen.amount,
                       "invested": wallet.invested_outstanding.amount},
            "investments": {"invested": invested.invested.amount,
                            "outstanding": invested.outstanding.amount,
                            "loans": len(invested.loans)},
            "loans": [{"loan_id": loan.loan_id, "status": loan.status,
                       "amount": loan.amount.amount, "next_due_date": loan.next_due_date,
                       "next_due_amount": loan.next_due_amount.amount, "dpd": loan.dpd}
                      for loan in loans],
            "collections": [{"task_id": task.id, "loan_id": task.loan_id, "stage": task.stage,
                             "promise_date": task.promise_date,
                             "promise_status": task.promise_status} for task in tasks],
            "past_conversations": past,
        })
        return context

    async def reveal(self, uow: UnitOfWork, conversation_id: int, agent: Agent, field: str,
                     reason: str) -> str:
        """A masked field in clear, for a configured reason; audited."""
        if field not in REVEALABLE or reason not in self.settings.reveal_reasons:
            raise RevealRefused("give one of the reasons", field=field)
        core = self.engine.core
        user_id = await self.customer(uow, conversation_id)
        if user_id is None:
            raise RevealRefused("no customer account", field=field)
        if field == "phone":
            value = await core.registration.phone_of(uow, user_id)
        else:
            person = await core.kyc.verified_person(uow, user_id)
            value = person.full_name if field == "name" else person.id_number
        await audit.record(uow, "field_revealed", "user", user_id, actor_kind="staff",
                           actor_id=agent.id, details={"field": field, "reason": reason,
                                                       "conversation": conversation_id})
        return value

    # Helpers --------------------------------------------------------------------------------

    async def _check_capacity(self, uow: UnitOfWork, staff_id: int) -> None:
        c = conversations.c
        own = (await uow.conn.execute(select(staff.c.capacity).where(
            staff.c.id == staff_id))).scalar_one_or_none()
        capacity = own or self.settings.capacity
        holding = (await uow.conn.execute(select(func.count()).where(
            c.mode == "human", c.agent_id == staff_id))).scalar_one()
        if holding >= capacity:
            raise AtCapacity("finish a conversation first", capacity=capacity)

    async def _held(self, uow: UnitOfWork, conversation_id: int, agent: Agent) -> Any:
        row = await self._row(uow, conversation_id)
        if row.mode != "human" or row.agent_id not in (None, agent.id):
            raise NotWithAgent("this agent does not hold it", conversation=conversation_id)
        return row

    async def _row(self, uow: UnitOfWork, conversation_id: int) -> Any:
        row = (await uow.conn.execute(select(conversations).where(
            conversations.c.id == conversation_id))).first()
        if row is None:
            raise ConversationNotFound("no such conversation", conversation=conversation_id)
        return row

    def _tell(self, uow: UnitOfWork, conversation_id: int) -> None:
        live = self.engine.core.live

        async def tell() -> None:
            await live.publish(f"conversation:{conversation_id}")
            await live.publish("queue")

        uow.after_commit.append(tell)

    async def _send(self, uow: UnitOfWork, row: Any, reply: Reply, kind: str = "notice",
                    agent: str | None = None) -> None:
        buttons = [{"id": b.action, "label": b.label} for b in reply.buttons] or None
        now = uow.clock.now()
        result = await uow.conn.execute(chat_messages.insert().values(
            conversation_id=row.id, sender=reply.sender, author=agent, text=reply.text,
            buttons=buttons, at=now))
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

