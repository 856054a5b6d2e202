"""Traffic: visits and new users by channel and campaign over time; each source's quality."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import plotly.graph_objects as go
from dash import Dash, html

from core.analytics.costs import spend
from core.analytics.traffic import traffic
from dashboards.bridge import Bridge
from dashboards.components import (
    Column,
    chart,
    grid,
    kpi,
    kpis,
    note,
    page,
    section,
    table,
)
from dashboards.pages import on_filters

PATH = "/traffic"
NAME = "Traffic"
BODY = "traffic-body"


def layout() -> html.Div:
    return page("Traffic (流量)", BODY)


def register(app: Dash, data: Bridge) -> None:
    """Visits, chats and new users for the filters."""
    on_filters(app, data, BODY, lambda uow, f: traffic(uow, f, settings=data.settings,
                                                       costs=spend(data.settings, f)), render)


def over_time(rows: list[dict[str, Any]], by: str, measure: str) -> go.Figure:
    """One line per channel (or campaign): ``measure`` per day."""
    series: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        series[row[by]][row["day"]] += row[measure]
    figure = go.Figure()
    for name in sorted(series):
        days = sorted(series[name])
        figure.add_trace(go.Bar(x=days, y=[series[name][d] for d in days], name=name))
    figure.update_layout(barmode="stack", xaxis_title="day", yaxis_title=measure.replace("_", " "))
    return figure


QUALITY = [Column("visits", "Visits", "count"), Column("new_users", "New users", "count"),
           Column("first_investors", "First investors", "count"),
           Column("invested", "Invested", "money"),
           Column("registration_rate", "Registration rate", "percent"),
           Column("first_investment_rate", "First-investment rate", "percent"),
           Column("investment_per_visitor", "Investment per visitor", "money")]
COSTS = [Column("cost", "Cost", "money"),
         Column("cost_per_registration", "Cost per registration", "money"),
         Column("cost_per_first_investor", "Cost per acquisition (first investor)", "money")]


def render(t: dict[str, Any]) -> list[Any]:
    totals, rows = t["totals"], t["daily"]
    costs = [] if not t["costs_configured"] else COSTS
    return [
        kpis(kpi("Visits (访问)", **totals["visits"], card_id="kpi-visits"),
             kpi("Chats that wrote (会话)", **totals["chats"]),
             kpi("New users (新注册)", **totals["new_users"])),
        grid(chart("visits-by-channel", over_time(rows, "channel", "visits"),
                   title="Visits by channel"),
             chart("new-users-by-channel", over_time(rows, "channel", "new_users"),
                   title="New users by channel")),
        grid(chart("visits-by-campaign", over_time(rows, "campaign", "visits"),
                   title="Visits by campaign"),
             chart("new-users-by-campaign", over_time(rows, "campaign", "new_users"),
                   title="New users by campaign")),
        section("Channel quality (渠道质量)",
                table("channel-quality", [Column("channel", "Channel"), *QUALITY],
                      t["channels"])),
        section("Campaign quality (活动质量)",
                table("campaign-quality", [Column("campaign", "Campaign"), *QUALITY, *costs],
                      t["campaigns"]),
                *([] if t["costs_configured"] else [note(
                    "Cost per registration and per acquisition (first investor) appear here "
                    "once campaign costs are configured (marketing.campaign_daily_spend, "
                    "docs/dashboards.md).")])),
        table("traffic-daily", [Column("day", "Day"), Column("channel", "Channel"),
                                Column("campaign", "Campaign"), Column("visits", "Visits", "count"),
                                Column("chats", "Chats", "count"),
                                Column("new_users", "New users", "count")], rows,
              title="Day by day"),
    ]
