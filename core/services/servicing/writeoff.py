"""Write-off after review, and compensation (代偿) from the third-party protection fund.

Regulators forbade a platform's own "risk reserve" as an implicit guarantee; the allowed form is
a third party. The protection fund is a separate ledger account held for a guarantor, fed by a
share of each disbursed loan. When a loan is written off, the fund compensates the investors'
outstanding principal pro rata, as far as its balance reaches - never more, never below zero.
What the borrower pays later goes first to the fund, up to what it paid, then to the investors
by what they lost (``Repayments``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import bindparam, func, select, update

from core import analytics, notify
from core.adapters.tables import bids, compensations, loans, servicing_tasks
from core.adapters.uow import UnitOfWork
from core.domain.errors import NotOverdue
from core.domain.money import Currency, Money, split
from core.ledger import Ledger, Transfer, credit, debit, user_account
from core.services import audit

PROTECTION = "platform:protection_fund"


@dataclass(frozen=True, slots=True)
class FundDisclosure:
    balance: Money
    outstanding_principal: Money  # of loans the fund covers (active and overdue)
    coverage_ratio: Decimal  # balance / outstanding principal
    compensations: int
    compensated: Money


class WriteOffs:
    def __init__(self, currency: Currency, ledger: Ledger) -> None:
        self.currency = currency
        self.ledger = ledger

    async def write_off(self, uow: UnitOfWork, loan_id: int, staff_id: int,
                        reason: str = "uncollectable") -> Money:
        """Write the loan off (after review); the fund compensates what it can. Returns the
        compensation paid."""
        lo, b = loans.c, bids.c
        query = select(loans).where(lo.id == loan_id)
        if uow.dialect == "postgresql":
            query = query.with_for_update()
        loan = (await uow.conn.execute(query)).one()
        if loan.status != "overdue":
            raise NotOverdue("only an overdue loan can be written off", loan_id=loan_id)
        claims = (await uow.conn.execute(select(bids).where(
            b.loan_id == loan_id, b.status == "active").order_by(b.id))).all()
        owed = [Decimal(c.amount) - Decimal(c.principal_repaid) for c in claims]
        total_owed = Money.rounded(sum(owed, Decimal(0)), self.currency)
        fund = await self.ledger.balance(uow, PROTECTION)
        paid = min(fund, total_owed)
        parts = (split(paid, owed) if paid.is_positive() and any(owed)
                 else [Money.zero(self.currency)] * len(claims))
        if paid.is_positive():
            per_investor: dict[int, Money] = {}
            for c, part in zip(claims, parts, strict=True):
                per_investor[c.investor_id] = per_investor.get(
                    c.investor_id, Money.zero(self.currency)) + part
            legs = [debit(PROTECTION, paid)] + [
                credit(user_account(inv, "available"), amount)
                for inv, amount in per_investor.items() if amount.is_positive()]
            posted = await self.ledger.post(uow, Transfer(
                f"compensation:{loan_id}", "compensation", tuple(legs),
                meta={"loan_id": loan_id}))
            await uow.conn.execute(compensations.insert().values(
                loan_id=loan_id, amount=paid.amount, covered=total_owed.amount,
                recovered=Decimal(0), paid_at=uow.clock.now(), transfer_id=posted.transfer_id))
        if claims:
            await uow.conn.execute(update(bids).where(b.id == bindparam("bid")).values(
                compensated=bindparam("c", type_=b.amount.type),
                written_off=bindparam("w", type_=b.amount.type)),
                [{"bid": c.id, "c": part.amount, "w": o - part.amount}
                 for c, o, part in zip(claims, owed, parts, strict=True)])
        now = uow.clock.now()
        await uow.conn.execute(update(loans).where(lo.id == loan_id).values(
            status="written_off", written_off_at=now, compensated_at=now if paid.is_positive()
            else None, principal_written_off=loan.principal_outstanding,
            principal_outstanding=Decimal(0)))
        t = servicing_tasks.c
        await uow.conn.execute(update(servicing_tasks).where(
            t.loan_id == loan_id, t.kind == "write_off_review", t.status == "open").values(
            status="done", outcome="written_off", assigned_to=staff_id, closed_at=now))
        await audit.record(uow, "loan_written_off", "loan", loan_id, actor_kind="staff",
                           actor_id=staff_id, details={"reason": reason,
                                                       "compensation": str(paid.amount)})
        await analytics.track(uow, "loan_written_off", user_id=loan.borrower_id,
                              props={"loan_id": loan_id, "principal": str(total_owed.amount),
                                     "compensation": str(paid.amount)})
        await notify.enqueue_many(uow, [
            {"user_id": c.investor_id, "template": "loan_written_off",
             "params": {"loan_id": loan_id, "compensation": str(part.amount),
                        "loss": str(Money.rounded(o, self.currency).amount - part.amount)},
             "dedupe_key": f"loan_written_off:{loan_id}:{c.id}"}
            for c, o, part in zip(claims, owed, parts, strict=True)])
        return paid

    async def disclosure(self, uow: UnitOfWork) -> FundDisclosure:
        balance = await self.ledger.balance(uow, PROTECTION)
        lo, c = loans.c, compensations.c
        outstanding = Decimal((await uow.conn.execute(select(
            func.coalesce(func.sum(lo.principal_outstanding), 0)).where(
            lo.status.in_(("active", "overdue"))))).scalar_one())
        count, total = (await uow.conn.execute(select(
            func.count(), func.coalesce(func.sum(c.amount), 0)))).one()
        ratio = (balance.amount / outstanding).quantize(Decimal("0.0001")) if outstanding \
            else Decimal(0)
        return FundDisclosure(balance, Money.rounded(outstanding, self.currency), ratio,
                              int(count), Money.rounded(total, self.currency))
