"""Periods are business dates: the previous period, UTC bounds, and days counted in the business
time zone on both databases - also across a daylight-saving change."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from core import analytics
from core.analytics import traffic
from core.analytics.filters import Filters
from core.domain.clock import ManualClock
from tests.support import make_core


def test_the_previous_period_has_the_same_length_and_ends_the_day_before():
    week = Filters(date(2026, 3, 2), date(2026, 3, 8), channels=["web"])
    assert week.previous() == Filters(date(2026, 2, 23), date(2026, 3, 1), channels=("web",))
    assert Filters(date(2026, 3, 1), date(2026, 3, 31)).previous() == Filters(
        date(2026, 1, 29), date(2026, 2, 28))
    with pytest.raises(ValueError, match="ends"):
        Filters(date(2026, 3, 2), date(2026, 3, 1))


def test_a_period_is_a_utc_interval_from_local_midnight_to_local_midnight():
    lo, hi = Filters(date(2026, 3, 2), date(2026, 3, 8)).utc(ZoneInfo("Asia/Shanghai"))
    assert lo == datetime(2026, 3, 1, 16, tzinfo=UTC)
    assert hi == datetime(2026, 3, 8, 16, tzinfo=UTC)


async def test_visits_are_counted_on_the_local_day_across_a_clock_change(database_url,
                                                                         tmp_path):
    clock = ManualClock(datetime(2026, 3, 28, 12, tzinfo=UTC), ZoneInfo("Europe/Berlin"))
    core = await make_core(database_url, clock, tmp_path, timezone="Europe/Berlin")
    try:
        moments = [datetime(2026, 3, 28, 22, 30, tzinfo=UTC),  # 23:30 CET, the 28th
                   datetime(2026, 3, 28, 23, 30, tzinfo=UTC),  # 00:30 CET, the 29th
                   datetime(2026, 3, 29, 21, 30, tzinfo=UTC),  # 23:30 CEST, the 29th
                   datetime(2026, 3, 29, 22, 30, tzinfo=UTC)]  # 00:30 CEST, the 30th
        async with core.uow() as uow:
            await analytics.track_many(uow, [{"name": "first_visit", "channel": "web",
                                              "at": m} for m in moments])
            await uow.commit()
        async with core.uow(read_only=True) as uow:
            rows = await traffic.daily(uow, Filters(date(2026, 3, 27), date(2026, 3, 31)))
            totals = await traffic.totals(uow, Filters(date(2026, 3, 29), date(2026, 3, 29)))
    finally:
        await core.close()
    assert [(r["day"], r["visits"]) for r in rows] == [
        ("2026-03-28", 1), ("2026-03-29", 2), ("2026-03-30", 1)]
    assert totals["visits"] == 2
