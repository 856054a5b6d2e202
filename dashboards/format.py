"""How figures are shown: money with two decimals and thousands separators, shares as
percentages, durations in words, "—" for a figure that does not exist. Decimals become floats
only here and in ``plot``, at the edge of the screen."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

MISSING = "—"
CENT = Decimal("0.01")


def money(value: Decimal | int | None) -> str:
    if value is None:
        return MISSING
    return f"{Decimal(value).quantize(CENT, ROUND_HALF_UP):,}"


def count(value: int | Decimal | None) -> str:
    if value is None:
        return MISSING
    return f"{value:,}"


def percent(share: Decimal | None) -> str:
    """A share (0.1234) as a percentage (12.34%)."""
    if share is None:
        return MISSING
    return f"{(Decimal(share) * 100).quantize(CENT, ROUND_HALF_UP)}%"


def duration(seconds: int | float | None) -> str:
    if seconds is None:
        return MISSING
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, second = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {second:02d}s"
    hours, minute = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minute:02d}m"
    days, hour = divmod(hours, 24)
    return f"{days}d {hour:02d}h"


def moment(iso: str | None, tz: ZoneInfo) -> str | None:
    """An ISO timestamp (UTC) as business time, to the minute: ``2026-02-24 15:27``."""
    if not iso:
        return None
    return datetime.fromisoformat(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def rating(value: Decimal | None) -> str:
    return MISSING if value is None else f"{value} / 5"


def plot(value: Any) -> Any:
    """A number for a chart: Decimal -> float; None stays a gap."""
    return float(value) if isinstance(value, Decimal) else value


def plot_percent(share: Decimal | None) -> float | None:
    return None if share is None else float(share) * 100


def number(value: Decimal | int | None) -> str:
    """An amount (Decimal) as money, a count (int) as a count."""
    return money(value) if isinstance(value, Decimal) else count(value)


def text(value: object) -> str:
    return MISSING if value is None else str(value)


def heat_labels(z: list[list[float | None]]) -> list[list[str]]:
    """A heatmap's cell labels: whole percentages, blank where there is no value."""
    return [["" if v is None else f"{v:.0f}%" for v in row] for row in z]


FORMATS = {"money": money, "number": number, "count": count, "percent": percent,
           "duration": duration, "rating": rating, "text": text}
