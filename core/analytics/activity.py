"""Activity: daily, weekly and monthly active users, investing, and retention by weekly cohort.

A registered user is **active** on a business day when they did something themselves that day:

* wrote to us in a chat (``inbound_log``, through the chat's ``channel_identities.user_id``), or
* moved money: asked for a top-up or a withdrawal (``payment_orders.created_at``), placed a bid
  by hand (``bids``, ``auto = false``), or paid a loan themselves (``repayments`` with source
  ``borrower`` or ``early``; auto-debits and auto-invest bids are the system acting).

DAU(d) = users active on d; WAU(d) / MAU(d) = users active on any of the 7 / 30 days ending on d;
DAU/MAU = DAU(d) / MAU(d), averaged over the period's days in the summary. Users are filtered by
their first touch (``users.first_channel`` / ``first_campaign``).

Investing in the period counts bids placed in it that were not refunded: volume, count,
investors, average ticket = volume / count, and repeat rate = investors with a bid in the period
that was not their first investment / investors with a bid in the period.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Select, distinct, func, select, union_all

from config.settings import Settings
from core.adapters.tables import (
    analytics_milestones,
    bids,
    channel_identities,
    conversations,
    inbound_log,
    loans,
    payment_orders,
    repayments,
    users,
)
from core.adapters.uow import UnitOfWork
from core.analytics import rollups
from core.analytics.filters import Filters, attributed, day_start, joined, local_day
from core.analytics.numbers import compared, currency, money, share, total

ONE_PLACE = Decimal("0.1")


async def active_days(uow: UnitOfWork, first: date, last: date,
                      people: Select[Any] | None = None) -> dict[date, set[int]]:
    """Who was active on each business day from ``first`` to ``last`` (``people``: a SELECT of
    user ids to keep)."""
    tz = uow.clock.tz
    lo, hi = day_start(first, tz), day_start(last + timedelta(days=1), tz)
    ci, cv, il = channel_identities.c, conversations.c, inbound_log.c
    p, b, r, lo_c = payment_orders.c, bids.c, repayments.c, loans.c
    sources = union_all(
        select(ci.user_id.label("user_id"), local_day(uow, il.at, lo, hi).label("day"))
        .select_from(inbound_log.join(conversations, cv.id == il.conversation_id).join(
            channel_identities, (ci.channel == cv.channel) & (ci.external_id == cv.chat_id)))
        .where(il.at >= lo, il.at < hi, ci.user_id.is_not(None)),
        select(p.user_id, local_day(uow, p.created_at, lo, hi))
        .where(p.created_at >= lo, p.created_at < hi),
        select(b.investor_id, local_day(uow, b.created_at, lo, hi))
        .where(b.created_at >= lo, b.created_at < hi, b.auto.is_(False)),
        select(lo_c.borrower_id, local_day(uow, r.received_at, lo, hi))
        .select_from(repayments.join(loans, lo_c.id == r.loan_id))
        .where(r.received_at >= lo, r.received_at < hi, r.source.in_(("borrower", "early"))),
    ).subquery()
    query = select(sources.c.user_id, joined(uow, sources.c.day, distinct=True)).group_by(
        sources.c.user_id)
    if people is not None:
        query = query.where(sources.c.user_id.in_(people))
    out: dict[date, set[int]] = defaultdict(set)
    days: dict[str, date] = {}
    for user_id, text in (await uow.conn.execute(query)).all():
        for day in text.split(","):
            if day not in days:
                days[day] = date.fromisoformat(day)
            out[days[day]].add(user_id)
    return out


def _people(f: Filters) -> Select[Any] | None:
    where = attributed(f, users.c.first_channel, users.c.first_campaign)
    return select(users.c.id).where(*where) if where else None


def rolling(active: dict[date, set[int]], days: list[date], width: int) -> dict[date, int]:
    """Users active on any of the ``width`` days ending on each of ``days``."""
    out: dict[date, int] = {}
    count: dict[int, int] = defaultdict(int)
    if not days:
        return out
    first = day = days[0] - timedelta(days=width - 1)
    while day <= days[-1]:
        for user in active.get(day, ()):
            count[user] += 1
        leaving = day - timedelta(days=width)
        for user in active.get(leaving, ()) if leaving >= first else ():
            count[user] -= 1
            if not count[user]:
                del count[user]
        out[day] = len(count)
        day += timedelta(days=1)
    return {d: out[d] for d in days}


def _summary(active: dict[date, set[int]], f: Filters) -> dict[str, Any]:
    days = f.dates()
    mau = rolling(active, days, 30)
    dau = [len(active.get(d, ())) for d in days]
    ratios = [Decimal(n) / mau[d] for n, d in zip(dau, days, strict=True) if mau[d]]
    everyone = set().union(*(active.get(d, set()) for d in days))
    return {"active_users": len(everyone),
            "dau_avg": (Decimal(sum(dau)) / len(days)).quantize(ONE_PLACE, ROUND_HALF_UP),
            "wau": rolling(active, days[-1:], 7)[days[-1]], "mau": mau[days[-1]],
            "dau_mau": None if not ratios else (sum(ratios) / len(ratios)).quantize(
                Decimal("0.0001"), ROUND_HALF_UP)}


async def active_users(uow: UnitOfWork, f: Filters) -> dict[str, Any]:
    """``{"daily": [{"day", "dau", "wau", "mau", "dau_mau"}], "summary": {"active_users",
    "dau_avg", "wau", "mau", "dau_mau": {"value", "previous"}}}`` (WAU and MAU of the
    summary: at the period's last day)."""
    before = f.previous()
    active = await active_days(uow, before.start - timedelta(days=29), f.end, _people(f))
    days = f.dates()
    dau = {d: len(active.get(d, ())) for d in days}
    wau, mau = rolling(active, days, 7), rolling(active, days, 30)
    now, then = _summary(active, f), _summary(active, before)
    return {"daily": [{"day": d.isoformat(), "dau": dau[d], "wau": wau[d], "mau": mau[d],
                       "dau_mau": share(dau[d], mau[d])} for d in days],
            "summary": {k: compared(now[k], then[k]) for k in now}}


async def investing(uow: UnitOfWork, f: Filters, *, settings: Settings) -> dict[str, Any]:
    """Bids placed in the period and not refunded: ``{"investments", "volume", "investors",
    "average_ticket", "repeat_rate"}`` (investors by first touch)."""
    cur = currency(settings)
    lo, hi = f.utc(uow.clock.tz)
    b, u = bids.c, users.c
    if await rollups.milestones_usable(uow):  # not the first investment: not its first bid
        m = analytics_milestones.c
        query = (select(func.count(), total(b.amount), func.count(distinct(b.investor_id)),
                        func.count(distinct(b.investor_id)).filter(b.id != m.first_bid_id))
                 .select_from(bids.join(users, u.id == b.investor_id).join(
                     analytics_milestones, m.user_id == b.investor_id))
                 .where(b.created_at >= lo, b.created_at < hi, b.status != "refunded",
                        *attributed(f, u.first_channel, u.first_campaign)))
        return _investing((await uow.conn.execute(query)).one(), cur)
    ranked = select(b.investor_id, b.created_at, b.amount, func.row_number().over(
        partition_by=b.investor_id, order_by=(b.created_at, b.id)).label("n")).where(
        b.status != "refunded").subquery()
    row = (await uow.conn.execute(
        select(func.count(), total(ranked.c.amount), func.count(distinct(ranked.c.investor_id)),
               func.count(distinct(ranked.c.investor_id)).filter(ranked.c.n > 1))
        .select_from(ranked.join(users, u.id == ranked.c.investor_id))
        .where(ranked.c.created_at >= lo, ranked.c.created_at < hi,
               *attributed(f, u.first_channel, u.first_campaign)))).one()
    return _investing(row, cur)


def _investing(row: Any, cur: Any) -> dict[str, Any]:
    count, volume, investors, repeat = int(row[0]), Decimal(row[1]), int(row[2]), int(row[3])
    return {"investments": count, "volume": money(volume, cur), "investors": investors,
            "average_ticket": money(volume / count, cur) if count else None,
            "repeat_rate": share(repeat, investors)}


async def retention(uow: UnitOfWork, f: Filters) -> list[dict[str, Any]]:
    """Users registered in the period by week (Monday, business time) and the share of them
    active in each week since, up to this week: ``[{"cohort", "users", "weeks": [{"week": 0,
    "active", "share"}, ...]}]``."""
    lo, hi = f.utc(uow.clock.tz)
    u = users.c
    today = uow.clock.today()
    cohort_of: dict[int, date] = {}
    for row in (await uow.conn.execute(select(u.id, u.registered_at).where(
            u.registered_at >= lo, u.registered_at < hi,
            *attributed(f, u.first_channel, u.first_campaign)))).all():
        day = uow.clock.local(row.registered_at).date()
        cohort_of[row.id] = day - timedelta(days=day.weekday())
    if not cohort_of:
        return []
    people = select(u.id).where(u.registered_at >= lo, u.registered_at < hi,
                                *attributed(f, u.first_channel, u.first_campaign))
    active = await active_days(uow, min(cohort_of.values()), today, people)
    seen: dict[tuple[date, int], set[int]] = defaultdict(set)
    for day, who in active.items():
        for user in who:
            week = cohort_of.get(user)
            if week is not None and day >= week:
                seen[(week, (day - week).days // 7)].add(user)
    sizes: dict[date, int] = defaultdict(int)
    for week in cohort_of.values():
        sizes[week] += 1
    this_week = today - timedelta(days=today.weekday())
    return [{"cohort": week.isoformat(), "users": n,
             "weeks": [{"week": k, "active": len(seen[(week, k)]),
                        "share": share(len(seen[(week, k)]), n)}
                       for k in range((this_week - week).days // 7 + 1)]}
            for week, n in sorted(sizes.items())]


async def activity(uow: UnitOfWork, f: Filters, *, settings: Settings) -> dict[str, Any]:
    """The activity page: ``{"daily", "summary"}`` of ``active_users``, ``"investing":
    {figure: {"value", "previous"}}`` and ``"retention"``."""
    users_ = await active_users(uow, f)
    now = await investing(uow, f, settings=settings)
    then = await investing(uow, f.previous(), settings=settings)
    return {**users_, "investing": {k: compared(now[k], then[k]) for k in now},
            "retention": await retention(uow, f)}

