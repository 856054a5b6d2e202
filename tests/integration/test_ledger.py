"""The ledger through its public API, on the real database of the test run."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from core.domain.errors import (
    AlreadyReversed,
    CurrencyMismatch,
    EmptyTransfer,
    IdempotencyConflict,
    InsufficientFunds,
    NonPositiveLeg,
    UnbalancedTransfer,
    UnknownAccount,
)
from core.domain.money import Currency, Money
from core.invariants import run_checks
from core.ledger import Leg, Transfer, credit, debit, user_account
from tests.integration.ledger_helpers import (
    available,
    cny,
    new_user,
    pay,
    row_counts,
    top_up,
)


async def post(core, transfer):
    async with core.uow() as uow:
        result = await core.ledger.post(uow, transfer)
        await uow.commit()
    return result


async def assert_no_violations(core) -> None:
    async with core.uow(read_only=True) as uow:
        assert [str(v) for v in await run_checks(uow)] == []


async def test_a_top_up_raises_the_wallet_and_custody_cash_together(core):
    alice = await new_user(core)
    await post(core, top_up(alice, "1000.00", "topup-1"))
    assert await available(core, alice) == Decimal("1000.00")
    async with core.uow(read_only=True) as uow:
        custody = await core.ledger.balance(uow, "platform:custody_cash")
    assert custody == cny("1000.00")
    await assert_no_violations(core)


async def test_posting_the_same_key_twice_moves_money_once(core):
    alice = await new_user(core)
    first = await post(core, top_up(alice, "50.00", "topup-dup"))
    again = await post(core, top_up(alice, "50.00", "topup-dup"))
    assert first.status == "applied"
    assert again.status == "duplicate"
    assert again.transfer_id == first.transfer_id
    assert await available(core, alice) == Decimal("50.00")
    assert (await row_counts(core))[:2] == (1, 2)


async def test_reusing_a_key_for_a_different_transfer_is_refused(core):
    alice = await new_user(core)
    await post(core, top_up(alice, "50.00", "topup-x"))
    with pytest.raises(IdempotencyConflict):
        await post(core, top_up(alice, "60.00", "topup-x"))
    assert await available(core, alice) == Decimal("50.00")


async def test_a_wallet_cannot_pay_more_than_it_holds_and_nothing_is_written(core):
    alice, bob = await new_user(core), await new_user(core)
    await post(core, top_up(alice, "100.00", "t1"))
    before = await row_counts(core)
    with pytest.raises(InsufficientFunds) as refused:
        await post(core, pay(alice, bob, "100.01", "p1"))
    assert refused.value.params["available"] == "100.00"
    assert refused.value.params["needed"] == "100.01"
    assert await row_counts(core) == before
    assert await available(core, alice) == Decimal("100.00")
    assert await available(core, bob) == Decimal("0.00")


@pytest.mark.parametrize(
    ("legs", "error"),
    [
        ((), EmptyTransfer),
        ((debit("platform:custody_cash", Money.of("1.00")),), EmptyTransfer),
        ((debit("platform:custody_cash", Money.of("1.00")),
          credit("platform:capital", Money.of("0.99"))), UnbalancedTransfer),
        ((debit("platform:custody_cash", Money.of("0.00")),
          credit("platform:capital", Money.of("0.00"))), NonPositiveLeg),
        ((debit("platform:custody_cash", Money.of("-5.00")),
          credit("platform:capital", Money.of("-5.00"))), NonPositiveLeg),
        ((debit("platform:custody_cash", Money.of("5.00")),
          credit("user:999:available", Money.of("5.00"))), UnknownAccount),
        ((debit("platform:custody_cash", Money.of("5.00", Currency("USD"))),
          credit("platform:capital", Money.of("5.00", Currency("USD")))), CurrencyMismatch),
    ],
    ids=["no legs", "one leg", "unbalanced", "zero", "negative", "unknown account",
         "other currency"],
)
async def test_malformed_transfers_get_a_named_error_and_write_nothing(core, legs, error):
    before = await row_counts(core)
    with pytest.raises(error):
        await post(core, Transfer("bad-1", "test", tuple(legs)))
    assert await row_counts(core) == before


async def test_post_many_reports_each_transfer_and_a_refusal_spares_its_neighbours(core):
    alice, bob = await new_user(core), await new_user(core)
    batch = [
        top_up(alice, "100.00", "b-1"),
        pay(alice, bob, "80.00", "b-2"),
        pay(alice, bob, "30.00", "b-3"),  # only 20.00 left: refused
        Transfer("b-4", "bad", (Leg("platform:custody_cash", "debit", cny("1.00")),)),
        pay(alice, bob, "20.00", "b-5"),
        top_up(alice, "100.00", "b-1"),  # the same key again in the same batch
    ]
    async with core.uow() as uow:
        results = await core.ledger.post_many(uow, batch)
        await uow.commit()
    assert [r.status for r in results] == [
        "applied", "applied", "refused", "refused", "applied", "duplicate"]
    assert isinstance(results[2].error, InsufficientFunds)
    assert isinstance(results[3].error, EmptyTransfer)
    assert results[5].transfer_id == results[0].transfer_id
    assert await available(core, alice) == Decimal("0.00")
    assert await available(core, bob) == Decimal("100.00")
    await assert_no_violations(core)


async def test_a_reversal_restores_balances_and_can_happen_only_once(core):
    alice, bob = await new_user(core), await new_user(core)
    await post(core, top_up(alice, "10.00", "r-1"))
    paid = await post(core, pay(alice, bob, "4.00", "r-2"))
    async with core.uow() as uow:
        await core.ledger.reverse(uow, paid.transfer_id, "r-2-reversal", "entered twice")
        await uow.commit()
    assert await available(core, alice) == Decimal("10.00")
    assert await available(core, bob) == Decimal("0.00")
    async with core.uow() as uow:
        again = await core.ledger.reverse(uow, paid.transfer_id, "r-2-reversal")
        assert again.status == "duplicate"
        with pytest.raises(AlreadyReversed):
            await core.ledger.reverse(uow, paid.transfer_id, "another-key")
    await assert_no_violations(core)


async def test_a_reversal_that_would_overdraw_the_payee_is_refused(core):
    alice, bob = await new_user(core), await new_user(core)
    await post(core, top_up(alice, "10.00", "o-1"))
    paid = await post(core, pay(alice, bob, "10.00", "o-2"))
    await post(core, pay(bob, alice, "10.00", "o-3"))
    async with core.uow() as uow:
        with pytest.raises(InsufficientFunds):
            await core.ledger.reverse(uow, paid.transfer_id, "o-2-reversal")


async def test_balances_as_of_a_past_moment_come_from_postings(core, clock):
    alice = await new_user(core)
    await post(core, top_up(alice, "10.00", "h-1"))
    first = clock.now()
    clock.advance(timedelta(hours=1))
    await post(core, top_up(alice, "5.50", "h-2"))
    async with core.uow(read_only=True) as uow:
        code = user_account(alice, "available")
        assert await core.ledger.balance(uow, code, as_of=first - timedelta(seconds=1)) == cny(
            "0.00")
        assert await core.ledger.balance(uow, code, as_of=first) == cny("10.00")
        assert await core.ledger.balance(uow, code) == cny("15.50")
        assert await core.ledger.balance(uow, "platform:custody_cash", as_of=first) == cny(
            "10.00")


async def test_two_hundred_concurrent_payments_never_overdraw_one_wallet(core):
    payer, payee = await new_user(core), await new_user(core)
    await post(core, top_up(payer, "1000.00", "c-fund"))

    async def attempt(i: int) -> str:
        try:
            async with core.uow() as uow:
                await core.ledger.post(uow, pay(payer, payee, "7.00", f"c-{i}"))
                await uow.commit()
            return "applied"
        except InsufficientFunds:
            return "refused"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(200)))
    assert outcomes.count("applied") == 142  # 142 x 7.00 = 994.00; a 143rd would overdraw
    assert await available(core, payer) == Decimal("6.00")
    assert await available(core, payee) == Decimal("994.00")
    await assert_no_violations(core)


async def test_concurrent_batches_with_the_same_keys_post_each_transfer_once(core):
    alice, bob = await new_user(core), await new_user(core)
    await post(core, top_up(alice, "1000.00", "k-fund"))
    batch = [pay(alice, bob, "1.00", f"k-{i}") for i in range(50)]

    async def run() -> list[str]:
        async with core.uow() as uow:
            results = await core.ledger.post_many(uow, batch)
            await uow.commit()
        return [r.status for r in results]

    first, second = await asyncio.gather(run(), run())
    assert sorted(first + second) == ["applied"] * 50 + ["duplicate"] * 50
    assert await available(core, bob) == Decimal("50.00")
    await assert_no_violations(core)
