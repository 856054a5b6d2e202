"""Borrowing in chat: apply for a loan, see my loans, repay, promise to pay an overdue loan.

```mermaid
stateDiagram-v2
    state apply {
        [*] --> product: start (verified, card bound)
        product --> amount: apply:product:<code>
        amount --> amount: not an amount / outside the product's range
        amount --> term
        term --> method: apply:term:<months>
        method --> purpose: apply:method:<method>
        purpose --> income
        income --> income: not an amount
        income --> employment
        employment --> years: apply:job:<employment>
        years --> years: not a number of years
        years --> debt
        debt --> other_debt: monthly debt payments (or none)
        other_debt --> documents: debt on other platforms (or none)
        documents --> confirm: apply:docs:<n>, summary shown
        confirm --> amount: borrowing cap or range refused (type a smaller amount)
        confirm --> [*]: approved and listed / in review / rejected with its reason / cancel
    }
    state my_loans {
        [*] --> menu: applications and loans (due, overdue, penalty)
        menu --> menu: schedule:<id> (paid marks) / agreement:<id> (full text)
    }
    state repay {
        [*] --> choose: repay:<id> (due now, settle-now amount)
        choose --> confirm: repay:due / repay:settle / a typed amount (what it would settle)
        confirm --> confirm: insufficient balance (top-up button) / new amount typed
        confirm --> [*]: repaid (a repeated tap repays once) / cancel
    }
    state promise {
        [*] --> date: promise:<id> (overdue loans only)
        date --> date: not a date / too far / in the past
        date --> amount: YYYY-MM-DD or promise:in:<3|7|14>
        amount --> amount: not an amount
        amount --> [*]: promise recorded
    }
    menu --> repay
    menu --> promise
```
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from bots.dialog.flows.base import Ctx
from bots.dialog.flows.investing import percent, yuan
from bots.dialog.types import Button, Reply
from core.domain.errors import (
    AmountOutOfRange,
    BorrowingCapExceeded,
    DomainError,
    InsufficientFunds,
    InvalidAmount,
    InvalidPromise,
    NotOverdue,
    UnknownLoan,
)
from core.domain.money import Money, parse_amount
from core.domain.scorecard import EMPLOYMENTS
from core.services.lending.applications import LoanRequest
from core.services.servicing.views import BorrowerLoan

LOAN_ACTION = re.compile(r"(repay|schedule|agreement|promise):(\d+)")
NONE_WORDS = ("0", "无", "没有", "none", "no")
DOCUMENTS = (0, 1, 2, 3)
PROMISE_DAYS = (3, 7, 14)
APPLICATIONS_SHOWN = 5
REASONS = ("score_too_low", "too_many_applications", "debt_to_income_too_high",
           "age_out_of_range", "blacklisted")


def _text(ctx: Ctx) -> str:
    return unicodedata.normalize("NFKC", ctx.inbound.text or "").strip()


def _tag(ctx: Ctx) -> str:
    """A request key part from this inbound: a repeated confirmation tap acts once."""
    return hashlib.sha256(ctx.inbound.message_id.encode()).hexdigest()[:12]


def _money_or_none(ctx: Ctx) -> Money:
    """A typed amount, or zero for "0" / "none" (the debt questions)."""
    text = _text(ctx)
    if ctx.inbound.action == "apply:none" or text.lower() in NONE_WORDS:
        return Money.zero(ctx.core.currency)
    return parse_amount(text, ctx.core.currency)


def _product_name(ctx: Ctx, code: str) -> str:
    product = ctx.core.settings.lending.products[code]
    return product.name_zh if ctx.turn.locale == "zh-CN" else product.name_en


async def _own_loan(ctx: Ctx, loan_id: int) -> BorrowerLoan:
    """The user's own loan (the view lists only theirs), or ``UnknownLoan``."""
    for loan in await ctx.core.views.borrower(ctx.uow, ctx.user_id):
        if loan.loan_id == loan_id:
            return loan
    raise UnknownLoan(f"loan {loan_id} is not this borrower's", loan_id=loan_id)


# Apply ----------------------------------------------------------------------------------------


class ApplyFlow:
    name = "apply"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        missing = await ctx.needs_verified_card()
        if missing is not None:
            return missing
        ctx.begin(self.name)
        ctx.goto("product")
        return [self._ask_product(ctx, "apply_ask_product")]

    async def step(self, ctx: Ctx) -> list[Reply]:
        if ctx.inbound.action == "apply:cancel":
            ctx.finish()
            return [ctx.reply("apply_cancelled")]
        return await getattr(self, f"_{ctx.turn.step}")(ctx)

    def _choice(self, ctx: Ctx, kind: str) -> str | None:
        action = ctx.inbound.action or ""
        prefix = f"apply:{kind}:"
        return action[len(prefix):] if action.startswith(prefix) else None

    def _ask_product(self, ctx: Ctx, key: str) -> Reply:
        products = ctx.core.settings.lending.products
        return ctx.reply(key, *(Button(f"apply:product:{code}", _product_name(ctx, code))
                                for code in products))

    async def _product(self, ctx: Ctx) -> list[Reply]:
        code = self._choice(ctx, "product")
        if code not in ctx.core.settings.lending.products:
            return [self._ask_product(ctx, "apply_use_buttons")]
        ctx.data["product"] = code
        ctx.goto("amount")
        return [self._ask_amount(ctx)]

    def _ask_amount(self, ctx: Ctx) -> Reply:
        product = ctx.core.settings.lending.products[ctx.data["product"]]
        currency = ctx.core.currency
        return ctx.reply("apply_ask_amount", product=_product_name(ctx, ctx.data["product"]),
                         minimum=yuan(Money.of(product.min_amount, currency)),
                         maximum=yuan(Money.of(product.max_amount, currency)))

    async def _amount(self, ctx: Ctx) -> list[Reply]:
        product = ctx.core.settings.lending.products[ctx.data["product"]]
        try:
            amount = parse_amount(_text(ctx), ctx.core.currency)
            if not product.min_amount <= amount.amount <= product.max_amount:
                raise AmountOutOfRange("amount outside the product's range",
                                       minimum=str(product.min_amount),
                                       maximum=str(product.max_amount))
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.data["amount"] = str(amount.amount)
        ctx.goto("term")
        return [self._ask_term(ctx, "apply_ask_term")]

    def _ask_term(self, ctx: Ctx, key: str) -> Reply:
        terms = ctx.core.settings.lending.products[ctx.data["product"]].terms
        return ctx.reply(key, *(ctx.button(f"apply:term:{n}", "apply_term_button", months=n)
                                for n in terms))

    async def _term(self, ctx: Ctx) -> list[Reply]:
        terms = ctx.core.settings.lending.products[ctx.data["product"]].terms
        chosen = self._choice(ctx, "term")
        if chosen is None or not chosen.isdigit() or int(chosen) not in terms:
            return [self._ask_term(ctx, "apply_use_buttons")]
        ctx.data["term"] = int(chosen)
        ctx.goto("method")
        return [self._ask_method(ctx, "apply_ask_method")]

    def _ask_method(self, ctx: Ctx, key: str) -> Reply:
        methods = ctx.core.settings.lending.products[ctx.data["product"]].methods
        return ctx.reply(key, *(ctx.button(f"apply:method:{m}", f"invest_method_{m}")
                                for m in methods))

    async def _method(self, ctx: Ctx) -> list[Reply]:
        methods = ctx.core.settings.lending.products[ctx.data["product"]].methods
        chosen = self._choice(ctx, "method")
        if chosen not in methods:
            return [self._ask_method(ctx, "apply_use_buttons")]
        ctx.data["method"] = chosen
        ctx.goto("purpose")
        return [ctx.reply("apply_ask_purpose")]

    async def _purpose(self, ctx: Ctx) -> list[Reply]:
        purpose = _text(ctx)
        if not purpose or len(purpose) > 200:
            return [ctx.reply("apply_purpose_invalid")]
        ctx.data["purpose"] = purpose
        ctx.goto("income")
        return [ctx.reply("apply_ask_income")]

    async def _income(self, ctx: Ctx) -> list[Reply]:
        try:
            income = parse_amount(_text(ctx), ctx.core.currency)
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.data["income"] = str(income.amount)
        ctx.goto("employment")
        return [self._ask_employment(ctx, "apply_ask_employment")]

    def _ask_employment(self, ctx: Ctx, key: str) -> Reply:
        return ctx.reply(key, *(ctx.button(f"apply:job:{e}", f"browse_employment_{e}")
                                for e in EMPLOYMENTS))

    async def _employment(self, ctx: Ctx) -> list[Reply]:
        chosen = self._choice(ctx, "job")
        if chosen not in EMPLOYMENTS:
            return [self._ask_employment(ctx, "apply_use_buttons")]
        ctx.data["employment"] = chosen
        ctx.goto("years")
        return [ctx.reply("apply_ask_years")]

    async def _years(self, ctx: Ctx) -> list[Reply]:
        try:
            years = Decimal(_text(ctx).removesuffix("年"))
        except InvalidOperation:
            years = Decimal(-1)
        if not years.is_finite() or not 0 <= years <= 60:
            return [ctx.reply("apply_years_invalid")]
        ctx.data["years"] = str(years)
        ctx.goto("debt")
        return [ctx.reply("apply_ask_debt", ctx.button("apply:none", "apply_none_button"))]

    async def _debt(self, ctx: Ctx) -> list[Reply]:
        try:
            debt = _money_or_none(ctx)
        except DomainError as exc:
            return [ctx.error(exc, ctx.button("apply:none", "apply_none_button"))]
        ctx.data["debt"] = str(debt.amount)
        ctx.goto("other_debt")
        return [ctx.reply("apply_ask_other_debt",
                          ctx.button("apply:none", "apply_none_button"))]

    async def _other_debt(self, ctx: Ctx) -> list[Reply]:
        try:
            debt = _money_or_none(ctx)
        except DomainError as exc:
            return [ctx.error(exc, ctx.button("apply:none", "apply_none_button"))]
        ctx.data["other_debt"] = str(debt.amount)
        ctx.goto("documents")
        return [self._ask_documents(ctx, "apply_ask_documents")]

    def _ask_documents(self, ctx: Ctx, key: str) -> Reply:
        return ctx.reply(key, *(ctx.button(f"apply:docs:{n}", f"apply_documents_{n}")
                                for n in DOCUMENTS))

    async def _documents(self, ctx: Ctx) -> list[Reply]:
        chosen = self._choice(ctx, "docs")
        if chosen is None or not chosen.isdigit() or int(chosen) not in DOCUMENTS:
            return [self._ask_documents(ctx, "apply_use_buttons")]
        ctx.data.update(documents=int(chosen), key=f"chat:{ctx.turn.id}:apply:{_tag(ctx)}")
        ctx.goto("confirm")
        return [self._summary(ctx)]

    def _summary(self, ctx: Ctx) -> Reply:
        d, currency = ctx.data, ctx.core.currency
        return ctx.reply(
            "apply_summary", ctx.button("apply:confirm", "apply_confirm_button"),
            ctx.button("apply:cancel", "apply_cancel_button"),
            product=_product_name(ctx, d["product"]), amount=yuan(Money.of(d["amount"], currency)),
            term=d["term"], method=ctx.t(f"invest_method_{d['method']}"), purpose=d["purpose"],
            income=yuan(Money.of(d["income"], currency)),
            employment=ctx.t(f"browse_employment_{d['employment']}"), years=d["years"],
            debt=yuan(Money.of(d["debt"], currency)),
            other_debt=yuan(Money.of(d["other_debt"], currency)), documents=d["documents"])

    async def _confirm(self, ctx: Ctx) -> list[Reply]:
        if ctx.inbound.action != "apply:confirm":
            return [self._summary(ctx)]
        d, currency = ctx.data, ctx.core.currency
        request = LoanRequest(
            d["product"], Money.of(d["amount"], currency), d["term"], d["method"], d["purpose"],
            Decimal(d["income"]), d["employment"], years_at_job=Decimal(d["years"]),
            monthly_debt_payments=Decimal(d["debt"]),
            other_platform_debt=Decimal(d["other_debt"]), documents=d["documents"])
        try:
            decision = await ctx.core.applications.apply(
                ctx.uow, ctx.user_id, request, channel=ctx.inbound.channel,
                request_key=d["key"])
        except (AmountOutOfRange, BorrowingCapExceeded) as exc:  # a smaller amount may pass
            ctx.goto("amount")
            return [ctx.error(exc), self._ask_amount(ctx)]
        except DomainError as exc:  # not a borrower, no KYC or card any more: nothing to retry
            ctx.finish()
            return [ctx.error(exc)]
        ctx.finish()
        my_loans = ctx.button("flow:my_loans", "apply_my_loans_button")
        if decision.status == "approved":
            return [ctx.reply("apply_approved", my_loans, loan_id=decision.loan_id,
                              rate=percent(decision.annual_rate or Decimal(0)),
                              grade=decision.grade, risk=decision.risk_level)]
        if decision.status == "review":
            return [ctx.reply("apply_review", my_loans, application_id=decision.application_id)]
        reason = decision.reason if decision.reason in REASONS else "other"
        return [ctx.reply("apply_rejected", reason=ctx.t(f"apply_reason_{reason}"))]


# My loans -------------------------------------------------------------------------------------


class LoansFlow:
    name = "my_loans"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        ctx.begin(self.name)
        ctx.goto("menu")
        return [await self._overview(ctx)]

    async def step(self, ctx: Ctx) -> list[Reply]:
        found = LOAN_ACTION.fullmatch(ctx.inbound.action or "")
        if found is None:
            return [await self._overview(ctx)]
        kind, loan_id = found.group(1), int(found.group(2))
        if kind in ("repay", "promise"):
            from bots.dialog.engine import FLOWS  # the registry imports this module

            return await FLOWS[kind].start(ctx, loan_id=loan_id)
        ctx.turn.flow, ctx.turn.step = self.name, "menu"
        try:
            if kind == "schedule":
                return [self._schedule(ctx, await _own_loan(ctx, loan_id))]
            text = await ctx.core.agreements.render(ctx.uow, loan_id, ctx.user_id,
                                                    ctx.turn.locale)
        except DomainError as exc:
            return [ctx.error(exc)]
        return [Reply(text)]  # one reply, however long: the channel adapter splits if it must

    async def _overview(self, ctx: Ctx) -> Reply:
        applications = await ctx.core.applications.status(ctx.uow, ctx.user_id)
        loans = await ctx.core.views.borrower(ctx.uow, ctx.user_id)
        lines: list[str] = []
        buttons: list[Button] = []
        if applications:
            lines.append(ctx.t("loans_applications_header"))
        for app in applications[:APPLICATIONS_SHOWN]:
            lines.append(self._application_line(ctx, app))
        if loans:
            lines.append(ctx.t("loans_loans_header"))
        for loan in loans:
            lines.append(self._loan_line(ctx, loan))
            if loan.status in ("active", "overdue"):
                buttons += [ctx.button(f"repay:{loan.loan_id}", "loans_repay_button",
                                       id=loan.loan_id),
                            ctx.button(f"schedule:{loan.loan_id}", "loans_schedule_button",
                                       id=loan.loan_id),
                            ctx.button(f"agreement:{loan.loan_id}", "loans_agreement_button",
                                       id=loan.loan_id)]
            if loan.status == "overdue":
                buttons.append(ctx.button(f"promise:{loan.loan_id}", "loans_promise_button",
                                          id=loan.loan_id))
        if not lines:
            return ctx.reply("loans_none", ctx.button("flow:apply", "action_apply_loan"))
        return Reply("\n".join(lines), tuple(buttons))

    def _application_line(self, ctx: Ctx, app: dict[str, Any]) -> str:
        status = app["status"] if app["status"] in ("approved", "rejected") else "review"
        reason = app["reason"] if app["reason"] in REASONS else "other"
        return ctx.t(f"loans_application_{status}", id=app["id"],
                     product=_product_name(ctx, app["product"]),
                     amount=yuan(Money.of(app["amount"], ctx.core.currency)),
                     term=app["term_months"], grade=app["grade"],
                     rate=percent(Decimal(app["annual_rate"] or 0)),
                     reason=ctx.t(f"apply_reason_{reason}"))

    def _loan_line(self, ctx: Ctx, loan: BorrowerLoan) -> str:
        if loan.status not in ("active", "overdue"):
            return ctx.t(f"loans_loan_{loan.status}", id=loan.loan_id, amount=yuan(loan.amount))
        line = ctx.t("loans_loan_active", id=loan.loan_id, amount=yuan(loan.amount),
                     next_date=(loan.next_due_date.isoformat() if loan.next_due_date
                                else ctx.t("loans_no_next_due")),
                     next_amount=yuan(loan.next_due_amount), settle=yuan(loan.settle_now))
        if loan.status == "overdue" or loan.overdue.is_positive():
            line += "\n" + ctx.t("loans_loan_overdue", days=loan.dpd, overdue=yuan(loan.overdue),
                                 penalty=yuan(loan.penalty))
        return line

    def _schedule(self, ctx: Ctx, loan: BorrowerLoan) -> Reply:
        lines = [ctx.t("loans_schedule_header", id=loan.loan_id)]
        lines += [ctx.t("loans_schedule_line", period=line.period,
                        date=line.due_date.isoformat(), principal=yuan(line.principal),
                        interest=yuan(line.interest), penalty=yuan(line.penalty),
                        paid=yuan(line.paid), mark=ctx.t(f"loans_status_{line.status}"))
                  for line in loan.schedule]
        buttons = ((ctx.button(f"repay:{loan.loan_id}", "loans_repay_button", id=loan.loan_id),)
                   if loan.status in ("active", "overdue") else ())
        return Reply("\n".join(lines), buttons)


# Repay ----------------------------------------------------------------------------------------


class RepayFlow:
    name = "repay"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        loan_id = int(options["loan_id"])
        try:
            loan = await _own_loan(ctx, loan_id)
            if loan.status not in ("active", "overdue"):
                raise UnknownLoan(f"loan {loan_id} is not being repaid", loan_id=loan_id)
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.begin(self.name)
        ctx.data["loan_id"] = loan_id
        ctx.goto("choose")
        return [self._ask(ctx, loan)]

    def _ask(self, ctx: Ctx, loan: BorrowerLoan) -> Reply:
        if loan.overdue.is_positive() or loan.penalty.is_positive():
            due = ctx.t("repay_due_overdue", overdue=yuan(loan.overdue),
                        penalty=yuan(loan.penalty))
        elif loan.next_due_date is not None:
            due = ctx.t("repay_due_next", date=loan.next_due_date.isoformat(),
                        amount=yuan(loan.next_due_amount))
        else:
            due = ctx.t("repay_due_nothing")
        return ctx.reply("repay_ask", ctx.button("repay:due", "repay_due_button"),
                         ctx.button("repay:settle", "repay_settle_button"),
                         loan_id=loan.loan_id, due=due, settle=yuan(loan.settle_now))

    async def step(self, ctx: Ctx) -> list[Reply]:
        if LOAN_ACTION.fullmatch(ctx.inbound.action or ""):  # a button from my loans
            return await LoansFlow().step(ctx)
        if ctx.inbound.action == "repay:cancel":
            ctx.finish()
            return [ctx.reply("repay_cancelled", ctx.button("flow:my_loans", "repay_loans_button"))]
        return await getattr(self, f"_{ctx.turn.step}")(ctx)

    async def _choose(self, ctx: Ctx) -> list[Reply]:
        loan_id = ctx.data["loan_id"]
        try:
            loan = await _own_loan(ctx, loan_id)
            action = ctx.inbound.action
            if action == "repay:settle":
                mode, amount = "settle", loan.settle_now
            elif action == "repay:due" and (loan.overdue.is_positive()
                                            or loan.penalty.is_positive()):
                mode, amount = "due", None  # worked out under the loan's lock when paid
            elif action == "repay:due":
                mode, amount = "amount", loan.next_due_amount
            elif ctx.inbound.text:
                mode, amount = "amount", parse_amount(_text(ctx), ctx.core.currency)
            else:
                return [self._ask(ctx, loan)]
            if mode != "due" and not amount.is_positive():
                raise InvalidAmount("nothing to pay", reason="not_positive")
            text = await self._preview(ctx, loan, mode, amount)
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.data.update(mode=mode, amount=None if amount is None else str(amount.amount),
                        key=f"chat:{ctx.turn.id}:{loan_id}:{_tag(ctx)}")
        ctx.goto("confirm")
        return [Reply(text, self._confirm_buttons(ctx))]

    async def _preview(self, ctx: Ctx, loan: BorrowerLoan, mode: str,
                       amount: Money | None) -> str:
        if mode == "due":
            return ctx.t("repay_confirm_due", loan_id=loan.loan_id, overdue=yuan(loan.overdue),
                         penalty=yuan(loan.penalty))
        if mode == "settle" or (amount is not None and amount >= loan.settle_now):
            return ctx.t("repay_confirm_settle", loan_id=loan.loan_id,
                         amount=yuan(loan.settle_now))
        settles = await ctx.core.views.what_would_settle(ctx.uow, loan.loan_id, amount)
        periods = ", ".join(str(p) for p in sorted(settles["installments"]))
        return ctx.t("repay_confirm_amount", loan_id=loan.loan_id, amount=yuan(amount),
                     penalty=yuan(settles["penalty"]), interest=yuan(settles["interest"]),
                     principal=yuan(settles["principal"]), unused=yuan(settles["unused"]),
                     periods=periods or "-")

    def _confirm_buttons(self, ctx: Ctx) -> tuple[Button, Button]:
        return (ctx.button("repay:confirm", "repay_confirm_button"),
                ctx.button("repay:cancel", "repay_cancel_button"))

    async def _confirm(self, ctx: Ctx) -> list[Reply]:
        action = ctx.inbound.action
        if action in ("repay:due", "repay:settle") or (action is None and ctx.inbound.text):
            return await self._choose(ctx)  # another choice replaces the one shown
        if action != "repay:confirm":
            return [ctx.reply("repay_confirm_buttons", *self._confirm_buttons(ctx))]
        d = ctx.data
        amount = None if d["amount"] is None else Money.of(d["amount"], ctx.core.currency)
        try:
            done = await ctx.core.repayments.repay(
                ctx.uow, d["loan_id"], None if d["mode"] == "due" else amount,
                request_key=d["key"], source="borrower", settle=d["mode"] == "settle",
                due_only=d["mode"] == "due")
        except InsufficientFunds as exc:  # kept: top up, then tap confirm again
            return [ctx.error(exc, ctx.button("flow:top_up", "action_top_up"),
                              *self._confirm_buttons(ctx))]
        except DomainError as exc:  # repaid meanwhile, nothing owed: nothing to retry
            ctx.finish()
            return [ctx.error(exc, ctx.button("flow:my_loans", "repay_loans_button"))]
        ctx.finish()
        key = ("repay_already" if done.duplicate else
               "repay_done_closed" if done.loan_repaid else "repay_done")
        return [ctx.reply(key, ctx.button("flow:my_loans", "repay_loans_button"),
                          loan_id=done.loan_id, amount=yuan(done.applied),
                          principal=yuan(done.principal), interest=yuan(done.interest),
                          penalty=yuan(done.penalty), early_fee=yuan(done.early_fee))]


# Promise to pay -------------------------------------------------------------------------------


class PromiseFlow:
    name = "promise"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        loan_id = int(options["loan_id"])
        try:
            loan = await _own_loan(ctx, loan_id)
            if loan.status != "overdue":
                raise NotOverdue("this loan is not overdue", loan_id=loan_id)
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.begin(self.name)
        ctx.data["loan_id"] = loan_id
        ctx.goto("date")
        return [self._ask_date(ctx, "promise_ask_date", overdue=yuan(loan.overdue),
                               penalty=yuan(loan.penalty), loan_id=loan_id)]

    def _ask_date(self, ctx: Ctx, key: str, **params: Any) -> Reply:
        today = ctx.uow.clock.today()
        return ctx.reply(key, *(ctx.button(f"promise:in:{n}", "promise_in_days", days=n,
                                           date=(today + timedelta(days=n)).isoformat())
                                for n in PROMISE_DAYS), **params)

    async def step(self, ctx: Ctx) -> list[Reply]:
        if LOAN_ACTION.fullmatch(ctx.inbound.action or ""):  # a button from my loans
            return await LoansFlow().step(ctx)
        return await getattr(self, f"_{ctx.turn.step}")(ctx)

    async def _date(self, ctx: Ctx) -> list[Reply]:
        action = ctx.inbound.action or ""
        today = ctx.uow.clock.today()
        if action.startswith("promise:in:") and action[11:].isdigit():
            day = today + timedelta(days=int(action[11:]))
        else:
            try:
                day = date.fromisoformat(_text(ctx))
            except ValueError:
                return [self._ask_date(ctx, "promise_bad_date")]
        if day < today:
            return [ctx.error(InvalidPromise("in the past", reason="date_in_past"))]
        ctx.data["date"] = day.isoformat()
        ctx.goto("amount")
        return [ctx.reply("promise_ask_amount", date=day.isoformat())]

    async def _amount(self, ctx: Ctx) -> list[Reply]:
        d = ctx.data
        try:
            amount = parse_amount(_text(ctx), ctx.core.currency)
            await ctx.core.collections.promise(ctx.uow, d["loan_id"],
                                               date.fromisoformat(d["date"]), amount)
        except InvalidPromise as exc:
            if exc.params.get("reason", "").startswith("date"):
                ctx.goto("date")
                return [ctx.error(exc), self._ask_date(ctx, "promise_ask_date_again")]
            return [ctx.error(exc)]
        except (InvalidAmount, AmountOutOfRange) as exc:
            return [ctx.error(exc)]
        except DomainError as exc:  # no longer overdue: nothing to promise
            ctx.finish()
            return [ctx.error(exc)]
        ctx.finish()
        return [ctx.reply("promise_done", ctx.button("flow:my_loans", "promise_loans_button"),
                          loan_id=d["loan_id"], date=d["date"], amount=yuan(amount))]
