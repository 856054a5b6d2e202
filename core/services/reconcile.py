"""Daily reconciliation with the custody bank: its statement against our orders and ledger.

Every line the bank settled on a business date must match an order we completed that day with
the same amount and outcome, and that order's ledger transfer; every order we completed that day
must appear on the bank's statement. Each difference is listed; nothing is corrected
automatically (operations decide: a lost callback is re-sent, a real difference investigated).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select

from core.adapters.tables import ledger_transfers, payment_orders
from core.adapters.uow import UnitOfWorkFactory
from core.providers.bank import CustodyBank


@dataclass(frozen=True, slots=True)
class Mismatch:
    kind: str  # missing_in_ledger | missing_at_bank | amount_differs | outcome_differs
    order_id: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: order {self.order_id}: {self.detail}"


def ledger_key(kind: str, order_id: str) -> str:
    return f"top_up:{order_id}" if kind == "top_up" else f"withdrawal:{order_id}:settle"


async def reconcile(uow_factory: UnitOfWorkFactory, bank: CustodyBank,
                    business_date: date) -> list[Mismatch]:
    lines = {line.order_id: line for line in await bank.statement(business_date)}
    tz = uow_factory.clock.tz
    start = datetime.combine(business_date, time(), tz)
    end = start + timedelta(days=1)
    p, t = payment_orders.c, ledger_transfers.c
    async with uow_factory(read_only=True) as uow:
        ours = {r.id: r for r in await uow.conn.execute(select(payment_orders).where(
            (p.id.in_(list(lines))) | ((p.completed_at >= start) & (p.completed_at < end)
                                       & (p.status != "pending"))))}
        keys = [ledger_key(r.kind, r.id) for r in ours.values()]
        posted = set((await uow.conn.execute(
            select(t.idempotency_key).where(t.idempotency_key.in_(keys)))).scalars())
    found: list[Mismatch] = []
    for order_id, line in lines.items():
        order = ours.get(order_id)
        if order is None:
            found.append(Mismatch("missing_in_ledger", order_id,
                                  f"bank {line.status} {line.amount} with no order of ours"))
            continue
        if order.amount != line.amount:
            found.append(Mismatch("amount_differs", order_id,
                                  f"bank {line.amount}, ours {order.amount}"))
        if order.status != line.status:
            kind = "missing_in_ledger" if line.status == "succeeded" else "outcome_differs"
            found.append(Mismatch(kind, order_id, f"bank {line.status}, ours {order.status}"))
        elif line.status == "succeeded" and ledger_key(order.kind, order_id) not in posted:
            found.append(Mismatch("missing_in_ledger", order_id,
                                  "succeeded at the bank but no ledger transfer"))
    for order_id, order in ours.items():
        if order_id not in lines and order.status == "succeeded":
            found.append(Mismatch("missing_at_bank", order_id,
                                  f"ours {order.kind} {order.amount} not on the bank statement"))
    return found
