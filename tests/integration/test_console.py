"""The agent console through the product's own app (create_app): the queue, claiming, the
conversation page with the masked context, replies reaching the customer, canned replies and
knowledge-base suggestions, notes, reveal with a reason, resolve with a rating, live signals."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from sqlalchemy import select

from bots.dialog.types import Inbound
from bots.server import CHANNELS, create_app
from bots.web.auth import STAFF
from core.adapters.tables import audit_log, chat_messages, conversations
from tests.integration.console_helpers import FAST, HTML, sign_in, staff_member
from tests.integration.lending_helpers import investor

_ids = itertools.count(1)


@pytest.fixture
async def app(core):
    app = create_app(core, close_core=False, background=False)
    app[STAFF].hasher = FAST
    return app


@pytest.fixture
async def client(app, aiohttp_client):
    return await aiohttp_client(app)


async def customer(app, chat: str, text: str | None = None, *, action: str | None = None,
                   channel: str = "web", locale: str = "en"):
    return await app[CHANNELS].engine.handle(Inbound(
        channel, chat, f"c{next(_ids)}", text=text, action=action, locale_hint=locale))


async def conversation_of(core, chat: str):
    async with core.uow(read_only=True) as uow:
        return (await uow.conn.execute(select(conversations).where(
            conversations.c.chat_id == chat))).one()


async def test_an_agent_claims_replies_and_resolves_and_the_customer_rates(app, core, client):
    await staff_member(app, core, "alice")
    await customer(app, "w1", "<script>alert(1)</script> my withdrawal has not arrived")
    await customer(app, "w1", "/human")
    csrf = await sign_in(client, "alice")
    queue = await client.get("/console", headers=HTML)
    body = await queue.text()
    conversation_id = (await conversation_of(core, "w1")).id
    assert f'action="/console/claim/{conversation_id}"' in body

    claimed = await client.post(f"/console/claim/{conversation_id}",
                                data={"csrf_token": csrf}, allow_redirects=False)
    assert claimed.headers["Location"] == f"/console/c/{conversation_id}"
    page = await (await client.get(f"/console/c/{conversation_id}", headers=HTML)).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "From the knowledge base" in page  # suggestions for the customer's last words
    assert "Canned replies" in page

    sent = await client.post(f"/console/c/{conversation_id}/reply",
                             data={"csrf_token": csrf, "text": "Checking it now."},
                             allow_redirects=False)
    assert sent.status == 303
    await client.post(f"/console/c/{conversation_id}/note",
                      data={"csrf_token": csrf, "text": "bank delay suspected"})
    async with core.uow(read_only=True) as uow:
        said = (await uow.conn.execute(select(chat_messages.c.sender, chat_messages.c.text)
                .where(chat_messages.c.conversation_id == conversation_id)
                .order_by(chat_messages.c.id))).all()
    assert ("agent", "Checking it now.") in [tuple(r) for r in said]
    assert "bank delay suspected" not in " ".join(r.text for r in said)

    resolved = await client.post(f"/console/c/{conversation_id}/resolve",
                                 data={"csrf_token": csrf}, allow_redirects=False)
    assert resolved.headers["Location"] == "/console"
    (thanks,) = await customer(app, "w1", action="rate:5")
    assert thanks.text == app[CHANNELS].engine.catalog.text("en", "rate_thanks")
    row = await conversation_of(core, "w1")
    assert (row.mode, row.rating) == ("bot", 5)


async def test_a_second_agent_is_told_the_conversation_was_taken(app, core, aiohttp_client):
    await staff_member(app, core, "bob")
    await staff_member(app, core, "carol")
    await customer(app, "w2", "/human")
    conversation_id = (await conversation_of(core, "w2")).id
    bob, carol = await aiohttp_client(app), await aiohttp_client(app)
    bob_csrf, carol_csrf = await sign_in(bob, "bob"), await sign_in(carol, "carol")
    first, second = await asyncio.gather(
        bob.post(f"/console/claim/{conversation_id}", data={"csrf_token": bob_csrf},
                 allow_redirects=False),
        carol.post(f"/console/claim/{conversation_id}", data={"csrf_token": carol_csrf},
                   allow_redirects=False))
    locations = sorted([first.headers["Location"], second.headers["Location"]])
    assert locations == [f"/console/c/{conversation_id}",
                         "/console?notice=conversation_already_claimed"]


async def test_the_context_is_masked_and_a_reveal_is_audited(app, core, client):
    member = await staff_member(app, core, "dora")
    person = await investor(core, "3000.00")
    chat = person.identity.external_id
    await customer(app, chat, "/human", channel=person.identity.channel)
    conversation_id = (await conversation_of(core, chat)).id
    csrf = await sign_in(client, "dora")
    await client.post(f"/console/claim/{conversation_id}", data={"csrf_token": csrf})
    page = await (await client.get(f"/console/c/{conversation_id}", headers=HTML)).text()
    assert person.phone not in page and person.id_number not in page
    assert "3,000.00" in page
    refused = await client.post(f"/console/c/{conversation_id}/reveal",
                                data={"csrf_token": csrf, "field": "phone", "reason": "why not"},
                                allow_redirects=False)
    assert refused.headers["Location"].endswith("notice=reveal_refused")
    shown = await client.post(f"/console/c/{conversation_id}/reveal", data={
        "csrf_token": csrf, "field": "id_number", "reason": "customer verification"})
    assert person.id_number in await shown.text()
    assert shown.headers["Cache-Control"] == "no-store"
    async with core.uow(read_only=True) as uow:
        (entry,) = (await uow.conn.execute(select(audit_log).where(
            audit_log.c.action == "field_revealed"))).all()
    assert entry.actor_id == member.id and entry.details["field"] == "id_number"


async def test_console_writes_need_the_csrf_token_and_pages_a_login(app, core, client):
    await staff_member(app, core, "eve")
    await customer(app, "w3", "/human")
    conversation_id = (await conversation_of(core, "w3")).id
    anonymous = await client.get("/console", headers=HTML, allow_redirects=False)
    assert anonymous.status == 302 and anonymous.headers["Location"].startswith("/login")
    await sign_in(client, "eve")
    forged = await client.post(f"/console/claim/{conversation_id}", allow_redirects=False)
    assert forged.status == 403
    assert (await conversation_of(core, "w3")).mode == "queued"


async def test_the_console_is_signalled_live_when_a_customer_writes(app, core, client):
    await staff_member(app, core, "fay")
    csrf = await sign_in(client, "fay")
    await customer(app, "w4", "/human")
    conversation_id = (await conversation_of(core, "w4")).id
    await client.post(f"/console/claim/{conversation_id}", data={"csrf_token": csrf})
    async with client.ws_connect("/console/ws") as socket:
        await socket.send_json({"watch": conversation_id})
        await asyncio.sleep(0.05)
        await customer(app, "w4", "are you there?")
        signals = set()
        while f"conversation:{conversation_id}" not in signals:
            signals.add((await socket.receive_json(timeout=5))["topic"])
    api = await (await client.get(f"/console/api/c/{conversation_id}")).json()
    assert api["messages"][-1]["text"] == "are you there?"
