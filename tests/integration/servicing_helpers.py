"""Active loans with investors, and ways to move the business calendar."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select

from core.adapters.tables import installments
from core.bootstrap import Core
from core.invariants import run_checks
from core.ledger import user_account
from core.services.lending.investing import BidRequest
from tests.integration.accounts_helpers import Person
from tests.integration.lending_helpers import cny, investor, listed_loan


async def active_loan(core: Core, amount: str = "10000", shares: tuple[str, ...] = (
        "5000", "3000", "2000"), **kwargs: object) -> tuple[Person, list[Person], int]:
    """A disbursed loan with one investor per share."""
    borrower, loan_id = await listed_loan(core, amount, **kwargs)
    people = []
    for n, share in enumerate(shares):
        person = await investor(core, share)
        async with core.uow() as uow:
            await core.investing.invest(uow, BidRequest(person.user_id, loan_id, cny(share),
                                                        f"s{n}"))
            await uow.commit()
        people.append(person)
    return borrower, people, loan_id


async def schedule(core: Core, loan_id: int) -> list:
    async with core.uow(read_only=True) as uow:
        return (await uow.conn.execute(select(installments).where(
            installments.c.loan_id == loan_id).order_by(installments.c.period))).all()


async def available(core: Core, user_id: int) -> Decimal:
    async with core.uow(read_only=True) as uow:
        return (await core.ledger.balance(uow, user_account(user_id, "available"))).amount


async def fund_wallet(core: Core, person: Person, amount: str) -> None:
    """Money arriving for the borrower (a top-up through the bank)."""
    async with core.uow() as uow:
        order = await core.wallet.request_top_up(uow, person.user_id, cny(amount),
                                                 f"repay-{core.clock.now().timestamp()}")
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        ref = (await core.wallet.order(uow, order.id)).bank_ref
    await core.bank.settle(ref, succeeded=True)


async def drain_wallet(core: Core, person: Person) -> None:
    """The borrower spends the loan (withdraws everything but what cannot be withdrawn)."""
    from core.ledger import Transfer

    money = await available(core, person.user_id)
    if money <= 0:
        return
    async with core.uow() as uow:
        await core.ledger.post(uow, Transfer.simple(
            f"spend:{person.user_id}:{core.clock.now().timestamp()}", "withdrawal_settle",
            debit_account=user_account(person.user_id, "available"),
            credit_account="platform:custody_cash", amount=cny(str(money))))
        await uow.commit()


def set_day(core: Core, day: date, at: time = time(2, 0)) -> None:
    core.clock.set(datetime.combine(day, at, core.clock.tz))


async def run_day(core: Core, day: date, at: time = time(2, 0)) -> dict:
    set_day(core, day, at)
    return await core.daily.run(day)


async def violations(core: Core) -> list[str]:
    async with core.uow(read_only=True) as uow:
        return [str(v) for v in await run_checks(uow)]


def days(start: date, end: date):
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


async def repay(core: Core, loan_id: int, amount: str | None = None, key: str = "r1",
                settle: bool = False):
    """The borrower pays ``amount`` (or settles) on a loan, in a transaction of its own."""
    async with core.uow() as uow:
        result = await core.repayments.repay(uow, loan_id, cny(amount) if amount else None,
                                             request_key=key, settle=settle)
        await uow.commit()
    return result


async def loan_row(core: Core, loan_id: int):
    from core.adapters.tables import loans

    async with core.uow(read_only=True) as uow:
        return (await uow.conn.execute(select(loans).where(loans.c.id == loan_id))).one()
