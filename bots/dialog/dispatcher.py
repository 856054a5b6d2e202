"""The notice dispatcher: due outbox notices, rendered in the user's language, to the user's chat.

Each pass takes the notices whose time has come (status ``pending`` or ``deferred``,
``not_before`` passed; on PostgreSQL ``FOR UPDATE SKIP LOCKED``, so several ``serve`` processes
share the outbox and none takes a notice another holds) and decides each by its rule
(``config/notices.toml``) and the user's preferences (``core.services.notifications``):

- ``muted``: the user turned off what the notice is (marketing, investment updates);
  required notices (contract, law, security) cannot be muted;
- ``deferred``: not urgent and inside the user's quiet hours: ``not_before`` moves to the
  window's end and the notice waits; collections notices always wait;
- ``failed``: no chat reaches the user (they blocked the bot everywhere) or the template is
  unknown; recorded with the reason, not retried;
- otherwise it goes to the chat of the user's preferred channel, else the chat they used last,
  in that chat's language: on a channel that sends from the deliveries queue (Telegram) it
  becomes a delivery carrying the notice (``queued``; the sender reports ``sent`` or
  ``failed`` back to it); on a history channel (the web chat) it joins the conversation
  (``sent``), is pushed live to an open page, and an offline user finds it when they return.

Notice and hand-over commit together, so a crash before the commit leaves the notice due and
one after it leaves the message queued: nothing is lost and nothing is handed over twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from bots.dialog.engine import DialogEngine
from bots.dialog.i18n import normalize_locale
from bots.dialog.notices import render_notice
from bots.dialog.types import Button, Reply
from core import delivery
from core.adapters.tables import (
    broadcasts,
    channel_identities,
    chat_messages,
    conversations,
    outbox,
)
from core.adapters.uow import UnitOfWork
from core.services.notifications import Preferences

log = logging.getLogger(__name__)
MUTE_MARKETING = "notify:mute_marketing"


@dataclass
class Pass:
    """What one dispatcher pass did."""

    handed: int = 0  # queued for a channel or stored in a web conversation
    deferred: int = 0
    muted: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.handed + self.deferred + self.muted + self.failed


class Dispatcher:
    def __init__(self, engine: DialogEngine) -> None:
        self.engine = engine
        self.core = engine.core
        self.notifications = engine.core.notifications
        texts = engine.catalog.texts
        missing = sorted(f"{locale}:{template}" for template in self.notifications.rules
                         for locale in texts if f"notice_{template}" not in texts[locale])
        if missing:
            raise ValueError(f"notices without texts in the catalogs: {', '.join(missing)}")

    async def run_once(self, uow: UnitOfWork, limit: int | None = None) -> Pass:
        """Decide and hand over up to ``limit`` due notices, in ``uow``'s transaction."""
        done = Pass()
        engine = self.engine
        if not engine.queued_channels and not engine.history_channels:
            return done
        o = outbox.c
        now = uow.clock.now()
        due = (select(o.id, o.user_id, o.template, o.params, o.not_before)
               .where(o.status.in_(("pending", "deferred")), o.not_before <= now)
               .order_by(o.id).limit(limit or self.core.settings.notify.batch))
        if uow.conn.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        notices = (await uow.conn.execute(due)).all()
        if not notices:
            return done
        user_ids = {n.user_id for n in notices if n.user_id is not None}
        prefs = await self.notifications.preferences(uow, user_ids)
        chats = await self._chats(uow, user_ids, prefs)
        texts = await self._broadcast_texts(uow, notices)
        queued, stored, outcomes = [], [], []

        def outcome(notice: Any, status: str, *, channel: str | None = None,
                    error: str | None = None, not_before: datetime | None = None) -> None:
            outcomes.append({"nid": notice.id, "st": status, "ch": channel, "err": error,
                             "sat": now if status == "sent" else None,
                             "nb": not_before or notice.not_before})

        for notice in notices:
            rule = self.notifications.rule(notice.template)
            if rule is None:
                log.error("notice %s has no rule for template %r", notice.id, notice.template)
                outcome(notice, "failed", error="unknown template")
                done.failed += 1
                continue
            verdict, until = self.notifications.decide(
                rule, prefs.get(notice.user_id, Preferences()), now)
            if verdict == "mute":
                outcome(notice, "muted", error=f"{rule.mute} muted by the user")
                done.muted += 1
                continue
            if verdict == "defer":
                outcome(notice, "deferred", error="quiet hours", not_before=until)
                done.deferred += 1
                continue
            chat = chats.get(notice.user_id)
            if chat is None:
                outcome(notice, "failed", error="no reachable chat")
                done.failed += 1
                continue
            try:
                reply = self._render(notice, chat["locale"], texts)
            except KeyError:
                log.error("notice %s: template %r has no text", notice.id, notice.template)
                outcome(notice, "failed", error="unknown template")
                done.failed += 1
                continue
            buttons = [{"id": b.action, "label": b.label} for b in reply.buttons]
            if chat["channel"] in engine.queued_channels:
                queued.append({"channel": chat["channel"], "chat_id": chat["chat_id"],
                               "text": reply.text, "kind": "notice", "buttons": buttons,
                               "outbox_id": notice.id,
                               "priority": delivery.MARKETING if rule.group == "marketing"
                               else delivery.NOTICE})
                outcome(notice, "queued", channel=chat["channel"])
            else:  # the web chat: the notice joins the history, pushed live to an open page
                stored.append({"conversation_id": chat["conversation_id"], "sender": "system",
                               "text": reply.text, "buttons": buttons or None, "at": now})
                outcome(notice, "sent", channel=chat["channel"])
            done.handed += 1
        await delivery.add_many(uow, queued)
        await self._store(uow, stored)
        await uow.conn.execute(update(outbox).where(o.id == bindparam("nid")).values(
            status=bindparam("st"), channel=bindparam("ch"), last_error=bindparam("err"),
            sent_at=bindparam("sat", type_=o.sent_at.type),
            not_before=bindparam("nb", type_=o.not_before.type), attempts=o.attempts + 1),
            outcomes)
        return done

    # Rendering --------------------------------------------------------------------------------

    def _render(self, notice: Any, locale: str, texts: dict[int, Any]) -> Reply:
        params = notice.params or {}
        if notice.template != "broadcast":
            return render_notice(self.engine.catalog, notice.template, params, locale)
        row = texts.get(params.get("broadcast_id"))
        if row is None:
            raise KeyError(notice.template)
        t = self.engine.catalog.text
        labels = {"flow:top_up": "action_top_up", "flow:browse": "action_browse_listings",
                  "flow:portfolio": "action_portfolio", "flow:auto_invest": "action_auto_invest",
                  "flow:apply": "action_apply_loan", "flow:my_loans": "notice_button_my_loans",
                  "flow:kyc": "action_kyc", "flow:card": "action_bind_card",
                  "flow:risk": "action_risk_questionnaire", "talk_to_human": "action_talk_to_human"}
        buttons = [Button(action, t(locale, labels[action]))
                   for action in row.buttons or [] if action in labels]
        buttons.append(Button(MUTE_MARKETING, t(locale, "notice_button_mute_marketing")))
        text = row.text_zh if normalize_locale(locale) == "zh-CN" else row.text_en
        return Reply(t(locale, "notice_broadcast", text=text), tuple(buttons))

    async def _broadcast_texts(self, uow: UnitOfWork, notices: list[Any]) -> dict[int, Any]:
        ids = {(n.params or {}).get("broadcast_id") for n in notices
               if n.template == "broadcast"} - {None}
        if not ids:
            return {}
        b = broadcasts.c
        return {row.id: row for row in await uow.conn.execute(
            select(b.id, b.text_zh, b.text_en, b.buttons).where(b.id.in_(ids)))}

    # Hand-over --------------------------------------------------------------------------------

    async def _store(self, uow: UnitOfWork, rows: list[dict[str, Any]]) -> None:
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
        live = self.core.live

        async def tell() -> None:
            for conversation_id, message in messages:
                await live.publish(f"conversation:{conversation_id}", {"message": message})

        uow.after_commit.append(tell)

    async def _chats(self, uow: UnitOfWork, user_ids: set[int],
                     prefs: dict[int, Preferences]) -> dict[int, dict[str, Any]]:
        """Each user's chat for notices: on their preferred channel if they chose one and can be
        reached there, else the reachable chat they used last; with its locale and
        conversation."""
        engine = self.engine
        channels = engine.queued_channels | engine.history_channels
        if not user_ids or not channels:
            return {}
        ci, cv = channel_identities.c, conversations.c
        candidates: dict[int, list[dict[str, Any]]] = {}
        ids = sorted(user_ids)
        for start in range(0, len(ids), 5000):
            rows = (await uow.conn.execute(
                select(ci.user_id, ci.channel, ci.external_id, ci.locale,
                       cv.locale.label("chat_locale"), cv.id.label("conversation_id"))
                .select_from(channel_identities.outerjoin(
                    conversations, (cv.channel == ci.channel) & (cv.chat_id == ci.external_id)))
                .where(ci.user_id.in_(ids[start:start + 5000]), ci.channel.in_(channels),
                       ci.unreachable.is_(False))
                .order_by(ci.last_seen_at.desc(), ci.id.desc()))).all()
            for row in rows:
                if row.channel not in engine.queued_channels and row.conversation_id is None:
                    continue  # a history channel needs the conversation to write into
                candidates.setdefault(row.user_id, []).append({
                    "channel": row.channel, "chat_id": row.external_id,
                    "conversation_id": row.conversation_id,
                    "locale": row.chat_locale or row.locale or self.core.settings.locale})
        chats = {}
        for user, options in candidates.items():
            preferred = prefs.get(user, Preferences()).preferred_channel
            chosen = next((c for c in options if c["channel"] == preferred), options[0])
            chats[user] = chosen
        return chats
