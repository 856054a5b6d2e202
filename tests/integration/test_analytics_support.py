"""Support figures from real conversations with the dialog engine and the agent desk.

Monday 2026-03-02, desk open 09:00-21:00 every day (Shanghai time):

* "bot": asks two questions the FAQ cannot answer at 10:00 and never comes back;
* "back" (web chat): asks at 10:00, and again the next day at 10:00;
* "human": asks for a human at 10:00; Alice claims at 10:10, answers at 10:15, resolves at
  10:45; the customer gives 5 stars;
* "night": asks for a human at 22:00 (desk closed); Alice claims at 09:30 the next morning,
  answers at 09:31 and resolves at 10:00.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from bots.dialog.agents import Agent, AgentDesk
from bots.dialog.engine import DialogEngine
from bots.dialog.i18n import Catalog
from bots.dialog.types import Inbound
from core.adapters.tables import conversations, staff
from core.analytics import support
from core.analytics.filters import Filters
from tests.integration.telegram_helpers import knowledge_base

WEEK = Filters(date(2026, 3, 2), date(2026, 3, 8))
GIBBERISH = "zxqv wplk grmf"
_ids = itertools.count(1)


@pytest.fixture
async def engine(core):
    engine = DialogEngine(core, knowledge_base(), Catalog.load())
    yield engine
    await engine.close()


def at(clock, day: int, hour: int, minute: int = 0) -> None:
    clock.set(datetime(2026, 3, day, hour, minute, tzinfo=clock.tz))


async def say(engine, chat: str, text: str | None = None, action: str | None = None,
              channel: str = "telegram") -> None:
    await engine.handle(Inbound(channel, chat, f"m{next(_ids)}", text=text, action=action,
                                locale_hint="en"))


async def conversation_id(core, chat: str) -> int:
    async with core.uow(read_only=True) as uow:
        return (await uow.conn.execute(select(conversations.c.id).where(
            conversations.c.chat_id == chat))).scalar_one()


async def alice(core) -> Agent:
    async with core.uow() as uow:
        result = await uow.conn.execute(staff.insert().values(
            name="alice", display_name="Alice", role="agent", password_hash="-",
            created_at=uow.clock.now()))
        await uow.commit()
    return Agent(int(result.inserted_primary_key[0]), "Alice")


async def desk_does(core, desk: AgentDesk, action: str, chat: str, agent: Agent) -> None:
    conversation = await conversation_id(core, chat)
    async with core.uow() as uow:
        if action == "say":
            await desk.say(uow, conversation, agent, "Hello, how can I help?")
        else:
            await getattr(desk, action)(uow, conversation, agent)
        await uow.commit()


async def history(core, engine, clock) -> None:
    desk, agent = AgentDesk(engine), await alice(core)
    at(clock, 2, 10)
    await say(engine, "bot", GIBBERISH)
    await say(engine, "bot", GIBBERISH.upper() + " ")
    await say(engine, "back", "how do I withdraw", channel="web")
    await say(engine, "human", "/human")
    at(clock, 2, 10, 10)
    await desk_does(core, desk, "claim", "human", agent)
    at(clock, 2, 10, 15)
    await desk_does(core, desk, "say", "human", agent)
    at(clock, 2, 10, 45)
    await desk_does(core, desk, "resolve", "human", agent)
    await say(engine, "human", action="rate:5")
    at(clock, 2, 22)
    await say(engine, "night", "/human")
    at(clock, 3, 9, 30)
    await desk_does(core, desk, "claim", "night", agent)
    at(clock, 3, 9, 31)
    await desk_does(core, desk, "say", "night", agent)
    at(clock, 3, 10)
    await desk_does(core, desk, "resolve", "night", agent)
    await say(engine, "back", "and the fees?", channel="web")
    at(clock, 19, 12)
    await say(engine, "angry", "this is a scam, I will call the police")
    at(clock, 20, 12)


async def test_contacts_containment_and_handovers_of_a_week(core, engine, clock):
    await history(core, engine, clock)
    async with core.uow(read_only=True) as uow:
        now = await support.period(uow, WEEK, settings=core.settings)
    assert now["contacts"] == 5
    assert {c["channel"]: (c["contacts"], c["human"]) for c in now["by_channel"]} == {
        "telegram": (3, 2), "web": (2, 0)}
    # contained: "bot", and "back"'s second contact; "back" came back within 7 days
    assert (now["containment"]["numerator"], now["containment"]["denominator"]) == (2, 5)
    assert now["containment"]["value"] == Decimal("0.4000")
    assert now["pending"] == 0
    assert now["handover_rate"]["value"] == Decimal("0.4000")
    assert now["handover_reasons"] == {"asked": 2}  # both typed /human
    assert now["queue_wait"]["calendar"]["n"] == 2


async def test_response_and_resolution_times_count_business_hours(core, engine, clock):
    await history(core, engine, clock)
    async with core.uow(read_only=True) as uow:
        now = await support.period(uow, WEEK, settings=core.settings)
    first = now["first_response"]["end_to_end"]
    # 10:00 -> 10:15 (15 minutes); 22:00 -> 09:31 (11 h 31 min, of which 31 min open)
    assert first["calendar"] == {"n": 2, "median": (900 + 41460) // 2, "p90": 41460}
    assert first["business"] == {"n": 2, "median": (900 + 1860) // 2, "p90": 1860}
    resolved = now["resolution"]["end_to_end"]
    assert resolved["calendar"]["p90"] == 12 * 3600 and resolved["business"]["p90"] == 3600
    assert resolved["business"]["median"] == (2700 + 3600) // 2


async def test_satisfaction_and_unanswered_questions(core, engine, clock):
    await history(core, engine, clock)
    async with core.uow(read_only=True) as uow:
        page = await support.support(uow, WEEK, settings=core.settings)
    rated = page["current"]["satisfaction"]
    assert rated["ratings"] == 1 and rated["distribution"]["5"] == 1
    assert rated["average"] == Decimal("5.00")
    assert (rated["response_rate"]["numerator"], rated["response_rate"]["denominator"]) == (1, 2)
    assert page["headline"]["contacts"] == {"value": 5, "previous": 0}
    (question,) = page["unanswered"]
    assert question["count"] == 2 and question["text"].lower().strip() == GIBBERISH


async def test_the_queue_now_shows_who_waits_and_why(core, engine, clock):
    await history(core, engine, clock)
    async with core.uow(read_only=True) as uow:
        queue = await support.queue_now(uow, WEEK)
        web_only = await support.queue_now(uow, Filters(WEEK.start, WEEK.end, channels=("web",)))
    assert queue["waiting"] == 1 and queue["by_reason"] == {"complaint": 1}
    assert queue["longest_wait"] == 24 * 3600
    assert web_only["waiting"] == 0


async def test_recorded_handovers_give_reasons_waiting_and_human_only_times(core, engine, clock):
    await history(core, engine, clock)
    async with core.uow(read_only=True) as uow:
        now = await support.period(uow, WEEK, settings=core.settings)
        telegram = await support.period(uow, Filters(WEEK.start, WEEK.end,
                                                     channels=("telegram",)),
                                        settings=core.settings)
    assert now["handover_reasons"] == {"asked": 2}  # the engine records each handover
    # queued 10:00 -> claimed 10:10; queued 22:00 -> claimed 09:30 (30 minutes open)
    assert now["queue_wait"]["calendar"] == {"n": 2, "median": (600 + 41400) // 2,
                                             "p90": 41400}
    assert now["queue_wait"]["business"] == {"n": 2, "median": (600 + 1800) // 2, "p90": 1800}
    assert now["first_response"]["human"]["business"]["p90"] == 1860
    assert telegram["contacts"] == 3 and telegram["handover_rate"]["value"] == Decimal("0.6667")
