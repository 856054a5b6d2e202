import ast
import re
from pathlib import Path

import pytest

from bots.dialog.i18n import LOCALES, Catalog
from bots.dialog.notices import render_notice
from config.settings import ServicingSettings
from core.services.notifications import load_rules

ROOT = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]")
PAYMENT_KINDS = ("top_up", "withdrawal")  # payment_orders.kind, as in f"{row.kind}_result"


def _templates_in_core() -> set[str]:
    """Every template name core passes to notify.enqueue / enqueue_many, plus the collections
    plan's, so a new notice without catalog text fails here."""
    found: set[str] = set()
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "enqueue" and len(node.args) >= 3):
                found.update(_names(node.args[2]))
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "template":
                        found.update(_names(value))
    found.update(stage.template for stage in ServicingSettings().collections_plan)
    return found


def _names(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _names(node.body) | _names(node.orelse)
    if isinstance(node, ast.JoinedStr):
        pattern = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        return {pattern.format(kind) for kind in PAYMENT_KINDS}
    return set()  # e.g. stage.template: covered by the collections plan


# a broadcast's text is the manager's, put in by the dispatcher (tests/integration/...notify)
TEMPLATES = sorted(_templates_in_core() - {"broadcast"})

FULL_PARAMS = {
    "loan_id": 42, "period": 3, "due_date": "2024-05-20", "amount": "100.00",
    "stage": "D+1", "days_past_due": 5, "date": "2024-05-25", "application_id": 7,
    "rate": "12.5", "net": "95.00", "fee": "5.00", "first_due_date": "2024-06-20",
    "first_payment": "35.00", "refunded": "200.00", "remaining": "300.00",
    "compensation": "80.00", "loss": "20.00", "principal": "90.00", "interest": "10.00",
    "kind": "red_packet", "value": "10.00", "min_investment": "1000.00", "boost_pct": "1.0",
    "days": 30, "bank_code": "ICBC", "last4": "1234", "order_id": "po-1", "repaid": False,
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def _actions(reply) -> list[str]:
    return [b.action for b in reply.buttons]


def test_core_uses_the_known_notice_templates() -> None:
    assert {"kyc_result", "top_up_result", "withdrawal_result", "repayment_reminder",
            "overdue_formal_notice", "loan_disbursed", "auto_invest_executed", "loan_overdue",
            "promise_to_pay_reminder"} <= set(TEMPLATES)


def test_every_template_core_enqueues_has_a_dispatch_rule_and_no_rule_is_orphaned() -> None:
    rules = load_rules()
    assert _templates_in_core() == set(rules)
    assert not any(rules[t].urgent for t in rules if rules[t].group == "collections")
    # what the contract or the law requires cannot be muted
    for template in ("repayment_reminder", "overdue_formal_notice", "security_card_bound",
                     "listing_cancelled", "loan_overdue", "kyc_result", "loan_written_off"):
        assert rules[template].required, template
    assert rules["broadcast"].mute == "marketing" and rules["repayment_received"].mute == \
        "updates"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_core_enqueues_renders_in_both_locales(catalog, template, locale) -> None:
    reply = render_notice(catalog, template, FULL_PARAMS, locale)
    assert reply.text.strip()
    assert "{" not in reply.text and "}" not in reply.text
    assert "—" not in reply.text  # every param these templates use was given
    assert bool(CJK.search(reply.text)) is (locale == "zh-CN")
    for button in reply.buttons:
        assert button.label and len(button.action.encode()) <= 64
        assert bool(CJK.search(button.label)) is (locale == "zh-CN")


@pytest.mark.parametrize("template", TEMPLATES)
def test_missing_params_do_not_crash(catalog, template) -> None:
    for locale in LOCALES:
        reply = render_notice(catalog, template, {}, locale)
        assert reply.text.strip() and "{" not in reply.text


def test_amounts_show_the_currency_in_each_locale(catalog) -> None:
    params = {"loan_id": 1, "amount": "100.00"}
    assert "100.00 元" in render_notice(catalog, "payment_received", params, "zh-CN").text
    assert "CNY 100.00" in render_notice(catalog, "payment_received", params, "en").text


def test_dates_are_shown_as_given(catalog) -> None:
    reply = render_notice(catalog, "repayment_reminder", FULL_PARAMS, "en")
    assert "2024-05-20" in reply.text


@pytest.mark.parametrize(("template", "params", "key"), [
    ("kyc_result", {"status": "verified"}, "notice_kyc_result_verified"),
    ("kyc_result", {"status": "rejected", "reason": "name_id_mismatch"},
     "notice_kyc_result_rejected"),
    ("top_up_result", {"status": "succeeded", "amount": "1.00"}, "notice_top_up_result_succeeded"),
    ("withdrawal_result", {"status": "failed", "amount": "1.00", "reason": "bank_declined"},
     "notice_withdrawal_result_failed"),
    ("application_result", {"status": "approved", "application_id": 1, "loan_id": 2,
                            "rate": "10"}, "notice_application_result_approved"),
    ("promotion_granted", {"kind": "interest_boost"}, "notice_promotion_granted_interest_boost"),
])
def test_an_outcome_picks_its_own_text(catalog, template, params, key) -> None:
    for locale in LOCALES:
        reply = render_notice(catalog, template, params, locale)
        generic = render_notice(catalog, template, {}, locale)
        assert reply.text != generic.text
        first_words = catalog.texts[locale][key].split("{")[0]
        assert reply.text.startswith(first_words)


@pytest.mark.parametrize(("template", "params", "reason_key"), [
    ("kyc_result", {"status": "rejected", "reason": "name_id_mismatch"},
     "notice_kyc_reason_name_id_mismatch"),
    ("kyc_result", {"status": "rejected", "reason": "some_new_code"}, "notice_kyc_reason_other"),
    ("top_up_result", {"status": "failed", "reason": "bank_unavailable"},
     "notice_payment_reason_bank_unavailable"),
    ("application_result", {"status": "rejected", "reason": "debt_to_income_too_high"},
     "apply_reason_debt_to_income_too_high"),
    ("application_result", {"status": "rejected", "reason": "staff: docs unclear"},
     "apply_reason_other"),
    ("listing_cancelled_borrower", {"reason": "expired"}, "notice_listing_reason_expired"),
])
def test_rejection_reasons_read_as_words_never_codes(catalog, template, params,
                                                     reason_key) -> None:
    for locale in LOCALES:
        text = render_notice(catalog, template, params, locale).text
        assert catalog.texts[locale][reason_key] in text
        assert params["reason"] not in text


@pytest.mark.parametrize(("template", "params", "actions"), [
    ("repayment_reminder", {}, ["flow:my_loans", "talk_to_human"]),
    ("repayment_due_today", {}, ["flow:my_loans", "talk_to_human"]),
    ("overdue_notice", {}, ["flow:my_loans", "talk_to_human"]),
    ("overdue_formal_notice", {}, ["flow:my_loans", "talk_to_human"]),
    ("overdue_final_notice", {}, ["flow:my_loans", "talk_to_human"]),
    ("loan_disbursed", {}, ["flow:my_loans"]),
    ("loan_started", {}, ["flow:portfolio"]),
    ("repayment_received", {}, ["flow:portfolio"]),
    ("kyc_result", {"status": "verified"}, ["flow:card"]),
    ("kyc_result", {"status": "rejected"}, ["flow:kyc"]),
    ("top_up_result", {"status": "succeeded"}, ["flow:statement"]),
    ("withdrawal_result", {"status": "succeeded"}, ["flow:statement"]),
    ("bid_accepted", {}, ["flow:portfolio"]),
    ("listing_cancelled", {}, ["flow:browse"]),
    ("promotion_granted", {"kind": "red_packet"}, ["flow:browse"]),
    ("security_card_bound", {}, ["talk_to_human"]),
])
def test_each_notice_offers_the_next_useful_step(catalog, template, params, actions) -> None:
    for locale in LOCALES:
        assert _actions(render_notice(catalog, template, params, locale)) == actions


def test_button_labels_come_from_the_catalog(catalog) -> None:
    zh = render_notice(catalog, "overdue_notice", {}, "zh-CN")
    assert [b.label for b in zh.buttons] == [catalog.texts["zh-CN"]["action_repay_now"],
                                             catalog.texts["zh-CN"]["action_talk_to_human"]]
    en = render_notice(catalog, "security_card_bound", {}, "en")
    assert en.buttons[0].label == catalog.texts["en"]["notice_button_not_you"]


def test_formal_notice_mentions_the_agreement_without_threats(catalog) -> None:
    en = render_notice(catalog, "overdue_formal_notice", FULL_PARAMS, "en").text.lower()
    assert "agreement" in en
    for word in ("police", "lawsuit", "arrest", "family", "employer", "shame", "blacklist"):
        assert word not in en
    for locale in LOCALES:
        for key, text in catalog.texts[locale].items():
            if key.startswith(("notice_repayment", "notice_overdue", "notice_collections")):
                assert not re.search(r"报警|起诉|曝光|通讯录|家人|单位|police|sue|family", text)


def test_locale_hints_are_normalized(catalog) -> None:
    assert CJK.search(render_notice(catalog, "loan_started", {}, "zh").text)
    assert not CJK.search(render_notice(catalog, "loan_started", {}, "en-US").text)


def test_an_unknown_template_is_a_programming_error(catalog) -> None:
    with pytest.raises(KeyError):
        render_notice(catalog, "no_such_notice", {}, "en")
