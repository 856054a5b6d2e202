"""Support business hours: when agents answer, and when they are back if not now.

Hours are local business time (``P2P_TIMEZONE``) on the configured ISO weekdays, except
holidays. ``24:00`` as the end means midnight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from config.settings import SupportSettings


@dataclass(frozen=True, slots=True)
class BusinessHours:
    start: time
    end: time | None  # None: until midnight
    days: frozenset[int]
    holidays: frozenset[date]

    def is_open(self, moment: datetime) -> bool:
        day = moment.date()
        if day in self.holidays or day.isoweekday() not in self.days:
            return False
        now = moment.time().replace(tzinfo=None)
        return self.start <= now and (self.end is None or now < self.end)

    def reopens(self, moment: datetime) -> datetime | None:
        """None while open; otherwise the next opening, in the moment's time zone."""
        if self.is_open(moment):
            return None
        for ahead in range(0, 370):
            day = moment.date() + timedelta(days=ahead)
            if day in self.holidays or day.isoweekday() not in self.days:
                continue
            opening = datetime.combine(day, self.start, moment.tzinfo)
            if opening > moment:
                return opening
        return None  # no support day in a year: configuration says never


@lru_cache(maxsize=8)
def _hours(spec: str, days: tuple[int, ...], holidays: tuple[str, ...]) -> BusinessHours:
    start, end = spec.split("-")
    return BusinessHours(time.fromisoformat(start),
                         None if end == "24:00" else time.fromisoformat(end),
                         frozenset(days), frozenset(date.fromisoformat(h) for h in holidays))


def support_hours(settings: SupportSettings) -> BusinessHours:
    return _hours(settings.hours, tuple(settings.days), tuple(settings.holidays))
