"""Funding: a listing that expires unfunded is cancelled and refunded; a funded one is disbursed.

Disbursement moves every investor's frozen bid to the borrower in one ledger transfer, less the
upfront service fee (platform income) and the protection contribution (the third-party fund),
writes the borrower's repayment schedule, and turns bids into claims proportional to them.
Products with ``auto_disburse = false`` wait for staff confirmation (audited).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select, update

from config.settings import LendingSettings
from core import analytics, notify
from core.adapters.tables import bids, installments, ledger_transfers, loans, vouchers
from core.adapters.uow import UnitOfWork
from core.domain.errors import ListingClosed, UnknownLoan
from core.domain.money import Currency, Money
from core.domain.schedule import build_schedule
from core.ledger import Ledger, Transfer, credit, debit, user_account
from core.services import audit
from core.services.lending.common import pct

FEE_INCOME = "platform:fee_income"
PROTECTION = "platform:protection_fund"


class Funding:
    def __init__(self, settings: LendingSettings, currency: Currency, ledger: Ledger) -> None:
        self.settings = settings
        self.currency = currency
        self.ledger = ledger
        # Called after a loan is disbursed (promotions pay referral rewards here).
        self.on_disbursed: list[Callable[[UnitOfWork, int, list[Any]], Awaitable[None]]] = []

    async def on_funded(self, uow: UnitOfWork, loan_ids: list[int]) -> None:
        """Disburse at once the funded loans whose product says so; others wait for staff."""
        rows = (await uow.conn.execute(select(loans.c.id, loans.c.product).where(
            loans.c.id.in_(loan_ids)))).all()
        for row in rows:
            if self.settings.products[row.product].auto_disburse:
                await self.disburse(uow, row.id)

    async def disburse(self, uow: UnitOfWork, loan_id: int, staff_id: int | None = None) -> None:
        lo, b = loans.c, bids.c
        loan = (await uow.conn.execute(_locked(uow, select(loans).where(lo.id == loan_id)))
                ).first()
        if loan is None:
            raise UnknownLoan(f"no loan {loan_id}", loan_id=loan_id)
        if loan.status != "funded":
            raise ListingClosed("only a fully funded loan can be disbursed", loan_id=loan_id)
        claims = (await uow.conn.execute(select(b.id, b.investor_id, b.amount).where(
            b.loan_id == loan_id, b.status == "frozen").order_by(b.id))).all()
        amount = Money.rounded(loan.amount, self.currency)
        product = self.settings.products[loan.product]
        fee = amount.times(pct(product.service_fee_pct))
        protection = amount.times(pct(self.settings.protection_contribution_pct))
        net = amount - fee - protection
        legs = [debit(user_account(c.investor_id, "frozen"), Money.rounded(c.amount,
                                                                           self.currency))
                for c in claims]
        legs.append(credit(user_account(loan.borrower_id, "available"), net))
        if fee.is_positive():
            legs.append(credit(FEE_INCOME, fee))
        if protection.is_positive():
            legs.append(credit(PROTECTION, protection))
        await self.ledger.post(uow, Transfer(f"disburse:{loan_id}", "disbursement", tuple(legs),
                                             meta={"loan_id": loan_id}))
        today = uow.clock.today()
        schedule = build_schedule(amount, loan.annual_rate, loan.term_months, loan.method, today)
        await uow.conn.execute(installments.insert(), [
            {"loan_id": loan_id, "period": i.period, "due_date": i.due_date,
             "principal": i.principal.amount, "interest": i.interest.amount, "status": "due"}
            for i in schedule])
        now = uow.clock.now()
        await uow.conn.execute(update(bids).where(b.id.in_([c.id for c in claims]))
                               .values(status="active"))
        await uow.conn.execute(update(loans).where(lo.id == loan_id).values(
            status="active", disbursed_at=now, service_fee=fee.amount,
            protection_fee=protection.amount, principal_outstanding=amount.amount,
            agreement_version=self.settings.agreement_version))
        if staff_id is not None:
            await audit.record(uow, "loan_disbursed", "loan", loan_id, actor_kind="staff",
                               actor_id=staff_id)
        await analytics.track_many(uow, [
            {"name": "loan_disbursed", "user_id": loan.borrower_id,
             "props": {"loan_id": loan_id, "amount": str(amount.amount),
                       "grade": loan.grade, "product": loan.product}}])
        first_due = schedule[0]
        await notify.enqueue_many(uow, [
            {"user_id": loan.borrower_id, "template": "loan_disbursed",
             "params": {"loan_id": loan_id, "amount": str(amount.amount),
                        "net": str(net.amount), "fee": str(fee.amount),
                        "first_due_date": first_due.due_date.isoformat(),
                        "first_payment": str(first_due.payment.amount)},
             "dedupe_key": f"loan_disbursed:{loan_id}"},
            *({"user_id": investor, "template": "loan_started",
               "params": {"loan_id": loan_id}, "dedupe_key": f"loan_started:{loan_id}:{investor}"}
              for investor in sorted({c.investor_id for c in claims})),
        ])
        for hook in self.on_disbursed:
            await hook(uow, loan_id, list(claims))

    async def expire(self, uow: UnitOfWork) -> list[int]:
        """Cancel listings past their period that are not fully funded; refund every bid."""
        lo = loans.c
        due = (await uow.conn.execute(select(lo.id).where(
            lo.status == "listed", lo.expires_at <= uow.clock.now()).order_by(lo.id))
        ).scalars().all()
        for loan_id in due:
            await self.cancel(uow, loan_id, reason="expired")
        return list(due)

    async def cancel(self, uow: UnitOfWork, loan_id: int, reason: str,
                     staff_id: int | None = None) -> None:
        lo, b, t = loans.c, bids.c, ledger_transfers.c
        loan = (await uow.conn.execute(_locked(uow, select(loans).where(lo.id == loan_id)))
                ).one()
        if loan.status not in ("listed", "funded"):
            raise ListingClosed("only an open listing can be cancelled", loan_id=loan_id)
        frozen = (await uow.conn.execute(select(bids).where(
            b.loan_id == loan_id, b.status == "frozen").order_by(b.id))).all()
        keys = {f"bid:{row.request_key}": row for row in frozen}
        transfer_ids = {r.idempotency_key: r.id for r in await uow.conn.execute(
            select(t.idempotency_key, t.id).where(t.idempotency_key.in_(list(keys))))}
        for key, row in keys.items():
            await self.ledger.reverse(uow, transfer_ids[key], f"refund:{row.id}",
                                      memo=f"listing {loan_id} {reason}")
        await uow.conn.execute(update(bids).where(b.id.in_([row.id for row in frozen]))
                               .values(status="refunded"))
        voucher_ids = [row.voucher_id for row in frozen if row.voucher_id]
        if voucher_ids:
            await uow.conn.execute(update(vouchers).where(vouchers.c.id.in_(voucher_ids))
                                   .values(status="available", used_at=None, bid_id=None))
        await uow.conn.execute(update(loans).where(lo.id == loan_id).values(
            status="cancelled", closed_at=uow.clock.now()))
        if staff_id is not None:
            await audit.record(uow, "listing_cancelled", "loan", loan_id, actor_kind="staff",
                               actor_id=staff_id, details={"reason": reason})
        await analytics.track_many(uow, [{"name": "loan_cancelled", "user_id": loan.borrower_id,
                                          "props": {"loan_id": loan_id, "reason": reason,
                                                    "funded": str(loan.funded)}}])
        per_investor: dict[int, Decimal] = {}
        for row in frozen:
            per_investor[row.investor_id] = per_investor.get(row.investor_id, Decimal(0)) + \
                Decimal(row.amount)
        await notify.enqueue_many(uow, [
            {"user_id": loan.borrower_id, "template": "listing_cancelled_borrower",
             "params": {"loan_id": loan_id, "reason": reason},
             "dedupe_key": f"listing_cancelled:{loan_id}:borrower"},
            *({"user_id": investor, "template": "listing_cancelled",
               "params": {"loan_id": loan_id, "refunded": str(Money.rounded(
                   total, self.currency).amount)},
               "dedupe_key": f"listing_cancelled:{loan_id}:{investor}"}
              for investor, total in sorted(per_investor.items())),
        ])



def _locked(uow: UnitOfWork, query: Select[Any]) -> Select[Any]:
    """The loan row locked on PostgreSQL, so a bid cannot land while it is being closed (on
    SQLite the writer lock already serialises them)."""
    return query.with_for_update() if uow.dialect == "postgresql" else query
