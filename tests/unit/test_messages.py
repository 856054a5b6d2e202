"""User messages for domain errors: every error has its own zh-CN and en message, and rendering
never fails, whatever params an error carries.

The errors come from walking ``DomainError``'s subclasses and the params from reading every raise
site under ``core/``, so a new error, reason or param needs a message before this suite passes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.domain import errors
from core.domain.errors import (
    DomainError,
    InsufficientFunds,
    InvalidAmount,
    InvalidCardNumber,
    InvalidIdNumber,
    InvalidPassport,
    InvalidVerificationCode,
    LedgerError,
    ResendTooSoon,
)
from core.messages import LOCALES, CatalogError, Messages, normalize_locale, user_message

CORE = Path(errors.__file__).resolve().parents[1]
CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
WIDE = re.compile("[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
INTERNAL = ("ledger_error", "unbalanced_transfer", "empty_transfer", "non_positive_leg",
            "unknown_account", "idempotency_conflict", "already_reversed", "duplicate_account",
            "currency_mismatch", "invalid_callback")
JARGON = re.compile(r"ledger|idempoten|callback|posting|\bleg\b|\bKYC\b|\bBIN\b|reversal", re.I)
MONEY_FIELDS = {"insufficient_funds": {"available", "needed"},
                "below_minimum_top_up": {"minimum"},
                "withdrawal_out_of_range": {"minimum", "maximum"},
                "daily_withdrawal_limit": {"limit", "left"},
                "amount_out_of_range": {"minimum", "maximum"},
                "borrowing_cap_exceeded": {"limit", "outstanding"},
                "bid_below_minimum": {"minimum"}, "bid_not_multiple": {"multiple"},
                "bid_exceeds_remaining": {"remaining"}, "novice_cap_exceeded": {"cap", "left"},
                "voucher_unavailable": {"minimum"}}


def _domain_errors() -> list[type[DomainError]]:
    found, todo = [DomainError], [DomainError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return [cls for cls in found if cls.__module__ == errors.__name__]


ERRORS = _domain_errors()
BY_NAME = {cls.__name__: cls for cls in ERRORS}


@dataclass(frozen=True)
class RaiseSite:
    error: type[DomainError]
    where: str
    params: tuple[tuple[str, Any], ...]  # a literal's value, or "7" for a computed value


def _raise_sites() -> Iterator[RaiseSite]:
    """Every ``SomeError(..., name=value)`` call in core, with the params it passes."""
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in BY_NAME:
                continue
            params = tuple(
                (kw.arg, kw.value.value if isinstance(kw.value, ast.Constant) else "7")
                for kw in node.keywords if kw.arg is not None)
            yield RaiseSite(BY_NAME[name], f"{path.relative_to(CORE)}:{node.lineno}", params)


SITES = list(_raise_sites())
REASONS = sorted({(site.error, value) for site in SITES for key, value in site.params
                  if key == "reason"}, key=lambda pair: (pair[0].__name__, pair[1]))


@pytest.fixture(scope="module")
def messages() -> Messages:
    return Messages.load()


def _templates(messages: Messages, locale: str) -> Iterator[tuple[str, str]]:
    for code, entry in messages.catalog(locale).items():
        for chain in entry.values() if isinstance(entry, Mapping) else [entry]:
            for template in chain:
                yield code, template


# Coverage: every error, reason and raise site -------------------------------------------------


def test_the_scan_finds_the_errors_and_raise_sites_it_should() -> None:
    assert len(ERRORS) > 40
    assert len(SITES) > 60
    reasons = {(cls.__name__, reason) for cls, reason in REASONS}
    assert {("InvalidIdNumber", r) for r in ("id_format", "id_region", "id_birth_date",
                                             "id_checksum")} <= reasons
    assert {("InvalidCardNumber", r) for r in ("card_format", "card_length",
                                               "card_checksum")} <= reasons
    assert {("InvalidAmount", r) for r in ("not_a_number", "not_positive", "too_many_decimals",
                                           "too_large")} <= reasons
    assert {("InvalidPassport", r) for r in ("passport_country", "passport_number",
                                             "birth_date")} <= reasons


@pytest.mark.parametrize("error", ERRORS, ids=lambda cls: cls.__name__)
def test_every_domain_error_has_its_own_code_and_its_own_message_in_every_locale(
        error: type[DomainError], messages: Messages) -> None:
    assert "code" in vars(error), f"{error.__name__} inherits its code; give it its own"
    for locale in LOCALES:
        assert error.code in messages.catalog(locale), f"{error.code} has no {locale} message"


def test_error_codes_are_unique_and_every_message_belongs_to_an_error(
        messages: Messages) -> None:
    codes = [cls.code for cls in ERRORS]
    assert len(codes) == len(set(codes))
    assert set(messages.catalog("zh-CN")) - set(codes) == set()


@pytest.mark.parametrize(("error", "reason"), REASONS,
                         ids=[f"{cls.__name__}-{reason}" for cls, reason in REASONS])
def test_every_reason_raised_in_core_has_its_own_message(
        error: type[DomainError], reason: str, messages: Messages) -> None:
    for locale in LOCALES:
        entry = messages.catalog(locale)[error.code]
        assert not isinstance(entry, tuple), f"{error.code} has reasons: make it a table"
        assert reason in entry, f"{error.code}.{reason} has no {locale} message"


@pytest.mark.parametrize("site", SITES, ids=lambda site: site.where)
def test_messages_render_with_the_params_each_raise_site_passes(
        site: RaiseSite, messages: Messages) -> None:
    exc = site.error("developer text", **dict(site.params))
    for locale in LOCALES:
        text = messages.error(exc, locale)
        assert text and "{" not in text and "}" not in text
        assert "developer text" not in text


@pytest.mark.parametrize("error", sorted({site.error for site in SITES}, key=lambda c: c.__name__),
                         ids=lambda cls: cls.__name__)
def test_every_field_a_message_mentions_is_passed_by_some_raise_site(
        error: type[DomainError], messages: Messages) -> None:
    passed = {key for site in SITES if site.error is error for key, _ in site.params}
    for locale in LOCALES:
        for _, template in _templates_of(messages, locale, error.code):
            assert _fields_in(template) <= passed, f"{locale} {error.code}: {template}"


# Rendering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("error", ERRORS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("locale", LOCALES)
def test_every_error_reads_well_without_params_or_with_unexpected_ones(
        error: type[DomainError], locale: str, messages: Messages) -> None:
    for exc in (error(), error("x", reason="no_such_reason", extra=object()),
                error("x", reason=None, seconds=None)):
        text = messages.error(exc, locale)
        assert text and "{" not in text and "}" not in text


@pytest.mark.parametrize("locale", LOCALES)
def test_every_template_is_used_when_its_params_are_given(locale: str, messages: Messages) -> None:
    for error in ERRORS:
        entry = messages.catalog(locale)[error.code]
        chains = entry.items() if isinstance(entry, Mapping) else [(None, entry)]
        for reason, chain in chains:
            params = {name: "7" for name in _fields_in(chain[0])}
            if reason is not None:
                params["reason"] = reason
            text = messages.error(error(**params), locale)
            assert text == chain[0].format_map(params), f"{locale} {error.code}.{reason}"


def test_a_message_fills_in_the_params_the_error_carries(messages: Messages) -> None:
    assert messages.error(ResendTooSoon(seconds=42), "zh-CN") == "请 42 秒后再获取验证码。"
    assert "42s" in messages.error(ResendTooSoon(seconds=42), "en")
    wrong = InvalidVerificationCode("wrong code", attempts_left=2)
    assert messages.error(wrong, "zh-CN") == "验证码不正确，还可以再试 2 次。"
    assert messages.error(wrong, "en") == "That code is not right. Tries left: 2."


def test_a_missing_param_falls_back_to_the_message_without_it(messages: Messages) -> None:
    for locale in LOCALES:
        plain = messages.error(InvalidVerificationCode(), locale)
        assert messages.error(InvalidVerificationCode(purpose="change_card"), locale) == plain
        assert plain != messages.error(InvalidVerificationCode(attempts_left=1), locale)
        decimals = messages.error(InvalidAmount(reason="too_many_decimals", scale=2), locale)
        assert "2" in decimals
        without_scale = messages.error(InvalidAmount(reason="too_many_decimals"), locale)
        assert without_scale != decimals
        assert without_scale != messages.error(InvalidAmount(), locale)


def test_each_reason_has_a_message_of_its_own_and_unknown_reasons_get_the_default(
        messages: Messages) -> None:
    for error, reasons in ((InvalidIdNumber, ("id_format", "id_region", "id_birth_date",
                                              "id_checksum")),
                           (InvalidCardNumber, ("card_format", "card_length", "card_checksum")),
                           (InvalidPassport, ("passport_country", "passport_number",
                                              "birth_date"))):
        for locale in LOCALES:
            default = messages.error(error(), locale)
            texts = {messages.error(error(reason=r), locale) for r in reasons}
            assert len(texts) == len(reasons) and default not in texts
            assert messages.error(error(reason="new_reason"), locale) == default


def test_money_is_shown_with_its_currency_in_one_style_per_locale(messages: Messages) -> None:
    short = InsufficientFunds(available="100.00", needed="250.50")
    assert "250.50 元" in messages.error(short, "zh-CN")
    assert "100.00 元" in messages.error(short, "zh-CN")
    assert "CNY 250.50" in messages.error(short, "en")
    for code, fields in MONEY_FIELDS.items():
        for _, template in _templates_of(messages, "zh-CN", code):
            for field in fields & _fields_in(template):
                assert f"{{{field}}} 元" in template
        for _, template in _templates_of(messages, "en", code):
            for field in fields & _fields_in(template):
                assert f"CNY {{{field}}}" in template


def test_internal_errors_say_only_that_nothing_changed(messages: Messages) -> None:
    for locale in LOCALES:
        for code in INTERNAL:
            assert messages.catalog(locale)[code] == messages.catalog(locale)["ledger_error"]
    generic = messages.error(LedgerError("no transfer T1", transfer_id="T1"), "en")
    assert "nothing was changed" in generic and "support" in generic
    assert "T1" not in generic
    assert messages.error(InsufficientFunds(), "en") != generic


def test_chinese_messages_are_in_chinese_and_english_ones_have_no_chinese(
        messages: Messages) -> None:
    for code, template in _templates(messages, "zh-CN"):
        assert CJK.search(template), f"zh-CN {code}: {template}"
    for code, template in _templates(messages, "en"):
        assert not WIDE.search(template), f"en {code}: {template}"
        assert not JARGON.search(template), f"en {code}: {template}"


# Locales -------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["zh-CN", "zh", "zh-Hans", "zh_CN", "ZH-cn", "zh-TW", "fr", "",
                                 None])
def test_chinese_and_unknown_locales_read_simplified_chinese(tag: str | None) -> None:
    assert normalize_locale(tag) == "zh-CN"


@pytest.mark.parametrize("tag", ["en", "en-US", "en_GB", "EN", " en "])
def test_any_english_locale_reads_english(tag: str) -> None:
    assert normalize_locale(tag) == "en"


def test_error_and_user_message_use_the_normalised_locale(messages: Messages) -> None:
    exc = ResendTooSoon(seconds=5)
    assert messages.error(exc, "en-US") == messages.error(exc, "en")
    assert messages.error(exc, "ja") == messages.error(exc, "zh_CN") == messages.error(exc, "zh")
    assert user_message(exc, "en-GB") == messages.error(exc, "en")


# Inheritance ---------------------------------------------------------------------------------


class _NotInCatalog(InvalidAmount):
    code = "not_in_catalog"


class _NoCodeOfItsOwn(InsufficientFunds):
    pass


def test_an_error_without_its_own_message_gets_its_nearest_parents(messages: Messages) -> None:
    for locale in LOCALES:
        assert (messages.error(_NotInCatalog(reason="not_positive"), locale)
                == messages.error(InvalidAmount(reason="not_positive"), locale))
        assert (messages.error(_NoCodeOfItsOwn(available="1.00", needed="2.00"), locale)
                == messages.error(InsufficientFunds(available="1.00", needed="2.00"), locale))


# Loading -------------------------------------------------------------------------------------

ZH_OK = 'domain_error = "出错了。"\nwait = ["请 {seconds} 秒后再试。", "请稍后再试。"]\n' \
        'bad_id.default = "号码不对。"\nbad_id.id_format = "格式不对。"\n'
EN_OK = 'domain_error = "Oops."\nwait = ["Wait {seconds}s.", "Wait a moment."]\n' \
        'bad_id.default = "Wrong number."\nbad_id.id_format = "Wrong format."\n'


def _write(folder: Path, zh: str, en: str) -> Path:
    (folder / "errors.zh-CN.toml").write_text(zh, encoding="utf-8")
    (folder / "errors.en.toml").write_text(en, encoding="utf-8")
    return folder


def test_a_catalog_pair_in_step_loads(tmp_path: Path) -> None:
    loaded = Messages.load(_write(tmp_path, ZH_OK, EN_OK))
    assert set(loaded.catalog("en")) == {"domain_error", "wait", "bad_id"}


@pytest.mark.parametrize(("zh", "en", "complaint"), [
    (ZH_OK, EN_OK.replace('wait = ["Wait {seconds}s.", "Wait a moment."]\n', ""),
     "only in zh-CN: ['wait']"),
    (ZH_OK + 'extra = "多余。"\n', EN_OK, "only in zh-CN: ['extra']"),
    (ZH_OK, EN_OK.replace("bad_id.id_format", "bad_id.id_region"), "differ in reasons"),
    (ZH_OK, EN_OK.replace("{seconds}", "{secs}"), "differ in reasons or fields"),
    (ZH_OK, EN_OK.replace("Wait {seconds}s.", "Wait {seconds"), "wait"),
    (ZH_OK, EN_OK.replace("{seconds}", "{0}"), "plain named fields"),
    (ZH_OK, EN_OK.replace("{seconds}", "{seconds!r}"), "plain named fields"),
    (ZH_OK, EN_OK.replace('"Wait {seconds}s.", "Wait a moment."', '"Wait {seconds}s."'),
     "without {fields}"),
    (ZH_OK, EN_OK.replace('bad_id.default = "Wrong number."\n', ""), "needs a 'default'"),
    (ZH_OK, EN_OK.replace('"Oops."', "3"), "expected a message"),
    (ZH_OK, EN_OK.replace('"Oops."', '""'), "expected a message"),
    (ZH_OK.replace('domain_error = "出错了。"\n', ""), EN_OK, "domain_error"),
    (ZH_OK, EN_OK + "broken = [", "errors.en.toml"),
], ids=["missing-code", "extra-code", "other-reason", "other-field", "unclosed-field",
        "positional-field", "conversion", "no-plain-fallback", "no-default", "not-text",
        "empty", "no-root", "bad-toml"])
def test_a_catalog_out_of_step_or_malformed_is_refused(
        tmp_path: Path, zh: str, en: str, complaint: str) -> None:
    with pytest.raises(CatalogError, match=re.escape(complaint)):
        Messages.load(_write(tmp_path, zh, en))


def test_a_missing_catalog_is_refused(tmp_path: Path) -> None:
    (tmp_path / "errors.zh-CN.toml").write_text(ZH_OK, encoding="utf-8")
    with pytest.raises(CatalogError, match=r"errors\.en\.toml"):
        Messages.load(tmp_path)


# Helpers -------------------------------------------------------------------------------------


def _templates_of(messages: Messages, locale: str, code: str) -> Iterator[tuple[str, str]]:
    return ((c, t) for c, t in _templates(messages, locale) if c == code)


def _fields_in(template: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", template))
