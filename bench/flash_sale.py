"""Flash sale: thousands of investors bid at once on one listing that covers a quarter of them.

Every investor bids ``BID`` (1,000.00) at the same moment (``asyncio.gather`` of one task per
investor) on one listing of a quarter of the demand, so three bids in four must be refused
(``BidExceedsRemaining`` with what remained, or ``ListingClosed`` once the loan is funded) and the
listing must end exactly full, never oversold. Two paths, each on its own identically seeded
fresh database, taken in turn ``--repeat`` times:

* ``desk``: the product's path, ``core.bid_desk.submit(BidRequest(...))`` per investor; the
  coalescer hands concurrent bids to ``Investing.invest_many`` in shared transactions.
* ``naive`` (the baseline): what a typical bot does, one unit of work and one commit per bid,
  ``core.investing.invest`` inside ``async with core.uow()``. It manages about 100 bids/s, so by
  default it bids with 500 investors (``--naive-investors``) on a listing of a quarter of *that*
  demand; the ratio compares bids per second.

Per path it prints bids/s (bids / wall time), p50 and p99 latency per bid (submit to result),
accepted and refused bids, and desk/naive on bids/s. After each run (untimed) it checks that the
loan's ``funded`` equals its live bids and the listing amount (``oversold`` is what bids exceed
it by) and that ``core.invariants.run_checks`` finds nothing.

Seeding is a bench-only bulk path, not how the product onboards anyone: users, risk profiles,
the loan application and the listed loan are written directly with SQLAlchemy Core, while ledger
accounts (``Ledger.open_user_accounts``) and balances (``Ledger.post_many``, custody cash to each
wallet) go through the ledger so it stays balanced. The listing is a ``small_business`` loan,
which waits for staff to disburse, so the timed part is bids only. One template is seeded per
database and size, then copied (a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on
PostgreSQL) for every run. PostgreSQL runs when ``P2P_BENCH_DATABASE_URL`` or
``P2P_TEST_DATABASE_URL`` names one; its databases are created and dropped here.

    .venv/bin/python bench/flash_sale.py [--investors N] [--naive-investors M] [--repeat K]
                                          [--no-postgres]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ruff: noqa: E402 - the imports below need the project root on sys.path.
import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select, text, type_coerce
from sqlalchemy.engine import make_url

from core.adapters.db import create_engine
from core.adapters.tables import bids, loan_applications, loans, risk_profiles, users
from core.adapters.types import Amount
from core.bootstrap import Core, bootstrap
from core.domain.errors import BidExceedsRemaining, DomainError
from core.domain.money import Money
from core.invariants import run_checks
from core.ledger import Transfer, user_account
from core.services.lending.investing import BidRequest
from tests.support import make_settings, pg_create_database

BID = Decimal("1000.00")
FUNDING = Decimal("10000.00")  # each investor can afford the bid many times over
DEMAND_PER_LISTING = 4  # the listing covers a quarter of the demand
NAIVE_INVESTORS = 500  # the naive path is slow: 2,000 bids would take 20 s a run
TARGET_RATIO = 10.0  # desk / naive bids per second, on SQLite
DATABASES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Seed:
    investor_ids: list[int]
    loan_id: int
    listing: Decimal


@dataclass
class Run:
    """One timed flash sale: what every bidder got back, and the state it left behind."""

    bids: int
    wall: float
    latencies: list[float]
    accepted: int
    accepted_total: Decimal
    refusals: Counter[str]
    funded: Decimal
    live_bids: Decimal
    listing: Decimal
    violations: list[str]

    @property
    def rate(self) -> float:
        return self.bids / self.wall

    @property
    def refused(self) -> int:
        return sum(self.refusals.values())

    @property
    def oversold(self) -> Decimal:
        return max(self.live_bids, self.funded, self.accepted_total) - self.listing

    @property
    def exact(self) -> bool:
        return self.funded == self.live_bids == self.accepted_total == self.listing


@dataclass
class Figures:
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def add(self, name: str, run: Run) -> None:
        self.runs.setdefault(name, []).append(run)

    def median(self, name: str, measure: Callable[[Run], float]) -> float | None:
        runs = self.runs.get(name)
        return statistics.median(measure(r) for r in runs) if runs else None


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def p50_ms(run: Run) -> float:
    return percentile(run.latencies, 0.50) * 1000


def p99_ms(run: Run) -> float:
    return percentile(run.latencies, 0.99) * 1000


# Seeding (bench only) --------------------------------------------------------------------------

async def seed(core: Core, investors: int) -> Seed:
    """Funded, assessed investors and one listed loan for a quarter of their demand."""
    listing = BID * (investors // DEMAND_PER_LISTING)
    async with core.uow() as uow:
        now = uow.clock.now()
        person = {"created_at": now, "status": "active", "registered_at": now,
                  "kyc_status": "verified", "is_investor": True, "is_borrower": False}
        insert = users.insert().returning(users.c.id, sort_by_parameter_order=True)
        rows = [person] * investors + [{**person, "is_investor": False, "is_borrower": True}]
        *investor_ids, borrower_id = (await uow.conn.execute(insert, rows)).scalars().all()
        for user_id in [*investor_ids, borrower_id]:
            await core.ledger.open_user_accounts(uow, user_id)
        funding = Money.of(FUNDING, core.currency)
        posted = await core.ledger.post_many(uow, [
            Transfer.simple(f"bench:fund:{user_id}", "bench_top_up",
                            debit_account="platform:custody_cash",
                            credit_account=user_account(user_id, "available"), amount=funding)
            for user_id in investor_ids])
        if any(p.status != "applied" for p in posted):
            raise AssertionError(f"funding refused: {posted[0]}")
        questionnaire = core.risk.questionnaire
        await uow.conn.execute(risk_profiles.insert(), [
            {"user_id": user_id, "level": "C5", "score": questionnaire.thresholds["C5"],
             "answers": {}, "version": questionnaire.version, "assessed_at": now,
             "expires_at": now + timedelta(days=365)} for user_id in investor_ids])
        terms = {"product": "small_business", "amount": listing, "term_months": 12,
                 "method": "equal_installment", "purpose": "flash sale bench",
                 "facts": {}, "grade": "A", "risk_level": "R2", "annual_rate": Decimal("0.10")}
        application_id = (await uow.conn.execute(loan_applications.insert().values(
            user_id=borrower_id, status="approved", created_at=now, decided_at=now, **terms,
        ))).inserted_primary_key[0]
        loan_id = (await uow.conn.execute(loans.insert().values(
            application_id=application_id, borrower_id=borrower_id, status="listed",
            listed_at=now, expires_at=now + timedelta(days=5), funded=Decimal(0), investors=0,
            principal_outstanding=Decimal(0), **terms,
        ))).inserted_primary_key[0]
        await uow.commit()
    return Seed(list(investor_ids), int(loan_id), listing)


class Store:
    """Seeded templates, and a fresh copy of one for every run (SQLite file or PostgreSQL)."""

    def __init__(self, database: str, folder: Path, admin_url: str | None = None) -> None:
        self.database = database
        self.folder = folder
        self.admin_url = admin_url
        self.templates: dict[int, tuple[str, Seed]] = {}
        self.created: list[str] = []

    async def open(self, url: str) -> Core:
        return await bootstrap(make_settings(url, self.folder / "data"), migrate=True)

    async def template(self, investors: int) -> tuple[str, Seed]:
        if investors not in self.templates:
            if self.database == "sqlite":
                url = f"sqlite+aiosqlite:///{self.folder / f'template-{investors}.db'}"
            else:
                assert self.admin_url is not None
                url = (await pg_create_database(self.admin_url)).url
                self.created.append(url)
            started = time.perf_counter()
            core = await self.open(url)
            try:
                self.templates[investors] = (url, await seed(core, investors))
            finally:
                await core.close()
            print(f"  {self.database}: seeded {investors:,} investors in "
                  f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
        return self.templates[investors]

    async def fresh(self, investors: int) -> tuple[str, Seed]:
        source, seeded = await self.template(investors)
        if self.database == "sqlite":
            path = self.folder / f"run-{uuid.uuid4().hex[:8]}.db"
            shutil.copyfile(make_url(source).database or "", path)  # closed: WAL checkpointed
            return f"sqlite+aiosqlite:///{path}", seeded
        name = f"p2p_bench_{uuid.uuid4().hex[:12]}"
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(source).database}"')
        url = make_url(source).set(database=name).render_as_string(hide_password=False)
        self.created.append(url)
        return url, seeded

    async def discard(self, url: str) -> None:
        if self.database == "sqlite":
            remove_sqlite_file(make_url(url).database or "")
        else:
            self.created.remove(url)
            await self._admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    async def close(self) -> None:
        for url in list(self.created):
            await self.discard(url)

    async def _admin(self, statement: str) -> None:
        assert self.admin_url is not None
        engine = create_engine(self.admin_url)
        try:
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(statement))
        finally:
            await engine.dispose()


def remove_sqlite_file(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# The two paths ---------------------------------------------------------------------------------

Bidder = Callable[[Core, BidRequest], Awaitable[object]]


async def desk_bid(core: Core, request: BidRequest) -> object:
    return await core.bid_desk.submit(request)


async def naive_bid(core: Core, request: BidRequest) -> object:
    async with core.uow() as uow:
        result = await core.investing.invest(uow, request)
        await uow.commit()
    return result


async def flash_sale(core: Core, seeded: Seed, bid: Bidder, tag: str) -> Run:
    """Every investor bids at once; time it, then check the listing (untimed)."""
    amount = Money.of(BID, core.currency)
    requests = [BidRequest(investor_id, seeded.loan_id, amount, f"{tag}:{investor_id}")
                for investor_id in seeded.investor_ids]
    latencies: list[float] = []
    accepted: list[Decimal] = []
    refusals: Counter[str] = Counter()

    async def one(request: BidRequest) -> None:
        started = time.perf_counter()
        try:
            await bid(core, request)
        except DomainError as exc:
            if isinstance(exc, BidExceedsRemaining):
                refusals[f"{exc.code} (remaining {exc.params.get('remaining')})"] += 1
            else:
                refusals[exc.code] += 1
        else:
            accepted.append(request.amount.amount)
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests))
    wall = time.perf_counter() - started
    async with core.uow(read_only=True) as uow:
        funded = (await uow.conn.execute(
            select(loans.c.funded).where(loans.c.id == seeded.loan_id))).scalar_one()
        live_total = (await uow.conn.execute(
            select(type_coerce(func.coalesce(func.sum(bids.c.amount), 0), Amount))
            .where(bids.c.loan_id == seeded.loan_id, bids.c.status != "refunded"))).scalar_one()
        violations = [str(v) for v in await run_checks(uow)]
    return Run(len(requests), wall, latencies, len(accepted), sum(accepted, Decimal(0)),
               refusals, Decimal(funded), Decimal(live_total), seeded.listing, violations)


async def bench_database(store: Store, args: argparse.Namespace, figures: Figures) -> None:
    """Each run: a desk flash sale, then a naive one, each on a fresh copy of its template."""
    paths: list[tuple[str, Bidder, int]] = [("desk", desk_bid, args.investors),
                                            ("naive", naive_bid, args.naive_investors)]
    for run in range(args.repeat):
        for name, bid, investors in paths:
            url, seeded = await store.fresh(investors)
            core = await store.open(url)
            try:
                result = await flash_sale(core, seeded, bid, f"r{run}")
            finally:
                await core.close()
                await store.discard(url)
            figures.add(f"{store.database}_{name}", result)
            print(f"  {store.database} {name}: run {run + 1}/{args.repeat}: "
                  f"{result.rate:,.0f} bids/s, {result.accepted} accepted", file=sys.stderr)


# Report ----------------------------------------------------------------------------------------

PATHS = {"desk": "bid_desk.submit", "naive": "uow+commit per bid (naive)"}
PREFIX = {"sqlite": "sqlite_", "postgresql": "postgres_"}


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


def number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def rounded(value: float | None, digits: int = 1) -> float | None:
    return round(value, digits) if value is not None else None


def report(figures: Figures, args: argparse.Namespace) -> dict[str, object]:
    print(f"\nflash sale: every investor bids {money(BID)} at once on one listing of a quarter "
          f"of the demand; median of {args.repeat} run(s)")
    if args.naive_investors != args.investors:
        print(f"note: the naive path bids with {args.naive_investors:,} investors (listing "
              f"{money(BID * (args.naive_investors // DEMAND_PER_LISTING))}), the desk with "
              f"{args.investors:,} (listing {money(BID * (args.investors // DEMAND_PER_LISTING))})"
              "; the ratio compares bids/s")
    print(f"{'database':<11}{'path':<29}{'bids':>6}{'bids/s':>9}{'vs naive':>9}{'p50 ms':>8}"
          f"{'p99 ms':>8}{'accepted':>9}{'accepted total':>15}{'refused':>8}{'oversold':>9}"
          "  runs (bids/s)")
    summary: dict[str, object] = {
        "benchmark": "flash_sale", "investors": args.investors,
        "naive_investors": args.naive_investors, "bid": number(BID), "repeat": args.repeat,
        "ratio_target": TARGET_RATIO,
    }
    verdicts = []
    for database in DATABASES:
        desk = figures.median(f"{database}_desk", lambda r: r.rate)
        naive = figures.median(f"{database}_naive", lambda r: r.rate)
        ratio = desk / naive if desk is not None and naive else None
        prefix = PREFIX[database]
        keys = ("desk_bids_per_s", "naive_bids_per_s", "ratio", "p50_ms", "p99_ms",
                "naive_p50_ms", "naive_p99_ms", "accepted", "accepted_total", "refused",
                "oversold", "filled_exactly", "invariants_ok")
        summary.update({f"{prefix}{key}": None for key in keys})
        runs_of = {name: figures.runs.get(f"{database}_{name}", []) for name in PATHS}
        if not runs_of["desk"]:
            continue
        for name, label in PATHS.items():
            runs = runs_of[name]
            if not runs:
                continue
            key = f"{database}_{name}"
            rate = figures.median(key, lambda r: r.rate) or 0.0
            versus = rate / naive if naive else 0.0
            last = runs[-1]
            oversold = max(max(r.oversold for r in runs), Decimal(0))
            print(f"{database:<11}{label:<29}{last.bids:>6,}{rate:>9,.0f}{versus:>8.1f}x"
                  f"{figures.median(key, p50_ms):>8.1f}{figures.median(key, p99_ms):>8.1f}"
                  f"{last.accepted:>9,}{money(last.accepted_total):>15}{last.refused:>8,}"
                  f"{money(oversold):>9}  [{' '.join(f'{r.rate:,.0f}' for r in runs)}]")
        for name in PATHS:
            kinds = {tuple(sorted(r.refusals.items())) for r in runs_of[name]}
            for kind in kinds:
                shown = ", ".join(f"{count:,} x {code}" for code, count in kind) or "none"
                print(f"  {database} {name} refusals: {shown}")
        every = runs_of["desk"] + runs_of["naive"]
        oversold = max(max(r.oversold for r in every), Decimal(0))
        exact = all(r.exact for r in every)
        violations = sorted({v for r in every for v in r.violations})
        verdicts.append(f"oversold: {money(oversold) if oversold else 0} on {database} "
                        f"(desk and naive, every run); listing filled exactly, funded = live "
                        f"bids = accepted: {'yes' if exact else 'NO'}")
        verdicts.append(f"invariants on {database}: "
                        + ("hold" if not violations
                           else f"BROKEN ({len(violations)} violation(s))"))
        verdicts.extend(f"  {v}" for v in violations[:10])
        if ratio is not None:
            target = f": {'meets' if ratio >= TARGET_RATIO else 'MISSES'} the target >= " \
                     f"{TARGET_RATIO:g}x" if database == "sqlite" else ""
            verdicts.append(f"desk / naive on {database} = {ratio:.1f}x bids/s{target}")
        desk_runs = runs_of["desk"]
        summary.update({
            f"{prefix}desk_bids_per_s": rounded(desk),
            f"{prefix}naive_bids_per_s": rounded(naive),
            f"{prefix}ratio": rounded(ratio, 2),
            f"{prefix}p50_ms": rounded(figures.median(f"{database}_desk", p50_ms), 2),
            f"{prefix}p99_ms": rounded(figures.median(f"{database}_desk", p99_ms), 2),
            f"{prefix}naive_p50_ms": rounded(figures.median(f"{database}_naive", p50_ms), 2),
            f"{prefix}naive_p99_ms": rounded(figures.median(f"{database}_naive", p99_ms), 2),
            f"{prefix}accepted": desk_runs[-1].accepted,
            f"{prefix}accepted_total": number(desk_runs[-1].accepted_total),
            f"{prefix}refused": desk_runs[-1].refused,
            f"{prefix}oversold": number(oversold),
            f"{prefix}filled_exactly": exact,
            f"{prefix}invariants_ok": not violations,
        })
    print("\n".join(verdicts))
    return summary


# Entry point -----------------------------------------------------------------------------------

def postgres_url(args: argparse.Namespace) -> str | None:
    if args.no_postgres:
        return None
    for name in ("P2P_BENCH_DATABASE_URL", "P2P_TEST_DATABASE_URL"):
        url = os.environ.get(name, "")
        if url.startswith("postgresql"):
            return url
    return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--investors", type=int, default=2_000,
                        help="bidders on the desk path (default %(default)s)")
    parser.add_argument("--naive-investors", type=int, default=None,
                        help=f"bidders on the naive path, which manages about 100 bids/s "
                             f"(default {NAIVE_INVESTORS} or --investors if fewer)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per figure; the median is reported (default %(default)s)")
    parser.add_argument("--no-postgres", action="store_true",
                        help="skip PostgreSQL even if P2P_BENCH_DATABASE_URL is set")
    args = parser.parse_args(argv)
    if args.naive_investors is None:
        args.naive_investors = min(NAIVE_INVESTORS, args.investors)
    if (min(args.investors, args.naive_investors) < DEMAND_PER_LISTING * 10
            or args.repeat < 1):
        parser.error(f"need --investors and --naive-investors >= {DEMAND_PER_LISTING * 10}, "
                     "--repeat >= 1")
    return args


async def main(args: argparse.Namespace) -> dict[str, object]:
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="p2p-bench-flash-") as tmp:
        folder = Path(tmp)
        await bench_database(Store("sqlite", folder / "sqlite"), args, figures)
        url = postgres_url(args)
        if url is not None:
            store = Store("postgresql", folder / "pg", admin_url=url)
            try:
                await bench_database(store, args, figures)
            finally:
                await store.close()
    return report(figures, args)


if __name__ == "__main__":
    summary = asyncio.run(main(parse_args()))
    print(json.dumps(summary))
