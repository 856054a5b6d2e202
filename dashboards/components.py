"""The pieces every page is built from: the filters bar, KPI cards (a figure next to the previous
period's, with a trend arrow), tables that download as CSV, and charts that say so when there is
nothing to draw. Pure functions of the figures they are given: no data is read here."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import MATCH, Dash, Input, Output, State, dcc, html

from dashboards import format as fmt

DEFAULT_DAYS = 30
NO_PREVIOUS: Any = object()  # a figure of the moment, with no previous period
LIVE_INPUT = Input("refresh", "n_intervals")
FILTER_INPUTS = (Input("period", "start_date"), Input("period", "end_date"),
                 Input("channels", "value"), Input("campaigns", "value"))


# The filters bar ------------------------------------------------------------------------------


def filters_bar(today: date) -> dbc.Row:
    """The period (default: the last 30 days ending today, business time) and the attribution
    filters (options filled from the period's traffic)."""
    return dbc.Row([
        dbc.Col([html.Label("Period (期间)", htmlFor="period", className="form-label"),
                 dcc.DatePickerRange(id="period", start_date=today - timedelta(DEFAULT_DAYS - 1),
                                     end_date=today, display_format="YYYY-MM-DD",
                                     first_day_of_week=1, minimum_nights=0)], md="auto"),
        dbc.Col([html.Label("Channels (渠道)", htmlFor="channels", className="form-label"),
                 dcc.Dropdown(id="channels", multi=True, options=[], value=[],
                              placeholder="All channels")], md=3),
        dbc.Col([html.Label("Campaigns (活动)", htmlFor="campaigns", className="form-label"),
                 dcc.Dropdown(id="campaigns", multi=True, options=[], value=[],
                              placeholder="All campaigns")], md=3),
    ], className="filters g-3 align-items-end")


# KPI cards ------------------------------------------------------------------------------------


def kpi(title: str, value: Any, previous: Any = NO_PREVIOUS, *, kind: str = "count",
        better: str = "up", note: str | None = None, card_id: str | None = None) -> dbc.Col:
    """A figure, the previous period's beside it (unless it has none, like the queue now) and
    an arrow: green when it moved the way that is ``better`` ("up" or "down"), red the other
    way, grey when flat or not comparable."""
    show = fmt.FORMATS[kind]
    arrow, tone = trend(value, previous, better)
    lines = [html.Div(title, className="kpi-title"),
             html.Div([html.Span(show(value), className="kpi-value"),
                       html.Span(arrow, className=f"kpi-arrow {tone}")])]
    if previous is not NO_PREVIOUS:
        lines.append(html.Div(f"previous period: {show(previous)}", className="kpi-previous"))
    if note:
        lines.append(html.Div(note, className="kpi-note"))
    body = dbc.Card(dbc.CardBody(lines), className="kpi h-100",
                    **({"id": card_id} if card_id else {}))
    return dbc.Col(body, xs=12, sm=6, lg=3, className="mb-3")


def trend(value: Any, previous: Any, better: str = "up") -> tuple[str, str]:
    if not isinstance(value, int | float | Decimal) or not isinstance(
            previous, int | float | Decimal):
        return "", "flat"
    if value == previous:
        return "▬", "flat"
    up = value > previous
    return ("▲" if up else "▼"), ("good" if up == (better == "up") else "bad")


def kpis(*cards: dbc.Col) -> dbc.Row:
    return dbc.Row(list(cards), className="kpis")


# Tables ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # a name in format.FORMATS


def table(name: str, columns: Sequence[Column], rows: Sequence[dict[str, Any]], *,
          title: str | None = None) -> html.Div:
    """A table and its "Download CSV" button; the CSV has the exact values (Decimals as text)."""
    head = html.Thead(html.Tr([html.Th(c.label, className=_align(c)) for c in columns]))
    body = html.Tbody([html.Tr([html.Td(fmt.FORMATS[c.kind](row.get(c.key)),
                                        className=_align(c)) for c in columns])
                       for row in rows])
    export = {"filename": f"{name}.csv", "header": [c.label for c in columns],
              "rows": [[_exact(row.get(c.key)) for c in columns] for row in rows]}
    return html.Div([
        html.Div([html.H5(title, className="me-auto mb-0") if title else html.Span(
            className="me-auto"),
                  dbc.Button("Download CSV", id={"type": "csv-button", "table": name},
                             size="sm", color="secondary", outline=True),
                  dcc.Download(id={"type": "csv-download", "table": name}),
                  dcc.Store(id={"type": "csv-data", "table": name}, data=export)],
                 className="d-flex align-items-center gap-2 mb-2"),
        dbc.Table([head, body], id=f"table-{name}", bordered=False, striped=True, hover=True,
                  size="sm", responsive=True) if rows else empty(),
    ], className="data-table mb-4")


def register_downloads(app: Dash) -> None:
    """One callback serves every table's CSV download."""

    @app.callback(Output({"type": "csv-download", "table": MATCH}, "data"),
                  Input({"type": "csv-button", "table": MATCH}, "n_clicks"),
                  State({"type": "csv-data", "table": MATCH}, "data"),
                  prevent_initial_call=True)
    def download(_clicks: int | None, export: dict[str, Any]) -> dict[str, Any]:
        """The table's rows as a CSV file."""
        return dcc.send_string(to_csv(export["header"], export["rows"]), export["filename"])


def to_csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _exact(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return "" if value is None else value


def _align(column: Column) -> str:
    return "" if column.kind == "text" else "text-end"


# Charts and layout ----------------------------------------------------------------------------


def chart(name: str, figure: go.Figure, *, title: str) -> html.Div:
    """A plotly chart, or a line saying there is nothing to draw in the period."""
    figure.update_layout(title=title, margin={"l": 50, "r": 20, "t": 50, "b": 40},
                         height=360, legend={"orientation": "h", "y": -0.2},
                         template="plotly_white")
    drawn = any(_points(trace) for trace in figure.data)
    content = dcc.Graph(id=f"chart-{name}", figure=figure,
                        config={"displaylogo": False}) if drawn else empty(title)
    return html.Div(content, className="chart mb-4")


def _points(trace: Any) -> int:
    for axis in ("x", "y", "z", "values"):
        data = getattr(trace, axis, None)
        if data is not None and len(data):
            return len(data)
    return 0


def empty(what: str | None = None) -> html.Div:
    text = "No data for this period" + (f": {what}" if what else "")
    return html.Div(text, className="empty text-muted")


def section(title: str, *children: Any) -> html.Section:
    return html.Section([html.H4(title, className="mt-4 mb-3"), *children])


def grid(*columns: Any) -> dbc.Row:
    """Side-by-side blocks on wide screens."""
    return dbc.Row([dbc.Col(c, lg=12 // max(1, len(columns))) for c in columns])


def note(text: str) -> html.P:
    return html.P(text, className="note text-muted small")


def page(title: str, body_id: str, *extra: Any) -> html.Div:
    """A page's frame: its title and the container its callback fills."""
    return html.Div([html.H2(title, className="mb-3"), *extra,
                     dcc.Loading(html.Div(id=body_id), type="default", delay_show=300)])


def live_timer(seconds: int) -> dcc.Interval:
    """The live pages' clock (in the shell: pages come and go, it keeps ticking); every
    ``P2P_DASHBOARDS__REFRESH_SECONDS``."""
    return dcc.Interval(id="refresh", interval=seconds * 1000, n_intervals=0)
