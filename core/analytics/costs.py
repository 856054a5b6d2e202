"""Acquisition spend of a period, from the marketing settings: each campaign's spend per day
(``marketing.campaign_daily_spend``) times the days of the period. What ``traffic.traffic``
takes as ``costs`` for cost per registration and per first investor (CPA)."""

from __future__ import annotations

from decimal import Decimal

from config.settings import Settings
from core.analytics.filters import Filters
from core.analytics.numbers import currency, money


def spend(settings: Settings, f: Filters) -> dict[str, Decimal] | None:
    """Campaign -> spend in the period (only the filtered campaigns); None when no campaign has
    a cost configured."""
    daily = settings.marketing.campaign_daily_spend
    if not daily:
        return None
    cur = currency(settings)
    return {campaign: money(per_day * f.days, cur) for campaign, per_day in daily.items()
            if not f.campaigns or campaign in f.campaigns}
