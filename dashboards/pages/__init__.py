"""One module per dashboard page. Each has ``PATH`` and ``NAME`` (the nav bar), ``layout()``
(the page's frame: no data is read to build it) and ``register(app, data)``, which adds the
page's callback to ``app``: it reads the page's figures through ``data`` (``Bridge``) and lays
them out with a pure ``render`` function.

Pages register on the app they are given rather than through ``dash.register_page`` and
``dash.callback``, whose registries are global to the process: the app factory builds one Dash
app per server (tests build many)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date, timedelta
from types import ModuleType
from typing import Any

from dash import Dash, Output

from core.adapters.uow import UnitOfWork
from core.analytics.filters import Filters
from dashboards.bridge import Bridge
from dashboards.components import DEFAULT_DAYS, FILTER_INPUTS, LIVE_INPUT


def pages() -> tuple[ModuleType, ...]:
    """The pages in nav-bar order."""
    from dashboards.pages import (
        activity,
        conversion,
        credit,
        disclosure,
        marketing,
        overview,
        support,
        traffic,
    )

    return (overview, traffic, conversion, activity, credit, support, marketing, disclosure)


def filters(today: date, start: str | None, end: str | None,
            channels: Sequence[str] | None, campaigns: Sequence[str] | None) -> Filters:
    """The filters bar's values as analytics ``Filters`` (the default period when cleared)."""
    last = _day(end) or today
    first = _day(start) or last - timedelta(DEFAULT_DAYS - 1)
    first, last = min(first, last), max(first, last)
    return Filters(first, last, tuple(channels or ()), tuple(campaigns or ()))


def on_filters(app: Dash, data: Bridge, body: str,
               read: Callable[[UnitOfWork, Filters], Awaitable[Any]],
               show: Callable[[Any], Any], *, live: bool = False) -> None:
    """A page's callback: when the filters change (and, on a live page, when the timer ticks)
    ``body`` shows ``show(read(uow, filters))``, read on the server's loop."""

    @app.callback(Output(body, "children"), *FILTER_INPUTS, *([LIVE_INPUT] if live else []))
    def update(start: str | None, end: str | None, channels: list[str] | None,
               campaigns: list[str] | None, *_tick: int | None) -> Any:
        f = filters(data.today(), start, end, channels, campaigns)
        return show(data.read(lambda uow: read(uow, f)))


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value[:10]) if value else None
