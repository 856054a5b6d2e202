"""Daily job: one business day (``core.daily.run(day)``) over 10,000 and 100,000 active loans.

For each size it seeds one SQLite template, then runs the day on fresh copies of it, each in a
child process of its own (so ``ru_maxrss`` is the job's, not the seeding's): ``--repeat`` timed
runs, then one run under ``tracemalloc`` for the peak of Python allocations (tracing slows the
job, so its wall time is not a figure). Per size it prints seconds (median), seconds per 1,000
loans, the growth against the smallest size, the ``ru_maxrss`` delta over the job, the traced
peak, each step's seconds and the job's own report; then whether time grows at most 1.1x as
fast as the loans (11x for 10x) and whether a 100,000-loan day takes under two minutes. After
every run (untimed) ``core.invariants.run_checks`` must find nothing.

Seeding is a bench-only bulk path, untimed and not how loans come to exist: a state the services
accept, written directly with SQLAlchemy Core in chunks (one executemany per table and chunk).
The core is built by ``core.bootstrap`` (``migrate=True``, ``tests.support.make_settings``) with a
``ManualClock`` at 02:00 Asia/Shanghai on the business day. Per loan: a verified borrower and
their ledger accounts (rows, as ``Ledger.open_user_accounts`` would write them), an approved
application, and a ``consumer`` loan of 5,000-50,000 over 12 months (equal installments, a
grade's 12-month rate), disbursed 1-365 days before the day. Installments come from
``build_schedule``; those due before the day are paid, the rest due. 5% of the loans are past due
by 1-100 days instead: installments unpaid since then, ``overdue`` with penalties through the day
before (``penalty_for_days``), the loan ``overdue`` with its days past due; 10% of those hold a
promise to pay. Bids: 1-4 of 1,000 investors per loan, adding up to it; the principal and the
interest (less the management fee) already paid are split over them with ``money.split``, so
claims add up to the outstanding principal. The collections plan's earlier stages are recorded
as done (reminders for paid installments, every stage already passed for unpaid ones, with their
tasks and escalations), so the day does one day's work, not a catch-up. Money goes through the
ledger (``Ledger.post_many``, custody cash to the borrower): 85% of the borrowers with an
installment due on the day can pay it, and 20% of those past due can pay everything owed (they
are cured); the others are short. Disbursements and past repayments are not replayed through the
ledger, the repayments table or the outbox, so those tables start empty.

    .venv/bin/python bench/daily_job.py [--sizes 10000,100000] [--repeat K] [--no-trace]
                                         [--profile]
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
import cProfile
import functools
import gc
import io
import json
import os
import pstats
import random
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, func, select

from core.adapters.tables import (
    bids,
    collection_actions,
    installments,
    ledger_accounts,
    loan_applications,
    loans,
    outbox,
    repayments,
    servicing_tasks,
    users,
)
from core.bootstrap import Core, bootstrap
from core.domain.clock import ManualClock
from core.domain.money import Money, split
from core.domain.overdue import penalty_for_days
from core.domain.schedule import add_months, build_schedule
from core.invariants import run_checks
from core.ledger import Transfer, user_account
from core.services.lending.common import pct
from tests.support import make_settings

DAY = date(2025, 6, 16)  # the business day measured (a Monday)
INVESTORS = 1_000
TERM, METHOD, PRODUCT = 12, "equal_installment", "consumer"
GRADES = ("AA", "A", "B", "C", "D", "E")
PAYING_SHARE = 0.85  # of the borrowers with an installment due on the day
OVERDUE_SHARE = 0.05  # of the loans, past due by 1..MAX_DPD days on the day
MAX_DPD = 100
CURED_SHARE = 0.20  # of the loans past due, whose borrower can pay everything owed
PROMISE_SHARE = 0.10  # of the loans overdue, with a promise to pay pending
LOANS_PER_CHUNK = 5_000
SLACK = 1.1  # time may grow at most 1.1x as fast as the loans (11x for 10x)
TARGET_SIZE, TARGET_SECONDS = 100_000, 120.0
STEP_METHODS = {"expire_listings": "_expire", "auto_invest": "_match",
                "auto_debit": "_auto_debit", "overdue": "_overdue", "promises": "_promises",
                "collections": "_collections", "use_of_funds": "_use_of_funds"}


def at(day: date, hour: int, core: Core) -> datetime:
    return datetime.combine(day, clock_time(hour), core.clock.tz)


async def open_core(url: str, data_dir: Path, *, migrate: bool = True) -> Core:
    """The core on ``url`` with its clock at 02:00 on the business day (the job's hour)."""
    settings = make_settings(url, data_dir)
    clock = ManualClock(datetime.combine(DAY, clock_time(2), settings.tz), settings.tz)
    return await bootstrap(settings, clock=clock, migrate=migrate)


# Seeding (bench only) --------------------------------------------------------------------------

@dataclass
class Seeded:
    loans: int = 0
    installments: int = 0
    bids: int = 0
    due_today: int = 0  # current loans with an installment due on the day
    can_pay: int = 0  # ... whose borrower can pay it
    past_due: int = 0  # loans with an installment unpaid for 1-100 days on the day
    cured: int = 0  # ... whose borrower can pay everything owed
    promises: int = 0
    actions: int = 0  # collection stages already done
    tasks: int = 0
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)


class Seeder:
    """Builds each chunk of loans in memory, then writes it with one executemany per table."""

    def __init__(self, core: Core, rng: random.Random) -> None:
        self.core = core
        self.rng = rng
        self.currency = core.currency
        servicing, lending = core.settings.servicing, core.settings.lending
        self.plan = servicing.collections_plan
        self.penalty_rate = pct(servicing.penalty_daily_pct)
        self.cap_share = pct(servicing.penalty_cap_pct)
        product = lending.products[PRODUCT]
        self.service_fee = pct(product.service_fee_pct)
        self.management_fee = pct(product.management_fee_pct)
        self.protection = pct(lending.protection_contribution_pct)
        self.agreement = lending.agreement_version
        self.schedules: dict[tuple[Decimal, Decimal], list[tuple[Decimal, Decimal]]] = {}
        self.funding: list[tuple[int, Decimal]] = []
        self.seeded = Seeded()

    def money(self, value: Decimal) -> Money:
        return Money.rounded(value, self.currency)

    def schedule(self, amount: Decimal, rate: Decimal) -> list[tuple[Decimal, Decimal]]:
        """(principal, interest) per period; amounts do not depend on the start date."""
        key = (amount, rate)
        if key not in self.schedules:
            lines = build_schedule(Money.of(amount, self.currency), rate, TERM, METHOD,
                                   date(2000, 1, 1))
            self.schedules[key] = [(i.principal.amount, i.interest.amount) for i in lines]
        return self.schedules[key]

    def person(self, user_id: int, **role: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        since = at(DAY - timedelta(days=400), 10, self.core)
        user = {"id": user_id, "created_at": since, "status": "active", "registered_at": since,
                "kyc_status": "verified", "is_investor": False, "is_borrower": False, **role}
        accounts = [{"code": user_account(user_id, purse), "kind": f"user_{purse}",
                     "normal_side": "credit", "allow_negative": False,
                     "currency": self.currency.code, "owner_user_id": user_id,
                     "balance": Decimal(0), "created_at": since}
                    for purse in ("available", "frozen")]
        return user, accounts

    def start_date(self, past_due: bool) -> date:
        while True:  # disbursed 1-365 days ago (32+ if past due), last period not yet paid
            start = DAY - timedelta(days=self.rng.randint(32 if past_due else 1, 365))
            if add_months(start, TERM) >= DAY:
                return start

    def loan(self, rows: dict[Table, list[dict[str, Any]]], loan_id: int, borrower_id: int,
             investor_ids: list[int]) -> None:
        rng, core, seeded = self.rng, self.core, self.seeded
        past_due = rng.random() < OVERDUE_SHARE
        start = self.start_date(past_due)
        amount = Decimal(rng.randrange(5, 51) * 1000)
        grade = rng.choice(GRADES)
        rate = core.policy.rate(grade, TERM)
        dues = [add_months(start, k) for k in range(1, TERM + 1)]
        if past_due:
            dpd = rng.randint(1, MAX_DPD)
            past = [k for k, due in enumerate(dues) if due < DAY]
            first_unpaid = next((k for k in past if (DAY - dues[k]).days <= dpd), past[-1])
        else:
            first_unpaid = next(k for k, due in enumerate(dues) if due >= DAY)
        yesterday = DAY - timedelta(days=1)
        repaid = income = owed = Decimal(0)
        loan_dpd = 0
        escalation: str | None = None
        tasks: dict[tuple[str, str], date] = {}
        for k, ((principal, interest), due) in enumerate(zip(self.schedule(amount, rate), dues,
                                                             strict=True)):
            paid = k < first_unpaid
            line = {"loan_id": loan_id, "period": k + 1, "due_date": due, "principal": principal,
                    "interest": interest, "paid_principal": Decimal(0),
                    "paid_interest": Decimal(0), "penalty": Decimal(0),
                    "paid_penalty": Decimal(0), "status": "due", "paid_at": None,
                    "penalty_through": None}
            if paid:
                line.update(paid_principal=principal, paid_interest=interest, status="paid",
                            paid_at=at(due, 2, core))
                repaid += principal
                income += interest - self.money(interest * self.management_fee).amount
            elif due < yesterday:  # overdue since the day before's job
                whole = self.money(principal + interest)
                penalty = penalty_for_days(whole, (yesterday - due).days, self.penalty_rate,
                                           whole.times(self.cap_share), self.money(Decimal(0)))
                line.update(penalty=penalty.amount, penalty_through=yesterday, status="overdue")
                loan_dpd = max(loan_dpd, (yesterday - due).days)
            if not paid and due <= DAY:
                owed += principal + interest + line["penalty"]
            rows[installments].append(line)
            for stage in self.plan:  # stages the plan already ran on earlier days
                on = due + timedelta(days=stage.offset_days)
                if on >= DAY or (paid and stage.offset_days >= 0):
                    continue  # (paid on the due date, before the plan ran)
                rows[collection_actions].append({
                    "loan_id": loan_id, "period": k + 1, "stage": stage.name,
                    "action": stage.action, "business_date": on, "borrower_id": borrower_id,
                    "outcome": "created" if stage.action == "task" else "queued",
                    "at": at(on, 2, core)})
                if stage.action == "task":
                    tasks.setdefault(("collections", stage.name), on)
                elif stage.action == "write_off_review":
                    tasks.setdefault(("write_off_review", stage.name), on)
                elif stage.action == "escalation":
                    escalation = "outsourced"
        status = "overdue" if loan_dpd > 0 else "active"
        if past_due:
            seeded.past_due += 1
            if rng.random() < CURED_SHARE:
                seeded.cured += 1
                self.funding.append((borrower_id, owed + rng.randrange(0, 100)))
        elif dues[first_unpaid] == DAY:
            seeded.due_today += 1
            if rng.random() < PAYING_SHARE:
                seeded.can_pay += 1
                self.funding.append((borrower_id, owed + rng.randrange(0, 100)))
        for (kind, stage_name), on in tasks.items():
            rows[servicing_tasks].append({  # every row has every key: executemany
                "kind": kind, "loan_id": loan_id, "borrower_id": borrower_id, "stage": stage_name,
                "status": "open", "due_date": on, "outcome": None, "promise_date": None,
                "promise_amount": None, "promise_status": None, "created_at": at(on, 2, core)})
        if status == "overdue" and rng.random() < PROMISE_SHARE:
            promised = DAY + timedelta(days=rng.randint(-1, 10))  # older ones were settled
            rows[servicing_tasks].append({
                "kind": "collections", "loan_id": loan_id, "borrower_id": borrower_id,
                "stage": f"P{promised:%m%d}", "status": "open", "due_date": promised,
                "outcome": "promise_to_pay", "promise_date": promised, "promise_amount": owed,
                "promise_status": "pending", "created_at": at(DAY - timedelta(days=2), 11, core)})
            seeded.promises += 1
        disbursed = at(start, 14, core)
        listed = disbursed - timedelta(days=2)
        money_amount = Money.of(amount, self.currency)
        terms = {"product": PRODUCT, "amount": amount, "term_months": TERM, "method": METHOD,
                 "purpose": "daily job bench", "facts": {}, "grade": grade,
                 "risk_level": core.policy.risk_levels[grade], "annual_rate": rate}
        rows[loan_applications].append({
            "id": loan_id, "user_id": borrower_id, "status": "approved",
            "created_at": listed - timedelta(days=1), "decided_at": listed, **terms})
        investors = rng.sample(investor_ids, rng.randint(1, 4))
        weights = [rng.randint(1, 4) for _ in investors]
        bid_amounts = [part.amount * 100 for part in split(Money.of(amount / 100, self.currency),
                                                           weights)]
        principal_parts = split(self.money(repaid), bid_amounts)
        income_parts = split(self.money(income), bid_amounts)
        rows[loans].append({
            "id": loan_id, "application_id": loan_id, "borrower_id": borrower_id, **terms,
            "status": status, "funded": amount, "investors": len(investors),
            "listed_at": listed, "expires_at": listed + timedelta(hours=72),
            "funded_at": disbursed - timedelta(hours=1), "disbursed_at": disbursed,
            "service_fee": money_amount.times(self.service_fee).amount,
            "protection_fee": money_amount.times(self.protection).amount,
            "principal_outstanding": amount - repaid, "principal_repaid": repaid,
            "agreement_version": self.agreement, "dpd": loan_dpd, "escalation": escalation})
        rows[bids].extend({
            "loan_id": loan_id, "investor_id": investor, "amount": bid, "status": "active",
            "request_key": f"bench:{loan_id}:{n}", "created_at": listed + timedelta(hours=1),
            "principal_repaid": p.amount, "interest_received": i.amount}
            for n, (investor, bid, p, i) in enumerate(zip(investors, bid_amounts,
                                                          principal_parts, income_parts,
                                                          strict=True)))


ORDER = (users, ledger_accounts, loan_applications, loans, installments, bids,
         collection_actions, servicing_tasks)  # foreign keys first


async def write(core: Core, rows: dict[Table, list[dict[str, Any]]]) -> None:
    async with core.uow() as uow:
        for table in ORDER:
            if rows.get(table):
                await uow.conn.execute(table.insert(), rows[table])
        await uow.commit()


async def seed(core: Core, size: int, rng: random.Random) -> Seeded:
    """Investors, then borrowers and their loans chunk by chunk, then the borrowers' money."""
    seeder = Seeder(core, rng)
    async with core.uow(read_only=True) as uow:
        base_user = (await uow.conn.execute(select(func.max(users.c.id)))).scalar() or 0
        base_loan = max([(await uow.conn.execute(select(func.max(t.c.id)))).scalar() or 0
                         for t in (loans, loan_applications)])
    rows: dict[Table, list[dict[str, Any]]] = defaultdict(list)
    investor_ids = list(range(base_user + 1, base_user + INVESTORS + 1))
    for user_id in investor_ids:
        user, accounts = seeder.person(user_id, is_investor=True)
        rows[users].append(user)
        rows[ledger_accounts].extend(accounts)
    await write(core, rows)
    for first in range(0, size, LOANS_PER_CHUNK):
        rows = defaultdict(list)
        for n in range(first, min(size, first + LOANS_PER_CHUNK)):
            borrower_id = base_user + INVESTORS + 1 + n
            user, accounts = seeder.person(borrower_id, is_borrower=True)
            rows[users].append(user)
            rows[ledger_accounts].extend(accounts)
            seeder.loan(rows, base_loan + 1 + n, borrower_id, investor_ids)
        await write(core, rows)
        seeded = seeder.seeded
        seeded.loans += len(rows[loans])
        seeded.installments += len(rows[installments])
        seeded.bids += len(rows[bids])
        seeded.actions += len(rows[collection_actions])
        seeded.tasks += len(rows[servicing_tasks])
    async with core.uow() as uow:
        posted = await core.ledger.post_many(uow, [
            Transfer.simple(f"bench:fund:{borrower_id}", "bench_top_up",
                            debit_account="platform:custody_cash",
                            credit_account=user_account(borrower_id, "available"),
                            amount=Money.of(amount, core.currency))
            for borrower_id, amount in seeder.funding])
        refused = [p for p in posted if p.status != "applied"]
        if refused:
            raise AssertionError(f"funding refused: {refused[0]}")
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        seeder.seeded.violations = [str(v) for v in await run_checks(uow)]
    return seeder.seeded


async def seed_template(path: Path, size: int) -> Seeded:
    started = time.perf_counter()
    core = await open_core(f"sqlite+aiosqlite:///{path}", path.parent / "data")
    try:
        seeded = await seed(core, size, random.Random(size))
    finally:
        await core.close()  # the last connection closes: the WAL is checkpointed
    seeded.seconds = time.perf_counter() - started
    return seeded


# One run, in a child process -------------------------------------------------------------------

def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def time_steps(core: Core, seconds: dict[str, float]) -> None:
    """Wrap the job's step methods on this instance to time each one (bench instrumentation)."""
    job = core.daily
    for step, name in STEP_METHODS.items():
        method = getattr(job, name, None)
        if method is None:
            continue

        @functools.wraps(method)
        async def timed(day: date, _method: Callable[[date], Awaitable[Any]] = method,
                        _step: str = step) -> Any:
            started = time.perf_counter()
            try:
                return await _method(day)
            finally:
                seconds[_step] = time.perf_counter() - started

        setattr(job, name, timed)


async def one_run(url: str, data_dir: Path, mode: str) -> dict[str, Any]:
    """Run the business day once; ``mode`` is ``time``, ``trace`` or ``profile``."""
    core = await open_core(url, data_dir, migrate=False)  # a copy of a migrated template
    steps: dict[str, float] = {}
    try:
        time_steps(core, steps)
        gc.collect()
        rss_before = max_rss_mb()
        profiler = cProfile.Profile() if mode == "profile" else None
        if mode == "trace":
            tracemalloc.start()
        if profiler is not None:
            profiler.enable()
        started = time.perf_counter()
        report = await core.daily.run(DAY)
        wall = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
        peak = tracemalloc.get_traced_memory()[1] / 2**20 if mode == "trace" else None
        tracemalloc.stop()
        rss = max_rss_mb() - rss_before
        async with core.uow(read_only=True) as uow:
            violations = [str(v) for v in await run_checks(uow)]
            statuses = dict((await uow.conn.execute(
                select(loans.c.status, func.count()).group_by(loans.c.status))).all())
            paid_today = (await uow.conn.execute(select(func.count()).where(
                repayments.c.business_date == DAY))).scalar_one()
            queued = (await uow.conn.execute(select(func.count()).select_from(outbox))
                      ).scalar_one()
            actions_today = (await uow.conn.execute(select(func.count()).where(
                collection_actions.c.business_date == DAY))).scalar_one()
    finally:
        await core.close()
    profile = None
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats("/core/", 30)  # the product's functions
        stats.sort_stats("tottime").print_stats(30)
        profile = out.getvalue()
    return {"wall": wall, "steps": steps, "report": report, "rss_mb": rss,
            "max_rss_mb": max_rss_mb(), "peak_mb": peak,
            "violations": violations, "loans_by_status": statuses,
            "repayments_today": paid_today, "outbox": queued, "actions_today": actions_today,
            "profile": profile}


def child(path: Path, mode: str, size: int = 0) -> dict[str, Any]:
    """Seed ``path`` or run the day on it in a fresh interpreter; its last line is JSON."""
    done = subprocess.run([sys.executable, __file__, "--child", str(path), "--mode", mode,
                           "--sizes", str(size or 100)],
                          check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_copy(template: Path, mode: str) -> dict[str, Any]:
    """Run the day on a fresh copy of the template."""
    copy = template.with_name(f"run-{mode}.db")
    shutil.copyfile(template, copy)
    try:
        return child(copy, mode)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)


# Report ----------------------------------------------------------------------------------------

@dataclass
class Size:
    loans: int
    seeded: Seeded
    runs: list[dict[str, Any]] = field(default_factory=list)
    traced: dict[str, Any] | None = None

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs)

    def step(self, name: str) -> float:
        return statistics.median(r["steps"].get(name, 0.0) for r in self.runs)

    @property
    def violations(self) -> list[str]:
        every = self.runs + ([self.traced] if self.traced else [])
        return sorted({v for r in every for v in r["violations"]} | set(self.seeded.violations))


def rounded(value: float | None, digits: int = 2) -> float | None:
    return round(value, digits) if value is not None else None


def report(sizes: list[Size], args: argparse.Namespace) -> dict[str, object]:
    first = sizes[0]
    print(f"\ndaily job: business day {DAY} on SQLite; seconds are the median of each size's "
          "timed runs")
    print(f"{'loans':>9}{'seconds':>9}{'s/1k loans':>11}{'growth':>8}{'rss +MB':>9}"
          f"{'max rss MB':>11}{'traced MB':>10}{'seeded s':>9}  runs (s)")
    for s in sizes:
        wall = s.median("wall")
        growth = wall / first.median("wall")
        peak = s.traced["peak_mb"] if s.traced else None
        runs = " ".join(f"{r['wall']:.2f}" for r in s.runs)
        print(f"{s.loans:>9,}{wall:>9.2f}{wall / s.loans * 1000:>11.3f}{growth:>7.1f}x"
              f"{s.median('rss_mb'):>9.0f}{s.median('max_rss_mb'):>11.0f}"
              f"{peak if peak is not None else float('nan'):>10.0f}"
              f"{s.seeded.seconds:>9.0f}  [{runs}]")
    print("\nseconds per step (median):")
    print(f"{'loans':>9}" + "".join(f"{name:>16}" for name in STEP_METHODS))
    for s in sizes:
        print(f"{s.loans:>9,}" + "".join(f"{s.step(name):>16.2f}" for name in STEP_METHODS))
    for s in sizes:
        seeded, last = s.seeded, s.runs[-1]
        print(f"\n{s.loans:,} loans: seeded {seeded.installments:,} installments, "
              f"{seeded.bids:,} bids, {seeded.actions:,} collection stages done, "
              f"{seeded.tasks:,} tasks; due on the day {seeded.due_today:,} "
              f"({seeded.can_pay:,} can pay), past due {seeded.past_due:,} "
              f"({seeded.cured:,} can pay all), promises {seeded.promises:,}")
        print(f"  job report: {json.dumps(last['report'])}")
        print(f"  after: loans {json.dumps(last['loans_by_status'])}, repayments "
              f"{last['repayments_today']:,}, collection actions {last['actions_today']:,}, "
              f"outbox {last['outbox']:,}")
        print(f"  invariants: {'hold' if not s.violations else 'BROKEN'} "
              f"({len(s.violations)} violation(s))")
        for v in s.violations[:10]:
            print(f"    {v}")
    summary: dict[str, object] = {"benchmark": "daily_job", "day": DAY.isoformat(),
                                  "sizes": [s.loans for s in sizes],
                                  "repeat": {str(s.loans): len(s.runs) for s in sizes}}
    for s in sizes:
        summary[f"loans_{s.loans}_s"] = rounded(s.median("wall"))
    last = sizes[-1]
    ratio = last.median("wall") / first.median("wall")
    target = SLACK * last.loans / first.loans
    summary.update(ratio=rounded(ratio), ratio_target=rounded(target))
    for s in sizes:
        summary[f"peak_mb_{s.loans}"] = rounded(s.traced["peak_mb"] if s.traced else None, 1)
        summary[f"rss_mb_{s.loans}"] = rounded(s.median("rss_mb"), 1)
        summary[f"max_rss_mb_{s.loans}"] = rounded(s.median("max_rss_mb"), 1)
    for s in sizes:
        summary[f"steps_{s.loans}_s"] = {name: rounded(s.step(name), 3)
                                         for name in STEP_METHODS}
        summary[f"report_{s.loans}"] = s.runs[-1]["report"]
    summary["invariants_ok"] = all(not s.violations for s in sizes)
    summary["load_avg"] = [round(x, 2) for x in args.load + list(os.getloadavg()[:1])]
    print(f"\nload average (1 min) at the start and the end: {summary['load_avg']} "
          f"on {os.cpu_count()} CPU(s); others' work on the machine slows every figure")
    if len(sizes) > 1:
        print(f"time {last.loans:,} / {first.loans:,} loans = {ratio:.1f}x for "
              f"{last.loans / first.loans:g}x the loans: "
              f"{'meets' if ratio <= target else 'MISSES'} the target <= {target:g}x")
    for s in sizes:
        if s.loans == TARGET_SIZE:
            wall = s.median("wall")
            print(f"a {TARGET_SIZE:,}-loan day in {wall:.1f} s: "
                  f"{'meets' if wall < TARGET_SECONDS else 'MISSES'} the target "
                  f"< {TARGET_SECONDS:g} s")
    return summary


# Entry point -----------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10000,100000",
                        help="active loans per run, comma-separated (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="timed runs per size; the median is reported (default 3 below "
                             "50,000 loans, 1 from there: a 100,000-loan day is slow)")
    parser.add_argument("--no-trace", action="store_true",
                        help="skip the tracemalloc run (peak_mb is null)")
    parser.add_argument("--profile", action="store_true",
                        help="also run the smallest size under cProfile and print the top calls")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="time", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error("--sizes takes numbers, e.g. 10000,100000")
    if not args.sizes or min(args.sizes) < 100 or (args.repeat is not None and args.repeat < 1):
        parser.error("need --sizes of at least 100 loans and --repeat >= 1")
    return args


def repeat_for(args: argparse.Namespace, size: int) -> int:
    return args.repeat if args.repeat is not None else (3 if size < 50_000 else 1)


def main(args: argparse.Namespace) -> dict[str, object]:
    args.load = list(os.getloadavg()[:1])
    sizes: list[Size] = []
    with tempfile.TemporaryDirectory(prefix="p2p-bench-daily-") as tmp:
        for count in args.sizes:
            template = Path(tmp) / f"template-{count}.db"
            seeded = Seeded(**child(template, "seed", count))  # keeps this process small
            print(f"  seeded {count:,} loans in {seeded.seconds:.1f} s "
                  f"({template.stat().st_size / 2**20:.0f} MB), "
                  f"{len(seeded.violations)} violation(s)", file=sys.stderr)
            size = Size(count, seeded)
            for run in range(repeat_for(args, count)):
                size.runs.append(run_copy(template, "time"))
                print(f"  {count:,} loans: run {run + 1}: {size.runs[-1]['wall']:.2f} s",
                      file=sys.stderr)
            if not args.no_trace:
                size.traced = run_copy(template, "trace")
                print(f"  {count:,} loans: traced run {size.traced['wall']:.2f} s, peak "
                      f"{size.traced['peak_mb']:.0f} MB", file=sys.stderr)
            if args.profile and count == args.sizes[0]:
                profiled = run_copy(template, "profile")
                print(f"\ncProfile of the day over {count:,} loans "
                      f"({profiled['wall']:.2f} s under the profiler):\n{profiled['profile']}")
            template.unlink()
            sizes.append(size)
    return report(sizes, args)


def run_as_child(args: argparse.Namespace) -> dict[str, Any]:
    path = Path(args.child)
    if args.mode == "seed":
        return asdict(asyncio.run(seed_template(path, args.sizes[0])))
    return asyncio.run(one_run(f"sqlite+aiosqlite:///{path}", path.parent / "data", args.mode))


if __name__ == "__main__":
    arguments = parse_args()
    outcome = run_as_child(arguments) if arguments.child else main(arguments)
    print(json.dumps(outcome, default=str))
