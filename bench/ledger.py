"""Ledger throughput: user-to-user transfers per second through ``core.ledger``.

Figures, each the median of ``--repeat`` runs taken in turn (so drift on a shared machine hits
every figure alike):

* ``raw_sqlite3``: the baseline. Stdlib ``sqlite3`` doing the same row work as one transfer (two
  balance updates and one journal insert, one transaction each) in WAL mode with
  ``synchronous=NORMAL``, on a separate temporary file.
* ``post``: ``Ledger.post``, one transfer per unit of work (one commit each).
* ``post_many``: ``Ledger.post_many`` with ``--batch`` transfers per unit of work.

Both ledger figures run on a temporary SQLite file built by ``core.bootstrap``, and again on a
fresh PostgreSQL database (created and dropped here) when ``P2P_BENCH_DATABASE_URL`` or
``P2P_TEST_DATABASE_URL`` names one. Transfers are built before the clock starts. After the
timed runs, the ledger invariants (``core.invariants.run_checks``) are checked. The last line of
output is one JSON object of the figures.

    .venv/bin/python bench/ledger.py [--transfers N] [--repeat K] [--no-postgres]
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
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from core.adapters.tables import users as users_table
from core.bootstrap import Core, bootstrap
from core.domain.money import Money
from core.invariants import run_checks
from core.ledger import Transfer, user_account
from tests.support import make_settings

TARGET_POST_MANY_VS_RAW = 0.15
FUNDING_MINOR = 100_000_000  # 1,000,000.00 per user: no bench transfer can overdraw anyone
POST_SHARE = 20  # `post` commits every transfer, so it runs 1/20 of --transfers


@dataclass(frozen=True)
class Move:
    """One benchmark transfer: from user index, to user index, amount in minor units."""

    source: int
    target: int
    minor: int


@dataclass
class Figures:
    runs: dict[str, list[float]] = field(default_factory=dict)
    invariants: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, rate: float) -> None:
        self.runs.setdefault(name, []).append(rate)

    def median(self, name: str) -> float | None:
        values = self.runs.get(name)
        return statistics.median(values) if values else None


def plan_moves(count: int, users: int, seed: int) -> list[Move]:
    rng = random.Random(seed)
    moves = []
    for _ in range(count):
        source, target = rng.sample(range(users), 2)
        moves.append(Move(source, target, rng.randint(100, 9_999)))
    return moves


# Baseline: raw sqlite3 -------------------------------------------------------------------------

RAW_SCHEMA = """
CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0));
CREATE TABLE journal (
    id INTEGER PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE,
    debit_id INTEGER NOT NULL REFERENCES accounts (id),
    credit_id INTEGER NOT NULL REFERENCES accounts (id),
    amount INTEGER NOT NULL, posted_at TEXT NOT NULL
);
"""


def raw_sqlite3_run(folder: Path, moves: Sequence[Move], users: int) -> float:
    """Transfers per second of hand-written SQL, one transaction per transfer."""
    path = folder / f"raw-{time.monotonic_ns()}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(RAW_SCHEMA)
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO accounts (id, balance) VALUES (?, ?)",
                         [(i + 1, FUNDING_MINOR * 100) for i in range(users)])
        conn.execute("COMMIT")
        rows = [(m.minor * 100, m.source + 1, m.target + 1, f"raw:{i}")
                for i, m in enumerate(moves)]
        execute = conn.execute
        started = time.perf_counter()
        for amount, source, target, key in rows:
            execute("BEGIN IMMEDIATE")
            execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, source))
            execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, target))
            execute("INSERT INTO journal (idempotency_key, debit_id, credit_id, amount, posted_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (key, source, target, amount, datetime.now(UTC).isoformat()))
            execute("COMMIT")
        elapsed = time.perf_counter() - started
        total, journal = conn.execute(
            "SELECT (SELECT sum(balance) FROM accounts), (SELECT count(*) FROM journal)").fetchone()
        if total != FUNDING_MINOR * 100 * users or journal != len(moves):
            raise AssertionError(f"raw sqlite3 baseline lost money: {total}, {journal} rows")
        return len(moves) / elapsed
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


# The ledger ------------------------------------------------------------------------------------

async def open_users(core: Core, count: int) -> list[str]:
    """Create ``count`` users with their accounts, fund each one, return their wallet codes."""
    async with core.uow() as uow:
        now = uow.clock.now()
        ids = []
        for _ in range(count):
            result = await uow.conn.execute(users_table.insert().values(created_at=now))
            ids.append(int(result.inserted_primary_key[0]))
        for user_id in ids:
            await core.ledger.open_user_accounts(uow, user_id)
        # A top-up debits custody cash (debit-normal, so it grows) and credits the user's wallet.
        funding = Money.of(Decimal(FUNDING_MINOR).scaleb(-2), core.currency)
        results = await core.ledger.post_many(uow, [
            Transfer.simple(f"bench:fund:{user_id}", "bench_top_up",
                            debit_account="platform:custody_cash",
                            credit_account=user_account(user_id, "available"), amount=funding)
            for user_id in ids
        ])
        refused = [r for r in results if r.status != "applied"]
        if refused:
            raise AssertionError(f"funding refused: {refused[0]}")
        await uow.commit()
    return [user_account(user_id, "available") for user_id in ids]


def build_transfers(core: Core, moves: Sequence[Move], wallets: Sequence[str],
                    tag: str) -> list[Transfer]:
    return [
        Transfer.simple(f"bench:{tag}:{i}", "bench_p2p", debit_account=wallets[m.source],
                        credit_account=wallets[m.target],
                        amount=Money.of(Decimal(m.minor).scaleb(-2), core.currency))
        for i, m in enumerate(moves)
    ]


async def post_run(core: Core, transfers: Sequence[Transfer]) -> float:
    """Transfers per second of ``post``, one unit of work and one commit per transfer."""
    started = time.perf_counter()
    for transfer in transfers:
        async with core.uow() as uow:
            await core.ledger.post(uow, transfer)
            await uow.commit()
    return len(transfers) / (time.perf_counter() - started)


async def post_many_run(core: Core, transfers: Sequence[Transfer], batch: int) -> float:
    """Transfers per second of ``post_many``, ``batch`` transfers per unit of work."""
    not_applied = 0
    started = time.perf_counter()
    for start in range(0, len(transfers), batch):
        async with core.uow() as uow:
            results = await core.ledger.post_many(uow, transfers[start:start + batch])
            await uow.commit()
        not_applied += sum(r.status != "applied" for r in results)
    elapsed = time.perf_counter() - started
    if not_applied:
        raise AssertionError(f"post_many did not apply {not_applied} transfer(s)")
    return len(transfers) / elapsed


async def check_invariants(core: Core) -> list[str]:
    async with core.uow(read_only=True) as uow:
        return [str(v) for v in await run_checks(uow)]


async def bench_ledger(database: str, database_url: str, data_dir: Path,
                       args: argparse.Namespace, figures: Figures,
                       baseline: Callable[[Sequence[Move]], None] | None = None) -> None:
    """Time ``post_many`` and ``post`` (and the baseline, if given) ``args.repeat`` times."""
    prefix = "" if database == "sqlite" else "postgres_"
    core = await bootstrap(make_settings(database_url, data_dir), migrate=True)
    try:
        wallets = await open_users(core, args.users)
        for run in range(args.repeat):
            moves = plan_moves(args.transfers, args.users, seed=run)
            if baseline is not None:
                baseline(moves)
            many = build_transfers(core, moves, wallets, f"many:{run}")
            figures.add(f"{prefix}post_many", await post_many_run(core, many, args.batch))
            single = build_transfers(core, moves[:max(1, args.transfers // POST_SHARE)],
                                     wallets, f"one:{run}")
            figures.add(f"{prefix}post", await post_run(core, single))
            print(f"  {database}: run {run + 1}/{args.repeat} done", file=sys.stderr)
        figures.invariants[database] = await check_invariants(core)
    finally:
        await core.close()


async def bench_postgres(admin_url: str, folder: Path, args: argparse.Namespace,
                         figures: Figures) -> None:
    from tests.support import pg_create_database, pg_drop_database

    db = await pg_create_database(admin_url)
    try:
        await bench_ledger("postgresql", db.url, folder / "pg", args, figures)
    finally:
        await pg_drop_database(db)


# Report ----------------------------------------------------------------------------------------

def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def report(figures: Figures, args: argparse.Namespace) -> dict[str, object]:
    raw = figures.median("raw_sqlite3")
    rows = [
        ("sqlite", "raw sqlite3 (baseline)", "raw_sqlite3", args.transfers),
        ("sqlite", "ledger.post", "post", args.transfers // POST_SHARE),
        ("sqlite", f"ledger.post_many ({args.batch}/uow)", "post_many", args.transfers),
        ("postgresql", "ledger.post", "postgres_post", args.transfers // POST_SHARE),
        ("postgresql", f"ledger.post_many ({args.batch}/uow)", "postgres_post_many",
         args.transfers),
    ]
    print(f"\nledger transfers per second: {args.users:,} users, median of {args.repeat} run(s)")
    print(f"{'database':<11}{'path':<30}{'n':>8}{'median/s':>11}{'vs raw':>9}  runs")
    for database, label, name, count in rows:
        median = figures.median(name)
        if median is None:
            continue
        runs = " ".join(f"{r:,.0f}" for r in figures.runs[name])
        versus = ratio(median, raw)
        shown = f"{versus:.3f}" if versus is not None else "-"
        print(f"{database:<11}{label:<30}{count:>8,}{median:>11,.0f}{shown:>9}  [{runs}]")
    post_many_vs_raw = ratio(figures.median("post_many"), raw)
    if post_many_vs_raw is not None:
        verdict = "meets" if post_many_vs_raw >= TARGET_POST_MANY_VS_RAW else "MISSES"
        print(f"post_many / raw sqlite3 = {post_many_vs_raw:.3f}: {verdict} the target "
              f">= {TARGET_POST_MANY_VS_RAW}")
    for database, violations in figures.invariants.items():
        state = "hold" if not violations else f"BROKEN ({len(violations)} violation(s))"
        print(f"invariants on {database}: {state}")
        for violation in violations[:10]:
            print(f"  {violation}")

    def rounded(value: float | None, digits: int = 1) -> float | None:
        return round(value, digits) if value is not None else None

    return {
        "benchmark": "ledger",
        "transfers": args.transfers,
        "post_transfers": args.transfers // POST_SHARE,
        "users": args.users,
        "batch": args.batch,
        "repeat": args.repeat,
        "raw_sqlite3_tps": rounded(raw),
        "post_tps": rounded(figures.median("post")),
        "post_many_tps": rounded(figures.median("post_many")),
        "post_vs_raw": rounded(ratio(figures.median("post"), raw), 4),
        "post_many_vs_raw": rounded(post_many_vs_raw, 4),
        "post_many_target": TARGET_POST_MANY_VS_RAW,
        "postgres_post_tps": rounded(figures.median("postgres_post")),
        "postgres_post_many_tps": rounded(figures.median("postgres_post_many")),
        "invariants_ok": {db: not v for db, v in figures.invariants.items()},
    }


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
    parser.add_argument("--transfers", type=int, default=4_000,
                        help="transfers per run for raw sqlite3 and post_many "
                             f"(post runs 1/{POST_SHARE} of them); default %(default)s")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per figure; the median is reported (default %(default)s)")
    parser.add_argument("--users", type=int, default=1_000, help="default %(default)s")
    parser.add_argument("--batch", type=int, default=500,
                        help="transfers per post_many unit of work (default %(default)s)")
    parser.add_argument("--no-postgres", action="store_true",
                        help="skip PostgreSQL even if P2P_BENCH_DATABASE_URL is set")
    args = parser.parse_args(argv)
    if args.transfers < POST_SHARE or args.repeat < 1 or args.users < 2 or args.batch < 1:
        parser.error(f"need --transfers >= {POST_SHARE}, --repeat >= 1, --users >= 2, "
                     "--batch >= 1")
    return args


async def main(args: argparse.Namespace) -> dict[str, object]:
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="p2p-bench-ledger-") as tmp:
        folder = Path(tmp)

        def baseline(moves: Sequence[Move]) -> None:
            figures.add("raw_sqlite3", raw_sqlite3_run(folder, moves, args.users))

        await bench_ledger("sqlite", f"sqlite+aiosqlite:///{folder / 'ledger.db'}", folder, args,
                           figures, baseline)
        url = postgres_url(args)
        if url is not None:
            await bench_postgres(url, folder, args, figures)
    return report(figures, args)


if __name__ == "__main__":
    summary = asyncio.run(main(parse_args()))
    print(json.dumps(summary))
