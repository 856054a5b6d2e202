"""Outbox notices and analytics events are written with the change that causes them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core import analytics, notify
from core.adapters.tables import analytics_events, outbox
from tests.integration.ledger_helpers import new_user


async def test_a_notice_with_the_same_dedupe_key_is_kept_once(core, clock):
    user = await new_user(core)
    async with core.uow() as uow:
        first = await notify.enqueue(uow, user, "repayment_reminder", {"amount": "100.00"},
                                     "reminder:loan-1:2026-03-05:D-3",
                                     not_before=clock.now() + timedelta(hours=6))
        again = await notify.enqueue(uow, user, "repayment_reminder", {"amount": "999.00"},
                                     "reminder:loan-1:2026-03-05:D-3")
        await uow.commit()
    assert first == again
    async with core.uow(read_only=True) as uow:
        rows = (await uow.conn.execute(select(outbox))).all()
    assert len(rows) == 1
    assert rows[0].params == {"amount": "100.00"}
    assert rows[0].status == "pending"
    assert rows[0].not_before == clock.now() + timedelta(hours=6)


async def test_a_notice_rolled_back_with_its_business_change_is_never_sent(core):
    user = await new_user(core)
    async with core.uow() as uow:
        await notify.enqueue(uow, user, "kyc_result", {}, "kyc:1")
        await analytics.track(uow, "kyc_verified", user_id=user)
        # no commit: the business change failed
    async with core.uow(read_only=True) as uow:
        assert (await uow.conn.execute(select(outbox))).all() == []
        assert (await uow.conn.execute(select(analytics_events))).all() == []


async def test_events_are_appended_with_time_channel_and_campaign(core, clock):
    async with core.uow() as uow:
        await analytics.track(uow, "first_visit", channel="telegram", campaign="spring",
                              props={"referrer": "ABC123"})
        clock.advance(timedelta(minutes=5))
        await analytics.track(uow, "registered", user_id=None, channel="telegram")
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        rows = (await uow.conn.execute(
            select(analytics_events).order_by(analytics_events.c.id))).all()
    assert [(r.name, r.channel, r.campaign) for r in rows] == [
        ("first_visit", "telegram", "spring"), ("registered", "telegram", None)]
    assert rows[1].occurred_at - rows[0].occurred_at == timedelta(minutes=5)
    assert rows[0].props == {"referrer": "ABC123"}
