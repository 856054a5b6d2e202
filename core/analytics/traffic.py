"""Traffic: visits and new users by channel and campaign, day by day, and each source's quality.

* visits: ``first_visit`` events - a chat (Telegram chat, web-chat session) contacting us for the
  first time - grouped and filtered by the event's own channel and campaign (the chat's first
  touch, ``channel_identities``);
* chats: distinct chats that wrote to us that day (``inbound_log``), by the chat's first touch;
* new users: ``users.registered_at``, by the user's first touch (``users.first_channel`` /
  ``first_campaign``);
* quality of a source, for the users it brought in the period, followed up to now:
  registration rate = new users / visits; first-investment rate = those users who have made a
  first investment (a bid not refunded) / visits; investment per visitor = what those users
  have invested (bids not refunded) / visits; with ``costs`` (campaign -> spend in the period),
  cost per registration and cost per first investor (CPA). There is no cost setting yet: pass
  ``costs``; without it the cost figures are None and ``costs_setting`` says what to add.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import distinct, func, select

from config.settings import Settings
from core.adapters.tables import (
    analytics_events,
    bids,
    channel_identities,
    conversations,
    inbound_log,
    users,
)
from core.adapters.uow import UnitOfWork
from core.analytics import rollups
from core.analytics.filters import Filters, attributed, label, local_day
from core.analytics.numbers import compared, currency, money, share, total

COSTS_SETTING = ("no campaign costs configured: pass costs={campaign: spend} for the period, "
                 "or add a setting such as `[marketing] campaign_costs = {spring_promo = "
                 "\"5000.00\"}` (config/settings.py, not there yet)")


async def _visits(uow: UnitOfWork, f: Filters, *, by_day: bool
                  ) -> list[tuple[str | None, str | None, str | None, int]]:
    """``first_visit`` events of the period: ``(day, channel, campaign, visits)``, from the
    daily rollup when it holds them (day None unless ``by_day``)."""
    if await rollups.events_covered(uow, f):
        return await rollups.event_counts(uow, f, "first_visit", by_day=by_day)
    lo, hi = f.utc(uow.clock.tz)
    e = analytics_events.c
    day = local_day(uow, e.occurred_at, lo, hi)
    groups = [day, e.channel, e.campaign] if by_day else [e.channel, e.campaign]
    rows = (await uow.conn.execute(
        select(*groups, func.count())
        .where(e.name == "first_visit", e.occurred_at >= lo, e.occurred_at < hi,
               *attributed(f, e.channel, e.campaign)).group_by(*groups))).all()
    return [(r[0], r[1], r[2], int(r[3])) if by_day else (None, r[0], r[1], int(r[2]))
            for r in rows]


async def daily(uow: UnitOfWork, f: Filters) -> list[dict[str, Any]]:
    """Per business day, channel and campaign: ``[{"day", "channel", "campaign", "visits",
    "chats", "new_users"}]`` (rows with something in them, ordered)."""
    lo, hi = f.utc(uow.clock.tz)
    u, ci, il, cv = users.c, channel_identities.c, inbound_log.c, conversations.c
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}

    def add(day: str, channel: str | None, campaign: str | None, name: str, n: int) -> None:
        key = (day, label(channel), label(campaign))
        row = rows.setdefault(key, {"day": day, "channel": key[1], "campaign": key[2],
                                    "visits": 0, "chats": 0, "new_users": 0})
        row[name] += int(n)

    for r in await _visits(uow, f, by_day=True):
        add(str(r[0]), r[1], r[2], "visits", r[3])
    day = local_day(uow, il.at, lo, hi)
    for r in (await uow.conn.execute(
            select(day, ci.channel, ci.campaign, func.count(distinct(il.conversation_id)))
            .select_from(inbound_log.join(conversations, cv.id == il.conversation_id).join(
                channel_identities, (ci.channel == cv.channel) & (ci.external_id == cv.chat_id)))
            .where(il.at >= lo, il.at < hi, *attributed(f, ci.channel, ci.campaign))
            .group_by(day, ci.channel, ci.campaign))).all():
        add(r[0], r[1], r[2], "chats", r[3])
    day = local_day(uow, u.registered_at, lo, hi)
    for r in (await uow.conn.execute(
            select(day, u.first_channel, u.first_campaign, func.count())
            .where(u.registered_at >= lo, u.registered_at < hi,
                   *attributed(f, u.first_channel, u.first_campaign))
            .group_by(day, u.first_channel, u.first_campaign))).all():
        add(r[0], r[1], r[2], "new_users", r[3])
    return [rows[k] for k in sorted(rows)]


async def totals(uow: UnitOfWork, f: Filters) -> dict[str, int]:
    """Visits, chats that wrote, and new users in the period: ``{"visits", "chats",
    "new_users"}`` (chats counted once over the period)."""
    lo, hi = f.utc(uow.clock.tz)
    u, ci, il, cv = users.c, channel_identities.c, inbound_log.c, conversations.c
    visits = sum(r[3] for r in await _visits(uow, f, by_day=False))
    chats = (await uow.conn.execute(
        select(func.count(distinct(il.conversation_id)))
        .select_from(inbound_log.join(conversations, cv.id == il.conversation_id).join(
            channel_identities, (ci.channel == cv.channel) & (ci.external_id == cv.chat_id)))
        .where(il.at >= lo, il.at < hi, *attributed(f, ci.channel, ci.campaign)))).scalar_one()
    new_users = (await uow.conn.execute(select(func.count()).where(
        u.registered_at >= lo, u.registered_at < hi,
        *attributed(f, u.first_channel, u.first_campaign)))).scalar_one()
    return {"visits": int(visits), "chats": int(chats), "new_users": int(new_users)}


async def traffic(uow: UnitOfWork, f: Filters, *, settings: Settings,
                  costs: dict[str, Decimal] | None = None) -> dict[str, Any]:
    """The traffic page: ``{"totals": {"visits", "chats", "new_users": {"value",
    "previous"}}, "daily": daily(), "channels": [source], "campaigns": [source + costs],
    "costs_configured", "costs_setting"}``; a source is ``{"channel" | "campaign", "visits",
    "new_users", "first_investors", "invested", "registration_rate", "first_investment_rate",
    "investment_per_visitor"}``, campaigns add ``"cost", "cost_per_registration",
    "cost_per_first_investor"`` (None without costs)."""
    now, before = await totals(uow, f), await totals(uow, f.previous())
    by_channel, by_campaign = await _quality(uow, f, settings)
    cur = currency(settings)
    for row in by_campaign:
        spend = None if costs is None else costs.get(row["campaign"])
        row["cost"] = None if spend is None else money(spend, cur)
        row["cost_per_registration"] = _per(spend, row["new_users"], cur)
        row["cost_per_first_investor"] = _per(spend, row["first_investors"], cur)
    return {"totals": {k: compared(now[k], before[k]) for k in now},
            "daily": await daily(uow, f), "channels": by_channel, "campaigns": by_campaign,
            "costs_configured": costs is not None,
            "costs_setting": None if costs is not None else COSTS_SETTING}


def _per(spend: Decimal | None, n: int, cur: Any) -> Decimal | None:
    return None if spend is None or not n else money(Decimal(spend) / n, cur)


async def _quality(uow: UnitOfWork, f: Filters, settings: Settings
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cur = currency(settings)
    lo, hi = f.utc(uow.clock.tz)
    u, b = users.c, bids.c
    sources: dict[str, dict[Any, dict[str, Any]]] = {"channel": {}, "campaign": {}}

    def row(kind: str, key: str) -> dict[str, Any]:
        return sources[kind].setdefault(key, {kind: key, "visits": 0, "new_users": 0,
                                              "first_investors": 0, "invested": Decimal(0)})

    for _, channel, campaign, n in await _visits(uow, f, by_day=False):
        row("channel", label(channel))["visits"] += n
        row("campaign", label(campaign))["visits"] += n
    if rollups.enabled():  # the period's people and their own bids (by investor), not all
        acquired = await uow.conn.execute(
            select(u.first_channel, u.first_campaign,
                   func.count(distinct(u.id)).label("users"),
                   func.count(distinct(b.investor_id)).label("investors"),
                   total(b.amount).label("amount"))
            .select_from(users.outerjoin(bids, (b.investor_id == u.id)
                                         & (b.status != "refunded")))
            .where(u.registered_at >= lo, u.registered_at < hi,
                   *attributed(f, u.first_channel, u.first_campaign))
            .group_by(u.first_channel, u.first_campaign))
    else:
        invested = (select(b.investor_id, total(b.amount).label("amount"))
                    .where(b.status != "refunded").group_by(b.investor_id).subquery())
        acquired = await uow.conn.execute(
            select(u.first_channel, u.first_campaign, func.count(u.id).label("users"),
                   func.count(invested.c.investor_id).label("investors"),
                   total(invested.c.amount).label("amount"))
            .select_from(users.outerjoin(invested, invested.c.investor_id == u.id))
            .where(u.registered_at >= lo, u.registered_at < hi,
                   *attributed(f, u.first_channel, u.first_campaign))
            .group_by(u.first_channel, u.first_campaign))
    for r in acquired:
        for kind, key in (("channel", label(r.first_channel)),
                          ("campaign", label(r.first_campaign))):
            target = row(kind, key)
            target["new_users"] += int(r.users)
            target["first_investors"] += int(r.investors)
            target["invested"] += Decimal(r.amount)
    out = []
    for kind in ("channel", "campaign"):
        rows = []
        for key in sorted(sources[kind]):
            s = sources[kind][key]
            rows.append({**s, "invested": money(s["invested"], cur),
                         "registration_rate": share(s["new_users"], s["visits"]),
                         "first_investment_rate": share(s["first_investors"], s["visits"]),
                         "investment_per_visitor": None if not s["visits"] else money(
                             s["invested"] / s["visits"], cur)})
        out.append(rows)
    return out[0], out[1]
