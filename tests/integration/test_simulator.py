"""The demo simulator: a history made through the services that looks like a platform's (a
funnel that narrows, weekday traffic, loans repaid, late and written off, support handled),
keeps every invariant, and comes out the same for the same seed."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bots.dialog.simulated import EngineChat
from core.adapters.tables import analytics_events, conversations, ledger_accounts, loans, users
from core.domain.clock import ManualClock, SystemClock
from core.simulator import simulate
from tests.integration.servicing_helpers import violations
from tests.support import make_core

END = date(2026, 10, 31)


async def seeded(database_url: str, data_dir: Path, *, users: int = 150, days: int = 75,
                 seed: int = 7):
    clock = ManualClock(datetime(2026, 11, 1, 2, 0, tzinfo=UTC))
    core = await make_core(database_url, clock, data_dir, sandbox={
        "bank_auto_settle": False, "bank_delay_seconds": 0, "bank_duplicate_rate": 0})
    chat = EngineChat(core)
    report = await simulate(core, users=users, days=days, seed=seed, end=END, chat=chat)
    await chat.close()
    return core, report


async def fingerprint(core) -> dict:
    async with core.uow(read_only=True) as uow:
        def counted(column):
            return select(column, func.count()).group_by(column).order_by(column)
        return {
            "events": dict((await uow.conn.execute(counted(analytics_events.c.name))).all()),
            "loans": dict((await uow.conn.execute(counted(loans.c.status))).all()),
            "users": (await uow.conn.execute(select(func.count()).select_from(users))).scalar(),
            "balances": sorted((await uow.conn.execute(select(
                ledger_accounts.c.code, ledger_accounts.c.balance))).all()),
            "conversations": dict((await uow.conn.execute(
                counted(conversations.c.handover_reason))).all()),
        }


@pytest.fixture
async def history(database_url, tmp_path):
    core, report = await seeded(database_url, tmp_path)
    try:
        yield core, report
    finally:
        await core.close()


async def test_a_simulated_history_narrows_down_the_funnel_and_keeps_every_invariant(history):
    """One simulated history, looked at the way a manager would: the funnel, the loan book,
    support, marketing, weekday traffic; and ``check`` finds nothing wrong."""
    core, report = history
    assert await violations(core) == []
    s = report.steps
    assert report.days == 75 and 100 <= s["registered"] <= 200  # about the 150 asked for
    assert report.visitors > s["registered"] > s["verified"] > s["card_bound"]
    assert s["card_bound"] > s["risk_assessed"] > 0 and s["first_investment"] > 0
    async with core.uow(read_only=True) as uow:
        events = Counter(dict((await uow.conn.execute(
            select(analytics_events.c.name, func.count()).group_by(
                analytics_events.c.name))).all()))
        statuses = Counter(dict((await uow.conn.execute(
            select(loans.c.status, func.count()).group_by(loans.c.status))).all()))
        first = (await uow.conn.execute(select(func.min(analytics_events.c.occurred_at)))
                 ).scalar_one()
    assert events["first_visit"] == report.visitors
    assert events["registered"] == s["registered"]
    assert events["invested"] >= s["first_investment"]
    assert events["loan_disbursed"] > 0 and events["repayment_received"] > 0
    assert events["support_handover"] > 0 and events["support_rated"] > 0
    assert events["feedback"] > 0 and events["broadcast_sent"] >= 2
    assert events["auto_invest_executed"] > 0 and events["promotion_granted"] > 0
    assert statuses["active"] + statuses["repaid"] + statuses["overdue"] > 0
    assert core.clock.local(first).date() >= date(2026, 8, 18)  # the first of the 75 days
    assert report.events == sum(events.values())
    async with core.uow(read_only=True) as uow:  # every handover was answered
        assert (await uow.conn.execute(select(func.count()).select_from(conversations).where(
            conversations.c.mode != "bot"))).scalar_one() == 0

    async with core.uow(read_only=True) as uow:  # weekdays bring more visitors than weekends
        moments = (await uow.conn.execute(select(analytics_events.c.occurred_at).where(
            analytics_events.c.name == "first_visit"))).scalars().all()
    by_weekday = Counter(core.clock.local(m).weekday() for m in moments)
    weekday = sum(by_weekday[d] for d in range(5)) / 5
    weekend = (by_weekday[5] + by_weekday[6]) / 2
    assert weekend < 0.9 * weekday


async def test_the_same_seed_gives_the_same_data_and_another_seed_other_data(
        test_database, tmp_path):
    prints = []
    for n, seed in enumerate((3, 3, 4)):
        folder = tmp_path / str(n)
        folder.mkdir()
        core, _ = await seeded(await test_database.fresh(folder), folder, users=40, days=20,
                               seed=seed)
        try:
            prints.append(await fingerprint(core))
        finally:
            await core.close()
    assert prints[0] == prints[1]
    assert prints[0] != prints[2]


async def test_the_simulation_needs_a_clock_it_can_move(database_url, tmp_path):
    system = await make_core(database_url, SystemClock(ZoneInfo("Asia/Shanghai")), tmp_path)
    try:
        with pytest.raises(TypeError, match="ManualClock"):
            await simulate(system, users=10, days=2, seed=1)
    finally:
        await system.close()
