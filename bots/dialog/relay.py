"""Notice relay: outbox notices rendered in the user's language and handed to their chat.

A pending notice whose time has come (``not_before``) is rendered through the dialog catalogs
(``render_notice``) in the locale of the user's most recent conversation, and handed to the chat
the user wrote from last: on a channel that sends from the deliveries queue (Telegram) it is
queued as a delivery; on a history channel (the web chat) it is stored in the conversation, so
an open page shows it at once (live bus) and a page opened later finds it in the history.
Notice and hand-over happen in one transaction: the notice is marked ``sent`` exactly when its
message is queued or stored. A notice for a user with no reachable chat (the bot was blocked
everywhere) is marked ``held``.

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
from core.adapters.tables import channel_identities, chat_messages, conversations, outbox
from core.adapters.uow import UnitOfWork

log = logging.getLogger(__name__)


async def relay_notices(engine: DialogEngine, uow: UnitOfWork, limit: int = 200) -> int:
    """Hand due notices to their users' chats; return how many were handed over."""
    if not engine.queued_channels and not engine.history_channels:
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
    queued, stored, outcomes = [], [], []
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
        buttons = [{"id": b.action, "label": b.label} for b in reply.buttons]
        if chat["channel"] in engine.queued_channels:
            queued.append({"channel": chat["channel"], "chat_id": chat["chat_id"],
                           "text": reply.text, "kind": "notice", "buttons": buttons})
        else:  # the web chat: the notice joins the history, pushed live to an open page
            stored.append({"conversation_id": chat["conversation_id"], "sender": "system",
                           "text": reply.text, "buttons": buttons or None, "at": now})
        outcomes.append({"id": notice.id, "status": "sent", "error": None,
                         "channel": chat["channel"]})
    await delivery.add_many(uow, queued)
    await _store(uow, engine, stored)
    for outcome in outcomes:
        await uow.conn.execute(update(outbox).where(o.id == outcome["id"]).values(
            status=outcome["status"], last_error=outcome["error"],
            channel=outcome.get("channel"), sent_at=now if outcome["status"] == "sent" else None,
            attempts=o.attempts + 1))
    return len(queued) + len(stored)


async def _store(uow: UnitOfWork, engine: DialogEngine, rows: list[dict[str, Any]]) -> None:
    """Notices for history channels: stored in the conversation, then (after the commit)
    published on ``conversation:<id>`` so an open page shows them at once."""
    if not rows:
        return
    m = chat_messages.c
    result = await uow.conn.execute(
        chat_messages.insert().returning(m.id, sort_by_parameter_order=True), rows)
    messages = [(row["conversation_id"], {
        "id": message_id, "from": "system", "name": None, "text": row["text"],
        "buttons": row["buttons"] or [], "at": row["at"].isoformat()})
        for row, (message_id,) in zip(rows, result.all(), strict=True)]
    live = engine.core.live

    async def tell() -> None:
        for conversation_id, message in messages:
            await live.publish(f"conversation:{conversation_id}", {"message": message})

    uow.after_commit.append(tell)


async def _chats(engine: DialogEngine, uow: UnitOfWork, user_ids: set[int]
                 ) -> dict[int, dict[str, Any]]:
    """Each user's most recently used reachable chat on a channel the relay can reach (queued
    or history channels), with its locale and conversation."""
    channels = engine.queued_channels | engine.history_channels
    if not user_ids or not channels:
        return {}
    ci, cv = channel_identities.c, conversations.c
    rows = (await uow.conn.execute(
        select(ci.user_id, ci.channel, ci.external_id, ci.locale,
               cv.locale.label("chat_locale"), cv.id.label("conversation_id"))
        .select_from(channel_identities.outerjoin(
            conversations, (cv.channel == ci.channel) & (cv.chat_id == ci.external_id)))
        .where(ci.user_id.in_(user_ids), ci.channel.in_(channels),
               ci.unreachable.is_(False))
        .order_by(ci.last_seen_at.desc(), ci.id.desc()))).all()
    chats: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row.channel not in engine.queued_channels and row.conversation_id is None:
            continue  # a history channel needs the conversation to write into
        chats.setdefault(row.user_id, {
            "channel": row.channel, "chat_id": row.external_id,
            "conversation_id": row.conversation_id,
            "locale": row.chat_locale or row.locale or engine.core.settings.locale})
    return chats
