"""The risk questionnaire: every text in both languages, answers scored to C1..C5, products limited
by level, and a data file that breaks a rule refused with a message naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain.errors import InvalidAnswer, QuestionnaireIncomplete, SuitabilityMismatch
from core.domain.risk_profile import LEVELS, PRODUCT_RISKS, Questionnaire


@pytest.fixture(scope="module")
def questionnaire() -> Questionnaire:
    return Questionnaire.load()


def extreme_answers(questionnaire: Questionnaire, *, boldest: bool) -> dict[str, str]:
    """Each question answered with its option worth the most (boldest) or the fewest points."""
    pick = max if boldest else min
    return {q.id: pick(q.options, key=lambda o: o.points).id for q in questionnaire.questions}


# The shipped questionnaire ------------------------------------------------------------------------


def test_the_shipped_questionnaire_has_about_ten_questions_of_three_to_five_options(
    questionnaire: Questionnaire,
) -> None:
    assert 8 <= len(questionnaire.questions) <= 12
    assert all(3 <= len(q.options) <= 5 for q in questionnaire.questions)
    assert questionnaire.version
    assert questionnaire.validity_months == 12


def test_every_question_and_option_reads_in_chinese_and_english(
    questionnaire: Questionnaire,
) -> None:
    for question in questionnaire.questions:
        for text in [question.text, *(o.text for o in question.options)]:
            assert text["zh-CN"].strip(), question.id
            assert text["en"].strip(), question.id


def test_a_question_is_found_by_its_id_and_an_unknown_id_is_an_invalid_answer(
    questionnaire: Questionnaire,
) -> None:
    assert questionnaire.question("max_loss").id == "max_loss"
    with pytest.raises(InvalidAnswer) as caught:
        questionnaire.question("favourite_colour")
    assert caught.value.params["question"] == "favourite_colour"


# Scoring -----------------------------------------------------------------------------------------


def test_the_most_cautious_answers_make_a_conservative_c1_investor(
    questionnaire: Questionnaire,
) -> None:
    assessment = questionnaire.score(extreme_answers(questionnaire, boldest=False))
    assert (assessment.score, assessment.level) == (0, "C1")


def test_the_boldest_answers_make_an_aggressive_c5_investor(questionnaire: Questionnaire) -> None:
    assessment = questionnaire.score(extreme_answers(questionnaire, boldest=True))
    assert (assessment.score, assessment.level) == (40, "C5")


def test_a_salaried_saver_with_some_fund_experience_is_balanced_c3(
    questionnaire: Questionnaire,
) -> None:
    answers = {
        "age": "b",  # 26-40: 4
        "income": "c",  # ¥200k-500k: 2
        "p2p_share": "c",  # 10-30%: 3
        "experience": "c",  # funds, under 3 years: 2
        "max_loss": "c",  # 5-15%: 4
        "horizon": "c",  # 1-3 years: 2
        "purpose": "b",  # steady income: 1
        "p2p_knowledge": "d",  # knows it is not a deposit: 4
        "overdue_reaction": "c",  # waits, keeps lending: 2
        "funds_liquidity": "c",  # spare for 1-3 years: 2
    }
    assessment = questionnaire.score(answers)
    assert (assessment.score, assessment.level) == (26, "C3")
    assert dict(assessment.answers) == answers


@pytest.mark.parametrize(
    ("score", "level"),
    [(0, "C1"), (10, "C1"), (11, "C2"), (18, "C2"), (19, "C3"), (26, "C3"), (27, "C4"),
     (33, "C4"), (34, "C5"), (40, "C5")],
)  # fmt: skip
def test_each_level_starts_at_its_threshold(
    questionnaire: Questionnaire, score: int, level: str
) -> None:
    assert questionnaire.level_for(score) == level


def test_an_unanswered_question_is_reported_by_id_in_questionnaire_order(
    questionnaire: Questionnaire,
) -> None:
    answers = extreme_answers(questionnaire, boldest=True)
    del answers["horizon"], answers["age"]
    with pytest.raises(QuestionnaireIncomplete) as caught:
        questionnaire.score(answers)
    assert caught.value.params == {"missing": ["age", "horizon"]}


def test_an_option_the_question_does_not_have_is_rejected(questionnaire: Questionnaire) -> None:
    answers = extreme_answers(questionnaire, boldest=True) | {"income": "z"}
    with pytest.raises(InvalidAnswer) as caught:
        questionnaire.score(answers)
    assert caught.value.params == {"question": "income", "answer": "z"}


def test_an_answer_to_a_question_that_does_not_exist_is_rejected(
    questionnaire: Questionnaire,
) -> None:
    answers = extreme_answers(questionnaire, boldest=True) | {"star_sign": "a"}
    with pytest.raises(InvalidAnswer) as caught:
        questionnaire.score(answers)
    assert caught.value.params == {"question": "star_sign", "answer": "a"}


@given(data=st.data())
def test_choosing_an_option_worth_more_never_lowers_the_score_or_the_level(
    questionnaire: Questionnaire, data: st.DataObject
) -> None:
    answers = {
        q.id: data.draw(st.sampled_from([o.id for o in q.options]), label=q.id)
        for q in questionnaire.questions
    }
    question = data.draw(st.sampled_from(questionnaire.questions), label="raised")
    current = next(o for o in question.options if o.id == answers[question.id])
    better = [o.id for o in question.options if o.points >= current.points]
    raised = answers | {question.id: data.draw(st.sampled_from(better), label="to")}

    before, after = questionnaire.score(answers), questionnaire.score(raised)

    assert after.score >= before.score
    assert LEVELS.index(after.level) >= LEVELS.index(before.level)


# Suitability -------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("product_risk", PRODUCT_RISKS)
def test_an_investor_at_cn_may_buy_products_up_to_rn_only(
    questionnaire: Questionnaire, level: str, product_risk: str
) -> None:
    allowed = int(product_risk[1]) <= int(level[1])
    assert questionnaire.may_invest(level, product_risk) is allowed


def test_a_balanced_c3_investor_may_buy_r3_but_is_stopped_at_r4(
    questionnaire: Questionnaire,
) -> None:
    assert questionnaire.max_product_risk("C3") == "R3"
    questionnaire.check_suitability("C3", "R1")
    questionnaire.check_suitability("C3", "R3")
    with pytest.raises(SuitabilityMismatch) as caught:
        questionnaire.check_suitability("C3", "R4")
    assert caught.value.params == {"level": "C3", "product_risk": "R4", "max_risk": "R3"}


def test_an_unknown_level_or_product_risk_is_a_programming_error(
    questionnaire: Questionnaire,
) -> None:
    with pytest.raises(ValueError, match="C9"):
        questionnaire.may_invest("C9", "R1")
    with pytest.raises(ValueError, match="R0"):
        questionnaire.may_invest("C3", "R0")


# A broken data file ------------------------------------------------------------------------------

VALID = """\
version = "test-1"
validity_months = 12

[levels]
C1 = 0
C2 = 1
C3 = 2
C4 = 3
C5 = 4

[suitability]
C1 = "R1"
C2 = "R2"
C3 = "R3"
C4 = "R4"
C5 = "R5"

[[questions]]
id = "q1"
text = { "zh-CN" = "问题一", en = "Question one" }
  [[questions.options]]
  id = "a"
  text = { "zh-CN" = "甲", en = "A" }
  points = 0
  [[questions.options]]
  id = "b"
  text = { "zh-CN" = "乙", en = "B" }
  points = 2

[[questions]]
id = "q2"
text = { "zh-CN" = "问题二", en = "Question two" }
  [[questions.options]]
  id = "a"
  text = { "zh-CN" = "丙", en = "C" }
  points = 0
  [[questions.options]]
  id = "b"
  text = { "zh-CN" = "丁", en = "D" }
  points = 2
"""

Q2_SECOND_OPTION = """\
  [[questions.options]]
  id = "b"
  text = { "zh-CN" = "丁", en = "D" }
  points = 2
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "risk_questionnaire.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_the_small_valid_file_loads(tmp_path: Path) -> None:
    questionnaire = Questionnaire.load(write(tmp_path, VALID))
    assert [q.id for q in questionnaire.questions] == ["q1", "q2"]
    assert questionnaire.score({"q1": "b", "q2": "a"}).level == "C3"


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (Q2_SECOND_OPTION, "", "question 'q2': has 1 option"),
        ('id = "q2"', 'id = "q1"', "question 'q1': duplicate question id"),
        ('id = "b"', 'id = "a"', "question 'q1' option 'a': duplicate option id"),
        (', en = "Question two"', "", "question 'q2': text lacks en"),
        ('"zh-CN" = "乙", ', "", "option 'b': text lacks zh-CN"),
        ("points = 2", "points = -1", "points must be a whole number >= 0"),
        ("C1 = 0", "C1 = 1", "levels: C1 must be 0"),
        ("C3 = 2", "C3 = 1", r"levels: C3 \(1\) must be above C2 \(1\)"),
        ("C5 = 4", "C5 = 9", "C5 needs 9 points but the most is 4"),
        ('C5 = "R5"', "", "suitability: missing C5"),
        ('C4 = "R4"', 'C4 = "R2"', r"suitability: C4 \(R2\) is below C3 \(R3\)"),
        ('C2 = "R2"', 'C2 = "R7"', "suitability.C2: 'R7' is not one of"),
        ("validity_months = 12", "validity_months = 0", "validity_months must be"),
        ('version = "test-1"', "", "missing version"),
        (
            "validity_months = 12",
            "validity_months = 12\nvalidity_days = 3",
            "unknown key.* validity_days",
        ),
        ('id = "q1"', 'id = "q1"\nweight = 2', "question 1: unknown key.* weight"),
        ("[[questions]]", "[[questions]", "Expected"),  # not TOML at all
    ],
)
def test_a_data_file_breaking_a_rule_is_refused_naming_the_problem(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ValueError, match=problem) as caught:
        Questionnaire.load(path)
    assert str(path) in str(caught.value)
