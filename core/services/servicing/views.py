"""What investors and borrowers see of their money (the services the bots call).

Investor: invested, outstanding principal, interest received and receivable, losses,
compensation, net annualised return (XIRR over the investor's actual cash flows, the open
position valued at its outstanding principal today), upcoming receipts by date, per-loan detail.
Borrower: loans, next due date and amount, overdue amount and penalty to date, the schedule with
paid marks, and what paying a given amount now would settle.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from core.adapters.tables import bids, installments, loans
from core.adapters.uow import UnitOfWork
from core.domain.money import Currency, Money
from core.domain.overdue import bucket_for
from core.domain.returns import xirr
from core.domain.schedule import Installment, investor_schedules
from core.services.servicing.repayments import Repayments, _left


@dataclass(frozen=True, slots=True)
class InvestorLoan:
    loan_id: int
    status: str
    dpd: int
    bucket: str
    invested: Money
    outstanding: Money
    interest_received: Money


@dataclass(frozen=True, slots=True)
class InvestorOverview:
    invested: Money
    outstanding: Money
    interest_received: Money
    interest_receivable: Money
    losses: Money
    compensation: Money
    annual_return: Decimal | None  # XIRR as a fraction; None when not yet defined
    upcoming: list[tuple[date, Money]]  # expected receipts by due date (principal + interest)
    loans: list[InvestorLoan]


@dataclass(frozen=True, slots=True)
class ScheduleLine:
    period: int
    due_date: date
    principal: Money
    interest: Money
    penalty: Money
    paid: Money
    status: str  # due | partial | overdue | paid


@dataclass(frozen=True, slots=True)
class BorrowerLoan:
    loan_id: int
    status: str
    amount: Money
    dpd: int
    next_due_date: date | None
    next_due_amount: Money
    overdue: Money
    penalty: Money
    settle_now: Money
    schedule: list[ScheduleLine]


class Views:
    def __init__(self, currency: Currency, repayments: Repayments) -> None:
        self.currency = currency
        self.repayments = repayments

    def money(self, value: Any) -> Money:
        return Money.rounded(Decimal(value), self.currency)

    async def investor(self, uow: UnitOfWork, investor_id: int,
                       upcoming_days: int = 90) -> InvestorOverview:
        b, lo = bids.c, loans.c
        rows = (await uow.conn.execute(
            select(bids, lo.status.label("loan_status"), lo.dpd, lo.disbursed_at)
            .select_from(bids.join(loans, lo.id == b.loan_id))
            .where(b.investor_id == investor_id, b.status == "active")
            .order_by(b.loan_id, b.id))).all()
        today = uow.clock.today()
        zero = Money.zero(self.currency)
        invested = outstanding = received = losses = compensation = zero
        receivable = zero
        by_loan: dict[int, list[Any]] = defaultdict(list)
        for r in rows:
            by_loan[r.loan_id].append(r)
        flows: list[tuple[date, Decimal]] = []
        upcoming: dict[date, Decimal] = defaultdict(Decimal)
        per_loan = []
        for loan_id, mine in by_loan.items():
            loan_status, dpd = mine[0].loan_status, mine[0].dpd
            m_invested = self.money(sum(Decimal(r.amount) for r in mine))
            m_repaid = self.money(sum(Decimal(r.principal_repaid) for r in mine))
            m_interest = self.money(sum(Decimal(r.interest_received) for r in mine))
            m_lost = self.money(sum(Decimal(r.written_off) for r in mine))
            m_comp = self.money(sum(Decimal(r.compensated) for r in mine))
            open_claim = (m_invested - m_repaid - m_lost - m_comp
                          if loan_status != "written_off" else zero)
            invested, received = invested + m_invested, received + m_interest
            outstanding, losses = outstanding + open_claim, losses + m_lost
            compensation += m_comp
            per_loan.append(InvestorLoan(loan_id, loan_status, dpd, bucket_for(dpd),
                                         m_invested, open_claim, m_interest))
            start = uow.clock.local(mine[0].disbursed_at).date() if mine[0].disbursed_at \
                else today
            flows.append((start, -m_invested.amount))
            if loan_status in ("active", "overdue"):
                own, whole = await self._own_schedule(uow, loan_id, investor_id)
                for line, parent in zip(own, whole, strict=True):
                    if parent.status != "paid":
                        left_share = self._left_share(line, parent)
                        receivable += left_share[1]
                        if today <= line.due_date <= date.fromordinal(
                                today.toordinal() + upcoming_days):
                            upcoming[line.due_date] += (left_share[0] + left_share[1]).amount
        flows += await self._receipts(uow, investor_id)
        if outstanding.is_positive():
            flows.append((today, outstanding.amount))
        return InvestorOverview(
            invested, outstanding, received, receivable, losses, compensation,
            xirr(flows) if len(flows) >= 2 else None,
            sorted((d, self.money(v)) for d, v in upcoming.items()), per_loan)

    def _left_share(self, own: Installment, parent: Any) -> tuple[Money, Money]:
        """The part of an investor's installment not yet received, pro rata to the parent."""
        total_p, total_i = Decimal(parent.principal), Decimal(parent.interest)
        left_p = _left(parent, "principal")
        left_i = _left(parent, "interest")
        share_p = own.principal.amount * left_p / total_p if total_p else Decimal(0)
        share_i = own.interest.amount * left_i / total_i if total_i else Decimal(0)
        return self.money(share_p), self.money(share_i)

    async def _own_schedule(self, uow: UnitOfWork, loan_id: int,
                            investor_id: int) -> tuple[list[Installment], list[Any]]:
        """The investor's share of the loan's schedule (all their bids on it together)."""
        whole = (await uow.conn.execute(select(installments).where(
            installments.c.loan_id == loan_id).order_by(installments.c.period))).all()
        claims = (await uow.conn.execute(select(bids.c.investor_id, bids.c.amount).where(
            bids.c.loan_id == loan_id, bids.c.status == "active").order_by(bids.c.id))).all()
        borrower = [Installment(r.period, r.due_date, self.money(r.principal),
                                self.money(r.interest), Money.zero(self.currency))
                    for r in whole]
        split = investor_schedules(borrower, [self.money(c.amount) for c in claims])
        mine = [s for c, s in zip(claims, split, strict=True) if c.investor_id == investor_id]
        combined = []
        for n, line in enumerate(borrower):
            combined.append(Installment(
                line.period, line.due_date,
                sum((s[n].principal for s in mine), Money.zero(self.currency)),
                sum((s[n].interest for s in mine), Money.zero(self.currency)),
                Money.zero(self.currency)))
        return combined, list(whole)

    async def _receipts(self, uow: UnitOfWork, investor_id: int) -> list[tuple[date, Decimal]]:
        """Money that reached the investor's wallet from loans: repayments and compensation."""
        from core.adapters.tables import ledger_accounts, ledger_postings, ledger_transfers

        a, p, t = ledger_accounts.c, ledger_postings.c, ledger_transfers.c
        rows = await uow.conn.execute(
            select(p.posted_at, p.amount).select_from(
                ledger_postings.join(ledger_accounts, a.id == p.account_id)
                .join(ledger_transfers, t.id == p.transfer_id))
            .where(a.code == f"user:{investor_id}:available",
                   t.kind.in_(("repayment", "compensation"))))
        return [(uow.clock.local(r.posted_at).date(), -Decimal(r.amount)) for r in rows]

    async def borrower(self, uow: UnitOfWork, borrower_id: int) -> list[BorrowerLoan]:
        lo = loans.c
        rows = (await uow.conn.execute(select(loans).where(
            lo.borrower_id == borrower_id,
            lo.status.in_(("active", "overdue", "repaid", "written_off")))
            .order_by(lo.disbursed_at.desc(), lo.id.desc()))).all()
        result = []
        for loan in rows:
            lines = (await uow.conn.execute(select(installments).where(
                installments.c.loan_id == loan.id).order_by(installments.c.period))).all()
            schedule = [ScheduleLine(
                r.period, r.due_date, self.money(r.principal), self.money(r.interest),
                self.money(r.penalty),
                self.money(Decimal(r.paid_principal) + Decimal(r.paid_interest)
                           + Decimal(r.paid_penalty)), r.status) for r in lines]
            if loan.status in ("active", "overdue", "written_off"):
                owed = await self.repayments.owed(uow, loan.id)
                result.append(BorrowerLoan(
                    loan.id, loan.status, self.money(loan.amount), loan.dpd,
                    owed.next_due_date, owed.next_due_amount, owed.overdue, owed.penalty,
                    owed.settle_now, schedule))
            else:
                zero = Money.zero(self.currency)
                result.append(BorrowerLoan(loan.id, loan.status, self.money(loan.amount), 0,
                                           None, zero, zero, zero, zero, schedule))
        return result

    async def what_would_settle(self, uow: UnitOfWork, loan_id: int,
                                amount: Money) -> dict[str, Any]:
        """What paying ``amount`` now would settle: per installment and part, nothing written."""
        alloc = await self.repayments.preview(uow, loan_id, amount)
        return {"penalty": self.money(alloc.penalty), "interest": self.money(alloc.interest),
                "principal": self.money(alloc.principal),
                "unused": self.money(amount.amount - alloc.total),
                "installments": {period: {k: self.money(v) for k, v in parts.items()}
                                 for period, parts in alloc.per_installment.items()}}

