"""Auto-invest rules and promotions (red packet, referral reward, interest boost)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from core.adapters.tables import audit_log, bids, users, vouchers
from core.domain.errors import InvalidAutoInvestRule, VoucherUnavailable
from core.invariants import run_checks
from core.ledger import user_account
from core.services.lending.autoinvest import AutoInvestRule
from core.services.lending.investing import BidRequest
from tests.integration.accounts_helpers import onboard
from tests.integration.lending_helpers import cny, fund_promotions, investor, listed_loan


def rule(**kwargs) -> AutoInvestRule:
    values = {"grades": ("AA", "A", "B"), "min_rate": Decimal("0.05"),
              "max_rate": Decimal("0.20"), "min_term": 1, "max_term": 36,
              "amount_per_loan": cny("1000"), "keep_balance": cny("0"),
              "total_cap": cny("50000"), "max_share_pct": Decimal("50")}
    values.update(kwargs)
    return AutoInvestRule(**values)


async def authorise(core, person, **kwargs):
    async with core.uow() as uow:
        await core.auto_invest.authorise(uow, person.user_id, rule(**kwargs))
        await uow.commit()


async def auto_bids(core) -> list[tuple[int, int, Decimal]]:
    async with core.uow(read_only=True) as uow:
        return [tuple(r) for r in await uow.conn.execute(
            select(bids.c.loan_id, bids.c.investor_id, bids.c.amount)
            .where(bids.c.auto.is_(True)).order_by(bids.c.id))]


async def test_a_new_listing_is_bought_by_matching_rules_in_a_fair_queue(core):
    first, second = await investor(core, "10000.00"), await investor(core, "10000.00")
    await authorise(core, first)
    await authorise(core, second)
    _, loan_a = await listed_loan(core, "1000")
    _, loan_b = await listed_loan(core, "1000")
    placed = await auto_bids(core)
    # each listing has room for one 1,000 bid: the rule matched longest ago (or never) wins
    assert [(loan, who) for loan, who, _ in placed] == [(loan_a, first.user_id),
                                                        (loan_b, second.user_id)]
    async with core.uow(read_only=True) as uow:
        actions = (await uow.conn.execute(select(audit_log.c.action))).scalars().all()
    assert actions.count("auto_invest_authorised") == 2 and "auto_invest_bid" in actions


async def test_auto_invest_keeps_the_balance_asked_for_and_skips_other_grades(core):
    person = await investor(core, "1500.00")
    await authorise(core, person, keep_balance=cny("1000"))
    _, loan_id = await listed_loan(core, "5000")
    # 1,500 held, 1,000 kept: only 500 of the 1,000 slice may go
    assert await auto_bids(core) == [(loan_id, person.user_id, Decimal("500"))]
    async with core.uow(read_only=True) as uow:
        kept = await core.ledger.balance(uow, user_account(person.user_id, "available"))
    assert kept == cny("1000.00")
    other = await investor(core, "10000.00")
    await authorise(core, other, grades=("E",))
    await listed_loan(core, "5000")
    assert [who for _, who, _ in await auto_bids(core)] == [person.user_id]


async def test_a_rule_with_impossible_limits_is_refused(core):
    person = await investor(core)
    with pytest.raises(InvalidAutoInvestRule):
        await authorise(core, person, amount_per_loan=cny("150"))
    with pytest.raises(InvalidAutoInvestRule):
        await authorise(core, person, min_rate=Decimal("0.3"), max_rate=Decimal("0.1"))


async def test_a_verified_person_gets_one_red_packet_and_it_pays_part_of_a_first_bid(core):
    await fund_promotions(core, "1000.00")
    budget = Decimal("1000.00")
    alice = await investor(core, "5000.00")
    async with core.uow() as uow:
        (packet,) = await core.promotions.vouchers(uow, alice.user_id)
        await uow.commit()
    assert (packet.kind, packet.value, packet.min_investment) == (
        "red_packet", cny("20.00"), cny("1000.00"))
    _, loan_id = await listed_loan(core, "10000")
    async with core.uow() as uow:
        with pytest.raises(VoucherUnavailable) as small:
            await core.investing.invest(uow, BidRequest(alice.user_id, loan_id, cny("500"),
                                                        "small", voucher_id=packet.id))
        result = await core.investing.invest(uow, BidRequest(
            alice.user_id, loan_id, cny("1000"), "first", voucher_id=packet.id))
        await uow.commit()
    assert small.value.params["reason"] == "below_minimum"
    assert result.paid == cny("980.00")
    async with core.uow(read_only=True) as uow:
        frozen = await core.ledger.balance(uow, user_account(alice.user_id, "frozen"))
        expense = budget - (await core.ledger.balance(uow, "platform:promotion_budget")).amount
        status = (await uow.conn.execute(select(vouchers.c.status).where(
            vouchers.c.id == packet.id))).scalars().all()
        assert [str(v) for v in await run_checks(uow)] == []
    assert frozen == cny("1000.00") and expense == Decimal("20.00")
    assert status[0] == "used"


async def test_the_referrer_is_rewarded_once_when_the_referees_first_loan_is_disbursed(core):
    await fund_promotions(core, "1000.00")
    referrer = await investor(core, "100.00")
    async with core.uow(read_only=True) as uow:
        code = (await uow.conn.execute(select(users.c.referral_code).where(
            users.c.id == referrer.user_id))).scalar_one()
    referee = await onboard(core, roles={"investor"}, referral_code=code)
    answers = {q.id: q.options[-1].id for q in core.risk.questionnaire.questions}
    async with core.uow() as uow:
        await core.risk.assess(uow, referee.user_id, answers)
        order = await core.wallet.request_top_up(uow, referee.user_id, cny("5000"), "t")
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        ref = (await core.wallet.order(uow, order.id)).bank_ref
    await core.bank.settle(ref, succeeded=True)
    for n in range(2):
        _, loan_id = await listed_loan(core, "1000")
        async with core.uow() as uow:
            await core.investing.invest(uow, BidRequest(referee.user_id, loan_id, cny("1000"),
                                                        f"r{n}"))
            await uow.commit()
    async with core.uow(read_only=True) as uow:
        reward = await core.ledger.balance(uow, user_account(referrer.user_id, "available"))
    assert reward == cny("150.00")  # 100 of its own + one 50 reward, not two


async def test_a_red_packet_waits_when_the_promotion_budget_is_used_up(core):
    alice = await investor(core, "5000.00")  # no budget was ever funded
    async with core.uow() as uow:
        (packet,) = await core.promotions.vouchers(uow, alice.user_id)
        await uow.commit()
    _, loan_id = await listed_loan(core, "10000")
    async with core.uow() as uow:
        with pytest.raises(VoucherUnavailable) as refused:
            await core.investing.invest(uow, BidRequest(alice.user_id, loan_id, cny("1000"),
                                                        "b", voucher_id=packet.id))
    assert refused.value.params["reason"] == "budget_exhausted"
    async with core.uow(read_only=True) as uow:
        assert [str(v) for v in await run_checks(uow)] == []
