"""Ledger set-up shared by integration tests: users with wallets, money put into custody."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from core.adapters.tables import (
    ledger_postings,
    ledger_transfers,
    outbox,
    users,
)
from core.bootstrap import Core
from core.domain.money import Money
from core.ledger import Transfer, user_account


async def new_user(core: Core) -> int:
    async with core.uow() as uow:
        result = await uow.conn.execute(users.insert().values(created_at=uow.clock.now()))
        user_id = int(result.inserted_primary_key[0])
        await core.ledger.open_user_accounts(uow, user_id)
        await uow.commit()
    return user_id


def cny(value: str) -> Money:
    return Money.of(Decimal(value))


def top_up(user_id: int, amount: str, key: str) -> Transfer:
    """Money arriving at the custody bank for a user: custody cash up, the user's wallet up."""
    return Transfer.simple(key, "top_up", debit_account="platform:custody_cash",
                           credit_account=user_account(user_id, "available"), amount=cny(amount))


def pay(payer: int, payee: int, amount: str, key: str) -> Transfer:
    return Transfer.simple(key, "payment", debit_account=user_account(payer, "available"),
                           credit_account=user_account(payee, "available"), amount=cny(amount))


async def row_counts(core: Core) -> tuple[int, int, int]:
    async with core.uow(read_only=True) as uow:
        counts = []
        for table in (ledger_transfers, ledger_postings, outbox):
            counts.append((await uow.conn.execute(select(func.count()).select_from(table)))
                          .scalar_one())
    return counts[0], counts[1], counts[2]


async def available(core: Core, user_id: int) -> Decimal:
    async with core.uow(read_only=True) as uow:
        return (await core.ledger.balance(uow, user_account(user_id, "available"))).amount
