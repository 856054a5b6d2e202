"""Review queues for managers (``/review``): loan applications waiting for a decision, KYC
exceptions and anti-fraud flags, AML flags, and collections tasks.

Each queue is a page rendered on the server (``bots/web/templates/review``) with a JSON twin under
``/review/api`` taking the same filters and ``page`` (50 rows a page, "previous" / "next" links).
Only managers and admins get in (``require(*MANAGER_ROLES)``); every decision is a POST carrying
the session's CSRF token and goes through a core service. The services audit approvals,
rejections, due-diligence notes and collections outcomes themselves; clearing or escalating a flag
and recording a promise to pay are audited here, where the staff member and the note are known.

Personal data appear only as the masked copies stored for display (``张*``, ``138****5678``,
``110***********123X``); of a flag's details only the keys in ``FLAG_DETAILS`` are shown.

A decision that succeeds redirects to its queue with a ``notice``; one that is refused renders the
page again with the reason (400 for bad input, 404 or 409 when the record is gone or decided); a
request that accepts ``application/json`` gets ``{"ok": true, ...}`` or ``{"error", "message"}``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import String, and_, cast, exists, or_, select

from bots.console.common import json_reply, local_minutes, wants_json
from bots.web.auth import MANAGER_ROLES, STAFF_MEMBER, Handler, render, require
from core.adapters.tables import (
    audit_log,
    due_diligence_notes,
    identities,
    loan_applications,
    loans,
    risk_flags,
    servicing_tasks,
    staff,
    users,
)
from core.adapters.uow import UnitOfWork
from core.bootstrap import Core
from core.domain.errors import DomainError, UnknownLoan
from core.domain.money import Money, parse_amount
from core.domain.scorecard import GRADES
from core.messages import user_message
from core.services import audit, flags
from core.services.lending.common import age_band
from core.services.servicing.collections import OUTCOMES

Builder = Callable[[web.Request], Awaitable[dict[str, Any]]]
REVIEW_CORE = web.AppKey("review_core", Core)
PAGE_SIZE = 50
APPLICATION_STATUSES = ("review", "approved", "rejected")
# the first four have words in the borrower's notice; the others read as "other" to them
REJECT_REASONS = ("score_too_low", "debt_to_income_too_high", "age_out_of_range", "blacklisted",
                  "income_not_verified", "documents_insufficient", "fraud_suspected", "other")
AML_KINDS = tuple(sorted(k for k in flags.KINDS if k.startswith("aml_")))
FRAUD_KINDS = tuple(sorted(flags.KINDS - set(AML_KINDS)))
FLAG_DETAILS = ("amount", "order_id", "hours", "accounts", "other_user_id", "loan_id")
AGENT_OUTCOMES = tuple(o for o in OUTCOMES if o != "promise_to_pay")  # promises have a form
NOTICES = {
    "approved": "Application approved: the loan is listed.",
    "rejected": "Application rejected; the borrower is told.",
    "noted": "Due-diligence note saved.",
    "cleared": "Flag cleared.",
    "escalated": "Flag escalated; it stays open until cleared.",
    "outcome_logged": "Outcome logged; the task is closed.",
    "promise_recorded": "Promise to pay recorded.",
}


def setup_review(app: web.Application, core: Core) -> None:
    """Mount the queues; ``bots.web.auth.setup_auth`` must have been called on ``app``."""
    app[REVIEW_CORE] = core
    r = app.router
    r.add_get("/review", index)
    for path, build, template in QUEUES:
        page, api = _views(build, template)
        r.add_get(f"/review{path}", page)
        r.add_get(f"/review/api{path}", api)
    r.add_post("/review/applications/{id:\\d+}/approve", approve)
    r.add_post("/review/applications/{id:\\d+}/reject", reject)
    r.add_post("/review/applications/{id:\\d+}/note", note)
    r.add_post("/review/flags/{id:\\d+}/clear", clear_flag)
    r.add_post("/review/flags/{id:\\d+}/escalate", escalate_flag)
    r.add_post("/review/collections/{id:\\d+}/outcome", log_outcome)
    r.add_post("/review/collections/{id:\\d+}/promise", promise)


def _views(build: Builder, template: str) -> tuple[Handler, Handler]:
    @require(*MANAGER_ROLES)
    async def page(request: web.Request) -> web.StreamResponse:
        """The queue as a page."""
        return render(request, template, **await build(request), error=None, form={},
                      notice=NOTICES.get(request.query.get("notice", "")))

    @require(*MANAGER_ROLES)
    async def api(request: web.Request) -> web.StreamResponse:
        """The queue as JSON."""
        return json_reply(await build(request))

    return page, api


@require(*MANAGER_ROLES)
async def index(request: web.Request) -> web.StreamResponse:
    """The first queue."""
    raise web.HTTPSeeOther("/review/applications")


# Helpers ------------------------------------------------------------------------------------


def _core(request: web.Request) -> Core:
    return request.app[REVIEW_CORE]


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])




def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str:
    """The query value if allowed, else the first allowed value (the default)."""
    value = request.query.get(name, "")
    return value if value in allowed else allowed[0]


def _number(text: str | None, default: int | None = None) -> int | None:
    try:
        return int(text) if text else default
    except ValueError:
        return default



def _money(core: Core, value: Decimal | None) -> Decimal | None:
    """A stored amount at the currency's scale, for display."""
    return None if value is None else Money.rounded(value, core.currency).amount


def _percent(fraction: Decimal) -> str:
    return f"{(fraction * 100).normalize():f}"


def _masked_name(user_id: Any) -> Any:
    """The verified name's masked copy (``张*``) of a user, as a column."""
    i = identities.c
    return (select(i.name_masked).where(i.user_id == user_id, i.status == "verified")
            .limit(1).scalar_subquery())


async def _paged(request: web.Request, uow: UnitOfWork, query: Any, path: str
                 ) -> tuple[list[Any], dict[str, Any]]:
    """One page of ``query`` and its links ("previous", "next") keeping the filters."""
    page = min(max(_number(request.query.get("page"), 1) or 1, 1), 100_000)
    rows = (await uow.conn.execute(query.limit(PAGE_SIZE + 1)
                                   .offset((page - 1) * PAGE_SIZE))).all()
    base = request.path if request.method == "GET" else path
    filters = {k: v for k, v in request.query.items() if k not in ("page", "notice") and v}

    def link(number: int) -> str:
        return f"{base}?{urlencode({**filters, 'page': number})}"

    return rows[:PAGE_SIZE], {"page": page, "previous": link(page - 1) if page > 1 else None,
                              "next": link(page + 1) if len(rows) > PAGE_SIZE else None}


def _done(request: web.Request, path: str, notice: str, *, query: dict[str, str] | None = None,
          **payload: Any) -> web.Response:
    """The decision is made: back to ``path`` with a notice (or JSON)."""
    if wants_json(request):
        return json_reply({"ok": True, "notice": notice, **payload})
    raise web.HTTPSeeOther(f"{path}?{urlencode({**(query or {}), 'notice': notice})}")


async def _refuse(request: web.Request, build: Builder, template: str, status: int, code: str,
                  message: str, **form: Any) -> web.StreamResponse:
    """The decision is refused: the page again with ``message`` (or JSON)."""
    if wants_json(request):
        return json_reply({"error": code, "message": message}, status=status)
    return render(request, template, status=status, **await build(request), error=message,
                  notice=None, form=form)


def _status_of(exc: DomainError) -> int:
    return 409 if exc.code in ("application_not_reviewable", "not_overdue") else 400


# 1. Loan applications -----------------------------------------------------------------------


async def _applications(request: web.Request) -> dict[str, Any]:
    core = _core(request)
    products = core.settings.lending.products
    status = _choice(request, "status", APPLICATION_STATUSES)
    product = _choice(request, "product", ("", *products))
    grade = _choice(request, "grade", ("", *GRADES))
    la = loan_applications.c
    query = (select(la.id, la.product, la.amount, la.term_months, la.method, la.grade, la.score,
                    la.risk_level, la.reason, la.annual_rate, la.created_at, la.decided_at,
                    users.c.phone_masked, _masked_name(la.user_id).label("name_masked"))
             .select_from(loan_applications.join(users, users.c.id == la.user_id))
             .where(la.status == status))
    query = query.where(la.product == product) if product else query
    query = query.where(la.grade == grade) if grade else query
    query = query.order_by(la.created_at, la.id) if status == "review" else \
        query.order_by(la.decided_at.desc(), la.id.desc())
    async with core.uow(read_only=True) as uow:
        rows, paging = await _paged(request, uow, query, "/review/applications")
    return {
        "filters": {"status": status, "product": product, "grade": grade},
        "choices": {"status": APPLICATION_STATUSES, "product": tuple(products),
                    "grade": GRADES},
        "items": [{"id": r.id, "product": r.product, "amount": _money(core, r.amount),
                   "term_months": r.term_months, "method": r.method, "grade": r.grade,
                   "score": r.score, "risk_level": r.risk_level, "reason": r.reason,
                   "annual_rate_pct": None if r.annual_rate is None else _percent(r.annual_rate),
                   "applicant": {"name": r.name_masked, "phone": r.phone_masked},
                   "submitted": local_minutes(core, r.created_at)} for r in rows],
        **paging,
    }


async def _application(request: web.Request) -> dict[str, Any]:
    core, application_id = _core(request), _id(request)
    la, n, f = loan_applications.c, due_diligence_notes.c, risk_flags.c
    async with core.uow(read_only=True) as uow:
        row = (await uow.conn.execute(
            select(loan_applications, users.c.phone_masked,
                   _masked_name(la.user_id).label("name_masked"),
                   select(identities.c.birth_date).where(
                       identities.c.user_id == la.user_id, identities.c.status == "verified")
                   .limit(1).scalar_subquery().label("birth_date"),
                   select(staff.c.display_name).where(staff.c.id == la.decided_by)
                   .scalar_subquery().label("decided_by_name"))
            .select_from(loan_applications.join(users, users.c.id == la.user_id))
            .where(la.id == application_id))).first()
        if row is None:
            raise web.HTTPNotFound()
        notes = (await uow.conn.execute(
            select(n.note, n.at, staff.c.display_name)
            .select_from(due_diligence_notes.outerjoin(staff, staff.c.id == n.staff_id))
            .where(n.application_id == application_id).order_by(n.at, n.id))).all()
        open_flags = (await uow.conn.execute(select(f.kind).where(
            f.user_id == row.user_id, f.status == "open").order_by(f.kind))).scalars().all()
        loan_id = (await uow.conn.execute(select(loans.c.id).where(
            loans.c.application_id == application_id))).scalar_one_or_none()
    policy, facts = core.policy, row.facts or {}
    product = core.settings.lending.products.get(row.product)
    try:  # the policy's rate for this grade and term, offered as the starting point
        suggested = _percent(policy.rate(row.grade, row.term_months))
    except ValueError:  # HR, or a term longer than the price table
        suggested = None
    return {
        "id": row.id, "state": row.status, "product": row.product,
        "product_name": product.name_en if product else row.product,
        "amount": _money(core, row.amount),
        "term_months": row.term_months, "method": row.method, "purpose": row.purpose,
        "grade": row.grade, "score": row.score, "pd": row.pd, "risk_level": row.risk_level,
        "reason": row.reason, "application_flags": row.flags or [], "open_flags": open_flags,
        "applicant": {"name": row.name_masked, "phone": row.phone_masked,
                      "age_band": age_band(row.birth_date, core.clock.today())},
        "facts": {k: facts.get(k) for k in ("monthly_income", "employment", "years_at_job",
                                            "monthly_debt_payments", "other_platform_debt",
                                            "documents")} | {"secured": bool(
                                                facts.get("collateral"))},
        "score_factors": facts.get("score_reasons") or [],  # when the application kept them
        "notes": [{"text": x.note, "by": x.display_name, "at": local_minutes(core, x.at)}
                  for x in notes],
        "submitted": local_minutes(core, row.created_at),
        "decided": local_minutes(core, row.decided_at),
        "decided_by": row.decided_by_name, "loan_id": loan_id,
        "annual_rate_pct": None if row.annual_rate is None else _percent(row.annual_rate),
        "suggested_rate_pct": suggested, "rate_cap_pct": _percent(policy.annual_rate_cap),
        "reject_reasons": REJECT_REASONS,
    }


def _rate(text: str, cap: Decimal) -> Decimal | None:
    """A rate typed in percent ("11.5") as a fraction, if in (0, cap] with two decimals."""
    try:
        value = Decimal(text.strip().removesuffix("%"))
    except InvalidOperation:
        return None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        return None
    return value / 100 if 0 < value / 100 <= cap else None


_DETAIL = (_application, "review/application.html")


@require(*MANAGER_ROLES)
async def approve(request: web.Request) -> web.StreamResponse:
    """Approve an application in review at the annual rate given in percent; it is listed."""
    core, application_id = _core(request), _id(request)
    form = await request.post()
    text = str(form.get("rate_pct", ""))[:20]
    rate = _rate(text, core.policy.annual_rate_cap)
    if rate is None:
        cap = _percent(core.policy.annual_rate_cap)
        return await _refuse(request, *_DETAIL, 400, "rate_out_of_range",
                             f"Enter the annual rate in percent, above 0 and at most {cap}%, "
                             f"with at most two decimals (for example 11.5).", rate_pct=text)
    try:
        async with core.uow() as uow:
            loan_id = await core.applications.approve(
                uow, application_id, request[STAFF_MEMBER].id, rate,
                novice_only=form.get("novice_only") == "on")
            await uow.commit()
    except DomainError as exc:
        return await _refuse(request, *_DETAIL, _status_of(exc), exc.code,
                             user_message(exc, "en"), rate_pct=text)
    return _done(request, "/review/applications", "approved", loan_id=loan_id)


@require(*MANAGER_ROLES)
async def reject(request: web.Request) -> web.StreamResponse:
    """Reject an application in review with a reason from the list and an optional note."""
    core, application_id = _core(request), _id(request)
    form = await request.post()
    reason, text = str(form.get("reason", "")), str(form.get("note", "")).strip()[:4000]
    if reason not in REJECT_REASONS:
        return await _refuse(request, *_DETAIL, 400, "choose_reason",
                             "Choose the reason for the rejection.", note=text)
    try:
        async with core.uow() as uow:
            await core.applications.reject(uow, application_id, request[STAFF_MEMBER].id,
                                           reason)
            if text:
                await core.applications.add_note(uow, application_id,
                                                 request[STAFF_MEMBER].id, text)
            await uow.commit()
    except DomainError as exc:
        return await _refuse(request, *_DETAIL, _status_of(exc), exc.code,
                             user_message(exc, "en"), note=text)
    return _done(request, "/review/applications", "rejected")


@require(*MANAGER_ROLES)
async def note(request: web.Request) -> web.StreamResponse:
    """Add a due-diligence note to an application."""
    core, application_id = _core(request), _id(request)
    text = str((await request.post()).get("note", "")).strip()[:4000]
    if not text:
        return await _refuse(request, *_DETAIL, 400, "empty_note", "Write the note first.")
    async with core.uow() as uow:
        if (await uow.conn.execute(select(loan_applications.c.id).where(
                loan_applications.c.id == application_id))).first() is None:
            raise web.HTTPNotFound()
        await core.applications.add_note(uow, application_id, request[STAFF_MEMBER].id, text)
        await uow.commit()
    return _done(request, f"/review/applications/{application_id}", "noted")


# 2. and 3. KYC exceptions, anti-fraud and AML flags ---------------------------------------


async def _kyc(request: web.Request, show: str | None = None) -> dict[str, Any]:
    """Identities rejected or stuck pending (``show=identities``), or anti-fraud flags."""
    if (show or _choice(request, "show", ("identities", "flags"))) == "flags":
        return {"show": "flags", **await _flags(request, FRAUD_KINDS, "/review/kyc",
                                                ("open", "cleared", "all"))}
    core = _core(request)
    status = _choice(request, "status", ("all", "rejected", "stuck"))
    retries = core.settings.kyc.retry_after_seconds
    i, later = identities.c, identities.alias("later")
    # stuck: every back-off step used, or not checked for longer than the longest step
    stuck = and_(i.status == "pending", or_(
        i.attempts >= len(retries),
        i.next_check_at <= core.clock.now() - timedelta(seconds=max(retries))))
    wanted = {"rejected": i.status == "rejected", "stuck": stuck,
              "all": or_(i.status == "rejected", stuck)}[status]
    query = (select(i.id, i.user_id, i.name_masked, i.id_masked, i.id_type, i.status, i.reason,
                    i.attempts, i.submitted_at, i.next_check_at, i.decided_at,
                    users.c.phone_masked)
             .select_from(identities.join(users, users.c.id == i.user_id))
             .where(wanted, ~exists().where(later.c.user_id == i.user_id, later.c.id > i.id))
             .order_by(i.submitted_at, i.id))
    f = risk_flags.c
    async with core.uow(read_only=True) as uow:
        rows, paging = await _paged(request, uow, query, "/review/kyc")
        flagged: dict[int, list[str]] = {}
        for user_id, kind in await uow.conn.execute(select(f.user_id, f.kind).where(
                f.user_id.in_([r.user_id for r in rows]), f.status == "open")):
            flagged.setdefault(user_id, []).append(kind)
    return {
        "show": "identities", "filters": {"status": status},
        "choices": {"status": ("all", "rejected", "stuck")},
        "items": [{"id": r.id, "user_id": r.user_id, "name": r.name_masked,
                   "document": r.id_masked, "id_type": r.id_type, "phone": r.phone_masked,
                   "status": r.status, "reason": r.reason, "attempts": r.attempts,
                   "submitted": local_minutes(core, r.submitted_at),
                   "next_check": local_minutes(core, r.next_check_at),
                   "decided": local_minutes(core, r.decided_at),
                   "open_flags": sorted(flagged.get(r.user_id, []))} for r in rows],
        **paging,
    }


async def _aml(request: web.Request) -> dict[str, Any]:
    return await _flags(request, AML_KINDS, "/review/aml", ("open", "escalated", "cleared",
                                                             "all"))


async def _flags(request: web.Request, kinds: tuple[str, ...], path: str,
                 statuses: tuple[str, ...]) -> dict[str, Any]:
    """Flags of ``kinds``; "open" includes escalated ones (an escalation leaves a flag open)."""
    core = _core(request)
    kind = _choice(request, "kind", ("", *kinds))
    status = _choice(request, "status", statuses)
    user_id = _number(request.query.get("user"))
    f, a = risk_flags.c, audit_log.c
    escalated = exists().where(a.subject_kind == "risk_flag", a.action == "risk_flag_escalated",
                               a.subject_id == cast(f.id, String))
    query = (select(f.id, f.kind, f.user_id, f.details, f.status, f.created_at, f.reviewed_at,
                    users.c.phone_masked, _masked_name(f.user_id).label("name_masked"),
                    escalated.label("escalated"))
             .select_from(risk_flags.outerjoin(users, users.c.id == f.user_id))
             .where(f.kind.in_([kind] if kind else kinds)).order_by(f.created_at, f.id))
    query = {"open": query.where(f.status == "open"), "cleared": query.where(
        f.status == "cleared"), "escalated": query.where(f.status == "open", escalated),
             "all": query}[status]
    query = query.where(f.user_id == user_id) if user_id is not None else query
    async with core.uow(read_only=True) as uow:
        rows, paging = await _paged(request, uow, query, path)
        trail: dict[str, list[dict[str, Any]]] = {}
        for t in await uow.conn.execute(
                select(a.subject_id, a.action, a.details, a.at, staff.c.display_name)
                .select_from(audit_log.outerjoin(staff, staff.c.id == a.actor_id))
                .where(a.subject_kind == "risk_flag",
                       a.subject_id.in_([str(r.id) for r in rows])).order_by(a.at, a.id)):
            trail.setdefault(t.subject_id, []).append({
                "action": t.action.removeprefix("risk_flag_"), "by": t.display_name,
                "at": local_minutes(core, t.at), "note": (t.details or {}).get("note")})
    return {
        "filters": {"kind": kind, "status": status, "user": user_id},
        "choices": {"kind": kinds, "status": statuses},
        "items": [{"id": r.id, "kind": r.kind, "user_id": r.user_id, "status": r.status,
                   "escalated": bool(r.escalated), "name": r.name_masked,
                   "phone": r.phone_masked, "raised": local_minutes(core, r.created_at),
                   "reviewed": local_minutes(core, r.reviewed_at),
                   "details": {k: v for k, v in (r.details or {}).items() if k in FLAG_DETAILS},
                   "trail": trail.get(str(r.id), [])} for r in rows],
        **paging,
    }


async def _flag_decision(request: web.Request, action: str) -> web.StreamResponse:
    core, flag_id = _core(request), _id(request)
    text = str((await request.post()).get("note", "")).strip()[:2000]
    f = risk_flags.c
    async with core.uow() as uow:
        flag = (await uow.conn.execute(select(f.kind, f.status).where(f.id == flag_id)
                                       .with_for_update())).first()
        if flag is None:
            raise web.HTTPNotFound()
        aml = flag.kind in AML_KINDS
        build: Builder = _aml if aml else functools.partial(_kyc, show="flags")
        template, location = (("review/aml.html", "/review/aml") if aml
                              else ("review/kyc.html", "/review/kyc"))
        refused = None
        if flag.status != "open":
            refused = (409, "flag_not_open", "This flag was already cleared.")
        elif not text:
            refused = (400, "empty_note", f"Write a note saying why the flag is {action}.")
        elif action == "escalated" and not aml:
            refused = (400, "not_escalable", "Only AML flags are escalated.")
        if refused is None:
            staff_id = request[STAFF_MEMBER].id
            if action == "cleared":
                await flags.clear_flag(uow, flag_id, staff_id)
            await audit.record(uow, f"risk_flag_{action}", "risk_flag", flag_id,
                               actor_kind="staff", actor_id=staff_id,
                               details={"kind": flag.kind, "note": text})
            await uow.commit()
    if refused is not None:
        return await _refuse(request, build, template, *refused, note=text)
    return _done(request, location, action, query=None if aml else {"show": "flags"})


@require(*MANAGER_ROLES)
async def clear_flag(request: web.Request) -> web.StreamResponse:
    """Clear an open flag with a note saying why."""
    return await _flag_decision(request, "cleared")


@require(*MANAGER_ROLES)
async def escalate_flag(request: web.Request) -> web.StreamResponse:
    """Escalate an open AML flag with a note (it stays open)."""
    return await _flag_decision(request, "escalated")


# 4. Collections -----------------------------------------------------------------------------


async def _collections(request: web.Request) -> dict[str, Any]:
    core = _core(request)
    stages = tuple(s.name for s in core.settings.servicing.collections_plan
                   if s.action == "task")
    stage = _choice(request, "stage", ("", *stages, "promise"))
    min_dpd = _number(request.query.get("min_dpd"))
    t, lo, u = servicing_tasks.c, loans.c, users.c
    query = (select(t.id, t.loan_id, t.stage, t.due_date, t.promise_date, t.promise_amount,
                    t.promise_status, t.created_at, lo.dpd, lo.amount, u.phone_masked,
                    _masked_name(t.borrower_id).label("name_masked"),
                    staff.c.display_name.label("assigned"))
             .select_from(servicing_tasks.join(loans, lo.id == t.loan_id)
                          .join(users, u.id == t.borrower_id)
                          .outerjoin(staff, staff.c.id == t.assigned_to))
             .where(t.kind == "collections", t.status == "open")
             .order_by(lo.dpd.desc(), t.id))
    if stage:
        query = query.where(t.stage.like("P%") if stage == "promise" else t.stage == stage)
    query = query.where(lo.dpd >= min_dpd) if min_dpd is not None else query
    async with core.uow(read_only=True) as uow:
        rows, paging = await _paged(request, uow, query, "/review/collections")
        owed: dict[int, Any] = {}
        for loan_id in dict.fromkeys(r.loan_id for r in rows):
            try:  # what the borrower owes now, as the borrower's own view shows it
                owed[loan_id] = await core.repayments.owed(uow, loan_id)
            except UnknownLoan:
                owed[loan_id] = None
    today = core.clock.today()
    return {
        "filters": {"stage": stage, "min_dpd": min_dpd},
        "choices": {"stage": (*stages, "promise"), "outcome": AGENT_OUTCOMES},
        "items": [{"id": r.id, "loan_id": r.loan_id, "stage": r.stage,
                   "task_due": r.due_date, "days_overdue": r.dpd,
                   "loan_amount": _money(core, r.amount),
                   "overdue": owed[r.loan_id].overdue.amount if owed[r.loan_id] else None,
                   "penalty": owed[r.loan_id].penalty.amount if owed[r.loan_id] else None,
                   "borrower": {"name": r.name_masked, "phone": r.phone_masked},
                   "promise": None if r.promise_date is None else {
                       "date": r.promise_date, "amount": _money(core, r.promise_amount),
                       "status": r.promise_status},
                   "assigned": r.assigned, "created": local_minutes(core, r.created_at)}
                  for r in rows],
        "promise_dates": {"min": today, "max": today + timedelta(days=30)},
        **paging,
    }


_COLLECTIONS = (_collections, "review/collections.html")


async def _open_task(uow: UnitOfWork, task_id: int) -> Any:
    t = servicing_tasks.c
    task = (await uow.conn.execute(select(t.loan_id, t.status).where(
        t.id == task_id, t.kind == "collections").with_for_update())).first()
    if task is None:
        raise web.HTTPNotFound()
    return task


@require(*MANAGER_ROLES)
async def log_outcome(request: web.Request) -> web.StreamResponse:
    """Log the outcome of a call or chat on a collections task (closes the task)."""
    core, task_id = _core(request), _id(request)
    form = await request.post()
    outcome, text = str(form.get("outcome", "")), str(form.get("notes", "")).strip()[:2000]
    if outcome not in AGENT_OUTCOMES:
        return await _refuse(request, *_COLLECTIONS, 400, "choose_outcome",
                             "Choose the outcome (a promise to pay has its own form).")
    async with core.uow() as uow:
        is_open = (await _open_task(uow, task_id)).status == "open"
        if is_open:
            await core.collections.log_outcome(uow, task_id, request[STAFF_MEMBER].id,
                                               outcome, text)
            await uow.commit()
    if not is_open:
        return await _refuse(request, *_COLLECTIONS, 409, "task_closed",
                             "This task is already closed.")
    return _done(request, "/review/collections", "outcome_logged")


@require(*MANAGER_ROLES)
async def promise(request: web.Request) -> web.StreamResponse:
    """Record the borrower's promise to pay an amount by a date (audited here)."""
    core, task_id = _core(request), _id(request)
    form = await request.post()
    day_text, amount_text = str(form.get("date", ""))[:10], str(form.get("amount", ""))[:32]
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        return await _refuse(request, *_COLLECTIONS, 400, "invalid_date",
                             "Enter the promised date as YYYY-MM-DD.")
    try:
        amount = parse_amount(amount_text, core.currency)
        async with core.uow() as uow:
            task = await _open_task(uow, task_id)
            await core.collections.promise(uow, task.loan_id, day, amount,
                                           staff_id=request[STAFF_MEMBER].id)
            await audit.record(uow, "promise_to_pay_recorded", "servicing_task", task_id,
                               actor_kind="staff", actor_id=request[STAFF_MEMBER].id,
                               details={"loan_id": task.loan_id, "date": day.isoformat(),
                                        "amount": str(amount.amount)})
            await uow.commit()
    except DomainError as exc:
        return await _refuse(request, *_COLLECTIONS, _status_of(exc), exc.code,
                             user_message(exc, "en"))
    return _done(request, "/review/collections", "promise_recorded")


QUEUES: tuple[tuple[str, Builder, str], ...] = (
    ("/applications", _applications, "review/applications.html"),
    ("/applications/{id:\\d+}", _application, "review/application.html"),
    ("/kyc", _kyc, "review/kyc.html"),
    ("/aml", _aml, "review/aml.html"),
    ("/collections", _collections, "review/collections.html"),
)
