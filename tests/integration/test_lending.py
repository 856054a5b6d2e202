"""The marketplace through its services: apply, review, list, invest, fund, disburse, cancel."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from core.adapters.tables import audit_log, bids, installments, loans, outbox
from core.domain.errors import (
    AmountOutOfRange,
    ApplicationNotReviewable,
    BidBelowMinimum,
    BidExceedsRemaining,
    BidNotMultiple,
    BorrowerRequired,
    BorrowingCapExceeded,
    InsufficientFunds,
    ListingClosed,
    NotAParty,
    NoviceOnly,
    OwnListing,
    RateAboveCap,
    SuitabilityMismatch,
    TermNotOffered,
)
from core.invariants import run_checks
from core.ledger import user_account
from core.messages import user_message
from core.services.lending.investing import BidRequest
from core.services.lending.listings import ListingFilter
from tests.integration.accounts_helpers import onboard
from tests.integration.lending_helpers import (
    apply,
    borrower,
    cny,
    investor,
    listed_loan,
    strong_request,
)


async def invest(core, person, loan_id, amount, key="k", **kwargs):
    async with core.uow() as uow:
        result = await core.investing.invest(uow, BidRequest(
            person.user_id, loan_id, cny(amount), key, **kwargs))
        await uow.commit()
    return result


async def balance(core, user_id, purse="available") -> Decimal:
    async with core.uow(read_only=True) as uow:
        return (await core.ledger.balance(uow, user_account(user_id, purse))).amount


async def no_violations(core):
    async with core.uow(read_only=True) as uow:
        assert [str(v) for v in await run_checks(uow)] == []


async def test_a_strong_application_is_scored_approved_and_listed_with_masked_facts(core):
    person = await borrower(core)
    decision = await apply(core, person, strong_request())
    assert decision.status == "approved", decision
    assert decision.grade in ("AA", "A") and decision.risk_level in ("R1", "R2")
    assert 0 < decision.annual_rate <= Decimal("0.24")
    async with core.uow(read_only=True) as uow:
        listing = await core.listings.get(uow, decision.loan_id)
    assert listing.status == "listed" and listing.amount == cny("10000")
    assert listing.facts["name"] == "张*"
    assert listing.facts["province_zh"] == "北京"
    assert listing.facts["income_band"] == "20000-50000"
    assert "张三" not in repr(listing)


async def test_applications_outside_the_product_are_refused(core):
    person = await borrower(core)
    with pytest.raises(AmountOutOfRange):
        await apply(core, person, strong_request("500"))
    with pytest.raises(TermNotOffered):
        await apply(core, person, strong_request(months=5))
    investor_only = await onboard(core, roles={"investor"})
    with pytest.raises(BorrowerRequired):
        await apply(core, investor_only, strong_request())


async def test_the_platform_and_cross_platform_caps_say_which_cap(core):
    person = await borrower(core)
    await apply(core, person, strong_request("150000", months=24))
    with pytest.raises(BorrowingCapExceeded) as platform:
        await apply(core, person, strong_request("60000", months=24))
    assert platform.value.params["cap"] == "person_platform"
    other = await borrower(core)
    with pytest.raises(BorrowingCapExceeded) as total:
        await apply(core, other, strong_request(
            "50000", months=24, other_platform_debt=Decimal("960000")))
    assert total.value.params["cap"] == "person_total"


async def test_a_fourth_application_in_a_day_is_rejected_as_fraud(core):
    person = await borrower(core)
    for _ in range(3):
        await apply(core, person, strong_request("1000"))
    decision = await apply(core, person, strong_request("1000"))
    assert (decision.status, decision.reason) == ("rejected", "too_many_applications")
    core.clock.advance(timedelta(hours=25))
    assert (await apply(core, person, strong_request("1000"))).status == "approved"


async def test_income_that_cannot_carry_the_loan_is_rejected(core):
    person = await borrower(core)
    decision = await apply(core, person, strong_request(
        "100000", monthly_income=Decimal("5000"), monthly_debt_payments=Decimal("2000")))
    assert (decision.status, decision.reason) == ("rejected", "debt_to_income_too_high")


async def test_a_flagged_borrower_goes_to_review_and_the_decision_is_audited(core):
    from core.services.flags import raise_flag

    person = await borrower(core)
    async with core.uow() as uow:
        await raise_flag(uow, "shared_card", "shared_card:x", user_id=person.user_id)
        await uow.commit()
    decision = await apply(core, person, strong_request())
    assert (decision.status, decision.reason) == ("review", "shared_card")
    async with core.uow() as uow:
        queue = await core.applications.review_queue(uow)
        assert [a["id"] for a in queue] == [decision.application_id]
        with pytest.raises(RateAboveCap) as refused:
            await core.applications.approve(uow, decision.application_id, 7, Decimal("0.25"))
        assert user_message(refused.value, "en") == (
            "The annual rate must be above 0% and at most 24%. Please enter it again.")
        loan_id = await core.applications.approve(uow, decision.application_id, 7,
                                                  Decimal("0.11"))
        with pytest.raises(ApplicationNotReviewable):
            await core.applications.reject(uow, decision.application_id, 7, "late")
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        actions = (await uow.conn.execute(select(audit_log.c.action, audit_log.c.actor_id)
                                          )).all()
        listing = await core.listings.get(uow, loan_id)
    assert ("application_approved", 7) in actions
    assert listing.annual_rate == Decimal("0.11")


async def test_listings_can_be_filtered_by_term_and_paged(core):
    for months in (3, 6, 12):
        await listed_loan(core, months=months)
    async with core.uow(read_only=True) as uow:
        short = await core.listings.browse(uow, ListingFilter(max_term=6))
        page = await core.listings.browse(uow, page=2, page_size=2)
    assert sorted(item.term_months for item in short.items) == [3, 6]
    assert (page.total, page.pages, len(page.items)) == (3, 2, 1)


async def test_a_bid_freezes_money_and_a_repeated_tap_invests_once(core):
    _, loan_id = await listed_loan(core)
    alice = await investor(core, "5000.00")
    first = await invest(core, alice, loan_id, "1000", key="tap")
    again = await invest(core, alice, loan_id, "1000", key="tap")
    assert not first.duplicate and again.duplicate and again.bid_id == first.bid_id
    assert first.first_investment and first.remaining == cny("9000")
    assert await balance(core, alice.user_id) == Decimal("4000.00")
    assert await balance(core, alice.user_id, "frozen") == Decimal("1000.00")
    await no_violations(core)


@pytest.mark.parametrize(("amount", "error"), [("50", BidBelowMinimum),
                                               ("150", BidNotMultiple),
                                               ("10100", BidExceedsRemaining),
                                               ("6000", InsufficientFunds)])
async def test_bad_bids_are_refused_and_change_nothing(core, amount, error):
    _, loan_id = await listed_loan(core)
    alice = await investor(core, "5000.00")
    with pytest.raises(error):
        await invest(core, alice, loan_id, amount)
    assert await balance(core, alice.user_id) == Decimal("5000.00")
    async with core.uow(read_only=True) as uow:
        assert (await core.listings.get(uow, loan_id)).funded == cny("0")


async def test_a_borrower_cannot_bid_on_their_own_loan(core):
    person, loan_id = await listed_loan(core)
    async with core.uow() as uow:
        answers = {q.id: q.options[-1].id for q in core.risk.questionnaire.questions}
        await core.risk.assess(uow, person.user_id, answers)
        await uow.commit()
    async with core.uow() as uow:
        from core.adapters.tables import users

        await uow.conn.execute(users.update().where(users.c.id == person.user_id)
                               .values(is_investor=True))
        await uow.commit()
    with pytest.raises(OwnListing):
        await invest(core, person, loan_id, "100")


async def test_a_conservative_investor_is_told_their_level_on_a_riskier_loan(core):
    _, loan_id = await listed_loan(core)
    async with core.uow() as uow:
        await uow.conn.execute(loans.update().where(loans.c.id == loan_id)
                               .values(risk_level="R3"))
        await uow.commit()
    timid = await investor(core, "5000.00", level="low")
    with pytest.raises(SuitabilityMismatch) as refused:
        await invest(core, timid, loan_id, "100")
    assert refused.value.params["level"] == "C1"
    assert refused.value.params["product_risk"] == "R3"


async def test_novice_listings_take_only_first_investments(core):
    person = await borrower(core)
    decision = await apply(core, person, strong_request())
    async with core.uow() as uow:
        await uow.conn.execute(loans.update().where(loans.c.id == decision.loan_id)
                               .values(novice_only=True))
        await uow.commit()
    _, other_loan = await listed_loan(core)
    veteran = await investor(core)
    await invest(core, veteran, other_loan, "100", key="v1")
    with pytest.raises(NoviceOnly):
        await invest(core, veteran, decision.loan_id, "100", key="v2")
    newcomer = await investor(core)
    await invest(core, newcomer, decision.loan_id, "100", key="n1")


async def test_a_crowd_bidding_at_once_never_oversells_and_losers_hear_what_remained(core):
    _, loan_id = await listed_loan(core, "10000")
    crowd = [await investor(core, "3000.00") for _ in range(8)]

    async def bid(person, i):
        async def op(uow):
            return await core.investing.invest(uow, BidRequest(
                person.user_id, loan_id, cny("3000"), f"crowd-{i}"))
        try:
            return await core.batcher.run(op)
        except BidExceedsRemaining as exc:
            return exc

    results = await asyncio.gather(*(bid(p, i) for i, p in enumerate(crowd)))
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, BidExceedsRemaining)]
    assert len(won) == 3 and len(lost) == 5
    assert {e.params["remaining"] for e in lost} == {"1000.00"}
    async with core.uow(read_only=True) as uow:
        listing = await core.listings.get(uow, loan_id)
    assert listing.funded == cny("9000") and listing.status == "listed"
    await no_violations(core)


async def test_invest_many_applies_requests_in_order_until_the_listing_is_full(core):
    person, loan_id = await listed_loan(core, "10000")
    people = [await investor(core, "4000.00") for _ in range(4)]
    requests = [BidRequest(p.user_id, loan_id, cny("4000"), f"m{i}")
                for i, p in enumerate(people)]
    requests.insert(2, BidRequest(people[3].user_id, loan_id, cny("2000"), "m-extra"))
    async with core.uow() as uow:
        results = await core.investing.invest_many(uow, requests)
        await uow.commit()
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["BidResult", "BidResult", "BidResult", "BidExceedsRemaining",
                     "BidExceedsRemaining"]
    assert results[2].loan_funded
    # auto-disbursed (consumer product): the borrower has the money less fees
    async with core.uow(read_only=True) as uow:
        loan = (await uow.conn.execute(select(loans).where(loans.c.id == loan_id))).one()
        schedule = (await uow.conn.execute(select(installments).where(
            installments.c.loan_id == loan_id))).all()
        fee = await core.ledger.balance(uow, "platform:fee_income")
        protection = await core.ledger.balance(uow, "platform:protection_fund")
    assert loan.status == "active"
    assert fee == cny("200.00") and protection == cny("100.00")
    assert await balance(core, person.user_id) == Decimal("9700.00")
    assert sum((i.principal for i in schedule), Decimal(0)) == Decimal("10000")
    assert len(schedule) == 12
    assert await balance(core, people[3].user_id) == Decimal("2000.00")
    assert await balance(core, people[0].user_id, "frozen") == Decimal("0.00")
    await no_violations(core)


async def test_a_product_that_needs_staff_waits_funded_until_disbursed(core):
    _, loan_id = await listed_loan(core, "50000", product="property", months=12)
    rich = await investor(core, "60000.00")
    await invest(core, rich, loan_id, "50000")
    async with core.uow(read_only=True) as uow:
        assert (await core.listings.get(uow, loan_id)).status == "funded"
    async with core.uow() as uow:
        await core.funding.disburse(uow, loan_id, staff_id=3)
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        assert (await core.listings.get(uow, loan_id)).status == "active"
    await no_violations(core)


async def test_an_unfunded_listing_expires_and_every_bid_is_returned(core):
    _, loan_id = await listed_loan(core, "10000")
    alice, bob = await investor(core, "5000.00"), await investor(core, "5000.00")
    await invest(core, alice, loan_id, "1000", key="a")
    await invest(core, bob, loan_id, "2000", key="b")
    core.clock.advance(timedelta(hours=73))
    with pytest.raises(ListingClosed):
        await invest(core, alice, loan_id, "100", key="late")
    async with core.uow() as uow:
        assert await core.funding.expire(uow) == [loan_id]
        await uow.commit()
    assert await balance(core, alice.user_id) == Decimal("5000.00")
    assert await balance(core, bob.user_id) == Decimal("5000.00")
    async with core.uow(read_only=True) as uow:
        statuses = (await uow.conn.execute(select(bids.c.status))).scalars().all()
        notices = (await uow.conn.execute(select(func.count()).where(
            outbox.c.template == "listing_cancelled"))).scalar_one()
    assert statuses == ["refunded", "refunded"] and notices == 2
    await no_violations(core)


async def test_the_agreement_shows_each_reader_their_own_name_and_masks_the_rest(core):
    person, loan_id = await listed_loan(core, "1000")
    alice = await investor(core, "1000.00")
    await invest(core, alice, loan_id, "1000")
    stranger = await investor(core, "100.00")
    async with core.uow(read_only=True) as uow:
        for_borrower = await core.agreements.render(uow, loan_id, person.user_id)
        for_investor = await core.agreements.render(uow, loan_id, alice.user_id, "en")
        with pytest.raises(NotAParty):
            await core.agreements.render(uow, loan_id, stranger.user_id)
    assert "借款人：张三" in for_borrower and "出借人（投资人）：张*" in for_borrower
    assert "Borrower: 张*" in for_investor and "equal installments" in for_investor


async def test_the_bid_desk_takes_a_flash_crowd_in_few_transactions_without_overselling(core):
    _, loan_id = await listed_loan(core, "20000")
    crowd = [await investor(core, "1000.00") for _ in range(30)]
    requests = [BidRequest(p.user_id, loan_id, cny("1000"), f"flash-{i}")
                for i, p in enumerate(crowd)]
    batches_before = core.bid_desk.batches
    results = await asyncio.gather(*(core.bid_desk.submit(r) for r in requests),
                                   return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BidExceedsRemaining)]
    assert (len(won), len(lost)) == (20, 10)
    assert core.bid_desk.batches - batches_before <= 3
    assert sum((w.amount.amount for w in won), Decimal(0)) == Decimal("20000")
    async with core.uow(read_only=True) as uow:
        assert (await core.listings.get(uow, loan_id)).status == "active"  # auto-disbursed
    await no_violations(core)


async def test_an_investors_summary_shows_claims_and_interest_to_come(core):
    _, loan_id = await listed_loan(core, "10000")
    alice, bob = await investor(core, "7000.00"), await investor(core, "3000.00")
    await invest(core, alice, loan_id, "7000", key="a")
    await invest(core, bob, loan_id, "3000", key="b")
    async with core.uow(read_only=True) as uow:
        a = await core.wallet.summary(uow, alice.user_id)
        b = await core.wallet.summary(uow, bob.user_id)
        rows = (await uow.conn.execute(select(installments.c.interest).where(
            installments.c.loan_id == loan_id))).scalars().all()
    assert a.invested_outstanding == cny("7000.00") and b.invested_outstanding == cny("3000.00")
    total_interest = sum(rows, Decimal(0))
    assert (a.interest_receivable + b.interest_receivable).amount == total_interest
    assert a.interest_receivable > b.interest_receivable > cny("0")
    assert a.available == cny("0.00") and a.frozen == cny("0.00")


async def test_a_double_tapped_application_applies_once(core):
    person = await borrower(core)
    async with core.uow() as uow:
        first = await core.applications.apply(uow, person.user_id, strong_request(),
                                              request_key="tap-1")
        again = await core.applications.apply(uow, person.user_id, strong_request(),
                                              request_key="tap-1")
        await uow.commit()
    assert again == first
    async with core.uow(read_only=True) as uow:
        assert (await uow.conn.execute(select(func.count()).select_from(loans))).scalar_one() == 1


async def test_a_double_tap_inside_one_desk_batch_keeps_the_batch_together(core):
    _, loan_id = await listed_loan(core, "10000")
    people = [await investor(core, "1000.00") for _ in range(3)]
    requests = [BidRequest(p.user_id, loan_id, cny("1000"), f"d{i}")
                for i, p in enumerate(people)]
    requests.insert(1, requests[0])  # the same tap twice
    before = core.bid_desk.batches
    results = await asyncio.gather(*(core.bid_desk.submit(r) for r in requests))
    assert [r.duplicate for r in results] == [False, True, False, False]
    assert results[1].bid_id == results[0].bid_id
    assert core.bid_desk.batches - before == 1
    assert await balance(core, people[0].user_id) == Decimal("0.00")


async def test_the_approval_notice_tells_the_rate_as_a_percentage(core):
    from bots.dialog.i18n import Catalog
    from bots.dialog.notices import render_notice

    person, loan_id = await listed_loan(core)
    async with core.uow(read_only=True) as uow:
        rate = (await uow.conn.execute(select(loans.c.annual_rate).where(
            loans.c.id == loan_id))).scalar_one()
        params = (await uow.conn.execute(select(outbox.c.params).where(
            outbox.c.user_id == person.user_id,
            outbox.c.template == "application_result"))).scalar_one()
    shown = f"{Decimal(rate) * 100:.2f}"
    assert params["rate"] == shown and Decimal(shown) > 1  # 15.60, not 0.156
    text = render_notice(Catalog.load(), "application_result", params, "en").text
    assert f"at {shown}% a year" in text
