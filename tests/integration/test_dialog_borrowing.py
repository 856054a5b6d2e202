"""Borrowing in chat: applying, my loans, repaying with confirmation, promising to pay."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from bots.dialog.engine import FLOWS, DialogEngine
from bots.dialog.flows.borrowing import ApplyFlow, LoansFlow, PromiseFlow, RepayFlow
from bots.dialog.i18n import Catalog
from core.adapters.tables import loans, servicing_tasks
from core.domain.errors import AmountOutOfRange, InvalidAmount
from knowledge_base import KnowledgeBase
from tests.integration.accounts_helpers import onboard
from tests.integration.dialog_helpers import Chat
from tests.integration.servicing_helpers import active_loan, days, drain_wallet, run_day, schedule


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


@pytest.fixture
def engine(core, kb) -> DialogEngine:
    for flow in (ApplyFlow(), LoansFlow(), RepayFlow(), PromiseFlow()):
        FLOWS.setdefault(flow.name, flow)  # the engine owner registers them for good later
    return DialogEngine(core, kb, Catalog.load())


def actions(reply) -> list[str]:
    return [b.action for b in reply.buttons]


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_a_verified_borrower_applies_in_chat_and_is_approved_and_listed(core, engine,
                                                                             locale):
    me = Chat(engine, await onboard(core, roles={"borrower"}), locale)

    (products,) = await me.send(action="flow:apply")
    assert "apply:product:consumer" in actions(products)
    (ask,) = await me.send(action="apply:product:consumer")
    assert "200,000.00" in ask.text
    (small,) = await me.send("500")
    assert small.text == me.error(AmountOutOfRange(minimum="1000", maximum="200000"))
    (terms,) = await me.send("10,000")
    assert "apply:term:12" in actions(terms)
    (again,) = await me.send("12")  # typed instead of tapped: asked again with the buttons
    assert again.text == me.t("apply_use_buttons") and actions(again) == actions(terms)
    (methods,) = await me.send(action="apply:term:12")
    assert "apply:method:equal_installment" in actions(methods)
    await me.send(action="apply:method:equal_installment")
    await me.send("装修 home renovation")
    (bad,) = await me.send("lots")
    assert bad.text == me.error(InvalidAmount(reason="not_a_number"))
    (jobs,) = await me.send("30000")
    assert "apply:job:civil_servant" in actions(jobs)
    await me.send(action="apply:job:civil_servant")
    (years,) = await me.send("many")
    assert years.text == me.t("apply_years_invalid")
    await me.send("8")
    await me.send(action="apply:none")
    (documents,) = await me.send("0")
    assert "apply:docs:2" in actions(documents)
    (summary,) = await me.send(action="apply:docs:2")
    assert "10,000.00" in summary.text and "30,000.00" in summary.text
    assert actions(summary) == ["apply:confirm", "apply:cancel"]

    (decision,) = await me.send(action="apply:confirm")
    async with core.uow(read_only=True) as uow:
        loan = (await uow.conn.execute(select(loans).where(
            loans.c.borrower_id == me.person.user_id))).one()
    assert loan.status == "listed"
    assert decision.text == me.t("apply_approved", loan_id=loan.id,
                                 rate=f"{loan.annual_rate * 100:.2f}", grade=loan.grade,
                                 risk=loan.risk_level)
    (mine,) = await me.send(action="flow:my_loans")
    assert me.t("loans_applications_header") in mine.text


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_a_borrower_sees_the_next_due_repays_it_and_reads_schedule_and_agreement(
        core, engine, locale):
    borrower, _, loan_id = await active_loan(core)
    me = Chat(engine, borrower, locale)
    first = (await schedule(core, loan_id))[0]

    (mine,) = await me.send(action="flow:my_loans")
    assert first.due_date.isoformat() in mine.text
    assert f"{first.principal + first.interest:,.2f}" in mine.text
    assert actions(mine) == [f"repay:{loan_id}", f"schedule:{loan_id}", f"agreement:{loan_id}"]

    (ask,) = await me.send(action=f"repay:{loan_id}")
    assert actions(ask) == ["repay:due", "repay:settle"]
    (confirm,) = await me.send(action="repay:due")
    assert actions(confirm) == ["repay:confirm", "repay:cancel"]
    assert f"{first.principal + first.interest:,.2f}" in confirm.text
    (done,) = await me.send(action="repay:confirm")
    assert done.text == me.t("repay_done", loan_id=loan_id,
                             amount=f"{first.principal + first.interest:,.2f}",
                             principal=f"{first.principal:,.2f}",
                             interest=f"{first.interest:,.2f}", penalty="0.00")
    assert (await schedule(core, loan_id))[0].status == "paid"

    await me.send(action="flow:my_loans")
    (plan,) = await me.send(action=f"schedule:{loan_id}")
    assert plan.text.splitlines()[1].endswith(me.t("loans_status_paid"))
    assert not plan.text.splitlines()[2].endswith(me.t("loans_status_paid"))
    (agreement,) = await me.send(action=f"agreement:{loan_id}")
    async with core.uow(read_only=True) as uow:
        text = await core.agreements.render(uow, loan_id, borrower.user_id, locale)
    assert agreement.text == text


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_an_overdue_borrower_promises_to_pay(core, engine, locale):
    borrower, _, loan_id = await active_loan(core)
    await drain_wallet(core, borrower)
    due = (await schedule(core, loan_id))[0].due_date
    for day in days(due + timedelta(days=1), due + timedelta(days=3)):
        await run_day(core, day)
    me = Chat(engine, borrower, locale)

    (mine,) = await me.send(action="flow:my_loans")
    assert f"promise:{loan_id}" in actions(mine)
    (ask,) = await me.send(action=f"promise:{loan_id}")
    assert actions(ask) == ["promise:in:3", "promise:in:7", "promise:in:14"]
    (bad,) = await me.send("next week")
    assert bad.text == me.t("promise_bad_date")
    (amount,) = await me.send(action="promise:in:7")
    promised = due + timedelta(days=10)
    assert promised.isoformat() in amount.text
    (wrong,) = await me.send("abc")
    assert wrong.text == me.error(InvalidAmount(reason="not_a_number"))
    (done,) = await me.send("900")
    assert done.text == me.t("promise_done", loan_id=loan_id, date=promised.isoformat(),
                             amount="900.00")
    async with core.uow(read_only=True) as uow:
        task = (await uow.conn.execute(select(servicing_tasks).where(
            servicing_tasks.c.loan_id == loan_id,
            servicing_tasks.c.promise_status == "pending"))).one()
    assert task.promise_date == promised and task.promise_amount == Decimal("900.00")


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_a_repayment_with_too_little_money_is_refused_with_a_top_up_button(core, engine,
                                                                                 locale):
    borrower, _, loan_id = await active_loan(core)
    await drain_wallet(core, borrower)
    me = Chat(engine, borrower, locale)
    await me.send(action="flow:my_loans")
    await me.send(action=f"repay:{loan_id}")
    (preview,) = await me.send("300")
    assert actions(preview) == ["repay:confirm", "repay:cancel"]
    (short,) = await me.send(action="repay:confirm")
    assert actions(short) == ["flow:top_up", "repay:confirm", "repay:cancel"]
    assert (await schedule(core, loan_id))[0].paid_interest == 0
