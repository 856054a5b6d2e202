"""Overview: the headline figures of every other page, next to the previous period's; live."""

from __future__ import annotations

from typing import Any

from dash import Dash, html

from core.analytics.overview import overview
from dashboards.bridge import Bridge
from dashboards.components import kpi, kpis, note, page
from dashboards.pages import on_filters

PATH = "/"
NAME = "Overview"
BODY = "overview-body"


def layout() -> html.Div:
    return page("Overview (概览)", BODY)


def register(app: Dash, data: Bridge) -> None:
    """The headline figures for the filters, refreshed by the timer."""
    on_filters(app, data, BODY, lambda uow, f: overview(uow, f, settings=data.settings),
               lambda figures: render(figures, data.settings.money.currency), live=True)


def render(o: dict[str, Any], currency: str) -> list[Any]:
    overdue = o["amount_overdue_rate"]
    rating_now, rating_then = o["satisfaction"]["value"], o["satisfaction"]["previous"]
    return [
        kpis(kpi("New users (新注册)", **o["new_users"], card_id="kpi-new-users"),
             kpi("Verified users (实名认证)", **o["verified_users"]),
             kpi("First investments (首投)", **o["first_investments"]),
             kpi(f"Investment volume, {currency} (投资额)", **o["investment_volume"],
                 kind="money")),
        kpis(kpi(f"Outstanding balance, {currency} (借贷余额)", **o["outstanding_balance"],
                 kind="money"),
             kpi("Amount overdue rate (金额逾期率)", overdue["value"]["value"],
                 overdue["previous"]["value"], kind="percent", better="down",
                 note=overdue["value"]["definition"]),
             kpi("Queue waiting now (排队中)", o["queue_waiting_now"]["value"],
                 note="conversations waiting for an agent at this moment"),
             kpi("Satisfaction (满意度)", rating_now["average"], rating_then["average"],
                 kind="rating", note=f"{rating_now['ratings']} ratings")),
        note("Live: refreshes by itself. Stock figures (balance, overdue rate) are taken at the "
             "end of each period; flows over the whole period."),
    ]
