"""Money: a ``Decimal`` amount with a currency, a fixed scale and one rounding rule.

Amounts never pass through ``float``. A ``Currency`` carries the scale and rounding from settings;
``Money`` values of different currencies never mix. ``split`` divides an amount by weights with the
largest-remainder method, so the parts always add up to the whole to the last cent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction

from core.domain.errors import CurrencyMismatch, InvalidAmount


@dataclass(frozen=True, slots=True)
class Currency:
    code: str = "CNY"
    scale: int = 2
    rounding: str = ROUND_HALF_UP

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.scale)

    @property
    def minor_unit(self) -> Decimal:
        return self.quantum


CNY = Currency()


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An exact amount of one currency at that currency's scale."""

    amount: Decimal
    currency: Currency = CNY

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise InvalidAmount(f"money must be a Decimal, not {type(self.amount).__name__}")
        if not self.amount.is_finite():
            raise InvalidAmount("money must be a finite number")
        try:
            exact = self.amount.quantize(self.currency.quantum, rounding=ROUND_DOWN)
        except InvalidOperation as exc:
            raise InvalidAmount(f"{self.amount} is too large") from exc
        if exact != self.amount:
            raise InvalidAmount(
                f"{self.amount} has more than {self.currency.scale} decimals "
                f"for {self.currency.code}"
            )
        if exact == 0:
            exact = abs(exact)  # never show "-0.00"
        object.__setattr__(self, "amount", exact)

    # Construction --------------------------------------------------------------------------

    @classmethod
    def of(cls, value: Decimal | int | str, currency: Currency = CNY) -> Money:
        """Exact construction: refuses values that need rounding (use ``rounded`` for those)."""
        return cls(_to_decimal(value), currency)

    @classmethod
    def rounded(cls, value: Decimal | int | str, currency: Currency = CNY) -> Money:
        """Round a computed value (interest, fees) to the currency's scale with its rule."""
        try:
            amount = _to_decimal(value).quantize(currency.quantum, rounding=currency.rounding)
        except InvalidOperation as exc:
            raise InvalidAmount(f"{value} is too large") from exc
        return cls(amount, currency)

    @classmethod
    def zero(cls, currency: Currency = CNY) -> Money:
        return cls(Decimal(0).quantize(currency.quantum), currency)

    # Arithmetic ----------------------------------------------------------------------------

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency.code != self.currency.code:
            raise CurrencyMismatch(f"{self.currency.code} and {other.currency.code} do not mix")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def times(self, factor: Decimal | int) -> Money:
        """Multiply by a rate or count and round with the currency's rule."""
        return Money.rounded(self.amount * _to_decimal(factor), self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def is_zero(self) -> bool:
        return self.amount == 0

    def is_positive(self) -> bool:
        return self.amount > 0

    @property
    def minor_units(self) -> int:
        return int(self.amount.scaleb(self.currency.scale))

    def __str__(self) -> str:
        return f"{self.amount:,.{self.currency.scale}f} {self.currency.code}"


_FULL_WIDTH = str.maketrans("０１２３４５６７８９．，", "0123456789.,")


def parse_amount(text: str, currency: Currency = CNY) -> Money:
    """What a user typed -> a positive ``Money``: "1,000.50", "１０００", "¥200", "200元".

    Refuses (``InvalidAmount`` with ``reason``) what is not a number, not positive, or has more
    decimals than the currency allows; never rounds a user's amount silently.
    """
    cleaned = str(text).strip().translate(_FULL_WIDTH).replace(",", "").replace(" ", "")
    cleaned = cleaned.removeprefix("¥").removeprefix("￥").removesuffix("元")
    cleaned = cleaned.removesuffix(currency.code).removesuffix(currency.code.lower())
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise InvalidAmount(f"{text!r} is not an amount", reason="not_a_number") from exc
    if not value.is_finite():
        raise InvalidAmount(f"{text!r} is not an amount", reason="not_a_number")
    if value <= 0:
        raise InvalidAmount(f"{text!r} is not positive", reason="not_positive")
    try:
        exact = value.quantize(currency.quantum, rounding=ROUND_DOWN)
    except InvalidOperation as exc:
        raise InvalidAmount(f"{text!r} is too large", reason="too_large") from exc
    if value != exact:
        raise InvalidAmount(f"{text!r} has too many decimals", reason="too_many_decimals",
                            scale=currency.scale)
    return Money(exact, currency)


def _to_decimal(value: Decimal | int | str) -> Decimal:
    if isinstance(value, (bool, float)):
        raise InvalidAmount("money is never built from float or bool; pass a str or Decimal")
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise InvalidAmount(f"{value!r} is not a number") from exc


def split(total: Money, weights: Sequence[Decimal | int]) -> list[Money]:
    """Split ``total`` into parts proportional to ``weights`` without losing or creating a cent.

    Largest remainder: each part gets the floor of its exact share in minor units; the cents left
    over go one each to the parts with the largest remainders (ties to the earlier part). Works for
    negative totals by splitting the magnitude. Zero weights get zero.
    """
    if not weights:
        raise InvalidAmount("cannot split among no parts")
    exact_weights = [_to_decimal(w) for w in weights]
    if any(w < 0 for w in exact_weights):
        raise InvalidAmount("split weights must not be negative")
    weight_sum = sum(exact_weights, Decimal(0))
    if weight_sum == 0:
        raise InvalidAmount("split weights must not all be zero")
    sign = -1 if total.amount < 0 else 1
    units = abs(total.minor_units)
    # Exact rational shares: Decimal division would round at 28 digits and break exact ties.
    whole = Fraction(weight_sum)
    shares = [Fraction(units) * Fraction(w) / whole for w in exact_weights]
    floors = [math.floor(s) for s in shares]
    left = units - sum(floors)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    scale = total.currency.scale
    return [Money(Decimal(sign * f).scaleb(-scale), total.currency) for f in floors]
