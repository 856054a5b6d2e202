"""Investing: bids on listings, one at a time or many in one pass.

A bid freezes the investor's money (available -> frozen) and raises the listing's funded amount.
Rules, each with its own refusal: the listing is open and not the investor's own; at least the
minimum and in multiples; at most what remains (the loser of a race is told what remained) and
what the investor has; suitability (Cn investor -> R1..Rn); novice-only listings for investors
without a prior investment, up to a cap; vouchers valid, own, unused and within their terms. A
request key makes a repeated tap invest once.

``invest_many`` is the fast path: a whole batch of requests (the bid desk collects concurrent
ones) is checked in memory against state read once under lock - listings ``FOR UPDATE`` on
PostgreSQL, the writer lock on SQLite - then written with a few bulk statements. Requests are
applied in arrival order, so a popular listing is never oversold and never overdraws a wallet;
the database's CHECK (funded <= amount) stands behind it.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, func, select, update

from config.settings import LendingSettings
from core import analytics, notify
from core.adapters.tables import bids, loans, risk_profiles, users, vouchers
from core.adapters.uow import UnitOfWork
from core.domain.errors import (
    BidBelowMinimum,
    BidExceedsRemaining,
    BidNotMultiple,
    DomainError,
    InsufficientFunds,
    InvestorRequired,
    ListingClosed,
    NoviceCapExceeded,
    NoviceOnly,
    OwnListing,
    RiskAssessmentRequired,
    UnknownLoan,
    VoucherUnavailable,
)
from core.domain.money import Currency, Money
from core.domain.risk_profile import Questionnaire
from core.ledger import Ledger, Transfer, credit, debit, user_account

PROMOTION = "platform:promotion_budget"


@dataclass(frozen=True, slots=True)
class BidRequest:
    investor_id: int
    loan_id: int
    amount: Money
    request_key: str
    voucher_id: int | None = None
    channel: str | None = None
    auto: bool = False


@dataclass(frozen=True, slots=True)
class BidResult:
    bid_id: int
    loan_id: int
    amount: Money
    paid: Money  # what left the investor's wallet (amount less a red packet)
    duplicate: bool
    remaining: Money  # still open on the listing after this bid
    loan_funded: bool
    first_investment: bool


@dataclass(slots=True)
class _Loan:
    row: Any
    funded: Decimal
    investors: set[int]


class Investing:
    def __init__(self, settings: LendingSettings, currency: Currency, ledger: Ledger,
                 questionnaire: Questionnaire) -> None:
        self.settings = settings
        self.currency = currency
        self.ledger = ledger
        self.questionnaire = questionnaire
        # Called with the ids of listings that became fully funded, in the same transaction.
        self.on_funded: list[Callable[[UnitOfWork, list[int]], Awaitable[None]]] = []

    async def invest(self, uow: UnitOfWork, request: BidRequest) -> BidResult:
        (result,) = await self.invest_many(uow, [request])
        if isinstance(result, DomainError):
            raise result
        return result

    async def invest_many(self, uow: UnitOfWork, requests: Sequence[BidRequest]
                          ) -> list[BidResult | DomainError]:
        out: list[BidResult | DomainError | None] = [None] * len(requests)
        live: list[int] = []
        for i, r in enumerate(requests):
            try:
                self.check_amount(r.amount)
                live.append(i)
            except DomainError as exc:
                out[i] = exc
        if not live:
            return [o for o in out if o is not None]
        state = await self._load(uow, [requests[i] for i in live])
        accepted: list[tuple[int, BidRequest, Money, dict[str, Any]]] = []
        first_of: dict[str, int] = {}
        repeats: dict[int, int] = {}  # a double tap inside one batch -> its first request
        for i in live:
            r = requests[i]
            if self._key(r) in first_of:
                repeats[i] = first_of[self._key(r)]
                continue
            first_of[self._key(r)] = i
            prior = state["existing"].get(self._key(r))
            if prior is not None:
                out[i] = self._duplicate(prior, state)
                continue
            try:
                pay, info = self._admit(r, state)
            except DomainError as exc:
                out[i] = exc
                continue
            accepted.append((i, r, pay, info))
        if accepted:
            await self._write(uow, accepted, state, out)
        for i, first in repeats.items():
            original = out[first]
            out[i] = (dataclasses.replace(original, duplicate=True, first_investment=False)
                      if isinstance(original, BidResult) else original)
        return [o for o in out if o is not None]

    def check_amount(self, amount: Money) -> None:
        """The bid rules an amount alone must meet (minimum, multiple), before any lock."""
        s = self.settings
        if amount.amount < s.min_bid:
            raise BidBelowMinimum("bid below the minimum", minimum=str(s.min_bid))
        if amount.amount % s.bid_multiple != 0:
            raise BidNotMultiple("bids go in multiples", multiple=str(s.bid_multiple))

    async def _load(self, uow: UnitOfWork, requests: list[BidRequest]) -> dict[str, Any]:
        loan_ids = sorted({r.loan_id for r in requests})
        investor_ids = sorted({r.investor_id for r in requests})
        lo, b, u, rp, v = loans.c, bids.c, users.c, risk_profiles.c, vouchers.c
        query = select(loans).where(lo.id.in_(loan_ids)).order_by(lo.id)
        if uow.dialect == "postgresql":
            query = query.with_for_update()
        loan_rows = {r.id: r for r in await uow.conn.execute(query)}
        investors_of = defaultdict(set)
        for row in await uow.conn.execute(select(b.loan_id, b.investor_id).where(
                b.loan_id.in_(loan_ids), b.status != "refunded").distinct()):
            investors_of[row.loan_id].add(row.investor_id)
        now = uow.clock.now()
        levels: dict[int, str] = {}
        for row in await uow.conn.execute(select(rp.user_id, rp.level).where(
                rp.user_id.in_(investor_ids), rp.expires_at > now)
                .order_by(rp.assessed_at, rp.id)):
            levels[row.user_id] = row.level  # the latest valid assessment wins
        investors = select(u.id, u.is_investor).where(u.id.in_(investor_ids)).order_by(u.id)
        if uow.dialect == "postgresql":  # one bid desk batch at a time per investor: the
            investors = investors.with_for_update()  # first-investment and voucher checks
        roles = {r.id: r.is_investor for r in await uow.conn.execute(investors)}
        prior_bids: dict[int, int] = defaultdict(int)
        for row in await uow.conn.execute(select(b.investor_id, func.count()).where(
                b.investor_id.in_(investor_ids), b.status != "refunded")
                .group_by(b.investor_id)):
            prior_bids[row[0]] = int(row[1])
        on_loan: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
        for row in await uow.conn.execute(select(b.loan_id, b.investor_id, func.sum(b.amount))
                                          .where(b.loan_id.in_(loan_ids),
                                                 b.investor_id.in_(investor_ids),
                                                 b.status != "refunded")
                                          .group_by(b.loan_id, b.investor_id)):
            on_loan[(row[0], row[1])] = Decimal(row[2])
        existing = {r.request_key: r for r in await uow.conn.execute(
            select(bids).where(b.request_key.in_([self._key(r) for r in requests])))}
        voucher_ids = [r.voucher_id for r in requests if r.voucher_id is not None]
        voucher_query = select(vouchers).where(v.id.in_(voucher_ids)).order_by(v.id)
        if uow.dialect == "postgresql":
            voucher_query = voucher_query.with_for_update()
        voucher_rows = {r.id: r for r in await uow.conn.execute(voucher_query)} \
            if voucher_ids else {}
        balances = await self.ledger.balances(
            uow, [user_account(i, "available") for i in investor_ids])
        budget = (await self.ledger.balance(uow, PROMOTION)).amount if voucher_rows else None
        return {
            "loans": {k: _Loan(r, Decimal(r.funded), set(investors_of[k]))
                      for k, r in loan_rows.items()},
            "levels": levels, "roles": roles, "prior": prior_bids, "on_loan": on_loan,
            "existing": existing, "vouchers": voucher_rows, "used_vouchers": set(),
            "available": {i: balances[user_account(i, "available")].amount
                          for i in investor_ids},
            "budget": budget,
            "now": now,
        }

    def _key(self, r: BidRequest) -> str:
        return f"{r.investor_id}:{r.request_key}"[:80]

    def _admit(self, r: BidRequest, state: dict[str, Any]) -> tuple[Money, dict[str, Any]]:
        """Check one request against the in-memory state and apply it there."""
        loan = state["loans"].get(r.loan_id)
        if loan is None:
            raise UnknownLoan(f"no loan {r.loan_id}", loan_id=r.loan_id)
        row = loan.row
        if row.status != "listed" and loan.funded >= Decimal(row.amount):
            # the usual end of a flash sale: tell the loser plainly that nothing remained
            raise BidExceedsRemaining("the listing was just fully funded", loan_id=r.loan_id,
                                      remaining=str(Money.zero(self.currency).amount))
        if row.status != "listed" or row.expires_at <= state["now"]:
            raise ListingClosed("this listing no longer takes bids", loan_id=r.loan_id)
        if row.borrower_id == r.investor_id:
            raise OwnListing("you cannot invest in your own loan")
        if not state["roles"].get(r.investor_id):
            raise InvestorRequired("register as an investor first")
        level = state["levels"].get(r.investor_id)
        if level is None:
            raise RiskAssessmentRequired("take the risk questionnaire first")
        self.questionnaire.check_suitability(level, row.risk_level)
        amount = r.amount.amount
        first = state["prior"][r.investor_id] == 0
        if row.novice_only:
            mine = state["on_loan"][(r.loan_id, r.investor_id)]
            if not first and mine == 0:
                raise NoviceOnly("this listing is for first investments only")
            if mine + amount > self.settings.novice_cap:
                raise NoviceCapExceeded("above the novice cap", cap=str(self.settings.novice_cap),
                                        left=str(Money.rounded(self.settings.novice_cap - mine,
                                                               self.currency).amount))
        remaining = Decimal(row.amount) - loan.funded
        if amount > remaining:
            raise BidExceedsRemaining("more than what remains", loan_id=r.loan_id,
                                      remaining=str(Money.rounded(remaining,
                                                                  self.currency).amount))
        bonus = Decimal(0)
        if r.voucher_id is not None:
            bonus = self._voucher_value(r, state, first)
        pay = amount - bonus
        available = state["available"][r.investor_id]
        if pay > available:
            raise InsufficientFunds("not enough available money",
                                    available=str(Money.rounded(available, self.currency).amount),
                                    needed=str(Money.rounded(pay, self.currency).amount))
        loan.funded += amount
        loan.investors.add(r.investor_id)
        state["available"][r.investor_id] = available - pay
        state["prior"][r.investor_id] += 1
        state["on_loan"][(r.loan_id, r.investor_id)] += amount
        return (Money.rounded(pay, self.currency),
                {"first": first, "bonus": bonus, "remaining": Decimal(row.amount) - loan.funded})

    def _voucher_value(self, r: BidRequest, state: dict[str, Any], first: bool) -> Decimal:
        v = state["vouchers"].get(r.voucher_id)
        if v is None or v.user_id != r.investor_id:
            raise VoucherUnavailable("not your voucher", reason="not_yours")
        if v.status != "available" or r.voucher_id in state["used_vouchers"]:
            raise VoucherUnavailable("voucher already used", reason="used")
        if v.expires_at <= state["now"]:
            raise VoucherUnavailable("voucher expired", reason="expired")
        if r.amount.amount < Decimal(v.min_investment):
            raise VoucherUnavailable("investment below the voucher's minimum",
                                     reason="below_minimum",
                                     minimum=str(Money.rounded(v.min_investment).amount))
        if v.kind == "red_packet" and not first:
            raise VoucherUnavailable("red packets are for a first investment",
                                     reason="first_investment_only")
        value = Decimal(v.value) if v.kind == "red_packet" else Decimal(0)
        if value > (state["budget"] or Decimal(0)):
            raise VoucherUnavailable("the promotion budget is used up for now",
                                     reason="budget_exhausted")
        state["budget"] -= value
        state["used_vouchers"].add(r.voucher_id)
        return value

    def _duplicate(self, prior: Any, state: dict[str, Any]) -> BidResult:
        loan = state["loans"].get(prior.loan_id)
        remaining = Decimal(loan.row.amount) - loan.funded if loan else Decimal(0)
        return BidResult(prior.id, prior.loan_id, Money.rounded(prior.amount, self.currency),
                         Money.rounded(prior.amount, self.currency), True,
                         Money.rounded(remaining, self.currency),
                         loan is not None and remaining == 0, False)

    async def _write(self, uow: UnitOfWork, accepted: list[tuple[int, BidRequest, Money,
                                                                  dict[str, Any]]],
                     state: dict[str, Any], out: list[Any]) -> None:
        transfers = []
        for _, r, pay, info in accepted:
            legs = [credit(user_account(r.investor_id, "frozen"), r.amount)]
            if pay.is_positive():
                legs.append(debit(user_account(r.investor_id, "available"), pay))
            if info["bonus"]:
                legs.append(debit(PROMOTION, Money.rounded(info["bonus"], self.currency)))
            transfers.append(Transfer(f"bid:{self._key(r)}", "bid", tuple(legs),
                                      meta={"loan_id": r.loan_id}))
        posted = await self.ledger.post_many(uow, transfers)
        refused = [p for p in posted if p.status != "applied"]
        if refused:  # state was read under lock, so this is a bug: fail the whole batch
            raise refused[0].error or RuntimeError(f"bid transfer {refused[0].key} not applied")
        now = state["now"]
        rows = [{"loan_id": r.loan_id, "investor_id": r.investor_id, "amount": r.amount.amount,
                 "status": "frozen", "request_key": self._key(r), "auto": r.auto,
                 "voucher_id": r.voucher_id, "channel": r.channel, "created_at": now}
                for _, r, _, _ in accepted]
        insert = bids.insert().returning(bids.c.id, sort_by_parameter_order=True)
        ids = (await uow.conn.execute(insert, rows)).scalars().all()
        funded_now: list[int] = []
        touched = {r.loan_id for _, r, _, _ in accepted}
        changes = []
        for loan_id in sorted(touched):
            loan = state["loans"][loan_id]
            full = loan.funded == Decimal(loan.row.amount)
            changes.append({"lid": loan_id, "funded_": loan.funded,
                            "investors_": len(loan.investors), "status_": "funded" if full
                            else "listed", "funded_at_": now if full else None})
            if full:
                funded_now.append(loan_id)
        lo = loans.c
        await uow.conn.execute(
            update(loans).where(lo.id == bindparam("lid")).values(
                funded=bindparam("funded_", type_=lo.funded.type),
                investors=bindparam("investors_"), status=bindparam("status_"),
                funded_at=bindparam("funded_at_", type_=lo.funded_at.type)),
            changes)
        used = [{"vid": r.voucher_id, "bid": bid_id, "at": now}
                for (_, r, _, _), bid_id in zip(accepted, ids, strict=True) if r.voucher_id]
        if used:
            await uow.conn.execute(update(vouchers).where(
                vouchers.c.id == bindparam("vid"), vouchers.c.status == "available")
                .values(status="used", used_at=bindparam("at"), bid_id=bindparam("bid")), used)
        events, notices = [], []
        for (i, r, pay, info), bid_id in zip(accepted, ids, strict=True):
            loan = state["loans"][r.loan_id]
            remaining = Money.rounded(Decimal(loan.row.amount) - loan.funded, self.currency)
            out[i] = BidResult(bid_id, r.loan_id, r.amount, pay, False,
                               Money.rounded(info["remaining"], self.currency),
                               r.loan_id in funded_now, info["first"])
            events.append({"name": "invested", "user_id": r.investor_id, "channel": r.channel,
                           "props": {"loan_id": r.loan_id, "amount": str(r.amount.amount),
                                     "first_investment": info["first"], "auto": r.auto}})
            if r.voucher_id:
                events.append({"name": "promotion_used", "user_id": r.investor_id,
                               "props": {"voucher_id": r.voucher_id, "bid_id": bid_id}})
            notices.append({"user_id": r.investor_id,
                            "template": "auto_invest_executed" if r.auto else "bid_accepted",
                            "params": {"loan_id": r.loan_id, "amount": str(r.amount.amount),
                                       "remaining": str(remaining.amount)},
                            "dedupe_key": f"bid_accepted:{bid_id}"})
        for loan_id in funded_now:
            events.append({"name": "loan_funded", "user_id": state["loans"][loan_id]
                           .row.borrower_id, "props": {"loan_id": loan_id}})
        await analytics.track_many(uow, events)
        await notify.enqueue_many(uow, notices)
        if funded_now:
            for hook in self.on_funded:
                await hook(uow, funded_now)
