"""Investing in chat: top up, browse listings, invest in one, see the portfolio.

```mermaid
stateDiagram-v2
    state top_up {
        [*] --> t_amount: start (verified, card bound)
        t_amount --> t_amount: not an amount / below the minimum
        t_amount --> [*]: order created (pay at the bank; balance follows its confirmation)
    }
    state browse {
        [*] --> list: start
        list --> list: filter:<grade> / filter:short / filter:all / more
        list --> detail: loan:<id>
        detail --> list: back
        detail --> detail: unsuitable / closed (told why)
    }
    state invest {
        [*] --> amount: invest:<id> from browse (open, suitable)
        amount --> amount: not an amount / minimum / multiple / more than remains
        amount --> confirm: expected interest, schedule, risk warning
        confirm --> amount: amount refused by the final check
        confirm --> confirm: new amount typed / insufficient balance (top-up button)
        confirm --> [*]: invested (a repeated tap invests once) / cancel / closed
    }
    detail --> invest
    portfolio --> [*]: one summary message
```
"""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from typing import Any

from bots.dialog.flows.base import Ctx
from bots.dialog.types import Button, Reply
from core.domain.errors import (
    BidBelowMinimum,
    BidExceedsRemaining,
    BidNotMultiple,
    DomainError,
    InsufficientFunds,
    InvalidAmount,
    ListingClosed,
    NoviceCapExceeded,
    RiskAssessmentRequired,
    SuitabilityMismatch,
)
from core.domain.money import Money, parse_amount
from core.domain.schedule import Installment, build_schedule, investor_schedules
from core.domain.scorecard import PRICED_GRADES
from core.services.lending.common import Listing
from core.services.lending.investing import BidRequest
from core.services.lending.listings import ListingFilter

PAGE_SIZE = 5
SHORT_TERM = 6  # months: what the "short term" filter keeps
UPCOMING = 3  # receipts shown in the portfolio
UPCOMING_DAYS = 366  # how far ahead to look for them (monthly loans: 90 days may hold 2)
# Refusals an investor fixes by typing another amount.
AMOUNT_REFUSALS = (InvalidAmount, BidBelowMinimum, BidNotMultiple, NoviceCapExceeded)


def yuan(money: Money) -> str:
    return f"{money.amount:,.2f}"


def percent(fraction: Decimal) -> str:
    return f"{fraction * 100:.2f}"


def expected_share(listing: Listing, amount: Money, start: date) -> list[Installment]:
    """The investor's part of the schedule if ``amount`` is lent and the loan starts ``start``."""
    borrower = build_schedule(listing.amount, listing.annual_rate, listing.term_months,
                              listing.method, start)
    others = listing.amount - amount
    return investor_schedules(borrower, [amount, others] if others.is_positive() else [amount])[0]


def _browse_action(action: str) -> bool:
    return (action.startswith(("loan:", "filter:")) or action in ("more", "back")
            or (action.startswith("invest:") and action[7:].isdigit()))


class TopUpFlow:
    name = "top_up"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        missing = await ctx.needs_verified_card()
        if missing is not None:
            return missing
        ctx.begin(self.name)
        ctx.goto("amount")
        minimum = Money.of(ctx.core.settings.wallet.min_top_up, ctx.core.currency)
        return [ctx.reply("topup_ask_amount", minimum=yuan(minimum))]

    async def step(self, ctx: Ctx) -> list[Reply]:
        return await getattr(self, f"_{ctx.turn.step}")(ctx)

    async def _amount(self, ctx: Ctx) -> list[Reply]:
        inbound = ctx.inbound
        try:
            amount = parse_amount(inbound.text or "", ctx.core.currency)
            order = await ctx.core.wallet.request_top_up(
                ctx.uow, ctx.user_id, amount, f"{inbound.channel}:{inbound.message_id}")
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.finish()
        return [ctx.reply("topup_created", ctx.button("flow:browse", "action_browse_listings"),
                          amount=yuan(order.amount), order=order.id)]


class BrowseFlow:
    name = "browse"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        ctx.begin(self.name)
        ctx.data.update(page=1, filter=options.get("filter", "all"))
        ctx.goto("list")
        return [await self._page(ctx)]

    async def step(self, ctx: Ctx) -> list[Reply]:
        return await getattr(self, f"_{ctx.turn.step}")(ctx)

    async def _list(self, ctx: Ctx) -> list[Reply]:
        return await self._act(ctx) or [await self._page(ctx, "browse_use_buttons")]

    async def _detail(self, ctx: Ctx) -> list[Reply]:
        return await self._act(ctx) or await self._open(ctx, ctx.data["loan_id"],
                                                        "browse_use_buttons")

    async def _act(self, ctx: Ctx) -> list[Reply] | None:
        """The buttons every browse step understands; ``None`` for anything else."""
        action = ctx.inbound.action or ""
        if action.startswith("loan:") and action[5:].isdigit():
            return await self._open(ctx, int(action[5:]))
        if action.startswith("invest:") and action[7:].isdigit():
            from bots.dialog.engine import FLOWS  # the registry imports this module

            return await FLOWS["invest"].start(ctx, loan_id=int(action[7:]))
        if action == "more":
            ctx.data["page"] = ctx.data.get("page", 1) + 1
        elif action.startswith("filter:") and action[7:] in ("all", "short", *PRICED_GRADES):
            ctx.data.update(page=1, filter=action[7:])
        elif action != "back":
            return None
        ctx.goto("list")
        return [await self._page(ctx)]

    async def _page(self, ctx: Ctx, hint: str | None = None) -> Reply:
        name = ctx.data.setdefault("filter", "all")
        flt = (ListingFilter() if name == "all" else ListingFilter(max_term=SHORT_TERM)
               if name == "short" else ListingFilter(grades=(name,)))
        found = await ctx.core.listings.browse(ctx.uow, flt, page=ctx.data.get("page", 1),
                                               page_size=PAGE_SIZE)
        if not found.items and found.page > 1:  # "more" past the end starts again
            ctx.data["page"] = 1
            found = await ctx.core.listings.browse(ctx.uow, flt, page=1, page_size=PAGE_SIZE)
        label = (ctx.t("browse_filter_grade", grade=name) if name in PRICED_GRADES
                 else ctx.t(f"browse_filter_{name}", months=SHORT_TERM))
        filters = [ctx.button(f"filter:{g}", "browse_filter_grade", grade=g)
                   for g in PRICED_GRADES]
        filters += [ctx.button("filter:short", "browse_filter_short", months=SHORT_TERM),
                    ctx.button("filter:all", "browse_filter_all")]
        if not found.items:
            return ctx.reply("browse_empty", *filters, filter=label)
        lines = [ctx.t("browse_header", filter=label, page=found.page, pages=found.pages,
                       total=found.total)]
        lines += [self._line(ctx, item) for item in found.items]
        if hint:
            lines.append(ctx.t(hint))
        buttons = [ctx.button(f"loan:{item.id}", "browse_button", id=item.id,
                              rate=percent(item.annual_rate), term=item.term_months,
                              grade=item.grade) for item in found.items]
        if found.page < found.pages:
            buttons.append(ctx.button("more", "browse_more"))
        return Reply("\n".join(lines), tuple(buttons + filters))

    def _line(self, ctx: Ctx, item: Listing) -> str:
        return ctx.t("browse_line", id=item.id, borrower=self._borrower(ctx, item),
                     rate=percent(item.annual_rate), term=item.term_months, grade=item.grade,
                     risk=item.risk_level, funded=item.funded_pct)

    def _borrower(self, ctx: Ctx, item: Listing) -> str:
        facts = item.facts or {}
        region = facts.get("province_zh" if ctx.turn.locale == "zh-CN" else "province_en")
        try:
            job = ctx.t(f"browse_employment_{facts.get('employment')}")
        except KeyError:
            job = ctx.t("browse_unknown")
        return ctx.t("browse_borrower", name=facts.get("name", "*"),
                     age=facts.get("age_band", "?"), region=region or ctx.t("browse_unknown"),
                     income=facts.get("income_band", "?"), job=job)

    async def _open(self, ctx: Ctx, loan_id: int, hint: str | None = None) -> list[Reply]:
        try:
            item = await ctx.core.listings.get(ctx.uow, loan_id)
        except DomainError as exc:
            return [ctx.error(exc)]
        ctx.data["loan_id"] = loan_id
        ctx.goto("detail")
        product = ctx.core.settings.lending.products.get(item.product)
        product_name = (item.product if product is None else product.name_zh
                        if ctx.turn.locale == "zh-CN" else product.name_en)
        hours = item.time_left(ctx.uow.clock.now()) // 3600
        text = ctx.t("browse_detail", id=item.id, product=product_name,
                     borrower=self._borrower(ctx, item), purpose=item.purpose,
                     amount=yuan(item.amount), remaining=yuan(item.remaining),
                     rate=percent(item.annual_rate), term=item.term_months,
                     method=ctx.t(f"invest_method_{item.method}"), grade=item.grade,
                     risk=item.risk_level, funded=item.funded_pct, investors=item.investors,
                     hours=hours)
        if hint:
            text += "\n" + ctx.t(hint)
        buttons: list[Button] = []
        if item.status == "listed" and hours > 0:
            buttons.append(ctx.button(f"invest:{item.id}", "browse_invest"))
        buttons.append(ctx.button("back", "browse_back"))
        return [Reply(text, tuple(buttons))]


class InvestFlow:
    name = "invest"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        loan_id = int(options["loan_id"])
        try:
            item = await ctx.core.listings.get(ctx.uow, loan_id)
            if item.status != "listed" or item.time_left(ctx.uow.clock.now()) == 0:
                raise ListingClosed("this listing no longer takes bids", loan_id=loan_id)
            await ctx.core.risk.require_suitable(ctx.uow, ctx.user_id, item.risk_level)
        except (RiskAssessmentRequired, SuitabilityMismatch) as exc:  # browsing goes on
            return [ctx.error(exc, ctx.button("flow:risk", "action_risk_questionnaire"))]
        except DomainError as exc:  # the current step (the loan's detail) stays
            return [ctx.error(exc)]
        ctx.begin(self.name)
        ctx.data["loan_id"] = loan_id
        ctx.goto("amount")
        lending = ctx.core.settings.lending
        balance = await ctx.core.wallet.summary(ctx.uow, ctx.user_id)
        return [ctx.reply("invest_ask_amount", loan_id=loan_id, remaining=yuan(item.remaining),
                          minimum=yuan(Money.of(lending.min_bid, ctx.core.currency)),
                          multiple=yuan(Money.of(lending.bid_multiple, ctx.core.currency)),
                          available=yuan(balance.available))]

    async def step(self, ctx: Ctx) -> list[Reply]:
        if _browse_action(ctx.inbound.action or ""):  # a button from an earlier list
            ctx.turn.flow, ctx.turn.step = "browse", "list"
            ctx.data.clear()
            return await BrowseFlow().step(ctx)
        if ctx.inbound.action == "invest:cancel":
            ctx.finish()
            return [ctx.reply("invest_cancelled",
                              ctx.button("flow:browse", "action_browse_listings"))]
        if ctx.inbound.action == "invest:confirm" and ctx.turn.step == "amount":
            return [ctx.reply("invest_ask_again")]  # a confirmation from before a refusal
        return await getattr(self, f"_{ctx.turn.step}")(ctx)

    async def _amount(self, ctx: Ctx) -> list[Reply]:
        loan_id = ctx.data["loan_id"]
        try:
            amount = parse_amount(ctx.inbound.text or "", ctx.core.currency)
            item = await ctx.core.listings.get(ctx.uow, loan_id)
            ctx.core.investing.check_amount(amount)
            if amount > item.remaining:
                raise BidExceedsRemaining("more than what remains", loan_id=loan_id,
                                          remaining=str(item.remaining.amount))
        except DomainError as exc:  # the step stays: at confirm, the amount shown still holds
            return [ctx.error(exc)]
        # One key per confirmation: a repeated tap on it invests once.
        tag = hashlib.sha256(ctx.inbound.message_id.encode()).hexdigest()[:12]
        ctx.data.update(amount=str(amount.amount), key=f"chat:{ctx.turn.id}:{loan_id}:{tag}")
        ctx.goto("confirm")
        mine = expected_share(item, amount, ctx.uow.clock.today())
        interest = sum((line.interest for line in mine), Money.zero(amount.currency))
        return [ctx.reply("invest_confirm", *self._confirm_buttons(ctx), loan_id=loan_id,
                          amount=yuan(amount), interest=yuan(interest),
                          method=ctx.t(f"invest_method_{item.method}"), months=len(mine),
                          first_due=mine[0].due_date.isoformat(), risk=item.risk_level,
                          warning=ctx.t("invest_risk_warning"))]

    def _confirm_buttons(self, ctx: Ctx) -> tuple[Button, Button]:
        return (ctx.button("invest:confirm", "invest_confirm_button"),
                ctx.button("invest:cancel", "invest_cancel_button"))

    async def _confirm(self, ctx: Ctx) -> list[Reply]:
        if ctx.inbound.action != "invest:confirm":
            if ctx.inbound.text:  # a new amount replaces the one shown
                return await self._amount(ctx)
            return [ctx.reply("invest_confirm_buttons", *self._confirm_buttons(ctx))]
        request = BidRequest(ctx.user_id, ctx.data["loan_id"],
                             Money.of(ctx.data["amount"], ctx.core.currency), ctx.data["key"],
                             channel=ctx.inbound.channel)
        try:
            done = await ctx.core.investing.invest(ctx.uow, request)
        except AMOUNT_REFUSALS as exc:
            ctx.goto("amount")
            return [ctx.error(exc), ctx.reply("invest_ask_again")]
        except BidExceedsRemaining as exc:
            if Decimal(exc.params.get("remaining", "0")) > 0:
                ctx.goto("amount")
                return [ctx.error(exc), ctx.reply("invest_ask_again")]
            ctx.finish()
            return [ctx.error(exc, ctx.button("flow:browse", "action_browse_listings"))]
        except InsufficientFunds as exc:  # kept: top up, then tap confirm or type less
            return [ctx.error(exc, ctx.button("flow:top_up", "action_top_up"),
                              *self._confirm_buttons(ctx))]
        except DomainError as exc:  # closed, novice-only, unsuitable: nothing to retry here
            ctx.finish()
            return [ctx.error(exc, ctx.button("flow:browse", "action_browse_listings"))]
        ctx.finish()
        key = ("invest_already" if done.duplicate else
               "invest_done_full" if done.loan_funded else "invest_done")
        return [ctx.reply(key, ctx.button("flow:browse", "action_browse_listings"),
                          ctx.button("flow:portfolio", "action_portfolio"),
                          loan_id=done.loan_id, amount=yuan(done.amount),
                          paid=yuan(done.paid), remaining=yuan(done.remaining))]


class PortfolioFlow:
    name = "portfolio"

    async def start(self, ctx: Ctx, **options: Any) -> list[Reply]:
        view = await ctx.core.views.investor(ctx.uow, ctx.user_id, UPCOMING_DAYS)
        # Bids still frozen (loan not yet funded) are not in the view's claims: show them apart.
        balance = await ctx.core.wallet.summary(ctx.uow, ctx.user_id)
        receipts = [ctx.t("portfolio_receipt", date=day.isoformat(), amount=yuan(amount))
                    for day, amount in view.upcoming[:UPCOMING]]
        annual = (ctx.t("portfolio_return_none") if view.annual_return is None
                  else ctx.t("portfolio_return", rate=percent(view.annual_return)))
        return [ctx.reply(
            "portfolio_summary", ctx.button("flow:browse", "action_browse_listings"),
            ctx.button("flow:top_up", "action_top_up"),
            frozen=yuan(balance.frozen), invested=yuan(view.invested),
            outstanding=yuan(view.outstanding),
            received=yuan(view.interest_received), receivable=yuan(view.interest_receivable),
            losses=yuan(view.losses), compensation=yuan(view.compensation), annual=annual,
            receipts="\n".join(receipts) or ctx.t("portfolio_no_receipts"))]

    async def step(self, ctx: Ctx) -> list[Reply]:
        ctx.finish()  # the portfolio is one message; nothing is collected
        return await self.start(ctx)
