"""Money is exact: no floats, no silent rounding, no mixed currencies, no cent lost in a split."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain.errors import CurrencyMismatch, DomainError, InvalidAmount
from core.domain.money import CNY, Currency, Money, split

USD = Currency("USD")
JPY = Currency("JPY", scale=0)


def cny(text: str) -> Money:
    return Money.of(text)


def amounts(parts: list[Money]) -> list[str]:
    return [str(p.amount) for p in parts]


# Construction ------------------------------------------------------------------------------


def test_money_is_built_exactly_from_a_string_an_int_or_a_decimal() -> None:
    assert Money.of("12.5").amount == Decimal("12.50")
    assert Money.of(7).amount == Decimal("7.00")
    assert Money.of(Decimal("0.01")).amount == Decimal("0.01")
    assert Money.of("12.5").currency == CNY


def test_money_keeps_the_currency_scale_so_equal_amounts_compare_equal() -> None:
    assert Money.of("3") == Money.of("3.00") == Money.of("3.000")
    assert str(Money.of("3").amount) == "3.00"


@pytest.mark.parametrize("value", [0.1, 1.0, True, False], ids=repr)
def test_money_refuses_floats_and_bools(value: object) -> None:
    with pytest.raises(InvalidAmount):
        Money.of(value)  # type: ignore[arg-type]


def test_money_refuses_an_amount_that_is_not_a_decimal() -> None:
    with pytest.raises(InvalidAmount):
        Money(100)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        Money("100.00")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["1.005", "-0.001", "0.000001"])
def test_money_refuses_more_decimals_than_the_currency_scale(value: str) -> None:
    with pytest.raises(InvalidAmount, match="more than 2 decimals"):
        Money.of(value)


def test_a_currency_without_minor_units_refuses_any_fraction() -> None:
    assert Money.of("1500", JPY).amount == Decimal("1500")
    with pytest.raises(InvalidAmount):
        Money.of("1500.5", JPY)


@pytest.mark.parametrize("value", ["abc", "", "1,000.00", "NaN", "Infinity", "-Infinity"])
def test_money_refuses_text_that_is_not_a_finite_number(value: str) -> None:
    with pytest.raises(InvalidAmount):
        Money.of(value)


def test_money_errors_belong_to_the_domain_errors_with_a_stable_code() -> None:
    with pytest.raises(DomainError) as caught:
        Money.of(0.5)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_amount"


# Rounding ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("computed", "expected"),
    [
        ("2.675", "2.68"),  # a float would make this 2.67
        ("2.665", "2.67"),  # half-even would make this 2.66
        ("0.005", "0.01"),
        ("0.004999", "0.00"),
        ("-2.675", "-2.68"),  # half away from zero on both sides
        ("10", "10.00"),
    ],
)
def test_rounded_money_rounds_half_up_at_two_decimals(computed: str, expected: str) -> None:
    assert Money.rounded(computed).amount == Decimal(expected)


def test_rounded_money_follows_the_currency_rounding_rule() -> None:
    bankers = Currency("CNY", rounding=ROUND_HALF_EVEN)
    assert Money.rounded("2.665", bankers).amount == Decimal("2.66")
    assert Money.rounded("2.675", bankers).amount == Decimal("2.68")


def test_rounded_money_still_refuses_floats() -> None:
    with pytest.raises(InvalidAmount):
        Money.rounded(2.675)  # type: ignore[arg-type]


def test_multiplying_by_a_rate_rounds_half_up() -> None:
    # 100.00 at a daily rate of 0.125 % is 0.125, which rounds up to 0.13
    assert cny("100.00").times(Decimal("0.00125")) == cny("0.13")
    assert cny("19.99").times(3) == cny("59.97")


# Arithmetic --------------------------------------------------------------------------------


def test_adding_and_subtracting_money_of_one_currency_is_exact() -> None:
    assert cny("0.10") + cny("0.20") == cny("0.30")
    assert cny("5.00") - cny("7.25") == cny("-2.25")
    assert -cny("3.50") == cny("-3.50")
    assert abs(cny("-3.50")) == cny("3.50")


def test_money_of_one_currency_compares_by_amount() -> None:
    assert cny("9.99") < cny("10.00") <= cny("10.00")
    assert cny("10.01") > cny("10.00") >= cny("10.00")
    assert cny("0.00").is_zero()
    assert cny("0.01").is_positive()
    assert not cny("-0.01").is_positive()


@pytest.mark.parametrize(
    "combine",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
    ids=["add", "subtract", "lt", "le", "gt", "ge"],
)
def test_money_refuses_to_mix_currencies(combine) -> None:
    with pytest.raises(CurrencyMismatch, match="CNY and USD"):
        combine(cny("1.00"), Money.of("1.00", USD))


def test_money_refuses_to_be_added_to_a_bare_number() -> None:
    with pytest.raises(TypeError):
        cny("1.00") + Decimal("1.00")  # type: ignore[operator]


def test_money_counts_minor_units_and_prints_with_thousands_separators() -> None:
    assert cny("1234.56").minor_units == 123456
    assert cny("-0.07").minor_units == -7
    assert str(cny("1234567.5")) == "1,234,567.50 CNY"


# Splitting: named examples -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        ("100.00", [1, 1, 1], ["33.34", "33.33", "33.33"]),
        ("-100.00", [1, 1, 1], ["-33.34", "-33.33", "-33.33"]),
        ("0.02", [1, 1, 1], ["0.01", "0.01", "0.00"]),
        ("10.00", [1, 2], ["3.33", "6.67"]),
        ("1000.00", [500, 300, 200], ["500.00", "300.00", "200.00"]),
        ("0.01", [0, 1, 1], ["0.00", "0.01", "0.00"]),
        ("0.00", [3, 1], ["0.00", "0.00"]),
        ("99.99", [Decimal("0.5"), Decimal("0.25"), Decimal("0.25")], ["49.99", "25.00", "25.00"]),
    ],
    ids=[
        "thirds-extra-cent-to-first",
        "negative-thirds",
        "fewer-cents-than-parts",
        "larger-remainder-wins",
        "lender-shares",
        "zero-weight-gets-nothing",
        "zero-total",
        "decimal-weights",
    ],
)
def test_split_examples(total: str, weights: list, expected: list[str]) -> None:
    assert amounts(split(cny(total), weights)) == expected


def test_split_keeps_the_currency_of_the_total() -> None:
    parts = split(Money.of("1001", JPY), [1, 1])
    assert [p.currency for p in parts] == [JPY, JPY]
    assert amounts(parts) == ["501", "500"]


@pytest.mark.parametrize(
    "weights",
    [[], [1, -1], [0, 0, 0], [Decimal("-0.5")], [0.5, 0.5]],
    ids=["no-parts", "negative-weight", "all-zero", "negative-decimal", "float-weights"],
)
def test_split_refuses_weights_it_cannot_divide_by(weights: list) -> None:
    with pytest.raises(InvalidAmount):
        split(cny("100.00"), weights)


# Splitting: properties ---------------------------------------------------------------------

totals = st.integers(min_value=-(10**14), max_value=10**14).map(
    lambda units: Money(Decimal(units).scaleb(-2))
)
int_weights = st.one_of(st.just(0), st.integers(min_value=1, max_value=10**9))
decimal_weights = st.decimals(
    min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False
)
weight_lists = st.lists(st.one_of(int_weights, decimal_weights), min_size=1, max_size=40).filter(
    lambda ws: any(w > 0 for w in ws)
)


@given(total=totals, weights=weight_lists)
def test_split_parts_always_add_up_to_the_total(total: Money, weights: list) -> None:
    parts = split(total, weights)
    assert len(parts) == len(weights)
    assert sum((p.amount for p in parts), Decimal(0)) == total.amount


@given(total=totals, weights=weight_lists)
def test_split_parts_are_within_one_minor_unit_of_their_exact_share(
    total: Money, weights: list
) -> None:
    weight_sum = sum(Fraction(w) for w in weights)
    for part, weight in zip(split(total, weights), weights, strict=True):
        exact = Fraction(total.minor_units) * Fraction(weight) / weight_sum
        assert abs(part.minor_units - exact) < 1


@given(total=totals, weights=weight_lists)
def test_split_gives_nothing_to_zero_weights_and_never_flips_the_sign(
    total: Money, weights: list
) -> None:
    for part, weight in zip(split(total, weights), weights, strict=True):
        if weight == 0:
            assert part.is_zero()
        assert part.amount * total.amount >= 0


@given(total=totals, weights=weight_lists)
def test_split_is_deterministic(total: Money, weights: list) -> None:
    assert split(total, weights) == split(total, list(weights))


@given(total=totals, weights=weight_lists)
def test_splitting_a_negative_total_mirrors_splitting_the_positive_one(
    total: Money, weights: list
) -> None:
    assert split(-total, weights) == [-p for p in split(total, weights)]


@given(units=st.integers(min_value=0, max_value=10**6), count=st.integers(1, 50))
def test_equal_weights_give_parts_that_differ_by_at_most_one_cent_larger_first(
    units: int, count: int
) -> None:
    parts = [p.minor_units for p in split(Money(Decimal(units).scaleb(-2)), [1] * count)]
    assert max(parts) - min(parts) <= 1
    assert parts == sorted(parts, reverse=True)


def test_an_amount_too_large_for_exact_arithmetic_is_an_invalid_amount() -> None:
    with pytest.raises(InvalidAmount):
        Money.of("1e26")
    with pytest.raises(InvalidAmount):
        Money.rounded("1e40")


def test_a_negated_zero_is_shown_without_a_minus_sign() -> None:
    assert str(-Money.zero()) == "0.00 CNY"
    assert str(Money.of("-0")) == "0.00 CNY"
