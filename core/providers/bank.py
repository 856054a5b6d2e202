"""Custody bank (资金存管): the interface to the bank that holds users' money, and its sandbox.

The platform never holds user money itself: top-ups are paid into, and withdrawals paid out of,
the custody bank. Both are asynchronous: the platform opens an order, the bank answers later with
a signed callback (success or failure). Like a real bank's test mode, the sandbox delays its
callbacks, fails a configured share of orders, sometimes sends a callback twice, and sometimes
sends a stale "processing" notice after the final answer. It keeps its own book
(``sandbox_bank_transactions``) so it can print a daily statement for reconciliation.

Callbacks are signed with HMAC-SHA256 over the canonical JSON of the payload; each carries a
nonce, so a replay is recognised.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import select, update

from core.adapters.tables import sandbox_bank_transactions
from core.adapters.uow import UnitOfWorkFactory
from core.domain.errors import BankUnavailable
from core.providers.sms import SmsProvider

log = logging.getLogger(__name__)
Deliver = Callable[[dict[str, Any], str], Awaitable[Any]]


def sign(payload: dict[str, Any], secret: bytes) -> str:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()


def signature_valid(payload: dict[str, Any], signature: str, secret: bytes) -> bool:
    return hmac.compare_digest(sign(payload, secret), signature or "")


@dataclass(frozen=True, slots=True)
class StatementLine:
    bank_ref: str
    order_id: str
    kind: str  # top_up | withdrawal
    amount: Decimal
    status: str  # succeeded | failed


class CustodyBank(Protocol):
    async def open_top_up(self, order_id: str, amount: Decimal) -> str: ...

    async def open_payout(self, order_id: str, amount: Decimal, card_number: str,
                          holder: str) -> str: ...

    async def start_card_binding(self, holder: str, id_number: str, card_number: str,
                                 phone: str) -> str: ...

    async def confirm_card_binding(self, ref: str, code: str) -> bool: ...

    async def statement(self, business_date: date) -> list[StatementLine]: ...


class SandboxBank:
    def __init__(self, uow: UnitOfWorkFactory, sms: SmsProvider, secret: bytes, *,
                 delay: float = 0.5, failure_rate: float = 0.0, duplicate_rate: float = 0.0,
                 auto_settle: bool = True, seed: int | None = None) -> None:
        self._uow = uow
        self._sms = sms
        self._secret = secret
        self.delay = delay
        self.failure_rate = failure_rate
        self.duplicate_rate = duplicate_rate
        self.auto_settle = auto_settle
        self.unavailable_next = 0
        self.deliver: Deliver | None = None
        self._random = random.Random(seed)
        self._bindings: dict[str, tuple[str, str]] = {}  # ref -> (code, card last4)
        self._tasks: set[asyncio.Task[None]] = set()

    # Orders ---------------------------------------------------------------------------------

    async def open_top_up(self, order_id: str, amount: Decimal) -> str:
        return await self._open(order_id, "top_up", amount)

    async def open_payout(self, order_id: str, amount: Decimal, card_number: str,
                          holder: str) -> str:
        return await self._open(order_id, "withdrawal", amount)

    async def _open(self, order_id: str, kind: str, amount: Decimal) -> str:
        if self.unavailable_next > 0:
            self.unavailable_next -= 1
            raise BankUnavailable("sandbox bank is in maintenance")
        async with self._uow(read_only=True) as uow:  # banks dedupe orders by their id
            known = (await uow.conn.execute(select(sandbox_bank_transactions.c.bank_ref).where(
                sandbox_bank_transactions.c.order_id == order_id))).scalar_one_or_none()
        if known is not None:
            return str(known)
        bank_ref = f"B{secrets.token_hex(8).upper()}"
        async with self._uow() as uow:
            await uow.conn.execute(sandbox_bank_transactions.insert().values(
                bank_ref=bank_ref, order_id=order_id, kind=kind, amount=amount,
                status="processing", created_at=uow.clock.now()))
            await uow.commit()
        if self.auto_settle:
            task = asyncio.create_task(self._settle_later(bank_ref))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return bank_ref

    async def _settle_later(self, bank_ref: str) -> None:
        await asyncio.sleep(self.delay * (0.5 + self._random.random()))
        succeeded = self._random.random() >= self.failure_rate
        await self.settle(bank_ref, succeeded=succeeded)
        if self._random.random() < self.duplicate_rate:
            await asyncio.sleep(self.delay * self._random.random())
            await self.redeliver(bank_ref)

    async def settle(self, bank_ref: str, *, succeeded: bool, reason: str = "") -> dict[str, Any]:
        """The bank finishes an order and calls the platform back. Returns the signed callback."""
        t = sandbox_bank_transactions.c
        async with self._uow() as uow:
            row = (await uow.conn.execute(
                select(sandbox_bank_transactions).where(t.bank_ref == bank_ref))).one()
            if row.status == "processing":
                await uow.conn.execute(update(sandbox_bank_transactions)
                                       .where(t.bank_ref == bank_ref)
                                       .values(status="succeeded" if succeeded else "failed",
                                               settled_at=uow.clock.now(),
                                               business_date=uow.clock.today()))
                await uow.commit()
            status = row.status if row.status != "processing" else (
                "succeeded" if succeeded else "failed")
        callback = self.callback(bank_ref, row.order_id, row.kind, row.amount, status, reason)
        await self._deliver(callback)
        return callback

    async def redeliver(self, bank_ref: str) -> dict[str, Any]:
        """Send the final callback of an order once more (banks retry until acknowledged)."""
        t = sandbox_bank_transactions.c
        async with self._uow(read_only=True) as uow:
            row = (await uow.conn.execute(
                select(sandbox_bank_transactions).where(t.bank_ref == bank_ref))).one()
        callback = self.callback(bank_ref, row.order_id, row.kind, row.amount, row.status, "")
        await self._deliver(callback)
        return callback

    def callback(self, bank_ref: str, order_id: str, kind: str, amount: Decimal, status: str,
                 reason: str = "") -> dict[str, Any]:
        payload = {"bank_ref": bank_ref, "order_id": order_id, "kind": kind,
                   "amount": f"{amount:.2f}", "status": status, "reason": reason,
                   "nonce": secrets.token_hex(12)}
        return {"payload": payload, "signature": sign(payload, self._secret)}

    async def _deliver(self, callback: dict[str, Any]) -> None:
        if self.deliver is None:
            return
        try:
            await self.deliver(callback["payload"], callback["signature"])
        except Exception:  # a real bank logs the failed delivery and retries later
            log.exception("sandbox bank: callback delivery failed")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # Card binding ---------------------------------------------------------------------------

    async def start_card_binding(self, holder: str, id_number: str, card_number: str,
                                 phone: str) -> str:
        """The bank texts a code to the phone it has on file for the card (预留手机号)."""
        if self.unavailable_next > 0:
            self.unavailable_next -= 1
            raise BankUnavailable("sandbox bank is in maintenance")
        ref = f"CB{secrets.token_hex(6).upper()}"
        code = f"{self._random.randrange(10**6):06d}"
        self._bindings[ref] = (code, card_number[-4:])
        await self._sms.send(phone, f"[Custody Bank] binding code {code} for the card ending "
                                    f"{card_number[-4:]}, valid 5 minutes.")
        return ref

    async def confirm_card_binding(self, ref: str, code: str) -> bool:
        expected = self._bindings.get(ref)
        if expected is None or not hmac.compare_digest(expected[0], code):
            return False
        del self._bindings[ref]
        return True

    # Statement ------------------------------------------------------------------------------

    async def statement(self, business_date: date) -> list[StatementLine]:
        t = sandbox_bank_transactions.c
        async with self._uow(read_only=True) as uow:
            rows = await uow.conn.execute(
                select(sandbox_bank_transactions)
                .where(t.business_date == business_date).order_by(t.settled_at, t.bank_ref))
            return [StatementLine(r.bank_ref, r.order_id, r.kind, r.amount, r.status)
                    for r in rows]
