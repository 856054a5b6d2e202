"""Investing in chat: top-up orders, browsing, investing with confirmation, the portfolio."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from bots.dialog.engine import FLOWS, DialogEngine
from bots.dialog.flows.investing import BrowseFlow, InvestFlow, PortfolioFlow, TopUpFlow
from bots.dialog.i18n import Catalog
from core.adapters.tables import bids, loans, payment_orders
from core.domain.errors import (
    BidExceedsRemaining,
    BidNotMultiple,
    InvalidAmount,
    SuitabilityMismatch,
)
from core.domain.money import Money
from core.domain.schedule import build_schedule, investor_schedules
from knowledge_base import KnowledgeBase
from tests.integration.accounts_helpers import Person
from tests.integration.dialog_helpers import Chat
from tests.integration.lending_helpers import cny, investor, listed_loan
from tests.integration.servicing_helpers import active_loan


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


@pytest.fixture
def engine(core, kb) -> DialogEngine:
    for flow in (TopUpFlow(), BrowseFlow(), InvestFlow(), PortfolioFlow()):
        FLOWS.setdefault(flow.name, flow)  # the engine owner registers them for good later
    return DialogEngine(core, kb, Catalog.load())


async def wallet(core, person: Person):
    async with core.uow(read_only=True) as uow:
        return await core.wallet.summary(uow, person.user_id)


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_an_investor_browses_opens_a_loan_and_invests_after_confirming(core, engine,
                                                                            locale):
    _, loan_id = await listed_loan(core, "10000")
    me = Chat(engine, await investor(core, "5000.00"), locale)

    (listing,) = await me.send(action="flow:browse")
    assert f"loan:{loan_id}" in [b.action for b in listing.buttons]
    assert "filter:short" in [b.action for b in listing.buttons]
    (detail,) = await me.send(action=f"loan:{loan_id}")
    assert [b.action for b in detail.buttons] == [f"invest:{loan_id}", "back"]
    assert "10,000.00" in detail.text

    (ask,) = await me.send(action=f"invest:{loan_id}")
    assert "5,000.00" in ask.text  # the available balance
    (bad,) = await me.send("abc")
    assert bad.text == me.error(InvalidAmount(reason="not_a_number"))
    (odd,) = await me.send("150")
    assert odd.text == me.error(BidNotMultiple(multiple="100"))
    (much,) = await me.send("20000")
    assert much.text == me.error(BidExceedsRemaining(remaining="10000.00"))

    (confirm,) = await me.send("1,000")
    async with core.uow(read_only=True) as uow:
        loan = (await uow.conn.execute(select(loans).where(loans.c.id == loan_id))).one()
        today = uow.clock.today()
    borrower = build_schedule(cny("10000.00"), loan.annual_rate, loan.term_months, loan.method,
                              today)
    mine = investor_schedules(borrower, [cny("1000.00"), cny("9000.00")])[0]
    interest = sum((line.interest for line in mine), Money.zero())
    assert f"{interest.amount:,.2f}" in confirm.text
    assert me.t("invest_risk_warning") in confirm.text
    assert mine[0].due_date.isoformat() in confirm.text and loan.risk_level in confirm.text
    assert [b.action for b in confirm.buttons] == ["invest:confirm", "invest:cancel"]

    (done,) = await me.send(action="invest:confirm", message_id=f"tap-{locale}")
    assert done.text == me.t("invest_done", amount="1,000.00", paid="1,000.00",
                             loan_id=loan_id, remaining="9,000.00")
    money = await wallet(core, me.person)
    assert (money.available.amount, money.frozen.amount) == (cny("4000").amount,
                                                             cny("1000").amount)


async def test_a_repeated_confirm_tap_invests_once(core, engine):
    _, loan_id = await listed_loan(core, "10000")
    me = Chat(engine, await investor(core, "5000.00"), "zh-CN")
    await me.send(action="flow:browse")
    await me.send(action=f"invest:{loan_id}")
    await me.send("1000")
    await asyncio.gather(me.send(action="invest:confirm"), me.send(action="invest:confirm"))
    assert await me.send(action="invest:confirm", message_id="same") != []
    assert await me.send(action="invest:confirm", message_id="same") == []  # redelivered
    async with core.uow(read_only=True) as uow:
        count = (await uow.conn.execute(select(func.count()).select_from(bids).where(
            bids.c.investor_id == me.person.user_id))).scalar_one()
    assert count == 1
    assert (await wallet(core, me.person)).frozen == cny("1000.00")
    (summary,) = await me.send(action="flow:portfolio")  # frozen until the loan fills
    assert me.t("portfolio_return_none") in summary.text and "1,000.00" in summary.text


async def test_a_refused_confirmation_keeps_the_amount_and_offers_a_top_up(core, engine):
    _, loan_id = await listed_loan(core, "10000")
    me = Chat(engine, await investor(core, "500.00"), "en")
    await me.send(action="flow:browse")
    await me.send(action=f"invest:{loan_id}")
    (confirm,) = await me.send("800")
    assert confirm.buttons[0].action == "invest:confirm"
    (short,) = await me.send(action="invest:confirm")
    assert "flow:top_up" in [b.action for b in short.buttons]
    (again,) = await me.send("500")  # a new amount replaces the refused one
    assert again.buttons[0].action == "invest:confirm"
    (done,) = await me.send(action="invest:confirm")
    assert done.text.startswith("Done!")
    assert (await wallet(core, me.person)).frozen == cny("500.00")


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_a_conservative_investor_is_told_their_level_on_a_riskier_loan(core, engine,
                                                                            locale):
    _, loan_id = await listed_loan(core)
    async with core.uow() as uow:
        await uow.conn.execute(loans.update().where(loans.c.id == loan_id)
                               .values(risk_level="R3"))
        await uow.commit()
    me = Chat(engine, await investor(core, "5000.00", level="low"), locale)
    await me.send(action="flow:browse")
    await me.send(action=f"loan:{loan_id}")
    (refused,) = await me.send(action=f"invest:{loan_id}")
    assert refused.text == me.error(SuitabilityMismatch(level="C1", max_risk="R1",
                                                        product_risk="R3"))
    assert "C1" in refused.text
    assert [b.action for b in refused.buttons] == ["flow:risk"]  # retake the questionnaire
    (back,) = await me.send(action="back")  # still browsing: nothing was lost
    assert f"loan:{loan_id}" in [b.action for b in back.buttons]


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_a_top_up_creates_a_pending_order_at_the_bank(core, engine, locale):
    me = Chat(engine, await investor(core, "100.00"), locale)
    (ask,) = await me.send(action="flow:top_up")
    assert ask.text == me.t("topup_ask_amount", minimum="10.00")
    (low,) = await me.send("5")
    assert low.buttons == () and "10" in low.text
    (created,) = await me.send("2000", message_id=f"topup-{locale}")
    async with core.uow(read_only=True) as uow:
        order = (await uow.conn.execute(select(payment_orders).where(
            payment_orders.c.user_id == me.person.user_id,
            payment_orders.c.status == "pending"))).one()
    assert order.kind == "top_up" and order.amount == cny("2000").amount
    assert created.text == me.t("topup_created", amount="2,000.00", order=order.id)
    assert (await wallet(core, me.person)).available == cny("100.00")  # until the bank confirms


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_the_portfolio_shows_what_was_invested_and_the_next_receipts(core, engine,
                                                                          locale):
    _, people, _ = await active_loan(core, "10000", shares=("6000", "4000"))
    me = Chat(engine, people[0], locale)
    (summary,) = await me.send(action="flow:portfolio")
    assert "6,000.00" in summary.text
    async with core.uow(read_only=True) as uow:
        view = await core.views.investor(uow, me.person.user_id, upcoming_days=366)
    assert len(view.upcoming) >= 3
    for day, amount in view.upcoming[:3]:
        assert me.t("portfolio_receipt", date=day.isoformat(),
                    amount=f"{amount.amount:,.2f}") in summary.text
    assert view.upcoming[3:] == [] or view.upcoming[3][0].isoformat() not in summary.text
