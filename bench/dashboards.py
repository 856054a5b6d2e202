"""Dashboard pages on a large history: each page's data calls with the rollups and from raw rows.

A fresh SQLite file is migrated (``core.bootstrap``, ``migrate=True``) and **bulk-loaded** with
``--users`` users (default 1,000,000), ``--events`` analytics events (10,000,000) and ``--loans``
loans (200,000) with their schedules, repayments and bids, plus the funnel's later steps
(verified identities, bound cards, risk profiles, top-ups) and chats with their messages.
``--scale`` multiplies the three sizes (``--scale 0.01`` for a quick run).

The bulk path is for this bench only: plain ``sqlite3`` ``executemany`` in chunks of
``CHUNK`` rows, one transaction per chunk, ``PRAGMA synchronous=OFF`` and foreign keys off
(loans carry no application), values written in the storage formats of
``core/adapters/types.py``. Product code never writes this way. The rollups are then built
by ``core.analytics.rollups.rebuild``: every event, every person's milestones, and the loan
book of the days the pages read (the daily job builds one day a day instead; see
``docs/metrics.md``, "Rollups").

Timing: for each page, the ``core.analytics`` calls its dashboard makes, for two filters (the
last 30 days; the last 7 days on Telegram), ``--reps`` times with the rollups and ``--raw-reps``
times inside ``rollups.raw()`` (the same functions reading only raw rows: the baseline); p50 and
p95 per page and the ratio raw / rollups. Both answers are compared once per page. The last
line is one JSON object with every figure. Target: p95 under 500 ms per page with rollups.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.analytics import (
    activity,
    credit,
    disclosure,
    funnel,
    marketing,
    overview,
    rollups,
    support,
    traffic,
)
from core.analytics.filters import Filters
from core.bootstrap import Core, bootstrap
from core.domain.clock import ManualClock
from tests.support import make_settings

TODAY = date(2026, 6, 15)
HISTORY_DAYS = 730
CHUNK = 50_000
UNITS = 10_000  # Amount storage: 1/10,000
CHANNELS = (("telegram", 0.6), ("web", 0.3), ("app", 0.1))
CAMPAIGNS = (None, None, "spring", "autumn", "referral", "search")
OTHER_EVENTS = (("top_up", True), ("invested", True), ("kyc_verified", False),
                ("card_bound", False), ("risk_assessed", False), ("repayment_received", True),
                ("loan_applied", True), ("notifications_muted", False), ("support_rated", False))
TERM = 12


def stamp(moment: datetime) -> str:
    """UtcDateTime's storage on SQLite: naive UTC text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class Loader:
    """Bench-only bulk inserts (see the module docstring)."""

    def __init__(self, path: Path, tz: Any, seed: int) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("synchronous=OFF", "foreign_keys=OFF", "journal_mode=MEMORY",
                       "cache_size=-400000", "temp_store=MEMORY"):
            self.db.execute(f"PRAGMA {pragma}")
        self.tz, self.rnd = tz, random.Random(seed)
        self.start = datetime.combine(TODAY - timedelta(days=HISTORY_DAYS), clock_time(0), tz)
        self.rows = 0
        self.investors: list[int] = []

    def moment(self, lo: datetime | None = None, hi: datetime | None = None) -> datetime:
        lo = lo or self.start
        hi = hi or datetime.combine(TODAY, clock_time(9), self.tz)
        return lo + timedelta(seconds=self.rnd.random() * (hi - lo).total_seconds())

    def put(self, table: str, columns: tuple[str, ...], rows: Any) -> None:
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
               f"({', '.join('?' * len(columns))})")
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == CHUNK:
                self._flush(sql, batch)
                batch = []
        if batch:
            self._flush(sql, batch)

    def _flush(self, sql: str, batch: list[tuple[Any, ...]]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany(sql, batch)
        self.db.execute("COMMIT")
        self.rows += len(batch)

    def channel(self) -> str:
        x, edge = self.rnd.random(), 0.0
        for name, weight in CHANNELS:
            edge += weight
            if x < edge:
                return name
        return CHANNELS[-1][0]

    def load(self, n_users: int, n_events: int, n_loans: int) -> dict[str, int]:
        rnd = self.rnd
        people = []
        for uid in range(1, n_users + 1):
            people.append((uid, self.moment(), self.channel(), rnd.choice(CAMPAIGNS)))
        self.put("users", ("id", "created_at", "status", "is_investor", "is_borrower",
                           "registered_at", "first_channel", "first_campaign", "kyc_status"),
                 ((u, stamp(at), "active", 1, 1, stamp(at), ch, cp, "verified")
                  for u, at, ch, cp in people))
        self._onboarding(people)
        visitors = []  # (channel, campaign, first seen, user id)
        for uid, at, ch, cp in people:
            visitors.append((ch, cp, at - timedelta(seconds=rnd.randrange(60, 2 * 86400)), uid))
        for _ in range(n_users // 2):
            visitors.append((self.channel(), rnd.choice(CAMPAIGNS), self.moment(), None))
        self.put("channel_identities", ("id", "channel", "external_id", "user_id", "campaign",
                                        "first_seen_at", "last_seen_at", "unreachable"),
                 ((k, ch, f"x{k}", uid, cp, stamp(at), stamp(at), 0)
                  for k, (ch, cp, at, uid) in enumerate(visitors, 1)))
        events_left = max(0, n_events - len(visitors) - n_users)

        def events() -> Any:
            for ch, cp, at, _ in visitors:
                yield ("first_visit", stamp(at), None, ch, cp, None)
            for uid, at, ch, cp in people:
                yield ("registered", stamp(at), uid, ch, cp, None)
            for _ in range(events_left):
                name, money = rnd.choice(OTHER_EVENTS)
                props = (json.dumps({"amount": str(rnd.randrange(100, 100000))}) if money
                         else json.dumps({"what": "marketing"})
                         if name == "notifications_muted" else
                         json.dumps({"rating": rnd.randint(1, 5)})
                         if name == "support_rated" else None)
                yield (name, stamp(self.moment()), rnd.randint(1, n_users), None, None, props)

        self.put("analytics_events", ("name", "occurred_at", "user_id", "channel", "campaign",
                                      "props"), events())
        chats = rnd.sample(range(len(visitors)), max(1, len(visitors) // 10))
        self.put("conversations", ("id", "channel", "chat_id", "user_id", "locale", "mode",
                                   "updated_at"),
                 ((k + 1, visitors[k][0], f"x{k + 1}", visitors[k][3], "zh-CN", "bot",
                   stamp(visitors[k][2])) for k in chats))

        def messages() -> Any:
            n = 0
            for k in chats:
                at = visitors[k][2]
                for _ in range(rnd.randint(1, 6)):
                    at = at + timedelta(seconds=rnd.choice((30, 120, 3600, 86400 * 3)))
                    n += 1
                    yield (visitors[k][0], f"m{n}", k + 1, stamp(at))

        self.put("inbound_log", ("channel", "message_id", "conversation_id", "at"), messages())
        self._loans(n_users, n_loans)
        return {"rows": self.rows}

    def _onboarding(self, people: list[tuple[int, datetime, str, str | None]]) -> None:
        """The funnel's later steps: 70 % verified, 60 % of them bind a card, 80 % of those
        answer the risk questionnaire and top up one to three times (investors come from
        them)."""
        rnd, later = self.rnd, lambda at: at + timedelta(seconds=self.rnd.randrange(60, 5 * 86400))
        verified, carded, assessed = [], [], []
        for uid, at, _, _ in people:
            if rnd.random() < 0.7:
                verified.append((uid, later(at)))
        for uid, at in verified:
            if rnd.random() < 0.6:
                carded.append((uid, later(at)))
        for uid, at in carded:
            if rnd.random() < 0.8:
                assessed.append((uid, later(at)))
        self.put("identities", ("user_id", "full_name_enc", "name_masked", "id_type",
                                "id_number_enc", "id_hash", "id_masked", "country", "status",
                                "attempts", "submitted_at", "decided_at"),
                 ((uid, b"x", "*", "id_card", b"x", f"h{uid}", "*", "CHN", "verified", 1,
                   stamp(at - timedelta(minutes=5)), stamp(at)) for uid, at in verified))
        self.put("bank_cards", ("user_id", "card_enc", "card_hash", "last4", "bank_code",
                                "reserved_phone_hash", "status", "created_at", "bound_at"),
                 ((uid, b"x", f"c{uid}", "0000", "ICBC", f"p{uid}", "active",
                   stamp(at - timedelta(minutes=2)), stamp(at)) for uid, at in carded))
        self.put("risk_profiles", ("user_id", "level", "score", "answers", "version",
                                   "assessed_at", "expires_at"),
                 ((uid, "C3", 50, "{}", "v1", stamp(at), stamp(at + timedelta(days=365)))
                  for uid, at in assessed))

        def orders() -> Any:
            for uid, at in assessed:
                for k in range(rnd.randint(1, 3)):
                    moment = later(at)
                    yield (f"o{uid}-{k}", uid, "top_up", rnd.randrange(100, 50000) * UNITS, 0,
                           "succeeded", f"k{uid}-{k}", stamp(moment), stamp(moment))

        self.put("payment_orders", ("id", "user_id", "kind", "amount", "fee", "status",
                                    "request_key", "created_at", "completed_at"), orders())
        self.investors = [uid for uid, _ in assessed] or [people[0][0]]

    def _loans(self, n_users: int, n_loans: int) -> None:
        rnd, tz = self.rnd, self.tz
        loans, schedule, paid, bids = [], [], [], []
        late_end = datetime.combine(TODAY - timedelta(days=5), clock_time(9), tz)
        for lid in range(1, n_loans + 1):
            disbursed = self.moment(hi=late_end)
            amount = rnd.randrange(10, 500) * 100 * UNITS
            first_due = (disbursed.astimezone(tz).date().replace(day=1) + timedelta(days=40)
                         ).replace(day=min(28, disbursed.astimezone(tz).day))
            stops = rnd.randint(1, 40) if rnd.random() < 0.08 else TERM + 1  # misses from here
            part, left, closed = amount // TERM, amount, None
            for period in range(1, TERM + 1):
                due = (first_due.replace(day=1) + timedelta(days=31 * (period - 1))).replace(
                    day=first_due.day)
                principal = part if period < TERM else left
                left -= principal
                interest = amount // 100
                schedule.append((lid, period, due.isoformat(), principal, interest))
                if due < TODAY and period < stops:
                    received = datetime.combine(due, clock_time(10), tz)
                    paid.append((lid, "auto_debit", principal + interest, 0, interest, principal,
                                 0, f"r{lid}-{period}", "t", stamp(received), due.isoformat()))
                    if period == TERM:
                        closed = received
            borrower = rnd.randint(1, n_users)
            loans.append((lid, lid, borrower, "consumer", amount, TERM, "equal_principal", 0.12,
                          "A", "R2", "bench", "{}", "repaid" if closed else "active",
                          amount, 2, stamp(disbursed), stamp(disbursed), stamp(disbursed),
                          stamp(disbursed), stamp(closed) if closed else None, amount // 100))
            for k in range(2):
                bids.append((lid, rnd.choice(self.investors), amount // 2, "active",
                             f"b{lid}-{k}",
                             rnd.random() < 0.5, stamp(disbursed - timedelta(hours=k + 1))))
            if len(schedule) >= CHUNK:
                self._loan_rows(loans, schedule, paid, bids)
                loans, schedule, paid, bids = [], [], [], []
        self._loan_rows(loans, schedule, paid, bids)

    def _loan_rows(self, loans: list, schedule: list, paid: list, bids: list) -> None:
        self.put("loans", ("id", "application_id", "borrower_id", "product", "amount",
                           "term_months", "method", "annual_rate", "grade", "risk_level",
                           "purpose", "facts", "status", "funded", "investors", "listed_at",
                           "expires_at", "funded_at", "disbursed_at", "closed_at",
                           "protection_fee"), loans)
        self.put("installments", ("loan_id", "period", "due_date", "principal", "interest"),
                 schedule)
        self.put("repayments", ("loan_id", "source", "amount", "penalty", "interest",
                                "principal", "management_fee", "request_key", "transfer_id",
                                "received_at", "business_date"), paid)
        self.put("bids", ("loan_id", "investor_id", "amount", "status", "request_key", "auto",
                          "created_at"), bids)


PAGES: dict[str, Callable[[Any, Filters, Any], list[Awaitable[Any]]]] = {
    "overview": lambda uow, f, s: [overview.overview(uow, f, settings=s)],
    "traffic": lambda uow, f, s: [traffic.traffic(uow, f, settings=s)],
    "funnel": lambda uow, f, s: [funnel.funnel(uow, f), funnel.signup_cohorts(uow, f)],
    "activity": lambda uow, f, s: [activity.activity(uow, f, settings=s)],
    "credit": lambda uow, f, s: [credit.portfolio(uow, f, settings=s),
                                 credit.vintages(uow, f, settings=s),
                                 credit.roll_rates(uow, f, settings=s),
                                 credit.collections(uow, f, settings=s),
                                 credit.protection_fund(uow, f, settings=s)],
    "support": lambda uow, f, s: [support.support(uow, f, settings=s)],
    "marketing": lambda uow, f, s: [marketing.marketing(uow, f, settings=s)],
    "disclosure": lambda uow, f, s: [disclosure.disclosure(uow, f.end, settings=s)],
}
FILTERS = {"30d": Filters(TODAY - timedelta(days=29), TODAY),
           "7d_telegram": Filters(TODAY - timedelta(days=6), TODAY, channels=("telegram",))}


def book_days() -> list[date]:
    """The days the pages read the book at (the daily job would have built each by then)."""
    days = {TODAY}
    for f in FILTERS.values():
        days |= {f.start - timedelta(days=1), f.previous().end, f.previous().start
                 - timedelta(days=1)}
        first = f.start.replace(day=1)
        day = first
        while day <= TODAY:  # month-ends from the first cohort month (vintages, roll rates)
            following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
            if following - timedelta(days=1) <= TODAY:
                days.add(following - timedelta(days=1))
            day = following
        days.add(first - timedelta(days=1))
    return sorted(days)


async def open_core(path: Path) -> Core:
    settings = make_settings(f"sqlite+aiosqlite:///{path}", path.parent)
    clock = ManualClock(datetime.combine(TODAY, clock_time(10), settings.tz), settings.tz)
    return await bootstrap(settings, clock=clock, migrate=True)


async def page_once(core: Core, name: str, f: Filters) -> tuple[float, Any]:
    async with core.uow(read_only=True) as uow:
        started = time.perf_counter()
        out = [await call for call in PAGES[name](uow, f, core.settings)]
        return time.perf_counter() - started, out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]


async def measure(core: Core, args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name in PAGES:
        timings: dict[str, list[float]] = {"rollups": [], "raw": []}
        same = True
        for label, f in FILTERS.items():
            fast = slow = None
            for _ in range(args.reps):
                seconds, fast = await page_once(core, name, f)
                timings["rollups"].append(seconds)
            with rollups.raw():
                for _ in range(args.raw_reps):
                    seconds, slow = await page_once(core, name, f)
                    timings["raw"].append(seconds)
            same = same and fast == slow
            del label
        row = {mode: {"p50_ms": round(statistics.median(t) * 1000, 1),
                      "p95_ms": round(pct(t, 0.95) * 1000, 1), "n": len(t)}
               for mode, t in timings.items()}
        row["ratio_p95"] = round(row["raw"]["p95_ms"] / max(row["rollups"]["p95_ms"], 0.1), 2)
        row["same_answers"] = same
        figures[name] = row
        print(f"  {name:<11} rollups p50 {row['rollups']['p50_ms']:>9.1f} ms  p95 "
              f"{row['rollups']['p95_ms']:>9.1f} ms | raw p50 {row['raw']['p50_ms']:>9.1f} ms  "
              f"p95 {row['raw']['p95_ms']:>9.1f} ms | raw/rollups {row['ratio_p95']:>6.2f}x"
              f"{'' if same else '  ANSWERS DIFFER'}", flush=True)
    return figures


def fresh_file(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    n_users, n_events, n_loans = (max(10, int(n * args.scale)) for n in (
        args.users, args.events, args.loans))
    path = Path(args.db)
    out: dict[str, Any] = {"users": n_users, "events": n_events, "loans": n_loans,
                           "db": str(path)}
    if not args.reuse:
        fresh_file(path)
        core = await open_core(path)
        tz = core.clock.tz
        await core.close()
        started = time.perf_counter()
        loader = Loader(path, tz, args.seed)
        loader.load(n_users, n_events, n_loans)
        loader.db.close()
        seconds = time.perf_counter() - started
        out["load_seconds"], out["load_rows"] = round(seconds, 1), loader.rows
        out["load_rows_per_second"] = round(loader.rows / seconds)
        print(f"loaded {loader.rows:,} rows in {seconds:.1f} s "
              f"({loader.rows / seconds:,.0f} rows/s)", flush=True)
    core = await open_core(path)
    try:
        if not args.reuse:
            started = time.perf_counter()
            async with core.uow() as uow:
                built = await rollups.rebuild(uow, None, settings=core.settings,
                                              days=book_days())
                await uow.commit()
            out["rebuild_seconds"] = round(time.perf_counter() - started, 1)
            out["rebuild"] = built
            print(f"rollups rebuilt in {out['rebuild_seconds']} s: {built}", flush=True)
        print(f"pages ({args.reps} runs with rollups, {args.raw_reps} raw, per filter "
              f"{', '.join(FILTERS)}):", flush=True)
        out["pages"] = await measure(core, args)
    finally:
        await core.close()
    out["target_p95_ms"] = 500
    out["pages_over_target"] = [k for k, v in out["pages"].items()
                                if v["rollups"]["p95_ms"] >= 500]
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--loans", type=int, default=200_000)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--reps", type=int, default=5, help="timed runs per filter, rollups")
    parser.add_argument("--raw-reps", type=int, default=2, help="timed runs per filter, raw")
    parser.add_argument("--db", default="/tmp/p2p_bench_dashboards.db")
    parser.add_argument("--reuse", action="store_true", help="time an already loaded --db")
    parser.add_argument("--seed", type=int, default=20260615)
    return parser.parse_args(argv)


if __name__ == "__main__":
    result = asyncio.run(main(parse_args()))
    print(json.dumps(result, default=str))
