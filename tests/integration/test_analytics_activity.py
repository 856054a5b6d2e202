"""Active users, investing and retention; broadcasts, opt-outs and feedback.

Ann (Telegram) and Bob (web chat) register on Monday 2026-03-02, a borrower a week earlier.
Monday: Ann tops up, Bob writes to us. Tuesday: Ann invests 1,000. Wednesday: Ann writes and
invests 500; Bob tops up and invests 200. The next Tuesday Ann writes again.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, time
from decimal import Decimal

import pytest
from sqlalchemy import update

from bots.dialog.engine import DialogEngine
from bots.dialog.i18n import Catalog
from bots.dialog.types import Inbound
from core.adapters.tables import outbox
from core.analytics import activity, marketing
from core.analytics.filters import Filters
from core.services.broadcasts import Segment
from core.services.lending.investing import BidRequest
from tests.integration.accounts_helpers import bind_card, onboard, register, verify
from tests.integration.lending_helpers import apply, cny, strong_request
from tests.integration.servicing_helpers import set_day
from tests.integration.telegram_helpers import knowledge_base

WEEK = Filters(date(2026, 3, 2), date(2026, 3, 8))
_ids = itertools.count(1)


@pytest.fixture
async def engine(core):
    engine = DialogEngine(core, knowledge_base(), Catalog.load())
    yield engine
    await engine.close()


async def write(engine, person, text: str | None = None, action: str | None = None) -> None:
    await engine.handle(Inbound(person.identity.channel, person.identity.external_id,
                                f"a{next(_ids)}", text=text, action=action, locale_hint="en"))


async def top_up(core, person, amount: str) -> None:
    async with core.uow() as uow:
        order = await core.wallet.request_top_up(uow, person.user_id, cny(amount),
                                                 f"top-{next(_ids)}")
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        ref = (await core.wallet.order(uow, order.id)).bank_ref
    await core.bank.settle(ref, succeeded=True)


async def invest(core, person, loan_id: int, amount: str) -> None:
    async with core.uow() as uow:
        await core.investing.invest(uow, BidRequest(person.user_id, loan_id, cny(amount),
                                                    f"bid-{next(_ids)}"))
        await uow.commit()


async def investor(core, channel: str):
    person = await register(core, channel=channel)
    await verify(core, person)
    await bind_card(core, person)
    answers = {q.id: q.options[-1].id for q in core.risk.questionnaire.questions}
    async with core.uow() as uow:
        await core.risk.assess(uow, person.user_id, answers)
        await uow.commit()
    return person


async def week(core, engine) -> dict:
    set_day(core, date(2026, 2, 23), time(9))
    borrower = await onboard(core, roles={"borrower"}, channel="branch")
    set_day(core, date(2026, 3, 2), time(9))
    decision = await apply(core, borrower, strong_request("20000"))
    ann, bob = await investor(core, "telegram"), await investor(core, "web")
    await top_up(core, ann, "3000")
    await write(engine, bob, "hello")
    set_day(core, date(2026, 3, 3), time(9))
    await invest(core, ann, decision.loan_id, "1000")
    set_day(core, date(2026, 3, 4), time(9))
    await write(engine, ann, "how are my investments doing")
    await invest(core, ann, decision.loan_id, "500")
    await top_up(core, bob, "1000")
    await invest(core, bob, decision.loan_id, "200")
    set_day(core, date(2026, 3, 10), time(9))
    await write(engine, ann, "hello again")
    set_day(core, date(2026, 3, 17), time(12))
    return {"ann": ann, "bob": bob, "loan_id": decision.loan_id}


async def test_daily_weekly_and_monthly_active_users(core, engine):
    await week(core, engine)
    async with core.uow(read_only=True) as uow:
        page = await activity.active_users(uow, WEEK)
        web = await activity.active_users(uow, Filters(WEEK.start, WEEK.end, channels=("web",)))
    daily = {d["day"]: (d["dau"], d["wau"], d["mau"]) for d in page["daily"]}
    assert daily["2026-03-02"] == (2, 2, 2)
    assert daily["2026-03-03"] == (1, 2, 2)
    assert daily["2026-03-04"] == (2, 2, 2)
    assert daily["2026-03-05"] == (0, 2, 2)
    summary = page["summary"]
    assert summary["active_users"] == {"value": 2, "previous": 0}
    assert summary["dau_avg"] == {"value": Decimal("0.7"), "previous": Decimal("0.0")}
    assert summary["wau"]["value"] == 2 and summary["mau"]["value"] == 2
    # DAU/MAU by day: 1, 0.5, 1, then four days of 0
    assert summary["dau_mau"] == {"value": Decimal("0.3571"), "previous": None}
    assert [d["dau"] for d in web["daily"]][:3] == [1, 0, 1]


def test_rolling_windows_count_only_the_days_inside_them():
    day = date(2026, 3, 31)
    active = {date(2026, 2, 1): {9}, date(2026, 3, 1): {1, 2}, day: {1}}
    assert activity.rolling(active, [day], 30) == {day: 1}
    assert activity.rolling(active, [day], 31) == {day: 2}
    # the 30 days ending on 2 March start on 1 February
    assert activity.rolling(active, [date(2026, 3, 2), date(2026, 3, 3), day], 30) == {
        date(2026, 3, 2): 3, date(2026, 3, 3): 2, day: 1}


async def test_investing_volume_ticket_and_repeat_rate(core, engine):
    await week(core, engine)
    async with core.uow(read_only=True) as uow:
        page = await activity.activity(uow, WEEK, settings=core.settings)
    investing = page["investing"]
    assert investing["investments"] == {"value": 3, "previous": 0}
    assert investing["volume"] == {"value": Decimal("1700.00"), "previous": Decimal("0.00")}
    assert investing["investors"]["value"] == 2
    assert investing["average_ticket"] == {"value": Decimal("566.67"), "previous": None}
    # Ann's 500 was not her first investment; Bob's 200 was his
    assert investing["repeat_rate"]["value"] == Decimal("0.5000")


async def test_retention_by_weekly_cohort(core, engine):
    await week(core, engine)
    async with core.uow(read_only=True) as uow:
        cohorts = await activity.retention(uow, Filters(date(2026, 2, 23), date(2026, 3, 8)))
    assert [(c["cohort"], c["users"]) for c in cohorts] == [("2026-02-23", 1),
                                                             ("2026-03-02", 2)]
    march = cohorts[1]
    assert [(w["week"], w["active"]) for w in march["weeks"]] == [(0, 2), (1, 1), (2, 0)]
    assert march["weeks"][1]["share"] == Decimal("0.5000")
    assert [w["active"] for w in cohorts[0]["weeks"]] == [0, 0, 0, 0]


async def test_broadcast_reach_delivery_conversions_opt_outs_and_feedback(core, engine):
    people = await week(core, engine)
    core.clock.set(datetime(2026, 3, 17, 12, tzinfo=core.clock.tz))
    async with core.uow() as uow:
        sent = await core.broadcasts.create(uow, name="Spring", segment=Segment(role="investor"),
                                            text_zh="春天", text_en="Spring")
        await core.broadcasts.start(uow, sent)
        await uow.commit()
    assert await core.broadcasts.resume(core.uow, sent) == 2
    async with core.uow() as uow:  # the web chat's dispatcher stores it: sent
        await uow.conn.execute(update(outbox).where(outbox.c.template == "broadcast").values(
            status="sent", sent_at=uow.clock.now()))
        await uow.commit()
    await top_up(core, people["bob"], "100")
    async with core.uow() as uow:
        assert await core.broadcasts.attribute_conversions(uow) == 1
        await uow.commit()
    await write(engine, people["ann"], "TD")
    await write(engine, people["bob"], action="flow:feedback")
    await write(engine, people["bob"], "Please add Alipay top-ups")
    period = Filters(date(2026, 3, 16), date(2026, 3, 22))
    async with core.uow(read_only=True) as uow:
        page = await marketing.marketing(uow, period, settings=core.settings)
        earlier = await marketing.broadcasts(uow, WEEK, settings=core.settings)
        telegram = await marketing.feedback(uow, Filters(period.start, period.end,
                                                         channels=("telegram",)))
    (row,) = page["broadcasts"]
    assert (row["name"], row["reach"], row["sent"], row["converted"]) == ("Spring", 2, 2, 1)
    assert row["converted_top_up"] == 1 and row["conversion_days"] == 7
    assert row["delivery_rate"] == Decimal("1.0000") and row["conversion_rate"] == Decimal(
        "0.5000")
    assert earlier == []
    assert page["opt_outs"] == {"value": 1, "previous": 0}
    (said,) = page["feedback"]
    assert said["text"] == "Please add Alipay top-ups" and said["channel"] == "web"
    assert said["user_id"] == people["bob"].user_id
    assert telegram == []
