"""Repayments: money in from the borrower (or collateral), applied and distributed at once.

Waterfall: each payment is applied to the oldest unpaid installment first and, within an
installment, in the configured order (default penalty, interest, principal); money left after
every due installment repays the next installment early. Whole-loan early settlement costs the
remaining principal, interest accrued to date and an early-repayment fee.

Distribution: everything received goes out in the same ledger transfer - principal to the
investors by what each is still owed, interest, penalty and early fee to them by their bids, less
the platform's management fee on that income; while a compensated loan's protection fund has not
been paid back, recoveries go to the fund first. Investor parts + fee (+ fund) = amount received,
to the cent, because every split uses the shared largest-remainder function.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, update

from config.settings import LendingSettings, ServicingSettings
from core import analytics, notify
from core.adapters.tables import bids, compensations, installments, loans, repayments, vouchers
from core.adapters.uow import UnitOfWork
from core.domain.errors import InvalidAmount, NothingToRepay, UnknownLoan
from core.domain.money import Currency, Money, split
from core.domain.schedule import add_months
from core.ledger import Ledger, Transfer, credit, debit, user_account
from core.services.lending.common import pct

log = logging.getLogger(__name__)
FEE_INCOME = "platform:fee_income"
PROTECTION = "platform:protection_fund"
PROMOTION = "platform:promotion_budget"
CUSTODY = "platform:custody_cash"
OPEN = ("active", "overdue", "written_off")


@dataclass
class Allocation:
    """How one payment splits over a loan's installments."""

    penalty: Decimal = Decimal(0)
    interest: Decimal = Decimal(0)
    principal: Decimal = Decimal(0)
    early_fee: Decimal = Decimal(0)
    per_installment: dict[int, dict[str, Decimal]] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return self.penalty + self.interest + self.principal + self.early_fee


@dataclass(frozen=True, slots=True)
class RepaymentResult:
    repayment_id: int | None
    loan_id: int
    applied: Money
    penalty: Money
    interest: Money
    principal: Money
    early_fee: Money
    management_fee: Money
    loan_repaid: bool
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Owed:
    """What a borrower owes on a loan now."""

    overdue: Money  # unpaid principal + interest of installments already due
    penalty: Money
    next_due_date: date | None
    next_due_amount: Money
    settle_now: Money  # early settlement of everything today


class Repayments:
    def __init__(self, settings: ServicingSettings, lending: LendingSettings,
                 currency: Currency, ledger: Ledger) -> None:
        self.settings = settings
        self.lending = lending
        self.currency = currency
        self.ledger = ledger

    def money(self, value: Decimal) -> Money:
        return Money.rounded(value, self.currency)

    # What is owed ---------------------------------------------------------------------------

    async def _load(self, uow: UnitOfWork, loan_id: int) -> tuple[Any, list[Any]]:
        query = select(loans).where(loans.c.id == loan_id)
        if uow.dialect == "postgresql":
            query = query.with_for_update()
        loan = (await uow.conn.execute(query)).first()
        if loan is None or loan.status not in OPEN:
            raise UnknownLoan(f"loan {loan_id} is not being repaid", loan_id=loan_id)
        rows = (await uow.conn.execute(select(installments).where(
            installments.c.loan_id == loan_id, installments.c.status != "paid")
            .order_by(installments.c.period))).all()
        return loan, rows

    def _accrued(self, loan: Any, rows: list[Any], today: date,
                 disbursed_on: date) -> tuple[int | None, Decimal]:
        """The current period (the first not yet due) and its interest accrued up to today, by
        days. A period starts at the previous due date - at disbursement for the first one (a
        bullet loan's only period runs from disbursement to maturity)."""
        future = [r for r in rows if r.due_date > today]
        if not future:
            return None, Decimal(0)
        current = future[0]
        start = disbursed_on if current.period == 1 or loan.method == "bullet" else \
            add_months(disbursed_on, current.period - 1)
        days = max(0, (today - start).days)
        span = max(1, (current.due_date - start).days)
        unpaid = Decimal(current.interest) - Decimal(current.paid_interest)
        return current.period, min(unpaid, self.money(unpaid * days / span).amount)

    async def owed(self, uow: UnitOfWork, loan_id: int) -> Owed:
        loan, rows = await self._load(uow, loan_id)
        today = uow.clock.today()
        due = [r for r in rows if r.due_date <= today]
        overdue = sum((_left(r, "principal") + _left(r, "interest") for r in due), Decimal(0))
        penalty = sum((_left(r, "penalty") for r in rows), Decimal(0))
        upcoming = [r for r in rows if r.due_date > today]
        nxt = upcoming[0] if upcoming else None
        return Owed(self.money(overdue), self.money(penalty),
                    nxt.due_date if nxt else None,
                    self.money(_left(nxt, "principal") + _left(nxt, "interest")) if nxt
                    else Money.zero(self.currency),
                    self.money(self._settlement(loan, rows, today,
                                                _local_date(uow, loan)).total))

    def _settlement(self, loan: Any, rows: list[Any], today: date,
                    disbursed_on: date) -> Allocation:
        """Everything needed to close the loan today: what is due in full, the current period's
        interest accrued to date, the remaining principal and the early-repayment fee. Later
        periods' interest is not owed."""
        alloc = Allocation()
        current, accrued = self._accrued(loan, rows, today, disbursed_on)
        for r in rows:
            interest = _left(r, "interest") if r.due_date <= today else (
                accrued if r.period == current else Decimal(0))
            parts = {"penalty": _left(r, "penalty"), "interest": interest,
                     "principal": _left(r, "principal")}
            alloc.per_installment[r.period] = parts
            alloc.penalty += parts["penalty"]
            alloc.interest += interest
            alloc.principal += parts["principal"]
        fee_base = sum((_left(r, "principal") for r in rows if r.due_date > today), Decimal(0))
        alloc.early_fee = self.money(fee_base * pct(self.settings.early_repayment_fee_pct)).amount
        return alloc

    # Allocation -----------------------------------------------------------------------------

    def allocate(self, rows: list[Any], amount: Decimal, today: date, *,
                 due_only: bool = False) -> Allocation:
        """Apply ``amount`` to due installments (oldest first, in the configured order), then
        - unless ``due_only`` - to upcoming ones (early repayment of installments)."""
        alloc = Allocation()
        left = amount
        due = [r for r in rows if r.due_date <= today]
        upcoming = [] if due_only else [r for r in rows if r.due_date > today]
        for r in due + upcoming:
            if left <= 0:
                break
            parts = alloc.per_installment.setdefault(r.period, {})
            for part in self.settings.payment_order:
                take = min(left, _left(r, part))
                if take > 0:
                    parts[part] = parts.get(part, Decimal(0)) + take
                    setattr(alloc, part, getattr(alloc, part) + take)
                    left -= take
        return alloc

    # Paying ---------------------------------------------------------------------------------

    async def repay(self, uow: UnitOfWork, loan_id: int, amount: Money | None, *,
                    request_key: str, source: str = "borrower", settle: bool = False,
                    due_only: bool = False) -> RepaymentResult:
        """Take ``amount``; with ``settle`` (or an amount that reaches the settlement price)
        everything needed to close the loan early; with ``due_only`` and no amount, exactly
        what is due now - worked out under the loan's lock, never a prepayment (auto-debit)."""
        prior = (await uow.conn.execute(select(repayments).where(
            repayments.c.request_key == request_key))).first()
        if prior is not None:
            return self._result(prior, duplicate=True)
        loan, rows = await self._load(uow, loan_id)
        today = uow.clock.today()
        alloc, settle = self._plan(uow, loan, rows, amount, settle=settle, due_only=due_only)
        if alloc.total <= 0:
            raise NothingToRepay("nothing is owed on this loan now", loan_id=loan_id)
        surplus = (amount.amount - alloc.total if amount is not None and source == "collateral"
                   else Decimal(0))
        return await self._book(uow, loan, rows, alloc, request_key=request_key, source=source,
                                settle=settle, today=today, surplus=surplus)

    def _plan(self, uow: UnitOfWork, loan: Any, rows: list[Any], amount: Money | None, *,
              settle: bool, due_only: bool) -> tuple[Allocation, bool]:
        """How a payment would be applied, and whether it settles the loan (shared by ``repay``
        and ``preview``, so a preview never differs from what is booked)."""
        today = uow.clock.today()
        settlement = self._settlement(loan, rows, today, _local_date(uow, loan))
        if not settle and amount is not None and amount.amount >= settlement.total and any(
                r.due_date > today for r in rows):
            settle = True  # paying everything costs no more than settling
        if settle:
            return settlement, True
        if due_only and amount is None:
            return self.allocate(rows, Decimal("1e15"), today, due_only=True), False
        if amount is None or not amount.is_positive():
            raise InvalidAmount("the amount must be positive", reason="not_positive")
        return self.allocate(rows, amount.amount, today, due_only=due_only), False

    async def preview(self, uow: UnitOfWork, loan_id: int, amount: Money) -> Allocation:
        """What paying ``amount`` now would settle; nothing is written."""
        loan, rows = await self._load(uow, loan_id)
        return self._plan(uow, loan, rows, amount, settle=False, due_only=False)[0]

    async def collateral_disposal(self, uow: UnitOfWork, loan_id: int, proceeds: Money, *,
                                  staff_id: int, description: str) -> RepaymentResult:
        """Record the sale of a secured loan's collateral: the proceeds arrive at the custody
        bank and go through the same waterfall (fund first after a write-off)."""
        from core.services import audit

        result = await self.repay(uow, loan_id, proceeds, source="collateral",
                                  request_key=f"collateral:{loan_id}:{description}"[:120])
        await audit.record(uow, "collateral_disposed", "loan", loan_id, actor_kind="staff",
                           actor_id=staff_id, details={"proceeds": str(proceeds.amount),
                                                       "description": description[:200]})
        return result

    async def _book(self, uow: UnitOfWork, loan: Any, rows: list[Any], alloc: Allocation, *,
                    request_key: str, source: str, settle: bool, today: date,
                    surplus: Decimal = Decimal(0)) -> RepaymentResult:
        claims = (await uow.conn.execute(select(bids).where(
            bids.c.loan_id == loan.id, bids.c.status == "active").order_by(bids.c.id))).all()
        # (``compensated`` and ``written_off`` on bids change only at write-off)
        product = self.lending.products[loan.product]
        income = alloc.interest + alloc.penalty + alloc.early_fee
        fee = self.money(income * pct(product.management_fee_pct)).amount
        written_off = loan.status == "written_off"
        to_fund = Decimal(0)
        comp = None
        if written_off:
            comp = (await uow.conn.execute(select(compensations).where(
                compensations.c.loan_id == loan.id))).first()
            if comp is not None:  # the fund paid investors' principal: it is paid back first
                to_fund = min(Decimal(comp.amount) - Decimal(comp.recovered), alloc.principal)
        for_investors = alloc.total - fee - to_fund
        principal_for_investors = alloc.principal - to_fund
        if written_off:  # recoveries go to investors by what they lost
            weights = [Decimal(c.written_off) for c in claims]
        else:  # principal by what each is still owed, income by the bids
            weights = [Decimal(c.amount) - Decimal(c.principal_repaid) for c in claims]
        principal_parts = (split(self.money(principal_for_investors), weights)
                           if any(w > 0 for w in weights)
                           else [Money.zero(self.currency)] * len(claims))
        # income goes by the bids, except after a write-off, by what investors still lose -
        # unless the fund made them whole: then the interest they never got is theirs by bids
        bid_weights = [Decimal(c.amount) for c in claims]
        income_weights = weights if written_off and any(w > 0 for w in weights) else bid_weights
        income_parts = (split(self.money(for_investors - principal_for_investors),
                              income_weights) if any(w > 0 for w in income_weights)
                        else [Money.zero(self.currency)] * len(claims))
        payer = CUSTODY if source == "collateral" else user_account(loan.borrower_id,
                                                                    "available")
        received = self.money(alloc.total)
        legs = [debit(payer, received + self.money(surplus))]
        if surplus > 0:  # collateral sold for more than is owed: the rest is the borrower's
            legs.append(credit(user_account(loan.borrower_id, "available"), self.money(surplus)))
        per_investor: dict[int, Decimal] = {}
        for c, p, i in zip(claims, principal_parts, income_parts, strict=True):
            per_investor[c.investor_id] = per_investor.get(c.investor_id, Decimal(0)) + \
                p.amount + i.amount
        legs += [credit(user_account(inv, "available"), self.money(total))
                 for inv, total in per_investor.items() if total > 0]
        if fee > 0:
            legs.append(credit(FEE_INCOME, self.money(fee)))
        if to_fund > 0:
            legs.append(credit(PROTECTION, self.money(to_fund)))
        legs += await self._boost_legs(uow, claims, income_parts, loan)
        posted = await self.ledger.post(uow, Transfer(
            f"repayment:{request_key}"[:160], "repayment", tuple(legs),
            meta={"loan_id": loan.id, "source": source}))

        await self._update_installments(uow, loan.id, alloc, settle)
        if claims:
            amount_type = bids.c.amount.type
            await uow.conn.execute(update(bids).where(bids.c.id == bindparam("bid")).values(
                principal_repaid=bids.c.principal_repaid + bindparam("p", type_=amount_type),
                interest_received=bids.c.interest_received + bindparam("i", type_=amount_type),
                written_off=bids.c.written_off - bindparam("w", type_=amount_type)),
                [{"bid": c.id, "p": p.amount, "i": i.amount,
                  "w": p.amount if written_off else Decimal(0)}
                 for c, p, i in zip(claims, principal_parts, income_parts, strict=True)])
        if comp is not None and to_fund > 0:
            await uow.conn.execute(update(compensations).where(
                compensations.c.loan_id == loan.id).values(
                recovered=compensations.c.recovered + to_fund))
        remaining_rows = (await uow.conn.execute(select(installments.c.status).where(
            installments.c.loan_id == loan.id, installments.c.status != "paid"))).all()
        repaid = not remaining_rows
        values: dict[str, Any] = {"principal_repaid": loans.c.principal_repaid + alloc.principal}
        if written_off:  # a recovery: less is lost, nothing is outstanding any more
            values["principal_written_off"] = loans.c.principal_written_off - alloc.principal
        else:
            values["principal_outstanding"] = loans.c.principal_outstanding - alloc.principal
        if repaid and loan.status != "written_off":
            values.update(status="repaid", closed_at=uow.clock.now(), dpd=0)
        await uow.conn.execute(update(loans).where(loans.c.id == loan.id).values(**values))
        result = await uow.conn.execute(repayments.insert().values(
            loan_id=loan.id, source=source, amount=alloc.total, penalty=alloc.penalty,
            interest=alloc.interest, principal=alloc.principal, early_fee=alloc.early_fee,
            management_fee=fee, to_fund=to_fund, request_key=request_key,
            transfer_id=posted.transfer_id, received_at=uow.clock.now(), business_date=today))
        repayment_id = int(result.inserted_primary_key[0])
        await self._tell(uow, loan, repayment_id, received, alloc, per_investor, repaid, claims,
                         principal_parts, income_parts)
        return RepaymentResult(repayment_id, loan.id, received, self.money(alloc.penalty),
                               self.money(alloc.interest), self.money(alloc.principal),
                               self.money(alloc.early_fee), self.money(fee), repaid)

    async def _boost_legs(self, uow: UnitOfWork, claims: list[Any], income_parts: list[Money],
                          loan: Any) -> list[Any]:
        """Interest-boost coupons: the platform adds boost/rate of the investor's interest."""
        voucher_ids = [c.voucher_id for c in claims if c.voucher_id]
        if not voucher_ids or not loan.annual_rate:
            return []
        boosts = {v.id: Decimal(v.boost) for v in await uow.conn.execute(
            select(vouchers.c.id, vouchers.c.boost).where(
                vouchers.c.id.in_(voucher_ids), vouchers.c.kind == "interest_boost"))}
        legs, total = [], Money.zero(self.currency)
        for c, part in zip(claims, income_parts, strict=True):
            boost = boosts.get(c.voucher_id or -1)
            if boost:
                extra = self.money(part.amount * boost / Decimal(loan.annual_rate))
                if extra.is_positive():
                    total += extra
                    legs += [debit(PROMOTION, extra),
                             credit(user_account(c.investor_id, "available"), extra)]
        if legs and await self.ledger.balance(uow, PROMOTION) < total:
            log.warning("promotion budget too low to pay interest boosts on loan %s", loan.id)
            return []  # never fail a repayment over a promotion; operations refill the budget
        return legs

    async def _update_installments(self, uow: UnitOfWork, loan_id: int, alloc: Allocation,
                                   settle: bool) -> None:
        i = installments.c
        now = uow.clock.now()
        rows = {r.period: r for r in await uow.conn.execute(select(installments).where(
            i.loan_id == loan_id, i.period.in_(list(alloc.per_installment))))}
        for period, parts in alloc.per_installment.items():
            r = rows[period]
            paid_p = Decimal(r.paid_principal) + parts.get("principal", Decimal(0))
            paid_i = Decimal(r.paid_interest) + parts.get("interest", Decimal(0))
            paid_pen = Decimal(r.paid_penalty) + parts.get("penalty", Decimal(0))
            values: dict[str, Any] = {"paid_principal": paid_p, "paid_interest": paid_i,
                                      "paid_penalty": paid_pen}
            if settle and paid_i < Decimal(r.interest):
                values["interest"] = paid_i  # future interest is not owed after settlement
            done = (paid_p >= Decimal(r.principal) and paid_pen >= Decimal(r.penalty)
                    and paid_i >= Decimal(values.get("interest", r.interest)))
            values["status"] = "paid" if done else "partial"
            if done:
                values["paid_at"] = now
            await uow.conn.execute(update(installments).where(
                i.loan_id == loan_id, i.period == period).values(**values))
        if settle:
            await uow.conn.execute(update(installments).where(
                i.loan_id == loan_id, i.status != "paid").values(status="paid", paid_at=now))

    async def _tell(self, uow: UnitOfWork, loan: Any, repayment_id: int, received: Money,
                    alloc: Allocation, per_investor: dict[int, Decimal], repaid: bool,
                    claims: list[Any], principal_parts: list[Money],
                    income_parts: list[Money]) -> None:
        await analytics.track(uow, "repayment_received", user_id=loan.borrower_id,
                              props={"loan_id": loan.id, "amount": str(received.amount),
                                     "principal": str(alloc.principal),
                                     "interest": str(alloc.interest),
                                     "penalty": str(alloc.penalty), "repaid": repaid})
        if repaid:
            await analytics.track(uow, "loan_repaid", user_id=loan.borrower_id,
                                  props={"loan_id": loan.id})
        by_investor: dict[int, tuple[Decimal, Decimal]] = {}
        for c, p, i in zip(claims, principal_parts, income_parts, strict=True):
            old = by_investor.get(c.investor_id, (Decimal(0), Decimal(0)))
            by_investor[c.investor_id] = (old[0] + p.amount, old[1] + i.amount)
        await notify.enqueue_many(uow, [
            {"user_id": loan.borrower_id, "template": "payment_received",
             "params": {"loan_id": loan.id, "amount": str(received.amount), "repaid": repaid},
             "dedupe_key": f"payment_received:{repayment_id}"},
            *({"user_id": inv, "template": "repayment_received",
               "params": {"loan_id": loan.id, "amount": str(self.money(p + i).amount),
                          "principal": str(self.money(p).amount),
                          "interest": str(self.money(i).amount)},
               "dedupe_key": f"repayment_received:{repayment_id}:{inv}"}
              for inv, (p, i) in by_investor.items() if p + i > 0),
        ])

    def _result(self, row: Any, duplicate: bool) -> RepaymentResult:
        m = self.money
        return RepaymentResult(row.id, row.loan_id, m(row.amount), m(row.penalty),
                               m(row.interest), m(row.principal), m(row.early_fee),
                               m(row.management_fee), False, duplicate=duplicate)


def _left(row: Any, part: str) -> Decimal:
    """What is still unpaid of one part (principal, interest or penalty) of an installment."""
    if row is None:
        return Decimal(0)
    return Decimal(getattr(row, part)) - Decimal(getattr(row, f"paid_{part}"))



def _local_date(uow: UnitOfWork, loan: Any) -> date:
    """The business date the loan was disbursed on (its schedule's start)."""
    return uow.clock.local(loan.disbursed_at).date() if loan.disbursed_at else uow.clock.today()
