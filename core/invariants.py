"""What the data must always satisfy. ``python run.py check`` runs every check and names each
violation; later parts of the product register their own checks with ``@invariant``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select, type_coerce

from core.adapters.tables import ledger_accounts, ledger_postings, ledger_transfers
from core.adapters.types import Amount
from core.adapters.uow import UnitOfWork

Check = Callable[[UnitOfWork], Awaitable[list[str]]]
CHECKS: dict[str, Check] = {}
MAX_REPORTED = 50


def invariant(name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn
    return register


@dataclass(frozen=True)
class Violation:
    check: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.detail}"


async def run_checks(uow: UnitOfWork) -> list[Violation]:
    found: list[Violation] = []
    for name, check in CHECKS.items():
        found.extend(Violation(name, d) for d in (await check(uow))[:MAX_REPORTED])
    return found


def _sum(column: object) -> object:
    return type_coerce(func.coalesce(func.sum(column), 0), Amount)


@invariant("ledger balanced")
async def transfers_balance(uow: UnitOfWork) -> list[str]:
    p = ledger_postings.c
    rows = await uow.conn.execute(
        select(p.transfer_id, _sum(p.amount).label("total"), func.count().label("legs"))
        .group_by(p.transfer_id)
        .having((func.sum(p.amount) != 0) | (func.count() < 2))
    )
    problems = [f"transfer {r.transfer_id} postings sum to {r.total} over {r.legs} leg(s)"
                for r in rows]
    t = ledger_transfers.c
    orphans = await uow.conn.execute(
        select(t.id).where(~select(p.id).where(p.transfer_id == t.id).exists()))
    problems += [f"transfer {r.id} has no postings" for r in orphans]
    return problems


@invariant("cached balances equal postings")
async def cached_balances(uow: UnitOfWork) -> list[str]:
    a, p = ledger_accounts.c, ledger_postings.c
    sums = (select(p.account_id, func.sum(p.amount).label("total"))
            .group_by(p.account_id).subquery())
    derived = type_coerce(func.coalesce(sums.c.total, 0), Amount)
    rows = await uow.conn.execute(
        select(a.code, a.normal_side, a.allow_negative, a.balance, derived.label("derived"))
        .select_from(ledger_accounts.outerjoin(sums, sums.c.account_id == a.id))
    )
    problems = []
    for r in rows:
        expected = r.derived if r.normal_side == "debit" else -r.derived
        if r.balance != expected:
            problems.append(f"account {r.code} caches {r.balance} but its postings give {expected}")
        if not r.allow_negative and expected < 0:
            problems.append(f"account {r.code} postings give a negative balance {expected}")
    return problems


@invariant("no account overdrawn")
async def no_negative_accounts(uow: UnitOfWork) -> list[str]:
    a = ledger_accounts.c
    rows = await uow.conn.execute(
        select(a.code, a.balance).where(a.allow_negative.is_(False), a.balance < 0))
    return [f"account {r.code} is at {r.balance}" for r in rows]


@invariant("custody covers every wallet")
async def custody_covers_wallets(uow: UnitOfWork) -> list[str]:
    """The custody bank's cash covers every user's money (available + frozen); what is left over
    is the platform's own funds (capital, fees, budgets, the protection fund), never negative."""
    a = ledger_accounts.c
    rows = (await uow.conn.execute(select(a.kind, a.balance))).all()
    custody = sum((r.balance for r in rows if r.kind == "custody_cash"), Decimal(0))
    users = sum((r.balance for r in rows if r.kind in ("user_available", "user_frozen")),
                Decimal(0))
    if custody < users:
        return [f"custody cash {custody} does not cover users' money {users}: short by "
                f"{users - custody}"]
    return []


@invariant("no listing oversold")
async def listings_not_oversold(uow: UnitOfWork) -> list[str]:
    """Each loan's funded amount is what its live bids add up to, and never above the amount."""
    from core.adapters.tables import bids, loans

    b, lo = bids.c, loans.c
    live = (select(b.loan_id, func.sum(b.amount).label("total"))
            .where(b.status != "refunded").group_by(b.loan_id).subquery())
    total = type_coerce(func.coalesce(live.c.total, 0), Amount)
    rows = await uow.conn.execute(
        select(lo.id, lo.status, lo.amount, lo.funded, total.label("bids"))
        .select_from(loans.outerjoin(live, live.c.loan_id == lo.id))
        .where(lo.status != "cancelled"))
    problems = []
    for r in rows:
        if r.funded != r.bids:
            problems.append(f"loan {r.id} records {r.funded} funded but its bids add up to "
                            f"{r.bids}")
        if r.bids > r.amount:
            problems.append(f"loan {r.id} is oversold: bids {r.bids} > amount {r.amount}")
        if r.status in ("funded", "active", "overdue", "repaid") and r.bids != r.amount:
            problems.append(f"loan {r.id} is {r.status} with bids {r.bids} of {r.amount}")
    return problems


@invariant("claims sum to outstanding principal")
async def claims_match_outstanding(uow: UnitOfWork) -> list[str]:
    """Per disbursed loan: outstanding = disbursed - repaid - written off; the investors'
    claims (bids less principal repaid to them) add up to the outstanding principal; after a
    write-off, their losses plus the fund's unrecovered compensation add up to the write-off."""
    from core.adapters.tables import bids, compensations, loans

    b, lo, c = bids.c, loans.c, compensations.c
    claims = (select(b.loan_id,
                     func.sum(b.amount - b.principal_repaid).label("claims"),
                     func.sum(b.written_off).label("lost"))
              .where(b.status == "active").group_by(b.loan_id).subquery())
    rows = await uow.conn.execute(
        select(lo.id, lo.status, lo.amount, lo.principal_outstanding, lo.principal_repaid,
               lo.principal_written_off,
               type_coerce(func.coalesce(claims.c.claims, 0), Amount).label("claims"),
               type_coerce(func.coalesce(claims.c.lost, 0), Amount).label("lost"),
               type_coerce(func.coalesce(c.amount - c.recovered, 0), Amount).label("fund"))
        .select_from(loans.outerjoin(claims, claims.c.loan_id == lo.id)
                     .outerjoin(compensations, c.loan_id == lo.id))
        .where(lo.status.in_(("active", "overdue", "repaid", "written_off"))))
    problems = []
    for r in rows:
        expected = r.amount - r.principal_repaid - r.principal_written_off
        if r.principal_outstanding != expected:
            problems.append(f"loan {r.id} outstanding {r.principal_outstanding} but disbursed "
                            f"{r.amount} - repaid {r.principal_repaid} - written off "
                            f"{r.principal_written_off} = {expected}")
        if r.status != "written_off" and r.claims != r.principal_outstanding:
            problems.append(f"loan {r.id} claims {r.claims} differ from outstanding "
                            f"{r.principal_outstanding}")
        if r.status == "written_off" and r.lost + r.fund != r.principal_written_off:
            problems.append(f"loan {r.id} losses {r.lost} + fund claim {r.fund} differ from "
                            f"the write-off {r.principal_written_off}")
    return problems


@invariant("every repayment conserved")
async def repayments_conserved(uow: UnitOfWork) -> list[str]:
    """Each repayment's parts add up to what was received, and its ledger transfer moved
    exactly that amount out of the payer."""
    from core.adapters.tables import repayments

    r = repayments.c
    rows = await uow.conn.execute(select(repayments).where(
        r.amount != r.penalty + r.interest + r.principal + r.early_fee))
    problems = [f"repayment {row.id} of {row.amount} has parts that add up differently"
                for row in rows]
    p = ledger_postings.c
    moved = (select(p.transfer_id, func.sum(p.amount).label("debits"))
             .where(p.amount > 0).group_by(p.transfer_id).subquery())
    rows = await uow.conn.execute(
        select(r.id, r.amount, type_coerce(moved.c.debits, Amount).label("debits"))
        .select_from(repayments.outerjoin(moved, moved.c.transfer_id == r.transfer_id)))
    for row in rows:
        boost = row.debits - row.amount if row.debits is not None else None
        if boost is None or boost < 0:
            problems.append(f"repayment {row.id} of {row.amount} moved {row.debits} in the "
                            f"ledger")
    return problems
