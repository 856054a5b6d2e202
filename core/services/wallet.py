"""Wallet with custody: top-ups and withdrawals through the custody bank, balances, statement.

A top-up is an order: created pending (idempotent by the client's request key), opened at the bank
after our transaction commits, and completed by the bank's signed callback - which may come late,
twice, or after a newer one. Only the first final answer counts; money moves through the ledger
under a key derived from the order, so a repeated callback cannot move it twice. A withdrawal
freezes the amount plus fee first; the bank's success lets it leave custody (the fee becomes
platform income), its failure returns it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select, type_coerce, update

from config.settings import WalletSettings
from core import analytics, notify
from core.adapters.tables import (
    bank_callbacks,
    ledger_accounts,
    ledger_postings,
    ledger_transfers,
    payment_orders,
)
from core.adapters.types import Amount
from core.adapters.uow import UnitOfWork, UnitOfWorkFactory
from core.domain.errors import (
    BankUnavailable,
    BelowMinimumTopUp,
    DailyWithdrawalLimit,
    InvalidAmount,
    InvalidCallback,
    WithdrawalOutOfRange,
)
from core.domain.money import Currency, Money
from core.ledger import Ledger, Transfer, credit, debit, user_account
from core.providers.bank import CustodyBank, signature_valid
from core.services.cards import Cards
from core.services.flags import raise_flag
from core.services.kyc import Kyc

log = logging.getLogger(__name__)
CUSTODY = "platform:custody_cash"
FEE_INCOME = "platform:fee_income"

# How a transfer kind reads on a user's statement (资金流水).
STATEMENT_KINDS = {
    "top_up": "top_up", "withdrawal_freeze": "withdrawal", "withdrawal_release": "refund",
    "bid": "bid", "reversal:bid": "refund", "disbursement": "disbursement",
    "repayment": "repayment", "repayment_received": "repayment_received", "fee": "fee",
    "reward": "reward", "compensation": "compensation",
}


@dataclass(frozen=True, slots=True)
class BalanceSummary:
    available: Money
    frozen: Money
    invested_outstanding: Money
    interest_receivable: Money

    @property
    def total(self) -> Money:
        return self.available + self.frozen + self.invested_outstanding


@dataclass(frozen=True, slots=True)
class StatementEntry:
    at: datetime
    kind: str
    amount: Money  # signed: money in positive, money out negative
    balance: Money  # available balance after this movement
    transfer_id: str


@dataclass(frozen=True, slots=True)
class StatementPage:
    entries: list[StatementEntry]
    page: int
    pages: int
    total: int


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    kind: str
    amount: Money
    fee: Money
    status: str
    bank_ref: str | None


class Wallet:
    def __init__(self, settings: WalletSettings, currency: Currency, ledger: Ledger,
                 bank: CustodyBank, cards: Cards, kyc: Kyc, callback_secret: bytes) -> None:
        self.settings = settings
        self.currency = currency
        self.ledger = ledger
        self.bank = bank
        self.cards = cards
        self.kyc = kyc
        self._secret = callback_secret
        self.claims_reader: Any = None  # set by the lending part: outstanding claims, interest

    # Top-up ---------------------------------------------------------------------------------

    async def request_top_up(self, uow: UnitOfWork, user_id: int, amount: Money,
                             request_key: str) -> Order:
        await self.kyc.verified_person(uow, user_id)
        card = await self.cards.require_card(uow, user_id)
        if amount.amount < self.settings.min_top_up:
            raise BelowMinimumTopUp(f"the minimum top-up is {self.settings.min_top_up}",
                                    minimum=str(self.settings.min_top_up))
        existing = await self._order_by_key(uow, user_id, request_key)
        if existing is not None:
            self._reopen_if_lost(uow, existing)
            return existing
        order = await self._create_order(uow, user_id, "top_up", amount,
                                         Money.zero(self.currency), card.id, request_key)
        uow.after_commit.append(lambda: self._open_at_bank(uow.factory, order))
        return order

    # Withdrawal -----------------------------------------------------------------------------

    async def request_withdrawal(self, uow: UnitOfWork, user_id: int, amount: Money,
                                 request_key: str) -> Order:
        await self.kyc.verified_person(uow, user_id)
        card = await self.cards.require_card(uow, user_id)
        s = self.settings
        if not s.min_withdrawal <= amount.amount <= s.max_withdrawal:
            raise WithdrawalOutOfRange("amount outside the withdrawal range",
                                       minimum=str(s.min_withdrawal), maximum=str(s.max_withdrawal))
        existing = await self._order_by_key(uow, user_id, request_key)
        if existing is not None:
            self._reopen_if_lost(uow, existing)
            return existing
        today_total = await self._withdrawn_today(uow, user_id)
        if today_total + amount.amount > s.daily_withdrawal_limit:
            left = Money.rounded(max(Decimal(0), s.daily_withdrawal_limit - today_total),
                                 self.currency)
            raise DailyWithdrawalLimit("daily withdrawal limit reached",
                                       limit=str(s.daily_withdrawal_limit), left=str(left.amount))
        fee = Money.of(s.withdrawal_fee, self.currency)
        # a refused freeze leaves no order behind, even if the caller commits its transaction
        async with uow.savepoint():
            order = await self._create_order(uow, user_id, "withdrawal", amount, fee, card.id,
                                             request_key)
            await self.ledger.post(uow, Transfer(
                f"withdrawal:{order.id}:freeze", "withdrawal_freeze",
                (debit(user_account(user_id, "available"), amount + fee),
                 credit(user_account(user_id, "frozen"), amount + fee)),
                meta={"order_id": order.id}))
        await self._check_quick_in_out(uow, user_id, order.id)
        uow.after_commit.append(lambda: self._open_at_bank(uow.factory, order))
        return order

    async def _withdrawn_today(self, uow: UnitOfWork, user_id: int) -> Decimal:
        p = payment_orders.c
        day_start = datetime.combine(uow.clock.today(), time(), uow.clock.tz)
        total = (await uow.conn.execute(
            select(func.coalesce(func.sum(p.amount), 0)).where(
                p.user_id == user_id, p.kind == "withdrawal", p.status != "failed",
                p.created_at >= day_start))).scalar_one()
        return Decimal(total)

    async def _check_quick_in_out(self, uow: UnitOfWork, user_id: int, order_id: str) -> None:
        """AML: money topped up and withdrawn within hours, never invested."""
        since = uow.clock.now() - timedelta(hours=self.settings.aml_in_out_hours)
        p = payment_orders.c
        topped = (await uow.conn.execute(select(func.count()).where(
            p.user_id == user_id, p.kind == "top_up", p.status == "succeeded",
            p.completed_at >= since))).scalar_one()
        if not topped:
            return
        t, a, lp = ledger_transfers.c, ledger_accounts.c, ledger_postings.c
        invested = (await uow.conn.execute(
            select(func.count()).select_from(
                ledger_postings.join(ledger_transfers, t.id == lp.transfer_id)
                .join(ledger_accounts, a.id == lp.account_id))
            .where(a.code == user_account(user_id, "available"), t.kind == "bid",
                   t.posted_at >= since))).scalar_one()
        if not invested:
            await raise_flag(uow, "aml_quick_in_out", f"aml_quick_in_out:{order_id}",
                             user_id=user_id, details={"order_id": order_id, "hours":
                                                       self.settings.aml_in_out_hours})

    # Orders at the bank ---------------------------------------------------------------------

    async def _create_order(self, uow: UnitOfWork, user_id: int, kind: str, amount: Money,
                            fee: Money, card_id: int, request_key: str) -> Order:
        if not amount.is_positive():
            raise InvalidAmount("the amount must be positive")
        order_id = f"{kind[0].upper()}{uow.clock.now():%Y%m%d}{secrets.token_hex(6).upper()}"
        await uow.conn.execute(payment_orders.insert().values(
            id=order_id, user_id=user_id, kind=kind, amount=amount.amount, fee=fee.amount,
            status="pending", card_id=card_id, request_key=f"{user_id}:{request_key}"[:64],
            created_at=uow.clock.now()))
        return Order(order_id, kind, amount, fee, "pending", None)

    async def _order_by_key(self, uow: UnitOfWork, user_id: int, key: str) -> Order | None:
        p = payment_orders.c
        row = (await uow.conn.execute(select(payment_orders).where(
            p.request_key == f"{user_id}:{key}"[:64]))).first()
        return None if row is None else self._order(row)

    def _order(self, row: Any) -> Order:
        return Order(row.id, row.kind, Money.of(row.amount, self.currency),
                     Money.of(row.fee, self.currency), row.status, row.bank_ref)

    def _reopen_if_lost(self, uow: UnitOfWork, order: Order) -> None:
        """A repeated request finds its order never reached the bank: send it (again)."""
        if order.status == "pending" and order.bank_ref is None:
            uow.after_commit.append(lambda: self._open_at_bank(uow.factory, order))

    async def reopen_stale(self, uow_factory: UnitOfWorkFactory,
                           older_than: timedelta = timedelta(minutes=10)) -> int:
        """Orders still pending with no bank reference (the call after our commit failed, or
        the process stopped in between) are sent again; the bank dedupes by order id."""
        p = payment_orders.c
        async with uow_factory(read_only=True) as uow:
            rows = (await uow.conn.execute(select(payment_orders).where(
                p.status == "pending", p.bank_ref.is_(None),
                p.created_at < uow.clock.now() - older_than))).all()
        for row in rows:
            await self._open_at_bank(uow_factory, self._order(row))
        return len(rows)

    async def _open_at_bank(self, uow_factory: UnitOfWorkFactory, order: Order) -> None:
        try:
            if order.kind == "top_up":
                ref = await self.bank.open_top_up(order.id, order.amount.amount)
            else:
                async with uow_factory(read_only=True) as uow:
                    card_id = (await uow.conn.execute(select(payment_orders.c.card_id).where(
                        payment_orders.c.id == order.id))).scalar_one()
                    number = await self.cards.card_number(uow, card_id)
                    holder = (await self.kyc.verified_person(uow, await self._owner(
                        uow, order.id))).full_name
                ref = await self.bank.open_payout(order.id, order.amount.amount, number, holder)
        except BankUnavailable:
            async with uow_factory() as uow:
                await self._finish(uow, order.id, succeeded=False, reason="bank_unavailable")
                await uow.commit()
            return
        except Exception:  # a timeout or a dropped connection: the sweeper tries again
            log.exception("order %s could not be sent to the bank; it stays pending", order.id)
            return
        async with uow_factory() as uow:
            await uow.conn.execute(update(payment_orders).where(
                payment_orders.c.id == order.id).values(bank_ref=ref))
            await uow.commit()

    async def _owner(self, uow: UnitOfWork, order_id: str) -> int:
        return int((await uow.conn.execute(select(payment_orders.c.user_id).where(
            payment_orders.c.id == order_id))).scalar_one())

    async def handle_callback(self, uow: UnitOfWork, payload: dict[str, Any],
                              signature: str) -> str:
        """Apply a bank callback. Returns ``applied``, ``duplicate`` (seen, or the order is
        already final) or ``ignored`` (a non-final status); raises ``InvalidCallback`` for a
        forged or inconsistent one, changing nothing."""
        if not isinstance(payload, dict) or not signature_valid(payload, signature, self._secret):
            raise InvalidCallback("bad signature")
        try:
            nonce, order_id, status = payload["nonce"], payload["order_id"], payload["status"]
            amount = Decimal(payload["amount"])
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise InvalidCallback("malformed callback") from exc
        seen = (await uow.conn.execute(select(bank_callbacks.c.nonce).where(
            bank_callbacks.c.nonce == str(nonce)))).first()
        if seen is not None:
            return "duplicate"
        row = (await uow.conn.execute(select(payment_orders).where(
            payment_orders.c.id == str(order_id)))).first()
        if row is None or row.amount != amount or (row.bank_ref and
                                                    row.bank_ref != payload.get("bank_ref")):
            raise InvalidCallback("the callback does not match an order")
        outcome = "ignored"
        if status in ("succeeded", "failed"):
            outcome = "duplicate" if row.status != "pending" else "applied"
            if outcome == "applied":
                await uow.conn.execute(update(payment_orders).where(
                    payment_orders.c.id == row.id).values(bank_ref=payload.get("bank_ref")))
                await self._finish(uow, row.id, succeeded=status == "succeeded",
                                   reason=str(payload.get("reason") or "bank_declined"))
        await uow.conn.execute(bank_callbacks.insert().values(
            nonce=str(nonce), order_id=row.id, status=str(status), outcome=outcome,
            received_at=uow.clock.now()))
        return outcome

    async def _finish(self, uow: UnitOfWork, order_id: str, *, succeeded: bool,
                      reason: str) -> None:
        p = payment_orders.c
        row = (await uow.conn.execute(select(payment_orders).where(p.id == order_id))).one()
        if row.status != "pending":
            return
        user = row.user_id
        amount, fee = Money.of(row.amount, self.currency), Money.of(row.fee, self.currency)
        now = uow.clock.now()
        available, frozen = user_account(user, "available"), user_account(user, "frozen")
        if row.kind == "top_up" and succeeded:
            await self.ledger.post(uow, Transfer.simple(
                f"top_up:{order_id}", "top_up", debit_account=CUSTODY, credit_account=available,
                amount=amount, meta={"order_id": order_id}))
            await self._after_top_up(uow, user, order_id, amount)
        elif row.kind == "withdrawal" and succeeded:
            legs = [debit(frozen, amount + fee), credit(CUSTODY, amount)]
            if fee.is_positive():
                legs.append(credit(FEE_INCOME, fee))
            await self.ledger.post(uow, Transfer(f"withdrawal:{order_id}:settle",
                                                 "withdrawal_settle", tuple(legs),
                                                 meta={"order_id": order_id}))
        elif row.kind == "withdrawal":
            await self.ledger.post(uow, Transfer.simple(
                f"withdrawal:{order_id}:release", "withdrawal_release", debit_account=frozen,
                credit_account=available, amount=amount + fee, meta={"order_id": order_id}))
        status = "succeeded" if succeeded else "failed"
        await uow.conn.execute(update(payment_orders).where(p.id == order_id).values(
            status=status, completed_at=now, failure_reason=None if succeeded else reason))
        await notify.enqueue(uow, user, f"{row.kind}_result",
                             {"status": status, "amount": str(amount.amount), "order_id": order_id,
                              "reason": None if succeeded else reason},
                             dedupe_key=f"{row.kind}_result:{order_id}")

    async def _after_top_up(self, uow: UnitOfWork, user_id: int, order_id: str,
                            amount: Money) -> None:
        p = payment_orders.c
        earlier = (await uow.conn.execute(select(func.count()).where(
            p.user_id == user_id, p.kind == "top_up", p.status == "succeeded"))).scalar_one()
        await analytics.track(uow, "first_top_up" if earlier == 0 else "top_up",
                              user_id=user_id, props={"amount": str(amount.amount)})
        if amount.amount >= self.settings.aml_large_top_up:
            await raise_flag(uow, "aml_large_top_up", f"aml_large_top_up:{order_id}",
                             user_id=user_id, details={"order_id": order_id,
                                                       "amount": str(amount.amount)})

    async def order(self, uow: UnitOfWork, order_id: str) -> Order:
        row = (await uow.conn.execute(select(payment_orders).where(
            payment_orders.c.id == order_id))).one()
        return self._order(row)

    # Reading --------------------------------------------------------------------------------

    async def summary(self, uow: UnitOfWork, user_id: int) -> BalanceSummary:
        codes = [user_account(user_id, "available"), user_account(user_id, "frozen")]
        balances = await self.ledger.balances(uow, codes)
        zero = Money.zero(self.currency)
        invested, interest = zero, zero
        if self.claims_reader is not None:
            invested, interest = await self.claims_reader(uow, user_id)
        return BalanceSummary(balances[codes[0]], balances[codes[1]], invested, interest)

    async def statement(self, uow: UnitOfWork, user_id: int, *, page: int = 1,
                        page_size: int = 20) -> StatementPage:
        """Every movement of the user's available money, newest first, with running balance."""
        if page < 1 or not 1 <= page_size <= 100:
            raise ValueError("page starts at 1; page size is 1-100")
        a, lp, t = ledger_accounts.c, ledger_postings.c, ledger_transfers.c
        account_id = (await uow.conn.execute(select(a.id).where(
            a.code == user_account(user_id, "available")))).scalar_one()
        total = (await uow.conn.execute(select(func.count()).where(
            lp.account_id == account_id))).scalar_one()
        # credit-normal account: a credit (negative posting) is money in
        running = type_coerce(func.sum(-lp.amount).over(order_by=lp.id), Amount)
        inner = (select(lp.id, lp.posted_at, lp.amount, lp.transfer_id,
                        running.label("balance"))
                 .where(lp.account_id == account_id).subquery())
        rows = await uow.conn.execute(
            select(inner, t.kind).join(ledger_transfers, and_(t.id == inner.c.transfer_id))
            .order_by(inner.c.id.desc()).limit(page_size).offset((page - 1) * page_size))
        entries = [StatementEntry(
            r.posted_at, STATEMENT_KINDS.get(r.kind, r.kind),
            Money.rounded(-r.amount, self.currency),
            Money.rounded(r.balance, self.currency), r.transfer_id) for r in rows]
        pages = max(1, -(-total // page_size))
        return StatementPage(entries, page, pages, total)

