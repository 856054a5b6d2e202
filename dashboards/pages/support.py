"""Support: contacts, bot containment, handovers, the queue (live), response and resolution
times, satisfaction and the questions the bot could not answer."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
from dash import Dash, html

from core.analytics.support import support
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

PATH = "/support"
NAME = "Support"
BODY = "support-body"
TIMES = (("Queue wait (排队)", ("queue_wait",)),
         ("First response, human-only (首次响应·人工)", ("first_response", "human")),
         ("First response, end-to-end (首次响应·全程)", ("first_response", "end_to_end")),
         ("Resolution, human-only (解决·人工)", ("resolution", "human")),
         ("Resolution, end-to-end (解决·全程)", ("resolution", "end_to_end")))


def layout() -> html.Div:
    return page("Support (客服)", BODY)


def register(app: Dash, data: Bridge) -> None:
    """Support figures for the filters; the queue as it is now (refreshed by the timer)."""
    on_filters(app, data, BODY, lambda uow, f: support(uow, f, settings=data.settings),
               lambda figures: render(figures, data.core.clock.tz), live=True)


def time_rows(now: dict[str, Any], then: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for label, path in TIMES:
        current, previous = _at(now, path), _at(then, path)
        rows.append({"figure": label, "n": current["calendar"]["n"],
                     **{f"{clock}_{stat}": current[clock][stat]
                        for clock in ("business", "calendar") for stat in ("median", "p90")},
                     "previous_median": previous["business"]["median"]})
    return rows


def _at(figures: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        figures = figures[key]
    return figures


def by_channel_figure(rows: list[dict[str, Any]]) -> go.Figure:
    names = [r["channel"] for r in rows]
    return go.Figure([go.Bar(x=names, y=[r["contacts"] for r in rows], name="contacts"),
                      go.Bar(x=names, y=[r["human"] for r in rows], name="reached a human")]
                     ).update_layout(barmode="group")


def counts_figure(counts: dict[str, int], name: str) -> go.Figure:
    if not any(counts.values()):
        return go.Figure()
    return go.Figure(go.Bar(x=list(counts), y=list(counts.values()), name=name))


def render(s: dict[str, Any], tz: ZoneInfo) -> list[Any]:
    now, then, head, queue = s["current"], s["previous"], s["headline"], s["queue_now"]
    sat = now["satisfaction"]
    stars = {f"{n} ★": count for n, count in sat["distribution"].items()}
    return [
        section("Queue now (当前排队)", kpis(
            kpi("Waiting for an agent", queue["waiting"], better="down", card_id="kpi-waiting"),
            kpi("With agents", queue["with_agents"]),
            kpi("Longest wait", queue["longest_wait"], kind="duration",
                note=f"median {fmt.duration(queue['median_wait'])}; snoozed {queue['snoozed']}"),
        ), note("Live: refreshes by itself.")),
        kpis(kpi("Contacts (咨询量)", **head["contacts"], card_id="kpi-contacts"),
             kpi("Bot containment (机器人解决率)", **head["containment"], kind="percent",
                 note=f"{now['pending']} contacts still within 7 days"),
             kpi("Handover rate (转人工率)", **head["handover_rate"], kind="percent",
                 better="down"),
             kpi("First response, median (business hours)", **head["first_response_median"],
                 kind="duration", better="down")),
        kpis(kpi("Satisfaction (满意度)", **head["satisfaction"], kind="rating",
                 note=f"{sat['ratings']} ratings"),
             kpi("Rating response rate (评价率)", sat["response_rate"]["value"],
                 then["satisfaction"]["response_rate"]["value"], kind="percent",
                 note=sat["response_rate"]["definition"])),
        grid(chart("contacts-by-channel", by_channel_figure(now["by_channel"]),
                   title="Contacts by channel"),
             chart("handover-reasons", counts_figure(now["handover_reasons"], "handovers"),
                   title="Handover reasons"),
             chart("satisfaction", counts_figure(stars, "ratings"),
                   title="Satisfaction distribution")),
        section("By channel (按渠道)", table("support-by-channel", [
            Column("channel", "Channel"), Column("contacts", "Contacts", "count"),
            Column("human", "Reached a human", "count"),
            Column("handover_rate", "Handover rate", "percent"),
            Column("containment", "Containment", "percent")], now["by_channel"])),
        section("Response and resolution times (响应与解决时长)",
                note("Business time counts the hours the desk is open; calendar time all of "
                     "them. Human-only starts when the conversation entered the queue, "
                     "end-to-end at the customer's first message."),
                table("support-times", [
                    Column("figure", "Figure"), Column("n", "Conversations", "count"),
                    Column("business_median", "Median (business)", "duration"),
                    Column("business_p90", "p90 (business)", "duration"),
                    Column("calendar_median", "Median (calendar)", "duration"),
                    Column("calendar_p90", "p90 (calendar)", "duration"),
                    Column("previous_median", "Previous median (business)", "duration")],
                    time_rows(now, then))),
        section("Handover reasons (转人工原因)", table("handover-reasons", [
            Column("reason", "Reason"), Column("count", "Handovers", "count")],
            [{"reason": k, "count": v} for k, v in now["handover_reasons"].items()])),
        section("Top unanswered questions (未解答问题)", table("unanswered", [
            Column("text", "Question"), Column("count", "Times", "count"),
            Column("locale", "Language"), Column("best_article", "Closest article"),
            Column("last_at", "Last asked")],
            [{**q, "last_at": fmt.moment(q["last_at"], tz)} for q in s["unanswered"]])),
    ]
