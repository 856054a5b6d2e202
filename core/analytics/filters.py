"""What every dashboard page asks for: a period of business dates and attribution filters.

* **Dates are business dates** in the business time zone (``uow.clock.tz``). The database stores
  UTC, so a period becomes the half-open UTC interval [start 00:00 local, end + 1 day 00:00
  local) (``Filters.utc``), and timestamps are bucketed by local day in SQL (``local_day``):
  PostgreSQL converts with the zone itself; SQLite, which knows no zones, shifts by the zone's
  UTC offset, with one branch per offset when a daylight-saving change falls in the range.
* **The previous period** has the same length and ends the day before ``start``.
* **Attribution**: ``channels`` and ``campaigns`` keep only rows whose attribution is one of
  them (empty: no filter). Which attribution a figure uses is written in its docstring and in
  ``docs/metrics.md``: a person's first touch (``users.first_channel`` / ``first_campaign``) for
  figures about people and their money, a chat's own first touch (``channel_identities``, the
  ``first_visit`` event's channel and campaign) for figures about visits and conversations.
  ``NONE`` ("(none)") stands for "no campaign" (or no channel) in filters and in results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, Text, case, cast, func, literal_column, or_
from sqlalchemy.sql.elements import ColumnElement

from core.adapters.uow import UnitOfWork

NONE = "(none)"


@dataclass(frozen=True, slots=True)
class Filters:
    start: date
    end: date
    channels: tuple[str, ...] = ()
    campaigns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "campaigns", tuple(self.campaigns))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The period of the same length that ends the day before this one starts."""
        return replace(self, start=self.start - timedelta(days=self.days),
                       end=self.start - timedelta(days=1))

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range(self.days)]

    def utc(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """[start 00:00, end + 1 day 00:00) local time, as aware UTC datetimes."""
        return day_start(self.start, tz), day_start(self.end + timedelta(days=1), tz)


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """Midnight at the start of a business day, in UTC."""
    return datetime.combine(day, time(0), tz).astimezone(UTC)


def label(value: str | None) -> str:
    """How a missing channel or campaign is shown (and filtered)."""
    return value if value else NONE


def attributed(f: Filters, channel: ColumnElement[str] | None,
               campaign: ColumnElement[str] | None) -> list[ColumnElement[bool]]:
    """WHERE clauses keeping the rows whose channel / campaign column is in the filters."""
    clauses = []
    if f.channels and channel is not None:
        clauses.append(_one_of(channel, f.channels))
    if f.campaigns and campaign is not None:
        clauses.append(_one_of(campaign, f.campaigns))
    return clauses


def _one_of(column: ColumnElement[str], values: Sequence[str]) -> ColumnElement[bool]:
    named = [v for v in values if v != NONE]
    parts: list[ColumnElement[bool]] = []
    if named:
        parts.append(column.in_(named))
    if NONE in values:
        parts.append(column.is_(None))
        parts.append(column == "")
    return or_(*parts)


def local_day(uow: UnitOfWork, column: ColumnElement[datetime], lo: datetime,
              hi: datetime) -> ColumnElement[str]:
    """The business date of a UTC timestamp column as 'YYYY-MM-DD', for rows in [lo, hi)."""
    # constants are written into the SQL, not bound: PostgreSQL only matches a GROUP BY
    # expression to the selected one if they are the same text ($1 and $3 are not)
    tz = uow.clock.tz
    if uow.dialect == "postgresql":
        return func.to_char(func.timezone(_const(tz.key), column), _const("YYYY-MM-DD"))
    spans = offsets(tz, lo, hi)
    if len(spans) == 1:
        return func.date(column, _shift(spans[0][1]))
    whens = [(column < until, func.date(column, _shift(minutes)))
             for until, minutes in spans[:-1] if until is not None]
    return case(*whens, else_=func.date(column, _shift(spans[-1][1])))


def epoch(uow: UnitOfWork, column: ColumnElement[datetime]) -> ColumnElement[float]:
    """Seconds since 1970 of a UTC timestamp column, computed in SQL: cheaper to read in bulk
    than datetimes (SQLite keeps milliseconds, PostgreSQL microseconds)."""
    if uow.dialect == "postgresql":
        return cast(func.extract("epoch", column), Float)
    return (func.julianday(column) - 2440587.5) * 86400.0


def joined(uow: UnitOfWork, column: ColumnElement[Any], *,
           distinct: bool = False) -> ColumnElement[str]:
    """An aggregate joining a group's values into one comma-separated text: reading one row
    per group instead of one per value keeps bulk reads cheap (and spares the garbage
    collector a hundred thousand row objects)."""
    text = cast(column, Text)
    if distinct:
        text = text.distinct()
    if uow.dialect == "postgresql":
        return func.string_agg(text, _const(","))
    return func.group_concat(text)


def _shift(minutes: int) -> ColumnElement[str]:
    return _const(f"{minutes:+d} minutes")


def _const(text: str) -> ColumnElement[str]:
    return literal_column("'" + text.replace("'", "''") + "'")


def offsets(tz: ZoneInfo, lo: datetime, hi: datetime) -> list[tuple[datetime | None, int]]:
    """The zone's UTC offsets over [lo, hi): (until, minutes) spans, the last one open-ended."""
    spans: list[tuple[datetime | None, int]] = []
    moment, current = lo, _minutes(tz, lo)
    while moment < hi:
        step = min(moment + timedelta(days=1), hi)
        if _minutes(tz, step) != current:
            low, high = moment, step  # find the change to the second
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if _minutes(tz, middle) == current:
                    low = middle
                else:
                    high = middle
            spans.append((high, current))
            current = _minutes(tz, high)
        moment = step
    spans.append((None, current))
    return spans


def _minutes(tz: ZoneInfo, moment: datetime) -> int:
    offset = moment.astimezone(tz).utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0
