"""The dialog engine: one turn of one conversation, the same for every channel.

A turn runs inside a shared transaction of the group committer: the inbound is recorded (a
redelivered message id is answered once), the conversation is loaded or created (its first
touch keeps campaign attribution), idle flows reset, the message is routed - to the agent while
a human holds the conversation, to a command, to the current flow, or to the FAQ matcher - and
the replies, the new state and any business change commit together or not at all.

Built so far: start (with attribution), help, cancel, language switch, registration with a phone
code (``flows/registration.py``), the FAQ with confident answers / top-3 suggestions / misses
logged, and the handover to a human on request or on anger and complaint words (complaints first
in the queue). Flows register in ``FLOWS``; the other journeys come next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update

from bots.dialog.flows.account import AutoInvestFlow, FeedbackFlow, StatementFlow, WithdrawFlow
from bots.dialog.flows.base import Ctx
from bots.dialog.flows.borrowing import ApplyFlow, LoansFlow, PromiseFlow, RepayFlow
from bots.dialog.flows.investing import BrowseFlow, InvestFlow, PortfolioFlow, TopUpFlow
from bots.dialog.flows.onboarding import CardFlow, KycFlow, RiskFlow
from bots.dialog.flows.preferences import UNSUBSCRIBE_WORDS, NotificationsFlow
from bots.dialog.flows.registration import RegistrationFlow
from bots.dialog.i18n import Catalog, normalize_locale
from bots.dialog.types import Button, Inbound, Reply
from core import analytics, delivery
from core.adapters.batching import Coalescer
from core.adapters.tables import (
    chat_messages,
    conversations,
    faq_misses,
    inbound_log,
    servicing_tasks,
)
from core.adapters.uow import UnitOfWork
from core.bootstrap import Core
from core.domain.errors import DomainError
from core.domain.hours import support_hours
from knowledge_base import KnowledgeBase

CONFIDENT = 70.0
FLOWS = {flow.name: flow for flow in (
    RegistrationFlow(), KycFlow(), CardFlow(), RiskFlow(), TopUpFlow(), BrowseFlow(),
    InvestFlow(), PortfolioFlow(), WithdrawFlow(), StatementFlow(), AutoInvestFlow(),
    FeedbackFlow(), ApplyFlow(), LoansFlow(), RepayFlow(), PromiseFlow(), NotificationsFlow())}
OPEN_TO_ALL = ("register", "feedback")  # flows a chat may use before registering
ALIASES = {"menu:kyc": "flow:kyc", "bind_card": "flow:card", "kyc": "flow:kyc",
           "risk_questionnaire": "flow:risk", "invest": "flow:browse",
           "browse_listings": "flow:browse", "top_up": "flow:top_up",
           "portfolio": "flow:portfolio", "withdraw": "flow:withdraw",
           "statement": "flow:statement", "auto_invest": "flow:auto_invest",
           "apply_loan": "flow:apply", "repay_now": "flow:my_loans"}
# A registered investor's "invest" menu opens the marketplace.
MENU_FLOWS = {"menu:invest": "browse", "menu:borrow": "my_loans"}
PRIORITY = {"complaint": 2, "collections": 1, "asked": 1, "bot_miss": 1}


@dataclass
class Turn:
    """The conversation row as this turn sees and changes it."""

    id: int
    locale: str
    flow: str | None
    step: str | None
    data: dict[str, Any]
    mode: str
    misses: int
    identity: Any = None  # the channel identity (with first-touch attribution)
    user_id: int | None = None


class DialogEngine:
    def __init__(self, core: Core, kb: KnowledgeBase, catalog: Catalog, *,
                 queued_channels: frozenset[str] = frozenset()) -> None:
        self.core = core
        self.kb = kb
        self.catalog = catalog
        # Channels that send replies from the deliveries queue (core.delivery) rather than
        # from what ``handle`` returns: the replies are queued in the turn's transaction.
        self.queued_channels = set(queued_channels)
        # Channels whose messages are the conversation's stored history, shown live (web chat)
        self.history_channels: set[str] = set()
        settings = core.settings.dialog
        self.idle = timedelta(minutes=settings.idle_minutes)
        self.ask_words = tuple(w.lower() for w in settings.escalation_words)
        self.angry_words = tuple(w.lower() for w in settings.complaint_words)
        batching = core.settings.batching
        self.desk: Coalescer[Inbound, list[Reply]] = Coalescer(
            core.uow, self.turn_many, max_batch=batching.max_batch,
            max_delay=batching.max_delay_ms / 1000)

    async def handle(self, inbound: Inbound) -> list[Reply]:
        """Answer one inbound; an inbound seen before (same channel message id) gets [].

        Concurrent inbounds from many chats are handed to ``turn_many`` together (the turn
        desk), which reads what a batch needs once and writes it in bulk."""
        return await self.desk.submit(inbound)

    async def close(self) -> None:
        await self.desk.close()

    async def turn(self, uow: UnitOfWork, inbound: Inbound) -> list[Reply]:
        """One turn in the caller's unit of work (what a one-message-at-a-time bot would do)."""
        return (await self.turn_many(uow, [inbound]))[0]

    async def turn_many(self, uow: UnitOfWork, inbounds: list[Inbound]) -> list[list[Reply]]:
        """Turns of many chats in one transaction, each answered as if it were alone: a chat
        that sent two messages sees the state its first one left."""
        results: list[list[Reply]] = [[] for _ in inbounds]
        fresh = await self._fresh(uow, inbounds)
        if not fresh:
            return results
        now = uow.clock.now()
        chats = list(dict.fromkeys((inbounds[n].channel, inbounds[n].chat_id) for n in fresh))
        first = {}
        for n in fresh:
            first.setdefault((inbounds[n].channel, inbounds[n].chat_id), inbounds[n])
        identities = await self.core.registration.touch_many(uow, [
            self._contact(first[chat]) for chat in chats])
        turns, notes = await self._conversations(uow, first, identities)
        log_rows, message_rows, queued = [], [], []
        for n in fresh:
            inbound = inbounds[n]
            turn = turns[(inbound.channel, inbound.chat_id)]
            said = _transcript(inbound)
            message_rows.append(_message(turn.id, "user", said, now))
            replies = notes.pop((inbound.channel, inbound.chat_id), []) + \
                await self._route(uow, turn, inbound)
            message_rows += [_message(turn.id, r.sender, r.text, now,
                                      [{"id": b.action, "label": b.label} for b in r.buttons])
                             for r in replies]
            log_rows.append({"channel": inbound.channel, "message_id": inbound.message_id,
                             "conversation_id": turn.id, "at": now})
            if inbound.channel in self.queued_channels:
                queued += [{"channel": inbound.channel, "chat_id": inbound.chat_id,
                            "text": r.text, "kind": "reply",
                            "buttons": [{"id": b.action, "label": b.label} for b in r.buttons]}
                           for r in replies]
            results[n] = replies
        await uow.conn.execute(inbound_log.insert(), log_rows)
        await uow.conn.execute(chat_messages.insert(), message_rows)
        await delivery.add_many(uow, queued)
        c = conversations.c
        await uow.conn.execute(
            update(conversations).where(c.id == bindparam("conv")).values(
                locale=bindparam("locale_"), flow=bindparam("flow_"), step=bindparam("step_"),
                data=bindparam("data_", type_=c.data.type), mode=bindparam("mode_"),
                misses=bindparam("misses_"), updated_at=bindparam("at_", type_=c.updated_at.type)),
            [{"conv": t.id, "locale_": t.locale, "flow_": t.flow, "step_": t.step,
              "data_": t.data or None, "mode_": t.mode, "misses_": t.misses, "at_": now}
             for t in turns.values()])
        watched = [t.id for t in turns.values() if t.mode != "bot"]
        if watched:  # the console shows these live (after the commit, so it finds them)
            live = self.core.live

            async def tell() -> None:
                for conversation_id in watched:
                    await live.publish(f"conversation:{conversation_id}")
                await live.publish("queue")

            uow.after_commit.append(tell)
        return results

    async def _fresh(self, uow: UnitOfWork, inbounds: list[Inbound]) -> list[int]:
        """Positions of inbounds not answered before (nor earlier in this batch)."""
        by_channel: dict[str, list[str]] = {}
        for inbound in inbounds:
            by_channel.setdefault(inbound.channel, []).append(inbound.message_id)
        seen: set[tuple[str, str]] = set()
        for channel, ids in by_channel.items():
            rows = await uow.conn.execute(select(inbound_log.c.message_id).where(
                inbound_log.c.channel == channel, inbound_log.c.message_id.in_(ids)))
            seen.update((channel, row.message_id) for row in rows)
        fresh = []
        for n, inbound in enumerate(inbounds):
            key = (inbound.channel, inbound.message_id)
            if key not in seen:
                seen.add(key)
                fresh.append(n)
        return fresh

    def _contact(self, inbound: Inbound) -> dict[str, Any]:
        campaign, referrer = _attribution(inbound.payload)
        return {"channel": inbound.channel, "external_id": inbound.chat_id,
                "display_name": inbound.display_name,
                "locale": normalize_locale(inbound.locale_hint, self.core.settings.locale),
                "campaign": campaign, "referrer": referrer}

    # Conversation -----------------------------------------------------------------------------

    async def _conversations(self, uow: UnitOfWork, first: dict[tuple[str, str], Inbound],
                             identities: dict[tuple[str, str], Any]
                             ) -> tuple[dict[tuple[str, str], Turn],
                                        dict[tuple[str, str], list[Reply]]]:
        c = conversations.c
        rows: dict[tuple[str, str], Any] = {}
        by_channel: dict[str, list[str]] = {}
        for channel, chat in first:
            by_channel.setdefault(channel, []).append(chat)
        for channel, chats in by_channel.items():
            for row in await uow.conn.execute(select(conversations).where(
                    c.channel == channel, c.chat_id.in_(chats))):
                rows[(channel, row.chat_id)] = row
        turns, notes = {}, {}
        now = uow.clock.now()
        new = [{"channel": key[0], "chat_id": key[1], "mode": "bot", "updated_at": now,
                "locale": normalize_locale(inbound.locale_hint, self.core.settings.locale)}
               for key, inbound in first.items() if key not in rows]
        if new:  # one statement for every chat that writes for the first time
            result = await uow.conn.execute(
                conversations.insert().returning(c.id, sort_by_parameter_order=True), new)
            for values, (conversation_id,) in zip(new, result.all(), strict=True):
                key = (values["channel"], values["chat_id"])
                identity = identities[key]
                turns[key] = Turn(conversation_id, values["locale"], None, None, {}, "bot", 0,
                                  identity, identity.user_id)
        for key in first:
            identity = identities[key]
            row = rows.get(key)
            if row is None:
                continue
            turn = Turn(row.id, row.locale, row.flow, row.step, dict(row.data or {}), row.mode,
                        row.misses, identity, identity.user_id)
            if turn.flow and now - row.updated_at > self.idle:
                turn.flow, turn.step, turn.data = None, None, {}
                notes[key] = [Reply(self.catalog.text(turn.locale, "idle_reset"),
                                    sender="system")]
            turns[key] = turn
        return turns, notes

    # Routing --------------------------------------------------------------------------------

    async def _route(self, uow: UnitOfWork, turn: Turn, inbound: Inbound) -> list[Reply]:
        text = (inbound.text or "").strip()
        lowered = text.lower()
        if turn.mode == "human":  # the agent console shows it; the bot stays quiet
            if inbound.attachment is not None:
                await self._document(uow, turn, inbound)  # a proof the agent asked for
            return []
        if inbound.attachment is not None:
            return [await self._document(uow, turn, inbound)]
        if inbound.action == "contact:foreign":
            return [Reply(self.catalog.text(turn.locale, "contact_not_yours"))]
        if inbound.action:
            return await self._action(uow, turn, inbound)
        command = lowered.split()[0] if lowered.startswith("/") else None
        if command == "/start":
            return [self._welcome(turn)]
        if command == "/help":
            return [self._help(turn)]
        if command == "/language":
            return [self._switch_language(turn)]
        if command in ("/notifications", "/settings") or lowered in UNSUBSCRIBE_WORDS:
            if turn.user_id is None:
                return await FLOWS["register"].start(self._ctx(uow, turn, inbound))
            flow = FLOWS["notifications"]
            if command is None:
                return await flow.act(self._ctx(uow, turn, inbound), "notify:mute_marketing")
            return await flow.start(self._ctx(uow, turn, inbound))
        if command == "/cancel" or lowered in ("取消", "cancel", "退出"):
            return [self._cancel(turn)]
        if command == "/human" or any(w in lowered for w in self.ask_words):
            return [await self._handover(uow, turn, "asked")]
        if any(w in lowered for w in self.angry_words):
            return [await self._handover(uow, turn, "complaint")]
        if turn.mode == "queued":
            return [Reply(self.catalog.text(turn.locale, "human_waiting"), sender="system")]
        if turn.flow in FLOWS:
            return await FLOWS[turn.flow].step(self._ctx(uow, turn, inbound))
        if not text:
            return [self._help(turn)]
        return await self._faq(uow, turn, text)

    def _ctx(self, uow: UnitOfWork, turn: Turn, inbound: Inbound) -> Ctx:
        return Ctx(self, uow, turn, inbound, turn.identity, turn.user_id)

    async def _action(self, uow: UnitOfWork, turn: Turn, inbound: Inbound) -> list[Reply]:
        action = ALIASES.get(inbound.action or "", inbound.action or "")
        if action in ("menu:invest", "menu:borrow") and turn.user_id is None:
            role = "investor" if action == "menu:invest" else "borrower"
            return await FLOWS["register"].start(self._ctx(uow, turn, inbound), role=role)
        if action.startswith("notify:"):
            if turn.user_id is None:
                return await FLOWS["register"].start(self._ctx(uow, turn, inbound))
            return await FLOWS["notifications"].act(self._ctx(uow, turn, inbound), action)
        if action in MENU_FLOWS:
            return await FLOWS[MENU_FLOWS[action]].start(self._ctx(uow, turn, inbound))
        if action.startswith("flow:") and action[5:] in FLOWS:
            if turn.user_id is None and action[5:] not in OPEN_TO_ALL:
                return await FLOWS["register"].start(self._ctx(uow, turn, inbound))
            return await FLOWS[action[5:]].start(self._ctx(uow, turn, inbound))
        if turn.flow in FLOWS and not action.startswith(("menu:", "faq:", "flow:")):
            return await FLOWS[turn.flow].step(self._ctx(uow, turn, inbound))
        if action.startswith("faq:"):
            article = self.kb.articles.get(action[4:])
            if article is not None:
                return [self._answer(turn, article.id)]
        if action.startswith("rate:"):
            return [await self._rate(uow, turn, action[5:])]
        if action in ("menu:human", "talk_to_human"):
            return [await self._handover(uow, turn, "asked")]
        if action == "menu:language":
            return [self._switch_language(turn)]
        if action == "menu:faq":
            return [self._help(turn)]
        if turn.flow is None and ":" in action and not action.startswith("menu:"):
            # a button from a finished step (a second tap on "confirm"): nothing more to do
            return [Reply(self.catalog.text(turn.locale, "stale_button"),
                          self._welcome(turn).buttons)]
        return [Reply(self.catalog.text(turn.locale, "journey_soon"),
                      (self._button(turn, "talk_to_human"),))]

    async def _document(self, uow: UnitOfWork, turn: Turn, inbound: Inbound) -> Reply:
        """A photo or file: kept (encrypted) as a proof for the user's KYC or loan review; the
        step the chat was at stays where it was."""
        if turn.user_id is None:
            return Reply(self.catalog.text(turn.locale, "document_needs_account"),
                         (Button("menu:invest", self.catalog.text(turn.locale, "menu_invest")),
                          Button("menu:borrow", self.catalog.text(turn.locale, "menu_borrow"))))
        kind = "id_front" if turn.flow == "kyc" else "other"
        try:
            async with uow.savepoint():
                await self.core.kyc.add_document(
                    uow, turn.user_id, kind, inbound.attachment_type or "",
                    inbound.attachment or b"")
        except DomainError as exc:
            return Reply(self.catalog.error(turn.locale, exc))
        return Reply(self.catalog.text(turn.locale, "document_saved"))

    def _welcome(self, turn: Turn) -> Reply:
        return self.menu(turn.locale)

    def menu(self, locale: str) -> Reply:
        """The welcome text with the main menu's buttons."""
        t = self.catalog.text
        return Reply(t(locale, "welcome"), (
            Button("menu:invest", t(locale, "menu_invest")),
            Button("menu:borrow", t(locale, "menu_borrow")),
            Button("menu:faq", t(locale, "menu_faq")),
            Button("menu:human", t(locale, "menu_human")),
            Button("menu:language", t(locale, "menu_language"))))

    def _help(self, turn: Turn) -> Reply:
        return Reply(self.catalog.text(turn.locale, "help"), self._welcome(turn).buttons)

    def _cancel(self, turn: Turn) -> Reply:
        key = "cancelled" if turn.flow else "nothing_to_cancel"
        turn.flow, turn.step, turn.data = None, None, {}
        return Reply(self.catalog.text(turn.locale, key), self._welcome(turn).buttons)

    def _switch_language(self, turn: Turn) -> Reply:
        turn.locale = "en" if turn.locale == "zh-CN" else "zh-CN"
        return Reply(self.catalog.text(turn.locale, "language_set"), self._welcome(turn).buttons)

    def _button(self, turn: Turn, action: str) -> Button:
        return Button(action, self.catalog.text(turn.locale, f"action_{action}"))

    def _answer(self, turn: Turn, article_id: str) -> Reply:
        article = self.kb.articles[article_id]
        actions = [a for a in article.actions if a != "talk_to_human"] + ["talk_to_human"]
        return Reply(article.answer_in(turn.locale),
                     tuple(self._button(turn, a) for a in actions))

    async def answer(self, uow: UnitOfWork, turn: Turn, text: str) -> list[Reply]:
        """A question typed outside any flow (a flow that gives the turn back calls this)."""
        return await self._faq(uow, turn, text)

    async def _faq(self, uow: UnitOfWork, turn: Turn, text: str) -> list[Reply]:
        found = self.kb.match(text, turn.locale)
        if found is not None and found.score >= CONFIDENT:
            turn.misses = 0
            return [self._answer(turn, found.article_id)]
        if found is not None:
            turn.misses = 0
            options = [found.article_id] + [a for a, _ in found.alternatives[:2]]
            buttons = [Button(f"faq:{a}", self._question(turn, a)) for a in options]
            return [Reply(self.catalog.text(turn.locale, "faq_pick"),
                          (*buttons, self._button(turn, "talk_to_human")))]
        await uow.conn.execute(faq_misses.insert().values(
            text=text[:2000], locale=turn.locale, best_score=None, best_article=None,
            at=uow.clock.now()))
        turn.misses += 1
        if turn.misses >= 2:
            return [Reply(self.catalog.text(turn.locale, "faq_miss_again"),
                          (self._button(turn, "talk_to_human"),))]
        return [Reply(self.catalog.text(turn.locale, "faq_miss"),
                      (self._button(turn, "talk_to_human"),))]

    def _question(self, turn: Turn, article_id: str) -> str:
        article = self.kb.articles[article_id]
        questions = article.questions.get(turn.locale) or next(iter(article.questions.values()))
        return questions[0][:60]

    async def _rate(self, uow: UnitOfWork, turn: Turn, stars: str) -> Reply:
        """The customer's 1-5 rating of the agent who just resolved their conversation (once)."""
        c = conversations.c
        if stars in ("1", "2", "3", "4", "5"):
            result = await uow.conn.execute(update(conversations).where(
                c.id == turn.id, c.resolved_at.is_not(None), c.rating.is_(None))
                .values(rating=int(stars)))
            if result.rowcount == 1:
                await analytics.track(uow, "support_rated", user_id=turn.user_id,
                                      channel=None, props={"rating": int(stars)})
                return Reply(self.catalog.text(turn.locale, "rate_thanks"),
                             self.menu(turn.locale).buttons, sender="system")
        return Reply(self.catalog.text(turn.locale, "stale_button"),
                     self.menu(turn.locale).buttons)

    async def _handover(self, uow: UnitOfWork, turn: Turn, reason: str) -> Reply:
        """Put the conversation in the human queue (complaints first, then longest waiting).
        A borrower with an open collections task who asks is queued as "collections", so the
        agent knows before opening the chat."""
        c = conversations.c
        if reason in ("asked", "bot_miss") and turn.user_id is not None:
            t = servicing_tasks.c
            open_task = (await uow.conn.execute(select(t.id).where(
                t.borrower_id == turn.user_id, t.kind == "collections",
                t.status == "open").limit(1))).first()
            if open_task is not None:
                reason = "collections"
        priority = PRIORITY[reason]
        if turn.mode != "queued":
            turn.mode = "queued"
            await uow.conn.execute(update(conversations).where(c.id == turn.id).values(
                handover_reason=reason, priority=priority, queued_at=uow.clock.now()))
            # kept for the support figures: resolving clears the reason and the queue time
            await analytics.track(uow, "support_handover", user_id=turn.user_id,
                                  channel=turn.identity.channel if turn.identity else None,
                                  props={"conversation_id": turn.id, "reason": reason})
        else:
            await uow.conn.execute(update(conversations).where(
                c.id == turn.id, c.priority < priority).values(handover_reason=reason,
                                                               priority=priority))
        me = (await uow.conn.execute(select(c.priority, c.queued_at).where(c.id == turn.id))
              ).one()
        earlier = (c.queued_at < me.queued_at) | ((c.queued_at == me.queued_at)
                                                  & (c.id < turn.id))
        ahead = (await uow.conn.execute(select(func.count()).where(
            c.mode == "queued", c.id != turn.id,
            (c.priority > me.priority) | ((c.priority == me.priority) & earlier)))).scalar_one()
        back = support_hours(self.core.settings.support).reopens(uow.clock.local())
        if back is not None:  # outside business hours: it waits in the queue till then
            return Reply(self.catalog.text(turn.locale, "human_outside_hours",
                                           back=back.strftime("%Y-%m-%d %H:%M")),
                         sender="system")
        return Reply(self.catalog.text(turn.locale, "human_queued", ahead=ahead),
                     sender="system")


def _transcript(inbound: Inbound) -> str:
    """What the user did, as the conversation's transcript shows it (never a shared number)."""
    if inbound.text is not None and inbound.attachment is None:
        return inbound.text
    if inbound.attachment is not None:
        caption = f" {inbound.text}" if inbound.text else ""
        return f"[file {inbound.attachment_type or '?'}, {len(inbound.attachment)} bytes]{caption}"
    if inbound.contact_phone is not None:
        return "[contact shared]"
    return f"[{inbound.action or 'event'}]"


def _attribution(payload: str | None) -> tuple[str | None, str | None]:
    """Deep-link payloads: ``ref_<code>`` is a referral, anything else a campaign name."""
    if not payload:
        return None, None
    if payload.startswith("ref_"):
        return None, payload[4:][:64]
    return payload[:64], None


def _message(conversation_id: int, sender: str, text: str, at: Any,
             buttons: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "sender": sender, "text": text[:4000],
            "buttons": buttons or None, "at": at}
