"""Conversion: the onboarding funnel (overall, by channel, against the previous period) and
weekly sign-up cohorts."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import Dash, html

from core.adapters.uow import UnitOfWork
from core.analytics.filters import Filters
from core.analytics.funnel import MILESTONES, funnel, signup_cohorts
from dashboards import format as fmt
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

PATH = "/conversion"
NAME = "Conversion"
BODY = "conversion-body"
STEP_NAMES = {"visit": "Visit (访问)", "registered": "Registered (注册)",
              "verified": "Verified (实名)", "card_bound": "Card bound (绑卡)",
              "risk_assessed": "Risk assessed (风评)",
              "first_investment": "First investment (首投)",
              "repeat_investment": "Repeat investment (复投)"}


def layout() -> html.Div:
    return page("Conversion (转化)", BODY)


def register(app: Dash, data: Bridge) -> None:
    """The funnel of the period's visitors and the period's sign-up cohorts."""

    async def read(uow: UnitOfWork, f: Filters) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return await funnel(uow, f), await signup_cohorts(uow, f)

    on_filters(app, data, BODY, read, lambda both: render(*both))


def steps_rows(steps: list[dict[str, Any]], previous: list[dict[str, Any]] | None = None
               ) -> list[dict[str, Any]]:
    rows = []
    for k, step in enumerate(steps):
        time = step["time_from_previous"] or {}
        rows.append({"step": STEP_NAMES[step["step"]], "count": step["count"],
                     "previous": previous[k]["count"] if previous else None,
                     "from_previous": step["from_previous"], "from_visit": step["from_visit"],
                     "median": time.get("median"), "p90": time.get("p90"), "n": time.get("n")})
    return rows


def funnel_figure(f: dict[str, Any]) -> go.Figure:
    figure = go.Figure()
    for name, steps in (("this period", f["overall"]), ("previous period", f["previous"])):
        if any(s["count"] for s in steps):
            figure.add_trace(go.Funnel(name=name, y=[STEP_NAMES[s["step"]] for s in steps],
                                       x=[s["count"] for s in steps],
                                       textinfo="value+percent initial"))
    return figure


def by_channel_figure(f: dict[str, Any]) -> go.Figure:
    figure = go.Figure()
    for entry in f["by_channel"]:
        steps = entry["steps"]
        figure.add_trace(go.Scatter(
            name=entry["channel"], mode="lines+markers",
            x=[STEP_NAMES[s["step"]] for s in steps[1:]],
            y=[fmt.plot_percent(s["from_visit"]) for s in steps[1:]]))
    figure.update_layout(yaxis_title="% of visitors", yaxis_ticksuffix="%")
    return figure


STEP_COLUMNS = [Column("count", "People", "count"), Column("from_previous", "From previous step",
                                                           "percent"),
                Column("from_visit", "From visit", "percent"),
                Column("median", "Median time from previous step", "duration"),
                Column("p90", "p90 time from previous step", "duration")]


def render(f: dict[str, Any], cohorts: list[dict[str, Any]]) -> list[Any]:
    by_channel = [{"channel": entry["channel"], **row} for entry in f["by_channel"]
                  for row in steps_rows(entry["steps"])]
    cohort_rows = [{"week": c["week"], "users": c["users"],
                    **{step: c[step]["count"] for step in MILESTONES},
                    **{f"{step}_share": c[step]["share"] for step in MILESTONES}}
                   for c in cohorts]
    now = {s["step"]: s for s in f["overall"]}
    then = {s["step"]: s for s in f["previous"]}
    return [
        kpis(kpi("Visitors (访客)", now["visit"]["count"], then["visit"]["count"],
                 card_id="kpi-visitors"),
             kpi("Registered (注册)", now["registered"]["count"], then["registered"]["count"]),
             kpi("First investment (首投)", now["first_investment"]["count"],
                 then["first_investment"]["count"]),
             kpi("Visit → first investment", now["first_investment"]["from_visit"],
                 then["first_investment"]["from_visit"], kind="percent")),
        note(f"Visitors of the period (by their chat's first touch), followed for "
             f"{f['window_days']} days after their visit."),
        grid(chart("funnel", funnel_figure(f), title="Funnel: this period and the previous one"),
             chart("funnel-by-channel", by_channel_figure(f),
                   title="Conversion from visit, by channel")),
        section("Funnel steps (漏斗)",
                table("funnel-steps", [Column("step", "Step"), *STEP_COLUMNS[:1],
                                       Column("previous", "Previous period", "count"),
                                       *STEP_COLUMNS[1:]],
                      steps_rows(f["overall"], f["previous"]))),
        section("By channel (按渠道)",
                table("funnel-by-channel", [Column("channel", "Channel"),
                                            Column("step", "Step"), *STEP_COLUMNS], by_channel)),
        section("Weekly sign-up cohorts (注册周队列)",
                note("Users registered in the period, by week of registration, and how many of "
                     "them have reached each milestone by now."),
                table("signup-cohorts", [
                    Column("week", "Week of"), Column("users", "Users", "count"),
                    *(Column(step, STEP_NAMES[step], "count") for step in MILESTONES),
                    *(Column(f"{step}_share", f"{STEP_NAMES[step]} %", "percent")
                      for step in MILESTONES)], cohort_rows)),
    ]
