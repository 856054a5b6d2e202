#!/usr/bin/env python3
"""P2P Desk command line: ``python run.py [serve|migrate|check] ...`` (``serve`` by default)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import date

from config.secrets import ensure_secrets
from config.settings import ConfigError, Settings, load_settings
from core.domain.errors import DomainError

log = logging.getLogger("p2p")


def _settings() -> Settings:
    return ensure_secrets(load_settings())


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bots.server import create_app
    from core.bootstrap import bootstrap

    settings = _settings()
    host = args.host or settings.http_host
    port = args.port or settings.http_port

    if settings.is_sqlite and settings.demo_data:
        asyncio.run(_first_start(settings, host, port))

    async def app_factory() -> web.Application:
        core = await bootstrap(settings)
        return create_app(core)

    log.info("starting on http://%s:%d/ (health: /healthz)", host, port)
    web.run_app(app_factory(), host=host, port=port, print=None, shutdown_timeout=10)
    return 0


async def _first_start(settings: Settings, host: str, port: int) -> None:
    """An empty embedded database gets a demo platform, and a manager login to look at it."""
    import secrets
    from pathlib import Path

    if await _user_count(settings) > 0:
        return
    log.info("first start: seeding a demo platform (%d users, %d days; P2P_DEMO_DATA=false "
             "turns this off)", settings.demo_users, settings.demo_days)
    report = await _seed(settings, users=settings.demo_users, days=settings.demo_days, seed=1,
                         end=None)
    log.info("demo data: %s", report.summary())
    password = secrets.token_urlsafe(12)
    from core.bootstrap import bootstrap
    from core.services.staff import StaffService

    core = await bootstrap(settings)
    try:
        async with core.uow() as uow:
            await StaffService(settings.support).add(uow, "demo.manager", password, "manager",
                                                     "Demo manager")
            await uow.commit()
    finally:
        await core.close()
    where = Path(settings.data_dir) / "demo-login.txt"
    where.write_text(f"demo.manager {password}\n", encoding="utf-8")
    where.chmod(0o600)
    log.info("dashboards: http://%s:%d/dashboards/ - sign in as demo.manager with the "
             "password in %s", host, port, where)


async def _user_count(settings: Settings) -> int:
    from sqlalchemy import func, select

    from core.adapters.tables import users
    from core.bootstrap import bootstrap

    core = await bootstrap(settings)
    try:
        async with core.uow(read_only=True) as uow:
            return int((await uow.conn.execute(
                select(func.count()).select_from(users))).scalar_one())
    finally:
        await core.close()


async def _seed(settings: Settings, *, users: int, days: int, seed: int, end: date | None):
    """Run the simulator on a manual clock, with sandboxes that answer at once (the bank
    settles when the simulation says so), the chat side through the dialog engine."""
    from datetime import datetime

    from tqdm import tqdm

    from bots.dialog.simulated import EngineChat
    from core.bootstrap import bootstrap
    from core.domain.clock import ManualClock
    from core.simulator import simulate

    sandbox = settings.sandbox.model_copy(update={
        "bank_auto_settle": False, "bank_delay_seconds": 0.0, "bank_duplicate_rate": 0.0,
        "bank_failure_rate": 0.0, "sms_failure_rate": 0.0, "identity_delay_seconds": 0.0,
        "identity_outcome": "by_name"})
    settings = settings.model_copy(update={"sandbox": sandbox})
    clock = ManualClock(datetime.now(settings.tz), settings.tz)
    core = await bootstrap(settings, clock=clock)
    chat = EngineChat(core)
    logging.getLogger("core").setLevel(logging.WARNING)  # the bar shows progress
    logging.getLogger("bots").setLevel(logging.WARNING)
    try:
        with tqdm(total=days, unit="day", desc="seeding", disable=None) as bar:
            return await simulate(core, users=users, days=days, seed=seed, end=end, chat=chat,
                                  progress=bar.update)
    finally:
        logging.getLogger("core").setLevel(logging.NOTSET)
        logging.getLogger("bots").setLevel(logging.NOTSET)
        await chat.close()
        await core.close()


def cmd_seed(args: argparse.Namespace) -> int:
    """Fill an empty database with a simulated history (the same seed, the same data)."""
    from datetime import datetime

    settings = _settings()
    if args.end is not None and args.end >= datetime.now(settings.tz).date():
        print("seed: --end must be a day before today (the history happens in the past)",
              file=sys.stderr)
        return 2

    async def run() -> int:
        found = await _user_count(settings)
        if found:
            print(f"seed: the database already has {found} users; seed fills an empty one "
                  "(use a new P2P_DATABASE_URL, or delete var/p2p.db)", file=sys.stderr)
            return 1
        report = await _seed(settings, users=args.users, days=args.days, seed=args.seed,
                             end=args.end)
        print(report.summary())
        return 0

    return asyncio.run(run())


def cmd_telegram_sandbox(args: argparse.Namespace) -> int:
    from bots.telegram.sandbox import run_sandbox

    settings = _settings()
    if args.port:
        settings = settings.model_copy(update={"http_port": args.port})
    logging.getLogger().setLevel(logging.WARNING)  # keep the terminal for the chat
    asyncio.run(run_sandbox(settings, api_port=args.api_port, language=args.language))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from core.adapters import migrate
    from core.adapters.db import create_engine

    settings = _settings()

    async def run() -> None:
        engine = create_engine(settings.db_url)
        try:
            await migrate.upgrade(engine, args.revision)
        finally:
            await engine.dispose()

    asyncio.run(run())
    log.info("schema is at %s", args.revision)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from core.bootstrap import bootstrap
    from core.invariants import CHECKS, run_checks
    from core.services.reconcile import reconcile

    settings = _settings()

    async def run() -> int:
        core = await bootstrap(settings)
        try:
            async with core.uow(read_only=True) as uow:
                violations = [str(v) for v in await run_checks(uow)]
            if args.reconcile:
                found = await reconcile(core.uow, core.bank, args.reconcile)
                violations += [f"reconcile {args.reconcile}: {m}" for m in found]
        finally:
            await core.close()
        for v in violations:
            print(f"VIOLATION {v}")
        print(f"{len(CHECKS)} checks{' + reconciliation' if args.reconcile else ''}, "
              f"{len(violations)} violation(s)")
        return 1 if violations else 0

    return asyncio.run(run())


def cmd_schedule(args: argparse.Namespace) -> int:
    """Print a repayment schedule as CSV for operations staff (no database needed)."""
    import csv
    from decimal import Decimal

    from core.bootstrap import currency_of
    from core.domain.money import parse_amount
    from core.domain.schedule import build_schedule

    currency = currency_of(load_settings())
    try:
        amount = parse_amount(args.amount, currency)
        rate = Decimal(args.rate) / 100
        rows = build_schedule(amount, rate, args.months, args.method, args.start or date.today())
    except (ValueError, ArithmeticError, DomainError) as exc:
        print(f"schedule: {exc}", file=sys.stderr)
        return 2
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["period", "due_date", "payment", "principal", "interest", "remaining"])
    for row in rows:
        out.writerow([row.period, row.due_date.isoformat(), row.payment.amount,
                      row.principal.amount, row.interest.amount, row.remaining.amount])
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    """Run the business day (idempotent: a day already done is not done again)."""
    from core.bootstrap import bootstrap

    settings = _settings()

    async def run() -> int:
        core = await bootstrap(settings)
        try:
            day = args.date or core.clock.today()
            report = await core.daily.run(day)
        finally:
            await core.close()
        for step, result in report.items():
            print(f"{day} {step}: {result}")
        return 0

    return asyncio.run(run())


def cmd_staff(args: argparse.Namespace) -> int:
    """Staff accounts for the console: add, list, disable."""
    from core.bootstrap import bootstrap
    from core.services.staff import StaffService

    password = _new_password() if args.action == "add" else ""
    if password is None:
        return 1
    settings = _settings()

    async def run() -> int:
        core = await bootstrap(settings)
        service = StaffService(settings.support)
        try:
            if args.action == "list":
                async with core.uow(read_only=True) as uow:
                    members = await service.list(uow)
                print("name\tdisplay_name\trole\tactive\tpresence")
                for m in members:
                    print(f"{m.name}\t{m.display_name}\t{m.role}\t"
                          f"{'yes' if m.active else 'no'}\t{m.presence}")
                return 0
            async with core.uow() as uow:
                if args.action == "add":
                    member = await service.add(uow, args.name, password, args.role,
                                               args.display_name)
                else:
                    member = await service.disable(uow, args.name)
                await uow.commit()
        except DomainError as exc:
            print(f"staff {args.action}: {exc}", file=sys.stderr)
            return 1
        finally:
            await core.close()
        print(f"{member.name} ({member.role}): {'added' if args.action == 'add' else 'disabled'}")
        return 0

    return asyncio.run(run())


def _new_password() -> str | None:
    """Twice at a hidden prompt on a terminal; otherwise the first line of standard input."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("Password again: ") != first:
        print("staff add: the passwords differ", file=sys.stderr)
        return None
    return first


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py", description="P2P Desk: chat-first operations platform for P2P lending.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the web server, bots and jobs (default)",
                           description="Serve HTTP (health, web chat, console, dashboards).")
    serve.add_argument("--host", help="listen address (default: P2P_HTTP_HOST)")
    serve.add_argument("--port", type=int, help="listen port (default: P2P_HTTP_PORT)")
    serve.set_defaults(func=cmd_serve)

    sandbox = sub.add_parser(
        "telegram-sandbox", help="chat with the bot in the terminal, without Telegram",
        description="Start a local Bot API server, the product wired to it, and a terminal "
                    "chat as a fake Telegram user.")
    sandbox.add_argument("--api-port", type=int, default=8081,
                         help="local Bot API server port (default: 8081)")
    sandbox.add_argument("--port", type=int, help="product port (default: P2P_HTTP_PORT)")
    sandbox.add_argument("--language", default="zh-hans",
                         help="the fake user's Telegram language_code (default: zh-hans)")
    sandbox.set_defaults(func=cmd_telegram_sandbox)

    seed = sub.add_parser(
        "seed", help="fill an empty database with a simulated platform history",
        description="Simulate visitors, investors, borrowers, repayments, collections and "
                    "support day by day through the core services. The same --seed gives "
                    "the same data.")
    seed.add_argument("--users", type=_positive, default=2000, help="registered users (about)")
    seed.add_argument("--days", type=_positive, default=180, help="days of history")
    seed.add_argument("--seed", type=int, default=1, help="random seed")
    seed.add_argument("--end", type=_date, metavar="YYYY-MM-DD",
                      help="last simulated day (default: yesterday)")
    seed.set_defaults(func=cmd_seed)

    migrate = sub.add_parser("migrate", help="bring the database schema up to date",
                             description="Run Alembic migrations on P2P_DATABASE_URL.")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.set_defaults(func=cmd_migrate)

    check = sub.add_parser("check", help="verify every invariant the data must keep",
                           description="Exit 1 and name each violation if any invariant fails.")
    check.add_argument("--reconcile", type=_date, metavar="YYYY-MM-DD",
                       help="also compare the custody bank's statement of that business date")
    check.set_defaults(func=cmd_check)
    jobs = sub.add_parser("jobs", help="run scheduled jobs by hand",
                          description="Run a scheduled job now.")
    jobs_sub = jobs.add_subparsers(dest="job", metavar="JOB", required=True)
    daily = jobs_sub.add_parser(
        "daily", help="run the business day",
        description="Auto-debits, overdue and penalties, collections, listing expiries, "
                    "auto-invest. Running a date twice changes nothing the second time.")
    daily.add_argument("--date", type=_date, metavar="YYYY-MM-DD",
                       help="business date (default: today in P2P_TIMEZONE)")
    daily.set_defaults(func=cmd_jobs)

    staff = sub.add_parser("staff", help="manage staff accounts (agents, managers, admins)",
                           description="Add, list or disable the console's staff accounts.")
    staff_sub = staff.add_subparsers(dest="action", metavar="ACTION", required=True)
    staff_add = staff_sub.add_parser(
        "add", help="add a staff account",
        description="Add an account; the password is asked twice on a terminal, otherwise "
                    "read from the first line of standard input.")
    staff_add.add_argument("name", help="login name: 2-64 of a-z 0-9 _ . -")
    staff_add.add_argument("--role", required=True, choices=["agent", "manager", "admin"])
    staff_add.add_argument("--display-name", help="name shown to customers (default: NAME)")
    staff_sub.add_parser("list", help="list staff accounts (no password hashes)")
    staff_disable = staff_sub.add_parser(
        "disable", help="disable an account and end its sessions")
    staff_disable.add_argument("name")
    staff.set_defaults(func=cmd_staff)

    schedule = sub.add_parser(
        "schedule", help="print a repayment schedule as CSV",
        description="Print a loan's repayment schedule as CSV: "
                    "period,due_date,payment,principal,interest,remaining.")
    schedule.add_argument("--amount", required=True, help="principal, e.g. 10000 or 10000.00")
    schedule.add_argument("--rate", required=True, help="annual rate in percent (12 means 12%%)")
    schedule.add_argument("--months", required=True, type=int, help="term in months")
    schedule.add_argument("--method", required=True,
                          choices=["equal_installment", "equal_principal", "interest_first",
                                   "bullet"], help="repayment method")
    schedule.add_argument("--start", type=_date, metavar="YYYY-MM-DD",
                          help="disbursement date (default: today)")
    schedule.set_defaults(func=cmd_schedule)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["serve", *(argv or [])])
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
