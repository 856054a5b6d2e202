"""An investor's net annualised return: the XIRR of their dated cash flows.

Sign convention (the investor's wallet): negative = money invested into loans, positive = money
received (principal, interest, compensation). For a position still open, the caller adds a final
positive flow with the outstanding claim valued at "today".

The rate ``r`` solves ``sum(amount / (1 + r) ** (days / 365)) == 0``, where ``days`` counts from
the earliest flow. Everything is ``Decimal`` in a local 28-digit context, so the result does not
depend on the caller's decimal context; fractional powers are ``exp(-t * ln(1 + r))``.

Solving: Newton's method from ``guess``; if it leaves the search range ``[-0.9999, 10]``, stalls,
or lands somewhere NPV does not change sign, a grid over that range looks for a bracket and
bisection narrows it. A rate is only returned when NPV changes sign around it (or is exactly 0),
so a rate is never made up; ``None`` means undefined: fewer than two flows, all flows of one sign,
every flow on one day, or no root found in the range.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from itertools import pairwise

Flow = tuple[date, Decimal]

LOWEST_RATE = Decimal("-0.9999")
HIGHEST_RATE = Decimal("10")
DAYS_PER_YEAR = Decimal(365)
RESULT_PLACES = Decimal("0.000001")

_CONTEXT = Context(prec=28)
_NEWTON_STEPS = 50
_TOLERANCE = Decimal("1e-15")  # on the rate; far below the 6 places returned
# Sign changes are looked for between neighbouring points, densest where rates usually are.
_GRID = tuple(
    Decimal(p)
    for p in (
        "-0.9999", "-0.999", "-0.99", "-0.95", "-0.9", "-0.8", "-0.7", "-0.6", "-0.5", "-0.4",
        "-0.3", "-0.2", "-0.1", "-0.05", "0", "0.05", "0.1", "0.15", "0.2", "0.3", "0.4", "0.5",
        "0.75", "1", "1.5", "2", "3", "4", "5", "7.5", "10",
    )
)


def xirr(flows: Sequence[Flow], *, guess: Decimal = Decimal("0.1")) -> Decimal | None:
    """The annual rate at which the flows' net present value is zero, to 6 places, or ``None``."""
    for _, amount in flows:
        _require_decimal(amount, "flow amounts")
    _require_decimal(guess, "guess")
    if len(flows) < 2:
        return None
    if not any(a > 0 for _, a in flows) or not any(a < 0 for _, a in flows):
        return None
    first = min(d for d, _ in flows)
    if all(d == first for d, _ in flows):
        return None  # NPV is the same at every rate: no rate, or every rate, is "the" rate
    with localcontext(_CONTEXT):
        timed = [(Decimal((d - first).days) / DAYS_PER_YEAR, +a) for d, a in flows]
        root = _newton(timed, guess)
        if root is None:
            root = _bisect(timed, guess)
        if root is None:
            return None
        return root.quantize(RESULT_PLACES, rounding=ROUND_HALF_EVEN)


def npv(flows: Sequence[Flow], rate: Decimal) -> Decimal:
    """Net present value of the flows at ``rate``, discounted to the earliest flow's date."""
    _require_decimal(rate, "rate")
    if not flows:
        return Decimal(0)
    if rate <= -1:
        raise ValueError("rate must be above -1")
    first = min(d for d, _ in flows)
    with localcontext(_CONTEXT):
        timed = [(Decimal((d - first).days) / DAYS_PER_YEAR, +a) for d, a in flows]
        return +_npv(timed, rate)


def _npv(timed: list[tuple[Decimal, Decimal]], rate: Decimal) -> Decimal:
    log_growth = (1 + rate).ln()
    return sum((a * (-t * log_growth).exp() for t, a in timed), Decimal(0))


def _npv_and_slope(timed: list[tuple[Decimal, Decimal]], rate: Decimal) -> tuple[Decimal, Decimal]:
    growth = 1 + rate
    log_growth = growth.ln()
    value = slope = Decimal(0)
    for t, a in timed:
        discounted = a * (-t * log_growth).exp()
        value += discounted
        slope -= t * discounted / growth
    return value, slope


def _in_range(rate: Decimal) -> bool:
    return LOWEST_RATE <= rate <= HIGHEST_RATE


def _is_root(timed: list[tuple[Decimal, Decimal]], rate: Decimal) -> bool:
    """NPV is zero at ``rate`` or changes sign within a hair of it (guards Newton's stalls)."""
    hair = Decimal("1e-12")
    low = _npv(timed, max(rate - hair, LOWEST_RATE))
    high = _npv(timed, min(rate + hair, HIGHEST_RATE))
    return low == 0 or high == 0 or (low < 0) != (high < 0)


def _newton(timed: list[tuple[Decimal, Decimal]], guess: Decimal) -> Decimal | None:
    rate = guess
    if not _in_range(rate):
        return None
    for _ in range(_NEWTON_STEPS):
        value, slope = _npv_and_slope(timed, rate)
        if value == 0:
            return rate
        if slope == 0:
            return None
        step = value / slope
        rate -= step
        if not _in_range(rate):
            return None
        if abs(step) < _TOLERANCE:
            return rate if _is_root(timed, rate) else None
    return None


def _bisect(timed: list[tuple[Decimal, Decimal]], guess: Decimal) -> Decimal | None:
    values = [_npv(timed, r) for r in _GRID]
    for rate, value in zip(_GRID, values, strict=True):
        if value == 0:
            return rate
    brackets = [
        (low, high, low_value)
        for (low, low_value), (high, high_value) in pairwise(zip(_GRID, values, strict=True))
        if (low_value < 0) != (high_value < 0)
    ]
    if not brackets:
        return None
    # Several roots: take the one nearest to what the caller expects.
    low, high, low_value = min(brackets, key=lambda b: abs((b[0] + b[1]) / 2 - guess))
    while high - low > _TOLERANCE:
        middle = (low + high) / 2
        middle_value = _npv(timed, middle)
        if middle_value == 0:
            return middle
        if (middle_value < 0) == (low_value < 0):
            low, low_value = middle, middle_value
        else:
            high = middle
    return (low + high) / 2


def _require_decimal(value: object, what: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{what} must be finite Decimals, not {value!r}")
