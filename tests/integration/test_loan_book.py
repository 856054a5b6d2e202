"""A simulated loan book: two years of business days through the daily job.

Fifty borrowers, each with a behaviour profile, take up to four loans each during the first year
(about 190 loans: consumer loans in equal installments or equal principal over 3-12 months,
property loans as a bullet or interest first over 12 months, disbursed by staff); eight investors
fund every listing with one batch of bids. The clock then moves one business date at a time for
730 days: the daily job runs at 02:00, and borrowers and staff act during business hours.

Invariants are checked after every day of the first three months, then weekly, and after every
day on which a loan is written off or money is recovered (730 daily checks would add a quarter
to the run time; a broken invariant is a persistent state, so a weekly check still finds it).
Every 15th day is re-run from scratch (its ``job_runs`` deleted, as after a crash) and must
change nothing.

Profiles (fixed per borrower; details drawn per loan from a seeded generator):

* ``on_time`` - tops up the wallet 1-3 days before each due date; the auto-debit takes it.
* ``late`` - pays everything owed, penalty included, 5-20 days after each due date.
* ``partial`` - pays 30-80% of an installment on its due date and the rest 5-25 days later.
* ``early`` - on time, then settles the whole loan early or prepays a couple of installments.
* ``cured`` - misses one installment, goes 30-60 days overdue (most promise to pay first), then
  pays everything owed and is on time again.
* ``defaulted`` - pays ahead until a day in the first 14 months, then never again (some promise
  and break it); staff write each loan off from the write-off review queue (D+90); half of them
  pay part back later through a real bank top-up, and one pledged property is sold.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from core.adapters.tables import (
    analytics_events,
    bids,
    collection_actions,
    compensations,
    installments,
    job_runs,
    ledger_accounts,
    ledger_postings,
    ledger_transfers,
    loans,
    outbox,
    repayments,
    risk_flags,
    servicing_tasks,
)
from core.adapters.uow import UnitOfWork
from core.bootstrap import Core
from core.domain.errors import UnbalancedTransfer
from core.ledger import Transfer, user_account
from core.services.lending.investing import BidRequest, BidResult
from tests.integration.accounts_helpers import Person
from tests.integration.lending_helpers import apply, borrower, cny, investor, strong_request
from tests.integration.servicing_helpers import (
    active_loan,
    available,
    days,
    drain_wallet,
    fund_wallet,
    run_day,
    schedule,
    set_day,
    violations,
)

SEED = 20260302
START = date(2026, 3, 3)  # the day after the book opens
DAYS = 730
ORIGINATION_DAYS = 360  # while the investors' risk assessments are valid
BORROWERS = 50
LOANS_EACH = 4
INVESTORS = 8
RERUN_EVERY = 15
DAILY_CHECKS = 90
STAFF = 1
BUSINESS_HOURS = time(10, 0)
CUSTODY = "platform:custody_cash"
PROTECTION = "platform:protection_fund"
FEE_INCOME = "platform:fee_income"
PROFILES = (("on_time", 16), ("late", 8), ("partial", 6), ("early", 7), ("cured", 6),
            ("defaulted", 7))
OPEN = ("active", "overdue", "written_off")


@dataclass
class BookLoan:
    """One loan of the book and how its borrower will treat it."""

    person: Person
    profile: str
    apply_on: date
    product: str
    amount: Decimal
    months: int
    method: str
    rng: random.Random
    stop_paying_on: date | None = None  # defaulted borrowers pay nothing from this day
    id: int | None = None
    lead: int = 1  # days before a due date that the borrower pays ahead
    settle_on: date | None = None
    prepay_on: date | None = None
    miss_period: int = 0  # cured: the installment left unpaid
    cure_dpd: int = 0
    promise_dpd: int | None = None
    recovers: bool = False
    recovery_on: date | None = None
    collateral_on: date | None = None
    cured: bool = False
    paid_ahead: set[int] = field(default_factory=set)
    delays: dict[int, int] = field(default_factory=dict)
    partly_paid: set[int] = field(default_factory=set)

    def delay(self, period: int, low: int, high: int) -> int:
        """Days after a due date this borrower settles that installment (drawn once)."""
        if period not in self.delays:
            self.delays[period] = self.rng.randint(low, high)
        return self.delays[period]


def _left(row: Any) -> Decimal:
    return (row.principal - row.paid_principal + row.interest - row.paid_interest
            + row.penalty - row.paid_penalty)


class LoanBook:
    """The borrowers, investors and staff of the simulation, acting through the services."""

    def __init__(self, core: Core, rng: random.Random) -> None:
        self.core = core
        self.rng = rng
        self.investors: list[Person] = []
        self.loans: list[BookLoan] = []
        self.by_id: dict[int, BookLoan] = {}
        self.happened: Counter[str] = Counter()
        self.refused: list[str] = []  # recoveries the platform could not book
        self._keys = 0

    # Set-up ---------------------------------------------------------------------------------

    async def open(self) -> None:
        self.investors = [await investor(self.core, "3000000.00") for _ in range(INVESTORS)]
        profiles = [name for name, count in PROFILES for _ in range(count)]
        self.rng.shuffle(profiles)
        assert len(profiles) == BORROWERS
        pledged = False  # one defaulter's first loan is secured: its collateral will be sold
        for n, profile in enumerate(profiles):
            person = await borrower(self.core)
            stop = START + timedelta(days=self.rng.randint(60, 420))
            offsets = sorted(self.rng.sample(range(ORIGINATION_DAYS), LOANS_EACH))
            secured = profile == "defaulted" and not pledged
            if secured:
                pledged = True
                stop = max(stop, START + timedelta(days=offsets[0] + 45))
            for k, offset in enumerate(offsets):
                loan = self._plan(person, profile, START + timedelta(days=offset),
                                  random.Random(f"{SEED}:{n}:{k}"), secured and k == 0)
                loan.stop_paying_on = stop if profile == "defaulted" else None
                self.loans.append(loan)

    def _plan(self, person: Person, profile: str, apply_on: date, rng: random.Random,
              secured: bool) -> BookLoan:
        if secured:
            product, months, method = "property", 12, "interest_first"
            amount = Decimal(rng.randrange(50_000, 80_001, 1_000))
        elif rng.random() < 0.12:
            product, months = "property", 12
            amount = Decimal(rng.randrange(50_000, 80_001, 1_000))
            method = rng.choice(("bullet", "interest_first"))
        else:
            product, months = "consumer", rng.choice((3, 3, 6, 6, 12))
            amount = Decimal(rng.randrange(1_000, 20_001, 100))
            method = rng.choice(("equal_installment", "equal_principal"))
        loan = BookLoan(person, profile, apply_on, product, amount, months, method, rng,
                        lead=rng.randint(1, 3))
        term_days = months * 30
        if profile == "early":
            when = apply_on + timedelta(days=rng.randint(20, max(21, term_days - 15)))
            if rng.random() < 0.6:
                loan.settle_on = when
            else:
                loan.prepay_on = when
        elif profile == "cured":
            loan.miss_period = rng.randint(1, max(1, months - 1))
            loan.cure_dpd = rng.randint(30, 60)
            if rng.random() < 0.6:
                loan.promise_dpd = loan.cure_dpd - rng.randint(5, 20)
        elif profile == "defaulted":
            loan.recovers = rng.random() < 0.5
            if rng.random() < 0.5:
                loan.promise_dpd = 20
        return loan

    # Origination ----------------------------------------------------------------------------

    async def originate(self, loan: BookLoan) -> None:
        """Apply, (have staff) approve, fund with one batch of bids, disburse, spend."""
        if loan.stop_paying_on is not None and loan.apply_on >= loan.stop_paying_on:
            return  # a borrower who has disappeared asks for nothing more
        income = Decimal(150_000 if loan.method == "bullet" else loan.rng.randrange(
            15_000, 60_001, 1_000))
        request = strong_request(
            str(loan.amount), months=loan.months, product=loan.product, method=loan.method,
            monthly_income=income, years_at_job=Decimal(loan.rng.randint(1, 10)),
            employment=loan.rng.choice(("salaried", "civil_servant", "self_employed",
                                        "business_owner")))
        decision = await apply(self.core, loan.person, request)
        self.happened[f"application_{decision.status}"] += 1
        if decision.status == "rejected":
            return
        core = self.core
        async with core.uow() as uow:
            loan_id = decision.loan_id
            if decision.status == "review":
                loan_id = await core.applications.approve(
                    uow, decision.application_id, STAFF,
                    core.policy.rate(decision.grade, loan.months))
            assert loan_id is not None
            results = await core.investing.invest_many(uow, self._bids(loan_id, loan.amount))
            assert all(isinstance(r, BidResult) for r in results), results
            assert results[-1].loan_funded
            if not core.settings.lending.products[loan.product].auto_disburse:
                await core.funding.disburse(uow, loan_id, staff_id=STAFF)
            row = (await uow.conn.execute(select(loans).where(loans.c.id == loan_id))).one()
            assert row.status == "active", row.status
            net = row.amount - row.service_fee - row.protection_fee
            await core.ledger.post(uow, Transfer.simple(  # the borrower spends the loan
                f"book:spend:{loan_id}", "withdrawal_settle",
                debit_account=user_account(loan.person.user_id, "available"),
                credit_account=CUSTODY, amount=cny(net)))
            await uow.commit()
        loan.id = loan_id
        self.by_id[loan_id] = loan

    def _bids(self, loan_id: int, amount: Decimal) -> list[BidRequest]:
        """One to four investors, in multiples of 100, adding up to the loan."""
        units = int(amount // 100)
        count = min(self.rng.randint(1, 4), units)
        cuts = sorted(self.rng.sample(range(1, units), count - 1)) if count > 1 else []
        shares = [b - a for a, b in zip([0, *cuts], [*cuts, units], strict=True)]
        people = self.rng.sample(self.investors, count)
        return [BidRequest(p.user_id, loan_id, cny(share * 100), f"book:{loan_id}:{n}")
                for n, (p, share) in enumerate(zip(people, shares, strict=True))]

    # A business day -------------------------------------------------------------------------

    async def act(self, day: date) -> bool:
        """Everything borrowers and staff do on ``day``; returns whether a loan was written off
        or money was recovered on one."""
        before = self.notable()
        for loan in self.loans:
            if loan.apply_on == day:
                await self.originate(loan)
        await self._write_offs(day)
        i, lo = installments.c, loans.c
        async with self.core.uow(read_only=True) as uow:
            status = dict((await uow.conn.execute(select(lo.id, lo.status).where(
                lo.status.in_(OPEN)))).all())
            rows = (await uow.conn.execute(
                select(i.loan_id, i.period, i.due_date, i.principal, i.interest, i.penalty,
                       i.paid_principal, i.paid_interest, i.paid_penalty)
                .select_from(installments.join(loans, lo.id == i.loan_id))
                .where(i.status != "paid", lo.status.in_(("active", "overdue")),
                       i.due_date <= day + timedelta(days=3))
                .order_by(i.loan_id, i.period))).all()
        unpaid: dict[int, list[Any]] = defaultdict(list)
        for row in rows:
            unpaid[row.loan_id].append(row)
        for loan_id in sorted(status):
            if status[loan_id] == "written_off":
                await self._recover(self.by_id[loan_id], day)
        async with self.core.uow() as uow:  # the day's payments, booked together
            for loan_id in sorted(status):
                loan = self.by_id[loan_id]
                if status[loan_id] == "written_off":
                    continue
                if day in (loan.settle_on, loan.prepay_on):
                    await self._pay_early(uow, loan, day)
                elif unpaid[loan_id]:
                    await self._behave(uow, loan, day, unpaid[loan_id])
            await uow.commit()
        return self.notable() != before

    def notable(self) -> int:
        return sum(self.happened[k] for k in ("written_off", "recovered", "collateral_sold"))

    async def _behave(self, uow: UnitOfWork, loan: BookLoan, day: date, rows: list[Any]) -> None:
        due = [r for r in rows if r.due_date <= day]
        oldest = due[0] if due else None
        late_by = (day - oldest.due_date).days if oldest else 0
        arrears = sum((_left(r) for r in due), Decimal(0))
        profile = loan.profile
        if profile == "late":
            if oldest and late_by >= loan.delay(oldest.period, 5, 20):
                await self.pay(uow, loan, day, "late", arrears)
            return
        if profile == "partial":
            if oldest and late_by >= loan.delay(oldest.period, 5, 25):
                await self.pay(uow, loan, day, "catch-up", arrears)
            elif oldest and late_by == 0 and oldest.period not in loan.partly_paid:
                loan.partly_paid.add(oldest.period)
                share = Decimal(loan.rng.randint(30, 80)) / 100
                await self.pay(uow, loan, day, "part", (_left(oldest) * share).quantize(
                    Decimal("0.01")))
            return
        if profile == "cured" and not loan.cured:
            missed = next((r for r in due if r.period == loan.miss_period), None)
            if missed is not None:
                dpd = (day - missed.due_date).days
                if dpd == loan.promise_dpd:
                    await self._promise(uow, loan, missed.due_date + timedelta(
                        days=loan.cure_dpd), arrears)
                if dpd >= loan.cure_dpd:
                    loan.cured = True
                    await self.pay(uow, loan, day, "cure", arrears)
                return
        if loan.stop_paying_on is not None and day >= loan.stop_paying_on:
            if oldest and late_by == loan.promise_dpd:  # a promise that will be broken
                await self._promise(uow, loan, day + timedelta(days=10), arrears)
            return
        if late_by > 0:  # arrears a paying borrower did not mean to have
            self.happened[f"unexpected_arrears_{profile}"] += 1
            await self.pay(uow, loan, day, "arrears", arrears)
            return
        await self._pay_ahead(uow, loan, day, rows)

    async def _pay_ahead(self, uow: UnitOfWork, loan: BookLoan, day: date, rows: list[Any]) -> None:
        """The next installment is paid ``lead`` days ahead. On-time and early borrowers top up
        their wallet and let the daily job's auto-debit take it; borrowers who also run late
        pay by hand, so that their wallet never holds money an auto-debit could take for
        another, overdue loan."""
        auto = loan.profile in ("on_time", "early")
        for r in rows:
            ahead = (r.due_date - day).days
            if not (1 if auto else 0) <= ahead <= loan.lead or r.period in loan.paid_ahead:
                continue
            if loan.profile == "cured" and not loan.cured and r.period >= loan.miss_period:
                continue
            loan.paid_ahead.add(r.period)
            if auto:
                await self._top_up(uow, loan.person, _left(r))
                self.happened["paid_ahead_for_auto_debit"] += 1
            else:
                await self.pay(uow, loan, day, f"ahead-{r.period}", _left(r))

    async def _pay_early(self, uow: UnitOfWork, loan: BookLoan, day: date) -> None:
        if day == loan.settle_on:
            await self.pay(uow, loan, day, "settle", settle=True)
            self.happened["settled_early"] += 1
            return
        owed = await self.core.repayments.owed(uow, loan.id)
        extra = owed.next_due_amount.amount * 2
        if extra > 0:
            await self.pay(uow, loan, day, "prepay", extra)
            self.happened["prepaid"] += 1

    async def _promise(self, uow: UnitOfWork, loan: BookLoan, promise_date: date,
                       amount: Decimal) -> None:
        await self.core.collections.promise(uow, loan.id, promise_date, cny(amount),
                                            staff_id=STAFF)
        self.happened[f"promise_{loan.profile}"] += 1

    async def _write_offs(self, day: date) -> None:
        """Staff work the write-off review queue (loans 90 days past due) every day."""
        async with self.core.uow(read_only=True) as uow:
            tasks = await self.core.collections.open_tasks(uow, "write_off_review")
        if not tasks:
            return
        async with self.core.uow() as uow:
            for loan_id in sorted({t["loan_id"] for t in tasks}):
                await self.core.write_offs.write_off(uow, loan_id, staff_id=STAFF)
                loan = self.by_id[loan_id]
                self.happened["written_off"] += 1
                if loan.recovers:
                    loan.recovery_on = day + timedelta(days=loan.rng.randint(15, 150))
                if loan.product == "property":
                    loan.collateral_on = day + timedelta(days=loan.rng.randint(30, 120))
            await uow.commit()

    async def _recover(self, loan: BookLoan, day: date) -> None:
        """Money for a written-off loan: the collateral sold, or the borrower through the
        custody bank."""
        core = self.core
        for when, share, collateral in ((loan.collateral_on, (40, 90), True),
                                        (loan.recovery_on, (30, 100), False)):
            if when != day:
                continue
            async with core.uow(read_only=True) as uow:
                owed = await core.repayments.owed(uow, loan.id)
            total = owed.overdue.amount + owed.penalty.amount
            if total <= 0:
                continue
            amount = max(Decimal("10.00"), (total * loan.rng.randint(*share) / 100).quantize(
                Decimal("0.01")))
            if not collateral:
                async with core.uow() as uow:
                    order = await core.wallet.request_top_up(
                        uow, loan.person.user_id, cny(amount), f"recovery-{loan.id}")
                    await uow.commit()
                async with core.uow(read_only=True) as uow:
                    ref = (await core.wallet.order(uow, order.id)).bank_ref
                await core.bank.settle(ref, succeeded=True)
            async with core.uow() as uow:
                try:
                    if collateral:
                        await core.repayments.collateral_disposal(
                            uow, loan.id, cny(amount), staff_id=STAFF,
                            description=f"sold {day}")
                    else:
                        await core.repayments.repay(uow, loan.id, cny(amount),
                                                    request_key=f"book:{loan.id}:recovery")
                except UnbalancedTransfer as exc:
                    self.refused.append(f"{'collateral' if collateral else 'recovery'} of "
                                        f"{amount} for loan {loan.id} on {day}: {exc}")
                    continue
                await uow.commit()
            self.happened["collateral_sold" if collateral else "recovered"] += 1

    # Money ----------------------------------------------------------------------------------

    async def _top_up(self, uow: UnitOfWork, person: Person, amount: Decimal) -> None:
        """Money arriving in the borrower's wallet (a settled top-up, booked directly)."""
        self._keys += 1
        await self.core.ledger.post(uow, Transfer.simple(
            f"book:top-up:{self._keys}", "top_up", debit_account=CUSTODY,
            credit_account=user_account(person.user_id, "available"), amount=cny(amount)))

    async def pay(self, uow: UnitOfWork, loan: BookLoan, day: date, tag: str,
                  amount: Decimal | None = None, *, settle: bool = False) -> None:
        """The borrower pays ``amount`` by hand (or settles the whole loan) from a top-up."""
        if settle:
            amount = (await self.core.repayments.owed(uow, loan.id)).settle_now.amount
        assert amount is not None
        if amount <= 0:
            return
        await self._top_up(uow, loan.person, amount)
        await self.core.repayments.repay(uow, loan.id, None if settle else cny(amount),
                                         request_key=f"book:{loan.id}:{day}:{tag}",
                                         settle=settle)
        self.happened[f"paid_{tag.split('-')[0]}"] += 1


# Re-running a day --------------------------------------------------------------------------


async def state(core: Core) -> dict[str, Any]:
    """Everything a business day may change, in a comparable form."""
    i, lo, t = installments.c, loans.c, servicing_tasks.c
    async with core.uow(read_only=True) as uow:
        c = uow.conn
        counts = {table.name: (await c.execute(select(func.count()).select_from(table)))
                  .scalar_one()
                  for table in (ledger_transfers, ledger_postings, outbox, collection_actions,
                                servicing_tasks, repayments, analytics_events, risk_flags,
                                compensations)}
        return {
            "counts": counts,
            "balances": [tuple(r) for r in await c.execute(
                select(ledger_accounts.c.code, ledger_accounts.c.balance)
                .order_by(ledger_accounts.c.code))],
            "installments": [tuple(r) for r in await c.execute(
                select(i.loan_id, i.period, i.status, i.penalty, i.penalty_through,
                       i.paid_principal, i.paid_interest, i.paid_penalty)
                .order_by(i.loan_id, i.period))],
            "loans": [tuple(r) for r in await c.execute(
                select(lo.id, lo.status, lo.dpd, lo.escalation, lo.principal_outstanding,
                       lo.principal_repaid, lo.principal_written_off, lo.risk_flag)
                .order_by(lo.id))],
            "tasks": [tuple(r) for r in await c.execute(
                select(t.id, t.status, t.promise_status).order_by(t.id))],
        }


async def rerun_changes_nothing(core: Core, day: date) -> None:
    before = await state(core)
    async with core.uow() as uow:  # as after a crash: the day's record is gone
        await uow.conn.execute(job_runs.delete().where(job_runs.c.business_date == day))
        await uow.commit()
    report = await run_day(core, day)
    assert "already done" not in report.values(), report
    after = await state(core)
    changed = {k: _diff(before[k], after[k]) for k in after if after[k] != before[k]}
    assert not changed, f"re-running {day} changed {changed}"


def _diff(before: Any, after: Any) -> Any:
    if isinstance(before, dict):
        return {k: (before[k], v) for k, v in after.items() if before[k] != v}
    return {"was": [x for x in before if x not in after], "now": [x for x in after
                                                                 if x not in before]}


# The book at the end -----------------------------------------------------------------------


async def summary(core: Core) -> dict[str, Any]:
    r, lo = repayments.c, loans.c
    async with core.uow(read_only=True) as uow:
        c = uow.conn
        statuses = Counter(dict((await c.execute(
            select(lo.status, func.count()).group_by(lo.status))).all()))
        methods = set((await c.execute(select(lo.method).where(
            lo.disbursed_at.is_not(None)))).scalars())
        sources = Counter(dict((await c.execute(
            select(r.source, func.count()).group_by(r.source))).all()))
        paid = (await c.execute(select(func.sum(r.penalty), func.sum(r.early_fee),
                                       func.sum(r.to_fund), func.sum(r.amount)))).one()
        after_write_off = (await c.execute(select(func.count()).select_from(
            repayments.join(loans, lo.id == r.loan_id)).where(
            lo.status == "written_off", r.received_at > lo.written_off_at))).scalar_one()
        tasks = Counter(dict((await c.execute(select(
            servicing_tasks.c.kind, func.count()).group_by(servicing_tasks.c.kind))).all()))
        promises = Counter(dict((await c.execute(select(
            servicing_tasks.c.promise_status, func.count())
            .where(servicing_tasks.c.promise_status.is_not(None))
            .group_by(servicing_tasks.c.promise_status))).all()))
        stages = Counter(dict((await c.execute(select(
            collection_actions.c.stage, func.count()).group_by(collection_actions.c.stage)))
            .all()))
        compensated = (await c.execute(select(
            func.count(), func.sum(compensations.c.amount),
            func.sum(compensations.c.recovered)))).one()
        bid_count = (await c.execute(select(func.count()).select_from(bids))).scalar_one()
        fee_income = (await core.ledger.balance(uow, FEE_INCOME)).amount
        fund = (await core.ledger.balance(uow, PROTECTION)).amount
    return {"loans": statuses, "methods": methods, "repayments": sources,
            "penalty_paid": paid[0], "early_fees": paid[1], "repaid_to_fund": paid[2],
            "received": paid[3], "repayments_after_write_off": after_write_off,
            "tasks": tasks, "promises": promises, "stages": stages,
            "compensations": compensated[0],
            "compensated": compensated[1], "recovered_by_fund": compensated[2],
            "bids": bid_count, "fee_income": fee_income, "protection_fund": fund}


async def test_a_two_year_loan_book_keeps_every_invariant_and_each_day_reruns_idempotently(
        core: Core) -> None:
    book = LoanBook(core, random.Random(SEED))
    await book.open()
    assert await violations(core) == []
    for n, day in enumerate(days(START, START + timedelta(days=DAYS - 1))):
        await run_day(core, day)
        rerun = n % RERUN_EVERY == RERUN_EVERY - 1
        if rerun:
            await rerun_changes_nothing(core, day)
        set_day(core, day, BUSINESS_HOURS)
        notable = await book.act(day)
        if n < DAILY_CHECKS or n % 7 == 6 or rerun or notable:
            problems = await violations(core)
            assert problems == [], f"{day}: {problems}"

    end = await summary(core)
    print(end, dict(book.happened))  # shown when the test fails
    loans_by_status = end["loans"]
    assert sum(loans_by_status.values()) >= 150
    assert loans_by_status["repaid"] > 100 and loans_by_status["written_off"] >= 5
    assert end["methods"] == {"equal_installment", "equal_principal", "interest_first",
                              "bullet"}
    assert end["repayments"]["auto_debit"] > 100 and end["repayments"]["borrower"] > 100
    assert end["repayments"]["collateral"] + len(book.refused) >= 1
    assert end["penalty_paid"] > 0 and end["early_fees"] > 0
    assert end["repayments_after_write_off"] > 0 and end["recovered_by_fund"] > 0
    assert end["tasks"]["collections"] > 0 and end["tasks"]["write_off_review"] > 0
    assert end["promises"]["kept"] > 0 and end["promises"]["broken"] > 0
    assert end["stages"]["D+30"] > 0 and end["stages"]["D+90"] > 0
    assert book.happened["settled_early"] > 0 and book.happened["prepaid"] > 0
    assert not [k for k in book.happened if k.startswith("unexpected")], book.happened
    assert not book.refused, (
        "money recovered on written-off loans could not be booked (see "
        f"test_a_recovery_on_a_loan_the_fund_compensated_in_full_is_booked): {book.refused}")


async def test_a_recovery_on_a_loan_the_fund_compensated_in_full_is_booked(core: Core) -> None:
    """Found by the loan book: once the protection fund has paid the investors' whole claim,
    a later recovery's interest and penalty must still go somewhere (the books balance)."""
    debtor, investors, loan_id = await active_loan(core)
    await drain_wallet(core, debtor)
    async with core.uow() as uow:  # a guarantor's top-up: the fund now covers the whole loan
        await core.ledger.post(uow, Transfer.simple(
            "guarantor-top-up", "protection_top_up", debit_account=CUSTODY,
            credit_account=PROTECTION, amount=cny("20000.00")))
        await uow.commit()
    due = (await schedule(core, loan_id))[0].due_date
    for day in days(due + timedelta(days=1), due + timedelta(days=10)):
        await run_day(core, day)
    async with core.uow() as uow:
        paid = await core.write_offs.write_off(uow, loan_id, staff_id=STAFF)
        await uow.commit()
    assert paid == cny("10000.00")  # the investors lost nothing
    await fund_wallet(core, debtor, "300.00")
    people = [p.user_id for p in investors]
    before = [await available(core, p) for p in people]
    async with core.uow(read_only=True) as uow:
        fund_before = (await core.ledger.balance(uow, PROTECTION)).amount
        fee_before = (await core.ledger.balance(uow, FEE_INCOME)).amount
    async with core.uow() as uow:
        result = await core.repayments.repay(uow, loan_id, cny("300.00"),
                                             request_key="recovery")
        await uow.commit()
    assert result.applied == cny("300.00")
    assert result.penalty.is_positive() and result.interest.is_positive()
    gained = sum([await available(core, p) for p in people]) - sum(before)
    async with core.uow(read_only=True) as uow:
        fund = (await core.ledger.balance(uow, PROTECTION)).amount - fund_before
        fee = (await core.ledger.balance(uow, FEE_INCOME)).amount - fee_before
    assert fund >= result.principal.amount  # the fund is paid back first
    assert gained + fee + fund == Decimal("300.00")
    assert await violations(core) == []
