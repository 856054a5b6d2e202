"""Repayment schedules: what a borrower owes each month, and each investor's share of it.

Pure functions, no I/O. Conventions (see ``docs/schedules.md`` for worked examples):

* ``annual_rate`` is a fraction (``Decimal("0.12")`` is 12%); the monthly rate is
  ``annual_rate / 12``. Arithmetic is exact (``Fraction``) and each amount is rounded once, to the
  currency's scale with the currency's rule, so ``0.10 / 12`` never loses a digit before rounding.
* Period ``k`` is due ``add_months(start, k)``, where ``start`` is the disbursement date.
* Every schedule repays exactly the amount lent: the last installment takes whatever principal is
  still owed, and no installment repays more principal than is owed (tiny loans over many months
  would otherwise overshoot through the rounding of the payment or of ``amount / months``).
* Investors' schedules are the borrower's split by bid with ``money.split``: for every installment
  the parts add up to the borrower's principal and interest, and each investor gets back exactly
  their bid (the cumulative principal is split, then consecutive splits are differenced).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Literal, get_args

from core.domain.money import Currency, Money, split

Method = Literal["equal_installment", "equal_principal", "interest_first", "bullet"]
METHODS: tuple[Method, ...] = get_args(Method)
MAX_MONTHS = 360


@dataclass(frozen=True, slots=True)
class Installment:
    period: int  # 1..n
    due_date: date
    principal: Money
    interest: Money
    remaining: Money  # principal still owed after this installment

    @property
    def payment(self) -> Money:
        return self.principal + self.interest


def add_months(start: date, months: int) -> date:
    """The same day ``months`` later, clamped to the month's end (Jan 31 + 1 -> Feb 28/29)."""
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(start.day, last_day))


def build_schedule(
    amount: Money, annual_rate: Decimal, months: int, method: Method, start: date
) -> list[Installment]:
    """The borrower's installments for a loan of ``amount`` disbursed on ``start``."""
    _validate(amount, annual_rate, months, method)
    rate = Fraction(annual_rate) / 12
    principal = Fraction(amount.amount)
    currency = amount.currency
    if method == "bullet":
        interest = _round(principal * rate * months, currency)
        return [Installment(1, add_months(start, months), amount, interest, Money.zero(currency))]
    if method == "equal_installment" and rate != 0:
        growth = (1 + rate) ** months
        payment = _round(principal * rate * growth / (growth - 1), currency)
        return _amortize(amount, rate, months, start, lambda interest: payment - interest)
    if method == "interest_first":
        return _amortize(amount, rate, months, start, lambda _: Money.zero(currency))
    share = _round(principal / months, currency)  # equal_principal, or equal_installment at 0%
    return _amortize(amount, rate, months, start, lambda _: share)


def _amortize(
    amount: Money,
    rate: Fraction,
    months: int,
    start: date,
    principal_for: Callable[[Money], Money],
) -> list[Installment]:
    """Walk the loan down: interest on what is owed, principal as chosen but never past zero.

    ``principal_for(interest)`` gives a period's principal; the last period repays the rest.
    """
    remaining = amount
    installments = []
    for period in range(1, months + 1):
        interest = _round(Fraction(remaining.amount) * rate, remaining.currency)
        principal = remaining if period == months else min(principal_for(interest), remaining)
        remaining = remaining - principal
        installments.append(
            Installment(period, add_months(start, period), principal, interest, remaining)
        )
    return installments


def investor_schedules(
    borrower: list[Installment], bids: Sequence[Money]
) -> list[list[Installment]]:
    """Each investor's share of ``borrower``, in the order of ``bids``."""
    if not bids:
        raise ValueError("a schedule needs at least one bid")
    if not borrower:
        raise ValueError("the borrower's schedule is empty")
    currency = borrower[0].principal.currency
    if any(b.currency.code != currency.code or not b.is_positive() for b in bids):
        raise ValueError(f"every bid must be a positive amount of {currency.code}")
    total = sum((i.principal for i in borrower), Money.zero(currency))
    if sum(bids, Money.zero(currency)) != total:
        raise ValueError(f"bids must add up to the loan's principal {total}")
    weights = [b.amount for b in bids]
    schedules: list[list[Installment]] = [[] for _ in bids]
    outstanding = list(bids)
    for installment in borrower:
        # Principal by what each investor is still owed: never negative, and the last
        # installment (everything still owed) returns each outstanding claim exactly, so every
        # investor's principal adds up to their bid. Interest by the bids.
        owed = [o.amount for o in outstanding]
        principals = (split(installment.principal, owed) if any(owed)
                      else [Money.zero(currency)] * len(bids))
        interests = split(installment.interest, weights)
        for i in range(len(bids)):
            outstanding[i] = outstanding[i] - principals[i]
            schedules[i].append(
                Installment(installment.period, installment.due_date, principals[i],
                            interests[i], outstanding[i])
            )
    return schedules


def _validate(amount: Money, annual_rate: Decimal, months: int, method: str) -> None:
    if not isinstance(amount, Money) or not amount.is_positive():
        raise ValueError(f"the loan amount must be a positive Money, not {amount!r}")
    if not isinstance(annual_rate, Decimal) or not annual_rate.is_finite():
        raise ValueError(f"the annual rate must be a finite Decimal, not {annual_rate!r}")
    if not 0 <= annual_rate < 1:
        raise ValueError(f"the annual rate must be in [0, 1), not {annual_rate}")
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= MAX_MONTHS:
        raise ValueError(f"the term must be 1 to {MAX_MONTHS} months, not {months!r}")
    if method not in METHODS:
        raise ValueError(f"unknown repayment method {method!r}; expected one of {METHODS}")


def _round(value: Fraction, currency: Currency) -> Money:
    """Round an exact value with the currency's own rule, without ever approximating it first."""
    scaled = value * 10**currency.scale
    whole = scaled.numerator // scaled.denominator
    rest = scaled - whole
    # A stand-in with the same integer part and the same side of one half rounds identically.
    if rest == 0:
        hint = Decimal(0)
    elif rest != Fraction(1, 2):
        hint = Decimal("0.25") if rest < Fraction(1, 2) else Decimal("0.75")
    else:
        hint = Decimal("0.5")
    return Money.rounded((whole + hint).scaleb(-currency.scale), currency)
