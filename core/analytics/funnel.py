"""Conversion: the onboarding funnel by channel, and weekly sign-up cohorts.

Steps and the records that date them (the first time each happened for the person):

* visit: a chat contacting us for the first time (``channel_identities.first_seen_at``, the
  ``first_visit`` event); a new chat of someone already registered is not a visitor;
* registered: ``users.registered_at`` (phone verified, account opened from that chat);
* verified: earliest ``identities.decided_at`` with status ``verified`` (``kyc_verified``);
* card bound: earliest ``bank_cards.bound_at`` (``card_bound``);
* risk assessed: earliest ``risk_profiles.assessed_at`` (``risk_assessed``);
* first investment: the investor's earliest bid that was not refunded (``bids``; a bid on a
  listing that was cancelled does not count - the ``invested`` event's ``first_investment`` flag
  is set when the bid is placed, before anyone knows);
* repeat investment: their second such bid.

The funnel follows the visitors of the period (attributed by their chat's first touch:
``channel_identities.channel`` / ``campaign``) for ``window_days`` after their visit: a person
is at step k if they reached every earlier step and step k within the window (steps done in
another order count; their time from the previous step counts as 0). Sign-up cohorts follow
the users registered in the period (``users.first_channel`` / ``first_campaign``) up to now.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.sql.elements import ColumnElement

from core.adapters.tables import (
    analytics_milestones,
    bank_cards,
    bids,
    channel_identities,
    identities,
    risk_profiles,
    users,
)
from core.adapters.uow import UnitOfWork
from core.analytics import rollups
from core.analytics.filters import Filters, attributed, label
from core.analytics.milestones import STEP_COLUMNS
from core.analytics.numbers import share, spread

STEPS = ("visit", "registered", "verified", "card_bound", "risk_assessed", "first_investment",
         "repeat_investment")
MILESTONES = STEPS[2:]


def investments() -> Any:
    """Bids not refunded, numbered per investor in time order: (user_id, at, n)."""
    b = bids.c
    return select(b.investor_id.label("user_id"), b.created_at.label("at"),
                  func.row_number().over(partition_by=b.investor_id,
                                         order_by=(b.created_at, b.id)).label("n")
                  ).where(b.status != "refunded").subquery()


def firsts() -> dict[str, Any]:
    """Subqueries (user_id, at): when each person first reached each milestone."""
    i, c, rp = identities.c, bank_cards.c, risk_profiles.c
    ranked = investments()
    return {
        "verified": select(i.user_id, func.min(i.decided_at).label("at"))
        .where(i.status == "verified").group_by(i.user_id).subquery(),
        "card_bound": select(c.user_id, func.min(c.bound_at).label("at"))
        .where(c.bound_at.is_not(None)).group_by(c.user_id).subquery(),
        "risk_assessed": select(rp.user_id, func.min(rp.assessed_at).label("at"))
        .group_by(rp.user_id).subquery(),
        "first_investment": select(ranked.c.user_id, ranked.c.at)
        .where(ranked.c.n == 1).subquery(),
        "repeat_investment": select(ranked.c.user_id, ranked.c.at)
        .where(ranked.c.n == 2).subquery(),
    }


async def milestones(uow: UnitOfWork, people: Select[Any]) -> dict[int, dict[str, datetime]]:
    """When each of ``people`` (a SELECT of user ids) registered and first reached each
    milestone."""
    u = users.c
    if await rollups.milestones_usable(uow):
        m = analytics_milestones.c
        rows = await uow.conn.execute(
            select(u.id, u.registered_at, *(m[column].label(name)
                                            for name, column in STEP_COLUMNS.items()))
            .select_from(users.outerjoin(analytics_milestones, m.user_id == u.id))
            .where(u.id.in_(people)))
    else:
        subs = firsts()
        joined = users
        for sub in subs.values():
            joined = joined.outerjoin(sub, sub.c.user_id == u.id)
        rows = await uow.conn.execute(
            select(u.id, u.registered_at, *(sub.c.at.label(name) for name, sub in subs.items()))
            .select_from(joined).where(u.id.in_(people)))
    out = {}
    for row in rows:
        times = {"registered": row.registered_at}
        times.update({name: getattr(row, name) for name in MILESTONES
                      if getattr(row, name) is not None})
        out[row.id] = times
    return out


async def reached(uow: UnitOfWork, f: Filters) -> dict[str, int]:
    """People (by first touch) who reached each milestone for the first time in the period:
    ``{"registered", "verified", "card_bound", "risk_assessed", "first_investment",
    "repeat_investment"}``."""
    lo, hi = f.utc(uow.clock.tz)
    u = users.c
    where = attributed(f, u.first_channel, u.first_campaign)
    out = {"registered": (await uow.conn.execute(select(func.count()).where(
        u.registered_at >= lo, u.registered_at < hi, *where))).scalar_one()}
    if await rollups.milestones_usable(uow):
        m = analytics_milestones.c
        for name, column in STEP_COLUMNS.items():
            at = m[column]
            query = select(func.count()).select_from(analytics_milestones).where(
                at >= lo, at < hi)
            if where:
                query = query.select_from(analytics_milestones.join(
                    users, u.id == m.user_id)).where(*where)
            out[name] = (await uow.conn.execute(query)).scalar_one()
        return {k: int(v) for k, v in out.items()}
    for name, sub in firsts().items():
        if name in ("first_investment", "repeat_investment"):
            continue
        out[name] = (await uow.conn.execute(
            select(func.count()).select_from(users.join(sub, sub.c.user_id == u.id))
            .where(sub.c.at >= lo, sub.c.at < hi, *where))).scalar_one()
    ranked = investments()
    out["first_investment"], out["repeat_investment"] = (await uow.conn.execute(
        select(func.count().filter(ranked.c.n == 1), func.count().filter(ranked.c.n == 2))
        .select_from(ranked.join(users, u.id == ranked.c.user_id))
        .where(ranked.c.at >= lo, ranked.c.at < hi, ranked.c.n <= 2, *where))).one()
    return {k: int(v) for k, v in out.items()}


async def funnel(uow: UnitOfWork, f: Filters, *, window_days: int = 30) -> dict[str, Any]:
    """The funnel of the period's visitors, overall and by channel, next to the previous
    period's overall one: ``{"steps", "window_days", "overall": [step], "by_channel":
    [{"channel", "steps": [step]}], "previous": [step]}``, a step being ``{"step", "count",
    "from_previous", "from_visit", "time_from_previous": {"n", "median", "p90"}}`` (seconds)."""
    current = await _funnel(uow, f, window_days)
    previous = await _funnel(uow, f.previous(), window_days)
    return {"steps": list(STEPS), "window_days": window_days, "overall": current[None],
            "by_channel": [{"channel": k, "steps": v} for k, v in sorted(
                current.items(), key=lambda kv: kv[0] or "") if k is not None],
            "previous": previous[None]}


async def _funnel(uow: UnitOfWork, f: Filters, window_days: int
                  ) -> dict[str | None, list[dict[str, Any]]]:
    lo, hi = f.utc(uow.clock.tz)
    ci, u = channel_identities.c, users.c
    where: list[ColumnElement[bool]] = [ci.first_seen_at >= lo, ci.first_seen_at < hi,
                                        *attributed(f, ci.channel, ci.campaign)]
    chats = (await uow.conn.execute(
        select(ci.channel, ci.first_seen_at, ci.user_id, u.registered_at)
        .select_from(channel_identities.outerjoin(users, u.id == ci.user_id))
        .where(*where).order_by(ci.first_seen_at, ci.id))).all()
    people = select(ci.user_id).select_from(channel_identities.join(
        users, u.id == ci.user_id)).where(*where, u.registered_at >= ci.first_seen_at)
    times = await milestones(uow, people)
    window = timedelta(days=window_days)
    visitors: dict[str | None, int] = defaultdict(int)
    paths: dict[str | None, list[list[datetime]]] = defaultdict(list)
    seen: set[int] = set()
    for chat in chats:
        if chat.registered_at is not None and chat.registered_at < chat.first_seen_at:
            continue  # a registered person's new chat is not a new visitor
        channel = label(chat.channel)
        visitors[channel] += 1
        visitors[None] += 1
        if chat.user_id is None or chat.user_id in seen:
            continue
        seen.add(chat.user_id)
        path = [chat.first_seen_at]
        for step in STEPS[1:]:
            at = times.get(chat.user_id, {}).get(step)
            if at is None or at > chat.first_seen_at + window:
                break
            path.append(at)
        paths[channel].append(path)
        paths[None].append(path)
    visitors.setdefault(None, 0)
    return {key: _steps(visitors[key], paths[key]) for key in visitors}


def _steps(visitors: int, paths: list[list[datetime]]) -> list[dict[str, Any]]:
    out = []
    before = visitors
    for k, step in enumerate(STEPS):
        count = visitors if k == 0 else sum(1 for p in paths if len(p) > k)
        gaps = [max(0.0, (p[k] - p[k - 1]).total_seconds()) for p in paths if k and len(p) > k]
        out.append({"step": step, "count": count,
                    "from_previous": share(count, before) if k else None,
                    "from_visit": share(count, visitors) if k else None,
                    "time_from_previous": spread(gaps) if k else None})
        before = count
    return out


async def signup_cohorts(uow: UnitOfWork, f: Filters) -> list[dict[str, Any]]:
    """Users registered in the period (by first touch), by week of registration (Monday,
    business time), and how many of them have reached each later milestone by now:
    ``[{"week": "2026-03-02", "users", "verified": {"count", "share"}, "card_bound",
    "risk_assessed", "first_investment", "repeat_investment"}]``."""
    lo, hi = f.utc(uow.clock.tz)
    u = users.c
    people = select(u.id).where(u.registered_at >= lo, u.registered_at < hi,
                                *attributed(f, u.first_channel, u.first_campaign))
    weeks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for times in (await milestones(uow, people)).values():
        day = uow.clock.local(times["registered"]).date()
        week = (day - timedelta(days=day.weekday())).isoformat()
        weeks[week]["users"] += 1
        for step in MILESTONES:
            if step in times:
                weeks[week][step] += 1
    return [{"week": week, "users": c["users"],
             **{step: {"count": c[step], "share": share(c[step], c["users"])}
                for step in MILESTONES}} for week, c in sorted(weeks.items())]
