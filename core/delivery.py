"""Deliveries: messages for chat channels, kept until the channel confirms it sent them.

A bot's replies, an agent's messages and rendered notices are written with ``add_many`` in the
transaction that decided them; the channel's sender then ``claim``s due messages (leased for
``delivery.lease_seconds``), sends them and reports back with ``sent``, ``retry`` or ``drop``.
A process that dies holding a lease loses nothing: when the lease runs out the messages are due
again (at-least-once: a message sent just before a crash, whose confirmation was lost, is sent a
second time; Telegram offers no idempotency key to prevent that).

A message that carries an outbox notice (``outbox_id``) reports its outcome to the notice in the
same statement batch: ``sent`` when the channel confirmed it, ``failed`` when it was dropped.
Messages are claimed by ``priority`` (0 conversation, 1 notice, 2 marketing), then by age, and a
sender can cap how much marketing it holds, so a broadcast never delays a reply or a reminder.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update

from core.adapters.tables import channel_identities, deliveries, outbox
from core.adapters.uow import UnitOfWork

KINDS = ("reply", "agent", "notice")
CONVERSATION, NOTICE, MARKETING = 0, 1, 2  # priorities


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    channel: str
    chat_id: str
    text: str
    buttons: list[dict[str, str]] | None
    kind: str
    attempts: int
    outbox_id: int | None = None
    priority: int = CONVERSATION


async def add_many(uow: UnitOfWork, messages: list[dict[str, Any]]) -> None:
    """Queue messages (``channel``, ``chat_id``, ``text``, optional ``buttons`` as
    ``[{"id", "label"}]``, ``kind``, ``outbox_id``, ``priority``, ``not_before``) in the
    caller's transaction."""
    if not messages:
        return
    now = uow.clock.now()
    await uow.conn.execute(deliveries.insert(), [
        {"channel": m["channel"], "chat_id": m["chat_id"], "text": m["text"],
         "buttons": m.get("buttons") or None, "kind": m.get("kind", "reply"),
         "status": "pending", "attempts": 0, "not_before": m.get("not_before") or now,
         "created_at": now, "outbox_id": m.get("outbox_id"),
         "priority": m.get("priority", NOTICE if m.get("outbox_id") else CONVERSATION)}
        for m in messages])


async def claim(uow: UnitOfWork, channel: str, limit: int, lease: timedelta, *,
                marketing: int | None = None) -> list[Delivery]:
    """Due messages of ``channel``, by priority then age, leased to the caller; at most
    ``marketing`` of them marketing (None: no cap). On PostgreSQL rows another process is
    claiming are skipped, so several senders could share the work."""
    d = deliveries.c
    now = uow.clock.now()
    due_now = (d.channel == channel) & (d.not_before <= now) & or_(
        d.status == "pending", (d.status == "sending") & (d.lease_until < now))
    columns = (d.id, d.chat_id, d.text, d.buttons, d.kind, d.attempts, d.outbox_id, d.priority)
    queries = [select(*columns).where(due_now, d.priority < MARKETING)
               .order_by(d.priority, d.id).limit(limit)]
    if marketing is None or marketing > 0:
        queries.append(select(*columns).where(due_now, d.priority >= MARKETING)
                       .order_by(d.priority, d.id).limit(limit if marketing is None
                                                         else min(limit, marketing)))
    rows = []
    for query in queries:
        if uow.conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows.extend((await uow.conn.execute(query)).all())
        if len(rows) >= limit:
            rows = rows[:limit]
            break
    if not rows:
        return []
    await uow.conn.execute(update(deliveries).where(d.id.in_([r.id for r in rows])).values(
        status="sending", lease_until=now + lease, attempts=d.attempts + 1))
    return [Delivery(r.id, channel, r.chat_id, r.text, r.buttons, r.kind, r.attempts + 1,
                     r.outbox_id, r.priority) for r in rows]


async def extend(uow: UnitOfWork, delivery_ids: list[int], lease: timedelta) -> None:
    """Keep claimed messages leased for ``lease`` from now (the sender still holds them)."""
    d = deliveries.c
    until = uow.clock.now() + lease
    for start in range(0, len(delivery_ids), 5000):
        await uow.conn.execute(update(deliveries).where(
            d.id.in_(delivery_ids[start:start + 5000]), d.status == "sending")
            .values(lease_until=until))


async def sent(uow: UnitOfWork, confirmed: list[tuple[int, str | None]]) -> None:
    """Mark messages sent, with the channel's own message id."""
    if not confirmed:
        return
    d = deliveries.c
    await uow.conn.execute(
        update(deliveries).where(d.id == bindparam("delivery")).values(
            status="sent", sent_at=bindparam("at", type_=d.sent_at.type),
            external_id=bindparam("external"), lease_until=None),
        [{"delivery": n, "external": external, "at": uow.clock.now()}
         for n, external in confirmed])
    await _notices(uow, [n for n, _ in confirmed], "sent", None)


async def retry(uow: UnitOfWork, delivery_id: int, at: datetime, error: str) -> None:
    """Send again at ``at`` (a rate limit or a server error)."""
    await uow.conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(
        status="pending", not_before=at, lease_until=None, last_error=error[:500]))


async def drop(uow: UnitOfWork, delivery_ids: list[int], error: str) -> None:
    """Give up on messages (the user blocked the bot, or retries ran out)."""
    if delivery_ids:
        await uow.conn.execute(update(deliveries).where(deliveries.c.id.in_(delivery_ids))
                               .values(status="dropped", lease_until=None, last_error=error[:500]))
        await _notices(uow, delivery_ids, "failed", error)


async def unreachable(uow: UnitOfWork, channel: str, chat_id: str) -> int:
    """The user blocked us on this channel: mark the channel identity unreachable and drop what
    waits for the chat. Returns how many waiting messages were dropped. The next message the
    user sends makes the chat reachable again (``Registration.touch_many``)."""
    c, d = channel_identities.c, deliveries.c
    await uow.conn.execute(update(channel_identities).where(
        c.channel == channel, c.external_id == chat_id).values(unreachable=True))
    waiting = list((await uow.conn.execute(select(d.id).where(
        d.channel == channel, d.chat_id == chat_id, d.status.in_(("pending", "sending")))
    )).scalars())
    if waiting:
        await uow.conn.execute(update(deliveries).where(d.id.in_(waiting)).values(
            status="dropped", lease_until=None, last_error="chat unreachable"))
        await _notices(uow, waiting, "failed", "chat unreachable (the user blocked the bot)")
    return len(waiting)


async def is_unreachable(uow: UnitOfWork, channel: str, chat_id: str) -> bool:
    c = channel_identities.c
    row = (await uow.conn.execute(select(c.unreachable).where(
        c.channel == channel, c.external_id == chat_id))).first()
    return bool(row and row.unreachable)


async def release(uow: UnitOfWork, delivery_ids: list[int]) -> None:
    """Hand claimed messages back unsent (a sender stopping), due at once for the next claim."""
    if delivery_ids:
        await uow.conn.execute(update(deliveries).where(
            deliveries.c.id.in_(delivery_ids), deliveries.c.status == "sending")
            .values(status="pending", lease_until=None))


async def _notices(uow: UnitOfWork, delivery_ids: list[int], status: str,
                   error: str | None) -> None:
    """The outbox notices these messages carry take the messages' outcome."""
    d, o = deliveries.c, outbox.c
    for start in range(0, len(delivery_ids), 5000):
        carried = select(d.outbox_id).where(d.id.in_(delivery_ids[start:start + 5000]),
                                            d.outbox_id.is_not(None)).scalar_subquery()
        values: dict[str, object] = {"status": status, "last_error": error}
        if status == "sent":
            values["sent_at"] = uow.clock.now()
        await uow.conn.execute(update(outbox).where(o.id.in_(carried),
                                                    o.status == "queued").values(**values))
