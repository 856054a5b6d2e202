"""Traffic, the conversion funnel and sign-up cohorts on a history a manager can count by hand.

The week of 2026-03-02 (Monday): Ann comes from Telegram by the "spring" campaign and goes all
the way to a second investment; Bob comes from Telegram without a campaign and only registers;
a web-chat visitor from "spring" never registers. The week before, one borrower came from the
"branch" channel, was verified and bound a card, and listed a loan.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from decimal import Decimal

from core.analytics import funnel, overview, traffic
from core.analytics.filters import NONE, Filters
from core.services.lending.investing import BidRequest
from tests.integration.accounts_helpers import bind_card, onboard, register, verify
from tests.integration.lending_helpers import apply, cny, strong_request
from tests.integration.servicing_helpers import set_day

WEEK = Filters(date(2026, 3, 2), date(2026, 3, 8))
HOUR = timedelta(hours=1)


async def assess_and_top_up(core, person, amount: str) -> None:
    answers = {q.id: q.options[-1].id for q in core.risk.questionnaire.questions}
    async with core.uow() as uow:
        await core.risk.assess(uow, person.user_id, answers)
        order = await core.wallet.request_top_up(uow, person.user_id, cny(amount),
                                                 f"t-{person.user_id}")
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        ref = (await core.wallet.order(uow, order.id)).bank_ref
    await core.bank.settle(ref, succeeded=True)


async def invest(core, person, loan_id: int, amount: str, key: str) -> None:
    async with core.uow() as uow:
        await core.investing.invest(uow, BidRequest(person.user_id, loan_id, cny(amount), key,
                                                    channel="telegram"))
        await uow.commit()


async def history(core, clock) -> dict:
    set_day(core, date(2026, 3, 1), time(11))
    borrower = await onboard(core, roles={"borrower"}, channel="branch")
    decision = await apply(core, borrower, strong_request("20000"))
    assert decision.status == "approved", decision
    set_day(core, date(2026, 3, 2), time(10))
    ann = await register(core, channel="telegram", campaign="spring")
    clock.advance(HOUR)
    await verify(core, ann)
    clock.advance(HOUR)
    await bind_card(core, ann)
    clock.advance(HOUR)
    await assess_and_top_up(core, ann, "5000")
    clock.advance(timedelta(days=1))
    await invest(core, ann, decision.loan_id, "1000", "first")
    clock.advance(2 * HOUR)
    await invest(core, ann, decision.loan_id, "1000", "second")
    bob = await register(core, channel="telegram")
    async with core.uow() as uow:
        await core.registration.touch(uow, "web", "w-1", campaign="spring")
        await uow.commit()
    set_day(core, date(2026, 3, 10), time(12))
    return {"ann": ann, "bob": bob}


def counts(steps: list[dict]) -> dict[str, int]:
    return {s["step"]: s["count"] for s in steps}


async def test_the_funnel_counts_three_visitors_two_registered_one_all_the_way(core, clock):
    await history(core, clock)
    async with core.uow(read_only=True) as uow:
        page = await funnel.funnel(uow, WEEK)
    assert counts(page["overall"]) == {
        "visit": 3, "registered": 2, "verified": 1, "card_bound": 1, "risk_assessed": 1,
        "first_investment": 1, "repeat_investment": 1}
    registered = page["overall"][1]
    assert registered["from_previous"] == Decimal("0.6667")
    verified = page["overall"][2]
    assert verified["from_previous"] == Decimal("0.5000")
    assert verified["from_visit"] == Decimal("0.3333")
    assert verified["time_from_previous"] == {"n": 1, "median": 3600, "p90": 3600}
    assert page["overall"][5]["time_from_previous"]["median"] == 24 * 3600
    by_channel = {c["channel"]: counts(c["steps"]) for c in page["by_channel"]}
    assert by_channel["telegram"]["visit"] == 2 and by_channel["telegram"]["registered"] == 2
    assert by_channel["web"] == {"visit": 1, "registered": 0, "verified": 0, "card_bound": 0,
                                 "risk_assessed": 0, "first_investment": 0,
                                 "repeat_investment": 0}
    # the week before: the borrower from the branch, verified with a card, never investing
    assert counts(page["previous"]) == {
        "visit": 1, "registered": 1, "verified": 1, "card_bound": 1, "risk_assessed": 0,
        "first_investment": 0, "repeat_investment": 0}


async def test_a_step_outside_the_window_does_not_count(core, clock):
    await history(core, clock)
    async with core.uow(read_only=True) as uow:
        page = await funnel.funnel(uow, WEEK, window_days=1)
    # Ann's first investment came a day and three hours after her visit
    assert counts(page["overall"])["risk_assessed"] == 1
    assert counts(page["overall"])["first_investment"] == 0


async def test_filters_pick_visitors_by_their_chats_first_touch(core, clock):
    await history(core, clock)
    async with core.uow(read_only=True) as uow:
        web = await funnel.funnel(uow, Filters(WEEK.start, WEEK.end, channels=("web",)))
        spring = await traffic.totals(uow, Filters(WEEK.start, WEEK.end, campaigns=("spring",)))
        none = await traffic.totals(uow, Filters(WEEK.start, WEEK.end, campaigns=(NONE,)))
    assert counts(web["overall"])["visit"] == 1
    assert counts(web["overall"])["registered"] == 0
    assert spring == {"visits": 2, "chats": 0, "new_users": 1}
    assert none == {"visits": 1, "chats": 0, "new_users": 1}


async def test_traffic_by_day_channel_and_campaign_with_the_previous_week(core, clock):
    await history(core, clock)
    async with core.uow(read_only=True) as uow:
        page = await traffic.traffic(uow, WEEK, settings=core.settings)
    assert page["totals"]["visits"] == {"value": 3, "previous": 1}
    assert page["totals"]["new_users"] == {"value": 2, "previous": 1}
    days = {(r["day"], r["channel"], r["campaign"]): (r["visits"], r["new_users"])
            for r in page["daily"]}
    assert days == {("2026-03-02", "telegram", "spring"): (1, 1),
                    ("2026-03-03", "telegram", NONE): (1, 1),
                    ("2026-03-03", "web", "spring"): (1, 0)}
    spring = next(c for c in page["campaigns"] if c["campaign"] == "spring")
    assert spring["visits"] == 2 and spring["new_users"] == 1
    assert spring["first_investors"] == 1 and spring["invested"] == Decimal("2000.00")
    assert spring["registration_rate"] == Decimal("0.5000")
    assert spring["investment_per_visitor"] == Decimal("1000.00")
    assert spring["cost"] is None and spring["cost_per_first_investor"] is None
    assert page["costs_configured"] is False and "campaign_costs" in page["costs_setting"]
    telegram = next(c for c in page["channels"] if c["channel"] == "telegram")
    assert telegram["visits"] == 2 and telegram["first_investment_rate"] == Decimal("0.5000")


async def test_campaign_costs_give_the_cost_per_registration_and_per_first_investor(core, clock):
    await history(core, clock)
    async with core.uow(read_only=True) as uow:
        page = await traffic.traffic(uow, WEEK, settings=core.settings,
                                     costs={"spring": Decimal("300")})
    spring = next(c for c in page["campaigns"] if c["campaign"] == "spring")
    assert spring["cost"] == Decimal("300.00")
    assert spring["cost_per_registration"] == Decimal("300.00")
    assert spring["cost_per_first_investor"] == Decimal("300.00")
    assert page["costs_setting"] is None


async def test_signup_cohorts_by_week(core, clock):
    await history(core, clock)
    async with core.uow(read_only=True) as uow:
        cohorts = await funnel.signup_cohorts(
            uow, Filters(date(2026, 2, 23), date(2026, 3, 8)))
    assert [(c["week"], c["users"]) for c in cohorts] == [("2026-02-23", 1), ("2026-03-02", 2)]
    week = cohorts[1]
    assert week["verified"] == {"count": 1, "share": Decimal("0.5000")}
    assert week["repeat_investment"]["count"] == 1
    assert cohorts[0]["card_bound"]["count"] == 1 and cohorts[0]["risk_assessed"]["count"] == 0


async def test_the_overview_puts_people_and_money_next_to_the_previous_week(core, clock):
    await history(core, clock)
    async with core.uow(read_only=True) as uow:
        page = await overview.overview(uow, WEEK, settings=core.settings)
        only_web = await overview.overview(uow, Filters(WEEK.start, WEEK.end, channels=("web",)),
                                           settings=core.settings)
    assert page["new_users"] == {"value": 2, "previous": 1}
    assert page["verified_users"] == {"value": 1, "previous": 1}
    assert page["first_investments"] == {"value": 1, "previous": 0}
    assert page["investment_volume"] == {"value": Decimal("2000.00"),
                                         "previous": Decimal("0.00")}
    assert page["outstanding_balance"]["value"] == Decimal("0.00")  # the loan is not funded
    assert page["queue_waiting_now"] == {"value": 0, "previous": None}
    assert only_web["new_users"] == {"value": 0, "previous": 0}
