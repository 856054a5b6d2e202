"""Wallet and custody: top-ups and withdrawals through the sandbox bank's signed callbacks."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from core.adapters.tables import analytics_events, outbox, payment_orders, risk_flags
from core.domain.errors import (
    BelowMinimumTopUp,
    CardRequired,
    DailyWithdrawalLimit,
    InsufficientFunds,
    InvalidAmount,
    InvalidCallback,
    WithdrawalOutOfRange,
)
from core.domain.money import Money, parse_amount
from core.invariants import run_checks
from core.services.reconcile import reconcile
from tests.integration.accounts_helpers import onboard, register, verify


def cny(text: str) -> Money:
    return Money.of(Decimal(text))


async def top_up(core, user_id, amount: str, key: str = "k1"):
    async with core.uow() as uow:
        order = await core.wallet.request_top_up(uow, user_id, cny(amount), key)
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        return await core.wallet.order(uow, order.id)


async def withdraw(core, user_id, amount: str, key: str = "w1"):
    async with core.uow() as uow:
        order = await core.wallet.request_withdrawal(uow, user_id, cny(amount), key)
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        return await core.wallet.order(uow, order.id)


async def balances(core, user_id):
    async with core.uow(read_only=True) as uow:
        s = await core.wallet.summary(uow, user_id)
    return s.available.amount, s.frozen.amount


async def no_violations(core):
    async with core.uow(read_only=True) as uow:
        assert [str(v) for v in await run_checks(uow)] == []


async def test_a_top_up_lands_in_the_wallet_when_the_bank_confirms(core):
    person = await onboard(core)
    order = await top_up(core, person.user_id, "1000.00")
    assert order.status == "pending" and order.bank_ref is not None
    assert await balances(core, person.user_id) == (Decimal("0.00"), Decimal("0.00"))
    await core.bank.settle(order.bank_ref, succeeded=True)
    assert await balances(core, person.user_id) == (Decimal("1000.00"), Decimal("0.00"))
    async with core.uow(read_only=True) as uow:
        names = (await uow.conn.execute(select(analytics_events.c.name))).scalars().all()
        notices = (await uow.conn.execute(select(outbox.c.template))).scalars().all()
    assert "first_top_up" in names and "top_up_result" in notices
    await no_violations(core)


async def test_a_callback_delivered_twice_credits_once(core):
    person = await onboard(core)
    order = await top_up(core, person.user_id, "500.00")
    await core.bank.settle(order.bank_ref, succeeded=True)
    await core.bank.redeliver(order.bank_ref)
    callback = await core.bank.redeliver(order.bank_ref)
    assert await core.deliver_bank_callback(callback["payload"], callback["signature"]) == (
        "duplicate")
    assert await balances(core, person.user_id) == (Decimal("500.00"), Decimal("0.00"))


async def test_a_stale_failure_after_success_changes_nothing(core):
    person = await onboard(core)
    order = await top_up(core, person.user_id, "300.00")
    await core.bank.settle(order.bank_ref, succeeded=True)
    late = core.bank.callback(order.bank_ref, order.id, "top_up", Decimal("300.00"), "failed")
    assert await core.deliver_bank_callback(late["payload"], late["signature"]) == "duplicate"
    async with core.uow(read_only=True) as uow:
        assert (await core.wallet.order(uow, order.id)).status == "succeeded"
    assert await balances(core, person.user_id) == (Decimal("300.00"), Decimal("0.00"))


async def test_a_forged_or_altered_callback_is_refused_and_changes_nothing(core):
    person = await onboard(core)
    order = await top_up(core, person.user_id, "300.00")
    genuine = core.bank.callback(order.bank_ref, order.id, "top_up", Decimal("300.00"),
                                 "succeeded")
    altered = {**genuine["payload"], "amount": "30000.00"}
    with pytest.raises(InvalidCallback):
        await core.deliver_bank_callback(altered, genuine["signature"])
    with pytest.raises(InvalidCallback):
        await core.deliver_bank_callback(genuine["payload"], "0" * 64)
    assert await balances(core, person.user_id) == (Decimal("0.00"), Decimal("0.00"))
    assert await core.deliver_bank_callback(genuine["payload"], genuine["signature"]) == (
        "applied")
    assert await core.deliver_bank_callback(genuine["payload"], genuine["signature"]) == (
        "duplicate")  # a replay of the very same callback
    assert await balances(core, person.user_id) == (Decimal("300.00"), Decimal("0.00"))


async def test_a_failed_top_up_moves_no_money_and_tells_the_user(core):
    person = await onboard(core)
    order = await top_up(core, person.user_id, "300.00")
    await core.bank.settle(order.bank_ref, succeeded=False, reason="insufficient_balance")
    async with core.uow(read_only=True) as uow:
        result = await core.wallet.order(uow, order.id)
        params = (await uow.conn.execute(select(outbox.c.params).where(
            outbox.c.template == "top_up_result"))).scalar_one()
    assert result.status == "failed"
    assert params["reason"] == "insufficient_balance"
    assert await balances(core, person.user_id) == (Decimal("0.00"), Decimal("0.00"))


async def test_the_same_request_key_creates_one_order(core):
    person = await onboard(core)
    first = await top_up(core, person.user_id, "100.00", key="tap-1")
    again = await top_up(core, person.user_id, "100.00", key="tap-1")
    assert first.id == again.id


async def test_top_ups_need_a_card_and_the_minimum(core):
    person = await verify(core, await register(core))
    with pytest.raises(CardRequired):
        await top_up(core, person.user_id, "100.00")
    person = await onboard(core)
    with pytest.raises(BelowMinimumTopUp):
        await top_up(core, person.user_id, "9.99")


async def test_a_withdrawal_freezes_the_money_and_fee_then_pays_out(core):
    person = await onboard(core)
    await core.bank.settle((await top_up(core, person.user_id, "1000.00")).bank_ref,
                           succeeded=True)
    order = await withdraw(core, person.user_id, "500.00")
    assert order.fee == cny("2.00")
    assert await balances(core, person.user_id) == (Decimal("498.00"), Decimal("502.00"))
    await core.bank.settle(order.bank_ref, succeeded=True)
    assert await balances(core, person.user_id) == (Decimal("498.00"), Decimal("0.00"))
    async with core.uow(read_only=True) as uow:
        fee_income = await core.ledger.balance(uow, "platform:fee_income")
        custody = await core.ledger.balance(uow, "platform:custody_cash")
    assert fee_income == cny("2.00") and custody == cny("500.00")
    await no_violations(core)


async def test_a_failed_withdrawal_returns_the_frozen_money(core):
    person = await onboard(core)
    await core.bank.settle((await top_up(core, person.user_id, "1000.00")).bank_ref,
                           succeeded=True)
    order = await withdraw(core, person.user_id, "500.00")
    await core.bank.settle(order.bank_ref, succeeded=False)
    assert await balances(core, person.user_id) == (Decimal("1000.00"), Decimal("0.00"))
    await no_violations(core)


async def test_withdrawals_above_the_balance_range_or_daily_limit_are_refused(core):
    person = await onboard(core)
    await core.bank.settle((await top_up(core, person.user_id, "1000.00")).bank_ref,
                           succeeded=True)
    with pytest.raises(InsufficientFunds):
        await withdraw(core, person.user_id, "999.00")  # plus the 2.00 fee
    with pytest.raises(WithdrawalOutOfRange):
        await withdraw(core, person.user_id, "99.99")
    async with core.uow(read_only=True) as uow:
        orders = (await uow.conn.execute(select(payment_orders.c.kind))).scalars().all()
    assert orders == ["top_up"]
    assert await balances(core, person.user_id) == (Decimal("1000.00"), Decimal("0.00"))


async def test_the_daily_withdrawal_limit_counts_todays_withdrawals(core, database_url, clock,
                                                                    tmp_path):
    from tests.support import make_core

    limited = await make_core(database_url, clock, tmp_path / "other",
                              wallet={"daily_withdrawal_limit": "300.00"})
    try:
        person = await onboard(limited)
        await limited.bank.settle((await top_up(limited, person.user_id, "1000.00")).bank_ref,
                                  succeeded=True)
        await withdraw(limited, person.user_id, "200.00", key="a")
        with pytest.raises(DailyWithdrawalLimit) as refused:
            await withdraw(limited, person.user_id, "150.00", key="b")
        assert refused.value.params["left"] == "100.00"
        clock.advance(timedelta(days=1))
        await withdraw(limited, person.user_id, "150.00", key="c")
    finally:
        await limited.close()


async def test_large_top_ups_and_quick_in_and_out_raise_aml_flags(core):
    person = await onboard(core)
    await core.bank.settle((await top_up(core, person.user_id, "50000.00")).bank_ref,
                           succeeded=True)
    await withdraw(core, person.user_id, "40000.00")
    async with core.uow(read_only=True) as uow:
        kinds = sorted((await uow.conn.execute(select(risk_flags.c.kind))).scalars().all())
    assert kinds == ["aml_large_top_up", "aml_quick_in_out"]


async def test_the_statement_lists_every_movement_with_a_running_balance(core):
    person = await onboard(core)
    for i, amount in enumerate(["100.00", "250.50"]):
        await core.bank.settle((await top_up(core, person.user_id, amount, key=f"t{i}")
                                ).bank_ref, succeeded=True)
    await withdraw(core, person.user_id, "100.00")
    async with core.uow(read_only=True) as uow:
        page = await core.wallet.statement(uow, person.user_id, page_size=2)
        second = await core.wallet.statement(uow, person.user_id, page=2, page_size=2)
    assert (page.total, page.pages) == (3, 2)
    rows = [(e.kind, e.amount.amount, e.balance.amount) for e in page.entries + second.entries]
    assert rows == [("withdrawal", Decimal("-102.00"), Decimal("248.50")),
                    ("top_up", Decimal("250.50"), Decimal("350.50")),
                    ("top_up", Decimal("100.00"), Decimal("100.00"))]


async def test_reconciliation_finds_a_callback_that_never_arrived(core):
    person = await onboard(core)
    ok = await top_up(core, person.user_id, "100.00", key="a")
    lost = await top_up(core, person.user_id, "200.00", key="b")
    await core.bank.settle(ok.bank_ref, succeeded=True)
    core.bank.deliver, deliver = None, core.bank.deliver  # the callback gets lost
    await core.bank.settle(lost.bank_ref, succeeded=True)
    core.bank.deliver = deliver
    found = await reconcile(core.uow, core.bank, core.clock.today())
    assert [(m.kind, m.order_id) for m in found] == [("missing_in_ledger", lost.id)]
    await core.bank.redeliver(lost.bank_ref)
    assert await reconcile(core.uow, core.bank, core.clock.today()) == []


@pytest.mark.parametrize(("text", "reason"), [
    ("abc", "not_a_number"), ("-5", "not_positive"), ("0", "not_positive"),
    ("10.001", "too_many_decimals"), ("1e400", "too_large")])
def test_typed_amounts_that_are_not_money_are_refused_with_a_reason(text, reason):
    with pytest.raises(InvalidAmount) as refused:
        parse_amount(text)
    assert refused.value.params["reason"] == reason


def test_typed_amounts_may_use_separators_and_full_width_digits():
    assert parse_amount("1,000.50") == cny("1000.50")
    assert parse_amount("１０００") == cny("1000.00")
    assert parse_amount("¥200元") == cny("200.00")


async def test_a_withdrawal_the_bank_never_heard_of_is_sent_again_not_left_frozen(core):
    person = await onboard(core)
    await core.bank.settle((await top_up(core, person.user_id, "1000.00")).bank_ref,
                           succeeded=True)
    real_open = core.bank.open_payout

    async def dropped_connection(*args, **kwargs):
        raise ConnectionResetError("the bank hung up")

    core.bank.open_payout = dropped_connection
    order = await withdraw(core, person.user_id, "500.00")
    assert order.status == "pending" and order.bank_ref is None
    core.bank.open_payout = real_open
    assert await core.wallet.reopen_stale(core.uow) == 0  # too recent to be called lost
    core.clock.advance(timedelta(minutes=11))
    assert await core.wallet.reopen_stale(core.uow) == 1
    async with core.uow(read_only=True) as uow:
        ref = (await core.wallet.order(uow, order.id)).bank_ref
    assert ref is not None
    await core.bank.settle(ref, succeeded=True)
    assert await balances(core, person.user_id) == (Decimal("498.00"), Decimal("0.00"))
