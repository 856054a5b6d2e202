"""Servicing edge cases found in review: settlement pricing, races, catch-up, promises.

Each test reproduces a scenario a reviewer proved against an earlier version of the code.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from core.adapters.tables import (
    installments,
    loans,
    outbox,
    repayments,
    servicing_tasks,
)
from core.services.lending.investing import BidRequest
from tests.integration.lending_helpers import cny, investor, listed_loan
from tests.integration.servicing_helpers import (
    active_loan,
    available,
    days,
    drain_wallet,
    fund_wallet,
    repay,
    run_day,
    schedule,
    set_day,
    violations,
)


async def property_loan(core, method="bullet", months=12, amount="50000"):
    """A staff-disbursed property loan held by one investor."""
    person, loan_id = await listed_loan(core, amount, product="property", months=months,
                                        method=method, monthly_income=Decimal("150000"))
    rich = await investor(core, str(Decimal(amount) + 1000))
    async with core.uow() as uow:
        await core.investing.invest(uow, BidRequest(rich.user_id, loan_id, cny(amount), "p0"))
        await uow.commit()
    async with core.uow() as uow:
        status = (await uow.conn.execute(select(loans.c.status).where(
            loans.c.id == loan_id))).scalar_one()
        if status == "funded":
            await core.funding.disburse(uow, loan_id, staff_id=3)
        await uow.commit()
    return person, rich, loan_id

async def test_auto_debit_does_not_take_an_installment_already_paid_by_hand(core):
    borrower, _inv, loan_id = await active_loan(core)
    first = (await schedule(core, loan_id))[0]
    installment = first.principal + first.interest
    set_day(core, first.due_date)
    wallet = await available(core, borrower.user_id)
    original = core.daily.uow
    state = {"raced": False}

    class Interleaved:  # the manual repayment commits right after the auto-debit's read
        def __init__(self, kw):
            self.kw = kw

        async def __aenter__(self):
            if not self.kw.get("read_only") and not state["raced"]:
                state["raced"] = True
                await repay(core, loan_id, str(installment), key="manual-tap")
            self.cm = original(**self.kw)
            return await self.cm.__aenter__()

        async def __aexit__(self, *exc):
            return await self.cm.__aexit__(*exc)

    core.daily.uow = lambda **kw: Interleaved(kw)
    await core.daily._auto_debit(first.due_date)
    core.daily.uow = original
    await schedule(core, loan_id)
    assert await available(core, borrower.user_id) == wallet - installment


async def test_catching_up_missed_days_sends_at_most_one_collection_message_that_day(core):
    borrower, _inv, loan_id = await active_loan(core)
    await drain_wallet(core, borrower)
    due = (await schedule(core, loan_id))[0].due_date
    await run_day(core, due - timedelta(days=5))       # the last day the job ran
    set_day(core, due + timedelta(days=1))             # the server was down for 5 days
    ran = await core.daily.catch_up(core.clock.today())
    assert len(ran) == 6
    async with core.uow(read_only=True) as uow:
        rows = (await uow.conn.execute(select(outbox.c.template, outbox.c.not_before).where(
            outbox.c.user_id == borrower.user_id,
            outbox.c.template.in_(("repayment_reminder", "repayment_due_today",
                                   "overdue_notice"))))).all()
    local_days = [core.clock.local(r.not_before).date() for r in rows]
    assert max(local_days.count(d) for d in set(local_days)) <= 1


async def test_a_collateral_surplus_is_booked_to_the_borrower(core):
    borrower, _inv, loan_id = await active_loan(core)
    await drain_wallet(core, borrower)
    due = (await schedule(core, loan_id))[0].due_date
    for day in days(due + timedelta(days=1), due + timedelta(days=5)):
        await run_day(core, day)
    before = await available(core, borrower.user_id)
    async with core.uow() as uow:
        result = await core.repayments.collateral_disposal(
            uow, loan_id, cny("15000.00"), staff_id=9, description="car auction")
        await uow.commit()
    surplus = await available(core, borrower.user_id) - before
    assert result.applied.amount + surplus == Decimal("15000.00")


async def test_paying_more_than_everything_owed_costs_no_more_than_settling(core):
    borrower, _inv, loan_id = await active_loan(core)
    core.clock.advance(timedelta(days=15))
    await fund_wallet(core, borrower, "2000.00")
    async with core.uow(read_only=True) as uow:
        quote = (await core.repayments.owed(uow, loan_id)).settle_now
    before = await available(core, borrower.user_id)
    result = await repay(core, loan_id, "20000.00", key="everything")
    paid = before - await available(core, borrower.user_id)
    assert result.loan_repaid and paid <= quote.amount


async def test_paying_the_promised_amount_by_the_date_keeps_the_promise(core):
    borrower, _inv, loan_id = await active_loan(core)
    await drain_wallet(core, borrower)
    due = (await schedule(core, loan_id))[0].due_date
    for day in days(due + timedelta(days=1), due + timedelta(days=35)):  # two installments late
        await run_day(core, day)
    async with core.uow() as uow:
        await core.collections.promise(uow, loan_id, core.clock.today() + timedelta(days=3),
                                       cny("500"))
        await uow.commit()
    await fund_wallet(core, borrower, "500.00")
    await repay(core, loan_id, "500.00", key="as-promised")   # paid in full, on time
    for day in days(due + timedelta(days=36), due + timedelta(days=40)):
        await run_day(core, day)
    async with core.uow(read_only=True) as uow:
        status = (await uow.conn.execute(select(servicing_tasks.c.promise_status).where(
            servicing_tasks.c.promise_status.is_not(None)))).scalar_one()
    assert status == "kept"


async def test_installments_after_settlement_agree_with_the_money_received(core):
    borrower, _inv, loan_id = await active_loan(core)
    core.clock.advance(timedelta(days=15))
    await fund_wallet(core, borrower, "500.00")
    await repay(core, loan_id, settle=True, key="settle")
    async with core.uow(read_only=True) as uow:
        paid_interest = (await uow.conn.execute(select(func.sum(installments.c.paid_interest))
                         .where(installments.c.loan_id == loan_id))).scalar_one()
        (await uow.conn.execute(select(func.sum(installments.c.interest))
                         .where(installments.c.loan_id == loan_id))).scalar_one()
        received = (await uow.conn.execute(select(func.sum(repayments.c.interest))
                    .where(repayments.c.loan_id == loan_id))).scalar_one()
    assert Decimal(paid_interest) == Decimal(received)


async def test_settling_a_bullet_loan_half_way_charges_half_a_years_interest(core):
    _b, _inv, loan_id = await property_loan(core, "bullet", 12)
    (only,) = await schedule(core, loan_id)
    core.clock.advance(timedelta(days=182))
    await fund_wallet(core, _b, "5000.00")
    result = await repay(core, loan_id, settle=True, key="settle-bullet")
    assert only.interest * Decimal("0.45") <= result.interest.amount <= only.interest * \
        Decimal("0.55")
    assert result.principal == cny("50000.00") and result.loan_repaid
    assert await violations(core) == []


async def test_settling_on_a_due_date_charges_nothing_of_the_next_period(core):
    core.clock.set(datetime(2026, 1, 31, 2, 0, tzinfo=UTC))
    borrower, _inv, loan_id = await active_loan(core)
    rows = await schedule(core, loan_id)
    assert [r.due_date for r in rows[:2]] == [date(2026, 2, 28), date(2026, 3, 31)]
    set_day(core, date(2026, 3, 31))
    await fund_wallet(core, borrower, "1000.00")
    result = await repay(core, loan_id, settle=True, key="settle-on-due")
    assert result.interest.amount == rows[0].interest + rows[1].interest
    assert await violations(core) == []
