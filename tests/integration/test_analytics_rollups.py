"""The rollups give the figures the raw rows give: events tracked in any order, backdated, one by
one or in bulk; a rebuild changes nothing; an upgraded database reads raw until rebuilt; the
loan book's daily sums; the daily job's step."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from core.adapters.tables import (
    analytics_daily,
    analytics_milestones,
    analytics_rollup_days,
    job_runs,
)
from core.analytics import (
    activity,
    credit,
    disclosure,
    funnel,
    milestones,
    overview,
    rollups,
    track,
    track_many,
    traffic,
)
from core.analytics.filters import NONE, Filters
from core.services.lending.investing import BidRequest
from tests.integration.lending_helpers import cny, investor, listed_loan
from tests.integration.servicing_helpers import active_loan, drain_wallet, repay, run_day, set_day

CHANNELS = ("telegram", "web", None, "")
CAMPAIGNS = ("spring", "autumn", None)
NAMES = ("first_visit", "registered", "top_up", "first_visit")
FILTERS = [
    Filters(date(2026, 2, 1), date(2026, 3, 2)),
    Filters(date(2026, 2, 24), date(2026, 3, 2), channels=("telegram",)),
    Filters(date(2026, 2, 10), date(2026, 2, 20), channels=("web", NONE),
            campaigns=("spring", NONE)),
    Filters(date(2026, 1, 1), date(2026, 1, 31)),
]


def random_events(seed: int, n: int) -> list[dict]:
    rnd = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for _ in range(n):
        at = start + timedelta(seconds=rnd.randrange(0, 61 * 86400))
        props = {"amount": str(rnd.randrange(1, 100000) / 100)} if rnd.random() < 0.3 else None
        out.append({"name": rnd.choice(NAMES), "at": at, "channel": rnd.choice(CHANNELS),
                    "campaign": rnd.choice(CAMPAIGNS), "props": props})
    return out


async def traffic_pages(core) -> list:
    async with core.uow(read_only=True) as uow:
        return [(await traffic.traffic(uow, f, settings=core.settings),
                 await traffic.daily(uow, f)) for f in FILTERS]


async def rollup_rows(core) -> list:
    async with core.uow(read_only=True) as uow:
        return sorted(tuple(r) for r in (await uow.conn.execute(select(analytics_daily))).all())


async def test_events_tracked_out_of_order_and_backdated_count_as_the_log_says(core):
    events = random_events(7, 600)
    async with core.uow() as uow:  # one by one, in random order, backdated by `at`
        for e in events[:300]:
            await track(uow, e["name"], channel=e["channel"], campaign=e["campaign"],
                        props=e["props"], at=e["at"])
        await track_many(uow, events[300:])  # and in bulk
        await uow.commit()
    with_rollups = await traffic_pages(core)
    with rollups.raw():
        from_raw = await traffic_pages(core)
    assert with_rollups == from_raw
    assert sum(p["totals"]["visits"]["value"] for p, _ in with_rollups) > 0


async def test_a_rebuild_recounts_the_same_rows_and_twice_changes_nothing(core):
    async with core.uow() as uow:
        await track_many(uow, random_events(11, 400))
        await uow.commit()
    tracked = await rollup_rows(core)
    for since in (None, None, date(2026, 2, 15)):
        async with core.uow() as uow:
            await rollups.rebuild(uow, since, settings=core.settings, days=[])
            await uow.commit()
        assert await rollup_rows(core) == tracked
    assert sum(r[4] for r in tracked) == 400


async def test_an_upgraded_database_reads_raw_until_the_rollup_is_rebuilt(core):
    async with core.uow() as uow:
        await track_many(uow, random_events(3, 200))
        await uow.conn.execute(analytics_daily.delete())  # as if tracked before migration 0009
        await uow.conn.execute(analytics_rollup_days.insert().values(
            kind=rollups.EVENTS_PENDING, day=date(1, 1, 1), built_at=core.clock.now()))
        await uow.commit()
    with rollups.raw():
        expected = await traffic_pages(core)
    assert await traffic_pages(core) == expected  # read raw while pending
    async with core.uow() as uow:
        await rollups.rebuild(uow, date(2026, 3, 1), settings=core.settings, days=[])
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        assert await rollups.events_covered(uow, FILTERS[0])
    assert await traffic_pages(core) == expected
    assert len(await rollup_rows(core)) > 0


async def credit_pages(core, filters: list[Filters]) -> list:
    out = []
    async with core.uow(read_only=True) as uow:
        for f in filters:
            out.append((await credit.portfolio(uow, f, settings=core.settings),
                        await credit.vintages(uow, f, settings=core.settings),
                        await credit.protection_fund(uow, f, settings=core.settings),
                        await overview.overview(uow, f, settings=core.settings),
                        await credit.roll_rates(uow, f, settings=core.settings),
                        await credit.collections(uow, f, settings=core.settings),
                        await disclosure.disclosure(uow, f.end, settings=core.settings)))
    return out


async def built_days(core) -> set[date]:
    async with core.uow(read_only=True) as uow:
        return set((await uow.conn.execute(select(analytics_rollup_days.c.day).where(
            analytics_rollup_days.c.kind == rollups.BOOK))).scalars())


async def test_the_book_rollup_gives_the_raw_stock_figures_and_a_repayment_invalidates_it(core):
    borrower, _, _ = await active_loan(core, "10000")
    await drain_wallet(core, borrower)
    _, _, good = await active_loan(core, "5000", shares=("5000",))
    for day in (date(2026, 4, 30), date(2026, 5, 31), date(2026, 6, 10)):
        await run_day(core, day)
    set_day(core, date(2026, 6, 10), time(9))
    async with core.uow() as uow:  # every day the pages read, and some they do not
        await rollups.rebuild(uow, date(2026, 6, 1), settings=core.settings,
                              days=[date(2026, 2, 20) + timedelta(days=n) for n in range(111)])
        await uow.commit()
    assert {date(2026, 4, 29), date(2026, 5, 31), date(2026, 6, 10)} <= await built_days(core)
    async with core.uow(read_only=True) as uow:  # the pages do read the rollups
        assert await rollups.rolls(uow, date(2026, 5, 31), Filters(date(2026, 5, 1),
                                                                   date(2026, 5, 31)))
        assert await rollups.overdue_loans(uow, date(2026, 6, 9), Filters(date(2026, 6, 10),
                                                                          date(2026, 6, 10)))
        assert await rollups.holders_at(uow, date(2026, 5, 31)) is not None
    filters = [Filters(date(2026, 6, 1), date(2026, 6, 10)),
               Filters(date(2026, 3, 1), date(2026, 6, 10)),
               Filters(date(2026, 5, 1), date(2026, 5, 31), channels=(NONE,)),
               Filters(date(2026, 5, 1), date(2026, 5, 31), channels=("web",))]
    with rollups.raw():
        expected = await credit_pages(core, filters)
    assert await credit_pages(core, filters) == expected
    assert expected[0][0]["current"]["overdue"]["loans"] == 1

    await repay(core, good, "1000", key="extra")  # today's book changes: its sums are dropped
    assert date(2026, 6, 10) not in await built_days(core)
    assert date(2026, 5, 31) in await built_days(core)
    with rollups.raw():
        expected = await credit_pages(core, filters)
    assert await credit_pages(core, filters) == expected


async def test_the_daily_job_rebuilds_the_rollups_once_per_day(core):
    await active_loan(core, "10000")
    first = await run_day(core, date(2026, 4, 3))
    assert first["analytics_rollups"]["book_days"] == 2
    again = await core.daily.run(date(2026, 4, 3))
    assert again["analytics_rollups"] == "already done"
    async with core.uow(read_only=True) as uow:
        steps = set((await uow.conn.execute(select(job_runs.c.step).where(
            job_runs.c.business_date == date(2026, 4, 3)))).scalars())
    assert "analytics_rollups" in steps
    assert {date(2026, 4, 2), date(2026, 4, 3)} <= await built_days(core)


async def people_pages(core, filters: list[Filters]) -> list:
    out = []
    async with core.uow(read_only=True) as uow:
        for f in filters:
            out.append((await funnel.funnel(uow, f), await funnel.signup_cohorts(uow, f),
                        await funnel.reached(uow, f),
                        await activity.investing(uow, f, settings=core.settings),
                        await traffic.traffic(uow, f, settings=core.settings)))
    return out


async def bid(core, person, loan_id: int, amount: str, key: str) -> None:
    async with core.uow() as uow:
        await core.investing.invest(uow, BidRequest(person.user_id, loan_id, cny(amount), key,
                                                    channel="telegram"))
        await uow.commit()


async def test_milestones_follow_bids_and_refunds_as_the_raw_rows_do(core, clock):
    set_day(core, date(2026, 3, 2), time(10))
    ann, bob = await investor(core), await investor(core)
    _, cancelled = await listed_loan(core, "10000")
    _, kept = await listed_loan(core, "20000")
    await bid(core, ann, cancelled, "1000", "a1")  # refunded below: not her first investment
    clock.advance(timedelta(days=1))
    await bid(core, ann, kept, "1000", "a2")
    await bid(core, bob, cancelled, "500", "b1")
    clock.advance(timedelta(days=1))
    await bid(core, ann, kept, "2000", "a3")
    await bid(core, bob, kept, "500", "b2")
    filters = [Filters(date(2026, 3, 1), date(2026, 3, 7)),
               Filters(date(2026, 3, 3), date(2026, 3, 3)),
               Filters(date(2026, 3, 1), date(2026, 3, 7), channels=("web", NONE))]
    with rollups.raw():
        before = await people_pages(core, filters)
    assert await people_pages(core, filters) == before
    clock.advance(timedelta(hours=1))
    async with core.uow() as uow:
        await core.funding.cancel(uow, cancelled, "staff")
        await uow.commit()
    with rollups.raw():
        expected = await people_pages(core, filters)
    assert await people_pages(core, filters) == expected
    assert expected != before  # bob's first investment moved, ann's repeat did
    async with core.uow(read_only=True) as uow:
        rows = sorted(tuple(r) for r in (await uow.conn.execute(
            select(analytics_milestones))).all())
    async with core.uow() as uow:
        await rollups.rebuild(uow, None, settings=core.settings, days=[])
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        assert sorted(tuple(r) for r in (await uow.conn.execute(
            select(analytics_milestones))).all()) == rows


async def test_an_upgraded_database_reads_milestones_raw_until_rebuilt(core, clock):
    set_day(core, date(2026, 3, 2), time(10))
    ann = await investor(core)
    _, loan = await listed_loan(core, "10000")
    await bid(core, ann, loan, "1000", "a1")
    async with core.uow() as uow:  # as if the people came before migration 0009
        await uow.conn.execute(analytics_milestones.delete())
        await uow.conn.execute(analytics_rollup_days.insert().values(
            kind=milestones.PENDING, day=date(1, 1, 1), built_at=core.clock.now()))
        await uow.commit()
    filters = [Filters(date(2026, 3, 1), date(2026, 3, 7))]
    with rollups.raw():
        expected = await people_pages(core, filters)
    assert await people_pages(core, filters) == expected
    assert expected[0][2]["first_investment"] == 1
    async with core.uow() as uow:
        await rollups.rebuild(uow, date(2026, 3, 2), settings=core.settings, days=[])
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        assert await rollups.milestones_usable(uow)
    assert await people_pages(core, filters) == expected


async def test_the_scheduler_rebuilds_todays_book_after_a_repayment_made_it_stale(core):
    from bots.server import Scheduler

    _, _, loan_id = await active_loan(core, "5000", shares=("5000",))
    scheduler = Scheduler(core)
    first = await scheduler.tick()  # the day's job built today's book: nothing more to do
    assert first["days"] == [core.clock.today()] and first["book"] == 0
    assert core.clock.today() in await built_days(core)
    await repay(core, loan_id, "1000", key="early")
    assert core.clock.today() not in await built_days(core)
    assert "book" not in await scheduler.tick()  # not due again for BOOK_EVERY
    core.clock.advance(Scheduler.BOOK_EVERY)
    assert (await scheduler.tick())["book"] > 0
    assert core.clock.today() in await built_days(core)
    core.clock.advance(Scheduler.BOOK_EVERY)
    assert (await scheduler.tick())["book"] == 0  # current: nothing to do
