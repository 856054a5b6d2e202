"""Proactive messages: a notice from the outbox (``template`` + ``params``) rendered as a Reply.

Notices speak through the same catalogs as the chat, under ``notice_<template>``. A template whose
params carry an outcome (a status, a promotion's kind) first tries ``notice_<template>_<outcome>``
and falls back to the neutral ``notice_<template>``. Params are written by ``core`` long before
delivery, so a missing one never stops a notice: its place shows a dash. Reason codes never reach
the user raw; each is looked up as readable text, with a catch-all for codes we do not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from string import Formatter
from typing import Any

from bots.dialog.i18n import Catalog, normalize_locale
from bots.dialog.types import Button, Reply

MISSING = "—"

# params that hold an amount of money ("100.00"), shown with the currency by ``notice_money``
MONEY_PARAMS = frozenset({"amount", "net", "fee", "first_payment", "refunded", "compensation",
                          "loss", "principal", "interest", "value", "min_investment",
                          "remaining"})

# the param whose value picks an outcome-specific text
OUTCOME_PARAMS = {"kyc_result": "status", "top_up_result": "status",
                  "withdrawal_result": "status", "application_result": "status",
                  "promotion_granted": "kind"}

# catalog prefix that turns a template's ``reason`` code into words; ``<prefix>other`` if unknown
REASON_PREFIXES = {"kyc_result": "notice_kyc_reason_", "top_up_result": "notice_payment_reason_",
                   "withdrawal_result": "notice_payment_reason_",
                   "application_result": "apply_reason_",
                   "listing_cancelled_borrower": "notice_listing_reason_"}

ButtonSpec = tuple[tuple[str, str], ...]  # (action, label key)

REPAY: ButtonSpec = (("flow:my_loans", "action_repay_now"),
                     ("talk_to_human", "action_talk_to_human"))
HUMAN: ButtonSpec = (("talk_to_human", "action_talk_to_human"),)
MY_LOANS: ButtonSpec = (("flow:my_loans", "notice_button_my_loans"),)
PORTFOLIO: ButtonSpec = (("flow:portfolio", "action_portfolio"),)
BROWSE: ButtonSpec = (("flow:browse", "action_browse_listings"),)
STATEMENT: ButtonSpec = (("flow:statement", "action_statement"),)

# by "<template>:<outcome>" first, then by template
BUTTONS: dict[str, ButtonSpec] = {
    "repayment_reminder": REPAY, "repayment_due_today": REPAY, "overdue_notice": REPAY,
    "collections_contact": REPAY, "overdue_formal_notice": REPAY,
    "overdue_escalation": REPAY, "overdue_final_notice": REPAY,
    "promise_to_pay_recorded": MY_LOANS, "payment_received": MY_LOANS,
    "loan_disbursed": MY_LOANS, "loan_started": PORTFOLIO, "repayment_received": PORTFOLIO,
    "loan_written_off": PORTFOLIO, "bid_accepted": PORTFOLIO, "listing_cancelled": BROWSE,
    "listing_cancelled_borrower": (*MY_LOANS, *HUMAN),
    "kyc_result:verified": (("flow:card", "action_bind_card"),),
    "kyc_result:rejected": (("flow:kyc", "action_kyc"),),
    "kyc_result": HUMAN,
    "top_up_result": STATEMENT, "top_up_result:failed": (*STATEMENT, *HUMAN),
    "withdrawal_result": STATEMENT, "withdrawal_result:failed": (*STATEMENT, *HUMAN),
    "application_result:approved": MY_LOANS, "application_result": HUMAN,
    "promotion_granted": BROWSE, "referral_reward": STATEMENT,
    "security_card_bound": (("talk_to_human", "notice_button_not_you"),),
    "auto_invest_executed": (*PORTFOLIO, ("flow:auto_invest", "action_auto_invest")),
    "loan_overdue": PORTFOLIO, "promise_to_pay_reminder": REPAY,
}


def render_notice(catalog: Catalog, template: str, params: Mapping[str, Any],
                  locale: str) -> Reply:
    """The notice ``template`` with ``params`` as a message in ``locale``; KeyError if unknown."""
    locale = normalize_locale(locale)
    texts = catalog.texts[locale]
    base = f"notice_{template}"
    if base not in texts:
        raise KeyError(template)
    outcome = _outcome(template, params)
    key = f"{base}_{outcome}" if outcome and f"{base}_{outcome}" in texts else base
    values = _values(catalog, template, params, locale)
    fields = {name for _, name, _, _ in Formatter().parse(texts[key]) if name}
    text = catalog.text(locale, key, **{name: values.get(name, MISSING) for name in fields})
    spec = BUTTONS.get(f"{template}:{outcome}", BUTTONS.get(template, ()))
    return Reply(text, tuple(Button(action, catalog.text(locale, label))
                             for action, label in spec))


def _outcome(template: str, params: Mapping[str, Any]) -> str | None:
    if template == "payment_received":
        return "repaid" if params.get("repaid") else None
    name = OUTCOME_PARAMS.get(template)
    value = params.get(name) if name else None
    return str(value) if value else None


def _values(catalog: Catalog, template: str, params: Mapping[str, Any],
            locale: str) -> dict[str, Any]:
    values = {name: value for name, value in params.items() if value is not None and value != ""}
    for name in MONEY_PARAMS & values.keys():
        values[name] = catalog.text(locale, "notice_money", amount=values[name])
    prefix = REASON_PREFIXES.get(template)
    if prefix:
        code = str(params.get("reason") or "other")
        known = f"{prefix}{code}" in catalog.texts[locale]
        values["reason"] = catalog.text(locale, f"{prefix}{code}" if known else f"{prefix}other")
    return values
