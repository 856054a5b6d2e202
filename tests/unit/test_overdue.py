"""Overdue rules: days past due after grace, buckets that cover every day once, capped simple
penalties rounded once, and quiet hours read on the borrower's local clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain.errors import CurrencyMismatch
from core.domain.money import Currency, Money
from core.domain.overdue import (
    DEFAULT_BUCKETS,
    Bucket,
    bucket_for,
    days_past_due,
    in_quiet_hours,
    next_allowed,
    penalty_for_days,
    validate_buckets,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")  # UTC+8 all year, no DST
NIGHT_START, NIGHT_END = time(21, 0), time(8, 0)
LUNCH_START, LUNCH_END = time(12, 0), time(14, 0)
D = Decimal


def cny(text: str) -> Money:
    return Money.of(text)


def shanghai(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI)


# days_past_due ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "today", "grace", "expected"),
    [
        pytest.param(date(2024, 5, 10), date(2024, 5, 9), 0, 0, id="before due"),
        pytest.param(date(2024, 5, 10), date(2024, 5, 10), 0, 0, id="on the due date"),
        pytest.param(date(2024, 5, 10), date(2024, 5, 11), 0, 1, id="day after, no grace"),
        pytest.param(date(2024, 5, 10), date(2024, 5, 11), 3, 0, id="first day of grace"),
        pytest.param(date(2024, 5, 10), date(2024, 5, 13), 3, 0, id="last day of grace"),
        pytest.param(date(2024, 5, 10), date(2024, 5, 14), 3, 4, id="grace over counts from due"),
        pytest.param(date(2024, 1, 31), date(2024, 3, 1), 0, 30, id="over a leap february"),
        pytest.param(date(2023, 1, 31), date(2023, 3, 1), 0, 29, id="over a short february"),
        pytest.param(date(2024, 2, 29), date(2024, 3, 1), 0, 1, id="from a leap day"),
        pytest.param(date(2024, 12, 31), date(2025, 1, 1), 0, 1, id="across new year"),
        pytest.param(date(2024, 4, 30), date(2024, 5, 3), 2, 3, id="grace across month end"),
    ],
)
def test_days_past_due_count_from_the_due_date_once_grace_is_over(
    due: date, today: date, grace: int, expected: int
) -> None:
    assert days_past_due(due, today, grace) == expected


def test_a_negative_grace_is_refused() -> None:
    with pytest.raises(ValueError, match="grace"):
        days_past_due(date(2024, 5, 10), date(2024, 5, 11), -1)


@given(
    due=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    first=st.integers(min_value=-400, max_value=400),
    later=st.integers(min_value=0, max_value=400),
    grace=st.integers(min_value=0, max_value=30),
)
def test_days_past_due_never_go_down_as_days_go_by(
    due: date, first: int, later: int, grace: int
) -> None:
    today = due + timedelta(days=first)
    earlier = days_past_due(due, today, grace)
    assert 0 <= earlier <= days_past_due(due, today + timedelta(days=later), grace)


# buckets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dpd", "expected"),
    [(0, "current"), (1, "M1"), (30, "M1"), (31, "M2"), (60, "M2"), (61, "M3"), (90, "M3"),
     (91, "M3+"), (10_000, "M3+")],
)
def test_each_bucket_boundary_falls_in_the_right_default_bucket(dpd: int, expected: str) -> None:
    assert bucket_for(dpd) == expected


def test_custom_buckets_are_used_when_given() -> None:
    buckets = (Bucket("ok", 0, 2), Bucket("late", 3, None))
    assert [bucket_for(d, buckets) for d in (0, 2, 3, 400)] == ["ok", "ok", "late", "late"]


def test_negative_days_past_due_have_no_bucket() -> None:
    with pytest.raises(ValueError, match="negative"):
        bucket_for(-1)


def test_the_default_buckets_are_valid() -> None:
    validate_buckets(DEFAULT_BUCKETS)
    validate_buckets([Bucket("all", 0, None)])


@pytest.mark.parametrize(
    ("buckets", "complaint"),
    [
        pytest.param([], "at least one", id="empty"),
        pytest.param([Bucket("M1", 1, None)], "start at 0", id="not starting at 0"),
        pytest.param(
            [Bucket("a", 0, 0), Bucket("b", 2, None)], "must start at 1", id="gap"
        ),
        pytest.param(
            [Bucket("a", 0, 5), Bucket("b", 5, None)], "must start at 6", id="overlap"
        ),
        pytest.param(
            [Bucket("a", 0, None), Bucket("b", 1, None)], "only the last", id="open in middle"
        ),
        pytest.param([Bucket("a", 0, 0), Bucket("b", 1, 30)], "open-ended", id="closed last"),
        pytest.param(
            [Bucket("a", 0, 3), Bucket("b", 4, 2), Bucket("c", 3, None)], "ends before",
            id="backwards",
        ),
        pytest.param([Bucket("a", 0, 0), Bucket("a", 1, None)], "unique", id="same name"),
    ],
)
def test_buckets_that_miss_or_repeat_a_day_are_refused(
    buckets: list[Bucket], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        validate_buckets(buckets)


def test_bucket_for_refuses_invalid_buckets() -> None:
    with pytest.raises(ValueError):
        bucket_for(5, [Bucket("a", 0, 0), Bucket("b", 2, None)])


@given(st.integers(min_value=0, max_value=100_000))
def test_every_dpd_falls_in_exactly_one_default_bucket(dpd: int) -> None:
    holding = [
        b for b in DEFAULT_BUCKETS
        if b.min_days <= dpd and (b.max_days is None or dpd <= b.max_days)
    ]
    assert len(holding) == 1
    assert bucket_for(dpd) == holding[0].name


# penalty_for_days -------------------------------------------------------------------------

HALF_PERMILLE = D("0.0005")  # 0.05% a day


def test_penalty_is_simple_interest_for_all_the_days() -> None:
    # 1,000.00 x 0.05% x 10 days = 5.00, no penalty on penalty.
    penalty = penalty_for_days(cny("1000"), 10, HALF_PERMILLE, cny("500"), Money.zero())
    assert penalty == cny("5.00")


def test_penalty_is_rounded_once_for_the_whole_period() -> None:
    # 333.33 x 0.05% = 0.166665 a day: rounded daily that is 0.17 x 3 = 0.51; the whole period
    # is 0.499995 -> 0.50.
    penalty = penalty_for_days(cny("333.33"), 3, HALF_PERMILLE, cny("500"), Money.zero())
    assert penalty == cny("0.50")


def test_penalty_rounds_half_up_with_the_currency_rule() -> None:
    # 10.00 x 0.05% x 1 = 0.005 -> 0.01
    assert penalty_for_days(cny("10"), 1, HALF_PERMILLE, cny("1"), Money.zero()) == cny("0.01")


def test_the_cap_is_reached_mid_period_so_only_the_room_left_is_charged() -> None:
    # 30 days would be 15.00, but 8.00 was charged already and the cap is 20.00.
    penalty = penalty_for_days(cny("1000"), 30, HALF_PERMILLE, cny("20"), cny("8"))
    assert penalty == cny("12.00")


@pytest.mark.parametrize(
    ("amount", "days", "rate", "cap", "already"),
    [
        pytest.param("0", 30, HALF_PERMILLE, "20", "0", id="zero amount"),
        pytest.param("1000", 0, HALF_PERMILLE, "20", "0", id="zero days"),
        pytest.param("1000", 30, D(0), "20", "0", id="zero rate"),
        pytest.param("1000", 30, HALF_PERMILLE, "20", "20", id="cap already reached"),
        pytest.param("1000", 30, HALF_PERMILLE, "20", "25", id="charged above a lowered cap"),
        pytest.param("1000", 30, HALF_PERMILLE, "0", "0", id="zero cap"),
    ],
)
def test_no_penalty_is_charged_when_nothing_is_owed_or_the_cap_is_reached(
    amount: str, days: int, rate: Decimal, cap: str, already: str
) -> None:
    assert penalty_for_days(cny(amount), days, rate, cny(cap), cny(already)) == Money.zero()


def test_penalty_keeps_the_currency_scale() -> None:
    jpy = Currency("JPY", scale=0)
    amount, cap = Money.of("1000", jpy), Money.of("100", jpy)
    penalty = penalty_for_days(amount, 3, HALF_PERMILLE, cap, Money.zero(jpy))
    assert penalty == Money.of("2", jpy)  # 1.5 rounded half-up once


@pytest.mark.parametrize(
    ("days", "rate", "amount"),
    [(-1, HALF_PERMILLE, "1000"), (1, D("-0.0005"), "1000"), (1, HALF_PERMILLE, "-1")],
    ids=["negative days", "negative rate", "negative amount"],
)
def test_negative_inputs_are_refused(days: int, rate: Decimal, amount: str) -> None:
    with pytest.raises(ValueError):
        penalty_for_days(cny(amount), days, rate, cny("20"), Money.zero())


def test_a_float_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="Decimal"):
        penalty_for_days(cny("1000"), 1, 0.0005, cny("20"), Money.zero())  # type: ignore[arg-type]


def test_currencies_do_not_mix_in_a_penalty() -> None:
    usd = Currency("USD")
    with pytest.raises(CurrencyMismatch):
        penalty_for_days(cny("1000"), 1, HALF_PERMILLE, Money.of("20", usd), Money.zero(usd))


money = st.decimals(min_value=0, max_value=D("1000000"), places=2).map(Money.of)


@given(
    amount=money,
    days=st.integers(min_value=0, max_value=3650),
    rate=st.decimals(min_value=0, max_value=D("0.01"), places=6),
    cap=money,
    already=money,
)
def test_penalty_never_takes_the_total_above_the_cap_and_is_never_negative(
    amount: Money, days: int, rate: Decimal, cap: Money, already: Money
) -> None:
    penalty = penalty_for_days(amount, days, rate, cap, already)
    assert penalty >= Money.zero()
    assert penalty <= Money.rounded(amount.amount * rate * days)
    if already <= cap:
        assert already + penalty <= cap
    else:
        assert penalty.is_zero()


# quiet hours ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "quiet"),
    [
        pytest.param(shanghai(2024, 5, 10, 20, 59, 59), False, id="just before start"),
        pytest.param(shanghai(2024, 5, 10, 21, 0), True, id="exactly at start"),
        pytest.param(shanghai(2024, 5, 10, 23, 59), True, id="before midnight"),
        pytest.param(shanghai(2024, 5, 11, 0, 0), True, id="midnight"),
        pytest.param(shanghai(2024, 5, 11, 7, 59, 59), True, id="just before end"),
        pytest.param(shanghai(2024, 5, 11, 8, 0), False, id="exactly at end"),
        pytest.param(shanghai(2024, 5, 11, 12, 0), False, id="midday"),
        # 13:30 UTC is 21:30 in Shanghai: the window is read on local clocks.
        pytest.param(datetime(2024, 5, 10, 13, 30, tzinfo=UTC), True, id="utc moment, local"),
        pytest.param(datetime(2024, 5, 10, 0, 30, tzinfo=UTC), False, id="utc 00:30 is 08:30"),
    ],
)
def test_a_window_crossing_midnight_is_quiet_from_start_until_end(
    moment: datetime, quiet: bool
) -> None:
    assert in_quiet_hours(moment, SHANGHAI, NIGHT_START, NIGHT_END) is quiet


@pytest.mark.parametrize(
    ("moment", "quiet"),
    [
        (shanghai(2024, 5, 10, 11, 59), False),
        (shanghai(2024, 5, 10, 12, 0), True),
        (shanghai(2024, 5, 10, 13, 59), True),
        (shanghai(2024, 5, 10, 14, 0), False),
        (shanghai(2024, 5, 10, 23, 0), False),
    ],
)
def test_a_window_within_one_day_is_quiet_only_inside_it(moment: datetime, quiet: bool) -> None:
    assert in_quiet_hours(moment, SHANGHAI, LUNCH_START, LUNCH_END) is quiet


def test_an_empty_window_is_never_quiet() -> None:
    assert not in_quiet_hours(shanghai(2024, 5, 10, 9, 0), SHANGHAI, time(9), time(9))


def test_naive_moments_and_aware_window_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        in_quiet_hours(datetime(2024, 5, 10, 22, 0), SHANGHAI, NIGHT_START, NIGHT_END)
    with pytest.raises(ValueError, match="wall-clock"):
        in_quiet_hours(
            shanghai(2024, 5, 10, 22, 0), SHANGHAI, time(21, tzinfo=UTC), NIGHT_END
        )


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        pytest.param(
            shanghai(2024, 5, 10, 20, 0), datetime(2024, 5, 10, 12, 0, tzinfo=UTC),
            id="outside: the moment itself",
        ),
        pytest.param(
            shanghai(2024, 5, 10, 21, 0), datetime(2024, 5, 11, 0, 0, tzinfo=UTC),
            id="at start: 08:00 next morning",
        ),
        pytest.param(
            shanghai(2024, 5, 10, 23, 30), datetime(2024, 5, 11, 0, 0, tzinfo=UTC),
            id="evening: 08:00 next morning",
        ),
        pytest.param(
            shanghai(2024, 5, 11, 3, 0), datetime(2024, 5, 11, 0, 0, tzinfo=UTC),
            id="small hours: 08:00 the same morning",
        ),
        pytest.param(
            shanghai(2024, 5, 11, 8, 0), datetime(2024, 5, 11, 0, 0, tzinfo=UTC),
            id="at end: allowed now",
        ),
        pytest.param(
            shanghai(2024, 2, 29, 22, 0), datetime(2024, 3, 1, 0, 0, tzinfo=UTC),
            id="across a month end",
        ),
        pytest.param(
            shanghai(2024, 12, 31, 22, 0), datetime(2025, 1, 1, 0, 0, tzinfo=UTC),
            id="across new year",
        ),
    ],
)
def test_next_allowed_waits_for_the_end_of_a_night_window(
    moment: datetime, allowed: datetime
) -> None:
    result = next_allowed(moment, SHANGHAI, NIGHT_START, NIGHT_END)
    assert result == allowed
    assert result.tzinfo is UTC


def test_next_allowed_waits_for_the_end_of_a_same_day_window() -> None:
    result = next_allowed(shanghai(2024, 5, 10, 12, 30), SHANGHAI, LUNCH_START, LUNCH_END)
    assert result == datetime(2024, 5, 10, 6, 0, tzinfo=UTC)


clock_times = st.times().map(lambda t: t.replace(microsecond=0))


@given(
    moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                        timezones=st.just(UTC)),
    start=clock_times,
    end=clock_times,
)
def test_next_allowed_is_never_earlier_and_never_quiet(
    moment: datetime, start: time, end: time
) -> None:
    allowed = next_allowed(moment, SHANGHAI, start, end)
    assert allowed >= moment
    assert allowed - moment <= timedelta(days=1)
    assert not in_quiet_hours(allowed, SHANGHAI, start, end)
    assert (allowed == moment) is not in_quiet_hours(moment, SHANGHAI, start, end)
