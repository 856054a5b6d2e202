"""The agent console (``/console``): the human queue, one conversation with the customer's
masked context beside it, replies, canned replies, knowledge-base suggestions, private notes,
reveals with a reason, and the actions on a conversation (hand back, transfer, resolve,
snooze). Pages are rendered on the server (autoescaped templates in
``bots/web/templates/console``); ``/console/static/console.js`` keeps them live over the
WebSocket ``/console/ws`` (signals from ``core.live``; the page then fetches what changed).

Every route checks the role on the server (``bots.web.auth.require``); every write checks the
session's CSRF token; every action goes through ``AgentDesk`` (audited).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy import select

from bots.dialog.agents import Agent, AgentDesk, ConversationNotFound
from bots.dialog.engine import DialogEngine
from bots.web.auth import AGENT_ROLES, STAFF, STAFF_MEMBER, render, require
from core.adapters.tables import conversations, staff
from core.bootstrap import Core
from core.domain.errors import DomainError
from core.domain.hours import support_hours
from core.services.staff import Staff

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
DESK = web.AppKey("agent_desk", AgentDesk)
CONSOLE_CORE = web.AppKey("console_core", Core)
CANNED = web.AppKey("canned_replies", dict)
SNOOZE_CHOICES = (15, 60, 240, 1440)  # minutes
CANNED_FILE = Path(__file__).resolve().parents[2] / "config" / "canned_replies.toml"


def setup_console(app: web.Application, core: Core, engine: DialogEngine) -> None:
    """Mount the console; ``bots.web.auth.setup_auth`` must have been called on ``app``."""
    app[DESK] = AgentDesk(engine)
    app[CONSOLE_CORE] = core
    app[CANNED] = load_canned(core.settings.support.canned_replies_file or CANNED_FILE)
    r = app.router
    r.add_get("/console", queue_page)
    r.add_get("/console/api/queue", queue_api)
    r.add_post("/console/presence", presence)
    r.add_post("/console/claim/{id:\\d+}", claim)
    r.add_get("/console/c/{id:\\d+}", conversation_page)
    r.add_get("/console/api/c/{id:\\d+}", conversation_api)
    for action in ("reply", "note", "hand-back", "transfer", "resolve", "snooze", "reveal"):
        r.add_post(f"/console/c/{{id:\\d+}}/{action}", ACTIONS[action])
    r.add_get("/console/ws", live)
    r.add_static("/console/static", STATIC)


def load_canned(path: Path) -> dict[str, dict[str, str]]:
    """Canned replies: key -> {"title", "zh-CN", "en"} (a missing file means none)."""
    if not path.is_file():
        log.warning("no canned replies at %s", path)
        return {}
    return {key: {k: str(v) for k, v in entry.items()}
            for key, entry in tomllib.loads(path.read_text(encoding="utf-8")).items()}


def _agent(request: web.Request) -> Agent:
    member: Staff = request[STAFF_MEMBER]
    return Agent(member.id, member.display_name)


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


# The queue --------------------------------------------------------------------------------


async def _queue(request: web.Request) -> dict[str, Any]:
    core, desk = request.app[CONSOLE_CORE], request.app[DESK]
    me = request[STAFF_MEMBER]
    async with core.uow(read_only=True) as uow:
        waiting = await desk.waiting(uow)
        c = conversations.c
        mine = (await uow.conn.execute(select(c.id, c.channel, c.locale, c.claimed_at).where(
            c.mode == "human", c.agent_id == me.id).order_by(c.claimed_at))).all()
        presence = (await uow.conn.execute(select(staff.c.presence).where(
            staff.c.id == me.id))).scalar_one()
    hours = support_hours(core.settings.support)
    return {
        "waiting": [{"id": w.conversation_id, "channel": w.channel, "locale": w.locale,
                     "customer": w.customer, "reason": w.reason or "asked", "tier": w.tier,
                     "waiting_minutes": w.waiting_seconds // 60} for w in waiting],
        "mine": [{"id": m.id, "channel": m.channel, "locale": m.locale} for m in mine],
        "presence": presence,
        "open": hours.is_open(core.clock.local()),
    }


@require(*AGENT_ROLES)
async def queue_page(request: web.Request) -> web.StreamResponse:
    return render(request, "console/queue.html", **await _queue(request),
                  notice=request.query.get("notice"))


@require(*AGENT_ROLES)
async def queue_api(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _queue(request))


@require(*AGENT_ROLES)
async def presence(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    core = request.app[CONSOLE_CORE]
    async with core.uow() as uow:
        await request.app[STAFF].set_presence(uow, request[STAFF_MEMBER].id,
                                              str(form.get("presence", "away")))
        await uow.commit()
    raise web.HTTPSeeOther("/console")


@require(*AGENT_ROLES)
async def claim(request: web.Request) -> web.StreamResponse:
    core, desk = request.app[CONSOLE_CORE], request.app[DESK]
    try:
        async with core.uow() as uow:
            await desk.claim(uow, _id(request), _agent(request))
            await uow.commit()
    except DomainError as exc:
        raise web.HTTPSeeOther(f"/console?notice={exc.code}") from None
    raise web.HTTPSeeOther(f"/console/c/{_id(request)}")


# One conversation -------------------------------------------------------------------------


async def _conversation(request: web.Request) -> dict[str, Any]:
    core, desk = request.app[CONSOLE_CORE], request.app[DESK]
    conversation_id = _id(request)
    try:
        async with core.uow(read_only=True) as uow:
            context = await desk.context(uow, conversation_id)
            history = await desk.history(uow, conversation_id)
            notes = await desk.notes(uow, conversation_id)
            row = (await uow.conn.execute(select(conversations).where(
                conversations.c.id == conversation_id))).one()
            agents = (await uow.conn.execute(select(staff.c.id, staff.c.display_name).where(
                staff.c.active.is_(True), staff.c.id != request[STAFF_MEMBER].id)
                .order_by(staff.c.display_name))).all()
    except ConversationNotFound:
        raise web.HTTPNotFound() from None
    last = next((m.text for m in reversed(history) if m.sender == "user"), None)
    suggestions = []
    engine = desk.engine
    if last:
        found = engine.kb.match(last, row.locale)
        if found is not None:
            for article_id, score in [(found.article_id, found.score), *found.alternatives[:2]]:
                article = engine.kb.articles[article_id]
                suggestions.append({"id": article_id, "score": score,
                                    "question": article.questions.get(row.locale, ("",))[0],
                                    "answer": article.answer_in(row.locale)})
    me = request[STAFF_MEMBER]
    canned = [{"key": key, "title": entry.get("title", key),
               "text": entry.get(row.locale, entry.get("en", "")).format(
                   agent=me.display_name, customer=context.get("kyc", {}).get("name") or "")}
              for key, entry in request.app[CANNED].items()]
    return {
        "id": conversation_id, "mode": row.mode, "held_by_me": row.agent_id == me.id,
        "locale": row.locale, "channel": row.channel, "context": context,
        "messages": [{"id": m.id, "from": m.sender, "author": m.author, "text": m.text,
                      "buttons": m.buttons or [], "at": core.clock.local(m.at).isoformat()}
                     for m in history],
        "notes": [{"text": n.text, "by": n.display_name,
                   "at": core.clock.local(n.at).isoformat()} for n in notes],
        "suggestions": suggestions, "canned": canned,
        "agents": [{"id": a.id, "name": a.display_name} for a in agents],
        "reasons": core.settings.support.reveal_reasons, "snooze": SNOOZE_CHOICES,
    }


@require(*AGENT_ROLES)
async def conversation_page(request: web.Request) -> web.StreamResponse:
    data = await _conversation(request)
    return render(request, "console/conversation.html", **data,
                  notice=request.query.get("notice"), revealed=None)


@require(*AGENT_ROLES)
async def conversation_api(request: web.Request) -> web.StreamResponse:
    data = await _conversation(request)
    return web.json_response(data, dumps=lambda value: json.dumps(value, default=str))


async def _act(request: web.Request, action: str, **params: Any) -> web.StreamResponse:
    core, desk = request.app[CONSOLE_CORE], request.app[DESK]
    conversation_id = _id(request)
    try:
        async with core.uow() as uow:
            await getattr(desk, action)(uow, conversation_id, _agent(request), **params)
            await uow.commit()
    except ConversationNotFound:
        raise web.HTTPNotFound() from None
    except DomainError as exc:
        raise web.HTTPSeeOther(f"/console/c/{conversation_id}?notice={exc.code}") from None
    target = "/console" if action in ("hand_back", "resolve", "snooze", "transfer") \
        else f"/console/c/{conversation_id}"
    raise web.HTTPSeeOther(target)


async def _text(request: web.Request) -> str:
    form = await request.post()
    return str(form.get("text", "")).strip()


@require(*AGENT_ROLES)
async def reply(request: web.Request) -> web.StreamResponse:
    text = await _text(request)
    if not text:
        raise web.HTTPSeeOther(f"/console/c/{_id(request)}?notice=empty")
    core, desk = request.app[CONSOLE_CORE], request.app[DESK]
    try:
        async with core.uow() as uow:
            await desk.say(uow, _id(request), _agent(request), text)
            await uow.commit()
    except DomainError as exc:
        raise web.HTTPSeeOther(f"/console/c/{_id(request)}?notice={exc.code}") from None
    raise web.HTTPSeeOther(f"/console/c/{_id(request)}")


@require(*AGENT_ROLES)
async def note(request: web.Request) -> web.StreamResponse:
    text = await _text(request)
    if not text:
        raise web.HTTPSeeOther(f"/console/c/{_id(request)}?notice=empty")
    return await _act(request, "note", text=text)


@require(*AGENT_ROLES)
async def hand_back(request: web.Request) -> web.StreamResponse:
    return await _act(request, "hand_back")


@require(*AGENT_ROLES)
async def resolve(request: web.Request) -> web.StreamResponse:
    return await _act(request, "resolve")


@require(*AGENT_ROLES)
async def transfer(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    core = request.app[CONSOLE_CORE]
    try:
        target = int(str(form.get("to", "")))
    except ValueError:
        raise web.HTTPSeeOther(f"/console/c/{_id(request)}?notice=choose_agent") from None
    async with core.uow(read_only=True) as uow:
        found = (await uow.conn.execute(select(staff.c.id, staff.c.display_name).where(
            staff.c.id == target, staff.c.active.is_(True)))).first()
    if found is None:
        raise web.HTTPSeeOther(f"/console/c/{_id(request)}?notice=choose_agent")
    return await _act(request, "transfer", to=Agent(found.id, found.display_name))


@require(*AGENT_ROLES)
async def snooze(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        minutes = int(str(form.get("minutes", "")))
    except ValueError:
        minutes = 0
    if minutes not in SNOOZE_CHOICES:
        raise web.HTTPSeeOther(f"/console/c/{_id(request)}?notice=choose_time")
    core = request.app[CONSOLE_CORE]
    return await _act(request, "snooze", until=core.clock.now() + timedelta(minutes=minutes))


@require(*AGENT_ROLES)
async def reveal(request: web.Request) -> web.StreamResponse:
    """Show one masked field once, on this page only (never stored in the page's URL)."""
    form = await request.post()
    core, desk = request.app[CONSOLE_CORE], request.app[DESK]
    field, reason = str(form.get("field", "")), str(form.get("reason", ""))
    try:
        async with core.uow() as uow:
            value = await desk.reveal(uow, _id(request), _agent(request), field, reason)
            await uow.commit()
    except DomainError as exc:
        raise web.HTTPSeeOther(f"/console/c/{_id(request)}?notice={exc.code}") from None
    data = await _conversation(request)
    response = render(request, "console/conversation.html", **data, notice=None,
                      revealed={"field": field, "value": value})
    response.headers["Cache-Control"] = "no-store"
    return response


ACTIONS = {"reply": reply, "note": note, "hand-back": hand_back, "transfer": transfer,
           "resolve": resolve, "snooze": snooze, "reveal": reveal}


# Live updates -----------------------------------------------------------------------------


@require(*AGENT_ROLES)
async def live(request: web.Request) -> web.StreamResponse:
    """Signals for the page: ``{"topic": "queue"}`` or ``{"topic": "conversation:<id>"}``.
    The page says which conversation it shows with ``{"watch": <id>}``."""
    socket = web.WebSocketResponse(heartbeat=30)
    await socket.prepare(request)
    bus = request.app[CONSOLE_CORE].live
    subscription = bus.subscribe("queue")
    watched = None

    async def forward() -> None:
        async for topic, _message in subscription:
            await socket.send_json({"topic": topic})

    pump = asyncio.create_task(forward())
    try:
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            with contextlib.suppress(ValueError, TypeError, KeyError):
                wanted = int(json.loads(message.data)["watch"])
                if wanted != watched:
                    subscription.close()
                    watched = wanted
                    subscription = bus.subscribe("queue", f"conversation:{wanted}")
                    pump.cancel()
                    pump = asyncio.create_task(forward())
    finally:
        pump.cancel()
        subscription.close()
    return socket
