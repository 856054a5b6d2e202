"""Group commit: many operations share a transaction; a failing one spares its neighbours."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from core.domain.errors import InsufficientFunds
from tests.integration.ledger_helpers import available, new_user, pay, top_up


async def test_operations_queued_together_commit_together_and_failures_stay_alone(core):
    alice, bob = await new_user(core), await new_user(core)

    async def post(transfer):
        async def op(uow):
            return (await core.ledger.post(uow, transfer)).status
        return await core.batcher.run(op)

    await post(top_up(alice, "10.00", "g-fund"))
    batches_before = core.batcher.batches
    transfers = [pay(alice, bob, "1.00", f"g-{i}") for i in range(12)]
    results = await asyncio.gather(*(post(t) for t in transfers), return_exceptions=True)

    applied = [r for r in results if r == "applied"]
    refused = [r for r in results if isinstance(r, InsufficientFunds)]
    assert (len(applied), len(refused)) == (10, 2)
    assert await available(core, alice) == Decimal("0.00")
    assert await available(core, bob) == Decimal("10.00")
    assert core.batcher.batches - batches_before < 12  # they really shared transactions


async def test_an_operation_that_raises_leaves_no_trace(core):
    alice = await new_user(core)

    async def op(uow):
        await core.ledger.post(uow, top_up(alice, "5.00", "g-boom"))
        raise RuntimeError("boom after writing")

    with pytest.raises(RuntimeError):
        await core.batcher.run(op)
    assert await available(core, alice) == Decimal("0.00")


async def test_a_top_up_undone_by_its_savepoint_never_reaches_the_bank(core):
    """What a savepoint rolled back has no after-commit work left: the bank is not asked to
    open an order that no longer exists (the rest of the transaction goes on and commits)."""
    from core.domain.money import Money
    from tests.integration.lending_helpers import investor

    person = await investor(core, "100.00")
    opened: list[str] = []
    real_open = core.bank.open_top_up

    async def spy(order_id: str, amount: Decimal) -> str:
        opened.append(order_id)
        return await real_open(order_id, amount)

    core.bank.open_top_up = spy
    async with core.uow() as uow:
        with pytest.raises(RuntimeError):
            async with uow.savepoint():
                await core.wallet.request_top_up(uow, person.user_id, Money.of(Decimal("50")),
                                                 "undone")
                raise RuntimeError("something after it failed")
        kept = await core.wallet.request_top_up(uow, person.user_id, Money.of(Decimal("60")),
                                                "kept")
        await uow.commit()
    assert opened == [kept.id]
