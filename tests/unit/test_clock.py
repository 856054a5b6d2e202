"""The clock: "now" is UTC, "today" is the business date in the business time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.domain.clock import ManualClock, SystemClock

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_today_is_the_date_in_shanghai_not_in_utc() -> None:
    clock = ManualClock(datetime(2026, 3, 1, 17, 0, tzinfo=UTC))
    assert clock.today() == date(2026, 3, 2)


def test_the_business_day_changes_at_midnight_in_shanghai() -> None:
    clock = ManualClock(datetime(2026, 3, 1, 15, 59, 59, tzinfo=UTC))
    assert clock.today() == date(2026, 3, 1)
    clock.advance(timedelta(seconds=1))
    assert clock.today() == date(2026, 3, 2)


def test_now_is_an_aware_utc_moment_even_when_started_with_local_time() -> None:
    clock = ManualClock(datetime(2026, 3, 2, 1, 0, tzinfo=SHANGHAI))
    now = clock.now()
    assert now == datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    assert now.utcoffset() == timedelta(0)


def test_local_time_is_the_wall_clock_in_shanghai() -> None:
    clock = ManualClock(datetime(2026, 3, 1, 17, 30, tzinfo=UTC))
    local = clock.local()
    assert (local.date(), local.hour, local.minute) == (date(2026, 3, 2), 1, 30)
    assert local.utcoffset() == timedelta(hours=8)


def test_local_converts_a_given_moment_to_the_business_time_zone() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    local = clock.local(datetime(2026, 6, 30, 20, 0, tzinfo=UTC))
    assert (local.date(), local.hour) == (date(2026, 7, 1), 4)


def test_advance_moves_time_forward_by_the_given_amount() -> None:
    clock = ManualClock(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    clock.advance(timedelta(days=30, hours=1))
    assert clock.now() == datetime(2026, 4, 1, 3, 0, tzinfo=UTC)
    assert clock.today() == date(2026, 4, 1)


def test_set_jumps_to_the_given_moment() -> None:
    clock = ManualClock(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    clock.set(datetime(2026, 12, 31, 23, 30, tzinfo=SHANGHAI))
    assert clock.now() == datetime(2026, 12, 31, 15, 30, tzinfo=UTC)
    assert clock.now().utcoffset() == timedelta(0)
    assert clock.today() == date(2026, 12, 31)


def test_the_business_time_zone_can_be_chosen() -> None:
    moment = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    assert ManualClock(moment, tz=ZoneInfo("America/New_York")).today() == date(2026, 3, 1)
    assert ManualClock(moment, tz=ZoneInfo("Asia/Tokyo")).today() == date(2026, 3, 2)


def test_the_clock_refuses_to_start_at_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        ManualClock(datetime(2026, 3, 2, 2, 0))


def test_the_clock_refuses_to_be_set_to_a_naive_datetime_and_stays_put() -> None:
    start = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    clock = ManualClock(start)
    with pytest.raises(ValueError, match="aware"):
        clock.set(datetime(2026, 5, 1, 9, 0))
    assert clock.now() == start


def test_the_system_clock_reports_the_current_moment_in_utc() -> None:
    clock = SystemClock(SHANGHAI)
    before = datetime.now(UTC)
    now = clock.now()
    after = datetime.now(UTC)
    assert before <= now <= after
    assert now.utcoffset() == timedelta(0)
    assert clock.local(now).utcoffset() == timedelta(hours=8)
