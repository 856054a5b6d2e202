"""Notices through the real channels: the dispatcher hands outbox notices to python-telegram-bot's
sender against the local Bot API server and to the web chat's conversations, under the users'
preferences, quiet hours and the channels' limits."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from bots.dialog.dispatcher import MUTE_MARKETING, Dispatcher, Pass
from bots.dialog.notices import render_notice
from bots.server import Scheduler
from bots.webchat.routes import WEBCHAT
from core import notify
from core.adapters.tables import (
    analytics_events,
    broadcasts,
    channel_identities,
    installments,
    job_runs,
    outbox,
)
from core.domain.errors import InvalidQuietHours
from core.services.broadcasts import Segment
from core.services.lending.investing import BidRequest
from tests.integration.accounts_helpers import Person, onboard
from tests.integration.lending_helpers import apply, cny, investor, strong_request
from tests.integration.servicing_helpers import drain_wallet, run_day, set_day
from tests.integration.telegram_helpers import Telegram, TgUser, actions, telegram, texts
from tests.integration.test_webchat import Site, Tab, site_on


class Channels:
    """The web chat and the Telegram bot on one dialog engine, as ``serve`` runs them."""

    def __init__(self, site: Site, tg: Telegram) -> None:
        self.site, self.tg, self.core = site, tg, site.core
        self.dispatcher = Dispatcher(site.engine)

    async def dispatch(self) -> Pass:
        """One dispatcher pass, then wait until Telegram sent what it queued."""
        async with self.core.uow() as uow:
            done = await self.dispatcher.run_once(uow)
            await uow.commit()
        self.tg.adapter.sender.poke()
        await self.tg.idle()
        return done

    async def web_user(self, locale: str = "en", roles: set[str] | None = None
                       ) -> tuple[Tab, Person]:
        """A visitor who wrote in the web chat and holds an account opened on it."""
        tab = await self.site.tab(lang=locale)
        await tab.say("hello")
        chat_id = self.site.client.app[WEBCHAT].tokens.chat_of(tab.session, self.core.clock.now())
        person = await onboard(self.core, roles=roles or {"investor"}, channel="web",
                               external_id=chat_id)
        await self.dispatch()  # what onboarding told them (identity verified, card bound)
        while not await tab.silent(0.3):
            pass
        return tab, person

    async def tg_user(self, locale: str = "en", roles: set[str] | None = None
                      ) -> tuple[TgUser, Person]:
        me = self.tg.user(locale)
        await me.say("/start")
        person = await onboard(self.core, roles=roles or {"investor"}, external_id=me.chat)
        await self.dispatch()  # what onboarding told them (identity verified, card bound)
        me.new()
        return me, person


@asynccontextmanager
async def channels(core: Any, tmp_path: Any, aiohttp_client: Any,
                   **delivery: Any) -> AsyncIterator[Channels]:
    async with site_on(core, aiohttp_client) as site, telegram(
            core, tmp_path, engine=site.engine, delivery=delivery) as tg:
        yield Channels(site, tg)


def local(core: Any, day: date, at: time) -> datetime:
    return datetime.combine(day, at, core.clock.tz)


async def notices_of(core: Any, user_id: int) -> list[Any]:
    async with core.uow(read_only=True) as uow:
        return (await uow.conn.execute(select(outbox).where(outbox.c.user_id == user_id)
                                       .order_by(outbox.c.id))).all()


async def enqueue(core: Any, user_id: int, template: str, params: dict[str, Any],
                  key: str) -> None:
    async with core.uow() as uow:
        await notify.enqueue(uow, user_id, template, params, key)
        await uow.commit()


async def funded_loan(core: Any, person: Person, tag: str) -> int:
    """The borrower's loan, approved, filled by two investors and disbursed; the borrower
    spends the money, so nothing is debited automatically on the due date."""
    decision = await apply(core, person, strong_request("10000"))
    loan_id = decision.loan_id
    if decision.status == "review":
        async with core.uow() as uow:
            loan_id = await core.applications.approve(uow, decision.application_id, 1,
                                                      Decimal("0.10"))
            await uow.commit()
    for n, share in enumerate(("6000", "4000")):
        lender = await investor(core, share)
        async with core.uow() as uow:
            await core.investing.invest(uow, BidRequest(lender.user_id, loan_id, cny(share),
                                                        f"fill-{tag}-{n}"))
            await uow.commit()
    await drain_wallet(core, person)
    return loan_id


async def first_installment(core: Any, loan_id: int) -> Any:
    async with core.uow(read_only=True) as uow:
        return (await uow.conn.execute(select(installments).where(
            installments.c.loan_id == loan_id, installments.c.period == 1))).one()


REMINDERS = ("repayment_reminder", "repayment_due_today")


def about(loan_id: int, text: str) -> bool:
    """The message names this loan ("#12", not "#123")."""
    return re.search(rf"#{loan_id}\b", text) is not None


# Reminders -----------------------------------------------------------------------------------

async def test_reminders_reach_each_borrower_on_the_right_day_in_their_language(
        core, tmp_path, aiohttp_client):
    async with channels(core, tmp_path, aiohttp_client) as ch:
        zh, a = await ch.tg_user("zh-CN", {"borrower"})
        loan_a = await funded_loan(core, a, "a")
        set_day(core, core.clock.today() + timedelta(days=5), time(10, 0))
        tab, b = await ch.web_user("en", {"borrower"})
        loan_b = await funded_loan(core, b, "b")
        await ch.dispatch()
        session = tab.session
        await tab.ws.close()  # the web borrower goes offline
        zh.new()
        first_a, first_b = (await first_installment(core, loan_a),
                            await first_installment(core, loan_b))
        assert first_b.due_date - first_a.due_date == timedelta(days=5)

        reminded_zh: dict[date, list[str]] = {}
        reminded_web: dict[date, list[str]] = {}
        back: Tab | None = None
        day = first_a.due_date - timedelta(days=4)
        while day <= first_b.due_date:
            await run_day(core, day)  # the business day runs at 02:00
            await ch.dispatch()
            early = zh.new()  # planned for the reminder hour, nothing before it
            assert not [m for m in early if about(loan_a, m["text"])]
            set_day(core, day, time(10, 30))
            await ch.dispatch()
            got = [m["text"] for m in zh.new() if about(loan_a, m["text"])]
            if got:
                reminded_zh[day] = got
            if back is None and day == first_b.due_date - timedelta(days=3):
                # offline until now: the reminder waits in the conversation's history
                back = await ch.site.tab(session)
                reminded_web[day] = [m["text"] for m in back.history or []
                                     if about(loan_b, m["text"])][-1:]
            elif back is not None:  # online: pushed as it is sent
                pushed = []
                while True:
                    try:
                        frame = await back.frame(0.3)
                    except TimeoutError:
                        break
                    if about(loan_b, frame.get("text", "")):
                        pushed.append(frame["text"])
                reminded_web[day] = pushed
            day += timedelta(days=1)

        def rendered(template: str, loan_id: int, first: Any, locale: str) -> str:
            return render_notice(ch.site.engine.catalog, template, {
                "loan_id": loan_id, "period": 1, "due_date": first.due_date.isoformat(),
                "amount": f"{first.principal + first.interest:.2f}"}, locale).text

        d = first_a.due_date
        assert {k: v for k, v in reminded_zh.items() if k <= d} == {
            d - timedelta(days=3): [rendered("repayment_reminder", loan_a, first_a, "zh-CN")],
            d - timedelta(days=1): [rendered("repayment_reminder", loan_a, first_a, "zh-CN")],
            d: [rendered("repayment_due_today", loan_a, first_a, "zh-CN")]}
        assert "温馨提示" in reminded_zh[d - timedelta(days=3)][0]  # Chinese, for the Chinese chat

        # The web borrower's reminders, in English, each on its own day at the reminder hour.
        sent = [n for n in await notices_of(core, b.user_id) if n.template in REMINDERS]
        assert [(n.status, n.channel) for n in sent] == [("sent", "web")] * 3
        assert [n.sent_at.astimezone(core.clock.tz).date() for n in sent] == [
            first_b.due_date - timedelta(days=3), first_b.due_date - timedelta(days=1),
            first_b.due_date]
        assert all(n.sent_at.astimezone(core.clock.tz).time() == time(10, 30) for n in sent)
        e = first_b.due_date
        assert {k: v for k, v in reminded_web.items() if v} == {
            e - timedelta(days=3): [rendered("repayment_reminder", loan_b, first_b, "en")],
            e - timedelta(days=1): [rendered("repayment_reminder", loan_b, first_b, "en")],
            e: [rendered("repayment_due_today", loan_b, first_b, "en")]}
        assert reminded_web[e - timedelta(days=3)][0].startswith("A friendly reminder")
        assert back is not None
        await back.ws.close()


# Quiet hours ---------------------------------------------------------------------------------

async def test_quiet_hours_hold_what_can_wait_and_let_urgent_notices_through(
        core, tmp_path, aiohttp_client):
    async with channels(core, tmp_path, aiohttp_client) as ch:
        me, person = await ch.tg_user("en")
        today = core.clock.today()
        core.clock.set(local(core, today, time(22, 30)))
        received = {"loan_id": 9, "amount": "12.00", "principal": "10.00", "interest": "2.00"}
        await enqueue(core, person.user_id, "repayment_received", received, "q-1")
        await enqueue(core, person.user_id, "kyc_result", {"status": "verified"}, "q-2")
        done = await ch.dispatch()
        assert (done.handed, done.deferred) == (1, 1)
        (urgent,) = me.new()
        assert urgent["text"] == me.t("notice_kyc_result_verified")
        waiting = [n for n in await notices_of(core, person.user_id) if n.dedupe_key == "q-1"]
        assert waiting[0].status == "deferred"
        morning = local(core, today + timedelta(days=1), time(8, 0))
        assert waiting[0].not_before == morning

        core.clock.set(morning - timedelta(minutes=1))
        await ch.dispatch()
        assert me.new() == []
        core.clock.set(morning)
        await ch.dispatch()
        (held,) = me.new()
        assert held["text"].startswith("Loan #9 paid you")

        # The user chooses their own window in the chat; a wrong one is explained and kept out.
        (summary,) = await me.say("/notifications")
        assert "21:00-08:00 (default)" in summary["text"]
        assert "notify:quiet" in actions(summary)
        (ask,) = await me.tap("notify:quiet")
        assert ask["text"] == me.t("notify_quiet_ask")
        (refused,) = await me.say("25:00-07:00")
        assert refused["text"] == ch.site.engine.catalog.error("en", InvalidQuietHours())
        (saved,) = await me.say("23:00-07:00")
        assert saved["text"].startswith(me.t("notify_saved"))
        assert "Quiet hours: 23:00-07:00" in saved["text"]

        core.clock.set(local(core, today + timedelta(days=1), time(22, 30)))
        await enqueue(core, person.user_id, "repayment_received", {**received, "loan_id": 10},
                      "q-3")
        await ch.dispatch()
        assert [m["text"][:12] for m in me.new()] == ["Loan #10 pai"]  # 22:30: not quiet now
        core.clock.set(local(core, today + timedelta(days=1), time(23, 30)))
        await enqueue(core, person.user_id, "repayment_received", {**received, "loan_id": 11},
                      "q-4")
        await ch.dispatch()
        assert me.new() == []
        (late,) = [n for n in await notices_of(core, person.user_id) if n.dedupe_key == "q-4"]
        assert (late.status, late.not_before) == (
            "deferred", local(core, today + timedelta(days=2), time(7, 0)))


async def test_collections_notices_wait_for_morning_even_for_a_user_without_quiet_hours(
        core, tmp_path, aiohttp_client):
    async with channels(core, tmp_path, aiohttp_client) as ch:
        me, person = await ch.tg_user("en", {"borrower"})
        await me.say("/notifications")
        (saved,) = await me.tap("notify:quiet")
        (saved,) = await me.tap("notify:quiet_off")
        assert "Quiet hours: none" in saved["text"]
        night = local(core, core.clock.today(), time(23, 0))
        core.clock.set(night)
        params = {"loan_id": 5, "period": 1, "due_date": "2026-03-10", "amount": "100.00"}
        await enqueue(core, person.user_id, "repayment_received",
                      {"loan_id": 6, "amount": "1.00", "principal": "1.00", "interest": "0"},
                      "c-0")
        await enqueue(core, person.user_id, "repayment_reminder", params, "c-1")
        await ch.dispatch()
        assert [m["text"][:11] for m in me.new()] == ["Loan #6 pai"]  # no quiet hours for this
        (reminder,) = [n for n in await notices_of(core, person.user_id) if n.dedupe_key == "c-1"]
        assert reminder.status == "deferred"  # the default window still binds collections
        assert reminder.not_before == local(core, core.clock.today() + timedelta(days=1),
                                            time(8, 0))


# Muting and broadcasts -----------------------------------------------------------------------

async def test_muted_users_get_no_offers_but_every_required_notice(core, tmp_path, aiohttp_client):
    async with channels(core, tmp_path, aiohttp_client) as ch:
        muted, muted_person = await ch.tg_user("en")
        other, other_person = await ch.tg_user("zh-CN")
        tab, web_person = await ch.web_user("en")
        await muted.say("/notifications")
        (off,) = await muted.tap("notify:marketing_off")
        assert "Offers and campaigns: off" in off["text"]
        assert "notify:marketing_on" in actions(off)
        (unsubscribed,) = await tab.say("TD")
        assert unsubscribed["text"] == ch.site.engine.catalog.text("en", "notify_marketing_muted")

        async with core.uow() as uow:
            first = await core.broadcasts.create(
                uow, name="Spring top-up", segment=Segment(role="investor"),
                text_zh="春季充值活动：今天充值有礼。", text_en="Spring top-up week.",
                buttons=["flow:top_up"])
            await core.broadcasts.start(uow, first)
            await uow.commit()
        assert await core.broadcasts.resume(core.uow, first) >= 3
        await ch.dispatch()
        assert muted.new() == []
        assert await tab.silent()
        (offer,) = other.new()
        assert offer["text"].startswith("春季充值活动：今天充值有礼。")
        assert "回复 TD" in offer["text"]
        assert actions(offer) == ["flow:top_up", MUTE_MARKETING]
        statuses = {n.user_id: n.status for n in await _broadcast_notices(core, first)}
        assert statuses[muted_person.user_id] == "muted"
        assert statuses[web_person.user_id] == "muted"
        assert statuses[other_person.user_id] == "sent"

        # What the contract or the law requires still arrives, whatever was muted.
        await muted.tap("notify:updates_off")
        await enqueue(core, muted_person.user_id, "repayment_received",
                      {"loan_id": 3, "amount": "5.00", "principal": "4.00", "interest": "1.00"},
                      "m-1")
        await enqueue(core, muted_person.user_id, "listing_cancelled",
                      {"loan_id": 4, "refunded": "100.00"}, "m-2")
        await ch.dispatch()
        assert texts(muted.new()) == [render_notice(
            ch.site.engine.catalog, "listing_cancelled", {"loan_id": 4, "refunded": "100.00"},
            "en").text]

        # "Stop offers" under the offer mutes the next one; a top-up within 7 days converts.
        core.clock.advance(timedelta(hours=2))
        await other.tap(MUTE_MARKETING)
        async with core.uow() as uow:
            order = await core.wallet.request_top_up(uow, other_person.user_id, cny("500"),
                                                     "after-offer")
            await uow.commit()
        async with core.uow(read_only=True) as uow:
            ref = (await core.wallet.order(uow, order.id)).bank_ref
        await core.bank.settle(ref, succeeded=True)
        async with core.uow() as uow:
            second = await core.broadcasts.create(
                uow, name="Second", segment=Segment(role="investor"), text_zh="第二条",
                text_en="Second")
            await core.broadcasts.start(uow, second)
            await uow.commit()
        await core.broadcasts.resume(core.uow, second)
        await ch.dispatch()
        assert not [m for m in other.new() if m["text"].startswith("第二条")]
        async with core.uow() as uow:
            assert await core.broadcasts.attribute_conversions(uow) == 1
            assert await core.broadcasts.attribute_conversions(uow) == 0  # counted once
            await uow.commit()
        async with core.uow(read_only=True) as uow:
            listed = {b["id"]: b for b in await core.broadcasts.list(uow)}
            events = (await uow.conn.execute(select(analytics_events.c.user_id).where(
                analytics_events.c.name == "broadcast_converted"))).scalars().all()
        assert listed[first]["reach"] == 3 and listed[first]["sent"] == 1
        assert listed[first]["muted"] == 2 and listed[first]["converted_top_up"] == 1
        assert listed[second]["sent"] == 0 and listed[second]["muted"] == 3
        assert events == [other_person.user_id]
        await tab.ws.close()


async def _broadcast_notices(core: Any, broadcast_id: int) -> list[Any]:
    async with core.uow(read_only=True) as uow:
        return (await uow.conn.execute(select(outbox).where(
            outbox.c.dedupe_key.like(f"broadcast:{broadcast_id}:%")))).all()


async def test_a_segment_picks_by_locale_channel_balance_and_first_investment(core, tmp_path,
                                                                              aiohttp_client):
    async with channels(core, tmp_path, aiohttp_client) as ch:
        _, zh_person = await ch.tg_user("zh-CN")
        _, en_person = await ch.tg_user("en")
        _, web_person = await ch.web_user("en")
        rich = await investor(core, "50000")

        async def picked(**segment: Any) -> list[int]:
            async with core.uow(read_only=True) as uow:
                return await core.broadcasts.audience(uow, Segment.from_dict(segment))

        assert zh_person.user_id in await picked(locales=["zh-CN"])
        assert en_person.user_id not in await picked(locales=["zh-CN"])
        assert await picked(channels=["web"]) == [web_person.user_id]
        assert await picked(min_idle_balance="10000") == [rich.user_id]
        assert rich.user_id in await picked(no_first_investment=True, role="investor")
        assert await picked(role="borrower") == []
        assert rich.user_id in await picked(risk_levels=["C5"])  # the bold answers
        assert rich.user_id not in await picked(risk_levels=["C1", "C2"])


# Channel limits and failures -----------------------------------------------------------------

async def test_429_waits_for_that_chat_5xx_is_retried_and_403_fails_without_retrying(
        core, tmp_path, aiohttp_client):
    async with channels(core, tmp_path, aiohttp_client) as ch:
        server = ch.tg.server
        (slow, slow_p), (flaky, flaky_p), (gone, gone_p) = [await ch.tg_user("en")
                                                             for _ in range(3)]
        before = {u.chat: len(server.calls_to("sendMessage", u.chat)) for u in (slow, flaky)}
        server.fail_next("sendMessage", status=429, retry_after=1, chat_id=slow.chat)
        server.fail_next("sendMessage", status=502, chat_id=flaky.chat, times=2)
        server.block(gone.chat)
        for person in (slow_p, flaky_p, gone_p):
            await enqueue(core, person.user_id, "kyc_result", {"status": "verified"},
                          f"f-{person.user_id}")
        await ch.dispatch()
        verified = slow.t("notice_kyc_result_verified")
        assert texts(slow.new()) == [verified] and texts(flaky.new()) == [verified]
        calls = server.calls_to("sendMessage", slow.chat)[before[slow.chat]:]
        assert [c.status for c in calls] == [429, 200]
        assert calls[1].at - calls[0].at >= 1.0  # retry_after honoured for that chat
        assert [c.status for c in server.calls_to("sendMessage", flaky.chat)
                [before[flaky.chat]:]] == [502, 502, 200]
        assert texts(gone.new()) == []
        states = {n.user_id: (n.status, n.last_error) for n in await _all(core)}
        assert states[slow_p.user_id] == ("sent", None)
        assert states[flaky_p.user_id] == ("sent", None)
        assert states[gone_p.user_id][0] == "failed"
        assert "blocked" in states[gone_p.user_id][1]

        tried = len(server.calls_to("sendMessage", gone.chat))
        await enqueue(core, gone_p.user_id, "kyc_result", {"status": "verified"}, "f-again")
        await ch.dispatch()
        (again,) = [n for n in await notices_of(core, gone_p.user_id)
                    if n.dedupe_key == "f-again"]
        assert (again.status, again.last_error) == ("failed", "no reachable chat")
        assert len(server.calls_to("sendMessage", gone.chat)) == tried  # not tried again

        server.unblock(gone.chat)
        await gone.say("/start")  # writing again makes the chat reachable
        gone.new()
        await enqueue(core, gone_p.user_id, "kyc_result", {"status": "verified"}, "f-back")
        await ch.dispatch()
        assert texts(gone.new()) == [verified]


async def _all(core: Any) -> list[Any]:
    async with core.uow(read_only=True) as uow:
        return (await uow.conn.execute(select(outbox).order_by(outbox.c.id))).all()


async def test_notices_follow_the_preferred_chat_else_the_last_used(core, tmp_path,
                                                                   aiohttp_client):
    async with channels(core, tmp_path, aiohttp_client) as ch:
        me, person = await ch.tg_user("en")
        tab = await ch.site.tab(lang="en")
        await tab.say("hello")
        chat_id = ch.site.client.app[WEBCHAT].tokens.chat_of(tab.session, core.clock.now())
        async with core.uow() as uow:  # the same person also writes on the web
            await uow.conn.execute(channel_identities.update().where(
                channel_identities.c.channel == "web",
                channel_identities.c.external_id == chat_id).values(user_id=person.user_id))
            await uow.commit()
        core.clock.advance(timedelta(minutes=1))
        await tab.say("hello again")  # the web chat is now the one used last
        await enqueue(core, person.user_id, "kyc_result", {"status": "verified"}, "p-1")
        await ch.dispatch()
        assert me.new() == []
        pushed = await tab.frame()
        assert pushed["text"] == me.t("notice_kyc_result_verified")

        core.clock.advance(timedelta(minutes=1))
        await me.say("/notifications")
        (saved,) = await me.tap("notify:here")
        assert "Notices go to: Telegram" in saved["text"]
        core.clock.advance(timedelta(minutes=1))
        await tab.say("and again")  # used last again, but Telegram is preferred
        await enqueue(core, person.user_id, "kyc_result", {"status": "verified"}, "p-2")
        await ch.dispatch()
        assert texts(me.new()) == [me.t("notice_kyc_result_verified")]
        assert await tab.silent()
        await tab.ws.close()


# The scheduler -------------------------------------------------------------------------------

async def test_the_scheduler_runs_the_day_at_its_time_catches_up_and_sends_scheduled_broadcasts(
        core):
    scheduler = Scheduler(core)
    start = core.clock.today()
    core.clock.set(local(core, start, time(1, 0)))  # before 02:00: yesterday is the latest day
    did = await scheduler.tick()
    assert did.get("days") == [start - timedelta(days=1)]
    assert (await scheduler.tick()).get("days") is None  # nothing twice
    core.clock.set(local(core, start + timedelta(days=3), time(2, 5)))  # down for three days
    did = await scheduler.tick()
    assert did["days"] == [start + timedelta(days=n) for n in range(4)]
    async with core.uow(read_only=True) as uow:
        ran = set((await uow.conn.execute(select(job_runs.c.business_date).distinct()))
                  .scalars())
    assert {start + timedelta(days=n) for n in range(4)} <= ran
    assert 0 < scheduler.seconds_to_next() <= 60

    person = await onboard(core, roles={"investor"})
    async with core.uow() as uow:
        later = await core.broadcasts.create(
            uow, name="Later", segment=Segment(role="investor"), text_zh="稍后", text_en="Later",
            send_at=core.clock.now() + timedelta(hours=1))
        await uow.commit()
    assert "broadcasts" not in await scheduler.tick()
    core.clock.advance(timedelta(hours=1))
    assert (await scheduler.tick())["broadcasts"] == [later]
    async with core.uow(read_only=True) as uow:
        row = (await uow.conn.execute(select(broadcasts).where(broadcasts.c.id == later))).one()
    assert (row.status, row.audience) == ("sent", 1)
    assert [n.template for n in await notices_of(core, person.user_id)
            if n.template == "broadcast"] == ["broadcast"]


async def test_a_backlog_that_outlives_its_lease_is_still_sent_once(core, tmp_path,
                                                                   aiohttp_client):
    """Messages a sender holds longer than ``delivery.lease_seconds`` (a slow chat, a long
    backlog) keep their lease and are never claimed a second time by the same sender."""
    async with channels(core, tmp_path, aiohttp_client, per_chat_interval_ms=300,
                        lease_seconds=5) as ch:
        me, person = await ch.tg_user("en")
        for n in range(6):
            await enqueue(core, person.user_id, "kyc_result", {"status": "verified"}, f"b-{n}")
        async with core.uow() as uow:
            await ch.dispatcher.run_once(uow)
            await uow.commit()
        ch.tg.adapter.sender.poke()
        await ch.tg.server.wait_for(int(me.chat), len(ch.tg.server.sent(int(me.chat))) + 1)
        core.clock.advance(timedelta(hours=1))  # every lease taken at the claim has run out
        sender = ch.tg.adapter.sender
        sender.poke()
        await ch.tg.idle()
        for _ in range(100):  # and nothing more waits in the sender's memory
            await asyncio.sleep(0.05)
            if sender.idle:
                break
        await asyncio.sleep(0.6)  # a claim pass after the last send
        assert sender.idle
        assert texts(me.new()) == [me.t("notice_kyc_result_verified")] * 6
        assert {n.status for n in await notices_of(core, person.user_id)} == {"sent"}
