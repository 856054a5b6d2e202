"""The investor's account in chat: withdraw, the statement (资金流水), auto-invest, feedback.

```mermaid
stateDiagram-v2
    state withdraw {
        [*] --> w_amount: start (verified, card bound): balance, fee, limits
        w_amount --> w_amount: not an amount / out of range / more than the balance
        w_amount --> w_confirm: arriving, fee, total frozen, card
        w_confirm --> w_amount: amount refused by the wallet (daily limit, balance)
        w_confirm --> w_confirm: new amount typed / other refusal (step kept)
        w_confirm --> [*]: requested (processing at the bank) / cancel
    }
    state statement {
        [*] --> page: page 1 (newest first)
        page --> page: statement:older / statement:newer
    }
    state auto_invest {
        [*] --> menu: the current rule or none
        menu --> grades: auto:setup
        menu --> [*]: auto:stop (revoked)
        grades --> grades: auto:grade:<g> toggles / done with none picked
        grades --> rate: auto:grades_done
        rate --> term: "8-15" (percent)
        term --> per_loan: "3-12" (months)
        per_loan --> keep: amount per loan
        keep --> cap: balance to keep
        cap --> share: total cap
        share --> confirm: max share % -> summary
        confirm --> [*]: auto:authorise (saved, audited) / auto:cancel
    }
    state feedback {
        [*] --> text: start
        text --> [*]: stored as a "feedback" event, thanks
    }
```

Every input step re-asks with the reason when refused (the rule's own validation decides what
a valid range or amount is). A withdrawal's request key is the conversation and the message that
gave the amount, so a repeated confirmation requests once.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC
from decimal import Decimal, InvalidOperation
from typing import Any

from bots.dialog.flows.base import Ctx
from bots.dialog.flows.investing import percent, yuan
from bots.dialog.types import Button, Reply
from core import analytics
from core.domain.errors import (
    DailyWithdrawalLimit,
    DomainError,
    InsufficientFunds,
    InvalidAmount,
    InvalidAutoInvestRule,
    WithdrawalOutOfRange,
)
from core.domain.money import Money, parse_amount
from core.services.lending.autoinvest import GRADES, AutoInvestRule

STATEMENT_PAGE = 5
STATEMENT_KINDS = ("top_up", "withdrawal", "refund", "bid", "disbursement", "repayment",
                   "repayment_received", "fee", "reward", "compensation")
FEEDBACK_MAX = 2000  # characters kept of one feedback message
# Refusals a user fixes by typing another amount.
WITHDRAW_REFUSALS = (InvalidAmount, WithdrawalOutOfRange, InsufficientFunds,
                     DailyWithdrawalLimit)
_RANGE = re.compile(r"^\s*(\S+?)\s*(?:-|~|～|—|－|到|至|to)\s*(\S+?)\s*$", re.IGNORECASE)
_FULL_WIDTH = str.maketrans("０１２３４５６７８９．％", "0123456789.%")


# Withdraw ---------------------------------------------------------------------------------


class WithdrawFlow:
    name = "withdraw"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        missing = await ctx.needs_verified_card()
        if missing is not None:
            return missing
        ctx.begin(self.name)
        ctx.goto("amount")
        balance = await ctx.core.wallet.summary(ctx.uow, ctx.user_id)
        return [ctx.reply("withdraw_ask_amount", available=yuan(balance.available),
                          **self._limits(ctx))]

    async def step(self, ctx: Ctx) -> list[Reply]:
        if ctx.inbound.action == "withdraw:cancel":
            ctx.finish()
            return [ctx.reply("withdraw_cancelled")]
        if ctx.inbound.action == "withdraw:confirm" and ctx.turn.step == "amount":
            return [ctx.reply("withdraw_ask_again")]  # a confirmation from before a refusal
        return await getattr(self, f"_{ctx.turn.step}")(ctx)

    def _limits(self, ctx: Ctx) -> dict[str, str]:
        s, currency = ctx.core.settings.wallet, ctx.core.currency
        return {"fee": yuan(Money.of(s.withdrawal_fee, currency)),
                "minimum": yuan(Money.of(s.min_withdrawal, currency)),
                "maximum": yuan(Money.of(s.max_withdrawal, currency)),
                "daily": yuan(Money.of(s.daily_withdrawal_limit, currency))}

    async def _amount(self, ctx: Ctx) -> list[Reply]:
        s, currency = ctx.core.settings.wallet, ctx.core.currency
        try:
            amount = parse_amount(ctx.inbound.text or "", currency)
            # The wallet checks all of this again when asked; here it only spares a round trip.
            if not s.min_withdrawal <= amount.amount <= s.max_withdrawal:
                raise WithdrawalOutOfRange("amount outside the withdrawal range",
                                           minimum=str(s.min_withdrawal),
                                           maximum=str(s.max_withdrawal))
            fee = Money.of(s.withdrawal_fee, currency)
            balance = await ctx.core.wallet.summary(ctx.uow, ctx.user_id)
            if amount + fee > balance.available:
                raise InsufficientFunds("more than the available balance",
                                        needed=str((amount + fee).amount),
                                        available=str(balance.available.amount))
            card = await ctx.core.cards.require_card(ctx.uow, ctx.user_id)
        except DomainError as exc:
            return [ctx.error(exc)]
        tag = hashlib.sha256(ctx.inbound.message_id.encode()).hexdigest()[:12]
        ctx.data.update(amount=str(amount.amount), key=f"chat:{ctx.turn.id}:withdraw:{tag}")
        ctx.goto("confirm")
        return [ctx.reply("withdraw_confirm", *self._confirm_buttons(ctx), amount=yuan(amount),
                          fee=yuan(fee), total=yuan(amount + fee),
                          card=card.label(ctx.core.bins, ctx.turn.locale))]

    def _confirm_buttons(self, ctx: Ctx) -> tuple[Button, Button]:
        return (ctx.button("withdraw:confirm", "withdraw_confirm_button"),
                ctx.button("withdraw:cancel", "withdraw_cancel_button"))

    async def _confirm(self, ctx: Ctx) -> list[Reply]:
        if ctx.inbound.action != "withdraw:confirm":
            if ctx.inbound.text:  # a new amount replaces the one shown
                return await self._amount(ctx)
            return [ctx.reply("withdraw_confirm_buttons", *self._confirm_buttons(ctx))]
        amount = Money.of(ctx.data["amount"], ctx.core.currency)
        try:
            # A refusal must not leave half a request behind: the order and its freeze go
            # together or not at all, while the turn itself still commits.
            async with ctx.uow.savepoint():
                order = await ctx.core.wallet.request_withdrawal(ctx.uow, ctx.user_id, amount,
                                                                 ctx.data["key"])
            card = await ctx.core.cards.require_card(ctx.uow, ctx.user_id)
        except WITHDRAW_REFUSALS as exc:
            ctx.goto("amount")
            return [ctx.error(exc), ctx.reply("withdraw_ask_again")]
        except DomainError as exc:
            return [ctx.error(exc, *self._confirm_buttons(ctx))]
        ctx.finish()
        return [ctx.reply("withdraw_done", ctx.button("flow:statement", "action_statement"),
                          amount=yuan(order.amount), fee=yuan(order.fee), order=order.id,
                          card=card.label(ctx.core.bins, ctx.turn.locale))]


# Statement --------------------------------------------------------------------------------


class StatementFlow:
    name = "statement"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        ctx.begin(self.name)
        ctx.data["page"] = 1
        ctx.goto("page")
        return [await self._page(ctx)]

    async def step(self, ctx: Ctx) -> list[Reply]:
        action = ctx.inbound.action or ""
        page = int(ctx.data.get("page", 1))
        if action == "statement:older":
            ctx.data["page"] = page + 1
        elif action == "statement:newer":
            ctx.data["page"] = max(1, page - 1)
        else:
            return [await self._page(ctx, "statement_use_buttons")]
        return [await self._page(ctx)]

    async def _page(self, ctx: Ctx, hint: str | None = None) -> Reply:
        wallet, page = ctx.core.wallet, int(ctx.data.get("page", 1))
        found = await wallet.statement(ctx.uow, ctx.user_id, page=page, page_size=STATEMENT_PAGE)
        if not found.entries and found.page > 1:  # past the end: the oldest page
            found = await wallet.statement(ctx.uow, ctx.user_id, page=found.pages,
                                           page_size=STATEMENT_PAGE)
        ctx.data["page"] = found.page
        if not found.entries:
            return ctx.reply("statement_empty")
        tz = ctx.uow.clock.tz
        lines = [ctx.t("statement_header", page=found.page, pages=found.pages, total=found.total)]
        for entry in found.entries:
            at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=UTC)
            kind = entry.kind if entry.kind in STATEMENT_KINDS else "other"
            lines.append(ctx.t("statement_line", date=at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                               kind=ctx.t(f"statement_kind_{kind}"),
                               amount=f"{entry.amount.amount:+,.2f}",
                               balance=yuan(entry.balance)))
        if hint:
            lines.append(ctx.t(hint))
        buttons = []
        if found.page < found.pages:
            buttons.append(ctx.button("statement:older", "statement_older"))
        if found.page > 1:
            buttons.append(ctx.button("statement:newer", "statement_newer"))
        return Reply("\n".join(lines), tuple(buttons))


# Auto-invest ------------------------------------------------------------------------------


def _number(text: str) -> Decimal:
    try:
        value = Decimal(text.translate(_FULL_WIDTH).strip().removesuffix("%").strip())
    except InvalidOperation as exc:
        raise ValueError(text) from exc
    if not value.is_finite():
        raise ValueError(text)
    return value


def _range(text: str) -> tuple[Decimal, Decimal]:
    """ "8-15", "8~15", "8 到 15" -> (8, 15); anything else is a ValueError."""
    match = _RANGE.match((text or "").translate(_FULL_WIDTH))
    if match is None:
        raise ValueError(text)
    return _number(match.group(1)), _number(match.group(2))


def _amount_or_zero(text: str, ctx: Ctx) -> Money:
    """An amount, or zero (a balance to keep may be nothing)."""
    try:
        return parse_amount(text, ctx.core.currency)
    except InvalidAmount:
        try:
            if _number(text) == 0:
                return Money.zero(ctx.core.currency)
        except ValueError:
            pass
        raise


# Auto-invest steps that take typed input: step -> (question, rule field it fills, next step).
QUESTIONS = {"rate": ("auto_ask_rate", "rate_range", "term"),
             "term": ("auto_ask_term", "term_range", "per_loan"),
             "per_loan": ("auto_ask_per_loan", "amount_per_loan", "keep"),
             "keep": ("auto_ask_keep", "limits", "cap"),
             "cap": ("auto_ask_cap", "limits", "share"),
             "share": ("auto_ask_share", "max_share_pct", "confirm")}


class AutoInvestFlow:
    name = "auto_invest"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        ctx.begin(self.name)
        ctx.goto("menu")
        rule = await ctx.core.auto_invest.rule(ctx.uow, ctx.user_id)
        if rule is None:
            return [ctx.reply("auto_none", ctx.button("auto:setup", "auto_setup_button"))]
        return [ctx.reply("auto_current", ctx.button("auto:setup", "auto_change_button"),
                          ctx.button("auto:stop", "auto_stop_button"),
                          summary=self._summary(ctx, rule))]

    async def step(self, ctx: Ctx) -> list[Reply]:
        action = ctx.inbound.action or ""
        if action == "auto:stop":
            return await self._stop(ctx)
        if action == "auto:cancel":
            ctx.finish()
            return [ctx.reply("auto_cancelled")]
        if action == "auto:setup":
            ctx.data.clear()
            ctx.data["grades"] = []
            ctx.goto("grades")
            return [self._grades_reply(ctx, "auto_ask_grades")]
        if ctx.turn.step == "menu":
            return await self.start(ctx)
        if ctx.turn.step == "grades":
            return await self._grades(ctx)
        if ctx.turn.step == "confirm":
            return await self._confirm(ctx)
        return await self._answer(ctx)

    async def _stop(self, ctx: Ctx) -> list[Reply]:
        ctx.finish()
        if await ctx.core.auto_invest.rule(ctx.uow, ctx.user_id) is None:
            return [ctx.reply("auto_none", ctx.button("flow:auto_invest", "action_auto_invest"))]
        await ctx.core.auto_invest.revoke(ctx.uow, ctx.user_id)
        return [ctx.reply("auto_stopped", ctx.button("flow:auto_invest", "action_auto_invest"))]

    def _grades_reply(self, ctx: Ctx, key: str) -> Reply:
        picked = ctx.data.get("grades", [])
        buttons = [ctx.button(f"auto:grade:{g}", "auto_grade_on" if g in picked
                              else "auto_grade_off", grade=g) for g in GRADES]
        chosen = ", ".join(g for g in GRADES if g in picked) or ctx.t("auto_grades_none")
        return ctx.reply(key, *buttons, ctx.button("auto:grades_done", "auto_grades_done"),
                         chosen=chosen)

    async def _grades(self, ctx: Ctx) -> list[Reply]:
        action = ctx.inbound.action or ""
        picked: list[str] = list(ctx.data.get("grades", []))
        if action.startswith("auto:grade:") and action[11:] in GRADES:
            grade = action[11:]
            picked = [g for g in picked if g != grade] if grade in picked else [*picked, grade]
            ctx.data["grades"] = [g for g in GRADES if g in picked]
            return [self._grades_reply(ctx, "auto_ask_grades")]
        if action != "auto:grades_done":
            return [self._grades_reply(ctx, "auto_use_buttons")]
        problem = self._problem(ctx, grades=tuple(picked))
        if problem is not None:
            return [self._refusal(ctx, problem), self._grades_reply(ctx, "auto_ask_grades")]
        ctx.goto("rate")
        return [ctx.reply("auto_ask_rate")]

    async def _answer(self, ctx: Ctx) -> list[Reply]:
        step = ctx.turn.step or ""
        question, field, following = QUESTIONS[step]
        text = ctx.inbound.text or ""
        try:
            values = self._parse(ctx, step, text)
        except InvalidAmount as exc:
            return [ctx.error(exc), ctx.reply(question)]
        except ValueError:
            exc = InvalidAutoInvestRule("unreadable input", field=field)
            return [self._refusal(ctx, exc), ctx.reply(question)]
        problem = self._problem(ctx, **values)
        if problem is not None:
            return [self._refusal(ctx, problem), ctx.reply(question)]
        ctx.data.update({k: self._store(v) for k, v in values.items()})
        ctx.goto(following)
        if following == "confirm":
            return [self._confirm_reply(ctx, "auto_confirm")]
        return [ctx.reply(QUESTIONS[following][0])]

    def _parse(self, ctx: Ctx, step: str, text: str) -> dict[str, Any]:
        if step == "rate":
            low, high = _range(text)
            return {"min_rate": low / 100, "max_rate": high / 100}
        if step == "term":
            low, high = _range(text)
            if low != low.to_integral_value() or high != high.to_integral_value():
                raise ValueError(text)
            return {"min_term": int(low), "max_term": int(high)}
        if step == "per_loan":
            return {"amount_per_loan": parse_amount(text, ctx.core.currency)}
        if step == "keep":
            return {"keep_balance": _amount_or_zero(text, ctx)}
        if step == "cap":
            return {"total_cap": parse_amount(text, ctx.core.currency)}
        return {"max_share_pct": _number(text)}

    def _store(self, value: Any) -> Any:
        if isinstance(value, Money):
            return str(value.amount)
        return str(value) if isinstance(value, Decimal) else value

    def _rule(self, ctx: Ctx, **override: Any) -> AutoInvestRule:
        """The rule collected so far; fields not asked yet hold values the rule accepts."""
        s, currency, data = ctx.core.settings.lending, ctx.core.currency, ctx.data
        money = {k: Money.of(data[k], currency) if k in data else None
                 for k in ("amount_per_loan", "keep_balance", "total_cap")}
        per_loan = money["amount_per_loan"] or Money.of(s.min_bid, currency)
        fields: dict[str, Any] = {
            "grades": tuple(data.get("grades") or GRADES[:1]),
            "min_rate": Decimal(data.get("min_rate", "0")),
            "max_rate": Decimal(data.get("max_rate", "0")),
            "min_term": int(data.get("min_term", 1)), "max_term": int(data.get("max_term", 1)),
            "amount_per_loan": per_loan,
            "keep_balance": money["keep_balance"] or Money.zero(currency),
            "total_cap": money["total_cap"] or override.get("amount_per_loan", per_loan),
            "max_share_pct": Decimal(data.get("max_share_pct", "100"))}
        fields.update(override)
        return AutoInvestRule(**fields)

    def _problem(self, ctx: Ctx, **override: Any) -> InvalidAutoInvestRule | None:
        try:
            ctx.core.auto_invest.validate(self._rule(ctx, **override))
        except InvalidAutoInvestRule as exc:
            return exc
        return None

    def _refusal(self, ctx: Ctx, exc: InvalidAutoInvestRule) -> Reply:
        """The domain's refusal plus what exactly to change."""
        field = exc.params.get("field", "")
        if field not in ("grades", "rate_range", "term_range", "amount_per_loan", "limits",
                         "max_share_pct"):
            return ctx.error(exc)
        lending = ctx.core.settings.lending
        reason = ctx.t(f"auto_reason_{field}",
                       minimum=yuan(Money.of(lending.min_bid, ctx.core.currency)),
                       multiple=yuan(Money.of(lending.bid_multiple, ctx.core.currency)))
        return Reply(f"{ctx.error(exc).text}\n{reason}")

    def _summary(self, ctx: Ctx, rule: AutoInvestRule) -> str:
        return ctx.t("auto_summary", grades=", ".join(rule.grades),
                     min_rate=percent(rule.min_rate), max_rate=percent(rule.max_rate),
                     min_term=rule.min_term, max_term=rule.max_term,
                     per_loan=yuan(rule.amount_per_loan), keep=yuan(rule.keep_balance),
                     cap=yuan(rule.total_cap), share=f"{rule.max_share_pct:g}")

    def _confirm_reply(self, ctx: Ctx, key: str) -> Reply:
        return ctx.reply(key, ctx.button("auto:authorise", "auto_authorise_button"),
                         ctx.button("auto:cancel", "auto_cancel_button"),
                         summary=self._summary(ctx, self._rule(ctx)))

    async def _confirm(self, ctx: Ctx) -> list[Reply]:
        if ctx.inbound.action != "auto:authorise":
            return [self._confirm_reply(ctx, "auto_confirm_buttons")]
        rule = self._rule(ctx)
        try:
            await ctx.core.auto_invest.authorise(ctx.uow, ctx.user_id, rule)
        except DomainError as exc:
            return [ctx.error(exc, ctx.button("auto:setup", "auto_change_button"),
                              ctx.button("auto:cancel", "auto_cancel_button"))]
        ctx.finish()
        return [ctx.reply("auto_saved", ctx.button("flow:browse", "action_browse_listings"),
                          summary=self._summary(ctx, rule))]


# Feedback ---------------------------------------------------------------------------------


class FeedbackFlow:
    name = "feedback"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        ctx.begin(self.name)
        ctx.goto("text")
        return [ctx.reply("feedback_ask")]

    async def step(self, ctx: Ctx) -> list[Reply]:
        text = (ctx.inbound.text or "").strip()
        if not text:
            return [ctx.reply("feedback_ask_text")]
        await analytics.track(ctx.uow, "feedback", user_id=ctx.user_id,
                              channel=ctx.inbound.channel,
                              props={"text": text[:FEEDBACK_MAX], "locale": ctx.turn.locale})
        ctx.finish()
        return [ctx.reply("feedback_thanks")]
