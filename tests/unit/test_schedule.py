"""Repayment schedules repay exactly what was lent, and investors' shares add up to the borrower's.

Expected figures are worked by hand (see docs/schedules.md): 10,000.00 at 12% is a monthly rate of
exactly 1%, so every interest is remaining / 100 rounded half-up.
"""

from __future__ import annotations

import itertools
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain.money import Currency, Money
from core.domain.schedule import (
    METHODS,
    Installment,
    Method,
    add_months,
    build_schedule,
    investor_schedules,
)

START = date(2024, 1, 31)
TEN_THOUSAND = Money.of("10000")
TWELVE_PERCENT = Decimal("0.12")


def cny(text: str) -> Money:
    return Money.of(text)


def rows(schedule: list[Installment]) -> list[tuple[str, str, str, str]]:
    """(principal, interest, payment, remaining) of each installment, as plain strings."""
    return [
        (str(i.principal.amount), str(i.interest.amount), str(i.payment.amount),
         str(i.remaining.amount))
        for i in schedule
    ]


def principals(schedule: list[Installment]) -> list[str]:
    return [str(i.principal.amount) for i in schedule]


def total(parts: list[Money]) -> Money:
    return sum(parts, Money.zero())


# add_months ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 1, 15), 1, date(2024, 2, 15)),
        (date(2024, 1, 15), 0, date(2024, 1, 15)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),  # leap year
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 1, 31), 2, date(2024, 3, 31)),  # from the original day, not from Feb 29
        (date(2024, 1, 31), 3, date(2024, 4, 30)),
        (date(2024, 8, 31), 1, date(2024, 9, 30)),
        (date(2023, 12, 15), 1, date(2024, 1, 15)),  # December rolls into next year
        (date(2023, 12, 31), 2, date(2024, 2, 29)),
        (date(2023, 11, 30), 14, date(2025, 1, 30)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2000, 1, 31), 1, date(2000, 2, 29)),  # divisible by 400: leap
        (date(2100, 1, 31), 1, date(2100, 2, 28)),  # divisible by 100: not leap
        (date(2024, 1, 31), 360, date(2054, 1, 31)),
    ],
)
def test_add_months_gives_the_same_day_clamped_to_the_month_end(
    start: date, months: int, expected: date
) -> None:
    assert add_months(start, months) == expected


# Worked example: 10,000.00 at 12% over 3 months, disbursed 2024-01-31 -----------------------

WORKED_EXAMPLE: dict[Method, list[tuple[str, str, str, str]]] = {
    "equal_installment": [
        ("3300.22", "100.00", "3400.22", "6699.78"),
        ("3333.22", "67.00", "3400.22", "3366.56"),
        ("3366.56", "33.67", "3400.23", "0.00"),
    ],
    "equal_principal": [
        ("3333.33", "100.00", "3433.33", "6666.67"),
        ("3333.33", "66.67", "3400.00", "3333.34"),
        ("3333.34", "33.33", "3366.67", "0.00"),
    ],
    "interest_first": [
        ("0.00", "100.00", "100.00", "10000.00"),
        ("0.00", "100.00", "100.00", "10000.00"),
        ("10000.00", "100.00", "10100.00", "0.00"),
    ],
    "bullet": [
        ("10000.00", "300.00", "10300.00", "0.00"),
    ],
}


@pytest.mark.parametrize("method", METHODS)
def test_the_worked_example_of_the_docs_holds_for_every_method(method: Method) -> None:
    schedule = build_schedule(TEN_THOUSAND, TWELVE_PERCENT, 3, method, START)
    assert rows(schedule) == WORKED_EXAMPLE[method]
    assert [i.period for i in schedule] == list(range(1, len(schedule) + 1))


def test_installments_fall_due_month_by_month_from_the_disbursement_date() -> None:
    schedule = build_schedule(TEN_THOUSAND, TWELVE_PERCENT, 3, "equal_principal", START)
    assert [i.due_date for i in schedule] == [
        date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)
    ]


def test_a_bullet_loan_is_one_installment_due_at_the_end_of_the_term() -> None:
    (only,) = build_schedule(TEN_THOUSAND, TWELVE_PERCENT, 3, "bullet", START)
    assert only.period == 1
    assert only.due_date == date(2024, 4, 30)


def test_ten_thousand_at_twelve_percent_over_a_year_costs_888_49_a_month() -> None:
    schedule = build_schedule(TEN_THOUSAND, TWELVE_PERCENT, 12, "equal_installment", START)
    assert [str(i.payment.amount) for i in schedule[:11]] == ["888.49"] * 11
    assert rows(schedule)[:2] == [
        ("788.49", "100.00", "888.49", "9211.51"),
        ("796.37", "92.12", "888.49", "8415.14"),  # 9211.51 × 1% = 92.1151
    ]
    # The last installment takes the rounding: all that is owed, plus 1% of it (8.7967).
    assert rows(schedule)[-1] == ("879.67", "8.80", "888.47", "0.00")
    assert str(total([i.interest for i in schedule]).amount) == "661.86"


def test_equal_installment_at_zero_percent_is_an_equal_principal_split() -> None:
    schedule = build_schedule(cny("100"), Decimal(0), 3, "equal_installment", START)
    assert rows(schedule) == [
        ("33.33", "0.00", "33.33", "66.67"),
        ("33.33", "0.00", "33.33", "33.34"),
        ("33.34", "0.00", "33.34", "0.00"),
    ]


@pytest.mark.parametrize("method", ["equal_principal", "equal_installment"])
def test_a_tiny_loan_never_repays_more_principal_than_is_owed(method: Method) -> None:
    # 0.05 / 7 rounds to 0.01, and 6 × 0.01 would overshoot: the sixth period repays nothing.
    schedule = build_schedule(cny("0.05"), Decimal("0.01"), 7, method, START)
    assert principals(schedule) == ["0.01"] * 5 + ["0.00", "0.00"]
    assert [str(i.remaining.amount) for i in schedule][-3:] == ["0.00"] * 3


def test_an_exact_half_cent_of_interest_rounds_up_even_when_the_monthly_rate_never_ends() -> None:
    # 1% / 12 = 0.000833…, but 6.00 × 1% / 12 is exactly 0.005: rounding r first would give 0.00.
    (only,) = build_schedule(cny("6"), Decimal("0.01"), 1, "bullet", START)
    assert only.interest == cny("0.01")


def test_interest_follows_the_rounding_rule_and_scale_of_the_currency() -> None:
    half_even = Currency("CNY", rounding=ROUND_HALF_EVEN)
    (only,) = build_schedule(Money.of("6", half_even), Decimal("0.01"), 1, "bullet", START)
    assert only.interest == Money.zero(half_even)
    yen = Currency("JPY", scale=0)
    (only,) = build_schedule(Money.of("1000", yen), Decimal("0.1"), 1, "bullet", START)
    assert only.interest == Money.of("8", yen)  # 1000 × 10% / 12 = 8.33


@pytest.mark.parametrize(
    ("amount", "rate", "months", "method", "message"),
    [
        (cny("0"), TWELVE_PERCENT, 3, "bullet", "amount"),
        (cny("-100"), TWELVE_PERCENT, 3, "bullet", "amount"),
        (Decimal("100"), TWELVE_PERCENT, 3, "bullet", "amount"),
        (TEN_THOUSAND, Decimal("-0.01"), 3, "bullet", "rate"),
        (TEN_THOUSAND, Decimal(1), 3, "bullet", "rate"),
        (TEN_THOUSAND, Decimal("NaN"), 3, "bullet", "rate"),
        (TEN_THOUSAND, 0.12, 3, "bullet", "rate"),
        (TEN_THOUSAND, TWELVE_PERCENT, 0, "bullet", "term"),
        (TEN_THOUSAND, TWELVE_PERCENT, 361, "bullet", "term"),
        (TEN_THOUSAND, TWELVE_PERCENT, True, "bullet", "term"),
        (TEN_THOUSAND, TWELVE_PERCENT, 1.5, "bullet", "term"),
        (TEN_THOUSAND, TWELVE_PERCENT, 3, "balloon", "method"),
    ],
)
def test_a_schedule_refuses_invalid_terms_with_a_clear_message(
    amount: object, rate: object, months: object, method: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_schedule(amount, rate, months, method, START)  # type: ignore[arg-type]


def test_the_longest_term_is_thirty_years() -> None:
    schedule = build_schedule(TEN_THOUSAND, TWELVE_PERCENT, 360, "equal_installment", START)
    assert len(schedule) == 360
    assert schedule[-1].due_date == date(2054, 1, 31)


# Investors ----------------------------------------------------------------------------------


def test_investors_share_each_installment_by_their_bids() -> None:
    borrower = build_schedule(TEN_THOUSAND, TWELVE_PERCENT, 3, "equal_installment", START)
    first, second, third = investor_schedules(borrower, [cny("5000"), cny("3000"), cny("2000")])
    # Cumulative principal 3300.22 / 6633.44 / 10000.00 split 50:30:20, largest remainder.
    assert rows(first) == [
        ("1650.11", "50.00", "1700.11", "3349.89"),
        ("1666.61", "33.50", "1700.11", "1683.28"),
        ("1683.28", "16.84", "1700.12", "0.00"),  # 33.67 × 50% = 16.835, the spare cent
    ]
    assert rows(second) == [
        ("990.07", "30.00", "1020.07", "2009.93"),
        ("999.96", "20.10", "1020.06", "1009.97"),
        ("1009.97", "10.10", "1020.07", "0.00"),
    ]
    assert rows(third) == [
        ("660.04", "20.00", "680.04", "1339.96"),
        ("666.65", "13.40", "680.05", "673.31"),
        ("673.31", "6.73", "680.04", "0.00"),
    ]
    assert [i.due_date for i in first] == [i.due_date for i in borrower]


def test_a_single_investor_gets_the_borrowers_schedule() -> None:
    borrower = build_schedule(TEN_THOUSAND, TWELVE_PERCENT, 12, "equal_principal", START)
    assert investor_schedules(borrower, [TEN_THOUSAND]) == [borrower]


@pytest.mark.parametrize(
    ("bids", "message"),
    [
        ([], "at least one bid"),
        ([cny("5000"), cny("4999.99")], "add up"),
        ([cny("5000"), cny("5000.01")], "add up"),
        ([cny("10000.00"), cny("0")], "positive"),
        ([cny("10100.00"), cny("-100")], "positive"),
        ([Money.of("10000", Currency("USD"))], "positive amount of CNY"),
    ],
)
def test_bids_must_be_positive_and_add_up_to_the_loan(bids: list[Money], message: str) -> None:
    borrower = build_schedule(TEN_THOUSAND, TWELVE_PERCENT, 3, "bullet", START)
    with pytest.raises(ValueError, match=message):
        investor_schedules(borrower, bids)


def test_a_small_bid_never_gets_a_negative_principal_part() -> None:
    # 0.45 over 9 months repays 0.05 a month. Differencing cumulative splits 30:1:14 once gave
    # the 0.01 bid +0.01 in period 4 and -0.01 in period 5; splitting each period's principal by
    # what each investor is still owed cannot go below zero and still returns the bid.
    borrower = build_schedule(cny("0.45"), TWELVE_PERCENT, 9, "equal_principal", START)
    _, small, _ = investor_schedules(borrower, [cny("0.30"), cny("0.01"), cny("0.14")])
    assert all(not i.principal.amount < 0 for i in small)
    assert total([i.principal for i in small]) == cny("0.01")


# Properties ---------------------------------------------------------------------------------

amounts = st.integers(1, 1_000_000_000).map(lambda cents: Money(Decimal(cents).scaleb(-2)))
rates = st.decimals(min_value=0, max_value=Decimal("0.36"), places=6)
terms = st.integers(1, 60)
methods = st.sampled_from(METHODS)
starts = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


@given(amount=amounts, rate=rates, months=terms, method=methods, start=starts)
def test_every_schedule_repays_exactly_the_amount_lent(
    amount: Money, rate: Decimal, months: int, method: Method, start: date
) -> None:
    schedule = build_schedule(amount, rate, months, method, start)
    assert len(schedule) == (1 if method == "bullet" else months)
    assert total([i.principal for i in schedule]) == amount
    owed = amount
    for installment in schedule:
        owed = owed - installment.principal
        assert installment.remaining == owed
        assert not installment.remaining.amount < 0
        assert not installment.principal.amount < 0
        assert not installment.interest.amount < 0
    assert schedule[-1].remaining.is_zero()
    due = [i.due_date for i in schedule]
    assert all(earlier < later for earlier, later in itertools.pairwise(due))
    assert due[-1] == add_months(start, months)


cents_bids = st.one_of(st.integers(1, 100), st.integers(1, 20_000_000))
hundreds_bids = st.integers(1, 2_000).map(lambda hundreds: hundreds * 10_000)
bid_lists = st.one_of(
    st.lists(hundreds_bids, min_size=1, max_size=50),
    st.lists(cents_bids, min_size=1, max_size=50),
).map(lambda cents: [Money(Decimal(c).scaleb(-2)) for c in cents])


@settings(deadline=None)
@given(bids=bid_lists, rate=rates, months=terms, method=methods)
def test_investor_parts_add_up_to_each_installment_and_to_each_bid(
    bids: list[Money], rate: Decimal, months: int, method: Method
) -> None:
    amount = total(bids)
    borrower = build_schedule(amount, rate, months, method, START)
    schedules = investor_schedules(borrower, bids)
    assert len(schedules) == len(bids)
    for k, installment in enumerate(borrower):
        parts = [schedule[k] for schedule in schedules]
        assert total([p.principal for p in parts]) == installment.principal
        assert total([p.interest for p in parts]) == installment.interest
        assert all(p.due_date == installment.due_date for p in parts)
        assert all(not p.interest.amount < 0 for p in parts)
    for bid, schedule in zip(bids, schedules, strict=True):
        assert total([i.principal for i in schedule]) == bid
        owed = bid
        for installment in schedule:
            owed = owed - installment.principal
            assert installment.remaining == owed
            assert not installment.remaining.amount < 0
        assert schedule[-1].remaining.is_zero()
    for schedule in schedules:
        assert all(not i.principal.amount < 0 for i in schedule)
