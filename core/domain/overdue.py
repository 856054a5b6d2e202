"""Overdue installments: days past due, delinquency buckets, penalty interest, quiet hours.

Pure functions, no I/O, no clock: callers pass ``today`` (the business date) or ``moment``.

* Days past due count from the due date, but only once the grace period is over: due on the 10th
  with 3 days' grace is 0 days past due on the 11th..13th and 4 on the 14th.
* Buckets (current, M1, M2, ...) cover every ``dpd >= 0`` exactly once: they start at 0, each
  begins the day after the previous ends, and only the last is open-ended.
* Penalty interest is simple (no penalty on penalty): amount x daily rate x days, rounded once
  for the whole period with the currency's rule, and capped so that everything charged for the
  installment never exceeds ``cap``.
* Quiet hours are a local-time window (``start`` inclusive, ``end`` exclusive) in which borrowers
  are not contacted; it may cross midnight (21:00-08:00). ``start == end`` means no quiet hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

from core.domain.errors import CurrencyMismatch
from core.domain.money import Money


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    min_days: int  # inclusive
    max_days: int | None  # inclusive; None = open-ended


DEFAULT_BUCKETS = (
    Bucket("current", 0, 0),
    Bucket("M1", 1, 30),
    Bucket("M2", 31, 60),
    Bucket("M3", 61, 90),
    Bucket("M3+", 91, None),
)


def validate_buckets(buckets: Sequence[Bucket]) -> None:
    """Raise ``ValueError`` unless every ``dpd >= 0`` falls in exactly one bucket."""
    if not buckets:
        raise ValueError("at least one bucket is needed")
    if buckets[0].min_days != 0:
        raise ValueError(f"buckets must start at 0 days, not {buckets[0].min_days}")
    names = [b.name for b in buckets]
    if len(set(names)) != len(names):
        raise ValueError(f"bucket names must be unique: {names}")
    for bucket, following in pairwise(buckets):
        if bucket.max_days is None:
            raise ValueError(f"only the last bucket may be open-ended, not {bucket.name!r}")
        if bucket.max_days < bucket.min_days:
            raise ValueError(f"bucket {bucket.name!r} ends before it starts")
        if following.min_days != bucket.max_days + 1:
            raise ValueError(
                f"bucket {following.name!r} must start at {bucket.max_days + 1} days "
                f"(right after {bucket.name!r}), not {following.min_days}"
            )
    if buckets[-1].max_days is not None:
        raise ValueError(f"the last bucket {buckets[-1].name!r} must be open-ended")


def days_past_due(due_date: date, today: date, grace_days: int = 0) -> int:
    """Days since ``due_date``, or 0 while ``today`` is on or before the last day of grace."""
    if grace_days < 0:
        raise ValueError("grace_days must not be negative")
    if today <= due_date + timedelta(days=grace_days):
        return 0
    return (today - due_date).days


def bucket_for(dpd: int, buckets: Sequence[Bucket] = DEFAULT_BUCKETS) -> str:
    """The name of the bucket ``dpd`` days past due falls in."""
    if dpd < 0:
        raise ValueError("days past due must not be negative")
    validate_buckets(buckets)
    for bucket in buckets:
        if bucket.min_days <= dpd and (bucket.max_days is None or dpd <= bucket.max_days):
            return bucket.name
    raise AssertionError("validated buckets cover every dpd")  # pragma: no cover


def penalty_for_days(
    overdue_amount: Money, days: int, daily_rate: Decimal, cap: Money, already: Money
) -> Money:
    """New penalty for ``days`` more days overdue, given ``already`` charged and the ``cap``."""
    if not isinstance(daily_rate, Decimal) or not daily_rate.is_finite() or daily_rate < 0:
        raise ValueError(f"daily_rate must be a non-negative Decimal, not {daily_rate!r}")
    if days < 0:
        raise ValueError("days must not be negative")
    for name, value in (("overdue_amount", overdue_amount), ("cap", cap), ("already", already)):
        if value.amount < 0:
            raise ValueError(f"{name} must not be negative")
    codes = {overdue_amount.currency.code, cap.currency.code, already.currency.code}
    if len(codes) > 1:
        raise CurrencyMismatch(f"{' and '.join(sorted(codes))} do not mix")
    room = cap - already
    if not room.is_positive():
        return Money.zero(overdue_amount.currency)
    penalty = Money.rounded(overdue_amount.amount * daily_rate * days, overdue_amount.currency)
    return min(penalty, room)


def in_quiet_hours(moment: datetime, tz: ZoneInfo, start: time, end: time) -> bool:
    """Whether ``moment`` falls in the quiet window read on local clocks in ``tz``."""
    local = _local_time(moment, tz, start, end)
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # the window crosses midnight


def next_allowed(moment: datetime, tz: ZoneInfo, start: time, end: time) -> datetime:
    """``moment`` if outside the quiet window, else the window's end; an aware UTC datetime."""
    if not in_quiet_hours(moment, tz, start, end):
        return moment.astimezone(UTC)
    local = moment.astimezone(tz)
    end_day = local.date()
    if start > end and local.time() >= start:
        end_day += timedelta(days=1)  # evening part of a window that ends tomorrow morning
    return datetime.combine(end_day, end, tzinfo=tz).astimezone(UTC)


def _local_time(moment: datetime, tz: ZoneInfo, start: time, end: time) -> time:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("moment must be an aware datetime")
    if start.tzinfo is not None or end.tzinfo is not None:
        raise ValueError("quiet hours are local wall-clock times without tzinfo")
    return moment.astimezone(tz).time()
