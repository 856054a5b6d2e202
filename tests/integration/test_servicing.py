"""Servicing through the services and the daily job: repay, distribute, overdue, collect."""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from core.adapters.tables import (
    analytics_events,
    collection_actions,
    job_runs,
    ledger_transfers,
    loans,
    outbox,
    servicing_tasks,
)
from core.domain.errors import InvalidPromise
from tests.integration.lending_helpers import cny
from tests.integration.servicing_helpers import (
    active_loan,
    available,
    days,
    drain_wallet,
    fund_wallet,
    loan_row,
    repay,
    run_day,
    schedule,
    violations,
)


async def test_an_installment_paid_is_distributed_to_the_cent(core):
    _borrower, investors, loan_id = await active_loan(core)
    first = (await schedule(core, loan_id))[0]
    before = [await available(core, p.user_id) for p in investors]
    async with core.uow(read_only=True) as uow:
        fee_before = (await core.ledger.balance(uow, "platform:fee_income")).amount
    result = await repay(core, loan_id, str(first.principal + first.interest))
    gained = [await available(core, p.user_id) - b for p, b in zip(investors, before,
                                                                   strict=True)]
    async with core.uow(read_only=True) as uow:
        fee = (await core.ledger.balance(uow, "platform:fee_income")).amount - fee_before
    assert result.principal.amount == first.principal and result.interest.amount == first.interest
    assert fee == result.management_fee.amount == (first.interest / 10).quantize(Decimal("0.01"))
    assert sum(gained) + fee == first.principal + first.interest
    assert gained[0] > gained[1] > gained[2] > 0
    assert (await schedule(core, loan_id))[0].status == "paid"
    assert await violations(core) == []


async def test_a_partial_payment_goes_to_penalty_then_interest_then_principal(core):
    borrower, _, loan_id = await active_loan(core)
    await drain_wallet(core, borrower)
    due = (await schedule(core, loan_id))[0].due_date
    for day in days(due + timedelta(days=1), due + timedelta(days=10)):
        await run_day(core, day)
    first = (await schedule(core, loan_id))[0]
    assert first.status == "overdue" and first.penalty > 0
    await fund_wallet(core, borrower, "100.00")
    result = await repay(core, loan_id, str(first.penalty + Decimal("10.00")))
    assert result.penalty.amount == first.penalty
    assert result.interest.amount == Decimal("10.00") and result.principal.amount == 0
    assert await violations(core) == []


async def test_early_settlement_closes_the_loan_with_accrued_interest_and_a_fee(core):
    borrower, _investors, loan_id = await active_loan(core)
    core.clock.advance(timedelta(days=15))
    async with core.uow(read_only=True) as uow:
        owed = await core.repayments.owed(uow, loan_id)
    assert owed.settle_now.amount > Decimal("10000")  # principal + accrued interest + 1% fee
    await fund_wallet(core, borrower, "500.00")
    result = await repay(core, loan_id, settle=True, key="settle")
    assert result.loan_repaid
    assert result.principal == cny("10000.00") and result.early_fee == cny("100.00")
    row = await loan_row(core, loan_id)
    assert (row.status, row.principal_outstanding) == ("repaid", Decimal("0"))
    with pytest.raises(Exception):  # noqa: B017 - a repaid loan takes no more money
        await repay(core, loan_id, "1.00", key="after")
    assert await violations(core) == []


async def test_the_same_payment_request_is_taken_once(core):
    _borrower, _, loan_id = await active_loan(core)
    first = await repay(core, loan_id, "100.00", key="tap")
    again = await repay(core, loan_id, "100.00", key="tap")
    assert again.duplicate and again.repayment_id == first.repayment_id
    async with core.uow(read_only=True) as uow:
        transfers = (await uow.conn.execute(select(func.count()).where(
            ledger_transfers.c.kind == "repayment"))).scalar_one()
    assert transfers == 1


async def test_the_daily_job_debits_a_due_installment_once_however_often_it_runs(core):
    borrower, _, loan_id = await active_loan(core)
    first = (await schedule(core, loan_id))[0]
    wallet = await available(core, borrower.user_id)  # the disbursed money is still there
    await run_day(core, first.due_date)
    await run_day(core, first.due_date)
    async with core.uow() as uow:  # even with the day's record gone, as after a crash
        await uow.conn.execute(job_runs.delete())
        await uow.commit()
    await run_day(core, first.due_date)
    assert (await schedule(core, loan_id))[0].status == "paid"
    assert await available(core, borrower.user_id) == wallet - first.principal - first.interest
    assert await violations(core) == []


async def test_nothing_to_repay_when_the_loan_is_current_and_fully_prepaid(core):
    borrower, _, loan_id = await active_loan(core, amount="1000", shares=("1000",), months=3)
    await fund_wallet(core, borrower, "100.00")
    total = sum((r.principal + r.interest for r in await schedule(core, loan_id)), Decimal(0))
    await repay(core, loan_id, str(total), key="all")
    assert (await loan_row(core, loan_id)).status == "repaid"
    with pytest.raises(Exception):  # noqa: B017
        await repay(core, loan_id, "1.00", key="more")


async def collections_log(core, loan_id, period=None):
    a = collection_actions.c
    query = select(a.stage, a.outcome, a.business_date).where(a.loan_id == loan_id)
    if period is not None:
        query = query.where(a.period == period)
    async with core.uow(read_only=True) as uow:
        return (await uow.conn.execute(query.order_by(a.id))).all()


async def overdue_loan(core):
    borrower, investors, loan_id = await active_loan(core)
    await drain_wallet(core, borrower)
    return borrower, investors, loan_id, (await schedule(core, loan_id))[0].due_date


async def test_each_collection_stage_happens_on_its_day(core):
    _borrower, _, loan_id, due = await overdue_loan(core)
    for day in days(due - timedelta(days=4), due + timedelta(days=91)):
        await run_day(core, day)
    log = {stage: ((day - due).days, outcome)
           for stage, outcome, day in await collections_log(core, loan_id, period=1)}
    assert log == {"D-3": (-3, "queued"), "D-1": (-1, "queued"), "D0": (0, "queued"),
                   "D+1": (1, "queued"), "D+3": (3, "created"), "D+15": (15, "queued"),
                   "D+30": (30, "queued"), "D+90": (90, "queued")}
    async with core.uow(read_only=True) as uow:
        kinds = sorted(set((await uow.conn.execute(select(servicing_tasks.c.kind))
                            ).scalars()))
        row = (await uow.conn.execute(select(loans.c.escalation, loans.c.dpd).where(
            loans.c.id == loan_id))).one()
    assert kinds == ["collections", "write_off_review"]
    assert row.escalation == "outsourced" and row.dpd >= 91
    assert await violations(core) == []


async def test_a_borrower_gets_at_most_one_collection_message_a_day(core):
    borrower, _, _loan_id, due = await overdue_loan(core)
    for day in days(due - timedelta(days=4), due + timedelta(days=70)):
        await run_day(core, day)
    async with core.uow(read_only=True) as uow:
        per_day = (await uow.conn.execute(
            select(collection_actions.c.business_date, func.count())
            .where(collection_actions.c.borrower_id == borrower.user_id,
                   collection_actions.c.outcome == "queued")
            .group_by(collection_actions.c.business_date))).all()
        recipients = set((await uow.conn.execute(select(outbox.c.user_id).where(
            outbox.c.template.like("overdue%") | outbox.c.template.like("repayment_%")))
        ).scalars())
    assert per_day and max(count for _, count in per_day) == 1
    assert recipients == {borrower.user_id}  # never anyone else


async def test_quiet_hours_defer_collection_messages_to_the_morning(core):
    _borrower, _, _loan_id, due = await overdue_loan(core)
    await run_day(core, due + timedelta(days=1), at=time(22, 30))
    async with core.uow(read_only=True) as uow:
        notice = (await uow.conn.execute(select(outbox.c.not_before).where(
            outbox.c.template == "overdue_notice"))).scalar_one()
    local = notice.astimezone(core.clock.tz)
    assert (local.date(), local.time()) == (due + timedelta(days=2), time(8, 0))


async def test_a_promise_being_kept_holds_escalation(core):
    borrower, _, loan_id, due = await overdue_loan(core)
    for day in days(due + timedelta(days=1), due + timedelta(days=10)):
        await run_day(core, day)
    async with core.uow() as uow:
        with pytest.raises(InvalidPromise):
            await core.collections.promise(uow, loan_id, core.clock.today() - timedelta(days=1),
                                           cny("100"))
        await core.collections.promise(uow, loan_id, due + timedelta(days=20), cny("1000"))
        await uow.commit()
    for day in days(due + timedelta(days=11), due + timedelta(days=19)):
        await run_day(core, day)
    stages = [s for s, *_ in await collections_log(core, loan_id)]
    assert "D+15" not in stages  # held by the promise
    await fund_wallet(core, borrower, "5000.00")
    for day in days(due + timedelta(days=20), due + timedelta(days=35)):
        await run_day(core, day)
    async with core.uow(read_only=True) as uow:
        status = (await uow.conn.execute(select(servicing_tasks.c.promise_status).where(
            servicing_tasks.c.promise_status.is_not(None)))).scalar_one()
        events = (await uow.conn.execute(select(analytics_events.c.name))).scalars().all()
    assert status == "kept" and "promise_kept" in events
    assert "D+30" not in [s for s, *_ in await collections_log(core, loan_id)]


async def test_a_write_off_is_compensated_pro_rata_as_far_as_the_fund_reaches(core):
    borrower, investors, loan_id, due = await overdue_loan(core)
    for day in days(due + timedelta(days=1), due + timedelta(days=91)):
        await run_day(core, day)
    before = [await available(core, p.user_id) for p in investors]
    async with core.uow() as uow:
        fund = (await core.ledger.balance(uow, "platform:protection_fund")).amount
        paid = await core.write_offs.write_off(uow, loan_id, staff_id=9)
        await uow.commit()
    assert paid.amount == fund  # the fund (1% of 10,000) covers only part of the principal
    gained = [await available(core, p.user_id) - b for p, b in zip(investors, before,
                                                                   strict=True)]
    assert sum(gained) == fund and gained == [Decimal("50.00"), Decimal("30.00"),
                                              Decimal("20.00")]
    async with core.uow(read_only=True) as uow:
        disclosure = await core.write_offs.disclosure(uow)
    assert disclosure.balance.amount == 0 and disclosure.compensations == 1
    assert await violations(core) == []
    # a late recovery pays the fund back first
    await fund_wallet(core, borrower, "300.00")
    await repay(core, loan_id, "300.00", key="recovery")
    async with core.uow(read_only=True) as uow:
        assert (await core.ledger.balance(uow, "platform:protection_fund")).amount > 0
    assert await violations(core) == []


async def test_an_investor_sees_claims_income_receipts_ahead_and_a_return(core):
    _borrower, investors, loan_id = await active_loan(core)
    first = (await schedule(core, loan_id))[0]
    await run_day(core, first.due_date)  # auto-debit from the disbursed money
    async with core.uow(read_only=True) as uow:
        view = await core.views.investor(uow, investors[0].user_id)
    assert view.invested == cny("5000.00")
    async with core.uow(read_only=True) as uow:
        from core.adapters.tables import bids

        repaid = (await uow.conn.execute(select(bids.c.principal_repaid).where(
            bids.c.investor_id == investors[0].user_id))).scalar_one()
    assert repaid > 0 and view.outstanding.amount == Decimal("5000") - repaid
    # half the loan: half of the first installment's principal (to the cent)
    assert abs(repaid - first.principal / 2) <= Decimal("0.01")
    assert view.interest_received.is_positive() and view.interest_receivable.is_positive()
    assert view.loans[0].bucket == "current" and view.losses.is_zero()
    assert view.upcoming and view.upcoming[0][0] > first.due_date
    assert view.annual_return is not None and Decimal("0.05") < view.annual_return < \
        Decimal("0.30")


async def test_a_borrower_sees_what_is_due_and_what_a_payment_would_settle(core):
    borrower, _, loan_id, due = await overdue_loan(core)
    for day in days(due + timedelta(days=1), due + timedelta(days=5)):
        await run_day(core, day)
    async with core.uow(read_only=True) as uow:
        (loan,) = await core.views.borrower(uow, borrower.user_id)
        preview = await core.views.what_would_settle(uow, loan_id, cny("50.00"))
    assert loan.status == "overdue" and loan.dpd == 5
    assert loan.overdue.is_positive() and loan.penalty.is_positive()
    assert loan.schedule[0].status == "overdue" and loan.schedule[1].status == "due"
    assert preview["penalty"] == loan.penalty
    assert preview["penalty"] + preview["interest"] + preview["principal"] == cny("50.00")
    assert (await loan_row(core, loan_id)).principal_repaid == 0  # a preview writes nothing


async def test_collateral_proceeds_after_a_write_off_repay_the_fund_then_investors(core):
    _borrower, investors, loan_id, due = await overdue_loan(core)
    for day in days(due + timedelta(days=1), due + timedelta(days=91)):
        await run_day(core, day)
    async with core.uow() as uow:
        paid = await core.write_offs.write_off(uow, loan_id, staff_id=9)
        await uow.commit()
    before = [await available(core, p.user_id) for p in investors]
    async with core.uow() as uow:
        result = await core.repayments.collateral_disposal(
            uow, loan_id, cny("2000.00"), staff_id=9, description="car auction 2026-07")
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        fund = await core.ledger.balance(uow, "platform:protection_fund")
    after = [await available(core, p.user_id) for p in investors]
    gained = sum(a - b for a, b in zip(after, before, strict=True))
    assert fund == paid  # paid back in full first
    # penalty and interest come first (the platform keeps its fee on them), then principal
    assert gained + result.management_fee.amount + paid.amount == Decimal("2000.00")
    assert result.penalty.is_positive()
    assert await violations(core) == []
