"""Overdue and collections: the loan book's health, vintages, roll rates, collections, the fund.

Stock figures are taken at the end of the period (today if the period runs past it) and at the
end of the previous period, from the book rebuilt in ``core.analytics.book``. Filters select
loans by their borrower's first touch (``users.first_channel`` / ``first_campaign``); the
protection fund is the platform's and is never filtered.

Definitions (also in ``docs/metrics.md``):

* outstanding principal: amount disbursed - principal repaid, of loans on the book;
* overdue amount: unpaid principal + interest of installments past due (after the grace period;
  penalties apart); overdue loans: loans with such an installment;
* buckets by the loan's days past due (its worst late installment): current, M1 (1-30),
  M2 (31-60), M3 (61-90), M3+ (91+), as in ``core/domain/overdue.py``;
* PAR30 / PAR90, two forms: overdue-amount ratio = overdue amount of installments more than
  30 / 90 days past due / outstanding principal; late-loans ratio = outstanding principal of loans
  more than 30 / 90 days past due / outstanding principal.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select

from config.settings import Settings
from core.adapters.tables import (
    compensations,
    loans,
    repayments,
    servicing_tasks,
    users,
)
from core.adapters.uow import UnitOfWork
from core.analytics.book import ZERO, LoanAt, add_months, book, loan_scope, month_ends, month_start
from core.analytics.filters import Filters, attributed, day_start
from core.analytics.numbers import currency, money, ratio, share, total
from core.domain.overdue import DEFAULT_BUCKETS
from core.ledger import Ledger

BUCKETS = tuple(b.name for b in DEFAULT_BUCKETS)
STATES = (*BUCKETS, "repaid", "written_off")
PROTECTION = "platform:protection_fund"


def as_of(f: Filters, today: date) -> date:
    """The day stock figures of a period are taken: its end, or today if that is earlier."""
    return min(f.end, today)


def borrowers(f: Filters) -> list[Any]:
    return attributed(f, users.c.first_channel, users.c.first_campaign)


def snapshot(loans_at: list[LoanAt], settings: Settings) -> dict[str, Any]:
    """Outstanding, overdue, buckets and both PAR forms of the loans on the book."""
    cur = currency(settings)

    def m(value: Decimal) -> Decimal:
        return money(value, cur)

    book_ = [loan for loan in loans_at if loan.state == "open"]
    outstanding = sum((loan.principal for loan in book_), ZERO)
    late = [loan for loan in book_ if loan.dpd > 0]
    buckets = {name: {"bucket": name, "loans": 0, "outstanding_principal": ZERO,
                      "overdue_amount": ZERO} for name in BUCKETS}
    for loan in book_:
        row = buckets[loan.bucket]
        row["loans"] += 1
        row["outstanding_principal"] += loan.principal
        row["overdue_amount"] += loan.overdue
    par = {}
    for days in (30, 90):
        beyond = m(sum((loan.overdue_beyond(days) for loan in book_), ZERO))
        late_principal = m(sum((loan.principal for loan in book_ if loan.dpd > days), ZERO))
        par[f"par{days}"] = {
            "overdue_amount_ratio": ratio(beyond, m(outstanding), (
                f"unpaid principal and interest of installments more than {days} days past "
                "due / outstanding principal")),
            "late_loans_ratio": ratio(late_principal, m(outstanding), (
                f"outstanding principal of loans more than {days} days past due / "
                "outstanding principal")),
        }
    return {
        "loans_outstanding": len(book_),
        "outstanding_principal": m(outstanding),
        "interest_outstanding": m(sum((loan.interest for loan in book_), ZERO)),
        "overdue": {"loans": len(late),
                    "amount": m(sum((loan.overdue for loan in late), ZERO)),
                    "principal": m(sum((loan.overdue_principal for loan in late), ZERO)),
                    "interest": m(sum((loan.overdue_interest for loan in late), ZERO)),
                    "late_loans_principal": m(sum((loan.principal for loan in late), ZERO))},
        "buckets": [{**row, "outstanding_principal": m(row["outstanding_principal"]),
                     "overdue_amount": m(row["overdue_amount"])} for row in buckets.values()],
        **par,
    }


async def portfolio(uow: UnitOfWork, f: Filters, *, settings: Settings) -> dict[str, Any]:
    """The book at the end of the period and of the previous one: ``{"as_of", "previous_as_of",
    "current": snapshot, "previous": snapshot}``; a snapshot is ``{"loans_outstanding",
    "outstanding_principal", "interest_outstanding", "overdue": {"loans", "amount",
    "principal", "interest", "late_loans_principal"}, "buckets": [{"bucket", "loans",
    "outstanding_principal", "overdue_amount"}], "par30"/"par90": {"overdue_amount_ratio",
    "late_loans_ratio"}}`` (each ratio with numerator, denominator and definition)."""
    today = uow.clock.today()
    now_day, before = as_of(f, today), as_of(f.previous(), today)
    states = await book(uow, [now_day, before], settings, borrowers(f))
    return {"as_of": now_day.isoformat(), "previous_as_of": before.isoformat(),
            "current": snapshot(states[now_day], settings),
            "previous": snapshot(states[before], settings)}


async def vintages(uow: UnitOfWork, f: Filters, *, settings: Settings) -> list[dict[str, Any]]:
    """Per disbursement month in the period: principal disbursed and, at the end of that month
    (months on book 0) and of each following one (1, 2, ...) up to the last completed month,
    the share of it that is bad: outstanding principal of loans in M2 or worse (more than 30
    days past due) plus principal written off and not recovered. ``[{"cohort": "2026-01",
    "loans", "disbursed", "curve": [{"mob", "month_end", "bad", "share"}]}]``."""
    cur = currency(settings)
    tz, today = uow.clock.tz, uow.clock.today()
    lo = loans.c
    first = month_start(f.start)
    ends = month_ends(first, today)  # completed months only
    lo_at, hi_at = day_start(first, tz), day_start(f.end + timedelta(days=1), tz)
    cohorts: dict[str, dict[str, Any]] = {}
    for row in (await uow.conn.execute(
            loan_scope(borrowers(f)).with_only_columns(lo.disbursed_at, lo.amount)
            .where(lo.disbursed_at >= lo_at, lo.disbursed_at < hi_at))).all():
        key = row.disbursed_at.astimezone(tz).strftime("%Y-%m")
        entry = cohorts.setdefault(key, {"cohort": key, "loans": 0, "disbursed": ZERO})
        entry["loans"] += 1
        entry["disbursed"] += Decimal(row.amount)
    states = await book(uow, ends, settings, borrowers(f)) if cohorts and ends else {}
    bad: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    for day, loans_at in states.items():
        for loan in loans_at:
            key = loan.disbursed_on.strftime("%Y-%m")
            if key in cohorts and (loan.state == "written_off"
                                   or (loan.state == "open" and loan.dpd > 30)):
                bad[(key, day)] += loan.principal
    out = []
    for key in sorted(cohorts):
        entry = cohorts[key]
        start = date(int(key[:4]), int(key[5:]), 1)
        curve = []
        for mob in range(len(ends)):
            day = add_months(start, mob)
            if day > ends[-1]:
                break
            amount = money(bad[(key, day)], cur)
            curve.append({"mob": mob, "month_end": day.isoformat(), "bad": amount,
                          "share": share(amount, entry["disbursed"])})
        out.append({**entry, "disbursed": money(entry["disbursed"], cur), "curve": curve})
    return out


async def roll_rates(uow: UnitOfWork, f: Filters, *, settings: Settings) -> dict[str, Any]:
    """Loans by bucket at one month-end and where they are at the next, for the month-ends
    ending in the period (up to today): ``{"transitions": ["2026-01-31 -> 2026-02-28", ...],
    "matrix": [{"from", "loans", "principal", "to": {state: {"loans", "share"}}}]}``; states
    are the buckets plus repaid and written_off, shares by loan count of the row."""
    cur = currency(settings)
    today = uow.clock.today()
    later = month_ends(f.start, min(f.end, today))
    pairs = [(add_months(day, -1), day) for day in later]
    days = sorted({d for pair in pairs for d in pair})
    states = await book(uow, days, settings, borrowers(f)) if days else {}
    counts: dict[str, dict[str, int]] = {s: defaultdict(int) for s in BUCKETS}
    principal: dict[str, Decimal] = defaultdict(Decimal)
    for before, after in pairs:
        then = {loan.loan_id: loan for loan in states[after]}
        for loan in states[before]:
            if loan.state != "open":
                continue
            counts[loan.bucket][then[loan.loan_id].bucket] += 1
            principal[loan.bucket] += loan.principal
    matrix = []
    for state in BUCKETS:
        n = sum(counts[state].values())
        matrix.append({"from": state, "loans": n, "principal": money(principal[state], cur),
                       "to": {to: {"loans": counts[state][to],
                                   "share": share(counts[state][to], n)} for to in STATES}})
    return {"transitions": [f"{a.isoformat()} -> {b.isoformat()}" for a, b in pairs],
            "matrix": matrix}


async def collections(uow: UnitOfWork, f: Filters, *, settings: Settings) -> dict[str, Any]:
    """The collections funnel and recoveries in the period, next to the previous period's:
    ``{"current": {...}, "previous": {...}}`` with ``tasks`` (agent tasks opened, D+3 and
    later stages; promise records not counted), ``worked`` (an outcome was logged),
    ``reached`` (contacted or refused), ``promises`` (promises to pay recorded, by agents or
    borrowers), ``kept`` / ``broken`` / ``pending`` (of those promises), ``recovery`` (ratio:
    overdue amount at the start of the period repaid by its end / overdue amount at the
    start) and ``after_write_off`` (repayments on written-off loans: amount, of which back to
    the protection fund)."""
    return {"current": await _collections(uow, f, settings),
            "previous": await _collections(uow, f.previous(), settings)}


async def _collections(uow: UnitOfWork, f: Filters, settings: Settings) -> dict[str, Any]:
    cur = currency(settings)
    tz = uow.clock.tz
    lo_at, hi_at = f.utc(tz)
    t, lo, r = servicing_tasks.c, loans.c, repayments.c
    scope = loan_scope(borrowers(f))
    in_period = and_(t.created_at >= lo_at, t.created_at < hi_at, t.kind == "collections",
                     t.loan_id.in_(scope))
    tasks = (await uow.conn.execute(select(
        func.count(), func.count(t.outcome),
        func.count().filter(t.outcome.in_(("contacted", "refused"))))
        .where(in_period, t.promise_status.is_(None)))).one()
    promises = {row.promise_status: int(row.n) for row in (await uow.conn.execute(
        select(t.promise_status, func.count().label("n"))
        .where(in_period, t.promise_status.is_not(None)).group_by(t.promise_status))).all()}
    start = f.start - timedelta(days=1)
    end = max(start, min(f.end, uow.clock.today()))
    states = await book(uow, sorted({start, end}), settings, borrowers(f))
    at_end = {loan.loan_id: loan for loan in states[end]}
    owed = recovered = ZERO
    for loan in states[start]:
        if loan.state == "open" and loan.overdue > 0:
            owed += loan.overdue
            later = at_end.get(loan.loan_id)
            recovered += min(loan.overdue, (later.paid if later else loan.paid) - loan.paid)
    after = (await uow.conn.execute(
        select(total(r.amount), total(r.to_fund))
        .select_from(repayments.join(loans, lo.id == r.loan_id))
        .where(r.received_at >= lo_at, r.received_at < hi_at, lo.written_off_at.is_not(None),
               r.received_at > lo.written_off_at, r.loan_id.in_(scope)))).one()
    return {
        "tasks": int(tasks[0]), "worked": int(tasks[1]), "reached": int(tasks[2]),
        "promises": sum(promises.values()), "kept": promises.get("kept", 0),
        "broken": promises.get("broken", 0), "pending": promises.get("pending", 0),
        "recovery": ratio(money(recovered, cur), money(owed, cur), (
            "overdue amount (principal + interest) at the start of the period that was repaid "
            "by its end / overdue amount at the start")),
        "after_write_off": {"amount": money(after[0], cur), "to_fund": money(after[1], cur)},
    }


async def protection_fund(uow: UnitOfWork, f: Filters, *, settings: Settings
                          ) -> dict[str, Any]:
    """The third-party protection fund at the end of the period and the previous one (never
    filtered): ``{"current": {...}, "previous": {...}}`` with ``balance``, ``contributions``
    (protection fees of loans disbursed in the period), ``compensations`` (count and amount
    paid in the period), ``cumulative_compensation``, ``coverage`` (ratio: balance /
    outstanding principal of loans past due - what write-offs would draw on) and
    ``coverage_of_book`` (balance / all outstanding principal)."""
    return {"current": await _fund(uow, f, settings),
            "previous": await _fund(uow, f.previous(), settings)}


async def _fund(uow: UnitOfWork, f: Filters, settings: Settings) -> dict[str, Any]:
    cur = currency(settings)
    tz = uow.clock.tz
    lo_at, hi_at = f.utc(tz)
    day = as_of(f, uow.clock.today())
    moment = day_start(day + timedelta(days=1), tz)
    balance = (await Ledger(cur).balance(uow, PROTECTION, as_of=moment)).amount
    lo, c = loans.c, compensations.c
    fees = (await uow.conn.execute(select(total(lo.protection_fee)).where(
        lo.disbursed_at >= lo_at, lo.disbursed_at < hi_at))).scalar_one()
    paid = (await uow.conn.execute(select(func.count(), total(c.amount)).where(
        c.paid_at >= lo_at, c.paid_at < hi_at))).one()
    cumulative = (await uow.conn.execute(select(func.count(), total(c.amount)).where(
        c.paid_at < moment))).one()
    held = snapshot((await book(uow, [day], settings))[day], settings)
    late = held["overdue"]["late_loans_principal"]
    return {
        "as_of": day.isoformat(), "balance": money(balance, cur),
        "contributions": money(fees, cur),
        "compensations": {"count": int(paid[0]), "amount": money(paid[1], cur)},
        "cumulative_compensation": {"count": int(cumulative[0]),
                                    "amount": money(cumulative[1], cur)},
        "coverage": ratio(money(balance, cur), late, (
            "protection fund balance / outstanding principal of loans past due")),
        "coverage_of_book": ratio(money(balance, cur), held["outstanding_principal"], (
            "protection fund balance / outstanding principal of all loans on the book")),
    }
