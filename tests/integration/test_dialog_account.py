"""The account in chat: withdrawals, the statement, auto-invest rules and feedback."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from bots.dialog.engine import FLOWS, DialogEngine
from bots.dialog.flows.account import AutoInvestFlow, FeedbackFlow, StatementFlow, WithdrawFlow
from bots.dialog.i18n import Catalog
from core.adapters.tables import analytics_events, payment_orders
from core.domain.errors import (
    InsufficientFunds,
    InvalidAmount,
    InvalidAutoInvestRule,
    WithdrawalOutOfRange,
)
from core.services.lending.autoinvest import AutoInvestRule
from knowledge_base import KnowledgeBase
from tests.integration.accounts_helpers import Person
from tests.integration.dialog_helpers import Chat
from tests.integration.lending_helpers import cny, investor


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


@pytest.fixture
def engine(core, kb) -> DialogEngine:
    for flow in (WithdrawFlow(), StatementFlow(), AutoInvestFlow(), FeedbackFlow()):
        FLOWS.setdefault(flow.name, flow)  # the engine owner registers them for good later
    return DialogEngine(core, kb, Catalog.load())


async def wallet(core, person: Person):
    async with core.uow(read_only=True) as uow:
        return await core.wallet.summary(uow, person.user_id)


def actions(reply) -> list[str]:
    return [b.action for b in reply.buttons]


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_a_withdrawal_shows_fee_and_card_then_freezes_amount_and_fee(core, engine, locale):
    me = Chat(engine, await investor(core, "1000.00"), locale)
    (ask,) = await me.send(action="flow:withdraw")
    assert ask.text == me.t("withdraw_ask_amount", available="1,000.00", fee="2.00",
                            minimum="100.00", maximum="200,000.00", daily="500,000.00")
    (confirm,) = await me.send("500.00")
    async with core.uow(read_only=True) as uow:
        card = await core.cards.active_card(uow, me.person.user_id)
    label = card.label(core.bins, locale)
    assert confirm.text == me.t("withdraw_confirm", amount="500.00", fee="2.00", total="502.00",
                                card=label)
    assert actions(confirm) == ["withdraw:confirm", "withdraw:cancel"]

    (done,) = await me.send(action="withdraw:confirm")
    async with core.uow(read_only=True) as uow:
        order = (await uow.conn.execute(select(payment_orders).where(
            payment_orders.c.user_id == me.person.user_id,
            payment_orders.c.kind == "withdrawal"))).one()
    assert done.text == me.t("withdraw_done", amount="500.00", fee="2.00", order=order.id,
                             card=label)
    money = await wallet(core, me.person)
    assert (money.available, money.frozen) == (cny("498.00"), cny("502.00"))
    (stale,) = await me.send(action="withdraw:confirm")  # a second tap withdraws nothing more
    assert stale.text == me.t("stale_button")
    assert (await wallet(core, me.person)).frozen == cny("502.00")


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_a_bad_withdrawal_amount_is_asked_again_with_the_reason(core, engine, locale):
    me = Chat(engine, await investor(core, "1000.00"), locale)
    await me.send(action="flow:withdraw")
    (word,) = await me.send("abc")
    assert word.text == me.error(InvalidAmount(reason="not_a_number"))
    (low,) = await me.send("50")
    assert low.text == me.error(WithdrawalOutOfRange(minimum="100.00", maximum="200000.00"))
    (much,) = await me.send("999")  # 999 + the 2.00 fee is more than the balance
    assert much.text == me.error(InsufficientFunds(needed="1001.00", available="1000.00"))
    (confirm,) = await me.send("998")  # still on the amount step: nothing was lost
    assert actions(confirm) == ["withdraw:confirm", "withdraw:cancel"]
    (cancelled,) = await me.send(action="withdraw:cancel")
    assert cancelled.text == me.t("withdraw_cancelled")
    money = await wallet(core, me.person)
    assert (money.available, money.frozen) == (cny("1000.00"), cny("0.00"))


async def test_a_withdrawal_refused_at_confirmation_goes_back_to_the_amount(core, engine):
    me = Chat(engine, await investor(core, "1000.00"), "en")
    await me.send(action="flow:withdraw")
    await me.send("900")
    async with core.uow() as uow:  # the balance drops between the two steps
        await core.wallet.request_withdrawal(uow, me.person.user_id, cny("500.00"), "elsewhere")
        await uow.commit()
    refused, again = await me.send(action="withdraw:confirm")
    assert refused.text == me.error(InsufficientFunds(needed="902.00", available="498.00"))
    assert again.text == me.t("withdraw_ask_again")
    async with core.uow(read_only=True) as uow:  # no order was left behind without its freeze
        orders = (await uow.conn.execute(select(payment_orders.c.amount).where(
            payment_orders.c.user_id == me.person.user_id,
            payment_orders.c.kind == "withdrawal"))).scalars().all()
    assert [Decimal(a) for a in orders] == [Decimal("500.00")]
    (confirm,) = await me.send("300")
    assert actions(confirm)[0] == "withdraw:confirm"


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_the_statement_shows_movements_with_running_balance_and_pages(core, engine,
                                                                             locale):
    me = Chat(engine, await investor(core, "1000.00"), locale)
    async with core.uow() as uow:
        for n in range(5):
            await core.wallet.request_withdrawal(uow, me.person.user_id, cny("100.00"), f"w{n}")
        await uow.commit()
    (first,) = await me.send(action="flow:statement")
    assert first.text.splitlines()[0] == me.t("statement_header", page=1, pages=2, total=6)
    assert me.t("statement_kind_withdrawal") in first.text and "-102.00" in first.text
    assert me.t("statement_kind_top_up") not in first.text
    assert actions(first) == ["statement:older"]

    (older,) = await me.send(action="statement:older")
    async with core.uow(read_only=True) as uow:
        (top_up,) = (await core.wallet.statement(uow, me.person.user_id, page=2,
                                                 page_size=5)).entries
        day = top_up.at.astimezone(uow.clock.tz).strftime("%Y-%m-%d %H:%M")
    assert me.t("statement_line", date=day, kind=me.t("statement_kind_top_up"),
                amount="+1,000.00", balance="1,000.00") in older.text.splitlines()
    assert day == "2026-03-02 10:00"  # the business time zone, not UTC
    assert actions(older) == ["statement:newer"]
    (newer,) = await me.send(action="statement:newer")
    assert newer.text == first.text
    assert me.t("statement_line", date=day, kind=me.t("statement_kind_withdrawal"),
                amount="-102.00", balance="490.00") in newer.text.splitlines()


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_an_auto_invest_rule_is_set_up_step_by_step_and_authorised(core, engine, locale):
    me = Chat(engine, await investor(core, "5000.00"), locale)
    (none,) = await me.send(action="flow:auto_invest")
    assert none.text == me.t("auto_none") and actions(none) == ["auto:setup"]
    (grades,) = await me.send(action="auto:setup")
    assert actions(grades)[:6] == [f"auto:grade:{g}" for g in ("AA", "A", "B", "C", "D", "E")]
    (empty, _) = await me.send(action="auto:grades_done")
    assert empty.text.startswith(me.error(InvalidAutoInvestRule(field="grades")))
    assert me.t("auto_reason_grades") in empty.text
    for grade in ("B", "A", "AA", "A"):  # the second tap on A unselects it
        (grades,) = await me.send(action=f"auto:grade:{grade}")
    assert me.t("auto_grade_on", grade="AA") in [b.label for b in grades.buttons]
    assert me.t("auto_grade_off", grade="A") in [b.label for b in grades.buttons]
    (rate,) = await me.send(action="auto:grades_done")
    assert rate.text == me.t("auto_ask_rate")

    for bad in ("15-8", "abc", "8-120"):
        refused, again = await me.send(bad)
        assert refused.text == "\n".join((me.error(InvalidAutoInvestRule(field="rate_range")),
                                          me.t("auto_reason_rate_range")))
        assert again.text == me.t("auto_ask_rate")
    (term,) = await me.send("8-15")
    assert term.text == me.t("auto_ask_term")
    refused, _ = await me.send("12-3")
    assert me.t("auto_reason_term_range") in refused.text
    await me.send("3-12")
    refused, _ = await me.send("150")
    assert me.t("auto_reason_amount_per_loan", minimum="100.00",
                multiple="100.00") in refused.text
    await me.send("1,000")
    (cap_question,) = await me.send("0")
    assert cap_question.text == me.t("auto_ask_cap")
    refused, _ = await me.send("500")  # below the amount per loan
    assert me.t("auto_reason_limits") in refused.text
    await me.send("50000")
    (summary,) = await me.send("10%")
    assert actions(summary) == ["auto:authorise", "auto:cancel"]
    assert "8.00" in summary.text and "15.00" in summary.text and "50,000.00" in summary.text

    (saved,) = await me.send(action="auto:authorise")
    assert saved.text.startswith(me.t("auto_saved", summary="").strip())
    async with core.uow(read_only=True) as uow:
        rule = await core.auto_invest.rule(uow, me.person.user_id)
    assert rule == AutoInvestRule(("AA", "B"), Decimal("0.08"), Decimal("0.15"), 3, 12,
                                  cny("1000.00"), cny("0.00"), cny("50000.00"), Decimal(10))

    (current,) = await me.send(action="flow:auto_invest")
    assert actions(current) == ["auto:setup", "auto:stop"]
    (stopped,) = await me.send(action="auto:stop")
    assert stopped.text == me.t("auto_stopped")
    async with core.uow(read_only=True) as uow:
        assert await core.auto_invest.rule(uow, me.person.user_id) is None


async def test_cancelling_before_authorising_saves_no_rule(core, engine):
    me = Chat(engine, await investor(core, "5000.00"), "en")
    await me.send(action="flow:auto_invest")
    await me.send(action="auto:setup")
    await me.send(action="auto:grade:A")
    await me.send(action="auto:grades_done")
    for answer in ("8-15", "3-12", "100", "0", "1000", "20"):
        await me.send(answer)
    (cancelled,) = await me.send(action="auto:cancel")
    assert cancelled.text == me.t("auto_cancelled")
    async with core.uow(read_only=True) as uow:
        assert await core.auto_invest.rule(uow, me.person.user_id) is None


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_feedback_is_kept_for_managers_as_an_event(core, engine, locale):
    me = Chat(engine, await investor(core, "100.00"), locale)
    (ask,) = await me.send(action="flow:feedback")
    assert ask.text == me.t("feedback_ask")
    (thanks,) = await me.send("希望增加更多短期标 / more short loans please")
    assert thanks.text == me.t("feedback_thanks")
    async with core.uow(read_only=True) as uow:
        event = (await uow.conn.execute(select(analytics_events).where(
            analytics_events.c.name == "feedback"))).one()
    assert event.user_id == me.person.user_id
    assert event.channel == me.person.identity.channel
    assert event.props == {"text": "希望增加更多短期标 / more short loans please",
                           "locale": locale}
