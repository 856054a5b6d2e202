"""The investor risk-tolerance questionnaire (投资者风险承受能力评估) and product suitability.

The 2016-2017 online-lending rules require a platform to assess each lender's risk tolerance and
to offer them only products within it. The questions, their points, the lowest score of each level
C1 (保守型) .. C5 (进取型), the riskiest product R1 .. R5 each level may buy and how many months an
assessment stays valid all live in ``config/risk_questionnaire.toml``, so a risk manager changes
them without touching code. This module loads that file, rejects it whole if it breaks a rule
(a ``ValueError`` naming the problem), and applies it: the score is the sum of the chosen options'
points, and the level is the highest one whose threshold the score reaches.

Nothing is read at import: the composition root calls ``Questionnaire.load()`` once at start-up.
Callers store ``Questionnaire.version`` with each ``Assessment``, so an assessment can always be
traced to the questions and thresholds it was scored against.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

from core.domain.errors import InvalidAnswer, QuestionnaireIncomplete, SuitabilityMismatch

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "config" / "risk_questionnaire.toml"
LEVELS = ("C1", "C2", "C3", "C4", "C5")
PRODUCT_RISKS = ("R1", "R2", "R3", "R4", "R5")
LANGUAGES = ("zh-CN", "en")


@dataclass(frozen=True)
class Option:
    id: str
    text: Mapping[str, str]
    points: int


@dataclass(frozen=True)
class Question:
    id: str
    text: Mapping[str, str]
    options: tuple[Option, ...]


@dataclass(frozen=True)
class Assessment:
    score: int
    level: str  # "C1".."C5"
    answers: Mapping[str, str]  # question id -> option id, in questionnaire order


class Questionnaire:
    """A checked questionnaire: scores answers and says which product risks a level may buy."""

    def __init__(
        self,
        *,
        version: str,
        validity_months: int,
        questions: tuple[Question, ...],
        thresholds: Mapping[str, int],
        suitability: Mapping[str, str],
    ) -> None:
        self.version = version
        self.validity_months = validity_months
        self.questions = questions
        self.thresholds = MappingProxyType(dict(thresholds))
        self.suitability = MappingProxyType(dict(suitability))
        self._by_id = {q.id: q for q in questions}

    @classmethod
    def load(cls, path: Path | None = None) -> Questionnaire:
        """Read and check the data file; ``ValueError`` names the file and the problem."""
        path = path or DEFAULT_PATH
        try:
            with path.open("rb") as file:
                return cls._from_toml(tomllib.load(file))
        except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError too
            raise ValueError(f"{path}: {exc}") from exc

    @classmethod
    def _from_toml(cls, raw: dict[str, Any]) -> Questionnaire:
        _expect_keys(raw, {"version", "validity_months", "levels", "suitability", "questions"}, "")
        version = _name(raw["version"], "version")
        validity_months = _whole(raw["validity_months"], "validity_months", minimum=1)
        questions = _questions(raw["questions"])
        thresholds = _thresholds(raw["levels"])
        most = sum(max(o.points for o in q.options) for q in questions)
        if most < thresholds["C5"]:
            raise ValueError(f"levels: C5 needs {thresholds['C5']} points but the most is {most}")
        suitability = _suitability(raw["suitability"])
        return cls(
            version=version,
            validity_months=validity_months,
            questions=questions,
            thresholds=thresholds,
            suitability=suitability,
        )

    def question(self, qid: str) -> Question:
        try:
            return self._by_id[qid]
        except KeyError:
            raise InvalidAnswer(f"unknown question {qid!r}", question=qid, answer=None) from None

    def score(self, answers: Mapping[str, str]) -> Assessment:
        """Score one complete set of answers (question id -> option id)."""
        for qid, oid in answers.items():
            question = self._by_id.get(qid)
            if question is None:
                raise InvalidAnswer(f"unknown question {qid!r}", question=qid, answer=oid)
            if not any(o.id == oid for o in question.options):
                raise InvalidAnswer(
                    f"{oid!r} is not an option of {qid!r}", question=qid, answer=oid
                )
        missing = [q.id for q in self.questions if q.id not in answers]
        if missing:
            raise QuestionnaireIncomplete(f"unanswered: {', '.join(missing)}", missing=missing)
        chosen = {q.id: answers[q.id] for q in self.questions}
        total = sum(o.points for q in self.questions for o in q.options if o.id == chosen[q.id])
        return Assessment(
            score=total, level=self.level_for(total), answers=MappingProxyType(chosen)
        )

    def level_for(self, score: int) -> str:
        """The highest level whose threshold ``score`` reaches."""
        if score < 0:
            raise ValueError(f"a score is never negative, got {score}")
        return [level for level in LEVELS if score >= self.thresholds[level]][-1]

    def max_product_risk(self, level: str) -> str:
        if level not in self.suitability:
            raise ValueError(f"unknown risk level {level!r}; expected one of {', '.join(LEVELS)}")
        return self.suitability[level]

    def may_invest(self, level: str, product_risk: str) -> bool:
        if product_risk not in PRODUCT_RISKS:
            raise ValueError(
                f"unknown product risk {product_risk!r}; expected one of {', '.join(PRODUCT_RISKS)}"
            )
        limit = self.max_product_risk(level)
        return PRODUCT_RISKS.index(product_risk) <= PRODUCT_RISKS.index(limit)

    def check_suitability(self, level: str, product_risk: str) -> None:
        if not self.may_invest(level, product_risk):
            limit = self.max_product_risk(level)
            raise SuitabilityMismatch(
                f"a {level} investor may buy products up to {limit}, not {product_risk}",
                level=level,
                product_risk=product_risk,
                max_risk=limit,
            )


# --- reading the data file ----------------------------------------------------------------------


def _questions(raw: Any) -> tuple[Question, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("questions: at least one [[questions]] is needed")
    questions: list[Question] = []
    for number, table in enumerate(raw, start=1):
        where = f"question {number}"
        _expect_keys(table, {"id", "text", "options"}, where)
        qid = _name(table["id"], f"{where} id")
        where = f"question {qid!r}"
        if any(q.id == qid for q in questions):
            raise ValueError(f"{where}: duplicate question id")
        options = table["options"]
        if not isinstance(options, list) or len(options) < 2:
            count = len(options) if isinstance(options, list) else 0
            raise ValueError(f"{where}: has {count} option(s); needs at least 2")
        questions.append(Question(qid, _text(table["text"], where), _options(options, where)))
    return tuple(questions)


def _options(raw: list[Any], where: str) -> tuple[Option, ...]:
    options: list[Option] = []
    for number, table in enumerate(raw, start=1):
        _expect_keys(table, {"id", "text", "points"}, f"{where} option {number}")
        oid = _name(table["id"], f"{where} option {number} id")
        here = f"{where} option {oid!r}"
        if any(o.id == oid for o in options):
            raise ValueError(f"{here}: duplicate option id")
        points = _whole(table["points"], f"{here} points", minimum=0)
        options.append(Option(oid, _text(table["text"], here), points))
    return tuple(options)


def _thresholds(raw: Any) -> dict[str, int]:
    _expect_keys(raw, set(LEVELS), "levels")
    thresholds = {level: _whole(raw[level], f"levels.{level}", minimum=0) for level in LEVELS}
    if thresholds["C1"] != 0:
        raise ValueError(f"levels: C1 must be 0, not {thresholds['C1']}")
    for lower, higher in pairwise(LEVELS):
        if thresholds[higher] <= thresholds[lower]:
            raise ValueError(
                f"levels: {higher} ({thresholds[higher]}) must be above {lower} "
                f"({thresholds[lower]}); thresholds must be strictly increasing"
            )
    return thresholds


def _suitability(raw: Any) -> dict[str, str]:
    _expect_keys(raw, set(LEVELS), "suitability")
    for level in LEVELS:
        if raw[level] not in PRODUCT_RISKS:
            raise ValueError(
                f"suitability.{level}: {raw[level]!r} is not one of {', '.join(PRODUCT_RISKS)}"
            )
    for lower, higher in pairwise(LEVELS):
        if PRODUCT_RISKS.index(raw[higher]) < PRODUCT_RISKS.index(raw[lower]):
            raise ValueError(
                f"suitability: {higher} ({raw[higher]}) is below {lower} ({raw[lower]}); "
                "a higher level may never buy less"
            )
    return {level: raw[level] for level in LEVELS}


def _expect_keys(table: Any, keys: set[str], where: str) -> None:
    label = f"{where}: " if where else ""
    if not isinstance(table, dict):
        raise ValueError(f"{label}expected a table, got {table!r}")
    if missing := sorted(keys - table.keys()):
        raise ValueError(f"{label}missing {', '.join(missing)}")
    if unknown := sorted(table.keys() - keys):
        raise ValueError(f"{label}unknown key(s) {', '.join(unknown)}")


def _text(raw: Any, where: str) -> Mapping[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ValueError(f"{where}: text must be a table of language = text")
    if missing := [lang for lang in LANGUAGES if not raw.get(lang, "").strip()]:
        raise ValueError(f"{where}: text lacks {', '.join(missing)}")
    return MappingProxyType(dict(raw))


def _name(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"{where} must be non-empty text, got {raw!r}")
    return raw


def _whole(raw: Any, where: str, *, minimum: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
        raise ValueError(f"{where} must be a whole number >= {minimum}, got {raw!r}")
    return raw
