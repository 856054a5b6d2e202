"""The agent side of conversations through the service layer the console uses: the queue's
order, claiming (one winner), capacity, writing, notes, the masked context and audited reveals,
transfer, snooze, resolve with the customer's rating, business hours."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select

from bots.dialog.agents import (
    Agent,
    AgentDesk,
    AlreadyClaimed,
    AtCapacity,
    NotWithAgent,
    RevealRefused,
)
from bots.dialog.engine import DialogEngine
from bots.dialog.i18n import Catalog
from bots.dialog.types import Inbound
from core.adapters.tables import audit_log, conversations, servicing_tasks, staff
from core.services.lending.investing import BidRequest
from tests.integration.lending_helpers import cny, investor, listed_loan
from tests.integration.servicing_helpers import active_loan, days, drain_wallet, run_day, schedule
from tests.integration.telegram_helpers import knowledge_base

_ids = itertools.count(1)


@pytest.fixture
async def engine(core):
    engine = DialogEngine(core, knowledge_base(), Catalog.load())
    yield engine
    await engine.close()


async def agent(core, name: str, capacity: int | None = None) -> Agent:
    async with core.uow() as uow:
        result = await uow.conn.execute(staff.insert().values(
            name=name.lower(), display_name=name, role="agent", password_hash="-",
            capacity=capacity, created_at=uow.clock.now()))
        await uow.commit()
    return Agent(int(result.inserted_primary_key[0]), name)


async def say(engine, chat: str, text: str | None = None, action: str | None = None,
              locale: str = "en", channel: str = "telegram"):
    return await engine.handle(Inbound(channel, chat, f"m{next(_ids)}", text=text,
                                       action=action, locale_hint=locale))


async def conversation(core, chat: str):
    async with core.uow(read_only=True) as uow:
        return (await uow.conn.execute(select(conversations).where(
            conversations.c.chat_id == chat))).one()


async def queued(engine, chat: str, text: str = "/human", locale: str = "en") -> int:
    """The chat (of a registered person, if it is theirs) asks for a human."""
    await say(engine, chat, text, locale=locale)
    return (await conversation(engine.core, chat)).id


async def test_the_queue_puts_complaints_first_then_vip_then_the_longest_waiting(
        core, engine, clock):
    desk = AgentDesk(engine)
    early = await queued(engine, "q-early")
    clock.advance(timedelta(minutes=5))
    rich = await investor(core, "200000.00")  # the VIP's chat is their account's chat
    _, loan_id = await listed_loan(core, "150000")
    async with core.uow() as uow:
        await core.investing.invest(uow, BidRequest(rich.user_id, loan_id, cny("120000"),
                                                    "vip-bid"))
        await uow.commit()
    clock.advance(timedelta(minutes=1))
    vip = await queued(engine, rich.identity.external_id)
    angry = await queued(engine, "q-angry", "this is a scam, I will call the police")
    async with core.uow(read_only=True) as uow:
        order = await desk.waiting(uow)
    assert [w.conversation_id for w in order] == [angry, vip, early]
    assert [w.reason for w in order] == ["complaint", "asked", "asked"]
    assert [w.tier for w in order] == [0, 1, 0]  # 120,000 invested: the first VIP tier
    assert order[2].waiting_seconds == 6 * 60


async def test_of_two_agents_claiming_at_once_exactly_one_wins(core, engine):
    desk = AgentDesk(engine)
    conversation_id = await queued(engine, "race")
    alice, bob = await agent(core, "Alice"), await agent(core, "Bob")

    async def claim(who: Agent) -> str:
        try:
            async with core.uow() as uow:
                await desk.claim(uow, conversation_id, who)
                await uow.commit()
        except AlreadyClaimed:
            return "lost"
        return "won"

    results = await asyncio.gather(claim(alice), claim(bob))
    assert sorted(results) == ["lost", "won"]
    row = await conversation(core, "race")
    assert row.mode == "human" and row.agent_id in (alice.id, bob.id)
    async with core.uow(read_only=True) as uow:
        claims = (await uow.conn.execute(select(audit_log.c.actor_id).where(
            audit_log.c.action == "conversation_claimed"))).scalars().all()
    assert claims == [row.agent_id]


async def test_an_agent_at_capacity_cannot_claim_more(core, engine):
    desk = AgentDesk(engine)
    first, second = await queued(engine, "cap-1"), await queued(engine, "cap-2")
    carol = await agent(core, "Carol", capacity=1)
    async with core.uow() as uow:
        await desk.claim(uow, first, carol)
        await uow.commit()
    with pytest.raises(AtCapacity):
        async with core.uow() as uow:
            await desk.claim(uow, second, carol)
    assert (await conversation(core, "cap-2")).mode == "queued"


async def test_a_claimed_chat_is_written_to_resolved_and_rated_once(core, engine):
    desk = AgentDesk(engine)
    conversation_id = await queued(engine, "res", locale="zh-CN")
    dora, eve = await agent(core, "Dora"), await agent(core, "Eve")
    async with core.uow() as uow:
        await desk.claim(uow, conversation_id, dora)
        await uow.commit()
    assert await say(engine, "res", "还在吗", locale="zh-CN") == []  # the bot stays quiet
    with pytest.raises(NotWithAgent):  # only the holder writes
        async with core.uow() as uow:
            await desk.say(uow, conversation_id, eve, "hello")
    async with core.uow() as uow:
        await desk.say(uow, conversation_id, dora, "您好，我来帮您看看")
        await desk.note(uow, conversation_id, dora, "asked about a late transfer")
        await uow.commit()
    async with core.uow() as uow:
        await desk.resolve(uow, conversation_id, dora)
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        history = await desk.history(uow, conversation_id)
        notes = await desk.notes(uow, conversation_id)
    assert [m.sender for m in history][-3:] == ["user", "agent", "system"]
    ask = history[-1]
    assert ask.text == engine.catalog.text("zh-CN", "rate_ask")
    assert [b["id"] for b in ask.buttons] == [f"rate:{n}" for n in range(1, 6)]
    assert "late transfer" not in " ".join(m.text for m in history)  # notes are private
    assert [n.text for n in notes] == ["asked about a late transfer"]
    (thanks,) = await say(engine, "res", action="rate:4", locale="zh-CN")
    assert thanks.text == engine.catalog.text("zh-CN", "rate_thanks")
    (again,) = await say(engine, "res", action="rate:1", locale="zh-CN")
    assert again.text == engine.catalog.text("zh-CN", "stale_button")
    row = await conversation(core, "res")
    assert (row.mode, row.rating) == ("bot", 4)


async def test_transfer_and_snooze_move_the_conversation(core, engine, clock):
    desk = AgentDesk(engine)
    conversation_id = await queued(engine, "move")
    fay, gil = await agent(core, "Fay"), await agent(core, "Gil")
    async with core.uow() as uow:
        await desk.claim(uow, conversation_id, fay)
        await desk.transfer(uow, conversation_id, fay, gil)
        await uow.commit()
    assert (await conversation(core, "move")).agent_id == gil.id
    async with core.uow() as uow:
        await desk.snooze(uow, conversation_id, gil, clock.now() + timedelta(hours=1))
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        assert await desk.waiting(uow) == []
    clock.advance(timedelta(hours=1, seconds=1))
    async with core.uow(read_only=True) as uow:
        assert [w.conversation_id for w in await desk.waiting(uow)] == [conversation_id]


async def test_the_context_is_masked_and_a_reveal_needs_a_reason_and_is_audited(core, engine):
    desk = AgentDesk(engine)
    person = await investor(core, "5000.00")
    conversation_id = await queued(engine, person.identity.external_id)
    hal = await agent(core, "Hal")
    async with core.uow(read_only=True) as uow:
        context = await desk.context(uow, conversation_id)
    assert context["kyc"]["status"] == "verified"
    assert person.phone[-4:] in context["phone"] and person.phone not in repr(context)
    assert person.name not in repr(context) and person.id_number not in repr(context)
    assert context["wallet"]["available"] == 5000
    with pytest.raises(RevealRefused):
        async with core.uow() as uow:
            await desk.reveal(uow, conversation_id, hal, "phone", "curious")
    async with core.uow() as uow:
        phone = await desk.reveal(uow, conversation_id, hal, "phone", "customer verification")
        await uow.commit()
    assert phone.endswith(person.phone[-8:])
    async with core.uow(read_only=True) as uow:
        (entry,) = (await uow.conn.execute(select(audit_log).where(
            audit_log.c.action == "field_revealed"))).all()
    assert entry.actor_id == hal.id and entry.details["reason"] == "customer verification"


async def test_outside_business_hours_the_customer_is_told_when_agents_are_back(core, engine,
                                                                               clock):
    clock.advance(timedelta(hours=12))  # 22:00 in Shanghai on a Monday
    (reply,) = await say(engine, "night", "/human")
    assert reply.text == engine.catalog.text("en", "human_outside_hours",
                                             back="2026-03-03 09:00")
    assert (await conversation(core, "night")).mode == "queued"  # it waits in the queue



async def test_a_borrower_in_collections_who_asks_is_queued_as_collections(core, engine):
    borrower, _, loan_id = await active_loan(core)
    await drain_wallet(core, borrower)
    due = (await schedule(core, loan_id))[0].due_date
    for day in days(due + timedelta(days=1), due + timedelta(days=10)):
        await run_day(core, day)
    async with core.uow(read_only=True) as uow:
        open_tasks = (await uow.conn.execute(select(servicing_tasks.c.id).where(
            servicing_tasks.c.borrower_id == borrower.user_id,
            servicing_tasks.c.kind == "collections",
            servicing_tasks.c.status == "open"))).all()
    assert open_tasks  # the collections plan opened a task by D+10
    conversation_id = await queued(engine, borrower.identity.external_id)
    async with core.uow(read_only=True) as uow:
        (waiting,) = await AgentDesk(engine).waiting(uow)
    assert (waiting.conversation_id, waiting.reason) == (conversation_id, "collections")
