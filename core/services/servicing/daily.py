"""The business day: one idempotent job per date.

Steps, in order, each in transactions of its own and recorded in ``job_runs`` once done:
listing expiries, auto-invest matching, auto-debits of due installments, overdue marking and
penalties, promises to pay settled, the collections plan, use-of-funds follow-ups, the
dashboards' rollups. Every step is idempotent by itself (ledger keys, unique action records),
so running a date twice changes nothing and a crash part-way leaves a state from which
re-running completes the day.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select, type_coerce

from config.settings import ServicingSettings
from core.adapters.sql import insert_ignore
from core.adapters.tables import installments, job_runs, loans, risk_flags, servicing_tasks
from core.adapters.types import Amount
from core.adapters.uow import UnitOfWorkFactory
from core.analytics import rollups
from core.domain.errors import DomainError
from core.ledger import Ledger, user_account
from core.services.servicing.collections import Collections
from core.services.servicing.repayments import Repayments

log = logging.getLogger(__name__)
JOB = "daily"
CHUNK = 500


class DailyJob:
    def __init__(self, settings: ServicingSettings, uow_factory: UnitOfWorkFactory,
                 ledger: Ledger, repayments: Repayments, collections: Collections,
                 funding: Any, auto_invest: Any, lending: Any) -> None:
        self.settings = settings
        self.uow = uow_factory
        self.ledger = ledger
        self.repayments = repayments
        self.collections = collections
        self.funding = funding
        self.auto_invest = auto_invest
        self.lending = lending

    async def run(self, day: date) -> dict[str, Any]:
        """Run (or finish) the business day ``day``; returns what each step did."""
        steps: list[tuple[str, Callable[[date], Awaitable[Any]]]] = [
            ("expire_listings", self._expire), ("auto_invest", self._match),
            ("auto_debit", self._auto_debit), ("overdue", self._overdue),
            ("promises", self._promises), ("collections", self._collections),
            ("use_of_funds", self._use_of_funds), ("analytics_rollups", self._rollups),
        ]
        report: dict[str, Any] = {}
        for name, step in steps:
            if await self._done(day, name):
                report[name] = "already done"
                continue
            result = await step(day)
            async with self.uow() as uow:
                await uow.conn.execute(insert_ignore(uow, job_runs, {
                    "job": JOB, "business_date": day, "step": name,
                    "done_at": uow.clock.now(),
                    "details": result if isinstance(result, dict) else {"count": result}},
                    conflict=["job", "business_date", "step"]))
                await uow.commit()
            report[name] = result
        return report

    async def _done(self, day: date, step: str) -> bool:
        async with self.uow(read_only=True) as uow:
            row = (await uow.conn.execute(select(job_runs.c.step).where(
                job_runs.c.job == JOB, job_runs.c.business_date == day,
                job_runs.c.step == step))).first()
        return row is not None

    async def last_completed(self) -> date | None:
        async with self.uow(read_only=True) as uow:
            return (await uow.conn.execute(select(func.max(job_runs.c.business_date)).where(
                job_runs.c.job == JOB, job_runs.c.step == "use_of_funds"))).scalar_one()

    async def catch_up(self, today: date, *, max_days: int = 31) -> list[date]:
        """Run every business day missed since the last completed one, up to ``today``."""
        last = await self.last_completed()
        start = today if last is None else last + timedelta(days=1)
        start = max(start, today - timedelta(days=max_days - 1))
        days = []
        day = start
        while day <= today:
            await self.run(day)
            days.append(day)
            day += timedelta(days=1)
        return days

    # Steps ----------------------------------------------------------------------------------

    async def _expire(self, day: date) -> int:
        async with self.uow() as uow:
            expired = await self.funding.expire(uow)
            await uow.commit()
        return len(expired)

    async def _match(self, day: date) -> int:
        async with self.uow() as uow:
            placed = await self.auto_invest.match(uow)
            await uow.commit()
        return placed

    async def _auto_debit(self, day: date) -> dict[str, int]:
        """Debit every due installment the borrower's balance covers in full."""
        if not self.settings.auto_debit:
            return {"debited": 0, "short": 0}
        i, lo = installments.c, loans.c
        async with self.uow(read_only=True) as uow:
            due = (await uow.conn.execute(
                select(i.loan_id, lo.borrower_id,
                       type_coerce(func.sum(i.principal - i.paid_principal + i.interest
                                            - i.paid_interest + i.penalty - i.paid_penalty),
                                   Amount).label("owed"))
                .select_from(installments.join(loans, lo.id == i.loan_id))
                .where(i.status != "paid", i.due_date <= day,
                       lo.status.in_(("active", "overdue")))
                .group_by(i.loan_id, lo.borrower_id).order_by(i.loan_id))).all()
        debited = short = 0
        for start in range(0, len(due), CHUNK):
            chunk = due[start:start + CHUNK]
            async with self.uow() as uow:
                balances = await self.ledger.balances(
                    uow, {user_account(r.borrower_id, "available") for r in chunk})
                for r in chunk:
                    owed = r.owed
                    available = balances[user_account(r.borrower_id, "available")].amount
                    if owed <= 0 or available < owed:
                        short += owed > 0
                        continue
                    try:
                        # what is due is worked out again under the loan's lock: a payment
                        # made since our read is never taken twice, nothing is prepaid
                        await self.repayments.repay(
                            uow, r.loan_id, None, due_only=True, source="auto_debit",
                            request_key=f"auto_debit:{r.loan_id}:{day.isoformat()}")
                    except DomainError as exc:  # nothing is left to debit after all
                        log.info("auto-debit skipped for loan %s: %s", r.loan_id, exc.code)
                        continue
                    balances[user_account(r.borrower_id, "available")] = \
                        balances[user_account(r.borrower_id, "available")] - \
                        self.repayments.money(owed)
                    debited += 1
                await uow.commit()
        return {"debited": debited, "short": short}

    async def _overdue(self, day: date) -> int:
        async with self.uow() as uow:
            count = await self.collections.mark_overdue(uow, day)
            await uow.commit()
        return count

    async def _promises(self, day: date) -> dict[str, int]:
        async with self.uow() as uow:
            counts = await self.collections.settle_promises(uow, day)
            counts["reminded"] = await self.collections.remind_promises(uow, day)
            await uow.commit()
        return counts

    async def _collections(self, day: date) -> dict[str, int]:
        async with self.uow() as uow:
            counts = await self.collections.run_plan(uow, day)
            await uow.commit()
        return counts

    async def _rollups(self, day: date) -> dict[str, int]:
        # the dashboards' rollups (core/analytics/rollups.py): the day before recounted from the
        # event log, the book of the day before and of this day rebuilt
        async with self.uow() as uow:
            result = await rollups.refresh(uow, day, servicing=self.settings,
                                           cur=self.ledger.currency)
            await uow.commit()
        return result

    async def _use_of_funds(self, day: date) -> dict[str, int]:
        """Products that require it: ask for proof of use N days after disbursement; a proof
        still missing a week later flags the loan."""
        lo, t = loans.c, servicing_tasks.c
        days = self.settings.use_of_funds_days
        created = flagged = 0
        async with self.uow() as uow:
            for code, product in self.lending.products.items():
                if product.use_of_funds_proof_above is None:
                    continue
                start = datetime.combine(day - timedelta(days=days), time(), uow.clock.tz)
                rows = (await uow.conn.execute(select(lo.id, lo.borrower_id).where(
                    lo.product == code, lo.amount > product.use_of_funds_proof_above,
                    lo.disbursed_at < start + timedelta(days=1),
                    lo.status.in_(("active", "overdue"))))).all()
                for r in rows:
                    result = await uow.conn.execute(insert_ignore(uow, servicing_tasks, {
                        "kind": "use_of_funds", "loan_id": r.id, "borrower_id": r.borrower_id,
                        "stage": "proof", "status": "open", "due_date": day + timedelta(days=7),
                        "created_at": uow.clock.now()}, conflict=["kind", "loan_id", "stage"]))
                    created += result.rowcount or 0
            missing = (await uow.conn.execute(select(t.loan_id, t.borrower_id).where(
                t.kind == "use_of_funds", t.status == "open", t.due_date < day))).all()
            for r in missing:
                result = await uow.conn.execute(insert_ignore(uow, risk_flags, {
                    "kind": "use_of_funds_missing", "subject_key": f"use_of_funds:{r.loan_id}",
                    "user_id": r.borrower_id, "details": {"loan_id": r.loan_id},
                    "status": "open", "created_at": uow.clock.now()},
                    conflict=["kind", "subject_key"]))
                if result.rowcount:
                    flagged += 1
                    await uow.conn.execute(loans.update().where(lo.id == r.loan_id)
                                           .values(risk_flag="use_of_funds_missing"))
            await uow.commit()
        return {"tasks": created, "flagged": flagged}

