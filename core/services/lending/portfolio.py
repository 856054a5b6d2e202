"""What an investor holds: principal still owed to them and interest still to come."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select, type_coerce

from core.adapters.tables import bids, installments
from core.adapters.types import Amount
from core.adapters.uow import UnitOfWork
from core.domain.money import Currency, Money, split


class Portfolio:
    def __init__(self, currency: Currency) -> None:
        self.currency = currency

    async def claims(self, uow: UnitOfWork, investor_id: int) -> tuple[Money, Money]:
        """(principal outstanding, interest receivable) over the investor's disbursed loans.

        Each loan's unpaid principal and interest are split among its investors by their bids
        with the shared split function, so the investors' figures add up to the loan's."""
        b, i = bids.c, installments.c
        loan_ids = (await uow.conn.execute(select(b.loan_id).where(
            b.investor_id == investor_id, b.status == "active").distinct())).scalars().all()
        principal = interest = Money.zero(self.currency)
        if not loan_ids:
            return principal, interest
        unpaid = {r.loan_id: r for r in await uow.conn.execute(
            select(i.loan_id,
                   type_coerce(func.sum(i.principal - i.paid_principal), Amount).label("principal"),
                   type_coerce(func.sum(i.interest - i.paid_interest), Amount).label("interest"))
            .where(i.loan_id.in_(loan_ids)).group_by(i.loan_id))}
        shares: dict[int, list[tuple[int, Decimal]]] = {}
        for row in await uow.conn.execute(
                select(b.loan_id, b.investor_id, func.sum(b.amount)).where(
                    b.loan_id.in_(loan_ids), b.status == "active")
                .group_by(b.loan_id, b.investor_id).order_by(b.loan_id, b.investor_id)):
            shares.setdefault(row[0], []).append((row[1], Decimal(row[2])))
        for loan_id, holders in shares.items():
            owed = unpaid.get(loan_id)
            if owed is None:
                continue
            mine = next(n for n, (who, _) in enumerate(holders) if who == investor_id)
            weights = [w for _, w in holders]
            principal += split(Money.rounded(owed.principal, self.currency), weights)[mine]
            interest += split(Money.rounded(owed.interest, self.currency), weights)[mine]
        return principal, interest

