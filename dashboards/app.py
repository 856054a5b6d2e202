"""The Dash application: a shell (nav bar, filters bar, the page) and each page's callbacks.

``create_dash(core)`` builds it; ``dashboards/mount.py`` serves it under ``/dashboards/`` on the
product's aiohttp server. Dash sees the requests below the mount point (``SCRIPT_NAME`` is
``/dashboards``), so its routes start at ``/`` and the browser's at ``/dashboards/``. Everything
is served from this process: Bootstrap's stylesheet is vendored in ``assets/``.
"""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html

from core.analytics import traffic
from core.bootstrap import Core
from dashboards.bridge import Bridge
from dashboards.components import filters_bar, live_timer, register_downloads
from dashboards.pages import filters, pages

PREFIX = "/dashboards/"
CSRF_COOKIE = "p2p_dash_csrf"  # the session's CSRF token, for Dash's renderer to send back
CSRF_HEADER = "X-CSRF-Token"


def create_dash(core: Core, data: Bridge | None = None) -> Dash:
    """The dashboards' Dash app; ``data`` runs its queries (attach it to the server's loop)."""
    data = data or Bridge(core)
    app = Dash(__name__, requests_pathname_prefix=PREFIX, routes_pathname_prefix="/",
               serve_locally=True, external_stylesheets=[], external_scripts=[],
               title="P2P Desk dashboards", update_title=None,
               csrf_token_name=CSRF_COOKIE, csrf_header_name=CSRF_HEADER)
    every = pages()
    by_path = {page.PATH: page for page in every}
    app.layout = lambda: shell(app, data)
    app.validation_layout = html.Div([shell(app, data), *(page.layout() for page in every)])

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def route(pathname: str | None) -> Any:
        """The page the address names (Overview at the root)."""
        path = "/" + (app.strip_relative_path(pathname or PREFIX) or "")
        if path in by_path:
            return by_path[path].layout()
        return html.Div([html.H2("Not found"), html.P(f"No dashboard at {pathname}.")])

    @app.callback(Output("channels", "options"), Output("campaigns", "options"),
                  Input("period", "start_date"), Input("period", "end_date"),
                  State("channels", "value"), State("campaigns", "value"))
    def options(start: str | None, end: str | None, channels: list[str] | None,
                campaigns: list[str] | None) -> tuple[list[str], list[str]]:
        """Channels and campaigns that brought visits or users in the period (and any chosen)."""
        period = filters(data.today(), start, end, (), ())
        rows = data.read(lambda uow: traffic.daily(uow, period))
        return (sorted({r["channel"] for r in rows} | set(channels or ())),
                sorted({r["campaign"] for r in rows} | set(campaigns or ())))

    register_downloads(app)
    for page in every:
        page.register(app, data)
    return app


def shell(app: Dash, data: Bridge) -> html.Div:
    """What every page shares: the nav bar, the filters bar and the place of the page."""
    links = [dbc.NavItem(dbc.NavLink(page.NAME, href=app.get_relative_path(page.PATH),
                                     active="exact")) for page in pages()]
    return html.Div([
        dcc.Location(id="url"),
        live_timer(data.core.settings.dashboards.refresh_seconds),
        dbc.Navbar(dbc.Container([
            dbc.NavbarBrand("P2P Desk · Operations (运营看板)", href=app.get_relative_path("/")),
            dbc.Nav(links, navbar=True, className="flex-wrap"),
            html.A("Console", href="/console", className="nav-link text-light ms-auto"),
        ], fluid=True), color="dark", dark=True, className="mb-3"),
        dbc.Container([filters_bar(data.today()), html.Hr(), html.Div(id="page")],
                      fluid=True, className="pb-5"),
    ])
