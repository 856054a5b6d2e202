"""Auto-invest (robo-advisor): rules an investor authorises, matched against new listings.

A rule says which grades, rates and terms to buy, how much per loan, how much balance to keep,
a total cap, and at most what share of the portfolio one loan may take. Listings are matched in
the order they were listed; among auto-investors the queue is fair: the rule matched longest ago
(or never) goes first. Suitability is checked like a manual bid. The authorisation and every
action are recorded (audit log and events).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlalchemy import func, select, update

from config.settings import LendingSettings
from core import analytics
from core.adapters.tables import auto_invest_rules, bids, loans
from core.adapters.uow import UnitOfWork
from core.domain.errors import DomainError, InvalidAutoInvestRule
from core.domain.money import Currency, Money
from core.domain.risk_profile import Questionnaire
from core.ledger import Ledger, user_account
from core.services import audit
from core.services.lending.investing import BidRequest, Investing

GRADES = ("AA", "A", "B", "C", "D", "E")
CHUNK = 400  # investors per statement when reading their state


@dataclass(slots=True)
class _Investor:
    """What limits an auto-investor's next bid, kept current while a match places bids."""

    available: Decimal
    frozen: Decimal
    auto_total: Decimal  # auto-invested, not refunded (against the rule's total cap)
    outstanding: Decimal  # claims on disbursed loans


@dataclass(frozen=True, slots=True)
class AutoInvestRule:
    grades: tuple[str, ...]
    min_rate: Decimal  # fractions: 0.08 = 8%
    max_rate: Decimal
    min_term: int
    max_term: int
    amount_per_loan: Money
    keep_balance: Money
    total_cap: Money
    max_share_pct: Decimal  # percent of the portfolio one loan may take (e.g. 10)


class AutoInvest:
    def __init__(self, settings: LendingSettings, currency: Currency, ledger: Ledger,
                 investing: Investing, questionnaire: Questionnaire) -> None:
        self.settings = settings
        self.currency = currency
        self.ledger = ledger
        self.investing = investing
        self.questionnaire = questionnaire

    def validate(self, rule: AutoInvestRule) -> None:
        s = self.settings
        problems = []
        if not rule.grades or any(g not in GRADES for g in rule.grades):
            problems.append("grades")
        if not Decimal(0) <= rule.min_rate <= rule.max_rate < 1:
            problems.append("rate_range")
        if not 1 <= rule.min_term <= rule.max_term <= 360:
            problems.append("term_range")
        per_loan = rule.amount_per_loan.amount
        if per_loan < s.min_bid or per_loan % s.bid_multiple:
            problems.append("amount_per_loan")
        if rule.keep_balance.amount < 0 or rule.total_cap.amount < per_loan:
            problems.append("limits")
        if not 0 < rule.max_share_pct <= 100:
            problems.append("max_share_pct")
        if problems:
            raise InvalidAutoInvestRule(f"invalid rule: {', '.join(problems)}",
                                        field=problems[0], minimum=str(s.min_bid),
                                        multiple=str(s.bid_multiple))

    async def authorise(self, uow: UnitOfWork, investor_id: int, rule: AutoInvestRule) -> None:
        """Save (or replace) the investor's rule; the authorisation is audited."""
        self.validate(rule)
        r = auto_invest_rules.c
        values = {"grades": list(rule.grades), "min_rate": rule.min_rate,
                  "max_rate": rule.max_rate, "min_term": rule.min_term,
                  "max_term": rule.max_term, "amount_per_loan": rule.amount_per_loan.amount,
                  "keep_balance": rule.keep_balance.amount, "total_cap": rule.total_cap.amount,
                  "max_share_pct": rule.max_share_pct, "active": True,
                  "authorised_at": uow.clock.now()}
        existing = (await uow.conn.execute(select(r.id).where(r.investor_id == investor_id))
                    ).first()
        if existing is None:
            await uow.conn.execute(auto_invest_rules.insert().values(investor_id=investor_id,
                                                                     **values))
        else:
            await uow.conn.execute(update(auto_invest_rules).where(r.id == existing.id)
                                   .values(**values))
        await audit.record(uow, "auto_invest_authorised", "user", investor_id,
                           actor_kind="user", actor_id=investor_id,
                           details={k: str(v) for k, v in values.items()})

    async def revoke(self, uow: UnitOfWork, investor_id: int) -> None:
        r = auto_invest_rules.c
        await uow.conn.execute(update(auto_invest_rules).where(r.investor_id == investor_id)
                               .values(active=False))
        await audit.record(uow, "auto_invest_revoked", "user", investor_id, actor_kind="user",
                           actor_id=investor_id)

    async def rule(self, uow: UnitOfWork, investor_id: int) -> AutoInvestRule | None:
        r = auto_invest_rules.c
        row = (await uow.conn.execute(select(auto_invest_rules).where(
            r.investor_id == investor_id, r.active.is_(True)))).first()
        if row is None:
            return None
        m = self.currency
        return AutoInvestRule(tuple(row.grades), row.min_rate, row.max_rate, row.min_term,
                              row.max_term, Money.rounded(row.amount_per_loan, m),
                              Money.rounded(row.keep_balance, m), Money.rounded(row.total_cap, m),
                              row.max_share_pct)

    async def match(self, uow: UnitOfWork, loan_ids: list[int] | None = None) -> int:
        """Match open listings (oldest first) against active rules; return bids placed.

        What limits each auto-investor (balances, auto-invested total, outstanding claims) is
        read once for every active rule's investor and kept up to date in memory as bids are
        placed, so a listing costs a query for its rules plus the bids it gets, not three
        queries per rule."""
        lo, r = loans.c, auto_invest_rules.c
        query = select(loans).where(lo.status == "listed", lo.expires_at > uow.clock.now())
        if loan_ids is not None:
            query = query.where(lo.id.in_(loan_ids))
        listed = (await uow.conn.execute(query.order_by(lo.listed_at, lo.id))).all()
        if not listed:
            return 0
        investors = await self._investors(uow)
        placed = 0
        for loan in listed:
            rules = (await uow.conn.execute(
                select(auto_invest_rules).where(
                    r.active.is_(True), r.min_rate <= loan.annual_rate,
                    r.max_rate >= loan.annual_rate, r.min_term <= loan.term_months,
                    r.max_term >= loan.term_months, r.investor_id != loan.borrower_id)
                .order_by(r.last_matched_at.is_not(None), r.last_matched_at, r.id))).all()
            remaining = Decimal(loan.amount) - Decimal(loan.funded)
            for rule in rules:
                if remaining < self.settings.min_bid:
                    break
                if loan.grade not in rule.grades:
                    continue
                state = investors.get(rule.investor_id)
                amount = None if state is None else self._amount_for(rule, state, remaining)
                if amount is None:
                    continue
                try:
                    result = await self.investing.invest(uow, BidRequest(
                        rule.investor_id, loan.id, Money.of(amount, self.currency),
                        f"auto:{loan.id}", channel="auto", auto=True))
                except DomainError:
                    continue  # unsuitable, novice-only, ...: the next rule in the queue
                if result.duplicate:
                    continue
                placed += 1
                remaining -= amount
                state.available -= amount
                state.frozen += amount
                state.auto_total += amount
                await uow.conn.execute(update(auto_invest_rules).where(r.id == rule.id)
                                       .values(last_matched_at=uow.clock.now()))
                await analytics.track(uow, "auto_invest_executed", user_id=rule.investor_id,
                                      channel="auto", props={"loan_id": loan.id,
                                                             "amount": str(amount)})
                await audit.record(uow, "auto_invest_bid", "loan", loan.id, actor_kind="user",
                                   actor_id=rule.investor_id, details={"amount": str(amount)})
        return placed

    async def _investors(self, uow: UnitOfWork) -> dict[int, _Investor]:
        """The state of every investor with an active rule, in a few statements."""
        r, b = auto_invest_rules.c, bids.c
        ids = list((await uow.conn.execute(
            select(r.investor_id).where(r.active.is_(True)).distinct())).scalars())
        found: dict[int, _Investor] = {}
        for start in range(0, len(ids), CHUNK):
            part = ids[start:start + CHUNK]
            balances = await self.ledger.balances(
                uow, [user_account(i, kind) for i in part for kind in ("available", "frozen")])
            sums = {}
            for label, condition in (("auto", b.auto.is_(True) & (b.status != "refunded")),
                                     ("active", b.status == "active")):
                sums[label] = dict((await uow.conn.execute(
                    select(b.investor_id, func.sum(b.amount)).where(
                        b.investor_id.in_(part), condition).group_by(b.investor_id))).all())
            for i in part:
                found[i] = _Investor(
                    available=balances[user_account(i, "available")].amount,
                    frozen=balances[user_account(i, "frozen")].amount,
                    auto_total=Decimal(sums["auto"].get(i) or 0),
                    outstanding=Decimal(sums["active"].get(i) or 0))
        return found

    def _amount_for(self, rule: Any, state: _Investor, remaining: Decimal) -> Decimal | None:
        portfolio = state.available + state.frozen + state.outstanding
        limits = [Decimal(rule.amount_per_loan), state.available - Decimal(rule.keep_balance),
                  remaining, Decimal(rule.total_cap) - state.auto_total,
                  portfolio * Decimal(rule.max_share_pct) / 100]
        amount = min(limits)
        step = self.settings.bid_multiple
        amount = (amount / step).to_integral_value(rounding=ROUND_DOWN) * step
        return amount if amount >= self.settings.min_bid else None
