"""Loan agreements: rendered on request from a versioned template, masked for each reader.

The template version is fixed on the loan at disbursement, so a loan's agreement always renders
from the text its parties agreed to. The reader's own name appears in full; every other party is
masked. Only the borrower and the loan's investors may read it.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from sqlalchemy import select

from config.settings import LendingSettings
from core.adapters.tables import bids, identities, installments, loans
from core.adapters.uow import UnitOfWork
from core.domain.errors import NotAParty, UnknownLoan
from core.domain.identity import mask_name
from core.privacy import DataProtector

TEMPLATES = Path(__file__).resolve().parents[3] / "config" / "agreements"
METHOD_NAMES = {
    "zh-CN": {"equal_installment": "等额本息", "equal_principal": "等额本金",
              "interest_first": "先息后本", "bullet": "一次性还本付息"},
    "en": {"equal_installment": "equal installments", "equal_principal": "equal principal",
           "interest_first": "monthly interest, principal at maturity",
           "bullet": "single repayment at maturity"},
}


class Agreements:
    def __init__(self, settings: LendingSettings, protector: DataProtector,
                 penalty_daily_pct: str = "0.05") -> None:
        self.settings = settings
        self.protector = protector
        self.penalty_daily_pct = penalty_daily_pct

    async def render(self, uow: UnitOfWork, loan_id: int, reader_id: int,
                     locale: str = "zh-CN") -> str:
        locale = "en" if locale.startswith("en") else "zh-CN"
        loan = (await uow.conn.execute(select(loans).where(loans.c.id == loan_id))).first()
        if loan is None or loan.disbursed_at is None:
            raise UnknownLoan(f"loan {loan_id} has no agreement yet", loan_id=loan_id)
        investors = sorted(set((await uow.conn.execute(select(bids.c.investor_id).where(
            bids.c.loan_id == loan_id, bids.c.status == "active"))).scalars()))
        if reader_id != loan.borrower_id and reader_id not in investors:
            raise NotAParty("only the loan's parties may read its agreement")
        names = await self._names(uow, [loan.borrower_id, *investors])

        def shown(user_id: int) -> str:
            name = names.get(user_id, "")
            return name if user_id == reader_id else mask_name(name)

        rows = (await uow.conn.execute(select(installments).where(
            installments.c.loan_id == loan_id).order_by(installments.c.period))).all()
        header = ("期数 | 应还日期 | 应还本金 | 应还利息" if locale == "zh-CN"
                  else "period | due date | principal | interest")
        schedule = "\n".join([header] + [
            f"{r.period} | {r.due_date.isoformat()} | {r.principal:.2f} | {r.interest:.2f}"
            for r in rows])
        product = self.settings.products[loan.product]
        version = loan.agreement_version or self.settings.agreement_version
        text = (TEMPLATES / f"{version}.{locale}.txt").read_text(encoding="utf-8")
        return Template(text).substitute(
            loan_id=loan_id, version=version, lenders=", ".join(shown(i) for i in investors),
            borrower=shown(loan.borrower_id), amount=f"{loan.amount:,.2f}",
            term=loan.term_months, start=uow.clock.local(loan.disbursed_at).date().isoformat(),
            rate=f"{loan.annual_rate * 100:.2f}", method=METHOD_NAMES[locale][loan.method],
            service_fee=f"{loan.service_fee or 0:,.2f}",
            management_fee_pct=f"{product.management_fee_pct}",
            schedule=schedule, penalty_pct=self.penalty_daily_pct,
            generated=uow.clock.local().strftime("%Y-%m-%d %H:%M"))

    async def _names(self, uow: UnitOfWork, user_ids: list[int]) -> dict[int, str]:
        rows = await uow.conn.execute(select(identities.c.user_id, identities.c.full_name_enc)
                                      .where(identities.c.user_id.in_(user_ids),
                                             identities.c.status == "verified"))
        return {r.user_id: self.protector.open_text(r.full_name_enc, context="name")
                for r in rows}


