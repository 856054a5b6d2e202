"""Time is injected: everything that needs "now" or "today" asks a ``Clock``.

``now()`` is an aware UTC datetime; ``today()`` is the business date in the business time zone
(Asia/Shanghai by default), which is what due dates and daily jobs are about.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    tz: ZoneInfo

    def now(self) -> datetime: ...

    def today(self) -> date: ...

    def local(self, moment: datetime | None = None) -> datetime: ...


class _Base:
    tz: ZoneInfo

    def now(self) -> datetime:  # pragma: no cover - overridden
        raise NotImplementedError

    def local(self, moment: datetime | None = None) -> datetime:
        return (moment or self.now()).astimezone(self.tz)

    def today(self) -> date:
        return self.local().date()


class SystemClock(_Base):
    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock(_Base):
    """A clock that tests and the demo simulator move by hand."""

    def __init__(self, start: datetime, tz: ZoneInfo | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self.tz = tz or ZoneInfo("Asia/Shanghai")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = moment.astimezone(UTC)
