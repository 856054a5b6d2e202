"""Overdue and collections: the book's health, vintages, roll rates, collections, the fund."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import Dash, html

from core.adapters.uow import UnitOfWork
from core.analytics import credit
from core.analytics.filters import Filters
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

PATH = "/credit"
NAME = "Overdue & collections"
BODY = "credit-body"
PARTS = ("portfolio", "vintages", "roll_rates", "collections", "protection_fund")
PAR_FORMS = (("overdue_amount_ratio", "overdue-amount form"),
             ("late_loans_ratio", "late-loans form"))
RATIO = [Column("numerator", "Numerator", "money"), Column("denominator", "Denominator", "money"),
         Column("value", "Value", "percent"), Column("previous", "Previous period", "percent"),
         Column("definition", "Definition")]


def layout() -> html.Div:
    return page("Overdue & collections (逾期与催收)", BODY)


def register(app: Dash, data: Bridge) -> None:
    """The book at the period's end, vintages, roll rates, collections and the fund."""

    async def read(uow: UnitOfWork, f: Filters) -> dict[str, Any]:
        return {part: await getattr(credit, part)(uow, f, settings=data.settings)
                for part in PARTS}

    on_filters(app, data, BODY, read,
               lambda figures: render(figures, data.settings.money.currency))


def buckets_figure(buckets: list[dict[str, Any]]) -> go.Figure:
    names = [b["bucket"] for b in buckets]
    figure = go.Figure([
        go.Bar(x=names, y=[fmt.plot(b["overdue_amount"]) for b in buckets], name="overdue amount"),
        go.Bar(x=names, y=[fmt.plot(b["outstanding_principal"]) for b in buckets],
               name="outstanding principal"),
        go.Scatter(x=names, y=[b["loans"] for b in buckets], name="loans", yaxis="y2",
                   mode="lines+markers")])
    figure.update_layout(barmode="group", yaxis_title="amount",
                         yaxis2={"title": "loans", "overlaying": "y", "side": "right",
                                 "rangemode": "tozero"})
    return figure


def vintage_figure(vintages: list[dict[str, Any]]) -> go.Figure:
    return go.Figure([go.Scatter(
        x=[p["mob"] for p in v["curve"]], y=[fmt.plot_percent(p["share"]) for p in v["curve"]],
        name=f"{v['cohort']} ({v['loans']} loans)", mode="lines+markers")
        for v in vintages if v["curve"]]).update_layout(
        xaxis_title="months on book", yaxis_title="bad share of disbursed", yaxis_ticksuffix="%")


def roll_figure(roll: dict[str, Any]) -> go.Figure:
    rows = [r for r in roll["matrix"] if r["loans"]]
    if not rows:
        return go.Figure()
    states = list(rows[0]["to"])
    z = [[fmt.plot_percent(r["to"][s]["share"]) for s in states] for r in rows]
    return go.Figure(go.Heatmap(
        z=z, x=states, y=[r["from"] for r in rows], colorscale="Reds", zmin=0, zmax=100,
        text=fmt.heat_labels(z), texttemplate="%{text}", colorbar={"ticksuffix": "%"})
    ).update_layout(
        xaxis_title="to (next month-end)", yaxis={"title": "from", "autorange": "reversed"})


def collections_figure(c: dict[str, Any]) -> go.Figure:
    steps = [("tasks", "Agent tasks"), ("worked", "Worked"), ("reached", "Reached"),
             ("promises", "Promises to pay"), ("kept", "Kept")]
    if not any(c[k] for k, _ in steps):
        return go.Figure()
    return go.Figure(go.Funnel(y=[label for _, label in steps], x=[c[k] for k, _ in steps],
                               textinfo="value+percent initial"))


def par_rows(now: dict[str, Any], then: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"figure": f"{days.upper()} ({label})", **now[days][form],
             "previous": then[days][form]["value"]}
            for days in ("par30", "par90") for form, label in PAR_FORMS]


def render(d: dict[str, Any], currency: str) -> list[Any]:
    book, fund, coll = d["portfolio"], d["protection_fund"], d["collections"]
    now, then = book["current"], book["previous"]
    fund_now, fund_then = fund["current"], fund["previous"]
    c_now, c_then = coll["current"], coll["previous"]
    roll = d["roll_rates"]
    roll_rows = [{"from": r["from"], "loans": r["loans"], "principal": r["principal"],
                  **{to: v["share"] for to, v in r["to"].items()}} for r in roll["matrix"]]
    states = list(roll["matrix"][0]["to"]) if roll["matrix"] else []
    collection_rows = [{"figure": k, "value": c_now[k], "previous": c_then[k]} for k in (
        "tasks", "worked", "reached", "promises", "kept", "broken", "pending")]
    return [
        note(f"Stock figures at {book['as_of']} (previous: {book['previous_as_of']}); loans by "
             "their borrower's first touch. The protection fund is never filtered."),
        kpis(kpi(f"Outstanding principal, {currency} (借贷余额)", now["outstanding_principal"],
                 then["outstanding_principal"], kind="money", card_id="kpi-outstanding"),
             kpi(f"Overdue amount, {currency} (逾期金额)", now["overdue"]["amount"],
                 then["overdue"]["amount"], kind="money", better="down"),
             kpi("Overdue loans (逾期笔数)", now["overdue"]["loans"], then["overdue"]["loans"],
                 better="down"),
             kpi("Loans on the book (在贷笔数)", now["loans_outstanding"],
                 then["loans_outstanding"])),
        kpis(*(kpi(f"{days.upper()}, {label}", now[days][form]["value"],
                   then[days][form]["value"], kind="percent", better="down",
                   note=now[days][form]["definition"])
               for days in ("par30", "par90") for form, label in PAR_FORMS)),
        grid(chart("buckets", buckets_figure(now["buckets"]), title="Overdue by bucket"),
             chart("vintages", vintage_figure(d["vintages"]),
                   title="Vintage curves: bad share by months on book")),
        section("Buckets (逾期分布)", table("buckets", [
            Column("bucket", "Bucket"), Column("loans", "Loans", "count"),
            Column("outstanding_principal", "Outstanding principal", "money"),
            Column("overdue_amount", "Overdue amount", "money")], now["buckets"])),
        section("Portfolio at risk (PAR)", table("par", [Column("figure", "Figure"), *RATIO],
                                                 par_rows(now, then))),
        section("Roll rates (迁徙率)",
                note("Loans by bucket at one month-end and where they were at the next: "
                     + ", ".join(roll["transitions"]) if roll["transitions"]
                     else "No month-end pair in the period."),
                grid(chart("roll-rates", roll_figure(roll), title="Roll-rate matrix"),
                     chart("collections", collections_figure(c_now),
                           title="Collections funnel"))),
        table("roll-rates", [Column("from", "From"), Column("loans", "Loans", "count"),
                             Column("principal", "Principal", "money"),
                             *(Column(s, f"→ {s}", "percent") for s in states)], roll_rows),
        section("Collections (催收)",
                kpis(kpi("Recovery rate (回收率)", c_now["recovery"]["value"],
                         c_then["recovery"]["value"], kind="percent",
                         note=c_now["recovery"]["definition"]),
                     kpi(f"Repaid after write-off, {currency}",
                         c_now["after_write_off"]["amount"],
                         c_then["after_write_off"]["amount"], kind="money",
                         note=f"of which back to the fund: "
                              f"{fmt.money(c_now['after_write_off']['to_fund'])}")),
                table("collections", [Column("figure", "Figure"),
                                      Column("value", "This period", "count"),
                                      Column("previous", "Previous period", "count")],
                      collection_rows)),
        section("Protection fund (风险保障金)",
                kpis(kpi(f"Balance, {currency}", fund_now["balance"], fund_then["balance"],
                         kind="money"),
                     kpi("Coverage of loans past due", fund_now["coverage"]["value"],
                         fund_then["coverage"]["value"], kind="percent",
                         note=fund_now["coverage"]["definition"]),
                     kpi("Coverage of the book", fund_now["coverage_of_book"]["value"],
                         fund_then["coverage_of_book"]["value"], kind="percent"),
                     kpi(f"Compensation paid, {currency} (代偿)",
                         fund_now["compensations"]["amount"],
                         fund_then["compensations"]["amount"], kind="money",
                         note=f"{fund_now['compensations']['count']} loans; since the start: "
                              f"{fmt.money(fund_now['cumulative_compensation']['amount'])}")),
                note(f"Contributions in the period: {fmt.money(fund_now['contributions'])} "
                     f"{currency}.")),
        section("Vintages (账龄)", table("vintages", [
            Column("cohort", "Disbursed in"), Column("loans", "Loans", "count"),
            Column("disbursed", "Disbursed", "money"), Column("mob", "Months on book", "count"),
            Column("month_end", "Month end"), Column("bad", "Bad", "money"),
            Column("share", "Bad share", "percent")],
            [{"cohort": v["cohort"], "loans": v["loans"], "disbursed": v["disbursed"], **p}
             for v in d["vintages"] for p in v["curve"]])),
    ]
