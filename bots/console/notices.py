"""Notifications for managers: the outbox at a glance (``/review/notices``) and segment
broadcasts (``/review/broadcasts``).

The operations view counts outbox notices by template, channel and status (pending, deferred,
queued, sent, failed, muted) written in the last 24 hours, 7 days (the default), 30 days or ever,
with the earliest moment deferred ones may go, and the 20 latest failures; its numbers come only
from ``core.notifications`` (``ops_summary``, ``ops_totals``, ``recent_failures``). A failure
names its user by id alone.

Broadcasts are listed with their reach and delivery; a manager writes one (name, Chinese and
English text, up to three buttons, an optional send time in business time, a segment), counts
the segment's audience first if they like (a number, never who), sends a draft now or cancels a
draft or scheduled one. Sending marks the broadcast as sending and commits, then writes its
notices in chunks (``core.broadcasts.resume``); a send cut short is finished by the scheduler.
Sending and cancelling are audited here, where the staff member is known.

Like the review queues (``bots/console/review.py``): managers and admins only, CSRF on every
POST, a JSON twin under ``/review/api``, a redirect with a ``notice`` after a change, and a refusal
renders the page again with the localized reason (400, or 409 when the broadcast has already gone
out or was cancelled) and changes nothing; ``Accept: application/json`` gets JSON instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bots.console.common import json_reply, local_minutes, wants_json
from bots.web.auth import MANAGER_ROLES, STAFF_MEMBER, Handler, render, require
from core.bootstrap import Core
from core.domain.errors import DomainError
from core.messages import user_message
from core.services import audit
from core.services.broadcasts import (
    BUTTONS,
    CHANNELS,
    LOCALES,
    RISK_LEVELS,
    ROLES,
    TEXT_LIMIT,
    Segment,
)
from core.services.notifications import totals_of

Builder = Callable[[web.Request], Awaitable[dict[str, Any]]]
NOTICES_CORE = web.AppKey("notices_core", Core)
NOTICES_PAGE, BROADCASTS_PAGE = "review/notices.html", "review/broadcasts.html"
SINCE = {"24h": ("last 24 hours", timedelta(hours=24)), "7d": ("last 7 days", timedelta(days=7)),
         "30d": ("last 30 days", timedelta(days=30)), "all": ("all time", None)}
DEFAULT_SINCE = "7d"
FAILURES = 20
ERROR_CHARS = 300  # a sender's error can be long; the start says what went wrong
SEGMENT_FIELDS = ("role", "risk_levels", "locales", "channels", "min_idle_balance",
                  "inactive_days", "no_first_investment", "tiers")
NOTICES = {
    "created": "Broadcast saved as a draft.",
    "scheduled": "Broadcast scheduled.",
    "sent": "Broadcast sent: its notices are in the outbox.",
    "cancelled": "Broadcast cancelled.",
}


def setup_notices(app: web.Application, core: Core) -> None:
    """Mount the pages; ``bots.web.auth.setup_auth`` must have been called on ``app``."""
    app[NOTICES_CORE] = core
    r = app.router
    for path, build, template in (("/notices", _notices, NOTICES_PAGE),
                                  ("/broadcasts", _broadcasts, BROADCASTS_PAGE)):
        page, api = _views(build, template)
        r.add_get(f"/review{path}", page)
        r.add_get(f"/review/api{path}", api)
    r.add_post("/review/broadcasts", create)
    r.add_post("/review/broadcasts/preview", preview)
    r.add_post("/review/broadcasts/{id:\\d+}/send", send)
    r.add_post("/review/broadcasts/{id:\\d+}/cancel", cancel)


def _views(build: Builder, template: str) -> tuple[Handler, Handler]:
    @require(*MANAGER_ROLES)
    async def page(request: web.Request) -> web.StreamResponse:
        """The view as a page."""
        return render(request, template, **await build(request), error=None, form={},
                      audience=None, notice=NOTICES.get(request.query.get("notice", "")))

    @require(*MANAGER_ROLES)
    async def api(request: web.Request) -> web.StreamResponse:
        """The view as JSON."""
        return json_reply(await build(request))

    return page, api


# Helpers ------------------------------------------------------------------------------------


def _core(request: web.Request) -> Core:
    return request.app[NOTICES_CORE]





def _done(request: web.Request, notice: str, **payload: Any) -> web.Response:
    """The change is made: back to the broadcasts with a notice (or JSON)."""
    if wants_json(request):
        return json_reply({"ok": True, "notice": notice, **payload})
    raise web.HTTPSeeOther(f"/review/broadcasts?{urlencode({'notice': notice})}")


async def _refuse(request: web.Request, status: int, code: str, message: str,
                  form: dict[str, Any] | None = None) -> web.StreamResponse:
    """The change is refused: the broadcasts page again with ``message`` (or JSON)."""
    if wants_json(request):
        return json_reply({"error": code, "message": message}, status=status)
    return render(request, BROADCASTS_PAGE, status=status, **await _broadcasts(request),
                  error=message, notice=None, form=form or {}, audience=None)


async def _refuse_domain(request: web.Request, exc: DomainError,
                         form: dict[str, Any] | None = None) -> web.StreamResponse:
    status = 409 if exc.params.get("reason") == "state" else 400
    return await _refuse(request, status, exc.code, user_message(exc, "en"), form)


# 1. The operations view ---------------------------------------------------------------------


async def _notices(request: web.Request) -> dict[str, Any]:
    core = _core(request)
    since_key = request.query.get("since", "")
    since_key = since_key if since_key in SINCE else DEFAULT_SINCE
    window = SINCE[since_key][1]
    since = None if window is None else core.clock.now() - window
    notifications = core.notifications
    async with core.uow(read_only=True) as uow:
        summary = await notifications.ops_summary(uow, since)
        totals = totals_of(summary)  # the same rows, not a second query
        failures = await notifications.recent_failures(uow, FAILURES)
    return {
        "filters": {"since": since_key},
        "choices": {"since": [(key, label) for key, (label, _) in SINCE.items()]},
        "since": local_minutes(core, since),
        "statuses": list(totals),
        "totals": totals,
        "rows": _by_template(core, summary),
        "failures": [{"id": f["id"], "user_id": f["user_id"], "template": f["template"],
                      "channel": f["channel"] or "-",
                      "error": (f["last_error"] or "")[:ERROR_CHARS],
                      "written": local_minutes(core, f["created_at"])} for f in failures],
    }


def _by_template(core: Core, summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per template and channel with a count per status, and when the first deferred
    notice of the row may go."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in summary:
        row = rows.setdefault((entry["template"], entry["channel"]), {
            "template": entry["template"], "group": entry["group"],
            "channel": entry["channel"], "counts": {}, "total": 0, "deferred_until": None})
        row["counts"][entry["status"]] = entry["count"]
        row["total"] += entry["count"]
        if entry["next_at"] is not None:
            row["deferred_until"] = local_minutes(core, entry["next_at"])
    return list(rows.values())


# 2. Broadcasts ------------------------------------------------------------------------------


async def _broadcasts(request: web.Request) -> dict[str, Any]:
    core = _core(request)
    async with core.uow(read_only=True) as uow:
        rows = await core.broadcasts.list(uow)
    return {
        "items": [{
            "id": b["id"], "name": b["name"], "status": b["status"], "segment": b["segment"],
            "buttons": b["buttons"] or [], "text_zh": b["text_zh"], "text_en": b["text_en"],
            "created_by": b["created_by"], "created": local_minutes(core, b["created_at"]),
            "send_at": local_minutes(core, b["send_at"]),
            "finished": local_minutes(core, b["finished_at"]),
            "audience": b["audience"], "reach": b["reach"], "sent": b["sent"],
            "failed": b["failed"], "muted": b["muted"], "waiting": b["waiting"],
            "converted": b["converted"], "converted_top_up": b["converted_top_up"],
            "converted_investment": b["converted_investment"]} for b in rows],
        "choices": {"buttons": BUTTONS, "roles": ROLES, "risk_levels": RISK_LEVELS,
                    "locales": LOCALES, "channels": CHANNELS,
                    "tiers": tuple(range(len(core.settings.support.vip_invested) + 1))},
        "text_limit": TEXT_LIMIT,
        "time_zone": str(core.clock.tz),
        "earliest_send": core.clock.local().strftime("%Y-%m-%dT%H:%M"),
    }


def _typed(post: Any) -> dict[str, Any]:
    """What the manager typed (``await request.post()``), bounded, to check and to fill the
    form again if refused."""
    def text(name: str, limit: int) -> str:
        value = post.get(name, "")
        return value[:limit] if isinstance(value, str) else ""

    def chosen(name: str) -> list[str]:
        return [v for v in post.getall(name, []) if isinstance(v, str)][:20]

    long = TEXT_LIMIT * 4  # past the limit, so the service refuses rather than cuts
    return {"name": text("name", 200), "text_zh": text("text_zh", long),
            "text_en": text("text_en", long), "buttons": chosen("buttons"),
            "send_at": text("send_at", 40).strip(), "role": text("role", 20),
            "risk_levels": chosen("risk_levels"), "locales": chosen("locales"),
            "channels": chosen("channels"),
            "min_idle_balance": text("min_idle_balance", 40).strip(),
            "inactive_days": text("inactive_days", 10).strip(),
            "no_first_investment": post.get("no_first_investment") == "on",
            "tiers": chosen("tiers")}


def _send_at(core: Core, text: str) -> datetime | None:
    """A ``datetime-local`` value read in business time; empty: a draft. ValueError if bad."""
    if not text:
        return None
    local = datetime.fromisoformat(text)
    if local.tzinfo is not None:
        raise ValueError(text)
    return local.replace(tzinfo=core.clock.tz).astimezone(UTC)


@require(*MANAGER_ROLES)
async def create(request: web.Request) -> web.StreamResponse:
    """Save a broadcast as a draft, or scheduled when a send time is given."""
    core = _core(request)
    form = _typed(await request.post())
    try:
        send_at = _send_at(core, form["send_at"])
    except ValueError:
        return await _refuse(request, 400, "invalid_send_at", "Enter the send time as a date "
                             "and a time, or leave it empty to save a draft.", form)
    try:
        segment = Segment.from_dict({k: form[k] for k in SEGMENT_FIELDS})
        async with core.uow() as uow:
            broadcast_id = await core.broadcasts.create(
                uow, name=form["name"], segment=segment, text_zh=form["text_zh"],
                text_en=form["text_en"], buttons=form["buttons"], send_at=send_at,
                staff_id=request[STAFF_MEMBER].id)
            await uow.commit()
    except DomainError as exc:
        return await _refuse_domain(request, exc, form)
    return _done(request, "scheduled" if send_at else "created", broadcast_id=broadcast_id)


@require(*MANAGER_ROLES)
async def preview(request: web.Request) -> web.StreamResponse:
    """How many users the segment picks now (a count, never who)."""
    core = _core(request)
    form = _typed(await request.post())
    try:
        segment = Segment.from_dict({k: form[k] for k in SEGMENT_FIELDS})
    except DomainError as exc:
        return await _refuse_domain(request, exc, form)
    async with core.uow(read_only=True) as uow:
        audience = len(await core.broadcasts.audience(uow, segment))
    if wants_json(request):
        return json_reply({"ok": True, "audience": audience})
    return render(request, BROADCASTS_PAGE, **await _broadcasts(request), error=None,
                  notice=None, form=form, audience=audience)


@require(*MANAGER_ROLES)
async def send(request: web.Request) -> web.StreamResponse:
    """Send a draft or scheduled broadcast now: one outbox notice per user of its audience."""
    core, broadcast_id = _core(request), int(request.match_info["id"])
    try:
        async with core.uow() as uow:
            if await core.broadcasts.get(uow, broadcast_id) is None:
                raise web.HTTPNotFound()
            await core.broadcasts.start(uow, broadcast_id)
            await audit.record(uow, "broadcast_sent", "broadcast", broadcast_id,
                               actor_kind="staff", actor_id=request[STAFF_MEMBER].id)
            await uow.commit()
    except DomainError as exc:
        return await _refuse_domain(request, exc)
    written = await core.broadcasts.resume(core.uow, broadcast_id)
    return _done(request, "sent", broadcast_id=broadcast_id, written=written)


@require(*MANAGER_ROLES)
async def cancel(request: web.Request) -> web.StreamResponse:
    """Cancel a draft or scheduled broadcast."""
    core, broadcast_id = _core(request), int(request.match_info["id"])
    try:
        async with core.uow() as uow:
            if await core.broadcasts.get(uow, broadcast_id) is None:
                raise web.HTTPNotFound()
            await core.broadcasts.cancel(uow, broadcast_id)
            await audit.record(uow, "broadcast_cancelled", "broadcast", broadcast_id,
                               actor_kind="staff", actor_id=request[STAFF_MEMBER].id)
            await uow.commit()
    except DomainError as exc:
        return await _refuse_domain(request, exc)
    return _done(request, "cancelled", broadcast_id=broadcast_id)
