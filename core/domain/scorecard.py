"""The borrower credit policy (借款人信用评分卡): scorecard, grades, pricing and auto-decisions.

Every number a risk manager tunes lives in ``config/credit_policy.toml``; this module loads that
file, rejects it whole if it breaks a rule (a ``ValueError`` naming the file and the problem), and
applies it. Nothing is read at import: the composition root calls ``CreditPolicy.load()`` once.

Scoring is a classic points scorecard. Each of nine attributes (age, income, debt-to-income...)
puts the applicant in one bin or category worth whole points, and ``points = offset + sum``: the
intercept is the data file's ``offset`` plus whatever the bins carry, with no hidden base. Standard
scaling reads points as good:bad odds, ``base_odds`` at ``base_points`` and doubling every ``pdo``
points, and the probability of default is ``1 / (1 + odds)``. All of it is ``Decimal``, computed
with ``ln``/``exp`` in a local 28-digit context: no float is ever involved.

A grade (AA best .. E, then HR) follows from the points by minimum score, and each grade has the
product risk level R1..R5 shown to lenders. Grades AA..E are priced by term bucket within the
annual cap; HR is never priced, because an HR application is always rejected.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "config" / "credit_policy.toml"
GRADES = ("AA", "A", "B", "C", "D", "E", "HR")  # best first
PRICED_GRADES = GRADES[:-1]
RISK_LEVELS = ("R1", "R2", "R3", "R4", "R5")
EMPLOYMENTS = (
    "salaried", "civil_servant", "self_employed", "business_owner", "freelance", "unemployed",
    "retired",
)  # fmt: skip
CATEGORIES = {"employment": EMPLOYMENTS, "secured": ("yes", "no")}
ATTRIBUTES = (  # this order breaks ties between equally costly reasons
    "age", "monthly_income", "debt_to_income", "employment", "other_platform_debt",
    "loan_to_income", "secured", "years_at_job", "kyc_documents",
)  # fmt: skip
TRENDS = ("rising", "falling")
REASON_COUNT = 3
PD_PLACES = Decimal("0.0001")
RATIO_PLACES = Decimal("0.0001")
NO_INCOME = Decimal("Infinity")  # a ratio over no income: above every bin's bound


@dataclass(frozen=True, slots=True)
class Applicant:
    """The facts the scorecard reads. Money is ``Decimal`` CNY; a float is refused."""

    age: int
    monthly_income: Decimal
    monthly_debt_payments: Decimal  # existing debts' monthly payments
    other_platform_debt: Decimal  # outstanding on other platforms
    employment: str
    years_at_job: Decimal
    secured: bool
    documents: int
    amount: Decimal  # requested principal
    term_months: int
    new_installment: Decimal  # estimated monthly payment of the new loan

    def __post_init__(self) -> None:
        for name in ("monthly_income", "monthly_debt_payments", "other_platform_debt",
                     "years_at_job", "amount", "new_installment"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ValueError(f"{name} must be a finite Decimal >= 0, got {value!r}")
        for name, minimum in (("age", 0), ("documents", 0), ("term_months", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
        if not isinstance(self.secured, bool):
            raise ValueError(f"secured must be True or False, got {self.secured!r}")


@dataclass(frozen=True, slots=True)
class Score:
    points: int
    pd: Decimal  # probability of default, 0..1, to 4 decimals
    grade: str  # AA..HR
    risk_level: str  # R1..R5
    reasons: tuple[str, ...]  # up to 3 attributes that lost the most points vs their best bin


@dataclass(frozen=True, slots=True)
class Bin:
    start: Decimal | None  # included; None: open below
    end: Decimal | None  # excluded; None: open above
    points: int

    def holds(self, value: Decimal) -> bool:
        above_start = self.start is None or value >= self.start
        return above_start and (self.end is None or value < self.end)


@dataclass(frozen=True, slots=True)
class Attribute:
    """One scorecard characteristic: numeric ``bins`` or named ``categories``, worth points."""

    name: str
    bins: tuple[Bin, ...]  # empty for a category attribute
    categories: Mapping[str, int]  # empty for a numeric attribute

    @property
    def best(self) -> int:
        return max([b.points for b in self.bins] + list(self.categories.values()))

    def points_for(self, value: Decimal | str) -> int:
        if isinstance(value, str):
            if value not in self.categories:
                known = ", ".join(self.categories)
                raise ValueError(f"{self.name}: unknown {value!r}; expected one of {known}")
            return self.categories[value]
        return next(b.points for b in self.bins if b.holds(value))


@dataclass(frozen=True, slots=True)
class Scaling:
    offset: int
    base_points: int
    base_odds: Decimal
    pdo: Decimal


@dataclass(frozen=True, slots=True)
class Thresholds:
    auto_reject_below_score: int
    auto_approve_min_score: int
    auto_approve_max_amount: Decimal


class CreditPolicy:
    """A checked credit policy: scores applicants, grades, prices and pre-decides them."""

    def __init__(
        self,
        *,
        version: str,
        scaling: Scaling,
        attributes: tuple[Attribute, ...],
        min_scores: Mapping[str, int],
        risk_levels: Mapping[str, str],
        thresholds: Thresholds,
        annual_rate_cap: Decimal,
        term_buckets: tuple[int, ...],
        rates: Mapping[str, tuple[Decimal, ...]],
    ) -> None:
        self.version = version
        self.scaling = scaling
        self.attributes = attributes
        self.min_scores = MappingProxyType(dict(min_scores))  # AA..E; HR is everything below E
        self.risk_levels = MappingProxyType(dict(risk_levels))
        self.thresholds = thresholds
        self.annual_rate_cap = annual_rate_cap  # a fraction: 0.24
        self.term_buckets = term_buckets  # longest term of each bucket, in months
        self.rates = MappingProxyType(dict(rates))  # fractions, one per term bucket

    @classmethod
    def load(cls, path: Path | None = None) -> CreditPolicy:
        """Read and check the data file; ``ValueError`` names the file and the problem."""
        path = path or DEFAULT_PATH
        try:
            with path.open("rb") as file:
                return _policy(tomllib.load(file, parse_float=Decimal))
        except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError too
            raise ValueError(f"{path}: {exc}") from exc

    # Scoring ---------------------------------------------------------------------------------

    def score(self, applicant: Applicant) -> Score:
        facts: dict[str, Decimal | str] = {
            "age": Decimal(applicant.age),
            "monthly_income": applicant.monthly_income,
            "debt_to_income": self.debt_to_income(applicant),
            "employment": applicant.employment,
            "other_platform_debt": applicant.other_platform_debt,
            "loan_to_income": self.loan_to_income(applicant),
            "secured": "yes" if applicant.secured else "no",
            "years_at_job": applicant.years_at_job,
            "kyc_documents": Decimal(applicant.documents),
        }
        earned = {a.name: a.points_for(facts[a.name]) for a in self.attributes}
        points = self.scaling.offset + sum(earned.values())
        lost = [a for a in self.attributes if earned[a.name] < a.best]
        lost.sort(key=lambda a: a.best - earned[a.name], reverse=True)  # stable: ties keep order
        grade = self.grade_for(points)
        return Score(
            points=points,
            pd=self.pd_for(points),
            grade=grade,
            risk_level=self.risk_levels[grade],
            reasons=tuple(a.name for a in lost[:REASON_COUNT]),
        )

    def debt_to_income(self, applicant: Applicant) -> Decimal:
        """(existing monthly payments + the new installment) / monthly income, to 4 decimals."""
        debts = applicant.monthly_debt_payments + applicant.new_installment
        return _ratio(debts, applicant.monthly_income)

    def loan_to_income(self, applicant: Applicant) -> Decimal:
        """Requested amount / annual income, to 4 decimals."""
        return _ratio(applicant.amount, applicant.monthly_income * 12)

    def odds(self, points: int) -> Decimal:
        """Good:bad odds: ``base_odds * 2 ** ((points - base_points) / pdo)``."""
        s = self.scaling
        with localcontext(prec=28, rounding=ROUND_HALF_EVEN):
            return s.base_odds * ((points - s.base_points) / s.pdo * Decimal(2).ln()).exp()

    def pd_for(self, points: int) -> Decimal:
        """Probability of default ``1 / (1 + odds)``, rounded half up to 4 decimals."""
        odds = self.odds(points)
        with localcontext(prec=28, rounding=ROUND_HALF_EVEN):
            return (1 / (1 + odds)).quantize(PD_PLACES, rounding=ROUND_HALF_UP)

    def grade_for(self, points: int) -> str:
        """The best grade whose minimum ``points`` reach; HR below them all."""
        return next((g for g in PRICED_GRADES if points >= self.min_scores[g]), "HR")

    # Pricing and decision ----------------------------------------------------------------------

    def rate(self, grade: str, term_months: int) -> Decimal:
        """Annual rate as a fraction for ``grade`` in the first term bucket that holds the term."""
        if grade == "HR":
            raise ValueError("grade HR is never priced: HR applications are rejected")
        if grade not in self.rates:
            raise ValueError(f"unknown grade {grade!r}; expected one of {', '.join(GRADES)}")
        if isinstance(term_months, bool) or not isinstance(term_months, int) or term_months < 1:
            raise ValueError(f"term_months must be a whole number >= 1, got {term_months!r}")
        for longest, rate in zip(self.term_buckets, self.rates[grade], strict=True):
            if term_months <= longest:
                return rate
        raise ValueError(
            f"no rate for {term_months} months: the longest term priced is {self.term_buckets[-1]}"
        )

    def decision(self, score: Score, amount: Decimal) -> Literal["approve", "review", "reject"]:
        """Reject below the reject line (and always HR), approve a high score for a small amount,
        send everything else to manual review."""
        t = self.thresholds
        if score.grade == "HR" or score.points < t.auto_reject_below_score:
            return "reject"
        if score.points >= t.auto_approve_min_score and amount <= t.auto_approve_max_amount:
            return "approve"
        return "review"


def _ratio(part: Decimal, whole: Decimal) -> Decimal:
    if whole <= 0:
        return NO_INCOME
    with localcontext(prec=28, rounding=ROUND_HALF_EVEN):
        return (part / whole).quantize(RATIO_PLACES, rounding=ROUND_HALF_UP)


# --- reading the data file ----------------------------------------------------------------------


def _policy(raw: dict[str, Any]) -> CreditPolicy:
    _expect_keys(raw, {"version", "scaling", "grades", "decision", "pricing", "attributes"}, "")
    if not isinstance(raw["version"], str) or not raw["version"].strip():
        raise ValueError(f"version must be non-empty text, got {raw['version']!r}")
    scaling = _scaling(raw["scaling"])
    attributes = _attributes(raw["attributes"])
    min_scores, risk_levels = _grades(raw["grades"])
    best = scaling.offset + sum(a.best for a in attributes)
    if best < min_scores["AA"]:
        raise ValueError(f"grades: AA needs {min_scores['AA']} points but the best is {best}")
    cap, buckets, rates = _pricing(raw["pricing"])
    return CreditPolicy(
        version=raw["version"],
        scaling=scaling,
        attributes=attributes,
        min_scores=min_scores,
        risk_levels=risk_levels,
        thresholds=_thresholds(raw["decision"], min_scores),
        annual_rate_cap=cap,
        term_buckets=buckets,
        rates=rates,
    )


def _scaling(raw: Any) -> Scaling:
    _expect_keys(raw, {"offset", "base_points", "base_odds", "pdo"}, "scaling")
    scaling = Scaling(
        offset=_whole(raw["offset"], "scaling.offset"),
        base_points=_whole(raw["base_points"], "scaling.base_points"),
        base_odds=_decimal(raw["base_odds"], "scaling.base_odds"),
        pdo=_decimal(raw["pdo"], "scaling.pdo"),
    )
    for name in ("base_odds", "pdo"):
        if getattr(scaling, name) <= 0:
            raise ValueError(f"scaling.{name} must be above 0, got {getattr(scaling, name)}")
    return scaling


def _attributes(raw: Any) -> tuple[Attribute, ...]:
    _expect_keys(raw, set(ATTRIBUTES), "attributes")
    attributes = []
    for name in ATTRIBUTES:
        where = f"attributes.{name}"
        if name in CATEGORIES:
            _expect_keys(raw[name], {"points"}, where)
            table = raw[name]["points"]
            _expect_keys(table, set(CATEGORIES[name]), f"{where}.points")
            points = {c: _whole(table[c], f"{where}.points.{c}") for c in CATEGORIES[name]}
            attributes.append(Attribute(name, (), MappingProxyType(points)))
        else:
            _expect_keys(raw[name], {"bins"}, where, optional={"trend"})
            bins = _bins(raw[name]["bins"], where)
            if "trend" in raw[name]:
                _check_trend(raw[name]["trend"], bins, where)
            attributes.append(Attribute(name, bins, MappingProxyType({})))
    return tuple(attributes)


def _bins(raw: Any, where: str) -> tuple[Bin, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: bins must list at least one bin")
    bins: list[Bin] = []
    for number, table in enumerate(raw, start=1):
        here = f"{where} bin {number}"
        _expect_keys(table, {"points"}, here, optional={"from", "below"})
        if number == 1 and "from" in table:
            raise ValueError(f"{here}: the first bin is open below and takes no 'from'")
        if number == len(raw) and "below" in table:
            raise ValueError(f"{here}: the last bin is open above and takes no 'below'")
        if number > 1 and "from" not in table:
            raise ValueError(f"{here}: missing from")
        if number < len(raw) and "below" not in table:
            raise ValueError(f"{here}: missing below")
        start = _decimal(table["from"], f"{here} from") if "from" in table else None
        end = _decimal(table["below"], f"{here} below") if "below" in table else None
        if start is not None and end is not None and end <= start:
            raise ValueError(f"{here}: below ({end}) must be above from ({start})")
        if bins and start is not None and bins[-1].end is not None:
            if start > bins[-1].end:
                raise ValueError(f"{where}: gap from {bins[-1].end} to {start} before bin {number}")
            if start < bins[-1].end:
                raise ValueError(
                    f"{where}: bin {number} starts at {start}, inside bin {number - 1} "
                    f"(below {bins[-1].end}); bins overlap"
                )
        bins.append(Bin(start, end, _whole(table["points"], f"{here} points")))
    return tuple(bins)


def _check_trend(trend: Any, bins: tuple[Bin, ...], where: str) -> None:
    if trend not in TRENDS:
        raise ValueError(f"{where}.trend: {trend!r} is not one of {', '.join(TRENDS)}")
    for number, (lower, higher) in enumerate(pairwise(bins), start=2):
        if (higher.points < lower.points) if trend == "rising" else (higher.points > lower.points):
            raise ValueError(
                f"{where}: trend is {trend} but bin {number} scores {higher.points} "
                f"after {lower.points}"
            )


def _grades(raw: Any) -> tuple[dict[str, int], dict[str, str]]:
    _expect_keys(raw, set(GRADES), "grades")
    if isinstance(raw["HR"], dict) and "min_score" in raw["HR"]:
        raise ValueError("grades.HR: HR is every score below E and takes no min_score")
    min_scores: dict[str, int] = {}
    risk_levels: dict[str, str] = {}
    for grade in GRADES:
        keys = {"risk_level"} | ({"min_score"} if grade != "HR" else set())
        _expect_keys(raw[grade], keys, f"grades.{grade}")
        if grade != "HR":
            min_scores[grade] = _whole(raw[grade]["min_score"], f"grades.{grade}.min_score")
        if (level := raw[grade]["risk_level"]) not in RISK_LEVELS:
            raise ValueError(f"grades.{grade}: {level!r} is not one of {', '.join(RISK_LEVELS)}")
        risk_levels[grade] = level
    for better, worse in pairwise(PRICED_GRADES):
        if min_scores[worse] >= min_scores[better]:
            raise ValueError(
                f"grades: {worse} ({min_scores[worse]}) must be below {better} "
                f"({min_scores[better]}); minimum scores must be strictly decreasing"
            )
    for better, worse in pairwise(GRADES):
        if RISK_LEVELS.index(risk_levels[worse]) < RISK_LEVELS.index(risk_levels[better]):
            raise ValueError(
                f"grades: {worse} ({risk_levels[worse]}) is a lower risk level than {better} "
                f"({risk_levels[better]}); a worse grade never gets a lower risk level"
            )
    return min_scores, risk_levels


def _thresholds(raw: Any, min_scores: Mapping[str, int]) -> Thresholds:
    keys = {"auto_reject_below_score", "auto_approve_min_score", "auto_approve_max_amount"}
    _expect_keys(raw, keys, "decision")
    reject = _whole(raw["auto_reject_below_score"], "decision.auto_reject_below_score")
    approve = _whole(raw["auto_approve_min_score"], "decision.auto_approve_min_score")
    amount = _decimal(raw["auto_approve_max_amount"], "decision.auto_approve_max_amount")
    if reject > approve:
        raise ValueError(
            f"decision: auto_reject_below_score ({reject}) is above auto_approve_min_score "
            f"({approve})"
        )
    if reject < min_scores["E"]:
        raise ValueError(
            f"decision: auto_reject_below_score ({reject}) is below grade E's min_score "
            f"({min_scores['E']}), so some HR scores would not be rejected"
        )
    if amount < 0:
        raise ValueError(f"decision.auto_approve_max_amount must not be negative, got {amount}")
    return Thresholds(reject, approve, amount)


def _pricing(raw: Any) -> tuple[Decimal, tuple[int, ...], dict[str, tuple[Decimal, ...]]]:
    _expect_keys(raw, {"annual_rate_cap", "term_buckets", "rates"}, "pricing")
    cap = _decimal(raw["annual_rate_cap"], "pricing.annual_rate_cap")
    if not 0 < cap <= 100:
        raise ValueError(f"pricing.annual_rate_cap must be a percent in (0, 100], got {cap}")
    buckets = raw["term_buckets"]
    if not isinstance(buckets, list) or not buckets:
        raise ValueError("pricing.term_buckets must list at least one term in months")
    buckets = [_whole(b, "pricing.term_buckets", minimum=1) for b in buckets]
    if any(longer <= shorter for shorter, longer in pairwise(buckets)):
        raise ValueError(f"pricing.term_buckets must be strictly increasing, got {buckets}")
    table = raw["rates"]
    if isinstance(table, dict) and "HR" in table:
        raise ValueError("pricing.rates: HR is never priced: HR applications are rejected")
    _expect_keys(table, set(PRICED_GRADES), "pricing.rates")
    percents: dict[str, list[Decimal]] = {}
    for grade in PRICED_GRADES:
        where = f"pricing.rates.{grade}"
        _expect_keys(table[grade], {str(b) for b in buckets}, where)
        percents[grade] = [_decimal(table[grade][str(b)], f"{where}.{b}") for b in buckets]
        for longest, percent in zip(buckets, percents[grade], strict=True):
            if not 0 <= percent <= cap:
                raise ValueError(f"{where}.{longest}: {percent}% is outside 0 .. the {cap}% cap")
    for better, worse in pairwise(PRICED_GRADES):
        for longest, low, high in zip(buckets, percents[better], percents[worse], strict=True):
            if high < low:
                raise ValueError(
                    f"pricing.rates: {worse} pays {high}% for {longest} months, less than "
                    f"{better} ({low}%); a worse grade never pays less"
                )
    rates = {g: tuple(p.scaleb(-2) for p in percents[g]) for g in PRICED_GRADES}
    return cap.scaleb(-2), tuple(buckets), rates


def _expect_keys(table: Any, keys: set[str], where: str, *, optional: Iterable[str] = ()) -> None:
    label = f"{where}: " if where else ""
    if not isinstance(table, dict):
        raise ValueError(f"{label}expected a table, got {table!r}")
    if missing := sorted(keys - table.keys()):
        raise ValueError(f"{label}missing {', '.join(missing)}")
    if unknown := sorted(table.keys() - keys - set(optional)):
        raise ValueError(f"{label}unknown key(s) {', '.join(unknown)}")


def _decimal(raw: Any, where: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | str | Decimal):
        raise ValueError(f'{where} must be a number such as "0.35", got {raw!r}')
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f'{where} must be a number such as "0.35", got {raw!r}') from None
    if not value.is_finite():
        raise ValueError(f"{where} must be a finite number, got {raw!r}")
    return value


def _whole(raw: Any, where: str, *, minimum: int | None = None) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(f"{where} must be a whole number, got {raw!r}")
    if minimum is not None and raw < minimum:
        raise ValueError(f"{where} must be >= {minimum}, got {raw}")
    return raw
