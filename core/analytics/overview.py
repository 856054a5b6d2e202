"""Overview: the headline figures of every other page, each next to the previous period's.

Each figure is defined where it is computed (the module named in brackets):

* new users: registered in the period (``funnel.reached``);
* verified users: identity first verified in the period (``funnel.reached``);
* first investments: investors whose first investment (a bid not refunded) was in the period
  (``funnel.reached``);
* investment volume: bids placed in the period and not refunded (``activity.investing``);
* outstanding balance: outstanding principal at the period's end (``credit.portfolio``);
* amount overdue rate: outstanding principal of loans more than 90 days past due / outstanding
  principal, at the period's end - the disclosure guideline's 金额逾期率 and PAR90 in its
  late-loans form (``credit.snapshot``);
* queue waiting now: conversations waiting for an agent at this moment (``support.queue_now``;
  no previous value);
* satisfaction: average 1-5 rating given after resolved conversations (``support.rated``).

Filters: people and loans by first touch (the borrower's for loans), the queue by the chat's.
"""

from __future__ import annotations

from typing import Any

from config.settings import Settings
from core.adapters.uow import UnitOfWork
from core.analytics import activity, credit, funnel, support
from core.analytics.filters import Filters
from core.analytics.numbers import compared


async def overview(uow: UnitOfWork, f: Filters, *, settings: Settings) -> dict[str, Any]:
    """``{"new_users", "verified_users", "first_investments", "investment_volume",
    "outstanding_balance", "amount_overdue_rate", "queue_waiting_now", "satisfaction"}``, each
    ``{"value", "previous"}``; the overdue rate's values are ratios (numerator, denominator,
    definition), satisfaction's ``{"average", "ratings"}``."""
    before = f.previous()
    reached_now, reached_then = await funnel.reached(uow, f), await funnel.reached(uow, before)
    invest_now = await activity.investing(uow, f, settings=settings)
    invest_then = await activity.investing(uow, before, settings=settings)
    book = await credit.portfolio(uow, f, settings=settings)
    now, then = book["current"], book["previous"]
    ratings_now, _ = await support.rated(uow, f)
    ratings_then, _ = await support.rated(uow, before)
    queue = await support.queue_now(uow, f)

    def rating(ratings: list[int]) -> dict[str, Any]:
        summary = support.satisfaction(ratings, 0)
        return {"average": summary["average"], "ratings": summary["ratings"]}

    return {
        "new_users": compared(reached_now["registered"], reached_then["registered"]),
        "verified_users": compared(reached_now["verified"], reached_then["verified"]),
        "first_investments": compared(reached_now["first_investment"],
                                      reached_then["first_investment"]),
        "investment_volume": compared(invest_now["volume"], invest_then["volume"]),
        "outstanding_balance": compared(now["outstanding_principal"],
                                        then["outstanding_principal"]),
        "amount_overdue_rate": compared(now["par90"]["late_loans_ratio"],
                                        then["par90"]["late_loans_ratio"]),
        "queue_waiting_now": compared(queue["waiting"], None),
        "satisfaction": compared(rating(ratings_now), rating(ratings_then)),
    }
