"""How often the live pages (Overview, Support) refresh themselves.

A dashboards-only setting, read from the environment when a live page is laid out:
``P2P_DASHBOARD_REFRESH_SECONDS`` (default 60, at least 5)."""

from __future__ import annotations

import os

REFRESH_ENV = "P2P_DASHBOARD_REFRESH_SECONDS"
DEFAULT_REFRESH_SECONDS = 60
MIN_REFRESH_SECONDS = 5


def refresh_seconds() -> int:
    raw = os.environ.get(REFRESH_ENV, "").strip()
    try:
        seconds = int(raw) if raw else DEFAULT_REFRESH_SECONDS
    except ValueError as exc:
        raise ValueError(f"{REFRESH_ENV} must be a whole number of seconds, got {raw!r}") from exc
    return max(MIN_REFRESH_SECONDS, seconds)
