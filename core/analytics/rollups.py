"""Rollups: derived tables that let a dashboard page cost what its dates cost, not the history.

Two rollups, both rebuilt from the raw rows by ``rebuild`` (idempotent) and read only where they
give exactly what the raw rows give:

* ``analytics_daily`` (business day, event name, channel, campaign -> events, sum of
  ``props["amount"]``): written by ``core.analytics.track`` / ``track_many`` in the caller's
  transaction (an upsert), so it is never behind the event log. A database upgraded with events
  already tracked is marked ``events_pending`` in ``analytics_rollup_days`` (migration 0009)
  and read raw until ``rebuild`` ran once (the daily job).
* ``analytics_book_daily`` (day, borrower's first channel and campaign, disbursement month,
  state = bucket or ``written_off`` -> loans, outstanding principal and interest, overdue
  principal / interest, overdue beyond 30 / 90 days): the loan book of ``core.analytics.book``
  at the end of a day, summed. A day is usable once built (marker kind ``book``); an event that
  changes the book (``BOOK_EVENTS``: a disbursement, repayment, closure or write-off) drops
  the markers of its day and later, so a stale day is read raw until rebuilt. The daily job
  builds yesterday and today (``refresh``).

``raw()`` (a context variable) makes every function read the raw rows: the bench's baseline
and the tests' reference.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from types import SimpleNamespace
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from config.settings import Settings
from core.adapters.tables import (
    analytics_book_daily,
    analytics_daily,
    analytics_disclosure_daily,
    analytics_events,
    analytics_overdue_loans,
    analytics_roll_monthly,
    analytics_rollup_days,
    loans,
    users,
)
from core.adapters.uow import UnitOfWork
from core.analytics import holders, milestones
from core.analytics.book import LoanAt, add_months, book
from core.analytics.filters import Filters, attributed, day_start, local_day
from core.analytics.numbers import currency
from core.domain.money import Currency

EVENTS_PENDING, BOOK = "events_pending", "book"
BOOK_EVENTS = frozenset({"loan_disbursed", "repayment_received", "loan_repaid",
                         "loan_written_off"})
AMOUNT_PLACES = Decimal("0.0001")
_raw: ContextVar[bool] = ContextVar("analytics_raw", default=False)


@contextmanager
def raw() -> Iterator[None]:
    """Within this block, analytics functions read the raw rows only (no rollups)."""
    token = _raw.set(True)
    try:
        yield
    finally:
        _raw.reset(token)


def enabled() -> bool:
    return not _raw.get()


async def milestones_usable(uow: UnitOfWork) -> bool:
    """Whether ``analytics_milestones`` may be read (``core.analytics.milestones``)."""
    return enabled() and await milestones.covered(uow)


def upsert_adding(uow: UnitOfWork, table: Any, keys: Sequence[str],
                  sums: Sequence[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE adding ``sums`` to the row already there (SQLite
    and PostgreSQL); execute it with a list of rows."""
    dialect_insert = postgresql.insert if uow.dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(table)
    return statement.on_conflict_do_update(index_elements=list(keys), set_={
        name: table.c[name] + statement.excluded[name] for name in sums})


# --- events ----------------------------------------------------------------------------------

def _amount(props: dict[str, Any] | None) -> Decimal:
    value = (props or {}).get("amount")
    if value is None or isinstance(value, bool):
        return Decimal(0)
    try:
        return Decimal(str(value)).quantize(AMOUNT_PLACES, ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return Decimal(0)


async def record(uow: UnitOfWork, events: Iterable[dict[str, Any]]) -> None:
    """Add tracked events (``name``, ``at``, ``channel``, ``campaign``, ``props``) to the
    rollups, in the caller's transaction; called by ``track`` / ``track_many``."""
    tz = uow.clock.tz
    counts: dict[tuple[date, str, str, str], list[Any]] = {}
    touched: date | None = None
    events = list(events)
    await milestones.record(uow, events)
    for e in events:
        day = e["at"].astimezone(tz).date()
        key = (day, e["name"], e.get("channel") or "", e.get("campaign") or "")
        entry = counts.setdefault(key, [0, Decimal(0)])
        entry[0] += 1
        entry[1] += _amount(e.get("props"))
        if e["name"] in BOOK_EVENTS:
            touched = day if touched is None else min(touched, day)
    if not counts:
        return
    await uow.conn.execute(upsert_adding(uow, analytics_daily, ("day", "name", "channel",
                                                                 "campaign"),
                                         ("events", "amount")), [
        {"day": k[0], "name": k[1], "channel": k[2], "campaign": k[3], "events": v[0],
         "amount": v[1]} for k, v in counts.items()])
    if touched is not None:
        await uow.conn.execute(delete(analytics_rollup_days).where(
            analytics_rollup_days.c.kind == BOOK, analytics_rollup_days.c.day >= touched))


async def events_covered(uow: UnitOfWork, f: Filters) -> bool:
    """Whether ``analytics_daily`` holds every event (of the period ``f``)."""
    if not enabled():
        return False
    pending = (await uow.conn.execute(select(analytics_rollup_days.c.day).where(
        analytics_rollup_days.c.kind == EVENTS_PENDING).limit(1))).first()
    return pending is None


async def event_counts(uow: UnitOfWork, f: Filters, name: str, *, by_day: bool = True
                       ) -> list[tuple[str | None, str | None, str | None, int]]:
    """``(day, channel, campaign, events)`` of ``name`` in the period (the event's own channel
    and campaign filtered), as the raw GROUP BY gives them ("" for none; day None unless
    ``by_day``)."""
    d = analytics_daily.c
    day = d.day if by_day else None
    columns = [d.channel, d.campaign] if day is None else [day, d.channel, d.campaign]
    rows = (await uow.conn.execute(
        select(*columns, func.sum(d.events))
        .where(d.name == name, d.day >= f.start, d.day <= f.end,
               *attributed(f, d.channel, d.campaign))
        .group_by(*columns))).all()
    if day is None:
        return [(None, r[0], r[1], int(r[2])) for r in rows]
    return [(r[0].isoformat(), r[1], r[2], int(r[3])) for r in rows]


async def _rebuild_events(uow: UnitOfWork, since: date | None) -> int:
    e, r = analytics_events.c, analytics_rollup_days.c
    tz = uow.clock.tz
    pending = (await uow.conn.execute(select(r.day).where(r.kind == EVENTS_PENDING).limit(1))
               ).first()
    if pending is not None:
        since = None  # never covered: rebuild everything
    where: list[ColumnElement[bool]] = []
    if since is not None:
        where.append(e.occurred_at >= day_start(since, tz))
        await uow.conn.execute(delete(analytics_daily).where(analytics_daily.c.day >= since))
    else:
        await uow.conn.execute(delete(analytics_daily))
    lo = (await uow.conn.execute(select(func.min(e.occurred_at)).where(*where))).scalar_one()
    hi = (await uow.conn.execute(select(func.max(e.occurred_at)).where(*where))).scalar_one()
    rows: list[dict[str, Any]] = []
    if lo is not None:
        day = local_day(uow, e.occurred_at, lo, hi + timedelta(seconds=1))
        sums: dict[tuple[str, str, str, str], list[Any]] = {}
        for d, name, channel, campaign, n in (await uow.conn.execute(
                select(day, e.name, e.channel, e.campaign, func.count()).where(*where)
                .group_by(day, e.name, e.channel, e.campaign))).all():
            entry = sums.setdefault((d, name, channel or "", campaign or ""), [0, Decimal(0)])
            entry[0] += int(n)
        amount = e.props["amount"].as_string()
        result = await uow.conn.stream(select(day, e.name, e.channel, e.campaign, amount)
                                       .where(*where, amount.is_not(None)))
        async for d, name, channel, campaign, value in result:
            sums[(d, name, channel or "", campaign or "")][1] += _amount({"amount": value})
        rows = [{"day": date.fromisoformat(k[0]), "name": k[1], "channel": k[2],
                 "campaign": k[3], "events": v[0], "amount": v[1]} for k, v in sums.items()]
        for part in range(0, len(rows), 5000):
            await uow.conn.execute(upsert_adding(uow, analytics_daily, (
                "day", "name", "channel", "campaign"), ("events", "amount")),
                rows[part:part + 5000])
    await uow.conn.execute(delete(analytics_rollup_days).where(r.kind == EVENTS_PENDING))
    return len(rows)


# --- the loan book ---------------------------------------------------------------------------

@dataclass(slots=True)
class Tally:
    """Sums over the loans of one state (a bucket or written_off), in storage units."""

    loans: int = 0
    principal: Decimal = Decimal(0)
    interest: Decimal = Decimal(0)
    overdue_principal: Decimal = Decimal(0)
    overdue_interest: Decimal = Decimal(0)
    overdue_beyond_30: Decimal = Decimal(0)
    overdue_beyond_90: Decimal = Decimal(0)
    cohorts: dict[str, Decimal] = field(default_factory=dict)  # principal by cohort

    def add(self, loan: LoanAt) -> None:
        self.loans += 1
        self.principal += loan.principal
        self.interest += loan.interest
        self.overdue_principal += loan.overdue_principal
        self.overdue_interest += loan.overdue_interest
        self.overdue_beyond_30 += loan.overdue_beyond(30)
        self.overdue_beyond_90 += loan.overdue_beyond(90)


FIGURES = ("loans", "principal", "interest", "overdue_principal", "overdue_interest",
           "overdue_beyond_30", "overdue_beyond_90")


def tally(loans_at: Iterable[LoanAt]) -> dict[str, Tally]:
    """The book of one day by state (open loans by bucket; written off), what the stock
    figures (``credit.snapshot_of``) and vintages need."""
    out: dict[str, Tally] = defaultdict(Tally)
    for loan in loans_at:
        if loan.state == "repaid":
            continue
        state = loan.bucket
        out[state].add(loan)
        cohort = loan.disbursed_on.strftime("%Y-%m")
        out[state].cohorts[cohort] = out[state].cohorts.get(cohort, Decimal(0)) + loan.principal
    return out


async def book_tallies(uow: UnitOfWork, days: Sequence[date], f: Filters | None
                       ) -> dict[date, dict[str, Tally]]:
    """The tallies of the days that are built (days missing from the answer: read raw)."""
    if not enabled() or not days:
        return {}
    r, b = analytics_rollup_days.c, analytics_book_daily.c
    built = set((await uow.conn.execute(select(r.day).where(
        r.kind == BOOK, r.day.in_(sorted(set(days)))))).scalars())
    if not built:
        return {}
    where = [] if f is None else attributed(f, b.channel, b.campaign)
    out: dict[date, dict[str, Tally]] = {d: defaultdict(Tally) for d in built}
    for row in (await uow.conn.execute(
            select(b.day, b.state, b.cohort, *(func.sum(b[n]).label(n) for n in FIGURES))
            .where(b.day.in_(sorted(built)), *where).group_by(b.day, b.state, b.cohort))):
        t = out[row.day][row.state]
        t.loans += int(row.loans)
        for name in FIGURES[1:]:
            setattr(t, name, getattr(t, name) + _units(getattr(row, name)))
        t.cohorts[row.cohort] = t.cohorts.get(row.cohort, Decimal(0)) + _units(row.principal)
    return out


def _units(value: Any) -> Decimal:
    return Decimal(value or 0)  # SUM keeps the Amount type: a Decimal already


async def build_book(uow: UnitOfWork, days: Sequence[date], settings: Settings,
                     cur: Currency | None = None) -> int:
    """Rebuild the book rollups of each of ``days`` (idempotent; one read of the book for all of
    them): the sums by state, the overdue loans, for a month-end the roll from the month-end
    before, for a month-end or today who holds the book; returns the rows written."""
    r = analytics_rollup_days.c
    days = sorted(set(days))
    if not days:
        return 0
    today = uow.clock.today()
    ends = {day: add_months(day, -1) for day in days if add_months(day, 0) == day}
    for table in (analytics_book_daily, analytics_overdue_loans, analytics_roll_monthly,
                  analytics_disclosure_daily):
        await uow.conn.execute(delete(table).where(table.c.day.in_(days)))
    states = await book(uow, sorted({*days, *ends.values()}), settings)
    borrowers = {loan.borrower_id for loans_at in states.values() for loan in loans_at}
    source: dict[int, tuple[str, str]] = {}
    ids = sorted(borrowers)
    for part in (ids[i:i + 5000] for i in range(0, len(ids), 5000)):
        for uid, channel, campaign in (await uow.conn.execute(
                select(users.c.id, users.c.first_channel, users.c.first_campaign)
                .where(users.c.id.in_(part)))).all():
            source[uid] = (channel or "", campaign or "")
    written = 0
    for day in days:
        groups: dict[tuple[str, str, str, str], Tally] = defaultdict(Tally)
        late: list[dict[str, Any]] = []
        for loan in states[day]:
            if loan.state == "repaid":
                continue
            channel, campaign = source.get(loan.borrower_id, ("", ""))
            groups[(channel, campaign, loan.disbursed_on.strftime("%Y-%m"), loan.bucket)].add(
                loan)
            if loan.state == "open" and loan.overdue > 0:
                late.append({"day": day, "loan_id": loan.loan_id, "channel": channel,
                             "campaign": campaign, "overdue": loan.overdue})
        rows = [{"day": day, "channel": k[0], "campaign": k[1], "cohort": k[2], "state": k[3],
                 **{n: getattr(t, n) for n in FIGURES}} for k, t in groups.items()]
        rolls = _rolls(day, states[ends[day]], states[day], source) if day in ends else []
        for table, batch in ((analytics_book_daily, rows), (analytics_overdue_loans, late),
                             (analytics_roll_monthly, rolls)):
            for part in range(0, len(batch), 5000):
                await uow.conn.execute(table.insert(), batch[part:part + 5000])
        if day in ends or day == today:
            await uow.conn.execute(analytics_disclosure_daily.insert(), [
                {"day": day, **await holders.figures(uow, day, states[day],
                                                     cur or currency(settings))}])
        written += len(rows) + len(late) + len(rolls)
    await uow.conn.execute(delete(analytics_rollup_days).where(r.kind == BOOK, r.day.in_(days)))
    await uow.conn.execute(analytics_rollup_days.insert(), [
        {"kind": BOOK, "day": day, "built_at": uow.clock.now()} for day in days])
    return written


def _rolls(day: date, before: Sequence[LoanAt], after: Sequence[LoanAt],
           source: dict[int, tuple[str, str]]) -> list[dict[str, Any]]:
    """The roll of the loans open at the month-end before ``day`` to their state at ``day``."""
    then = {loan.loan_id: loan for loan in after}
    groups: dict[tuple[str, str, str, str], list[Any]] = {}
    for loan in before:
        if loan.state != "open":
            continue
        channel, campaign = source.get(loan.borrower_id, ("", ""))
        entry = groups.setdefault((channel, campaign, loan.bucket, then[loan.loan_id].bucket),
                                  [0, Decimal(0)])
        entry[0] += 1
        entry[1] += loan.principal
    return [{"day": day, "channel": k[0], "campaign": k[1], "from_state": k[2],
             "to_state": k[3], "loans": v[0], "principal": v[1]} for k, v in groups.items()]


async def built(uow: UnitOfWork, days: Sequence[date]) -> set[date]:
    """Which of ``days`` have their book rollups built (none when reading raw)."""
    if not enabled() or not days:
        return set()
    r = analytics_rollup_days.c
    return set((await uow.conn.execute(select(r.day).where(
        r.kind == BOOK, r.day.in_(sorted(set(days)))))).scalars())


async def rolls(uow: UnitOfWork, day: date, f: Filters
                ) -> list[tuple[str, str, int, Decimal]] | None:
    """``(from, to, loans, principal)`` of the roll into month-end ``day`` (None: not built)."""
    if day not in await built(uow, [day]):
        return None
    m = analytics_roll_monthly.c
    return [(row[0], row[1], int(row[2]), _units(row[3])) for row in (await uow.conn.execute(
        select(m.from_state, m.to_state, func.sum(m.loans), func.sum(m.principal))
        .where(m.day == day, *attributed(f, m.channel, m.campaign))
        .group_by(m.from_state, m.to_state))).all()]


async def overdue_loans(uow: UnitOfWork, day: date, f: Filters) -> dict[int, Decimal] | None:
    """The overdue amount of each loan overdue at the end of ``day`` (None: not built)."""
    if day not in await built(uow, [day]):
        return None
    o = analytics_overdue_loans.c
    return {loan_id: _units(amount) for loan_id, amount in (await uow.conn.execute(
        select(o.loan_id, o.overdue).where(o.day == day, *attributed(f, o.channel, o.campaign))
    )).all()}


async def holders_at(uow: UnitOfWork, day: date
                     ) -> tuple[dict[str, Tally], dict[str, Any]] | None:
    """The whole book's sums by state and who holds it at the end of ``day`` (None: not
    built)."""
    if day not in await built(uow, [day]):
        return None
    row = (await uow.conn.execute(select(analytics_disclosure_daily).where(
        analytics_disclosure_daily.c.day == day))).first()
    if row is None:
        return None
    states = (await book_tallies(uow, [day], None))[day]
    return states, {name: getattr(row, name) for name in holders.FIGURES}


# --- maintenance -----------------------------------------------------------------------------

async def rebuild(uow: UnitOfWork, since: date | None = None, *, settings: Settings,
                  days: Sequence[date] | None = None, cur: Currency | None = None
                  ) -> dict[str, int]:
    """Recompute the rollups from the raw rows (idempotent), in the caller's transaction:
    events from ``since`` on (everything when None or never covered), and the book of each of
    ``days`` (default: every day from ``since``, or yesterday, up to today)."""
    today = uow.clock.today()
    if days is None:
        first = since if since is not None else today - timedelta(days=1)
        days = [first + timedelta(days=n) for n in range((today - first).days + 1)]
    out = {"events": await _rebuild_events(uow, since),
           "milestones": await milestones.rebuild(uow, since), "book_rows": 0, "book_days": 0}
    days = [day for day in days if day <= today]
    if days and (await _first_disbursement(uow)) is not None:
        out["book_rows"] = await build_book(uow, days, settings, cur)
        out["book_days"] = len(set(days))
    return out


async def has_loans(uow: UnitOfWork) -> bool:
    """Has any loan been disbursed (is there a book to roll up)?"""
    return await _first_disbursement(uow) is not None


async def _first_disbursement(uow: UnitOfWork) -> datetime | None:
    return (await uow.conn.execute(select(func.min(loans.c.disbursed_at)))).scalar_one()


async def refresh(uow: UnitOfWork, day: date, *, servicing: Any, cur: Currency
                  ) -> dict[str, int]:
    """The daily job's step for business day ``day``: the events of the day before recounted
    (a backstop: ``track`` keeps them current) and the book of the day before and of ``day``
    rebuilt. ``servicing``: the servicing settings (all the book reads of the settings);
    ``cur``: the currency."""
    settings: Any = SimpleNamespace(servicing=servicing)
    return await rebuild(uow, day - timedelta(days=1), settings=settings,
                         days=[day - timedelta(days=1), day], cur=cur)
