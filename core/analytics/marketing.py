"""Marketing: each broadcast's reach, delivery and conversions; opt-outs; users' feedback.

* Broadcasts are read through ``Broadcasts.list`` (``core/services/broadcasts.py``): reach =
  recipients; delivery by their outbox notice's status (``sent``, ``failed``, ``muted``,
  waiting = pending / deferred / queued); conversions = recipients who topped up or invested
  within ``notify.conversion_days`` of the message reaching them (attributed hourly by the
  scheduler). A broadcast belongs to the period it started sending in (a draft or scheduled
  one: the period it was created in). Rates: delivery = sent / reach; conversion = converted /
  sent. Broadcasts go to segments, not to channels: the filters do not apply to them.
* Opt-outs: ``notifications_muted`` events with ``what = marketing`` (users by first touch).
* Feedback: ``feedback`` events (free text left in chat), newest first; the channel filter is
  the event's channel (the chat it was written in), the campaign filter the user's first
  campaign (anonymous feedback has none).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from config.settings import Settings
from core.adapters.tables import analytics_events, users
from core.adapters.uow import UnitOfWork
from core.analytics.filters import Filters, attributed
from core.analytics.numbers import compared, share
from core.services.broadcasts import Broadcasts

LIMIT = 1000
FIELDS = ("id", "name", "status", "segment", "audience", "created_at", "send_at", "started_at",
          "finished_at", "reach", "sent", "failed", "muted", "waiting", "converted",
          "converted_top_up", "converted_investment")


async def broadcasts(uow: UnitOfWork, f: Filters, *, settings: Settings) -> list[dict[str, Any]]:
    """Broadcasts of the period, newest first: ``[{"id", "name", "status", "segment",
    "audience", "created_at", "send_at", "started_at", "finished_at", "reach", "sent",
    "failed", "muted", "waiting", "converted", "converted_top_up", "converted_investment",
    "delivery_rate", "conversion_rate", "conversion_days"}]`` (times as ISO strings)."""
    lo, hi = f.utc(uow.clock.tz)
    out = []
    for row in await Broadcasts(settings).list(uow, limit=LIMIT):
        when = row["started_at"] or row["created_at"]
        if not lo <= when < hi:
            continue
        item = {k: _plain(row[k]) for k in FIELDS}
        item["delivery_rate"] = share(row["sent"], row["reach"])
        item["conversion_rate"] = share(row["converted"], row["sent"])
        item["conversion_days"] = settings.notify.conversion_days
        out.append(item)
    return out


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


async def opt_outs(uow: UnitOfWork, f: Filters) -> int:
    """Users who turned marketing messages off in the period (``notifications_muted``)."""
    lo, hi = f.utc(uow.clock.tz)
    e, u = analytics_events.c, users.c
    rows = await uow.conn.execute(
        select(e.user_id, e.props).select_from(analytics_events.join(users, u.id == e.user_id))
        .where(e.name == "notifications_muted", e.occurred_at >= lo, e.occurred_at < hi,
               *attributed(f, u.first_channel, u.first_campaign)))
    return len({r.user_id for r in rows if (r.props or {}).get("what") == "marketing"})


async def feedback(uow: UnitOfWork, f: Filters, limit: int = 200) -> list[dict[str, Any]]:
    """Feedback left in the period, newest first: ``[{"at", "channel", "user_id", "locale",
    "text"}]``."""
    lo, hi = f.utc(uow.clock.tz)
    e, u = analytics_events.c, users.c
    rows = await uow.conn.execute(
        select(e.occurred_at, e.channel, e.user_id, e.props)
        .select_from(analytics_events.outerjoin(users, u.id == e.user_id))
        .where(e.name == "feedback", e.occurred_at >= lo, e.occurred_at < hi,
               *attributed(f, e.channel, u.first_campaign))
        .order_by(e.occurred_at.desc(), e.id.desc()).limit(limit))
    return [{"at": r.occurred_at.isoformat(), "channel": r.channel, "user_id": r.user_id,
             "locale": (r.props or {}).get("locale"), "text": (r.props or {}).get("text", "")}
            for r in rows]


async def marketing(uow: UnitOfWork, f: Filters, *, settings: Settings) -> dict[str, Any]:
    """The marketing page: ``{"broadcasts", "opt_outs": {"value", "previous"}, "feedback"}``."""
    return {"broadcasts": await broadcasts(uow, f, settings=settings),
            "opt_outs": compared(await opt_outs(uow, f), await opt_outs(uow, f.previous())),
            "feedback": await feedback(uow, f)}
