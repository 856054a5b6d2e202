"""The loan book at the end of a business day, rebuilt from what was recorded.

The live tables say how things are now (``loans.dpd``, ``installments.paid_*``). Pages compare
periods and draw curves, so stock figures (outstanding, overdue, buckets, PAR, vintages, roll
rates, disclosure) are rebuilt for any business day D from three tables:

* ``loans``: a loan is on the book at the end of D if it was disbursed by then and neither
  repaid (``closed_at``) nor written off (``written_off_at``) by then;
* ``repayments`` (``business_date``, ``principal``, ``interest``): outstanding principal at D =
  amount - principal repaid by D; interest balance = scheduled interest - interest repaid by D;
* ``installments`` (due dates, scheduled principal and interest): the waterfall
  (``services/servicing/repayments.py``) applies money to the oldest unpaid installment first,
  so the principal and interest repaid by D, poured over the schedule in period order, says what
  was still unpaid of each installment at D (within one, in ``servicing.payment_order``;
  penalties are kept apart and never counted as overdue amount).

An installment is late at D when something of it is unpaid and
``core.domain.overdue.days_past_due(due_date, D, servicing.grace_days) > 0``; a loan's days past
due are its worst late installment's, its bucket ``bucket_for(dpd)`` (current/M1/M2/M3/M3+).
For D = today this agrees with the live tables (tested). One approximation: an early settlement
lowers the settled period's scheduled interest when it happens, so an interest balance rebuilt
for a day before that settlement is short by the interest waived.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Select, func, or_, select, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from config.settings import Settings
from core.adapters.tables import installments, loans, repayments, users
from core.adapters.types import STORAGE_SCALE
from core.adapters.uow import UnitOfWork
from core.analytics.filters import day_start
from core.domain.overdue import DEFAULT_BUCKETS, days_past_due, validate_buckets

ZERO = Decimal(0)
validate_buckets(DEFAULT_BUCKETS)


def bucket_of(dpd: int) -> str:
    """``core.domain.overdue.bucket_for`` without validating the buckets on every call."""
    for bucket in DEFAULT_BUCKETS:
        if bucket.max_days is None or dpd <= bucket.max_days:
            return bucket.name
    raise AssertionError("validated buckets are open-ended")  # pragma: no cover


def _money(units: int) -> Decimal:
    """Amounts are read as the integers they are stored as (1/10,000): integer arithmetic is
    exact and much cheaper than Decimal over thousands of installments."""
    return Decimal(units).scaleb(-STORAGE_SCALE)


@dataclass(frozen=True, slots=True)
class LoanAt:
    """One loan at the end of one business day."""

    loan_id: int
    borrower_id: int
    amount: Decimal  # principal disbursed
    disbursed_on: date
    state: str  # open | repaid | written_off
    principal: Decimal  # outstanding (written off: not recovered)
    interest: Decimal  # scheduled interest not yet paid
    paid: Decimal  # principal + interest repaid so far
    late: tuple[tuple[int, int, int], ...]  # (dpd, unpaid principal, unpaid interest) in units
    dpd: int

    @property
    def bucket(self) -> str:
        return bucket_of(self.dpd) if self.state == "open" else self.state

    @property
    def overdue_principal(self) -> Decimal:
        return _money(sum(p for _, p, _ in self.late))

    @property
    def overdue_interest(self) -> Decimal:
        return _money(sum(i for _, _, i in self.late))

    @property
    def overdue(self) -> Decimal:
        """Unpaid principal and interest of late installments."""
        return _money(sum(p + i for _, p, i in self.late))

    def overdue_beyond(self, days: int) -> Decimal:
        """Unpaid principal and interest of installments more than ``days`` past due."""
        return _money(sum(p + i for d, p, i in self.late if d > days))


def loan_scope(where: Sequence[ColumnElement[bool]] = ()) -> Select[Any]:
    """Disbursed loans whose borrower passes ``where`` (clauses on ``users``)."""
    lo = loans.c
    return (select(lo.id).select_from(loans.join(users, users.c.id == lo.borrower_id))
            .where(lo.disbursed_at.is_not(None), *where).correlate(None))


def _units(column: ColumnElement[Any]) -> ColumnElement[int]:
    return type_coerce(column, BigInteger)


async def book(uow: UnitOfWork, days: Sequence[date], settings: Settings,
               where: Sequence[ColumnElement[bool]] = ()) -> dict[date, list[LoanAt]]:
    """Every loan disbursed by the end of each day (repaid before the first day left out),
    as it stood at the end of that day."""
    if not days:
        return {}
    tz = uow.clock.tz
    ends = {d: day_start(d + timedelta(days=1), tz) for d in days}
    first, last = min(days), max(days)
    lo, i, r = loans.c, installments.c, repayments.c
    scope = loan_scope(where).where(lo.disbursed_at < ends[last], or_(
        lo.closed_at.is_(None), lo.written_off_at.is_not(None),
        lo.closed_at >= ends[first]))
    rows = (await uow.conn.execute(scope.with_only_columns(
        lo.id, lo.borrower_id, _units(lo.amount), lo.disbursed_at, lo.closed_at,
        lo.written_off_at))).all()
    if not rows:
        return {d: [] for d in days}
    scheduled = {loan_id: int(total) for loan_id, total in (await uow.conn.execute(
        select(i.loan_id, func.sum(_units(i.interest))).where(i.loan_id.in_(scope))
        .group_by(i.loan_id))).all()}
    schedule: dict[int, list[tuple[date, int, int]]] = defaultdict(list)
    for loan_id, due, principal, interest in (await uow.conn.execute(
            select(i.loan_id, i.due_date, _units(i.principal), _units(i.interest))
            .where(i.loan_id.in_(scope), i.due_date < last).order_by(i.loan_id, i.period))
    ).all():
        schedule[loan_id].append((due, principal, interest))
    paid: dict[int, list[tuple[date, int, int]]] = defaultdict(list)
    for loan_id, business_date, principal, interest in (await uow.conn.execute(
            select(r.loan_id, r.business_date, _units(r.principal), _units(r.interest))
            .where(r.loan_id.in_(scope), r.business_date <= last)
            .order_by(r.loan_id, r.business_date, r.id))).all():
        so_far = paid[loan_id]
        p, n = (so_far[-1][1], so_far[-1][2]) if so_far else (0, 0)
        so_far.append((business_date, p + principal, n + interest))
    order = settings.servicing.payment_order
    interest_first = order.index("interest") < order.index("principal")
    grace = settings.servicing.grace_days
    out: dict[date, list[LoanAt]] = {d: [] for d in days}
    for loan_id, borrower_id, amount, disbursed_at, closed_at, written_off_at in rows:
        marks = paid.get(loan_id, [])
        dates = [m[0] for m in marks]
        disbursed_on = disbursed_at.astimezone(tz).date()
        for day in days:
            end = ends[day]
            if disbursed_at >= end:
                continue
            at = bisect.bisect_right(dates, day)
            principal_paid, interest_paid = (marks[at - 1][1], marks[at - 1][2]) if at \
                else (0, 0)
            state = ("written_off" if written_off_at is not None and written_off_at < end
                     else "repaid" if closed_at is not None and closed_at < end
                     else "open")
            late = _late(schedule.get(loan_id, ()), principal_paid + interest_paid, day,
                         grace, interest_first) if state == "open" else ()
            out[day].append(LoanAt(
                loan_id, borrower_id, _money(amount), disbursed_on, state,
                ZERO if state == "repaid" else _money(amount - principal_paid),
                ZERO if state != "open" else _money(
                    max(0, scheduled.get(loan_id, 0) - interest_paid)),
                _money(principal_paid + interest_paid), late,
                max((d for d, _, _ in late), default=0)))
    return out


def _late(schedule: Sequence[tuple[date, int, int]], paid: int, day: date, grace: int,
          interest_first: bool) -> tuple[tuple[int, int, int], ...]:
    """Pour ``paid`` over the schedule, oldest first; what is unpaid of the installments late
    at ``day``."""
    late = []
    left = paid
    for due, principal, interest in schedule:
        if due >= day:
            break
        owed = principal + interest
        if left >= owed:
            left -= owed
            continue
        first = interest if interest_first else principal
        first_paid = min(left, first)
        second_paid = left - first_paid
        left = 0
        if interest_first:
            unpaid = (principal - second_paid, interest - first_paid)
        else:
            unpaid = (principal - first_paid, interest - second_paid)
        dpd = days_past_due(due, day, grace)
        if dpd > 0:
            late.append((dpd, *unpaid))
    return tuple(late)


def month_ends(start: date, end: date) -> list[date]:
    """The last days of the months that end within [start, end]."""
    out = []
    day = _month_end(start)
    while day <= end:
        out.append(day)
        day = _month_end(day + timedelta(days=1))
    return out


def _month_end(day: date) -> date:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return following - timedelta(days=1)


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    """The last day of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return _month_end(date(index // 12, index % 12 + 1, 1))
