"""Listings: approved loans shown to investors with masked borrower facts, filtered and paged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from config.settings import LendingSettings
from core import analytics
from core.adapters.tables import identities, loans
from core.adapters.uow import UnitOfWork
from core.domain.errors import UnknownLoan
from core.domain.money import Currency
from core.privacy import DataProtector
from core.services.lending.common import Listing, listing_from_row, masked_facts


@dataclass(frozen=True, slots=True)
class ListingFilter:
    grades: tuple[str, ...] = ()
    min_term: int | None = None
    max_term: int | None = None
    min_rate: Decimal | None = None
    max_rate: Decimal | None = None
    product: str | None = None


@dataclass(frozen=True, slots=True)
class ListingPage:
    items: list[Listing]
    page: int
    pages: int
    total: int


class Listings:
    def __init__(self, settings: LendingSettings, currency: Currency,
                 protector: DataProtector) -> None:
        self.settings = settings
        self.currency = currency
        self.protector = protector
        # Called with each new listing's id in the same transaction (auto-invest matching).
        self.on_listed: list[Callable[[UnitOfWork, int], Awaitable[Any]]] = []

    async def list_loan(self, uow: UnitOfWork, application: Any, *, novice_only: bool) -> int:
        """Put an approved application on the marketplace for the product's listing period."""
        product = self.settings.products[application.product]
        person = (await uow.conn.execute(select(
            identities.c.name_masked, identities.c.birth_date, identities.c.id_number_enc,
            identities.c.id_type).where(identities.c.user_id == application.user_id,
                                        identities.c.status == "verified"))).one()
        region = None
        if person.id_type == "resident_id":
            region = self.protector.open_text(person.id_number_enc, context="id_number")[:6]
        facts = masked_facts(
            name_masked=person.name_masked, birth=person.birth_date, today=uow.clock.today(),
            region=region, monthly_income=Decimal(application.facts["monthly_income"]),
            employment=application.facts["employment"])
        now = uow.clock.now()
        result = await uow.conn.execute(loans.insert().values(
            application_id=application.id, borrower_id=application.user_id,
            product=application.product, amount=application.amount,
            term_months=application.term_months, method=application.method,
            annual_rate=application.annual_rate, grade=application.grade,
            risk_level=application.risk_level, purpose=application.purpose, facts=facts,
            status="listed", funded=Decimal(0), investors=0, novice_only=novice_only,
            listed_at=now, expires_at=now + timedelta(hours=product.listing_hours),
            principal_outstanding=Decimal(0)))
        loan_id = int(result.inserted_primary_key[0])
        await analytics.track(uow, "loan_listed", user_id=application.user_id,
                              props={"loan_id": loan_id, "amount": str(application.amount),
                                     "grade": application.grade})
        for hook in self.on_listed:
            await hook(uow, loan_id)
        return loan_id

    async def browse(self, uow: UnitOfWork, flt: ListingFilter | None = None, *, page: int = 1,
                     page_size: int = 10) -> ListingPage:
        """Open listings, newest first, filtered by grade, term and rate."""
        if page < 1 or not 1 <= page_size <= 50:
            raise ValueError("page starts at 1; page size is 1-50")
        flt = flt or ListingFilter()
        lo = loans.c
        conditions = [lo.status == "listed", lo.expires_at > uow.clock.now()]
        if flt.grades:
            conditions.append(lo.grade.in_(flt.grades))
        if flt.min_term is not None:
            conditions.append(lo.term_months >= flt.min_term)
        if flt.max_term is not None:
            conditions.append(lo.term_months <= flt.max_term)
        if flt.min_rate is not None:
            conditions.append(lo.annual_rate >= flt.min_rate)
        if flt.max_rate is not None:
            conditions.append(lo.annual_rate <= flt.max_rate)
        if flt.product:
            conditions.append(lo.product == flt.product)
        total = (await uow.conn.execute(select(func.count()).select_from(loans)
                                        .where(*conditions))).scalar_one()
        rows = await uow.conn.execute(select(loans).where(*conditions)
                                      .order_by(lo.listed_at.desc(), lo.id.desc())
                                      .limit(page_size).offset((page - 1) * page_size))
        items = [listing_from_row(r, self.currency) for r in rows]
        return ListingPage(items, page, max(1, -(-total // page_size)), total)

    async def get(self, uow: UnitOfWork, loan_id: int) -> Listing:
        row = (await uow.conn.execute(select(loans).where(loans.c.id == loan_id))).first()
        if row is None:
            raise UnknownLoan(f"no loan {loan_id}", loan_id=loan_id)
        return listing_from_row(row, self.currency)
