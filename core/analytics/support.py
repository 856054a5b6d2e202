"""Support: contacts, bot containment, handovers, the queue, response and resolution times,
satisfaction and the questions the bot could not answer.

* **Contact**: a run of a chat's inbound messages (``inbound_log``) with less than
  ``CONTACT_GAP`` (30 minutes, the dialog's idle time) between two of them - or later ones,
  while an agent is still on it or within 30 minutes of the agent closing it (the rating). It
  belongs to the period its first message falls in and lasts until the person's next
  contact starts.
  Contacts are grouped by the conversation's channel and filtered by the chat's first touch
  (``conversations.channel``, ``channel_identities.campaign``).
* **Human** contact: a handover (``support_handover`` event), an agent's claim (audit
  ``conversation_claimed``) or an agent's message (``chat_messages`` sender ``agent``) happened
  in it. Handover rate = human contacts / contacts.
* **Contained** by the bot: not human, and the same person (the same chat if anonymous) did not
  come back within ``CONTAINMENT_DAYS`` (7) after the contact's last message. Containment =
  contained / contacts decided (a contact whose 7 days are not over yet is ``pending``).
* **Queue entry**: the ``support_handover`` event (reason in its props); for a conversation
  still queued or held, ``conversations.queued_at`` and ``handover_reason``. Waiting = claim -
  queue entry. First response = first agent message - queue entry (``human``) or - the contact's
  first message (``end_to_end``); resolution likewise up to the agent's resolve (audit
  ``conversation_resolved``). Each in calendar seconds and in business seconds (time the desk
  is open, ``support.hours`` / ``days`` / ``holidays``, ``core/domain/hours.py``); median and
  p90 (nearest rank), with n.
* **Satisfaction**: ``support_rated`` events (1-5 stars asked after a resolve) in the period;
  response rate = ratings / resolves. Ratings carry the user, not the chat: under a filter they
  are kept by the user's first touch, and anonymous ones are left out.
* **Unanswered questions**: ``faq_misses`` (no chat is recorded with them: never filtered).

Until the dialog engine records ``support_handover`` (see ``docs/metrics.md``), the reason and
queue entry of finished handovers are unknown ("unknown"; not in waiting or human-only times).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Any

from sqlalchemy import func, select

from config.settings import Settings
from core.adapters.tables import (
    analytics_events,
    audit_log,
    channel_identities,
    chat_messages,
    conversations,
    faq_misses,
    inbound_log,
    users,
)
from core.adapters.uow import UnitOfWork
from core.analytics.filters import Filters, attributed, epoch, joined, label
from core.analytics.numbers import compared, ratio, share, spread
from core.domain.hours import BusinessHours, support_hours

CONTACT_GAP = timedelta(minutes=30)
GAP = CONTACT_GAP.total_seconds()
CONTAINMENT_DAYS = 7
HANDOVER_EVENT = "support_handover"
RATED_EVENT = "support_rated"
CHUNK = 5000


class Contact:
    """One contact; times are seconds since 1970 (UTC). What happened in it is recorded only
    for the few contacts where something did (the lists start as empty tuples)."""

    __slots__ = ("agent_messages", "channel", "claims", "closes", "conversation_id", "end",
                 "handovers", "next_start", "person", "resolves", "start")
    KINDS = ("handovers", "claims", "agent_messages", "resolves", "closes")

    def __init__(self, conversation_id: int, channel: str, person: tuple[str, int],
                 start: float, end: float) -> None:
        self.conversation_id, self.channel, self.person = conversation_id, channel, person
        self.start, self.end = start, end
        self.next_start: float | None = None
        self.handovers: Sequence[tuple[float, str]] = ()
        self.claims: Sequence[float] = ()
        self.agent_messages: Sequence[float] = ()
        self.resolves: Sequence[float] = ()
        self.closes: Sequence[float] = ()  # resolved or handed back

    def note(self, kind: str, value: Any) -> None:
        setattr(self, kind, sorted([*getattr(self, kind), value]))

    @property
    def human(self) -> bool:
        return bool(self.handovers or self.claims or self.agent_messages)

    def holds(self, later: Contact) -> bool:
        """Whether ``later`` (the same chat's next run of messages) is still this contact: an
        agent was still on it, or it came right after the agent closed it (the rating)."""
        if later.conversation_id != self.conversation_id or not self.human:
            return False
        if not self.closes:
            return True
        return later.start - max(self.closes) < GAP

    def absorb(self, later: Contact) -> None:
        self.end, self.next_start = later.end, later.next_start
        for kind in self.KINDS:
            setattr(self, kind, sorted([*getattr(self, kind), *getattr(later, kind)]))


async def contacts(uow: UnitOfWork, f: Filters) -> list[Contact]:
    """The contacts that started in the period, each with what happened in it."""
    lo, hi = f.utc(uow.clock.tz)
    since, until = lo - CONTACT_GAP, hi + timedelta(days=CONTAINMENT_DAYS + 1)
    il, cv, ci = inbound_log.c, conversations.c, channel_identities.c
    wrote = select(il.conversation_id).where(il.at >= since, il.at < until)  # not every chat
    chats = {cid: (label(channel), ("user", user) if user is not None else ("chat", cid))
             for cid, channel, user in (await uow.conn.execute(
                 select(cv.id, cv.channel, ci.user_id)
                 .select_from(conversations.outerjoin(channel_identities, (
                     ci.channel == cv.channel) & (ci.external_id == cv.chat_id)))
                 .where(cv.id.in_(wrote), *attributed(f, cv.channel, ci.campaign)))).all()}
    by_person: dict[tuple[str, int], list[Contact]] = defaultdict(list)
    for conversation_id, text in (await uow.conn.execute(
            select(il.conversation_id, joined(uow, epoch(uow, il.at)))
            .where(il.at >= since, il.at < until).group_by(il.conversation_id))).all():
        if conversation_id not in chats:
            continue
        channel, person = chats[conversation_id]
        runs = by_person[person]
        times = sorted(map(float, text.split(",")))
        start = previous = times[0]
        for at in times[1:]:
            if at - previous >= GAP:
                runs.append(Contact(conversation_id, channel, person, start, previous))
                start = at
            previous = at
        runs.append(Contact(conversation_id, channel, person, start, previous))
    first, last = lo.timestamp(), hi.timestamp()
    kept: list[list[Contact]] = []
    for runs in by_person.values():
        if len(runs) > 1:
            runs.sort(key=lambda c: c.start)
            for this, following in pairwise(runs):
                this.next_start = following.start
        # what happens after the period matters only to the first contact after it
        later = next((n for n, c in enumerate(runs) if c.start >= last), len(runs))
        kept.append(runs[:later + 1])
    await _what_happened(uow, [c for runs in kept for c in runs], since, until)
    found: list[Contact] = []
    for runs in kept:
        merged: list[Contact] = []
        for contact in runs:
            if merged and merged[-1].holds(contact):
                merged[-1].absorb(contact)
            else:
                merged.append(contact)
        found += [c for c in merged if first <= c.start < last]
    return sorted(found, key=lambda c: c.start)


async def _what_happened(uow: UnitOfWork, every: list[Contact], since: datetime,
                         until: datetime) -> None:
    """Handovers, claims, agent messages, resolves and hand-backs, each given to the contact
    running in its conversation at that moment."""
    if not every:
        return
    a, e, m, cv = audit_log.c, analytics_events.c, chat_messages.c, conversations.c
    by_conversation: dict[int, list[Contact]] = defaultdict(list)
    for contact in sorted(every, key=lambda c: c.start):
        by_conversation[contact.conversation_id].append(contact)

    def owner(conversation_id: int, at: float) -> Contact | None:
        for contact in reversed(by_conversation.get(conversation_id, [])):
            if contact.start <= at:
                return contact if contact.next_start is None or at < contact.next_start \
                    else None
        return None

    for row in (await uow.conn.execute(select(e.props, epoch(uow, e.occurred_at)).where(
            e.name == HANDOVER_EVENT, e.occurred_at >= since, e.occurred_at < until))).all():
        props, at = row[0] or {}, row[1]
        contact = owner(int(props.get("conversation_id", 0)), at)
        if contact is not None:
            contact.note("handovers", (at, str(props.get("reason") or "unknown")))
    touched: set[int] = set()
    for action, subject, at in (await uow.conn.execute(
            select(a.action, a.subject_id, epoch(uow, a.at)).where(
                a.subject_kind == "conversation", a.at >= since, a.at < until,
                a.action.in_(("conversation_claimed", "conversation_resolved",
                              "conversation_handed_back"))))).all():
        contact = owner(int(subject), at)
        if contact is None:
            continue
        touched.add(contact.conversation_id)
        if action == "conversation_claimed":
            contact.note("claims", at)
        else:
            contact.note("closes", at)
            if action == "conversation_resolved":
                contact.note("resolves", at)
    live = {r[0]: r for r in (await uow.conn.execute(
        select(cv.id, epoch(uow, cv.queued_at), cv.handover_reason).where(
            cv.mode.in_(("queued", "human"))))).all()}
    touched |= {c.conversation_id for c in every if c.handovers} | (
        set(live) & set(by_conversation))
    ids = sorted(touched)
    for part in (ids[i:i + CHUNK] for i in range(0, len(ids), CHUNK)):
        for conversation_id, at in (await uow.conn.execute(
                select(m.conversation_id, epoch(uow, m.at)).where(
                    m.conversation_id.in_(part), m.sender == "agent", m.at >= since,
                    m.at < until))).all():
            contact = owner(conversation_id, at)
            if contact is not None:
                contact.note("agent_messages", at)
    for conversation_id, queued_at, reason in live.values():  # a handover still open
        if queued_at is None:
            continue
        contact = owner(conversation_id, queued_at)
        if contact is not None and not contact.handovers:
            contact.note("handovers", (queued_at, reason or "unknown"))


def business_seconds(hours: BusinessHours, tz: Any, start: datetime, end: datetime) -> float:
    """Seconds between two moments during which the support desk is open."""
    if end <= start:
        return 0.0
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    seconds = 0.0
    day = local_start.date()
    while day <= local_end.date():
        if day not in hours.holidays and day.isoweekday() in hours.days:
            opens = datetime.combine(day, hours.start, tz)
            closes = (datetime.combine(day, hours.end, tz) if hours.end is not None
                      else datetime.combine(day + timedelta(days=1), time(0), tz))
            overlap = (min(closes, local_end) - max(opens, local_start)).total_seconds()
            seconds += max(0.0, overlap)
        day += timedelta(days=1)
    return seconds


def _times(pairs: list[tuple[float, float]], hours: BusinessHours, tz: Any) -> dict[str, Any]:
    def moment(seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    return {"calendar": spread([b - a for a, b in pairs]),
            "business": spread([business_seconds(hours, tz, moment(a), moment(b))
                                for a, b in pairs])}


async def period(uow: UnitOfWork, f: Filters, *, settings: Settings,
                 found: list[Contact] | None = None) -> dict[str, Any]:
    """One period's support figures (see ``support``); ``found``: its contacts, if read
    already."""
    now = uow.clock.now().timestamp()
    hours, tz = support_hours(settings.support), uow.clock.tz
    window = timedelta(days=CONTAINMENT_DAYS).total_seconds()
    if found is None:
        found = await contacts(uow, f)
    by_channel: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    reasons: dict[str, int] = defaultdict(int)
    decided = contained = 0
    waits: list[tuple[float, float]] = []
    first_human: list[tuple[float, float]] = []
    first_e2e: list[tuple[float, float]] = []
    resolved_human: list[tuple[float, float]] = []
    resolved_e2e: list[tuple[float, float]] = []
    for c in found:
        row = by_channel[c.channel]
        row["contacts"] += 1
        human = c.human
        back = c.next_start is not None and c.next_start <= c.end + window
        if human or back or c.end + window <= now:
            decided += 1
            row["decided"] += 1
            if not human and not back:
                contained += 1
                row["contained"] += 1
        if not human:
            continue
        row["human"] += 1
        entry = c.handovers[0][0] if c.handovers else None
        reasons[c.handovers[0][1] if c.handovers else "unknown"] += 1
        claim = next((t for t in c.claims if entry is None or t >= entry), None)
        reply = next((t for t in c.agent_messages if entry is None or t >= entry), None)
        done = next((t for t in c.resolves if reply is None or t >= reply), None)
        if entry is not None and claim is not None:
            waits.append((entry, claim))
        if reply is not None:
            first_e2e.append((c.start, reply))
            if entry is not None:
                first_human.append((entry, reply))
        if done is not None:
            resolved_e2e.append((c.start, done))
            if entry is not None:
                resolved_human.append((entry, done))
    human = sum(r["human"] for r in by_channel.values())
    ratings, resolves = await rated(uow, f)
    return {
        "contacts": len(found),
        "by_channel": [{"channel": k, "contacts": v["contacts"], "human": v["human"],
                        "handover_rate": share(v["human"], v["contacts"]),
                        "containment": share(v["contained"], v["decided"])}
                       for k, v in sorted(by_channel.items())],
        "containment": ratio(contained, decided, (
            f"contacts with no handover, claim or agent message and no new contact from the "
            f"person within {CONTAINMENT_DAYS} days / contacts whose {CONTAINMENT_DAYS} days "
            "are over (or that came back or went to a human)")),
        "pending": len(found) - decided,
        "handover_rate": ratio(human, len(found), "contacts that reached a human / contacts"),
        "handover_reasons": dict(sorted(reasons.items())),
        "queue_wait": _times(waits, hours, tz),
        "first_response": {"human": _times(first_human, hours, tz),
                           "end_to_end": _times(first_e2e, hours, tz)},
        "resolution": {"human": _times(resolved_human, hours, tz),
                       "end_to_end": _times(resolved_e2e, hours, tz)},
        "satisfaction": satisfaction(ratings, resolves),
    }


async def rated(uow: UnitOfWork, f: Filters) -> tuple[list[int], int]:
    """The ratings given in the period, and the resolves they answer."""
    lo, hi = f.utc(uow.clock.tz)
    e, u, a, cv, ci = (analytics_events.c, users.c, audit_log.c, conversations.c,
                       channel_identities.c)
    query = select(e.props).where(e.name == RATED_EVENT, e.occurred_at >= lo,
                                  e.occurred_at < hi)
    where = attributed(f, u.first_channel, u.first_campaign)
    if where:
        query = query.select_from(analytics_events.join(users, u.id == e.user_id)).where(*where)
    ratings = [int((row.props or {}).get("rating", 0))
               for row in (await uow.conn.execute(query)).all()]
    resolves = 0
    chat_where = attributed(f, cv.channel, ci.campaign)
    rows = await uow.conn.execute(select(a.subject_id).where(
        a.action == "conversation_resolved", a.subject_kind == "conversation", a.at >= lo,
        a.at < hi))
    ids = [int(r.subject_id) for r in rows]
    if not chat_where:
        resolves = len(ids)
    else:
        for part in (ids[i:i + CHUNK] for i in range(0, len(ids), CHUNK)):
            kept = set((await uow.conn.execute(
                select(cv.id).select_from(conversations.outerjoin(channel_identities, (
                    ci.channel == cv.channel) & (ci.external_id == cv.chat_id)))
                .where(cv.id.in_(part), *chat_where))).scalars())
            resolves += sum(1 for i in part if i in kept)
    return [r for r in ratings if 1 <= r <= 5], resolves


def satisfaction(ratings: list[int], resolves: int) -> dict[str, Any]:
    """The distribution and average of ratings, and the share of resolves rated."""
    return {"ratings": len(ratings),
            "distribution": {str(n): ratings.count(n) for n in range(1, 6)},
            "average": None if not ratings else (Decimal(sum(ratings)) / len(ratings)).quantize(
                Decimal("0.01"), ROUND_HALF_UP),
            "response_rate": ratio(len(ratings), resolves, "ratings / conversations resolved")}


async def queue_now(uow: UnitOfWork, f: Filters) -> dict[str, Any]:
    """The human queue at this moment: ``{"waiting", "snoozed", "longest_wait", "median_wait"
    (seconds), "by_reason": {reason: n}, "with_agents"}`` (chats filtered by first touch)."""
    now = uow.clock.now()
    cv, ci = conversations.c, channel_identities.c
    rows = (await uow.conn.execute(
        select(cv.mode, cv.queued_at, cv.snoozed_until, cv.updated_at, cv.handover_reason)
        .select_from(conversations.outerjoin(channel_identities, (
            ci.channel == cv.channel) & (ci.external_id == cv.chat_id)))
        .where(cv.mode.in_(("queued", "human")), *attributed(f, cv.channel, ci.campaign))
    )).all()
    waiting = [r for r in rows if r.mode == "queued"
               and (r.snoozed_until is None or r.snoozed_until <= now)]
    seconds = [(now - (r.snoozed_until or r.queued_at or r.updated_at)).total_seconds()
               for r in waiting]
    by_reason: dict[str, int] = defaultdict(int)
    for r in waiting:
        by_reason[r.handover_reason or "unknown"] += 1
    stats = spread(seconds)
    return {"waiting": len(waiting),
            "snoozed": sum(1 for r in rows if r.mode == "queued") - len(waiting),
            "with_agents": sum(1 for r in rows if r.mode == "human"),
            "longest_wait": round(max(seconds)) if seconds else None,
            "median_wait": stats["median"], "by_reason": dict(sorted(by_reason.items()))}


async def unanswered(uow: UnitOfWork, f: Filters, limit: int = 20) -> list[dict[str, Any]]:
    """The questions the FAQ could not answer most often in the period (same text, case and
    spaces aside): ``[{"text", "count", "locale", "last_at", "best_article"}]``."""
    lo, hi = f.utc(uow.clock.tz)
    q = faq_misses.c
    key = func.lower(func.trim(q.text))
    rows = await uow.conn.execute(
        select(func.min(q.text).label("text"), func.count().label("n"),
               func.min(q.locale).label("locale"), func.max(q.at).label("last_at"),
               func.max(q.best_article).label("best_article"))
        .where(q.at >= lo, q.at < hi).group_by(key)
        .order_by(func.count().desc(), func.max(q.at).desc()).limit(limit))
    return [{"text": r.text, "count": int(r.n), "locale": r.locale,
             "last_at": r.last_at.isoformat() if r.last_at else None,
             "best_article": r.best_article} for r in rows]


async def support(uow: UnitOfWork, f: Filters, *, settings: Settings) -> dict[str, Any]:
    """The support page: ``{"current": figures, "previous": figures, "headline": {"contacts",
    "containment", "handover_rate", "first_response_median", "satisfaction": {"value",
    "previous"}}, "queue_now": queue_now(), "unanswered": unanswered()}``; figures are
    ``{"contacts", "by_channel": [{"channel", "contacts", "human", "handover_rate",
    "containment"}], "containment", "pending", "handover_rate", "handover_reasons",
    "queue_wait", "first_response": {"human", "end_to_end"}, "resolution": {"human",
    "end_to_end"}, "satisfaction": {"ratings", "distribution", "average",
    "response_rate"}}``, each time ``{"calendar", "business": {"n", "median", "p90"}}``."""
    before = f.previous()
    both = await contacts(uow, replace(f, start=before.start))  # one read for both periods
    split = f.utc(uow.clock.tz)[0].timestamp()
    now = await period(uow, f, settings=settings, found=[c for c in both if c.start >= split])
    then = await period(uow, before, settings=settings,
                        found=[c for c in both if c.start < split])
    return {
        "current": now, "previous": then,
        "headline": {
            "contacts": compared(now["contacts"], then["contacts"]),
            "containment": compared(now["containment"]["value"], then["containment"]["value"]),
            "handover_rate": compared(now["handover_rate"]["value"],
                                      then["handover_rate"]["value"]),
            "first_response_median": compared(
                now["first_response"]["end_to_end"]["business"]["median"],
                then["first_response"]["end_to_end"]["business"]["median"]),
            "satisfaction": compared(now["satisfaction"]["average"],
                                     then["satisfaction"]["average"])},
        "queue_now": await queue_now(uow, f),
        "unanswered": await unanswered(uow, f),
    }
