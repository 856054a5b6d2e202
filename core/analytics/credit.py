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
from core.analytics import rollups
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
    return snapshot_of(rollups.tally(loans_at), settings)


def snapshot_of(tallies: dict[str, rollups.Tally], settings: Settings) -> dict[str, Any]:
    """``snapshot`` from the book's sums by state (``rollups.tally``, or the rollup)."""
    cur = currency(settings)

    def m(value: Decimal) -> Decimal:
        return money(value, cur)

    def over(states: Any, figure: str) -> Decimal:
        return sum((getattr(tallies[s], figure) for s in states if s in tallies), ZERO)

    late_states = [b.name for b in DEFAULT_BUCKETS if b.min_days > 0]
    outstanding = over(BUCKETS, "principal")
    buckets = []
    for name in BUCKETS:
        t = tallies.get(name, rollups.Tally())
        buckets.append({"bucket": name, "loans": t.loans, "outstanding_principal": m(
            t.principal), "overdue_amount": m(t.overdue_principal + t.overdue_interest)})
    par = {}
    for days in (30, 90):
        beyond = m(over(BUCKETS, f"overdue_beyond_{days}"))
        late_principal = m(over([b.name for b in DEFAULT_BUCKETS if b.min_days > days],
                                "principal"))
        par[f"par{days}"] = {
            "overdue_amount_ratio": ratio(beyond, m(outstanding), (
                f"unpaid principal and interest of installments more than {days} days past "
                "due / outstanding principal")),
            "late_loans_ratio": ratio(late_principal, m(outstanding), (
                f"outstanding principal of loans more than {days} days past due / "
                "outstanding principal")),
        }
    return {
        "loans_outstanding": sum(tallies[s].loans for s in BUCKETS if s in tallies),
        "outstanding_principal": m(outstanding),
        "interest_outstanding": m(over(BUCKETS, "interest")),
        "overdue": {"loans": sum(tallies[s].loans for s in late_states if s in tallies),
                    "amount": m(over(late_states, "overdue_principal")
                                + over(late_states, "overdue_interest")),
                    "principal": m(over(late_states, "overdue_principal")),
                    "interest": m(over(late_states, "overdue_interest")),
                    "late_loans_principal": m(over(late_states, "principal"))},
        "buckets": buckets,
        **par,
    }


async def tallies(uow: UnitOfWork, days: list[date], settings: Settings,
                  f: Filters | None) -> dict[date, dict[str, rollups.Tally]]:
    """The book's sums by state at the end of each day: from the rollup where the day is
    built, else rebuilt from the raw rows (``f``: the borrowers' filters; None: everyone)."""
    out: dict[date, dict[str, rollups.Tally]] = dict(await rollups.book_tallies(uow, days, f))
    missing = sorted(set(days) - set(out))
    if missing:
        states = await book(uow, missing, settings, borrowers(f) if f is not None else ())
        out.update({day: rollups.tally(states[day]) for day in missing})
    return out


async def portfolio(uow: UnitOfWork, f: Filters, *, settings: Settings) -> dict[str, Any]:
    """The book at the end of the period and of the previous one: ``{"as_of", "previous_as_of",
    "current": snapshot, "previous": snapshot}``; a snapshot is ``{"loans_outstanding",
    "outstanding_principal", "interest_outstanding", "overdue": {"loans", "amount",
    "principal", "interest", "late_loans_principal"}, "buckets": [{"bucket", "loans",
    "outstanding_principal", "overdue_amount"}], "par30"/"par90": {"overdue_amount_ratio",
    "late_loans_ratio"}}`` (each ratio with numerator, denominator and definition)."""
    today = uow.clock.today()
    now_day, before = as_of(f, today), as_of(f.previous(), today)
    states = await tallies(uow, [now_day, before], settings, f)
    return {"as_of": now_day.isoformat(), "previous_as_of": before.isoformat(),
            "current": snapshot_of(states[now_day], settings),
            "previous": snapshot_of(states[before], settings)}


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
    states = await tallies(uow, ends, settings, f) if cohorts and ends else {}
    bad: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    bad_states = ["written_off", *(b.name for b in DEFAULT_BUCKETS if b.min_days > 30)]
    for day, by_state in states.items():
        for state in bad_states:
            for key, principal in by_state[state].cohorts.items() if state in by_state else ():
                if key in cohorts:
                    bad[(key, day)] += principal
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
    counts: dict[str, dict[str, int]] = {s: defaultdict(int) for s in BUCKETS}
    principal: dict[str, Decimal] = defaultdict(Decimal)
    unbuilt = []
    for before, after in pairs:
        rolled = await rollups.rolls(uow, after, f)
        if rolled is None:
            unbuilt.append((before, after))
            continue
        for state, to, n, amount in rolled:
            counts[state][to] += n
            principal[state] += amount
    days = sorted({d for pair in unbuilt for d in pair})
    states = await book(uow, days, settings, borrowers(f)) if days else {}
    for before, after in unbuilt:
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
    t, lo, r, u = servicing_tasks.c, loans.c, repayments.c, users.c
    # the loan and its borrower by key for the period's rows (not a list of every loan)
    tasks_of = servicing_tasks.join(loans, lo.id == t.loan_id).join(users, u.id == lo.borrower_id)
    in_period = and_(t.created_at >= lo_at, t.created_at < hi_at, t.kind == "collections",
                     lo.disbursed_at.is_not(None), *borrowers(f))
    tasks = (await uow.conn.execute(select(
        func.count(), func.count(t.outcome),
        func.count().filter(t.outcome.in_(("contacted", "refused"))))
        .select_from(tasks_of).where(in_period, t.promise_status.is_(None)))).one()
    promises = {row.promise_status: int(row.n) for row in (await uow.conn.execute(
        select(t.promise_status, func.count().label("n")).select_from(tasks_of)
        .where(in_period, t.promise_status.is_not(None)).group_by(t.promise_status))).all()}
    start = f.start - timedelta(days=1)
    end = max(start, min(f.end, uow.clock.today()))
    owed, recovered = await _recovery(uow, start, end, f, settings)
    after = (await uow.conn.execute(
        select(total(r.amount), total(r.to_fund))
        .select_from(repayments.join(loans, lo.id == r.loan_id).join(
            users, u.id == lo.borrower_id))
        .where(r.received_at >= lo_at, r.received_at < hi_at, lo.written_off_at.is_not(None),
               r.received_at > lo.written_off_at, lo.disbursed_at.is_not(None),
               *borrowers(f)))).one()
    return {
        "tasks": int(tasks[0]), "worked": int(tasks[1]), "reached": int(tasks[2]),
        "promises": sum(promises.values()), "kept": promises.get("kept", 0),
        "broken": promises.get("broken", 0), "pending": promises.get("pending", 0),
        "recovery": ratio(money(recovered, cur), money(owed, cur), (
            "overdue amount (principal + interest) at the start of the period that was repaid "
            "by its end / overdue amount at the start")),
        "after_write_off": {"amount": money(after[0], cur), "to_fund": money(after[1], cur)},
    }


async def _recovery(uow: UnitOfWork, start: date, end: date, f: Filters, settings: Settings
                    ) -> tuple[Decimal, Decimal]:
    """The overdue amount at the end of ``start`` and how much of it was repaid by ``end``
    (repayments fill the oldest installments first: min(overdue, repaid since))."""
    owed = recovered = ZERO
    late = await rollups.overdue_loans(uow, start, f)
    if late is None:
        states = await book(uow, sorted({start, end}), settings, borrowers(f))
        at_end = {loan.loan_id: loan for loan in states[end]}
        for loan in states[start]:
            if loan.state == "open" and loan.overdue > 0:
                owed += loan.overdue
                later = at_end.get(loan.loan_id)
                recovered += min(loan.overdue, (later.paid if later else loan.paid) - loan.paid)
        return owed, recovered
    r = repayments.c
    repaid: dict[int, Decimal] = defaultdict(Decimal)
    ids = sorted(late)
    for part in (ids[k:k + 5000] for k in range(0, len(ids), 5000)):
        for loan_id, principal, interest in (await uow.conn.execute(
                select(r.loan_id, total(r.principal), total(r.interest))
                .where(r.loan_id.in_(part), r.business_date > start, r.business_date <= end)
                .group_by(r.loan_id))).all():
            repaid[loan_id] += Decimal(principal) + Decimal(interest)
    for loan_id, overdue in late.items():
        owed += overdue
        recovered += min(overdue, repaid[loan_id])
    return owed, recovered


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
    held = snapshot_of((await tallies(uow, [day], settings, None))[day], settings)
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
