"""The double-entry ledger: every movement of money is a balanced, idempotent transfer.

Design
------
* **Accounts** have a kind, a normal side and a currency. User money sits in credit-normal
  liability accounts (``user:<id>:available``, ``user:<id>:frozen``) that mirror the custody
  bank's cash (``platform:custody_cash``, debit-normal); the platform's own money (fee income,
  capital, promotion expense, the third-party protection fund) has accounts of its own.
* **Transfers** have two or more legs, each a debit or a credit of a positive amount; debits equal
  credits. Postings store the signed amount (debit positive), so every transfer's postings sum to
  zero and so does the whole ledger.
* **Idempotency**: each transfer carries a unique key. Posting the same key again returns the first
  result and writes nothing; the same key with different legs is refused (``IdempotencyConflict``).
* **No overdraft**: accounts that may not go negative (all user accounts) are checked in code
  against balances read under lock (``FOR UPDATE`` on PostgreSQL, the writer lock on SQLite) and by
  a CHECK constraint in the database.
* **Balances derive from postings.** ``ledger_accounts.balance`` is a cache updated in the same
  transaction as the postings; ``run.py check`` proves it equals the postings. Balances as of a
  past moment are summed from postings.
* **Immutable**: posted transfers are never edited (database triggers refuse it); a correction is
  a reversal, a new transfer with the opposite legs.
* **Batches**: ``post_many`` validates a batch in memory, reads every key and account it needs in
  two queries, applies the transfers in order against those balances, and writes the survivors with
  three bulk statements. A refused transfer is reported and skipped; it never fails its neighbours.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import bindparam, func, select, type_coerce, update
from sqlalchemy.exc import IntegrityError

from core.adapters.tables import ledger_accounts, ledger_postings, ledger_transfers
from core.adapters.types import Amount
from core.adapters.uow import UnitOfWork
from core.domain.errors import (
    AlreadyReversed,
    CurrencyMismatch,
    DomainError,
    DuplicateAccount,
    EmptyTransfer,
    IdempotencyConflict,
    InsufficientFunds,
    LedgerError,
    NonPositiveLeg,
    UnbalancedTransfer,
    UnknownAccount,
)
from core.domain.money import Currency, Money

Side = Literal["debit", "credit"]


@dataclass(frozen=True, slots=True)
class AccountKind:
    name: str
    normal_side: Side
    allow_negative: bool
    user_owned: bool = False


ACCOUNT_KINDS: dict[str, AccountKind] = {
    k.name: k
    for k in (
        AccountKind("user_available", "credit", False, user_owned=True),
        AccountKind("user_frozen", "credit", False, user_owned=True),
        AccountKind("custody_cash", "debit", False),
        AccountKind("platform_capital", "credit", False),
        AccountKind("fee_income", "credit", False),
        AccountKind("promotion_budget", "credit", False),
        AccountKind("protection_fund", "credit", False),
        AccountKind("clearing", "credit", True),
    )
}

# Platform accounts every installation has (``ensure_platform_accounts``).
PLATFORM_ACCOUNTS: dict[str, str] = {
    "platform:custody_cash": "custody_cash",
    "platform:capital": "platform_capital",
    "platform:fee_income": "fee_income",
    "platform:promotion_budget": "promotion_budget",
    "platform:protection_fund": "protection_fund",
}


def _ordered_id() -> str:
    """Time-ordered ids (microseconds, then randomness) keep index inserts at the right edge of
    the B-tree; random UUIDs made every insert land in a random page and slowed big ledgers."""
    return f"{time.time_ns() // 1000:016x}{secrets.token_hex(8)}"


def user_account(user_id: int, purse: Literal["available", "frozen"]) -> str:
    return f"user:{user_id}:{purse}"


@dataclass(frozen=True, slots=True)
class Leg:
    account: str
    side: Side
    amount: Money


def debit(account: str, amount: Money) -> Leg:
    return Leg(account, "debit", amount)


def credit(account: str, amount: Money) -> Leg:
    return Leg(account, "credit", amount)


@dataclass(frozen=True, slots=True)
class Transfer:
    key: str
    kind: str
    legs: tuple[Leg, ...]
    memo: str = ""
    meta: dict[str, Any] | None = None
    reverses_id: str | None = None

    @classmethod
    def simple(cls, key: str, kind: str, *, debit_account: str, credit_account: str,
               amount: Money, memo: str = "", meta: dict[str, Any] | None = None) -> Transfer:
        """The common two-leg case: debit one account, credit another with the same amount."""
        return cls(key, kind, (debit(debit_account, amount), credit(credit_account, amount)),
                   memo, meta)

    def fingerprint(self) -> str:
        legs = sorted((leg.account, leg.side, str(leg.amount.amount)) for leg in self.legs)
        text = repr((self.kind, legs, self.reverses_id))
        return hashlib.sha256(text.encode()).hexdigest()


Status = Literal["applied", "duplicate", "refused"]


@dataclass(frozen=True, slots=True)
class Posted:
    key: str
    status: Status
    transfer_id: str | None = None
    error: DomainError | None = None


@dataclass(slots=True)
class _Account:
    id: int
    code: str
    kind: AccountKind
    currency: str
    balance: Decimal


@dataclass(slots=True)
class _Plan:
    transfer: Transfer
    transfer_id: str
    fingerprint: str
    deltas: dict[int, Decimal] = field(default_factory=dict)
    signed: list[tuple[int, Decimal]] = field(default_factory=list)


class Ledger:
    """Ledger operations; every method works inside the caller's unit of work."""

    def __init__(self, currency: Currency, *, chunk: int = 500) -> None:
        self.currency = currency
        self.chunk = chunk

    # Accounts -------------------------------------------------------------------------------

    async def open_account(self, uow: UnitOfWork, code: str, kind: str,
                           owner_user_id: int | None = None) -> int:
        """Create an account (or return the existing one with the same code and kind)."""
        spec = ACCOUNT_KINDS.get(kind)
        if spec is None:
            raise LedgerError(f"unknown account kind {kind!r}", kind=kind)
        row = (await uow.conn.execute(
            select(ledger_accounts.c.id, ledger_accounts.c.kind, ledger_accounts.c.owner_user_id)
            .where(ledger_accounts.c.code == code)
        )).first()
        if row is not None:
            if row.kind != kind or row.owner_user_id != owner_user_id:
                raise DuplicateAccount(f"account {code} exists with another kind or owner",
                                       account=code)
            return int(row.id)
        result = await uow.conn.execute(
            ledger_accounts.insert().values(
                code=code, kind=kind, normal_side=spec.normal_side,
                allow_negative=spec.allow_negative, currency=self.currency.code,
                owner_user_id=owner_user_id, balance=Decimal(0), created_at=uow.clock.now(),
            )
        )
        return int(result.inserted_primary_key[0])

    async def open_user_accounts(self, uow: UnitOfWork, user_id: int) -> None:
        for purse in ("available", "frozen"):
            await self.open_account(uow, user_account(user_id, purse), f"user_{purse}", user_id)

    async def ensure_platform_accounts(self, uow: UnitOfWork) -> None:
        for code, kind in PLATFORM_ACCOUNTS.items():
            await self.open_account(uow, code, kind)

    # Posting --------------------------------------------------------------------------------

    async def post(self, uow: UnitOfWork, transfer: Transfer) -> Posted:
        """Post one transfer; raise its named error if refused. A repeated key is not an error."""
        (result,) = await self.post_many(uow, [transfer])
        if result.error is not None:
            raise result.error
        return result

    async def post_many(self, uow: UnitOfWork, transfers: Sequence[Transfer]) -> list[Posted]:
        """Post a batch in the caller's transaction: one ``Posted`` per transfer, in order."""
        results: list[Posted] = []
        for start in range(0, len(transfers), self.chunk):
            results.extend(await self._post_chunk(uow, transfers[start:start + self.chunk]))
        return results

    async def _post_chunk(self, uow: UnitOfWork, transfers: Sequence[Transfer]) -> list[Posted]:
        if uow.dialect == "sqlite":
            # BEGIN IMMEDIATE holds the database's only write lock from our reads to our writes:
            # no other writer can slip a key in between, so no savepoint is needed.
            return await self._try_chunk(uow, transfers)
        for attempt in range(3):
            try:
                async with uow.savepoint():
                    return await self._try_chunk(uow, transfers)
            except IntegrityError:
                # Another transaction committed one of our keys between our read and our write:
                # the retry sees it and reports a duplicate.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _try_chunk(self, uow: UnitOfWork, transfers: Sequence[Transfer]) -> list[Posted]:
        results: list[Posted | None] = [None] * len(transfers)
        candidates: list[int] = []
        for i, t in enumerate(transfers):
            try:
                self._validate(t)
                candidates.append(i)
            except DomainError as exc:
                results[i] = Posted(t.key, "refused", error=exc)

        existing = await self._existing_keys(uow, [transfers[i].key for i in candidates])
        accounts = await self._lock_accounts(
            uow, {leg.account for i in candidates for leg in transfers[i].legs}
        )
        by_id = {a.id: a for a in accounts.values()}
        plans: list[_Plan] = []
        seen: dict[str, tuple[str, str]] = {}
        for i in candidates:
            t = transfers[i]
            fingerprint = t.fingerprint()
            prior = existing.get(t.key) or seen.get(t.key)
            if prior is not None:
                prior_id, prior_fp = prior
                if prior_fp != fingerprint:
                    results[i] = Posted(t.key, "refused", error=IdempotencyConflict(
                        f"key {t.key} was used for a different transfer", key=t.key))
                else:
                    results[i] = Posted(t.key, "duplicate", prior_id)
                continue
            try:
                plan = self._apply(t, fingerprint, accounts, by_id)
            except DomainError as exc:
                results[i] = Posted(t.key, "refused", error=exc)
                continue
            plans.append(plan)
            seen[t.key] = (plan.transfer_id, fingerprint)
            results[i] = Posted(t.key, "applied", plan.transfer_id)

        if plans:
            await self._write(uow, plans)
        return [r for r in results if r is not None]

    def _validate(self, t: Transfer) -> None:
        if not t.key or len(t.key) > 160:
            raise LedgerError("an idempotency key of 1-160 characters is required", key=t.key)
        if len(t.legs) < 2:
            raise EmptyTransfer(f"transfer {t.key} needs at least two legs", key=t.key)
        total = Decimal(0)
        for leg in t.legs:
            if leg.amount.currency.code != self.currency.code:
                raise CurrencyMismatch(
                    f"{leg.amount.currency.code} leg in a {self.currency.code} ledger",
                    currency=leg.amount.currency.code)
            if leg.amount.amount <= 0:
                raise NonPositiveLeg(f"leg on {leg.account} must be positive, got "
                                     f"{leg.amount.amount}", account=leg.account)
            if leg.side not in ("debit", "credit"):
                raise LedgerError(f"unknown side {leg.side!r}")
            total += leg.amount.amount if leg.side == "debit" else -leg.amount.amount
        if total != 0:
            raise UnbalancedTransfer(f"transfer {t.key} is off by {total}", key=t.key,
                                     difference=str(total))

    def _apply(self, t: Transfer, fingerprint: str, accounts: dict[str, _Account],
               by_id: dict[int, _Account]) -> _Plan:
        plan = _Plan(t, _ordered_id(), fingerprint)
        for leg in t.legs:
            acct = accounts.get(leg.account)
            if acct is None:
                raise UnknownAccount(f"no account {leg.account}", account=leg.account)
            if acct.currency != leg.amount.currency.code:
                raise CurrencyMismatch(f"{acct.code} holds {acct.currency}",
                                       currency=leg.amount.currency.code)
            signed = leg.amount.amount if leg.side == "debit" else -leg.amount.amount
            plan.signed.append((acct.id, signed))
            in_normal_terms = signed if acct.kind.normal_side == "debit" else -signed
            plan.deltas[acct.id] = plan.deltas.get(acct.id, Decimal(0)) + in_normal_terms
        for account_id, delta in plan.deltas.items():
            acct = by_id[account_id]
            if not acct.kind.allow_negative and acct.balance + delta < 0:
                raise InsufficientFunds(
                    f"{acct.code} has {acct.balance}, needs {-delta}", account=acct.code,
                    available=str(Money.rounded(acct.balance, self.currency).amount),
                    needed=str(Money.rounded(-delta, self.currency).amount))
        for account_id, delta in plan.deltas.items():
            by_id[account_id].balance += delta
        return plan

    async def _existing_keys(self, uow: UnitOfWork, keys: list[str]) -> dict[str, tuple[str, str]]:
        if not keys:
            return {}
        t = ledger_transfers.c
        rows = await uow.conn.execute(
            select(t.idempotency_key, t.id, t.fingerprint).where(t.idempotency_key.in_(keys))
        )
        return {r.idempotency_key: (r.id, r.fingerprint) for r in rows}

    async def _lock_accounts(self, uow: UnitOfWork, codes: set[str]) -> dict[str, _Account]:
        if not codes:
            return {}
        a = ledger_accounts.c
        query = (select(a.id, a.code, a.kind, a.currency, a.balance)
                 .where(a.code.in_(sorted(codes))).order_by(a.id))
        if uow.dialect == "postgresql":
            query = query.with_for_update()
        rows = await uow.conn.execute(query)
        return {r.code: _Account(r.id, r.code, ACCOUNT_KINDS[r.kind], r.currency, r.balance)
                for r in rows}

    async def _write(self, uow: UnitOfWork, plans: list[_Plan]) -> None:
        now = uow.clock.now()
        await uow.conn.execute(ledger_transfers.insert(), [
            {"id": p.transfer_id, "idempotency_key": p.transfer.key, "kind": p.transfer.kind,
             "memo": p.transfer.memo[:200], "fingerprint": p.fingerprint,
             "reverses_id": p.transfer.reverses_id, "posted_at": now, "meta": p.transfer.meta}
            for p in plans
        ])
        await uow.conn.execute(ledger_postings.insert(), [
            {"transfer_id": p.transfer_id, "account_id": account_id, "amount": amount,
             "posted_at": now}
            for p in plans for account_id, amount in p.signed
        ])
        net: dict[int, Decimal] = defaultdict(Decimal)
        for p in plans:
            for account_id, delta in p.deltas.items():
                net[account_id] += delta
        changes = [{"acct_id": k, "delta": v} for k, v in net.items() if v != 0]
        if changes:
            a = ledger_accounts.c
            await uow.conn.execute(
                update(ledger_accounts).where(a.id == bindparam("acct_id"))
                .values(balance=a.balance + bindparam("delta", type_=a.balance.type)),
                changes,
            )

    # Reversal -------------------------------------------------------------------------------

    async def reverse(self, uow: UnitOfWork, transfer_id: str, key: str, memo: str = "") -> Posted:
        """Post the opposite of ``transfer_id``; each transfer can be reversed once."""
        t, p, a = ledger_transfers.c, ledger_postings.c, ledger_accounts.c
        original = (await uow.conn.execute(
            select(t.id, t.kind).where(t.id == transfer_id))).first()
        if original is None:
            raise LedgerError(f"no transfer {transfer_id}", transfer_id=transfer_id)
        reversal = (await uow.conn.execute(
            select(t.id, t.idempotency_key).where(t.reverses_id == transfer_id))).first()
        if reversal is not None and reversal.idempotency_key != key:
            raise AlreadyReversed(f"transfer {transfer_id} was reversed by {reversal.id}",
                                  transfer_id=transfer_id)
        rows = await uow.conn.execute(
            select(a.code, p.amount).join(ledger_accounts, a.id == p.account_id)
            .where(p.transfer_id == transfer_id).order_by(p.id)
        )
        legs = tuple(
            credit(r.code, Money.rounded(r.amount, self.currency)) if r.amount > 0
            else debit(r.code, Money.rounded(-r.amount, self.currency))
            for r in rows
        )
        return await self.post(uow, Transfer(key, f"reversal:{original.kind}", legs, memo,
                                             reverses_id=transfer_id))

    # Reading --------------------------------------------------------------------------------

    async def balance(self, uow: UnitOfWork, code: str, as_of: datetime | None = None) -> Money:
        return (await self.balances(uow, [code], as_of))[code]

    async def balances(self, uow: UnitOfWork, codes: Iterable[str],
                       as_of: datetime | None = None) -> dict[str, Money]:
        """Balances in each account's normal terms: now from the cache, or summed as of a moment."""
        codes = list(codes)
        a, p = ledger_accounts.c, ledger_postings.c
        if as_of is None:
            rows = await uow.conn.execute(
                select(a.code, a.balance).where(a.code.in_(codes)))
            found = {r.code: r.balance for r in rows}
        else:
            rows = await uow.conn.execute(
                select(a.code, a.normal_side,
                       type_coerce(func.coalesce(func.sum(p.amount), 0), Amount).label("total"))
                .select_from(ledger_accounts.outerjoin(
                    ledger_postings, (p.account_id == a.id) & (p.posted_at <= as_of)))
                .where(a.code.in_(codes)).group_by(a.code, a.normal_side)
            )
            found = {r.code: r.total * (1 if r.normal_side == "debit" else -1)
                     for r in rows}
        missing = [c for c in codes if c not in found]
        if missing:
            raise UnknownAccount(f"no account {missing[0]}", account=missing[0])
        return {c: Money.rounded(found[c], self.currency) for c in codes}

