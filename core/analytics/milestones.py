"""The milestone rollup: when each person first reached each step of the funnel after signing up.

``analytics_milestones`` holds, per person, what ``funnel.firsts`` computes from the raw rows:
the earliest verified identity, bound card and risk assessment, and the first and second bid
not refunded (the first one's id too). Reading it costs what the period costs; the raw form
numbers every bid of the history.

It is kept where the milestones happen: ``core.analytics.track`` of ``kyc_verified``,
``card_bound``, ``risk_assessed`` and ``invested`` recomputes that person's row, and of
``loan_cancelled`` (whose bids were just refunded, which has no event of its own) the rows of
the loan's investors, in the caller's transaction, after the change (every service tracks
after writing). ``rebuild`` recomputes every row, or the people whose rows changed since a day.
A database upgraded with people in it is marked ``people_pending`` (migration 0009) and
read raw until rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from sqlalchemy import (
    Select,
    case,
    cast,
    delete,
    func,
    insert,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from core.adapters.tables import (
    analytics_milestones,
    analytics_rollup_days,
    bank_cards,
    bids,
    identities,
    loans,
    risk_profiles,
)
from core.adapters.types import Id, UtcDateTime
from core.adapters.uow import UnitOfWork
from core.analytics.filters import day_start

PENDING = "people_pending"
EVENTS = frozenset({"kyc_verified", "card_bound", "risk_assessed", "invested"})
REFUNDS = "loan_cancelled"
COLUMNS = ("verified_at", "card_bound_at", "risk_assessed_at", "first_investment_at",
           "repeat_investment_at", "first_bid_id")
STEP_COLUMNS = {"verified": "verified_at", "card_bound": "card_bound_at",
                "risk_assessed": "risk_assessed_at", "first_investment": "first_investment_at",
                "repeat_investment": "repeat_investment_at"}
CHUNK = 500

Scope = Callable[[ColumnElement[Any]], list[ColumnElement[bool]]]


def _everyone(_: ColumnElement[Any]) -> list[ColumnElement[bool]]:
    return []


def source(scope: Scope = _everyone) -> Select[Any]:
    """The rows of ``analytics_milestones`` computed from the raw tables, for the people
    ``scope`` keeps (it gives WHERE clauses on a user id column)."""
    i, c, rp, b = identities.c, bank_cards.c, risk_profiles.c, bids.c
    ranked = select(b.investor_id.label("user_id"), b.created_at.label("at"),
                    b.id.label("bid_id"), func.row_number().over(
                        partition_by=b.investor_id, order_by=(b.created_at, b.id)).label("n")
                    ).where(b.status != "refunded", *scope(b.investor_id)).subquery()

    def at(value: Any = None) -> ColumnElement[Any]:
        return cast(null(), UtcDateTime) if value is None else value

    no_bid = cast(null(), Id)
    parts = union_all(
        select(i.user_id.label("user_id"), i.decided_at.label("verified_at"),
               at().label("card_bound_at"), at().label("risk_assessed_at"),
               at().label("first_investment_at"), at().label("repeat_investment_at"),
               no_bid.label("first_bid_id"))
        .where(i.status == "verified", *scope(i.user_id)),
        select(c.user_id, at(), c.bound_at, at(), at(), at(), no_bid)
        .where(c.bound_at.is_not(None), *scope(c.user_id)),
        select(rp.user_id, at(), at(), rp.assessed_at, at(), at(), no_bid)
        .where(*scope(rp.user_id)),
        select(ranked.c.user_id, at(), at(), at(),
               case((ranked.c.n == 1, ranked.c.at)), case((ranked.c.n == 2, ranked.c.at)),
               case((ranked.c.n == 1, ranked.c.bid_id))).where(ranked.c.n <= 2),
    ).subquery()
    return select(parts.c.user_id, *(func.min(parts.c[name]).label(name) for name in COLUMNS)
                  ).group_by(parts.c.user_id)


async def _write(uow: UnitOfWork, scope: Scope) -> None:
    await uow.conn.execute(insert(analytics_milestones).from_select(
        ["user_id", *COLUMNS], source(scope)))


async def refresh_people(uow: UnitOfWork, user_ids: Iterable[int]) -> int:
    """Recompute the rows of these people from the raw tables."""
    ids = sorted(set(user_ids))
    for part in (ids[k:k + CHUNK] for k in range(0, len(ids), CHUNK)):
        await uow.conn.execute(delete(analytics_milestones).where(
            analytics_milestones.c.user_id.in_(part)))
        await _write(uow, lambda column, part=part: [column.in_(part)])  # type: ignore[misc]
    return len(ids)


async def record(uow: UnitOfWork, events: Iterable[dict[str, Any]]) -> None:
    """Keep the rows of the people these tracked events are about (see the module doc)."""
    people: set[int] = set()
    cancelled: list[int] = []
    for e in events:
        if e["name"] in EVENTS and e.get("user_id") is not None:
            people.add(e["user_id"])
        elif e["name"] == REFUNDS and (e.get("props") or {}).get("loan_id") is not None:
            cancelled.append(int(e["props"]["loan_id"]))
    if cancelled:
        people.update((await uow.conn.execute(select(bids.c.investor_id).where(
            bids.c.loan_id.in_(cancelled)).distinct())).scalars())
    if people:
        await refresh_people(uow, people)


async def covered(uow: UnitOfWork) -> bool:
    """Whether the rollup holds everyone (not pending a first rebuild)."""
    r = analytics_rollup_days.c
    return (await uow.conn.execute(select(r.day).where(r.kind == PENDING).limit(1))
            ).first() is None


async def rebuild(uow: UnitOfWork, since: date | None) -> int:
    """Recompute every row (``since`` None, or never built), or the rows of the people with a
    milestone row dated ``since`` or later (a verification, card, assessment, bid, or a bid of
    a listing cancelled since); returns the rows recomputed."""
    r = analytics_rollup_days.c
    if since is None or not await covered(uow):
        await uow.conn.execute(delete(analytics_milestones))
        await _write(uow, _everyone)
        await uow.conn.execute(delete(analytics_rollup_days).where(r.kind == PENDING))
        return int((await uow.conn.execute(select(func.count()).select_from(
            analytics_milestones))).scalar_one())
    moment = day_start(since, uow.clock.tz)
    i, c, rp, b, lo = identities.c, bank_cards.c, risk_profiles.c, bids.c, loans.c
    changed = union_all(
        select(i.user_id).where(i.decided_at >= moment),
        select(c.user_id).where(c.bound_at >= moment),
        select(rp.user_id).where(rp.assessed_at >= moment),
        select(b.investor_id).where(or_(b.created_at >= moment, b.loan_id.in_(
            select(lo.id).where(lo.status == "cancelled", lo.closed_at >= moment)))),
    ).subquery()
    people = (await uow.conn.execute(select(changed.c[0]).distinct())).scalars().all()
    return await refresh_people(uow, people)
