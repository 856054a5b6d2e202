"""Promotions, paid by the platform through the ledger from its promotion account.

* Sign-up red packet: granted once per verified person (keyed by the identity hash, so a second
  account of the same person gets none), worth ``signup_red_packet``, usable on a first
  investment of at least ``red_packet_min_investment`` before it expires; the platform pays that
  part of the bid.
* Referral reward: the referrer receives ``referral_reward`` when the referee's first investment is
  disbursed (once per referee: the ledger key is the referee's).
* Interest boost coupon: +p% a year on one investment; servicing pays the extra interest from the
  promotion account with each repayment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update

from config.settings import PromotionSettings
from core import analytics, notify
from core.adapters.sql import insert_ignore
from core.adapters.tables import users, vouchers
from core.adapters.uow import UnitOfWork
from core.domain.money import Currency, Money
from core.ledger import Ledger, Transfer, user_account
from core.services.lending.common import pct

PROMOTION = "platform:promotion_budget"


@dataclass(frozen=True, slots=True)
class Voucher:
    id: int
    kind: str
    value: Money
    min_investment: Money
    boost: Decimal
    status: str
    expires_at: datetime


class Promotions:
    def __init__(self, settings: PromotionSettings, currency: Currency, ledger: Ledger) -> None:
        self.settings = settings
        self.currency = currency
        self.ledger = ledger

    async def grant_signup_red_packet(self, uow: UnitOfWork, user_id: int,
                                      identity_hash: str) -> None:
        s = self.settings
        if s.signup_red_packet <= 0:
            return
        await self._grant(uow, user_id, "red_packet", f"red_packet:{identity_hash}"[:80],
                          value=s.signup_red_packet, min_investment=s.red_packet_min_investment,
                          days=s.red_packet_valid_days)

    async def grant_interest_boost(self, uow: UnitOfWork, user_id: int, source_key: str,
                                   boost_pct: Decimal | None = None) -> None:
        s = self.settings
        await self._grant(uow, user_id, "interest_boost", f"boost:{source_key}"[:80],
                          boost=pct(boost_pct if boost_pct is not None else s.interest_boost_pct),
                          days=s.interest_boost_valid_days)

    async def _grant(self, uow: UnitOfWork, user_id: int, kind: str, source_key: str, *,
                     days: int, value: Decimal = Decimal(0), min_investment: Decimal = Decimal(0),
                     boost: Decimal = Decimal(0)) -> None:
        now = uow.clock.now()
        result = await uow.conn.execute(insert_ignore(uow, vouchers, {
            "user_id": user_id, "kind": kind, "value": value, "min_investment": min_investment,
            "boost": boost, "status": "available", "source_key": source_key, "granted_at": now,
            "expires_at": now + timedelta(days=days)}, conflict=["source_key"]))
        if result.rowcount:
            await analytics.track(uow, "promotion_granted", user_id=user_id,
                                  props={"kind": kind, "value": str(value), "boost": str(boost)})
            await notify.enqueue(uow, user_id, "promotion_granted",
                                 {"kind": kind, "value": str(value),
                                  "min_investment": str(min_investment),
                                  "boost_pct": str(boost * 100), "days": days},
                                 dedupe_key=f"promotion_granted:{source_key}")

    async def vouchers(self, uow: UnitOfWork, user_id: int) -> list[Voucher]:
        """The user's usable vouchers (expired ones are marked as such on the way)."""
        v = vouchers.c
        now = uow.clock.now()
        await uow.conn.execute(update(vouchers).where(
            v.user_id == user_id, v.status == "available", v.expires_at <= now).values(
            status="expired"))
        rows = await uow.conn.execute(select(vouchers).where(
            v.user_id == user_id, v.status == "available").order_by(v.expires_at))
        return [Voucher(r.id, r.kind, Money.rounded(r.value, self.currency),
                        Money.rounded(r.min_investment, self.currency), r.boost, r.status,
                        r.expires_at) for r in rows]

    async def pay_referral_rewards(self, uow: UnitOfWork, loan_id: int,
                                   claims: list[Any]) -> None:
        """After a disbursement: each referred investor's first disbursed investment pays their
        referrer once (the ledger key is the referee's, so a second loan pays nothing)."""
        reward = self.settings.referral_reward
        if reward <= 0 or not claims:
            return
        investor_ids = sorted({c.investor_id for c in claims})
        rows = (await uow.conn.execute(select(users.c.id, users.c.referred_by).where(
            users.c.id.in_(investor_ids), users.c.referred_by.is_not(None)))).all()
        transfers = [Transfer.simple(
            f"referral:{row.id}", "reward", debit_account=PROMOTION,
            credit_account=user_account(row.referred_by, "available"),
            amount=Money.of(reward, self.currency),
            meta={"referee": row.id, "loan_id": loan_id}) for row in rows]
        if not transfers:
            return
        posted = await self.ledger.post_many(uow, transfers)
        for row, p in zip(rows, posted, strict=True):
            if p.status == "applied":
                await analytics.track(uow, "promotion_granted", user_id=row.referred_by,
                                      props={"kind": "referral_reward", "referee": row.id,
                                             "value": str(reward)})
                await notify.enqueue(uow, row.referred_by, "referral_reward",
                                     {"amount": str(reward)},
                                     dedupe_key=f"referral_reward:{row.id}")
