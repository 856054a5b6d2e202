"""Analytics: an append-only event log (write side). Metric queries for dashboards read it.

Event names are a public contract with the dashboards; they are listed in ``docs/events.md``.
Each event also counts in the daily rollup (``core.analytics.rollups``), in the same
transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.adapters.tables import analytics_events
from core.adapters.uow import UnitOfWork
from core.analytics import rollups


async def track(uow: UnitOfWork, name: str, user_id: int | None = None, channel: str | None = None,
                campaign: str | None = None, props: dict[str, Any] | None = None,
                at: datetime | None = None) -> None:
    """Append one event, in the caller's transaction (it commits with the change it describes)."""
    if not name or len(name) > 64:
        raise ValueError("event names are 1-64 characters")
    event = {"name": name, "at": at or uow.clock.now(), "user_id": user_id, "channel": channel,
             "campaign": campaign, "props": props}
    await uow.conn.execute(analytics_events.insert().values(
        name=name, occurred_at=event["at"], user_id=user_id, channel=channel,
        campaign=campaign, props=props,
    ))
    await rollups.record(uow, [event])


async def track_many(uow: UnitOfWork, events: list[dict[str, Any]]) -> None:
    """Append many events with one statement (keys as in ``track``)."""
    if not events:
        return
    now = uow.clock.now()
    await uow.conn.execute(analytics_events.insert(), [
        {"name": e["name"], "occurred_at": e.get("at") or now, "user_id": e.get("user_id"),
         "channel": e.get("channel"), "campaign": e.get("campaign"), "props": e.get("props")}
        for e in events])
    await rollups.record(uow, [{**e, "at": e.get("at") or now} for e in events])
