"""Activity: DAU / WAU / MAU, investing in the period, and retention by weekly cohort."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import Dash, html

from core.analytics.activity import activity
from dashboards import format as fmt
from dashboards.bridge import Bridge
from dashboards.components import (
    Column,
    chart,
    grid,
    kpi,
    kpis,
    page,
    section,
    table,
)
from dashboards.pages import on_filters

PATH = "/activity"
NAME = "Activity"
BODY = "activity-body"


def layout() -> html.Div:
    return page("Activity (活跃)", BODY)


def register(app: Dash, data: Bridge) -> None:
    """Active users, investing and retention for the filters."""
    on_filters(app, data, BODY, lambda uow, f: activity(uow, f, settings=data.settings),
               lambda figures: render(figures, data.settings.money.currency))


def active_figure(daily: list[dict[str, Any]]) -> go.Figure:
    days = [d["day"] for d in daily]
    figure = go.Figure([go.Scatter(x=days, y=[d[k] for d in daily], name=k.upper(),
                                   mode="lines") for k in ("dau", "wau", "mau")])
    figure.add_trace(go.Scatter(x=days, y=[fmt.plot_percent(d["dau_mau"]) for d in daily],
                                name="DAU/MAU %", mode="lines", yaxis="y2",
                                line={"dash": "dot"}))
    figure.update_layout(yaxis_title="users", yaxis2={
        "title": "DAU/MAU", "overlaying": "y", "side": "right", "ticksuffix": "%",
        "rangemode": "tozero"})
    return figure


def retention_figure(cohorts: list[dict[str, Any]]) -> go.Figure:
    if not cohorts:
        return go.Figure()
    weeks = max(len(c["weeks"]) for c in cohorts)
    z = [[fmt.plot_percent(c["weeks"][k]["share"]) if k < len(c["weeks"]) else None
          for k in range(weeks)] for c in cohorts]
    figure = go.Figure(go.Heatmap(
        z=z, x=[f"week {k}" for k in range(weeks)],
        y=[f"{c['cohort']} ({c['users']})" for c in cohorts], colorscale="Blues",
        zmin=0, zmax=100, colorbar={"ticksuffix": "%"}, hoverongaps=False,
        text=fmt.heat_labels(z), texttemplate="%{text}"))
    figure.update_layout(yaxis={"autorange": "reversed", "title": "cohort (users)"})
    return figure


def render(a: dict[str, Any], currency: str) -> list[Any]:
    s, i = a["summary"], a["investing"]
    retention_rows = [{"cohort": c["cohort"], "users": c["users"], "week": w["week"],
                       "active": w["active"], "share": w["share"]}
                      for c in a["retention"] for w in c["weeks"]]
    return [
        kpis(kpi("Active users (活跃用户)", **s["active_users"], card_id="kpi-active-users"),
             kpi("Average DAU (日活)", **s["dau_avg"], kind="text"),
             kpi("WAU at period end (周活)", **s["wau"]),
             kpi("MAU at period end (月活)", **s["mau"])),
        kpis(kpi("DAU/MAU (粘性)", **s["dau_mau"], kind="percent"),
             kpi("Active investors (投资人)", **i["investors"]),
             kpi(f"Investment volume, {currency} (投资额)", **i["volume"], kind="money"),
             kpi("Investments (笔数)", **i["investments"])),
        kpis(kpi(f"Average ticket, {currency} (笔均)", **i["average_ticket"], kind="money"),
             kpi("Repeat rate (复投率)", **i["repeat_rate"], kind="percent")),
        grid(chart("active-users", active_figure(a["daily"]), title="DAU, WAU, MAU and DAU/MAU"),
             chart("retention", retention_figure(a["retention"]),
                   title="Retention by weekly sign-up cohort")),
        section("Day by day (每日)",
                table("active-daily", [Column("day", "Day"), Column("dau", "DAU", "count"),
                                       Column("wau", "WAU", "count"),
                                       Column("mau", "MAU", "count"),
                                       Column("dau_mau", "DAU/MAU", "percent")], a["daily"])),
        section("Retention (留存)",
                table("retention", [Column("cohort", "Cohort (week of)"),
                                    Column("users", "Users", "count"),
                                    Column("week", "Weeks since", "count"),
                                    Column("active", "Active", "count"),
                                    Column("share", "Share active", "percent")],
                      retention_rows)),
    ]
