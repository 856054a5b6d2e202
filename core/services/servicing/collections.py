"""Overdue marking, penalties and the staged, humane collections plan.

Each business day: installments past due (after the grace period) accrue simple penalty interest
up to a cap, loans get their days past due and status, and the collections plan (settings) runs:
reminders before the due date, a notice, an agent task, a formal notice, escalation, write-off
review. Humane by rule: at most the configured number of collection messages per borrower per
day (the rest wait for another day), none in quiet hours (they are scheduled for the end of the
window), only ever to the borrower, and a promise to pay that is being kept holds escalation.
Every step is recorded once per (loan, installment, stage), so re-running a day does nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update

from config.settings import CollectionStage, ServicingSettings
from core import analytics, notify
from core.adapters.sql import insert_ignore
from core.adapters.tables import (
    bids,
    collection_actions,
    installments,
    loans,
    repayments,
    servicing_tasks,
)
from core.adapters.uow import UnitOfWork
from core.domain.errors import InvalidPromise, NotOverdue
from core.domain.money import Currency, Money
from core.domain.overdue import days_past_due, next_allowed, penalty_for_days
from core.services import audit
from core.services.lending.common import pct

MESSAGE_ACTIONS = ("reminder", "notice", "formal_notice", "escalation", "write_off_review")
HELD_BY_PROMISE = ("formal_notice", "escalation", "write_off_review")
OUTCOMES = ("contacted", "promise_to_pay", "refused", "unreachable", "wrong_contact")


def _chunks(ids: list[int], size: int = 5000) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def _hhmm(text: str) -> time:
    hours, minutes = (int(x) for x in text.split(":"))
    return time(hours, minutes)


class Collections:
    def __init__(self, settings: ServicingSettings, currency: Currency) -> None:
        self.settings = settings
        self.currency = currency
        self.quiet = (_hhmm(settings.quiet_hours_start), _hhmm(settings.quiet_hours_end))

    # Overdue and penalties ------------------------------------------------------------------

    async def mark_overdue(self, uow: UnitOfWork, today: date) -> int:
        """Penalties up to ``today`` and each loan's days past due; returns loans overdue."""
        i, lo = installments.c, loans.c
        rows = (await uow.conn.execute(
            select(i.loan_id, i.period, i.due_date, i.principal, i.interest, i.paid_principal,
                   i.paid_interest, i.penalty, i.penalty_through)
            .select_from(installments.join(loans, lo.id == i.loan_id))
            .where(i.status != "paid", i.due_date < today,
                   lo.status.in_(("active", "overdue"))))).all()
        rate = pct(self.settings.penalty_daily_pct)
        cap_share = pct(self.settings.penalty_cap_pct)
        changes = []
        worst: dict[int, int] = defaultdict(int)
        for r in rows:
            dpd = days_past_due(r.due_date, today, self.settings.grace_days)
            worst[r.loan_id] = max(worst[r.loan_id], dpd)
            if dpd <= 0:
                continue
            start = max(r.penalty_through or r.due_date, r.due_date)
            days = (today - start).days
            if days <= 0:
                continue
            overdue = Money.rounded(Decimal(r.principal) - Decimal(r.paid_principal)
                                    + Decimal(r.interest) - Decimal(r.paid_interest),
                                    self.currency)
            cap = Money.rounded((Decimal(r.principal) + Decimal(r.interest)) * cap_share,
                                self.currency)
            add = penalty_for_days(overdue, days, rate, cap,
                                   Money.rounded(r.penalty, self.currency))
            changes.append({"lid": r.loan_id, "per": r.period,
                            "pen": Decimal(r.penalty) + add.amount, "through": today})
        if changes:
            await uow.conn.execute(
                update(installments).where(i.loan_id == bindparam("lid"),
                                           i.period == bindparam("per"))
                .values(penalty=bindparam("pen", type_=i.penalty.type),
                        penalty_through=bindparam("through"), status="overdue"), changes)
        overdue_ids = [k for k, v in worst.items() if v > 0]
        await self._tell_investors(uow, overdue_ids, rows, today)
        still = set(overdue_ids)
        current = [loan_id for loan_id in (await uow.conn.execute(
            select(lo.id).where(lo.status == "overdue"))).scalars() if loan_id not in still]
        if current:  # cured: everything past due was paid
            await uow.conn.execute(update(loans).where(lo.id.in_(current))
                                   .values(status="active", dpd=0))
        if overdue_ids:
            await uow.conn.execute(
                update(loans).where(lo.id == bindparam("lid")).values(
                    dpd=bindparam("d"), status="overdue"),
                [{"lid": k, "d": worst[k]} for k in overdue_ids])
        return len(overdue_ids)

    async def _tell_investors(self, uow: UnitOfWork, overdue_ids: list[int], rows: list[Any],
                              today: date) -> None:
        """Investors hear when a loan they hold turns overdue (once per late installment)."""
        lo, b = loans.c, bids.c
        newly: list[int] = []
        for part in _chunks(overdue_ids):
            newly.extend((await uow.conn.execute(select(lo.id).where(
                lo.id.in_(part), lo.status == "active"))).scalars())
        if not newly:
            return
        newly_set = set(newly)
        first_late: dict[int, Any] = {}
        for r in rows:
            late = r.loan_id in newly_set and days_past_due(r.due_date, today,
                                                        self.settings.grace_days) > 0
            if late and (r.loan_id not in first_late
                         or r.period < first_late[r.loan_id].period):
                first_late[r.loan_id] = r
        notices = []
        for part in _chunks(newly):
            for bid in await uow.conn.execute(select(b.loan_id, b.investor_id).where(
                    b.loan_id.in_(part), b.status == "active").distinct()):
                late = first_late[bid.loan_id]
                notices.append({
                    "user_id": bid.investor_id, "template": "loan_overdue",
                    "params": {"loan_id": bid.loan_id, "period": late.period,
                               "due_date": late.due_date.isoformat(),
                               "days_past_due": days_past_due(late.due_date, today,
                                                              self.settings.grace_days)},
                    "dedupe_key": f"loan_overdue:{bid.loan_id}:{late.period}:{bid.investor_id}"})
        await notify.enqueue_many(uow, notices)

    # The plan -------------------------------------------------------------------------------

    async def run_plan(self, uow: UnitOfWork, today: date) -> dict[str, int]:
        """Run every stage due today (or missed on earlier days) for every open installment."""
        counts: dict[str, int] = defaultdict(int)
        plan = self.settings.collections_plan
        earliest = min(s.offset_days for s in plan)
        latest_reminder = max((s.offset_days for s in plan if s.offset_days <= 0), default=0)
        i, lo = installments.c, loans.c
        horizon = today - timedelta(days=earliest)
        rows = (await uow.conn.execute(
            select(i.loan_id, i.period, i.due_date, i.principal, i.interest, i.paid_principal,
                   i.paid_interest, i.penalty, i.paid_penalty, lo.borrower_id, lo.status)
            .select_from(installments.join(loans, lo.id == i.loan_id))
            .where(i.status != "paid", i.due_date <= horizon,
                   lo.status.in_(("active", "overdue")))
            .order_by(i.due_date, i.loan_id, i.period))).all()
        if not rows:
            return dict(counts)
        loan_ids = sorted({r.loan_id for r in rows})
        done: set[tuple[int, int, str]] = set()
        for part in _chunks(loan_ids):  # bound parameters are limited (asyncpg: 32,767)
            done.update((a.loan_id, a.period, a.stage) for a in await uow.conn.execute(
                select(collection_actions.c.loan_id, collection_actions.c.period,
                       collection_actions.c.stage).where(
                    collection_actions.c.loan_id.in_(part))))
        send_at = self._send_time(uow, today)
        # messages are counted by the day they reach the borrower, so a catch-up after
        # downtime still sends at most the daily number
        send_day = send_at.astimezone(uow.clock.tz).date()
        sent_today: dict[int, int] = defaultdict(int)
        for row in await uow.conn.execute(
                select(collection_actions.c.borrower_id, func.count()).where(
                    collection_actions.c.business_date == send_day,
                    collection_actions.c.outcome == "queued")
                .group_by(collection_actions.c.borrower_id)):
            sent_today[row[0]] = int(row[1])
        promises = await self._promises_held(uow, loan_ids, today)
        real_today = uow.clock.today()
        actions, notices = [], []
        for r in rows:
            offset = (today - r.due_date).days
            dpd = days_past_due(r.due_date, today, self.settings.grace_days)
            for stage in plan:
                if (r.loan_id, r.period, stage.name) in done or offset < stage.offset_days:
                    continue
                if stage.offset_days > 0 and dpd < stage.offset_days:
                    continue  # within the grace period: not late yet
                if stage.offset_days <= 0 and (real_today - r.due_date).days > latest_reminder:
                    outcome = "skipped_late"  # a reminder whose day has passed: never send late
                elif stage.action in HELD_BY_PROMISE and r.loan_id in promises:
                    continue  # held while a promise is being kept; reconsidered tomorrow
                elif stage.action in MESSAGE_ACTIONS:
                    if sent_today[r.borrower_id] >= self.settings.collection_messages_per_day:
                        continue  # one message a day: this one waits for tomorrow
                    sent_today[r.borrower_id] += 1
                    outcome = "queued"  # into the outbox, not before send_at
                    notices.append(self._notice(r, stage, send_at, today))
                else:
                    outcome = "created"
                actions.append({"loan_id": r.loan_id, "period": r.period, "stage": stage.name,
                                "action": stage.action,
                                "business_date": send_day if outcome == "queued" else today,
                                "borrower_id": r.borrower_id, "outcome": outcome,
                                "at": uow.clock.now()})
                counts[f"{stage.action}:{outcome}"] += 1
                await self._act(uow, r, stage, today)
        if actions:
            await uow.conn.execute(insert_ignore(uow, collection_actions,
                                                 conflict=["loan_id", "period", "stage"]),
                                   actions)
        await notify.enqueue_many(uow, notices)
        return dict(counts)

    def _send_time(self, uow: UnitOfWork, today: date) -> datetime:
        """Collection messages go out at the reminder hour of the business day, or now if that
        has passed - but never inside quiet hours."""
        tz = uow.clock.tz
        planned = datetime.combine(today, time(self.settings.reminder_hour), tz)
        moment = max(planned, uow.clock.now())
        return next_allowed(moment, tz, *self.quiet)

    def _notice(self, r: Any, stage: CollectionStage, send_at: datetime,
                today: date) -> dict[str, Any]:
        owed = (Decimal(r.principal) - Decimal(r.paid_principal) + Decimal(r.interest)
                - Decimal(r.paid_interest) + Decimal(r.penalty) - Decimal(r.paid_penalty))
        return {"user_id": r.borrower_id, "template": stage.template,
                "params": {"loan_id": r.loan_id, "period": r.period,
                           "due_date": r.due_date.isoformat(),
                           "amount": str(Money.rounded(owed, self.currency).amount),
                           "stage": stage.name, "days_past_due": max(0, (today - r.due_date).days)},
                "dedupe_key": f"collections:{r.loan_id}:{r.period}:{stage.name}",
                "not_before": send_at}

    async def _act(self, uow: UnitOfWork, r: Any, stage: CollectionStage, today: date) -> None:
        if stage.action == "task":
            await self._task(uow, "collections", r.loan_id, r.borrower_id, stage.name, today)
        elif stage.action == "write_off_review":
            await self._task(uow, "write_off_review", r.loan_id, r.borrower_id, stage.name,
                             today)
        elif stage.action == "escalation":
            await uow.conn.execute(update(loans).where(loans.c.id == r.loan_id,
                                                       loans.c.escalation.is_(None))
                                   .values(escalation="outsourced"))
            await analytics.track(uow, "collections_escalated", user_id=r.borrower_id,
                                  props={"loan_id": r.loan_id, "stage": stage.name})

    async def _task(self, uow: UnitOfWork, kind: str, loan_id: int, borrower_id: int,
                    stage: str, today: date) -> None:
        await uow.conn.execute(insert_ignore(uow, servicing_tasks, {
            "kind": kind, "loan_id": loan_id, "borrower_id": borrower_id, "stage": stage,
            "status": "open", "due_date": today, "created_at": uow.clock.now()},
            conflict=["kind", "loan_id", "stage"]))
        await analytics.track(uow, f"{kind}_task_created", user_id=borrower_id,
                              props={"loan_id": loan_id, "stage": stage})

    # Promises to pay ------------------------------------------------------------------------

    async def _promises_held(self, uow: UnitOfWork, loan_ids: list[int],
                             today: date) -> set[int]:
        t = servicing_tasks.c
        held: set[int] = set()
        for part in _chunks(loan_ids):
            rows = await uow.conn.execute(select(t.loan_id).where(
                t.loan_id.in_(part), t.promise_status.in_(("pending", "kept")),
                t.promise_date >= today))
            held.update(r.loan_id for r in rows)
        return held

    async def promise(self, uow: UnitOfWork, loan_id: int, promise_date: date,
                      amount: Money, *, staff_id: int | None = None) -> None:
        """Record a promise to pay (from the borrower in chat or an agent's call)."""
        today = uow.clock.today()
        loan = (await uow.conn.execute(select(loans.c.status, loans.c.borrower_id).where(
            loans.c.id == loan_id))).one()
        if loan.status != "overdue":
            raise NotOverdue("this loan is not overdue", loan_id=loan_id)
        if promise_date < today:
            raise InvalidPromise("the promised date is in the past", reason="date_in_past")
        if promise_date > today + timedelta(days=30):
            raise InvalidPromise("the promised date is too far", reason="date_too_far")
        if not amount.is_positive():
            raise InvalidPromise("the promised amount must be positive", reason="amount")
        t = servicing_tasks.c
        stage = f"P{promise_date:%m%d}"
        await uow.conn.execute(insert_ignore(uow, servicing_tasks, {
            "kind": "collections", "loan_id": loan_id, "borrower_id": loan.borrower_id,
            "stage": stage, "status": "open", "due_date": promise_date,
            "created_at": uow.clock.now()}, conflict=["kind", "loan_id", "stage"]))
        await uow.conn.execute(update(servicing_tasks).where(
            t.kind == "collections", t.loan_id == loan_id, t.stage == stage).values(
            outcome="promise_to_pay", promise_date=promise_date, promise_amount=amount.amount,
            promise_status="pending", assigned_to=staff_id))
        await analytics.track(uow, "promise_to_pay", user_id=loan.borrower_id,
                              props={"loan_id": loan_id, "date": promise_date.isoformat(),
                                     "amount": str(amount.amount)})
        await notify.enqueue(uow, loan.borrower_id, "promise_to_pay_recorded",
                             {"loan_id": loan_id, "date": promise_date.isoformat(),
                              "amount": str(amount.amount)},
                             dedupe_key=f"promise:{loan_id}:{stage}")

    async def settle_promises(self, uow: UnitOfWork, today: date) -> dict[str, int]:
        """Promises whose date has passed are kept if the loan is no longer overdue (or was
        paid at least the promised amount since), broken otherwise."""
        t, lo, rp = servicing_tasks.c, loans.c, repayments.c
        rows = (await uow.conn.execute(
            select(t.id, t.loan_id, t.created_at, t.promise_date, t.promise_amount, lo.status,
                   lo.borrower_id)
            .select_from(servicing_tasks.join(loans, lo.id == t.loan_id))
            .where(t.promise_status == "pending", t.promise_date < today))).all()
        counts = {"kept": 0, "broken": 0}
        for r in rows:
            paid = (await uow.conn.execute(select(func.coalesce(func.sum(rp.amount), 0)).where(
                rp.loan_id == r.loan_id, rp.received_at >= r.created_at,
                rp.business_date <= r.promise_date))).scalar_one()
            kept = r.status != "overdue" or Decimal(paid) >= Decimal(r.promise_amount or 0)
            await uow.conn.execute(update(servicing_tasks).where(t.id == r.id).values(
                promise_status="kept" if kept else "broken", status="done",
                closed_at=uow.clock.now()))
            counts["kept" if kept else "broken"] += 1
            await analytics.track(uow, "promise_kept" if kept else "promise_broken",
                                  user_id=r.borrower_id, props={"loan_id": r.loan_id})
        return counts

    async def remind_promises(self, uow: UnitOfWork, today: date) -> int:
        """On a promise's date, one reminder to the borrower (at the reminder hour, never in
        quiet hours), unless the loan is no longer overdue."""
        t, lo = servicing_tasks.c, loans.c
        rows = (await uow.conn.execute(
            select(t.id, t.loan_id, t.promise_date, t.promise_amount, lo.borrower_id)
            .select_from(servicing_tasks.join(loans, lo.id == t.loan_id))
            .where(t.promise_status == "pending", t.promise_date == today,
                   lo.status == "overdue"))).all()
        send_at = self._send_time(uow, today)
        await notify.enqueue_many(uow, [
            {"user_id": r.borrower_id, "template": "promise_to_pay_reminder",
             "params": {"loan_id": r.loan_id, "date": r.promise_date.isoformat(),
                        "amount": str(Money.rounded(r.promise_amount or 0,
                                                    self.currency).amount)},
             "dedupe_key": f"promise_reminder:{r.id}", "not_before": send_at} for r in rows])
        return len(rows)

    async def log_outcome(self, uow: UnitOfWork, task_id: int, staff_id: int, outcome: str,
                          notes: str = "") -> None:
        """An agent's call or chat: contacted, refused, unreachable, wrong contact."""
        if outcome not in OUTCOMES or outcome == "promise_to_pay":
            raise ValueError(f"outcome must be one of {OUTCOMES} (promises via promise())")
        t = servicing_tasks.c
        await uow.conn.execute(update(servicing_tasks).where(t.id == task_id).values(
            outcome=outcome, notes=notes[:2000], assigned_to=staff_id, status="done",
            closed_at=uow.clock.now()))
        await audit.record(uow, "collections_outcome", "servicing_task", task_id,
                           actor_kind="staff", actor_id=staff_id, details={"outcome": outcome})

    async def open_tasks(self, uow: UnitOfWork, kind: str = "collections") -> list[dict[str, Any]]:
        t = servicing_tasks.c
        rows = await uow.conn.execute(select(servicing_tasks).where(
            and_(t.kind == kind, t.status == "open")).order_by(t.created_at, t.id))
        return [dict(r._mapping) for r in rows]
