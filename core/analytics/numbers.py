"""How figures are returned: money at the currency's scale, shares, labelled ratios, spreads.

* Money is a ``Decimal`` at the currency's scale (``money.scale``, rounded with its rule).
* A share is a ``Decimal`` with 4 places (0.1234 = 12.34%), or None when the denominator is 0.
* A ratio that someone must be able to check (regulatory, risk) is a dict with its
  ``numerator``, ``denominator``, ``value`` (the share) and a one-line ``definition``.
* A spread of durations is ``{"n", "median", "p90"}`` in whole seconds (p90 by nearest rank).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from config.settings import Settings
from core.adapters.types import Amount
from core.domain.money import Currency, Money

SHARE = Decimal("0.0001")


def currency(settings: Settings) -> Currency:
    return Currency(settings.money.currency, settings.money.scale, settings.rounding_mode)


def money(value: Decimal | int | None, cur: Currency) -> Decimal:
    return Money.rounded(Decimal(value or 0), cur).amount


def share(numerator: Decimal | int, denominator: Decimal | int) -> Decimal | None:
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(SHARE, ROUND_HALF_UP)


def ratio(numerator: Decimal | int, denominator: Decimal | int,
          definition: str) -> dict[str, Any]:
    return {"value": share(numerator, denominator), "numerator": numerator,
            "denominator": denominator, "definition": definition}


def compared(value: Any, previous: Any) -> dict[str, Any]:
    """A figure next to the previous period's."""
    return {"value": value, "previous": previous}


def spread(seconds: Sequence[float]) -> dict[str, int | None]:
    """Median and 90th percentile (nearest rank) of durations, in whole seconds."""
    if not seconds:
        return {"n": 0, "median": None, "p90": None}
    ordered = sorted(seconds)
    n = len(ordered)
    middle = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
    return {"n": n, "median": round(middle),
            "p90": round(ordered[max(0, math.ceil(0.9 * n) - 1)])}


def total(column: ColumnElement[Any]) -> ColumnElement[Decimal]:
    """SUM of an ``Amount`` column, 0 when there are no rows, read back as a Decimal."""
    return type_coerce(func.coalesce(func.sum(column), 0), Amount)
