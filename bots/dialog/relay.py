"""Notice relay: outbox notices rendered in the user's language and queued for their chat.

A pending notice whose time has come (``not_before``) is rendered through the dialog catalogs
(``render_notice``) in the locale of the user's most recent conversation, and queued as a
delivery to the chat channel the user wrote from last among the channels that send from the
deliveries queue. Notice and delivery are handled in one transaction: the notice is marked
``sent`` (handed to the channel) exactly when its message is queued. A notice for a user with no
such chat (web chat only, or the bot was blocked) is marked ``held``: kept for the web chat to
show when the user comes back, not retried here.

This is the minimal path the chat channels need; quiet hours, muting, preferred channels and
broadcasts belong to the dispatcher that grows from it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update

from bots.dialog.engine import DialogEngine
from bots.dialog.notices import render_notice
from core import delivery
from core.adapters.tables import channel_identities, conversations, outbox
from core.adapters.uow import UnitOfWork

log = logging.getLogger(__name__)


async def relay_notices(engine: DialogEngine, uow: UnitOfWork, limit: int = 200) -> int:
    """Queue due notices for their users' chats; return how many were queued."""
    if not engine.queued_channels:
        return 0
    o = outbox.c
    now = uow.clock.now()
    due = (select(o.id, o.user_id, o.template, o.params).where(
        o.status == "pending", o.not_before <= now).order_by(o.id).limit(limit))
    if uow.conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    notices = (await uow.conn.execute(due)).all()
    if not notices:
        return 0
    chats = await _chats(engine, uow, {n.user_id for n in notices if n.user_id is not None})
    queued, outcomes = [], []
    for notice in notices:
        chat = chats.get(notice.user_id)
        if chat is None:
            outcomes.append({"id": notice.id, "status": "held", "error": "no reachable chat"})
            continue
        try:
            reply = render_notice(engine.catalog, notice.template, notice.params or {},
                                  chat["locale"])
        except KeyError:
            log.error("notice %s has no template %r", notice.id, notice.template)
            outcomes.append({"id": notice.id, "status": "failed", "error": "unknown template"})
            continue
        queued.append({"channel": chat["channel"], "chat_id": chat["chat_id"],
                       "text": reply.text, "kind": "notice",
                       "buttons": [{"id": b.action, "label": b.label} for b in reply.buttons]})
        outcomes.append({"id": notice.id, "status": "sent", "error": None,
                         "channel": chat["channel"]})
    await delivery.add_many(uow, queued)
    for outcome in outcomes:
        await uow.conn.execute(update(outbox).where(o.id == outcome["id"]).values(
            status=outcome["status"], last_error=outcome["error"],
            channel=outcome.get("channel"), sent_at=now if outcome["status"] == "sent" else None,
            attempts=o.attempts + 1))
    return len(queued)


async def _chats(engine: DialogEngine, uow: UnitOfWork, user_ids: set[int]
                 ) -> dict[int, dict[str, Any]]:
    """Each user's most recently used reachable chat on a queued channel, with its locale."""
    if not user_ids or not engine.queued_channels:
        return {}
    ci, cv = channel_identities.c, conversations.c
    rows = (await uow.conn.execute(
        select(ci.user_id, ci.channel, ci.external_id, ci.locale, cv.locale.label("chat_locale"))
        .select_from(channel_identities.outerjoin(
            conversations, (cv.channel == ci.channel) & (cv.chat_id == ci.external_id)))
        .where(ci.user_id.in_(user_ids), ci.channel.in_(engine.queued_channels),
               ci.unreachable.is_(False))
        .order_by(ci.last_seen_at.desc(), ci.id.desc()))).all()
    chats: dict[int, dict[str, Any]] = {}
    for row in rows:
        chats.setdefault(row.user_id, {
            "channel": row.channel, "chat_id": row.external_id,
            "locale": row.chat_locale or row.locale or engine.core.settings.locale})
    return chats
