"""Loan applications: product rules, borrowing caps, anti-fraud, scoring, decision and review.

A verified borrower with a bound card applies for a product. The application is checked against
the product (amount, term, method) and the regulatory caps, screened by named anti-fraud rules,
scored by the credit policy (``config/credit_policy.toml``) and then approved (and listed),
rejected with its reason, or queued for staff review. Every staff decision is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update

from config.settings import LendingSettings, ProductSettings
from core import analytics, notify
from core.adapters.tables import (
    due_diligence_notes,
    loan_applications,
    loans,
    risk_flags,
    users,
)
from core.adapters.uow import UnitOfWork
from core.domain.errors import (
    AmountOutOfRange,
    ApplicationNotReviewable,
    BorrowerRequired,
    BorrowingCapExceeded,
    MethodNotOffered,
    RateAboveCap,
    TermNotOffered,
    UnknownProduct,
)
from core.domain.identity import age_on
from core.domain.money import Currency, Money
from core.domain.schedule import build_schedule
from core.domain.scorecard import Applicant, CreditPolicy, Score
from core.privacy import DataProtector
from core.services import audit
from core.services.cards import Cards
from core.services.kyc import Kyc
from core.services.lending.listings import Listings

LIVE_LOAN_STATUSES = ("listed", "funded", "active", "overdue")
HARD_REJECT = ("blacklisted", "age_out_of_range", "too_many_applications",
               "debt_to_income_too_high")


@dataclass(frozen=True, slots=True)
class LoanRequest:
    product: str
    amount: Money
    term_months: int
    method: str
    purpose: str
    monthly_income: Decimal
    employment: str
    years_at_job: Decimal = Decimal(0)
    monthly_debt_payments: Decimal = Decimal(0)
    other_platform_debt: Decimal = Decimal(0)
    collateral: dict[str, Any] | None = None
    documents: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    application_id: int
    status: str  # approved | rejected | review
    reason: str | None
    grade: str
    risk_level: str
    score: int
    annual_rate: Decimal | None
    loan_id: int | None


class Applications:
    def __init__(self, settings: LendingSettings, currency: Currency, policy: CreditPolicy,
                 kyc: Kyc, cards: Cards, listings: Listings, protector: DataProtector,
                 borrower_maximum_age: int) -> None:
        self.settings = settings
        self.currency = currency
        self.policy = policy
        self.kyc = kyc
        self.cards = cards
        self.listings = listings
        self.protector = protector
        self.borrower_maximum_age = borrower_maximum_age

    def product(self, code: str) -> ProductSettings:
        product = self.settings.products.get(code)
        if product is None:
            raise UnknownProduct(f"no product {code}", product=code)
        return product

    async def apply(self, uow: UnitOfWork, user_id: int, request: LoanRequest,
                    channel: str | None = None, request_key: str | None = None) -> Decision:
        """Check, screen, score and decide. ``request_key`` makes a repeated tap apply once."""
        key = f"{user_id}:{request_key}"[:80] if request_key else None
        if key is not None:
            prior = (await uow.conn.execute(select(loan_applications).where(
                loan_applications.c.request_key == key))).first()
            if prior is not None:
                return await self._decision_of(uow, prior)
        user = (await uow.conn.execute(select(users.c.is_borrower, users.c.phone_hash)
                                       .where(users.c.id == user_id))).one()
        if not user.is_borrower:
            raise BorrowerRequired("register as a borrower first")
        person = await self.kyc.verified_person(uow, user_id)
        await self.cards.require_card(uow, user_id)
        product = self._check_product(request)
        await self._check_caps(uow, user_id, product, request)

        today = uow.clock.today()
        age = age_on(person.birth_date, today) if person.birth_date else 0
        # the new loan's payment is estimated at the rate cap: the most it could cost
        first = build_schedule(request.amount, self.policy.annual_rate_cap, request.term_months,
                               request.method, today)[0]
        applicant = Applicant(
            age=age, monthly_income=request.monthly_income,
            monthly_debt_payments=request.monthly_debt_payments,
            other_platform_debt=request.other_platform_debt, employment=request.employment,
            years_at_job=request.years_at_job, secured=bool(request.collateral),
            documents=request.documents, amount=request.amount.amount,
            term_months=request.term_months, new_installment=first.payment.amount)
        flags = await self._fraud_flags(uow, user_id, applicant, user.phone_hash)
        score = self.policy.score(applicant)
        status, reason = self._decide(score, request, flags)
        now = uow.clock.now()
        result = await uow.conn.execute(loan_applications.insert().values(
            user_id=user_id, product=request.product, amount=request.amount.amount,
            term_months=request.term_months, method=request.method, purpose=request.purpose[:200],
            facts=_facts(request), status=status, score=score.points, pd=score.pd,
            grade=score.grade, risk_level=score.risk_level, reason=reason, flags=flags or None,
            created_at=now, decided_at=None if status == "review" else now, request_key=key))
        app_id = int(result.inserted_primary_key[0])
        props = {"product": request.product, "amount": str(request.amount.amount),
                 "grade": score.grade}
        await analytics.track(uow, "loan_applied", user_id=user_id, channel=channel, props=props)
        rate, loan_id = None, None
        if status == "approved":
            rate = self.policy.rate(score.grade, request.term_months)
            loan_id = await self._approve(uow, app_id, rate, staff_id=None, novice_only=False)
        elif status == "rejected":
            await self._rejected(uow, app_id, user_id, reason or "score_too_low")
        return Decision(app_id, status, reason, score.grade, score.risk_level, score.points,
                        rate, loan_id)

    async def _decision_of(self, uow: UnitOfWork, row: Any) -> Decision:
        loan_id = (await uow.conn.execute(select(loans.c.id).where(
            loans.c.application_id == row.id))).scalar_one_or_none()
        return Decision(row.id, row.status, row.reason, row.grade, row.risk_level, row.score,
                        row.annual_rate, loan_id)

    def _check_product(self, request: LoanRequest) -> ProductSettings:
        product = self.product(request.product)
        amount = request.amount.amount
        if not product.min_amount <= amount <= product.max_amount:
            raise AmountOutOfRange("amount outside the product's range",
                                   minimum=str(product.min_amount),
                                   maximum=str(product.max_amount))
        if request.term_months not in product.terms:
            raise TermNotOffered("term not offered", terms=product.terms)
        if request.method not in product.methods:
            raise MethodNotOffered("repayment method not offered", methods=product.methods)
        for name in ("monthly_income", "monthly_debt_payments", "other_platform_debt",
                     "years_at_job"):
            if getattr(request, name) < 0:
                raise ValueError(f"{name} must not be negative")
        return product

    async def _check_caps(self, uow: UnitOfWork, user_id: int, product: ProductSettings,
                          request: LoanRequest) -> None:
        outstanding = await self.outstanding(uow, user_id)
        s = self.settings
        company = product.borrower == "company"
        platform_cap = s.cap_company_platform if company else s.cap_person_platform
        total_cap = s.cap_company_total if company else s.cap_person_total
        kind = "company" if company else "person"
        amount = request.amount.amount
        if outstanding + amount > platform_cap:
            raise BorrowingCapExceeded("platform borrowing cap", cap=f"{kind}_platform",
                                       limit=str(platform_cap),
                                       outstanding=str(Money.rounded(outstanding).amount))
        if outstanding + amount + request.other_platform_debt > total_cap:
            raise BorrowingCapExceeded("cross-platform borrowing cap", cap=f"{kind}_total",
                                       limit=str(total_cap),
                                       outstanding=str(Money.rounded(
                                           outstanding + request.other_platform_debt).amount))

    async def outstanding(self, uow: UnitOfWork, user_id: int) -> Decimal:
        """What the user owes or has asked for on this platform (principal)."""
        lo, la = loans.c, loan_applications.c
        live = (await uow.conn.execute(select(func.coalesce(func.sum(
            func.coalesce(lo.principal_outstanding, 0)), 0)).where(
            lo.borrower_id == user_id, lo.status.in_(("active", "overdue"))))).scalar_one()
        listed = (await uow.conn.execute(select(func.coalesce(func.sum(lo.amount), 0)).where(
            lo.borrower_id == user_id, lo.status.in_(("listed", "funded"))))).scalar_one()
        waiting = (await uow.conn.execute(select(func.coalesce(func.sum(la.amount), 0)).where(
            la.user_id == user_id, la.status == "review"))).scalar_one()
        return Decimal(live) + Decimal(listed) + Decimal(waiting)

    async def _fraud_flags(self, uow: UnitOfWork, user_id: int, applicant: Applicant,
                           phone_hash: str | None) -> list[str]:
        flags: list[str] = []
        s = self.settings
        if phone_hash in s.blacklist_phone_hashes:
            flags.append("blacklisted")
        identity_hash = await self._identity_hash(uow, user_id)
        if identity_hash in s.blacklist_identity_hashes:
            flags.append("blacklisted")
        if not 18 <= applicant.age <= self.borrower_maximum_age:
            flags.append("age_out_of_range")
        since = uow.clock.now() - timedelta(hours=24)
        recent = (await uow.conn.execute(select(func.count()).where(
            loan_applications.c.user_id == user_id,
            loan_applications.c.created_at >= since))).scalar_one()
        if recent >= s.max_applications_24h:
            flags.append("too_many_applications")
        if (applicant.monthly_income <= 0
                or self.policy.debt_to_income(applicant) > s.max_debt_to_income):
            flags.append("debt_to_income_too_high")
        shared = (await uow.conn.execute(select(risk_flags.c.kind).where(
            risk_flags.c.user_id == user_id, risk_flags.c.status == "open",
            risk_flags.c.kind.in_(("duplicate_identity", "shared_card", "shared_phone"))))
        ).scalars().all()
        flags.extend(f"shared_{kind.removeprefix('shared_')}" if kind != "duplicate_identity"
                     else "shared_identity" for kind in sorted(set(shared)))
        return list(dict.fromkeys(flags))

    async def _identity_hash(self, uow: UnitOfWork, user_id: int) -> str | None:
        from core.adapters.tables import identities

        row = (await uow.conn.execute(select(identities.c.id_hash).where(
            identities.c.user_id == user_id, identities.c.status == "verified"))).first()
        return None if row is None else row.id_hash

    def _decide(self, score: Score, request: LoanRequest, flags: list[str]
                ) -> tuple[str, str | None]:
        hard = [f for f in flags if f in HARD_REJECT]
        if hard:
            return "rejected", hard[0]
        verdict = self.policy.decision(score, request.amount.amount)
        if verdict == "reject" or score.grade == "HR":
            return "rejected", "score_too_low"
        if verdict == "approve" and not flags:
            return "approved", None
        return "review", flags[0] if flags else "manual_review"

    # Review queue ---------------------------------------------------------------------------

    async def review_queue(self, uow: UnitOfWork, *, page: int = 1, page_size: int = 20
                           ) -> list[dict[str, Any]]:
        la = loan_applications.c
        rows = await uow.conn.execute(
            select(loan_applications).where(la.status == "review")
            .order_by(la.created_at, la.id).limit(page_size).offset((page - 1) * page_size))
        return [dict(r._mapping) for r in rows]

    async def approve(self, uow: UnitOfWork, application_id: int, staff_id: int,
                      annual_rate: Decimal, *, novice_only: bool = False) -> int:
        """A reviewer approves with the final rate; the loan is listed. Returns the loan id."""
        if not 0 < annual_rate <= self.policy.annual_rate_cap:
            cap = (self.policy.annual_rate_cap * 100).normalize()  # the message says "{cap}%"
            raise RateAboveCap("rate outside (0, cap]", cap=f"{cap:f}")
        row = await self._reviewable(uow, application_id)
        await uow.conn.execute(update(loan_applications).where(
            loan_applications.c.id == application_id).values(
            status="approved", annual_rate=annual_rate, decided_at=uow.clock.now(),
            decided_by=staff_id))
        await audit.record(uow, "application_approved", "loan_application", application_id,
                           actor_kind="staff", actor_id=staff_id,
                           details={"annual_rate": str(annual_rate), "grade": row.grade})
        return await self._approve(uow, application_id, annual_rate, staff_id, novice_only)

    async def reject(self, uow: UnitOfWork, application_id: int, staff_id: int,
                     reason: str) -> None:
        row = await self._reviewable(uow, application_id)
        await uow.conn.execute(update(loan_applications).where(
            loan_applications.c.id == application_id).values(
            status="rejected", reason=reason[:64], decided_at=uow.clock.now(),
            decided_by=staff_id))
        await audit.record(uow, "application_rejected", "loan_application", application_id,
                           actor_kind="staff", actor_id=staff_id, details={"reason": reason})
        await self._rejected(uow, application_id, row.user_id, reason)

    async def add_note(self, uow: UnitOfWork, application_id: int, staff_id: int,
                       note: str) -> None:
        await uow.conn.execute(due_diligence_notes.insert().values(
            application_id=application_id, staff_id=staff_id, note=note,
            at=uow.clock.now()))
        await audit.record(uow, "due_diligence_note", "loan_application", application_id,
                           actor_kind="staff", actor_id=staff_id)

    async def _reviewable(self, uow: UnitOfWork, application_id: int) -> Any:
        row = (await uow.conn.execute(select(loan_applications).where(
            loan_applications.c.id == application_id))).first()
        if row is None or row.status != "review":
            raise ApplicationNotReviewable("this application is not waiting for review")
        return row

    async def _approve(self, uow: UnitOfWork, application_id: int, rate: Decimal,
                       staff_id: int | None, novice_only: bool) -> int:
        await uow.conn.execute(update(loan_applications).where(
            loan_applications.c.id == application_id).values(
            status="approved", annual_rate=rate))
        row = (await uow.conn.execute(select(loan_applications).where(
            loan_applications.c.id == application_id))).one()
        await analytics.track(uow, "loan_approved", user_id=row.user_id,
                              props={"application_id": application_id, "grade": row.grade,
                                     "rate": str(rate), "manual": staff_id is not None})
        loan_id = await self.listings.list_loan(uow, row, novice_only=novice_only)
        await notify.enqueue(uow, row.user_id, "application_result",
                             {"status": "approved", "application_id": application_id,
                              # a percentage, as the notice prints it ("15.60% a year")
                              "loan_id": loan_id, "rate": f"{rate * 100:.2f}"},
                             dedupe_key=f"application_result:{application_id}")
        return loan_id

    async def _rejected(self, uow: UnitOfWork, application_id: int, user_id: int,
                        reason: str) -> None:
        await analytics.track(uow, "loan_rejected", user_id=user_id,
                              props={"application_id": application_id, "reason": reason})
        await notify.enqueue(uow, user_id, "application_result",
                             {"status": "rejected", "application_id": application_id,
                              "reason": reason},
                             dedupe_key=f"application_result:{application_id}")

    async def status(self, uow: UnitOfWork, user_id: int) -> list[dict[str, Any]]:
        """The borrower's applications, newest first."""
        la = loan_applications.c
        rows = await uow.conn.execute(select(
            la.id, la.product, la.amount, la.term_months, la.status, la.reason, la.grade,
            la.annual_rate, la.created_at).where(la.user_id == user_id)
            .order_by(la.created_at.desc(), la.id.desc()))
        return [dict(r._mapping) for r in rows]


def _facts(request: LoanRequest) -> dict[str, Any]:
    return {"monthly_income": str(request.monthly_income), "employment": request.employment,
            "years_at_job": str(request.years_at_job),
            "monthly_debt_payments": str(request.monthly_debt_payments),
            "other_platform_debt": str(request.other_platform_debt),
            "collateral": request.collateral, "documents": request.documents}
