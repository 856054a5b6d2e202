"""Marketing: each broadcast's reach, delivery and conversions; opt-outs; users' feedback."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
from dash import Dash, html

from core.adapters.uow import UnitOfWork
from core.analytics.filters import Filters
from core.analytics.marketing import broadcasts, marketing
from dashboards import format as fmt
from dashboards.bridge import Bridge
from dashboards.components import (
    Column,
    chart,
    kpi,
    kpis,
    note,
    page,
    section,
    table,
)
from dashboards.pages import on_filters

PATH = "/marketing"
NAME = "Marketing"
BODY = "marketing-body"


def layout() -> html.Div:
    return page("Marketing (营销)", BODY)


def register(app: Dash, data: Bridge) -> None:
    """Broadcasts, opt-outs and feedback of the period."""

    async def read(uow: UnitOfWork, f: Filters) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return (await marketing(uow, f, settings=data.settings),
                await broadcasts(uow, f.previous(), settings=data.settings))

    on_filters(app, data, BODY, read, lambda both: render(*both, data.core.clock.tz))


def broadcasts_figure(rows: list[dict[str, Any]]) -> go.Figure:
    names = [f"{r['name']} (#{r['id']})" for r in reversed(rows)]
    return go.Figure([go.Bar(x=names, y=[r[k] for r in reversed(rows)], name=label)
                      for k, label in (("reach", "reach"), ("sent", "sent"),
                                       ("converted", "converted"))]
                     ).update_layout(barmode="group")


def segment(value: Any) -> str:
    """A broadcast's segment in one line: ``role=investor, min_balance=1000``."""
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    return ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, "", [], {}))


def render(m: dict[str, Any], before: list[dict[str, Any]], tz: ZoneInfo) -> list[Any]:
    rows = [{**r, "segment": segment(r["segment"]), "started_at": fmt.moment(
        r["started_at"] or r["send_at"], tz)} for r in m["broadcasts"]]
    feedback = [{**item, "at": fmt.moment(item["at"], tz)} for item in m["feedback"]]
    days = rows[0]["conversion_days"] if rows else None
    return [
        note("Broadcasts go to segments, not channels: the channel and campaign filters do "
             "not apply to them."),
        kpis(kpi("Broadcasts (群发)", len(rows), len(before), card_id="kpi-broadcasts"),
             kpi("Reach (触达)", *(sum(r["reach"] for r in b) for b in (rows, before))),
             kpi("Conversions (转化)", *(sum(r["converted"] for r in b) for b in (rows, before)),
                 note=f"topped up or invested within {days} days" if days else None),
             kpi("Marketing opt-outs (退订)", **m["opt_outs"], better="down")),
        chart("broadcasts", broadcasts_figure(rows), title="Reach, delivery and conversions"),
        section("Broadcasts (群发效果)", table("broadcasts", [
            Column("name", "Broadcast"), Column("status", "Status"), Column("segment", "Segment"),
            Column("started_at", "Started (or scheduled)"), Column("reach", "Reach", "count"),
            Column("sent", "Sent", "count"), Column("failed", "Failed", "count"),
            Column("muted", "Muted", "count"), Column("waiting", "Waiting", "count"),
            Column("delivery_rate", "Delivery rate", "percent"),
            Column("converted", "Converted", "count"),
            Column("converted_top_up", "by top-up", "count"),
            Column("converted_investment", "by investing", "count"),
            Column("conversion_rate", "Conversion rate", "percent")], rows)),
        section("Feedback (用户反馈)", table("feedback", [
            Column("at", "When"), Column("channel", "Channel"), Column("user_id", "User"),
            Column("locale", "Language"), Column("text", "Feedback")], feedback)),
    ]
