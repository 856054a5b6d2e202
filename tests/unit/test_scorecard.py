"""The credit policy: applicants scored into points, PD, grade and risk level, priced by grade and
term within the cap, pre-decided, and a data file that breaks a rule refused naming the problem."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain.scorecard import (
    DEFAULT_PATH,
    EMPLOYMENTS,
    PRICED_GRADES,
    Applicant,
    CreditPolicy,
    Score,
)


@pytest.fixture(scope="module")
def policy() -> CreditPolicy:
    return CreditPolicy.load()


# A salaried 32-year-old: 9,000 a month, 1,500 of existing payments, asking 20,000 over 12 months.
TYPICAL = Applicant(
    age=32,
    monthly_income=Decimal("9000"),
    monthly_debt_payments=Decimal("1500"),
    other_platform_debt=Decimal("0"),
    employment="salaried",
    years_at_job=Decimal("2"),
    secured=False,
    documents=2,
    amount=Decimal("20000"),
    term_months=12,
    new_installment=Decimal("1800"),
)
STRONG = replace(
    TYPICAL,
    age=38,
    monthly_income=Decimal("15000"),
    monthly_debt_payments=Decimal("0"),
    employment="civil_servant",
    years_at_job=Decimal("6"),
    amount=Decimal("30000"),
    new_installment=Decimal("2700"),
)
WEAK = replace(
    TYPICAL,
    age=21,
    monthly_income=Decimal("2800"),
    monthly_debt_payments=Decimal("1200"),
    other_platform_debt=Decimal("40000"),
    employment="freelance",
    years_at_job=Decimal("0.3"),
    documents=1,
    new_installment=Decimal("1900"),
)


def money(maximum: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=0, max_value=maximum, places=2)


applicants = st.builds(
    Applicant,
    age=st.integers(18, 75),
    monthly_income=money(100_000),
    monthly_debt_payments=money(30_000),
    other_platform_debt=money(500_000),
    employment=st.sampled_from(EMPLOYMENTS),
    years_at_job=st.decimals(min_value=0, max_value=40, places=1),
    secured=st.booleans(),
    documents=st.integers(0, 5),
    amount=money(200_000),
    term_months=st.sampled_from([1, 3, 6, 12, 24, 36]),
    new_installment=money(20_000),
)


# The shipped policy ------------------------------------------------------------------------------


def test_the_shipped_policy_loads_with_its_grades_risk_levels_and_cap(
    policy: CreditPolicy,
) -> None:
    assert policy.version
    assert policy.annual_rate_cap == Decimal("0.24")
    assert dict(policy.min_scores) == {"AA": 720, "A": 680, "B": 640, "C": 600, "D": 560, "E": 520}
    assert dict(policy.risk_levels) == {
        "AA": "R1", "A": "R2", "B": "R2", "C": "R3", "D": "R4", "E": "R5", "HR": "R5",
    }  # fmt: skip
    assert policy.term_buckets == (3, 6, 12, 24, 36)


def test_every_priced_grade_has_a_rate_within_the_cap_for_every_term_bucket(
    policy: CreditPolicy,
) -> None:
    for grade in PRICED_GRADES:
        for months in policy.term_buckets:
            assert 0 <= policy.rate(grade, months) <= policy.annual_rate_cap


# Scoring -----------------------------------------------------------------------------------------


def test_a_strong_applicant_is_graded_aa_with_a_low_pd_and_approved(policy: CreditPolicy) -> None:
    score = policy.score(STRONG)
    assert (score.points, score.grade, score.risk_level) == (745, "AA", "R1")
    assert score.pd == Decimal("0.0016")
    assert policy.decision(score, STRONG.amount) == "approve"


def test_a_weak_applicant_is_graded_hr_and_rejected(policy: CreditPolicy) -> None:
    score = policy.score(WEAK)
    assert (score.points, score.grade, score.risk_level) == (390, "HR", "R5")
    assert score.pd > Decimal("0.2")
    assert policy.decision(score, WEAK.amount) == "reject"


def test_a_typical_salaried_applicant_is_graded_b_and_sent_to_review(
    policy: CreditPolicy,
) -> None:
    score = policy.score(TYPICAL)
    assert (score.points, score.grade, score.risk_level) == (670, "B", "R2")
    assert policy.decision(score, TYPICAL.amount) == "review"


def test_the_points_are_the_offset_plus_each_attributes_bin(policy: CreditPolicy) -> None:
    # age 55, income 45 (5,000-8,000), DTI 50 (0.35-0.50), salaried 60, no other debt 50,
    # loan/income 40 (0.10-0.25), unsecured 0, years 25 (1-3), two documents 30: 355 + 300.
    applicant = replace(TYPICAL, monthly_income=Decimal("7000"), new_installment=Decimal("1000"))
    assert policy.debt_to_income(applicant) == Decimal("0.3571")
    assert policy.score(applicant).points == 300 + 355


def test_reasons_name_the_attributes_that_cost_the_most_points(policy: CreditPolicy) -> None:
    # Against their best bins: DTI loses 40, unsecured 35, income 25, years at job 15.
    assert policy.score(TYPICAL).reasons == ("debt_to_income", "secured", "monthly_income")
    assert policy.score(WEAK).reasons == ("debt_to_income", "monthly_income", "employment")


def test_an_applicant_in_every_best_bin_scores_the_most_and_has_no_reasons(
    policy: CreditPolicy,
) -> None:
    best = replace(STRONG, monthly_income=Decimal("60000"), secured=True, amount=Decimal("5000"))
    score = policy.score(best)
    assert (score.points, score.reasons) == (805, ())


def test_debt_to_income_counts_the_new_installment(policy: CreditPolicy) -> None:
    assert policy.debt_to_income(TYPICAL) == Decimal("0.3667")  # (1,500 + 1,800) / 9,000
    assert policy.loan_to_income(TYPICAL) == Decimal("0.1852")  # 20,000 / 108,000


def test_an_applicant_without_income_is_scored_in_the_worst_ratio_bins(
    policy: CreditPolicy,
) -> None:
    jobless = replace(WEAK, monthly_income=Decimal("0"), employment="unemployed")
    assert policy.debt_to_income(jobless) == Decimal("Infinity")
    assert policy.score(jobless).grade == "HR"


@given(applicant=applicants, raise_by=money(100_000))
def test_raising_income_never_lowers_the_score(
    policy: CreditPolicy, applicant: Applicant, raise_by: Decimal
) -> None:
    richer = replace(applicant, monthly_income=applicant.monthly_income + raise_by)
    assert policy.score(richer).points >= policy.score(applicant).points


@given(applicant=applicants, raise_by=money(30_000))
def test_raising_debt_to_income_never_raises_the_score(
    policy: CreditPolicy, applicant: Applicant, raise_by: Decimal
) -> None:
    indebted = replace(applicant, monthly_debt_payments=applicant.monthly_debt_payments + raise_by)
    assert policy.debt_to_income(indebted) >= policy.debt_to_income(applicant)
    assert policy.score(indebted).points <= policy.score(applicant).points


@given(applicant=applicants)
def test_a_scores_pd_grade_and_risk_level_follow_from_its_points(
    policy: CreditPolicy, applicant: Applicant
) -> None:
    score = policy.score(applicant)
    assert score.pd == policy.pd_for(score.points)
    assert score.grade == policy.grade_for(score.points)
    assert score.risk_level == policy.risk_levels[score.grade]
    assert len(score.reasons) <= 3


def test_an_unknown_employment_is_refused(policy: CreditPolicy) -> None:
    with pytest.raises(ValueError, match="employment: unknown 'student'"):
        policy.score(replace(TYPICAL, employment="student"))


@pytest.mark.parametrize(
    ("field", "value"),
    [("monthly_income", 9000.0), ("amount", 20000), ("other_platform_debt", Decimal("-1")),
     ("age", 32.0), ("term_months", 0), ("secured", 1)],
)  # fmt: skip
def test_an_applicant_with_a_float_a_negative_or_a_wrong_type_is_refused(
    field: str, value: object
) -> None:
    with pytest.raises(ValueError, match=field):
        replace(TYPICAL, **{field: value})


# Odds, PD and grades -----------------------------------------------------------------------------


def test_at_base_points_the_odds_are_the_base_odds_and_pd_is_one_in_fifty_one(
    policy: CreditPolicy,
) -> None:
    assert policy.odds(600) == 50
    assert policy.pd_for(600) == (1 / Decimal(51)).quantize(Decimal("0.0001")) == Decimal("0.0196")


@pytest.mark.parametrize(("points", "odds"), [(520, 12.5), (560, 25), (640, 100), (720, 400)])
def test_every_forty_points_doubles_the_odds(
    policy: CreditPolicy, points: int, odds: float
) -> None:
    assert policy.odds(points).quantize(Decimal("0.000001")) == Decimal(str(odds))


def test_pd_falls_as_points_rise(policy: CreditPolicy) -> None:
    pds = [policy.pd_for(points) for points in range(300, 901)]
    assert all(later <= earlier for earlier, later in pairwise(pds))
    assert all(a > b for a, b in zip(pds[100:420:20], pds[120:440:20], strict=True))
    assert all(isinstance(pd, Decimal) and 0 <= pd <= 1 for pd in pds)


@pytest.mark.parametrize(
    ("points", "grade"),
    [(805, "AA"), (720, "AA"), (719, "A"), (680, "A"), (679, "B"), (640, "B"), (639, "C"),
     (600, "C"), (560, "D"), (559, "E"), (520, "E"), (519, "HR"), (335, "HR")],
)  # fmt: skip
def test_each_grade_starts_at_its_minimum_score(
    policy: CreditPolicy, points: int, grade: str
) -> None:
    assert policy.grade_for(points) == grade


# Pricing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grade", "months", "rate"),
    [("AA", 1, "0.072"), ("AA", 3, "0.072"), ("AA", 4, "0.078"), ("A", 12, "0.10"),
     ("A", 13, "0.11"), ("C", 24, "0.156"), ("E", 36, "0.238")],
)  # fmt: skip
def test_the_rate_is_looked_up_in_the_first_term_bucket_holding_the_term(
    policy: CreditPolicy, grade: str, months: int, rate: str
) -> None:
    assert policy.rate(grade, months) == Decimal(rate)


def test_hr_is_never_priced(policy: CreditPolicy) -> None:
    with pytest.raises(ValueError, match="HR is never priced"):
        policy.rate("HR", 12)


@pytest.mark.parametrize(
    ("grade", "months", "problem"),
    [("AA", 37, "longest term priced is 36"), ("AA", 0, "term_months"), ("Z", 12, "'Z'")],
)
def test_a_term_beyond_the_table_or_an_unknown_grade_has_no_rate(
    policy: CreditPolicy, grade: str, months: int, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        policy.rate(grade, months)


def test_a_worse_grade_never_pays_less_for_the_same_term(policy: CreditPolicy) -> None:
    for months in policy.term_buckets:
        rates = [policy.rate(grade, months) for grade in PRICED_GRADES]
        assert rates == sorted(rates)


# Decisions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("points", "amount", "decision"),
    [(760, "50000", "approve"), (680, "1000", "approve"), (760, "50000.01", "review"),
     (679, "1000", "review"), (520, "1000", "review"), (519, "1000", "reject"),
     (335, "1000", "reject")],
)  # fmt: skip
def test_high_scores_for_small_amounts_are_approved_low_ones_rejected_the_rest_reviewed(
    policy: CreditPolicy, points: int, amount: str, decision: str
) -> None:
    grade = policy.grade_for(points)
    score = Score(points, policy.pd_for(points), grade, policy.risk_levels[grade], ())
    assert policy.decision(score, Decimal(amount)) == decision


def test_an_hr_score_is_rejected_whatever_its_points(policy: CreditPolicy) -> None:
    score = Score(700, Decimal("0.01"), "HR", "R5", ())
    assert policy.decision(score, Decimal("1000")) == "reject"


# A broken data file ------------------------------------------------------------------------------

SHIPPED = DEFAULT_PATH.read_text(encoding="utf-8")


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "credit_policy.toml"
    path.write_text(body, encoding="utf-8")
    return path


def edited(old: str, new: str) -> str:
    assert SHIPPED.count(old) == 1, old
    return SHIPPED.replace(old, new)


def test_a_table_with_a_25_percent_rate_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, edited('36 = "23.8"', '36 = "25"'))
    with pytest.raises(ValueError, match=r"pricing.rates.E.36: 25% is outside 0 .. the 24% cap"):
        CreditPolicy.load(path)


def test_a_rate_exactly_at_the_cap_is_allowed(tmp_path: Path) -> None:
    policy = CreditPolicy.load(write(tmp_path, edited('36 = "23.8"', '36 = "24"')))
    assert policy.rate("E", 36) == Decimal("0.24")


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('3 = "7.2"', '3 = "-0.5"', r"pricing.rates.AA.3: -0.5% is outside"),
        ('annual_rate_cap = "24"', 'annual_rate_cap = "0"', "annual_rate_cap must be"),
        ('E  = { 3 = "17.5"', 'HR = { 3 = "24" }\nE  = { 3 = "17.5"', "HR is never priced"),
        (', 36 = "12.0" }', " }", "pricing.rates.A: missing 36"),
        ('12 = "11.8"', '12 = "9.0"', "B pays 9.0% for 12 months, less than A"),
        ("[3, 6, 12, 24, 36]", "[3, 6, 24, 12, 36]", "term_buckets must be strictly increasing"),
        (
            '{ from = "5000",  below = "8000"',
            '{ from = "5500",  below = "8000"',
            "attributes.monthly_income: gap from 5000 to 5500 before bin 3",
        ),
        (
            '{ from = "0.35", below = "0.50"',
            '{ from = "0.30", below = "0.50"',
            r"debt_to_income: bin 3 starts at 0.30, inside bin 2 \(below 0.35\); bins overlap",
        ),
        (
            "{              below = 22,",
            "{ from = 18,   below = 22,",
            "age bin 1: the first bin is open below",
        ),
        (
            "{ from = 60,               points",
            "{ from = 60, below = 120, points",
            "age bin 6: the last bin is open above",
        ),
        ('{ from = "3",   below = "5",', '{ below = "5",', "years_at_job bin 4: missing from"),
        (
            '{ from = "0.5", below = "1",',
            '{ from = "1", below = "0.5",',
            r"years_at_job bin 2: below \(0.5\) must be above from \(1\)",
        ),
        (
            '{ from = "50000",                  points = 85 }',
            '{ from = "50000", points = 75 }',
            "monthly_income: trend is rising but bin 7 scores 75 after 80",
        ),
        (
            '[attributes.loan_to_income]\ntrend = "falling"',
            '[attributes.loan_to_income]\ntrend = "down"',
            "loan_to_income.trend: 'down' is not one of",
        ),
        ("retired = 45, ", "", "attributes.employment.points: missing retired"),
        ("unemployed = 0", "unemployed = 0, student = 10", "unknown key.* student"),
        (
            "[attributes.secured]\npoints = { yes = 35, no = 0 }\n",
            "",
            "attributes: missing secured",
        ),
        (
            "B  = { min_score = 640",
            "B  = { min_score = 680",
            r"grades: B \(680\) must be below A \(680\)",
        ),
        (
            'D  = { min_score = 560, risk_level = "R4"',
            'D  = { min_score = 560, risk_level = "R2"',
            r"grades: D \(R2\) is a lower risk level than C \(R3\)",
        ),
        ('risk_level = "R1"', 'risk_level = "R0"', "grades.AA: 'R0' is not one of"),
        (
            'HR = { risk_level = "R5" }',
            'HR = { min_score = 0, risk_level = "R5" }',
            "HR is every score below E",
        ),
        ("AA = { min_score = 720", "AA = { min_score = 900", "AA needs 900 points but the best"),
        (
            "auto_reject_below_score = 520",
            "auto_reject_below_score = 700",
            r"auto_reject_below_score \(700\) is above auto_approve_min_score \(680\)",
        ),
        (
            "auto_reject_below_score = 520",
            "auto_reject_below_score = 500",
            "some HR scores would not be rejected",
        ),
        ("base_odds = 50", 'base_odds = "fifty"', "scaling.base_odds must be a number"),
        ("pdo = 40", "pdo = 0", "scaling.pdo must be above 0"),
        ("offset = 300", "offset = 300.5", "scaling.offset must be a whole number"),
        ('version = "2024.1"', "", "missing version"),
        ("pdo = 40", "pdo = 40\nfloor = 300", "scaling: unknown key.* floor"),
        ("\n[scaling]\n", "\n[scaling\n", "Expected"),  # not TOML at all
    ],
)
def test_a_data_file_breaking_a_rule_is_refused_naming_the_problem(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    path = write(tmp_path, edited(old, new))
    with pytest.raises(ValueError, match=problem) as caught:
        CreditPolicy.load(path)
    assert str(caught.value).startswith(str(path))
