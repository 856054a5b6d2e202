"""Who holds the book at the end of a day: the disclosure figures that need each borrower and
lender (how many there are, what the largest owe or are owed) and the cumulative lending.

``figures`` computes them from the raw rows and the book of the day; the book rollup stores
them for month-ends and today (``analytics_disclosure_daily``), which ``core.analytics.
disclosure`` reads instead when the day is built. Amounts are stored as the page shows them
(at the currency's scale), so both give the same answer to the cent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import distinct, func, select

from core.adapters.tables import bids, loans
from core.adapters.uow import UnitOfWork
from core.analytics.book import ZERO, LoanAt
from core.analytics.filters import day_start
from core.analytics.numbers import money, total
from core.domain.money import Currency

FIGURES = ("lending", "loans", "borrowers", "lent", "lenders", "current_lenders",
           "current_borrowers", "owed", "owed_top10", "owed_top1", "claims", "claims_top10",
           "claims_top1")


async def figures(uow: UnitOfWork, day: date, held: Sequence[LoanAt], cur: Currency
                  ) -> dict[str, Any]:
    """The figures at the end of ``day`` from the book of that day (``held``); amounts of
    people rounded to the currency ``cur``."""
    end = day_start(day + timedelta(days=1), uow.clock.tz)
    lo, b = loans.c, bids.c
    lending = (await uow.conn.execute(select(total(lo.amount), func.count(), func.count(
        distinct(lo.borrower_id))).where(lo.disbursed_at.is_not(None), lo.disbursed_at < end))
    ).one()
    lent = (await uow.conn.execute(
        select(total(b.amount), func.count(distinct(b.investor_id)))
        .select_from(bids.join(loans, lo.id == b.loan_id))
        .where(b.status == "active", lo.disbursed_at < end))).one()
    on_book = {loan.loan_id: loan for loan in held if loan.state == "open"}
    owed: dict[int, Decimal] = defaultdict(Decimal)
    for loan in on_book.values():
        owed[loan.borrower_id] += loan.principal + loan.interest
    claims: dict[int, Decimal] = defaultdict(Decimal)
    ids = list(on_book)
    for part in (ids[i:i + 5000] for i in range(0, len(ids), 5000)):
        for row in (await uow.conn.execute(
                select(b.investor_id, b.loan_id, total(b.amount).label("amount"))
                .where(b.loan_id.in_(part), b.status == "active")
                .group_by(b.investor_id, b.loan_id))).all():
            loan = on_book[row.loan_id]
            claims[row.investor_id] += loan.principal * Decimal(row.amount) / loan.amount

    def top(amounts: dict[int, Decimal], n: int) -> Decimal:
        return money(sum(sorted(amounts.values(), reverse=True)[:n], ZERO), cur)

    return {"lending": Decimal(lending[0]), "loans": int(lending[1]),
            "borrowers": int(lending[2]), "lent": Decimal(lent[0]), "lenders": int(lent[1]),
            "current_lenders": sum(1 for v in claims.values() if v > 0),
            "current_borrowers": len(owed),
            "owed": money(sum(owed.values(), ZERO), cur), "owed_top10": top(owed, 10),
            "owed_top1": top(owed, 1),
            "claims": money(sum(claims.values(), ZERO), cur), "claims_top10": top(claims, 10),
            "claims_top1": top(claims, 1)}
